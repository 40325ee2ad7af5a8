"""A queue of deadlines for sans-IO objects: expiries, retries, refresh checks.

Entries are never removed from the heap when a deadline moves; the owner keeps the
authoritative deadline per key and stale heap entries are skipped when they come
due.  That keeps rescheduling O(log n) with no searching, which matters with 100,000
subscriptions that each refresh every few minutes.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable

__all__ = ["DeadlineQueue"]


class DeadlineQueue:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Hashable]] = []
        self._deadline: dict[Hashable, float] = {}
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._deadline)

    def set(self, key: Hashable, deadline: float) -> None:
        """Set (or move) the deadline of *key*."""
        if self._deadline.get(key) == deadline:
            return
        self._deadline[key] = deadline
        heapq.heappush(self._heap, (deadline, next(self._seq), key))
        if len(self._heap) > 4 * len(self._deadline) + 64:
            self._compact()

    def cancel(self, key: Hashable) -> None:
        self._deadline.pop(key, None)

    def deadline(self, key: Hashable) -> float | None:
        return self._deadline.get(key)

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap and self._deadline.get(heap[0][2]) != heap[0][0]:
            heapq.heappop(heap)  # stale
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> list[Hashable]:
        """Remove and return every key whose deadline is at or before *now*, earliest first."""
        due = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, key = heapq.heappop(heap)
            if self._deadline.get(key) == deadline:
                del self._deadline[key]
                due.append(key)
        return due

    def _compact(self) -> None:
        self._heap = [(d, next(self._seq), k) for k, d in self._deadline.items()]
        heapq.heapify(self._heap)
