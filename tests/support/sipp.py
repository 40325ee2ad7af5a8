"""Run SIPp scenarios from ``sipp/`` against the agent and read its statistics."""

from __future__ import annotations

import csv
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SCENARIOS = Path(__file__).resolve().parents[2] / "sipp"


@dataclass
class SippResult:
    returncode: int
    successful: int
    failed: int
    output: str
    stats: dict[str, str]
    seconds: float
    rtts_ms: list[float]


def sipp_available() -> bool:
    return shutil.which("sipp") is not None


def run_sipp(scenario: str, target: tuple[str, int], tmp_path: Path, *, calls: int,
             rate: int = 100, transport: str = "u1", timeout: float = 60.0,
             extra: tuple[str, ...] = (), trace_rtt: bool = False) -> SippResult:
    """Run *scenario* for *calls* calls; SIPp's exit status 0 means all succeeded.

    With *trace_rtt*, every response time SIPp measured (``rtd="true"``) is read
    back, in milliseconds (SIPp's resolution).  SIPp writes them out every 1,000
    calls: written after every call, at 10,000 calls/s the file writes made SIPp
    itself stall and retransmit, which the figures then blamed on the agent.
    """
    host, port = target
    stats_file = tmp_path / f"{Path(scenario).stem}_stats.csv"
    cmd = ["sipp", "-sf", str(SCENARIOS / scenario), "-m", str(calls), "-r", str(rate),
           "-t", transport, "-i", host, "-p", "0", "-timeout", f"{int(timeout)}s",
           "-timeout_error", "-nostdin", "-trace_stat", "-stf",
           str(stats_file), "-max_recv_loops", "1000", *extra, f"{host}:{port}"]
    if trace_rtt:
        cmd[-1:-1] = ["-trace_rtt", "-rtt_freq", "1000"]
    for old in tmp_path.glob("*_rtt.csv"):
        old.unlink()
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 30,
                          cwd=tmp_path)
    seconds = time.monotonic() - started
    stats: dict[str, str] = {}
    if stats_file.exists():
        rows = list(csv.reader(stats_file.open(), delimiter=";"))
        if len(rows) >= 2:
            stats = dict(zip(rows[0], rows[-1], strict=False))
    rtts: list[float] = []
    for path in tmp_path.glob("*_rtt.csv"):
        for row in csv.reader(path.open(), delimiter=";"):
            if len(row) >= 2 and row[1].replace(".", "", 1).isdigit():
                rtts.append(float(row[1]))
    return SippResult(proc.returncode, int(stats.get("SuccessfulCall(C)", 0) or 0),
                      int(stats.get("FailedCall(C)", 0) or 0),
                      proc.stdout + proc.stderr, stats, seconds, rtts)
