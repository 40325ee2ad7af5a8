"""RFC 4475, SIP Torture Test Messages: every message, through the parser and the endpoint.

The messages are the RFC's own bytes (``rfc4475/``, see its README for provenance).
Each test quotes what the RFC says an element should do with its message and checks
it through two doors: the parser (``parse_datagram`` + ``validate`` + ``check_request``)
with structured values, and the sans-IO ``Endpoint`` fed the message as a UDP datagram,
with an application that answers 200 to whatever reaches it.

Where the RFC leaves an element free to accept or to reject, the test records which
one this code does and quotes the sentence that allows it.  A "must" is never relaxed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sipresence.sip.endpoint import Endpoint
from sipresence.sip.headers import (
    HeaderError,
    parse_accept,
    parse_name_addr,
    parse_tokens,
    parse_via,
)
from sipresence.sip.message import Request, Response
from sipresence.sip.parser import ParseError, StreamFramer, parse_datagram, validate
from sipresence.sip.uas import check_request
from sipresence.sip.uri import AbsoluteURI, SipURI, unescape
from tests.support.sipcheck import (
    ALLOWED,
    PEER,
    SCHEMES,
    App,
    answer,
    answers,
    check,
    load_corpus,
    parse,
    parse_error,
    status_line,
)

MESSAGES = load_corpus(Path(__file__).parent / "rfc4475")

VALID = ["wsinv", "intmeth", "esc01", "escnull", "esc02", "lwsdisp", "longreq", "dblreq",
         "semiuri", "transports", "mpart01", "unreason", "noreason"]
INVALID = ["badinv01", "clerr", "ncl", "scalar02", "scalarlg", "quotbal", "ltgtruri",
           "lwsruri", "lwsstart", "trws", "escruri", "baddate", "regbadct", "badaspec",
           "baddn", "badvers", "mismatch01", "mismatch02", "bigcode"]
TRANSACTION = ["badbranch"]
APPLICATION = ["insuf", "unkscm", "novelsc", "unksm2", "bext01", "invut", "regaut01",
               "multi01", "mcl01", "bcast", "zeromf", "cparam01", "cparam02", "regescrt",
               "sdp01"]
COMPATIBILITY = ["inv2543"]
REFERENCED = VALID + INVALID + TRANSACTION + APPLICATION + COMPATIBILITY


def request(name: str) -> Request:
    message = parse(MESSAGES[name])
    assert isinstance(message, Request)
    return message


def response(name: str) -> Response:
    message = parse(MESSAGES[name])
    assert isinstance(message, Response)
    return message


def vias(message: Request | Response) -> list[tuple[str, str, int | None, str | None]]:
    return [(v.transport, v.host, v.port, v.branch) for v in message.vias]


# -- the corpus itself ---------------------------------------------------------------------

def test_the_corpus_is_the_whole_archive():
    # 13 valid (3.1.1), 19 invalid (3.1.2), 1 transaction (3.2), 15 application (3.3),
    # 1 backward compatibility (3.4) messages, and test.dat, which no section uses.
    assert (len(VALID), len(INVALID), len(APPLICATION)) == (13, 19, 15)
    assert sorted(MESSAGES) == sorted([*REFERENCED, "test"])


def test_content_length_matches_the_body_except_where_the_rfc_breaks_it_on_purpose():
    def lengths(name: str) -> tuple[list[bytes], int]:
        head, _, body = MESSAGES[name].partition(b"\r\n\r\n")
        found = re.findall(rb"(?im)^(?:content-length|l)[ \t]*:[ \t]*(\S+)", head)
        return found, len(body)

    broken = {"clerr": ([b"9999"], 154), "ncl": ([b"-999"], 152),
              "mcl01": ([b"13", b"5"], 67), "dblreq": ([b"0"], 450), "inv2543": ([], 105),
              "test": ([b"18"], 18)}
    for name in MESSAGES:
        found, body = lengths(name)
        if name in broken:
            assert (found, body) == broken[name], name
        else:
            assert found == [str(body).encode()], name
    assert not MESSAGES["baddn"].endswith(b"\r\n\r\n")  # the archive's, see README


# The RFC's section 2 markup, to rebuild messages from their rendering in the text.
def render(text: str) -> bytes:
    """Apply RFC 4475 section 2: <allOneLine>, <repeat count=N>, <hex>, CRLF line ends."""
    text = re.sub(r"<allOneLine>\n(.*?)\n</allOneLine>",
                  lambda m: m.group(1).replace("\n", ""), text, flags=re.S)
    data = text.replace("\n", "\r\n").encode()
    data = re.sub(rb"<repeat count=(\d+)>(.*?)</repeat>",
                  lambda m: m.group(2) * int(m.group(1)), data)
    return re.sub(rb"<hex>([0-9A-F]*)</hex>", lambda m: bytes.fromhex(m.group(1).decode()), data)


RENDERED = {
    # 3.1.1.2, verbatim from the RFC text.
    "intmeth": """<allOneLine>
!interesting-Method0123456789_*+`.%indeed'~
 sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*
:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)
@example.com SIP/2.0
</allOneLine>
Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~
<allOneLine>
To: "BEL:\\<hex>07</hex> NUL:\\<hex>00</hex> DEL:\\<hex>7F</hex>"
 <sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*
@example.com>
</allOneLine>
<allOneLine>
From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>
;fromParam''~+*_!.-%=
"<hex>D180D0B0D0B1D0BED182D0B0D18ED189D0B8D0B9</hex>"
;tag=_token~1'+`*%!-.
</allOneLine>
Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/"][?}{
CSeq: 139122385 !interesting-Method0123456789_*+`.%indeed'~
Max-Forwards: 255
<allOneLine>
extensionHeader-!.%*+_`'~:
<hex>EFBBBFE5A4A7E5819CE99BBB</hex>
</allOneLine>
Content-Length: 0

""",
    # 3.1.1.7
    "longreq": """INVITE sip:user@example.com SIP/2.0
<allOneLine>
To: "I have a user name of
 <repeat count=10>extreme</repeat> proportion"
<sip:user@example.com:6000;
unknownparam1=very<repeat count=20>long</repeat>value;
longparam<repeat count=25>name</repeat>=shortvalue;
very<repeat count=25>long</repeat>ParameterNameWithNoValue>
</allOneLine>
<allOneLine>
F: sip:
<repeat count=5>amazinglylongcallername</repeat>@example.net
;tag=12<repeat count=50>982</repeat>424
;unknownheaderparam<repeat count=20>name</repeat>=
unknowheaderparam<repeat count=15>value</repeat>
;unknownValueless<repeat count=10>paramname</repeat>
</allOneLine>
Call-ID: longreq.one<repeat count=20>really</repeat>longcallid
CSeq: 3882340 INVITE
<allOneLine>
Unknown-<repeat count=20>Long</repeat>-Name:
 unknown-<repeat count=20>long</repeat>-value;
 unknown-<repeat count=20>long</repeat>-parameter-name =
 unknown-<repeat count=20>long</repeat>-parameter-value
</allOneLine>
""" + "".join(f"{name}SIP/2.0/TCP sip{n}.example.com\n" for n, name in zip(
        range(33, 0, -1),
        ["Via: ", "v: ", "V: ", "Via: ", "ViA: ", "VIa: ", "VIA: ", "via: ", "viA: ", "vIa: ",
         "vIA: ", "V :  ", "v :  ", "V  : ", "v  : ", "Via : ", "Via  : "] + ["Via: "] * 16,
        strict=True)) + """<allOneLine>
Via: SIP/2.0/TCP
 host.example.com;received=192.0.2.5;
branch=very<repeat count=50>long</repeat>branchvalue
</allOneLine>
Max-Forwards: 70
<allOneLine>
Contact: <sip:
<repeat count=5>amazinglylongcallername</repeat>
@host5.example.net>
</allOneLine>
Content-Type: application/sdp
l: 150

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.1
s=-
c=IN IP4 192.0.2.1
t=0 0
m=audio 49217 RTP/AVP 0 12
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC
""",
    # 3.1.1.12
    "unreason": """<allOneLine>
SIP/2.0 200 = 2**3 * 5**2 <hex>D0BDD0BE20D181D182
D0BE20D0B4D0B5D0B2D18FD0BDD0BED181D182D0BE20D0B4
D0B5D0B2D18FD182D18C202D20D0BFD180D0BED181D182D0
BED0B5</hex>
</allOneLine>
Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923
Call-ID: unreason.1234ksdfak3j2erwedfsASdf
CSeq: 35 INVITE
From: sip:user@example.com;tag=11141343
To: sip:user@example.edu;tag=2229
Content-Length: 154
Content-Type: application/sdp
Contact: <sip:user@host198.example.com>

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.198
s=-
c=IN IP4 192.0.2.198
t=0 0
m=audio 49217 RTP/AVP 0 12
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC
""",
    # 3.1.2.4
    "scalar02": """REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3
To: <sip:user@example.com>
From: <sip:user@example.com>;tag=239232jh3
CSeq: 36893488147419103232 REGISTER
Call-ID: scalar02.23o0pd9vanlq3wnrlnewofjas9ui32
Max-Forwards: 300
Expires: 1<repeat count=100>0</repeat>
Contact: <sip:user@host129.example.com>
  ;expires=280297596632815
Content-Length: 0

""",
}


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_rebuilding_from_the_rfc_text_gives_the_archived_bytes(name):
    # RFC 4475 section 2; hex is written in the text with line breaks inside allOneLine.
    assert render(RENDERED[name]) == MESSAGES[name]


# -- nothing escapes the parser but ParseError ---------------------------------------------

def _read_everything(message) -> None:
    """Touch every structured view a transaction user might read."""
    validate(message)
    _ = message.vias
    for name in ("contact", "route", "record-route"):
        for value in message.headers.values(name):
            address = parse_name_addr(value)
            _ = address.uri
    parse_accept(message.headers.get_all("accept"))
    parse_tokens(message.headers.get_all("require"))
    if isinstance(message, Request):
        _ = message.request_uri


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_the_parser_raises_nothing_but_parse_and_header_errors(name):
    data = MESSAGES[name]
    try:
        message = parse_datagram(data)
        assert message is not None
        _read_everything(message)
        if isinstance(message, Request):
            check_request(message, allowed=ALLOWED, supported=(), schemes=SCHEMES)
    except (ParseError, HeaderError):
        pass
    # The same bytes on a stream, and through the endpoint, never raise either.
    try:
        for item in StreamFramer().feed(data):
            assert isinstance(item, Request | Response) or not getattr(item, "fatal", False)
    except ParseError as exc:
        assert exc.fatal
    answers(data)


# -- 3.1.1 valid messages ------------------------------------------------------------------

def test_wsinv_a_short_tortuous_invite():
    # "All elements should treat this as a well-formed request."
    m = request("wsinv")
    assert (m.method, m.uri) == ("INVITE", "sip:vivekg@chair-dnrc.example.com;unknownparam")
    uri = m.request_uri
    assert isinstance(uri, SipURI)
    assert (uri.user, uri.host, uri.params) == ("vivekg", "chair-dnrc.example.com",
                                                {"unknownparam": None})
    # Folding, LWS around the colon and the ';', in a bare addr-spec.
    assert (m.to.display, m.to.uri_text, m.to.tag) == (
        None, "sip:vivekg@chair-dnrc.example.com", "1918181833n")
    # "escaped characters within quotes": the quoted-string "J Rosenberg \\\"".
    assert (m.from_.display, m.from_.tag) == ('J Rosenberg \\"', "98asjd8")
    assert m.from_.uri_text == "sip:jdrosen@example.com"
    assert m.call_id == "wsinv.ndaksdj@192.0.2.1"
    assert (m.cseq.number, m.cseq.method) == (9, "INVITE")  # "0009"
    assert m.max_forwards == 68  # "0068"
    # "both comma separated and separately listed header field values" and "a mix of
    # short and long form for the same header field name": Via, then v: with two.
    assert vias(m) == [("UDP", "192.0.2.2", None, "390skdjuw"),
                       ("TCP", "spindle.example.com", None, "z9hG4bK9ikj8"),
                       ("UDP", "192.168.255.111", None, "z9hG4bK30239")]
    assert m.headers.get("subject") == ""  # "an empty subject" (s :)
    # "unknown header fields", one of them folded; the unusual value kept as it is.
    assert m.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert m.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    route = parse_name_addr(m.headers.get("route"))
    assert route.uri.params == {"lr": None, "unknownwith": "value", "unknown-no-value": None}
    [contact] = m.headers.values("contact")  # m:
    contact_addr = parse_name_addr(contact)
    assert contact_addr.display == 'Quoted string ""'
    assert contact_addr.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert m.content_type.mime == "application/sdp"
    assert len(m.body) == 150 and m.body.startswith(b"v=0\r\n")
    assert check(MESSAGES["wsinv"]) is None
    assert status_line(answer(MESSAGES["wsinv"])) == (200, "OK")


def test_intmeth_a_wide_range_of_valid_characters():
    m = request("intmeth")
    method = "!interesting-Method0123456789_*+`.%indeed'~"
    assert m.method == method  # "% is not an escape character for this field"
    uri = m.request_uri
    assert isinstance(uri, SipURI)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert uri.host == "example.com"
    assert m.top_via.branch == "z9hG4bK-.!%66*_+`'~"
    # "quoted-pair expansions, including a quoted NULL character"
    assert m.to.display == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert m.to.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    # Several tokens as a display name; an unknown parameter with a UTF-8 quoted value.
    assert m.from_.display == "token1~` token2'+_ token3*%!.-"
    assert m.from_.params == {"fromparam''~+*_!.-%": "работающий",
                              "tag": "_token~1'+`*%!-."}
    assert m.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert (m.cseq.number, m.cseq.method) == (139122385, method)
    assert m.max_forwards == 255
    assert m.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"
    # "Endpoints will generate a 501 listing the methods they understand in an Allow
    # header field."
    for out in (check(MESSAGES["intmeth"]), answer(MESSAGES["intmeth"])):
        assert status_line(out) == (501, "Not Implemented")
        assert parse_tokens(out.headers.get_all("allow")) == list(ALLOWED)


def test_esc01_valid_use_of_the_percent_escaping_mechanism():
    # "A parser must accept this as a well-formed message.  The application using the
    # message must treat the % HEX HEX expansions as equivalent to the character being
    # encoded."
    m = request("esc01")
    uri = m.request_uri
    assert isinstance(uri, SipURI)
    assert (unescape(uri.user), uri.host) == ("sips:user@example.com", "example.net")
    assert unescape(m.to.uri.user) == "user"
    assert m.to.uri.aor() == "sip:user@example.com"  # %75se%72 is user
    assert unescape(m.from_.uri.user) == "I have spaces"
    assert m.call_id == "esc01.239409asdfakjkn23onasd0-3234"  # i:
    assert m.content_type.mime == "application/sdp"  # C:
    contact = parse_name_addr(m.headers.get("contact")).uri
    assert unescape(contact.user) == "caller"
    params = {unescape(k): v for k, v in contact.params.items()}
    assert params["lr"] is None
    # '"value%41" ... is NOT equivalent to "valueA"': unescaping is never recursive.
    assert unescape(params["name"]) == "value%41"
    assert len(m.body) == 150
    assert status_line(answer(MESSAGES["esc01"])) == (200, "OK")


def test_escnull_escaped_nulls_in_uris():
    # "parsers must accept this message.  Implementations must take special care when
    # unescaping the Address-of-Record (AOR) ... so as to not prematurely shorten the
    # username.  This request registers two distinct contact URIs."
    m = request("escnull")
    assert unescape(m.to.uri.user) == "null-\x00-null"
    assert m.to.uri.aor() == "sip:null-%00-null@example.com"
    contacts = [parse_name_addr(v).uri for v in m.headers.values("contact")]
    assert [unescape(c.user) for c in contacts] == ["\x00", "\x00\x00"]
    assert len({c.aor() for c in contacts}) == 2
    assert status_line(answer(MESSAGES["escnull"])) == (200, "OK")


def test_esc02_percent_when_it_is_not_an_escape():
    # "A parser should accept this message as well formed ... An endpoint would reject
    # this message with a 501."
    m = request("esc02")
    assert m.method == "RE%47IST%45R" and m.cseq.method == "RE%47IST%45R"
    assert m.to.display == "%Z%45" and m.from_.display == "%Z%45"
    assert m.top_via.branch == "z9hG4bK209%fzsnel234"
    # "C%6Fntact" is another header field, not a third Contact.
    assert [parse_name_addr(v).uri.host for v in m.headers.values("contact")] == [
        "host1.example.com", "host3.example.com"]
    assert m.headers.get("c%6fntact") == "<sip:alias2@host2.example.com>"
    assert status_line(check(MESSAGES["esc02"])) == (501, "Not Implemented")
    assert status_line(answer(MESSAGES["esc02"])) == (501, "Not Implemented")


def test_lwsdisp_no_lws_between_display_name_and_angle_bracket():
    # "Elements should accept this request as well formed."
    m = request("lwsdisp")
    assert (m.from_.display, m.from_.uri_text, m.from_.tag) == (
        "caller", "sip:caller@example.com", "323")
    assert status_line(answer(MESSAGES["lwsdisp"])) == (200, "OK")


def test_longreq_long_values_in_header_fields():
    m = request("longreq")
    assert m.to.display == ("I have a user name of " + "extreme" * 10 + " proportion")
    to_uri = m.to.uri
    assert (to_uri.port, to_uri.params["unknownparam1"]) == (6000, "very" + "long" * 20 + "value")
    assert to_uri.params["longparam" + "name" * 25] == "shortvalue"
    assert to_uri.params[("very" + "long" * 25 + "ParameterNameWithNoValue").lower()] is None
    assert m.from_.tag == "12" + "982" * 50 + "424"  # "a very long tag"
    assert m.from_.uri.user == "amazinglylongcallername" * 5
    assert m.from_.params["unknownheaderparam" + "name" * 20] == (
        "unknowheaderparam" + "value" * 15)
    assert m.call_id == "longreq.one" + "really" * 20 + "longcallid"
    # 34 Via field lines, in every spelling of the name, the last one with a long branch.
    hops = m.vias
    assert [v.host for v in hops[:33]] == [f"sip{n}.example.com" for n in range(33, 0, -1)]
    assert (hops[33].host, hops[33].received) == ("host.example.com", "192.0.2.5")
    assert hops[33].branch == "very" + "long" * 50 + "branchvalue"
    unknown = "Unknown-" + "Long" * 20 + "-Name"
    assert m.headers.get(unknown).startswith("unknown-" + "long" * 20 + "-value;")
    assert len(m.body) == 150
    assert status_line(answer(MESSAGES["longreq"])) == (200, "OK")


def test_dblreq_extra_trailing_octets_in_a_udp_datagram():
    # "(per section 18.3 of [RFC3261]) they are just spurious noise that must be ignored.
    # A SIP element receiving this datagram would handle the REGISTER request normally".
    m = request("dblreq")
    assert (m.method, m.call_id, m.body) == (
        "REGISTER", "dblreq.0ha0isndaksdj99sdfafnl3lk233412", b"")
    out, endpoint = answers(MESSAGES["dblreq"])
    assert [(r.status, r.cseq.method) for r in out] == [(200, "REGISTER")]
    assert dict(endpoint.stats.requests) == {"REGISTER": 1}


def test_semiuri_semicolon_separated_parameters_in_the_user_part():
    # "The Request-URI will parse so that the user part is "user;par=u@example.net"."
    m = request("semiuri")
    uri = m.request_uri
    assert isinstance(uri, SipURI)
    assert (unescape(uri.user), uri.host, uri.params) == (
        "user;par=u@example.net", "example.com", {})
    # The folded Accept list.
    assert [media.mime for media, _ in parse_accept(m.headers.get_all("accept"))] == [
        "application/sdp", "application/pkcs7-mime", "multipart/mixed", "multipart/signed",
        "message/sip", "message/sipfrag"]
    assert status_line(answer(MESSAGES["semiuri"])) == (200, "OK")


def test_transports_varied_and_unknown_transport_types():
    # "Parsers must accept this message as well formed."
    m = request("transports")
    assert [(v.transport, v.host) for v in m.vias] == [
        ("UDP", "t1.example.com"), ("SCTP", "t2.example.com"), ("TLS", "t3.example.com"),
        ("UNKNOWN", "t4.example.com"), ("TCP", "t5.example.com")]
    assert m.call_id == "transports.kijh4akdnaqjkwendsasfdj"  # two SP after the colon
    assert status_line(answer(MESSAGES["transports"])) == (200, "OK")


def test_mpart01_multipart_mime_message():
    # "Receivers must take care to frame the received message properly.  Parsers must
    # accept this message as well formed, even if the application above the parser does
    # not support multipart/signed."
    m = request("mpart01")
    assert m.method == "MESSAGE"
    assert m.content_type.mime == "multipart/mixed"
    assert m.content_type.param("boundary") == "7a9cbec02ceef655"
    assert len(m.body) == 553 and b"\x00" in m.body
    assert m.body.startswith(b"--7a9cbec02ceef655\r\n")
    assert m.body.endswith(b"--7a9cbec02ceef655--\r\n")
    # MESSAGE is a method this agent knows and does not implement: 405 with Allow.
    out = answer(MESSAGES["mpart01"])
    assert status_line(out) == (405, "Method Not Allowed")
    assert parse_tokens(out.headers.get_all("allow")) == list(ALLOWED)


def test_unreason_unusual_reason_phrase():
    # "This response is well formed.  A parser must accept this message."
    m = response("unreason")
    assert m.status == 200
    assert m.reason == ("= 2**3 * 5**2 но сто девяносто девять - простое")
    assert len(m.body) == 154
    # An endpoint with no client transaction for it drops it, as a valid response.
    out, endpoint = answers(MESSAGES["unreason"])
    assert out == [] and dict(endpoint.stats.responses_received) == {200: 1}
    assert not endpoint.stats.malformed


def test_noreason_empty_reason_phrase():
    # "This well-formed response contains no reason phrase.  A parser must accept this."
    m = response("noreason")
    assert (m.status, m.reason, m.cseq.method) == (100, "", "INVITE")
    out, endpoint = answers(MESSAGES["noreason"])
    assert out == [] and dict(endpoint.stats.responses_received) == {100: 1}
    # "If it were not present, this message could be rejected as invalid (a liberal
    # receiver would accept it anyway)."  This parser is liberal.
    without_space = MESSAGES["noreason"].replace(b"SIP/2.0 100 \r\n", b"SIP/2.0 100\r\n")
    assert response_from(without_space).reason == ""


def response_from(data: bytes) -> Response:
    message = parse(data)
    assert isinstance(message, Response)
    return message


# -- 3.1.2 invalid messages ----------------------------------------------------------------

REJECTED = {
    # name: (status, reason phrase), the same through both doors.
    # "This message is syntactically invalid.  An element receiving this request should
    # respond with a 400 Bad Request error."
    "badinv01": (400, "Bad Via parameter"),
    # "When sent over UDP (as this message ostensibly was), the receiving element should
    # respond with a 400 Bad Request error."
    "clerr": (400, "Content-Length larger than message"),
    # "An element receiving this message should respond with an error."
    "ncl": (400, "Negative Content-Length"),
    # "An element receiving this request should respond with a 400 Bad Request due to the
    # CSeq error."
    "scalar02": (400, "CSeq out of range"),
    # "An element receiving this request should return a 400 Bad Request error."
    "quotbal": (400, "Unterminated quoted string in To"),
    # "It is reasonable always to reject a request with this error with a 400 Bad Request."
    "ltgtruri": (400, "URI enclosed in <> in Request-URI"),
    # "An element receiving this request should respond with a 400 Bad Request."
    "lwsruri": (400, "Whitespace in Request-URI"),
    # "It is reasonable always to reject this kind of error with a 400 Bad Request."
    "baddn": (400, "Unquoted display name in From"),
    # "The element should respond to the request with a 505 Version Not Supported error."
    "badvers": (505, "Version Not Supported"),
    # "Any element receiving this request will respond with a 400 Bad Request."
    "mismatch01": (400, "CSeq method does not match request method"),
}


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_invalid_requests_are_answered_with_a_specific_reason(name):
    status, reason = REJECTED[name]
    exc = parse_error(MESSAGES[name])
    assert (exc.status, exc.reason) == (status, reason)
    assert isinstance(exc.message, Request) and exc.message.method  # enough to answer
    out = answer(MESSAGES[name])
    assert status_line(out) == (status, reason)
    # The answer matches the request (RFC 3261 8.2.6): Via, From, Call-ID and CSeq copied
    # as received, and the To field as received with a tag, added if it had none, even to
    # a malformed one.  "As received" is after the transport's 18.2.1, which stamps the
    # top Via with the source address (PEER) before any answer is built, an error too.
    for field in ("from", "call-id", "cseq"):
        assert out.headers.get_all(field) == exc.message.headers.get_all(field)
    assert out.headers.get_all("via") == stamped(exc.message.headers.get_all("via"))
    to = exc.message.headers.get("to")
    assert out.headers.get("to").startswith(to) and ";tag=" in out.headers.get("to")


def stamped(vias: list[str]) -> list[str]:
    """The Via values as the endpoint answers them: received added to the top one when
    it parses and its sent-by is not the source address."""
    try:
        host = parse_via(vias[0]).host
    except HeaderError:
        return vias  # badinv01: no Via to stamp, copied as it came
    return vias if host == PEER.host else [f"{vias[0]};received={PEER.host}", *vias[1:]]


def test_clerr_on_a_stream_waits_for_the_rest_of_the_body():
    # "If this message arrived over a stream-based transport, such as TCP, there's not
    # much the receiving party could do but wait for more data on the stream".
    framer = StreamFramer()
    assert framer.feed(MESSAGES["clerr"]) == []


def test_ncl_on_a_stream_loses_the_framing():
    # "If a request like this arrives over TCP, the framing error is not recoverable, and
    # the connection should be closed."
    with pytest.raises(ParseError) as caught:
        StreamFramer().feed(MESSAGES["ncl"])
    assert caught.value.fatal and caught.value.reason == "Negative Content-Length"


def test_ncl_also_covers_a_content_length_that_is_not_a_number():
    # "The same behavior is appropriate for messages that arrive without a numeric value
    # in the Content-Length header field, such as the following: Content-Length: five"
    data = MESSAGES["ncl"].replace(b"Content-Length: -999", b"Content-Length: five")
    assert (parse_error(data).status, parse_error(data).reason) == (400, "Bad Content-Length")
    with pytest.raises(ParseError) as caught:
        StreamFramer().feed(data)
    assert caught.value.fatal


def test_scalar02_other_scalars_alone():
    # "If only the Max-Forwards field were in error, the element could choose to process
    # the request as if the field were absent.  If only the expiry values were in error,
    # the element could treat them as if they contained the default values".  Choice
    # made here: reject both with a 400 naming the field; the Contact expires parameter
    # is the registrar's to read.
    fixed_cseq = MESSAGES["scalar02"].replace(b"36893488147419103232", b"1")
    exc = parse_error(fixed_cseq)
    assert (exc.status, exc.reason) == (400, "Max-Forwards out of range")
    only_expires = fixed_cseq.replace(b"Max-Forwards: 300", b"Max-Forwards: 70")
    exc = parse_error(only_expires)
    assert (exc.status, exc.reason) == (400, "Bad Expires")
    assert status_line(answer(only_expires)) == (400, "Bad Expires")
    ok = re.sub(rb"Expires: 10+", b"Expires: 3600", only_expires)
    contact = parse_name_addr(request_from(ok).headers.get("contact"))
    assert contact.params == {"expires": "280297596632815"}  # folded, kept as text


def request_from(data: bytes) -> Request:
    message = parse(data)
    assert isinstance(message, Request)
    return message


def test_scalarlg_response_with_overlarge_values_is_discarded():
    # "An element receiving this response will simply discard it."
    exc = parse_error(MESSAGES["scalarlg"])
    assert (exc.status, exc.reason) == (400, "CSeq out of range")
    assert isinstance(exc.message, Response)
    out, endpoint = answers(MESSAGES["scalarlg"])
    assert out == [] and dict(endpoint.stats.malformed) == {"CSeq out of range": 1}


def test_lwsstart_multiple_sp_in_the_request_line_is_accepted():
    # "It is acceptable to reject this request as malformed.  An element that is liberal
    # in what it accepts may ignore these extra SP characters when processing the
    # request."  Choice made here: liberal; the elements are unambiguous.
    m = request("lwsstart")
    assert (m.method, m.uri, m.start_line()) == (
        "INVITE", "sip:user@example.com", "INVITE sip:user@example.com SIP/2.0")
    assert status_line(answer(MESSAGES["lwsstart"])) == (200, "OK")


def test_trws_sp_at_the_end_of_the_request_line_is_accepted():
    # "It is acceptable to reject this request as malformed.  An element that is liberal
    # in what it accepts may ignore these extra SP characters".  Choice made here: liberal.
    m = request("trws")
    assert (m.method, m.uri) == ("OPTIONS", "sip:remote-target@example.com")
    assert MESSAGES["trws"].startswith(b"OPTIONS sip:remote-target@example.com SIP/2.0  \r\n")
    assert status_line(answer(MESSAGES["trws"])) == (200, "OK")


def test_escruri_escaped_headers_in_the_request_uri_are_rejected():
    # "It is acceptable for an element to reject this request with a 400 Bad Request.  An
    # element could choose to be liberal in what it accepts and ignore the escaped
    # headers."  Choice made here: reject.
    exc = parse_error(MESSAGES["escruri"])
    assert (exc.status, exc.reason) == (400, "Request-URI carries headers")
    assert status_line(answer(MESSAGES["escruri"])) == (400, "Request-URI carries headers")


def test_baddate_a_non_gmt_date_is_ignored():
    # "It is acceptable to reject this request as malformed (though an element shouldn't
    # do that unless the contents of the Date header field were actually important to
    # its processing).  An element wishing to be liberal in what it accepts could ignore
    # this value altogether if it wasn't going to use the Date header field anyway."
    # Choice made here: the Date header field is not read; the request is processed.
    m = request("baddate")
    assert m.headers.get("date") == "Fri, 01 Jan 2010 16:00:00 EST"
    assert status_line(answer(MESSAGES["baddate"])) == (200, "OK")


class Registrar(App):
    """Reads the Contact header fields, as a registrar must; a bad one is a 400."""

    def handle_request(self, request, peer, now):
        for value in request.headers.values("contact"):
            _ = parse_name_addr(value).uri
        return super().handle_request(request, peer, now)


def test_regbadct_a_contact_uri_with_headers_must_be_in_angle_brackets():
    # "It is reasonable for an element receiving this request to respond with a 400 Bad
    # Request.  An element choosing to be liberal in what it accepts could infer the angle
    # brackets since there is no ambiguity in this example."  Choice made here: reject.
    # The message parses (no layer below the registrar reads Contact) ...
    m = request("regbadct")
    assert check(MESSAGES["regbadct"]) is None
    with pytest.raises(HeaderError, match="needs <>"):
        parse_name_addr(m.headers.get("contact"))
    # ... and whoever reads the Contact gets a HeaderError, which the endpoint turns into
    # a 400 with its text.
    assert status_line(answer(MESSAGES["regbadct"], Registrar())) == (
        400, "Address with headers or spaces needs <>")


def test_badaspec_spaces_inside_the_angle_brackets_are_ignored():
    # "Parsers receiving this request must not break.  It is reasonable to reject this
    # request with a 400 Bad Request response.  Elements attempting to be liberal may
    # ignore the spaces."  Choice made here: liberal.
    m = request("badaspec")
    assert (m.to.display, m.to.uri_text) == ("Watson, Thomas", "sip:t.watson@example.org")
    assert m.from_.display == "Bell, Alexander"
    assert status_line(answer(MESSAGES["badaspec"])) == (200, "OK")


def test_baddn_with_or_without_the_final_empty_line():
    # The archive's baddn has no empty line after the header fields; on UDP the end of
    # the datagram ends them, and the answer is the same with the empty line.
    assert not MESSAGES["baddn"].endswith(b"\r\n\r\n")
    complete = MESSAGES["baddn"] + b"\r\n"
    assert status_line(answer(complete)) == (400, "Unquoted display name in From")
    # The To field has the same error.
    assert parse_error(complete.replace(b"Bell, Alexander", b'"Bell, Alexander"')).reason == (
        "Unquoted display name in To")


def test_badvers_the_version_of_the_answer_is_2_0():
    out = answer(MESSAGES["badvers"])
    assert out.version == "SIP/2.0"
    assert out.headers.get("via") == (
        f"SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw;received={PEER.host}")


def test_mismatch02_unknown_method_with_a_mismatched_cseq_gets_a_400():
    # "Any element receiving this response should respond with a 501 Not Implemented.  A
    # 400 Bad Request is also acceptable, but choosing a 501 (particularly at proxies) has
    # better future-proof characteristics."  Choice made here: 400, because the
    # mismatch is found by the parser's checks, before the method is looked at.
    exc = parse_error(MESSAGES["mismatch02"])
    assert (exc.status, exc.reason) == (400, "CSeq method does not match request method")
    assert status_line(answer(MESSAGES["mismatch02"])) == (
        400, "CSeq method does not match request method")
    # With a matching CSeq the same unknown method gets the 501.
    matched = MESSAGES["mismatch02"].replace(b"CSeq: 8 INVITE", b"CSeq: 8 NEWMETHOD")
    assert status_line(answer(matched)) == (501, "Not Implemented")


def test_bigcode_an_overlarge_response_code_is_dropped():
    # "An element receiving this response should simply drop it."
    exc = parse_error(MESSAGES["bigcode"])
    assert exc.status == 400 and exc.message is None
    out, endpoint = answers(MESSAGES["bigcode"])
    assert out == [] and sum(endpoint.stats.malformed.values()) == 1


# -- 3.2 transaction layer -----------------------------------------------------------------

def test_badbranch_a_magic_cookie_without_an_identifier():
    # "A parser must not break when receiving this message.  An element receiving this
    # request could reject the request with a 400 Response ..., or it could fall back to
    # the RFC 2543-style transaction identifier."  Choice made here: the fall-back.
    m = request("badbranch")
    assert m.top_via.branch == "z9hG4bK"
    assert Endpoint._server_key(m, "OPTIONS")[0] == "2543"
    out = answer(MESSAGES["badbranch"])
    assert status_line(out) == (200, "OK")
    assert out.top_via.branch == "z9hG4bK"


# -- 3.3 application layer -----------------------------------------------------------------

def test_insuf_missing_required_header_fields():
    # "An element receiving this message must not break because of the missing
    # information.  Ideally, it will respond with a 400 Bad Request error."
    exc = parse_error(MESSAGES["insuf"])
    assert (exc.status, exc.reason) == (400, "Missing Call-ID")
    out = answer(MESSAGES["insuf"])
    assert status_line(out) == (400, "Missing Call-ID")
    assert out.headers.get("cseq") == "193942 INVITE" and "to" not in out.headers


def test_unkscm_unknown_request_uri_scheme():
    # "A parser must accept this as a well-formed SIP request.  An element receiving this
    # request will reject it with a 416 Unsupported URI Scheme response."
    m = request("unkscm")
    assert m.request_uri == AbsoluteURI("nobodyknowsthisscheme", "totallyopaquecontent")
    assert status_line(check(MESSAGES["unkscm"])) == (416, "Unsupported URI Scheme")
    assert status_line(answer(MESSAGES["unkscm"])) == (416, "Unsupported URI Scheme")


def test_novelsc_known_but_atypical_scheme():
    # "If an element will never accept this scheme as meaningful in a Request-URI, it is
    # appropriate to treat it as unknown and return a 416".  This agent never will.
    m = request("novelsc")
    assert m.request_uri == AbsoluteURI("soap.beep", "//192.0.2.103:3002")
    assert status_line(answer(MESSAGES["novelsc"])) == (416, "Unsupported URI Scheme")


def test_unksm2_unknown_schemes_in_header_fields():
    # "The message is syntactically valid.  Parsers must not fail when receiving this
    # message."  (A registrar would then answer 400: the To field is not a SIP AOR; that
    # is the registrar's decision, above this layer.)
    m = request("unksm2")
    assert m.to.uri == AbsoluteURI("isbn", "2983792873")
    assert m.from_.uri == AbsoluteURI("http", "//www.example.com")
    assert m.from_.tag == "3234233"
    assert parse_name_addr(m.headers.get("contact")).uri == AbsoluteURI("name", "John_Smith")
    assert check(MESSAGES["unksm2"]) is None
    assert status_line(answer(MESSAGES["unksm2"])) == (200, "OK")


def test_bext01_require_gets_420_listing_the_unsupported_extensions():
    # "Any element receiving this request will respond with a 420 Bad Extension response,
    # containing an Unsupported header field listing these features from either the
    # Require or Proxy-Require header field, depending on the role".  A UAS: Require.
    for out in (check(MESSAGES["bext01"]), answer(MESSAGES["bext01"])):
        assert status_line(out) == (420, "Bad Extension")
        assert parse_tokens(out.headers.get_all("unsupported")) == [
            "nothingSupportsThis", "nothingSupportsThisEither"]


def test_invut_unknown_content_type_reaches_the_application():
    # "It is syntactically valid.  A parser must not fail when receiving it."  (An
    # endpoint would answer 415; the media types are the application's to judge.)
    m = request("invut")
    assert m.content_type.mime == "application/unknownformat"
    assert m.body == b'<audio>\r\n <pcmu port="443"/>\r\n</audio>\r\n'
    app = App()
    assert status_line(answer(MESSAGES["invut"], app)) == (200, "OK")
    assert app.seen[0].content_type.mime == "application/unknownformat"


def test_regaut01_unknown_authorization_scheme():
    # "The request is well formed.  A parser must not fail when receiving it."
    m = request("regaut01")
    assert m.headers.get("authorization") == "NoOneKnowsThisScheme opaque-data=here"
    assert status_line(answer(MESSAGES["regaut01"])) == (200, "OK")


def test_multi01_multiple_values_in_single_value_fields():
    # "An element receiving this request must not break.  An element receiving this
    # request would respond with a 400 Bad Request error."
    exc = parse_error(MESSAGES["multi01"])
    assert (exc.status, exc.reason) == (400, "Multiple CSeq headers")
    assert status_line(answer(MESSAGES["multi01"])) == (400, "Multiple CSeq headers")
    # Each of the other repeated fields is caught on its own as well.
    duplicated = (b"CSeq", b"Call-ID", b"To", b"From", b"Max-Forwards")
    for field in duplicated[1:]:
        data = MESSAGES["multi01"]
        for other in duplicated:
            if other != field:
                data = _drop_second(data, other)
        assert parse_error(data).reason == f"Multiple {field.decode()} headers"


def _drop_second(data: bytes, name: bytes) -> bytes:
    """Remove the second field line called *name*."""
    lines = data.split(b"\r\n")
    first = next(i for i, line in enumerate(lines) if line.startswith(name + b": "))
    second = next(i for i, line in enumerate(lines)
                  if i > first and line.startswith(name + b": "))
    del lines[second]
    return b"\r\n".join(lines)


def test_mcl01_multiple_content_length_values():
    # "An element receiving this message should respond with an error.  This request
    # appeared over UDP, so the remainder of the datagram can simply be discarded.  If a
    # request like this arrives over TCP, the framing error is not recoverable, and the
    # connection should be closed."
    exc = parse_error(MESSAGES["mcl01"])
    assert (exc.status, exc.reason) == (400, "Multiple Content-Length headers")
    assert status_line(answer(MESSAGES["mcl01"])) == (400, "Multiple Content-Length headers")
    with pytest.raises(ParseError) as caught:
        StreamFramer().feed(MESSAGES["mcl01"])
    assert caught.value.fatal


def test_bcast_a_response_with_a_broadcast_via_is_parsed_and_discarded():
    # "The message is well formed; parsers must not fail when receiving it.  Per
    # [RFC3261], an endpoint receiving this message should simply discard it."
    m = response("bcast")
    assert [v.host for v in m.vias] == ["192.0.2.198", "255.255.255.255"]
    out, endpoint = answers(MESSAGES["bcast"])
    assert out == [] and dict(endpoint.stats.responses_received) == {200: 1}


def test_zeromf_max_forwards_of_zero():
    # "An endpoint should process the request as if the Max-Forwards field value were
    # still positive."
    assert request("zeromf").max_forwards == 0
    assert status_line(answer(MESSAGES["zeromf"])) == (200, "OK")


def test_cparam01_a_contact_parameter_is_not_a_uri_parameter():
    # "the 'unknownparam' parameter must be interpreted as a contact-param and not a
    # url-param."
    contact = parse_name_addr(request("cparam01").headers.get("contact"))
    assert contact.uri_text == "sip:+19725552222@gw1.example.net"
    assert contact.params == {"unknownparam": None}
    assert contact.uri.params == {}
    assert status_line(answer(MESSAGES["cparam01"])) == (200, "OK")


def test_cparam02_a_uri_parameter_stays_in_the_uri():
    # "a subsequent retrieval of the registration must include "unknownparam" as a
    # url-parameter."
    contact = parse_name_addr(request("cparam02").headers.get("contact"))
    assert (contact.params, contact.uri.params) == ({}, {"unknownparam": None})
    assert str(contact) == "<sip:+19725552222@gw1.example.net;unknownparam>"
    assert status_line(answer(MESSAGES["cparam02"])) == (200, "OK")


def test_regescrt_a_contact_uri_with_an_escaped_header():
    # "a subsequent retrieval of the registration must include the escaped Route header
    # in the contact URI for this binding."
    m = request("regescrt")
    contact = parse_name_addr(m.headers.get("contact"))  # M:
    assert contact.uri.headers == {"Route": "%3Csip:sip.example.com%3E"}
    assert unescape(contact.uri.headers["Route"]) == "<sip:sip.example.com>"
    assert contact.uri_text == "sip:user@example.com?Route=%3Csip:sip.example.com%3E"
    assert m.body == b"" and m.headers.get("content-length") == "0"  # L:0
    assert status_line(answer(MESSAGES["regescrt"])) == (200, "OK")


def test_sdp01_an_accept_without_sdp_reaches_the_application():
    # "The recipient of this request could respond with a 406 Not Acceptable ... It is
    # also appropriate to respond with a 400".  Parsing is not where that is decided.
    m = request("sdp01")
    assert [media.mime for media, _ in parse_accept(m.headers.get_all("accept"))] == [
        "text/nobodyknowsthis"]
    assert status_line(answer(MESSAGES["sdp01"])) == (200, "OK")


# -- 3.4 backward compatibility ------------------------------------------------------------

def test_inv2543_an_rfc_2543_invite():
    # "a legal message per RFC 2543 ... that should be accepted by RFC 3261 elements that
    # want to maintain backwards compatibility."
    m = request("inv2543")
    assert m.top_via.branch is None  # "no branch parameter at all"
    assert m.from_.tag is None  # "There is no From tag."
    assert m.max_forwards is None  # "There is no Max-Forwards header field."
    # "There is no explicit Content-Length.  (The body is assumed to be all octets in the
    # datagram after the null-line.)"
    assert "content-length" not in m.headers
    assert m.body == MESSAGES["inv2543"].partition(b"\r\n\r\n")[2] and len(m.body) == 105
    # A bare addr-spec: ";user=phone" is a parameter of the To field, not of the URI.
    assert (m.to.params, m.to.uri.params) == ({"user": "phone"}, {})
    assert m.from_.uri.params == {"user": "phone"}
    out = answer(MESSAGES["inv2543"])
    assert status_line(out) == (200, "OK")
    assert out.to.tag is not None
