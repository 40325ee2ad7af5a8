"""What the core changed since the last write, for the store to persist.

The sans-IO core never writes; it notes objects that changed (``put``) or went away
(``delete``).  Repeated changes of one object between two drains cost one write, of
its latest state: a subscription that sends ten NOTIFYs in a burst is written once.
"""

from __future__ import annotations

from collections.abc import Hashable

__all__ = ["Journal"]


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
