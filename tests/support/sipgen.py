"""Hypothesis strategies for whole SIP sessions: valid seeds, then mutated.

A session is a list of steps.  A :class:`Step` names a seed of
:data:`~tests.support.fuzzstack.SEEDS` (built at run time against what the agent said
so far, so a refresh carries a live entity tag) and the mutations to apply to it:

* on header fields: added (from a pool of the fields the agent reads, with hostile
  values), duplicated, dropped, truncated, mis-cased, written in compact form, folded
  onto a continuation line, given a hostile value, or a well-formed one that means
  something else (another user or domain, an expiry at the bounds, a stray tag);
* Content-Length lies: too small, too large, negative, not a number, twice, absent;
* bodies: seed documents truncated or with a value replaced, nested deeper than the
  parser allows, not well formed, with entities, in other encodings, with NUL bytes;
* on the bytes: non-UTF-8 and NUL bytes inserted, bytes flipped or cut off, and a
  second message appended to the same datagram.

A step may also let time pass (:class:`Wait`), so expiries and retransmissions happen.
Mutations draw their positions as plain integers taken modulo what is there, so a
shrunk example stays meaningful.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st

from .fuzzstack import DIALOG_INFO, DOCUMENTS, PIDF, SEEDS, Context, Draft, Stack

__all__ = ["Step", "Wait", "session", "steps", "bodies", "HEADER_NAMES", "HEADER_VALUES",
           "run"]

#: Fields the agent reads, as written and in compact form (RFC 3261 7.3.3, RFC 6665).
HEADER_NAMES = ("Via", "From", "To", "Call-ID", "CSeq", "Contact", "Event", "Expires",
                "Accept", "Content-Type", "SIP-If-Match", "Max-Forwards", "Require",
                "Record-Route", "Route", "Authorization", "Subscription-State",
                "Allow-Events", "Min-Expires", "Content-Length", "Supported", "User-Agent",
                "v", "f", "t", "i", "m", "l", "c", "o", "k", "e", "u")
COMPACT = {"via": "v", "from": "f", "to": "t", "call-id": "i", "contact": "m",
           "content-type": "c", "event": "o", "supported": "k", "allow-events": "u",
           "content-length": "l"}
#: Values that have broken parsers somewhere: empty, separators alone, unbalanced
#: brackets and quotes, numbers out of range, non-UTF-8 (as surrogate escapes) and NUL.
HEADER_VALUES = (
    "", " ", ",", ";", ";;", "<", ">", "<>", '"', '"\\', "\\", "=", "*", "0", "-1", "1.5",
    "4294967296", "99999999999999999999999999", "abc", "\x00", "a\x00b", "\udcff\udcfe",
    "\u00e9t\u00e9", "sip:", "<sip:>", "sip:[::1", "<sip:[::1]:99999>", "sip:@", "tel:+1",
    "<sip:alice@example.com>;tag=", "<sip:alice@example.com>;tag", '"a\udcc3" <sip:a@b>;tag=1',
    "<sip:bob@127.0.0.1:5070>;q=2.5", "<sip:bob@127.0.0.1:5070>;expires=-5",
    "<sip:bob@127.0.0.1:5070>;expires=99999999999999999999", "<sip:a@b>, <sip:c@d>",
    "<sip:a@b;transport=tcp?Subject=x>", "sip:a@b;maddr=", "<sips:a@[v1.x]>",
    "SIP/2.0/UDP", "SIP/2.0/UDP [::1]:0;branch=z9hG4bK", "SIP/2.0/UDP h;rport=;received=",
    "SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bKx;maddr=::1", "1 PUBLISH", "1", "1 ",
    "-1 SUBSCRIBE", "4294967296 SUBSCRIBE", "presence", "presence;id=", "presence;id=a;id=b",
    "dialog;id", "presence.winfo", "PRESENCE", "application/", "/", "*/*;q=0",
    "application/pidf+xml;q=x", "application/dialog-info+xml;charset=\"", "text/plain",
    "Digest", 'Digest username="alice", realm="sipresence", nonce="", uri="sip:a", '
    'response=""', 'Digest username="alice", realm="sipresence", nonce="\udcff.1", '
    'uri="sip:\udcc3", response="\u00e9"', "Digest username=\"\\", "terminated;reason=",
    "100rel", "a" * 300,
)
#: Values that keep a field well formed but change what it means: another user or
#: domain, a tag that matches nothing, odd but valid numbers and parameters.
MEANINGFUL = {
    "To": ("<sip:alice@elsewhere.example>", "<sip:bob@example.com>", "<sip:alice@EXAMPLE.COM>",
           "<pres:alice@example.com>", "<sip:alice@example.com>;tag=nope", "<tel:+15550100>",
           '"Al\u00efce" <sip:alice@example.com>'),
    "From": ("<sip:alice@example.com>;tag=x", "<sip:mallory@elsewhere.example>;tag=m",
             "<sip:bob@example.com>", '"B\u00f6b" <sip:bob@example.com>;tag=b;x=y'),
    "Contact": ("*", "<sip:bob@[::1]:5070>", "<sips:bob@127.0.0.1:5071;transport=tls>",
                "<sip:bob@127.0.0.1:5070>;expires=0", "<sip:bob@127.0.0.1:5070>;q=0.0",
                "<sip:bob@127.0.0.1>, <sip:bob@127.0.0.2>", "<urn:uuid:1>",
                "<sip:bob@host.invalid>"),
    "Expires": ("0", "1", "59", "60", "86401", "4294967295", " 600 "),
    "Event": ("presence;id=1", "dialog;sla", "presence.winfo", "message-summary", "Presence"),
    "Accept": ("*/*", "application/*", "application/pidf+xml;q=0", "application/xpidf+xml, "
               "application/pidf+xml;q=0.5", "text/html"),
    "CSeq": ("0 {method}", "2147483647 {method}", "4294967295 {method}", "1 {method}"),
    "Request-URI": ("sip:alice@elsewhere.example", "sip:bob@example.com", "sips:alice@example.com",
                    "pres:alice@example.com", "tel:+15550100", "sip:example.com",
                    "sip:alice@example.com;maddr=127.0.0.1"),
}
#: Bits of bytes that parsers trip on.
JUNK = (b"\x00", b"\xff", b"\xc3", b"\xc0\x80", b"\xed\xa0\x80", b"\r", b"\n", b"\r\n",
        b"\r\n\r\n", b" ", b"\t", b":", b";", b",", b"<", b'"', b"%", b"%00", b"\r\n ",
        b"Content-Length: 99999\r\n", b"\xef\xbb\xbf")


# -- mutations ----------------------------------------------------------------------

@dataclass(frozen=True)
class FieldOp:
    """Duplicate, drop, truncate, mis-case, compact or fold the field at ``at``."""

    kind: str
    at: int
    arg: int

    def apply(self, draft: Draft) -> None:
        if not draft.headers:
            return
        i = self.at % len(draft.headers)
        name, value = draft.headers[i]
        if self.kind == "dup":
            draft.headers.insert(i, [name, value])
        elif self.kind == "drop":
            del draft.headers[i]
        elif self.kind == "truncate":
            draft.headers[i][1] = value[: self.arg % (len(value) + 1)]
        elif self.kind == "case":
            draft.headers[i][0] = "".join(
                c.swapcase() if self.arg >> (k % 16) & 1 else c for k, c in enumerate(name))
        elif self.kind == "compact":
            draft.headers[i][0] = COMPACT.get(name.lower(), name)
        elif self.kind == "fold":
            cut = self.arg % (len(value) + 1)
            draft.headers[i][1] = value[:cut] + ("\r\n " if self.arg & 1 else "\r\n\t") + value[
                cut:]


@dataclass(frozen=True)
class AddField:
    at: int
    name: str
    value: str

    def apply(self, draft: Draft) -> None:
        draft.headers.insert(self.at % (len(draft.headers) + 1), [self.name, self.value])


@dataclass(frozen=True)
class SetValue:
    at: int
    value: str

    def apply(self, draft: Draft) -> None:
        if draft.headers:
            draft.headers[self.at % len(draft.headers)][1] = self.value


@dataclass(frozen=True)
class SetField:
    """Give the field *name* (the first one, or a new one) a well-formed value that
    means something else; ``Request-URI`` replaces the Request-URI."""

    name: str
    value: str

    def apply(self, draft: Draft) -> None:
        method = draft.start.partition(" ")[0]
        value = self.value.replace("{method}", method)
        if self.name == "Request-URI":
            if not draft.start.startswith("SIP/"):
                draft.start = f"{method} {value} SIP/2.0"
            return
        for field_ in draft.headers:
            if field_[0].lower() == self.name.lower():
                field_[1] = value
                return
        draft.headers.append([self.name, value])


@dataclass(frozen=True)
class ContentLength:
    """A Content-Length that lies: ``delta`` off, or one of the odd spellings."""

    kind: str
    delta: int

    def apply(self, draft: Draft) -> None:
        true = len(draft.body)
        draft.content_length = {
            "off": [str(max(0, true + self.delta))], "absent": [],
            "twice": [str(true), str(true + self.delta)], "negative": ["-1"],
            "junk": ["12abc"], "padded": [f" {true} "], "huge": ["99999999999999999999"],
        }[self.kind]


@dataclass(frozen=True)
class Body:
    body: bytes

    def apply(self, draft: Draft) -> None:
        draft.body = self.body


@dataclass(frozen=True)
class ByteOp:
    """On the serialised message: insert junk, flip a bit, delete or cut off."""

    kind: str
    at: int
    junk: bytes = b""

    def apply_bytes(self, data: bytes) -> bytes:
        i = self.at % (len(data) + 1)
        if self.kind == "insert":
            return data[:i] + self.junk + data[i:]
        if self.kind == "flip" and i < len(data):
            return data[:i] + bytes([data[i] ^ (1 << (self.at >> 16) % 8)]) + data[i + 1:]
        if self.kind == "delete":
            return data[:i] + data[i + 1 + (self.at >> 16) % 16:]
        return data[:i]  # truncate


@dataclass(frozen=True)
class Append:
    """A second message in the same datagram (or right behind on a stream)."""

    seed: str

    def apply_bytes(self, data: bytes, ctx: Context) -> bytes:
        return data + SEEDS[self.seed](ctx).to_bytes()


DraftOp = FieldOp | AddField | SetValue | SetField | ContentLength | Body


@dataclass(frozen=True)
class Step:
    """One input: a seed, the mutations of its fields, then those of its bytes."""

    seed: str
    edits: tuple[DraftOp, ...] = ()
    byte_ops: tuple[ByteOp | Append, ...] = ()

    def render(self, ctx: Context) -> bytes:
        draft = SEEDS[self.seed](ctx)
        for edit in self.edits:
            edit.apply(draft)
        data = draft.to_bytes()
        for op in self.byte_ops:
            data = op.apply_bytes(data, ctx) if isinstance(op, Append) else op.apply_bytes(data)
        return data


@dataclass(frozen=True)
class Wait:
    seconds: float


@dataclass
class Session:
    """A drawn session, and whether it goes over a stream (with these chunk cuts)."""

    steps: list[Step | Wait]
    stream_cuts: list[int] | None = None
    inputs: list[bytes] = field(default_factory=list)  # what was fed, for the report


def run(stack: Stack, session: Session) -> None:
    """Feed *session* to *stack*; raises :class:`~tests.support.fuzzstack.Violation`."""
    for step in session.steps:
        if isinstance(step, Wait):
            stack.advance(step.seconds)
            continue
        data = step.render(stack.ctx)
        session.inputs.append(data)
        if session.stream_cuts is None:
            stack.datagram(data, seed=step.seed)
        else:
            points = sorted({c % (len(data) + 1) for c in session.stream_cuts})
            chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)],
                                                strict=True)]
            stack.stream(chunks, seed=step.seed)


# -- bodies -------------------------------------------------------------------------

def _nested(depth: int) -> bytes:
    return (b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:alice@example.com">'
            + b"<tuple id='t'>" + b"<x>" * depth + b"</x>" * depth + b"</tuple></presence>")


_BROKEN = (
    b"", b" ", b"<", b"<presence", b"<presence/>", b"<?xml version='1.0'?>",
    b'<presence xmlns="urn:ietf:params:xml:ns:pidf"><tuple></presence>',
    b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
    b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b">&b;</presence>',
    b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY x SYSTEM "file:///dev/zero">]><p>&x;</p>',
    b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY % x SYSTEM "file:///etc/passwd"> %x;]><p/>',
    b'<?xml version="1.0" encoding="UTF-16"?><presence/>',
    b'<?xml version="1.0" encoding="x-no-such"?><presence/>',
    "<?xml version='1.0' encoding='ISO-8859-1'?><presence xmlns='urn:ietf:params:xml:ns:"
    "pidf' entity='sip:a@b'><note>caf\u00e9</note></presence>".encode("latin-1"),
    '<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"><note>\u00e9</note>'
    '</presence>'.encode("utf-16"),
    b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"><note>\xff\xfe</note>'
    b"</presence>",
    b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b">\x00</presence>',
    b'<presence xmlns="urn:ietf:params:xml:ns:cpim-pidf" entity="pres:a@b"><tuple id="1">'
    b"<status><basic>open</basic></status></tuple></presence>",
    b'<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="-1" state="partial"'
    b' entity="sip:alice@example.com"><dialog id=""><state>early</state></dialog>'
    b"</dialog-info>",
    b'<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="99999999999999999999'
    b'99999" state="full" entity=""/>',
    b'<watcherinfo xmlns="urn:ietf:params:xml:ns:watcherinfo" version="0" state="full"/>',
)
#: Replacements for one attribute value or text node of a seed document.
_XML_VALUES = (b"", b" ", b"-1", b"0", b"99999999999999999999", b"1e308", b"NaN", b"&amp;",
               b"&#0;", b"&#x110000;", b"&#xD800;", b"&lt;", b"sip:", b"sip:[::1", b"<",
               b"2024-13-45T25:61:61Z", b"9999-12-31T23:59:59+14:00", b"0001-01-01T00:00:00-14:00",
               b"0001-01-01T00:00:00", b"2024-05-01T10:00:00+99:00", b"\xc3\x28", b"\x00",
               b"open", b"closed", b"confirmed", b"terminated", b"\xe2\x80\xae",
               b"a" * 5000)
_SEED_BODIES = (PIDF, DIALOG_INFO.replace(b"{v}", b"7"), *DOCUMENTS.values())


@st.composite
def _seed_variant(draw: st.DrawFn) -> bytes:
    """A seed document, truncated or with one attribute value or text replaced."""
    body = draw(st.sampled_from(_SEED_BODIES))
    kind = draw(st.sampled_from(["truncate", "attribute", "text"]))
    if kind == "truncate":
        return body[: draw(st.integers(0, len(body)))]
    opener, closer = (b'="', b'"') if kind == "attribute" else (b">", b"<")
    spots = []
    start = body.find(opener)
    while start >= 0:
        end = body.find(closer, start + len(opener))
        if end < 0:
            break
        spots.append((start + len(opener), end))
        start = body.find(opener, end)
    if not spots:
        return body
    begin, end = spots[draw(st.integers(0, len(spots) - 1))]
    return body[:begin] + draw(st.sampled_from(_XML_VALUES)) + body[end:]


bodies = st.one_of(
    _seed_variant(),
    st.sampled_from(_BROKEN),
    st.sampled_from([100, 255, 256, 257, 3000]).map(_nested),
    st.binary(max_size=64),
)

# -- steps and sessions -------------------------------------------------------------

_positions = st.integers(0, 2**20)
set_field = st.sampled_from(sorted(MEANINGFUL)).flatmap(
    lambda name: st.sampled_from(MEANINGFUL[name]).map(lambda value: SetField(name, value)))
draft_ops = st.one_of(
    st.builds(FieldOp, st.sampled_from(["dup", "drop", "truncate", "case", "compact", "fold"]),
              _positions, _positions),
    st.builds(AddField, _positions, st.sampled_from(HEADER_NAMES), st.sampled_from(HEADER_VALUES)),
    st.builds(SetValue, _positions, st.sampled_from(HEADER_VALUES)),
    set_field,
    set_field,
    st.builds(ContentLength, st.sampled_from(["off", "absent", "twice", "negative", "junk",
                                              "padded", "huge"]), st.integers(-40, 40)),
    st.builds(Body, bodies),
)
byte_ops = st.one_of(
    st.builds(ByteOp, st.sampled_from(["insert", "flip", "delete", "truncate"]), _positions,
              st.sampled_from(JUNK)),
    st.builds(Append, st.sampled_from(sorted(SEEDS))),
)
seed_names = st.sampled_from(sorted(SEEDS))
mutated_step = st.builds(Step, seed_names, st.lists(draft_ops, max_size=3).map(tuple),
                         st.lists(byte_ops, max_size=2).map(tuple))
clean_step = st.builds(Step, seed_names)
_PUBLISHES = sorted(name for name in SEEDS if name.startswith("publish-"))
# A PUBLISH with another body (and sometimes another Content-Type): the document parsers
# behind the agent, and composition of what they let through.
body_step = st.builds(
    lambda seed, body, extra: Step(seed, (Body(body), *extra)), st.sampled_from(_PUBLISHES),
    bodies, st.lists(st.builds(AddField, _positions, st.just("Content-Type"), st.sampled_from(
        ["application/pidf+xml", "application/xpidf+xml", "application/cpim-pidf+xml",
         "application/dialog-info+xml", "APPLICATION/PIDF+XML"])), max_size=1).map(tuple))
# Non-UTF-8 and NUL bytes inside one field's value: they reach the agent as surrogate
# escapes and NUL characters, and from there the documents and the store.
byte_in_value = st.builds(lambda seed, at, name, junk: Step(seed, (AddField(
    at, name, "x" + junk.decode("utf-8", "surrogateescape") + "x"),)), seed_names, _positions,
    st.sampled_from(HEADER_NAMES), st.sampled_from([b"\xff", b"\xc3", b"\x00", b"\xed\xa0\x80"]))
# Only well-formed fields that mean something else: requests the agent takes in, where
# a state change behind an error answer hides (the parser answers the others).
meaningful_step = st.builds(Step, seed_names, st.lists(set_field, min_size=1, max_size=2).map(
    tuple))
steps = st.one_of(clean_step, mutated_step, mutated_step, body_step, byte_in_value,
                  meaningful_step, st.sampled_from([1.0, 33.0, 700.0, 4000.0]).map(Wait))
#: Beginnings that give the mutated steps state to work on.
SCENARIOS = (
    (), ("publish-pidf", "subscribe-presence", "notify-200"),
    ("register", "subscribe-presence", "notify-200", "publish-sample"),
    ("publish-dialog", "subscribe-dialog", "notify-200"),
    ("subscribe-winfo", "notify-200", "subscribe-presence", "notify-200"),
    ("publish-xpidf", "subscribe-xpidf", "notify-200", "invite"),
)


def session(stream: bool = False) -> st.SearchStrategy[Session]:
    """A scenario's clean beginning, then up to six steps, mutated or not."""
    setup = st.sampled_from(SCENARIOS).map(lambda names: [Step(name) for name in names])
    cuts = st.lists(st.integers(0, 10_000), max_size=5) if stream else st.none()
    return st.builds(lambda first, rest, c: Session([*first, *rest], c), setup,
                     st.lists(steps, min_size=1, max_size=6), cuts)
