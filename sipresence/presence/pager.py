"""Pager-mode instant messages (RFC 3428): a MESSAGE for a user is forked to every
registered contact, as a proxy would, and its outcome told to whoever asked.

The agent answers the sender ``202 Accepted`` once the message is handed on (RFC
3428 section 7: an intermediary that cannot know the final outcome in time), or at
once with an error when there is nobody to give it to: ``404`` for an address that
names no one here, ``480`` for a user with no registered contact.  Each contact gets
its own MESSAGE, with the sender's address in From and the user's in To; the
delivery succeeds when any contact answers 2xx, and fails when every one has
answered otherwise (the best of their answers is kept: a 486 from the one phone
that is busy says more than a 408 from one that was switched off).  Finished
deliveries a door asked about (an *origin* given) are told to the pager's listeners
(events out: the XMPP bridge sends an error back to a chat user whose message reached
no device, as soon as the last device refused).

A copy goes where the device's REGISTER came from when that was a datagram (behind
a NAT the Contact names a private address no datagram reaches); over a stream, to
the Contact, on a new connection.

Sans-IO like the notifier: :meth:`Pager.take` hands the MESSAGEs to the endpoint,
:meth:`Pager.answered` takes each one's final answer.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..sip.dialog import uri_peer
from ..sip.endpoint import Outgoing
from ..sip.message import Request, Response
from ..sip.transport import Peer
from ..sip.uas import new_tag
from ..sip.uri import SipURI, parse_uri

__all__ = ["Attempt", "Delivery", "MessageGateway", "Pager", "flow"]

# Which failure says most, when every contact refused (a lower rank wins).
_RANK = {486: 0, 600: 0, 603: 1, 480: 2, 404: 3, 415: 4, 488: 4, 408: 5, 503: 6}


@dataclass(eq=False, slots=True)
class Delivery:
    """One message to one user, and where its copies stand."""

    id: str
    sender: str
    recipient: str
    content_type: str
    body: bytes
    # Whoever asked, given back with the outcome (the bridge's reply address).
    origin: object = None
    pending: int = 0
    status: int | None = None  # 2xx once delivered, else the most telling failure
    delivered: bool = False

    @property
    def finished(self) -> bool:
        return self.delivered or self.pending == 0


@dataclass(frozen=True, slots=True)
class Attempt:
    """The reference one copy's answer comes back with."""

    delivery: Delivery
    contact: str


class MessageGateway(Protocol):
    """Where MESSAGEs for the users of another network go (the XMPP bridge)."""

    def deliver(self, sender: str, recipient: str, text: str, now: float) -> int:
        """Hand *text* on from SIP *sender* to *recipient*; the SIP status to answer:
        202 when handed on, else the error (480 while the other network is out of
        reach, 403 for a sender it cannot speak for)."""
        ...


def flow(contact: str, source: str) -> tuple[str, Peer | None]:
    """A registered contact and where to reach it: the address its REGISTER came from
    (``UDP:host:port``, ``sip.uas.origin``) for a datagram device, else None (the
    Contact itself)."""
    transport, _, rest = source.partition(":")
    host, _, port = rest.rpartition(":")
    wanted = _transport_of(contact)
    if transport.upper() != "UDP" or not host or not port.isdigit() or wanted not in (
            None, "UDP"):
        return contact, None  # a stream, or a Contact that asks for one
    return contact, Peer("UDP", host.strip("[]"), int(port))


def _transport_of(contact: str) -> str | None:
    try:
        uri = parse_uri(contact)
    except ValueError:
        return None
    return uri.transport if isinstance(uri, SipURI) else None


@dataclass
class Pager:
    _outbox: list[Outgoing] = field(default_factory=list)
    # Told of every delivery a door asked about (origin given) once it has ended.
    listeners: list[Callable[[Delivery], None]] = field(default_factory=list)
    sent: int = 0
    failed: int = 0

    def send(self, sender: str, recipient: str, content_type: str, body: bytes,
             contacts: list[tuple[str, Peer | None]], *, origin: object = None,
             max_forwards: int = 70, display: str | None = None) -> Delivery:
        """Queue one MESSAGE per contact (its URI, and the flow to send it on or
        None: :func:`flow`).  Contacts that are no SIP URI are skipped (a registrar
        keeps what devices send); with none left the delivery fails at once."""
        delivery = Delivery(secrets.token_hex(8), sender, recipient, content_type, body,
                            origin)
        sender_name = f'"{display}" ' if display else ""
        for contact, peer in contacts:
            try:
                uri = parse_uri(contact)
            except ValueError:
                continue
            if not isinstance(uri, SipURI):
                continue
            request = Request("MESSAGE", contact)
            headers = request.headers
            headers.add("Max-Forwards", str(max_forwards))
            headers.add("From", f"{sender_name}<{sender}>;tag={new_tag()}")
            headers.add("To", f"<{recipient}>")
            headers.add("Call-ID", secrets.token_hex(12))
            headers.add("CSeq", "1 MESSAGE")
            headers.add("Content-Type", content_type)
            request.body = body
            self._outbox.append(Outgoing(request, peer or uri_peer(uri, None),
                                         Attempt(delivery, contact)))
            delivery.pending += 1
        if delivery.pending == 0:
            delivery.status = 480
            self._finish(delivery)
        return delivery

    def take(self) -> list[Outgoing]:
        out, self._outbox = self._outbox, []
        return out

    def answered(self, attempt: Attempt, response: Response, now: float) -> None:
        delivery = attempt.delivery
        if delivery.finished:
            return  # delivered by another copy already
        delivery.pending -= 1
        status = response.status
        if 200 <= status < 300:
            delivery.delivered = True
            delivery.status = status
        elif delivery.status is None or _RANK.get(status, 9) < _RANK.get(delivery.status, 9):
            delivery.status = status
        if delivery.finished:
            self._finish(delivery)

    def _finish(self, delivery: Delivery) -> None:
        if delivery.delivered:
            self.sent += 1
        else:
            self.failed += 1
        if delivery.origin is not None:
            for listener in self.listeners:
                listener(delivery)
