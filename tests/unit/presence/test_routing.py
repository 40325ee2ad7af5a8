"""Call answers decided from presence: 486, 480, 302."""

from __future__ import annotations

from sipresence.presence.routing import LineState, RoutingPolicy, decide, warning_text
from tests.support.phone import PIDF, Phone, invite, register

POLICY = RoutingPolicy()
AVAILABLE = LineState("open", registered=True, contacts=("sip:alice@192.0.2.7:5070",))


def test_available_and_registered_is_redirected_to_the_contacts():
    d = decide(AVAILABLE, POLICY, 0)
    assert (d.action, d.status, d.targets) == ("proceed", 302, ("sip:alice@192.0.2.7:5070",))
    assert d.headers() == [("Contact", "<sip:alice@192.0.2.7:5070>")]


def test_on_the_phone_is_486_with_the_note_as_a_warning():
    state = LineState("open", on_the_phone=True, note="On the phone", registered=True,
                      contacts=AVAILABLE.contacts)
    d = decide(state, POLICY, 0)
    assert (d.action, d.status) == ("busy", 486)
    assert ("Warning", '399 sipresence "On the phone"') in d.headers()


def test_busy_activity_with_until_gives_retry_after():
    state = LineState("open", frozenset({"meeting"}), until={"meeting": 1000.4},
                      registered=True, contacts=AVAILABLE.contacts)
    d = decide(state, POLICY, 400.0)
    assert (d.status, d.retry_after) == (486, 601)
    assert ("Retry-After", "601") in d.headers()


def test_closed_away_or_unregistered_is_480():
    assert decide(LineState("closed", registered=True), POLICY, 0).status == 480
    away = LineState("open", frozenset({"vacation"}), until={"vacation": 86400.0},
                     registered=True, contacts=AVAILABLE.contacts)
    d = decide(away, POLICY, 0)
    assert (d.status, d.retry_after, d.why) == (480, 86400, "away (vacation)")
    assert decide(LineState("open"), POLICY, 0).why == "not registered"


def test_an_until_in_the_past_gives_no_retry_after():
    state = LineState("open", frozenset({"busy"}), until={"busy": 10.0}, registered=True)
    assert decide(state, POLICY, 20.0).retry_after is None


def test_unavailable_target_turns_busy_and_unavailable_into_a_redirect():
    policy = RoutingPolicy(unavailable_target="sip:voicemail@example.com")
    busy = LineState("open", on_the_phone=True, registered=True, contacts=AVAILABLE.contacts)
    d = decide(busy, policy, 0)
    assert (d.action, d.status, d.targets) == ("redirect", 302,
                                               ("sip:voicemail@example.com",))
    assert decide(AVAILABLE, policy, 0).action == "proceed"


def test_a_note_cannot_add_headers_to_the_answer():
    state = LineState("closed", note='Lunch\r\nX-Evil: 1\t"back" \\ soon\x00', registered=True)
    d = decide(state, POLICY, 0)
    assert d.headers() == [("Warning", '399 sipresence "Lunch X-Evil: 1 \\"back\\" \\\\ soon"')]
    assert warning_text("x" * 500) == "x" * 200
    assert warning_text("\r\n") == "" and warning_text(None) == ""


def test_a_published_note_with_line_breaks_stays_inside_the_warning():
    p = Phone()
    register(p)
    body = PIDF.format(basic="closed", activity="away", note="Lunch&#13;&#10;X-Evil: 1")
    assert p.request("PUBLISH", headers=["Event: presence",
                                         "Content-Type: application/pidf+xml"],
                     body=body, from_uri="sip:alice@example.com").status == 200
    response = invite(p)
    assert response.status == 480
    assert response.headers.get("Warning") == '399 sipresence "Lunch X-Evil: 1"'
    assert response.headers.get("X-Evil") is None


def test_a_closed_callee_with_a_timed_status_gets_retry_after_when_they_open_again():
    p = Phone()
    register(p)
    body = PIDF.format(basic="closed", activity="away", note="Gone").replace(
        "</tuple>", '<ts:timed-status xmlns:ts="urn:ietf:params:xml:ns:pidf:timed-status" '
                    'from="2030-01-01T13:00:00Z"><ts:basic>open</ts:basic>'
                    '</ts:timed-status></tuple>', 1)
    assert p.request("PUBLISH", headers=["Event: presence",
                                         "Content-Type: application/pidf+xml"],
                     body=body, from_uri="sip:alice@example.com").status == 200
    p.now = 1893499200.0  # 2030-01-01T12:00:00Z: open again in an hour
    response = invite(p)
    assert response.status == 480
    assert response.headers.get("Retry-After") == "3600"
    p.now = 1893502800.0 + 60  # past that time, nothing to promise
    assert invite(p, call_id="call-2").headers.get("Retry-After") is None
