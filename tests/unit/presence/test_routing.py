"""Call answers decided from presence: 486, 480, 302."""

from __future__ import annotations

from sipresence.presence.routing import LineState, RoutingPolicy, decide

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
