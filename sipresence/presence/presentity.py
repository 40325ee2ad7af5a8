"""Presentities: one composed presence document per address of record.

The composed document is rebuilt only when one of its sources changes, and each
serialisation (PIDF, XPIDF) is made once per version: a change fanned out to 10,000
watchers composes once and serialises once per format (DESIGN.md).  Nothing is
composed for a presentity nobody asks about.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING

from ..documents.compose import Source, Summary, compose, summary
from ..documents.pidf import PresenceDocument, PresenceTuple, serialize_pidf
from ..documents.xml import digest, xml_id
from ..documents.xpidf import parse_presence, serialize_xpidf
from .packages import CPIM_PIDF, PIDF, WATCHERINFO, XPIDF, EventPackage
from .publications import EventStateCompositor
from .registrar import Binding, Registrar

if TYPE_CHECKING:
    from .dialogs import Lines

__all__ = ["Presentity", "Presentities", "presence_package", "watcherinfo_package",
           "PRESENCE_CLOCK"]

# The store's key for the presentity version clock, and how far ahead it is reserved.
PRESENCE_CLOCK = "presence_clock"
CLOCK_BLOCK = 1000

# chan_sip sends XPIDF to subscribers that accept only cpim-pidf (Polycom phones ask
# for it and read XPIDF); the documents layer found the same, so cpim-pidf gets XPIDF.
SERIALIZERS: dict[str, Callable[[PresenceDocument], bytes]] = {
    PIDF: serialize_pidf, XPIDF: serialize_xpidf, CPIM_PIDF: serialize_xpidf}


def _parse_presence(body: bytes, content_type: str) -> PresenceDocument:
    # The label is not trusted: chan_sip labels XPIDF as cpim-pidf (INTEROP.md).
    return parse_presence(body)


def presence_package(min_expires: int, max_expires: int) -> EventPackage:
    return EventPackage("presence", notify_types=(PIDF, XPIDF, CPIM_PIDF),
                        publish_types=(PIDF, XPIDF, CPIM_PIDF), parse=_parse_presence,
                        min_expires=min_expires, max_expires=max_expires)


def watcherinfo_package(min_expires: int, max_expires: int) -> EventPackage:
    return EventPackage("presence.winfo", notify_types=(WATCHERINFO,),
                        min_expires=min_expires, max_expires=max_expires)


class Presentity:
    """The composed state of one presentity at one version."""

    __slots__ = ("aor", "version", "document", "_bodies", "_summary")

    def __init__(self, aor: str, version: int, document: PresenceDocument) -> None:
        self.aor = aor
        self.version = version
        self.document = document
        self._bodies: dict[str, bytes] = {}
        self._summary: Summary | None = None

    def body(self, content_type: str) -> bytes:
        """The document in *content_type*, serialised at most once per version."""
        body = self._bodies.get(content_type)
        if body is None:
            body = self._bodies[content_type] = SERIALIZERS[content_type](self.document)
        return body

    @property
    def summary(self) -> Summary:
        if self._summary is None:
            self._summary = summary(self.document)
        return self._summary


def registration_source(aor: str, bindings: list[Binding]) -> Source:
    """A registered device is a way to reach the person: one open tuple per binding,
    its contact the registered URI and its priority the binding's q (RFC 4479)."""
    tuples = tuple(
        PresenceTuple(id=xml_id(f"reg-{digest(b.key)}", "t"), basic="open", contact=b.uri,
                      priority=b.q)
        for b in bindings)
    return Source("registration", PresenceDocument(aor, tuples),
                  max(b.updated_at for b in bindings))


class Presentities:
    """Composes presentities from their live sources, lazily and once per change."""

    def __init__(self, publications: EventStateCompositor,
                 registrar: Registrar | None = None, lines: Lines | None = None) -> None:
        self.publications = publications
        self.registrar = registrar
        self.lines = lines
        # Versions come from one clock for all presentities, so that none goes back:
        # not when a presentity's last source goes and it is composed again later,
        # not after a restart (``restore_clock``).  A presentity not changed since
        # the start has the clock's value at the start; one with no source left has
        # the clock's value when the last presentity lost its last source (at or
        # above its own last version, and no entry kept for it).
        self.clock = 0
        self._base = 0
        self._floor = 0
        self._reserved = 0  # how far the store vouches for the clock
        self._versions: dict[str, int] = {}
        self._cache: dict[str, Presentity] = {}

    def changed(self, aor: str) -> None:
        """A source of *aor* changed: the next read composes a new version.

        A presentity left with no source at all loses its entry (it reads as
        :func:`nobody`, at the floor version): the source that brings it back is a
        change too and takes a fresh clock value, so the table holds the live
        presentities only (each new user who published once and left kept one for
        the life of the process: the soak's leak)."""
        self.clock += 1
        self._cache.pop(aor, None)
        if self._has_sources(aor):
            self._versions[aor] = self.clock
        else:
            self._versions.pop(aor, None)
            self._floor = self.clock

    def settle(self, aor: str) -> None:
        """A source of *aor* went without changing what it reads as (the dialog
        publication of a call already over, removed): once nothing is left, its entry
        goes as in :meth:`changed`."""
        if aor in self._versions and not self._has_sources(aor):
            del self._versions[aor]
            self._floor = self.clock

    def _has_sources(self, aor: str) -> bool:
        """Whether anything could make *aor* more than nobody: a presence or dialog
        publication, or a binding (stale dialogs count: they are still kept)."""
        return bool(self.publications.for_resource(aor, "presence")
                    or (self.registrar is not None and self.registrar.bindings(aor))
                    or (self.lines is not None and self.lines.published(aor)))

    def version(self, aor: str) -> int:
        version = self._versions.get(aor)
        if version is not None:
            return version
        return self._base if self._has_sources(aor) else self._floor

    def reserve_clock(self) -> int | None:
        """The clock value to store when the clock passed what the store vouches for:
        reserved :data:`CLOCK_BLOCK` ahead, as subscriptions' counters are (one row per
        block, and after any restart versions go on above every one handed out)."""
        if self.clock <= self._reserved:
            return None
        self._reserved = self.clock + CLOCK_BLOCK
        return self._reserved

    def restore_clock(self, value: int) -> None:
        """Go on above every version handed out before a restart (*value* is what the
        store vouches for: at or above the last one)."""
        self.clock = self._base = self._floor = self._reserved = max(self.clock, value)

    def sources(self, aor: str) -> list[Source]:
        """The live sources of *aor*: its publications (one per device, the HTTP API's
        among them) and its registrations."""
        published = self.publications.for_resource(aor, "presence")
        sources = [Source(f"publish:{p.publisher}", p.document, p.updated_at)
                   for p in published]
        # A device that publishes speaks for itself: its binding adds no open
        # tuple (a phone that registers and publishes "offline" is offline).
        publishers = {p.publisher for p in published}
        bindings = [b for b in self.registrar.bindings(aor) if b.source not in publishers
                    ] if self.registrar is not None else []
        if bindings:
            sources.append(registration_source(aor, bindings))
        return sources

    def get(self, aor: str, now: float) -> Presentity:
        presentity = self._cache.get(aor)
        if presentity is None:
            sources = self.sources(aor)
            on_the_phone = self.lines is not None and self.lines.on_the_phone(aor, now)
            if not sources and not on_the_phone:
                return nobody(aor)
            presentity = Presentity(aor, self.version(aor),
                                    compose(aor, sources, on_the_phone=on_the_phone))
            self._cache[aor] = presentity
        return presentity


@lru_cache(maxsize=4096)
def nobody(aor: str) -> Presentity:
    """A presentity with no source at all: closed, and the same every time.  Watchers
    of people not (yet) on the system are common (a BLF key per colleague), and each of
    their NOTIFYs would otherwise compose and serialise the same document again."""
    return Presentity(aor, 0, compose(aor, []))
