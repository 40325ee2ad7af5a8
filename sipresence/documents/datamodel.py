"""RFC 4479 data model: ``dm:person``, ``dm:device``, ``dm:deviceID``, and extension points.

A person carries the RPID elements (modelled in :mod:`.rpid`), notes, a timestamp and
any other extension element that survives :func:`keep_extensions`.  A device carries its
``deviceID`` (a URN tuples point to), notes, a timestamp and extensions such as
``caps:devcaps``.

What is kept of the extension elements a publisher sends (tuple, status, person and
device level) is decided by the schema, not by a list: an element is kept when it is in
a namespace (no-namespace elements such as Asterisk's ``<digium_presence>`` or Cisco's
``<user-input>`` are not allowed by ``##other``), is not in the PIDF or data-model
namespace (those are not extensions), and validates in its place against the packaged
schemas (a malformed ``caps:servcaps`` or an RPID element with a bad value is dropped).
Elements of unknown vendor namespaces pass: the schemas process them laxly and watchers
ignore what they do not know.  So whatever is kept can be written back validly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from typing import Literal

from lxml import etree

from .rpid import (
    Activities,
    Mood,
    PlaceType,
    Privacy,
    RpidClass,
    RpidElement,
    Sphere,
    TimeOffset,
    UserInput,
    parse_rpid,
)
from .xml import (
    CAPS_NS,
    CIPID_NS,
    DM_NS,
    PIDF_NS,
    RPID_NS,
    Extension,
    Note,
    any_uri,
    build_extension,
    extension_from,
    format_datetime,
    note_element,
    note_from,
    parse_datetime,
    qualified,
    schema,
    split_tag,
    text_of,
)

__all__ = [
    "Device",
    "Person",
    "build_device",
    "build_person",
    "keep_extensions",
    "parse_device",
    "parse_person",
]

Place = Literal["tuple", "status", "person", "device"]

PERSON_NOTE_NAMESPACES = (DM_NS, PIDF_NS)

#: Presence-level elements that RFC 4479 says belong to the person (Cisco CUP puts a
#: CIPID ``display-name`` directly under ``<presence>``; old drafts did the same with RPID).
PERSON_NAMESPACES = (RPID_NS, CIPID_NS)


@dataclass(frozen=True)
class Person:
    """``dm:person``: the human behind the services, with RPID attributes.

    ``id`` is None when the publisher sent none (Asterisk, Cisco); the serializer makes
    one.  ``extensions`` holds the other kept elements (CIPID ``display-name``, RPID
    ``status-icon``, vendor elements).
    """

    id: str | None = None
    activities: Activities | None = None
    mood: Mood | None = None
    place_type: PlaceType | None = None
    privacy: Privacy | None = None
    sphere: Sphere | None = None
    time_offset: TimeOffset | None = None
    user_input: UserInput | None = None
    rpid_class: RpidClass | None = None
    extensions: tuple[Extension, ...] = ()
    notes: tuple[Note, ...] = ()
    timestamp: datetime | None = None

    def rpid_elements(self) -> tuple[RpidElement, ...]:
        """The modelled RPID elements present, in writing order."""
        candidates = (self.activities, self.mood, self.place_type, self.privacy, self.sphere,
                      self.time_offset, self.user_input, self.rpid_class)
        return tuple(element for element in candidates if element is not None)


#: Person field for each modelled RPID element name.
RPID_FIELDS = {
    "activities": "activities", "mood": "mood", "place-type": "place_type",
    "privacy": "privacy", "sphere": "sphere", "time-offset": "time_offset",
    "user-input": "user_input", "class": "rpid_class",
}


@dataclass(frozen=True)
class Device:
    """``dm:device``: a piece of hardware identified by ``device_id`` (a URN)."""

    device_id: str
    id: str | None = None
    extensions: tuple[Extension, ...] = ()
    notes: tuple[Note, ...] = ()
    timestamp: datetime | None = None


def _in_place(place: Place, extension: Extension) -> etree._Element:
    """A minimal document with *extension* at *place*, for validation."""
    root = etree.Element(f"{{{PIDF_NS}}}presence", entity="sip:check@invalid",
                         nsmap={None: PIDF_NS, "dm": DM_NS})
    if place in ("tuple", "status"):
        tuple_ = etree.SubElement(root, f"{{{PIDF_NS}}}tuple", id="t")
        status = etree.SubElement(tuple_, f"{{{PIDF_NS}}}status")
        build_extension(status if place == "status" else tuple_, extension)
    elif place == "person":
        build_extension(etree.SubElement(root, f"{{{DM_NS}}}person", id="p"), extension)
    else:
        device = etree.SubElement(root, f"{{{DM_NS}}}device", id="d")
        build_extension(device, extension)
        etree.SubElement(device, f"{{{DM_NS}}}deviceID").text = "urn:x-check:0"
    return root


#: RFC 5196 servcaps children, in schema order.
_SERVCAPS_ORDER = {name: rank for rank, name in enumerate((
    "actor", "application", "audio", "automata", "class", "control", "data", "description",
    "duplex", "event-packages", "extensions", "isfocus", "message", "methods", "languages",
    "priority", "schemes", "text", "type", "video",
))}


def _repaired(extension: Extension) -> Extension:
    """Put servcaps children in schema order: Cisco CUP lists ``type`` before ``text``."""
    if extension.tag != f"{{{CAPS_NS}}}servcaps":
        return extension
    children = sorted(extension.children, key=lambda child: _SERVCAPS_ORDER.get(
        split_tag(child.tag)[1], len(_SERVCAPS_ORDER)))
    return replace(extension, children=tuple(children))


@lru_cache(maxsize=4096)
def _fits(place: Place, extension: Extension) -> bool:
    if extension.namespace in ("", PIDF_NS, DM_NS):
        return False
    try:
        document = _in_place(place, extension)
    except ValueError:
        # libxml2 reads a namespace that is no URI (``urn:x]y``) with a warning, and
        # lxml refuses to write it: what cannot be written back is not kept.
        return False
    return bool(schema().validate(document))


def keep_extensions(elements: Iterable[etree._Element], place: Place,
                    default_ns: str = "") -> tuple[Extension, ...]:
    """The elements of *elements* that may be written back at *place* (see module doc)."""
    extensions = (_repaired(extension_from(element, default_ns)) for element in elements
                  if isinstance(element.tag, str))
    return tuple(ext for ext in extensions if _fits(place, ext))


def parse_person(element: etree._Element, default_ns: str = "") -> Person:
    """Read a person element leniently.

    Asterisk chan_sip wraps the RPID elements in a PIDF ``<status>`` inside the person;
    its children are read as the person's.  Notes are accepted in the PIDF namespace too.
    A modelled element that appears twice keeps its first occurrence.
    """
    fields: dict[str, RpidElement] = {}
    others: list[etree._Element] = []
    notes: list[Note] = []
    timestamp = None
    pending = list(element)
    while pending:
        child = pending.pop(0)
        namespace, local = qualified(child, default_ns)
        if (namespace, local) == (PIDF_NS, "status"):
            pending[:0] = list(child)
        elif namespace in PERSON_NOTE_NAMESPACES and local == "note":
            note = note_from(child)
            notes.extend([note] if note else [])
        elif namespace in PERSON_NOTE_NAMESPACES and local == "timestamp":
            timestamp = timestamp or parse_datetime(child.text)
        elif namespace == RPID_NS and local in RPID_FIELDS:
            parsed = parse_rpid(child)
            if parsed is not None:
                fields.setdefault(RPID_FIELDS[local], parsed)
        else:
            others.append(child)
    return Person(id=element.get("id"), extensions=keep_extensions(others, "person", default_ns),
                  notes=tuple(notes), timestamp=timestamp, **fields)  # type: ignore[arg-type]


def build_person(parent: etree._Element, person: Person, element_id: str) -> etree._Element:
    """Append *person* to *parent* with id *element_id*, in schema order."""
    element = etree.SubElement(parent, f"{{{DM_NS}}}person", id=element_id)
    for rpid in person.rpid_elements():
        rpid.build(element)
    for extension in person.extensions:
        build_extension(element, extension)
    for note in person.notes:
        note_element(element, f"{{{DM_NS}}}note", note)
    if person.timestamp is not None:
        etree.SubElement(element, f"{{{DM_NS}}}timestamp").text = format_datetime(
            person.timestamp)
    return element


def parse_device(element: etree._Element, default_ns: str = "") -> Device | None:
    """Read a device element; one without a ``deviceID`` is None (nothing can refer to it)."""
    device_id = None
    notes: list[Note] = []
    timestamp = None
    others = []
    for child in element:
        namespace, local = qualified(child, default_ns)
        if namespace == DM_NS and local == "deviceID":
            device_id = device_id or text_of(child)
        elif namespace == DM_NS and local == "note":
            note = note_from(child)
            notes.extend([note] if note else [])
        elif namespace == DM_NS and local == "timestamp":
            timestamp = timestamp or parse_datetime(child.text)
        else:
            others.append(child)
    if not device_id:
        return None
    return Device(device_id, element.get("id"), keep_extensions(others, "device", default_ns),
                  tuple(notes), timestamp)


def build_device(parent: etree._Element, device: Device, element_id: str) -> etree._Element:
    """Append *device* to *parent* with id *element_id*, in schema order."""
    element = etree.SubElement(parent, f"{{{DM_NS}}}device", id=element_id)
    for extension in device.extensions:
        build_extension(element, extension)
    etree.SubElement(element, f"{{{DM_NS}}}deviceID").text = any_uri(device.device_id)
    for note in device.notes:
        note_element(element, f"{{{DM_NS}}}note", note)
    if device.timestamp is not None:
        etree.SubElement(element, f"{{{DM_NS}}}timestamp").text = format_datetime(
            device.timestamp)
    return element


