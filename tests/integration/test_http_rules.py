"""The person decides who may watch, through the HTTP API of the running agent."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.support.server import start_server
from tests.support.sip import UdpClient, request

ALICE = "alice%40example.com"


def api(agent, method: str, path: str, body: object = None,
        content_type: str = "application/json") -> tuple[int, dict]:
    host, port = agent.http
    data = None if body is None else (body if isinstance(body, bytes) else
                                      json.dumps(body).encode())
    req = urllib.request.Request(f"http://{host}:{port}{path}", data=data, method=method,
                                 headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        assert error.headers.get("Content-Type") == "application/json"
        return error.code, json.loads(error.read())


def subscribe(client: UdpClient, agent) -> tuple[int, object]:
    client.send(request("SUBSCRIBE", agent.udp, client.local,
                        uri="sip:alice@example.com", to="sip:alice@example.com",
                        headers=f"Event: presence\r\nExpires: 600\r\n"
                                f"Contact: <sip:bob@{client.local[0]}:{client.local[1]}>\r\n"))
    answer = client.recv()
    notify = client.recv()
    client.send(ok(notify))
    return answer.status, notify


def ok(notify) -> bytes:
    from sipresence.sip.uas import make_response

    return make_response(notify, 200).to_bytes()


@pytest.fixture
def agent(tmp_path):
    config = tmp_path / "confirm.toml"
    config.write_text('[presence]\nsub_handling = "confirm"\n')
    server = start_server(tmp_path, "--config", str(config))
    yield server
    server.stop()


def test_a_pending_watcher_is_allowed_over_http_and_the_rule_survives_a_restart(agent,
                                                                                 tmp_path):
    bob = UdpClient(agent.udp)
    try:
        status, notify = subscribe(bob, agent)
        assert status == 202
        assert notify.headers.get("Subscription-State").startswith("pending")
        code, listing = api(agent, "GET", f"/v1/presentities/{ALICE}/watchers")
        assert code == 200
        assert listing["default"] == "confirm" and listing["rules"] == []
        [watcher] = listing["watchers"]
        assert (watcher["package"], watcher["state"]) == ("presence", "pending")

        code, rule = api(agent, "PUT",
                         f"/v1/presentities/{ALICE}/rules/{watcher['watcher']}",
                         {"sub_handling": "allow"})
        assert code == 200
        assert rule == {"presentity": "sip:alice@example.com", "watcher": watcher["watcher"],
                        "sub_handling": "allow"}
        notify = bob.recv()  # the state, now that the person said yes
        assert notify.headers.get("Subscription-State").startswith("active")
        assert b"<basic>closed</basic>" in notify.body
        bob.send(ok(notify))
        code, listing = api(agent, "GET", f"/v1/presentities/sip:{ALICE}/watchers")
        assert [w["state"] for w in listing["watchers"]] == ["active"]
    finally:
        bob.close()
    agent.stop()
    again = start_server(tmp_path, "--config", str(tmp_path / "confirm.toml"))
    try:
        code, listing = api(again, "GET", f"/v1/presentities/{ALICE}/watchers")
        assert listing["rules"] == [{"watcher": rule["watcher"], "sub_handling": "allow"}]
        code, removed = api(again, "DELETE",
                            f"/v1/presentities/{ALICE}/rules/{rule['watcher']}")
        assert (code, removed["sub_handling"]) == (200, None)
        assert api(again, "DELETE",
                   f"/v1/presentities/{ALICE}/rules/{rule['watcher']}")[0] == 404
    finally:
        again.stop()


@pytest.mark.parametrize("method, path, body, content_type, code", [
    ("PUT", f"/v1/presentities/{ALICE}/rules/example.com", {"sub_handling": "maybe"},
     "application/json", 400),
    ("PUT", f"/v1/presentities/{ALICE}/rules/example.com", b"{not json", "application/json",
     400),
    ("PUT", f"/v1/presentities/{ALICE}/rules/example.com", b"[]", "application/json", 400),
    ("PUT", f"/v1/presentities/{ALICE}/rules/example.com", b"sub_handling=allow",
     "application/x-www-form-urlencoded", 415),
    ("PUT", f"/v1/presentities/{ALICE}/rules/example.com", b" " * 70000, "application/json",
     413),
    ("PUT", "/v1/presentities/alice%20%40example.com/rules/example.com",
     {"sub_handling": "allow"}, "application/json", 400),
    ("PUT", f"/v1/presentities/{ALICE}/rules/exa%20mple.com", {"sub_handling": "allow"},
     "application/json", 400),
    ("POST", f"/v1/presentities/{ALICE}/watchers", {}, "application/json", 405),
    ("GET", f"/v1/presentities/{ALICE}/nothing", None, "application/json", 404),
    ("GET", "/v1/elsewhere", None, "application/json", 404),
])
def test_bad_api_requests_get_json_errors_and_change_nothing(agent, method, path, body,
                                                             content_type, code):
    answer, error = api(agent, method, path, body, content_type)
    assert answer == code and error["error"]
    assert api(agent, "GET", f"/v1/presentities/{ALICE}/watchers")[1]["rules"] == []
