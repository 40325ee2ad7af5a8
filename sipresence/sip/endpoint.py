"""The sans-IO SIP endpoint: bytes and time in, bytes to send and the next deadline out.

The endpoint owns the transaction layer.  The network adapter (``sipresence.net``)
feeds it datagrams and framed stream messages with :meth:`Endpoint.receive_datagram`
and :meth:`Endpoint.receive_stream`, sends what :meth:`Endpoint.transmissions`
returns, and calls :meth:`Endpoint.handle_timer` at :meth:`Endpoint.get_timer`.  The
transaction user (the presence agent) implements :class:`Application`: it gets each new
request once, retransmissions never reach it.

Events out, not calls back in (the model of h11 and aioquic): the application never
holds the endpoint.  The requests it wants sent (NOTIFY) wait in its own queue; after
every input, and whenever the network layer asks (:meth:`Endpoint.pump`, after a call
into the application from elsewhere: the HTTP API, a bridge), the endpoint takes them
with :meth:`Application.outgoing` and starts a client transaction for each; the final
answer of each comes back through :meth:`Application.handle_response` with the
reference the request was queued with.

Malformed input is answered, never raised: a request that fails the parser or the
UAS checks gets its 4xx/5xx here, before the application sees it; a malformed
response is dropped (RFC 4475); an exception in the application becomes a 500.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import secrets
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from .admission import Admission
from .headers import HeaderError
from .message import Message, Request, Response
from .parser import KEEPALIVE, ParseError, parse_datagram, validate
from .transaction import (
    Deliver,
    Effect,
    Event,
    Failed,
    InviteServer,
    NonInviteClient,
    NonInviteServer,
    Send,
    State,
    Timeout,
    TimerConfig,
    Transaction,
)
from .transport import Peer, Transmit, answer_peer, stamp_via
from .uas import check_request, make_response
from .uri import format_host

__all__ = ["Application", "Endpoint", "EndpointStats"]

log = logging.getLogger("sipresence.sip")

MAGIC_COOKIE = "z9hG4bK"
DEFAULT_TIMERS = TimerConfig()


class Application(Protocol):
    """The transaction user, as the endpoint sees it."""

    @property
    def allowed_methods(self) -> tuple[str, ...]: ...

    @property
    def supported(self) -> tuple[str, ...]: ...

    def handle_request(self, request: Request, peer: Peer, now: float) -> Response | None:
        """Answer a new request (None only for ACK).  Raise HeaderError for a 400."""
        ...

    def outgoing(self, now: float) -> list[Outgoing]:
        """Take the requests the application wants sent now."""
        ...

    def handle_response(self, ref: object, response: Response, now: float) -> None:
        """The final answer to the request queued with *ref*: a real one, or a 408
        made when timer F fired, or a 503 when the transport failed (RFC 3261
        8.1.3.1).  Exactly once per request."""
        ...


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A request the application wants sent in a new client transaction, to *peer*;
    its answer comes back with *ref*."""

    request: Request
    peer: Peer
    ref: object


@dataclass
class EndpointStats:
    """Counters the metrics endpoint exports; plain numbers, no Prometheus here."""

    requests: Counter[str] = field(default_factory=Counter)
    responses_sent: Counter[int] = field(default_factory=Counter)
    responses_received: Counter[int] = field(default_factory=Counter)
    malformed: Counter[str] = field(default_factory=Counter)
    retransmissions_absorbed: int = 0
    shed: int = 0
    timeouts: int = 0
    transport_errors: int = 0


# Transaction states in which the request may still be needed (CANCEL's 487, a
# client's 408 or 503).
_UNANSWERED = frozenset({State.TRYING, State.PROCEEDING})


class _Entry:
    """A live transaction with what the endpoint needs around it.

    The parsed request is let go once the transaction has its final response: a
    server transaction then lives on for 32 s (timer J) only to absorb
    retransmissions, and thousands of parsed messages kept that long are what the
    garbage collector's young-generation passes would otherwise walk (pauses of
    10 ms and more at 1,000 SUBSCRIBE/s).
    """

    __slots__ = ("tx", "peer", "scheduled", "merge_key", "ref", "awaited", "request")

    def __init__(self, tx: Transaction, peer: Peer, request: Request) -> None:
        self.tx = tx
        self.peer = peer
        self.request: Request | None = request
        self.scheduled: float | None = None
        self.merge_key: tuple[object, ...] | None = None
        # A request the application sent: its reference, and whether its final
        # answer is still owed to the application.
        self.ref: object = None
        self.awaited = False


class Endpoint:
    """Transaction layer and UAS core for one application."""

    def __init__(
        self,
        app: Application,
        *,
        timers: TimerConfig = DEFAULT_TIMERS,
        schemes: Iterable[str] = ("sip", "sips", "pres"),
        stateless: Iterable[str] = ("OPTIONS",),
        admission: Admission | None = None,
    ) -> None:
        self.app = app
        # Methods answered as a stateless UAS (RFC 3261 8.2.7): no transaction is kept;
        # a retransmission is answered again, identically thanks to stable To tags.
        self.stateless = frozenset(stateless)
        self.timers = timers
        self.schemes = frozenset(schemes)
        self.stats = EndpointStats()
        # How much new work is taken on; the network layer steers it.
        self.admission = admission or Admission()
        self.listeners: dict[str, tuple[str, int]] = {}
        self._server: dict[tuple[object, ...], _Entry] = {}
        self._merge: dict[tuple[object, ...], object] = {}
        self._client: dict[tuple[str, str], _Entry] = {}
        self._heap: list[tuple[float, int, _Entry]] = []
        self._seq = itertools.count()
        self._out: list[Transmit] = []

    # -- the network side ------------------------------------------------------------
    def add_listener(self, transport: str, host: str, port: int) -> None:
        """Record a bound address; requests the endpoint sends put it in their Via."""
        self.listeners.setdefault(transport.upper(), (host, port))

    def transaction_count(self) -> int:
        return len(self._server) + len(self._client)

    def transmissions(self) -> list[Transmit]:
        """Take the messages queued for sending."""
        out, self._out = self._out, []
        return out

    def get_timer(self) -> float | None:
        """The earliest deadline at which :meth:`handle_timer` must be called."""
        return self._heap[0][0] if self._heap else None

    def receive_datagram(self, data: bytes, peer: Peer, now: float) -> None:
        try:
            message = parse_datagram(data)
        except ParseError as exc:
            self._malformed(exc, peer, len(data))
            return
        if message is not None:
            self._receive(message, peer, now, len(data))

    def receive_stream(self, item: object, peer: Peer, now: float) -> None:
        """Take one item from a :class:`~sipresence.sip.parser.StreamFramer`."""
        if item is KEEPALIVE:
            self._out.append(Transmit(b"\r\n", peer))  # RFC 5626 pong
        elif isinstance(item, ParseError):
            self._malformed(item, peer, 0)
        elif isinstance(item, Message):
            self._receive(item, peer, now)

    def handle_timer(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, entry = heapq.heappop(heap)
            entry.scheduled = None
            self._apply(entry, entry.tx.handle_timers(now), now)
        self.pump(now)  # a request that timed out may be followed by another

    def transport_failed(self, transmit: Transmit, now: float) -> None:
        """The network could not deliver *transmit* (RFC 3261 17.1.4, 17.2.4)."""
        self.stats.transport_errors += 1
        entry = transmit.origin
        if isinstance(entry, _Entry) and not entry.tx.terminated:
            self._apply(entry, entry.tx.handle(Event.TRANSPORT_ERROR, now), now)
            self.pump(now)

    # -- the application side --------------------------------------------------------
    def pump(self, now: float) -> None:
        """Start a client transaction for every request the application queued.

        Called after every input here; the network layer calls it after calling the
        application from elsewhere (the HTTP API, a bridge), before it sends."""
        for outgoing in self.app.outgoing(now):
            self.send_request(outgoing.request, outgoing.peer, now, outgoing.ref)

    def send_request(self, request: Request, peer: Peer, now: float, ref: object) -> None:
        """Send a non-INVITE request in a new client transaction.

        A Via with a fresh branch is put on top.  The application's
        :meth:`~Application.handle_response` gets the final response with *ref*,
        exactly once (see there).
        """
        branch = MAGIC_COOKIE + secrets.token_hex(10)
        host, port = self.listeners.get(peer.transport) or self.listeners.get("UDP") or (
            "127.0.0.1", 5060)
        request.headers.prepend(
            "Via", f"SIP/2.0/{peer.transport} {format_host(host)}:{port};branch={branch};rport")
        request.forget("top-via")
        key = (branch, request.method)
        tx = NonInviteClient(key, peer.reliable, self.timers)
        entry = _Entry(tx, peer, request)
        entry.ref = ref
        entry.awaited = True
        self._client[key] = entry
        self._apply(entry, tx.start(request.to_bytes(), now), now)

    def withdraw(self, transmit: Transmit, methods: frozenset[str], status: int,
                 reason: str, headers: Iterable[tuple[str, str]] = ()) -> Transmit:
        """Replace a held-back 2xx to one of *methods* by an error answer.

        The network layer holds answers back until the state they acknowledge is
        durable (group commit); when the store then fails, the 2xx must not go out.
        The replacement is built from the 2xx itself (same Via, From, To with its
        tag, Call-ID and CSeq, so the client matches it) and becomes the answer the
        transaction resends to retransmissions.  Anything else is returned as it is.
        """
        entry = transmit.origin
        if (not isinstance(entry, _Entry) or isinstance(entry.tx, NonInviteClient)
                or entry.tx.key[-1] not in methods  # type: ignore[index]
                or not transmit.data.startswith(b"SIP/2.0 2")):
            return transmit
        answered = parse_datagram(transmit.data)
        assert isinstance(answered, Response)
        data = make_response(answered, status, reason, headers=headers).to_bytes()
        self.stats.responses_sent[answered.status] -= 1
        self._count_response(status)
        if entry.tx.last == transmit.data:
            entry.tx.last = data
        return Transmit(data, transmit.peer, entry)

    def respond(self, request: Request, response: Response, now: float) -> None:
        """Send a (further) response to a request whose transaction is still alive."""
        entry = self._server.get(self._server_key(request, request.method))
        if entry is None:
            raise KeyError("no server transaction for this request")
        self._send_response(entry, response, now)

    # -- inside ----------------------------------------------------------------------
    def _malformed(self, exc: ParseError, peer: Peer, size: int) -> None:
        """Answer a request that failed the parser or validation; drop anything else.

        A response is dropped (RFC 4475), and so is an ACK, which is never answered.
        A request is answered even without a usable Via, since RFC 3261 8.2 asks for
        a 400 naming the missing header: the answer then goes back to where it came
        from (a datagram's source address, a stream's connection).  A request
        with no Via at all is answered over UDP only when the answer is no larger
        than the request (*size* bytes).
        A top Via that parses is stamped first (RFC 3261 18.2.1: received is added
        before anything else is done with a request, whatever the answer), so the 400
        or 505 tells a client behind NAT where it was heard from, as a 200 would.
        No transaction is created and the application never sees the request.
        """
        self.stats.malformed[exc.reason] += 1
        message = exc.message
        if not isinstance(message, Request) or not message.method or message.method == "ACK":
            log.debug("dropped malformed message from %s:%s: %s", peer.host, peer.port, exc.reason)
            return
        try:
            stamp_via(message, peer)
        except HeaderError:
            pass  # no Via, or not one to stamp: the answer goes to the source as it is
        response = make_response(message, exc.status, exc.reason)
        data = response.to_bytes()
        if (not peer.reliable and not message.headers.get("via")
                and len(data) > size):
            # Without a Via the answer goes to the datagram's source address, which
            # anyone can forge: never send more than came, or junk sent in a victim's
            # name would be reflected at it, larger.
            log.debug("not answering %s from %s:%s: no Via", exc.reason, peer.host, peer.port)
            return
        log.debug("answering %s %s to %s:%s", exc.status, exc.reason, peer.host, peer.port)
        self._count_response(response.status)
        self._out.append(Transmit(data, answer_peer(message, peer)))

    def _receive(self, message: Message, peer: Peer, now: float, size: int = 0) -> None:
        if (self.admission.overloaded and isinstance(message, Request)
                and self._shed_early(message, peer, now)):
            return
        try:
            validate(message)
        except ParseError as exc:
            self._malformed(exc, peer, size)
            return
        if isinstance(message, Response):
            self._receive_response(message, now)
        else:
            assert isinstance(message, Request)
            self._receive_request(message, peer, now)
        # What the application queued meanwhile follows the answer it gave (the
        # NOTIFY after the 200 to a SUBSCRIBE; the change that waited for a NOTIFY's
        # answer).
        self.pump(now)

    def _receive_response(self, response: Response, now: float) -> None:
        self.stats.responses_received[response.status] += 1
        branch = response.top_via.branch or ""
        entry = self._client.get((branch, response.cseq.method))
        if entry is None:
            log.debug("stray %s response dropped", response.status)
            return
        event = Event.PROVISIONAL_IN if response.status < 200 else Event.FINAL_IN
        self._apply(entry, entry.tx.handle(event, now, response=response), now)

    def _receive_request(self, request: Request, peer: Peer, now: float) -> None:
        stamp_via(request, peer)
        method = request.method
        self.stats.requests[method] += 1
        if method == "ACK":
            entry = self._server.get(self._server_key(request, "INVITE"))
            if entry is not None:
                self._apply(entry, entry.tx.handle(Event.ACK, now), now)
            return
        if method in self.stateless:
            response = self._first_response(None, request, peer, now)
            if response is not None:
                self._count_response(response.status)
                self._out.append(Transmit(response.to_bytes(), answer_peer(request, peer)))
            return
        key = self._server_key(request, method)
        entry = self._server.get(key)
        if entry is not None:
            self.stats.retransmissions_absorbed += 1
            self._apply(entry, entry.tx.handle(Event.REQUEST, now), now)
            return
        entry = self._open_server(request, key, peer)
        response = self._first_response(entry, request, peer, now)
        if response is not None:
            self._send_response(entry, response, now)
        elif method == "INVITE" and entry.tx.last is None:
            self._send_response(entry, make_response(request, 100), now)

    def _shed_early(self, request: Request, peer: Peer, now: float) -> bool:
        """While overloaded, answer the new work not admitted (``sip/admission.py``)
        503 before spending time on it.

        New work is an out-of-dialog request that is not a retransmission; in-dialog
        requests (subscription refreshes), ACK, CANCEL and retransmissions of
        requests already answered are still served, since shedding those would lose
        state or waste work already done.  Requests answered statelessly (OPTIONS)
        are not shed either: a 503 would cost as much as their answer.  Only the
        headers this decision needs are parsed: full validation is what overload
        cannot afford, and a malformed request is answered 503 as well as 400 would.

        The 503 is sent by a server transaction like any final answer, so that the
        request's retransmissions get the same 503 and not, once the load fell, a 200
        for a request its client already took as refused (a publication or
        subscription it would make again, doubled).
        """
        method = request.method
        if method in ("ACK", "CANCEL") or method in self.stateless:
            return False
        try:
            if request.to.tag is not None:
                return False
            key = self._server_key(request, method)
        except HeaderError:
            return False  # let validation answer it
        if key in self._server:
            return False
        if self.admission.admits():
            return False
        stamp_via(request, peer)
        self.stats.requests[method] += 1
        self.stats.shed += 1
        response = make_response(request, 503, headers=[
            ("Retry-After", str(self.admission.retry_after))])
        self._send_response(self._open_server(request, key, peer), response, now)
        return True

    def _open_server(self, request: Request, key: tuple[object, ...], peer: Peer) -> _Entry:
        """A new server transaction for *request*, in the table under *key*."""
        tx_class = InviteServer if request.method == "INVITE" else NonInviteServer
        entry = _Entry(tx_class(key, peer.reliable, self.timers),
                       answer_peer(request, peer), request)
        self._server[key] = entry
        return entry

    def _first_response(
        self, entry: _Entry | None, request: Request, peer: Peer, now: float
    ) -> Response | None:
        """Run the UAS checks, then the application; turn its failures into answers."""
        app = self.app
        response = check_request(request, allowed=app.allowed_methods,
                                 supported=app.supported, schemes=self.schemes)
        if response is not None:
            return response
        if request.method == "CANCEL":
            return self._cancel(request, now)
        if entry is not None and request.to.tag is None:
            # Merged requests (8.2.2.2): same From tag, Call-ID and CSeq, another branch.
            merge_key = (request.from_.tag, request.call_id, request.cseq.number, request.method)
            other = self._merge.get(merge_key)
            if other is not None and other != entry.tx.key:
                return make_response(request, 482)
            self._merge[merge_key] = entry.tx.key
            entry.merge_key = merge_key
        try:
            return app.handle_request(request, peer, now)
        except HeaderError as exc:
            return make_response(request, 400, str(exc))
        except Exception:
            log.exception("application failed on %s", request.method)
            return make_response(request, 500)

    def _cancel(self, request: Request, now: float) -> Response:
        """RFC 3261 9.2: 200 to a CANCEL that matches an INVITE, 487 to that INVITE."""
        invite = self._server.get(self._server_key(request, "INVITE"))
        if invite is None:
            return make_response(request, 481)
        if invite.tx.state is State.PROCEEDING and invite.request is not None:
            self._send_response(invite, make_response(invite.request, 487), now)
        return make_response(request, 200)

    def _send_response(self, entry: _Entry, response: Response, now: float) -> None:
        status = response.status
        event = (Event.PROVISIONAL_OUT if status < 200 else
                 Event.SUCCESS_OUT if status < 300 else Event.FINAL_OUT)
        self._count_response(status)
        self._apply(entry, entry.tx.handle(event, now, response.to_bytes()), now)

    def _count_response(self, status: int) -> None:
        self.stats.responses_sent[status] += 1

    def _apply(self, entry: _Entry, effects: list[Effect], now: float) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                self._out.append(Transmit(effect.data, entry.peer, entry))
            elif isinstance(effect, Deliver):
                self._finish_client(entry, effect.response, now)  # type: ignore[arg-type]
            elif isinstance(effect, Timeout):
                self.stats.timeouts += 1
                self._fail_client(entry, 408, now)
            elif isinstance(effect, Failed):
                self._fail_client(entry, 503, now)
        tx = entry.tx
        if tx.terminated:
            self._forget(entry)
            return
        if tx.state not in _UNANSWERED:
            entry.request = None
        deadline = tx.next_deadline()
        if deadline is not None and (entry.scheduled is None or deadline < entry.scheduled):
            entry.scheduled = deadline
            heapq.heappush(self._heap, (deadline, next(self._seq), entry))

    def _fail_client(self, entry: _Entry, status: int, now: float) -> None:
        """A client transaction that got no answer: its requester gets *status*."""
        if entry.awaited and entry.request is not None:
            self._finish_client(entry, make_response(entry.request, status), now)

    def _finish_client(self, entry: _Entry, response: Response, now: float) -> None:
        if entry.awaited:
            entry.awaited = False
            self.app.handle_response(entry.ref, response, now)

    def _forget(self, entry: _Entry) -> None:
        key = entry.tx.key
        if isinstance(entry.tx, NonInviteClient):
            self._client.pop(key, None)  # type: ignore[call-overload]
        else:
            self._server.pop(key, None)  # type: ignore[call-overload]
            if entry.merge_key is not None and self._merge.get(entry.merge_key) == key:
                del self._merge[entry.merge_key]

    @staticmethod
    def _server_key(request: Request, method: str) -> tuple[object, ...]:
        """RFC 3261 17.2.3 matching; RFC 2543 rules when the branch lacks the cookie."""
        via = request.top_via
        branch = via.branch
        if branch is not None and branch.startswith(MAGIC_COOKIE) and len(branch) > 7:
            return (branch, via.host, via.port, method)
        return ("2543", request.uri, request.from_.tag, request.call_id,
                request.cseq.number, via.host, via.port, method)
