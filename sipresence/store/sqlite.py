"""The embedded default store: SQLite in WAL mode, written by one thread in batches.

The reactor thread never waits for the disk.  Every 50 ms it hands the journal's
operations, already turned into plain rows, to a bounded queue; one writer thread
takes everything queued, writes it in a single transaction and commits.  At
shutdown the queue is drained and the database marked cleanly closed; a start that
finds no such mark knows the last batches may be lost.  Counters are stored as
reservations ahead of their values (see ``Subscription``), so a lost batch never
makes a CSeq or a document version go back.
"""

from __future__ import annotations

import json
import queue
import sqlite3
import threading
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..presence.policy import Rule
from ..presence.presentity import PRESENCE_CLOCK
from ..presence.publications import Publication
from ..presence.registrar import Binding
from ..presence.subscriptions import Subscription, SubState

__all__ = ["SqliteStore", "Snapshot", "SCHEMA_VERSION"]

SCHEMA_VERSION = 3
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
"""
_PUB_COLUMNS = ("etag", "resource", "package", "content_type", "body", "expires_at",
                "updated_at", "publisher", "call_id")
_SUB_COLUMNS = ("id", "package", "resource", "event_id", "watcher", "watcher_display",
                "call_id", "local_tag", "remote_tag", "local_uri", "remote_uri",
                "remote_target", "route_set", "local_cseq", "remote_cseq", "transport",
                "host", "port", "local_host", "local_port", "content_type", "state",
                "expires_at", "created_at", "version")
_BINDING_COLUMNS = ("key", "aor", "contact", "uri", "instance", "reg_id", "q", "call_id",
                    "cseq", "expires_at", "updated_at", "user_agent", "source")
_RULE_COLUMNS = ("key", "presentity", "watcher", "action")
_TABLES = {"publication": ("publications", "etag", _PUB_COLUMNS),
           "subscription": ("subscriptions", "id", _SUB_COLUMNS),
           "binding": ("bindings", "key", _BINDING_COLUMNS),
           "rule": ("rules", "key", _RULE_COLUMNS),
           "meta": ("meta", "key", ("key", "value"))}
_STOP = object()


@dataclass
class Snapshot:
    """Everything read back at start-up."""

    publications: list[Publication]
    subscriptions: list[Subscription]
    clean: bool  # False: the last run did not shut down cleanly
    bindings: list[Binding] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    clock: int = 0  # the presentity version clock as reserved (Presentities)


def publication_row(p: Publication) -> tuple[object, ...]:
    return (p.etag, p.resource, p.package, p.content_type, p.body, p.expires_at,
            p.updated_at, p.publisher, p.call_id)


def subscription_row(s: Subscription) -> tuple[object, ...]:
    """The row of a subscription; its counters as reserved (see Subscription)."""
    local_host, local_port = s.local if s.local is not None else (None, None)
    cseq, version = s.stored_counters
    return (s.id, s.package, s.resource, s.event_id, s.watcher, s.watcher_display,
            s.call_id, s.local_tag, s.remote_tag, s.local_uri, s.remote_uri,
            s.remote_target, json.dumps(s.route_set), max(s.local_cseq, cseq), s.remote_cseq,
            s.transport, s.host, s.port, local_host, local_port, s.content_type,
            s.state.value, s.expires_at, s.created_at, max(s.version, version))


def binding_row(b: Binding) -> tuple[object, ...]:
    return (b.store_key, b.aor, b.contact, b.uri, b.instance, b.reg_id, b.q, b.call_id,
            b.cseq, b.expires_at, b.updated_at, b.user_agent, b.source)


def rule_row(r: Rule) -> tuple[object, ...]:
    return (r.store_key, r.presentity, r.watcher, r.action)


_ROWS: dict[str, Callable[[Any], tuple[object, ...]]] = {
    "publication": publication_row, "subscription": subscription_row, "binding": binding_row,
    "rule": rule_row, "meta": tuple}


class SqliteStore:
    """Persistence in one SQLite file (``:memory:`` keeps it in memory, for tests)."""

    def __init__(self, path: str, *, queue_size: int = 10000) -> None:
        self.path = path
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # check_same_thread=False: opened here, used by the writer thread afterwards
        # (and by load() before the thread starts).
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        version = self._meta("schema_version")
        if version == "1":
            # Version 2 records which device made each binding (Binding.source).
            self._db.execute("ALTER TABLE bindings ADD COLUMN source TEXT NOT NULL DEFAULT ''")
            version = "2"
        if version == "2":
            version = None  # version 3 adds the rules table, made above
        if version is None:
            self._set_meta("schema_version", str(SCHEMA_VERSION))
        elif int(version) != SCHEMA_VERSION:
            raise RuntimeError(f"{path}: schema version {version}, expected {SCHEMA_VERSION}")
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
        self.batches_written = 0
        self.rows_written = 0

    # -- start-up ----------------------------------------------------------------------
    def load(self) -> Snapshot:
        """Read everything back, and mark the database as in use (not clean)."""
        clean = self._meta("clean_shutdown") != "0"
        publications = [
            Publication(*row) for row in self._db.execute(
                f"SELECT {', '.join(_PUB_COLUMNS)} FROM publications")]
        subscriptions = []
        for row in self._db.execute(f"SELECT {', '.join(_SUB_COLUMNS)} FROM subscriptions"):
            values = dict(zip(_SUB_COLUMNS, row, strict=True))
            local_host, local_port = values.pop("local_host"), values.pop("local_port")
            values["local"] = (local_host, local_port) if local_host is not None else None
            values["route_set"] = json.loads(values["route_set"])
            values["state"] = SubState(values["state"])
            subscription = Subscription(connection=None, **values)
            subscription.stored_counters = (subscription.local_cseq, subscription.version)
            subscriptions.append(subscription)
        bindings = [Binding(*row[1:]) for row in self._db.execute(
            f"SELECT {', '.join(_BINDING_COLUMNS)} FROM bindings")]
        rules = [Rule(*row[1:]) for row in self._db.execute(
            f"SELECT {', '.join(_RULE_COLUMNS)} FROM rules")]
        clock = int(self._meta(PRESENCE_CLOCK) or 0)
        self._set_meta("clean_shutdown", "0")
        return Snapshot(publications, subscriptions, clean, bindings, rules, clock)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._write_loop, name="sipresence-store",
                                        daemon=True)
        self._thread.start()

    # -- the reactor side --------------------------------------------------------------
    def submit(self, ops: Iterable[tuple[str, Hashable, object | None]]) -> None:
        """Queue journal operations; rows are made now, on the caller's thread, so
        the writer never reads objects the core is changing."""
        batch = [(kind, key, None if obj is None else _ROWS[kind](obj))
                 for kind, key, obj in ops]
        if not batch:
            return
        if self._thread is None:
            self._write([batch])
        else:
            self._queue.put(batch)

    def close(self) -> None:
        """Write everything queued, mark a clean shutdown and close the file."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None
        self._set_meta("clean_shutdown", "1")
        self._db.close()

    # -- the writer thread -------------------------------------------------------------
    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            batches = [] if item is _STOP else [item]
            stop = item is _STOP
            while not stop:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stop = True
                else:
                    batches.append(more)
            if batches:
                self._write(batches)  # type: ignore[arg-type]
            if stop:
                return

    def _write(self, batches: list[list[tuple[str, Hashable, tuple[object, ...] | None]]]) -> None:
        """One transaction for everything queued; rows grouped so that sqlite3 loops
        in C (executemany) instead of a Python call per row."""
        puts: dict[str, list[tuple[object, ...]]] = {}
        deletes: dict[str, list[tuple[Hashable]]] = {}
        latest: dict[tuple[str, Hashable], tuple[object, ...] | None] = {}
        for batch in batches:
            for kind, key, row in batch:
                latest[(kind, key)] = row  # later batches win
        for (kind, key), row in latest.items():
            if row is None:
                deletes.setdefault(kind, []).append((key,))
            else:
                puts.setdefault(kind, []).append(row)
        db = self._db
        db.execute("BEGIN")
        for kind, keys in deletes.items():
            table, primary, _ = _TABLES[kind]
            db.executemany(f"DELETE FROM {table} WHERE {primary} = ?", keys)
        for kind, rows in puts.items():
            table, _, columns = _TABLES[kind]
            marks = ", ".join("?" * len(columns))
            db.executemany(f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) "
                           f"VALUES ({marks})", rows)
        db.execute("COMMIT")
        self.batches_written += 1
        self.rows_written += len(latest)

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                         (key, value))
