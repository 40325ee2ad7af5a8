"""A fake network around one agent (``Phone``): every message goes through the real
parser and endpoint, time is passed in, and what the agent sends lands in an inbox.
The unit tests of the presence services drive the agent through it."""

from __future__ import annotations

from lxml import etree

from sipresence.documents.xml import schema
from sipresence.presence.agent import Agent
from sipresence.sip.endpoint import Endpoint
from sipresence.sip.message import Request, Response
from sipresence.sip.parser import parse_datagram
from sipresence.sip.transport import Peer
from sipresence.sip.uas import make_response

__all__ = ["PEER", "PIDF", "Phone", "invite", "register", "subscribe_headers", "valid"]

PEER = Peer("UDP", "192.0.2.7", 5070, None, ("127.0.0.1", 5060))
PIDF = """<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"
 xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:alice@example.com">
 <tuple id="t1"><status><basic>{basic}</basic></status></tuple>
 <dm:person id="p1"><rpid:activities><rpid:{activity}/></rpid:activities>
 <dm:note>{note}</dm:note></dm:person></presence>"""


class Phone:
    """A fake network around one agent: every message goes through the real parser."""

    def __init__(self, **agent_kwargs):
        self.agent = Agent(**agent_kwargs)
        self.endpoint = Endpoint(self.agent)
        self.endpoint.add_listener("UDP", "127.0.0.1", 5060)
        self.now = 0.0
        self.branch = 0
        self.inbox: list = []  # messages the agent sent
        self.answered = 0  # NOTIFYs answered so far

    def send(self, text: str, peer: Peer = PEER) -> None:
        self.endpoint.receive_datagram(text.encode("utf-8", "surrogateescape"), peer, self.now)
        self.collect()

    def collect(self) -> None:
        """Take what the agent sent (after inputs, timers and calls from outside SIP,
        as the network driver does) into the inbox."""
        self.endpoint.pump(self.now)
        for transmit in self.endpoint.transmissions():
            self.inbox.append(parse_datagram(transmit.data))

    def request(self, method: str, uri: str = "sip:alice@example.com", *, headers=(),
                body: str = "", from_uri="sip:bob@example.com", from_tag="bob1",
                to_tag=None, call_id="c1", cseq=1, to_uri=None, peer=PEER) -> Response:
        self.branch += 1
        lines = [f"{method} {uri} SIP/2.0",
                 f"Via: SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bK{self.branch};rport",
                 f"From: <{from_uri}>;tag={from_tag}",
                 f"To: <{to_uri or uri}>" + (f";tag={to_tag}" if to_tag else ""),
                 f"Call-ID: {call_id}", f"CSeq: {cseq} {method}", "Max-Forwards: 70",
                 *headers, f"Content-Length: {len(body.encode('utf-8', 'surrogateescape'))}",
                 "", body]
        before = len(self.inbox)
        self.send("\r\n".join(lines), peer)
        responses = [m for m in self.inbox[before:] if isinstance(m, Response)]
        assert responses, f"no answer to {method}"
        return responses[0]

    def publish(self, basic="open", activity="busy", note="In a meeting", **kwargs):
        body = PIDF.format(basic=basic, activity=activity, note=note)
        headers = ["Event: presence", "Content-Type: application/pidf+xml",
                   *kwargs.pop("headers", ())]
        return self.request("PUBLISH", headers=headers, body=body,
                            from_uri="sip:alice@example.com", from_tag="pub",
                            call_id=kwargs.pop("call_id", "pub-1"), **kwargs)

    def notifies(self) -> list[Request]:
        return [m for m in self.inbox if isinstance(m, Request) and m.method == "NOTIFY"]

    def answer_all(self, status: int = 200) -> None:
        notifies = self.notifies()
        for notify in notifies[self.answered:]:
            self.send(make_response(notify, status).to_bytes().decode())
        self.answered = len(notifies)

    def restarted(self, tmp_path, now: float, **agent_kwargs) -> Phone:
        """A new agent from what this one's journal wrote to an SQLite store, as after
        a restart."""
        from sipresence.store.sqlite import SqliteStore

        path = str(tmp_path / "restart.sqlite3")
        store = SqliteStore(path)
        store.submit(self.agent.journal.drain())
        store.close()
        snapshot = SqliteStore(path).load()
        after = Phone(**agent_kwargs)
        after.agent.restore(snapshot, now)
        after.now = now
        return after

    def advance(self, until: float) -> None:
        """Let time pass as the network driver does: every deadline of the endpoint and
        the agent up to *until* fires in order (retransmissions, timer F, expiries)."""
        for _ in range(10000):
            due = [d for d in (self.endpoint.get_timer(), self.agent.get_timer())
                   if d is not None and d <= until]
            if not due:
                break
            self.now = max(self.now, min(due))
            self.endpoint.handle_timer(self.now)
            self.agent.handle_timer(self.now)
            self.collect()
        else:
            raise AssertionError(f"a deadline at {self.now} keeps firing")
        self.now = until


def subscribe_headers(accept="application/pidf+xml", event="presence", expires=600):
    out = [f"Event: {event}", f"Expires: {expires}", "Contact: <sip:bob@192.0.2.7:5070>"]
    if accept:
        out.append(f"Accept: {accept}")
    return out


def valid(body: bytes) -> bool:
    return bool(schema().validate(etree.fromstring(body)))


def register(p, contact="<sip:alice@192.0.2.7:5070>", expires=600, cseq=1):
    return p.request("REGISTER", uri="sip:example.com", to_uri="sip:alice@example.com",
                     from_uri="sip:alice@example.com", from_tag="reg", call_id="reg-1",
                     cseq=cseq, headers=[f"Contact: {contact}", f"Expires: {expires}"])


def invite(p, *, call_id="call-1", branch_cseq=1, to_tag=None):
    return p.request("INVITE", headers=["Contact: <sip:carol@192.0.2.8>"], call_id=call_id,
                     from_uri="sip:carol@example.com", from_tag="c1", cseq=branch_cseq,
                     to_tag=to_tag)
