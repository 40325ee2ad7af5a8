"""OPTIONS round trips through the running agent, driven by SIPp over UDP.

A rate sweep: for each offered rate SIPp sends OPTIONS for a few seconds; the table
gives the rate achieved (answers per wall-clock second), failures, retransmissions
SIPp had to make, and response-time percentiles (SIPp measures in whole ms).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from tests.support.server import start_server
from tests.support.sipp import run_sipp, sipp_available

RATES = (1000, 2500, 5000, 7500, 10000)
SECONDS = 4
SETTLE = 5


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    if not sipp_available():
        print("sipp is not installed (Debian package sip-tester); skipped")
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = start_server(work, "--log-level", "warn", listen=("udp:127.0.0.1:0",),
                              http=None, db=":memory:")
        try:
            print(f"{'offered/s':>10} {'achieved/s':>11} {'failed':>7} {'retrans':>8} "
                  f"{'p50 ms':>7} {'p99 ms':>7}")
            for rate in RATES:
                time.sleep(SETTLE)  # let the agent drain what the previous rate left
                result = run_sipp("options.xml", server.udp, work, calls=rate * SECONDS,
                                  rate=rate, timeout=60, trace_rtt=True)
                achieved = result.successful / result.seconds
                print(f"{rate:>10} {achieved:>11.0f} {result.failed:>7} "
                      f"{result.stats.get('Retransmissions(C)', '?'):>8} "
                      f"{percentile(result.rtts_ms, 0.50):>7.0f} "
                      f"{percentile(result.rtts_ms, 0.99):>7.0f}")
        finally:
            server.stop()
