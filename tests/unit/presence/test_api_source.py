"""The HTTP API's source of a presentity, in the sans-IO agent."""

from __future__ import annotations

import pytest

from sipresence.documents.pidf import parse_pidf
from tests.support.phone import Phone, subscribe_headers

ALICE = "sip:alice@example.com"


def test_the_api_source_composes_with_the_devices_and_expires():
    p = Phone()
    p.publish(basic="closed", activity="away", note="Gone home")
    p.request("SUBSCRIBE", headers=subscribe_headers())
    p.answer_all()
    p.agent.journal.drain()
    assert p.agent.set_api_state(ALICE, "open", ["busy"], "Night shift", 120, now=0.0) == 120
    p.collect()
    doc = parse_pidf(p.notifies()[-1].body)
    assert sorted(t.basic for t in doc.tuples) == ["closed", "open"]  # both sources kept
    summary = p.agent.presentities.get(ALICE).summary
    assert (summary.basic, summary.note) == ("open", "Night shift")  # newest person wins
    assert [(kind, obj.publisher) for kind, _, obj in p.agent.journal.drain()
            if kind == "publication"] == [("publication", "api")]  # persisted
    # Setting it again replaces it: one api source, never two.
    p.answer_all()
    p.agent.set_api_state(ALICE, "open", [], "Back", 120, now=1.0)
    assert [s.id for s in p.agent.presentities.sources(ALICE)].count("publish:api") == 1
    p.collect()
    p.answer_all()
    p.now = 121.0
    p.agent.handle_timer(121.0)
    p.collect()
    assert [t.basic for t in parse_pidf(p.notifies()[-1].body).tuples] == ["closed"]
    assert not p.agent.clear_api_state(ALICE, 121.0)  # expired already


@pytest.mark.parametrize("basic, activities, expires", [
    ("maybe", [], None), ("open", ["dancing"], None), ("open", [], 0), ("open", [], 5)])
def test_bad_api_states_change_nothing(basic, activities, expires):
    p = Phone()
    with pytest.raises(ValueError):
        p.agent.set_api_state(ALICE, basic, activities, None, expires, now=0.0)
    assert p.agent.presentities.sources(ALICE) == []
    assert len(p.agent.journal) == 0


def test_versions_only_go_up_when_sources_go_and_across_a_restart(tmp_path):
    p = Phone()
    seen = []
    for step in range(3):
        p.agent.set_api_state(ALICE, "open", [], f"step {step}", 600, now=float(step))
        seen.append(p.agent.presentities.version(ALICE))
    p.agent.clear_api_state(ALICE, 3.0)  # nothing left of alice: still not lower
    seen.append(p.agent.presentities.version(ALICE))
    assert seen == sorted(seen) and len(set(seen)) == 4
    after = p.restarted(tmp_path, now=10.0).agent
    assert after.presentities.version(ALICE) > seen[-1]  # unchanged since the start
    after.set_api_state(ALICE, "closed", now=11.0)
    assert after.presentities.version(ALICE) > seen[-1] + 1


def test_a_presentity_left_with_no_source_keeps_no_version_entry():
    """Each user who set a state once and cleared it kept an entry for the life of
    the process (the soak's leak); its version still never goes back."""
    p = Phone()
    for i in range(50):
        p.agent.set_api_state(f"sip:user{i}@example.com", "open", now=float(i))
    p.agent.set_api_state(ALICE, "open", now=60.0)
    before = {i: p.agent.presentities.version(f"sip:user{i}@example.com") for i in range(50)}
    for i in range(50):
        p.agent.clear_api_state(f"sip:user{i}@example.com", 70.0)
    assert set(p.agent.presentities._versions) == {ALICE}
    assert all(p.agent.presentities.version(f"sip:user{i}@example.com") > before[i]
               for i in range(50))
    p.agent.set_api_state("sip:user0@example.com", "open", now=80.0)
    assert p.agent.presentities.version("sip:user0@example.com") > max(before.values()) + 50
