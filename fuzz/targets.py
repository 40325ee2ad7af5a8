"""The coverage-guided fuzz targets: one function per parser, and the whole agent.

Each target takes the fuzzer's bytes and raises only when a promise is broken:

* ``sip``: :func:`parse_datagram` + :func:`validate` + the UAS checks raise nothing but
  :class:`ParseError`, with a status a response can carry;
* ``stream``: :class:`StreamFramer` yields only messages, keep-alives and non-fatal
  errors, raises only fatal ones, and frames the same however the bytes are cut;
* ``endpoint``: the whole agent, the input split into datagrams at :data:`SEPARATOR`
  then sent again over a stream, with every invariant of ``tests/support/fuzzstack.py``
  (time does not pass: timers cost more than parsing, and the hypothesis sessions of
  ``tests/unit/fuzz`` let it pass);
* ``xml``, ``pidf``, ``xpidf``, ``dialoginfo``, ``watcherinfo``: each document parser
  raises nothing but :class:`DocumentError`, and what it read is written back valid
  against the packaged schemas (XPIDF has none: it must still be written);
* ``compose``: RPID and the data model (persons, devices) as composition uses them:
  a parsed document composed with itself as two sources, on the phone, is valid PIDF.

Seeds come from the repository: the RFC 4475 and RFC 5118 torture messages, the
agent's own seed sessions, and real devices' documents (``fuzz/seeds/documents``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from lxml import etree

from sipresence.documents.compose import Source, compose
from sipresence.documents.dialoginfo import parse_dialog_info, serialize_dialog_info
from sipresence.documents.pidf import parse_pidf, serialize_pidf
from sipresence.documents.watcherinfo import parse_watcherinfo, serialize_watcherinfo
from sipresence.documents.xml import DocumentError, parse_xml, schema
from sipresence.documents.xpidf import parse_presence, parse_xpidf, serialize_xpidf
from sipresence.sip.message import Message, Request
from sipresence.sip.parser import KEEPALIVE, ParseError, StreamFramer, parse_datagram, validate
from sipresence.sip.uas import check_request
from sipresence.store.sqlite import SqliteStore
from tests.support.fuzzstack import DOCUMENTS, Stack, deterministic_ids, seed_bytes

__all__ = ["SEPARATOR", "TARGETS", "Target"]

ROOT = Path(__file__).resolve().parents[1]
#: Where the endpoint target cuts its input into datagrams.
SEPARATOR = b"\r\n--next-datagram--\r\n"
T = TypeVar("T")
_ALLOWED = ("OPTIONS", "INVITE", "ACK", "CANCEL", "REGISTER", "SUBSCRIBE", "PUBLISH")


def _sip_corpus() -> Iterator[bytes]:
    for name in ("rfc4475", "rfc5118"):
        for path in sorted((ROOT / "tests" / "unit" / "sip" / name).iterdir()):
            if path.name not in ("README.md", "SHA256SUMS"):
                yield path.read_bytes()
    yield from seed_bytes()


def _document_corpus() -> Iterator[bytes]:
    yield from DOCUMENTS.values()


# -- SIP --------------------------------------------------------------------------------

def sip(data: bytes) -> None:
    try:
        message = parse_datagram(data)
        if message is None:
            return
        validate(message)
        if isinstance(message, Request):
            check_request(message, allowed=_ALLOWED, supported=(), schemes=("sip", "sips"))
    except ParseError as exc:
        if not 100 <= exc.status <= 699 or not exc.reason:
            raise AssertionError(f"unanswerable ParseError {exc.status} {exc.reason!r}") from exc


def _described(items: list[object]) -> list[object]:
    out: list[object] = []
    for item in items:
        if isinstance(item, Message):
            out.append((item.start_line(), list(item.headers), item.body))
        elif isinstance(item, ParseError):
            if item.fatal:
                raise AssertionError(f"fatal {item!r} yielded, not raised")
            out.append(("error", item.status, item.reason))
        elif item is KEEPALIVE:
            out.append("keep-alive")
        else:
            raise AssertionError(f"StreamFramer yielded {item!r}")
    return out


def _framed(chunks: list[bytes]) -> list[object]:
    """What a framer makes of *chunks*, up to and including a fatal error."""
    framer = StreamFramer()
    out: list[object] = []
    for chunk in chunks:
        try:
            out += _described(list(framer.feed(chunk)))
        except ParseError as exc:
            if not exc.fatal:
                raise AssertionError(f"non-fatal {exc!r} raised") from exc
            out += [*_described(list(exc.framed)), ("fatal", exc.status, exc.reason)]
            break
    return out


def stream(data: bytes) -> None:
    """The first four bytes say where to cut the rest: the framing must not depend on it."""
    head, rest = data[:4], data[4:]
    points = sorted({b * len(rest) // 256 for b in head})
    whole = _framed([rest])
    cut = _framed([rest[a:b] for a, b in zip([0, *points], [*points, len(rest)], strict=True)])
    # A message still incomplete at the end is not yielded by either; up to that, both
    # must agree item by item.
    if whole != cut[:len(whole)] and cut != whole[:len(cut)]:
        raise AssertionError(f"framing depends on the cuts:\n{whole!r}\n{cut!r}")


_STORE: list[SqliteStore] = []


def endpoint(data: bytes) -> None:
    if not _STORE:
        _STORE.append(SqliteStore(":memory:"))
    with deterministic_ids():
        stack = Stack(store=_STORE[0])
        for part in data.split(SEPARATOR)[:16]:
            stack.datagram(part)
        stack.stream([data.replace(SEPARATOR, b"")])


def _endpoint_corpus() -> Iterator[bytes]:
    """Seed sessions: each seed alone, and the seeds in order as one session."""
    seeds = seed_bytes()
    yield from seeds
    yield SEPARATOR.join(seeds)
    for start in range(0, len(seeds), 5):  # shorter sessions, each after a PUBLISH
        yield SEPARATOR.join(seeds[:1] + seeds[start:start + 5])


# -- documents --------------------------------------------------------------------------

def _valid(document: bytes) -> None:
    """Strict out: what the agent writes is valid against the packaged schemas."""
    bundle = schema()
    if not bundle.validate(etree.fromstring(document)):
        raise AssertionError(f"written document is invalid: {bundle.error_log}\n{document!r}")


def _read(read: Callable[[bytes], T], data: bytes) -> T | None:
    """What *read* makes of *data*; None when it refused it, as it may."""
    try:
        return read(data)
    except DocumentError:
        return None


def xml(data: bytes) -> None:
    _read(parse_xml, data)


def pidf(data: bytes) -> None:
    document = _read(parse_pidf, data)
    if document is not None:
        _valid(serialize_pidf(document))


def xpidf(data: bytes) -> None:
    for read in (parse_xpidf, parse_presence):
        document = _read(read, data)
        if document is not None:
            serialize_xpidf(document)
            _valid(serialize_pidf(document))


def dialoginfo(data: bytes) -> None:
    info = _read(parse_dialog_info, data)
    if info is not None:
        _valid(serialize_dialog_info(info))


def watcherinfo(data: bytes) -> None:
    info = _read(parse_watcherinfo, data)
    if info is not None:
        _valid(serialize_watcherinfo(info))


def composed(data: bytes) -> None:
    document = _read(parse_presence, data)
    if document is not None:
        sources = [Source("publish:a", document, 1.0),
                   Source("publish:b", document, 2.0)]
        for on_the_phone in (False, True):
            _valid(serialize_pidf(compose("sip:alice@example.com", sources,
                                          on_the_phone=on_the_phone)))


@dataclass(frozen=True)
class Target:
    run: Callable[[bytes], None]
    corpus: Callable[[], Iterator[bytes]]


TARGETS = {
    "sip": Target(sip, _sip_corpus),
    "stream": Target(stream, lambda: (b"\x10\x40\x80\xc0" + seed for seed in _sip_corpus())),
    "endpoint": Target(endpoint, _endpoint_corpus),
    "xml": Target(xml, _document_corpus),
    "pidf": Target(pidf, _document_corpus),
    "xpidf": Target(xpidf, _document_corpus),
    "dialoginfo": Target(dialoginfo, _document_corpus),
    "watcherinfo": Target(watcherinfo, _document_corpus),
    "compose": Target(composed, _document_corpus),
}
