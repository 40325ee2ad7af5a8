"""The HTTP API of the running agent for routing scripts and PBXes: state, the ``api``
source, routing decisions, live events (DESIGN.md, HTTP API contract)."""

from __future__ import annotations

import json
import socket
import time
import urllib.request

import pytest
from lxml import etree

from sipresence.documents.pidf import parse_pidf
from sipresence.documents.xml import schema
from sipresence.sip.uas import make_response
from tests.integration.test_http_rules import api
from tests.support.server import start_server
from tests.support.sip import UdpClient, request

ALICE = "alice%40example.com"


class EventStream:
    """``GET /v1/events`` over HTTP/1.0: the body streams until the agent closes it."""

    def __init__(self, agent, query: str) -> None:
        self.sock = socket.create_connection(agent.http, timeout=5)
        self.sock.sendall(f"GET /v1/events{query} HTTP/1.0\r\nHost: test\r\n\r\n".encode())
        self.file = self.sock.makefile("rb")
        status = self.file.readline()
        assert b" 200 " in status, status
        while self.file.readline() not in (b"\r\n", b""):
            pass  # headers

    def next_event(self) -> dict:
        """The data of the next ``presence`` event (comments are skipped)."""
        event = None
        while True:
            line = self.file.readline()
            assert line, "the stream ended"
            line = line.rstrip(b"\n")
            if line.startswith(b"event: "):
                event = line[7:]
            elif line.startswith(b"data: ") and event == b"presence":
                return json.loads(line[6:])

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def watch(client: UdpClient, agent) -> None:
    client.send(request("SUBSCRIBE", agent.udp, client.local, uri="sip:alice@example.com",
                        to="sip:alice@example.com",
                        headers="Event: presence\r\nExpires: 600\r\n"
                                f"Contact: <sip:w@{client.local[0]}:{client.local[1]}>\r\n"))
    assert client.recv().status == 200
    client.send(make_response(client.recv(), 200).to_bytes())


def test_the_api_source_is_composed_notified_routed_streamed_and_kept(tmp_path):
    agent = start_server(tmp_path)
    watcher = UdpClient(agent.udp)
    stream = None
    try:
        code, state = api(agent, "GET", f"/v1/presentities/{ALICE}")
        assert code == 200
        assert state == {"aor": "sip:alice@example.com", "basic": "closed", "activities": [],
                         "note": None, "on_the_phone": False, "version": 0, "sources": []}
        watch(watcher, agent)
        stream = EventStream(agent, f"?aor={ALICE}")
        assert stream.next_event()["basic"] == "closed"  # where it stands, first

        code, state = api(agent, "PUT", f"/v1/presentities/{ALICE}",
                          {"basic": "open", "activities": ["busy"], "note": "Night shift",
                           "expires": 600})
        assert code == 200
        assert (state["basic"], state["activities"], state["note"]) == (
            "open", ["busy"], "Night shift")
        assert [s["id"] for s in state["sources"]] == ["publish:api"]
        # SIP watchers are told as for a PUBLISH, and so are the event streams.
        notify = watcher.recv()
        watcher.send(make_response(notify, 200).to_bytes())
        assert parse_pidf(notify.body).persons[0].notes[0].text == "Night shift"
        assert stream.next_event()["note"] == "Night shift"

        host, port = agent.http
        with urllib.request.urlopen(f"http://{host}:{port}/v1/presentities/{ALICE}"
                                    "?format=pidf", timeout=5) as answer:
            assert answer.headers.get("Content-Type") == "application/pidf+xml"
            body = answer.read()
        assert schema().validate(etree.fromstring(body))
        assert b"<rpid:busy/>" in body

        code, decision = api(agent, "GET", "/v1/route?callee=alice@example.com&caller=bob")
        assert code == 200
        assert (decision["action"], decision["status"], decision["note"]) == (
            "busy", 486, "Night shift")
    finally:
        if stream is not None:
            stream.close()
        watcher.close()
        assert agent.stop() == 0

    again = start_server(tmp_path)  # the api source is persisted like a publication
    try:
        code, state = api(again, "GET", f"/v1/presentities/{ALICE}")
        assert (state["basic"], state["note"]) == ("open", "Night shift")
        code, state = api(again, "DELETE", f"/v1/presentities/{ALICE}")
        assert (code, state["basic"], state["sources"]) == (200, "closed", [])
        assert api(again, "DELETE", f"/v1/presentities/{ALICE}")[0] == 404
    finally:
        assert again.stop() == 0


def test_a_device_publish_reaches_every_stream_once(tmp_path):
    agent = start_server(tmp_path)
    everything = EventStream(agent, "")
    other = EventStream(agent, "?aor=carol%40example.com")
    assert other.next_event()["aor"] == "sip:carol@example.com"  # where carol stands
    phone = UdpClient(agent.udp)
    try:
        body = (b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:alice@example.com">'
                b'<tuple id="t"><status><basic>open</basic></status></tuple></presence>')
        phone.send(request("PUBLISH", agent.udp, phone.local, uri="sip:alice@example.com",
                           to="sip:alice@example.com", body=body,
                           headers="Event: presence\r\nContent-Type: application/pidf+xml\r\n"))
        assert phone.recv().status == 200
        state = everything.next_event()
        assert (state["aor"], state["basic"]) == ("sip:alice@example.com", "open")
        assert state["sources"][0]["id"].startswith("publish:UDP:127.0.0.1:")  # the device
        other.sock.settimeout(0.5)  # carol's stream hears nothing of alice
        with pytest.raises(TimeoutError):
            other.next_event()
    finally:
        everything.close()
        other.close()
        phone.close()
        assert agent.stop() == 0


@pytest.mark.parametrize("method, path, body, code", [
    ("PUT", f"/v1/presentities/{ALICE}", {"basic": "maybe"}, 400),
    ("PUT", f"/v1/presentities/{ALICE}", {"basic": "open", "activities": ["dancing"]}, 400),
    ("PUT", f"/v1/presentities/{ALICE}", {"basic": "open", "activities": "busy"}, 400),
    ("PUT", f"/v1/presentities/{ALICE}", {"basic": "open", "mood": "happy"}, 400),
    ("PUT", f"/v1/presentities/{ALICE}", {"basic": "open", "expires": "soon"}, 400),
    ("PUT", f"/v1/presentities/{ALICE}", {"basic": "open", "expires": 1}, 400),  # 423
    ("PUT", f"/v1/presentities/{ALICE}", {"basic": "open", "note": 7}, 400),
    ("POST", f"/v1/presentities/{ALICE}", {"basic": "open"}, 405),
    ("GET", "/v1/route", None, 400),
    ("GET", "/v1/route?callee=mailto:alice@example.com", None, 400),
    ("POST", "/v1/route?callee=alice@example.com", {}, 405),
])
def test_bad_state_requests_are_refused_and_change_nothing(quiet_agent, method, path, body,
                                                           code):
    answer, error = api(quiet_agent, method, path, body)
    assert answer == code and error["error"]
    assert api(quiet_agent, "GET", f"/v1/presentities/{ALICE}")[1]["sources"] == []


@pytest.fixture(scope="module")
def quiet_agent(tmp_path_factory):
    agent = start_server(tmp_path_factory.mktemp("api"), listen=("udp:127.0.0.1:0",))
    yield agent
    assert agent.stop() == 0


def test_a_closed_event_stream_is_forgotten(tmp_path):
    agent = start_server(tmp_path, listen=("udp:127.0.0.1:0",))
    try:
        stream = EventStream(agent, "")
        stream.close()  # the agent forgets it; a later change writes to nobody
        time.sleep(0.2)
        assert api(agent, "PUT", f"/v1/presentities/{ALICE}", {"basic": "open"})[0] == 200
        assert api(agent, "DELETE", f"/v1/presentities/{ALICE}")[0] == 200
    finally:
        assert agent.stop() == 0
    assert "Traceback" not in agent.output() and "Unhandled" not in agent.output()
