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


def committing_driver():
    """A driver holding its answers for a store whose reports the test gives."""
    from sipresence.store.commit import GroupCommit

    clock, endpoint, driver = make()
    listener = Listener()
    driver.udp.append(listener)
    batches = []
    driver.hold_for(GroupCommit(endpoint.app.journal,
                                lambda ops: batches.append(list(ops)) or len(batches),
                                lambda t: t))
    return clock, endpoint, driver, listener, batches


def test_the_drain_at_stop_takes_no_input_and_ends_once_the_held_answers_are_sent():
    """Under steady load a drain that went on serving never ended: every commit let
    new changes in whose answers it then held, until the timeout, and the close
    committed them unanswered (CI: 32 of 32 requests in flight).  Input stops at once;
    what arrives meanwhile changes nothing and is counted."""
    from sipresence.sip.transport import Peer
    from tests.unit.store.test_commit import register

    clock, endpoint, driver, listener, batches = committing_driver()
    peer = Peer("UDP", "127.0.0.1", 5070, None, listener.local)
    driver.datagram(register(), peer)
    assert len(batches) == 1 and listener.sent == []
    outcome = []
    driver.drain(5.0).addCallback(outcome.append)
    driver.datagram(register(2, "z9hG4bK-r2"), peer)  # still arriving while it stops
    assert driver.ignored == 1 and len(endpoint.app.journal) == 0 and len(batches) == 1
    driver.committed(1, None)
    assert [m.split(b"\r\n")[0] for m in listener.sent] == [b"SIP/2.0 200 OK"]
    clock.advance(0)
    assert outcome == [0] and len(batches) == 1  # no round more: nothing was let in
    assert not driver.endpoint.app.journal


def test_a_drain_whose_commit_does_not_end_gives_up_and_says_how_much_it_held():
    from sipresence.sip.transport import Peer
    from tests.unit.store.test_commit import register

    clock, endpoint, driver, listener, batches = committing_driver()
    driver.datagram(register(), Peer("UDP", "127.0.0.1", 5070, None, listener.local))
    outcome = []
    driver.drain(5.0).addCallback(outcome.append)
    clock.advance(4.9)
    assert outcome == []
    clock.advance(0.2)  # the store never reported: the close will write what is left
    assert outcome == [1] and listener.sent == []


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


def test_the_http_api_refuses_changes_while_the_agent_stops_and_still_answers_reads():
    """A change made during the drain would be committed at the close with its
    answer unsent, as a SIP one was: 503 and Retry-After instead."""
    import json

    from prometheus_client import CollectorRegistry
    from twisted.web.server import NOT_DONE_YET
    from twisted.web.test.requesthelper import DummyRequest

    from sipresence.api.http import build_site

    clock, endpoint, driver, listener, batches = committing_driver()
    site = build_site(CollectorRegistry(), endpoint.app, driver)
    driver.drain(5.0)

    def render(method: bytes, body: bytes = b"") -> DummyRequest:
        request = DummyRequest([b"v1", b"presentities", b"alice@127.0.0.1"])
        request.method = method
        request.content = __import__("io").BytesIO(body)
        resource = site.getResourceFor(request)
        result = resource.render(request)
        if result is not NOT_DONE_YET:
            request.write(result)
            request.finish()
        return request

    put = render(b"PUT", json.dumps({"basic": "open"}).encode())
    assert put.responseCode == 503
    assert put.responseHeaders.getRawHeaders(b"retry-after") == [b"1"]
    assert json.loads(b"".join(put.written)) == {"error": "the agent is stopping"}
    assert not endpoint.app.journal and batches == []
    get = render(b"GET")  # reads go on, and show the PUT changed nothing
    assert get.responseCode == 200 and json.loads(b"".join(get.written))["sources"] == []
