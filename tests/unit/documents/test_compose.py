"""RFC 4479 composition, rule by rule, and on every pair of real samples."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sipresence.documents.compose import ON_THE_PHONE_NOTE, Source, Summary, compose, summary
from sipresence.documents.datamodel import Device, Person
from sipresence.documents.pidf import PresenceDocument, PresenceTuple, serialize_pidf
from sipresence.documents.rpid import Activities, Mood, Sphere
from sipresence.documents.xml import Note
from sipresence.documents.xpidf import parse_presence, serialize_xpidf

ALICE = "sip:alice@example.com"
SAMPLES = Path(__file__).resolve().parents[4] / "shared" / "reference" / "samples"
PRESENCE_SAMPLES = sorted(p.name for p in SAMPLES.glob("*.xml") if "pidf" in p.name)

DESK = PresenceDocument(ALICE, (PresenceTuple("t1", "open", "sip:alice@192.0.2.10",
                                              device_id="urn:uuid:desk"),),
                        devices=(Device("urn:uuid:desk", "d1", notes=(Note("desk phone"),)),))
SOFT = PresenceDocument(ALICE, (PresenceTuple("t1", "closed", "sip:alice@192.0.2.20",
                                              device_id="urn:uuid:soft"),),
                        devices=(Device("urn:uuid:soft", "d1"),))


def ids(doc: PresenceDocument) -> list[str | None]:
    return [t.id for t in doc.tuples]


def test_two_devices_keep_both_tuples_and_both_devices(valid):
    doc = compose(ALICE, [Source("publish:soft", SOFT, 200.0), Source("publish:desk", DESK, 100.0)])
    assert [(t.contact, t.basic) for t in doc.tuples] == [
        ("sip:alice@192.0.2.10", "open"), ("sip:alice@192.0.2.20", "closed")]  # open first
    assert len(set(ids(doc))) == 2
    assert sorted(d.device_id for d in doc.devices) == ["urn:uuid:desk", "urn:uuid:soft"]
    assert doc.persons == ()
    valid(serialize_pidf(doc))
    assert summary(doc) == Summary("open", (), None, False)


def test_devices_are_unioned_by_device_id_newest_wins():
    newer = PresenceDocument(ALICE, devices=(Device("urn:uuid:desk", "x", notes=(Note("new"),)),))
    doc = compose(ALICE, [Source("a", DESK, 1.0), Source("b", newer, 2.0)])
    [device] = doc.devices
    assert device.notes == (Note("new"),)


def test_person_is_merged_element_by_element_newest_wins():
    older = PresenceDocument(ALICE, persons=(Person(
        "x", activities=Activities(("away",)), mood=Mood(("happy",)),
        notes=(Note("at lunch", "en"), Note("beim Essen", "de")),
        timestamp=datetime(2024, 1, 1, tzinfo=UTC)),))
    newer = PresenceDocument(ALICE, persons=(Person(
        "y", activities=Activities(("busy",)), sphere=Sphere("work"),
        notes=(Note("in a meeting", "en"),)),))
    doc = compose(ALICE, [Source("old", older, 10.0), Source("new", newer, 20.0)])
    [person] = doc.persons
    assert person.activities == Activities(("busy",))
    assert person.mood == Mood(("happy",))  # only the older source has a mood
    assert person.sphere == Sphere("work")
    assert person.notes == (Note("in a meeting", "en"), Note("beim Essen", "de"))
    assert person.timestamp == datetime(2024, 1, 1, tzinfo=UTC)
    # an explicit empty activities from a newer source does replace "busy"
    cleared = PresenceDocument(ALICE, persons=(Person("z", activities=Activities()),))
    [person] = compose(ALICE, [Source("new", newer, 20.0), Source("clear", cleared, 30.0)]).persons
    assert person.activities == Activities()


def test_presence_level_notes_are_merged_per_language_newest_wins():
    a = PresenceDocument(ALICE, notes=(Note("Ready"), Note("Prêt", "fr")))
    b = PresenceDocument(ALICE, notes=(Note("On the phone"),))
    doc = compose(ALICE, [Source("a", a, 1.0), Source("b", b, 2.0)])
    assert doc.notes == (Note("On the phone"), Note("Prêt", "fr"))


def test_on_the_phone_adds_the_activity_and_a_note_and_keeps_basic(valid):
    doc = compose(ALICE, [Source("registration:alice", DESK, 1.0)], on_the_phone=True)
    assert doc.tuples[0].basic == "open"
    [person] = doc.persons
    assert person.activities == Activities(("on-the-phone",))
    assert person.notes == (Note(ON_THE_PHONE_NOTE),)
    body = serialize_pidf(doc)
    valid(body)
    assert b"<rpid:on-the-phone/>" in body and b"<basic>open</basic>" in body
    assert summary(doc) == Summary("open", ("on-the-phone",), "On the phone", True)
    assert b'substatus="onthephone"' in serialize_xpidf(doc)


def test_on_the_phone_keeps_published_activities_and_notes():
    busy = PresenceDocument(ALICE, persons=(Person(
        "p", activities=Activities(("meeting",), until=datetime(2030, 1, 1, tzinfo=UTC)),
        notes=(Note("Weekly sync"),)),))
    [person] = compose(ALICE, [Source("a", busy, 1.0)], on_the_phone=True).persons
    assert person.activities == Activities(("meeting", "on-the-phone"))  # until no longer holds
    assert person.notes == (Note("On the phone (Weekly sync)"),)  # pjsua shows the first note
    already = PresenceDocument(ALICE, persons=(Person("p", activities=Activities(
        ("on-the-phone",))),))
    [person] = compose(ALICE, [Source("a", already, 1.0)], on_the_phone=True).persons
    assert person.activities == Activities(("on-the-phone",))


def test_on_the_phone_comes_first_in_the_note_and_other_languages_follow(valid):
    said = PresenceDocument(ALICE, persons=(Person("p", notes=(
        Note("Im Büro", "de"), Note("In the office"))),))
    doc = compose(ALICE, [Source("a", said, 1.0)], on_the_phone=True)
    assert doc.persons[0].notes == (Note("On the phone (In the office)"), Note("Im Büro", "de"))
    assert summary(doc).note == "On the phone (In the office)"
    valid(serialize_pidf(doc))
    german = PresenceDocument(ALICE, persons=(Person("p", notes=(Note("Im Büro", "de"),)),))
    doc = compose(ALICE, [Source("a", german, 1.0)], on_the_phone=True)
    assert doc.persons[0].notes == (Note(ON_THE_PHONE_NOTE), Note("Im Büro", "de"))
    asterisk = PresenceDocument(ALICE, persons=(Person("p", notes=(Note("On the phone"),)),))
    doc = compose(ALICE, [Source("a", asterisk, 1.0)], on_the_phone=True)
    assert doc.persons[0].notes == (Note(ON_THE_PHONE_NOTE),)


def test_an_expired_source_is_gone_when_not_passed():
    away = PresenceDocument(ALICE, (PresenceTuple("t", "open"),),
                            persons=(Person("p", activities=Activities(("away",))),))
    both = compose(ALICE, [Source("a", away, 1.0), Source("b", SOFT, 2.0)])
    assert len(both.tuples) == 2 and both.persons[0].activities == Activities(("away",))
    alone = compose(ALICE, [Source("b", SOFT, 2.0)])
    assert [t.basic for t in alone.tuples] == ["closed"] and alone.persons == ()


def test_tuple_ids_are_unique_and_stable_per_source():
    first = compose(ALICE, [Source("publish:desk", DESK, 1.0)])
    later = compose(ALICE, [Source("publish:soft", SOFT, 5.0), Source("publish:desk", DESK, 1.0)])
    desk_id = first.tuples[0].id
    assert desk_id in ids(later) and len(set(ids(later))) == 2  # both were "t1"
    refreshed = compose(ALICE, [Source("publish:soft", SOFT, 9.0),
                                Source("publish:desk", DESK, 1.0)])
    assert ids(refreshed) == ids(later)
    assert compose(ALICE, [Source("publish:desk", DESK, 1.0)]) == first


def test_unknown_basic_contributes_no_basic():
    unknown = PresenceDocument(ALICE, (PresenceTuple("t", None, "sip:alice@192.0.2.3"),))
    doc = compose(ALICE, [Source("a", unknown, 3.0), Source("b", SOFT, 1.0)])
    assert [t.basic for t in doc.tuples] == [None, "closed"]
    assert summary(doc).basic == "closed"


def test_nobody_there_is_one_closed_tuple(valid):
    doc = compose(ALICE, [])
    assert [(t.basic, t.contact) for t in doc.tuples] == [("closed", None)]
    assert doc.persons == () and doc.notes == () and doc.devices == ()
    body = serialize_pidf(doc)
    valid(body)
    assert b"<basic>closed</basic>" in body
    assert compose(ALICE, []) == doc  # stable id
    assert summary(doc) == Summary("closed", (), None, False)
    assert compose(ALICE, [], on_the_phone=True).tuples[0].basic == "open"


def test_summary_prefers_person_notes_without_language_then_english():
    def note_of(*notes: Note, where: str = "person") -> str | None:
        if where == "person":
            doc = PresenceDocument(ALICE, persons=(Person("p", notes=notes),))
        elif where == "presence":
            doc = PresenceDocument(ALICE, notes=notes)
        else:
            doc = PresenceDocument(ALICE, (PresenceTuple("t", "closed", notes=notes[:1]),
                                           PresenceTuple("u", "open", notes=notes[1:])))
        return summary(doc).note

    assert note_of(Note("Hallo", "de"), Note("Hello", "en"), Note("Hi")) == "Hi"
    assert note_of(Note("Hallo", "de"), Note("Hello", "en-GB")) == "Hello"
    assert note_of(Note("Hallo", "de")) == "Hallo"
    assert note_of(Note("Ready"), where="presence") == "Ready"
    assert note_of(Note("closed one"), Note("open one"), where="tuples") == "open one"
    assert note_of() is None


@pytest.mark.parametrize("first, second", list(itertools.combinations(PRESENCE_SAMPLES, 2)))
def test_every_pair_of_samples_composes_into_a_valid_document(first, second, sample, valid):
    sources = [Source(first, parse_presence(sample(first)), 1.0),
               Source(second, parse_presence(sample(second)), 2.0)]
    for on_the_phone in (False, True):
        doc = compose(ALICE, sources, on_the_phone=on_the_phone)
        valid(serialize_pidf(doc))
        assert len(doc.tuples) == max(1, sum(len(s.document.tuples) for s in sources))
        assert summary(doc).on_the_phone or not on_the_phone


def test_all_samples_at_once(sample, valid):
    sources = [Source(name, parse_presence(sample(name)), float(n))
               for n, name in enumerate(PRESENCE_SAMPLES)]
    doc = compose(ALICE, sources, on_the_phone=True)
    valid(serialize_pidf(doc))
    assert summary(doc).basic == "open"
