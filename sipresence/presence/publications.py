"""The Event State Compositor of RFC 3903, for any publishable event package.

Every successful PUBLISH gets a new entity tag (section 6 step 8).  An initial
PUBLISH needs a body; a refresh has SIP-If-Match and no body; a modify has both; a
removal has SIP-If-Match and ``Expires: 0``.  A malformed or unacceptable request
changes nothing: all checks run before any state is touched.

One addition to the RFC, for INTEROP.md complaint 4 (duplicate publications after a
412 or a device restart): an initial PUBLISH from the same publisher (same source
address and port, or same Call-ID) for the same resource and package replaces that
publisher's older publication instead of adding a second one.  pjsua starts over
without SIP-If-Match after a 412 from the same socket; its stale copy must not stay
in the composition until it expires.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from ..sip.uas import RequestError
from .packages import EventPackage
from .timers import DeadlineQueue

__all__ = ["Publication", "PublishError", "PublishResult", "EventStateCompositor"]


@dataclass(slots=True)
class Publication:
    """One piece of published event state (persisted; ``document`` is rebuilt on load)."""

    etag: str
    resource: str
    package: str
    content_type: str
    body: bytes
    expires_at: float
    updated_at: float
    publisher: str
    call_id: str
    document: Any = field(default=None, compare=False)


class PublishError(RequestError):
    """A PUBLISH answered with an error (RFC 3903); nothing was changed."""


@dataclass(slots=True)
class PublishResult:
    etag: str | None
    expires: int
    resource: str
    changed: bool
    removed: Publication | None = None


def new_etag() -> str:
    return secrets.token_urlsafe(9)


class EventStateCompositor:
    """Stores publications and applies RFC 3903 to each PUBLISH."""

    def __init__(self) -> None:
        self._by_etag: dict[str, Publication] = {}
        self._by_resource: dict[tuple[str, str], dict[str, Publication]] = {}
        self._expiry = DeadlineQueue()

    def __len__(self) -> int:
        return len(self._by_etag)

    def get(self, etag: str) -> Publication | None:
        return self._by_etag.get(etag)

    def for_resource(self, resource: str, package: str) -> list[Publication]:
        return list(self._by_resource.get((resource, package), {}).values())

    def all(self) -> list[Publication]:
        return list(self._by_etag.values())

    def publish(
        self,
        *,
        package: EventPackage,
        resource: str,
        if_match: str | None,
        expires: int | None,
        content_type: str | None,
        body: bytes,
        publisher: str,
        call_id: str,
        now: float,
    ) -> PublishResult:
        """Apply one PUBLISH; raises :class:`PublishError` for every error answer."""
        if expires is None:
            expires = package.publish_default_expires
        if 0 < expires < package.min_expires:
            raise PublishError(423, headers=[("Min-Expires", str(package.min_expires))])
        expires = min(expires, package.max_expires)

        existing: Publication | None = None
        if if_match is not None:
            existing = self._by_etag.get(if_match.strip())
            if (existing is None or existing.expires_at <= now
                    or existing.resource != resource or existing.package != package.name):
                raise PublishError(412)
        elif not body:
            raise PublishError(400, "Missing body in initial PUBLISH")

        document = None
        if body:
            media = (content_type or "").lower()
            if media not in package.publish_types:
                raise PublishError(415, headers=[("Accept", ", ".join(package.publish_types))])
            assert package.parse is not None
            try:
                document = package.parse(body, media)
            except ValueError as exc:
                raise PublishError(400, f"Bad {package.name} body: {exc}") from None
            if package.merge is not None:
                document, body = package.merge(
                    existing.document if existing is not None else None, document)

        if expires == 0:
            if existing is None:
                # An initial PUBLISH that expires at once leaves nothing to store.
                return PublishResult(None, 0, resource, False)
            self._remove(existing)
            return PublishResult(None, 0, resource, True, existing)

        etag = new_etag()
        if existing is None:
            assert content_type is not None
            replaced = self._same_publisher(resource, package, publisher, call_id)
            if replaced is not None:
                self._remove(replaced)
            publication = Publication(etag, resource, package.name, content_type.lower(), body,
                                      now + expires, now, publisher, call_id, document)
            self._add(publication)
            return PublishResult(etag, expires, resource, True, replaced)

        self._remove(existing)
        existing.etag = etag
        existing.expires_at = now + expires
        existing.publisher = publisher
        existing.call_id = call_id
        changed = False
        if body and (body != existing.body or content_type != existing.content_type):
            assert content_type is not None
            existing.body = body
            existing.content_type = content_type.lower()
            existing.document = document
            existing.updated_at = now
            changed = True
        self._add(existing)
        return PublishResult(etag, expires, resource, changed)

    def restore(self, publication: Publication) -> None:
        """Put back a publication read from the store (the caller parsed its document)."""
        self._add(publication)

    def next_deadline(self) -> float | None:
        return self._expiry.next_deadline()

    def expire(self, now: float) -> list[Publication]:
        """Remove and return the publications that expired at or before *now*."""
        gone = []
        for etag in self._expiry.pop_due(now):
            publication = self._by_etag.get(etag)  # type: ignore[call-overload]
            if publication is not None:
                self._remove(publication)
                gone.append(publication)
        return gone

    def _same_publisher(self, resource: str, package: EventPackage, publisher: str,
                        call_id: str) -> Publication | None:
        """The publication an initial PUBLISH starts over (see EventPackage)."""
        by_source = package.one_per_source
        for publication in self._by_resource.get((resource, package.name), {}).values():
            if publication.call_id == call_id or (by_source and publication.publisher == publisher):
                return publication
        return None

    def _add(self, publication: Publication) -> None:
        self._by_etag[publication.etag] = publication
        key = (publication.resource, publication.package)
        self._by_resource.setdefault(key, {})[publication.etag] = publication
        self._expiry.set(publication.etag, publication.expires_at)

    def _remove(self, publication: Publication) -> None:
        self._by_etag.pop(publication.etag, None)
        key = (publication.resource, publication.package)
        group = self._by_resource.get(key)
        if group is not None:
            group.pop(publication.etag, None)
            if not group:
                del self._by_resource[key]
        self._expiry.cancel(publication.etag)
