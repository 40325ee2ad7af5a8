"""XPIDF: reading what PBXes send, writing what phones and pjsua read."""

from __future__ import annotations

import re

import pytest
from lxml import etree

from sipresence.documents.datamodel import Person
from sipresence.documents.pidf import PresenceDocument, PresenceTuple
from sipresence.documents.rpid import Activities
from sipresence.documents.xml import DocumentError, Note
from sipresence.documents.xpidf import (
    parse_presence,
    parse_xpidf,
    serialize_xpidf,
    substatus,
)

# FreeSWITCH gen_pidf() for a User-Agent containing "polycom": a note at presence level.
FREESWITCH_POLYCOM = b"""<?xml version="1.0"?>
<!DOCTYPE presence PUBLIC "-//IETF//DTD RFCxxxx XPIDF 1.0//EN" "xpidf.dtd">
<presence>
 <status>
  <note>On The Phone 2000</note>
 </status>
 <presentity uri="sip:1001@192.0.2.5;method=SUBSCRIBE" />
 <atom id="sip:1001@192.0.2.5">
  <address uri="sip:1001@192.0.2.5;user=ip" priority="0.800000">
   <status status="inuse" />
   <msnsubstatus substatus="onthephone" />
  </address>
 </atom>
</presence>
"""

# pjsua's own pjxpidf_create(): atomid, no substatus.
PJSUA_XPIDF = b"""<?xml version="1.0" encoding="UTF-8"?>
<presence>
 <presentity uri="sip:bob@example.com;method=SUBSCRIBE" />
 <atom atomid="4f2a">
  <address uri="sip:bob@example.com">
   <status status="closed" />
  </address>
 </atom>
</presence>"""


def test_asterisk_chan_sip_xpidf_sample(sample):
    doc = parse_xpidf(sample("asterisk-chansip-xpidf-open.xml"))
    assert doc == PresenceDocument(
        "sip:1000@pbx.example.com",
        (PresenceTuple("1000", "open", "sip:2000@pbx.example.com", 0.8),))


def test_xpidf_labelled_cpim_pidf_is_recognised_by_content(sample):
    body = sample("asterisk-chansip-xpidf-open.xml")
    assert parse_presence(body) == parse_xpidf(body)


def test_parse_presence_reads_pidf_too(sample):
    doc = parse_presence(sample("pjsua-pidf-onthephone.xml"))
    assert doc.entity == "sip:alice@example.com" and doc.tuples[0].basic == "open"


def test_freeswitch_polycom_inuse_is_open_and_on_the_phone():
    doc = parse_xpidf(FREESWITCH_POLYCOM)
    assert doc.entity == "sip:1001@192.0.2.5"
    assert doc.tuples == (PresenceTuple("sip:1001@192.0.2.5", "open", "sip:1001@192.0.2.5",
                                        0.8),)
    assert doc.notes == (Note("On The Phone 2000"),)
    assert doc.persons == (Person(activities=Activities(("on-the-phone",))),)


def test_pjsua_atomid_and_closed():
    doc = parse_xpidf(PJSUA_XPIDF)
    assert doc.tuples == (PresenceTuple("4f2a", "closed", "sip:bob@example.com"),)
    assert doc.persons == ()


@pytest.mark.parametrize("status, substatus_, basic, activity", [
    ("open", "online", "open", None),
    ("open", "busy", "open", "busy"),
    ("inactive", "berightback", "open", "away"),
    ("inactive", "away", "open", "away"),
    ("inuse", "", "open", "on-the-phone"),
    ("inactive", "outtolunch", "open", "meal"),
    ("closed", "offline", "closed", None),
    ("weird", "weird", None, None),
])
def test_msn_status_and_substatus_mapping(status, substatus_, basic, activity):
    body = (f'<presence><presentity uri="sip:a@b;method=SUBSCRIBE"/><atom id="1">'
            f'<address uri="sip:a@c"><status status="{status}"/>'
            f'<msnsubstatus substatus="{substatus_}"/></address></atom></presence>').encode()
    doc = parse_xpidf(body)
    assert doc.tuples[0].basic == basic
    assert doc.persons == ((Person(activities=Activities((activity,))),) if activity else ())


def test_several_addresses_become_several_tuples():
    body = (b'<presence><presentity uri="sip:a@b"/><atom id="7">'
            b'<address uri="sip:a@c"><status status="closed"/></address>'
            b'<address uri="sip:a@d" priority="0,5"><status status="open"/></address>'
            b"</atom></presence>")
    doc = parse_xpidf(body)
    assert doc.tuples == (PresenceTuple("7-1", "closed", "sip:a@c"),
                          PresenceTuple("7-2", "open", "sip:a@d", 0.5))


def test_not_xpidf_is_refused():
    with pytest.raises(DocumentError, match="not an XPIDF"):
        parse_xpidf(b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"/>')


def pjsua_reads(body: bytes) -> tuple[str, bool]:
    """What pjsip-simple/xpidf.c extracts (pjxpidf_parse + get_uri + get_status)."""
    text = body.decode()
    assert "<!DOCTYPE" not in text  # pj_xml cannot skip a DOCTYPE
    assert "'" not in re.sub(r"<\?xml[^>]*\?>", "", text)  # pj_xml wants double quotes
    root = etree.fromstring(body)
    assert root.tag == "presence"
    presentity = root.find("presentity")
    atom = root.find("atom")
    address = atom.find("address")
    status = address.find("status")
    assert presentity.get("uri") and (atom.get("id") or atom.get("atomid"))
    assert address.get("uri") and status.get("status")
    return presentity.get("uri"), status.get("status") == "open"


ON_THE_PHONE = PresenceDocument(
    "sip:1000@pbx.example.com",
    (PresenceTuple("t", "closed", "sip:1000@192.0.2.9"),
     PresenceTuple("u", "open", "sip:1000@192.0.2.7:5060", 1.0)),
    persons=(Person(activities=Activities(("busy", "on-the-phone"))),))


def test_written_xpidf_is_what_asterisk_writes_and_pjsua_reads():
    body = serialize_xpidf(ON_THE_PHONE)
    assert body == (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b"<presence>\n"
        b'  <presentity uri="sip:1000@pbx.example.com;method=SUBSCRIBE"/>\n'
        b'  <atom id="1000">\n'
        b'    <address uri="sip:1000@192.0.2.7:5060;user=ip" priority="0.800000">\n'
        b'      <status status="open"/>\n'
        b'      <msnsubstatus substatus="onthephone"/>\n'
        b"    </address>\n"
        b"  </atom>\n"
        b"</presence>\n")
    assert pjsua_reads(body) == ("sip:1000@pbx.example.com;method=SUBSCRIBE", True)


@pytest.mark.parametrize("doc, expected", [
    (PresenceDocument("sip:a@b"), "offline"),
    (PresenceDocument("sip:a@b", (PresenceTuple("t", "closed"),)), "offline"),
    (PresenceDocument("sip:a@b", (PresenceTuple("t", "open"),)), "online"),
    (PresenceDocument("sip:a@b", (PresenceTuple("t", "open"),),
                      persons=(Person(activities=Activities(("away",))),)), "away"),
    (PresenceDocument("sip:a@b", (PresenceTuple("t", "open"),),
                      persons=(Person(activities=Activities(("meeting",))),)), "busy"),
    (PresenceDocument("sip:a@b", (PresenceTuple("t", "open"),),
                      persons=(Person(activities=Activities(("dinner", "away"))),)),
     "outtolunch"),
])
def test_substatus_sums_up_the_document(doc, expected):
    assert substatus(doc) == expected
    assert pjsua_reads(serialize_xpidf(doc))[1] is (expected != "offline")


def test_xpidf_roundtrip_keeps_entity_state_contact_and_activity():
    back = parse_xpidf(serialize_xpidf(ON_THE_PHONE))
    assert back.entity == ON_THE_PHONE.entity
    assert back.tuples == (PresenceTuple("1000", "open", "sip:1000@192.0.2.7:5060", 0.8),)
    assert back.persons == (Person(activities=Activities(("on-the-phone",))),)


def test_a_contact_with_its_own_user_parameter_keeps_it():
    doc = PresenceDocument("sip:+1555@example.com;user=phone",
                           (PresenceTuple("t", "open", "sip:+1555@192.0.2.1;user=phone"),))
    body = serialize_xpidf(doc)
    assert b'uri="sip:+1555@192.0.2.1;user=phone"' in body
    assert b'<atom id="+1555">' in body
    assert parse_xpidf(body).entity == "sip:+1555@example.com;user=phone"
