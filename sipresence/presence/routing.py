"""What to tell a caller: the INVITE answer decided from the callee's presence.

The decision is made from a :class:`LineState` (what composition and the registrar
know about the callee) and a :class:`RoutingPolicy` (what the operator wants):

* on the phone, or an activity that means busy: ``486 Busy Here``;
* closed, unregistered, or an activity that means away: ``480 Temporarily
  Unavailable``;
* otherwise ``302 Moved Temporarily`` to the registered contacts, best first.

``Retry-After`` comes from the RPID ``until`` of the deciding activity when it is
known (RFC 3261 20.33 allows it on 486 and 480); the person's note goes into a
``Warning`` (code 399) so that the caller's phone can show it.  With an
``unavailable_target`` (voicemail, an announcement) busy and unavailable become a
302 there instead.  The HTTP API returns the same decision for routing scripts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["LineState", "RoutingPolicy", "Decision", "decide"]

BUSY_ACTIVITIES = frozenset({"busy", "on-the-phone", "meeting", "performance",
                             "presentation", "playing", "steering", "worship"})
AWAY_ACTIVITIES = frozenset({"away", "vacation", "sleeping", "holiday", "appointment",
                             "breakfast", "dinner", "lunch", "meal", "travel", "in-transit",
                             "permanent-absence", "looking-for-work", "spectator"})


@dataclass(frozen=True)
class LineState:
    """What is known about a callee at the moment of the call."""

    basic: str                              # "open" or "closed"
    activities: frozenset[str] = frozenset()
    on_the_phone: bool = False
    note: str | None = None
    until: dict[str, float] = field(default_factory=dict)  # activity -> Unix time it ends
    contacts: tuple[str, ...] = ()          # registered contact URIs, best first
    registered: bool = False


@dataclass(frozen=True)
class RoutingPolicy:
    busy_activities: frozenset[str] = BUSY_ACTIVITIES
    away_activities: frozenset[str] = AWAY_ACTIVITIES
    unavailable_target: str | None = None
    # A presentity with neither a publication nor a registration is unavailable;
    # set False to let such calls proceed to the contacts (there are none: 480).
    require_registration: bool = True


@dataclass(frozen=True)
class Decision:
    action: str                 # "proceed", "busy", "unavailable", "redirect"
    status: int                 # 302, 486, 480
    retry_after: int | None = None
    targets: tuple[str, ...] = ()
    note: str | None = None
    why: str = ""

    def headers(self) -> list[tuple[str, str]]:
        """Retry-After, Contact and Warning headers of the SIP answer."""
        out = [("Contact", f"<{target}>") for target in self.targets]
        if self.retry_after is not None:
            out.append(("Retry-After", str(self.retry_after)))
        if self.note:
            text = self.note.replace("\\", "\\\\").replace('"', '\\"')
            out.append(("Warning", f'399 sipresence "{text}"'))
        return out


def _retry_after(state: LineState, activities: Iterable[str], now: float) -> int | None:
    ends = [state.until[a] for a in activities if a in state.until and state.until[a] > now]
    return math.ceil(max(ends) - now) if ends else None


def decide(state: LineState, policy: RoutingPolicy, now: float) -> Decision:
    busy = sorted(state.activities & policy.busy_activities)
    if state.on_the_phone:
        busy = sorted({"on-the-phone", *busy})
    away = sorted(state.activities & policy.away_activities)
    if busy:
        decision = Decision("busy", 486, _retry_after(state, busy, now), note=state.note,
                            why="on the phone" if state.on_the_phone else f"busy ({busy[0]})")
    elif state.basic != "open":
        decision = Decision("unavailable", 480, None, note=state.note, why="closed")
    elif away:
        decision = Decision("unavailable", 480, _retry_after(state, away, now),
                            note=state.note, why=f"away ({away[0]})")
    elif policy.require_registration and not state.registered:
        decision = Decision("unavailable", 480, None, note=state.note, why="not registered")
    elif not state.contacts:
        decision = Decision("unavailable", 480, None, note=state.note, why="no contact")
    else:
        return Decision("proceed", 302, targets=state.contacts, why="available")
    if policy.unavailable_target:
        return Decision("redirect", 302, decision.retry_after,
                        (policy.unavailable_target,), decision.note, decision.why)
    return decision
