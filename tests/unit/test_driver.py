"""The Twisted driver on a fake clock: timers and overload detection."""

from __future__ import annotations

from twisted.internet.task import Clock

from sipresence.net.driver import Driver
from sipresence.presence.agent import Agent
from sipresence.sip.endpoint import Endpoint


def make():
    clock = Clock()
    agent = Agent()
    endpoint = Endpoint(agent)
    agent.attach(endpoint)
    return clock, endpoint, Driver(clock, endpoint, agent)


def test_a_reactor_late_again_and_again_sheds_a_growing_share_then_takes_all_again():
    clock, endpoint, driver = make()
    driver.watch_load(interval=0.05, max_lag=0.1, streak=3, decrease=0.75, floor=0.02,
                      step=0.05, settle=0.25)
    clock.advance(0.05)
    assert endpoint.admit == 1.0
    clock.advance(0.5)  # one tick 450 ms late: a burst, caught up with
    clock.advance(0.05)
    assert endpoint.admit == 1.0 and not endpoint.overloaded
    for _ in range(3):  # late every time: input arrives faster than it is handled
        clock.advance(0.2)
    assert endpoint.overloaded and endpoint.admit == 0.75
    clock.advance(0.2)  # still late, but the cut has not had time to show
    assert endpoint.admit == 0.75
    clock.advance(0.2)
    assert endpoint.admit == 0.75 * 0.75
    for _ in range(30):  # late and late again: cut, never below the floor
        clock.advance(0.2)
    assert endpoint.admit == 0.02
    for _ in range(10):  # on time: the share grows back step by step
        clock.advance(0.05)
    assert 0.5 < endpoint.admit < 0.53 and endpoint.overloaded
    for _ in range(10):
        clock.advance(0.05)
    assert endpoint.admit == 1.0 and not endpoint.overloaded
    driver.stop()
    assert not clock.getDelayedCalls()


def test_a_datagram_with_no_socket_to_leave_from_fails_its_transaction():
    clock, endpoint, driver = make()
    endpoint.add_listener("UDP", "127.0.0.1", 5060)
    from sipresence.sip.endpoint import Peer
    from sipresence.sip.message import Request

    notify = Request("NOTIFY", "sip:bob@192.0.2.7")
    for name, value in (("From", "<sip:a@b>;tag=1"), ("To", "<sip:bob@b>;tag=2"),
                        ("Call-ID", "x"), ("CSeq", "1 NOTIFY"), ("Max-Forwards", "70")):
        notify.headers.add(name, value)
    failed = []
    endpoint.send_request(notify, Peer("UDP", "192.0.2.7", 5060), clock.seconds(),
                          lambda response, now: failed.append(response.status))
    driver.flush()  # no UDP listener: the send fails at once and reports 503
    assert failed == [503]
