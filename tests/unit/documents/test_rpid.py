"""RPID person elements: lenient reading, schema-valid writing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sipresence.documents.datamodel import Person
from sipresence.documents.pidf import PresenceDocument, parse_pidf, serialize_pidf
from sipresence.documents.rpid import (
    ACTIVITIES,
    MOODS,
    Activities,
    Mood,
    PlaceType,
    Privacy,
    RpidClass,
    Sphere,
    TimeOffset,
    UserInput,
)
from sipresence.documents.xml import Note

T1 = datetime(2024, 6, 1, 8, tzinfo=UTC)
T2 = datetime(2024, 6, 1, 17, 30, tzinfo=UTC)


def person_of(inner: str) -> Person:
    body = f"""<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@example.com"
      xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"
      xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid"
      xmlns:lt="urn:ietf:params:xml:ns:location-type">
      <dm:person id="p">{inner}</dm:person></presence>""".encode()
    [person] = parse_pidf(body).persons
    return person


def roundtrip(person: Person, valid) -> tuple[Person, bytes]:
    body = serialize_pidf(PresenceDocument("sip:a@example.com", persons=(person,)))
    valid(body)
    [back] = parse_pidf(body).persons
    return back, body


def test_the_full_activity_enumeration_is_known():
    assert len(ACTIVITIES) == 24 and len(MOODS) == 59
    assert {"on-the-phone", "busy", "away", "meal", "meeting", "vacation"} <= set(ACTIVITIES)


@pytest.mark.parametrize("activity", ACTIVITIES)
def test_every_activity_roundtrips_as_a_self_closing_rpid_element(activity, valid):
    person = Person("p", activities=Activities((activity,)))
    back, body = roundtrip(person, valid)
    assert back == person
    assert f"<rpid:{activity}/>".encode() in body


def test_activities_with_other_text_notes_and_interval(valid):
    activities = Activities(("meeting", "on-the-phone"), (Note("dentist", "en"),),
                            (Note("back soon"),), since=T1, until=T2)
    back, body = roundtrip(Person("p", activities=activities), valid)
    assert back.activities == activities
    assert b'<rpid:activities from="2024-06-01T08:00:00Z" until="2024-06-01T17:30:00Z">' in body
    assert b'<rpid:other xml:lang="en">dentist</rpid:other>' in body


def test_activities_read_leniently():
    person = person_of("""<rpid:activities id="a1" until="2024-06-01T17:30:00Z">
        <rpid:unknown/><rpid:busy/><rpid:busy/><rpid:dancing/><rpid:other> gym </rpid:other>
        <rpid:activity>meal</rpid:activity><rpid:activity>siesta</rpid:activity>
      </rpid:activities>""")
    assert person.activities == Activities(("busy", "meal"), (Note("gym"), Note("siesta")),
                                           until=T2)


def test_unknown_or_empty_activities_read_as_no_values_and_write_unknown(valid):
    person = person_of("<rpid:activities><rpid:unknown/></rpid:activities>")
    assert person.activities == Activities()
    assert person_of("<rpid:activities/>").activities == Activities()
    _, body = roundtrip(person, valid)
    assert b"<rpid:activities>\n      <rpid:unknown/>\n    </rpid:activities>" in body


def test_mood(valid):
    mood = Mood(("happy", "in_love"), (Note("zen"),))
    back, _ = roundtrip(Person("p", mood=mood), valid)
    assert back.mood == mood
    assert person_of("<rpid:mood><rpid:unknown/></rpid:mood>").mood == Mood()


def test_place_type_uses_rfc4589_types_or_other_text(valid):
    place = PlaceType(("office", "airport"), notes=(Note("terminal 2"),), since=T1)
    back, body = roundtrip(Person("p", place_type=place), valid)
    assert back.place_type == place
    assert b"<lt:office" in body
    assert person_of("<rpid:place-type><rpid:home/></rpid:place-type>").place_type == (
        PlaceType(("home",)))
    other = PlaceType(other=Note("boat"))
    assert roundtrip(Person("p", place_type=other), valid)[0].place_type == other


def test_empty_place_type_is_not_written(valid):
    _, body = roundtrip(Person("p", place_type=PlaceType()), valid)
    assert b"place-type" not in body


def test_privacy(valid):
    privacy = Privacy(("audio", "video"), until=T2)
    back, _ = roundtrip(Person("p", privacy=privacy), valid)
    assert back.privacy == privacy
    back, body = roundtrip(Person("p", privacy=Privacy()), valid)
    assert back.privacy == Privacy() and b"<rpid:unknown/>" in body


def test_sphere_including_the_draft_text_form(valid):
    for sphere in (Sphere("work"), Sphere("home", since=T1), Sphere()):
        assert roundtrip(Person("p", sphere=sphere), valid)[0].sphere == sphere
    assert person_of("<rpid:sphere>work</rpid:sphere>").sphere == Sphere("work")


def test_time_offset_user_input_and_class(valid):
    person = Person("p", time_offset=TimeOffset(-300, "EST", until=T2),
                    user_input=UserInput("idle", 600, T1), rpid_class=RpidClass("home phone"))
    back, body = roundtrip(person, valid)
    assert back == person
    assert b'<rpid:time-offset until="2024-06-01T17:30:00Z" description="EST">-300' in body
    assert b'<rpid:user-input idle-threshold="600" last-input="2024-06-01T08:00:00Z">idle' in body


def test_unusable_values_are_dropped():
    person = person_of("""<rpid:time-offset>soon</rpid:time-offset>
        <rpid:user-input idle-threshold="-1">sleepy</rpid:user-input>
        <rpid:class>   </rpid:class>""")
    assert (person.time_offset, person.user_input, person.rpid_class) == (None, None, None)
    assert person_of('<rpid:user-input idle-threshold="x"> Active </rpid:user-input>'
                     ).user_input == UserInput("active")


def test_first_of_a_repeated_element_wins():
    person = person_of("<rpid:activities><rpid:away/></rpid:activities>"
                       "<rpid:activities><rpid:busy/></rpid:activities>")
    assert person.activities == Activities(("away",))
