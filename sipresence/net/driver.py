"""Runs the sans-IO endpoint and application on the Twisted reactor.

The driver is the only place where SIP meets sockets and the clock: listeners hand
it bytes, it passes them with ``reactor.seconds()`` to the endpoint, sends what comes
out, and keeps one ``callLater`` armed at the earliest deadline of the endpoint and
the application.  Outgoing stream messages reuse the connection a peer came on and
otherwise open one (RFC 3261 18.2.2: a response whose connection is gone goes to
the received address on a new connection).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..sip.endpoint import Endpoint
from ..sip.transport import Peer, Transmit

if TYPE_CHECKING:
    from ..store.commit import GroupCommit

log = Logger(namespace="sipresence.net")
T = TypeVar("T")


@lru_cache(maxsize=4096)
def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class Connection(Protocol):
    """A stream connection the driver can send on (TCP, TLS, WebSocket): Twisted's
    ``connected`` flag, and the peer as the SIP core names it."""

    connected: int
    sip_peer: Peer | None

    def write(self, data: bytes) -> None: ...


class DatagramListener(Protocol):
    """A bound datagram socket the driver can send from (``net/udp.py``): the
    address it is bound to and its family, so that an answer leaves from the address
    its request came to."""

    local: tuple[str, int] | None
    family: int

    def send(self, data: bytes, host: str, port: int) -> bool: ...


class Timed(Protocol):
    """Something with sans-IO deadlines: the endpoint, the presence agent."""

    def get_timer(self) -> float | None: ...

    def handle_timer(self, now: float) -> None: ...


class Driver:
    """Glue between Twisted transports and one :class:`Endpoint`."""

    def __init__(self, reactor: IReactorTime, endpoint: Endpoint, *timed: Timed) -> None:
        self.reactor = reactor
        self.endpoint = endpoint
        self._timed: tuple[Timed, ...] = (endpoint, *timed)
        self._call: IDelayedCall | None = None
        self._deadline: float | None = None
        self.udp: list[DatagramListener] = []
        self.connections: dict[int, Connection] = {}
        # Outgoing connections per transport name ("TCP", "TLS"), set by the listeners.
        # (Deferreds are invariant: each transport's connector yields its own protocol.)
        self.connectors: dict[str, Callable[[Peer], defer.Deferred[Any]]] = {}
        self._connecting: dict[tuple[str, str, int], list[defer.Deferred[Connection]]] = {}
        self._next_connection = 1
        self.commit: GroupCommit | None = None
        self._stopped = False
        # Set when the drain at shutdown begins: input from then on is left unread
        # (its senders retransmit to the next process), counted in ``ignored``.
        self.closing = False
        self.ignored = 0

    def hold_for(self, commit: GroupCommit) -> None:
        """Send nothing before the changes made ahead of it are committed (group
        commit, store/commit.py); its retry timer joins the others."""
        self.commit = commit
        self._timed = (*self._timed, commit)

    def committed(self, batch: int, error: BaseException | None) -> None:
        """The store reports a batch (on the reactor thread): send what it held.
        Reports that come in while stopping, after the listeners closed, are moot."""
        if self.commit is None or self._stopped:
            return
        for transmit in self.commit.committed(batch, error, self.now()):
            self._send(transmit)
        self.flush()

    def durable(self) -> defer.Deferred[None]:
        """Fires once every change made so far is committed; fails with the store's
        error when it could not be."""
        result: defer.Deferred[None] = defer.Deferred()

        def done(error: BaseException | None) -> None:
            if error is None:
                result.callback(None)
            else:
                result.errback(Failure(error))

        if self.commit is None:
            done(None)
        else:
            self.commit.durable(done)
        return result

    def drain(self, timeout: float) -> defer.Deferred[int]:
        """At shutdown, before the listeners close: stops taking input, then fires
        once nothing is held behind a commit and every answer given so far is sent,
        or after *timeout*, with how many answers were still held then.

        Without it the answers held behind the last batches were committed at the
        store's close but never sent: their clients retransmitted into the next
        process and got 412 (a PUBLISH refresh whose entity-tag had moved on) or 500
        (a REGISTER whose CSeq was no longer new), found by the soak's restart.
        Input is closed first because a drain that goes on serving never ends under
        steady load (every round commits new changes and holds their answers): on
        a slow machine it ran into its timeout, and everything changed during it
        was committed at the close and never answered.  A request left unread
        changed nothing; its sender retransmits it (RFC 3261 17.1.2.2) to the
        process that starts next.  A store that cannot write sent its answers
        (withdrawn) already.
        """
        self.closing = True
        result: defer.Deferred[int] = defer.Deferred()

        def end(held: int) -> None:
            if not result.called:
                if timer.active():
                    timer.cancel()
                result.callback(held)

        def check(_: object = None) -> None:
            commit = self.commit
            if (commit is None or commit.failing is not None
                    or not (commit.held or len(commit.journal))):
                end(0)
            elif not result.called:
                # The answers released by a commit are sent after its waiters are
                # called: look again on the next turn.
                self.durable().addBoth(lambda _: self.reactor.callLater(0, check))

        # A store that never reports must not hold the stop forever.
        timer = self.reactor.callLater(
            timeout, lambda: end(self.commit.held if self.commit is not None else 0))
        check()
        return result

    def now(self) -> float:
        return self.reactor.seconds()

    # -- input -----------------------------------------------------------------------
    def datagram(self, data: bytes, peer: Peer) -> None:
        if self.closing:
            self.ignored += 1
            return
        try:
            self.endpoint.receive_datagram(data, peer, self.now())
        except Exception:
            # The core answers malformed input itself; reaching here is a bug in it.
            # Drop the message and keep serving everyone else.
            log.failure("dropped a datagram from {host}:{port}", host=peer.host, port=peer.port)
        self.flush()

    def stream_items(self, items: list[object], peer: Peer) -> None:
        if self.closing:
            self.ignored += len(items)
            return
        now = self.now()
        for item in items:
            try:
                self.endpoint.receive_stream(item, peer, now)
            except Exception:
                log.failure("dropped a message from {host}:{port}", host=peer.host,
                            port=peer.port)
        self.flush()

    def register_connection(self, protocol: Connection) -> int:
        number = self._next_connection
        self._next_connection += 1
        self.connections[number] = protocol
        return number

    def unregister_connection(self, number: int) -> None:
        self.connections.pop(number, None)

    def call(self, door: Callable[..., T], *args: Any) -> T:
        """Call one of the application's doors from outside SIP (the HTTP API, a
        bridge) with the time, ``door(*args, now)``, then send what it caused: the
        caller never has to remember to."""
        try:
            return door(*args, self.now())
        finally:
            self.flush()

    # -- output ----------------------------------------------------------------------
    def flush(self) -> None:
        """Send everything queued (once durable) and re-arm the timer; call after
        every input.  The application's queued requests are taken first."""
        self.endpoint.pump(self.now())
        out = self.endpoint.transmissions()
        if self.commit is not None:
            out = self.commit.gate(out, self.now())
        for transmit in out:
            self._send(transmit)
        self._arm()

    def _send(self, transmit: Transmit) -> None:
        peer = transmit.peer
        if not _is_ip(peer.host):
            # A name from a Contact or Route: resolve, then send to the address.
            self.reactor.resolve(peer.host).addCallbacks(  # type: ignore[attr-defined]
                lambda ip: self._send(replace(transmit, peer=replace(peer, host=ip))),
                lambda failure: self._failed(transmit, failure))
            return
        if peer.transport == "UDP":
            listener = self._udp_listener(peer)
            if listener is None or not listener.send(transmit.data, peer.host, peer.port):
                self._failed(transmit)
            return
        connection = self.connections.get(peer.connection) if peer.connection else None
        if connection is not None and connection.connected:
            connection.write(transmit.data)
            return
        self._connection_to(peer).addCallbacks(
            lambda proto: proto.write(transmit.data),
            lambda failure: self._failed(transmit, failure))

    def _connection_to(self, peer: Peer) -> defer.Deferred[Connection]:
        """An open connection to the peer's address: an existing one, or a new one.

        Messages sent while a connection is being opened share that attempt.
        """
        address = (peer.transport, peer.host, peer.port)
        for protocol in self.connections.values():
            p = protocol.sip_peer
            if p is not None and (p.transport, p.host, p.port) == address and protocol.connected:
                return defer.succeed(protocol)
        result: defer.Deferred[Connection] = defer.Deferred()
        waiters = self._connecting.get(address)
        if waiters is not None:
            waiters.append(result)
            return result
        connect = self.connectors.get(peer.transport)
        if connect is None:
            return defer.fail(RuntimeError(f"no {peer.transport} transport"))
        waiters = self._connecting[address] = [result]

        def finish(outcome: Connection | Failure) -> None:
            del self._connecting[address]
            for waiter in waiters:
                if isinstance(outcome, Failure):
                    waiter.errback(outcome)
                else:
                    waiter.callback(outcome)

        connect(peer).addBoth(finish)
        return result

    def _failed(self, transmit: Transmit, failure: object = None) -> None:
        log.debug("could not send to {host}:{port}: {why}", host=transmit.peer.host,
                  port=transmit.peer.port, why=failure)
        self.endpoint.transport_failed(transmit, self.now())
        self.flush()

    def _udp_listener(self, peer: Peer) -> DatagramListener | None:
        """The socket a datagram leaves from: the one it came in on, else one of its family."""
        family = socket.AF_INET6 if ":" in peer.host else socket.AF_INET
        fallback = None
        for listener in self.udp:
            if peer.local is not None and listener.local == peer.local:
                return listener
            if fallback is None and listener.family == family:
                fallback = listener
        return fallback

    # -- time ------------------------------------------------------------------------
    def _arm(self) -> None:
        deadline = None
        for timed in self._timed:  # after every datagram: no intermediate lists
            due = timed.get_timer()
            if due is not None and (deadline is None or due < deadline):
                deadline = due
        if deadline == self._deadline and (self._call is None or self._call.active()):
            return
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self._deadline = deadline
        if deadline is not None:
            self._call = self.reactor.callLater(max(0.0, deadline - self.now()), self._fire)

    def _fire(self) -> None:
        self._call = None
        self._deadline = None
        now = self.now()
        for timed in self._timed:
            timed.handle_timer(now)
        self.flush()

    # -- overload ----------------------------------------------------------------------
    def watch_load(self, interval: float = 0.05) -> None:
        """Tell the endpoint's admission control (``sip/admission.py``) every
        *interval* seconds how late the reactor ran: input waited that long."""
        self._tick_call = self.reactor.callLater(interval, self._tick, interval,
                                                 self.now() + interval)

    def _tick(self, interval: float, expected: float) -> None:
        now = self.now()
        admission = self.endpoint.admission
        change = admission.tick(now - expected, now)
        if change == "overloaded":
            log.warn("overloaded: {n} ticks in a row {lag:.0f} ms late or more, answering "
                     "part of the new requests 503", n=admission.late_ticks,
                     lag=admission.max_lag * 1000)
        elif change == "recovered":
            log.info("load back to normal ({shed} requests shed so far)",
                     shed=self.endpoint.stats.shed)
        self._tick_call = self.reactor.callLater(interval, self._tick, interval, now + interval)

    def stop(self) -> None:
        self._stopped = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        tick = getattr(self, "_tick_call", None)
        if tick is not None and tick.active():
            tick.cancel()
