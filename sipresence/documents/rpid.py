"""RFC 4480 rich presence (RPID): the person elements voice systems care about.

Modelled: ``activities`` (what baresip and pjsua show, and ``on-the-phone``, which the
agent derives from calls), ``mood``, ``place-type``, ``privacy``, ``sphere``,
``time-offset``, ``user-input`` and ``class``.  The other RPID elements (``place-is``,
``relationship``, ``service-class``, ``status-icon``) are rare and simple enough to
travel as validated extension elements (see :mod:`.datamodel`).

Reading is lenient: the draft namespaces are aliases of the RFC one (see :mod:`.xml`),
unknown values inside a known element are dropped, the pre-RFC ``<activity>busy</activity>``
text form is understood, and ``<unknown/>`` reads as "nothing known".  Writing follows the
schema exactly: empty values are written as self-closing elements with the ``rpid:``
prefix (``<rpid:on-the-phone/>``), the form baresip matches with a regular expression,
and "nothing known" is written as ``<rpid:unknown/>`` (``mood`` cannot be empty).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Literal, Self

from lxml import etree

from .xml import (
    LOCATION_TYPE_NS,
    RPID_NS,
    Note,
    clean_text,
    format_datetime,
    note_element,
    note_from,
    parse_datetime,
    qualified,
    text_of,
)

__all__ = [
    "ACTIVITIES",
    "MOODS",
    "Activities",
    "Mood",
    "PlaceType",
    "Privacy",
    "RpidClass",
    "RpidElement",
    "Sphere",
    "TimeOffset",
    "UserInput",
    "parse_rpid",
]

#: RFC 4480 section 3.2, in schema order.
ACTIVITIES = (
    "appointment", "away", "breakfast", "busy", "dinner", "holiday", "in-transit",
    "looking-for-work", "meal", "meeting", "on-the-phone", "performance",
    "permanent-absence", "playing", "presentation", "shopping", "sleeping", "spectator",
    "steering", "travel", "tv", "vacation", "working", "worship",
)

#: RFC 4480 section 3.6, in schema order.
MOODS = (
    "afraid", "amazed", "angry", "annoyed", "anxious", "ashamed", "bored", "brave", "calm",
    "cold", "confused", "contented", "cranky", "curious", "depressed", "disappointed",
    "disgusted", "distracted", "embarrassed", "excited", "flirtatious", "frustrated",
    "grumpy", "guilty", "happy", "hot", "humbled", "humiliated", "hungry", "hurt",
    "impressed", "in_awe", "in_love", "indignant", "interested", "invincible", "jealous",
    "lonely", "mean", "moody", "nervous", "neutral", "offended", "playful", "proud",
    "relieved", "remorseful", "restless", "sad", "sarcastic", "serious", "shocked", "shy",
    "sick", "sleepy", "stressed", "surprised", "thirsty", "worried",
)


def _rpid(local: str) -> str:
    return f"{{{RPID_NS}}}{local}"


def _set_interval(element: etree._Element, since: datetime | None,
                  until: datetime | None) -> None:
    if since is not None:
        element.set("from", format_datetime(since))
    if until is not None:
        element.set("until", format_datetime(until))


def _notes(element: etree._Element) -> tuple[Note, ...]:
    notes = (note_from(child) for child in element
             if qualified(child) == (RPID_NS, "note"))
    return tuple(note for note in notes if note is not None)


@dataclass(frozen=True)
class _Enumerated:
    """An element whose content is a set of empty value elements plus ``other`` texts.

    ``values`` keeps the publisher's order: pjsua reads only the first activity.
    """

    values: tuple[str, ...] = ()
    other: tuple[Note, ...] = ()
    notes: tuple[Note, ...] = ()
    since: datetime | None = None
    until: datetime | None = None

    NAME: ClassVar[str]
    VALUES: ClassVar[tuple[str, ...]]

    @classmethod
    def parse(cls, element: etree._Element) -> Self:
        values: list[str] = []
        other: list[Note] = []
        for child in element:
            namespace, local = qualified(child)
            if namespace != RPID_NS:
                continue
            if local == "activity":  # draft form: <activity>busy</activity>
                local = text_of(child).lower()
                if local not in cls.VALUES:
                    note = note_from(child)
                    other.extend([note] if note else [])
                    continue
            if local in cls.VALUES and local not in values:
                values.append(local)
            elif local == "other":
                note = note_from(child)
                other.extend([note] if note else [])
        return cls(tuple(values), tuple(other), _notes(element),
                   parse_datetime(element.get("from")), parse_datetime(element.get("until")))

    def build(self, parent: etree._Element) -> etree._Element:
        element = etree.SubElement(parent, _rpid(self.NAME))
        _set_interval(element, self.since, self.until)
        for note in self.notes:
            note_element(element, _rpid("note"), note)
        for value in self.values:
            etree.SubElement(element, _rpid(value))
        for note in self.other:
            note_element(element, _rpid("other"), note)
        if not self.values and not self.other:
            etree.SubElement(element, _rpid("unknown"))  # mood requires it
        return element


@dataclass(frozen=True)
class Activities(_Enumerated):
    """``<rpid:activities>``: no values means unknown (baresip sends it empty)."""

    NAME: ClassVar[str] = "activities"
    VALUES: ClassVar[tuple[str, ...]] = ACTIVITIES


@dataclass(frozen=True)
class Mood(_Enumerated):
    """``<rpid:mood>``: no values means unknown."""

    NAME: ClassVar[str] = "mood"
    VALUES: ClassVar[tuple[str, ...]] = MOODS


@dataclass(frozen=True)
class PlaceType:
    """``<rpid:place-type>``: RFC 4589 location types (``home``, ``office``...) or a text.

    The schema demands one or the other; with neither the element is not written.
    Draft documents put the types in the RPID namespace; they are read as RFC 4589 types.
    """

    types: tuple[str, ...] = ()
    other: Note | None = None
    notes: tuple[Note, ...] = ()
    since: datetime | None = None
    until: datetime | None = None

    NAME: ClassVar[str] = "place-type"

    @classmethod
    def parse(cls, element: etree._Element) -> PlaceType:
        types: list[str] = []
        other = None
        for child in element:
            namespace, local = qualified(child)
            if namespace == RPID_NS and local == "other":
                other = note_from(child)
            elif namespace in (LOCATION_TYPE_NS, RPID_NS) and local != "note":
                if local not in types:
                    types.append(local)
        return cls(tuple(types), None if types else other, _notes(element),
                   parse_datetime(element.get("from")), parse_datetime(element.get("until")))

    def build(self, parent: etree._Element) -> etree._Element | None:
        if not self.types and self.other is None:
            return None
        element = etree.SubElement(parent, _rpid(self.NAME))
        _set_interval(element, self.since, self.until)
        for note in self.notes:
            note_element(element, _rpid("note"), note)
        for kind in self.types:
            etree.SubElement(element, f"{{{LOCATION_TYPE_NS}}}{kind}",
                             nsmap={"lt": LOCATION_TYPE_NS})
        if not self.types and self.other is not None:
            note_element(element, _rpid("other"), self.other)
        return element


PrivacyKind = Literal["audio", "text", "video"]
_PRIVACY_KINDS: tuple[PrivacyKind, ...] = ("audio", "text", "video")


@dataclass(frozen=True)
class Privacy:
    """``<rpid:privacy>``: which media nobody nearby can overhear; none means unknown."""

    kinds: tuple[PrivacyKind, ...] = ()
    notes: tuple[Note, ...] = ()
    since: datetime | None = None
    until: datetime | None = None

    NAME: ClassVar[str] = "privacy"

    @classmethod
    def parse(cls, element: etree._Element) -> Privacy:
        present = {qualified(child) for child in element}
        kinds = tuple(k for k in _PRIVACY_KINDS if (RPID_NS, k) in present)
        return cls(kinds, _notes(element), parse_datetime(element.get("from")),
                   parse_datetime(element.get("until")))

    def build(self, parent: etree._Element) -> etree._Element:
        element = etree.SubElement(parent, _rpid(self.NAME))
        _set_interval(element, self.since, self.until)
        for note in self.notes:
            note_element(element, _rpid("note"), note)
        names: list[str] = [kind for kind in _PRIVACY_KINDS if kind in self.kinds]
        for name in names or ["unknown"]:
            etree.SubElement(element, _rpid(name))
        return element


@dataclass(frozen=True)
class Sphere:
    """``<rpid:sphere>``: ``home``, ``work`` or None (unknown).

    Drafts wrote the value as text (``<sphere>work</sphere>``); that is read too.
    """

    value: Literal["home", "work"] | None = None
    since: datetime | None = None
    until: datetime | None = None

    NAME: ClassVar[str] = "sphere"

    @classmethod
    def parse(cls, element: etree._Element) -> Sphere:
        names = {local for namespace, local in map(qualified, element) if namespace == RPID_NS}
        names.add(text_of(element).lower())
        value: Literal["home", "work"] | None = (
            "work" if "work" in names else "home" if "home" in names else None)
        return cls(value, parse_datetime(element.get("from")),
                   parse_datetime(element.get("until")))

    def build(self, parent: etree._Element) -> etree._Element:
        element = etree.SubElement(parent, _rpid(self.NAME))
        _set_interval(element, self.since, self.until)
        etree.SubElement(element, _rpid(self.value or "unknown"))
        return element


@dataclass(frozen=True)
class TimeOffset:
    """``<rpid:time-offset>``: minutes from UTC where the person is."""

    minutes: int
    description: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    NAME: ClassVar[str] = "time-offset"

    @classmethod
    def parse(cls, element: etree._Element) -> TimeOffset | None:
        try:
            minutes = int(text_of(element))
        except ValueError:
            return None
        return cls(minutes, (element.get("description") or "").strip() or None,
                   parse_datetime(element.get("from")), parse_datetime(element.get("until")))

    def build(self, parent: etree._Element) -> etree._Element:
        element = etree.SubElement(parent, _rpid(self.NAME))
        _set_interval(element, self.since, self.until)
        if self.description:
            element.set("description", clean_text(self.description))
        element.text = str(self.minutes)
        return element


@dataclass(frozen=True)
class UserInput:
    """``<rpid:user-input>``: whether someone touched the device lately."""

    state: Literal["active", "idle"]
    idle_threshold: int | None = None
    last_input: datetime | None = None

    NAME: ClassVar[str] = "user-input"

    @classmethod
    def parse(cls, element: etree._Element) -> UserInput | None:
        state = text_of(element).lower()
        if state not in ("active", "idle"):
            return None
        threshold = (element.get("idle-threshold") or "").strip()
        return cls("active" if state == "active" else "idle",
                   int(threshold) if threshold.isdigit() and int(threshold) > 0 else None,
                   parse_datetime(element.get("last-input")))

    def build(self, parent: etree._Element) -> etree._Element:
        element = etree.SubElement(parent, _rpid(self.NAME))
        if self.idle_threshold is not None and self.idle_threshold > 0:
            element.set("idle-threshold", str(self.idle_threshold))
        if self.last_input is not None:
            element.set("last-input", format_datetime(self.last_input))
        element.text = self.state
        return element


@dataclass(frozen=True)
class RpidClass:
    """``<rpid:class>``: a token the publisher uses to group tuples, persons or devices."""

    value: str

    NAME: ClassVar[str] = "class"

    @classmethod
    def parse(cls, element: etree._Element) -> RpidClass | None:
        value = " ".join(text_of(element).split())
        return cls(value) if value else None

    def build(self, parent: etree._Element) -> etree._Element:
        element = etree.SubElement(parent, _rpid(self.NAME))
        element.text = " ".join(clean_text(self.value).split())
        return element


RpidElement = Activities | Mood | PlaceType | Privacy | Sphere | TimeOffset | UserInput | RpidClass

_PARSERS: dict[str, type[RpidElement]] = {
    kind.NAME: kind
    for kind in (Activities, Mood, PlaceType, Privacy, Sphere, TimeOffset, UserInput, RpidClass)
}


def parse_rpid(element: etree._Element) -> RpidElement | None:
    """The model of an RPID element, or None when it is not modelled or holds nothing usable."""
    namespace, local = qualified(element)
    kind = _PARSERS.get(local) if namespace == RPID_NS else None
    return kind.parse(element) if kind is not None else None
