"""What the core changed since the last write, and what it gets back at start.

The sans-IO core never writes; it notes objects that changed (``put``) or went away
(``delete``) in its :class:`Journal`, which group commit (``store/commit.py``) hands
to the store (``store/base.py``).  Repeated changes of one object between two drains
cost one write, of its latest state: a subscription that sends ten NOTIFYs in a
burst is written once.  At start the store gives back a :class:`Snapshot`, which
:meth:`~sipresence.presence.agent.Agent.restore` puts back.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

from .policy import Rule
from .publications import Publication
from .registrar import Binding
from .roster import RosterEntry
from .subscription import Subscription

__all__ = ["Journal", "Snapshot"]


class Journal:
    def __init__(self) -> None:
        self._ops: dict[tuple[str, Hashable], object | None] = {}

    def __len__(self) -> int:
        return len(self._ops)

    def put(self, kind: str, key: Hashable, obj: object) -> None:
        self._ops[(kind, key)] = obj

    def delete(self, kind: str, key: Hashable) -> None:
        self._ops[(kind, key)] = None

    def drain(self) -> list[tuple[str, Hashable, object | None]]:
        """The pending operations, oldest first; None as the object means delete."""
        ops, self._ops = self._ops, {}
        return [(kind, key, obj) for (kind, key), obj in ops.items()]


@dataclass
class Snapshot:
    """Everything a store read back at start-up."""

    publications: list[Publication] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)
    clean: bool = True  # False: the last run did not shut down cleanly
    bindings: list[Binding] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    clock: int = 0  # the presentity version clock as reserved (Presentities)
    roster: list[RosterEntry] = field(default_factory=list)
