"""The presence core's one door: any source, set and cleared the same way."""

from __future__ import annotations

from sipresence.documents.compose import Source
from sipresence.documents.pidf import PresenceDocument, PresenceTuple, parse_pidf
from sipresence.presence.presentity import Presentities
from tests.support.phone import Phone, subscribe_headers

ALICE = "sip:alice@example.com"


def chat(basic: str, at: float) -> Source:
    """What an IM bridge would set: a source the agent has no branch for."""
    return Source("xmpp:alice@chat.example.com/laptop",
                  PresenceDocument(ALICE, (PresenceTuple("im", basic),)), at)


def test_a_new_kind_of_source_is_a_new_caller_composed_with_the_rest():
    p = Phone()
    p.publish(basic="closed", activity="away", note="Gone home")
    p.request("SUBSCRIBE", headers=subscribe_headers())
    p.answer_all()
    sent = len(p.notifies())
    p.agent.set_source(ALICE, "xmpp:laptop", chat("open", 5.0), 5.0)
    p.collect()
    assert len(p.notifies()) == sent + 1
    document = parse_pidf(p.notifies()[-1].body)
    assert sorted(t.basic for t in document.tuples) == ["closed", "open"]
    p.answer_all()
    p.agent.set_source(ALICE, "xmpp:laptop", chat("open", 5.0), 6.0)  # as it was
    p.collect()
    assert len(p.notifies()) == sent + 1  # no change, no NOTIFY
    assert p.agent.clear_source(ALICE, "xmpp:laptop", 7.0)
    assert not p.agent.clear_source(ALICE, "xmpp:laptop", 7.0)
    p.collect()
    document = parse_pidf(p.notifies()[-1].body)
    assert [t.basic for t in document.tuples] == ["closed"]


def test_versions_rise_with_every_change_and_a_presentity_with_no_source_keeps_no_entry():
    presentities = Presentities()
    assert presentities.set_source(ALICE, "a", chat("open", 1.0))
    first = presentities.version(ALICE)
    assert not presentities.set_source(ALICE, "a", chat("open", 1.0))
    assert presentities.version(ALICE) == first
    assert presentities.set_source(ALICE, "a", chat("closed", 2.0))
    assert presentities.version(ALICE) > first
    assert presentities.replace_sources(ALICE, "a", {})
    assert presentities.sources(ALICE) == [] and presentities._versions == {}
    assert presentities.version(ALICE) > first
    assert presentities.get(ALICE).summary.basic == "closed"


def test_a_stand_in_yields_to_its_own_device_only():
    presentities = Presentities()
    document = PresenceDocument(ALICE, (PresenceTuple("t", "open"),))
    presentities.set_source(ALICE, "registration:1", Source(
        "registration", document, 1.0, device="192.0.2.7:5070", standin=True))
    presentities.set_source(ALICE, "registration:2", Source(
        "registration", document, 1.0, device="192.0.2.8:5070", standin=True))
    presentities.set_source(ALICE, "publish:192.0.2.7:5070", Source(
        "publish:192.0.2.7:5070", PresenceDocument(ALICE, (PresenceTuple("p", "closed"),)),
        2.0, device="192.0.2.7:5070"))
    assert sorted(s.device or "" for s in presentities.sources(ALICE)) == [
        "192.0.2.7:5070", "192.0.2.8:5070"]
    assert [s.standin for s in presentities.sources(ALICE)].count(True) == 1
