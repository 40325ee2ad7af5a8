"""PIDF: every real-world sample read to the right values, every output strictly valid."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from sipresence.documents.datamodel import Device, Person
from sipresence.documents.pidf import (
    PresenceDocument,
    PresenceTuple,
    parse_pidf,
    serialize_pidf,
)
from sipresence.documents.rpid import Activities
from sipresence.documents.xml import CAPS_NS, CIPID_NS, DocumentError, Extension, Note

# Reconstructed from Asterisk chan_sip state_notify_build_xml() (case PIDF_XML), the
# eyeBeam format: draft namespaces, RPID wrapped in a PIDF <status> inside the person,
# note before tuple, contact before status, ISO-8859-1.
CHAN_SIP_PIDF = b'<?xml version="1.0" encoding="ISO-8859-1"?>\n' \
    b'<presence xmlns="urn:ietf:params:xml:ns:pidf" \n' + b"""\
xmlns:pp="urn:ietf:params:xml:ns:pidf:person"
xmlns:es="urn:ietf:params:xml:ns:pidf:rpid:status:rpid-status"
xmlns:ep="urn:ietf:params:xml:ns:pidf:rpid:rpid-person"
entity="sip:1000@pbx.example.com">
<pp:person><status>
<ep:activities><ep:busy/></ep:activities>
</status></pp:person>
<note>On the phone</note>
<tuple id="1000">
<contact priority="1">sip:1000@pbx.example.com</contact>
<status><basic>open</basic></status>
</tuple>
</presence>
"""

# Cisco CUCM: pre-RFC RPID namespace, person without id, padded basic, tuple id "1".
CISCO_DRAFT_RPID = b"""<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"
 xmlns:e="urn:ietf:params:xml:ns:pidf:status:rpid" entity="sip:2001@cucm.example.com">
<dm:person><e:activities><e:on-the-phone/></e:activities></dm:person>
<tuple id="1"><status><basic> open </basic></status>
<user-input>idle</user-input>
<contact priority="0.800000">sip:2001@cucm.example.com</contact></tuple>
</presence>"""

# eXosip: draft RPID activities (text form) inside the tuple's <status>.
EXOSIP_STATUS_ACTIVITIES = b"""<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf"
          xmlns:es="urn:ietf:params:xml:ns:pidf:status:rpid-status"
          entity="sip:bob@example.com">
<tuple id="sg89ae">
<status>
<basic>open</basic>
<es:activities>
  <es:activity>on-the-phone</es:activity>
</es:activities>
</status>
<contact priority="0.8">sip:bob@example.com</contact>
<note>on the phone</note>
</tuple>
</presence>"""

# Kamailio pua_usrloc: a tuple without id.
KAMAILIO_NO_ID = b"""<?xml version="1.0"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:alice@example.com">
  <tuple>
    <status><basic>open</basic></status>
    <contact>sip:alice@192.0.2.7:5060</contact>
  </tuple>
</presence>"""

# Flexisip: a person id that is a SIP URI.
FLEXISIP_URI_ID = b"""<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"
 xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:+1555@sip.linphone.org;user=phone">
<tuple id="qmzhvd"><status><basic>open</basic></status></tuple>
<dm:person id="sip:+1555@sip.linphone.org;user=phone">
<rpid:activities><rpid:away/></rpid:activities>
<dm:timestamp>2023-01-02T03:04:05Z</dm:timestamp>
</dm:person>
</presence>"""

# Asterisk res_pjsip with the digium body supplement: an un-namespaced element.
ASTERISK_DIGIUM = b"""<?xml version="1.0" encoding="UTF-8"?>
<presence entity="sip:1000@pbx.example.com" xmlns="urn:ietf:params:xml:ns:pidf"
 xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid">
 <note>Ready</note>
 <tuple id="1000"><status><basic>open</basic></status>
  <contact priority="1">sip:1000@pbx.example.com</contact></tuple>
 <dm:person><digium_presence type="away" subtype="lunch">gone</digium_presence></dm:person>
</presence>"""


def one(values):
    [value] = values
    return value


def test_asterisk_pjsip_on_the_phone(sample):
    doc = parse_pidf(sample("asterisk-pjsip-pidf-onthephone.xml"))
    assert doc.entity == "sip:1000@pbx.example.com"
    tuple_ = one(doc.tuples)
    assert (tuple_.id, tuple_.basic, tuple_.contact, tuple_.priority) == (
        "1000", "open", "sip:2000@pbx.example.com", 1.0)
    assert doc.notes == (Note("On the phone"),)
    person = one(doc.persons)
    assert person.id is None and person.activities == Activities(("on-the-phone",))


def test_baresip_person_before_tuple_and_empty_activities(sample):
    doc = parse_pidf(sample("baresip-pidf-publish.xml"))
    assert one(doc.tuples) == PresenceTuple("t4109", "open", "sip:alice@example.com")
    assert one(doc.persons) == Person("p4159", activities=Activities())


def test_baresip_basic_unknown_is_absent(sample):
    body = sample("baresip-pidf-publish.xml").replace(b">open<", b">unknown<")
    assert one(parse_pidf(body).tuples).basic is None


def test_cisco_cup_vendor_tuple_dropped_servcaps_repaired_display_name_adopted(sample):
    doc = parse_pidf(sample("cisco-cup-pidf-multituple.xml"))
    tuple_ = one(doc.tuples)  # the urn:cisco tuple is not a PIDF tuple
    assert (tuple_.id, tuple_.basic) == ("Jabbercup7", "open")
    servcaps = one(tuple_.extensions)
    assert servcaps.tag == f"{{{CAPS_NS}}}servcaps"  # old servcaps namespace mapped
    assert [(c.tag.split("}")[1], c.text) for c in servcaps.children] == [
        ("text", "true"), ("type", "text/plain"), ("type", "application/x-cisco-cupc+xml")]
    person = one(doc.persons)  # from the presence-level CIPID display-name
    assert person.extensions == (Extension(f"{{{CIPID_NS}}}display-name",
                                           text="Brendan Maguire"),)
    assert person.activities is None  # the Cisco-namespace person is vendor data


def test_freeswitch_latin1_note_in_person(sample):
    doc = parse_pidf(sample("freeswitch-pidf-available.xml"))
    assert doc.entity == "sip:1001@192.0.2.5"
    assert one(doc.tuples) == PresenceTuple("t6a5ed77e", "open")
    assert one(doc.persons) == Person("p06360c4a", notes=(Note("Available"),))


def test_linphone_status_extension_and_timestamp(sample):
    doc = parse_pidf(sample("linphone-desktop-4.2.3-pidf-publish.xml"))
    tuple_ = one(doc.tuples)
    assert tuple_.contact == "sip:CPBX-1234567890@pbx.easybell.de" and tuple_.priority == 0.8
    assert tuple_.timestamp == datetime(2020, 11, 18, 11, 57, 35, tzinfo=UTC)
    assert tuple_.status_extensions == (
        Extension("{http://www.linphone.org/xsds/pidfonline.xsd}online"),)
    assert doc.persons == ()


def test_pjsua_busy_with_note_in_tuple_and_person(sample):
    doc = parse_pidf(sample("pjsua-pidf-onthephone.xml"))
    tuple_ = one(doc.tuples)
    assert tuple_.notes == (Note("On the phone"),) and tuple_.contact is None
    assert tuple_.timestamp == datetime(2024, 5, 1, 10, tzinfo=UTC)
    person = one(doc.persons)
    assert person.activities == Activities(("busy",))
    assert person.notes == (Note("On the phone"),)


def test_no_namespace_presence_is_read_as_pidf(sample):
    doc = parse_pidf(sample("unknown-pidf-no-namespace.xml"))
    assert doc == PresenceDocument("", (PresenceTuple("800", "open"),), (Note("Ready"),))


def test_asterisk_chan_sip_draft_namespaces():
    doc = parse_pidf(CHAN_SIP_PIDF)
    assert one(doc.tuples) == PresenceTuple("1000", "open", "sip:1000@pbx.example.com", 1.0)
    assert doc.notes == (Note("On the phone"),)
    assert one(doc.persons).activities == Activities(("busy",))


def test_cisco_draft_rpid_namespace_and_padded_basic():
    doc = parse_pidf(CISCO_DRAFT_RPID)
    tuple_ = one(doc.tuples)
    assert (tuple_.id, tuple_.basic, tuple_.priority) == ("1", "open", 0.8)
    assert tuple_.extensions == ()  # un-namespaced <user-input> cannot be written back
    assert one(doc.persons).activities == Activities(("on-the-phone",))


def test_exosip_activities_in_tuple_status_become_the_person():
    doc = parse_pidf(EXOSIP_STATUS_ACTIVITIES)
    assert one(doc.tuples).status_extensions == ()
    assert one(doc.persons) == Person(activities=Activities(("on-the-phone",)))


def test_kamailio_tuple_without_id():
    tuple_ = one(parse_pidf(KAMAILIO_NO_ID).tuples)
    assert tuple_.id is None and tuple_.contact == "sip:alice@192.0.2.7:5060"


def test_flexisip_person_uri_id_and_timestamp():
    person = one(parse_pidf(FLEXISIP_URI_ID).persons)
    assert person.id == "sip:+1555@sip.linphone.org;user=phone"
    assert person.timestamp == datetime(2023, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert person.activities == Activities(("away",))


def test_unnamespaced_vendor_elements_are_dropped():
    doc = parse_pidf(ASTERISK_DIGIUM)
    assert one(doc.persons) == Person()
    assert doc.notes == (Note("Ready"),)


@pytest.mark.parametrize("body, reason", [
    (b'<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="1" state="full"'
     b' entity="sip:a@b"/>', "not a PIDF presence document"),
    (b'<presence xmlns="urn:example:other"/>', "not a PIDF presence document"),
    (b"<presence><presentity uri='sip:a@b'/><atom id='1'/></presence>", "XPIDF document"),
    (b"<presence><tuple>", "XML body not well-formed"),
])
def test_wrong_documents_are_refused(body, reason):
    with pytest.raises(DocumentError, match=reason):
        parse_pidf(body)


@pytest.mark.parametrize("body", [CHAN_SIP_PIDF, CISCO_DRAFT_RPID, EXOSIP_STATUS_ACTIVITIES,
                                  KAMAILIO_NO_ID, FLEXISIP_URI_ID, ASTERISK_DIGIUM])
def test_every_quirk_reserializes_validly(body, valid):
    valid(serialize_pidf(parse_pidf(body)))


ALL_FEATURES = PresenceDocument(
    entity="sip:alice@example.com",
    tuples=(PresenceTuple("800", "open", "sip:alice@192.0.2.1", 0.5, (Note("hi", "en"),),
                          datetime(2024, 1, 1, tzinfo=UTC), "urn:uuid:d1"),
            PresenceTuple(None, "closed")),
    notes=(Note("Ready"),),
    persons=(Person("t800", activities=Activities(("busy", "away", "on-the-phone"))),),
    devices=(Device("urn:uuid:d1"),),
)


def test_output_keeps_pidf_as_default_namespace_and_the_literal_prefixes(valid):
    body = serialize_pidf(ALL_FEATURES)
    valid(body)
    assert body.startswith(
        b'<?xml version="1.0" encoding="UTF-8"?>\n<presence xmlns="urn:ietf:params:xml:ns:pidf"'
        b' xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"'
        b' xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid"'
        b' xmlns:c="urn:ietf:params:xml:ns:pidf:cipid"'
        b' xmlns:caps="urn:ietf:params:xml:ns:pidf:caps"')
    # what baresip's regexes and pjsua's name lookups need, literally
    assert b"<basic>open</basic>" in body and b"<basic>closed</basic>" in body
    for activity in (b"<rpid:busy/>", b"<rpid:away/>", b"<rpid:on-the-phone/>"):
        assert activity in body
    assert b"<dm:person " in body and b"<dm:deviceID>urn:uuid:d1</dm:deviceID>" in body
    assert not re.search(rb"<\w+:(presence|tuple|status|basic|contact|note|timestamp)\b", body)
    assert b" />" not in body


def test_ids_are_repaired_and_unique_across_tuples_persons_and_devices(valid):
    body = serialize_pidf(ALL_FEATURES)
    valid(body)
    assert re.findall(rb' id="([^"]+)"', body) == [b"t800", b"t", b"t800-2", b"d"]
    assert serialize_pidf(ALL_FEATURES) == body  # same input, same ids


def test_invalid_extension_elements_are_dropped_valid_ones_kept(valid):
    body = b"""<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@example.com"
      xmlns:caps="urn:ietf:params:xml:ns:pidf:caps" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid"
      xmlns:ts="urn:ietf:params:xml:ns:pidf:timed-status" xmlns:v="urn:example:vendor"
      xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model">
      <tuple id="a"><status><basic>open</basic><note>misplaced</note></status>
        <caps:servcaps><caps:audio>maybe</caps:audio></caps:servcaps>
        <rpid:class id="dup">work</rpid:class>
        <ts:timed-status from="2024-01-01T10:00:00Z"><ts:basic>closed</ts:basic></ts:timed-status>
        <v:thing><v:inner>x</v:inner></v:thing>
        <dm:note>not here</dm:note>
      </tuple>
      <dm:device id="dup"><v:battery>80</v:battery><dm:deviceID>urn:x:1</dm:deviceID></dm:device>
    </presence>"""
    doc = parse_pidf(body)
    kept = [e.tag.split("}")[1] for e in one(doc.tuples).extensions]
    assert kept == ["class", "timed-status", "thing"]
    assert one(doc.tuples).status_extensions == ()
    assert one(doc.devices).extensions == (Extension("{urn:example:vendor}battery", text="80"),)
    out = serialize_pidf(doc)
    valid(out)
    assert b"<rpid:class>work</rpid:class>" in out  # its id would collide: dropped


def test_contact_priority_is_normalised(valid):
    body = serialize_pidf(PresenceDocument("sip:a@b", (
        PresenceTuple("a", "open", "sip:a@c", 1.0), PresenceTuple("b", "open", "sip:a@d", 0.0),
        PresenceTuple("c", "open", "sip:a@e", 0.8))))
    valid(body)
    assert re.findall(rb'priority="([^"]+)"', body) == [b"1", b"0", b"0.8"]


def test_characters_xml_cannot_carry_are_removed(valid):
    doc = PresenceDocument("sip:a@b", (PresenceTuple("a", "open", notes=(Note("a\x00b\x1bc"),)),))
    body = serialize_pidf(doc)
    valid(body)
    assert one(one(parse_pidf(body).tuples).notes) == Note("abc")
