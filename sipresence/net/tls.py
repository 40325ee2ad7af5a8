"""SIP over TLS (RFC 3261 section 26, RFC 5630): the TCP protocol over a TLS wrapper.

The certificate and key are PEM files from the configuration.  Outgoing TLS
connections (NOTIFY to a watcher whose connection closed) verify the peer against
the system trust store and the host name, as RFC 5922 asks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from twisted.internet import defer, ssl
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.endpoints import HostnameEndpoint, connectProtocol, wrapClientTLS
from twisted.internet.interfaces import IReactorSSL

from ..sip.transport import Peer
from .driver import Driver
from .tcp import SipStreamFactory, SipStreamProtocol


def server_options(certificate: str, key: str) -> ssl.CertificateOptions:
    """TLS options from PEM files; raises OSError/ValueError with the file at fault."""
    cert_pem = Path(certificate).read_bytes()
    key_pem = Path(key).read_bytes()
    private = ssl.PrivateCertificate.loadPEM(key_pem + b"\n" + cert_pem)
    return private.options()


def listen_tls(reactor: IReactorSSL, driver: Driver, host: str, port: int,
               idle_timeout: float | None, certificate: str | None, key: str | None) -> Any:
    """Bind a TLS listener and let the driver open outgoing TLS connections."""
    if certificate is None or key is None:
        raise ValueError("a tls: listener needs tls.certificate and tls.key")
    options = server_options(certificate, key)
    listening = reactor.listenSSL(port, SipStreamFactory(driver, "TLS", idle_timeout),
                                  options, interface=host)
    address = cast(IPv4Address | IPv6Address, listening.getHost())
    driver.endpoint.add_listener("TLS", address.host, address.port)

    def connect(peer: Peer) -> defer.Deferred[SipStreamProtocol]:
        tls = ssl.optionsForClientTLS(peer.host)
        endpoint = wrapClientTLS(tls, HostnameEndpoint(reactor, peer.host, peer.port,
                                                       timeout=10))
        return connectProtocol(endpoint, SipStreamProtocol(driver, "TLS", idle_timeout))

    driver.connectors.setdefault("TLS", connect)
    return listening
