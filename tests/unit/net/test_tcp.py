"""SIP over TCP in process: Twisted's fake transports and clock around the real
protocol, driver, endpoint and agent; no socket is opened."""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport

from sipresence.net.driver import Driver
from sipresence.net.tcp import SipStreamProtocol, listen_tcp
from sipresence.presence.agent import Agent
from sipresence.sip.endpoint import Endpoint
from sipresence.sip.message import Request, Response
from sipresence.sip.parser import StreamFramer
from sipresence.sip.transport import Peer

IDLE = 30.0


class Network:
    """One agent listening on TCP 127.0.0.1:5060, and clients connecting to it."""

    def __init__(self) -> None:
        self.reactor = MemoryReactorClock()
        self.agent = Agent()
        self.endpoint = Endpoint(self.agent)
        self.driver = Driver(self.reactor, self.endpoint, self.agent)
        listen_tcp(self.reactor, self.driver, "127.0.0.1", 5060, IDLE)
        [(_, self.factory, _, _)] = self.reactor.tcpServers

    def connect(self, port: int) -> tuple[SipStreamProtocol, StringTransport]:
        protocol = self.factory.buildProtocol(None)
        transport = StringTransport(hostAddress=IPv4Address("TCP", "127.0.0.1", 5060),
                                    peerAddress=IPv4Address("TCP", "127.0.0.1", port))
        protocol.makeConnection(transport)
        return protocol, transport


def request(method: str, port: int, *, cseq: int = 1, extra: str = "",
            call_id: str = "c1") -> bytes:
    return (f"{method} sip:alice@example.com SIP/2.0\r\n"
            f"Via: SIP/2.0/TCP 127.0.0.1:{port};branch=z9hG4bK-{method}-{cseq}\r\n"
            "From: <sip:bob@example.com>;tag=b1\r\nTo: <sip:alice@example.com>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n"
            f"{extra}Content-Length: 0\r\n\r\n").encode()


def received(transport: StringTransport) -> list[object]:
    """What the agent wrote on *transport*, framed as a client would."""
    items = list(StreamFramer().feed(transport.value()))
    transport.clear()
    return items


def test_a_framing_error_closes_its_connection_only_after_a_400():
    net = Network()
    broken_protocol, broken = net.connect(40001)
    healthy_protocol, healthy = net.connect(40002)
    broken_protocol.dataReceived(request("OPTIONS", 40001).replace(
        b"Content-Length: 0", b"Content-Length: -5"))
    [answer] = received(broken)
    assert isinstance(answer, Response) and answer.status == 400
    assert broken.disconnecting and not healthy.disconnecting
    healthy_protocol.dataReceived(request("OPTIONS", 40002))
    [ok] = received(healthy)
    assert isinstance(ok, Response) and ok.status == 200


def test_an_idle_connection_is_closed_and_traffic_or_a_keepalive_keeps_it_open():
    net = Network()
    quiet_protocol, quiet = net.connect(40001)
    chatty_protocol, chatty = net.connect(40002)
    net.reactor.advance(IDLE - 1)
    chatty_protocol.dataReceived(b"\r\n\r\n")  # RFC 5626 ping
    assert chatty.value() == b"\r\n"  # pong
    net.reactor.advance(2)
    assert quiet.disconnecting and not chatty.disconnecting
    net.reactor.advance(IDLE)
    assert chatty.disconnecting
    # A closed connection leaves the driver's table.
    quiet_protocol.connectionLost(None)
    assert len(net.driver.connections) == 1


def test_a_notify_goes_back_on_the_connection_its_subscribe_came_on():
    net = Network()
    _, other = net.connect(40001)
    watcher_protocol, watcher = net.connect(40002)
    watcher_protocol.dataReceived(request(
        "SUBSCRIBE", 40002, extra="Event: presence\r\nExpires: 600\r\n"
        "Contact: <sip:bob@127.0.0.1:40002;transport=tcp>\r\n"))
    answer, notify = received(watcher)
    assert isinstance(answer, Response) and answer.status == 200
    assert isinstance(notify, Request) and notify.method == "NOTIFY"
    assert other.value() == b""
    assert not net.reactor.tcpClients  # no new connection was opened for it


def test_a_request_to_a_peer_with_an_open_connection_reuses_it():
    """A NOTIFY whose subscription lost its connection number (a restart) but whose
    watcher's address has a connection open goes on that one, none is opened."""
    net = Network()
    _, other = net.connect(40001)
    _, watcher = net.connect(40002)
    notify = Request("NOTIFY", "sip:bob@127.0.0.1:40002;transport=tcp")
    for name, value in (("From", "<sip:alice@example.com>;tag=a1"),
                        ("To", "<sip:bob@example.com>;tag=b1"), ("Call-ID", "n1"),
                        ("CSeq", "1 NOTIFY"), ("Max-Forwards", "70")):
        notify.headers.add(name, value)
    net.endpoint.send_request(notify, Peer("TCP", "127.0.0.1", 40002), net.reactor.seconds(),
                              "n1")
    net.driver.flush()
    [sent] = received(watcher)
    assert isinstance(sent, Request) and sent.method == "NOTIFY"
    assert other.value() == b"" and not net.reactor.tcpClients
