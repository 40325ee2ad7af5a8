"""Turning bytes into SIP messages: datagrams, streams, and the checks of RFC 3261 8.2.

Three layers, each usable alone:

* :func:`parse_datagram` frames one UDP datagram.  A missing Content-Length means the
  body runs to the end of the datagram (RFC 3261 18.3, INTEROP.md: linphone); octets
  beyond Content-Length are ignored (RFC 4475 ``dblreq``).
* :class:`StreamFramer` frames a TCP/TLS byte stream by Content-Length and answers
  RFC 5626 CRLF keep-alives.  A framing error is fatal to that connection only.
* :func:`validate` checks the mandatory header fields, so that every malformed
  request gets a 400 with a reason phrase that says what is wrong.

All problems surface as :class:`ParseError`, which carries the status to answer and,
when the header section could be read, the partial message to build that answer from.
"""

from __future__ import annotations

import re

from .headers import TOKEN_CHARS, HeaderError
from .message import COMPACT_FORMS, Headers, Message, Request, Response
from .uri import SipURI

__all__ = [
    "ParseError",
    "KEEPALIVE",
    "MAX_MESSAGE_SIZE",
    "parse_datagram",
    "parse_head",
    "StreamFramer",
    "validate",
]

MAX_MESSAGE_SIZE = 65535
_REQUEST_LINE_RE = re.compile(f"([{TOKEN_CHARS}]+) ([^ \\t]+) ([Ss][Ii][Pp]/[0-9]+\\.[0-9]+)\\Z")
_LENIENT_REQUEST_LINE_RE = re.compile(
    f"([{TOKEN_CHARS}]+) +([^ \\t]+) +([Ss][Ii][Pp]/[0-9]+\\.[0-9]+)[ \\t]*\\Z")
_VERSION_RE = re.compile(r"[Ss][Ii][Pp]/[0-9]+\.[0-9]+\Z")
_STATUS_LINE_RE = re.compile(r"([Ss][Ii][Pp]/[0-9]+\.[0-9]+) ([0-9]{3})(?: (.*))?\Z", re.S)
_VERSION = "SIP/2.0"
_BARE_CR_RE = re.compile(r"\r(?!\n)")
_is_token = re.compile(f"[{TOKEN_CHARS}]+\\Z").match


class ParseError(ValueError):
    """A message that cannot be processed.

    ``status`` is the response to send (400, 505, 413...), ``reason`` its reason
    phrase, ``message`` the request or response as far as it could be read (None
    when not even the header section could be), and ``fatal`` tells a stream
    transport that it lost the framing and must close the connection.  ``framed``
    holds what :meth:`StreamFramer.feed` had framed before a fatal error in the same
    call: those messages came whole and are still to be handled, whatever the TCP
    segments were.
    """

    def __init__(
        self, reason: str, status: int = 400, message: Message | None = None,
        fatal: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.message = message
        self.fatal = fatal
        self.framed: list[Message | ParseError | _KeepAlive] = []


class _KeepAlive:
    """The RFC 5626 double-CRLF ping on a stream; the answer is a single CRLF."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "KEEPALIVE"


KEEPALIVE = _KeepAlive()


# Header names already seen, as written, mapped to their lookup key.  A name is put
# here only after it passed the token check, so a hit skips lower(), the compact-form
# table and the check.  Bounded, so that random names cannot grow it without end.
_NAME_KEYS: dict[str, str] = {}
_NAME_KEYS_MAX = 4096


def _split_lines(head: str) -> tuple[list[str], str | None]:
    """Split a header section into lines; the second item is the reason it is bad, if it is.

    Lenient in: bare LF line ends are accepted as well as CRLF.  A CR that ends no line
    is an error (RFC 3261 7: CR and LF only as CRLF): another parser would see a line end
    there, and an answer that copies the field (Call-ID, Via...) would carry it on, so it
    becomes a space and the message a 400.  All CRLF, the usual case, costs a split and
    two counts.
    """
    lines = head.split("\r\n")
    ends = len(lines) - 1
    if head.count("\n") == ends and head.count("\r") == ends:
        return lines, None
    error = None
    if head.count("\r") != head.count("\r\n"):
        head = _BARE_CR_RE.sub(" ", head)
        error = "Bare CR in header section"
    return head.replace("\r\n", "\n").split("\n"), error


def _fast_header_lines(lines: list[str], fields: dict[str, list[str]]) -> bool:
    """Parse unfolded, well-formed header lines; False sends the caller to the slow path."""
    name_keys = _NAME_KEYS
    for i in range(1, len(lines)):
        line = lines[i]
        name, colon, value = line.partition(":")
        if not colon:
            return False
        key = name_keys.get(name)
        if key is None:
            bare = name.rstrip(" \t")
            if not bare or not _is_token(bare):
                return False
            key = bare.lower()
            key = COMPACT_FORMS.get(key, key)
            if len(name_keys) < _NAME_KEYS_MAX:
                name_keys[name] = key
        value = value.strip(" \t")
        values = fields.get(key)
        if values is None:
            fields[key] = [value]
        else:
            values.append(value)
    return True


def _parse_header_lines(lines: list[str], fields: dict[str, list[str]]) -> str | None:
    """The general header loop: folding, and the reason of the first bad line."""
    key = None
    error: str | None = None
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t":
            if key is None:
                error = error or "Continuation line before any header"
                continue
            values = fields[key]
            values[-1] = (values[-1] + " " + line.strip(" \t")).strip(" \t")
            continue
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not colon or not name or not _is_token(name):
            error = error or "Malformed header line"
            key = None
            continue
        key = name.lower()
        key = COMPACT_FORMS.get(key, key)
        value = value.strip(" \t")
        existing = fields.get(key)
        if existing is None:
            fields[key] = [value]
        else:
            existing.append(value)
    return error


def _lenient_request_line(start: str, headers: Headers) -> re.Match[str]:
    """The slow path for a Request-Line that is not ``Method SP Request-URI SP SIP-Version``.

    Runs of SP between the elements and white space after the version (RFC 4475
    ``lwsstart``, ``trws``) are accepted: the elements are still unambiguous, and the
    line is never forwarded.  Anything else is a 400; the method is recovered when it
    can be, so that the endpoint has a request to answer instead of dropping it and
    leaving the client to retransmit (RFC 4475 ``lwsruri``: "should respond with a 400").
    """
    m = _LENIENT_REQUEST_LINE_RE.match(start)
    if m:
        return m
    method, _, rest = start.partition(" ")
    if not _is_token(method):
        raise ParseError("Malformed Request-Line", 400, Request("", "", headers))
    rest = rest.strip(" \t")
    uri, _, version = rest.rpartition(" ")
    if uri and _VERSION_RE.match(version):
        reason = "Whitespace in Request-URI"
    else:
        uri, reason = rest, "Malformed Request-Line"
    raise ParseError(reason, 400, Request(method, uri, headers))


def parse_head(head: str) -> Message:
    """Parse a start line and header fields (no body) into a Request or Response.

    Header field names are tokens; white space may precede the colon (``TO :``).
    Continuation lines (folding) are joined with one space.
    """
    lines, error = _split_lines(head)
    headers = Headers()
    if not _fast_header_lines(lines, headers._fields):
        headers._fields.clear()
        line_error = _parse_header_lines(lines, headers._fields)
        error = error or line_error
    start = lines[0]
    message: Message
    if start[:4].upper() == "SIP/":
        m = _STATUS_LINE_RE.match(start)
        if not m:
            raise ParseError("Malformed status line")
        status = int(m.group(2))
        message = Response(status, m.group(3) or "", headers)
        if m.group(1).upper() != _VERSION:
            raise ParseError("Version Not Supported", 505, message)
        if not 100 <= status <= 699:
            raise ParseError("Bad status code", 400, message)
    else:
        m = _REQUEST_LINE_RE.match(start) or _lenient_request_line(start, headers)
        message = Request(m.group(1), m.group(2), headers)
        if m.group(3).upper() != _VERSION:
            raise ParseError("Version Not Supported", 505, message)
    if error:
        raise ParseError(error, 400, message)
    return message


def _content_length(message: Message) -> int | None:
    values = message.headers._fields.get("content-length")
    if not values:
        return None
    if len(values) > 1:
        raise ParseError("Multiple Content-Length headers", 400, message)
    text = values[0].strip(" \t")
    if text.startswith("-"):
        raise ParseError("Negative Content-Length", 400, message)
    if not (text.isascii() and text.isdigit()):
        raise ParseError("Bad Content-Length", 400, message)
    return int(text)


def _find_head_end(data: bytes | bytearray, start: int = 0) -> tuple[int, int]:
    """Index of the blank line ending the header section and of the body start.

    CRLF CRLF is looked for first, so a bare-LF blank line is searched for only in
    the header section, not through the whole body.
    """
    end = data.find(b"\r\n\r\n", start)
    lf = data.find(b"\n\n", start, end if end >= 0 else len(data))
    if lf >= 0:
        return lf, lf + 2
    if end >= 0:
        return end, end + 4
    return -1, -1


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def parse_datagram(data: bytes) -> Message | None:
    """Frame and parse one datagram.  Returns None for keep-alives (only CR/LF/space).

    Raises :class:`ParseError`; its ``message`` is set whenever a response can be
    built, so the caller can answer malformed requests and drop malformed responses.
    """
    if len(data) > MAX_MESSAGE_SIZE:
        raise ParseError("Message Too Large", 513)
    begin = 0
    while data[begin : begin + 2] == b"\r\n" or data[begin : begin + 1] == b"\n":
        begin += 2 if data[begin : begin + 1] == b"\r" else 1
    if begin >= len(data) or not data[begin:].strip():
        return None
    head_end, body_start = _find_head_end(data, begin)
    if head_end < 0:
        head_end = body_start = len(data)
    message = parse_head(_decode(data[begin:head_end]))
    available = len(data) - body_start
    length = _content_length(message)
    if length is None:
        length = available
    elif length > available:
        raise ParseError("Content-Length larger than message", 400, message)
    message.body = data[body_start : body_start + length]
    return message


class StreamFramer:
    """Cuts a byte stream into messages by Content-Length (RFC 3261 18.3).

    :meth:`feed` returns messages, :data:`KEEPALIVE` markers and non-fatal
    :class:`ParseError` items (a well-framed but malformed message, to be answered).
    A fatal :class:`ParseError` (lost framing, oversize) is raised, with the items
    framed before it in :attr:`ParseError.framed`; the connection must then be closed.
    A missing Content-Length on a stream counts as 0.
    """

    def __init__(self, max_size: int = MAX_MESSAGE_SIZE) -> None:
        self.max_size = max_size
        self._buffer = bytearray()
        self._broken = False
        # What earlier feeds learnt, so that a message arriving a few bytes at a time
        # costs about what it costs whole (one byte per TCP segment must not make every
        # segment rescan and reparse the buffer, the reactor's time): no blank line
        # ends a header section before ``_scanned``, and ``_head`` is a header section
        # already parsed (message, its error, where the body starts, its length).
        self._scanned = 0
        self._head: tuple[Message, ParseError | None, int, int] | None = None

    def feed(self, data: bytes) -> list[Message | ParseError | _KeepAlive]:
        if self._broken:
            raise ParseError("Connection framing lost", 400, fatal=True)
        buf = self._buffer
        buf += data
        out: list[Message | ParseError | _KeepAlive] = []
        try:
            self._frame(buf, out)
        except ParseError as exc:
            exc.framed = out
            raise
        return out

    def _frame(self, buf: bytearray, out: list[Message | ParseError | _KeepAlive]) -> None:
        while buf:
            # CRLFs before a start line are ignored (RFC 3261 7.5); two are a ping.
            if buf[:1] in (b"\r", b"\n"):
                if buf[:4] == b"\r\n\r\n":
                    del buf[:4]
                    out.append(KEEPALIVE)
                    continue
                if buf in (b"\r", b"\r\n", b"\r\n\r"):
                    break  # maybe the start of a ping: wait for more
                del buf[: 2 if buf[:2] == b"\r\n" else 1]
                continue
            if self._head is None:
                self._head = self._parse_head(buf)
                if self._head is None:
                    break
            message, error, body_start, length = self._head
            if len(buf) < body_start + length:
                break
            self._head = None
            self._scanned = 0
            message.body = bytes(buf[body_start : body_start + length])
            del buf[: body_start + length]
            out.append(error if error is not None else message)

    def _parse_head(self, buf: bytearray) -> tuple[Message, ParseError | None, int, int] | None:
        """The header section at the start of *buf*, or None while it is incomplete."""
        # A blank line that ends before _scanned would have been found already.
        head_end, body_start = _find_head_end(buf, max(0, self._scanned - 3))
        if head_end < 0:
            if len(buf) > self.max_size:
                self._broken = True
                raise ParseError("Message Too Large", 513, fatal=True)
            self._scanned = len(buf)
            return None
        error: ParseError | None = None
        try:
            message = parse_head(_decode(bytes(buf[:head_end])))
        except ParseError as exc:
            if exc.message is None:
                self._broken = True
                exc.fatal = True
                raise
            message, error = exc.message, exc
        try:
            length = _content_length(message) or 0
        except ParseError as exc:
            self._broken = True
            exc.fatal = True
            raise
        if body_start + length > self.max_size:
            self._broken = True
            raise ParseError("Message Too Large", 513, message, fatal=True)
        return message, error, body_start, length


def validate(message: Message) -> None:
    """Check the mandatory header fields of RFC 3261 8.1.1 / 8.2 and their scalars.

    Raises :class:`ParseError` (400 with a specific reason phrase).  Max-Forwards may
    be absent (RFC 2543 clients, RFC 4475 ``inv2543``); everything else is required.
    """
    try:
        # Each view parses and checks its header on first use (and caches it).  CSeq
        # comes first: when several fields are bad, its error is the one to report
        # (RFC 4475 scalar02: "respond with a 400 Bad Request due to the CSeq error").
        cseq = message.cseq
        _ = (message.call_id, message.from_, message.to, message.top_via,
             message.max_forwards, message.expires, message.content_type)
        if isinstance(message, Request):
            if cseq.method != message.method:
                raise HeaderError("CSeq method does not match request method")
            uri = message.request_uri
            if isinstance(uri, SipURI) and uri.headers:
                raise HeaderError("Request-URI carries headers")
    except HeaderError as exc:
        raise ParseError(str(exc), 400, message) from None
