"""The same fuzzed sessions through the Twisted edge: the driver never has to drop one.

``Driver.datagram`` and ``Driver.stream_items`` catch whatever the core raises and log
"dropped a datagram" / "dropped a message": that line means a bug in the core, and it
must never appear, however broken the input.  A fake reactor (``task.Clock``) and a
fake UDP socket keep this sans-IO in all but name.
"""

from __future__ import annotations

import socket

from hypothesis import given
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.logger import LogEvent, globalLogPublisher

from sipresence.net.driver import Driver
from sipresence.presence.agent import Agent
from sipresence.sip.endpoint import Endpoint
from sipresence.sip.parser import ParseError, StreamFramer
from tests.support.fuzzstack import TCP_PEER, UDP_PEER, Context, deterministic_ids
from tests.support.sipgen import Session, Wait, session
from tests.unit.fuzz.test_sessions import SMALL


class FakeReactor(Clock):
    """Time, and a resolver that knows every name (Record-Route names a proxy)."""

    def resolve(self, name: str) -> defer.Deferred[str]:
        return defer.succeed("192.0.2.9")


class FakeSocket:
    """A UDP listener as the driver sees one: it records what it is asked to send."""

    family = socket.AF_INET
    local = UDP_PEER.local

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, data: bytes, host: str, port: int) -> bool:
        self.sent.append(data)
        return True


class FakeConnection:
    connected = 1
    sip_peer = TCP_PEER

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.sent.append(data)


def _drive(s: Session) -> list[str]:
    """Run *s* through a driver; the dropped-input log lines it caused."""
    clock = FakeReactor()
    clock.advance(1000.0)
    agent = Agent()
    endpoint = Endpoint(agent)
    endpoint.add_listener("UDP", "127.0.0.1", 5060)
    driver = Driver(clock, endpoint, agent)
    driver.udp.append(FakeSocket())  # type: ignore[arg-type]
    connection = FakeConnection()
    driver.register_connection(connection)
    dropped: list[str] = []

    def observe(event: LogEvent) -> None:
        text = str(event.get("log_format", ""))
        if "dropped a" in text:
            dropped.append(f"{text} {event.get('log_failure')}")

    ctx = Context()
    framer = StreamFramer()
    globalLogPublisher.addObserver(observe)
    try:
        for step in s.steps:
            if isinstance(step, Wait):
                clock.advance(step.seconds)
                continue
            data = step.render(ctx)
            driver.datagram(data, UDP_PEER)
            try:
                items: list[object] = list(framer.feed(data))
            except ParseError:
                framer = StreamFramer()  # the connection is closed: a new one
                items = []
            driver.stream_items(items, TCP_PEER)
        driver.stop()
    finally:
        globalLogPublisher.removeObserver(observe)
    return dropped


@SMALL
@given(session())
def test_the_driver_never_drops_a_fuzzed_input(s):
    with deterministic_ids():
        assert _drive(s) == []
