"""Admission control: take on only as much new work as the process keeps up with.

The network layer measures how late a periodic tick fires (input waits that long
behind the work in hand) and reports each tick to :meth:`Admission.tick`; the
endpoint asks :meth:`Admission.admits` for each new request and answers the rest
503 with :attr:`Admission.retry_after` before spending time on them.

One late tick is a burst (a fan-out, a flood of re-SUBSCRIBEs after a restart) that
is then caught up with; ``streak`` late ticks in a row mean input arrives faster
than it is handled.  From then on the share admitted is multiplied by ``decrease``
(down to ``floor``) while ticks stay late, at most once per ``settle`` seconds (the
backlog of before the cut has to drain before the cut shows), and grows by ``step``
at every tick on time, back to all.  Goodput stays near capacity under any offered
load, instead of all-or-nothing swings that let the socket buffer fill past the
senders' retransmission timers.  The admitted share is spread evenly: with
``admit`` 0.25, one request in four is taken.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Admission"]


@dataclass
class Admission:
    """The share of new work taken on (1.0: everything), and how it is steered."""

    retry_after: int = 2  # seconds, in the 503 of what is not admitted
    max_lag: float = 0.1
    streak: int = 3
    decrease: float = 0.75
    floor: float = 0.02
    step: float = 0.05
    settle: float = 0.25
    admit: float = 1.0
    _credit: float = 0.0
    _late: int = 0
    _cut_at: float = float("-inf")

    @property
    def overloaded(self) -> bool:
        return self.admit < 1.0

    @property
    def late_ticks(self) -> int:
        """Ticks late in a row, the last one included."""
        return self._late

    def admits(self) -> bool:
        """Whether one more new request is taken on (an even spread of ``admit``)."""
        if self.admit >= 1.0:
            return True
        self._credit += self.admit
        if self._credit >= 1.0:
            self._credit -= 1.0
            return True
        return False

    def tick(self, lag: float, now: float) -> str | None:
        """A tick fired *lag* seconds late at *now*.  Returns ``"overloaded"`` when
        this tick started shedding, ``"recovered"`` when it ended it, else None."""
        late = lag > self.max_lag
        self._late = self._late + 1 if late else 0
        was = self.overloaded
        if late and (self._late >= self.streak or was):
            if now - self._cut_at >= self.settle:
                self.admit = max(self.floor, self.admit * self.decrease)
                self._cut_at = now
        elif not late and was:
            self.admit = min(1.0, self.admit + self.step)
        if self.overloaded and not was:
            return "overloaded"
        if was and not self.overloaded:
            return "recovered"
        return None
