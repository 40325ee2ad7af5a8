"""Many presence watchers on one UDP socket, for the fan-out benchmark.

Run as a process of its own (so it has the other core):

    python -m bench.watchers --agent 127.0.0.1:5060 --count 1000 --presentity fan

It subscribes *count* times to ``sip:<presentity>@<agent host>``, answers every NOTIFY
with 200, and prints one JSON line per event: ``{"subscribed": N, "at": t}`` once all
first NOTIFYs came, then ``{"marker": m, "count": N, "first": t0, "last": t1}`` when
every watcher has seen a NOTIFY whose body contains the note ``m``.  It stops when
stdin closes.
"""

from __future__ import annotations

import argparse
import json
import re
import select
import socket
import sys
import time

_NOTE = re.compile(rb"<dm:note>(fan-[0-9]+)</dm:note>")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agent", required=True)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--presentity", default="fan")
    args = parser.parse_args()
    host, port = args.agent.rsplit(":", 1)
    agent = (host, int(port))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    local = sock.getsockname()
    target = f"sip:{args.presentity}@{host}"

    def emit(**event: object) -> None:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()

    def subscribe(i: int) -> None:
        sock.sendto((
            f"SUBSCRIBE {target} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch=z9hG4bKw{i};rport\r\n"
            f"From: <sip:w{i}@{local[0]}>;tag=w{i}\r\nTo: <{target}>\r\n"
            f"Call-ID: fan-{i}\r\nCSeq: 1 SUBSCRIBE\r\nMax-Forwards: 70\r\n"
            f"Contact: <sip:w{i}@{local[0]}:{local[1]}>\r\nEvent: presence\r\n"
            "Expires: 3600\r\nAccept: application/pidf+xml\r\nContent-Length: 0\r\n\r\n"
        ).encode(), agent)

    for i in range(args.count):
        subscribe(i)
        if i % 50 == 49:
            time.sleep(0.01)  # do not flood the agent's socket buffer
    # A SUBSCRIBE whose NOTIFY has not come in a second is sent again (same branch:
    # the agent answers a retransmission from its transaction).
    retry_at = time.monotonic() + 1.0
    first_notified: set[bytes] = set()
    seen: dict[bytes, dict[bytes, float]] = {}  # marker -> call-id -> time
    announced: set[bytes] = set()
    subscribed_at: float | None = None
    while True:
        readable, _, _ = select.select([sock, sys.stdin], [], [], 0.2)
        if sys.stdin in readable and not sys.stdin.readline():
            return
        if subscribed_at is None and time.monotonic() > retry_at:
            for i in range(args.count):
                if f"Call-ID: fan-{i}".encode() not in first_notified:
                    subscribe(i)
            retry_at = time.monotonic() + 1.0
        if sock not in readable:
            continue
        while True:
            try:
                data, source = sock.recvfrom(65535, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            if not data.startswith(b"NOTIFY"):
                continue
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            keep = [line for line in lines[1:] if line[:4].lower() in
                    (b"via:", b"from", b"to: ", b"call", b"cseq")]
            sock.sendto(b"SIP/2.0 200 OK\r\n" + b"\r\n".join(keep)
                        + b"\r\nContent-Length: 0\r\n\r\n", source)
            call_id = next(line for line in keep if line[:4].lower() == b"call")
            now = time.time()
            first_notified.add(call_id)
            if subscribed_at is None and len(first_notified) == args.count:
                subscribed_at = now
                emit(subscribed=args.count, at=now)
            match = _NOTE.search(body)
            if match:
                marker = match.group(1)
                times = seen.setdefault(marker, {})
                times.setdefault(call_id, now)
                if len(times) == args.count and marker not in announced:
                    announced.add(marker)
                    emit(marker=marker.decode(), count=len(times), first=min(times.values()),
                         last=max(times.values()))


if __name__ == "__main__":
    main()
