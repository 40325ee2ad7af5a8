"""Presentities: one composed presence document per address of record.

The composed document is rebuilt only when one of its sources changes, and each
serialisation (PIDF, XPIDF) is made once per version: a change fanned out to 10,000
watchers composes once and serialises once per format (DESIGN.md).  Nothing is
composed for a presentity nobody asks about.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from ..documents.compose import Source, Summary, compose, summary
from ..documents.pidf import PresenceDocument, PresenceTuple, serialize_pidf
from ..documents.xml import digest, xml_id
from ..documents.xpidf import parse_presence, serialize_xpidf
from .packages import CPIM_PIDF, PIDF, XPIDF, EventPackage
from .policy import Authorization
from .publications import EventStateCompositor
from .registrar import Binding
from .subscription import Subscription
from .watchers import WatcherInformation

__all__ = ["Presentity", "Presentities", "PresencePackage", "registration_sources",
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


class PresencePackage(EventPackage):
    """RFC 3856: each device's PUBLISH is one source of the composed presence, and a
    watcher gets the composed document in the format it accepts, as the person's
    rules allow; its watchers are the owner's watcher information."""

    def __init__(self, min_expires: int, max_expires: int, presentities: Presentities,
                 publications: EventStateCompositor, authorization: Authorization,
                 watcherinfo: WatcherInformation) -> None:
        super().__init__("presence", notify_types=(PIDF, XPIDF, CPIM_PIDF),
                         publish_types=(PIDF, XPIDF, CPIM_PIDF), parse=_parse_presence,
                         min_expires=min_expires, max_expires=max_expires,
                         source_prefix="publish:")
        self.presentities = presentities
        self.publications = publications
        self.authorization = authorization
        self.watcherinfo = watcherinfo

    def authorize(self, watcher: str, resource: str) -> str:
        return self.authorization.sub_state(watcher, resource)

    def render(self, subscription: Subscription, now: float) -> tuple[str, bytes]:
        presentity = self.presentities.get(subscription.resource)
        return subscription.content_type, presentity.body(subscription.content_type)

    def sources(self, resource: str, now: float) -> dict[str, Source]:
        """One source per device: a device that publishes speaks for itself."""
        sources: dict[str, Source] = {}
        for publication in self.publications.for_resource(resource, self.name):
            name = f"publish:{publication.publisher}"
            key = name
            while key in sources:  # two publications of one device (rare): both count
                key += "+"
            sources[key] = Source(name, publication.document, publication.updated_at,
                                  device=publication.publisher)
        return sources

    def watcher_event(self, subscription: Subscription, event: str) -> None:
        self.watcherinfo.watcher_changed(subscription, event)


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


def registration_sources(bindings: list[Binding]) -> dict[str, Source]:
    """A registered device is a way to reach the person: an open tuple of its own, its
    contact the registered URI and its priority the binding's q (RFC 4479); one
    source per binding, standing in for its device until that device publishes."""
    return {
        f"registration:{b.key}": Source(
            "registration", PresenceDocument(b.aor, (PresenceTuple(
                id=xml_id(f"reg-{digest(b.key)}", "t"), basic="open", contact=b.uri,
                priority=b.q),)), b.updated_at, device=b.source, standin=True)
        for b in bindings}


class Presentities:
    """The presence core's one door for every source, and the composition of each
    presentity from its live sources, lazily and once per change.

    Whatever says something about a person comes in through :meth:`set_source` and
    goes with :meth:`clear_source`: a device's PUBLISH, a registration, the phone
    line, the HTTP API, and the bridges.  A new kind of source is a new caller, not a
    new branch here; the owner of each source keeps its lifetime (the compositor
    expires publications, the registrar bindings) and clears it when it ends.
    """

    def __init__(self) -> None:
        # The live sources of each presentity, by the key their owner gave them.
        self._sources: dict[str, dict[str, Source]] = {}
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

    # -- the door ------------------------------------------------------------------
    def set_source(self, aor: str, key: str, source: Source) -> bool:
        """Add or replace the source *key* of *aor*; True when that changed anything
        (a source set again as it was is no change: no new version, no NOTIFY)."""
        sources = self._sources.setdefault(aor, {})
        if sources.get(key) == source:
            return False
        sources[key] = source
        self._changed(aor)
        return True

    def clear_source(self, aor: str, key: str) -> bool:
        """Remove the source *key* of *aor*; False when it had none."""
        sources = self._sources.get(aor)
        if sources is None or sources.pop(key, None) is None:
            return False
        if not sources:
            del self._sources[aor]
        self._changed(aor)
        return True

    def replace_sources(self, aor: str, prefix: str, sources: dict[str, Source]) -> bool:
        """Make *sources* the sources of *aor* whose keys start with *prefix* (all of
        one owner: a presentity's bindings, its publications); True when that
        changed anything."""
        changed = False
        for key in [k for k in self._sources.get(aor, {}) if k.startswith(prefix)]:
            if key not in sources:
                changed = self.clear_source(aor, key) or changed
        for key, source in sources.items():
            changed = self.set_source(aor, key, source) or changed
        return changed

    def load(self, aor: str, key: str, source: Source) -> None:
        """Put back a source read from the store at start: no change, the presentity
        reads at the version the clock had at the start."""
        self._sources.setdefault(aor, {})[key] = source

    def _changed(self, aor: str) -> None:
        """A source of *aor* changed: the next read composes a new version.

        A presentity left with no source at all loses its entry (it reads as
        :func:`nobody`, at the floor version): the source that brings it back is a
        change too and takes a fresh clock value, so the table holds the live
        presentities only (each new user who published once and left kept one for
        the life of the process: the soak's leak)."""
        self.clock += 1
        self._cache.pop(aor, None)
        if aor in self._sources:
            self._versions[aor] = self.clock
        else:
            self._versions.pop(aor, None)
            self._floor = self.clock

    # -- reading -------------------------------------------------------------------
    def version(self, aor: str) -> int:
        version = self._versions.get(aor)
        if version is not None:
            return version
        return self._base if aor in self._sources else self._floor

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
        """The live sources of *aor* as they are composed: a stand-in yields to a
        source of its own device (see :class:`~sipresence.documents.compose.Source`)."""
        live = list(self._sources.get(aor, {}).values())
        speaking = {s.device for s in live if s.device is not None and not s.standin}
        return [s for s in live if not (s.standin and s.device in speaking)]

    def get(self, aor: str) -> Presentity:
        presentity = self._cache.get(aor)
        if presentity is None:
            sources = self.sources(aor)
            if not sources:
                return nobody(aor)
            presentity = Presentity(aor, self.version(aor), compose(aor, sources))
            self._cache[aor] = presentity
        return presentity


@lru_cache(maxsize=4096)
def nobody(aor: str) -> Presentity:
    """A presentity with no source at all: closed, and the same every time.  Watchers
    of people not (yet) on the system are common (a BLF key per colleague), and each of
    their NOTIFYs would otherwise compose and serialise the same document again."""
    return Presentity(aor, 0, compose(aor, []))
