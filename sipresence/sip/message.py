"""SIP requests and responses (RFC 3261 section 7).

Header fields are kept as received, text per field line, under a case-insensitive
key with compact forms expanded (``v`` is ``Via``).  Structured views (Via, CSeq,
From/To...) are parsed on first use and cached, so a message that is only relayed or
answered never pays for parsing headers nobody reads, and a value echoed into a
response goes out exactly as it came in.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from .headers import (
    CSeq,
    HeaderError,
    MediaType,
    NameAddr,
    Via,
    is_digits,
    parse_cseq,
    parse_media_type,
    parse_name_addr,
    parse_via,
    split_commas,
)
from .uri import URI, URIError, parse_uri

__all__ = ["Headers", "Message", "Request", "Response", "header_key", "REASONS"]

COMPACT_FORMS = {
    "a": "accept-contact", "b": "referred-by", "c": "content-type", "d": "request-disposition",
    "e": "content-encoding", "f": "from", "i": "call-id", "j": "reject-contact",
    "k": "supported", "l": "content-length", "m": "contact", "n": "identity-info",
    "o": "event", "r": "refer-to", "s": "subject", "t": "to", "u": "allow-events",
    "v": "via", "x": "session-expires", "y": "identity",
}
_SPELLINGS = {
    "call-id": "Call-ID", "cseq": "CSeq", "www-authenticate": "WWW-Authenticate",
    "sip-etag": "SIP-ETag", "sip-if-match": "SIP-If-Match", "mime-version": "MIME-Version",
    "rack": "RAck", "rseq": "RSeq",
}
MAX_EXPIRES = 2**32 - 1

REASONS = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 202: "Accepted", 204: "No Notification",
    300: "Multiple Choices", 301: "Moved Permanently", 302: "Moved Temporarily",
    305: "Use Proxy", 380: "Alternative Service", 400: "Bad Request", 401: "Unauthorized",
    402: "Payment Required", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    406: "Not Acceptable", 407: "Proxy Authentication Required", 408: "Request Timeout",
    410: "Gone", 412: "Conditional Request Failed", 413: "Request Entity Too Large",
    414: "Request-URI Too Long", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 420: "Bad Extension", 421: "Extension Required",
    423: "Interval Too Brief", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    484: "Address Incomplete", 485: "Ambiguous", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 489: "Bad Event", 491: "Request Pending", 493: "Undecipherable",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
    513: "Message Too Large", 600: "Busy Everywhere", 603: "Decline",
    604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}


_KEYS: dict[str, str] = {}


def header_key(name: str) -> str:
    """The lookup key of a header name: lower case, compact form expanded."""
    key = _KEYS.get(name)
    if key is None:
        key = name.lower()
        key = COMPACT_FORMS.get(key, key)
        if len(_KEYS) < 4096:  # bounded: names come from the network
            _KEYS[name] = key
    return key


def header_spelling(key: str) -> str:
    """How a header name is written on output (``call-id`` is ``Call-ID``)."""
    spelling = _SPELLINGS.get(key)
    if spelling is None:
        spelling = "-".join(part.capitalize() for part in key.split("-"))
        if len(_SPELLINGS) < 4096:  # bounded: names come from the network
            _SPELLINGS[key] = spelling
    return spelling


class Headers:
    """An ordered, case-insensitive multi-map of header field values.

    Each field line is one value; ``Via: a, b`` stays one value until :meth:`values`
    splits it, because only list-valued headers may be split at commas.
    """

    __slots__ = ("_fields",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._fields: dict[str, list[str]] = {}
        for name, value in items:
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        key = header_key(name)
        values = self._fields.get(key)
        if values is None:
            self._fields[key] = [value]
        else:
            values.append(value)

    def prepend(self, name: str, value: str) -> None:
        """Insert a value before the others of its name (a new top Via)."""
        self._fields.setdefault(header_key(name), []).insert(0, value)

    def set(self, name: str, value: str | Iterable[str]) -> None:
        """Replace every value of *name*."""
        self._fields[header_key(name)] = [value] if isinstance(value, str) else list(value)

    def remove(self, name: str) -> None:
        self._fields.pop(header_key(name), None)

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self._fields.get(header_key(name))
        return values[0] if values else default

    def get_all(self, name: str) -> list[str]:
        """Every field line's value for *name*, in order."""
        return list(self._fields.get(header_key(name), ()))

    def values(self, name: str) -> list[str]:
        """Every list element of *name*: field lines split at separating commas."""
        out: list[str] = []
        for value in self._fields.get(header_key(name), ()):
            out.extend(split_commas(value))
        return out

    def count(self, name: str) -> int:
        return len(self._fields.get(header_key(name), ()))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and header_key(name) in self._fields

    def __iter__(self) -> Iterator[tuple[str, str]]:
        """Yield (spelling, value) pairs in order, as they are written on the wire."""
        for key, values in self._fields.items():
            spelling = header_spelling(key)
            for value in values:
                yield spelling, value

    def keys(self) -> list[str]:
        return list(self._fields)

    def copy(self) -> Headers:
        new = Headers()
        new._fields = {key: list(values) for key, values in self._fields.items()}
        return new

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._fields == other._fields

    def __repr__(self) -> str:
        return f"Headers({list(self)!r})"


class Message:
    """What requests and responses share: headers, body and cached structured views."""

    __slots__ = ("headers", "body", "_cache")

    version = "SIP/2.0"

    def __init__(self, headers: Headers | None = None, body: bytes = b"") -> None:
        self.headers = headers if headers is not None else Headers()
        self.body = body
        self._cache: dict[str, Any] = {}

    # -- single-valued headers -------------------------------------------------------
    def single(self, name: str) -> str | None:
        """The value of a header that may appear once; two are an error (RFC 4475 multi01)."""
        return self._single(header_key(name))

    def _single(self, key: str) -> str | None:
        values = self.headers._fields.get(key)
        if not values:
            return None
        if len(values) > 1:
            raise HeaderError(f"Multiple {header_spelling(key)} headers")
        return values[0]

    def _required(self, key: str) -> str:
        value = self._single(key)
        if not value:
            raise HeaderError(f"Missing {header_spelling(key)}")
        return value

    # Structured views are cached in ``_cache`` under the header key.  The code is
    # written out per property, without closures, because these run for every message.
    @property
    def call_id(self) -> str:
        value: str | None = self._cache.get("call-id")
        if value is None:
            value = self._cache["call-id"] = self._required("call-id")
        return value

    @property
    def cseq(self) -> CSeq:
        value: CSeq | None = self._cache.get("cseq")
        if value is None:
            value = self._cache["cseq"] = parse_cseq(self._required("cseq"))
        return value

    @property
    def from_(self) -> NameAddr:
        value: NameAddr | None = self._cache.get("from")
        if value is None:
            value = self._cache["from"] = _single_address(self._required("from"), "From")
        return value

    @property
    def to(self) -> NameAddr:
        value: NameAddr | None = self._cache.get("to")
        if value is None:
            value = self._cache["to"] = _single_address(self._required("to"), "To")
        return value

    @property
    def top_via(self) -> Via:
        value: Via | None = self._cache.get("top-via")
        if value is None:
            values = self.headers._fields.get("via")
            if not values:
                raise HeaderError("Missing Via")
            first = values[0]
            if "," in first:
                first = split_commas(first)[0]
            value = self._cache["top-via"] = parse_via(first)
        return value

    @property
    def bottom_via(self) -> Via:
        """The Via of the UA that sent the request: with a single Via (no proxy on the
        way, the usual case) that is the already parsed and stamped top Via."""
        values = self.headers._fields.get("via")
        if values and len(values) == 1 and "," not in values[0]:
            return self.top_via
        return self.vias[-1]

    @property
    def vias(self) -> list[Via]:
        """Every Via element, top first (parsed on demand; the UAS needs only the top)."""
        value: list[Via] | None = self._cache.get("vias")
        if value is None:
            elements = self.headers.values("via")
            if not elements:
                raise HeaderError("Missing Via")
            value = self._cache["vias"] = [parse_via(element) for element in elements]
        return value

    @property
    def max_forwards(self) -> int | None:
        if "max-forwards" not in self._cache:
            value = self._single("max-forwards")
            if value is not None:
                value = value.strip()
                if not is_digits(value) or int(value) > 255:
                    raise HeaderError("Max-Forwards out of range")
            self._cache["max-forwards"] = None if value is None else int(value)
        return self._cache["max-forwards"]

    @property
    def expires(self) -> int | None:
        """The Expires header in seconds; values over 2**32-1 are an error (RFC 4475 scalar02)."""
        if "expires" not in self._cache:
            value = self._single("expires")
            if value is not None:
                value = value.strip()
                if not is_digits(value) or int(value) > MAX_EXPIRES:
                    raise HeaderError("Bad Expires")
            self._cache["expires"] = None if value is None else int(value)
        return self._cache["expires"]

    @property
    def content_type(self) -> MediaType | None:
        if "content-type" not in self._cache:
            value = self._single("content-type")
            self._cache["content-type"] = None if value is None else parse_media_type(value)
        return self._cache["content-type"]

    def forget(self, key: str) -> None:
        """Drop a cached view after the headers it was built from were changed."""
        self._cache.pop(key, None)

    # -- serialisation ---------------------------------------------------------------
    def start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """Serialise with CRLF line ends and a Content-Length that matches the body."""
        lines = [self.start_line()]
        spellings = _SPELLINGS
        for key, values in self.headers._fields.items():
            if key == "content-length":
                continue
            spelling = spellings.get(key) or header_spelling(key)
            if len(values) == 1:
                lines.append(f"{spelling}: {values[0]}")
            else:
                lines.extend(f"{spelling}: {value}" for value in values)
        lines.append(f"Content-Length: {len(self.body)}\r\n\r\n")
        return "\r\n".join(lines).encode("utf-8", "surrogateescape") + self.body


def _single_address(value: str, name: str) -> NameAddr:
    parts = split_commas(value)
    if len(parts) != 1:
        if "<" not in parts[0] and ":" not in parts[0]:
            # Not an address but the start of an unquoted display name with a comma
            # (RFC 4475 baddn: ``From: Bell, Alexander <sip:...>``).
            raise HeaderError(f"Unquoted display name in {name}")
        raise HeaderError(f"Multiple {name} values")
    try:
        return parse_name_addr(parts[0])
    except HeaderError as exc:
        raise HeaderError(f"{exc} in {name}") from None


class Request(Message):
    """A SIP request.  ``uri`` is the Request-URI text; ``request_uri`` its parsed form."""

    __slots__ = ("method", "uri")

    def __init__(
        self, method: str, uri: str, headers: Headers | None = None, body: bytes = b""
    ) -> None:
        super().__init__(headers, body)
        self.method = method
        self.uri = uri

    @property
    def request_uri(self) -> URI:
        value: URI | None = self._cache.get("request-uri")
        if value is None:
            try:
                value = self._cache["request-uri"] = parse_uri(self.uri)
            except URIError as exc:
                raise HeaderError(f"{exc} in Request-URI") from None
        return value

    def start_line(self) -> str:
        return f"{self.method} {self.uri} {self.version}"

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri}>"


class Response(Message):
    """A SIP response."""

    __slots__ = ("status", "reason")

    def __init__(
        self, status: int, reason: str | None = None, headers: Headers | None = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(headers, body)
        self.status = status
        self.reason = REASONS.get(status, "Unknown") if reason is None else reason

    def start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"
