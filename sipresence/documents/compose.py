"""RFC 4479 composition: one presence document per presentity from all its live sources.

A *source* is whatever currently says something about the presentity: a PUBLISHed
document (one per entity tag, so one per device), a registration, the API, the IM
bridge.  The presence core passes the live ones; a source that expired is simply not
passed, and everything it contributed disappears with it.

The rules, and why:

* **Every tuple of every source is kept.**  Tuples are services (RFC 4479 section 3.1):
  two phones are two ways to reach the person, and dropping one because another source
  is newer is the "last PUBLISH wins" bug users complain about.  Ids are made unique by
  suffixing a digest of the source id, so they are stable for a source whatever else
  changes.  Open tuples come first, then tuples without ``basic``, then closed ones,
  newest source first: pjsua and baresip read only the first tuple.
* **Devices are unioned by deviceID**, the newest source's description winning.
* **One person, merged element by element.**  For each person element (activities,
  mood, place-type, privacy, sphere, time-offset, user-input, class, each other
  extension element by name, the note of each ``xml:lang``, the timestamp) the newest
  source that has it wins.  So a desk phone saying "busy" is not undone by a softphone
  that publishes no activities at all, yet a newer explicit ``<rpid:activities/>`` does
  replace an older "away".
* **On the phone.**  When the core sees a confirmed dialog it passes ``on_the_phone``:
  the ``on-the-phone`` activity is added to the merged activities (as Asterisk does for
  INUSE), ``basic`` is left alone (an open phone line is still open; Asterisk and
  Kamailio users expect "open, on the phone", not "closed"), and the person's note says
  so: "On the phone", or "On the phone (Weekly sync)" when a source gave a note without
  a language, which stays in brackets.  pjsua shows the first note as the status text
  and its RPID reader does not know ``on-the-phone``, so a note that kept saying "In the
  office" would hide the call from every pjsua watcher.  Notes in other languages
  follow unchanged.  Any ``from``/``until`` of the published activities is dropped
  then, since the merged set no longer matches it.
* **Presence-level notes** are merged per ``xml:lang``, newest wins.
* **Nobody there.**  With no tuples at all the result has one tuple ``closed`` (``open``
  if the person is on the phone): without a tuple pjsua shows an unknown state and
  baresip "Offline" only by accident of its regex; with it both show Offline, which is
  the truth, and the API reads ``closed``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .datamodel import RPID_FIELDS, Device, Person
from .pidf import Basic, PresenceDocument, PresenceTuple
from .rpid import Activities
from .xml import Extension, Note, digest, xml_id

__all__ = ["ON_THE_PHONE_NOTE", "Source", "Summary", "compose", "summary"]

ON_THE_PHONE_NOTE = "On the phone"


@dataclass(frozen=True)
class Source:
    """One live contribution: a stable id (``publish:<device>``, ``registration``,
    ``line``...), its document and when it was last updated (Unix time; newer wins).

    ``on_the_phone``: this source says the person is on a call (the phone line).
    ``device`` names the device a source speaks for (its address); a ``standin``
    speaks for it only while the device says nothing itself: a registration's open
    tuple yields to the same phone's own PUBLISH (a phone that registers and
    publishes "offline" is offline).  The presence core applies that rule
    (``presence/presentity.py``) before composing.
    """

    id: str
    document: PresenceDocument
    updated: float
    on_the_phone: bool = False
    device: str | None = None
    standin: bool = False


def compose(entity: str, sources: Iterable[Source], *,
            on_the_phone: bool = False) -> PresenceDocument:
    """The composed document of *entity* (see the module documentation for the rules);
    on the phone when any source says so, or *on_the_phone*."""
    newest_first = sorted(sources, key=lambda s: (s.updated, s.id), reverse=True)
    on_the_phone = on_the_phone or any(s.on_the_phone for s in newest_first)
    tuples = _tuples(newest_first)
    if not tuples:
        tuples = (PresenceTuple(id=f"t{digest(entity, 8)}",
                                basic="open" if on_the_phone else "closed"),)
    person = _person(entity, newest_first, on_the_phone)
    return PresenceDocument(
        entity=entity,
        tuples=tuples,
        notes=_notes_by_language(s.document.notes for s in newest_first),
        persons=(person,) if person is not None else (),
        devices=_devices(newest_first),
    )


_BASIC_RANK = {"open": 0, None: 1, "closed": 2}


def _tuples(sources: Sequence[Source]) -> tuple[PresenceTuple, ...]:
    tuples = [
        replace(tuple_, id=f"{xml_id(tuple_.id or f't{index}', 't')}-{digest(source.id)}")
        for source in sources
        for index, tuple_ in enumerate(source.document.tuples)
    ]
    tuples.sort(key=lambda t: _BASIC_RANK[t.basic])  # stable: source order kept within
    return tuple(tuples)


def _devices(sources: Sequence[Source]) -> tuple[Device, ...]:
    devices: dict[str, Device] = {}
    for source in sources:
        for device in source.document.devices:
            devices.setdefault(device.device_id,
                               replace(device, id=f"d{digest(device.device_id, 8)}"))
    return tuple(devices.values())


def _notes_by_language(groups: Iterable[Iterable[Note]]) -> tuple[Note, ...]:
    """The first note of each language, taking *groups* in order (newest first)."""
    notes: dict[str, Note] = {}
    for group in groups:
        for note in group:
            notes.setdefault((note.lang or "").lower(), note)
    return tuple(notes.values())


def _person(entity: str, sources: Sequence[Source], on_the_phone: bool) -> Person | None:
    persons = [person for source in sources for person in source.document.persons]
    if not persons and not on_the_phone:
        return None
    fields: dict[str, Any] = {}
    for name in RPID_FIELDS.values():
        fields[name] = next((getattr(p, name) for p in persons if getattr(p, name)), None)
    extensions: dict[str, Extension] = {}
    for person in persons:
        for extension in person.extensions:
            extensions.setdefault(extension.tag, extension)
    notes = _notes_by_language(p.notes for p in persons)
    if on_the_phone:
        activities: Activities = fields["activities"] or Activities()
        if "on-the-phone" not in activities.values:
            values = (*activities.values, "on-the-phone")
            fields["activities"] = replace(activities, values=values, since=None, until=None)
        notes = _on_the_phone_notes(notes)
    return Person(
        id=f"p{digest(entity, 8)}",
        extensions=tuple(extensions.values()),
        notes=notes,
        timestamp=next((p.timestamp for p in persons if p.timestamp is not None), None),
        **fields,
    )


def _on_the_phone_notes(notes: tuple[Note, ...]) -> tuple[Note, ...]:
    """The person's notes during a call: first the one that says so (module docs)."""
    own = next((note for note in notes if not note.lang), None)
    if own is None:
        return (Note(ON_THE_PHONE_NOTE), *notes)
    text = own.text
    if not text.startswith(ON_THE_PHONE_NOTE):  # Asterisk publishes it itself (INUSE)
        text = f"{ON_THE_PHONE_NOTE} ({text})"
    return (Note(text), *(note for note in notes if note is not own))


@dataclass(frozen=True)
class Summary:
    """What the HTTP API and call routing need to know, without XML."""

    basic: Basic
    activities: tuple[str, ...]
    note: str | None
    on_the_phone: bool


def _preferred(notes: Sequence[Note]) -> str | None:
    """The note without a language, else an English one, else the first."""
    for wanted in (lambda lang: not lang, lambda lang: lang.lower().split("-")[0] == "en",
                   lambda lang: True):
        for note in notes:
            if wanted(note.lang or ""):
                return note.text
    return None


def summary(document: PresenceDocument) -> Summary:
    """Sum *document* up: ``open`` if any tuple is open, the persons' activities, the
    note a person would read first (person, then presence, then tuple notes)."""
    activities: list[str] = []
    for person in document.persons:
        if person.activities is not None:
            activities.extend(a for a in person.activities.values if a not in activities)
    open_first = sorted(document.tuples, key=lambda t: _BASIC_RANK[t.basic])
    note = (_preferred([n for p in document.persons for n in p.notes])
            or _preferred(document.notes)
            or _preferred([n for t in open_first for n in t.notes]))
    return Summary(
        basic="open" if any(t.basic == "open" for t in document.tuples) else "closed",
        activities=tuple(activities),
        note=note,
        on_the_phone="on-the-phone" in activities,
    )
