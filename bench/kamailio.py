"""The race: sipresence against Kamailio's presence server on this machine
(``python -m bench kamailio``).

The same SIPp scenarios (``sipp/publish.xml``, ``sipp/subscribe.xml``) at the same
offered rates against each server, one after the other, each freshly started:
achieved rate, failed calls, retransmissions, response-time percentiles, and the CPU
time the server spent per 1,000 requests (all its processes and threads), which
compares the work each does whatever the number of cores it spreads over.

Kamailio 5.6 (Debian ``kamailio``, ``kamailio-presence-modules``,
``kamailio-sqlite-modules``) runs ``bench/data/kamailio.cfg``: presence and
presence_xml with two UDP workers, publications and subscriptions in memory only
(its SQLite backend fails about half the PUBLISHes with "database is locked" once two
workers write).  That is a head start: sipresence writes everything to its SQLite
file on disk and keeps it across restarts.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.support.server import start_server
from tests.support.sip import UdpClient
from tests.support.sipp import run_sipp, sipp_available

from .options import percentile

MODULES = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules")
SCHEMAS = Path("/usr/share/kamailio/db_sqlite")
CONFIG = Path(__file__).parent / "data" / "kamailio.cfg"
SECONDS = 4
SETTLE = 3
RACES = (("publish.xml", (2000, 5000, 7500)), ("subscribe.xml", (2000, 3000, 4000)))
TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Contender:
    name: str
    udp: tuple[str, int]
    cpu: Callable[[], float]  # CPU seconds used so far
    stop: Callable[[], object]


def _cpu_of(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def _group(pgid: int) -> list[int]:
    """The processes of process group *pgid* (Kamailio forks its workers)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                pids.append(int(entry.name))
    return pids


def kamailio_available() -> bool:
    return all((MODULES / m).exists() for m in ("presence.so", "presence_xml.so",
                                               "db_sqlite.so")) and os.path.exists(
        "/usr/sbin/kamailio")


def start_kamailio(work: Path) -> Contender:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    shm = Path("/dev/shm")
    db_dir = Path(tempfile.mkdtemp(dir=shm if shm.is_dir() else work))
    db_path = db_dir / "presence.sqlite"
    db = sqlite3.connect(db_path)
    for schema in ("standard-create.sql", "presence-create.sql"):
        db.executescript((SCHEMAS / schema).read_text())
    db.commit()
    db.close()
    config = work / "kamailio.cfg"
    config.write_text(CONFIG.read_text().replace("{port}", str(port))
                      .replace("{db}", "/" + str(db_path)).replace("{children}", "2")
                      .replace("{modules}", f"{MODULES}/"))
    log = (work / "kamailio.log").open("wb")
    proc = subprocess.Popen(["/usr/sbin/kamailio", "-f", str(config), "-DD", "-E", "-m", "512",
                             "-M", "32"], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    client = UdpClient(("127.0.0.1", port))
    try:
        for _ in range(50):  # answering OPTIONS: ready
            try:
                if client.ask("OPTIONS").status == 200:
                    break
            except TimeoutError:
                pass
            if proc.poll() is not None:
                raise RuntimeError("kamailio stopped: "
                                   + (work / "kamailio.log").read_text()[-2000:])
        else:
            raise RuntimeError("kamailio did not answer OPTIONS")
    finally:
        client.close()

    def stop() -> None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(10)
        log.close()
        db_path.unlink(missing_ok=True)
        db_dir.rmdir()

    return Contender("kamailio", ("127.0.0.1", port), lambda: _cpu_of(_group(proc.pid)), stop)


def start_sipresence(work: Path) -> Contender:
    server = start_server(work, "--log-level", "warn", listen=("udp:127.0.0.1:0",),
                          http=None, db=str(work / "race.sqlite3"))
    return Contender("sipresence", server.udp, lambda: _cpu_of([server.proc.pid]),
                     server.stop)


def race(start: Callable[[Path], Contender], work: Path) -> None:
    contender = start(work)
    try:
        for scenario, rates in RACES:
            for rate in rates:
                time.sleep(SETTLE)
                calls = rate // 2
                before = contender.cpu()
                result = run_sipp(scenario, contender.udp, work, calls=calls * SECONDS,
                                  rate=calls, timeout=30, trace_rtt=True, extra=("-aa",))
                used = contender.cpu() - before
                requests = result.successful * 2
                print(f"{contender.name:>11} {scenario:>14} {rate:>8} "
                      f"{requests / result.seconds:>9.0f} {result.failed:>7} "
                      f"{result.stats.get('Retransmissions(C)', '?'):>8} "
                      f"{percentile(result.rtts_ms, 0.50):>7.0f} "
                      f"{percentile(result.rtts_ms, 0.99):>7.0f} "
                      f"{1000 * used / max(1, requests) * 1000:>12.0f}", flush=True)
    finally:
        contender.stop()


def main() -> None:
    if not sipp_available():
        print("sipp is not installed (Debian package sip-tester): no race")
        return
    if not kamailio_available():
        print("kamailio is not installed (Debian packages kamailio, "
              "kamailio-presence-modules, kamailio-sqlite-modules): no race")
        return
    print(f"each request class per server: {SECONDS} s at each offered rate; "
          "2 requests per SIPp call")
    print(f"{'server':>11} {'scenario':>14} {'offered':>8} {'achieved':>9} {'failed':>7} "
          f"{'retrans':>8} {'p50 ms':>7} {'p99 ms':>7} {'CPU ms/1000':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        race(start_sipresence, work)
        race(start_kamailio, work)
