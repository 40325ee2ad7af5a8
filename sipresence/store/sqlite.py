"""The embedded default store: SQLite in WAL mode, written by one thread in batches.

The reactor thread never waits for the disk.  It hands the journal's operations,
already turned into plain rows, to the writer thread, which writes everything handed
to it since its last commit in one transaction (group commit: under load batches
grow, and a commit starts as soon as the previous one ended).  Each batch is
reported back, committed or failed, to the callback given to :meth:`SqliteStore.start`;
the network layer holds the answers that acknowledge a batch until then
(``store/commit.py``).  With WAL and ``synchronous=NORMAL`` a committed batch
survives a crash of the process.

A failed write is never the end of the writer: the rows of a batch that failed for
a passing cause (disk full, database locked, read-only, an I/O error) are kept and
written with the next batch; a row that can never be written (a value SQLite cannot
bind) is left out and named in the log, so that it cannot block every later batch.
At shutdown what is queued is written and the database marked cleanly closed; a
start that finds no such mark knows the last batches may be lost.  Counters are
stored as reservations ahead of their values (see ``Subscription``), so a lost batch
never makes a CSeq or a document version go back.

Text that came off the wire with bytes that are not UTF-8 (the parser keeps them as
surrogate escapes) is stored as a BLOB of those very bytes and read back as the same
string: what the agent keeps is what it can store, byte for byte.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ..presence.journal import Snapshot
from ..presence.policy import Rule
from ..presence.presentity import PRESENCE_CLOCK
from ..presence.publications import Publication
from ..presence.registrar import Binding
from ..presence.roster import RosterEntry
from ..presence.subscription import Subscription, SubState
from ..sip.dialog import Dialog
from .base import Change, Done, RowsRefused, StoreError, StoreHealth

__all__ = ["SqliteStore", "SCHEMA_VERSION"]

log = logging.getLogger("sipresence.store")

Row = tuple[object, ...]
Op = tuple[str, Hashable, Row | None]
# How long a write waits for another process's lock before it counts as failed.
BUSY_TIMEOUT_MS = 2000

SCHEMA_VERSION = 4
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS publications (
    etag TEXT PRIMARY KEY, resource TEXT NOT NULL, package TEXT NOT NULL,
    content_type TEXT NOT NULL, body BLOB NOT NULL, expires_at REAL NOT NULL,
    updated_at REAL NOT NULL, publisher TEXT NOT NULL, call_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS subscriptions (
    id TEXT PRIMARY KEY, package TEXT NOT NULL, resource TEXT NOT NULL, event_id TEXT,
    watcher TEXT NOT NULL, watcher_display TEXT, call_id TEXT NOT NULL,
    local_tag TEXT NOT NULL, remote_tag TEXT NOT NULL, local_uri TEXT NOT NULL,
    remote_uri TEXT NOT NULL, remote_target TEXT NOT NULL, route_set TEXT NOT NULL,
    local_cseq INTEGER NOT NULL, remote_cseq INTEGER NOT NULL, transport TEXT NOT NULL,
    host TEXT NOT NULL, port INTEGER NOT NULL, local_host TEXT, local_port INTEGER,
    content_type TEXT NOT NULL, state TEXT NOT NULL, expires_at REAL NOT NULL,
    created_at REAL NOT NULL, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS bindings (
    key TEXT PRIMARY KEY, aor TEXT NOT NULL, contact TEXT NOT NULL, uri TEXT NOT NULL,
    instance TEXT, reg_id TEXT, q REAL NOT NULL, call_id TEXT NOT NULL,
    cseq INTEGER NOT NULL, expires_at REAL NOT NULL, updated_at REAL NOT NULL,
    user_agent TEXT NOT NULL, source TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS rules (
    key TEXT PRIMARY KEY, presentity TEXT NOT NULL, watcher TEXT NOT NULL,
    action TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS roster (
    key TEXT PRIMARY KEY, presentity TEXT NOT NULL, watcher TEXT NOT NULL,
    network TEXT NOT NULL, state TEXT NOT NULL);
"""
_PUB_COLUMNS = ("etag", "resource", "package", "content_type", "body", "expires_at",
                "updated_at", "publisher", "call_id")
_SUB_COLUMNS = ("id", "package", "resource", "event_id", "watcher", "watcher_display",
                "call_id", "local_tag", "remote_tag", "local_uri", "remote_uri",
                "remote_target", "route_set", "local_cseq", "remote_cseq", "transport",
                "host", "port", "local_host", "local_port", "content_type", "state",
                "expires_at", "created_at", "version")
# The subscription columns that hold its dialog (sip/dialog.py).
_DIALOG_COLUMNS = ("call_id", "local_tag", "remote_tag", "local_uri", "remote_uri",
                   "remote_target", "route_set", "local_cseq", "remote_cseq")
_BINDING_COLUMNS = ("key", "aor", "contact", "uri", "instance", "reg_id", "q", "call_id",
                    "cseq", "expires_at", "updated_at", "user_agent", "source")
_RULE_COLUMNS = ("key", "presentity", "watcher", "action")
_ROSTER_COLUMNS = ("key", "presentity", "watcher", "network", "state")
_TABLES = {"publication": ("publications", "etag", _PUB_COLUMNS),
           "subscription": ("subscriptions", "id", _SUB_COLUMNS),
           "binding": ("bindings", "key", _BINDING_COLUMNS),
           "rule": ("rules", "key", _RULE_COLUMNS),
           "roster": ("roster", "key", _ROSTER_COLUMNS),
           "meta": ("meta", "key", ("key", "value"))}


def publication_row(p: Publication) -> Row:
    return (p.etag, p.resource, p.package, p.content_type, p.body, p.expires_at,
            p.updated_at, p.publisher, p.call_id)


def subscription_row(s: Subscription) -> Row:
    """The row of a subscription; its counters as reserved (see Subscription)."""
    local_host, local_port = s.local if s.local is not None else (None, None)
    cseq, version = s.stored_cseq, s.stored_version
    d = s.dialog
    return (s.id, s.package, s.resource, s.event_id, s.watcher, s.watcher_display,
            d.call_id, d.local_tag, d.remote_tag, d.local_uri, d.remote_uri,
            d.remote_target, json.dumps(d.route_set), max(d.local_cseq, cseq), d.remote_cseq,
            s.transport, s.host, s.port, local_host, local_port, s.content_type,
            s.state.value, s.expires_at, s.created_at, max(s.version, version))


def binding_row(b: Binding) -> Row:
    return (b.store_key, b.aor, b.contact, b.uri, b.instance, b.reg_id, b.q, b.call_id,
            b.cseq, b.expires_at, b.updated_at, b.user_agent, b.source)


def rule_row(r: Rule) -> Row:
    return (r.store_key, r.presentity, r.watcher, r.action)


def roster_row(r: RosterEntry) -> Row:
    return (r.store_key, r.presentity, r.watcher, r.network, r.state)


_ROWS: dict[str, Callable[[Any], Row]] = {
    "publication": publication_row, "subscription": subscription_row, "binding": binding_row,
    "rule": rule_row, "roster": roster_row, "meta": tuple}


def _storable(row: Row) -> Row:
    """The row with every string SQLite's UTF-8 binding would refuse (one holding the
    surrogate escapes of non-UTF-8 input) turned into the bytes it came from."""
    out: list[object] | None = None
    for index, value in enumerate(row):
        if isinstance(value, str) and not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                if out is None:
                    out = list(row)
                out[index] = value.encode("utf-8", "surrogateescape")
    return row if out is None else tuple(out)


def _text(row: tuple[Any, ...], blobs: frozenset[int] = frozenset()) -> tuple[Any, ...]:
    """A row read back: BLOBs in text columns are the strings :func:`_storable` kept."""
    if not any(isinstance(v, bytes) for v in row):
        return row
    return tuple(v.decode("utf-8", "surrogateescape")
                 if isinstance(v, bytes) and i not in blobs else v for i, v in enumerate(row))


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


# Errors that lie in a row, not in the database: a value SQLite cannot bind or a
# constraint it breaks.  Writing that row again can never succeed.  Every other error
# (disk full, locked, read-only, I/O, a damaged page) is the database's and may pass.
_UNWRITABLE = (sqlite3.InterfaceError, sqlite3.ProgrammingError, sqlite3.IntegrityError,
               sqlite3.DataError, OverflowError, UnicodeEncodeError, TypeError, ValueError)


class SqliteStore:
    """Persistence in one SQLite file (``:memory:`` keeps it in memory, for tests).

    Opening checks that the file is a database of this schema that this process can
    lock and write; any other case raises :class:`StoreError` with one line that says
    what is wrong, for the operator to fix before starting again.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            # check_same_thread=False: opened here, used by the writer thread afterwards
            # (and by load() before the thread starts).
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None,
                                       timeout=BUSY_TIMEOUT_MS / 1000)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open {path}: {self._why(exc)}") from exc
        try:
            self._open()
            # Older SQLite builds allow 999 bound parameters per statement.
            self._max_variables = min(32766, self._db.getlimit(
                sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
        except (sqlite3.Error, StoreError) as exc:
            self._db.close()
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"cannot open {path}: {self._why(exc)}") from exc
        self._queue: queue.SimpleQueue[tuple[int, list[Op]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._done: Done | None = None
        self._submitted = 0
        # Rows of failed batches, written with the next one (the writer thread's).
        self._retry: dict[tuple[str, Hashable], Row | None] = {}
        self.batches_written = 0
        self.rows_written = 0
        self.write_failures = 0
        self.rows_dropped = 0
        self._loaded = False  # only a store that was loaded marks its clean shutdown

    def _open(self) -> None:
        db = self._db
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        version = self._meta("schema_version")
        if version == "1":
            # Version 2 records which device made each binding (Binding.source).
            db.execute("ALTER TABLE bindings ADD COLUMN source TEXT NOT NULL DEFAULT ''")
            version = "2"
        if version in ("2", "3"):
            # Version 3 adds the rules table, version 4 the roster (made above).
            version = None
        if version is None:
            self._set_meta("schema_version", str(SCHEMA_VERSION))
        elif version != str(SCHEMA_VERSION):
            raise StoreError(
                f"{self.path}: schema version {version}, this sipresence reads version "
                f"{SCHEMA_VERSION}" + (" (written by a newer sipresence)"
                                       if version.isdigit() and int(version) > SCHEMA_VERSION
                                       else ""))
        # Proves the file can be locked and written now, not at the first request.
        db.execute("BEGIN IMMEDIATE")
        db.execute("COMMIT")

    @staticmethod
    def _why(exc: BaseException) -> str:
        text = str(exc)
        if "not a database" in text or "malformed" in text:
            return f"{text} (the file is damaged or is no SQLite database)"
        if "locked" in text:
            return f"{text} (another process holds it)"
        if "readonly" in text or "read-only" in text:
            return f"{text} (no permission to write it)"
        return text

    # -- start-up ----------------------------------------------------------------------
    def load(self) -> Snapshot:
        """Read everything back, and mark the database as in use (not clean)."""
        try:
            return self._load()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read {self.path}: {self._why(exc)}") from exc
        except (ValueError, TypeError, KeyError) as exc:  # a row no sipresence wrote
            raise StoreError(f"cannot read {self.path}: a row does not hold what this "
                             f"sipresence writes ({_describe(exc)})") from exc

    def _load(self) -> Snapshot:
        clean = self._meta("clean_shutdown") != "0"
        body = frozenset({_PUB_COLUMNS.index("body")})
        publications = [
            Publication(*_text(row, body)) for row in self._db.execute(
                f"SELECT {', '.join(_PUB_COLUMNS)} FROM publications")]
        subscriptions = []
        for row in self._db.execute(f"SELECT {', '.join(_SUB_COLUMNS)} FROM subscriptions"):
            values = dict(zip(_SUB_COLUMNS, _text(row), strict=True))
            local_host, local_port = values.pop("local_host"), values.pop("local_port")
            values["local"] = (local_host, local_port) if local_host is not None else None
            values["route_set"] = json.loads(values["route_set"])
            values["state"] = SubState(values["state"])
            dialog = Dialog(**{name: values.pop(name) for name in _DIALOG_COLUMNS})
            subscription = Subscription(dialog=dialog, connection=None, **values)
            subscription.stored_cseq = dialog.local_cseq
            subscription.stored_version = subscription.version
            subscriptions.append(subscription)
        bindings = [Binding(*_text(row)[1:]) for row in self._db.execute(
            f"SELECT {', '.join(_BINDING_COLUMNS)} FROM bindings")]
        rules = [Rule(*_text(row)[1:]) for row in self._db.execute(
            f"SELECT {', '.join(_RULE_COLUMNS)} FROM rules")]
        roster = [RosterEntry(*_text(row)[1:]) for row in self._db.execute(
            f"SELECT {', '.join(_ROSTER_COLUMNS)} FROM roster")]
        clock = int(self._meta(PRESENCE_CLOCK) or 0)
        self._set_meta("clean_shutdown", "0")
        self._loaded = True
        return Snapshot(publications, subscriptions, clean, bindings, rules, clock, roster)

    def start(self, done: Done | None = None) -> None:
        """Start the writer thread; *done* hears of every batch, on that thread."""
        self._done = done
        self._thread = threading.Thread(target=self._write_loop, name="sipresence-store",
                                        daemon=True)
        self._thread.start()

    # -- the reactor side --------------------------------------------------------------
    def submit(self, ops: Iterable[Change]) -> int:
        """Hand journal operations to the writer; returns the batch's number.

        Rows are made now, on the caller's thread, so the writer never reads objects
        the core is changing.  Never blocks.  Before :meth:`start` the batch is
        written at once, and a failure raises :class:`StoreError`.
        """
        batch = [(kind, key, None if obj is None else _storable(_ROWS[kind](obj)))
                 for kind, key, obj in ops]
        self._submitted += 1
        if self._thread is None:
            error = self._write([batch])
            if error is not None:
                raise StoreError(_describe(error)) from error
        else:
            self._queue.put((self._submitted, batch))
        return self._submitted

    def close(self) -> bool:
        """Write everything queued, mark a clean shutdown and close the file.

        Returns False, after logging why, when something could not be written: the
        mark is then left off, and the next start says so.
        """
        if self._thread is not None:
            self._queue.put(None)  # the writer's last item
            self._thread.join()
            self._thread = None
        clean = not self._retry
        try:
            if self._retry:
                error = self._write([])
                clean = error is None
                if error is not None:
                    log.error("%d changes could not be written before stopping: %s",
                              len(self._retry), _describe(error))
            if clean and self._loaded:
                self._set_meta("clean_shutdown", "1")
        except sqlite3.Error as exc:
            log.error("could not mark a clean shutdown: %s", _describe(exc))
            clean = False
        self._db.close()
        return clean

    def health(self) -> StoreHealth:
        return StoreHealth(self.batches_written, self.rows_written, self.write_failures,
                           self.rows_dropped)

    # -- the writer thread -------------------------------------------------------------
    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            items = [item]
            while True:  # everything queued meanwhile goes into the same commit
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            batches = [b for b in items if b is not None]
            if batches:
                error = self._write([batch for _, batch in batches])
                if self._done is not None:
                    for number, _ in batches:
                        self._done(number, error)
            stop = len(batches) < len(items)
            if stop:
                return

    def _write(self, batches: list[list[Op]]) -> BaseException | None:
        """Write the rows kept from failed batches and *batches* in one transaction;
        None when committed, else the error (the rows are then kept for the next)."""
        latest = self._retry
        self._retry = {}
        for batch in batches:
            for kind, key, row in batch:
                latest[(kind, key)] = row  # later batches win
        try:
            self._commit(latest)
        except _UNWRITABLE as exc:
            self._rollback()
            self.write_failures += 1
            self._drop_unwritable(latest)
            if self._retry:
                return exc  # and the database failed too meanwhile
            self.batches_written += 1
            return RowsRefused(_describe(exc))
        except Exception as exc:  # noqa: BLE001 - the database's: kept for the next try
            self._rollback()
            self._retry = latest
            self.write_failures += 1
            return exc
        self.batches_written += 1
        self.rows_written += len(latest)
        return None

    def _commit(self, latest: dict[tuple[str, Hashable], Row | None]) -> None:
        """One transaction in as few statements as the rows allow.

        sqlite3 lets go of the GIL for every statement step and must win it back
        from the reactor thread after each, which costs up to the interpreter's
        switch interval when the reactor is busy: one multi-row statement per table
        and kind of change, instead of one step per row (executemany), is what keeps
        a commit short under load.
        """
        puts: dict[str, list[Row]] = {}
        deletes: dict[str, list[Hashable]] = {}
        for (kind, key), row in latest.items():
            if row is None:
                deletes.setdefault(kind, []).append(key)
            else:
                puts.setdefault(kind, []).append(row)
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        for kind, keys in deletes.items():
            table, primary, _ = _TABLES[kind]
            for chunk in self._chunks(keys, 1):
                db.execute(f"DELETE FROM {table} WHERE {primary} IN "
                           f"({', '.join('?' * len(chunk))})", chunk)
        for kind, rows in puts.items():
            table, _, columns = _TABLES[kind]
            marks = f"({', '.join('?' * len(columns))})"
            for chunk in self._chunks(rows, len(columns)):
                db.execute(f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) VALUES "
                           + ", ".join([marks] * len(chunk)),
                           [value for row in chunk for value in row])
        db.execute("COMMIT")

    def _chunks(self, items: list[Any], width: int) -> Iterator[list[Any]]:
        """*items* in runs that keep a statement within SQLite's bound parameters."""
        size = max(1, self._max_variables // width)
        for start in range(0, len(items), size):
            yield items[start:start + size]

    def _rollback(self) -> None:
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the failed statement may have ended the transaction already

    def _drop_unwritable(self, latest: dict[tuple[str, Hashable], Row | None]) -> None:
        """Find the rows no retry could ever write, log and leave them out; the rest
        is written, or kept for the next batch if the database fails meanwhile."""
        keep: dict[tuple[str, Hashable], Row | None] = {}
        for item, row in latest.items():
            try:
                self._commit({item: row})
            except _UNWRITABLE as exc:
                self._rollback()
                self.rows_dropped += 1
                log.error("cannot store %s %r, left out: %s", item[0], item[1], _describe(exc))
            except Exception:  # noqa: BLE001 - the database's: kept for the next try
                self._rollback()
                keep[item] = row
            else:
                self.rows_written += 1
        self._retry = keep

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                         (key, value))
