"""pjsua2, a real SIP user agent, publishing and watching presence through the agent."""

from __future__ import annotations

import time
import urllib.request

import pytest

from tests.support.pjsua import PjsuaUA, pjsua_available
from tests.support.server import start_server

pytestmark = [pytest.mark.interop,
              pytest.mark.skipif(not pjsua_available(), reason="pjsua2-python not installed")]


@pytest.fixture
def agent(tmp_path):
    server = start_server(tmp_path)
    yield server
    assert server.stop() == 0


def buddy(status=None, note=None, activity=None):
    def match(event):
        return (event["event"] == "buddy"
                and (status is None or event["status"] == status)
                and (note is None or event["note"] == note)
                and (activity is None or event["activity"] == activity))
    return match


def test_pjsua_watcher_sees_a_pjsua_publisher_busy_online_and_offline(agent):
    alice = PjsuaUA(agent.udp, "alice")
    bob = PjsuaUA(agent.udp, "bob")
    try:
        uri = f"sip:alice@{agent.udp[0]}:{agent.udp[1]}"
        alice.command(cmd="publish", online=True, activity="busy", note="In a meeting")
        bob.command(cmd="subscribe", uri=uri)
        seen = bob.wait_for(buddy("online", "In a meeting", "busy"))
        assert seen["sub_state"] == "ACTIVE"

        alice.command(cmd="publish", online=True, activity="unknown", note="")
        bob.wait_for(buddy("online", "", "unknown"))

        alice.command(cmd="publish", online=False, activity="unknown", note="Gone home")
        bob.wait_for(buddy("offline", "Gone home"))
    finally:
        bob.close()
        alice.close()


def publications(agent) -> float:
    """The agent's ``sipresence_publications`` gauge, read from /metrics."""
    host, port = agent.http
    metrics = urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5).read()
    for line in metrics.decode().splitlines():
        if line.startswith("sipresence_publications "):
            return float(line.split()[1])
    raise AssertionError("no sipresence_publications in /metrics")


def wait_for_publications(agent, count: int, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while publications(agent) != count:
        assert time.monotonic() < end, f"the agent never held {count} publications"
        time.sleep(0.05)


def test_two_publishing_devices_compose_into_one_document(agent):
    desk = PjsuaUA(agent.udp, "carol")
    soft = PjsuaUA(agent.tcp, "carol", transport="tcp")
    watcher = PjsuaUA(agent.udp, "dave")
    try:
        # The device whose state shows publishes first and the closed one last, each
        # PUBLISH taken before the next is sent: "the last PUBLISH wins" would show
        # the desk phone's closed state.
        soft.command(cmd="publish", online=True, activity="away", note="Back at 3")
        wait_for_publications(agent, 1)
        desk.command(cmd="publish", online=False, activity="unknown", note="")
        wait_for_publications(agent, 2)  # both devices, one document
        watcher.command(cmd="subscribe", uri=f"sip:carol@{agent.udp[0]}:{agent.udp[1]}")
        # One device closed, the other open and away: the person is open (a way to
        # reach her exists), away, with the softphone's note.
        watcher.wait_for(buddy("online", "Back at 3", "away"))
    finally:
        watcher.close()
        soft.close()
        desk.close()


def test_pjsua_answers_digest_challenges_and_a_wrong_password_changes_nothing(tmp_path):
    config = tmp_path / "auth.toml"
    config.write_text('[auth]\nrealm = "example.com"\n'
                      '[auth.users]\nalice = "s3cret"\nbob = "hunter2"\n')
    agent = start_server(tmp_path, "--config", str(config))
    alice = PjsuaUA(agent.udp, "alice", register=True, password="s3cret")
    bob = PjsuaUA(agent.udp, "bob", password="hunter2")
    mallory = PjsuaUA(agent.udp, "alice", password="guess")
    try:
        assert alice.wait_for(lambda e: e["event"] == "registered")["code"] == 200
        alice.command(cmd="publish", online=True, activity="busy", note="Signed")
        wait_for_publications(agent, 1)
        bob.command(cmd="subscribe", uri=f"sip:alice@{agent.udp[0]}:{agent.udp[1]}")
        bob.wait_for(buddy("online", "Signed", "busy"))
        mallory.command(cmd="publish", online=False, activity="unknown", note="Hacked")
        time.sleep(1.0)  # pjsua gives up on a rejected password after one retry
        assert publications(agent) == 1
        assert not any(e.get("note") == "Hacked" for e in bob.seen)
    finally:
        for ua in (mallory, bob, alice):
            ua.close()
        assert agent.stop() == 0
