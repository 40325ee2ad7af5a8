"""Nothing acknowledged is lost (issue 9.1): SIGKILL the instant a 200 arrives.

Four UDP sockets keep requests in flight (new publications, registrations and
subscriptions, each for its own address) and an HTTP client sets API sources, all as
fast as the agent answers.  The instant the agent's answers pass a count, on the very
next 200, the agent is killed with SIGKILL, with other requests still in flight.
Whatever 200 reached a client, including those already in its socket buffer, was an
acknowledgement; after a restart on the same database every one of them must be
there: each entity tag still refreshes, each registration is listed, each watcher is
known, each API source is composed.
"""

from __future__ import annotations

import http.client
import json
import os
import select
import signal
import threading
import urllib.parse
from dataclasses import dataclass, field

from sipresence.sip.message import Request, Response
from sipresence.sip.parser import parse_datagram
from sipresence.sip.uas import make_response
from tests.support.server import start_server
from tests.support.sip import UdpClient, request

SOCKETS = 4
IN_FLIGHT = 8  # per socket
KILL_AFTER = 400  # 200s seen before the one that triggers SIGKILL

PIDF = ('<?xml version="1.0"?><presence xmlns="urn:ietf:params:xml:ns:pidf" '
        'entity="sip:{user}@127.0.0.1"><tuple id="t"><status><basic>open</basic>'
        '</status></tuple></presence>')


@dataclass
class Acked:
    publications: dict[str, str] = field(default_factory=dict)  # etag -> user
    registrations: list[str] = field(default_factory=list)
    subscriptions: list[str] = field(default_factory=list)  # presentities watched
    api: list[str] = field(default_factory=list)

    def count(self) -> int:
        return (len(self.publications) + len(self.registrations) + len(self.subscriptions)
                + len(self.api))


class Loader:
    """Keeps IN_FLIGHT requests outstanding on each socket; remembers what each
    Call-ID asked for, so that its 200 can be recorded as what it acknowledges."""

    def __init__(self, server: tuple[str, int]) -> None:
        self.server = server
        self.clients = [UdpClient(server) for _ in range(SOCKETS)]
        for client in self.clients:
            client.sock.setblocking(False)
        self.asked: dict[str, tuple[str, str]] = {}  # call-id -> (kind, user)
        self.sequence = 0
        self.acked = Acked()

    def send_next(self, client: UdpClient) -> None:
        n = self.sequence
        self.sequence += 1
        kind = ("publish", "register", "subscribe")[n % 3]
        user = f"{kind[0]}{n}"
        call_id = f"durable-{n}"
        self.asked[call_id] = (kind, user)
        uri = f"sip:{user}@127.0.0.1"
        if kind == "publish":
            data = request("PUBLISH", self.server, client.local, uri=uri, to=uri,
                           call_id=call_id, headers="Event: presence\r\nExpires: 3600\r\n"
                           "Content-Type: application/pidf+xml\r\n",
                           body=PIDF.format(user=user).encode())
        elif kind == "register":
            data = request("REGISTER", self.server, client.local, uri="sip:127.0.0.1", to=uri,
                           call_id=call_id, headers=f"Contact: <sip:{user}@127.0.0.1:"
                           f"{client.local[1]}>\r\nExpires: 3600\r\n")
        else:
            data = request("SUBSCRIBE", self.server, client.local, uri=uri, to=uri,
                           call_id=call_id, headers="Event: presence\r\nExpires: 3600\r\n"
                           f"Contact: <sip:w{n}@127.0.0.1:{client.local[1]}>\r\n")
        client.sock.sendto(data, self.server)

    def receive(self, client: UdpClient) -> int:
        """Read what waits on *client*; returns how many 200s came."""
        oks = 0
        while True:
            try:
                data, source = client.sock.recvfrom(65535)
            except BlockingIOError:
                return oks
            message = parse_datagram(data)
            if isinstance(message, Request):  # a NOTIFY
                client.sock.sendto(make_response(message, 200).to_bytes(), source)
                continue
            assert isinstance(message, Response), data
            if message.cseq.method == "NOTIFY" or message.call_id not in self.asked:
                continue
            kind, user = self.asked.pop(message.call_id)
            assert message.status == 200, (kind, message.status, message.reason)
            oks += 1
            if kind == "publish":
                self.acked.publications[message.headers.get("sip-etag")] = user
            elif kind == "register":
                self.acked.registrations.append(user)
            else:
                self.acked.subscriptions.append(user)


def put_api_sources(http_address, acked: Acked, going: threading.Event,
                    stop: threading.Event) -> None:
    connection = http.client.HTTPConnection(*http_address, timeout=10)
    n = 0
    try:
        while not stop.is_set():
            user = f"a{n}"
            n += 1
            connection.request("PUT", f"/v1/presentities/{user}%40127.0.0.1",
                               body=json.dumps({"basic": "open", "note": user}),
                               headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                acked.api.append(user)
                going.set()
    except (OSError, http.client.HTTPException):
        pass  # the agent was killed mid-request: that one was not acknowledged


def test_every_answer_received_before_sigkill_is_found_after_the_restart(tmp_path):
    db = str(tmp_path / "state.sqlite3")
    agent = start_server(tmp_path, listen=("udp:127.0.0.1:0",), db=db)
    loader = Loader(agent.udp)
    going, stop = threading.Event(), threading.Event()
    api = threading.Thread(target=put_api_sources,
                           args=(agent.http, loader.acked, going, stop))
    api.start()
    assert going.wait(10), "the HTTP API answered no PUT"
    for client in loader.clients:
        for _ in range(IN_FLIGHT):
            loader.send_next(client)
    seen = 0
    try:
        while True:
            readable, _, _ = select.select([c.sock for c in loader.clients], [], [], 10)
            assert readable, "the agent stopped answering"
            client = next(c for c in loader.clients if c.sock in readable)
            oks = loader.receive(client)
            seen += oks
            if seen > KILL_AFTER and oks:
                os.kill(agent.proc.pid, signal.SIGKILL)  # the instant a 200 arrived
                break
            for _ in range(oks):
                loader.send_next(client)
    finally:
        stop.set()
        agent.proc.wait(10)
        api.join(10)
    in_flight = len(loader.asked)
    for client in loader.clients:  # answers already in the buffers were acknowledgements
        loader.receive(client)
    acked = loader.acked
    assert in_flight >= SOCKETS * IN_FLIGHT // 2, "requests were in flight at the kill"
    assert acked.publications and acked.registrations and acked.subscriptions and acked.api

    again = start_server(tmp_path, listen=("udp:127.0.0.1:0",), db=db)
    try:
        again.wait_for_line("after an unclean stop")
        client = UdpClient(again.udp)
        lost = []
        for etag, user in acked.publications.items():
            uri = f"sip:{user}@127.0.0.1"
            answer = client.ask("PUBLISH", uri=uri, to=uri,
                                headers=f"Event: presence\r\nSIP-If-Match: {etag}\r\n")
            if answer.status != 200:
                lost.append(("publication", user, answer.status))
        for user in acked.registrations:
            answer = client.ask("REGISTER", uri="sip:127.0.0.1", to=f"sip:{user}@127.0.0.1")
            if f"sip:{user}@127.0.0.1:" not in (answer.headers.get("contact") or ""):
                lost.append(("registration", user, answer.status))
        http_client = http.client.HTTPConnection(*again.http, timeout=10)

        def get(path: str) -> dict[str, object]:
            http_client.request("GET", path)
            return json.loads(http_client.getresponse().read())

        for user in acked.subscriptions:
            if not get(f"/v1/presentities/{user}%40127.0.0.1/watchers")["watchers"]:
                lost.append(("subscription", user, None))
        for user in acked.api:
            state = get(f"/v1/presentities/{urllib.parse.quote(user)}%40127.0.0.1")
            if state["note"] != user:
                lost.append(("api", user, state))
        assert not lost, f"{len(lost)} of {acked.count()} acknowledged changes lost: {lost[:5]}"
    finally:
        again.stop()
    for client in loader.clients:
        client.close()


def test_at_sigterm_under_load_every_change_kept_was_answered(tmp_path):
    """A clean stop under load sends the answers held behind the last commits before
    the listeners close.  They used to be committed at the store's close and never
    sent: the client retransmitted into the next process and got 412 for a refresh
    or 500 for a REGISTER (the soak's restart).  So after a SIGTERM with requests
    in flight, and still arriving while the agent stops, a request that got no
    answer must have left nothing in the state the next start reads back."""
    db = str(tmp_path / "state.sqlite3")
    agent = start_server(tmp_path, listen=("udp:127.0.0.1:0",), db=db)
    loader = Loader(agent.udp)
    for client in loader.clients:
        for _ in range(IN_FLIGHT):
            loader.send_next(client)
    sockets = [c.sock for c in loader.clients]
    seen, stopping = 0, False
    try:
        while agent.proc.poll() is None:
            readable, _, _ = select.select(sockets, [], [], 0.1 if stopping else 10)
            assert readable or stopping, "the agent stopped answering"
            for client in (c for c in loader.clients if c.sock in readable):
                oks = loader.receive(client)
                seen += oks
                if seen > KILL_AFTER and oks and not stopping:
                    agent.proc.send_signal(signal.SIGTERM)  # the instant a 200 arrived
                    stopping = True
                for _ in range(oks):  # and the load goes on while it stops
                    loader.send_next(client)
        assert agent.proc.wait(10) == 0, agent.output()
        for client in loader.clients:  # answers already in the buffers
            loader.receive(client)
    finally:
        if agent.proc.poll() is None:
            agent.proc.kill()
    unanswered = sorted(loader.asked.values())
    assert len(unanswered) >= SOCKETS * IN_FLIGHT // 2, "requests were in flight at the stop"

    again = start_server(tmp_path, listen=("udp:127.0.0.1:0",), db=db)
    try:
        line = again.wait_for_line("restored")
        assert "unclean" not in line
        client = UdpClient(again.udp)
        http_client = http.client.HTTPConnection(*again.http, timeout=10)

        def get(path: str) -> dict[str, object]:
            http_client.request("GET", path)
            return json.loads(http_client.getresponse().read())

        kept = []
        for kind, user in unanswered:
            if kind == "publish":
                found = bool(get(f"/v1/presentities/{user}%40127.0.0.1")["sources"])
            elif kind == "register":
                answer = client.ask("REGISTER", uri="sip:127.0.0.1", to=f"sip:{user}@127.0.0.1")
                found = f"sip:{user}@127.0.0.1:" in (answer.headers.get("contact") or "")
            else:
                found = bool(get(f"/v1/presentities/{user}%40127.0.0.1/watchers")["watchers"])
            if found:
                kept.append((kind, user))
        assert not kept, (f"{len(kept)} of {len(unanswered)} unanswered requests changed the "
                          f"state kept: {kept[:5]}")
        assert len(get("/v1/presentities/p0%40127.0.0.1")["sources"]) == 1  # answered: kept
    finally:
        again.stop()
        for c in loader.clients:
            c.close()
