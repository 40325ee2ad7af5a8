"""Event packages (RFC 6665 section 7): what each one accepts, emits and allows.

A package says which body types a PUBLISH may carry, which formats a NOTIFY can be
sent in (the first is the default when a SUBSCRIBE has no Accept, as baresip sends
it), and its expiry bounds.  The agent advertises ``Allow-Events`` and ``Accept``
from this registry, so what it says it supports is what it handles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..sip.headers import HeaderError, parse_accept

__all__ = ["EventPackage", "negotiate", "PIDF", "XPIDF", "CPIM_PIDF", "WATCHERINFO"]

PIDF = "application/pidf+xml"
XPIDF = "application/xpidf+xml"
CPIM_PIDF = "application/cpim-pidf+xml"
WATCHERINFO = "application/watcherinfo+xml"
DIALOG_INFO = "application/dialog-info+xml"


@dataclass(frozen=True)
class EventPackage:
    """One event package and its rules.

    ``parse`` turns a published body into the package's document model and raises
    ``ValueError`` (with a reason phrase) when the body is not acceptable.  ``merge``,
    when set, combines a publisher's previous document (None for a new publication)
    with its new one and returns the document and the body to keep: dialog-info
    publishers send partial documents (Yealink), and what is stored must be whole.

    ``one_per_source``: a device has one state in the package, so an initial PUBLISH
    from the source of an earlier publication replaces it (a phone that lost its
    entity tag after a 412 or a reboot starts over; INTEROP.md, complaint 4).  Not so
    for dialogs: Kamailio's pua_dialoginfo publishes every call as a publication of
    its own, all from the proxy's one address, with a new Call-ID each; there only a
    publisher starting over in the same Call-ID (pjsua) replaces.
    """

    name: str
    notify_types: tuple[str, ...]
    publish_types: tuple[str, ...] = ()
    parse: Callable[[bytes, str], Any] | None = None
    merge: Callable[[Any, Any], tuple[Any, bytes]] | None = None
    default_expires: int = 3600
    min_expires: int = 60
    max_expires: int = 86400
    publish_default_expires: int = 3600
    one_per_source: bool = True

    @property
    def publishable(self) -> bool:
        return bool(self.publish_types) and self.parse is not None


def negotiate(accept: list[str], offered: tuple[str, ...]) -> str | None:
    """Pick the NOTIFY body type for a SUBSCRIBE's Accept header values.

    No Accept header means the package default (RFC 6665 section 7.2: the default
    type of the package).  Media ranges with wildcards match; q=0 refuses.  None
    means nothing acceptable: the SUBSCRIBE gets 406.  Phones send a handful of
    distinct Accept headers, each parsed once.
    """
    return _negotiate(tuple(accept), offered)


@lru_cache(maxsize=1024)
def _negotiate(accept: tuple[str, ...], offered: tuple[str, ...]) -> str | None:
    if not accept or not any(value.strip() for value in accept):
        return offered[0]
    try:
        ranges = parse_accept(list(accept))
    except HeaderError:
        return offered[0]  # lenient in: a broken Accept gets the default
    for media, q in ranges:  # best q first, header order among equals
        if q <= 0:
            continue
        kind, _, sub = media.mime.partition("/")
        for candidate in offered:
            ckind, _, csub = candidate.partition("/")
            if kind in ("*", ckind) and sub in ("*", csub):
                refused = any(m.mime == candidate and w <= 0 for m, w in ranges)
                if not refused:
                    return candidate
    return None
