"""Store faults are loud, bounded and recoverable (issue 9.2), on the real SQLite store."""

from __future__ import annotations

import logging
import queue
import sqlite3
import subprocess
import sys
from dataclasses import replace

import pytest

from sipresence.presence.publications import Publication
from sipresence.store.base import RowsRefused, StoreError
from sipresence.store.sqlite import SCHEMA_VERSION, SqliteStore


def publication(etag="e1", body=b"<presence/>", publisher="udp:192.0.2.1:5060"):
    return Publication(etag, "sip:alice@example.com", "presence", "application/pidf+xml",
                       body, 3600.0, 1.0, publisher, "call-1")


class Reports:
    """What the writer thread reports, waited for without sleeping."""

    def __init__(self) -> None:
        self.queue: queue.Queue[tuple[int, BaseException | None]] = queue.Queue()

    def __call__(self, batch: int, error: BaseException | None) -> None:
        self.queue.put((batch, error))

    def next(self) -> tuple[int, BaseException | None]:
        return self.queue.get(timeout=10)


def started(path):
    store = SqliteStore(str(path))
    store.load()
    reports = Reports()
    store.start(reports)
    return store, reports


def stored_etags(path) -> list[str]:
    store = SqliteStore(str(path))
    try:
        return sorted(p.etag for p in store.load().publications)
    finally:
        store.close()


def test_a_full_disk_fails_the_batch_keeps_its_rows_and_writing_resumes(tmp_path):
    path = tmp_path / "db.sqlite3"
    store, reports = started(path)
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages}")
    batch = store.submit([("publication", "big", publication("big", b"x" * 200_000))])
    assert reports.next()[0] == batch
    store.submit([("publication", "e2", publication("e2"))])
    _, error = reports.next()
    assert isinstance(error, sqlite3.OperationalError) and "full" in str(error)
    store._db.execute("PRAGMA max_page_count = 1000000")  # space again
    retry = store.submit([])  # the next batch brings the kept rows along
    assert reports.next() == (retry, None)
    assert store.close()
    assert stored_etags(path) == ["big", "e2"]


def test_a_read_only_database_fails_the_batch_and_writing_resumes(tmp_path):
    path = tmp_path / "db.sqlite3"
    store, reports = started(path)
    store._db.execute("PRAGMA query_only = 1")  # as a file the process may not write
    store.submit([("publication", "e1", publication())])
    _, error = reports.next()
    assert "readonly" in str(error)
    store._db.execute("PRAGMA query_only = 0")
    batch = store.submit([])
    assert reports.next() == (batch, None)
    store.close()
    assert stored_etags(path) == ["e1"]


LOCKER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
"""


def test_another_process_holding_the_write_lock_fails_the_batch_until_it_lets_go(tmp_path):
    path = tmp_path / "db.sqlite3"
    store, reports = started(path)
    store._db.execute("PRAGMA busy_timeout = 200")
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout.readline() == "locked\n"
        store.submit([("publication", "e1", publication())])
        _, error = reports.next()
        assert "locked" in str(error)
    finally:
        locker.communicate("")
    batch = store.submit([])
    assert reports.next() == (batch, None)
    store.close()
    assert stored_etags(path) == ["e1"]


def test_a_row_that_can_never_be_written_is_left_out_loudly_and_blocks_nothing(
        tmp_path, caplog):
    path = tmp_path / "db.sqlite3"
    store, reports = started(path)
    poison = replace(publication("bad"), expires_at=2 ** 70)  # no SQLite integer holds it
    with caplog.at_level(logging.ERROR, logger="sipresence.store"):
        store.submit([("publication", "bad", poison), ("publication", "e1", publication())])
        _, error = reports.next()
    assert isinstance(error, RowsRefused) and "OverflowError" in str(error)
    assert "cannot store publication 'bad'" in caplog.text
    batch = store.submit([("publication", "e2", publication("e2"))])
    assert reports.next() == (batch, None)
    assert store.rows_dropped == 1
    store.close()
    assert stored_etags(path) == ["e1", "e2"]


def test_text_that_was_not_utf8_on_the_wire_is_kept_byte_for_byte(tmp_path):
    path = tmp_path / "db.sqlite3"
    raw = b"udp:\xff\xfe:5060 M\xfcller"
    text = raw.decode("utf-8", "surrogateescape")  # as the parser keeps it
    store, reports = started(path)
    store.submit([("publication", "e1", publication(publisher=text))])
    assert reports.next()[1] is None
    store.close()
    again = SqliteStore(str(path))
    [restored] = again.load().publications
    again.close()
    assert restored.publisher.encode("utf-8", "surrogateescape") == raw
    assert restored.body == b"<presence/>"


def test_a_store_that_cannot_write_at_shutdown_says_so_and_is_not_marked_clean(tmp_path):
    path = tmp_path / "db.sqlite3"
    store, reports = started(path)
    store._db.execute("PRAGMA query_only = 1")
    store.submit([("publication", "e1", publication())])
    reports.next()
    assert store.close() is False
    again = SqliteStore(str(path))
    assert not again.load().clean
    again.close()


def make_database(path) -> None:
    store = SqliteStore(str(path))
    store.load()
    store.submit([("publication", f"e{i}", publication(f"e{i}", b"x" * 3000))
                  for i in range(100)])
    store.close()


@pytest.mark.parametrize("damage, expected", [
    ("garbage", "file is not a database"),
    ("truncated", "malformed"),
    ("newer schema", f"schema version 99, this sipresence reads version {SCHEMA_VERSION} "
                     "(written by a newer sipresence)"),
])
def test_a_database_it_cannot_use_is_refused_at_start_with_one_clear_reason(
        tmp_path, damage, expected):
    path = tmp_path / "db.sqlite3"
    if damage == "garbage":
        path.write_bytes(b"this is not a database at all\n" * 200)
    else:
        make_database(path)
        if damage == "truncated":
            data = path.read_bytes()
            path.write_bytes(data[:len(data) // 3])
        else:
            db = sqlite3.connect(path)
            db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
            db.commit()
            db.close()
    with pytest.raises(StoreError) as caught:
        SqliteStore(str(path)).load()
    assert expected in str(caught.value) and str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_row_no_sipresence_wrote_is_refused_at_start_with_one_clear_reason(tmp_path):
    path = tmp_path / "db.sqlite3"
    make_database(path)
    db = sqlite3.connect(path)
    db.execute("INSERT INTO subscriptions VALUES ('x', 'presence', 'r', NULL, 'w', NULL, 'c',"
               " 'l', 'r', 'u', 'u', 't', 'not json', 1, 1, 'UDP', 'h', 1, NULL, NULL, 'ct',"
               " 'active', 1.0, 1.0, 1)")
    db.commit()
    db.close()
    store = SqliteStore(str(path))
    with pytest.raises(StoreError, match="a row does not hold what this sipresence writes"):
        store.load()
    store.close()
