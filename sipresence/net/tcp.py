"""SIP over TCP (and, with a TLS wrapper, TLS): framing per connection, idle timeout.

A framing error closes only the connection it happened on, after a 400 where the
message could be answered; a connection with no traffic for ``idle_timeout`` seconds
is closed (peers reconnect, and RFC 5626 keep-alives count as traffic).
"""

from __future__ import annotations

from typing import Any, cast

from twisted.internet import defer
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.endpoints import HostnameEndpoint, connectProtocol
from twisted.internet.interfaces import IReactorTCP
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure

from ..sip.parser import ParseError, StreamFramer
from ..sip.transport import Peer
from .driver import Driver

log = Logger(namespace="sipresence.net.tcp")


class SipStreamProtocol(Protocol, TimeoutMixin):
    """One SIP stream connection, accepted or opened by the agent."""

    def __init__(self, driver: Driver, transport_name: str, idle_timeout: float | None) -> None:
        self.driver = driver
        self.transport_name = transport_name
        self.idle_timeout = idle_timeout
        self.framer = StreamFramer()
        self.number = 0
        self.sip_peer: Peer | None = None
        # The idle timeout on the driver's clock, not the global reactor's.
        self.callLater = driver.reactor.callLater  # type: ignore[assignment]

    def connectionMade(self) -> None:
        self.number = self.driver.register_connection(self)
        assert self.transport is not None
        remote = cast(IPv4Address | IPv6Address, self.transport.getPeer())
        local = cast(IPv4Address | IPv6Address, self.transport.getHost())
        self.sip_peer = Peer(self.transport_name, remote.host, remote.port, self.number,
                         (local.host, local.port))
        self.setTimeout(self.idle_timeout)

    def dataReceived(self, data: bytes) -> None:
        self.resetTimeout()
        assert self.sip_peer is not None
        try:
            items: list[object] = list(self.framer.feed(data))
        except ParseError as exc:
            log.info("closing {transport} connection from {host}:{port}: {reason}",
                     transport=self.transport_name, host=self.sip_peer.host,
                     port=self.sip_peer.port, reason=exc.reason)
            # What was framed before the error in this segment is answered first.
            self.driver.stream_items([*exc.framed, exc], self.sip_peer)
            self.close()
            return
        self.driver.stream_items(items, self.sip_peer)

    def timeoutConnection(self) -> None:
        log.debug("idle {transport} connection closed", transport=self.transport_name)
        self.close()

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.setTimeout(None)
        self.driver.unregister_connection(self.number)


class SipStreamFactory(ServerFactory):
    noisy = False

    def __init__(self, driver: Driver, transport_name: str, idle_timeout: float | None) -> None:
        self.driver = driver
        self.transport_name = transport_name
        self.idle_timeout = idle_timeout

    def buildProtocol(self, addr: object) -> SipStreamProtocol:
        return SipStreamProtocol(self.driver, self.transport_name, self.idle_timeout)


def listen_tcp(reactor: IReactorTCP, driver: Driver, host: str, port: int,
               idle_timeout: float | None) -> Any:
    """Bind a TCP listener and let the driver open outgoing TCP connections."""
    listening = reactor.listenTCP(port, SipStreamFactory(driver, "TCP", idle_timeout),
                                  interface=host)
    address = cast(IPv4Address | IPv6Address, listening.getHost())
    driver.endpoint.add_listener("TCP", address.host, address.port)

    def connect(peer: Peer) -> defer.Deferred[SipStreamProtocol]:
        endpoint = HostnameEndpoint(reactor, peer.host, peer.port, timeout=10)
        return connectProtocol(endpoint, SipStreamProtocol(driver, "TCP", idle_timeout))

    driver.connectors.setdefault("TCP", connect)
    return listening
