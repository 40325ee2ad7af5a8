"""One subscription (RFC 6665): its dialog, its state and its counters, as the
notifier (``presence/subscriptions.py``) keeps them and the store persists them, and
the flow of its NOTIFYs as an explicit state table.

At most one NOTIFY is in flight per subscription, changes made meanwhile coalesce
into the one sent when its answer comes, and a transient failure is retried after a
delay (RFC 6665 4.2.2).  The table, in the style of ``sip/transaction.py``:

    ==============  ===========  ==============  ==================================
    state           event        next state      action
    ==============  ===========  ==============  ==================================
    idle            change       due             queue
    due             change       due
    due             send         in flight
    in flight       change       in flight, due
    in flight       ok           idle
    in flight, due  ok           due             queue
    in flight (,d)  transient    retry           retry later (a change is implied)
    in flight (,d)  fatal        done            drop
    retry           change       retry
    retry           retry timer  due             queue
    ==============  ===========  ==============  ==================================

*send* comes from the notifier itself: sending when nothing is due is a bug and
raises :class:`FlowError`.  The others come from outside (a watcher's answer, a
timer): one the table does not list (an answer to nothing in flight, a timer for a
retry already made) is absorbed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ..sip.dialog import Dialog
from ..sip.transport import Peer

__all__ = ["COUNTER_BLOCK", "FlowError", "FlowEvent", "FlowState", "NotifyFlow", "SubState",
           "Subscription"]


# How far ahead counters are reserved in the store (see Subscription).
COUNTER_BLOCK = 100


class SubState(enum.Enum):
    PENDING = "pending"
    ACTIVE = "active"
    TERMINATED = "terminated"


class FlowState(enum.Enum):
    __hash__ = object.__hash__  # see sip/transaction.State
    IDLE = "idle"
    DUE = "due"
    IN_FLIGHT = "in flight"
    IN_FLIGHT_DUE = "in flight, due"
    RETRY = "retry"
    DONE = "done"


class FlowEvent(enum.Enum):
    __hash__ = object.__hash__
    CHANGE = "change"  # something to tell the watcher
    SEND = "send"  # the notifier sends the NOTIFY that is due (its own)
    OK = "ok"  # a 2xx to the NOTIFY in flight
    TRANSIENT = "transient"  # a 408, 503 or timeout, with a retry left
    FATAL = "fatal"  # a 481, another error, or no retry left
    RETRY_TIMER = "retry timer"


class FlowAction(enum.Enum):
    QUEUE = "queue for the next flush"
    RETRY_LATER = "start the retry timer, next document in full"
    DROP = "the watcher is gone"


class FlowError(Exception):
    """The notifier fed its own flow an event the table does not allow."""


_S, _E, _A = FlowState, FlowEvent, FlowAction
_FLOW: dict[tuple[FlowState, FlowEvent], tuple[FlowState, tuple[FlowAction, ...]]] = {
    (_S.IDLE, _E.CHANGE): (_S.DUE, (_A.QUEUE,)),
    (_S.DUE, _E.CHANGE): (_S.DUE, ()),
    (_S.DUE, _E.SEND): (_S.IN_FLIGHT, ()),
    (_S.IN_FLIGHT, _E.CHANGE): (_S.IN_FLIGHT_DUE, ()),
    (_S.IN_FLIGHT, _E.OK): (_S.IDLE, ()),
    (_S.IN_FLIGHT_DUE, _E.CHANGE): (_S.IN_FLIGHT_DUE, ()),
    (_S.IN_FLIGHT_DUE, _E.OK): (_S.DUE, (_A.QUEUE,)),
    (_S.IN_FLIGHT, _E.TRANSIENT): (_S.RETRY, (_A.RETRY_LATER,)),
    (_S.IN_FLIGHT_DUE, _E.TRANSIENT): (_S.RETRY, (_A.RETRY_LATER,)),
    (_S.IN_FLIGHT, _E.FATAL): (_S.DONE, (_A.DROP,)),
    (_S.IN_FLIGHT_DUE, _E.FATAL): (_S.DONE, (_A.DROP,)),
    (_S.RETRY, _E.CHANGE): (_S.RETRY, ()),
    (_S.RETRY, _E.RETRY_TIMER): (_S.DUE, (_A.QUEUE,)),
}
_LOCAL = frozenset({FlowEvent.SEND})


class NotifyFlow:
    """Where one subscription's NOTIFYs stand (the module's table).

    A base of :class:`Subscription` rather than an object it holds: 100,000 idle
    subscriptions would otherwise carry 100,000 more objects (``make bench``
    measures the bytes per idle subscription)."""

    __slots__ = ("flow_state", "failures")

    def __init__(self) -> None:
        self.flow_state = FlowState.IDLE
        self.failures = 0  # transient failures in a row

    def flow_event(self, event: FlowEvent) -> tuple[FlowAction, ...]:
        row = _FLOW.get((self.flow_state, event))
        if row is None:
            if event in _LOCAL:
                raise FlowError(f"{event.value} in state {self.flow_state.value}")
            return ()
        self.flow_state, actions = row
        if event is FlowEvent.OK:
            self.failures = 0
        elif event is FlowEvent.TRANSIENT:
            self.failures += 1
        return actions

    @property
    def in_flight(self) -> bool:
        return self.flow_state in (FlowState.IN_FLIGHT, FlowState.IN_FLIGHT_DUE)

    @property
    def due(self) -> bool:
        """A change waits to be told (now, or once the NOTIFY in flight is answered)."""
        return self.flow_state in (FlowState.DUE, FlowState.IN_FLIGHT_DUE, FlowState.RETRY)


@dataclass(slots=True)
class Subscription(NotifyFlow):
    """One subscription: its dialog, its state and its counters (all persisted).

    The counters are persisted as *reservations*: :attr:`stored_cseq` and
    :attr:`stored_version` say up to which CSeq and document version the store
    already vouches, and the store writes
    that rather than the current value.  A counter passing its reservation reserves
    :data:`COUNTER_BLOCK` more, so a steady stream of NOTIFYs writes one row per
    block, and after any restart (clean or crash) counting resumes above every value
    ever sent: phones ignore NOTIFYs whose CSeq or version goes back (INTEROP.md).

    The fields after ``version`` are runtime only and start fresh after a restart.
    """

    id: str
    package: str
    resource: str
    event_id: str | None
    watcher: str
    watcher_display: str | None
    dialog: Dialog
    # The flow the watcher's requests came on (where NOTIFYs go back: Dialog.next_hop).
    transport: str
    host: str
    port: int
    connection: int | None
    local: tuple[str, int] | None
    content_type: str
    state: SubState
    expires_at: float
    created_at: float
    version: int = 0
    # -- runtime only --
    stored_cseq: int = field(default=0, compare=False)
    stored_version: int = field(default=0, compare=False)
    ending: str | None = field(default=None, compare=False)  # reason of a pending termination
    full_state_due: bool = field(default=True, compare=False)
    # Ever allowed to see the state (active, now or before it ended): what a NOTIFY
    # may carry.  A watcher rejected or timed out while pending never sees any.
    authorized: bool = field(default=False, compare=False)

    def reserve_counters(self) -> bool:
        """Reserve a new block when a counter passed the stored one; True if it did."""
        local_cseq = self.dialog.local_cseq
        if local_cseq <= self.stored_cseq and self.version <= self.stored_version:
            return False
        self.stored_cseq = local_cseq + COUNTER_BLOCK
        self.stored_version = self.version + COUNTER_BLOCK
        return True

    def __post_init__(self) -> None:
        NotifyFlow.__init__(self)

    @property
    def dialog_key(self) -> tuple[str, str, str, str, str | None]:
        dialog = self.dialog
        return (dialog.call_id, dialog.local_tag, dialog.remote_tag, self.package,
                self.event_id)

    @property
    def peer(self) -> Peer:
        return Peer(self.transport, self.host, self.port, self.connection, self.local)
