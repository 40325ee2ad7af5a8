"""The sipresence command as a client of the running agent, as a shell script uses it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.server import start_server


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("cli"), listen=("udp:127.0.0.1:0",))
    yield server
    assert server.stop() == 0


def cli(agent, *args: str, api: str | None = None) -> subprocess.CompletedProcess[str]:
    host, port = agent.http
    return subprocess.run([sys.executable, "-m", "sipresence", *args, "--api",
                           api or f"{host}:{port}"], capture_output=True, text=True,
                          timeout=30)


def test_set_status_route_and_clear(agent):
    done = cli(agent, "set", "alice@example.com", "open", "--activity", "busy",
               "--note", "Night shift", "--expires", "600")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ('sip:alice@example.com: open, busy "Night shift" '
                                   "(from publish:api)")
    status = cli(agent, "status", "sip:alice@example.com", "--json")
    assert json.loads(status.stdout)["note"] == "Night shift"
    route = cli(agent, "route", "alice@example.com")
    assert route.stdout.strip() == ('sip:alice@example.com: busy, 486 "Night shift" '
                                    "(busy (busy))")
    cleared = cli(agent, "clear", "alice@example.com")
    assert cleared.stdout.strip() == "sip:alice@example.com: closed (no source)"


def test_rules_and_watchers(agent):
    assert cli(agent, "confirm", "bob@example.com", "example.org").stdout.strip() == (
        "sip:bob@example.com: example.org confirm")
    assert cli(agent, "block", "bob@example.com", "sip:eve@example.org").returncode == 0
    listing = cli(agent, "watchers", "bob@example.com").stdout.splitlines()
    assert listing == ["no watchers", "rule: example.org confirm",
                       "rule: sip:eve@example.org block", "anyone else: allow"]
    assert cli(agent, "unrule", "bob@example.com", "example.org").stdout.strip() == (
        "sip:bob@example.com: no rule for example.org any more")


def test_refusals_and_an_unreachable_agent_exit_1_with_the_reason(agent):
    refused = cli(agent, "set", "alice@example.com", "open", "--activity", "dancing")
    assert refused.returncode == 1
    assert refused.stderr.strip() == ("sipresence set: 400 unknown activities: dancing")
    missing = cli(agent, "unrule", "bob@example.com", "nobody.example")
    assert (missing.returncode, missing.stderr.strip()) == (
        1, "sipresence unrule: 404 no rule for this watcher")
    down = cli(agent, "status", "alice@example.com", api="127.0.0.1:9")
    assert down.returncode == 1 and "cannot reach the agent at 127.0.0.1:9" in down.stderr
    usage = cli(agent, "set", "alice@example.com", "maybe")
    assert usage.returncode == 2


def test_events_prints_a_line_per_change(agent):
    host, port = agent.http
    watch = subprocess.Popen([sys.executable, "-m", "sipresence", "events", "carol@example.com",
                              "--api", f"{host}:{port}"], stdout=subprocess.PIPE, text=True)
    try:
        assert watch.stdout is not None
        assert watch.stdout.readline().strip() == "sip:carol@example.com: closed (no source)"
        assert cli(agent, "set", "carol@example.com", "open", "--note", "Here").returncode == 0
        assert watch.stdout.readline().strip() == (
            'sip:carol@example.com: open "Here" (from publish:api)')
    finally:
        watch.terminate()
        watch.wait(10)
