"""Watcher information (RFC 3857, RFC 3858): who watches a presentity, told to its owner.

The owner subscribes to ``presence.winfo`` for its own address.  Its first NOTIFY
(and the first after a restart, when the changes in between are unknown) carries the
full list; later ones carry only the watchers that came, changed state or went, as a
``partial`` document.  Each winfo subscription counts its own versions, persisted with
it, so the version never goes back.
"""

from __future__ import annotations

from ..documents.watcherinfo import Watcher, WatcherInfo, WatcherList, serialize_watcherinfo
from ..documents.xml import digest
from .packages import WATCHERINFO, EventPackage
from .roster import Roster, RosterEntry
from .subscription import Subscription, SubState
from .subscriptions import Notifier

__all__ = ["WatcherInfoPackage", "WatcherInformation"]

PACKAGE = "presence.winfo"
# Notifier events map onto RFC 3858 watcher events.
_EVENTS = {"subscribe": "subscribe", "approved": "approved", "timeout": "timeout",
           "unsubscribe": "timeout",
           "giveup": "giveup", "deactivated": "deactivated", "rejected": "rejected",
           "noresource": "noresource"}


def _watcher(subscription: Subscription, event: str) -> Watcher:
    if subscription.ending is not None:
        status = "terminated"
    elif subscription.state is SubState.PENDING:
        status = "pending"
    else:
        status = "active"
    return Watcher(id=subscription.id, uri=subscription.watcher, status=status,  # type: ignore[arg-type]
                   event=_EVENTS.get(event, "subscribe"),  # type: ignore[arg-type]
                   display_name=subscription.watcher_display)


def _roster_watcher(entry: RosterEntry, event: str, ended: bool = False) -> Watcher:
    """A watcher of another network as RFC 3858 lists it (its id stable per watcher)."""
    return Watcher(id=f"r{digest(entry.store_key)}", uri=entry.watcher,
                   status="terminated" if ended else entry.state,  # type: ignore[arg-type]
                   event=event)  # type: ignore[arg-type]


class WatcherInformation:
    def __init__(self, notifier: Notifier, roster: Roster) -> None:
        self.notifier = notifier
        self.roster = roster
        # Changes not yet sent, per winfo subscription: watcher id -> latest entry.
        self._pending: dict[str, dict[str, Watcher]] = {}

    def watcher_changed(self, subscription: Subscription, event: str) -> None:
        """A presence subscription to a resource came, changed or ended."""
        self._changed(subscription.resource, _watcher(subscription, event))

    def roster_changed(self, entry: RosterEntry, event: str, ended: bool = False) -> None:
        """A watcher of another network came (``subscribe``), was allowed
        (``approved``) or went (``rejected``, ``timeout``): the owner is told as of
        a SIP watcher, so a pending chat user is seen and can be confirmed."""
        self._changed(entry.presentity, _roster_watcher(entry, event, ended))

    def _changed(self, resource: str, watcher: Watcher) -> None:
        for winfo in self.notifier.watchers(PACKAGE, resource):
            self._pending.setdefault(winfo.id, {})[watcher.id] = watcher
            self.notifier.refresh_one(winfo)

    def render(self, winfo: Subscription, now: float) -> tuple[str, bytes]:
        """The next watcherinfo document for *winfo*: full first, then partial."""
        winfo.version += 1
        changes = self._pending.pop(winfo.id, {})
        if winfo.full_state_due:
            winfo.full_state_due = False
            watchers = (*(_watcher(s, "subscribe") for s in
                          self.notifier.watchers("presence", winfo.resource)),
                        *(_roster_watcher(e, "subscribe") for e in
                          self.roster.watchers(winfo.resource)))
            state = "full"
        else:
            watchers = tuple(changes.values())
            state = "partial"
        document = WatcherInfo(winfo.version, state,  # type: ignore[arg-type]
                               (WatcherList(winfo.resource, "presence", watchers),))
        if winfo.ending is not None:
            self._pending.pop(winfo.id, None)
        return WATCHERINFO, serialize_watcherinfo(document)


class WatcherInfoPackage(EventPackage):
    """``presence.winfo``: a presentity's watchers, for the presentity itself only
    (RFC 3857 section 5.1)."""

    def __init__(self, min_expires: int, max_expires: int,
                 watcherinfo: WatcherInformation) -> None:
        super().__init__(PACKAGE, notify_types=(WATCHERINFO,), min_expires=min_expires,
                         max_expires=max_expires)
        self.watcherinfo = watcherinfo

    def authorize(self, watcher: str, resource: str) -> str:
        return "active" if watcher == resource else "rejected"

    def render(self, subscription: Subscription, now: float) -> tuple[str, bytes]:
        return self.watcherinfo.render(subscription, now)
