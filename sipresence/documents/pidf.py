"""RFC 3863 PIDF: the presence document model, its lenient reader and strict writer.

Reading accepts what devices send (see ``INTEROP.md`` and the samples): any element order,
missing or invalid ids, no namespace at all, draft RPID and servcaps namespaces,
``<basic>unknown</basic>`` (read as absent), padded values, RPID placed in a tuple's
``<status>`` by pre-RFC clients.  What is dropped on reading:

* tuples that are not in the PIDF namespace (Cisco CUP's ``urn:cisco:params:xml:ns:pidf``
  tuple carries nothing a watcher could use and is not a PIDF tuple);
* presence-level elements other than tuples, notes, persons and devices, except CIPID
  and RPID elements, which RFC 4479 places in the person and which are moved there;
* extension elements that could not be written back validly (see :mod:`.datamodel`).

Writing is strict: the output validates against the packaged schemas, uses the PIDF
namespace as the default namespace and the prefixes ``dm:``, ``rpid:``, ``c:`` and
``caps:`` (pjsua and baresip match on them), keeps schema order, repairs ids
(:func:`.xml.xml_id`) and makes them unique across tuples, persons and devices.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from lxml import etree

from .datamodel import (
    PERSON_NAMESPACES,
    RPID_FIELDS,
    Device,
    Person,
    build_device,
    build_person,
    keep_extensions,
    parse_device,
    parse_person,
)
from .rpid import Activities
from .xml import (
    CAPS_NS,
    CIPID_NS,
    DM_NS,
    PIDF_NS,
    RPID_NS,
    XML_DECLARATION,
    DocumentError,
    Extension,
    Note,
    any_uri,
    build_extension,
    format_datetime,
    note_element,
    note_from,
    parse_datetime,
    parse_xml,
    qualified,
    split_tag,
    text_of,
    xml_id,
)

__all__ = [
    "Basic",
    "PresenceDocument",
    "PresenceTuple",
    "parse_pidf",
    "presence_from_element",
    "priority",
    "serialize_pidf",
]

Basic = Literal["open", "closed"]

#: The prefixes clients match on literally.
NSMAP = {None: PIDF_NS, "dm": DM_NS, "rpid": RPID_NS, "c": CIPID_NS, "caps": CAPS_NS}


@dataclass(frozen=True)
class PresenceTuple:
    """A PIDF tuple (an RFC 4479 service).

    ``basic`` is None when the publisher said nothing usable (baresip's ``unknown``).
    ``priority`` is the contact's q-value, rounded to three decimals.
    ``status_extensions`` are kept children of ``<status>`` besides ``<basic>``
    (Linphone's ``pidfonline:online``); ``extensions`` are kept tuple-level elements
    (``caps:servcaps``, CIPID, RPID ``class``/``user-input``, timed-status...).
    """

    id: str | None = None
    basic: Basic | None = None
    contact: str | None = None
    priority: float | None = None
    notes: tuple[Note, ...] = ()
    timestamp: datetime | None = None
    device_id: str | None = None
    status_extensions: tuple[Extension, ...] = ()
    extensions: tuple[Extension, ...] = ()


@dataclass(frozen=True)
class PresenceDocument:
    """A whole presence document: PIDF, XPIDF and CPIM-PIDF all read into this."""

    entity: str
    tuples: tuple[PresenceTuple, ...] = ()
    notes: tuple[Note, ...] = ()
    persons: tuple[Person, ...] = ()
    devices: tuple[Device, ...] = ()


def parse_pidf(data: bytes) -> PresenceDocument:
    """Parse a PIDF body leniently; raise :class:`DocumentError` if it is not PIDF."""
    return presence_from_element(parse_xml(data))


def presence_from_element(root: etree._Element) -> PresenceDocument:
    """The :class:`PresenceDocument` of a parsed PIDF root element."""
    default_ns = PIDF_NS if not split_tag(root.tag)[0] else ""
    if qualified(root, default_ns) != (PIDF_NS, "presence"):
        raise DocumentError("not a PIDF presence document")
    if default_ns and root.find("atom") is not None:
        raise DocumentError("XPIDF document, not PIDF")
    tuples: list[PresenceTuple] = []
    notes: list[Note] = []
    persons: list[Person] = []
    devices: list[Device] = []
    loose: list[etree._Element] = []  # person elements found outside a person
    for child in root:
        namespace, local = qualified(child, default_ns)
        if (namespace, local) == (PIDF_NS, "tuple"):
            tuples.append(_parse_tuple(child, default_ns, loose))
        elif (namespace, local) == (PIDF_NS, "note"):
            note = note_from(child)
            notes.extend([note] if note else [])
        elif (namespace, local) == (DM_NS, "person"):
            persons.append(parse_person(child, default_ns))
        elif (namespace, local) == (DM_NS, "device"):
            device = parse_device(child, default_ns)
            devices.extend([device] if device else [])
        elif namespace in PERSON_NAMESPACES:
            loose.append(child)
    if loose:
        persons = _adopt(persons, loose, default_ns)
    return PresenceDocument((root.get("entity") or "").strip(), tuple(tuples), tuple(notes),
                            tuple(persons), tuple(devices))


def _adopt(persons: list[Person], loose: list[etree._Element],
           default_ns: str) -> list[Person]:
    """Give person elements found outside any person to the first person (made if needed).

    Elements the person already has win over loose ones.
    """
    holder = etree.Element(f"{{{DM_NS}}}person")
    holder.extend(loose)
    adopted = parse_person(holder, default_ns)
    if not persons:
        return [adopted]
    first = persons[0]
    merged = {name: getattr(first, name) or getattr(adopted, name)
              for name in RPID_FIELDS.values()}
    tags = {extension.tag for extension in first.extensions}
    extensions = first.extensions + tuple(e for e in adopted.extensions if e.tag not in tags)
    updated = Person(first.id, extensions=extensions, notes=first.notes or adopted.notes,
                     timestamp=first.timestamp, **merged)
    return [updated, *persons[1:]]


def _basic(value: str) -> Basic | None:
    value = value.strip().lower()
    return "open" if value == "open" else "closed" if value == "closed" else None


def priority(value: str | None) -> float | None:
    """A contact q-value: ``0.800000`` and ``0,8`` are read, out-of-range values dropped."""
    try:
        number = float((value or "").strip().replace(",", "."))
    except ValueError:
        return None
    return round(number, 3) if 0 <= number <= 1 else None


def _parse_tuple(element: etree._Element, default_ns: str,
                 loose: list[etree._Element]) -> PresenceTuple:
    basic: Basic | None = None
    contact = None
    q = None
    notes: list[Note] = []
    timestamp = None
    device_id = None
    status_others: list[etree._Element] = []
    others: list[etree._Element] = []
    seen_status = False
    for child in element:
        namespace, local = qualified(child, default_ns)
        if (namespace, local) == (PIDF_NS, "status") and not seen_status:
            seen_status = True
            for part in child:
                part_ns, part_local = qualified(part, default_ns)
                if (part_ns, part_local) == (PIDF_NS, "basic"):
                    basic = basic or _basic(text_of(part))
                elif part_ns == RPID_NS and part_local == Activities.NAME:
                    loose.append(part)  # draft RPID: activities in the tuple status
                else:
                    status_others.append(part)
        elif (namespace, local) == (PIDF_NS, "contact") and contact is None:
            contact = text_of(child) or None
            q = priority(child.get("priority"))
        elif (namespace, local) == (PIDF_NS, "note"):
            note = note_from(child)
            notes.extend([note] if note else [])
        elif (namespace, local) == (PIDF_NS, "timestamp"):
            timestamp = timestamp or parse_datetime(child.text)
        elif (namespace, local) == (DM_NS, "deviceID"):
            device_id = device_id or text_of(child) or None
        elif namespace == RPID_NS and local == Activities.NAME:
            loose.append(child)
        else:
            others.append(child)
    return PresenceTuple(
        id=element.get("id"), basic=basic, contact=contact, priority=q if contact else None,
        notes=tuple(notes), timestamp=timestamp, device_id=device_id,
        status_extensions=keep_extensions(status_others, "status", default_ns),
        extensions=keep_extensions(others, "tuple", default_ns),
    )


class _Ids:
    """Hands out xs:ID values unique within one document, deterministically."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def take(self, value: str | None, prefix: str) -> str:
        base = xml_id(value, prefix)
        candidate, n = base, 1
        while candidate in self.used:
            n += 1
            candidate = f"{base}-{n}"
        self.used.add(candidate)
        return candidate


def _presence_element(document: PresenceDocument) -> etree._Element:
    """The ``<presence>`` element tree of *document*, valid against the schemas."""
    ids = _Ids()
    root = etree.Element(f"{{{PIDF_NS}}}presence", nsmap=NSMAP)
    root.set("entity", any_uri(document.entity))
    for tuple_ in document.tuples:
        _build_tuple(root, tuple_, ids.take(tuple_.id, "t"))
    for note in document.notes:
        note_element(root, f"{{{PIDF_NS}}}note", note)
    for person in document.persons:
        build_person(root, person, ids.take(person.id, "p"))
    for device in document.devices:
        build_device(root, device, ids.take(device.id, "d"))
    return root


def _build_tuple(parent: etree._Element, tuple_: PresenceTuple, element_id: str) -> None:
    element = etree.SubElement(parent, f"{{{PIDF_NS}}}tuple", id=element_id)
    status = etree.SubElement(element, f"{{{PIDF_NS}}}status")
    if tuple_.basic is not None:
        etree.SubElement(status, f"{{{PIDF_NS}}}basic").text = tuple_.basic
    for extension in tuple_.status_extensions:
        build_extension(status, extension)
    if tuple_.device_id:
        etree.SubElement(element, f"{{{DM_NS}}}deviceID").text = any_uri(tuple_.device_id)
    for extension in tuple_.extensions:
        build_extension(element, extension)
    if tuple_.contact:
        contact = etree.SubElement(element, f"{{{PIDF_NS}}}contact")
        contact.text = any_uri(tuple_.contact)
        if tuple_.priority is not None and 0 <= tuple_.priority <= 1:
            # abs(): -0.0 (read from "-0") is in range, but "-0" is no qvalue.
            contact.set("priority", f"{abs(tuple_.priority):.3f}".rstrip("0").rstrip("."))
    for note in tuple_.notes:
        note_element(element, f"{{{PIDF_NS}}}note", note)
    if tuple_.timestamp is not None:
        etree.SubElement(element, f"{{{PIDF_NS}}}timestamp").text = format_datetime(
            tuple_.timestamp)


def serialize_pidf(document: PresenceDocument) -> bytes:
    """*document* as PIDF bytes: UTF-8, XML declaration, deterministic, schema-valid."""
    return XML_DECLARATION + etree.tostring(_presence_element(document), encoding="UTF-8",
                                            pretty_print=True)
