"""pjsua2 callers and callees: calls answered by presence, and the announcement heard.

Every phone is a real SIP user agent with media (pjsua2) in its own process; the
agent and the announcement service are the real ``sipresence serve`` and
``sipresence announce``.
"""

from __future__ import annotations

import math
import re
import struct
import subprocess
import sys
import threading
import wave
from pathlib import Path

import pytest

from tests.support.pjsua import ROOT, PjsuaUA, pjsua_available
from tests.support.server import start_server

pytestmark = [pytest.mark.interop,
              pytest.mark.skipif(not pjsua_available(), reason="pjsua2-python not installed")]


def event(kind, **fields):
    def match(seen):
        return seen["event"] == kind and all(seen.get(k) == v for k, v in fields.items())
    return match


def callee(agent, user, **publish):
    """A registered phone that has published its presence (or not, if nothing given)."""
    phone = PjsuaUA(agent.udp, user, register=True)
    phone.wait_for(event("registered", code=200))
    if publish:
        phone.command(cmd="publish", **publish)
        phone.wait_for(event("published"))
    return phone


@pytest.fixture
def agent(tmp_path):
    server = start_server(tmp_path)
    yield server
    assert server.stop() == 0


def test_pjsua_callers_get_486_480_and_302_by_the_callees_presence(agent):
    host, port = agent.udp
    phones = [callee(agent, "bob", online=True, activity="unknown", note=""),
              callee(agent, "carol", online=True, activity="busy", note="In a meeting"),
              callee(agent, "dave", online=True, activity="away", note="Back at 3"),
              callee(agent, "erin", online=False, activity="unknown", note="Gone home")]
    caller = PjsuaUA(agent.udp, "alice")
    phones.append(caller)
    try:
        for user, code in (("carol", 486), ("dave", 480), ("erin", 480)):
            caller.forget()
            caller.command(cmd="call", uri=f"sip:{user}@{host}:{port}")
            ended = caller.wait_for(event("ended"))
            assert ended["code"] == code, (user, ended)
            assert not any(e["event"] == "redirected" for e in caller.seen)

        # Available: a 302 to bob's registered phone (pjsua, told not to follow it,
        # ends the call as 487; it shows the target without its port), and a caller
        # that follows it reaches him.
        caller.forget()
        caller.command(cmd="call", uri=f"sip:bob@{host}:{port}")
        redirected = caller.wait_for(event("redirected"))
        assert "sip:bob@127.0.0.1" in redirected["target"]
        caller.wait_for(event("ended"))
        caller.forget()
        caller.command(cmd="call", uri=f"sip:bob@{host}:{port}", follow=True, seconds=1)
        phones[0].wait_for(event("incoming"))
        caller.wait_for(event("call", state="CONFIRMED"))
        assert caller.wait_for(event("ended"))["code"] == 200  # talked, then hung up
    finally:
        for phone in phones:
            phone.close()


class Announcer:
    """``sipresence announce`` on an ephemeral port, for one call."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sipresence", "announce", "--listen", "127.0.0.1:0",
             "--max-calls", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
        self.lines: list[str] = []
        ready = threading.Event()

        def pump() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.lines.append(line.rstrip())
                if "announce ready" in line:
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(20):
            self.proc.kill()
        found = [re.search(r"udp:([\d.]+):(\d+)", line) for line in self.lines]
        match = next((m for m in found if m), None)
        assert match, "\n".join(self.lines)
        self.address = (match.group(1), int(match.group(2)))

    def close(self) -> int:
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("\n".join(self.lines)) from None


def samples(path: Path) -> tuple[list[int], int]:
    with wave.open(str(path)) as recording:
        assert recording.getnchannels() == 1 and recording.getsampwidth() == 2
        frames = recording.readframes(recording.getnframes())
        return list(struct.unpack(f"<{len(frames) // 2}h", frames)), recording.getframerate()


def power(signal: list[int], rate: int, frequency: float) -> float:
    """Goertzel: the power of one frequency in *signal*, per sample."""
    coefficient = 2 * math.cos(2 * math.pi * frequency / rate)
    previous = before = 0.0
    for sample in signal:
        previous, before = sample + coefficient * previous - before, previous
    return (previous ** 2 + before ** 2 - coefficient * previous * before) / len(signal) ** 2


def test_a_caller_to_a_busy_person_is_redirected_to_the_announcement_and_hears_it(tmp_path):
    announcer = Announcer()
    a_host, a_port = announcer.address
    config = tmp_path / "agent.toml"
    config.write_text(f'[routing]\nunavailable_target = "sip:{{reason}}@{a_host}:{a_port}"\n')
    agent = start_server(tmp_path, "--config", str(config))
    host, port = agent.udp
    bob = callee(agent, "bob", online=True, activity="busy", note="In a meeting")
    caller = PjsuaUA(agent.udp, "alice")
    heard = tmp_path / "heard.wav"
    try:
        caller.command(cmd="call", uri=f"sip:bob@{host}:{port}", follow=True,
                       record=str(heard), seconds=15)
        redirected = caller.wait_for(event("redirected"))
        assert "sip:busy@127.0.0.1" in redirected["target"]  # shown without its port
        caller.wait_for(event("media"))
        ended = caller.wait_for(event("ended"), timeout=20)
        assert (ended["code"], ended["by"]) == (200, "them")  # the announcer hung up
        assert announcer.close() == 0, "\n".join(announcer.lines)  # one call, then stopped
    finally:
        caller.close()
        bob.close()
        assert agent.stop() == 0
        if announcer.proc.poll() is None:
            announcer.proc.kill()

    signal, rate = samples(heard)
    assert len(signal) > rate  # more than a second recorded
    rms = math.sqrt(sum(s * s for s in signal) / len(signal))
    print(f"heard {len(signal) / rate:.1f} s at {rate} Hz, RMS {rms:.0f}")
    assert rms > 300, f"silence: RMS {rms:.0f}"
    # What was heard is the busy tone (480 + 620 Hz), not the unavailable tones.
    busy = power(signal, rate, 480.0) + power(signal, rate, 620.0)
    sit = power(signal, rate, 913.8) + power(signal, rate, 1370.6)
    assert busy > 20 * sit, (busy, sit)
