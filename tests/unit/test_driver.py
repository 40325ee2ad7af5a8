"""The Twisted driver on a fake clock: timers and overload detection."""

from __future__ import annotations

from twisted.internet.task import Clock

from sipresence.net.driver import Driver
from sipresence.presence.agent import Agent
from sipresence.sip.admission import Admission
from sipresence.sip.endpoint import Endpoint


def make():
    clock = Clock()
    agent = Agent()
    endpoint = Endpoint(agent)
    return clock, endpoint, Driver(clock, endpoint, agent)


def test_a_reactor_late_again_and_again_sheds_a_growing_share_then_takes_all_again():
    clock, endpoint, driver = make()
    endpoint.admission = Admission(max_lag=0.1, streak=3, decrease=0.75, floor=0.02,
                                   step=0.05, settle=0.25)
    driver.watch_load(interval=0.05)
    clock.advance(0.05)
    assert endpoint.admission.admit == 1.0
    clock.advance(0.5)  # one tick 450 ms late: a burst, caught up with
    clock.advance(0.05)
    assert endpoint.admission.admit == 1.0 and not endpoint.admission.overloaded
    for _ in range(3):  # late every time: input arrives faster than it is handled
        clock.advance(0.2)
    assert endpoint.admission.overloaded and endpoint.admission.admit == 0.75
    clock.advance(0.2)  # still late, but the cut has not had time to show
    assert endpoint.admission.admit == 0.75
    clock.advance(0.2)
    assert endpoint.admission.admit == 0.75 * 0.75
    for _ in range(30):  # late and late again: cut, never below the floor
        clock.advance(0.2)
    assert endpoint.admission.admit == 0.02
    for _ in range(10):  # on time: the share grows back step by step
        clock.advance(0.05)
    assert 0.5 < endpoint.admission.admit < 0.53 and endpoint.admission.overloaded
    for _ in range(10):
        clock.advance(0.05)
    assert endpoint.admission.admit == 1.0 and not endpoint.admission.overloaded
    driver.stop()
    assert not clock.getDelayedCalls()


def test_a_datagram_with_no_socket_to_leave_from_fails_its_transaction():
    clock, endpoint, driver = make()
    endpoint.add_listener("UDP", "127.0.0.1", 5060)
    from sipresence.sip.message import Request
    from sipresence.sip.transport import Peer

    notify = Request("NOTIFY", "sip:bob@192.0.2.7")
    for name, value in (("From", "<sip:a@b>;tag=1"), ("To", "<sip:bob@b>;tag=2"),
                        ("Call-ID", "x"), ("CSeq", "1 NOTIFY"), ("Max-Forwards", "70")):
        notify.headers.add(name, value)
    failed = []
    endpoint.app.handle_response = lambda ref, response, now: failed.append(
        (ref, response.status))
    endpoint.send_request(notify, Peer("UDP", "192.0.2.7", 5060), clock.seconds(), "n1")
    driver.flush()  # no UDP listener: the send fails at once and reports 503
    assert failed == [("n1", 503)]


class Listener:
    """A UDP socket that records what it sends."""

    family = __import__("socket").AF_INET
    local = ("127.0.0.1", 5060)

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, data: bytes, host: str, port: int) -> bool:
        self.sent.append(data)
        return True


def test_the_driver_sends_an_answer_only_once_its_change_is_committed():
    from sipresence.sip.transport import Peer
    from sipresence.store.commit import GroupCommit
    from tests.unit.store.test_commit import register

    clock, endpoint, driver = make()
    agent = endpoint.app
    listener = Listener()
    driver.udp.append(listener)
    batches = []
    commit = GroupCommit(agent.journal, lambda ops: batches.append(list(ops)) or len(batches),
                         lambda t: t)
    driver.hold_for(commit)
    durable = []
    driver.datagram(register(), Peer("UDP", "127.0.0.1", 5070, None, listener.local))
    driver.durable().addCallback(durable.append)
    assert len(batches) == 1 and listener.sent == [] and durable == []
    driver.committed(1, None)
    assert listener.sent[0].startswith(b"SIP/2.0 200") and durable == [None]
    driver.stop()
    driver.committed(2, None)  # a report while stopping is moot


def test_the_c_heap_is_trimmed_on_the_reactor_clock():
    """The periodic malloc_trim (app.release_memory) runs on the reactor's clock and
    goes on running (it is the real C library's: a wrong signature would crash)."""
    from sipresence.app import release_memory

    clock = Clock()
    release_memory(clock, interval=30.0)
    [call] = clock.getDelayedCalls()
    assert call.getTime() == 30.0
    clock.advance(30.0)
    [again] = clock.getDelayedCalls()
    assert again.getTime() == 60.0
