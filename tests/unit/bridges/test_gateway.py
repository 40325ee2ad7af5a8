"""The gateway's decisions, sans-IO: stanzas in, stanzas and SIP out, the agent's rules
applied to chat watchers, nothing echoed, the link's loss and return."""

from __future__ import annotations

import pytest

from sipresence.bridges.gateway import Gateway, MessageStanza, PresenceStanza
from sipresence.bridges.rfc8048 import Addresses
from sipresence.sip.message import Request
from sipresence.sip.uas import make_response
from tests.support.phone import Phone, register, subscribe_headers

ALICE = "sip:alice@example.com"
BOB = "sip:bob@xmpp.example.com"  # a chat user, as SIP names him
ALICE_JID = "alice@sip.example.com"


class Bridge:
    def __init__(self, **agent_kwargs) -> None:
        self.phone = Phone(domains=["example.com", "xmpp.example.com"], **agent_kwargs)
        self.agent = self.phone.agent
        self.woken = 0
        self.gateway = Gateway(self.agent, Addresses("sip.example.com", "example.com",
                                                     ("xmpp.example.com",)), wake=self._wake)
        self.gateway.connected(0.0)

    def _wake(self) -> None:
        self.woken += 1

    def presence(self, sender: str, to: str, kind: str | None = None, **kwargs) -> None:
        self.gateway.presence(PresenceStanza(sender, to, kind, **kwargs), self.phone.now)
        self.phone.collect()

    def take(self) -> list:
        out = self.gateway.take(self.phone.now)
        self.phone.collect()
        return out

    def watch_bob(self, expires: int = 600):
        return self.phone.request("SUBSCRIBE", uri=BOB, from_uri=ALICE, from_tag="w",
                                  call_id="watch-bob", headers=subscribe_headers(
                                      expires=expires))


@pytest.fixture
def bridge() -> Bridge:
    return Bridge()


def test_a_chat_user_allowed_is_told_subscribed_and_the_state_then_each_change(bridge):
    bridge.presence("bob@xmpp.example.com/laptop", ALICE_JID, "subscribe")
    assert bridge.take() == [
        PresenceStanza(ALICE_JID, "bob@xmpp.example.com", "subscribed"),
        PresenceStanza(ALICE_JID, "bob@xmpp.example.com", "unavailable")]
    assert bridge.agent.roster.get(ALICE, BOB).state == "active"
    bridge.phone.publish(activity="busy", note="Report")
    assert bridge.woken
    assert bridge.take() == [PresenceStanza(ALICE_JID, "bob@xmpp.example.com", None, "dnd",
                                            "Report")]
    # A new version that XMPP shows the same is not sent again.
    bridge.phone.publish(activity="meeting", note="Report", call_id="pub-2")
    assert bridge.take() == []
    bridge.presence("bob@xmpp.example.com/laptop", ALICE_JID, "probe")
    assert bridge.take() == [PresenceStanza(ALICE_JID, "bob@xmpp.example.com", None, "dnd",
                                            "Report")]
    bridge.presence("bob@xmpp.example.com/laptop", ALICE_JID, "unsubscribe")
    assert bridge.take() == [PresenceStanza(ALICE_JID, "bob@xmpp.example.com",
                                            "unavailable")]
    assert bridge.agent.roster.get(ALICE, BOB) is None
    bridge.phone.publish(activity="away", note="Gone", call_id="pub-3")
    assert bridge.take() == []


def test_confirm_waits_for_the_person_and_block_says_unsubscribed(bridge):
    bridge.agent.set_rule(ALICE, BOB, "confirm", 0.0)
    bridge.presence("bob@xmpp.example.com/laptop", ALICE_JID, "subscribe")
    assert bridge.take() == []
    assert bridge.agent.roster.get(ALICE, BOB).state == "pending"
    bridge.phone.publish()
    assert bridge.take() == []  # nothing of her state before she says yes
    bridge.agent.set_rule(ALICE, BOB, "allow", 0.0)
    assert bridge.take() == [
        PresenceStanza(ALICE_JID, "bob@xmpp.example.com", "subscribed"),
        PresenceStanza(ALICE_JID, "bob@xmpp.example.com", None, "dnd", "In a meeting")]
    bridge.agent.set_rule(ALICE, BOB, "confirm", 0.0)  # a yes given is not taken back
    assert bridge.take() == []
    bridge.agent.set_rule(ALICE, "xmpp.example.com", "block", 0.0)
    bridge.agent.remove_rule(ALICE, BOB, 0.0)
    assert bridge.take() == [  # RFC 6121 3.2.2: the state he saw goes first
        PresenceStanza(ALICE_JID, "bob@xmpp.example.com", "unavailable"),
        PresenceStanza(ALICE_JID, "bob@xmpp.example.com", "unsubscribed")]
    assert bridge.agent.roster.get(ALICE, BOB) is None
    # Asking again while blocked: refused at once, nothing kept.
    bridge.presence("bob@xmpp.example.com/phone", ALICE_JID, "subscribe")
    assert bridge.take() == [PresenceStanza(ALICE_JID, "bob@xmpp.example.com",
                                            "unsubscribed")]
    assert len(bridge.agent.roster) == 0


def test_nobody_of_that_name_is_an_error_not_silence():
    bridge = Bridge(config=__import__("sipresence.presence.agent", fromlist=["AgentConfig"])
                    .AgentConfig(users={"alice": "secret"}))
    bridge.presence("bob@xmpp.example.com/laptop", "zed@sip.example.com", "subscribe")
    assert bridge.take() == [PresenceStanza("zed@sip.example.com", "bob@xmpp.example.com/laptop",
                                            "error", error="item-not-found")]
    bridge.presence("bob@xmpp.example.com/laptop", "zed@sip.example.com", "unsubscribe")
    assert bridge.take() == []  # an unsubscribe is never answered with an error


def test_a_sip_watcher_of_a_chat_user_waits_for_the_chat_users_yes(bridge):
    answer = bridge.watch_bob()
    assert answer.status == 202  # a bridged domain's people decide themselves
    assert bridge.take() == [PresenceStanza(ALICE_JID, "bob@xmpp.example.com", "subscribe")]
    bridge.phone.answer_all()
    bridge.presence("bob@xmpp.example.com", ALICE_JID, "subscribed")
    notify = bridge.phone.notifies()[-1]
    assert notify.headers.get("Subscription-State").startswith("active")
    bridge.phone.answer_all()
    bridge.presence("bob@xmpp.example.com/laptop", ALICE_JID, None, show="away",
                    status="Coffee")
    notify = bridge.phone.notifies()[-1]
    assert b"<rpid:away/>" in notify.body and b"Coffee" in notify.body
    bridge.phone.answer_all()
    count = len(bridge.phone.notifies())
    version = bridge.agent.presentities.version(BOB)
    # Presence directed at a SIP user who does not watch him (or a made-up one) is
    # not for his watchers: nothing changes.
    bridge.presence("bob@xmpp.example.com/laptop", "carol@sip.example.com", None,
                    show="dnd", status="Only for Carol")
    assert bridge.agent.presentities.version(BOB) == version
    # Carol watches him too: the same presence once more (one copy per SIP user
    # watching him) is no new version and no NOTIFY.
    bridge.phone.request("SUBSCRIBE", uri=BOB, from_uri="sip:carol@example.com",
                         from_tag="c", call_id="carol-bob", headers=subscribe_headers())
    bridge.take()
    bridge.agent.set_rule(BOB, "sip:carol@example.com", "allow", 0.0)
    bridge.phone.answer_all()
    count, version = len(bridge.phone.notifies()), bridge.agent.presentities.version(BOB)
    bridge.presence("bob@xmpp.example.com/laptop", "carol@sip.example.com", None,
                    show="away", status="Coffee")
    assert bridge.agent.presentities.version(BOB) == version
    assert len(bridge.phone.notifies()) == count
    # Carol's subscription to him ends on his side: he is still there for Alice.
    bridge.presence("bob@xmpp.example.com/laptop", "carol@sip.example.com", "unavailable")
    assert bridge.agent.presentities.get(BOB).summary.basic == "open"
    assert len(bridge.phone.notifies()) == count
    # Bob's state never goes back out to XMPP: no echo.
    assert bridge.take() == []
    # Routing sees him: dnd in chat is busy for a caller.
    bridge.presence("bob@xmpp.example.com/laptop", ALICE_JID, None, show="dnd")
    assert bridge.agent.route(BOB, bridge.phone.now).status == 486
    bridge.presence("bob@xmpp.example.com/laptop", ALICE_JID, "unavailable")
    assert bridge.agent.presentities.get(BOB).summary.basic == "closed"


def test_the_chat_users_no_ends_the_sip_subscription_rejected(bridge):
    bridge.watch_bob()
    bridge.take()
    bridge.phone.answer_all()
    bridge.presence("bob@xmpp.example.com", ALICE_JID, "unsubscribed")
    assert bridge.phone.notifies()[-1].headers.get(
        "Subscription-State") == "terminated;reason=rejected"
    assert bridge.agent.authorization.rules(BOB) == []  # asking again asks Bob again


def test_an_address_that_does_not_exist_ends_the_subscription_noresource(bridge):
    bridge.watch_bob()
    bridge.take()
    bridge.phone.answer_all()
    bridge.presence("bob@xmpp.example.com", ALICE_JID, "error", error="item-not-found")
    assert bridge.phone.notifies()[-1].headers.get(
        "Subscription-State") == "terminated;reason=noresource"


def test_the_sip_users_unsubscribe_is_an_xmpp_unsubscribe(bridge):
    bridge.watch_bob()
    bridge.take()
    bridge.phone.answer_all()
    bridge.presence("bob@xmpp.example.com", ALICE_JID, "subscribed")
    bridge.phone.answer_all()
    notify = bridge.phone.notifies()[-1]
    bridge.phone.request("SUBSCRIBE", uri=BOB, from_uri=ALICE, from_tag="w",
                         call_id="watch-bob", cseq=2, to_tag=notify.from_.tag,
                         headers=subscribe_headers(expires=0))
    assert bridge.take() == [PresenceStanza(ALICE_JID, "bob@xmpp.example.com",
                                            "unsubscribe")]
    assert bridge.agent.authorization.rules(BOB) == []


def test_losing_the_link_forgets_chat_users_and_coming_back_asks_again(bridge):
    bridge.watch_bob()
    bridge.presence("bob@xmpp.example.com", ALICE_JID, "subscribed")
    bridge.presence("bob@xmpp.example.com/laptop", ALICE_JID, None)
    bridge.presence("carol@xmpp.example.com/x", "dave@sip.example.com", "subscribe")
    bridge.take()
    assert bridge.agent.presentities.get(BOB).summary.basic == "open"
    bridge.gateway.disconnected(1.0)
    assert bridge.agent.presentities.get(BOB).summary.basic == "closed"
    assert bridge.take() == []
    bridge.gateway.connected(2.0)
    assert sorted(bridge.take(), key=repr) == sorted([
        PresenceStanza("dave@sip.example.com", "carol@xmpp.example.com", "unavailable"),
        PresenceStanza(ALICE_JID, "bob@xmpp.example.com", "probe")], key=repr)
    assert bridge.gateway.stopping(3.0) == [
        PresenceStanza("dave@sip.example.com", "carol@xmpp.example.com", "unavailable",
                       status="The presence server is restarting")]


def test_a_chat_message_goes_to_every_registered_device_and_failure_comes_back(bridge):
    p = bridge.phone
    bridge.gateway.message(MessageStanza("bob@xmpp.example.com/l", ALICE_JID, "Hi",
                                         id="m1"), p.now)
    assert bridge.take() == [MessageStanza(
        ALICE_JID, "bob@xmpp.example.com/l", None, "error", "m1", "recipient-unavailable",
        "sip:alice@example.com has no phone or softphone registered")]
    register(p, contact="<sip:alice@192.0.2.7:5070>")
    p.request("REGISTER", uri="sip:example.com", to_uri=ALICE, from_uri=ALICE,
              from_tag="reg2", call_id="reg-2", headers=[
                  "Contact: <sip:alice@192.0.2.8:5070>", "Expires: 600"])
    before = len(p.inbox)
    bridge.gateway.message(MessageStanza("bob@xmpp.example.com/l", ALICE_JID, "Hi",
                                         id="m2"), p.now)
    p.collect()
    messages = [m for m in p.inbox[before:] if isinstance(m, Request)]
    assert sorted(str(m.request_uri) for m in messages) == [
        "sip:alice@192.0.2.7:5070", "sip:alice@192.0.2.8:5070"]
    assert {m.from_.uri.aor() for m in messages} == {BOB}
    assert messages[0].body == b"Hi"
    for message in messages:
        p.send(make_response(message, 486).to_bytes().decode())
    assert bridge.take() == [MessageStanza(
        ALICE_JID, "bob@xmpp.example.com/l", None, "error", "m2", "recipient-unavailable",
        "No device of sip:alice@example.com took the message (SIP 486)")]
    # One device taking it is enough; no error then.
    before = len(p.inbox)
    bridge.gateway.message(MessageStanza("bob@xmpp.example.com/l", ALICE_JID, "Again"),
                           p.now)
    p.collect()
    first, second = [m for m in p.inbox[before:] if isinstance(m, Request)]
    p.send(make_response(first, 200).to_bytes().decode())
    p.send(make_response(second, 480).to_bytes().decode())
    assert bridge.take() == []


def test_chat_states_and_errors_are_never_answered_and_unknown_users_are(bridge):
    for stanza in (MessageStanza("bob@xmpp.example.com/l", ALICE_JID, None),
                   MessageStanza("bob@xmpp.example.com/l", ALICE_JID, "x", "error")):
        bridge.gateway.message(stanza, 0.0)
    assert bridge.take() == []
    bridge.gateway.message(MessageStanza("bob@xmpp.example.com/l", "nobody@elsewhere", "x"),
                           0.0)
    [error] = bridge.take()
    assert (error.type, error.error) == ("error", "item-not-found")


def test_a_sip_message_for_a_chat_user(bridge):
    p = bridge.phone
    answer = p.request("MESSAGE", uri=BOB, from_uri=ALICE,
                       headers=["Content-Type: text/plain;charset=UTF-8"], body="Café?")
    assert answer.status == 202
    assert bridge.take() == [MessageStanza(ALICE_JID, "bob@xmpp.example.com", "Café?",
                                           id="sip1")]
    answer = p.request("MESSAGE", uri=BOB, from_uri=ALICE, call_id="c2",
                       headers=["Content-Type: application/im-iscomposing+xml"], body="<x/>")
    assert (answer.status, answer.headers.get("Accept")) == (415, "text/plain")
    answer = p.request("MESSAGE", uri=BOB, from_uri="sip:zoe@elsewhere.test", call_id="c3",
                       headers=["Content-Type: text/plain"], body="hi")
    assert answer.status == 403  # the component cannot speak for her
    bridge.gateway.disconnected(1.0)
    answer = p.request("MESSAGE", uri=BOB, from_uri=ALICE, call_id="c4",
                       headers=["Content-Type: text/plain"], body="hi")
    assert answer.status == 480


def test_a_probe_from_no_watcher_reveals_nothing_and_an_unasked_yes_is_ignored(bridge):
    bridge.phone.publish()
    bridge.presence("eve@xmpp.example.com/x", ALICE_JID, "probe")
    assert bridge.take() == [PresenceStanza(ALICE_JID, "eve@xmpp.example.com",
                                            "unsubscribed")]
    assert len(bridge.agent.roster) == 0
    bridge.presence("eve@xmpp.example.com", ALICE_JID, "subscribed")  # nobody asked
    assert bridge.agent.authorization.rules("sip:eve@xmpp.example.com") == []


def test_blocking_an_allowed_chat_watcher_says_unavailable_then_unsubscribed(bridge):
    bridge.phone.publish()
    bridge.presence("bob@xmpp.example.com/laptop", ALICE_JID, "subscribe")
    bridge.take()
    bridge.agent.set_rule(ALICE, BOB, "block", 0.0)
    assert bridge.take() == [
        PresenceStanza(ALICE_JID, "bob@xmpp.example.com", "unavailable"),
        PresenceStanza(ALICE_JID, "bob@xmpp.example.com", "unsubscribed")]


def test_a_federated_jid_never_passes_for_a_sip_user(bridge):
    """alice@example.com on some XMPP server is not sip:alice@example.com: she is
    xmpp:alice@example.com, and not allowed as the presentity itself would be."""
    bridge.agent.set_rule(ALICE, "xmpp.example.com", "allow", 0.0)
    bridge.agent.authorization.default = "block"
    bridge.presence("alice@example.com/x", ALICE_JID, "subscribe")
    assert bridge.take() == [PresenceStanza(ALICE_JID, "alice@example.com", "unsubscribed")]
    bridge.agent.authorization.default = "allow"
    bridge.presence("alice@example.com/x", ALICE_JID, "subscribe")
    assert bridge.take()[0] == PresenceStanza(ALICE_JID, "alice@example.com", "subscribed")
    assert bridge.agent.roster.get(ALICE, "xmpp:alice@example.com").state == "active"


def test_no_sip_request_speaks_for_a_chat_user():
    bridge = Bridge()
    p = bridge.phone
    assert register(p, contact="<sip:bob@192.0.2.7>").status == 200  # alice's own: fine
    for method, kwargs in (
            ("REGISTER", {"uri": "sip:xmpp.example.com", "to_uri": BOB, "from_uri": BOB,
                          "headers": ["Contact: <sip:bob@192.0.2.7>"]}),
            ("PUBLISH", {"uri": BOB, "from_uri": BOB,
                         "headers": ["Event: presence", "Content-Type: application/pidf+xml"],
                         "body": "<presence/>"}),
            ("SUBSCRIBE", {"uri": BOB, "from_uri": BOB, "headers": subscribe_headers()}),
            ("MESSAGE", {"uri": ALICE, "from_uri": BOB,
                         "headers": ["Content-Type: text/plain"], "body": "hi"})):
        answer = p.request(method, call_id=f"spoof-{method}", **kwargs)
        assert (answer.status, answer.reason) == (403, "Address Of Another Network"), method


def test_a_sip_watcher_the_component_cannot_speak_for_is_refused_not_left_pending(bridge):
    answer = bridge.phone.request("SUBSCRIBE", uri=BOB, from_uri="sip:zoe@elsewhere.test",
                                  headers=subscribe_headers())
    assert answer.status == 202
    bridge.phone.answer_all()
    assert bridge.take() == []
    assert bridge.phone.notifies()[-1].headers.get(
        "Subscription-State") == "terminated;reason=rejected"


def test_only_an_error_that_says_no_such_address_ends_subscriptions(bridge):
    bridge.watch_bob()
    bridge.take()
    bridge.phone.answer_all()
    bridge.presence("bob@xmpp.example.com", ALICE_JID, "error",
                    error="remote-server-timeout")
    assert len(bridge.agent.notifier.watchers("presence", BOB)) == 1
    bridge.presence("bob@xmpp.example.com", "carol@sip.example.com", "error",
                    error="item-not-found")  # about Carol's subscription, not Alice's
    assert len(bridge.agent.notifier.watchers("presence", BOB)) == 1


def test_the_person_sees_a_pending_chat_watcher_in_watcher_information(bridge):
    p = bridge.phone
    p.request("SUBSCRIBE", uri=ALICE, from_uri=ALICE, from_tag="own", call_id="winfo",
              headers=subscribe_headers(accept="application/watcherinfo+xml",
                                        event="presence.winfo"))
    p.answer_all()
    bridge.agent.set_rule(ALICE, BOB, "confirm", 0.0)
    bridge.presence("bob@xmpp.example.com/laptop", ALICE_JID, "subscribe")
    notify = p.notifies()[-1]
    assert b'status="pending"' in notify.body and BOB.encode() in notify.body
    p.answer_all()
    bridge.agent.set_rule(ALICE, BOB, "allow", 0.0)
    bridge.take()
    assert b'status="active" event="approved"' in p.notifies()[-1].body


def test_a_chat_message_that_no_device_took_is_told_at_once(bridge):
    """The error goes out as soon as the last device answered, with nothing else
    happening (the gateway is woken by the pager)."""
    p = bridge.phone
    register(p)
    bridge.gateway.message(MessageStanza("bob@xmpp.example.com/l", ALICE_JID, "Hi", id="m"),
                           p.now)
    p.collect()
    [sent] = [m for m in p.inbox if isinstance(m, Request) and m.method == "MESSAGE"]
    woken = bridge.woken
    p.send(make_response(sent, 480).to_bytes().decode())
    assert bridge.woken == woken + 1
    [error] = bridge.take()
    assert (error.type, error.error, error.id) == ("error", "recipient-unavailable", "m")


def test_a_message_xmpp_could_not_deliver_is_noticed_to_the_sip_sender(bridge):
    p = bridge.phone
    register(p)
    p.request("MESSAGE", uri="sip:nobody@xmpp.example.com", from_uri=ALICE, call_id="m",
              headers=["Content-Type: text/plain"], body="Anyone?")
    [sent] = bridge.take()
    # An error about no message of ours (any JID can send one): nothing is told.
    before = len(p.inbox)
    for forged in (None, "sip999"):
        bridge.gateway.message(MessageStanza("nobody@xmpp.example.com", ALICE_JID, None,
                                             "error", id=forged, error="item-not-found"),
                               p.now)
    p.collect()
    assert [m for m in p.inbox[before:] if isinstance(m, Request)] == []
    bridge.gateway.message(MessageStanza("nobody@xmpp.example.com", ALICE_JID, None,
                                         "error", id=sent.id, error="item-not-found"), p.now)
    p.collect()
    [notice] = [m for m in p.inbox[before:] if isinstance(m, Request)]
    assert notice.method == "MESSAGE" and notice.to.uri.aor() == ALICE
    assert notice.from_.uri.aor() == "sip:nobody@xmpp.example.com"
    assert notice.body == (b"Your message to nobody@xmpp.example.com was not delivered "
                           b"(item-not-found).")
    assert bridge.take() == []  # nothing goes back into XMPP


def test_a_chat_watcher_whose_address_is_gone_is_forgotten(bridge):
    bridge.presence("zed@jabber.elsewhere.test/x", ALICE_JID, "subscribe")
    bridge.take()
    assert bridge.agent.roster.get(ALICE, "xmpp:zed@jabber.elsewhere.test") is not None
    bridge.presence("zed@jabber.elsewhere.test", ALICE_JID, "error", error="gone")
    assert bridge.agent.roster.get(ALICE, "xmpp:zed@jabber.elsewhere.test") is None


def test_an_unsubscribe_made_while_the_link_is_down_is_said_when_it_is_back(bridge):
    bridge.watch_bob()
    bridge.presence("bob@xmpp.example.com", ALICE_JID, "subscribed")
    bridge.take()
    bridge.phone.answer_all()
    bridge.gateway.disconnected(1.0)
    notify = bridge.phone.notifies()[-1]
    bridge.phone.request("SUBSCRIBE", uri=BOB, from_uri=ALICE, from_tag="w",
                         call_id="watch-bob", cseq=2, to_tag=notify.from_.tag,
                         headers=subscribe_headers(expires=0))
    assert bridge.take() == []
    bridge.gateway.connected(2.0)
    assert bridge.take() == [PresenceStanza(ALICE_JID, "bob@xmpp.example.com",
                                            "unsubscribe")]
