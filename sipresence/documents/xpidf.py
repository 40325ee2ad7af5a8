"""XPIDF, the pre-standard Microsoft/IETF-draft presence format that phones still ask for.

Polycom and Cisco phones, Asterisk chan_sip consumers and pjsua (``xpidf.c``) read
``application/xpidf+xml``; Asterisk chan_sip sends the same document labelled
``application/cpim-pidf+xml``.  There is no schema: the shape below is what Asterisk,
FreeSWITCH and eXosip have emitted for twenty years, which is what those readers know::

    <presence>
      <presentity uri="sip:alice@example.com;method=SUBSCRIBE"/>
      <atom id="alice">
        <address uri="sip:alice@example.com;user=ip" priority="0.800000">
          <status status="open"/>
          <msnsubstatus substatus="onthephone"/>
        </address>
      </atom>
    </presence>

Written documents carry one atom with one address summarising the presentity, because
every reader looks at the first one only.  ``status`` is ``open`` or ``closed``: pjsua
treats anything but ``open`` (including chan_sip's ``inuse``) as offline, so "in use" is
said with ``msnsubstatus`` alone.  No DOCTYPE is written: pjsua's XML scanner cannot skip
one (it reads ``<!DOCTYPE`` as an element and fails on the ``/`` of the public id).
"""

from __future__ import annotations

from lxml import etree

from .datamodel import Person
from .pidf import Basic, PresenceDocument, PresenceTuple, presence_from_element, priority
from .rpid import Activities
from .xml import (
    XML_DECLARATION,
    DocumentError,
    Note,
    clean_text,
    parse_xml,
    split_tag,
    text_of,
)

__all__ = ["parse_presence", "parse_xpidf", "serialize_xpidf", "substatus"]

#: MSN substatus values and the RPID activity each one means.
_ACTIVITY_OF_SUBSTATUS = {
    "busy": "busy",
    "onthephone": "on-the-phone",
    "on-the-phone": "on-the-phone",
    "away": "away",
    "berightback": "away",
    "idle": "away",
    "outtolunch": "meal",
}

#: Activities in the order they decide the written substatus (first match wins).
_SUBSTATUS_OF_ACTIVITY = (
    ("on-the-phone", "onthephone"),
    ("busy", "busy"),
    ("meeting", "busy"),
    ("meal", "outtolunch"),
    ("breakfast", "outtolunch"),
    ("dinner", "outtolunch"),
    ("away", "away"),
    ("vacation", "away"),
    ("holiday", "away"),
    ("permanent-absence", "away"),
    ("sleeping", "away"),
)


def parse_presence(data: bytes) -> PresenceDocument:
    """Parse any presence body: PIDF, CPIM-PIDF or XPIDF, whatever its label says.

    The label cannot be trusted (chan_sip sends XPIDF as ``cpim-pidf+xml``); the root's
    children can: XPIDF has ``<atom>`` where PIDF has ``<tuple>``.
    """
    root = parse_xml(data)
    if not split_tag(root.tag)[0] and root.find("atom") is not None:
        return _from_xpidf(root)
    return presence_from_element(root)


def parse_xpidf(data: bytes) -> PresenceDocument:
    """Parse an XPIDF body; raise :class:`DocumentError` if it is not XPIDF."""
    root = parse_xml(data)
    if root.tag != "presence" or root.find("atom") is None:
        raise DocumentError("not an XPIDF presence document")
    return _from_xpidf(root)


def _strip_param(uri: str, name: str) -> str:
    """*uri* without the ``;name=...`` parameter every XPIDF writer appends blindly."""
    parts = uri.split(";")
    kept = [parts[0]] + [p for p in parts[1:] if p.split("=", 1)[0].strip().lower() != name]
    return ";".join(kept)


def _from_xpidf(root: etree._Element) -> PresenceDocument:
    presentity = root.find("presentity")
    entity = _strip_param((presentity.get("uri") or "").strip(), "method") \
        if presentity is not None else ""
    tuples: list[PresenceTuple] = []
    activities: list[str] = []
    for atom in root.iter("atom"):
        atom_id = (atom.get("id") or atom.get("atomid") or "").strip() or None
        addresses = atom.findall("address")
        for index, address in enumerate(addresses):
            status_element = address.find("status")
            status = (status_element.get("status") or "").strip().lower() \
                if status_element is not None else ""
            basic: Basic | None = (
                "closed" if status == "closed"
                else "open" if status in ("open", "inuse", "inactive") else None)
            substatus_element = address.find("msnsubstatus")
            substatus = (substatus_element.get("substatus") or "").strip().lower() \
                if substatus_element is not None else ""
            if status == "inuse" and not substatus:
                substatus = "onthephone"
            activity = _ACTIVITY_OF_SUBSTATUS.get(substatus)
            if activity and activity not in activities:
                activities.append(activity)
            contact = _strip_param((address.get("uri") or "").strip(), "user") or None
            note = _note(address)
            tuples.append(PresenceTuple(
                id=atom_id if len(addresses) == 1 or atom_id is None
                else f"{atom_id}-{index + 1}",
                basic=basic, contact=contact,
                priority=priority(address.get("priority")) if contact else None,
                notes=(note,) if note else (),
            ))
    presence_note = _note(root)
    persons = (Person(activities=Activities(tuple(activities))),) if activities else ()
    return PresenceDocument(entity, tuple(tuples),
                            (presence_note,) if presence_note else (), persons)


def _note(element: etree._Element) -> Note | None:
    """The ``<note>`` under *element*, directly or in a ``<status>`` (FreeSWITCH)."""
    for note in (element.find("note"), element.find("status/note")):
        if note is not None and text_of(note):
            return Note(text_of(note))
    return None


def substatus(document: PresenceDocument) -> str:
    """The MSN substatus that sums *document* up: ``online``, ``onthephone``, ``offline``..."""
    if not any(t.basic == "open" for t in document.tuples):
        return "offline"
    values: set[str] = set()
    for person in document.persons:
        if person.activities is not None:
            values.update(person.activities.values)
    for activity, value in _SUBSTATUS_OF_ACTIVITY:
        if activity in values:
            return value
    return "online"


def serialize_xpidf(document: PresenceDocument) -> bytes:
    """*document* as XPIDF for phones that only read ``application/xpidf+xml``.

    The address is the first open tuple's contact, else the entity, with the ``;user=ip``
    every other writer adds (unless it has a ``user`` parameter already); the atom id,
    which pjsua requires, is the user part of the entity (Asterisk uses the extension).
    """
    is_open = any(t.basic == "open" for t in document.tuples)
    contact = next((t.contact for t in document.tuples if t.basic == "open" and t.contact),
                   None) or document.entity
    user = document.entity.split(":", 1)[-1].split("@", 1)[0].split(";", 1)[0]
    root = etree.Element("presence")
    etree.SubElement(root, "presentity", uri=clean_text(f"{document.entity};method=SUBSCRIBE"))
    atom = etree.SubElement(root, "atom", id=clean_text(user or "presence"))
    if _strip_param(contact, "user") == contact:
        contact += ";user=ip"
    address = etree.SubElement(atom, "address", uri=clean_text(contact), priority="0.800000")
    etree.SubElement(address, "status", status="open" if is_open else "closed")
    etree.SubElement(address, "msnsubstatus", substatus=substatus(document))
    return XML_DECLARATION + etree.tostring(root, encoding="UTF-8", pretty_print=True)
