"""User-agent-server rules of RFC 3261 section 8.2: checks and response construction."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable

from .headers import HeaderError, parse_tokens
from .message import Headers, Message, Request, Response

__all__ = ["KNOWN_METHODS", "new_tag", "stable_tag", "make_response", "check_request",
           "origin", "RequestError"]

# Methods this agent recognises; an unrecognised one gets 501, a recognised one that the
# application does not implement gets 405 (RFC 3261 8.2.1, 21.5.2).
KNOWN_METHODS = frozenset({
    "INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER", "SUBSCRIBE", "NOTIFY",
    "PUBLISH", "MESSAGE", "INFO", "PRACK", "UPDATE", "REFER",
})


_TAG_SECRET = os.urandom(16)
_TAG_IDENTITY = ("call-id", "from", "cseq", "via")


def new_tag() -> str:
    """A To/From tag with 64 bits of randomness (RFC 3261 19.3 asks for at least 32)."""
    return os.urandom(8).hex()


def stable_tag(request: Message) -> str:
    """A To tag that is the same for every retransmission of *request*.

    A stateless UAS must answer a retransmission with the same tag (RFC 3261 8.2.7);
    a keyed hash of the transaction identity gives that, and is as unpredictable
    to others as a random tag.
    """
    fields = request.headers._fields
    call_id, from_, cseq, via = (fields.get(key) for key in _TAG_IDENTITY)
    identity = (f"{call_id[0] if call_id else ''}\n{from_[0] if from_ else ''}\n"
                f"{cseq[0] if cseq else ''}\n{via[0] if via else ''}")
    return hashlib.blake2b(identity.encode("utf-8", "surrogateescape"), digest_size=8,
                           key=_TAG_SECRET).hexdigest()


def make_response(
    request: Message,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> Response:
    """Build a response per RFC 3261 8.2.6: Via, From, To, Call-ID and CSeq copied as received.

    The values are copied verbatim, even from a malformed request, so that the sender
    can match the answer.  A To tag is added to every non-100 response whose request
    had none: the given one, or a new random tag.
    """
    fields = request.headers._fields
    out = Headers()
    for key in ("via", "from", "to", "call-id", "cseq"):
        values = fields.get(key)
        if values:
            out._fields[key] = list(values)
    if status != 100 and "to" in out._fields:
        try:
            has_tag = request.to.tag is not None
        except HeaderError:
            has_tag = False
        if not has_tag:
            out._fields["to"] = [f"{out._fields['to'][0]};tag={to_tag or stable_tag(request)}"]
    for name, value in headers:
        out.add(name, value)
    return Response(status, reason, out, body)


def check_request(
    request: Request,
    *,
    allowed: Iterable[str],
    supported: Iterable[str],
    schemes: Iterable[str],
) -> Response | None:
    """Apply 8.2.1 (method) and 8.2.2 (URI scheme, Require); None when all pass.

    The request must have passed :func:`sipresence.sip.parser.validate`.
    """
    if request.method not in allowed:
        status = 405 if request.method in KNOWN_METHODS else 501
        return make_response(request, status, headers=[("Allow", ", ".join(allowed))])
    scheme = request.uri.partition(":")[0].lower()
    if scheme not in schemes:
        return make_response(request, 416)
    require = request.headers._fields.get("require")
    if require and request.method not in ("ACK", "CANCEL"):
        unknown = [tag for tag in parse_tokens(require) if tag not in supported]
        if unknown:
            return make_response(request, 420, headers=[("Unsupported", ", ".join(unknown))])
    return None


def origin(request: Request) -> str:
    """The device that sent *request*: ``transport:host:port`` of its bottom Via.

    Through a proxy the top Via is the proxy's; the bottom one (with the received
    and rport the first hop added) is the device's, so two phones behind one proxy
    stay two devices, and a phone's PUBLISH and REGISTER name the same one.
    """
    via = request.bottom_via
    return f"{via.transport}:{via.received or via.host}:{via.rport or via.port or 5060}"


class RequestError(Exception):
    """A request to be answered with an error status: raised after the checks and
    before any change, so an error answer never comes with a change of state."""

    def __init__(self, status: int, reason: str | None = None,
                 headers: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(reason or str(status))
        self.status = status
        self.reason = reason
        self.headers = list(headers)

    def response(self, request: Request) -> Response:
        return make_response(request, self.status, self.reason, headers=self.headers)
