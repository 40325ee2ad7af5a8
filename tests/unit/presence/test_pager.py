"""Pager-mode MESSAGE between SIP users (RFC 3428): forked to every registered contact,
refused with the right status when it cannot be handed on."""

from __future__ import annotations

from sipresence.presence.agent import AgentConfig
from sipresence.presence.pager import Pager, flow
from sipresence.sip.message import Request, Response
from sipresence.sip.transport import Peer
from sipresence.sip.uas import make_response
from tests.support.phone import Phone, register

ALICE = "sip:alice@example.com"


def message(p: Phone, uri: str = ALICE, **kwargs) -> Response:
    headers = kwargs.pop("headers", ["Content-Type: text/plain"])
    return p.request("MESSAGE", uri=uri, from_uri="sip:bob@example.com", headers=headers,
                     body=kwargs.pop("body", "Lunch?"), **kwargs)


def test_a_message_is_forked_to_every_contact_with_the_senders_address():
    p = Phone(domains=["example.com"])
    register(p, contact="<sip:alice@192.0.2.7:5070>")
    p.request("REGISTER", uri="sip:example.com", to_uri=ALICE, from_uri=ALICE,
              from_tag="r2", call_id="reg-2",
              headers=["Contact: <sip:alice@192.0.2.9:5080;transport=tcp>", "Expires: 600"])
    before = len(p.inbox)
    answer = message(p, headers=["Content-Type: text/plain;charset=UTF-8"])
    assert answer.status == 202
    sent = [m for m in p.inbox[before:] if isinstance(m, Request)]
    assert sorted(str(m.request_uri) for m in sent) == [
        "sip:alice@192.0.2.7:5070", "sip:alice@192.0.2.9:5080;transport=tcp"]
    # Where each copy went: the UDP phone where its REGISTER came from (the Phone's
    # peer), the TCP one at its Contact.
    flows = dict(p.agent.contacts(ALICE))
    assert flows["sip:alice@192.0.2.7:5070"] == Peer("UDP", "192.0.2.7", 5070)
    assert flows["sip:alice@192.0.2.9:5080;transport=tcp"] is None  # its Contact
    for m in sent:
        assert (m.from_.uri.aor(), m.to.uri.aor(), m.body) == ("sip:bob@example.com", ALICE,
                                                                b"Lunch?")
        assert m.headers.get("Content-Type") == "text/plain;charset=UTF-8"
        assert m.headers.get("Max-Forwards") == "69"  # a fresh 70, minus this hop
    for m in sent:
        p.send(make_response(m, 200).to_bytes().decode())
    assert p.agent.pager.sent == 1


def test_nobody_to_hand_it_to_is_an_answer_not_a_silence():
    p = Phone(domains=["example.com"])
    assert message(p, uri="sip:alice@elsewhere.test").status == 404
    assert message(p, call_id="c2").status == 480  # nothing registered
    # With users configured, a name that is none of them is nobody (404); and a
    # MESSAGE, whose From the recipient trusts, must prove its sender like a PUBLISH.
    agent = Phone(domains=["example.com"], config=AgentConfig(users={"alice": "pw"})).agent
    assert agent.knows(ALICE) and not agent.knows("sip:zed@example.com")
    assert message(Phone(config=AgentConfig(users={"alice": "pw"}))).status == 401


def test_max_forwards_zero_is_too_many_hops():
    p = Phone()
    register(p)
    before = len(p.inbox)
    p.send("\r\n".join([
        f"MESSAGE {ALICE} SIP/2.0", "Via: SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bKmf0",
        "From: <sip:bob@example.com>;tag=b", f"To: <{ALICE}>", "Call-ID: mf0",
        "CSeq: 1 MESSAGE", "Max-Forwards: 0", "Content-Type: text/plain",
        "Content-Length: 2", "", "hi"]))
    [answer] = [m for m in p.inbox[before:] if isinstance(m, Response)]
    assert answer.status == 483


def test_every_contact_refusing_keeps_the_most_telling_answer():
    pager = Pager()
    ended: list = []
    pager.listeners.append(ended.append)
    delivery = pager.send("sip:bob@example.com", ALICE, "text/plain", b"x",
                          [flow("sip:a@192.0.2.1", "UDP:198.51.100.4:41000"),
                           ("sip:a@192.0.2.2;transport=tcp", None),
                           ("mailto:a@example.com", None)], origin="asker")
    first, second = pager.take()
    # A datagram device is reached where it registered from (behind its NAT), a
    # stream device at its Contact.
    assert (first.peer.transport, first.peer.host, first.peer.port) == (
        "UDP", "198.51.100.4", 41000)
    assert (second.peer.transport, second.peer.host, second.peer.port) == (
        "TCP", "192.0.2.2", 5060)
    pager.answered(first.ref, Response(408), 1.0)
    assert not delivery.finished and ended == []
    pager.answered(second.ref, Response(486), 1.0)
    assert (delivery.finished, delivery.delivered, delivery.status) == (True, False, 486)
    assert ended == [delivery] and pager.failed == 1
    nowhere = pager.send("sip:bob@example.com", ALICE, "text/plain", b"x",
                         [("tel:+1555", None)], origin="asker")
    assert (nowhere.finished, nowhere.status) == (True, 480)
    assert ended == [delivery, nowhere]
