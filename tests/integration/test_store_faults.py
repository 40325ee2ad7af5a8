"""Store faults on the running agent (issue 9.2): loud, bounded, recoverable.

A second process takes SQLite's write lock while the agent runs: the PUBLISH whose
commit fails is answered 500 (never 200), the next change 503 with Retry-After,
OPTIONS and NOTIFYs go on, and once the lock is let go the agent writes again, by
itself, and what it could not write before is on disk.  A database it cannot use
at start stops it with one line and exit status 1.
"""

from __future__ import annotations

import http.client
import json
import sqlite3
import subprocess
import sys
import time

import pytest

from sipresence.sip.message import Request
from sipresence.sip.parser import parse_datagram
from sipresence.sip.uas import make_response
from tests.support.server import start_server
from tests.support.sip import UdpClient, request

PIDF = ('<?xml version="1.0"?><presence xmlns="urn:ietf:params:xml:ns:pidf" '
        'entity="sip:alice@127.0.0.1"><tuple id="t"><status><basic>{basic}</basic>'
        '</status></tuple></presence>')

LOCKER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
"""


def publish(client: UdpClient, basic: str, etag: str | None = None):
    headers = "Event: presence\r\nContent-Type: application/pidf+xml\r\n"
    if etag:
        headers += f"SIP-If-Match: {etag}\r\n"
    return client.ask("PUBLISH", uri="sip:alice@127.0.0.1", to="sip:alice@127.0.0.1",
                      headers=headers, body=PIDF.format(basic=basic).encode())


def final(client: UdpClient, timeout: float = 10.0):
    """The next response that is no NOTIFY's; NOTIFYs are answered 200 on the way."""
    end = time.monotonic() + timeout
    while True:
        client.sock.settimeout(max(0.01, end - time.monotonic()))
        data, source = client.sock.recvfrom(65535)
        message = parse_datagram(data)
        if isinstance(message, Request):
            client.sock.sendto(make_response(message, 200).to_bytes(), source)
            continue
        return message


def test_a_locked_database_gets_500_then_503_and_the_agent_writes_again_by_itself(tmp_path):
    db = tmp_path / "state.sqlite3"
    agent = start_server(tmp_path, listen=("udp:127.0.0.1:0",), db=str(db))
    publisher = UdpClient(agent.udp)
    watcher = UdpClient(agent.udp)
    try:
        assert publish(publisher, "open").status == 200
        watcher.send(request("SUBSCRIBE", agent.udp, watcher.local, uri="sip:alice@127.0.0.1",
                             to="sip:alice@127.0.0.1", headers=(
                                 "Event: presence\r\nExpires: 600\r\n"
                                 f"Contact: <sip:bob@127.0.0.1:{watcher.local[1]}>\r\n")))
        assert final(watcher).status == 200
        locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(db)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert locker.stdout.readline() == "locked\n"
            # The agent waits for the lock (2 s), then gives up: not a 200.
            publisher.send(request("PUBLISH", agent.udp, publisher.local,
                                   uri="sip:alice@127.0.0.1", to="sip:alice@127.0.0.1",
                                   headers="Event: presence\r\n"
                                   "Content-Type: application/pidf+xml\r\n",
                                   body=PIDF.format(basic="closed").encode()))
            answer = final(publisher)
            assert (answer.status, answer.reason) == (500, "Store Failure")
            agent.wait_for_line("the store cannot write")
            refused = publish(publisher, "open")
            assert refused.status == 503 and refused.headers.get("retry-after")
            assert publisher.ask("OPTIONS").status == 200  # reads go on
            api = http.client.HTTPConnection(*agent.http, timeout=10)
            api.request("PUT", "/v1/presentities/alice%40127.0.0.1", body=b'{"basic": "open"}',
                        headers={"Content-Type": "application/json"})
            refused_put = api.getresponse()
            assert refused_put.status == 503 and refused_put.getheader("retry-after")
            assert "cannot write" in json.loads(refused_put.read())["error"]
            api.request("GET", "/v1/presentities/alice%40127.0.0.1")
            assert json.loads(api.getresponse().read())["basic"] == "closed"
            # The watcher still hears of the change made before the failure (its
            # NOTIFY is not held while the store fails).
            notify = None
            watcher.sock.settimeout(10)
            while notify is None:
                data, source = watcher.sock.recvfrom(65535)
                message = parse_datagram(data)
                if isinstance(message, Request) and b"closed" in message.body:
                    notify = message
                if isinstance(message, Request):
                    watcher.sock.sendto(make_response(message, 200).to_bytes(), source)
        finally:
            locker.communicate("")
        agent.wait_for_line("the store writes again", timeout=20)
        last = publish(publisher, "open")
        assert last.status == 200
    finally:
        assert agent.stop() == 0
        publisher.close()
        watcher.close()
    # One device, one publication: the last one acknowledged is what is on disk.
    rows = sqlite3.connect(db).execute("SELECT etag FROM publications").fetchall()
    assert rows == [(last.headers.get("sip-etag"),)]


LOCK_ALL = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize("damage, expected", [
    ("garbage", "file is not a database"),
    ("truncated", "malformed"),
    ("newer schema", "written by a newer sipresence"),
    ("locked", "another process holds it"),
])
def test_a_database_it_cannot_use_stops_the_start_with_one_line_and_status_1(
        tmp_path, damage, expected):
    db = tmp_path / "state.sqlite3"
    locker = None
    if damage == "garbage":
        db.write_bytes(b"\x00garbage\xff" * 500)
    else:
        good = start_server(tmp_path, listen=("udp:127.0.0.1:0",), db=str(db))
        put = http.client.HTTPConnection(*good.http, timeout=10)
        for n in range(60):  # pages enough that a third of the file cuts through data
            put.request("PUT", f"/v1/presentities/u{n}%40127.0.0.1", headers={
                "Content-Type": "application/json"},
                body=json.dumps({"basic": "open", "note": "x" * 900}).encode())
            assert put.getresponse().read()
        assert good.stop() == 0
        if damage == "truncated":
            data = db.read_bytes()
            db.write_bytes(data[:len(data) // 3])
        elif damage == "newer schema":
            connection = sqlite3.connect(db)
            connection.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
            connection.commit()
            connection.close()
        else:
            locker = subprocess.Popen([sys.executable, "-c", LOCK_ALL, str(db)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert locker.stdout.readline() == "locked\n"
    try:
        agent = start_server(tmp_path, listen=("udp:127.0.0.1:0",), http=None, db=str(db),
                             expect_ready=False)
    finally:
        if locker is not None:
            locker.communicate("")
    assert agent.proc.returncode == 1
    errors = [line for line in agent.lines if "cannot start" in line]
    assert len(errors) == 1 and expected in errors[0] and str(db) in errors[0]
    assert "Traceback" not in agent.output()
