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
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from ..documents.compose import Summary
from ..documents.pidf import PresenceDocument
from ..documents.xml import TIMED_STATUS_NS

__all__ = ["LineState", "RoutingPolicy", "Decision", "decide", "line_state", "warning_text"]

# Longest note carried in a Warning: a caller's display has a line or two, and the
# answer must stay well inside a UDP datagram.
WARNING_TEXT_MAX = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")

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
    open_again: float | None = None         # RFC 4481 timed-status: when it opens next


def line_state(document: PresenceDocument, summary: Summary, contacts: Iterable[str],
               registered: bool, now: float) -> LineState:
    """The callee as the composed document and the registrar see it.

    The ``until`` of each person's activities applies to every activity in it; a
    timed-status (RFC 4481) saying ``open`` from a time to come tells when a closed
    person is back.
    """
    until: dict[str, float] = {}
    for person in document.persons:
        activities = person.activities
        if activities is not None and activities.until is not None:
            for activity in activities.values:
                until[activity] = activities.until.timestamp()
    opens = []
    for tuple_ in document.tuples:
        for extension in tuple_.extensions:
            if extension.tag != f"{{{TIMED_STATUS_NS}}}timed-status":
                continue
            attributes = dict(extension.attributes)
            basic = next((c.text for c in extension.children if c.tag.endswith("}basic")), None)
            start = _timestamp(attributes.get("from"))
            if basic == "open" and start is not None and start > now:
                opens.append(start)
    return LineState(summary.basic, frozenset(summary.activities), summary.on_the_phone,
                     summary.note, until, tuple(contacts), registered,
                     min(opens) if opens else None)


def _timestamp(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


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
        text = warning_text(self.note)
        if text:
            out.append(("Warning", f'399 sipresence "{text}"'))
        return out


def warning_text(note: str | None) -> str:
    """The note as the quoted-string of a Warning (RFC 3261 20.43, 25.1).

    The note is whatever a publisher wrote: a CR or LF in it would end the header and
    let any publisher add headers to callers' answers, and a quoted-string cannot
    carry them even escaped.  Control characters become one space; the text is cut
    at :data:`WARNING_TEXT_MAX` characters; backslash and quote are escaped.
    """
    if not note:
        return ""
    text = " ".join(_CONTROL.sub(" ", note).split())[:WARNING_TEXT_MAX]
    return text.replace("\\", "\\\\").replace('"', '\\"')


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
        back = math.ceil(state.open_again - now) if state.open_again else None
        decision = Decision("unavailable", 480, back, note=state.note, why="closed")
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
        # "{reason}" in the target becomes busy or unavailable: one announcement
        # service can then say which (sip:{reason}@announce.example.com).
        target = policy.unavailable_target.replace("{reason}", decision.action)
        return Decision("redirect", 302, decision.retry_after, (target,), decision.note,
                        decision.why)
    return decision
