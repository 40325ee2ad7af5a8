"""The IM bridge against a real Prosody: presence and messages both ways, the
subscription handshakes under the person's rules, and recovery when Prosody or the
agent restarts (issue 11).  Chat users are slixmpp clients; SIP users are raw UDP
clients that publish, subscribe, register and answer as phones do."""

from __future__ import annotations

import re
import time
import urllib.parse
import urllib.request

import pytest

from sipresence.sip.message import Request, Response
from sipresence.sip.uas import make_response
from tests.integration.test_http_rules import api
from tests.support.prosody import (
    COMPONENT,
    SECRET,
    SIP_DOMAIN,
    XMPP_DOMAIN,
    ChatUser,
    Prosody,
    prosody_missing,
)
from tests.support.server import start_server
from tests.support.sip import UdpClient, request

pytestmark = pytest.mark.skipif(prosody_missing() is not None,
                                reason=prosody_missing() or "")

PIDF = ('<?xml version="1.0"?><presence xmlns="urn:ietf:params:xml:ns:pidf" '
        'xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" '
        'xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:{user}@example.com">'
        '<tuple id="t"><status><basic>open</basic></status></tuple>'
        '<dm:person id="p">{activities}<dm:note>{note}</dm:note></dm:person></presence>')
DIALOG = ('<?xml version="1.0"?><dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" '
          'version="{version}" state="full" entity="sip:{user}@example.com">{dialog}'
          '</dialog-info>')
# How long "nothing arrives" is watched for: ten times what a stanza takes here.
QUIET = 0.5
CALL = ('<dialog id="d1" call-id="c1" local-tag="a" remote-tag="b" direction="initiator">'
        '<state>confirmed</state></dialog>')


class Phone(UdpClient):
    """A SIP user agent on UDP: answers the agent's requests with 200, keeps them."""

    def __init__(self, agent) -> None:
        super().__init__(agent.udp)
        self.received: list[Request] = []

    def next_request(self, method: str, timeout: float = 10.0) -> Request:
        while True:
            message = self.recv(timeout)
            if isinstance(message, Request):
                self.sock.sendto(make_response(message, 200).to_bytes(), self.server)
                if message.method == method:
                    return message

    def ask_as(self, user: str, method: str, uri: str, **kwargs) -> Response:
        """A request from sip:<user>@example.com (the From the agent reads)."""
        to = kwargs.pop("to", uri)
        data = request(method, self.server, self.local, uri=uri, to=to, **kwargs)
        data = data.replace(f"From: <sip:tester@{self.local[0]}>".encode(),
                            f"From: <sip:{user}@{SIP_DOMAIN}>".encode())
        self.send(data)
        while True:
            message = self.recv()
            if isinstance(message, Response):
                return message
            self.sock.sendto(make_response(message, 200).to_bytes(), self.server)

    def publish(self, user: str, note: str, activity: str | None = None,
                etag: str | None = None) -> str:
        activities = f"<rpid:activities><rpid:{activity}/></rpid:activities>" if activity else ""
        headers = "Event: presence\r\nContent-Type: application/pidf+xml\r\nExpires: 600\r\n"
        if etag:
            headers += f"SIP-If-Match: {etag}\r\n"
        answer = self.ask_as(user, "PUBLISH", f"sip:{user}@{SIP_DOMAIN}", headers=headers,
                             body=PIDF.format(user=user, activities=activities,
                                              note=note).encode())
        assert answer.status == 200, answer
        return answer.headers.get("SIP-ETag")

    def publish_line(self, user: str, version: int, in_call: bool) -> None:
        headers = "Event: dialog\r\nContent-Type: application/dialog-info+xml\r\n"
        body = DIALOG.format(user=user, version=version, dialog=CALL if in_call else "")
        answer = self.ask_as(user, "PUBLISH", f"sip:{user}@{SIP_DOMAIN}", headers=headers,
                             call_id=f"line-{user}", cseq=version, body=body.encode())
        assert answer.status == 200, answer

    def register(self, user: str) -> None:
        contact = f"<sip:{user}@{self.local[0]}:{self.local[1]}>"
        answer = self.ask_as(user, "REGISTER", f"sip:{SIP_DOMAIN}",
                             to=f"sip:{user}@{SIP_DOMAIN}",
                             headers=f"Contact: {contact}\r\nExpires: 600\r\n")
        assert answer.status == 200, answer


def watched(chat: ChatUser, sender: str, kind: str, status: str | None = None) -> dict:
    """Wait until the latest presence of *sender* that *chat* got is *kind*."""
    def seen():
        last = chat.last_presence(sender)
        if last and last["type"] == kind and (status is None or last["status"] == status):
            return last
        return None
    return chat.wait_for(seen, message=f"{sender} shown as {kind} {status or ''}")


def quoted(aor: str) -> str:
    return urllib.parse.quote(aor, safe="")


@pytest.fixture(scope="module")
def prosody(tmp_path_factory):
    server = Prosody.create(tmp_path_factory.mktemp("prosody"))
    for user in ("bob", "carol", "erin", "frank", "gina"):
        server.add_user(user)
    server.start()
    yield server
    server.stop()


def agent_config(path, prosody: Prosody) -> str:
    path.write_text(f"""
[server]
domains = ["{SIP_DOMAIN}"]

[xmpp]
server = "127.0.0.1:{prosody.component_port}"
component = "{COMPONENT}"
secret = "{SECRET}"
sip_domain = "{SIP_DOMAIN}"
xmpp_domains = ["{XMPP_DOMAIN}"]
""")
    return str(path)


@pytest.fixture
def bridge(tmp_path, prosody):
    agent = start_server(tmp_path, "--config", agent_config(tmp_path / "agent.toml", prosody),
                         listen=("udp:127.0.0.1:0",))
    agent.wait_for_line("is online")
    chats: list[ChatUser] = []
    phones: list[Phone] = []

    def chat(user: str, **kwargs) -> ChatUser:
        client = ChatUser(f"{user}@{XMPP_DOMAIN}", prosody.c2s, **kwargs)
        chats.append(client)
        return client

    def phone() -> Phone:
        client = Phone(agent)
        phones.append(client)
        return client

    yield agent, chat, phone
    for client in chats:
        client.close()
    for client in phones:
        client.close()
    agent.stop()


def test_a_chat_user_sees_a_sip_user_publish_busy_go_on_the_phone_and_come_back(bridge):
    agent, chat, phone = bridge
    bob, desk = chat("bob"), phone()
    bob.call(bob.client.send_presence, pto=f"alice@{COMPONENT}", ptype="subscribe")
    watched(bob, f"alice@{COMPONENT}", "unavailable")  # nobody published yet: offline

    etag = desk.publish("alice", "Writing the report", "busy")
    watched(bob, f"alice@{COMPONENT}", "dnd", "Writing the report")

    desk.publish_line("alice", 1, in_call=True)
    watched(bob, f"alice@{COMPONENT}", "dnd", "On the phone (Writing the report)")

    desk.publish_line("alice", 2, in_call=False)
    desk.publish("alice", "Back at my desk", etag=etag)
    watched(bob, f"alice@{COMPONENT}", "available", "Back at my desk")
    # Every one of those states reached the chat client once, in order, none twice
    # (between the call's end and her new note she was busy again).
    shown = [(p["type"], p["status"]) for p in bob.presences
             if p["from"].startswith(f"alice@{COMPONENT}") and p["type"] != "subscribed"]
    assert shown == [("unavailable", ""), ("dnd", "Writing the report"),
                     ("dnd", "On the phone (Writing the report)"),
                     ("dnd", "Writing the report"), ("available", "Back at my desk")], shown


def test_a_sip_watcher_sees_a_chat_user_go_away_and_come_back(bridge):
    agent, chat, phone = bridge
    carol = chat("carol")  # approves subscription requests, as a person clicking yes
    watcher = phone()
    watcher.send(request("SUBSCRIBE", agent.udp, watcher.local,
                         uri=f"sip:carol@{XMPP_DOMAIN}", to=f"sip:carol@{XMPP_DOMAIN}",
                         headers=f"Event: presence\r\nExpires: 600\r\nContact: "
                                 f"<sip:alice@{watcher.local[0]}:{watcher.local[1]}>\r\n")
                 .replace(f"From: <sip:tester@{watcher.local[0]}>".encode(),
                          f"From: <sip:alice@{SIP_DOMAIN}>".encode()))
    answer = watcher.recv()
    assert answer.status == 202  # Carol decides, in her chat client
    notify = watcher.next_request("NOTIFY")
    assert notify.headers.get("Subscription-State").startswith("pending")
    assert not notify.body  # no state before she said yes (RFC 3856 6.6.2)
    carol.wait_for(lambda: f"alice@{COMPONENT}" in carol.requests, message="asked")

    def state_with(*needles: bytes) -> bytes:
        """The body of the next NOTIFY holding every one of *needles*."""
        while True:
            notify = watcher.next_request("NOTIFY")
            if notify.body and all(needle in notify.body for needle in needles):
                return notify.body

    state_with(b"<basic>open</basic>")  # she said yes: her state follows

    carol.call(carol.client.send_presence, pshow="away", pstatus="Getting coffee")
    state_with(b"<rpid:away/>", b"Getting coffee")
    status, state = api(agent, "GET", f"/v1/presentities/{quoted(f'sip:carol@{XMPP_DOMAIN}')}")
    assert (status, state["basic"], state["activities"], state["note"]) == (
        200, "open", ["away"], "Getting coffee")

    carol.call(carol.client.send_presence, pshow="dnd", pstatus="In a meeting")
    status, decision = 0, {}
    for _ in range(100):  # within a second or so the call router knows too
        status, decision = api(agent, "GET",
                               f"/v1/route?callee={quoted(f'sip:carol@{XMPP_DOMAIN}')}")
        if decision.get("status") == 486:
            break
        watcher.nothing(0.02)
    assert decision["status"] == 486, decision
    caller = phone()  # and a real call to her gets the same answer
    call = caller.ask_as("alice", "INVITE", f"sip:carol@{XMPP_DOMAIN}",
                         headers=f"Contact: <sip:alice@{caller.local[0]}:{caller.local[1]}>\r\n")
    assert call.status == 486, call

    carol.call(carol.client.send_presence, pshow="chat")
    body = state_with(b"<basic>open</basic>")
    while b"busy" in body:
        body = state_with(b"<basic>open</basic>")
    assert b"rpid:away" not in body

    carol.close()  # she logs out: closed
    state_with(b"<basic>closed</basic>")


def test_the_persons_rules_decide_chat_watchers_as_sip_watchers(bridge):
    agent, chat, _ = bridge
    erin = chat("erin", auto_authorize=None)
    dave = f"sip:dave@{SIP_DOMAIN}"
    status, _ = api(agent, "PUT", f"/v1/presentities/{quoted(dave)}/rules/"
                    f"{quoted(f'sip:erin@{XMPP_DOMAIN}')}", {"sub_handling": "confirm"})
    assert status == 200
    erin.call(erin.client.send_presence, pto=f"dave@{COMPONENT}", ptype="subscribe")
    # Dave sees her asking, among his watchers, and she sees nothing yet.
    status, watchers = api(agent, "GET", f"/v1/presentities/{quoted(dave)}/watchers")
    for _ in range(100):
        if any(w["watcher"] == f"sip:erin@{XMPP_DOMAIN}" for w in watchers["watchers"]):
            break
        time.sleep(0.05)
        status, watchers = api(agent, "GET", f"/v1/presentities/{quoted(dave)}/watchers")
    assert {"watcher": f"sip:erin@{XMPP_DOMAIN}", "network": "xmpp",
            "state": "pending"}.items() <= next(
        w for w in watchers["watchers"] if w["watcher"] == f"sip:erin@{XMPP_DOMAIN}").items()
    time.sleep(QUIET)
    assert erin.last_presence(f"dave@{COMPONENT}") is None

    api(agent, "PUT", f"/v1/presentities/{quoted(dave)}", {"basic": "open", "note": "Here"})
    time.sleep(QUIET)
    assert erin.last_presence(f"dave@{COMPONENT}") is None  # still waiting for Dave
    status, _ = api(agent, "PUT", f"/v1/presentities/{quoted(dave)}/rules/"
                    f"{quoted(f'sip:erin@{XMPP_DOMAIN}')}", {"sub_handling": "allow"})
    assert status == 200
    watched(erin, f"dave@{COMPONENT}", "available", "Here")

    # Blocked later: she is told unsubscribed and hears nothing more.
    api(agent, "PUT", f"/v1/presentities/{quoted(dave)}/rules/"
        f"{quoted(f'sip:erin@{XMPP_DOMAIN}')}", {"sub_handling": "block"})
    erin.wait_for(lambda: any(p["type"] == "unsubscribed" for p in erin.presences),
                  message="unsubscribed")
    count = len(erin.presences)
    api(agent, "PUT", f"/v1/presentities/{quoted(dave)}", {"basic": "open", "note": "Later"})
    time.sleep(QUIET)
    assert all(p["status"] != "Later" for p in erin.presences[count:])

    # A blocked user asking again gets unsubscribed at once.
    frank = chat("frank")
    api(agent, "PUT", f"/v1/presentities/{quoted(dave)}/rules/{XMPP_DOMAIN}",
        {"sub_handling": "block"})
    frank.call(frank.client.send_presence, pto=f"dave@{COMPONENT}", ptype="subscribe")
    frank.wait_for(lambda: any(p["type"] == "unsubscribed" for p in frank.presences),
                   message="unsubscribed")


def test_messages_pass_both_ways(bridge):
    agent, chat, phone = bridge
    gina = chat("gina")
    softphone = phone()
    softphone.register("henry")

    answer = softphone.ask_as("henry", "MESSAGE", f"sip:gina@{XMPP_DOMAIN}",
                              headers="Content-Type: text/plain;charset=UTF-8\r\n",
                              body="Are you free at three? ☕".encode())
    assert answer.status == 202
    got = gina.wait_for(lambda: [m for m in gina.messages if m["body"]], message="message")
    assert (got[0]["from"].partition("/")[0], got[0]["body"]) == (
        f"henry@{COMPONENT}", "Are you free at three? ☕")

    gina.call(gina.client.send_message, mto=f"henry@{COMPONENT}", mbody="Yes, see you then",
              mtype="chat")
    message = softphone.next_request("MESSAGE")
    assert message.body.decode() == "Yes, see you then"
    assert message.from_.uri.aor() == f"sip:gina@{XMPP_DOMAIN}"
    assert message.to.uri.aor() == f"sip:henry@{SIP_DOMAIN}"

    # Nobody registered for ivan: Gina is told, not left waiting.
    gina.call(gina.client.send_message, mto=f"ivan@{COMPONENT}", mbody="Hello?", mtype="chat")
    error = gina.wait_for(lambda: [m for m in gina.messages if m["type"] == "error"],
                          message="an error")
    assert error[0]["error"] == "recipient-unavailable"

    # A softphone chats with a softphone through the agent.
    other = phone()
    other.register("judy")
    answer = softphone.ask_as("henry", "MESSAGE", f"sip:judy@{SIP_DOMAIN}",
                              headers="Content-Type: text/plain\r\n", body=b"Lunch?")
    assert answer.status == 202
    assert other.next_request("MESSAGE").body == b"Lunch?"
    answer = softphone.ask_as("henry", "MESSAGE", f"sip:kim@{SIP_DOMAIN}",
                              headers="Content-Type: text/plain\r\n", body=b"Hi")
    assert answer.status == 480  # kim has no registered device

    # No such chat user: the 202 is followed by a notice, not by silence.
    answer = softphone.ask_as("henry", "MESSAGE", f"sip:nobody@{XMPP_DOMAIN}",
                              headers="Content-Type: text/plain\r\n", body=b"Anyone?")
    assert answer.status == 202
    notice = softphone.next_request("MESSAGE")
    assert notice.from_.uri.aor() == f"sip:nobody@{XMPP_DOMAIN}"
    assert b"was not delivered" in notice.body, notice.body


def test_the_bridge_recovers_when_prosody_restarts(bridge, prosody):
    agent, chat, phone = bridge
    bob, desk = chat("bob"), phone()
    bob.call(bob.client.send_presence, pto=f"lucy@{COMPONENT}", ptype="subscribe")
    etag = desk.publish("lucy", "Before the restart")
    watched(bob, f"lucy@{COMPONENT}", "available", "Before the restart")
    # Lucy's phone watches Bob too (he says yes in his client).
    lamp = phone()
    lamp.send(request("SUBSCRIBE", agent.udp, lamp.local, uri=f"sip:bob@{XMPP_DOMAIN}",
                      to=f"sip:bob@{XMPP_DOMAIN}", call_id="lamp",
                      headers=f"Event: presence\r\nExpires: 600\r\nContact: "
                              f"<sip:lucy@{lamp.local[0]}:{lamp.local[1]}>\r\n")
              .replace(f"From: <sip:tester@{lamp.local[0]}>".encode(),
                       f"From: <sip:lucy@{SIP_DOMAIN}>".encode()))
    assert lamp.recv().status == 202

    def lamp_shows(basic: bytes) -> None:
        while True:
            notify = lamp.next_request("NOTIFY", timeout=15)
            if b"<basic>" + basic in notify.body:
                return

    lamp_shows(b"open")
    bob.close()
    lamp_shows(b"closed")

    prosody.restart()
    agent.wait_for_line("lost the XMPP server")
    lines = len(agent.lines)
    for _ in range(300):
        if any("is online" in line for line in agent.lines[lines:]):
            break
        desk.nothing(0.05)
    assert any("is online" in line for line in agent.lines[lines:]), agent.output()

    # Bob logs in again: Lucy's state is there without a new subscription, and so
    # are her changes.
    bob = chat("bob")
    watched(bob, f"lucy@{COMPONENT}", "available", "Before the restart")
    lamp_shows(b"open")  # the phone's subscription to him lived through it
    desk.publish("lucy", "After the restart", "away", etag=etag)
    watched(bob, f"lucy@{COMPONENT}", "away", "After the restart")
    # A SIP message reaches him over the new link.
    answer = desk.ask_as("lucy", "MESSAGE", f"sip:bob@{XMPP_DOMAIN}",
                         headers="Content-Type: text/plain\r\n", body=b"Still there?")
    assert answer.status == 202
    bob.wait_for(lambda: any(m["body"] == "Still there?" for m in bob.messages))
    # The operator sees the link and what crossed it.
    host, port = agent.http
    metrics = urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5).read()
    values = dict(line.split(" ", 1) for line in metrics.decode().splitlines()
                  if line.startswith("sipresence_xmpp_") or line.startswith(
                      "sipresence_roster_"))
    assert (values["sipresence_xmpp_connected"], values["sipresence_xmpp_connections_total"],
            values["sipresence_roster_watchers"]) == ("1.0", "2.0", "1.0"), values
    assert float(values["sipresence_xmpp_stanzas_received_total"]) > 0
    assert float(values["sipresence_xmpp_stanzas_sent_total"]) > 0


def test_chat_watchers_survive_a_restart_of_the_agent(tmp_path, prosody):
    config = agent_config(tmp_path / "agent.toml", prosody)
    db = str(tmp_path / "state.sqlite3")
    agent = start_server(tmp_path, "--config", config, listen=("udp:127.0.0.1:0",), db=db)
    agent.wait_for_line("is online")
    frank = ChatUser(f"frank@{XMPP_DOMAIN}", prosody.c2s)
    desk = Phone(agent)
    try:
        frank.call(frank.client.send_presence, pto=f"mia@{COMPONENT}", ptype="subscribe")
        desk.publish("mia", "Before")
        watched(frank, f"mia@{COMPONENT}", "available", "Before")
        assert agent.stop() == 0
        # The agent said goodbye for Mia: no chat client shows her online meanwhile.
        watched(frank, f"mia@{COMPONENT}", "unavailable")

        agent = start_server(tmp_path, "--config", config, listen=("udp:127.0.0.1:0",), db=db)
        line = agent.wait_for_line("watchers of other networks")
        assert re.search(r"\b1 watchers of other networks", line), line
        agent.wait_for_line("is online")
        watched(frank, f"mia@{COMPONENT}", "available", "Before")  # told again at once
        desk.server = agent.udp
        desk.publish("mia", "After")
        watched(frank, f"mia@{COMPONENT}", "available", "After")
    finally:
        frank.close()
        desk.close()
        agent.stop()


def test_a_wrong_secret_is_named_and_the_agent_keeps_serving_sip(tmp_path, prosody):
    path = tmp_path / "agent.toml"
    agent_config(path, prosody)
    path.write_text(path.read_text().replace(f'secret = "{SECRET}"', 'secret = "wrong"'))
    agent = start_server(tmp_path, "--config", str(path), listen=("udp:127.0.0.1:0",))
    try:
        agent.wait_for_line("refused the component secret")
        agent.wait_for_line("reconnecting with back-off")
        phone = Phone(agent)
        assert phone.ask("OPTIONS").status == 200  # SIP does not wait for XMPP
        answer = phone.ask_as("alice", "MESSAGE", f"sip:bob@{XMPP_DOMAIN}",
                              headers="Content-Type: text/plain\r\n", body=b"Hello")
        assert answer.status == 480  # not silently dropped while the link is down
        phone.close()
    finally:
        assert agent.stop() == 0
