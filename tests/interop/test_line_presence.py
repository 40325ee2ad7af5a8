"""The phone line as presence, with real clients: SIPp publishes a call's dialog states
(as Kamailio pua_dialoginfo does); busy lamps in SIPp and in pjsua2 (its C API, through
ctypes) see each state, and a pjsua2 presence watcher sees the person on the phone."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.pjsua import PjsuaUA, pjsua_available
from tests.support.server import start_server, wait_for_metric
from tests.support.sipp import SCENARIOS, run_sipp, sipp_available

pytestmark = [pytest.mark.interop,
              pytest.mark.skipif(not sipp_available(), reason="sipp (Debian sip-tester) missing"),
              pytest.mark.skipif(not pjsua_available(), reason="pjsua2-python not installed")]

STATES = ["trying", "early", "confirmed", "terminated"]


def test_busy_lamps_and_presence_watchers_follow_a_sipp_published_call(tmp_path):
    agent = start_server(tmp_path)
    host, port = agent.udp
    line = f"sip:line@{host}:{port}"
    lamp = PjsuaUA(agent.udp, "desk")
    watcher = PjsuaUA(agent.udp, "boss")
    sipp_lamp = None
    try:
        lamp.command(cmd="watch_dialog", uri=line)
        watcher.command(cmd="subscribe", uri=line)
        sipp_lamp = subprocess.Popen(
            ["sipp", "-sf", str(SCENARIOS / "blf_watch.xml"), "-s", "line", "-m", "1",
             "-t", "u1", "-i", host, "-p", "0", "-timeout", "40s", "-timeout_error",
             "-nostdin", f"{host}:{port}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
        wait_for_metric(agent, 'sipresence_subscriptions{package="dialog"} 2.0')
        wait_for_metric(agent, 'sipresence_subscriptions{package="presence"} 1.0')
        watcher.wait_for(lambda e: e["event"] == "buddy" and e["sub_state"] == "ACTIVE")

        published = run_sipp("dialog_publish.xml", agent.udp, tmp_path, calls=1, rate=1,
                             timeout=30, extra=("-s", "line"))
        assert published.returncode == 0, published.output[-3000:]

        output, _ = sipp_lamp.communicate(timeout=30)
        assert sipp_lamp.returncode == 0, output[-3000:]

        # pjsua2's lamp saw each state in order, with the identities and tags it
        # needs for directed pickup, and did not crash when the last document came
        # without <local>/<remote> (the agent kept them).
        lamp.wait_for(lambda e: e["event"] == "dialog" and e["state"] == "terminated")
        seen = [e for e in lamp.seen if e["event"] == "dialog" and e["state"]]
        states = [e["state"] for e in seen]
        assert [s for s in STATES if s in states] == STATES, states
        assert states == sorted(states, key=STATES.index)
        confirmed = next(e for e in seen if e["state"] == "confirmed")
        assert confirmed["call_id"].endswith("@sipp")
        assert confirmed["local_tag"].startswith("lt") and confirmed["remote_tag"].startswith("rt")
        assert confirmed["remote"] == "sip:carol@127.0.0.1"
        terminated = seen[-1]
        assert terminated["local"] and terminated["remote"] == "sip:carol@127.0.0.1"

        # The presence watcher saw the person on the phone while the call was up
        # (early and confirmed), and back off it once the call ended.
        on_call = watcher.wait_for(lambda e: e["event"] == "buddy"
                                   and e["note"] == "On the phone")
        assert on_call["status"] == "online"
        watcher.wait_for(lambda e: e["event"] == "buddy" and e["note"] != "On the phone",
                         after=on_call)
    finally:
        if sipp_lamp is not None and sipp_lamp.poll() is None:
            sipp_lamp.kill()
            sipp_lamp.wait()
        lamp.close()  # fails if pjsua crashed at any point
        watcher.close()
        assert agent.stop() == 0
