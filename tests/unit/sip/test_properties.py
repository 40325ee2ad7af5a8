"""Property tests: round trips of generated messages, and mutated messages never crash.

(a) Requests and responses built from generated parts (methods, SIP URIs with IPv6 hosts,
display names that need quoting, parameters, several Vias, bodies) survive
``to_bytes()`` -> ``parse_datagram`` with the same structure, and a ``StreamFramer`` fed
the bytes in random chunks gives the same message.

(b) Mutations of valid messages (flipped, inserted and deleted bytes, truncation,
duplicated lines, random header lines) make ``parse_datagram`` + ``validate`` raise
``ParseError`` or nothing, and ``Endpoint.receive_datagram`` never raise, sending only
well-formed responses.

Deterministic (derandomized, no example database) and small enough to run in seconds.
"""

from __future__ import annotations

import ipaddress
import string
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipresence.sip.endpoint import Endpoint
from sipresence.sip.headers import parse_name_addr
from sipresence.sip.message import Headers, Request, Response
from sipresence.sip.parser import KEEPALIVE, ParseError, StreamFramer, parse_datagram, validate
from sipresence.sip.uas import check_request
from sipresence.sip.uri import SipURI
from tests.support.sipcheck import ALLOWED, PEER, SCHEMES, App, load_corpus

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# Mutating stored messages is cheap to generate: more examples for the same time.
MUTATION_SETTINGS = settings(SETTINGS, max_examples=400)


def chars(alphabet: str, min_size: int = 0, max_size: int = 12) -> st.SearchStrategy[str]:
    """Text over *alphabet*, drawn as one block of bytes: far fewer draws than st.text."""
    return st.binary(min_size=min_size, max_size=max_size).map(
        lambda raw: "".join(alphabet[b % len(alphabet)] for b in raw))


TOKEN_CHARS = string.ascii_letters + string.digits + "-.!%*_+`'~"
token = chars(TOKEN_CHARS, 1)
lower_token = chars(string.ascii_lowercase + string.digits + "-.!%*_+`'~", 1)
# Text a quoted string can carry: anything but CR, LF and NUL, quotes and backslashes too.
UNICODE = "\u00e9\u00fc\u00df\u0436\u4e2d\u6587\U0001f600\x7f\x01\t"
quoted_text = chars(string.printable.replace("\r", "").replace("\n", "").replace(
    "\x0b", "").replace("\x0c", "") + UNICODE)
# Header field text: no line ends, no white space at either end.
field_text = quoted_text.map(lambda s: s.strip(" \t"))


# -- hosts -------------------------------------------------------------------------------

alnum = string.ascii_lowercase + string.digits
label = chars(alnum + "-", 1, 8).map(lambda t: f"a{t}a" if "-" in t else t)
hostname = st.builds(lambda labels, top: ".".join([*labels, "z" + top]),
                     st.lists(label, max_size=3), chars(alnum, 0, 6))
ipv4 = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))


def _ipv6(n: int) -> str:
    address = ipaddress.IPv6Address(n)
    if address.ipv4_mapped is not None:
        return f"[::ffff:{address.ipv4_mapped}]"  # RFC 5952 section 5
    return f"[{address.compressed}]"


ipv6 = st.one_of(st.integers(0, 2**128 - 1),
                 st.integers(0, 2**32 - 1).map(lambda n: 0xFFFF_0000_0000 | n),
                 st.integers(0, 2**16 - 1).map(lambda n: (0x20010DB8 << 96) | n)).map(_ipv6)
host = st.one_of(hostname, ipv4, ipv6)
port = st.none() | st.integers(1, 65535)


# -- URIs and addresses ------------------------------------------------------------------

user_chars = string.ascii_letters + string.digits + "-_.!~*'()&=+$,;?/"
escaped = st.sampled_from(["%20", "%40", "%3A", "%00", "%25", "%C3%A9"])
user = st.lists(st.one_of(chars(user_chars, 1, 6), escaped), min_size=1, max_size=3).map(
    "".join)
uri_param = st.tuples(chars(string.ascii_lowercase + string.digits + "-_.!~*'()", 1, 10),
                      st.none() | chars(string.ascii_letters + string.digits + "-_.!~*'()[]/:&+$",
                                        1, 8))


@dataclass
class GenURI:
    scheme: str
    host: str
    user: str | None
    port: int | None
    params: list[tuple[str, str | None]]

    def text(self) -> str:
        out = f"{self.scheme}:"
        if self.user is not None:
            out += f"{self.user}@"
        out += self.host + ("" if self.port is None else f":{self.port}")
        return out + "".join(f";{k}" if v is None else f";{k}={v}" for k, v in self.params)


sip_uri = st.builds(GenURI, st.sampled_from(["sip", "sips"]), host, st.none() | user, port,
                    st.lists(uri_param, max_size=3, unique_by=lambda p: p[0]))


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


display = st.one_of(
    st.none(),
    quoted_text.map(lambda t: ("quoted", t)),
    st.lists(token, min_size=1, max_size=3).map(lambda ws: ("tokens", " ".join(ws))),
)
header_param = st.tuples(lower_token, st.one_of(
    st.none(), token.map(lambda t: ("token", t)), quoted_text.map(lambda t: ("quoted", t))))


@dataclass
class GenAddress:
    display: tuple[str, str] | None
    uri: GenURI
    params: list[tuple[str, tuple[str, str] | None]]

    def text(self) -> str:
        out = ""
        if self.display is not None:
            kind, name = self.display
            out = (quote(name) if kind == "quoted" else name) + " "
        out += f"<{self.uri.text()}>"
        for name, value in self.params:
            if value is None:
                out += f";{name}"
            else:
                out += f";{name}=" + (quote(value[1]) if value[0] == "quoted" else value[1])
        return out

    def expected_params(self) -> dict[str, str | None]:
        return {k: None if v is None else v[1] for k, v in self.params}


def address(tag: bool) -> st.SearchStrategy[GenAddress]:
    params = st.lists(header_param.filter(lambda p: p[0] != "tag"), max_size=2,
                      unique_by=lambda p: p[0])
    if tag:
        params = st.tuples(token, params).map(lambda tp: [("tag", ("token", tp[0])), *tp[1]])
    return st.builds(GenAddress, display, sip_uri, params)


# -- Vias and messages -------------------------------------------------------------------

@dataclass
class GenVia:
    transport: str
    host: str
    port: int | None
    branch: str
    rport: bool

    def text(self) -> str:
        out = f"SIP/2.0/{self.transport} {self.host}"
        out += "" if self.port is None else f":{self.port}"
        return out + f";branch={self.branch}" + (";rport" if self.rport else "")


via = st.builds(GenVia, st.sampled_from(["UDP", "TCP", "TLS", "SCTP", "WS", "WSS"]), host, port,
                token.map(lambda t: "z9hG4bK" + t), st.booleans())
method = st.one_of(st.sampled_from(["INVITE", "OPTIONS", "SUBSCRIBE", "NOTIFY", "PUBLISH",
                                    "REGISTER", "MESSAGE", "INFO"]), token)
extension = st.tuples(chars(TOKEN_CHARS, 1, 10).map(lambda n: "X-" + n), field_text)
body = st.binary(max_size=300)


@dataclass
class Common:
    vias: list[GenVia]
    one_via_line: bool
    from_: GenAddress
    to: GenAddress
    call_id: str
    cseq: int
    extras: list[tuple[str, str]]
    body: bytes
    headers: Headers = field(default_factory=Headers)

    def build(self, cseq_method: str) -> Headers:
        h = Headers()
        if self.one_via_line:
            h.add("Via", ", ".join(v.text() for v in self.vias))
        else:
            for v in self.vias:
                h.add("Via", v.text())
        h.add("From", self.from_.text())
        h.add("To", self.to.text())
        h.add("Call-ID", self.call_id)
        h.add("CSeq", f"{self.cseq} {cseq_method}")
        for name, value in self.extras:
            h.add(name, value)
        if self.body:
            h.add("Content-Type", "application/x-test")
        self.headers = h
        return h


common = st.builds(
    Common, st.lists(via, min_size=1, max_size=3), st.booleans(), address(tag=True),
    address(tag=False),
    st.builds(lambda a, b: f"{a}@{b}", chars(TOKEN_CHARS + "()<>:\\\"/[]?{}", 1, 16), hostname),
    st.integers(0, 2**31 - 1), st.lists(extension, max_size=3), body)


@st.composite
def requests(draw: st.DrawFn) -> tuple[Request, GenURI, Common]:
    parts = draw(common)
    m = draw(method)
    uri = draw(sip_uri)
    headers = parts.build(m)
    headers.add("Max-Forwards", str(draw(st.integers(0, 255))))
    return Request(m, uri.text(), headers, parts.body), uri, parts


@st.composite
def responses(draw: st.DrawFn) -> tuple[Response, Common]:
    parts = draw(common)
    reason = draw(quoted_text)
    headers = parts.build(draw(method))
    return Response(draw(st.integers(100, 699)), reason, headers, parts.body), parts


def check_common(parsed: Request | Response, parts: Common) -> None:
    assert [(v.transport, v.host, v.port, v.branch, "rport" in v.params)
            for v in parsed.vias] == [(g.transport, g.host, g.port, g.branch, g.rport)
                                      for g in parts.vias]
    for view, gen in ((parsed.from_, parts.from_), (parsed.to, parts.to)):
        assert view.display == (None if gen.display is None else gen.display[1])
        assert view.params == gen.expected_params()
        uri = view.uri
        assert isinstance(uri, SipURI)
        assert (uri.scheme, uri.user, uri.host, uri.port) == (
            gen.uri.scheme, gen.uri.user, gen.uri.host, gen.uri.port)
        assert uri.params == dict(gen.uri.params)
    assert parsed.call_id == parts.call_id
    assert parsed.cseq.number == parts.cseq
    expected = parts.headers.copy()
    expected.set("Content-Length", str(len(parts.body)))
    assert parsed.headers == expected
    assert parsed.body == parts.body


def chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def framed(data: bytes, cuts: list[int]) -> list[object]:
    framer = StreamFramer()
    out: list[object] = []
    for chunk in chunks(data, cuts):
        out.extend(framer.feed(chunk))
    return out


# -- (a) round trips ---------------------------------------------------------------------

@SETTINGS
@given(requests(), st.lists(st.integers(0, 10_000), max_size=6))
def test_requests_survive_serialisation_datagrams_and_streams(generated, cuts):
    request, uri, parts = generated
    data = request.to_bytes()
    parsed = parse_datagram(data)
    assert isinstance(parsed, Request)
    validate(parsed)
    assert (parsed.method, parsed.uri, parsed.cseq.method) == (request.method, uri.text(),
                                                              request.method)
    ruri = parsed.request_uri
    assert isinstance(ruri, SipURI)
    assert (ruri.scheme, ruri.user, ruri.host, ruri.port) == (uri.scheme, uri.user, uri.host,
                                                             uri.port)
    check_common(parsed, parts)
    [streamed] = framed(data, cuts)
    assert isinstance(streamed, Request)
    assert (streamed.method, streamed.uri, streamed.headers, streamed.body) == (
        parsed.method, parsed.uri, parsed.headers, parsed.body)


@SETTINGS
@given(responses(), st.lists(st.integers(0, 10_000), max_size=6))
def test_responses_survive_serialisation_datagrams_and_streams(generated, cuts):
    response, parts = generated
    data = response.to_bytes()
    parsed = parse_datagram(data)
    assert isinstance(parsed, Response)
    validate(parsed)
    assert (parsed.status, parsed.reason) == (response.status, response.reason)
    check_common(parsed, parts)
    # Two in a row, with a keep-alive between, in random chunks.
    out = framed(data + b"\r\n\r\n" + data, cuts)
    assert [type(x) for x in out] == [Response, type(KEEPALIVE), Response]
    for streamed in (out[0], out[2]):
        assert (streamed.status, streamed.reason, streamed.headers, streamed.body) == (
            parsed.status, parsed.reason, parsed.headers, parsed.body)


@SETTINGS
@given(address(tag=True))
def test_name_addr_values_parse_back(generated):
    parsed = parse_name_addr(generated.text())
    assert parsed.display == (None if generated.display is None else generated.display[1])
    assert parsed.uri_text == generated.uri.text()
    assert parsed.params == generated.expected_params()
    # And the string form of the parsed value parses to the same thing.
    again = parse_name_addr(str(parsed))  # an empty display name is written as none
    assert (again.display or None, again.uri_text, again.params) == (
        parsed.display or None, parsed.uri_text, parsed.params)


# -- (b) mutations -----------------------------------------------------------------------

SEEDS = [data for name, data in load_corpus(Path(__file__).parent / "rfc4475").items()
         if name in ("wsinv", "intmeth", "esc01", "escnull", "longreq", "mpart01", "unreason",
                     "inv2543", "transports", "semiuri", "bcast", "regescrt", "lwsdisp")]
SEEDS += [data.replace(b"\n", b"\r\n") for name, data in load_corpus(
    Path(__file__).parent / "rfc5118").items() if name in ("ipv6-good", "mult-ip-in-header")]
junk = st.binary(min_size=1, max_size=12) | st.sampled_from(
    [b"\r\n", b"\n", b"\r", b":", b";", b",", b"<", b">", b'"', b"\\", b"[", b"]", b"%",
     b" ", b"\t", b"\x00", b"\xff", b"\xc2\xb2", b"SIP/2.0", b"Content-Length: 99999\r\n",
     b"\r\n\r\n", b"Via: SIP/2.0/UDP [::1\r\n", b"CSeq: 1\r\n", b"To: \"\r\n"])


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "dup", "header",
                                     "swap"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            data[at:at] = draw(junk)
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 20))]
        elif kind == "truncate":
            del data[at:]
        else:
            lines = bytes(data).split(b"\r\n")
            i = draw(st.integers(0, max(len(lines) - 1, 0)))
            j = draw(st.integers(0, max(len(lines) - 1, 0)))
            if kind == "dup":
                lines.insert(i, lines[i])
            elif kind == "header":
                lines.insert(i, draw(token).encode() + b":" + draw(st.binary(max_size=20)))
            else:
                lines[i], lines[j] = lines[j], lines[i]
            data = bytearray(b"\r\n".join(lines))
    return bytes(data)


@MUTATION_SETTINGS
@given(mutated())
def test_mutated_messages_raise_only_parse_errors(data):
    try:
        message = parse_datagram(data)
        if message is not None:
            validate(message)
            if isinstance(message, Request):
                check_request(message, allowed=ALLOWED, supported=(), schemes=SCHEMES)
    except ParseError as exc:
        assert 100 <= exc.status <= 699 and exc.reason
    try:
        for item in StreamFramer().feed(data):
            assert isinstance(item, Request | Response | ParseError) or item is KEEPALIVE
    except ParseError as exc:
        assert exc.fatal


@MUTATION_SETTINGS
@given(mutated())
def test_the_endpoint_never_raises_and_sends_only_well_formed_responses(data):
    endpoint = Endpoint(App())
    endpoint.receive_datagram(data, PEER, now=0.0)
    for transmit in endpoint.transmissions():
        response = parse_datagram(transmit.data)
        assert isinstance(response, Response)
        assert 100 <= response.status <= 699
        # Strict out: what the endpoint writes itself is well formed, even when the
        # fields it copied from a malformed request (RFC 3261 8.2.6) are not.
        assert transmit.data.count(b"\r\n\r\n") >= 1
        lines = transmit.data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        assert all(b"\n" not in line and b"\r" not in line for line in lines)
        assert response.headers.get("content-length") == str(len(response.body))
        if response.headers.get_all("via"):
            continue  # answered by the Via it was routed by
        # No Via to route by: answered to the source, and never larger than the
        # request (no reflection amplifier).
        assert response.status == 400 and len(transmit.data) <= len(data)
