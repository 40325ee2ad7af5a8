"""RFC 3858 watcher information: who subscribes to a resource, and how that stands.

The agent writes these for ``presence.winfo`` subscribers (a presentity approving its
watchers).  Reading is lenient for the sake of tests and of bridging another server's
watcher lists (Kamailio's ids are internal handles, its events always ``subscribe``):
an unknown ``status`` makes a watcher ``pending`` (nothing granted), an unknown
``event`` reads as ``subscribe``, a watcher without an address is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lxml import etree

from .xml import (
    WATCHERINFO_NS,
    XML_DECLARATION,
    XML_NS,
    DocumentError,
    any_uri,
    clean_text,
    language,
    parse_xml,
    qualified,
    split_tag,
    text_of,
)

__all__ = [
    "WATCHER_EVENTS",
    "WATCHER_STATUSES",
    "Watcher",
    "WatcherInfo",
    "WatcherList",
    "parse_watcherinfo",
    "serialize_watcherinfo",
]

WatcherStatus = Literal["pending", "active", "waiting", "terminated"]
WatcherEvent = Literal["subscribe", "approved", "deactivated", "probation", "rejected",
                       "timeout", "giveup", "noresource"]
WATCHER_STATUSES: tuple[WatcherStatus, ...] = ("pending", "active", "waiting", "terminated")
WATCHER_EVENTS: tuple[WatcherEvent, ...] = (
    "subscribe", "approved", "deactivated", "probation", "rejected", "timeout", "giveup",
    "noresource")


@dataclass(frozen=True)
class Watcher:
    """One watcher (a subscription) of a resource.

    ``expiration`` and ``duration_subscribed`` are seconds; ``lang`` is the language
    of ``display_name``.
    """

    id: str
    uri: str
    status: WatcherStatus
    event: WatcherEvent = "subscribe"
    display_name: str | None = None
    expiration: int | None = None
    duration_subscribed: int | None = None
    lang: str | None = None


@dataclass(frozen=True)
class WatcherList:
    """The watchers of one resource for one event package."""

    resource: str
    package: str
    watchers: tuple[Watcher, ...] = ()


@dataclass(frozen=True)
class WatcherInfo:
    """A watcherinfo document; ``version`` only goes up within a subscription."""

    version: int = 0
    state: Literal["full", "partial"] = "full"
    lists: tuple[WatcherList, ...] = ()


def _number(value: str | None) -> int | None:
    value = (value or "").strip()
    return int(value) if value.isdigit() else None


def parse_watcherinfo(data: bytes) -> WatcherInfo:
    """Parse a watcherinfo body leniently; raise :class:`DocumentError` if it is not one."""
    root = parse_xml(data)
    default_ns = WATCHERINFO_NS if not split_tag(root.tag)[0] else ""
    if qualified(root, default_ns) != (WATCHERINFO_NS, "watcherinfo"):
        raise DocumentError("not a watcherinfo document")
    lists = []
    for element in root:
        if qualified(element, default_ns) != (WATCHERINFO_NS, "watcher-list"):
            continue
        watchers = [watcher for child in element
                    if qualified(child, default_ns) == (WATCHERINFO_NS, "watcher")
                    and (watcher := _parse_watcher(child)) is not None]
        lists.append(WatcherList((element.get("resource") or "").strip(),
                                 (element.get("package") or "").strip(), tuple(watchers)))
    return WatcherInfo(
        version=_number(root.get("version")) or 0,
        state="partial" if (root.get("state") or "").strip().lower() == "partial" else "full",
        lists=tuple(lists),
    )


def _parse_watcher(element: etree._Element) -> Watcher | None:
    uri = text_of(element)
    if not uri:
        return None
    status = (element.get("status") or "").strip().lower()
    event = (element.get("event") or "").strip().lower()
    return Watcher(
        id=(element.get("id") or "").strip() or uri,
        uri=uri,
        status=next((s for s in WATCHER_STATUSES if s == status), "pending"),
        event=next((e for e in WATCHER_EVENTS if e == event), "subscribe"),
        display_name=(element.get("display-name") or "").strip() or None,
        expiration=_number(element.get("expiration")),
        duration_subscribed=_number(element.get("duration-subscribed")),
        lang=language(element.get(f"{{{XML_NS}}}lang")),
    )


def _tag(local: str) -> str:
    return f"{{{WATCHERINFO_NS}}}{local}"


_UNSIGNED_LONG_MAX = 2**64 - 1


def _watcherinfo_element(info: WatcherInfo) -> etree._Element:
    """The ``<watcherinfo>`` element tree of *info*, valid against the schema."""
    root = etree.Element(_tag("watcherinfo"), nsmap={None: WATCHERINFO_NS})
    root.set("version", str(max(info.version, 0)))
    root.set("state", info.state)
    for watcher_list in info.lists:
        element = etree.SubElement(root, _tag("watcher-list"),
                                   resource=any_uri(watcher_list.resource),
                                   package=clean_text(watcher_list.package))
        for watcher in watcher_list.watchers:
            _build_watcher(element, watcher)
    return root


def _build_watcher(parent: etree._Element, watcher: Watcher) -> None:
    element = etree.SubElement(parent, _tag("watcher"))
    element.set("id", clean_text(watcher.id))
    element.set("status", watcher.status)
    element.set("event", watcher.event)
    if watcher.display_name:
        element.set("display-name", clean_text(watcher.display_name))
    for name, value in (("expiration", watcher.expiration),
                        ("duration-subscribed", watcher.duration_subscribed)):
        if value is not None:
            element.set(name, str(min(max(value, 0), _UNSIGNED_LONG_MAX)))
    lang = language(watcher.lang)
    if lang:
        element.set(f"{{{XML_NS}}}lang", lang)
    element.text = any_uri(watcher.uri)


def serialize_watcherinfo(info: WatcherInfo) -> bytes:
    """*info* as watcherinfo bytes: UTF-8, XML declaration, schema-valid."""
    return XML_DECLARATION + etree.tostring(_watcherinfo_element(info), encoding="UTF-8",
                                            pretty_print=True)
