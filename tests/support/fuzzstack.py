"""The whole sans-IO agent under fuzzing: valid seed messages, and the invariants checked
after every input.

Shared by the hypothesis tests (``tests/unit/fuzz``, strategies in ``sipgen.py``) and
the atheris targets (``fuzz/``), so that both drive the same stack and hold it to the
same promises (DESIGN.md, "Errors are answers, never crashes"):

* no exception escapes :meth:`Endpoint.receive_datagram`, :meth:`Endpoint.receive_stream`
  or a timer, and none is logged (the endpoint answers 500 for one in the agent);
* everything the endpoint sends parses, and the requests the agent writes itself
  (NOTIFY) also pass :func:`validate`: strict out;
* an input answered with an error (>= 300) changes no state: publications,
  subscriptions, bindings, rules, the version clock and the journal are as before;
* every batch the journal hands the store can be written by the real SQLite store.

A :class:`Stack` learns what the agent told it (entity tags, dialog tags, NOTIFYs
waiting for an answer) into a :class:`Context`, and the seeds build on it, so that a
refresh carries a live entity tag and a NOTIFY answer the right branch.  Identifiers
the agent draws at random are made deterministic by :func:`deterministic_ids`, so that
a failing sequence replays exactly.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import itertools
import logging
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

from lxml import etree

from sipresence.documents.xml import schema
from sipresence.presence import subscriptions
from sipresence.presence.agent import Agent, AgentConfig
from sipresence.sip.endpoint import Endpoint
from sipresence.sip.message import Message, Request, Response
from sipresence.sip.parser import ParseError, StreamFramer, parse_datagram, validate
from sipresence.sip.transport import Peer
from sipresence.sip.uas import make_response
from sipresence.store.sqlite import SqliteStore

__all__ = ["UDP_PEER", "TCP_PEER", "SEEDS", "DOCUMENTS", "Draft", "Context", "Stack",
           "Violation", "deterministic_ids", "seed_bytes"]

UDP_PEER = Peer("UDP", "127.0.0.1", 5070, None, ("127.0.0.1", 5060))
TCP_PEER = Peer("TCP", "127.0.0.1", 5071, 1, ("127.0.0.1", 5060))
ALICE = "sip:alice@example.com"
BOB = "sip:bob@example.com"
#: Real devices' bodies, copied from ../shared/reference/samples (see INDEX.md there).
DOCUMENTS = {path.name: path.read_bytes() for path in sorted(
    (Path(__file__).resolve().parents[2] / "fuzz" / "seeds" / "documents").glob("*.xml"))}
PIDF = (b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<presence xmlns="urn:ietf:params:xml:ns:pidf" '
        b'xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" '
        b'xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:alice@example.com">'
        b'<tuple id="t1"><status><basic>open</basic></status>'
        b'<contact priority="0.8">sip:alice@192.0.2.7</contact>'
        b'<timestamp>2024-05-01T10:00:00Z</timestamp></tuple>'
        b'<dm:person id="p1"><rpid:activities><rpid:busy/></rpid:activities>'
        b'<dm:note xml:lang="en">In a meeting</dm:note></dm:person></presence>')
DIALOG_INFO = (b'<?xml version="1.0"?>\n'
               b'<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="{v}" '
               b'state="full" entity="sip:alice@example.com">'
               b'<dialog id="d1" call-id="call-1" local-tag="l1" remote-tag="r1" '
               b'direction="initiator"><state>confirmed</state>'
               b'<local><identity>sip:alice@example.com</identity></local>'
               b'<remote><identity display="Bob">sip:bob@example.com</identity>'
               b'<target uri="sip:bob@192.0.2.8"/></remote></dialog></dialog-info>')


class Violation(AssertionError):
    """The stack broke one of its promises; the message says which, with the input."""


@contextlib.contextmanager
def deterministic_ids() -> Iterator[None]:
    """Entity tags, subscription ids, tags and branches from a counter, not at random:
    the same inputs then give the same answers, so hypothesis can shrink and replay."""
    counter = itertools.count(1)

    def token_hex(n: int = 16) -> str:
        return f"{next(counter):0{2 * n}x}"

    def token_urlsafe(n: int = 16) -> str:
        return f"e{next(counter):0{max(1, n + n // 3 - 1)}d}"

    with (mock.patch.object(secrets, "token_hex", token_hex),
          mock.patch.object(secrets, "token_urlsafe", token_urlsafe),
          mock.patch.object(subscriptions, "new_tag", lambda: token_hex(8))):
        yield


# -- messages before they are bytes ---------------------------------------------------

@dataclass
class Draft:
    """A SIP message as header fields in order, so that mutations can work on fields.

    ``content_length`` None writes the true length; otherwise each item is written as
    one Content-Length header value (no item: no header at all).
    """

    start: str
    headers: list[list[str]]
    body: bytes = b""
    content_length: list[str] | None = None

    def to_bytes(self) -> bytes:
        lines = [self.start, *(f"{name}: {value}" for name, value in self.headers)]
        lengths = [str(len(self.body))] if self.content_length is None else self.content_length
        lines += [f"Content-Length: {value}" for value in lengths]
        head = "\r\n".join(lines) + "\r\n\r\n"
        return head.encode("utf-8", "surrogateescape") + self.body


@dataclass
class Context:
    """What the agent said so far, for the seeds that build on it."""

    branches: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    etags: dict[str, str] = field(default_factory=dict)  # package -> last entity tag
    # package -> (Call-ID, From tag, To tag, CSeq) of the last SUBSCRIBE answered 2xx
    dialogs: dict[str, tuple[str, str, str, int]] = field(default_factory=dict)
    notifies: list[Request] = field(default_factory=list)  # sent, not yet answered
    invite: Draft | None = None  # the last INVITE, for CANCEL and ACK

    def branch(self) -> str:
        return f"z9hG4bKf{next(self.branches)}"


def _request(ctx: Context, method: str, uri: str = ALICE, *, from_uri: str = BOB,
             from_tag: str = "bob1", to_uri: str | None = None, to_tag: str | None = None,
             call_id: str | None = None, cseq: int = 1, extra: tuple[tuple[str, str], ...] = (),
             body: bytes = b"") -> Draft:
    headers = [["Via", f"SIP/2.0/UDP 127.0.0.1:5070;branch={ctx.branch()};rport"],
               ["Max-Forwards", "70"],
               ["From", f"<{from_uri}>;tag={from_tag}"],
               ["To", f"<{to_uri or uri}>" + (f";tag={to_tag}" if to_tag else "")],
               ["Call-ID", call_id or f"{method.lower()}-1@127.0.0.1"],
               ["CSeq", f"{cseq} {method}"],
               *([name, value] for name, value in extra)]
    return Draft(f"{method} {uri} SIP/2.0", headers, body)


def _publish(ctx: Context, package: str, body: bytes, content_type: str,
             *, if_match: bool = False, expires: int = 3600) -> Draft:
    extra = [("Event", package), ("Expires", str(expires))]
    if body:
        extra.append(("Content-Type", content_type))
    if if_match:
        extra.append(("SIP-If-Match", ctx.etags.get(package, "no-such-etag")))
    return _request(ctx, "PUBLISH", from_uri=ALICE, from_tag="pub1",
                    call_id=f"publish-{package}@127.0.0.1", cseq=next(ctx.branches),
                    extra=tuple(extra), body=body)


def _subscribe(ctx: Context, package: str, accept: str, *, watcher: str = BOB) -> Draft:
    return _request(ctx, "SUBSCRIBE", from_uri=watcher, from_tag=f"w-{package}",
                    call_id=f"subscribe-{package}-{accept.rpartition('/')[2]}@127.0.0.1",
                    extra=(
                        ("Event", package), ("Expires", "600"), ("Accept", accept),
                        ("Contact", f"<{watcher.replace('example.com', '127.0.0.1:5070')}>"),
                        ("Record-Route", "<sip:proxy.example.com;lr>")))


def _in_dialog(ctx: Context, package: str, expires: int) -> Draft:
    call_id, from_tag, to_tag, cseq = ctx.dialogs.get(
        package, (f"subscribe-{package}-none@127.0.0.1", f"w-{package}", "no-such-tag", 1))
    ctx.dialogs[package] = (call_id, from_tag, to_tag, cseq + 1)
    watcher = ALICE if package == "presence.winfo" else BOB
    return _request(ctx, "SUBSCRIBE", from_uri=watcher, from_tag=from_tag, to_tag=to_tag,
                    call_id=call_id, cseq=cseq + 1, extra=(
                        ("Event", package), ("Expires", str(expires)),
                        ("Contact", "<sip:bob@127.0.0.1:5070;transport=udp>")))


def _register(ctx: Context) -> Draft:
    return _request(ctx, "REGISTER", "sip:example.com", from_uri=ALICE, from_tag="reg1",
                    to_uri=ALICE, call_id="register-1@127.0.0.1", cseq=next(ctx.branches),
                    extra=(("Contact", '<sip:alice@127.0.0.1:5070;transport=udp>;q=0.7;'
                                       '+sip.instance="<urn:uuid:00000000-0000-0000-0000-'
                                       '000000000001>";reg-id=1'),
                           ("Expires", "3600"), ("User-Agent", "fuzz/1.0")))


def _invite(ctx: Context) -> Draft:
    sdp = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    ctx.invite = _request(ctx, "INVITE", from_tag="call1", call_id="invite-1@127.0.0.1",
                          extra=(("Contact", "<sip:bob@127.0.0.1:5070>"),
                                 ("Content-Type", "application/sdp")), body=sdp)
    return ctx.invite


def _cancel_or_ack(method: str) -> Callable[[Context], Draft]:
    def build(ctx: Context) -> Draft:
        invite = ctx.invite or _invite(ctx)
        headers = [list(h) for h in invite.headers
                   if h[0] in ("Via", "Max-Forwards", "From", "To", "Call-ID")]
        headers.append(["CSeq", f"1 {method}"])
        return Draft(f"{method} {ALICE} SIP/2.0", headers)
    return build


def _notify_answer(status: int) -> Callable[[Context], Draft]:
    def build(ctx: Context) -> Draft:
        if not ctx.notifies:
            return _options(ctx)  # nothing to answer: still a valid message
        response = make_response(ctx.notifies.pop(0), status)
        return Draft(response.start_line(), [[name, value] for name, value in response.headers])
    return build


def _options(ctx: Context) -> Draft:
    return _request(ctx, "OPTIONS", extra=(("Accept", "application/sdp"),))


#: Valid messages by name: what a phone, a PBX or a watcher sends.
SEEDS: dict[str, Callable[[Context], Draft]] = {
    "publish-pidf": lambda c: _publish(c, "presence", PIDF, "application/pidf+xml"),
    "publish-xpidf": lambda c: _publish(c, "presence", DOCUMENTS[
        "asterisk-chansip-xpidf-open.xml"], "application/xpidf+xml"),
    "publish-sample": lambda c: _publish(c, "presence", DOCUMENTS[
        "pjsua-pidf-onthephone.xml"], "application/pidf+xml"),
    "publish-dialog": lambda c: _publish(c, "dialog", DIALOG_INFO.replace(
        b"{v}", str(next(c.branches)).encode()), "application/dialog-info+xml"),
    "publish-refresh": lambda c: _publish(c, "presence", b"", "", if_match=True),
    "publish-modify": lambda c: _publish(c, "presence", DOCUMENTS[
        "linphone-desktop-4.2.3-pidf-publish.xml"], "application/pidf+xml", if_match=True),
    "publish-remove": lambda c: _publish(c, "presence", b"", "", if_match=True, expires=0),
    "subscribe-presence": lambda c: _subscribe(c, "presence", "application/pidf+xml"),
    "subscribe-xpidf": lambda c: _subscribe(c, "presence", "application/xpidf+xml"),
    "subscribe-winfo": lambda c: _subscribe(c, "presence.winfo",
                                            "application/watcherinfo+xml", watcher=ALICE),
    "subscribe-dialog": lambda c: _subscribe(c, "dialog", "application/dialog-info+xml"),
    "resubscribe-presence": lambda c: _in_dialog(c, "presence", 600),
    "resubscribe-dialog": lambda c: _in_dialog(c, "dialog", 600),
    "unsubscribe-presence": lambda c: _in_dialog(c, "presence", 0),
    "register": _register,
    "message": lambda c: _request(c, "MESSAGE", extra=(
        ("Content-Type", "text/plain;charset=UTF-8"),), body="Lunch? ☕".encode()),
    "invite": _invite,
    "cancel": _cancel_or_ack("CANCEL"),
    "ack": _cancel_or_ack("ACK"),
    "options": _options,
    "notify-200": _notify_answer(200),
    "notify-481": _notify_answer(481),
    "notify-408": _notify_answer(408),
}
# The package each seed's answer tells about (entity tags and dialogs are per package).
_PACKAGE = {name: ("dialog" if "dialog" in name else "presence.winfo" if "winfo" in name
                   else "presence") for name in SEEDS}


def seed_bytes() -> list[bytes]:
    """Every seed as bytes, against a stack that ran them in order (refreshes carry the
    entity tag the agent really gave): the start of a fuzzer's corpus."""
    out = []
    with deterministic_ids():
        stack = Stack()
        for name in SEEDS:
            data = SEEDS[name](stack.ctx).to_bytes()
            out.append(data)
            stack.datagram(data, seed=name)
    return out


# -- the stack ------------------------------------------------------------------------

def _state(agent: Agent) -> object:
    """Everything an error answer must leave as it was, comparable with ``==``."""
    return (
        sorted((p.etag, p.resource, p.package, p.content_type, p.body, p.expires_at,
                p.updated_at, p.publisher, p.call_id) for p in agent.publications.all()),
        sorted(((copy.copy(s), s.ending, s.authorized, s.flow_state, s.failures)
                for s in agent.notifier.all()), key=lambda item: item[0].id),
        sorted((copy.copy(b) for b in agent.registrar.all()), key=lambda b: b.store_key),
        copy.deepcopy(agent.authorization._rules),
        agent.presentities.clock,
        len(agent.journal),
    )


class _Errors(logging.Handler):
    """Keeps the warnings and errors the core logs while an input is handled."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Stack:
    """Agent + Endpoint + an in-memory SQLite store, checked after every input."""

    def __init__(self, *, domains: tuple[str, ...] = (), config: AgentConfig | None = None,
                 store: SqliteStore | None = None) -> None:
        self.agent = Agent(domains, config=config)
        self.endpoint = Endpoint(self.agent)
        self.endpoint.add_listener("UDP", "127.0.0.1", 5060)
        self.endpoint.add_listener("TCP", "127.0.0.1", 5060)
        # One store may serve many short-lived stacks (a fuzzer's): opening one costs
        # more than a whole agent.
        self.store = store or SqliteStore(":memory:")
        self.now = 1000.0
        self.ctx = Context()
        self.sent: list[Message] = []
        self._framer = StreamFramer()
        self._connection = 1
        self._errors = _Errors()


    # -- inputs ---------------------------------------------------------------------
    def datagram(self, data: bytes, seed: str | None = None) -> list[Message]:
        """Feed one UDP datagram; what the endpoint sent in return, parsed."""
        return self._checked(lambda: self.endpoint.receive_datagram(data, UDP_PEER, self.now),
                             data, seed)

    def stream(self, chunks: list[bytes], seed: str | None = None) -> list[Message]:
        """Feed bytes of one TCP connection in *chunks*; each framed item is checked on
        its own.  A framing error closes the connection: the next bytes open another."""
        out: list[Message] = []
        for chunk in chunks:
            peer = Peer("TCP", TCP_PEER.host, TCP_PEER.port, self._connection, TCP_PEER.local)
            try:
                items: list[object] = list(self._framer.feed(chunk))
            except ParseError as exc:
                if not exc.fatal:
                    raise Violation(f"StreamFramer raised a non-fatal {exc!r}") from exc
                # What came whole before the error is handled, the error answered when it
                # can be, and the connection closed.
                items = [*exc.framed, exc]
                self._framer = StreamFramer()
                self._connection += 1
            for item in items:
                out += self._checked(
                    functools.partial(self.endpoint.receive_stream, item, peer, self.now),
                    chunk, seed)
        return out

    def advance(self, seconds: float) -> list[Message]:
        """Let *seconds* pass, firing every deadline of the endpoint and the agent."""
        until = self.now + seconds
        out: list[Message] = []
        for _ in range(1000):
            due = [d for d in (self.endpoint.get_timer(), self.agent.get_timer())
                   if d is not None and d <= until]
            if not due:
                break
            self.now = max(self.now, min(due))

            def fire() -> None:
                self.endpoint.handle_timer(self.now)
                self.agent.handle_timer(self.now)
                self.endpoint.pump(self.now)  # as the driver's flush does

            out += self._checked(fire, b"", None)
        self.now = until
        return out

    # -- the invariants -------------------------------------------------------------
    def _checked(self, feed: Callable[[], None], data: bytes, seed: str | None) -> list[Message]:
        before = _state(self.agent)
        logger = logging.getLogger("sipresence")
        logger.addHandler(self._errors)
        try:
            feed()
        except Exception as exc:
            raise Violation(f"{type(exc).__name__} escaped the endpoint on {data!r}") from exc
        finally:
            logger.removeHandler(self._errors)
        if self._errors.records:
            record = self._errors.records.pop()
            self._errors.records.clear()
            # The endpoint turns an exception in the agent into a 500 and logs it: as
            # much a bug as one that escapes.
            raise Violation(f"logged {record.getMessage()!r} on {data!r}") from (
                record.exc_info[1] if record.exc_info else None)
        sent = []
        for transmit in self.endpoint.transmissions():
            try:
                message = parse_datagram(transmit.data)
                if message is None:
                    if transmit.data != b"\r\n":  # the answer to a keep-alive
                        raise ParseError("keep-alive sent")
                    continue
                if isinstance(message, Request):
                    validate(message)  # the agent's own requests are strictly well formed
                    _check_body(message)
            except ParseError as exc:
                raise Violation(f"sent {transmit.data!r}, which does not parse "
                                f"({exc.reason}), on {data!r}") from exc
            sent.append(message)
        finals = [m.status for m in sent if isinstance(m, Response) and m.status >= 200]
        if finals and min(finals) >= 300:
            after = _state(self.agent)
            if after != before:
                raise Violation(f"answered {finals} but the state changed, on {data!r}:\n"
                                f"{_difference(before, after)}")
        self._store()
        self._learn(sent, seed)
        self.sent += sent
        return sent

    def _store(self) -> None:
        """The journal's batch goes to the real store, written at once (it is not
        started), which raises when a row cannot be written."""
        ops = self.agent.journal.drain()
        try:
            self.store.submit(ops)
        except Exception as exc:
            raise Violation(f"the store cannot write {ops!r}: {exc!r}") from exc

    def _learn(self, sent: list[Message], seed: str | None) -> None:
        """Remember entity tags, dialogs and NOTIFYs, for the seeds that follow."""
        ctx = self.ctx
        for message in sent:
            if isinstance(message, Request):
                if message.method == "NOTIFY":
                    ctx.notifies.append(message)
                continue
            assert isinstance(message, Response)
            if not 200 <= message.status < 300 or seed is None:
                continue
            package = _PACKAGE.get(seed, "presence")
            try:
                method = message.cseq.method
                if method == "PUBLISH" and message.headers.get("sip-etag"):
                    ctx.etags[package] = message.headers.get("sip-etag") or ""
                elif method == "SUBSCRIBE" and message.to.tag and message.from_.tag:
                    ctx.dialogs[package] = (message.call_id, message.from_.tag,
                                            message.to.tag, message.cseq.number)
            except ValueError:
                continue  # an answer that copied a broken field: nothing to learn


#: Body types the agent sends that the packaged schemas cover (XPIDF has none, and
#: cpim-pidf watchers get XPIDF, as from chan_sip: presentity.py).
_SCHEMA_TYPES = frozenset({"application/pidf+xml", "application/dialog-info+xml",
                           "application/watcherinfo+xml"})


def _check_body(request: Request) -> None:
    """Strict out: a NOTIFY body is valid against the packaged schemas."""
    content_type = request.content_type
    if not request.body or content_type is None or content_type.mime not in _SCHEMA_TYPES:
        return
    bundle = schema()
    if not bundle.validate(etree.fromstring(request.body)):
        raise ParseError(f"invalid {content_type.mime} body: {bundle.error_log}")


def _difference(before: object, after: object) -> str:
    names = ("publications", "subscriptions", "bindings", "rules", "clock", "journal")
    assert isinstance(before, tuple) and isinstance(after, tuple)
    return "\n".join(f"  {name}: {b!r}\n   -> {a!r}"
                     for name, b, a in zip(names, before, after, strict=True) if a != b)
