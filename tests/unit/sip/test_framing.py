"""Framing: TCP/TLS streams by Content-Length (RFC 3261 18.3, RFC 5626 keep-alives) and UDP."""

from __future__ import annotations

import pytest

from sipresence.sip.endpoint import Endpoint
from sipresence.sip.message import COMPACT_FORMS, Request, Response
from sipresence.sip.parser import (
    KEEPALIVE,
    MAX_MESSAGE_SIZE,
    ParseError,
    StreamFramer,
    parse_datagram,
)
from sipresence.sip.transport import Peer
from tests.support.sipcheck import App, answer, parse, parse_error


def message(n: int = 1, body: bytes = b"", *, length: int | None = None,
            method: str = "MESSAGE", extra: str = "") -> bytes:
    cl = "" if length == -1 else f"Content-Length: {len(body) if length is None else length}\r\n"
    return (f"{method} sip:alice@example.com SIP/2.0\r\n"
            f"Via: SIP/2.0/TCP 192.0.2.7:5070;branch=z9hG4bK-{n}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:bob@example.com>;tag=f{n}\r\n"
            "To: <sip:alice@example.com>\r\n"
            f"Call-ID: call-{n}\r\nCSeq: {n} {method}\r\n{extra}{cl}\r\n").encode() + body


BODY = b"Hello\r\n\r\nwith a blank line and \x00 octets\r\n"
STREAM_PEER = Peer("TCP", "192.0.2.7", 40000, 3)


def feed_all(framer: StreamFramer, chunks: list[bytes]) -> list[object]:
    out: list[object] = []
    for chunk in chunks:
        out.extend(framer.feed(chunk))
    return out


def same(a: object, b: object) -> bool:
    assert isinstance(a, Request) and isinstance(b, Request)
    return (a.method, a.uri, a.headers, a.body) == (b.method, b.uri, b.headers, b.body)


# -- streams ---------------------------------------------------------------------------

def test_a_message_split_at_every_byte_boundary_frames_the_same():
    data = message(1, BODY)
    whole = parse_datagram(data)
    for cut in range(1, len(data)):
        [got] = feed_all(StreamFramer(), [data[:cut], data[cut:]])
        assert same(got, whole), cut


def test_a_message_fed_one_byte_at_a_time():
    data = b"\r\n" + message(1, BODY) + b"\r\n\r\n" + message(2)
    out = feed_all(StreamFramer(), [data[i:i + 1] for i in range(len(data))])
    assert len(out) == 3 and out[1] is KEEPALIVE
    assert out[0].body == BODY and out[2].call_id == "call-2"


def test_several_messages_in_one_chunk_come_out_in_order():
    data = message(1, BODY) + message(2) + message(3, b"x" * 500)
    out = StreamFramer().feed(data)
    assert [m.call_id for m in out] == ["call-1", "call-2", "call-3"]
    assert [len(m.body) for m in out] == [len(BODY), 0, 500]


def test_a_chunk_may_end_inside_the_next_message():
    data = message(1) + message(2, BODY)
    framer = StreamFramer()
    first = framer.feed(data[:len(message(1)) + 10])
    assert [m.call_id for m in first] == ["call-1"]
    assert [m.call_id for m in framer.feed(data[len(message(1)) + 10:])] == ["call-2"]


def test_crlf_crlf_is_a_keepalive_ping_and_the_endpoint_answers_one_crlf():
    # RFC 5626 section 3.5.1: a double-CRLF ping, a single-CRLF pong.
    framer = StreamFramer()
    assert framer.feed(b"\r\n\r\n") == [KEEPALIVE]
    assert framer.feed(b"\r\n") == []  # maybe the start of the next ping
    assert framer.feed(b"\r\n") == [KEEPALIVE]
    assert framer.feed(b"\r\n\r\n\r\n\r\n") == [KEEPALIVE, KEEPALIVE]
    endpoint = Endpoint(App())
    endpoint.receive_stream(KEEPALIVE, STREAM_PEER, 0.0)
    [pong] = endpoint.transmissions()
    assert (pong.data, pong.peer) == (b"\r\n", STREAM_PEER)


def test_a_ping_between_messages():
    out = StreamFramer().feed(message(1) + b"\r\n\r\n" + message(2))
    assert [getattr(m, "call_id", m) for m in out] == ["call-1", KEEPALIVE, "call-2"]


def test_leading_crlfs_before_a_start_line_are_ignored():
    # RFC 3261 7.5: "Implementations processing SIP messages over stream-oriented
    # transports MUST ignore any CRLF appearing before the start-line".
    assert [m.call_id for m in StreamFramer().feed(b"\r\n" + message(1))] == ["call-1"]
    assert [m.call_id for m in StreamFramer().feed(b"\n\n\n" + message(1))] == ["call-1"]


def test_a_missing_content_length_on_a_stream_means_no_body():
    data = message(1, length=-1) + message(2, BODY)
    out = StreamFramer().feed(data)
    assert [(m.call_id, m.body) for m in out] == [("call-1", b""), ("call-2", BODY)]


@pytest.mark.parametrize(("extra", "length", "reason"), [
    ("", "-5", "Negative Content-Length"),
    ("Content-Length: 3\r\n", "3", "Multiple Content-Length headers"),
    ("Content-Length: 3\r\n", "4", "Multiple Content-Length headers"),
    ("", "five", "Bad Content-Length"),
    ("", "0x10", "Bad Content-Length"),
])
def test_a_content_length_that_cannot_frame_is_fatal(extra, length, reason):
    data = message(1, extra=extra, length=-1).replace(
        b"\r\n\r\n", f"\r\nContent-Length: {length}\r\n\r\n".encode()) + b"abc"
    framer = StreamFramer()
    with pytest.raises(ParseError) as caught:
        framer.feed(data)
    assert caught.value.fatal and caught.value.reason == reason
    assert isinstance(caught.value.message, Request)  # a 400 can still be sent
    with pytest.raises(ParseError) as again:
        framer.feed(message(2))  # the connection is done for
    assert again.value.fatal


def test_an_unterminated_header_section_over_the_size_limit_is_fatal():
    framer = StreamFramer(max_size=1000)
    assert framer.feed(b"OPTIONS sip:a@example.com SIP/2.0\r\nX: " + b"a" * 900) == []
    with pytest.raises(ParseError) as caught:
        framer.feed(b"a" * 200)
    assert (caught.value.status, caught.value.fatal) == (513, True)


def test_a_content_length_over_the_size_limit_is_fatal_before_the_body_arrives():
    framer = StreamFramer()
    with pytest.raises(ParseError) as caught:
        framer.feed(message(1, length=MAX_MESSAGE_SIZE))
    assert (caught.value.status, caught.value.reason, caught.value.fatal) == (
        513, "Message Too Large", True)


def test_a_malformed_but_framed_message_is_answered_and_the_next_one_parses():
    bad = message(1, BODY).replace(b"Max-Forwards: 70\r\n", b"Max-Forwards 70\r\n")
    out = StreamFramer().feed(bad + message(2))
    assert isinstance(out[0], ParseError) and not out[0].fatal
    assert (out[0].status, out[0].reason) == (400, "Malformed header line")
    assert out[0].message.body == BODY  # the body was skipped by its Content-Length
    assert out[1].call_id == "call-2"
    endpoint = Endpoint(App())
    for item in out:
        endpoint.receive_stream(item, STREAM_PEER, 0.0)
    answers = [parse_datagram(t.data) for t in endpoint.transmissions()]
    assert [(r.status, r.reason) for r in answers] == [
        (400, "Malformed header line"), (405, "Method Not Allowed")]


def test_an_unreadable_start_line_on_a_stream_is_fatal():
    with pytest.raises(ParseError) as caught:
        StreamFramer().feed(b"SIP/2.0 2000 OK\r\nContent-Length: 0\r\n\r\n")
    assert caught.value.fatal and caught.value.message is None


def test_bare_lf_messages_frame_on_a_stream():
    data = message(1, b"body").replace(b"\r\n", b"\n")
    [m] = StreamFramer().feed(data)
    assert (m.call_id, m.body) == ("call-1", b"body")


# -- datagrams -------------------------------------------------------------------------

def test_a_missing_content_length_on_udp_means_the_rest_of_the_datagram():
    # RFC 3261 18.3; INTEROP.md: linphone sends bodiless requests without one.
    m = parse(message(1, BODY, length=-1))
    assert m.body == BODY and "content-length" not in m.headers


def test_octets_after_the_content_length_are_ignored_on_udp():
    # RFC 3261 18.3: "Any additional bytes in the transport packet beyond the end of the
    # body MUST be discarded."
    m = parse(message(1, BODY) + b"garbage INVITE sip:x SIP/2.0\r\n\r\n")
    assert m.body == BODY


def test_a_content_length_larger_than_the_datagram_is_a_400():
    # RFC 3261 18.3: "If the message is a request, the element SHOULD generate a 400".
    data = message(1, BODY, length=len(BODY) + 1)
    exc = parse_error(data)
    assert (exc.status, exc.reason) == (400, "Content-Length larger than message")
    out = answer(data)
    assert (out.status, out.reason) == (400, "Content-Length larger than message")


def test_a_response_whose_content_length_is_too_large_is_dropped():
    data = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
            b"From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\n"
            b"Call-ID: c\r\nCSeq: 1 NOTIFY\r\nContent-Length: 10\r\n\r\nabc")
    assert isinstance(parse_error(data).message, Response)
    endpoint = Endpoint(App())
    endpoint.receive_datagram(data, Peer("UDP", "192.0.2.1", 5060), 0.0)
    assert endpoint.transmissions() == []


def test_bare_lf_line_ends_are_accepted():
    data = message(1, BODY).replace(b"\r\n", b"\n", 9)  # the header section only
    m = parse(data)
    assert (m.method, m.call_id, m.cseq.number, m.body) == ("MESSAGE", "call-1", 1, BODY)
    mixed = message(1).replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\n")
    assert parse(mixed).max_forwards == 70


def test_keepalives_on_udp_are_not_messages():
    for data in (b"\r\n\r\n", b"\r\n", b"\n", b"\r\n\r\n\r\n"):
        assert parse_datagram(data) is None
    endpoint = Endpoint(App())
    endpoint.receive_datagram(b"\r\n\r\n", Peer("UDP", "192.0.2.1", 5060), 0.0)
    assert endpoint.transmissions() == []


def test_a_datagram_over_the_size_limit_is_refused():
    exc = parse_error(message(1, b"x" * MAX_MESSAGE_SIZE))
    assert exc.status == 513


# RFC 3261 7.3.3 and the RFCs that added compact forms since (RFC 6665 o/u, RFC 3515 r,
# RFC 3892 b, RFC 3841 a/j/d, RFC 4028 x, RFC 4474 y/n).
COMPACT = {
    "a": "accept-contact", "b": "referred-by", "c": "content-type",
    "d": "request-disposition", "e": "content-encoding", "f": "from", "i": "call-id",
    "j": "reject-contact", "k": "supported", "l": "content-length", "m": "contact",
    "n": "identity-info", "o": "event", "r": "refer-to", "s": "subject", "t": "to",
    "u": "allow-events", "v": "via", "x": "session-expires", "y": "identity",
}


def test_every_compact_form_is_known():
    assert COMPACT_FORMS == COMPACT


def test_compact_forms_are_mapped_in_either_case():
    data = (b"SUBSCRIBE sip:alice@example.com SIP/2.0\r\n"
            b"v: SIP/2.0/UDP 192.0.2.7;branch=z9hG4bK-c\r\n"
            b"V: SIP/2.0/TCP 192.0.2.8;branch=z9hG4bK-d\r\n"
            b"Max-Forwards: 70\r\nf: <sip:bob@example.com>;tag=1\r\nT: <sip:alice@example.com>\r\n"
            b"i: compact-1\r\nCSeq: 1 SUBSCRIBE\r\nm: <sip:bob@192.0.2.7>\r\n"
            b"o: presence\r\nu: presence, dialog\r\nk: eventlist\r\ns: hello\r\n"
            b"E: gzip\r\nr: <sip:carol@example.com>\r\nb: <sip:dave@example.com>\r\n"
            b"a: *;audio\r\nj: *;video\r\nd: proxy\r\nx: 1800\r\ny: abc\r\n"
            b"N: <https://example.com/cert>\r\nc: text/plain\r\nL: 4\r\n\r\nbody")
    m = parse(data)
    assert isinstance(m, Request)
    assert sorted(m.headers.keys()) == sorted({*COMPACT.values(), "max-forwards", "cseq"})
    assert [v.transport for v in m.vias] == ["UDP", "TCP"]
    assert (m.from_.tag, m.to.uri_text, m.call_id) == ("1", "sip:alice@example.com", "compact-1")
    assert m.content_type.mime == "text/plain" and m.body == b"body"
    assert m.headers.get("Event") == "presence"
    assert m.headers.values("allow-events") == ["presence", "dialog"]
    # Written out in full on the way out.
    out = m.to_bytes()
    assert b"\r\nEvent: presence\r\n" in out and b"\r\nCall-ID: compact-1\r\n" in out
    assert b"\r\nv:" not in out and b"\r\ni:" not in out


# -- line ends and numbers that only look right ------------------------------------------

def test_a_bare_cr_in_a_header_is_a_400_and_is_not_copied_into_the_answer():
    # RFC 3261 7: CR and LF appear only together, as a line end.  A lone CR would end a
    # line for another parser; an answer copying Call-ID must not pass it on.
    data = message(1).replace(b"Call-ID: call-1\r\n", b"Call-ID: call-1\rEvil: yes\r\n")
    exc = parse_error(data)
    assert (exc.status, exc.reason) == (400, "Bare CR in header section")
    assert exc.message.headers.get("call-id") == "call-1 Evil: yes"
    out = answer(data)
    assert (out.status, out.reason) == (400, "Bare CR in header section")
    raw = out.to_bytes()
    assert raw.count(b"\r") == raw.count(b"\r\n") and b"\r\nEvil" not in raw
    # The same on a stream: the message is framed, answered, and the next one parses.
    items = StreamFramer().feed(data + message(2))
    assert isinstance(items[0], ParseError) and not items[0].fatal
    assert items[1].call_id == "call-2"


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("Content-Length", "\u00b2", "Bad Content-Length"),  # isdigit() but not int()-able
    ("Content-Length", "\uff15", "Bad Content-Length"),  # a fullwidth 5
    ("Max-Forwards", "\u00b2", "Max-Forwards out of range"),
    ("Expires", "\u0663", "Bad Expires"),  # an Arabic-Indic 3
])
def test_only_ascii_digits_are_numbers(field, value, reason):
    data = message(1, length=-1).replace(b"Max-Forwards: 70\r\n", b"")
    data = data.replace(b"\r\n\r\n", f"\r\n{field}: {value}\r\n\r\n".encode())
    exc = parse_error(data)
    assert (exc.status, exc.reason) == (400, reason)
    assert (answer(data).status, answer(data).reason) == (400, reason)


def test_only_ascii_digits_make_ports_and_addresses():
    for uri in ("sip:a@example.com:\u00b2", "sip:a@example.com:\uff15\uff10\uff16\uff10",
                "sip:a@\u0661.2.3.4"):
        data = message(1).replace(b"MESSAGE sip:alice@example.com", b"MESSAGE " + uri.encode())
        assert parse_error(data).status == 400, uri
    via = message(1).replace(b"z9hG4bK-1", "z9hG4bK-1;rport=\u00b2".encode())
    assert parse_error(via).reason == "Bad Via rport"
