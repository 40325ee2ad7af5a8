"""Who may watch whom: rules (RFC 5025 sub-handling), 202 pending, approval, blocking."""

from __future__ import annotations

import pytest

from sipresence.documents.pidf import parse_pidf
from sipresence.documents.watcherinfo import parse_watcherinfo
from sipresence.presence.agent import Agent, AgentConfig
from sipresence.presence.policy import Authorization, Rule, rule_target
from tests.support.phone import Phone, subscribe_headers

ALICE = "sip:alice@example.com"


def test_the_most_specific_rule_wins_and_a_presentity_may_watch_itself():
    rules = Authorization("confirm")
    assert rules.decide("sip:bob@example.com", ALICE) == "confirm"  # the default
    rules.set(ALICE, "example.com", "allow")
    rules.set(ALICE, "sip:mallory@EXAMPLE.com", "block")
    assert rules.decide("sip:bob@example.com", ALICE) == "allow"  # the domain's rule
    assert rules.decide("sip:mallory@example.com", ALICE) == "block"  # the watcher's own
    assert rules.decide("sip:eve@elsewhere.test", ALICE) == "confirm"
    assert rules.decide("sip:bob@example.com", "sip:carol@example.com") == "confirm"
    assert Authorization("block").decide(ALICE, ALICE) == "allow"
    assert rules.remove(ALICE, "example.com") == Rule(ALICE, "example.com", "allow")
    assert rules.decide("sip:bob@example.com", ALICE) == "confirm"
    assert [r.watcher for r in rules.rules(ALICE)] == ["sip:mallory@example.com"]


def test_rules_name_hosts_without_case_but_users_with_it():
    assert rule_target("sip:Bob@Example.COM") == "sip:Bob@example.com"
    assert rule_target(" Example.COM ") == "example.com"


def test_unknown_actions_are_refused():
    with pytest.raises(ValueError):
        Authorization("polite-block")
    with pytest.raises(ValueError):
        Authorization().set(ALICE, "sip:bob@example.com", "maybe")


def winfo(p):
    return [parse_watcherinfo(n.body) for n in p.notifies()
            if n.headers.get("Event") == "presence.winfo"]


def presence(p):
    return [n for n in p.notifies() if n.headers.get("Event") == "presence"]


def confirming_phone():
    p = Phone(config=AgentConfig(sub_handling="confirm"))
    owner = p.request("SUBSCRIBE", from_uri=ALICE, from_tag="own", call_id="w1",
                      headers=subscribe_headers(event="presence.winfo", accept=None))
    assert owner.status == 200  # the owner's own watcher information is never pending
    p.publish(basic="open", activity="busy", note="In a meeting")
    p.answer_all()
    return p


def test_an_unknown_watcher_is_pending_until_the_person_allows_it():
    p = confirming_phone()
    answer = p.request("SUBSCRIBE", call_id="watch-1", headers=subscribe_headers())
    assert answer.status == 202
    [pending] = presence(p)
    assert pending.headers.get("Subscription-State").startswith("pending;expires=")
    assert pending.body == b""  # RFC 3856 6.6.2: no state before authorization
    [watcher] = winfo(p)[-1].lists[0].watchers
    assert (watcher.uri, watcher.status, watcher.event) == ("sip:bob@example.com", "pending",
                                                            "subscribe")
    p.answer_all()

    rule = p.agent.set_rule(ALICE, "sip:bob@example.com", "allow", p.now)
    p.collect()
    active = presence(p)[-1]
    assert active.headers.get("Subscription-State").startswith("active;expires=")
    assert parse_pidf(active.body).persons[0].notes[0].text == "In a meeting"
    [watcher] = winfo(p)[-1].lists[0].watchers
    assert (watcher.status, watcher.event) == ("active", "approved")
    assert ("rule", rule.store_key, rule) in p.agent.journal.drain()
    p.answer_all()
    # Allowed from now on: a new subscription of the same watcher is active at once.
    again = p.request("SUBSCRIBE", call_id="watch-2", from_tag="b9",
                      headers=subscribe_headers())
    assert again.status == 200


def test_a_blocked_watcher_gets_403_and_a_live_subscription_ends_rejected():
    p = Phone()
    assert p.request("SUBSCRIBE", call_id="watch-1", headers=subscribe_headers()).status == 200
    p.answer_all()
    p.agent.set_rule(ALICE, "example.com", "block", p.now)
    p.collect()
    ended = presence(p)[-1]
    assert ended.headers.get("Subscription-State") == "terminated;reason=rejected"
    p.answer_all()
    assert p.agent.notifier.watchers("presence", ALICE) == []
    refused = p.request("SUBSCRIBE", call_id="watch-2", from_tag="b2",
                        headers=subscribe_headers())
    assert refused.status == 403
    dialog = p.request("SUBSCRIBE", call_id="blf-1", from_tag="b3", headers=subscribe_headers(
        event="dialog", accept="application/dialog-info+xml"))
    assert dialog.status == 403  # the line is presence too
    # Removing the rule goes back to the default (allow).
    assert p.agent.remove_rule(ALICE, "example.com", p.now) is not None
    assert p.agent.remove_rule(ALICE, "example.com", p.now) is None
    assert p.request("SUBSCRIBE", call_id="watch-3", from_tag="b4",
                     headers=subscribe_headers()).status == 200


def test_a_pending_watcher_blocked_later_is_rejected_and_never_saw_the_state():
    p = confirming_phone()
    assert p.request("SUBSCRIBE", call_id="watch-1", headers=subscribe_headers()).status == 202
    p.answer_all()
    p.agent.set_rule(ALICE, "sip:bob@example.com", "block", p.now)
    p.collect()
    notifies = presence(p)
    assert [n.headers.get("Subscription-State").split(";")[0] for n in notifies] == [
        "pending", "terminated"]
    assert all(n.body == b"" for n in notifies)
    [watcher] = winfo(p)[-1].lists[0].watchers
    assert (watcher.status, watcher.event) == ("terminated", "rejected")


def test_rules_survive_a_restart_through_the_store(tmp_path):
    p = Phone(config=AgentConfig(sub_handling="confirm"))
    p.agent.set_rule(ALICE, "sip:bob@example.com", "allow", 0.0)
    p.agent.set_rule(ALICE, "elsewhere.test", "block", 0.0)
    agent = p.restarted(tmp_path, now=0.0, config=AgentConfig(sub_handling="confirm")).agent
    assert agent.authorization.rules(ALICE) == p.agent.authorization.rules(ALICE)
    assert agent.authorization.decide("sip:bob@example.com", ALICE) == "allow"
    assert agent.authorization.decide("sip:eve@elsewhere.test", ALICE) == "block"
    assert agent.authorization.decide("sip:carol@example.com", ALICE) == "confirm"


def test_addresses_are_read_as_requests_name_presentities():
    assert Agent.address("alice@Example.COM") == "sip:alice@example.com"
    assert Agent.address("sip:alice@example.com:5070;transport=tcp") == ALICE
    assert Agent.address("pres:alice@example.com") == ALICE
    with pytest.raises(ValueError):
        Agent.address("mailto:alice@example.com")
    with pytest.raises(ValueError):
        Agent.address("alice @example.com")
