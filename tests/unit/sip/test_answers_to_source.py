"""Every answer reaches the sender (issue 9): at the source, whatever the Via names.

Each message of the RFC 4475 and RFC 5118 archives is sent, with its top Via naming
``client.invalid`` (a name that never resolves, RFC 6761), to an endpoint running the
real presence agent.  Every request must get its answer at the address it came from:
over UDP at the source address, at the source port if the Via asked for rport and
at the sent-by port otherwise, with ``received`` in the top Via whenever that Via
parses, the answers of the parser's and the UAS checks' errors included; over a
stream on the connection it came on.  Responses and ACKs get nothing.
"""

from __future__ import annotations

import pytest

from sipresence.presence.agent import Agent
from sipresence.sip.endpoint import Endpoint, Outgoing
from sipresence.sip.headers import HeaderError, Via
from sipresence.sip.message import Message, Request, Response
from sipresence.sip.parser import ParseError, StreamFramer, parse_datagram
from sipresence.sip.transport import Peer, Transmit
from tests.support.torture import MESSAGES, RESPONSES, rename_via

SOURCE = ("127.0.0.1", 40123)  # a port no message names in its Via
UDP = Peer("UDP", *SOURCE, None, ("127.0.0.1", 5060))
TCP = Peer("TCP", *SOURCE, 7, ("127.0.0.1", 5060))
UNRESOLVABLE = b"client.invalid"

# Messages whose point is the address in their top Via: it is kept, so the test also
# shows that an IPv6 or IPv4-mapped sent-by, or a received the client wrote itself,
# is never where the answer goes.
KEEP_VIA = {"ipv6-good", "ipv4-mapped-ipv6", "mult-ip-in-header",
            "via-received-param-with-delim", "via-received-param-no-delim"}
# No usable top Via: badinv01's is malformed, test.dat has none.  Both are answered at
# the source port (test.dat's 400 is smaller than the request, so it may go out).
NO_VIA = {"badinv01", "test"}
# On a stream these wait for octets that never come, so there is nothing to answer yet:
# a Content-Length beyond the end (clerr, ipv6-in-sdp; RFC 4475 3.1.2.2) or a header
# section that is not ended (baddn, as the archive has it).
STREAM_WAITS = {"clerr", "ipv6-in-sdp", "baddn"}


def renamed(name: str) -> bytes:
    """The message with its top Via's host replaced by an unresolvable name."""
    data = MESSAGES[name]
    return data if name in KEEP_VIA else rename_via(data, UNRESOLVABLE)


def head_of(data: bytes) -> Message | None:
    """What the parser reads of *data*: the message, or as much as it could read."""
    try:
        return parse_datagram(data)
    except ParseError as exc:
        return exc.message


def top_via(message: Message) -> Via | None:
    try:
        return message.top_via
    except HeaderError:
        return None


def endpoint() -> Endpoint:
    agent = Agent()
    ep = Endpoint(agent)
    return ep


def responses(sent: list[Transmit]) -> list[tuple[Response, Peer]]:
    out = []
    for transmit in sent:
        response = parse_datagram(transmit.data)
        assert isinstance(response, Response), transmit.data
        out.append((response, transmit.peer))
    return out


def test_every_top_via_but_the_kept_ones_names_the_unresolvable_host():
    assert len(MESSAGES) == 50 + 12
    for name, data in MESSAGES.items():
        if name in KEEP_VIA or name == "test":  # test.dat has no Via
            assert renamed(name) == data
            continue
        assert renamed(name).count(UNRESOLVABLE) == 1, name
        message = head_of(renamed(name))
        via = None if message is None else top_via(message)  # bigcode: no head at all
        assert via is None or via.host == UNRESOLVABLE.decode(), name


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_over_udp_the_answer_goes_to_the_source(name):
    data = renamed(name)
    message = head_of(data)
    ep = endpoint()
    ep.receive_datagram(data, UDP, 0.0)
    out = responses(ep.transmissions())
    if name in RESPONSES:
        assert data.startswith(b"SIP/2.0 ") and out == []
        return
    assert isinstance(message, Request) and message.method != "ACK"
    [(response, to)] = out
    via = top_via(message)
    assert (via is None) == (name in NO_VIA)
    if via is None:
        expected_port = SOURCE[1]
    else:
        expected_port = SOURCE[1] if "rport" in via.params else via.port or 5060
    assert (to.transport, to.host, to.port) == ("UDP", SOURCE[0], expected_port)
    if via is not None:
        answered = response.top_via
        assert answered.received == SOURCE[0]
        assert answered.host == via.host  # the sent-by is copied, not replaced
        if "rport" in via.params:
            assert answered.rport == SOURCE[1]


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_over_a_stream_the_answer_goes_on_the_same_connection(name):
    ep = endpoint()
    framer = StreamFramer()
    try:
        items: list[object] = list(framer.feed(renamed(name)))
    except ParseError as exc:  # lost framing: answered, then closed (net/tcp.py)
        items = [exc]
    for item in items:
        ep.receive_stream(item, TCP, 0.0)
    out = responses(ep.transmissions())
    if name in RESPONSES or name in STREAM_WAITS:
        assert out == []
        return
    assert out  # dblreq: the REGISTER and, on a stream, the INVITE after it
    for response, to in out:
        assert (to.transport, to.host, to.connection) == ("TCP", SOURCE[0], TCP.connection)
        via = top_via(response)
        assert via is None or via.received == SOURCE[0]


def test_acks_get_nothing_malformed_or_not():
    ack = (b"ACK sip:alice@example.com SIP/2.0\r\n"
           b"Via: SIP/2.0/UDP client.invalid;branch=z9hG4bK-ack;rport\r\n"
           b"Max-Forwards: 70\r\nFrom: <sip:bob@example.com>;tag=1\r\n"
           b"To: <sip:alice@example.com>;tag=2\r\nCall-ID: ack-1\r\nCSeq: 1 ACK\r\n"
           b"Content-Length: 0\r\n\r\n")
    ep = endpoint()
    ep.receive_datagram(ack, UDP, 0.0)  # no INVITE transaction: absorbed
    ep.receive_datagram(ack.replace(b"1 ACK", b"1 INVITE"), UDP, 0.0)  # CSeq mismatch
    assert ep.transmissions() == []


def test_an_error_answer_carries_received_and_rport_and_goes_to_the_source():
    """The early checks' 400 and 505 are stamped as a 200 is (RFC 3261 18.2.1, RFC 3581
    section 4), so a client behind NAT hears them at the address it sent from."""
    base = (b"OPTIONS sip:alice@example.com SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK-e;rport\r\n"
            b"Max-Forwards: 70\r\nFrom: <sip:bob@example.com>;tag=1\r\n"
            b"To: <sip:alice@example.com>\r\nCall-ID: err-1\r\nCSeq: 1 OPTIONS\r\n"
            b"Content-Length: 0\r\n\r\n")
    broken = {
        "CSeq method does not match request method": base.replace(b"1 OPTIONS", b"1 INFO"),
        "Multiple CSeq headers": base.replace(b"CSeq: 1 OPTIONS",
                                              b"CSeq: 1 OPTIONS\r\nCSeq: 2 OPTIONS"),
        "Bad IPv6 reference in Request-URI": base.replace(b"alice@example.com SIP",
                                                          b"alice@[2001:db8::x] SIP"),
        "Version Not Supported": base.replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1),
    }
    for reason, data in broken.items():
        ep = endpoint()
        ep.receive_datagram(data, UDP, 0.0)
        [(response, to)] = responses(ep.transmissions())
        assert response.reason == reason
        assert (to.host, to.port) == SOURCE
        assert response.headers.get("via") == (
            f"SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK-e;rport={SOURCE[1]};received={SOURCE[0]}")


def test_a_received_the_client_wrote_is_replaced_and_never_followed():
    """A Via naming the source with a received of its own: the answer goes to the
    source, and its Via says the source, not the address the client claimed."""
    data = (b"OPTIONS sip:alice@example.com SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 127.0.0.1:5062;received=192.0.2.66;branch=z9hG4bK-r\r\n"
            b"Max-Forwards: 70\r\nFrom: <sip:bob@example.com>;tag=1\r\n"
            b"To: <sip:alice@example.com>\r\nCall-ID: rcv-1\r\nCSeq: 1 OPTIONS\r\n"
            b"Content-Length: 0\r\n\r\n")
    ep = endpoint()
    ep.receive_datagram(data, UDP, 0.0)
    [(response, to)] = responses(ep.transmissions())
    assert (to.host, to.port) == ("127.0.0.1", 5062)
    assert response.top_via.received == "127.0.0.1"
    assert "192.0.2.66" not in response.headers.get("via")


class Failing:
    """A transaction user that fails: every answer then comes from the endpoint."""

    allowed_methods = ("SUBSCRIBE", "PUBLISH")
    supported: tuple[str, ...] = ()

    def handle_request(self, request: Request, peer: Peer, now: float) -> Response | None:
        raise RuntimeError("bug")

    def outgoing(self, now: float) -> list[Outgoing]:
        return []

    def handle_response(self, ref: object, response: Response, now: float) -> None:
        raise AssertionError("an answer to a request it never sent")


def test_the_endpoints_own_answers_are_stamped_and_go_to_the_source():
    """500 (the application failed), 482 (merged request) and 503 (shed under overload)
    are built by the endpoint, not the parser or the agent: stamped all the same."""
    def subscribe(branch: str, call_id: str = "own-1") -> bytes:
        return (f"SUBSCRIBE sip:alice@example.com SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP client.invalid:5062;branch={branch};rport\r\n"
                "Max-Forwards: 70\r\nFrom: <sip:bob@example.com>;tag=1\r\n"
                f"To: <sip:alice@example.com>\r\nCall-ID: {call_id}\r\nCSeq: 1 SUBSCRIBE\r\n"
                "Event: presence\r\nContent-Length: 0\r\n\r\n").encode()

    ep = Endpoint(Failing())
    ep.receive_datagram(subscribe("z9hG4bK-a"), UDP, 0.0)
    ep.receive_datagram(subscribe("z9hG4bK-b"), UDP, 0.0)  # same request, another branch
    ep.admission.admit = 0.0
    ep.receive_datagram(subscribe("z9hG4bK-c", "own-2"), UDP, 0.0)
    out = responses(ep.transmissions())
    assert [response.status for response, _ in out] == [500, 482, 503]
    for response, to in out:
        assert (to.host, to.port) == SOURCE
        assert (response.top_via.received, response.top_via.rport) == SOURCE
