"""What fuzzing found, each as the exact bytes that found it.

The tests of the whole agent feed a fresh :class:`~tests.support.fuzzstack.Stack`,
which checks every fuzzing invariant after each input (nothing escapes or is logged,
everything sent parses, an error answer changes nothing, the store writes every row).
"""

from __future__ import annotations

from unittest import mock

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from fuzz.targets import TARGETS
from sipresence.documents.pidf import parse_pidf, serialize_pidf
from sipresence.documents.xpidf import parse_presence
from sipresence.net.driver import Driver
from sipresence.net.tcp import SipStreamProtocol
from sipresence.presence.agent import Agent, AgentConfig
from sipresence.sip import parser
from sipresence.sip.digest import Authenticator, Credentials, response_for
from sipresence.sip.endpoint import Endpoint
from sipresence.sip.message import Request, Response
from sipresence.sip.parser import ParseError, StreamFramer
from sipresence.sip.parser import _find_head_end as find_head_end
from tests.support.fuzzstack import Stack, deterministic_ids

SUBSCRIBE = (b"SUBSCRIBE sip:alice@example.com SIP/2.0\r\n"
             b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKf16;rport\r\n"
             b"Max-Forwards: 70\r\nFrom: <sip:bob@example.com>;tag=w-presence\r\n"
             b"To: <sip:alice@example.com>\r\nCall-ID: subscribe-presence-pidf+xml@127.0.0.1\r\n"
             b"CSeq: 1 SUBSCRIBE\r\nEvent: presence\r\nExpires: 600\r\n"
             b"Accept: application/pidf+xml\r\nContact: <sip:bob@127.0.0.1:5070>\r\n"
             b"Content-Length: 0\r\n\r\n")


def register(contact: bytes, authorization: bytes = b"") -> bytes:
    return (b"REGISTER sip:example.com SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKf2;rport\r\n"
            b"Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=reg1\r\n"
            b"To: <sip:alice@example.com>\r\nCall-ID: register-1@127.0.0.1\r\n"
            b"CSeq: 1 REGISTER\r\nContact: " + contact + b"\r\nExpires: 3600\r\n"
            + authorization + b"Content-Length: 0\r\n\r\n")


def statuses(sent: list[object]) -> list[int | str]:
    return [m.status if isinstance(m, Response) else m.method  # type: ignore[attr-defined]
            for m in sent]


def test_a_contact_with_a_non_utf8_byte_is_composed_into_the_watchers_pidf():
    # Found by the atheris endpoint target: the binding's key (its +sip.instance, with
    # the bytes 0xff as surrogate escapes) went into xml.digest(), whose plain
    # str.encode() raised UnicodeEncodeError out of the endpoint at the NOTIFY.
    with deterministic_ids():
        stack = Stack()
        assert statuses(stack.datagram(register(
            b'<sip:alice@127.0.0.1:5070>;+sip.instance="<urn:uuid:0000000\xff\xff0-0000>"'
            b";reg-id=1"))) == [200]
        sent = stack.datagram(SUBSCRIBE)
    assert statuses(sent) == [200, "NOTIFY"]
    notify = sent[1]
    assert isinstance(notify, Request) and b"<tuple" in notify.body


def test_a_register_for_a_domain_not_served_leaves_no_binding():
    # Found by test_fields.py: the 404 came with a binding for sip:alice@elsewhere.example
    # in the registrar (not journaled, so it also differed from the store).
    data = register(b"<sip:alice@127.0.0.1:5070>").replace(
        b"To: <sip:alice@example.com>", b"To: <sip:alice@elsewhere.example>")
    with deterministic_ids():
        stack = Stack(domains=("example.com",))
        sent = stack.datagram(data)  # raises Violation: answered [404] but the state changed
    assert statuses(sent) == [404]


@pytest.mark.parametrize("credentials", [
    # A lone surrogate (non-UTF-8 byte) in the nonce: str.encode() in the nonce's MAC.
    b'Digest username="alice", realm="sipresence", nonce="\xff.x", uri="sip:a", '
    b'response="x"',
    # ... in the digest-uri: str.encode() in the hash of A2.
    b'Digest username="alice", realm="sipresence", nonce="1.x", uri="sip:\xff", '
    b'response="x"',
    # Non-ASCII in the response: hmac.compare_digest() refuses non-ASCII str.
    b'Digest username="alice", realm="sipresence", nonce="1.x", uri="sip:a", '
    b'response="\xc3\xa9"',
])
def test_credentials_with_non_ascii_bytes_get_a_challenge_not_a_500(credentials):
    # Each made Authenticator.check raise inside the agent: the endpoint answered 500
    # and logged "application failed on REGISTER".
    with deterministic_ids():
        stack = Stack(config=AgentConfig(realm="sipresence", users={"alice": "secret"}))
        sent = stack.datagram(register(b"<sip:alice@127.0.0.1:5070>",
                                       b"Authorization: " + credentials + b"\r\n"))
    assert statuses(sent) == [401]


def test_credentials_are_checked_over_the_bytes_sent():
    # The request-digest of a client whose digest-uri has a non-UTF-8 byte is computed
    # over that byte: the agent hashes the same bytes, so the user is recognised.
    authenticator = Authenticator("sipresence", {"alice": "secret"})
    nonce = authenticator.challenge(0.0)[0][1].split('nonce="')[1].split('"')[0]
    ha1 = authenticator._ha1[("alice", "MD5")]
    uri = b"sip:\xff@example.com".decode("utf-8", "surrogateescape")
    response = response_for("MD5", ha1, "REGISTER", Credentials("alice", "sipresence", nonce,
                                                                uri, ""))
    value = (f'Digest username="alice", realm="sipresence", nonce="{nonce}", uri="{uri}", '
             f'response="{response}"')
    assert authenticator.check("REGISTER", [value], 1.0) == "alice"


# Found by the atheris compose target: a contact priority "-0" is read as -0.0, in
# range, and was written back as priority="-0", which the schema refuses.
NEGATIVE_ZERO = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<presence entity="sip:1000@pbx.example.com" '
    b'xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" '
    b'xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid">\n <note>On the phone</note>\n '
    b'<tuple id="1000">\n  <status>\n(  <basic>open</basic>\n  </status>\n  '
    b'<contact priority="-0">sip:examle.com</contact>\n </tuple>\n <dm:person>\n  '
    b'<rpid:activities>\n   <rpid:on-the-phone />\n  </rpid:activities>\n </dm:person>\n'
    b'</presence>\n')


def test_a_priority_of_minus_zero_is_written_as_a_valid_qvalue():
    TARGETS["compose"].run(NEGATIVE_ZERO)  # raises when the composed PIDF is invalid
    assert b'priority="0"' in serialize_pidf(parse_pidf(NEGATIVE_ZERO))


# Found by the atheris compose target after 955,949 cases (a Cisco Jabber body, mutated):
# libxml2 read the servcaps extension in a namespace that is no URI ("]" in it), and
# building it back for the schema check raised ValueError out of the lenient parser.
BAD_NAMESPACE = (
    b'<presence xmlns= "urn:ietf:params:xml:ns:pidf" entity= "sip:brmagu.com" > entity'
    b'= "sip:brmaguir@cisco.com" > <person xmlns= "urn:cisco:params:xml:js:pidf:rpid" '
    b'id= "brmaguiz" > <activities> <user-input> idle </user-input> <available /> <pho'
    b'ne-status> unavailable </phone-status> <im-status> available </im-status> </acti'
    b'vities> </person> <display-name xmlns= "urn:ietf:params:xml:ns:pidf:cipid" > Bre'
    b'ndan Maguire </display-name> <tuple xsmnl= "urn:cisco:params:xml:ns:pidf" id= "c'
    b'isco-upc" > <contact priority= "0.6" > sip:brmaguir@cIsco.com </contact> <note x'
    b'ml:lang= "en" /> <sc:servcaps xmlns:sc= "urn:ietf:aprams:xml:ns:pidf]servcaps" >'
    b' <sc:video> false </sc:video> <sc:audio> false </sc:audio> <sc:text> true </sc:t'
    b'ext> <sc:type> text/plain </sc:type> <sc:type> applicat-cupication/x-cisco-cupc+'
    b'xml </sc:type> </sc:servcaps> <user-input> idle </user-input> <status> <basic> o'
    b'pen </basic> </status> </tuple> <tuple xmlns= "urn:ietf:params:xml:ns:pidf" id= '
    b'"Jabbercup7" > <status> <basic> open </basic> atus> <basic> open </basic> </stat'
    b'us> <servcaps xmlns= "ups" > <type> text/plaio-cupcl </type> <text> true </text>'
    b' </servcaps> </tuple> </presence>\n')


def test_an_extension_in_a_namespace_that_is_no_uri_is_dropped_not_raised():
    TARGETS["compose"].run(BAD_NAMESPACE)
    upc, jabber = parse_presence(BAD_NAMESPACE).tuples
    assert upc.extensions == () and upc.contact == "sip:brmaguir@cIsco.com"
    assert [e.namespace for e in jabber.extensions] == ["ups"]


# Found by the atheris compose target after 306,918 cases: an element libxml2 read with
# a name lxml calls no valid tag (an unbound prefix in it) made etree.QName raise out of
# the lenient parser; tags are now split as strings everywhere.
UNBOUND_NAME = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="no"?>\r\n<presence xmlns="urn:iet'
    b'f:params:xml:ns:pidf"\r\n    xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"\r   '
    b'xmlns:rpid="urn:ietf:params:xmlc:ns:pidf:rpid"\r\n    entity="sip:alice@exaJmple.c'
    b'om">\r\n  <dm:person id="p8318"><Jabbercurn:ietf:params:xml:nsp:idf:rpidup7tivitie'
    b's/></dm:person>\r\n  <tuple id="t9486">\r\n    <status>\r\n      4<basic>open</basic>\r'
    b'ndalone="no"?>\r\n<presence xmlns="u?n:ietf:paramj:xml:ns:pidf"\r\n    xmlns:dm="urn'
    b':ietf:params:xml:ns:pidf:data-model"\r   xmlns:rpid="urn:ietf:params:xmlc:ns:pidf'
    b':rpid"\r\n    entity="sip:alice@exaJmple.com">\r\n  <dm:person id="p4159"><tiiiestv/'
    b'></dm:person>\r\n  <tuple id="t6990">\r\n    tact>\r\n  </tuple>\r\n</presence>\r\n    </s'
    b'tatus>\r\n    <contact>s[p:alice@urnence xmlns="urn:ietf:prn:ietf:params:xml:ns:pi'
    b'd"\r\n    x:ietf:params:xml:nsp:idf:rpidexample.com</contact>\r\n  </tuple>\r\n</prese'
    b'nce>\r\n')


def test_an_element_whose_name_lxml_refuses_is_dropped_not_raised():
    TARGETS["compose"].run(UNBOUND_NAME)
    assert all(person.extensions == () for person in parse_presence(UNBOUND_NAME).persons)


@pytest.mark.parametrize(("q", "restated"), [(b"-0", "0"), (b"0.00001", "0"),
                                              (b"0.5", "0.5")])
def test_a_registered_q_is_restated_as_a_qvalue_and_composed_validly(q, restated):
    # The same through the registrar: q=-0 made every NOTIFY of the presentity carry
    # priority="-0" (invalid PIDF), and the 200 restated ";q=-0" and ";q=1e-05".
    with deterministic_ids():
        stack = Stack()
        [ok] = stack.datagram(register(b"<sip:alice@127.0.0.1:5070>;q=" + q))
        sent = stack.datagram(SUBSCRIBE)  # the Stack validates the NOTIFY's PIDF
    assert isinstance(ok, Response) and ok.headers.get("contact", "").endswith(f";q={restated}")
    assert statuses(sent) == [200, "NOTIFY"]


# A request, then in the same TCP segment a message whose two Content-Length values
# lose the framing (found by the atheris stream target: the framing of the first
# message depended on where the segments were cut).
OPTIONS = (b"OPTIONS sip:alice@example.com SIP/2.0\r\n"
           b"Via: SIP/2.0/TCP 127.0.0.1:5071;branch=z9hG4bKopt1\r\nMax-Forwards: 70\r\n"
           b"From: <sip:bob@example.com>;tag=1\r\nTo: <sip:alice@example.com>\r\n"
           b"Call-ID: opt-1@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
LOST = (b"OPTIONS sip:alice@example.com SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\nxy")


def test_messages_framed_before_a_fatal_error_are_handed_over_with_it():
    with pytest.raises(ParseError) as raised:
        StreamFramer().feed(OPTIONS + LOST)
    assert raised.value.fatal and raised.value.reason == "Multiple Content-Length headers"
    [first] = raised.value.framed
    assert isinstance(first, Request) and first.call_id == "opt-1@127.0.0.1"
    # The same as when the segments had been cut between the two.
    framer = StreamFramer()
    [again] = framer.feed(OPTIONS)
    assert again.headers == first.headers
    with pytest.raises(ParseError) as later:
        framer.feed(LOST)
    assert later.value.framed == []


def test_a_message_in_one_byte_segments_is_scanned_and_parsed_once():
    # Found by the atheris stream target running at 200 cases/s: every feed rescanned
    # the whole buffer for the blank line and reparsed the header section while the
    # body came in, so a 60 KB message sent one byte per TCP segment took 5 s of the
    # reactor's time.
    message = (b"OPTIONS sip:alice@example.com SIP/2.0\r\nX-Pad: " + b"a" * 20000
               + b"\r\nContent-Length: 2000\r\n\r\n" + b"b" * 2000)
    scanned: list[int] = []

    def find(data: bytes | bytearray, start: int = 0) -> tuple[int, int]:
        scanned.append(len(data) - start)
        return find_head_end(data, start)

    framer = StreamFramer()
    with (mock.patch.object(parser, "_find_head_end", find),
          mock.patch.object(parser, "parse_head", wraps=parser.parse_head) as parse):
        out = [item for i in range(len(message)) for item in framer.feed(message[i:i + 1])]
    assert [type(item) for item in out] == [Request] and out[0].body == b"b" * 2000
    assert parse.call_count == 1
    assert sum(scanned) < 4 * len(message)


def test_the_tcp_edge_answers_what_came_before_the_framing_error():
    agent = Agent()
    endpoint = Endpoint(agent)
    driver = Driver(Clock(), endpoint, agent)
    protocol = SipStreamProtocol(driver, "TCP", None)
    transport = StringTransport(hostAddress=IPv4Address("TCP", "127.0.0.1", 5060),
                                peerAddress=IPv4Address("TCP", "127.0.0.1", 5071))
    protocol.makeConnection(transport)
    protocol.dataReceived(OPTIONS + LOST)
    assert transport.value().startswith(b"SIP/2.0 200 OK\r\n")


def test_a_contact_with_uri_headers_is_no_remote_target():
    # Found by the atheris endpoint target (after 337,222 cases): a refresh whose
    # Contact was <sip:bob@127.0.0.1:50?0;transport=udp> made a URI with headers the
    # remote target, and every NOTIFY after it had a Request-URI that does not parse
    # (RFC 3261 19.1.1: no headers there).  Such a Contact is now a 400 Bad Contact,
    # on a new subscription and on a refresh, which then leaves the target as it was.
    with deterministic_ids():
        stack = Stack()
        bad = (SUBSCRIBE.replace(b"<sip:bob@127.0.0.1:5070>", b"<sip:bob@127.0.0.1:50?0>")
               .replace(b"z9hG4bKf16", b"z9hG4bKf15").replace(b"Call-ID: s", b"Call-ID: bad-s"))
        [refused] = stack.datagram(bad)
        assert isinstance(refused, Response) and (refused.status, refused.reason) == (
            400, "Bad Contact")
        ok, _ = stack.datagram(SUBSCRIBE)
        assert isinstance(ok, Response) and ok.status == 200
        refresh = (SUBSCRIBE.replace(b"z9hG4bKf16", b"z9hG4bKf17")
                   .replace(b"CSeq: 1 SUBSCRIBE", b"CSeq: 2 SUBSCRIBE")
                   .replace(b"To: <sip:alice@example.com>",
                            b"To: <sip:alice@example.com>;tag=" + ok.to.tag.encode())
                   .replace(b"<sip:bob@127.0.0.1:5070>",
                            b"<sip:bob@127.0.0.1:50?0;transport=udp>"))
        [again] = stack.datagram(refresh)
        assert isinstance(again, Response) and again.status == 400
        [subscription] = stack.agent.notifier.all()
        assert subscription.dialog.remote_target == "sip:bob@127.0.0.1:5070"
