"""Structured SIP header values: name-addr, Via, CSeq, media types, parameter lists.

Messages keep header values as received (see :mod:`sipresence.sip.message`); these
parsers turn a value into a structure when the core needs one.  They accept the
white space RFC 3261 allows around separators (RFC 4475 ``wsinv``) and raise
:class:`HeaderError`, whose text becomes the reason phrase of a 400, on anything else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .uri import URI, URIError, format_host, parse_host, parse_uri, split_hostport

__all__ = [
    "HeaderError",
    "NameAddr",
    "Via",
    "CSeq",
    "MediaType",
    "split_commas",
    "parse_params",
    "parse_name_addr",
    "parse_via",
    "parse_cseq",
    "parse_media_type",
    "parse_accept",
    "parse_tokens",
    "is_token",
    "is_digits",
    "quote",
]


class HeaderError(ValueError):
    """A header value that does not follow its grammar; the text is the reason phrase."""


TOKEN_CHARS = "A-Za-z0-9\\-.!%*_+`'~"
_TOKEN_RE = re.compile(f"[{TOKEN_CHARS}]+\\Z")
_DISPLAY_RE = re.compile(f"[{TOKEN_CHARS}]+(?:[ \\t]+[{TOKEN_CHARS}]+)*\\Z")
_VIA_RE = re.compile(
    f"([{TOKEN_CHARS}]+)[ \\t]*/[ \\t]*([{TOKEN_CHARS}]+)[ \\t]*/[ \\t]*([{TOKEN_CHARS}]+)"
    f"[ \\t]+(.+)\\Z",
    re.S,
)
_CSEQ_RE = re.compile(f"[ \\t]*([0-9]+)[ \\t]+([{TOKEN_CHARS}]+)[ \\t]*\\Z")
_COLON_RE = re.compile(r"[ \t]*:[ \t]*")
_MEDIA_RE = re.compile(
    f"[ \\t]*([{TOKEN_CHARS}]+)[ \\t]*/[ \\t]*([{TOKEN_CHARS}]+)[ \\t]*(.*)\\Z", re.S)
MAX_CSEQ = 2**31 - 1
_BARE_ADDR_BAD = re.compile(r'[ \t?,">]').search
_BRACKETED_BAD = re.compile(r'[ \t<"]').search


def is_digits(text: str) -> bool:
    """ASCII digits only: str.isdigit() also takes "²", which int() then refuses."""
    return text.isascii() and text.isdigit()


def is_token(text: str) -> bool:
    """True when *text* is a non-empty RFC 3261 token."""
    return bool(_TOKEN_RE.match(text))


def quote(text: str) -> str:
    """Make a quoted-string (for display names and parameter values)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _scan_quoted(text: str, start: int) -> int:
    """Return the index just after the quoted-string that begins at *start*."""
    i, n = start + 1, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            return i + 1
        i += 1
    raise HeaderError("Unterminated quoted string")


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1], flags=re.S)


def split_commas(value: str) -> list[str]:
    """Split a header value at the commas that separate list elements.

    Commas inside quoted strings and inside ``<...>`` are not separators.  Elements
    are stripped; empty elements are kept so callers can reject ``a,,b`` where the
    grammar forbids it.
    """
    if "," not in value:
        return [value.strip()]
    parts: list[str] = []
    start = i = 0
    n = len(value)
    while i < n:
        c = value[i]
        if c == '"':
            i = _scan_quoted(value, i)
            continue
        if c == "<":
            end = value.find(">", i)
            if end < 0:
                raise HeaderError("Unterminated <URI>")
            i = end + 1
            continue
        if c == ",":
            parts.append(value[start:i].strip())
            start = i + 1
        i += 1
    parts.append(value[start:].strip())
    return parts


_PARAM_VALUE = r'(?:"(?:[^"\\]|\\.)*"|[^;,"<> \t]+)'
_PARAM = f"[ \\t]*;[ \\t]*([{TOKEN_CHARS}]+)(?:[ \\t]*=[ \\t]*({_PARAM_VALUE}))?"
_PARAMS_RE = re.compile(f"(?:{_PARAM})*[ \\t]*\\Z", re.S)
_PARAM_RE = re.compile(_PARAM, re.S)


_SIMPLE_PARAMS_RE = re.compile(f"(?:;[{TOKEN_CHARS}]+(?:=[^;,\"<> \\t]+)?)*\\Z")


def parse_params(text: str) -> dict[str, str | None]:
    """Parse ``;name[=value]`` parameters with optional white space around separators.

    Names are tokens, returned in lower case.  Values are tokens, hosts (IPv6 too)
    or quoted strings, returned unquoted; a parameter without ``=`` maps to None.
    Empty names (``;;``, RFC 4475 ``badinv01``) and ``name=`` are errors.
    """
    params: dict[str, str | None] = {}
    if not text:
        return params
    if _SIMPLE_PARAMS_RE.match(text):
        # No quotes, no white space: split, which is several times faster.
        for item in text[1:].split(";"):
            name, eq, value = item.partition("=")
            params[name.lower()] = value if eq else None
        return params
    if not _PARAMS_RE.match(text):
        raise HeaderError("Bad parameter list")
    for name, value in _PARAM_RE.findall(text):
        if not value:
            params[name.lower()] = None
        elif value[0] == '"':
            params[name.lower()] = _unquote(value)
        else:
            params[name.lower()] = value
    return params


@dataclass(slots=True)
class NameAddr:
    """A From, To, Contact, Route or Record-Route value: ``["display"] <uri>;params``."""

    display: str | None
    uri_text: str
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def uri(self) -> URI:
        """The parsed URI (raises :class:`HeaderError` when it is malformed)."""
        try:
            return parse_uri(self.uri_text)
        except URIError as exc:
            raise HeaderError(str(exc)) from None

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def __str__(self) -> str:
        out = f"{quote(self.display)} <{self.uri_text}>" if self.display else f"<{self.uri_text}>"
        for name, value in self.params.items():
            out += f";{name}" if value is None else f";{name}={_param_value(value)}"
        return out


def _param_value(value: str) -> str:
    return value if value and all(c not in value for c in ' \t;,"<>') else quote(value)


def parse_name_addr(value: str) -> NameAddr:
    """Parse a name-addr or addr-spec header value.

    A bare addr-spec may not carry URI headers, commas or ';' parameters of the URI
    (RFC 3261 section 20): what follows ';' belongs to the header.  White space just
    inside the angle brackets is tolerated (RFC 4475 ``badaspec`` allows either).
    """
    v = value.strip()
    if not v:
        raise HeaderError("Empty address")
    if v[0] == '"':
        end = _scan_quoted(v, 0)
        display: str | None = _unquote(v[:end])
        rest = v[end:].lstrip(" \t")
        if not rest.startswith("<"):
            raise HeaderError("Expected <URI> after display name")
    else:
        lt = v.find("<")
        if lt < 0:
            semi = v.find(";")
            uri_text = (v if semi < 0 else v[:semi]).rstrip(" \t")
            if _BARE_ADDR_BAD(uri_text):
                raise HeaderError("Address with headers or spaces needs <>")
            return NameAddr(None, uri_text, parse_params(v[semi:]) if semi >= 0 else {})
        words = v[:lt].strip(" \t")
        if words and not _DISPLAY_RE.match(words):
            raise HeaderError("Bad display name")
        display = words or None
        rest = v[lt:]
    gt = rest.find(">")
    if gt < 0:
        raise HeaderError("Unterminated <URI>")
    uri_text = rest[1:gt].strip(" \t")
    if not uri_text or _BRACKETED_BAD(uri_text):
        raise HeaderError("Bad URI in address")
    return NameAddr(display, uri_text, parse_params(rest[gt + 1 :]))


@dataclass(slots=True)
class Via:
    """One via-parm: ``SIP/2.0/UDP host:port;branch=...;received=...;rport``."""

    protocol: str
    transport: str
    host: str
    port: int | None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        """The ``received`` address without brackets (RFC 5118 allows both forms)."""
        value = self.params.get("received")
        return value.strip("[]") if value else None

    @property
    def rport(self) -> int | None:
        """The ``rport`` value filled in by a server, or None when absent or empty."""
        value = self.params.get("rport")
        return int(value) if value else None

    def sent_by(self) -> tuple[str, int | None]:
        return self.host, self.port

    def __str__(self) -> str:
        out = f"{self.protocol}/{self.transport} {self.host}"
        if self.port is not None:
            out += f":{self.port}"
        for name, value in self.params.items():
            out += f";{name}" if value is None else f";{name}={value}"
        return out


_SIMPLE_VIA_RE = re.compile(
    r"SIP/2\.0/([A-Za-z]+) ([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?(;[^ \t\"]*)?\Z"
)


def parse_via(value: str) -> Via:
    """Parse one via-parm (split a Via header with :func:`split_commas` first)."""
    m = _SIMPLE_VIA_RE.match(value)
    if m:
        # The usual shape, no white space around separators.
        transport, host, port, ptext = m.groups()
        try:
            host = parse_host(host)
        except URIError:
            raise HeaderError("Bad Via sent-by") from None
        if port is not None and int(port) > 65535:
            raise HeaderError("Bad Via sent-by")
        try:
            params = parse_params(ptext) if ptext else {}
        except HeaderError:
            raise HeaderError("Bad Via parameter") from None
        _check_via_params(params)
        return Via("SIP/2.0", transport.upper(), host, None if port is None else int(port), params)
    m = _VIA_RE.match(value.strip())
    if not m:
        raise HeaderError("Bad Via")
    name, version, transport, rest = m.groups()
    semi = rest.find(";")
    sent_by, ptext = (rest, "") if semi < 0 else (rest[:semi], rest[semi:])
    sent_by = _COLON_RE.sub(":", sent_by.strip(" \t"))
    try:
        host, port = split_hostport(sent_by)
    except URIError:
        raise HeaderError("Bad Via sent-by") from None
    try:
        params = parse_params(ptext)
    except HeaderError:
        raise HeaderError("Bad Via parameter") from None
    _check_via_params(params)
    return Via(f"{name.upper()}/{version}", transport.upper(), host, port, params)


def _check_via_params(params: dict[str, str | None]) -> None:
    received = params.get("received")
    if received is not None:
        try:
            split_hostport(format_host(received.strip("[]")))
        except URIError:
            raise HeaderError("Bad Via received") from None
    rport = params.get("rport")
    if rport is not None and (not is_digits(rport) or int(rport) > 65535):
        raise HeaderError("Bad Via rport")


@dataclass(slots=True, frozen=True)
class CSeq:
    number: int
    method: str

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


def parse_cseq(value: str) -> CSeq:
    """Parse ``1*DIGIT LWS Method``; the number must fit in 31 bits (RFC 3261 8.1.1.5)."""
    m = _CSEQ_RE.match(value)
    if not m:
        raise HeaderError("Bad CSeq")
    number = int(m.group(1))
    if number > MAX_CSEQ:
        raise HeaderError("CSeq out of range")
    return CSeq(number, m.group(2))


@dataclass(slots=True, frozen=True)
class MediaType:
    """A Content-Type or Accept element: ``type/subtype`` in lower case plus parameters."""

    mime: str
    params: tuple[tuple[str, str | None], ...] = ()

    def param(self, name: str) -> str | None:
        for key, value in self.params:
            if key == name:
                return value
        return None


def parse_media_type(value: str) -> MediaType:
    m = _MEDIA_RE.match(value)
    if not m:
        raise HeaderError("Bad media type")
    params = parse_params(m.group(3))
    return MediaType(f"{m.group(1)}/{m.group(2)}".lower(), tuple(params.items()))


def parse_accept(values: list[str]) -> list[tuple[MediaType, float]]:
    """Parse Accept header values into (media range, q) pairs, best first."""
    out: list[tuple[MediaType, float]] = []
    for value in values:
        for item in split_commas(value):
            if not item:
                continue
            media = parse_media_type(item)
            q = media.param("q")
            try:
                weight = 1.0 if q is None else float(q)
            except ValueError:
                raise HeaderError("Bad q value in Accept") from None
            if not 0.0 <= weight <= 1.0:
                raise HeaderError("Bad q value in Accept")
            out.append((media, weight))
    out.sort(key=lambda pair: -pair[1])
    return out


def parse_tokens(values: list[str]) -> list[str]:
    """Parse comma-separated token lists (Require, Supported, Allow, Allow-Events)."""
    out: list[str] = []
    for value in values:
        for item in value.split(","):
            item = item.strip(" \t")
            if item:
                out.append(item)
    return out
