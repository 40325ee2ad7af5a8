"""Event packages (RFC 6665 section 7): what each one accepts, emits and allows, and
what it does.

A package says which body types a PUBLISH may carry, which formats a NOTIFY can be
sent in (the first is the default when a SUBSCRIBE has no Accept, as baresip sends
it), and its expiry bounds.  The agent advertises ``Allow-Events`` and ``Accept``
from the packages registered with it, so what it says it supports is what it handles.

A package also carries its behaviour, so that the agent dispatches by package and
names none (adding one is a module with a subclass of :class:`EventPackage` and a
line registering it): who may watch (:meth:`~EventPackage.authorize`), what a
watcher is sent (:meth:`~EventPackage.render`), and what a change of its
publications means: the presence sources they make (:meth:`~EventPackage.sources`,
through the presence core's one door), whether its own watchers hear of every one
(:attr:`~EventPackage.notify_on_publish`), and when its view of a resource changes
by itself (:meth:`~EventPackage.next_deadline`: a dialog turning stale).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ..sip.headers import HeaderError, parse_accept

if TYPE_CHECKING:
    from ..documents.compose import Source
    from .subscription import Subscription

__all__ = ["EventPackage", "negotiate", "PIDF", "XPIDF", "CPIM_PIDF", "WATCHERINFO"]

PIDF = "application/pidf+xml"
XPIDF = "application/xpidf+xml"
CPIM_PIDF = "application/cpim-pidf+xml"
WATCHERINFO = "application/watcherinfo+xml"
DIALOG_INFO = "application/dialog-info+xml"


@dataclass(eq=False)
class EventPackage:
    """One event package: its rules (these fields) and its behaviour (the methods,
    whose defaults suit a package that only carries state, as a test's does).

    ``parse`` turns a published body into the package's document model and raises
    ``ValueError`` (with a reason phrase) when the body is not acceptable.  ``merge``,
    when set, combines a publisher's previous document (None for a new publication)
    with its new one and returns the document and the body to keep: dialog-info
    publishers send partial documents (Yealink), and what is stored must be whole.

    ``one_per_source``: a device has one state in the package, so an initial PUBLISH
    from the source of an earlier publication replaces it (a phone that lost its
    entity tag after a 412 or a reboot starts over; INTEROP.md, complaint 4).  Not so
    for dialogs: Kamailio's pua_dialoginfo publishes every call as a publication of
    its own, all from the proxy's one address, with a new Call-ID each; there only a
    publisher starting over in the same Call-ID (pjsua) replaces.
    """

    name: str
    notify_types: tuple[str, ...]
    publish_types: tuple[str, ...] = ()
    parse: Callable[[bytes, str], Any] | None = None
    merge: Callable[[Any, Any], tuple[Any, bytes]] | None = None
    default_expires: int = 3600
    min_expires: int = 60
    max_expires: int = 86400
    publish_default_expires: int = 3600
    one_per_source: bool = True

    # The prefix of the keys of the presence sources :meth:`sources` makes (None:
    # its publications are no source of presence).
    source_prefix: str | None = None
    # Its watchers hear of every change of its publications (dialog: each call), not
    # only of changes of the composed presence.
    notify_on_publish: bool = False

    @property
    def publishable(self) -> bool:
        return bool(self.publish_types) and self.parse is not None

    def authorize(self, watcher: str, resource: str) -> str:
        """Who may subscribe: ``"active"``, ``"pending"`` or ``"rejected"``."""
        return "active"

    def render(self, subscription: Subscription, now: float) -> tuple[str, bytes] | None:
        """The body of the next NOTIFY of an authorized *subscription*: (type, bytes),
        or None for none."""
        return None

    def sources(self, resource: str, now: float) -> dict[str, Source]:
        """The presence sources its live publications of *resource* make, keyed under
        :attr:`source_prefix`; asked after each change of them."""
        return {}

    def next_deadline(self, resource: str, now: float) -> float | None:
        """When its view of *resource* changes with no request (then treated as a
        change of its publications)."""
        return None

    def watcher_event(self, subscription: Subscription, event: str) -> None:
        """A subscription to this package came, changed or ended (watcher info)."""

    def forget(self, subscription: Subscription) -> None:
        """A subscription to this package is gone: drop what was kept for it."""


def negotiate(accept: list[str], offered: tuple[str, ...]) -> str | None:
    """Pick the NOTIFY body type for a SUBSCRIBE's Accept header values.

    No Accept header means the package default (RFC 6665 section 7.2: the default
    type of the package).  Media ranges with wildcards match; q=0 refuses.  None
    means nothing acceptable: the SUBSCRIBE gets 406.  Phones send a handful of
    distinct Accept headers, each parsed once.
    """
    return _negotiate(tuple(accept), offered)


@lru_cache(maxsize=1024)
def _negotiate(accept: tuple[str, ...], offered: tuple[str, ...]) -> str | None:
    if not accept or not any(value.strip() for value in accept):
        return offered[0]
    try:
        ranges = parse_accept(list(accept))
    except HeaderError:
        return offered[0]  # lenient in: a broken Accept gets the default
    for media, q in ranges:  # best q first, header order among equals
        if q <= 0:
            continue
        kind, _, sub = media.mime.partition("/")
        for candidate in offered:
            ckind, _, csub = candidate.partition("/")
            if kind in ("*", ckind) and sub in ("*", csub):
                refused = any(m.mime == candidate and w <= 0 for m, w in ranges)
                if not refused:
                    return candidate
    return None
