"""Presence throughput, latency, fan-out and memory (``python -m bench presence``).

* PUBLISH and SUBSCRIBE+NOTIFY rate sweeps with SIPp against the running agent:
  achieved rate, failed calls, and response-time percentiles (SIPp measures whole ms);
  then the same above capacity, to show what overload control keeps.
* The same at 1,000 requests/s with the garbage-collector tuning off, for comparison.
* Fan-out: one presentity, 1,000 watchers (``bench/watchers.py`` in its own process);
  each change is timed from the PUBLISH to the last watcher's NOTIFY.
* Memory per idle subscription, with 100,000 subscriptions made through the sans-IO
  agent in this process (tracemalloc; no sockets involved).
"""

from __future__ import annotations

import csv
import gc
import json
import select
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.request
from pathlib import Path

from tests.support.server import Server, start_server
from tests.support.sip import UdpClient, request
from tests.support.sipp import run_sipp, sipp_available

from .options import percentile

SECONDS = 4
SETTLE = 5
PUBLISH_RATES = (1000, 2000, 3000, 5000)      # PUBLISH requests per second
SUBSCRIBE_RATES = (500, 1000, 2000, 3000)     # SUBSCRIBE+NOTIFY exchanges per second


def sweep(server: Server, work: Path, scenario: str, rates: tuple[int, ...], per_call: int,
          unit: str) -> None:
    """Each SIPp call makes *per_call* of the counted exchanges."""
    print(f"{scenario}: {per_call} {unit} per SIPp call; every 2xx waits for its commit "
          "(rows/commit: the group commit's batches)")
    print(f"{'offered/s':>10} {'achieved/s':>11} {'failed':>7} {'retrans':>8} "
          f"{'p50 ms':>7} {'p99 ms':>7} {'rows/commit':>12}")
    for rate in rates:
        time.sleep(SETTLE)  # let the agent drain what the previous rate left behind
        calls = max(1, rate // per_call)
        before = store_counts(server)
        result = run_sipp(scenario, server.udp, work, calls=calls * SECONDS, rate=calls,
                          timeout=60, trace_rtt=True, extra=("-aa",))
        batches, rows = (b - a for a, b in zip(before, store_counts(server), strict=True))
        achieved = result.successful * per_call / result.seconds
        print(f"{rate:>10} {achieved:>11.0f} {result.failed:>7} "
              f"{result.stats.get('Retransmissions(C)', '?'):>8} "
              f"{percentile(result.rtts_ms, 0.50):>7.0f} "
              f"{percentile(result.rtts_ms, 0.99):>7.0f} {rows / max(1, batches):>12.1f}")


def store_counts(server: Server) -> tuple[float, float]:
    """Commits and rows written so far, from the agent's /metrics."""
    host, port = server.http
    text = urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10).read().decode()
    values = dict(line.rsplit(" ", 1) for line in text.splitlines()
                  if line.startswith(("sipresence_store_batches_written_total",
                                      "sipresence_store_rows_written_total")))
    return (float(values["sipresence_store_batches_written_total"]),
            float(values["sipresence_store_rows_written_total"]))


def overload(server: Server, work: Path) -> None:
    """Offered above capacity: what overload control keeps.  Goodput is the requests
    of calls completed per second while SIPp was offering them (the median of its
    per-second counts); a call still unanswered 10 s after the last was offered counts
    as failed; retransmissions are SIPp's, each one a request that waited over 500 ms
    or was dropped by a full socket buffer."""
    print("overload: above capacity, for 4 s")
    print(f"{'scenario':>14} {'offered/s':>10} {'goodput/s':>10} {'failed %':>9} "
          f"{'retrans':>8} {'p50 ms':>7} {'p99 ms':>7}")
    for scenario, rate in (("subscribe.xml", 5000), ("subscribe.xml", 6000),
                           ("publish.xml", 7500), ("publish.xml", 10000)):
        time.sleep(SETTLE)
        calls = rate // 2
        result = run_sipp(scenario, server.udp, work, calls=calls * SECONDS, rate=calls,
                          timeout=10, trace_rtt=True, extra=("-aa", "-fd", "1"))
        print(f"{scenario:>14} {rate:>10} {2 * _completed_per_second(work, scenario):>10.0f} "
              f"{100 * result.failed / (calls * SECONDS):>9.1f} "
              f"{result.stats.get('Retransmissions(C)', '?'):>8} "
              f"{percentile(result.rtts_ms, 0.50):>7.0f} "
              f"{percentile(result.rtts_ms, 0.99):>7.0f}")


def _completed_per_second(work: Path, scenario: str) -> float:
    """The median of SIPp's per-second successful calls over the seconds it was
    still starting calls (its ``-fd 1`` statistics rows)."""
    with (work / f"{Path(scenario).stem}_stats.csv").open() as rows:
        table = list(csv.DictReader(rows, delimiter=";"))
    loaded = [int(row["SuccessfulCall(P)"]) for row in table
              if int(row.get("OutgoingCall(P)") or 0) > 0]
    return statistics.median(loaded) if loaded else 0.0


def fanout(server: Server, watchers: int = 1000, changes: int = 10) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "bench.watchers", "--agent",
                             f"{server.udp[0]}:{server.udp[1]}", "--count", str(watchers)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdin is not None

    def event(timeout: float = 60.0) -> dict[str, object]:
        readable, _, _ = select.select([proc.stdout], [], [], timeout)
        if not readable:
            raise TimeoutError(f"the watchers said nothing for {timeout:.0f} s")
        return json.loads(proc.stdout.readline())  # type: ignore[no-any-return]

    try:
        ready = event()
        print(f"fan-out: {ready['subscribed']} watchers of one presentity")
        time.sleep(2)  # the subscription burst may have tripped overload control
        publisher = UdpClient(server.udp)
        etag = None
        rates = []
        for change in range(changes):
            body = (f'<presence xmlns="urn:ietf:params:xml:ns:pidf" '
                    f'xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" entity="sip:fan@x">'
                    f'<tuple id="t"><status><basic>open</basic></status></tuple>'
                    f'<dm:person id="p"><dm:note>fan-{change}</dm:note></dm:person>'
                    f'</presence>').encode()
            headers = "Event: presence\r\nContent-Type: application/pidf+xml\r\n"
            if etag:
                headers += f"SIP-If-Match: {etag}\r\n"
            time.sleep(0.5)  # the previous fan-out's 200s are in; changes are not back to back
            message = request("PUBLISH", server.udp, publisher.local,
                              uri=f"sip:fan@{server.udp[0]}", headers=headers, body=body,
                              call_id="fan-publisher", cseq=change + 1)
            shed = 0
            started = time.time()
            for _ in range(7):  # timer E, roughly: resend until answered
                publisher.send(message)
                try:
                    answer = publisher.recv(timeout=0.5)
                except TimeoutError:
                    continue
                if answer.status == 503:  # overloaded: come back as told
                    shed += 1
                    time.sleep(float(answer.headers.get("Retry-After") or 1))
                    started = time.time()  # timed from the PUBLISH that is accepted
                    continue
                break
            else:
                raise TimeoutError("the PUBLISH was not answered")
            etag = answer.headers.get("SIP-ETag")
            done = event()
            seconds = done["last"] - started
            rates.append(done["count"] / seconds)
            print(f"  change {change}: {done['count']} NOTIFYs in {seconds * 1000:.0f} ms "
                  f"= {done['count'] / seconds:.0f} NOTIFY/s"
                  + (f" (PUBLISH answered 503 {shed} times first)" if shed else ""))
        print(f"  median {sorted(rates)[len(rates) // 2]:.0f} NOTIFY/s")
        publisher.close()
    finally:
        proc.stdin.close()
        proc.wait(10)


def memory(subscriptions: int = 100_000) -> None:
    """Bytes held per idle subscription, through the real parser, endpoint and agent."""
    from sipresence.presence.agent import Agent
    from sipresence.sip.endpoint import Endpoint
    from sipresence.sip.parser import parse_datagram
    from sipresence.sip.transport import Peer
    from sipresence.sip.uas import make_response

    agent = Agent()
    endpoint = Endpoint(agent)
    endpoint.add_listener("UDP", "127.0.0.1", 5060)
    peer = Peer("UDP", "192.0.2.7", 5070, None, ("127.0.0.1", 5060))
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    started = time.perf_counter()
    for i in range(subscriptions):
        endpoint.receive_datagram((
            f"SUBSCRIBE sip:user{i % 1000}@example.com SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bKm{i};rport\r\n"
            f"From: <sip:watcher{i}@example.com>;tag=w{i}\r\n"
            f"To: <sip:user{i % 1000}@example.com>\r\nCall-ID: mem-{i}@192.0.2.7\r\n"
            "CSeq: 1 SUBSCRIBE\r\nMax-Forwards: 70\r\nEvent: presence\r\nExpires: 3600\r\n"
            f"Contact: <sip:watcher{i}@192.0.2.7:5070>\r\nContent-Length: 0\r\n\r\n").encode(),
            peer, 0.0)
        notify = parse_datagram(endpoint.transmissions()[-1].data)
        endpoint.receive_datagram(make_response(notify, 200).to_bytes(), peer, 0.0)
        endpoint.transmissions()
        agent.journal.drain()
    endpoint.handle_timer(100.0)  # transactions end (timers J and K): only subscriptions stay
    endpoint.transmissions()
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    print(f"memory: {subscriptions} idle subscriptions (1,000 presentities) hold "
          f"{held / 2**20:.1f} MiB = {held / subscriptions:.0f} bytes each "
          f"(built in {time.perf_counter() - started:.1f} s, "
          f"{len(agent.notifier)} live, {endpoint.transaction_count()} transactions)")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if not sipp_available():
            print("sipp is not installed (Debian package sip-tester): no rate sweeps")
        else:
            server = start_server(work, "--log-level", "warn", listen=("udp:127.0.0.1:0",),
                                  db=str(work / "bench.sqlite3"))
            try:
                fanout(server)
                sweep(server, work, "publish.xml", PUBLISH_RATES, 2, "PUBLISH")
                sweep(server, work, "subscribe.xml", SUBSCRIBE_RATES, 2, "SUBSCRIBE+NOTIFY")
                overload(server, work)
            except TimeoutError as exc:
                print(f"  stopped: {exc}")
            finally:
                server.stop()
            config = work / "nogc.toml"
            config.write_text("[runtime]\ngc_tuning = false\n")
            server = start_server(work, "--log-level", "warn", "--config", str(config),
                                  listen=("udp:127.0.0.1:0",),
                                  db=str(work / "nogc.sqlite3"))
            try:
                print("without gc tuning:")
                sweep(server, work, "publish.xml", (1000,), 2, "PUBLISH")
                sweep(server, work, "subscribe.xml", (1000,), 2, "SUBSCRIBE+NOTIFY")
            finally:
                server.stop()
        memory()
