"""SIP over UDP: one Twisted datagram protocol per bound address."""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet.interfaces import IReactorUDP
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from ..sip.transport import Peer
from .driver import Driver

log = Logger(namespace="sipresence.net.udp")


class SipDatagramProtocol(DatagramProtocol):
    """Feeds datagrams to the driver and sends its datagrams from the same socket."""

    noisy = False

    def __init__(self, driver: Driver, host: str) -> None:
        self.driver = driver
        self.family: int = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.local: tuple[str, int] | None = None
        self._socket: socket.socket | None = None

    def startProtocol(self) -> None:
        assert self.transport is not None
        self._socket = self.transport.getHandle()  # type: ignore[attr-defined]
        address = self.transport.getHost()
        self.local = (address.host, address.port)
        self.driver.udp.append(self)
        self.driver.endpoint.add_listener("UDP", address.host, address.port)

    def stopProtocol(self) -> None:
        self._socket = None
        if self in self.driver.udp:
            self.driver.udp.remove(self)

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self.driver.datagram(data, Peer("UDP", addr[0], addr[1], None, self.local))

    def send(self, data: bytes, host: str, port: int) -> bool:
        """Send one datagram; False when the kernel refuses it at once.

        Straight to the socket: the driver only hands over literal addresses of this
        socket's family, which is what Twisted's ``Port.write`` spends its time
        checking on every datagram.  A full send buffer (EAGAIN), an ICMP error from
        an earlier datagram (ECONNREFUSED) or an oversized message all end here; the
        transaction layer retransmits or gives up as for any lost datagram.
        """
        if self._socket is None:
            return False
        while True:
            try:
                self._socket.sendto(data, (host, port))
            except InterruptedError:
                continue
            except OSError as exc:
                log.debug("UDP send to {host}:{port} failed: {exc}", host=host, port=port,
                          exc=exc)
                return False
            return True


def listen_udp(reactor: IReactorUDP, driver: Driver, host: str, port: int,
               buffer_size: int = 1 << 20) -> Any:
    """Bind a UDP listener; returns the Twisted port (``getHost()`` tells the real port).

    The socket buffers are sized for about a third of a second of work: a fan-out's
    thousand 200s arriving at once fit (the kernel's default 208 KB does not), but no
    more, because a longer queue only delays every answer past its sender's timers
    under overload.  Linux doubles the value for its bookkeeping and caps it at
    ``net.core.rmem_max`` / ``wmem_max``.
    """
    listening = reactor.listenUDP(port, SipDatagramProtocol(driver, host), interface=host,
                                  maxPacketSize=65535)
    sock = listening.getHandle()  # type: ignore[attr-defined]  # udp.Port has it
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, buffer_size)
        except OSError as exc:
            log.warn("cannot size the UDP socket buffer: {exc}", exc=exc)
    return listening
