"""RFC 6665 notifier: dialogs, refresh, fetch, termination, NOTIFY flow control."""

from __future__ import annotations

import pytest

from sipresence.presence.packages import EventPackage
from sipresence.presence.subscription import SubState
from sipresence.presence.subscriptions import Notifier
from sipresence.sip.message import Response
from sipresence.sip.parser import parse_datagram
from sipresence.sip.transport import Peer
from sipresence.sip.uas import make_response

PKG = EventPackage("presence", ("application/pidf+xml", "application/xpidf+xml"),
                   min_expires=60, max_expires=7200, default_expires=3600)
PEER = Peer("UDP", "192.0.2.7", 5070, None, ("127.0.0.1", 5060))
ALICE = "sip:alice@example.com"


class Harness:
    def __init__(self, **kwargs):
        self._sent = []  # (request, peer, reference of its answer)
        self.state = 0
        self.persisted = []
        self.observed = []
        self.notifier = Notifier({"presence": PKG}, self.render,
                                 persist=self.persisted.append,
                                 observe=lambda s, e: self.observed.append(e), **kwargs)

    @property
    def sent(self):
        """Every NOTIFY the notifier queued so far, as the endpoint would take them."""
        self._sent += [(parse_datagram(o.request.to_bytes()), o.peer, o.ref)
                       for o in self.notifier.take()]
        return self._sent

    def render(self, subscription, now):
        return subscription.content_type, f"state {self.state}".encode()

    def subscribe(self, text, now=0.0):
        request = parse_datagram(text)
        response = self.notifier.subscribe(request, PEER, ALICE, now)
        self.notifier.flush(now)
        return response

    def answer(self, index, status, now=1.0):
        request, _, ref = self.sent[index]
        self.notifier.answered(ref, make_response(request, status), now)
        self.notifier.flush(now)


def subscribe(*, expires="600", accept="application/pidf+xml", event="presence", cseq=1,
              to_tag="", contact="<sip:bob@192.0.2.7:5070>", extra=""):
    lines = ["SUBSCRIBE sip:alice@example.com SIP/2.0",
             f"Via: SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bK-{cseq}",
             "From: \"Bob\" <sip:bob@example.com>;tag=bobtag",
             f"To: <sip:alice@example.com>{to_tag}",
             "Call-ID: sub-call-1", f"CSeq: {cseq} SUBSCRIBE", "Max-Forwards: 70"]
    if event is not None:
        lines.append(f"Event: {event}")
    if expires is not None:
        lines.append(f"Expires: {expires}")
    if accept is not None:
        lines.append(f"Accept: {accept}")
    if contact is not None:
        lines.append(f"Contact: {contact}")
    return ("\r\n".join(lines) + "\r\n" + extra + "Content-Length: 0\r\n\r\n").encode()


def test_new_subscription_gets_200_then_a_notify_in_the_dialog():
    h = Harness()
    response = h.subscribe(subscribe())
    assert response.status == 200
    assert response.headers.get("Expires") == "600"
    assert response.headers.get("Contact") == "<sip:127.0.0.1:5060>"
    tag = response.to.tag
    [(notify, peer, _)] = h.sent
    assert notify.method == "NOTIFY" and notify.uri == "sip:bob@192.0.2.7:5070"
    assert notify.from_.tag == tag and notify.to.tag == "bobtag"
    assert notify.call_id == "sub-call-1" and notify.cseq.number == 1
    assert notify.headers.get("Subscription-State") == "active;expires=600"
    assert notify.headers.get("Event") == "presence"
    assert notify.body == b"state 0" and notify.content_type.mime == "application/pidf+xml"
    assert (peer.host, peer.port) == ("192.0.2.7", 5070)
    assert h.observed == ["subscribe"]


def test_no_accept_means_the_package_default_and_xpidf_only_is_honoured():
    h = Harness()
    h.subscribe(subscribe(accept=None))
    assert h.sent[-1][0].content_type.mime == "application/pidf+xml"
    h2 = Harness()
    h2.subscribe(subscribe(accept="application/xpidf+xml"))
    assert h2.sent[-1][0].content_type.mime == "application/xpidf+xml"


@pytest.mark.parametrize("kwargs, status, header", [
    ({"accept": "text/html"}, 406, ("Accept", "application/pidf+xml, application/xpidf+xml")),
    ({"event": "conference"}, 489, ("Allow-Events", "presence")),
    ({"event": None}, 400, None),
    ({"expires": "10"}, 423, ("Min-Expires", "60")),
    ({"contact": None}, 400, None),
    ({"contact": "<sip:bob@exa mple.com>"}, 400, None),
])
def test_bad_subscribes_get_errors_and_create_nothing(kwargs, status, header):
    h = Harness()
    response = h.subscribe(subscribe(**kwargs))
    assert response.status == status
    if header:
        assert (header[0], header[1]) in list(response.headers)
    assert len(h.notifier) == 0 and h.sent == []


def test_refresh_in_the_dialog_gets_200_and_a_notify_with_the_next_cseq():
    h = Harness()
    tag = h.subscribe(subscribe()).to.tag
    h.answer(0, 200)
    response = h.subscribe(subscribe(cseq=2, to_tag=f";tag={tag}", expires="1200"), now=10)
    assert response.status == 200 and response.headers.get("Expires") == "1200"
    notify = h.sent[-1][0]
    assert notify.cseq.number == 2
    assert notify.headers.get("Subscription-State") == "active;expires=1200"


def test_refresh_of_an_unknown_dialog_is_481_and_an_old_cseq_500():
    h = Harness()
    tag = h.subscribe(subscribe(cseq=5)).to.tag
    assert h.subscribe(subscribe(cseq=6, to_tag=";tag=other")).status == 481
    assert h.subscribe(subscribe(cseq=5, to_tag=f";tag={tag}")).status == 500


def test_fetch_gets_one_terminated_notify_and_leaves_nothing():
    h = Harness()
    response = h.subscribe(subscribe(expires="0"))
    assert response.status == 200 and response.headers.get("Expires") == "0"
    [(notify, _, _)] = h.sent
    assert notify.headers.get("Subscription-State") == "terminated;reason=timeout"
    assert notify.body == b"state 0"
    assert len(h.notifier) == 0


def test_unsubscribe_sends_terminated_and_forgets_the_dialog():
    h = Harness()
    tag = h.subscribe(subscribe()).to.tag
    h.answer(0, 200)
    response = h.subscribe(subscribe(cseq=2, to_tag=f";tag={tag}", expires="0"))
    assert response.status == 200
    assert h.sent[-1][0].headers.get("Subscription-State") == "terminated;reason=timeout"
    h.answer(1, 200)
    assert len(h.notifier) == 0
    assert h.subscribe(subscribe(cseq=3, to_tag=f";tag={tag}")).status == 481


def test_one_notify_in_flight_and_changes_coalesce_into_the_latest_state():
    h = Harness()
    h.subscribe(subscribe())
    for state in (1, 2, 3):
        h.state = state
        h.notifier.changed("presence", ALICE)
        h.notifier.flush(0.1)
    assert len(h.sent) == 1  # the first NOTIFY has no answer yet
    h.answer(0, 200)
    assert len(h.sent) == 2 and h.sent[1][0].body == b"state 3"
    assert h.sent[1][0].cseq.number == 2


def test_481_ends_the_subscription_without_another_notify():
    h = Harness()
    h.subscribe(subscribe())
    h.answer(0, 481)
    assert len(h.notifier) == 0 and len(h.sent) == 1
    h.notifier.changed("presence", ALICE)
    h.notifier.flush(2.0)
    assert len(h.sent) == 1


def test_timeouts_are_retried_then_the_subscription_is_given_up():
    h = Harness(notify_retries=2, retry_delay=1.0)
    h.subscribe(subscribe())
    h.answer(0, 408, now=32.0)
    assert h.notifier.next_deadline() == 33.0
    h.notifier.handle_timer(33.0)
    h.notifier.flush(33.0)
    assert len(h.sent) == 2 and h.sent[1][0].cseq.number == 2
    h.answer(1, 408, now=65.0)
    h.notifier.handle_timer(66.0)
    h.notifier.flush(66.0)
    assert len(h.sent) == 3
    h.answer(2, 408, now=98.0)
    assert len(h.notifier) == 0 and len(h.sent) == 3  # given up, no more NOTIFY
    assert h.observed[-1] == "deactivated"  # RFC 3858: the server ended it


def test_a_success_after_a_timeout_resets_the_retry_count():
    h = Harness(notify_retries=1)
    h.subscribe(subscribe())
    h.answer(0, 408, now=32.0)
    h.notifier.handle_timer(33.0)
    h.notifier.flush(33.0)
    h.answer(1, 200, now=33.1)
    h.notifier.changed("presence", ALICE)
    h.notifier.flush(34.0)
    h.answer(2, 408, now=66.0)
    assert len(h.notifier) == 1  # one failure since the last success: retried, kept


def test_expiry_sends_terminated_timeout():
    h = Harness()
    h.subscribe(subscribe(expires="600"))
    h.answer(0, 200)
    assert h.notifier.next_deadline() == 600
    h.notifier.handle_timer(600)
    h.notifier.flush(600)
    assert h.sent[-1][0].headers.get("Subscription-State") == "terminated;reason=timeout"
    assert h.observed[-1] == "timeout"


def test_route_set_is_used_for_notify_and_its_first_hop_is_the_destination():
    h = Harness()
    h.subscribe(subscribe(extra="Record-Route: <sip:proxy.example.com:5070;lr>, "
                                "<sip:10.0.0.1;lr>\r\n"))
    notify, peer, _ = h.sent[0]
    assert notify.headers.get_all("Route") == ["<sip:proxy.example.com:5070;lr>",
                                               "<sip:10.0.0.1;lr>"]
    assert (peer.host, peer.port, peer.transport) == ("proxy.example.com", 5070, "UDP")


def test_every_cseq_step_is_persisted_with_the_subscription():
    h = Harness()
    h.subscribe(subscribe())
    assert h.persisted and h.persisted[-1].dialog.local_cseq == 1
    assert h.persisted[-1].state is SubState.ACTIVE


def test_responses_echo_the_agent_contact_for_tcp_with_transport():
    h = Harness()
    request = parse_datagram(subscribe())
    peer = Peer("TCP", "192.0.2.7", 40000, 9, ("127.0.0.1", 5060))
    response = h.notifier.subscribe(request, peer, ALICE, 0.0)
    assert isinstance(response, Response)
    assert response.headers.get("Contact") == "<sip:127.0.0.1:5060;transport=tcp>"


def test_counters_are_persisted_as_reservations_above_every_value_sent():
    from sipresence.presence.subscription import COUNTER_BLOCK
    from sipresence.store.sqlite import subscription_row

    h = Harness()
    h.subscribe(subscribe())
    writes = len(h.persisted)
    sent = [h.sent[0][0].cseq.number]
    for i in range(COUNTER_BLOCK + 5):
        h.answer(len(h.sent) - 1, 200, now=1.0 + i)
        h.state = i
        h.notifier.changed("presence", ALICE)
        h.notifier.flush(1.0 + i)
        sent.append(h.sent[-1][0].cseq.number)
    assert sent == list(range(1, COUNTER_BLOCK + 7))  # CSeq rises by one per NOTIFY
    assert len(h.persisted) - writes == 1  # one more write, when the block ran out
    stored_cseq = subscription_row(h.persisted[-1])[13]
    assert stored_cseq > max(sent)  # a restart resumes above everything sent
