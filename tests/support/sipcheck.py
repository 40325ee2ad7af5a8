"""Two doors into the sans-IO SIP core, for the parser tests (RFC 4475, RFC 5118, fuzzing).

* The parser door: :func:`parse` (``parse_datagram`` + ``validate``) and :func:`check`
  (``uas.check_request`` with the agent's methods), which raise only ``ParseError``.
* The endpoint door: :func:`answers` feeds bytes to :class:`Endpoint` as a UDP datagram
  from 192.0.2.1:5060 and returns what it sends, parsed back.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from sipresence.sip.endpoint import Endpoint, Outgoing
from sipresence.sip.message import Message, Request, Response
from sipresence.sip.parser import ParseError, parse_datagram, validate
from sipresence.sip.transport import Peer
from sipresence.sip.uas import check_request, make_response

ALLOWED = ("OPTIONS", "INVITE", "ACK", "CANCEL", "REGISTER", "SUBSCRIBE", "NOTIFY", "PUBLISH")
SCHEMES = ("sip", "sips", "pres")
PEER = Peer("UDP", "192.0.2.1", 5060)


class App:
    """A transaction user that answers 200 to whatever reaches it, and remembers it."""

    allowed_methods = ALLOWED
    supported: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.seen: list[Request] = []

    def handle_request(self, request: Request, peer: Peer, now: float) -> Response | None:
        self.seen.append(request)
        return make_response(request, 200)

    def outgoing(self, now: float) -> list[Outgoing]:
        return []  # it sends nothing of its own

    def handle_response(self, ref: object, response: Response, now: float) -> None:
        raise AssertionError("an answer to a request it never sent")


def parse(data: bytes) -> Message:
    """Frame, parse and validate one datagram; raises ParseError."""
    message = parse_datagram(data)
    assert message is not None, "a keep-alive, not a message"
    validate(message)
    return message


def check(data: bytes) -> Response | None:
    """The parser door as the endpoint uses it: the UAS answer, or None when all pass."""
    message = parse(data)
    assert isinstance(message, Request)
    return check_request(message, allowed=ALLOWED, supported=(), schemes=SCHEMES)


def parse_error(data: bytes) -> ParseError:
    """The ParseError the parser door raises for *data* (fails if it raises none)."""
    try:
        message = parse(data)
    except ParseError as exc:
        return exc
    raise AssertionError(f"{message!r} was accepted")


def answers(data: bytes, app: object | None = None) -> tuple[list[Response], Endpoint]:
    """Feed *data* to a fresh endpoint; every transmission must parse as a response."""
    endpoint = Endpoint(app or App())  # type: ignore[arg-type]
    endpoint.receive_datagram(data, PEER, now=0.0)
    out = []
    for transmit in endpoint.transmissions():
        response = parse_datagram(transmit.data)
        # Not validated: an answer to a malformed request copies its fields verbatim.
        assert isinstance(response, Response), transmit.data
        out.append(response)
    return out, endpoint


def answer(data: bytes, app: object | None = None) -> Response:
    """The one response the endpoint sends for *data*."""
    out, _ = answers(data, app)
    assert len(out) == 1, out
    return out[0]


def status_line(response: Response) -> tuple[int, str]:
    return response.status, response.reason


def load_corpus(directory: Path) -> dict[str, bytes]:
    """Every file named in ``SHA256SUMS``, checked against its digest."""
    corpus: dict[str, bytes] = {}
    for line in (directory / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        data = (directory / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest, f"{name} was changed"
        corpus[name.removesuffix(".dat")] = data
    return corpus
