"""RFC 5118, SIP Torture Test Messages for IPv6: every message of section 4.

The messages are the RFC's archive (``rfc5118/``, see its README).  They are stored with
bare LF line ends; :func:`wire` gives the CRLF form a SIP element receives.  Each test
quotes the RFC and checks hosts and ports through the parser, and the answer of the
sans-IO endpoint to the message as a UDP datagram.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sipresence.sip.headers import HeaderError, parse_name_addr, parse_via
from sipresence.sip.message import Request
from sipresence.sip.parser import ParseError, StreamFramer, parse_datagram
from sipresence.sip.uri import SipURI, URIError, parse_uri
from tests.support.sipcheck import App, answer, answers, load_corpus, parse, parse_error

ARCHIVE = load_corpus(Path(__file__).parent / "rfc5118")


def wire(name: str) -> bytes:
    """The message with CRLF line ends and an empty line after the header fields."""
    data = ARCHIVE[name].replace(b"\n", b"\r\n")
    return data if b"\r\n\r\n" in data else data + b"\r\n"


def with_true_length(name: str) -> bytes:
    """:func:`wire` with the Content-Length the body really has (see the README)."""
    head, _, body = wire(name).partition(b"\r\n\r\n")
    lines = [line for line in head.split(b"\r\n") if not line.startswith(b"Content-Length:")]
    return b"\r\n".join([*lines, b"Content-Length: %d" % len(body)]) + b"\r\n\r\n" + body


def request(data: bytes) -> Request:
    message = parse(data)
    assert isinstance(message, Request)
    return message


def hostport(uri_text: str) -> tuple[str, int | None]:
    uri = parse_uri(uri_text)
    assert isinstance(uri, SipURI)
    return uri.host, uri.port


def status_line_of(data: bytes, app: object | None = None) -> tuple[int, str]:
    out = answer(data, app)
    return out.status, out.reason


def test_the_corpus_has_every_message_of_section_4():
    assert sorted(ARCHIVE) == sorted([
        "ipv6-good", "ipv6-bad", "port-ambiguous", "port-unambiguous",
        "via-received-param-with-delim", "via-received-param-no-delim", "ipv6-in-sdp",
        "mult-ip-in-header", "mult-ip-in-sdp", "ipv4-mapped-ipv6", "ipv6-bug-abnf-3-colons",
        "ipv6-correct-abnf-2-colons"])
    assert all(b"\r" not in data for data in ARCHIVE.values())


@pytest.mark.parametrize("name", sorted(ARCHIVE))
def test_nothing_but_parse_errors_in_either_form(name):
    for data in (ARCHIVE[name], wire(name)):
        try:
            message = parse(data)
            for value in message.headers.values("contact"):
                _ = parse_name_addr(value).uri
            _ = message.vias
        except (ParseError, HeaderError):
            pass
        answers(data)


def test_4_1_ipv6_good():
    # "The request below is well-formatted according to the grammar in [RFC3261].  An
    # IPv6 reference appears in the Request-URI (R-URI), Via header field, and Contact
    # header field."
    m = request(wire("ipv6-good"))
    assert hostport(m.uri) == ("[2001:db8::10]", None)
    via = m.top_via
    assert (via.transport, via.host, via.port, via.branch) == (
        "UDP", "[2001:db8::9:1]", None, "z9hG4bKas3-111")
    contact = parse_name_addr(m.headers.get("contact"))
    assert contact.display == "Caller"
    assert (contact.uri.host, contact.uri.user) == ("[2001:db8::1]", "caller")
    assert status_line_of(wire("ipv6-good")) == (200, "OK")
    # The archive's bare-LF form is accepted as well (lenient in).
    assert request(ARCHIVE["ipv6-good"]).top_via.host == "[2001:db8::9:1]"


def test_4_2_ipv6_bad():
    # "The IPv6 reference in the R-URI does not contain the mandated delimiters for an
    # IPv6 reference ("[" and "]").  A SIP implementation receiving this request should
    # respond with a 400 Bad Request error."
    exc = parse_error(wire("ipv6-bad"))
    assert (exc.status, exc.reason) == (400, "IPv6 address without brackets in Request-URI")
    assert status_line_of(wire("ipv6-bad")) == (
        400, "IPv6 address without brackets in Request-URI")


def test_4_3_port_ambiguous():
    # "From a parsing perspective, the request below is well-formed.  However, from a
    # semantic point of view, it will not yield the desired result."  5070 is part of the
    # address: the port, had one been meant, belongs outside the "]".
    m = request(wire("port-ambiguous"))
    assert hostport(m.uri) == ("[2001:db8::10:5070]", None)
    assert status_line_of(wire("port-ambiguous")) == (200, "OK")


def test_4_4_port_unambiguous():
    # "the following REGISTER request leaves no ambiguity whatsoever on where the IPv6
    # address ends and the port number begins."
    m = request(wire("port-unambiguous"))
    assert hostport(m.uri) == ("[2001:db8::10]", 5070)
    assert status_line_of(wire("port-unambiguous")) == (200, "OK")


class ByeToo(App):
    allowed_methods = (*App.allowed_methods, "BYE")


def test_4_5_via_received_with_delimiters():
    # "Even though this is not a valid request based on a strict interpretation of the
    # grammar in [RFC3261], robust implementations must nonetheless be able to parse the
    # topmost Via header field and continue processing the request."
    m = request(wire("via-received-param-with-delim"))
    via = m.top_via
    assert (via.host, via.params["received"], via.received) == (
        "[2001:db8::9:1]", "[2001:db8::9:255]", "2001:db8::9:255")
    assert via.branch == "z9hG4bKas3-111"
    assert m.to.tag == "bd76ya"
    # Processing continues: an agent that takes BYE answers it; this one, which does not,
    # answers 405, not 400.
    assert status_line_of(wire("via-received-param-with-delim"), ByeToo()) == (200, "OK")
    assert status_line_of(wire("via-received-param-with-delim")) == (405, "Method Not Allowed")


def test_4_5_via_received_without_delimiters():
    # "This request is valid according to the grammar in [RFC3261]."
    m = request(wire("via-received-param-no-delim"))
    via = m.top_via
    assert (via.host, via.received, via.branch) == (
        "[2001:db8::9:1]", "2001:db8::9:255", "z9hG4bKas3")
    assert parse_name_addr(m.headers.get("contact")).uri.host == "[2001:db8::9:1]"
    assert status_line_of(wire("via-received-param-no-delim")) == (200, "OK")


def test_4_6_ipv6_in_sdp():
    # "This request below is valid and well-formed according to the grammar in [RFC3261].
    # Note that the IPv6 addresses in the SDP [RFC4566] body do not have the delimiting
    # "[" and "]"."  Its Content-Length (268) is larger than its body (251 octets with
    # CRLF, 242 with LF), and on UDP that is answered with a 400 (RFC 3261 18.3, RFC 4475
    # clerr); on a stream the framer waits for the rest.
    for data in (wire("ipv6-in-sdp"), ARCHIVE["ipv6-in-sdp"]):
        exc = parse_error(data)
        assert (exc.status, exc.reason) == (400, "Content-Length larger than message")
    assert status_line_of(wire("ipv6-in-sdp")) == (400, "Content-Length larger than message")
    assert StreamFramer().feed(wire("ipv6-in-sdp")) == []
    # The same message with its true length.
    m = request(with_true_length("ipv6-in-sdp"))
    assert hostport(m.uri) == ("[2001:db8::10]", None)
    assert m.to.uri.host == "[2001:db8::10]"
    assert m.top_via.host == "[2001:db8::20]"
    assert parse_name_addr(m.headers.get("contact")).uri.host == "[2001:db8::20]"
    assert b"\r\nc=IN IP6 2001:db8::20\r\n" in m.body and len(m.body) == 251
    assert m.content_type.mime == "application/sdp"
    assert status_line_of(with_true_length("ipv6-in-sdp")) == (200, "OK")


def test_4_7_multiple_ip_addresses_in_sip_headers():
    # "The Via list contains a mix of IPv4 addresses and IPv6 references."
    m = request(wire("mult-ip-in-header"))
    assert [(v.transport, v.host, v.port, v.branch, v.received) for v in m.vias] == [
        ("UDP", "[2001:db8::9:1]", 6050, "z9hG4bKas3-111", None),
        ("UDP", "192.0.2.1", None, "z9hG4bKjhja8781hjuaij65144", None),
        ("TCP", "[2001:db8::9:255]", None, "z9hG4bK451jj", "192.0.2.200")]
    assert hostport(m.uri) == ("host.example.net", None)
    assert status_line_of(wire("mult-ip-in-header"), ByeToo()) == (200, "OK")


def test_4_8_multiple_ip_addresses_in_sdp():
    # "The SDP contains multiple media lines, and each media line is identified by a
    # different network connection address."  Content-Length says 181 of 189 octets:
    # the rest of the datagram is dropped (RFC 3261 18.3), both c= lines are kept.
    data = wire("mult-ip-in-sdp")
    m = request(data)
    body = data.partition(b"\r\n\r\n")[2]
    assert len(body) == 189 and m.body == body[:181]
    assert b"c=IN IP4 192.0.2.1\r\n" in m.body and b"c=IN IP6 2001:db8::1\r\n" in m.body
    assert hostport(m.uri) == ("[2001:db8::10]", None)
    assert parse_name_addr(m.headers.get("contact")).uri.host == "[2001:db8::9:1]"
    assert status_line_of(data) == (200, "OK")
    # With bare LF the body is 180 octets, one short of the declared 181.
    assert parse_error(ARCHIVE["mult-ip-in-sdp"]).reason == "Content-Length larger than message"


def test_4_9_ipv4_mapped_ipv6_addresses():
    # "The Via list contains two Via headers, both of which include an IPv4-mapped IPv6
    # address.  An IPv4-mapped IPv6 address also appears in the Contact header and the
    # SDP.  The topmost Via header includes a port number that is appropriately delimited
    # by "]"."  Hosts compare in RFC 5952 form, which keeps the dotted quad.
    m = request(wire("ipv4-mapped-ipv6"))
    assert [(v.host, v.port) for v in m.vias] == [
        ("[::ffff:192.0.2.10]", 19823), ("[::ffff:192.0.2.2]", None)]
    contact = parse_name_addr(m.headers.get("contact"))
    assert (contact.display, contact.uri.host) == ("T. desk phone", "[::ffff:192.0.2.2]")
    assert hostport("sip:ted@[::FFFF:C000:0202]") == ("[::ffff:192.0.2.2]", None)
    assert b"c=IN IP6 ::ffff:192.0.2.2\r\n" in m.body
    assert len(m.body) == 236  # of 245: the declared length wins on UDP
    assert status_line_of(wire("ipv4-mapped-ipv6")) == (200, "OK")
    # With bare LF the declared length is exact.
    assert request(ARCHIVE["ipv4-mapped-ipv6"]).body == ARCHIVE["ipv4-mapped-ipv6"].partition(
        b"\n\n")[2]


def test_4_10_three_colons_are_read_as_two():
    # "A SIP implementation receiving such a message may exhibit robustness by
    # successfully parsing the IPv6 reference (it can choose to ignore the extra colon
    # when parsing the IPv6 reference."  Choice made here: taken (it was a 400 before).
    # The three colons come from RFC 3261's own ABNF bug, so the devices that send them
    # follow the standard as written; lenient in, and the address is the one of the
    # two-colon message: the same host, compared equal.
    m = request(wire("ipv6-bug-abnf-3-colons"))
    assert hostport(m.uri) == ("[2001:db8::c000:201]", None)
    assert m.to.uri.host == "[2001:db8::c000:201]"
    assert status_line_of(wire("ipv6-bug-abnf-3-colons")) == (200, "OK")
    # In a Via too, and only one extra colon is forgiven.
    assert parse_via("SIP/2.0/UDP [2001:db8:::192.0.2.1]:5070").host == "[2001:db8::c000:201]"
    for bad in ("[2001:db8::::192.0.2.1]", "[2001:::db8:::1]", "[2001:db8::1:::2]"):
        with pytest.raises(URIError):
            parse_uri(f"sip:user@{bad}")


def test_4_10_two_colons_are_correct():
    # "The next message has the correct syntax for the IPv6 reference in the R-URI."
    # RFC 5952 writes the embedded IPv4 part of a global address in hexadecimal.
    m = request(wire("ipv6-correct-abnf-2-colons"))
    assert hostport(m.uri) == ("[2001:db8::c000:201]", None)
    assert m.to.uri.host == "[2001:db8::c000:201]"
    assert m.top_via.host == "lab1.east.example.com"
    assert status_line_of(wire("ipv6-correct-abnf-2-colons")) == (200, "OK")
    # The archive's form, without the empty line, parses the same on UDP.
    assert parse_datagram(ARCHIVE["ipv6-correct-abnf-2-colons"]) is not None
