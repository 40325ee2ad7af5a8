"""SQLite persistence: round trips, batching on the writer thread, clean-shutdown mark."""

from __future__ import annotations

from dataclasses import replace

from sipresence.presence.journal import Journal
from sipresence.presence.publications import Publication
from sipresence.presence.subscription import Subscription, SubState
from sipresence.sip.dialog import Dialog
from sipresence.store.sqlite import SqliteStore


def publication(etag="e1"):
    return Publication(etag, "sip:alice@example.com", "presence", "application/pidf+xml",
                       b"<presence/>", 3600.0, 1.0, "udp:192.0.2.1:5060", "call-1")


def subscription(sid="s1", cseq=3):
    return Subscription(
        id=sid, package="presence", resource="sip:alice@example.com", event_id="7",
        watcher="sip:bob@example.com", watcher_display="Bob", dialog=Dialog(
            call_id="c", local_tag="lt", remote_tag="rt", local_uri="sip:alice@example.com",
            remote_uri="sip:bob@example.com", remote_target="sip:bob@192.0.2.7:5070",
            route_set=["<sip:p.example.com;lr>"], local_cseq=cseq, remote_cseq=1),
        transport="TCP", host="192.0.2.7", port=5070,
        connection=12, local=("127.0.0.1", 5060), content_type="application/pidf+xml",
        state=SubState.ACTIVE, expires_at=600.0, created_at=0.0, version=4)


def test_everything_round_trips_and_a_clean_close_is_recorded(tmp_path):
    path = str(tmp_path / "db.sqlite3")
    store = SqliteStore(path)
    assert store.load().clean  # a new database counts as clean
    store.start()
    journal = Journal()
    journal.put("publication", "e1", publication())
    journal.put("subscription", "s1", subscription())
    store.submit(journal.drain())
    store.close()

    again = SqliteStore(path)
    snapshot = again.load()
    assert snapshot.clean
    assert snapshot.publications == [publication()]
    [restored] = snapshot.subscriptions
    assert restored == replace(subscription(), connection=None)  # connections do not survive
    again.close()


def test_a_start_without_clean_close_is_reported(tmp_path):
    path = str(tmp_path / "db.sqlite3")
    store = SqliteStore(path)
    store.load()
    store.submit([("subscription", "s1", subscription())])
    store._db.close()  # the process died: no close()
    assert not SqliteStore(path).load().clean


def test_the_journal_coalesces_and_deletes(tmp_path):
    store = SqliteStore(":memory:")
    store.load()
    journal = Journal()
    sub = subscription()
    journal.put("subscription", "s1", sub)
    sub.dialog.local_cseq = 9
    journal.put("subscription", "s1", sub)
    journal.put("publication", "e1", publication())
    assert len(journal) == 2
    store.submit(journal.drain())
    assert store.rows_written == 2
    journal.delete("publication", "e1")
    store.submit(journal.drain())
    snapshot = store.load()
    assert snapshot.publications == []
    assert snapshot.subscriptions[0].dialog.local_cseq == 9


def test_the_writer_thread_commits_queued_batches_together(tmp_path):
    store = SqliteStore(str(tmp_path / "db.sqlite3"))
    store.load()
    store.start()
    for i in range(200):
        store.submit([("subscription", f"s{i}", subscription(f"s{i}", cseq=i))])
    store.close()
    assert store.rows_written == 200 and store.batches_written <= 200
    snapshot = SqliteStore(str(tmp_path / "db.sqlite3")).load()
    assert sorted(s.dialog.local_cseq for s in snapshot.subscriptions) == list(range(200))


def test_registrar_bindings_round_trip(tmp_path):
    from sipresence.presence.registrar import Binding

    binding = Binding("sip:alice@example.com", '<sip:alice@192.0.2.7>;+sip.instance="<urn:x>"',
                      "sip:alice@192.0.2.7", "<urn:x>", "1", 0.5, "reg-1", 4, 3600.0, 10.0,
                      "phone/1.0", "UDP:192.0.2.7:5060")
    store = SqliteStore(str(tmp_path / "db.sqlite3"))
    store.load()
    store.submit([("binding", binding.store_key, binding)])
    store.close()
    assert SqliteStore(str(tmp_path / "db.sqlite3")).load().bindings == [binding]


def test_a_version_1_database_is_migrated_and_keeps_its_bindings(tmp_path):
    import sqlite3

    path = tmp_path / "v1.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1'), ('clean_shutdown', '1');
        CREATE TABLE bindings (
            key TEXT PRIMARY KEY, aor TEXT NOT NULL, contact TEXT NOT NULL, uri TEXT NOT NULL,
            instance TEXT, reg_id TEXT, q REAL NOT NULL, call_id TEXT NOT NULL,
            cseq INTEGER NOT NULL, expires_at REAL NOT NULL, updated_at REAL NOT NULL,
            user_agent TEXT NOT NULL);
        INSERT INTO bindings VALUES ('sip:a@x
sip:a@192.0.2.7', 'sip:a@x', '<sip:a@192.0.2.7>',
            'sip:a@192.0.2.7', NULL, NULL, 1.0, 'r1', 1, 3600.0, 1.0, 'phone');
    """)
    db.commit()
    db.close()
    [binding] = SqliteStore(str(path)).load().bindings
    assert (binding.uri, binding.source) == ("sip:a@192.0.2.7", "")
    reopened = sqlite3.connect(path).execute(
        "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    assert reopened == ("4",)  # with the rules table of version 3 and the roster of 4


def test_the_database_file_is_in_wal_journal_mode(tmp_path):
    """WAL: the writer thread's commits never block readers (and survive a crash)."""
    import sqlite3

    path = tmp_path / "db.sqlite3"
    store = SqliteStore(str(path))
    store.load()
    store.close()
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()
    assert mode == ("wal",)
