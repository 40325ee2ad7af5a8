"""SIP over WebSocket (RFC 7118), for browser softphones (JsSIP, SIP.js): autobahn's
WebSocket server on the Twisted reactor.

The handshake must offer the ``sip`` subprotocol (RFC 7118 section 4), and the answer
names it.  Each WebSocket message carries exactly one SIP message (section 5.1), text
or binary, so messages are parsed like datagrams: no stream framing, and a missing
Content-Length means the body runs to the end of the message.  Answers and NOTIFYs go
back on the connection the peer opened: a browser takes no connections, so once it
closes, a NOTIFY for it fails like an unreachable address (and the subscription is
retried, then given up).  ``wss:`` is the same over TLS.
"""

from __future__ import annotations

from typing import Any, cast

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IReactorSSL, IReactorTCP
from twisted.logger import Logger

from ..sip.transport import Peer
from .driver import Driver

log = Logger(namespace="sipresence.net.ws")

SUBPROTOCOL = "sip"


class SipWebSocketProtocol(WebSocketServerProtocol):
    """One browser's connection: one SIP message per WebSocket message."""

    driver: Driver
    transport_name: str
    sip_peer: Peer | None = None

    def onConnect(self, request: ConnectionRequest) -> str:  # noqa: N802
        if SUBPROTOCOL not in request.protocols:
            raise ConnectionDeny(ConnectionDeny.BAD_REQUEST,
                                 'the WebSocket subprotocol "sip" is required (RFC 7118)')
        return SUBPROTOCOL

    def onOpen(self) -> None:  # noqa: N802
        assert self.transport is not None
        self.number = self.driver.register_connection(self)
        remote = cast(IPv4Address | IPv6Address, self.transport.getPeer())
        local = cast(IPv4Address | IPv6Address, self.transport.getHost())
        self.sip_peer = Peer(self.transport_name, remote.host, remote.port, self.number,
                             (local.host, local.port))

    def onMessage(self, payload: bytes, isBinary: bool) -> None:  # noqa: N802, N803
        if self.sip_peer is not None:
            self.driver.datagram(payload, self.sip_peer)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:  # noqa: N802, N803
        number = getattr(self, "number", None)
        if number is not None:
            self.driver.unregister_connection(number)

    # -- what the driver asks of a connection (and Twisted's ``connected``) -----------
    def write(self, data: bytes) -> None:
        """Send one SIP message as one text message (SIP is UTF-8 text; a binary body
        would go in a binary message, which no browser stack sends)."""
        if self.is_open:
            try:
                self.sendMessage(data, isBinary=not _is_utf8(data))
            except Exception:  # the connection went away between check and send
                log.debug("WebSocket send failed")

    def close(self) -> None:
        self.sendClose()


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _factory(driver: Driver, transport_name: str) -> WebSocketServerFactory:
    # No URL: it would pin the Host header the clients must send (and port 0, "any
    # free port", is no URL at all); a SIP client reaches the agent under any name.
    factory = WebSocketServerFactory(None, protocols=[SUBPROTOCOL])
    factory.protocol = cast(type[WebSocketServerProtocol], type(
        "Protocol", (SipWebSocketProtocol,), {"driver": driver, "transport_name": transport_name}))
    factory.setProtocolOptions(autoPingInterval=30, autoPingTimeout=10)
    factory.noisy = False
    return factory


def listen_ws(reactor: IReactorTCP, driver: Driver, host: str, port: int) -> Any:
    """Bind a ws: listener (RFC 7118 over plain TCP)."""
    listening = reactor.listenTCP(port, _factory(driver, "WS"),
                                  interface=host)
    address = cast(IPv4Address | IPv6Address, listening.getHost())
    driver.endpoint.add_listener("WS", address.host, address.port)
    return listening


def listen_wss(reactor: IReactorSSL, driver: Driver, host: str, port: int,
               certificate: str | None, key: str | None) -> Any:
    """Bind a wss: listener (RFC 7118 over TLS), with the tls: certificate and key."""
    from .tls import server_options

    if certificate is None or key is None:
        raise ValueError("a wss: listener needs tls.certificate and tls.key")
    listening = reactor.listenSSL(port, _factory(driver, "WSS"),
                                  server_options(certificate, key), interface=host)
    address = cast(IPv4Address | IPv6Address, listening.getHost())
    driver.endpoint.add_listener("WSS", address.host, address.port)
    return listening
