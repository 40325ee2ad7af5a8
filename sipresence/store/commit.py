"""Group commit: no answer leaves before the state it acknowledges is durable.

The core changes its state and answers at once; what it changed waits in the
:class:`~sipresence.presence.journal.Journal`.  :class:`GroupCommit` stands between
the core and the network: everything the core sends after a change (the 200 to a
PUBLISH, the NOTIFYs it causes, the next retransmission of that 200) is held until
the batch holding the change is committed, and everything sent after it waits
behind it, so nothing overtakes a commit.  One batch is written at a time; what
changes meanwhile gathers in the journal (one row per object however often it
changed) and becomes the next batch the moment the previous commit ends.  Under
load batches grow, and answers wait about one commit.

When a batch fails, the 2xx answers it held are replaced by 500 (the client tries
again; nothing it was told is stored is missing), and until a write succeeds again
nothing is held any more: the agent refuses requests that would change state with
503 and Retry-After (:attr:`GroupCommit.retry_after`), NOTIFYs and reads go on, and
the store is tried again after a back-off with everything it still owes.

Sans-IO: the store's submit function and the time are given; the network layer
calls :meth:`gate` with what the core wants to send, :meth:`committed` when the
store reports a batch, and sends what they return.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable

from ..presence.journal import Journal
from ..sip.transport import Transmit
from .base import Change, RowsRefused

__all__ = ["GroupCommit"]

log = logging.getLogger("sipresence.store")

Submit = Callable[[Iterable[Change]], int]
Withdraw = Callable[[Transmit], Transmit]
Waiter = Callable[[BaseException | None], None]


class GroupCommit:
    """Holds transmissions behind the commit of the changes made before them.

    *on_state* hears the Retry-After to refuse changes with after each failed write,
    and None once a write succeeded again.
    """

    def __init__(self, journal: Journal, submit: Submit, withdraw: Withdraw, *,
                 first_retry: float = 0.5, max_retry: float = 8.0,
                 on_state: Callable[[int | None], None] = lambda retry_after: None) -> None:
        self.journal = journal
        self._submit = submit
        self._withdraw = withdraw
        self._on_state = on_state
        self._first_retry = first_retry
        self._max_retry = max_retry
        self._backoff = first_retry
        self._flight: int | None = None  # the batch being written
        self._held: list[Transmit] = []  # sent once that batch is committed
        self._held_waiters: list[Waiter] = []
        self._next: list[Transmit] = []  # behind changes still in the journal
        self._next_waiters: list[Waiter] = []
        self.failing: BaseException | None = None  # the last write's error, until one works
        self._retry_at = 0.0
        self.withdrawn = 0

    @property
    def writable(self) -> bool:
        return self.failing is None

    @property
    def retry_after(self) -> int:
        """Seconds a client refused for the store's sake should wait (Retry-After)."""
        return max(1, math.ceil(self._backoff))

    @property
    def held(self) -> int:
        return len(self._held) + len(self._next)

    def gate(self, out: list[Transmit], now: float) -> list[Transmit]:
        """What of *out* may be sent now; the rest is held and comes out of
        :meth:`committed`.  Call after every input, with what the core queued."""
        pending = len(self.journal) > 0
        if self.failing is not None:
            # Nothing durable can be promised: answers go at once (the agent refuses
            # changes meanwhile); the store is tried again when the back-off ends.
            if self._flight is None and now >= self._retry_at:
                self._flight = self._submit(self.journal.drain())
            return out
        if pending and self._flight is None:
            self._flight = self._submit(self.journal.drain())
            self._held = self._next + out
            self._held_waiters, self._next_waiters = self._next_waiters, []
            self._next = []
            return []
        if pending:
            self._next += out
            return []
        if self._flight is not None:
            self._held += out
            return []
        return out

    def durable(self, waiter: Waiter) -> None:
        """Call *waiter* once every change made so far is committed (with None), or
        could not be (with the error).  The HTTP API answers a change with it."""
        if self.failing is not None:
            waiter(self.failing)
        elif len(self.journal):
            self._next_waiters.append(waiter)
        elif self._flight is not None:
            self._held_waiters.append(waiter)
        else:
            waiter(None)

    def committed(self, batch: int, error: BaseException | None,
                  now: float) -> list[Transmit]:
        """The store reports *batch*: what was held behind it may go now.  Call
        :meth:`gate` after sending it, so that the next batch is submitted."""
        if batch != self._flight:
            return []  # an earlier batch of a group that went out already
        self._flight = None
        released, self._held = self._held, []
        waiters, self._held_waiters = self._held_waiters, []
        if isinstance(error, RowsRefused):
            released = self._withdraw_all(released)
            log.error("a batch held rows the store can never write (%s): its answers "
                      "withdrawn", error)
        elif error is None:
            if self.failing is not None:
                log.warning("the store writes again")
                self.failing = None
                self._on_state(None)
            self._backoff = self._first_retry
        else:
            # What waited behind this batch cannot be made durable either.
            released = self._withdraw_all(released + self._next)
            waiters += self._next_waiters
            self._next, self._next_waiters = [], []
            if self.failing is not None:
                self._backoff = min(self._max_retry, self._backoff * 2)
            self.failing = error
            self._retry_at = now + self._backoff
            self._on_state(self.retry_after)
            log.error("the store cannot write (%s: %s): answers withdrawn, changes refused "
                      "with 503 until it can; trying again in %.1f s", type(error).__name__,
                      error, self._backoff)
        for waiter in waiters:
            waiter(error)
        return released

    def _withdraw_all(self, transmits: list[Transmit]) -> list[Transmit]:
        out = [self._withdraw(t) for t in transmits]
        self.withdrawn += sum(a is not b for a, b in zip(out, transmits, strict=True))
        return out

    def get_timer(self) -> float | None:
        """When the store is to be tried again (while it fails)."""
        return self._retry_at if self.failing is not None and self._flight is None else None

    def handle_timer(self, now: float) -> None:
        """Nothing to do here: the :meth:`gate` call that follows every timer retries."""
