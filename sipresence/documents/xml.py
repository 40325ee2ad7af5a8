"""The one hardened XML parser, the schemas, and the plumbing every document format shares.

Every body the agent reads goes through :func:`parse_xml`: entity expansion, DTD loading,
network and file access are all off, because a PUBLISH body is attacker-controlled and a
billion-laughs document or an external entity must cost nothing.  Failures of any kind
become one :class:`DocumentError` whose text is short enough to be a SIP reason phrase.

The namespace constants of all formats live here (one place each), together with the
aliases real devices use for them: pre-RFC RPID drafts, the old servcaps namespace,
CPIM-PIDF.  Format modules compare ``(namespace, local name)`` pairs that went through
:func:`qualified`, so each quirk is handled once.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache

from lxml import etree

import pidf_schemas

__all__ = [
    "CAPS_NS",
    "CIPID_NS",
    "DIALOG_INFO_NS",
    "DM_NS",
    "LOCATION_TYPE_NS",
    "NAMESPACE_ALIASES",
    "PIDF_NS",
    "RPID_NS",
    "TIMED_STATUS_NS",
    "WATCHERINFO_NS",
    "XML_DECLARATION",
    "XML_NS",
    "DocumentError",
    "Extension",
    "Note",
    "any_uri",
    "build_extension",
    "clean_text",
    "digest",
    "extension_from",
    "format_datetime",
    "language",
    "note_element",
    "note_from",
    "parse_datetime",
    "parse_xml",
    "qualified",
    "schema",
    "text_of",
    "xml_id",
]

PIDF_NS = "urn:ietf:params:xml:ns:pidf"
DM_NS = "urn:ietf:params:xml:ns:pidf:data-model"
RPID_NS = "urn:ietf:params:xml:ns:pidf:rpid"
CIPID_NS = "urn:ietf:params:xml:ns:pidf:cipid"
CAPS_NS = "urn:ietf:params:xml:ns:pidf:caps"
TIMED_STATUS_NS = "urn:ietf:params:xml:ns:pidf:timed-status"
LOCATION_TYPE_NS = "urn:ietf:params:xml:ns:location-type"
DIALOG_INFO_NS = "urn:ietf:params:xml:ns:dialog-info"
WATCHERINFO_NS = "urn:ietf:params:xml:ns:watcherinfo"
XML_NS = "http://www.w3.org/XML/1998/namespace"

#: Namespaces devices still send in place of the RFC ones.  The RPID drafts come from
#: Cisco (``status:rpid``), eXosip (``status:rpid-status``) and Asterisk chan_sip /
#: eyeBeam (``pidf:person``, ``rpid:status:rpid-status``, ``rpid:rpid-person``);
#: ``cpim-pidf`` is the pre-RFC 3863 name of PIDF.  Vendor namespaces such as
#: ``urn:cisco:params:xml:ns:pidf:rpid`` are not aliases: their elements differ.
NAMESPACE_ALIASES = {
    "urn:ietf:params:xml:ns:cpim-pidf": PIDF_NS,
    "urn:ietf:params:xml:ns:pidf:person": DM_NS,
    "urn:ietf:params:xml:ns:pidf:status:rpid": RPID_NS,
    "urn:ietf:params:xml:ns:pidf:status:rpid-status": RPID_NS,
    "urn:ietf:params:xml:ns:pidf:rpid:status:rpid-status": RPID_NS,
    "urn:ietf:params:xml:ns:pidf:rpid:rpid-person": RPID_NS,
    "urn:ietf:params:xml:ns:pidf:servcaps": CAPS_NS,
}

#: Namespaces the packaged schemas define: ids inside kept extension elements of these
#: namespaces are typed xs:ID, so they take part in the document-wide uniqueness rule.
SCHEMA_NAMESPACES = frozenset({PIDF_NS, DM_NS, RPID_NS, CIPID_NS, CAPS_NS, TIMED_STATUS_NS})

MAX_SIZE = 65536

#: The declaration every emitted document starts with (double quotes, as devices write it).
XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


class DocumentError(ValueError):
    """A body that is not a well-formed document of the expected kind.

    ``reason`` is short and printable: it becomes the reason phrase of a SIP 400.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _NoFetch(etree.Resolver):
    """Answer every external DTD or entity lookup with nothing.

    ``no_network`` only covers the network: libxml2 still reads ``file:`` URLs and plain
    paths named by a parameter entity in an internal subset (``/dev/zero`` would hang it).
    """

    def resolve(self, url: str, pubid: str, context: object) -> object:
        return self.resolve_string("", context)


_PARSERS = threading.local()


def _parser() -> etree.XMLParser:
    """This thread's parser (lxml parsers may be reused, but not shared by threads)."""
    parser: etree.XMLParser | None = getattr(_PARSERS, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
            collect_ids=False,
        )
        parser.resolvers.add(_NoFetch())
        _PARSERS.parser = parser
    return parser


def parse_xml(data: bytes, *, max_size: int = MAX_SIZE) -> etree._Element:
    """Parse *data* into its root element, or raise :class:`DocumentError`.

    The encoding declaration is honoured (FreeSWITCH says ISO-8859-1).  Whitespace before
    the XML declaration is forgiven.  Documents that declare entities or refer to one
    are refused outright rather than left half-expanded.  One parser per thread keeps
    this safe to use from any thread (lxml parsers are not shareable across threads).
    """
    if len(data) > max_size:
        raise DocumentError("XML body too large")
    data = data.lstrip(b" \t\r\n")
    if not data:
        raise DocumentError("empty XML body")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise DocumentError("XML body not well-formed") from exc
    dtd = root.getroottree().docinfo.internalDTD
    if dtd is not None and any(True for _ in dtd.iterentities()):
        raise DocumentError("XML entity declarations not allowed")
    if any(True for _ in root.iter(etree.Entity)):
        raise DocumentError("XML entity references not allowed")
    return root


class _PackagedSchemas(etree.Resolver):
    """Resolve ``schemaLocation`` to the schemas shipped in :mod:`pidf_schemas`."""

    def resolve(self, url: str, pubid: str, context: object) -> object:
        name = url.rsplit("/", 1)[-1]
        return self.resolve_string(pidf_schemas.schema_file(name).read_bytes(), context)


@cache
def schema(name: str = "presence-bundle.xsd") -> etree.XMLSchema:
    """The compiled packaged schema *name*, compiled once, offline.

    Imports are answered from the package data, so this works from a wheel or a zip.
    """
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    parser.resolvers.add(_PackagedSchemas())
    source = pidf_schemas.schema_file(name).read_bytes()
    return etree.XMLSchema(etree.fromstring(source, parser, base_url=f"pidf_schemas/{name}"))


def qualified(element: etree._Element, default_ns: str = "") -> tuple[str, str]:
    """``(namespace, local name)`` of *element* with the namespace aliases applied.

    *default_ns* stands in for "no namespace": a PIDF document without ``xmlns``
    (pjproject#2909) is read as PIDF.  Read from the ``{namespace}local`` tag string:
    this runs for every element of every document published.
    """
    tag = element.tag
    if not isinstance(tag, str):
        raise ValueError(f"not an element: {element!r}")
    namespace, local = split_tag(tag)
    namespace = namespace or default_ns
    return NAMESPACE_ALIASES.get(namespace, namespace), local


def split_tag(tag: str) -> tuple[str, str]:
    """``(namespace, local name)`` of a ``{namespace}local`` tag, "" for none.

    Not ``etree.QName``: it raises on a name libxml2 read leniently (``x:presence``
    with the prefix unbound, found by fuzzing), and the parsers must answer such a
    document, not raise out of it."""
    if tag[:1] == "{":
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return "", tag


def text_of(element: etree._Element) -> str:
    """The element's text, trimmed: devices pad values (``<basic> open </basic>``)."""
    return (element.text or "").strip()


_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def clean_text(value: str) -> str:
    """*value* without the characters XML 1.0 cannot carry (lxml refuses them)."""
    return _NOT_XML_CHAR.sub("", value)


_LANGUAGE = re.compile(r"[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*")


def language(value: str | None) -> str | None:
    """A valid ``xml:lang`` (xs:language) or None: a broken tag is worth less than none."""
    value = (value or "").strip()
    return value if _LANGUAGE.fullmatch(value) else None


@dataclass(frozen=True)
class Note:
    """Free text with an optional ``xml:lang``: the PIDF note and RFC 4479 ``Note_t``."""

    text: str
    lang: str | None = None


def note_from(element: etree._Element) -> Note | None:
    """The :class:`Note` of *element*; empty ones (Cisco's ``<note xml:lang="en"/>``) are None."""
    text = text_of(element)
    if not text:
        return None
    return Note(text, language(element.get(f"{{{XML_NS}}}lang")))


def note_element(parent: etree._Element, tag: str, note: Note) -> etree._Element:
    """Append *note* to *parent* as element *tag*."""
    element = etree.SubElement(parent, tag)
    element.text = clean_text(note.text)
    lang = language(note.lang)
    if lang:
        element.set(f"{{{XML_NS}}}lang", lang)
    return element


def parse_datetime(value: str | None) -> datetime | None:
    """An xs:dateTime read leniently (pjsua sends milliseconds and ``Z``); junk is None."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def format_datetime(value: datetime) -> str:
    """An xs:dateTime: in UTC with ``Z`` when *value* is aware, as given when naive."""
    if value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"
    return value.isoformat()


_NCNAME = re.compile(r"[A-Za-z_][A-Za-z0-9._-]*")
_NOT_NCNAME = re.compile(r"[^A-Za-z0-9._-]+")


def digest(value: str, size: int = 6) -> str:
    """A short hex digest of *value*, the same in every process (ids must not move).

    SIP header text (a registered contact) may carry non-UTF-8 bytes as surrogate
    escapes: they are digested as the bytes they stand for."""
    return hashlib.blake2s(value.encode("utf-8", "surrogateescape"),
                           digest_size=16).hexdigest()[:size]


def xml_id(value: str | None, prefix: str) -> str:
    """*value* made a valid xs:ID, the same way every time.

    Asterisk uses the extension (``800``), Flexisip a SIP URI, Kamailio nothing.  A value
    that only lacks a leading letter gets *prefix* (``800`` -> ``t800``); one whose
    characters had to be replaced also gets a short hash of the original, so that two
    different ids cannot collapse into one.  Uniqueness within a document is the
    serializer's job.
    """
    value = value or ""
    if _NCNAME.fullmatch(value):
        return value
    cleaned = _NOT_NCNAME.sub("-", value).strip("-")
    if cleaned != value:
        cleaned = f"{cleaned}-{digest(value)}" if cleaned else digest(value)
    return cleaned if _NCNAME.fullmatch(cleaned) else prefix + cleaned


@lru_cache(maxsize=4096)
def _is_any_uri(value: str) -> bool:
    document = etree.Element(f"{{{PIDF_NS}}}presence", entity=value)
    return bool(schema("pidf.xsd").validate(document))


def _percent_encode(value: str, safe: str) -> str:
    return re.sub(f"[^A-Za-z0-9{re.escape(safe)}]",
                  lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), value)


def any_uri(value: str) -> str:
    """*value* as a valid xs:anyURI.

    libxml2 takes most strings (spaces, ``**1001@host``) but refuses what it cannot parse
    as a URI reference: an unclosed ``[``, and also a SIP URI with an IPv6 literal
    (``sip:[2001:db8::1]``, whose brackets RFC 3986 allows only after ``//``).  Such values
    are percent-encoded rather than dropped, an address being worth keeping even when
    mangled: first the characters outside RFC 3986, and if that is not enough all but
    the unreserved ones, which always gives a valid relative reference.
    """
    value = clean_text(value.strip())
    if _is_any_uri(value):
        return value
    encoded = _percent_encode(value, "-._~:/?#@!$&'()*+,;=")
    return encoded if _is_any_uri(encoded) else _percent_encode(value, "-._~")


@dataclass(frozen=True)
class Extension:
    """An extension element kept as an immutable tree, so models stay comparable.

    Text and tails are trimmed (whitespace between elements is layout, not data) and
    tags carry the canonical namespace, so the element comes back identical whatever
    prefixes and namespace aliases the publisher used.
    """

    tag: str
    attributes: tuple[tuple[str, str], ...] = ()
    text: str | None = None
    children: tuple[Extension, ...] = ()
    tail: str | None = None

    @property
    def namespace(self) -> str:
        return split_tag(self.tag)[0]


def extension_from(element: etree._Element, default_ns: str = "") -> Extension:
    """Snapshot *element* as an :class:`Extension`, applying the namespace aliases.

    ``id`` attributes in schema namespaces are dropped: they are optional everywhere an
    extension can carry one, and kept they would collide once documents are composed.
    """
    namespace, local = qualified(element, default_ns)
    tag = f"{{{namespace}}}{local}" if namespace else local
    attributes = tuple(sorted(
        (name, value.strip()) for name, value in element.attrib.items()
        if not (name == "id" and namespace in SCHEMA_NAMESPACES)
    ))
    children = tuple(extension_from(child, default_ns) for child in element
                     if isinstance(child.tag, str))
    return Extension(tag, attributes, text_of(element) or None, children,
                     (element.tail or "").strip() or None)


def build_extension(parent: etree._Element, extension: Extension) -> etree._Element:
    """Append *extension* to *parent*; prefixes come from the ancestors' declarations."""
    element = etree.SubElement(parent, extension.tag)
    for name, value in extension.attributes:
        element.set(name, clean_text(value))
    if extension.text:
        element.text = clean_text(extension.text)
    for child in extension.children:
        build_extension(element, child)
    if extension.tail:
        element.tail = clean_text(extension.tail)
    return element
