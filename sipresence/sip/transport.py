"""The transport layer's rules (RFC 3261 section 18, RFC 3581): who a message is
from and to, and where the answer to a request goes.

Kept apart from the transaction layer (``sip/endpoint.py``) because everything that
sends SIP needs them: the endpoint's server transactions, its malformed-request
answers, and the network adapters that name the peers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .headers import HeaderError, split_commas
from .message import Request

__all__ = ["DEFAULT_PORTS", "Peer", "Transmit", "answer_peer", "stamp_via"]

DEFAULT_PORTS = {"UDP": 5060, "TCP": 5060, "TLS": 5061, "WS": 80, "WSS": 443}
_RPORT_RE = re.compile(r";[ \t]*rport(?=[ \t]*(?:[;=]|\Z))(?:[ \t]*=[ \t]*[0-9]*)?", re.I)
_RECEIVED_RE = re.compile(r";[ \t]*received[ \t]*=[ \t]*[^;]*", re.I)


@dataclass(frozen=True, slots=True)
class Peer:
    """Where a message came from, or where one goes.

    ``host`` is an IP address without brackets (or, for outgoing requests, a name the
    network layer resolves).  ``connection`` names a stream connection that should be
    used while it is open; ``local`` is the listener address the message came in on,
    so that answers leave from the address the peer sent to.
    """

    transport: str
    host: str
    port: int
    connection: int | None = None
    local: tuple[str, int] | None = None

    @property
    def reliable(self) -> bool:
        return self.transport != "UDP"


@dataclass(frozen=True, slots=True)
class Transmit:
    """Bytes to send to a peer.  ``origin`` lets the network report a failure back."""

    data: bytes
    peer: Peer
    origin: object = None


def stamp_via(request: Request, peer: Peer) -> None:
    """Add received and fill rport in the top Via (RFC 3261 18.2.1, RFC 3581).

    A received the request brought is replaced, even when the sent-by is the
    source: it would tell the client a wrong address.  The header text and the
    cached parsed Via are updated together, so the Via is not parsed twice.
    Raises HeaderError when there is no top Via or it does not parse.
    """
    via = request.top_via
    wants_rport = "rport" in via.params
    if (not wants_rport and via.host.strip("[]") == peer.host
            and "received" not in via.params):
        return
    values = request.headers._fields["via"]
    elements = split_commas(values[0]) if "," in values[0] else [values[0]]
    top = _RECEIVED_RE.sub("", elements[0]) if "received" in via.params else elements[0]
    if wants_rport:
        top = _RPORT_RE.sub(f";rport={peer.port}", top, count=1)
        via.params["rport"] = str(peer.port)
    elements[0] = f"{top};received={peer.host}"
    via.params["received"] = peer.host
    values[0] = elements[0] if len(elements) == 1 else ", ".join(elements)
    request.forget("vias")


def answer_peer(request: Request, peer: Peer) -> Peer:
    """Where responses go (RFC 3261 18.2.2 with RFC 3581): always the source address.

    Streams answer on the connection the request came on.  Datagrams go to the
    source address (the received that :func:`stamp_via` wrote), at the source
    port when the Via asked for rport, else at the sent-by port.  Nothing written
    in the Via is ever an address to send to: a name would be looked up in DNS and
    a private address is not where a client behind NAT hears, so its answer would
    be lost; and ``maddr`` (RFC 3261 18.2.2's multicast rule) is ignored because a
    forged one would reflect answers at a third party.
    """
    try:
        via = request.top_via
    except HeaderError:
        return peer  # no Via or a malformed one: the source is all there is
    if peer.reliable:
        # The same connection; should it close, a new one to received:sent-by port.
        port = via.port or DEFAULT_PORTS.get(peer.transport, 5060)
        return Peer(peer.transport, peer.host, port, peer.connection, peer.local)
    port = peer.port if "rport" in via.params else via.port or DEFAULT_PORTS["UDP"]
    if port == peer.port:
        return peer
    return Peer("UDP", peer.host, port, None, peer.local)
