"""A flame graph of the agent under load: ``python -m bench profile [SCENARIO RATE]``
(``make profile``; default ``publish.xml 5000``, the PUBLISH sweep's top rate).

Why: optimising without a profile guesses; the graph that justified a change is kept
beside the figures (``bench/profiles/``) so that the next one starts from it.  The
agent runs pinned to core 0 and SIPp to core 1, as a machine with a core per process
would; py-spy (the bench extra) samples the agent for ``SECONDS`` in the middle of the
load without stopping it (``--nonblocking``: stopping the process to read its stack
would slow the very reactor measured), every thread apart (the reactor and the
store's writer).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.server import start_server
from tests.support.sipp import run_sipp, sipp_available

from .options import percentile
from .soak import pin

SECONDS = 4
PROFILES = Path(__file__).parent / "profiles"


def profile(scenario: str, rate: int) -> Path | None:
    """Record one flame graph; its path, or None when a tool is missing."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("py-spy is not installed (pip install -e '.[bench]'): no profile")
        return None
    if not sipp_available():
        print("sipp is not installed (Debian package sip-tester): no load to profile")
        return None
    PROFILES.mkdir(exist_ok=True)
    out = PROFILES / f"{Path(scenario).stem}-{rate}.svg"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = start_server(work, "--log-level", "warn", listen=("udp:127.0.0.1:0",),
                              db=str(work / "profile.sqlite3"))
        try:
            pin(server.proc.pid, 0)  # the store's writer shares the reactor's core
            pin(os.getpid(), 1)
            calls = max(1, rate // 2)
            # Sampling starts a second in, once SIPp is at its rate, and ends before it.
            spy_proc = subprocess.Popen(
                [spy, "record", "--nonblocking", "--threads", "-d", str(SECONDS), "-r", "200",
                 "-f", "flamegraph", "-o", str(out), "-p", str(server.proc.pid)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            time.sleep(0.5)
            result = run_sipp(scenario, server.udp, work, calls=calls * (SECONDS + 2),
                              rate=calls, timeout=60, trace_rtt=True, extra=("-aa",))
            _, error = spy_proc.communicate(timeout=30)
        finally:
            server.stop()
    if spy_proc.returncode != 0:
        print(f"py-spy failed: {error.strip()[:300]}")
        return None
    print(f"{scenario} at {rate}/s offered: {result.successful} calls, {result.failed} "
          f"failed, p50 {percentile(result.rtts_ms, 0.5):.0f} ms, "
          f"p99 {percentile(result.rtts_ms, 0.99):.0f} ms (slowed by the sampling: the "
          f"sweeps' figures are the ones to quote); flame graph {out}")
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    scenario, rate = (args[0], int(args[1])) if len(args) == 2 else ("publish.xml", 5000)
    return 0 if profile(scenario, rate) is not None else 1
