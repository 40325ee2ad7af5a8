"""What the agent asks of a store: SQLite implements it (``store/sqlite.py``), and
the Redis backend will.

A store is opened, read back once (:meth:`Store.load`, a
:class:`~sipresence.presence.journal.Snapshot`), then fed batches of the journal's
changes (:meth:`Store.submit`) that it writes in order, in the background, and
reports one by one to the callback given to :meth:`Store.start`: committed (None) or
the error.  Group commit (``store/commit.py``) holds every answer behind the report
of the batch that made it true, so a backend acknowledges a batch only once it would
survive the process being killed.

A batch with rows the backend can never write (a value it cannot keep) is reported
as :class:`RowsRefused`: those rows are left out and named in the log, the rest is
written, and the store goes on.  Any other error means nothing of the batch is
written: the backend keeps its rows and writes them with the next batch, which the
agent submits after a back-off.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..presence.journal import Snapshot

__all__ = ["Change", "Done", "RowsRefused", "Store", "StoreError", "StoreHealth"]

# One change as the journal notes it: kind ("publication", "subscription", "binding",
# "rule", "meta"), key, and the object (None: it went away).
Change = tuple[str, Hashable, object | None]
# Reported for each batch: its number, and None when it was committed, or the error.
Done = Callable[[int, BaseException | None], None]


class StoreError(Exception):
    """The store cannot be opened or read back; the message says what to fix."""


class RowsRefused(Exception):
    """A batch held rows the store can never write (and left out); the rest of it is
    written and the store goes on writing.  Its answers are withdrawn all the same,
    since which of them the refused rows acknowledged is not known."""


@dataclass(frozen=True, slots=True)
class StoreHealth:
    """What the store did so far, for the metrics endpoint."""

    batches_written: int
    rows_written: int
    write_failures: int
    rows_dropped: int


class Store(Protocol):
    """A place the agent's state survives in (see the module's text)."""

    def load(self) -> Snapshot:
        """Everything stored, read back at start; marks the store as in use, so that
        the next start knows whether this one stopped cleanly.  Raises
        :class:`StoreError`."""
        ...

    def start(self, done: Done | None = None) -> None:
        """Start writing in the background; *done* hears of every batch (from any
        thread: the caller brings the report to its own)."""
        ...

    def submit(self, changes: Iterable[Change]) -> int:
        """Queue one batch, never blocking; returns its number.  Before
        :meth:`start` it is written at once and a failure raises :class:`StoreError`."""
        ...

    def close(self) -> bool:
        """Write what is queued, mark a clean stop and close; False (logged) when
        something could not be written."""
        ...

    def health(self) -> StoreHealth: ...
