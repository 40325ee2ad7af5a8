"""Watchers from other networks: who outside SIP watches a presentity the agent serves.

An XMPP user who asked to see ``sip:alice@example.com`` (``<presence
type='subscribe'/>``) holds no SIP dialog, yet is a watcher like any other: the
person's rules decide it (``policy.py``), the person sees it among the presentity's
watchers, and it survives a restart, because the XMPP server never asks again
(RFC 6121 section 3: the subscription lives in the user's roster, the bridge must
remember its half).  One :class:`RosterEntry` per (presentity, watcher), persisted as
kind ``roster``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Roster", "RosterEntry", "ROSTER_STATES"]

ROSTER_STATES = ("pending", "active")


@dataclass(frozen=True, slots=True)
class RosterEntry:
    """*watcher* (its address as rules name it, ``sip:bob@xmpp.example.com``) asked,
    through *network* (``xmpp``), to watch *presentity*; *state* pending or active."""

    presentity: str
    watcher: str
    network: str
    state: str

    @property
    def store_key(self) -> str:
        return f"{self.presentity} {self.watcher}"


class Roster:
    """Every :class:`RosterEntry`, by presentity."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, RosterEntry]] = {}

    def __len__(self) -> int:
        return sum(len(entries) for entries in self._entries.values())

    def __contains__(self, presentity: object) -> bool:
        return presentity in self._entries

    def get(self, presentity: str, watcher: str) -> RosterEntry | None:
        return self._entries.get(presentity, {}).get(watcher)

    def watchers(self, presentity: str) -> list[RosterEntry]:
        return list(self._entries.get(presentity, {}).values())

    def all(self) -> Iterator[RosterEntry]:
        for entries in self._entries.values():
            yield from entries.values()

    def put(self, entry: RosterEntry) -> bool:
        """Add or change *entry*; False when it was there as it is."""
        if entry.state not in ROSTER_STATES:
            raise ValueError(f"roster state must be one of {', '.join(ROSTER_STATES)}")
        entries = self._entries.setdefault(entry.presentity, {})
        if entries.get(entry.watcher) == entry:
            return False
        entries[entry.watcher] = entry
        return True

    def remove(self, presentity: str, watcher: str) -> RosterEntry | None:
        entries = self._entries.get(presentity)
        if entries is None:
            return None
        entry = entries.pop(watcher, None)
        if not entries:
            del self._entries[presentity]
        return entry
