"""Soak: mixed traffic at half capacity for minutes, a SIGTERM restart halfway, and a
verdict on leaks (``python -m bench soak [--minutes N] [--rate R]``; not in the
default ``python -m bench`` run, it takes ``N`` minutes plus the drain).

Why: rate sweeps last seconds; a leak of one transaction, subscription or timer per
thousand requests only shows after many minutes, and a restart under load is where
state gets lost or doubled.  So the real agent (a subprocess pinned to core 0) gets
every kind of request it serves for a long time from a load generator in this
process (pinned to core 1), and every minute the agent's RSS (and the C heap's part
of it) and its live counts (``/metrics``) are printed beside the counts the generator
expects from what it was answered.

The mix, as shares of the new requests sent (``--rate`` in all, 800/s by default).
This mix costs more per request than the sweeps' (PUBLISH alone 5,000/s, SUBSCRIBE
with its NOTIFY 3,000/s): presence changes fan out NOTIFYs, every change is written to
SQLite, and the store's writer thread shares core 0 with the reactor.  Measured here,
1,800/s offered made the agent shed 16 % with 503 (about 1,500/s achieved) and 1,000/s
took 66-75 % of its core; 800/s is about half of what it takes:

* 35 % presence PUBLISH: initial (PIDF), refresh (SIP-If-Match, no body) 5-20 s
  later, removal (Expires: 0) 5-20 s after that for two flows in three, the third
  left to expire; a quarter to presentities never seen before (new users);
* 25 % SUBSCRIBE (four in five to presence, one to dialog): the first NOTIFY and
  every later one answered 200; un-SUBSCRIBE 5-30 s later for two in three, the
  third left to expire (the agent's terminated NOTIFY answered too);
* 10 % REGISTER, de-REGISTER 5-30 s later for two in three;
* 10 % dialog-event PUBLISH (``application/dialog-info+xml``): a call's trying,
  confirmed, terminated, then removal for one in two;
* 12 % INVITE (answered 302, 486 or 480 by the presence of the callee, ACKed), a
  quarter to unknown users as scanners do;
* 8 % malformed: bad CSeq, CSeq method not the request's, no Call-ID, no From,
  non-UTF-8 display name, non-UTF-8 PIDF, broken PIDF, broken dialog-info, a
  Content-Length past the end (each must get 400), and bytes that are no SIP at all
  (no answer);
* every 15 s a TCP client that connects, sends half a message and stalls: the agent
  must close it after its idle timeout (20 s here).

Expiries are 60 s (``min_expires`` lowered to 10 in the agent's configuration) so that
publications, subscriptions and registrations expire during the run.  Requests are
retransmitted as RFC 3261 timers A/E say (T1 0.5 s, T2 4 s) and fail after 32 s.
All goes to 127.0.0.1, from one UDP socket, and three more for publishers (``DEVICES``).

Baseline: RSS at the end of the first minute (warm, with the steady live set).  After
the last minute no new flow starts, the running ones finish and the rest expire; then
the agent must hold no transaction, publication, subscription or registration, no
more file descriptors than when it started, and RSS within the larger of 20 MiB and
10 % of the baseline (the restarted process compared with it, too).  Every minute,
and 5 s after the restart, its live counts must be within 2-3 % (+50) of the
generator's.  Failures (an unexpected answer, none, or two different finals for one
transaction) are counted apart when the transaction overlapped the restart.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import os
import random
import re
import resource
import selectors
import socket
import statistics
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.server import Server, start_server

RATE = 800
MINUTES = 10
MIX = (("publish", 0.35), ("subscribe", 0.25), ("register", 0.10), ("dialog", 0.10),
       ("invite", 0.12), ("malformed", 0.08))
ENDED = 2 / 3       # share of publications, subscriptions, registrations ended by their owner
DIALOG_REMOVED = 1 / 2
FRESH = 1 / 4       # share of presence PUBLISH and INVITE to never-seen presentities
# New requests each flow sends on average (pacing turns the rate into flows per second).
REQUESTS_PER_FLOW = {"publish": 2 + ENDED, "subscribe": 1 + ENDED, "register": 1 + ENDED,
                     "dialog": 3 + DIALOG_REMOVED, "invite": 1, "malformed": 1}
EXPIRES = 60
POOL = 10_000       # presentities shared by all request kinds
# Publishers: sockets of their own.  The agent takes an initial PUBLISH from the address
# and port of an older publication for the same presentity as that device starting over
# (publications.py), so one socket publishes at most once per presentity at a time.
DEVICES = 4
T1, T2, TIMER_F = 0.5, 4.0, 32.0
STALL_EVERY = 15.0
IDLE_TIMEOUT = 20
AGENT_CONFIG = f"[presence]\nmin_expires = 10\n[sip]\ntcp_idle_timeout = {IDLE_TIMEOUT}\n"
RESTART_SETTLE = 5.0
DRAIN_LIMIT = EXPIRES + TIMER_F + 60  # the last flows' expiry, timer J, slack
RSS_SLACK_MIB, RSS_SLACK_SHARE = 20.0, 0.10
HOST = "127.0.0.1"
LIVE = ("publications", "subscriptions", "registrations")
ANY_FINAL = frozenset({200, 202})
ROUTED = frozenset({302, 480, 486})
BAD = frozenset({400})

_BRANCH = re.compile(rb"branch=([^;,\s]+)")
_TAG = re.compile(rb";\s*tag=([^;,\s>]+)")
_COMPACT = {b"v": b"via", b"f": b"from", b"t": b"to", b"i": b"call-id"}
_ECHOED = (b"via", b"from", b"to", b"call-id", b"cseq")

PIDF = ('<?xml version="1.0" encoding="UTF-8"?>\n'
        '<presence xmlns="urn:ietf:params:xml:ns:pidf" '
        'xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" '
        'xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="{aor}">'
        '<tuple id="t{tag}"><status><basic>open</basic></status></tuple>'
        '<dm:person id="p{tag}">{activity}<dm:note>{note}</dm:note></dm:person></presence>')
ACTIVITIES = (("", "Available"), ("<rpid:activities><rpid:busy/></rpid:activities>", "Busy"),
              ("<rpid:activities><rpid:away/></rpid:activities>", "Away"))
# As a Yealink T46G publishes its line (reference/samples/yealink-t46g-dialoginfo-full.xml).
DIALOG_INFO = ('<?xml version="1.0"?>\n'
               '<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="{version}" '
               'state="full" entity="{aor}">\n<dialog id="{tag}" call-id="{tag}@{host}" '
               'local-tag="l{tag}" remote-tag="r{tag}" direction="initiator">\n'
               '<state>{state}</state>\n<local>\n<identity>{aor}</identity>\n'
               '<target uri="{aor}"/>\n</local>\n<remote>\n<identity>sip:1@{host}</identity>\n'
               '<target uri="sip:1@{host}"/>\n</remote>\n</dialog>\n</dialog-info>\n')

Done = Callable[[int, dict[bytes, bytes]], None]


def _cut(data: bytes) -> bytes:
    """The body cut in half (Content-Length says so): XML that ends mid-element."""
    head, _, body = data.partition(b"\r\n\r\n")
    length = len(body)
    head = head.replace(f"Content-Length: {length}".encode(),
                        f"Content-Length: {length // 2}".encode())
    return head + b"\r\n\r\n" + body[:length // 2]


# name, method, body ("", "pidf", "dialog"), how the well-formed request is broken
MALFORMED: tuple[tuple[str, str, str, Callable[[bytes], bytes]], ...] = (
    ("bad CSeq", "OPTIONS", "", lambda d: d.replace(b"CSeq: 1 ", b"CSeq: one ")),
    ("CSeq method", "OPTIONS", "", lambda d: d.replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE")),
    ("no Call-ID", "OPTIONS", "", lambda d: re.sub(rb"Call-ID: [^\r]*\r\n", b"", d)),
    ("no From", "OPTIONS", "", lambda d: re.sub(rb"From: [^\r]*\r\n", b"", d)),
    ("non-UTF-8 From", "OPTIONS", "", lambda d: d.replace(b"From: <", b"From: \xff\xfe\xc0 <")),
    ("non-UTF-8 PIDF", "PUBLISH", "pidf", lambda d: d.replace(b"caf-", b"caf\xe9\xff")),
    ("broken PIDF", "PUBLISH", "pidf", _cut),
    ("broken dialog-info", "PUBLISH", "dialog", _cut),
    ("Content-Length past the end", "OPTIONS", "",
     lambda d: d.replace(b"Content-Length: 0", b"Content-Length: 90")),
)


@dataclass(slots=True)
class Transaction:
    """A client transaction the generator waits on: what it expects, what follows."""
    kind: str
    data: bytes
    expect: frozenset[int]
    done: Done | None
    sent: float
    sock: socket.socket
    interval: float = T1
    invite: bool = False
    provisional: bool = False  # an INVITE answered 1xx is not retransmitted any more


@dataclass
class Stall:
    opened: float
    sock: socket.socket
    closed: float | None = None


@dataclass
class Totals:
    """Cumulative counts; the reporter takes differences between minutes."""
    sent: int = 0
    answered: int = 0
    retransmissions: int = 0
    notifies: int = 0
    garbage: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    restart_failures: Counter[str] = field(default_factory=Counter)
    # each failure across a restart: what, sent and ended (seconds after the SIGTERM)
    restart_detail: list[tuple[str, float, float]] = field(default_factory=list)
    shed: Counter[str] = field(default_factory=Counter)


def _name_of(line: bytes) -> bytes:
    name = line.split(b":", 1)[0].strip().lower()
    return _COMPACT.get(name, name)


def _headers(data: bytes) -> dict[bytes, bytes]:
    """First value of each header, names lower-cased and compact forms expanded: all
    the generator needs of a message, at a fraction of the real parser's cost."""
    head = data.split(b"\r\n\r\n", 1)[0]
    out: dict[bytes, bytes] = {}
    for line in head.split(b"\r\n")[1:]:
        out.setdefault(_name_of(line), line.partition(b":")[2].strip())
    return out


class Load:
    """The load generator: one UDP socket, a timer heap, flows as chains of callbacks.

    It runs in its own thread and owns all its state; the reporter only reads the
    cumulative ints in :attr:`totals` and the :attr:`expected` snapshot it refreshes
    every second, so no lock is taken on the hot path.
    """

    def __init__(self, udp: tuple[str, int], tcp: tuple[str, int], rate: float,
                 seconds: float) -> None:
        self.udp, self.tcp = udp, tcp
        self.selector = selectors.DefaultSelector()
        self.socks = []
        for _ in range(DEVICES):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sock.bind((HOST, 0))
            sock.setblocking(False)
            self.socks.append(sock)
            self.selector.register(sock, selectors.EVENT_READ)
        self.ports = [sock.getsockname()[1] for sock in self.socks]
        self.sock, self.port = self.socks[0], self.ports[0]  # all but the publishers
        # Call-ID of a publishing flow: its presentity, package and device
        self.publishing: dict[str, tuple[str, str, int]] = {}
        self.busy: set[tuple[str, str, int]] = set()
        self.flows_per_second = {kind: rate * share / REQUESTS_PER_FLOW[kind]
                                 for kind, share in MIX}
        self.credit = dict.fromkeys(self.flows_per_second, 0.0)
        self.started = time.monotonic()
        self.traffic_end = self.started + seconds
        self.pending: dict[bytes, Transaction] = {}
        self.acks: dict[bytes, tuple[bytes, float]] = {}  # branch: ACK, until
        # branch: the final answer, the kind, until when a second final is looked for
        self.finals: dict[bytes, tuple[int, str, float]] = {}
        self.timers: list[tuple[float, int, Callable[[], None]]] = []
        self.live: dict[str, dict[str, float]] = {name: {} for name in LIVE}
        self.expected = dict.fromkeys(LIVE, 0)
        self.stalls: list[Stall] = []
        self.windows: list[list[float]] = []  # [start, end] of each restart
        self.totals = Totals()
        self.nonce = f"{os.getpid():x}{random.getrandbits(24):x}"
        self.ids = itertools.count()
        self.finished = threading.Event()
        self.crashed: BaseException | None = None
        self.random = random.Random(9)

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # the reporter says so instead of counting nothing
            self.crashed = exc
            raise
        finally:
            self.selector.close()
            for sock in self.socks:
                sock.close()
            for stall in self.stalls:
                stall.sock.close()

    def _loop(self) -> None:
        last = next_second = time.monotonic()
        next_stall = last + 1
        while not self.finished.is_set():
            for key, _ in self.selector.select(0.005):
                if key.data is None:
                    self._drain(key.fileobj)  # type: ignore[arg-type]
                else:
                    self._stall_readable(key.data)
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                heapq.heappop(self.timers)[2]()
            if now < self.traffic_end:
                elapsed = min(now - last, 0.1)  # after a stall, no burst: the rate shows it
                for kind, per_second in self.flows_per_second.items():
                    self.credit[kind] += elapsed * per_second
                    while self.credit[kind] >= 1:
                        self.credit[kind] -= 1
                        getattr(self, f"_{kind}")(now)
                if now >= next_stall:
                    self._open_stall(now)
                    next_stall = now + STALL_EVERY
            last = now
            if now >= next_second:
                self._second(now)
                next_second = now + 1

    def quiet(self) -> bool:
        """No request unanswered and no flow step to come (the drain can start)."""
        return not self.pending and not self.timers

    def _second(self, now: float) -> None:
        for live in self.live.values():
            for key in [key for key, expiry in live.items() if expiry <= now]:
                del live[key]
                self.release(key)
        self.expected = {name: len(live) for name, live in self.live.items()}
        for branch in [b for b, (_, until) in self.acks.items() if until <= now]:
            del self.acks[branch]
        for branch in [b for b, (_, _, until) in self.finals.items() if until <= now]:
            del self.finals[branch]

    def hold(self, package: str, fresh: float = 0.0) -> tuple[str, int, str] | None:
        """A presentity and a device that has no publication of *package* for it (and
        a Call-ID for the flow); None when a few tries found none free."""
        for _ in range(5):
            user, device = self._name(fresh), self.random.randrange(DEVICES)
            if (user, package, device) not in self.busy:
                call_id = self._call_id(package)
                self.busy.add((user, package, device))
                self.publishing[call_id] = (user, package, device)
                return user, device, call_id
        return None

    def release(self, call_id: str) -> None:
        """The flow's publication is gone (removed, expired, or never made)."""
        slot = self.publishing.pop(call_id, None)
        if slot is not None:
            self.busy.discard(slot)

    def later(self, delay: float, step: Callable[[], None]) -> None:
        heapq.heappush(self.timers, (time.monotonic() + delay, next(self.ids), step))

    # -- transactions ----------------------------------------------------------------------
    def send(self, kind: str, method: str, user: str, call_id: str, cseq: int, from_user: str,
             from_tag: str, expect: frozenset[int], done: Done | None = None, *,
             headers: str = "", body: bytes = b"", to_tag: bytes | None = None,
             uri: str | None = None, mangle: Callable[[bytes], bytes] | None = None,
             device: int = 0) -> None:
        """Send a new request and wait for its final answer (retransmitted meanwhile);
        *mangle* breaks the request on purpose."""
        branch = f"z9hG4bK{self.nonce}x{next(self.ids)}"
        sock = self.socks[device]
        to = f"<sip:{user}@{HOST}>" + (f";tag={to_tag.decode()}" if to_tag else "")
        data = (f"{method} {uri or f'sip:{user}@{HOST}'} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {HOST}:{self.ports[device]};branch={branch};rport\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:{from_user}@{HOST}>;tag={from_tag}\r\n"
                f"To: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n"
                f"{headers}Content-Length: {len(body)}\r\n\r\n").encode() + body
        if mangle is not None:
            data = mangle(data)
        now = time.monotonic()
        self.pending[branch.encode()] = Transaction(kind, data, expect, done, now, sock,
                                                    invite=method == "INVITE")
        self.totals.sent += 1
        self.totals.by_kind[kind] += 1
        self._transmit(branch.encode(), first=True)

    def _transmit(self, branch: bytes, first: bool = False) -> None:
        """Timers A and E: resend at T1, 2 T1, ... (capped at T2 but for INVITE) until
        answered; timer F: fail after 32 s."""
        txn = self.pending.get(branch)
        if txn is None:
            return
        now = time.monotonic()
        if now >= txn.sent + TIMER_F:
            del self.pending[branch]
            self._failed(txn, "timeout", now)
            if txn.done is not None:
                txn.done(408, {})  # as the transaction layer reports a timeout
            return
        wake = txn.sent + TIMER_F
        if not txn.provisional:
            if not first:
                self.totals.retransmissions += 1
            self._sendto(txn.data, self.udp, txn.sock)
            wake = min(wake, now + txn.interval)
            txn.interval = txn.interval * 2 if txn.invite else min(txn.interval * 2, T2)
        heapq.heappush(self.timers, (wake, next(self.ids), lambda: self._transmit(branch)))

    def _sendto(self, data: bytes, address: tuple[str, int],
                sock: socket.socket | None = None) -> None:
        try:
            (sock or self.sock).sendto(data, address)
        except BlockingIOError:
            pass  # a full socket buffer drops it, as the network would

    def _failed(self, txn: Transaction, what: str, now: float) -> None:
        label = f"{txn.kind}: {what}"
        for start, end in self.windows:
            if txn.sent <= end + 1 and now >= start:
                self.totals.restart_failures[label] += 1
                self.totals.restart_detail.append((label, txn.sent - start, now - start))
                return
        self.totals.failures[label] += 1

    def _drain(self, sock: socket.socket) -> None:
        while True:
            try:
                data, source = sock.recvfrom(65535)
            except BlockingIOError:
                return
            if data.startswith(b"SIP/2.0 "):
                self._response(data)
            else:
                self._request(data, source, sock)

    def _response(self, data: bytes) -> None:
        status = int(data[8:11])
        headers = _headers(data)
        found = _BRANCH.search(headers.get(b"via", b""))
        branch = found.group(1) if found else b""
        txn = self.pending.get(branch)
        if txn is None:
            if branch in self.acks and status >= 300:  # our ACK was lost: the final again
                self._sendto(self.acks[branch][0], self.udp)
            first = self.finals.get(branch)
            if first is not None and status >= 200 and status != first[0]:
                # RFC 3261 17.2: one final per transaction (a 503 then a 200 would
                # leave state the client believes refused)
                self.totals.failures[f"{first[1]}: {first[0]} then {status}"] += 1
            return
        if status < 200:  # provisional: INVITE retransmissions stop, timer B goes on
            txn.provisional = txn.invite
            return
        del self.pending[branch]
        self.totals.answered += 1
        now = time.monotonic()
        self.finals[branch] = (status, txn.kind, now + TIMER_F)
        if txn.invite and status >= 300:
            ack = self._ack(txn.data, headers[b"to"])
            self._sendto(ack, self.udp)
            self.acks[branch] = (ack, now + TIMER_F)
        if status == 503:
            self.totals.shed[txn.kind] += 1
        elif status not in txn.expect:
            self._failed(txn, str(status), now)
        if txn.done is not None:
            txn.done(status, headers)

    @staticmethod
    def _ack(invite: bytes, to: bytes) -> bytes:
        """RFC 3261 17.1.1.3: the ACK of a non-2xx final, in the INVITE's transaction."""
        lines = invite.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        out = [lines[0].replace(b"INVITE", b"ACK", 1)]
        for line in lines[1:]:
            name = line.split(b":", 1)[0].lower()
            if name == b"to":
                out.append(b"To: " + to)
            elif name == b"cseq":
                out.append(line.replace(b"INVITE", b"ACK"))
            elif name in (b"via", b"from", b"call-id", b"max-forwards"):
                out.append(line)
        return b"\r\n".join(out) + b"\r\nContent-Length: 0\r\n\r\n"

    def _request(self, data: bytes, source: tuple[str, int], sock: socket.socket) -> None:
        """The agent's NOTIFYs: 200, echoing the headers RFC 3261 8.2.6.2 copies."""
        self.totals.notifies += 1
        head = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        echoed = [line for line in head[1:] if _name_of(line) in _ECHOED]
        self._sendto(b"SIP/2.0 200 OK\r\n" + b"\r\n".join(echoed)
                     + b"\r\nContent-Length: 0\r\n\r\n", source, sock)

    # -- flows -----------------------------------------------------------------------------
    def _name(self, fresh: float = 0.0) -> str:
        if self.random.random() < fresh:
            return f"new{self.nonce}x{next(self.ids)}"
        return f"u{self.random.randrange(POOL)}"

    def _call_id(self, kind: str) -> str:
        return f"{kind}-{self.nonce}-{next(self.ids)}@{HOST}"

    def _publish(self, now: float) -> None:
        held = self.hold("presence", FRESH)
        if held is None:
            return
        user, device, call_id = held
        aor = f"sip:{user}@{HOST}"
        tag = f"p{next(self.ids)}"
        activity, note = self.random.choice(ACTIVITIES)
        body = PIDF.format(aor=aor, tag=tag, activity=activity, note=note).encode()
        live = self.live["publications"]

        def send(kind: str, cseq: int, expires: int, done: Done, etag: bytes | None = None,
                 content: bytes = b"") -> None:
            headers = f"Event: presence\r\nExpires: {expires}\r\n"
            if etag:
                headers += f"SIP-If-Match: {etag.decode()}\r\n"
            if content:
                headers += "Content-Type: application/pidf+xml\r\n"
            self.send(kind, "PUBLISH", user, call_id, cseq, user, tag, ANY_FINAL, done,
                      headers=headers, body=content, device=device)

        def removed(status: int, _: dict[bytes, bytes]) -> None:
            if status == 200:
                live.pop(call_id, None)
                self.release(call_id)

        def refreshed(status: int, headers: dict[bytes, bytes]) -> None:
            if status == 200:
                live[call_id] = time.monotonic() + EXPIRES
                if self.random.random() < ENDED:
                    etag = headers.get(b"sip-etag")
                    self.later(self.random.uniform(5, 20),
                               lambda: send("PUBLISH removal", 3, 0, removed, etag))

        def published(status: int, headers: dict[bytes, bytes]) -> None:
            if status != 200:
                self.release(call_id)
            else:
                live[call_id] = time.monotonic() + EXPIRES
                etag = headers.get(b"sip-etag")
                self.later(self.random.uniform(5, 20),
                           lambda: send("PUBLISH refresh", 2, EXPIRES, refreshed, etag))

        send("PUBLISH initial", 1, EXPIRES, published, content=body)

    def _dialog(self, now: float) -> None:
        """A phone's line through one call: trying, confirmed, terminated, each a modify
        with the previous entity tag; then removal for one flow in two."""
        held = self.hold("dialog")
        if held is None:
            return
        user, device, call_id = held
        aor = f"sip:{user}@{HOST}"
        tag = f"d{next(self.ids)}"
        live = self.live["publications"]
        states = ("trying", "confirmed", "terminated")
        pauses = (self.random.uniform(1, 3), self.random.uniform(3, 10), 1.0)

        def step(index: int, etag: bytes | None) -> None:
            removal = index == len(states)
            headers = f"Event: dialog\r\nExpires: {0 if removal else EXPIRES}\r\n"
            if etag:
                headers += f"SIP-If-Match: {etag.decode()}\r\n"
            if removal:
                self.send("dialog PUBLISH removal", "PUBLISH", user, call_id, index + 1, user,
                          tag, ANY_FINAL, removed, headers=headers, device=device)
                return
            body = DIALOG_INFO.format(version=index, aor=aor, tag=tag, host=HOST,
                                      state=states[index]).encode()
            self.send(f"dialog PUBLISH {states[index]}", "PUBLISH", user, call_id, index + 1,
                      user, tag, ANY_FINAL, lambda status, h: answered(index, status, h),
                      headers=headers + "Content-Type: application/dialog-info+xml\r\n",
                      body=body, device=device)

        def answered(index: int, status: int, headers: dict[bytes, bytes]) -> None:
            if status != 200:
                if index == 0:
                    self.release(call_id)
                return
            live[call_id] = time.monotonic() + EXPIRES
            etag = headers.get(b"sip-etag")
            if index + 1 < len(states) or self.random.random() < DIALOG_REMOVED:
                self.later(pauses[index], lambda: step(index + 1, etag))

        def removed(status: int, _: dict[bytes, bytes]) -> None:
            if status == 200:
                live.pop(call_id, None)
                self.release(call_id)

        step(0, None)

    def _subscribe(self, now: float) -> None:
        user = self._name()
        dialog = self.random.random() < 0.2
        event = ("Event: dialog\r\nAccept: application/dialog-info+xml\r\n" if dialog
                 else "Event: presence\r\nAccept: application/pidf+xml\r\n")
        kind = "SUBSCRIBE dialog" if dialog else "SUBSCRIBE presence"
        call_id, tag, watcher = self._call_id("sub"), f"w{next(self.ids)}", f"w{user}"
        contact = f"Contact: <sip:{watcher}@{HOST}:{self.port}>\r\n"
        live = self.live["subscriptions"]

        def ended(status: int, _: dict[bytes, bytes]) -> None:
            if status in ANY_FINAL:
                live.pop(call_id, None)

        def subscribed(status: int, headers: dict[bytes, bytes]) -> None:
            if status not in ANY_FINAL:
                return
            live[call_id] = time.monotonic() + EXPIRES
            found = _TAG.search(headers.get(b"to", b""))
            if found and self.random.random() < ENDED:
                self.later(self.random.uniform(5, 30), lambda: self.send(
                    "un-SUBSCRIBE", "SUBSCRIBE", user, call_id, 2, watcher, tag, ANY_FINAL,
                    ended, headers=event + contact + "Expires: 0\r\n", to_tag=found.group(1)))

        self.send(kind, "SUBSCRIBE", user, call_id, 1, watcher, tag, ANY_FINAL, subscribed,
                  headers=f"{event}{contact}Expires: {EXPIRES}\r\n")

    def _register(self, now: float) -> None:
        user = self._name()
        call_id, tag = self._call_id("reg"), f"r{next(self.ids)}"
        contact = f"Contact: <sip:{user}-{next(self.ids)}@{HOST}:{self.port}>\r\n"
        live = self.live["registrations"]

        def send(kind: str, cseq: int, expires: int, done: Done) -> None:
            self.send(kind, "REGISTER", user, call_id, cseq, user, tag, ANY_FINAL, done,
                      headers=f"{contact}Expires: {expires}\r\n", uri=f"sip:{HOST}")

        def unregistered(status: int, _: dict[bytes, bytes]) -> None:
            if status == 200:
                live.pop(call_id, None)

        def registered(status: int, _: dict[bytes, bytes]) -> None:
            if status == 200:
                live[call_id] = time.monotonic() + EXPIRES
                if self.random.random() < ENDED:
                    self.later(self.random.uniform(5, 30),
                               lambda: send("de-REGISTER", 2, 0, unregistered))

        send("REGISTER", 1, EXPIRES, registered)

    def _invite(self, now: float) -> None:
        user = self._name(FRESH)
        self.send("INVITE", "INVITE", user, self._call_id("inv"), 1, "caller",
                  f"c{next(self.ids)}", ROUTED,
                  headers=f"Contact: <sip:caller@{HOST}:{self.port}>\r\n")

    def _malformed(self, now: float) -> None:
        """One of the broken requests devices and scanners send; each must get a 400
        and change nothing (bytes that are no SIP at all: no answer)."""
        variant = self.random.randrange(len(MALFORMED) + 1)
        if variant == len(MALFORMED):
            self.totals.garbage += 1
            self._sendto(b"\x00\x16\x03\x01 not SIP \xff\xfe\r\n\r\n"
                         + self.random.randbytes(40), self.udp)
            return
        user = self._name()
        aor = f"sip:{user}@{HOST}"
        call_id, tag = self._call_id("bad"), f"b{next(self.ids)}"
        name, method, body_kind, mangle = MALFORMED[variant]
        headers, body = "", b""
        if body_kind == "pidf":
            headers = "Event: presence\r\nExpires: 60\r\nContent-Type: application/pidf+xml\r\n"
            body = PIDF.format(aor=aor, tag="t", activity="", note="caf-").encode()
        elif body_kind == "dialog":
            headers = ("Event: dialog\r\nExpires: 60\r\n"
                       "Content-Type: application/dialog-info+xml\r\n")
            body = DIALOG_INFO.format(version=0, aor=aor, tag=tag, host=HOST,
                                      state="early").encode()
        self.send(f"malformed: {name}", method, user, call_id, 1, "bad", tag, BAD,
                  headers=headers, body=body, mangle=mangle)

    # -- TCP clients that stall ------------------------------------------------------------
    def _open_stall(self, now: float) -> None:
        """Half a PUBLISH (every other time: all headers, half the body), then nothing."""
        try:
            sock = socket.create_connection(self.tcp, timeout=2)
        except OSError:
            return  # the agent restarts: the next one
        sock.setblocking(False)
        body = PIDF.format(aor=f"sip:stall@{HOST}", tag="s", activity="", note="x").encode()
        local = sock.getsockname()[1]
        message = (f"PUBLISH sip:stall@{HOST} SIP/2.0\r\n"
                   f"Via: SIP/2.0/TCP {HOST}:{local};branch=z9hG4bK{self.nonce}s{local}\r\n"
                   f"Max-Forwards: 70\r\nFrom: <sip:stall@{HOST}>;tag=s\r\n"
                   f"To: <sip:stall@{HOST}>\r\nCall-ID: {self._call_id('stall')}\r\n"
                   "CSeq: 1 PUBLISH\r\nEvent: presence\r\nExpires: 60\r\n"
                   f"Content-Type: application/pidf+xml\r\nContent-Length: {len(body)}\r\n"
                   "\r\n").encode() + body
        half = len(message) // 2 if len(self.stalls) % 2 == 0 else len(message) - len(body) // 2
        sock.send(message[:half])
        stall = Stall(now, sock)
        self.stalls.append(stall)
        self.selector.register(sock, selectors.EVENT_READ, stall)

    def _stall_readable(self, stall: Stall) -> None:
        try:
            if stall.sock.recv(65535):
                return  # an answer to half a message would be odd, but not a leak
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass  # reset: closed too
        stall.closed = time.monotonic()
        self.selector.unregister(stall.sock)
        stall.sock.close()

    def stall_verdict(self) -> tuple[int, int, list[str]]:
        """(opened, closed, problems): each must be closed by the agent after about
        its idle timeout, or by its restart."""
        problems = []
        closed = 0
        for stall in self.stalls:
            if stall.closed is None:
                problems.append("stalled TCP client still open, opened at "
                                f"{stall.opened - self.started:.0f} s")
                continue
            closed += 1
            held = stall.closed - stall.opened
            by_restart = any(start <= stall.closed <= end + 1 for start, end in self.windows)
            if held > IDLE_TIMEOUT + 5 and not by_restart:
                problems.append(f"stalled TCP client held {held:.0f} s "
                                f"(idle timeout {IDLE_TIMEOUT} s)")
        return len(self.stalls), closed, problems


# -- the agent ---------------------------------------------------------------------------
class Agent:
    """The agent subprocess, started and restarted on the same ports and database."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.config = work / "soak.toml"
        self.config.write_text(AGENT_CONFIG)
        self.db = str(work / "soak.sqlite3")
        self.stopped: list[Server] = []
        self.server = self._start(("udp:127.0.0.1:0", "tcp:127.0.0.1:0"), "127.0.0.1:0")

    def _start(self, listen: tuple[str, ...], http: str) -> Server:
        server = start_server(self.work, "--log-level", "warn", "--config", str(self.config),
                              listen=listen, http=http, db=self.db)
        pin(server.proc.pid, 0)
        return server

    def restart(self) -> tuple[int, bool, float]:
        """SIGTERM, wait for the exit, start again: (exit status, "stopped" logged,
        seconds without an agent)."""
        old = self.server
        self.stopped.append(old)
        began = time.monotonic()
        status = old.stop(timeout=60)
        stopped = any("stopped" in line for line in old.lines)
        (udp_host, udp_port), (tcp_host, tcp_port) = old.udp, old.tcp
        http_host, http_port = old.http
        self.server = self._start((f"udp:{udp_host}:{udp_port}", f"tcp:{tcp_host}:{tcp_port}"),
                                  f"{http_host}:{http_port}")
        return status, stopped, time.monotonic() - began

    def log_problems(self) -> list[str]:
        """The warnings, errors and tracebacks the agent logged, in all its lives."""
        return [line for server in (*self.stopped, self.server) for line in server.lines
                if any(mark in line for mark in ("#warn", "#error", "#critical", "Traceback"))]

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.server.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def heap_mib(self) -> float:
        """The resident part of the C heap (glibc's main arena, ``[heap]`` in smaps):
        where the reactor thread's large allocations go.  Python's small objects live
        in pymalloc's own mappings, so RSS rising with this flat points at them, and
        this rising with them flat points at buffers, C libraries or fragmentation."""
        total, in_heap = 0, False
        for line in Path(f"/proc/{self.server.proc.pid}/smaps").read_text().splitlines():
            if line[:1].isdigit() or line[:1] in "abcdef":
                in_heap = line.endswith("[heap]")
            elif in_heap and line.startswith("Rss:"):
                total += int(line.split()[1])
        return total / 1024

    def cpu_seconds(self) -> float:
        """User and system time of the agent process so far."""
        fields = Path(f"/proc/{self.server.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.server.proc.pid}/fd"))

    def metrics(self) -> dict[str, float]:
        """The gauges the soak watches, summed over their labels."""
        host, port = self.server.http
        try:
            text = urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10).read()
        except OSError as exc:
            status = self.server.proc.poll()
            raise RuntimeError(f"no /metrics ({exc}); the agent "
                               + ("runs" if status is None else f"exited with status {status}")
                               + ":\n" + "\n".join(self.server.lines[-30:])) from None
        wanted = {"sipresence_sip_transactions": "transactions",
                  "sipresence_publications": "publications",
                  "sipresence_subscriptions": "subscriptions",
                  "sipresence_registrations": "registrations",
                  "sipresence_sip_shed_total": "shed"}
        out = dict.fromkeys(wanted.values(), 0.0)
        for line in text.decode().splitlines():
            name = line.split("{", 1)[0].split(" ", 1)[0]
            if name in wanted:
                out[wanted[name]] += float(line.rsplit(" ", 1)[1])
        return out


def pin(pid: int, cpu: int) -> None:
    """Every thread of *pid* on *cpu* (threads started later inherit it), when the
    machine has that core: the agent and the generator do not compete for one."""
    if cpu >= (os.cpu_count() or 1):
        return
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(task), {cpu})
        except OSError:
            pass  # the thread ended meanwhile


# -- the run -----------------------------------------------------------------------------
COLUMNS = {"sent": 9, "answered": 9, "notifies": 8, "retransmissions": 8, "failed": 7,
           "shed": 5}  # per-minute columns and their widths


HEADER = (f"{'min':>4} {'RSS MiB':>8} {'heap':>6} {'CPU %':>6} {'fds':>4} {'transactions':>12} "
          + " ".join(f"{name:>15}" for name in LIVE) + " "
          + " ".join(f"{name if name != 'retransmissions' else 'retrans':>{width}}"
                     for name, width in COLUMNS.items()))


def soak(minutes: int, rate: float) -> bool:
    """Run the soak; True when no leak and no failure was found."""
    pin(os.getpid(), 1)
    print(f"soak: {minutes:g} min at {rate:.0f} requests/s offered "
          f"({', '.join(f'{k} {100 * s:.0f} %' for k, s in MIX)}), a stalled TCP client "
          f"every {STALL_EVERY:.0f} s, SIGTERM restart at {minutes / 2:g} min; "
          "live counts as agent/expected; figures from a shared machine")
    with tempfile.TemporaryDirectory() as tmp:
        agent = Agent(Path(tmp))
        idle_fds = agent.fds()
        load = Load(agent.server.udp, agent.server.tcp, rate, minutes * 60)
        thread = threading.Thread(target=load.run, name="load", daemon=True)
        thread.start()
        try:
            return _report(agent, load, minutes, idle_fds)
        finally:
            load.finished.set()
            thread.join(10)
            agent.server.stop(timeout=60)


def _report(agent: Agent, load: Load, minutes: int, idle_fds: int) -> bool:
    print(HEADER)
    problems: list[str] = []
    rss: dict[int, float] = {}
    sent = [0]  # per minute, from minute 1
    before = dict.fromkeys(COLUMNS, 0)
    cpu = (agent.server.proc.pid, agent.cpu_seconds())
    restart_at = load.started + minutes * 30
    for minute in range(1, minutes + 1):
        end = load.started + minute * 60
        if not load.windows and restart_at < end:
            _sleep_until(restart_at)
            problems += _restart(agent, load)
        _sleep_until(end)
        if load.crashed is not None:
            raise RuntimeError("the load generator stopped") from load.crashed
        seen, now = agent.metrics(), _columns(load.totals)
        rss[minute] = agent.rss_mib()
        # after the restart: the new process's time only (the old one's last seconds are lost)
        used = agent.cpu_seconds() - (cpu[1] if cpu[0] == agent.server.proc.pid else 0.0)
        cpu = (agent.server.proc.pid, agent.cpu_seconds())
        print(f"{minute:>4} {rss[minute]:>8.1f} {agent.heap_mib():>6.1f} {100 * used / 60:>6.0f} "
              f"{agent.fds():>4} "
              f"{seen['transactions']:>12.0f} "
              + " ".join(f"{seen[name]:>7.0f}/{load.expected[name]:<7}" for name in LIVE) + " "
              + " ".join(f"{now[k] - before[k]:>{w}}" for k, w in COLUMNS.items()), flush=True)
        sent.append(now["sent"] - before["sent"])
        before = now
        for name in LIVE:
            if abs(seen[name] - load.expected[name]) > 0.02 * load.expected[name] + 50:
                problems.append(f"minute {minute}: {seen[name]:.0f} {name} live, "
                                f"{load.expected[name]} expected")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    busy = (usage.ru_utime + usage.ru_stime) / (time.monotonic() - load.started)
    steady = statistics.median(sent[2:] or sent[1:]) / 60  # minute 1 warms up
    print(f"traffic over: {load.totals.sent} requests in {minutes * 60} s, "
          f"{steady:.0f}/s achieved (median minute after the first) "
          f"(+ {load.totals.garbage} datagrams of garbage); the load generator used "
          f"{100 * busy:.0f} % of a core; draining")
    drained = _drain(agent, load)
    final, final_rss, final_fds = agent.metrics(), agent.rss_mib(), agent.fds()
    print(f"drained after {drained:.0f} s: RSS {final_rss:.1f} MiB (C heap "
          f"{agent.heap_mib():.1f}), fds {final_fds} "
          f"({idle_fds} at start), "
          + ", ".join(f"{name} {final[name]:.0f}" for name in ("transactions", *LIVE)))
    baseline = rss[1]
    limit = baseline + max(RSS_SLACK_MIB, RSS_SLACK_SHARE * baseline)
    checked = {"before SIGTERM": rss[max(1, minutes // 2)], "last loaded minute": rss[minutes],
               "drained": final_rss}
    print(f"RSS: baseline {baseline:.1f} MiB (minute 1), limit {limit:.1f} MiB; "
          + ", ".join(f"{what} {value:.1f}" for what, value in checked.items()))
    for what, value in checked.items():
        if value > limit:
            problems.append(f"RSS {what} {value:.1f} MiB > {limit:.1f} MiB "
                            f"(baseline {baseline:.1f} MiB at minute 1)")
    for name in ("transactions", *LIVE):
        if final[name]:
            problems.append(f"{final[name]:.0f} {name} still live after the drain")
    if final_fds > idle_fds:
        problems.append(f"{final_fds} file descriptors after the drain, {idle_fds} at start")
    opened, closed, stall_problems = load.stall_verdict()
    problems += stall_problems
    print(f"stalled TCP clients: {opened} opened, {closed} closed by the agent")
    _print_requests(load.totals)
    logged = agent.log_problems()
    print(f"agent log: {len(logged)} warnings and errors" + "".join(
        f"\n  {line[:300]}" for line in dict.fromkeys(logged[:10])))
    failed = sum(load.totals.failures.values())
    print(("LEAK: " + "; ".join(problems)) if problems else "no leak")
    if failed:
        print(f"FAILURES: {failed} requests outside the restart (listed above)")
    return not problems and not failed


def _columns(totals: Totals) -> dict[str, int]:
    return {"sent": totals.sent, "answered": totals.answered, "notifies": totals.notifies,
            "retransmissions": totals.retransmissions,
            "failed": sum(totals.failures.values()) + sum(totals.restart_failures.values()),
            "shed": sum(totals.shed.values())}


def _restart(agent: Agent, load: Load) -> list[str]:
    """SIGTERM under load and start again on the same database: a clean exit, and
    the live state back (less what expired meanwhile)."""
    load.windows.append([time.monotonic(), float("inf")])
    seen = agent.metrics()
    status, stopped, down = agent.restart()
    load.windows[-1][1] = time.monotonic()
    time.sleep(RESTART_SETTLE)  # what was retransmitted meanwhile is answered
    after, expected = agent.metrics(), load.expected
    print(f"     SIGTERM: exit status {status}, 'stopped' logged: {'yes' if stopped else 'NO'}, "
          f"{down:.1f} s without an agent; live before / {RESTART_SETTLE:.0f} s after / "
          "expected: "
          + ", ".join(f"{name} {seen[name]:.0f}/{after[name]:.0f}/{expected[name]}"
                      for name in LIVE), flush=True)
    problems = []
    if status != 0 or not stopped:
        problems.append(f"SIGTERM: exit status {status}, 'stopped' logged: {stopped}")
    for name in LIVE:
        # What the old agent answered must be back; requests in flight make a few more
        # or fewer (a SUBSCRIBE whose 200 the stop swallowed is made again, anew).
        if abs(after[name] - expected[name]) > 0.03 * expected[name] + 50:
            problems.append(f"restart: {after[name]:.0f} {name} restored, "
                            f"{expected[name]} expected")
    return problems


def _drain(agent: Agent, load: Load) -> float:
    """Wait for the flows to finish and every expiry and timer J to pass, up to a
    bound; the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < DRAIN_LIMIT:
        time.sleep(5)
        seen = agent.metrics()
        if load.quiet() and not any(seen[name] for name in ("transactions", *LIVE)):
            break
    return time.monotonic() - started


def _print_requests(totals: Totals) -> None:
    print("requests by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(totals.by_kind.items())))
    print(f"NOTIFYs answered {totals.notifies}, retransmissions {totals.retransmissions}, "
          f"503 shed {sum(totals.shed.values())}"
          + (f" ({', '.join(f'{k} {v}' for k, v in totals.shed.most_common())})"
             if totals.shed else ""))
    for title, counts in (("failed", totals.failures),
                          ("failed across the restart", totals.restart_failures)):
        print(f"{title}: " + (", ".join(f"{k} x{v}" for k, v in counts.most_common())
                              if counts else "none"))
    for label, sent, ended in totals.restart_detail[:20]:
        print(f"  {label}: sent {sent:+.2f} s, ended {ended:+.2f} s from the SIGTERM")


def _sleep_until(deadline: float) -> None:
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 1.0))


def main(argv: list[str] | None = None) -> int:
    """Exit status 1 when the soak found a leak or a failure."""
    parser = argparse.ArgumentParser(prog="python -m bench soak", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("--minutes", type=int, default=MINUTES)
    parser.add_argument("--rate", type=float, default=RATE, help="new requests per second")
    args = parser.parse_args(argv)
    return 0 if soak(args.minutes, args.rate) else 1
