"""RFC 3261 section 17 transactions as explicit state tables (and RFC 6026 Accepted).

Each kind of transaction is a table ``(state, event) -> (next state, actions)``: the
whole behaviour of a kind can be read in one place, tested row by row, and compared
with the RFC's figures 5 to 8.  A transaction never sends, reads a clock or calls
anyone: :meth:`Transaction.handle` takes an event and the current time and returns
effects (:class:`Send`, :class:`Deliver`, :class:`Timeout`, :class:`Failed`) for
the endpoint to carry out; deadlines are read with :meth:`Transaction.next_deadline`.

Events from the network that a table does not list are absorbed silently (a stray
retransmission).  Events from the transaction user that it does not list are
programming errors and raise :class:`TransactionError`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

__all__ = [
    "State",
    "Event",
    "Action",
    "TimerConfig",
    "Send",
    "Deliver",
    "Timeout",
    "Failed",
    "Effect",
    "TransactionError",
    "Transaction",
    "NonInviteServer",
    "InviteServer",
    "NonInviteClient",
]


class State(enum.Enum):
    # Members are singletons compared by identity, so identity is their hash: the
    # tables are looked up on every message, and Enum's own __hash__ is a Python
    # call (hash of the name) each time.
    __hash__ = object.__hash__
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


class Event(enum.Enum):
    __hash__ = object.__hash__
    # From the network.
    REQUEST = "request retransmission"
    ACK = "ACK"
    PROVISIONAL_IN = "1xx received"
    FINAL_IN = "final response received"
    TRANSPORT_ERROR = "transport error"
    # From the transaction user.
    PROVISIONAL_OUT = "TU sends 1xx"
    SUCCESS_OUT = "TU sends 2xx"
    FINAL_OUT = "TU sends final response"
    # Timers.
    TIMER_E = "E"
    TIMER_F = "F"
    TIMER_G = "G"
    TIMER_H = "H"
    TIMER_I = "I"
    TIMER_J = "J"
    TIMER_K = "K"
    TIMER_L = "L"


_TU_EVENTS = frozenset({Event.PROVISIONAL_OUT, Event.SUCCESS_OUT, Event.FINAL_OUT})


class Action(enum.Enum):
    SEND = "send the new message"
    RESEND = "retransmit the last message"
    DELIVER = "pass the response to the TU"
    TIMEOUT = "tell the TU of a timeout"
    FAIL = "tell the TU of a transport error"
    START_E = "start E"
    START_F = "start F"
    START_G = "start G"
    START_H = "start H"
    START_I = "start I"
    START_J = "start J"
    START_K = "start K"
    START_L = "start L"
    STOP_RETRANSMIT = "stop E and G"
    STOP_ALL = "stop every timer"


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """RFC 3261 timer base values in seconds (section 17.1.1.1, table 4)."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0


@dataclass(frozen=True, slots=True)
class Send:
    data: bytes


@dataclass(frozen=True, slots=True)
class Deliver:
    response: object


@dataclass(frozen=True, slots=True)
class Timeout:
    """Timer F or H fired: no final response, or no ACK, arrived in time."""


@dataclass(frozen=True, slots=True)
class Failed:
    """The transport reported an error (RFC 3261 17.1.4 / 17.2.4)."""


Effect = Send | Deliver | Timeout | Failed


class TransactionError(RuntimeError):
    """The transaction user asked for something the transaction's state forbids."""


Table = Mapping[tuple[State, Event], tuple[State, tuple[Action, ...]]]

S, E, A = State, Event, Action
_FAIL_ROW = (S.TERMINATED, (A.FAIL, A.STOP_ALL))


class Transaction:
    """State and timers shared by every kind; subclasses bring the table."""

    TABLE: ClassVar[Table]
    INITIAL: ClassVar[State]
    # Timers whose durations are 0 on reliable transports fire at once there; the
    # retransmission timers E and G are not used at all on reliable transports.
    _RETRANSMIT = frozenset({A.START_E, A.START_G})

    __slots__ = ("key", "state", "reliable", "config", "last", "_deadlines", "_interval")

    def __init__(self, key: object, reliable: bool, config: TimerConfig) -> None:
        self.key = key
        self.state = self.INITIAL
        self.reliable = reliable
        self.config = config
        self.last: bytes | None = None
        self._deadlines: dict[Event, float] = {}
        self._interval = config.t1

    @property
    def terminated(self) -> bool:
        return self.state is State.TERMINATED

    def next_deadline(self) -> float | None:
        return min(self._deadlines.values()) if self._deadlines else None

    def handle(self, event: Event, now: float, data: bytes | None = None,
               response: object = None) -> list[Effect]:
        """Apply one event; ``data`` is the serialised message a SEND action sends."""
        row = self.TABLE.get((self.state, event))
        if row is None:
            if event in _TU_EVENTS:
                raise TransactionError(f"{event.value} is not allowed in {self.state.value}")
            return []
        self.state, actions = row
        effects: list[Effect] = []
        immediate: list[Event] = []
        for action in actions:
            if action is A.SEND:
                assert data is not None
                self.last = data
                effects.append(Send(data))
            elif action is A.RESEND:
                if self.last is not None:
                    effects.append(Send(self.last))
            elif action is A.DELIVER:
                effects.append(Deliver(response))
            elif action is A.TIMEOUT:
                effects.append(Timeout())
            elif action is A.FAIL:
                effects.append(Failed())
            elif action is A.STOP_ALL:
                self._deadlines.clear()
            elif action is A.STOP_RETRANSMIT:
                self._deadlines.pop(E.TIMER_E, None)
                self._deadlines.pop(E.TIMER_G, None)
            else:
                timer, duration = self._duration(action, event)
                if duration is None:
                    continue
                if duration == 0:
                    immediate.append(timer)
                else:
                    self._deadlines[timer] = now + duration
        if self.state is State.TERMINATED:
            self._deadlines.clear()
        for timer in immediate:
            effects += self.handle(timer, now)
        return effects

    def handle_timers(self, now: float) -> list[Effect]:
        """Fire every timer that is due at *now*, earliest first."""
        effects: list[Effect] = []
        while self._deadlines:
            timer, deadline = min(self._deadlines.items(), key=lambda item: item[1])
            if deadline > now:
                break
            del self._deadlines[timer]
            effects += self.handle(timer, now)
        return effects

    def _duration(self, action: Action, cause: Event) -> tuple[Event, float | None]:
        """The timer an action starts and for how long (None: not on this transport)."""
        c = self.config
        if action in self._RETRANSMIT:
            timer = E.TIMER_E if action is A.START_E else E.TIMER_G
            if self.reliable:
                return timer, None
            if cause is timer:
                # Doubling up to T2 (17.1.2.2, 17.2.1); in Proceeding, E runs at T2.
                self._interval = min(2 * self._interval, c.t2)
            if self.state is State.PROCEEDING and timer is E.TIMER_E:
                self._interval = c.t2
            return timer, self._interval
        if action is A.START_F:
            return E.TIMER_F, 64 * c.t1
        if action is A.START_H:
            return E.TIMER_H, 64 * c.t1
        if action is A.START_L:
            return E.TIMER_L, 64 * c.t1
        if action is A.START_J:
            return E.TIMER_J, 0.0 if self.reliable else 64 * c.t1
        if action is A.START_I:
            return E.TIMER_I, 0.0 if self.reliable else c.t4
        if action is A.START_K:
            return E.TIMER_K, 0.0 if self.reliable else c.t4
        raise AssertionError(action)  # pragma: no cover - every START_* is listed


class NonInviteServer(Transaction):
    """Figure 8: non-INVITE server transaction."""

    __slots__ = ()
    INITIAL = S.TRYING
    TABLE: ClassVar[Table] = {
        (S.TRYING, E.REQUEST): (S.TRYING, ()),
        (S.TRYING, E.PROVISIONAL_OUT): (S.PROCEEDING, (A.SEND,)),
        (S.TRYING, E.SUCCESS_OUT): (S.COMPLETED, (A.SEND, A.START_J)),
        (S.TRYING, E.FINAL_OUT): (S.COMPLETED, (A.SEND, A.START_J)),
        (S.TRYING, E.TRANSPORT_ERROR): _FAIL_ROW,
        (S.PROCEEDING, E.REQUEST): (S.PROCEEDING, (A.RESEND,)),
        (S.PROCEEDING, E.PROVISIONAL_OUT): (S.PROCEEDING, (A.SEND,)),
        (S.PROCEEDING, E.SUCCESS_OUT): (S.COMPLETED, (A.SEND, A.START_J)),
        (S.PROCEEDING, E.FINAL_OUT): (S.COMPLETED, (A.SEND, A.START_J)),
        (S.PROCEEDING, E.TRANSPORT_ERROR): _FAIL_ROW,
        (S.COMPLETED, E.REQUEST): (S.COMPLETED, (A.RESEND,)),
        (S.COMPLETED, E.TIMER_J): (S.TERMINATED, ()),
        (S.COMPLETED, E.TRANSPORT_ERROR): _FAIL_ROW,
    }


class InviteServer(Transaction):
    """Figure 7 with RFC 6026: 2xx leads to Accepted, which absorbs retransmissions."""

    __slots__ = ()
    INITIAL = S.PROCEEDING
    TABLE: ClassVar[Table] = {
        (S.PROCEEDING, E.REQUEST): (S.PROCEEDING, (A.RESEND,)),
        (S.PROCEEDING, E.PROVISIONAL_OUT): (S.PROCEEDING, (A.SEND,)),
        (S.PROCEEDING, E.SUCCESS_OUT): (S.ACCEPTED, (A.SEND, A.START_L)),
        (S.PROCEEDING, E.FINAL_OUT): (S.COMPLETED, (A.SEND, A.START_G, A.START_H)),
        (S.PROCEEDING, E.TRANSPORT_ERROR): _FAIL_ROW,
        (S.COMPLETED, E.REQUEST): (S.COMPLETED, (A.RESEND,)),
        (S.COMPLETED, E.TIMER_G): (S.COMPLETED, (A.RESEND, A.START_G)),
        (S.COMPLETED, E.ACK): (S.CONFIRMED, (A.STOP_ALL, A.START_I)),
        (S.COMPLETED, E.TIMER_H): (S.TERMINATED, (A.TIMEOUT,)),
        (S.COMPLETED, E.TRANSPORT_ERROR): _FAIL_ROW,
        (S.CONFIRMED, E.TIMER_I): (S.TERMINATED, ()),
        (S.ACCEPTED, E.SUCCESS_OUT): (S.ACCEPTED, (A.SEND,)),
        (S.ACCEPTED, E.TIMER_L): (S.TERMINATED, ()),
    }


class NonInviteClient(Transaction):
    """Figure 6: non-INVITE client transaction (the agent sends NOTIFY with it)."""

    __slots__ = ()
    INITIAL = S.TRYING
    TABLE: ClassVar[Table] = {
        (S.TRYING, E.TIMER_E): (S.TRYING, (A.RESEND, A.START_E)),
        (S.TRYING, E.TIMER_F): (S.TERMINATED, (A.TIMEOUT,)),
        (S.TRYING, E.PROVISIONAL_IN): (S.PROCEEDING, ()),
        (S.TRYING, E.FINAL_IN): (S.COMPLETED, (A.DELIVER, A.STOP_ALL, A.START_K)),
        (S.TRYING, E.TRANSPORT_ERROR): _FAIL_ROW,
        (S.PROCEEDING, E.TIMER_E): (S.PROCEEDING, (A.RESEND, A.START_E)),
        (S.PROCEEDING, E.TIMER_F): (S.TERMINATED, (A.TIMEOUT,)),
        (S.PROCEEDING, E.PROVISIONAL_IN): (S.PROCEEDING, ()),
        (S.PROCEEDING, E.FINAL_IN): (S.COMPLETED, (A.DELIVER, A.STOP_ALL, A.START_K)),
        (S.PROCEEDING, E.TRANSPORT_ERROR): _FAIL_ROW,
        (S.COMPLETED, E.TIMER_K): (S.TERMINATED, ()),
    }

    def start(self, data: bytes, now: float) -> list[Effect]:
        """Send the request for the first time and arm timers E and F."""
        self.last = data
        for action in (A.START_E, A.START_F):
            timer, duration = self._duration(action, E.REQUEST)
            if duration is not None:
                self._deadlines[timer] = now + duration
        return [Send(data)]
