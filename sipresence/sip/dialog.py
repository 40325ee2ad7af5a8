"""Dialog state as RFC 3261 section 12 defines it, for any usage of a dialog.

A :class:`Dialog` holds what both ends agreed on (Call-ID, tags, URIs), the remote
target and route set, and the two CSeq counters.  It builds the requests sent within
it (:meth:`Dialog.request`, section 12.2.1.1), says whether a request received in it
is in order (:meth:`Dialog.in_order`, 12.2.2), and chooses where its requests go
(:meth:`Dialog.next_hop`).  The notifier keeps one per subscription; a subscriber (the
agent subscribing upstream, a list server) keeps its own.  Sans-IO: no clock, no
socket; the transaction layer sends what it builds.
"""

from __future__ import annotations

from dataclasses import dataclass

from .headers import HeaderError, parse_name_addr
from .message import Request
from .transport import Peer
from .uri import SipURI, format_host, parse_uri

__all__ = ["Dialog", "contact", "local_contact", "uri_peer"]


def contact(request: Request) -> str:
    """The remote target a request's one Contact names (RFC 3261 12.1.1); raises
    HeaderError when there is none, more than one, or it cannot be a Request-URI:
    one that does not parse, or a SIP URI with headers (RFC 3261 19.1.1 allows none
    there; every request sent in the dialog would be malformed, found by fuzzing)."""
    values = request.headers.values("contact")
    if len(values) != 1:
        raise HeaderError("Missing Contact" if not values else "Multiple Contacts")
    try:
        address = parse_name_addr(values[0])
        uri = parse_uri(address.uri_text)
    except (HeaderError, ValueError):
        raise HeaderError("Bad Contact") from None
    if isinstance(uri, SipURI) and uri.headers:
        raise HeaderError("Bad Contact")
    return address.uri_text


def local_contact(flow: Peer) -> str:
    """This end's Contact in a dialog: the address the peer reached it on."""
    host, port = flow.local or ("127.0.0.1", 5060)
    transport = "" if flow.transport == "UDP" else f";transport={flow.transport.lower()}"
    return f"<sip:{format_host(host)}:{port}{transport}>"


def uri_peer(uri: SipURI, local: tuple[str, int] | None,
              transport: str | None = None) -> Peer:
    """The next hop a SIP URI names (RFC 3263 without DNS records: host and port)."""
    transport = uri.transport or transport or ("TLS" if uri.scheme == "sips" else "UDP")
    default = 5061 if transport == "TLS" else 5060
    return Peer(transport, uri.host.strip("[]"), uri.port or default, None, local)


@dataclass(slots=True)
class Dialog:
    """One dialog, seen from this end (RFC 3261 section 12)."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str
    remote_uri: str
    remote_target: str
    route_set: list[str]
    local_cseq: int
    remote_cseq: int

    @classmethod
    def as_uas(cls, request: Request, local_tag: str) -> Dialog:
        """The dialog *request* creates, on the answering side (12.1.1): the route
        set is its Record-Route in order, the remote target its Contact (raises
        HeaderError without a usable one), and no request was sent in it yet."""
        return cls(call_id=request.call_id, local_tag=local_tag,
                   remote_tag=request.from_.tag or "", local_uri=request.to.uri_text,
                   remote_uri=request.from_.uri_text, remote_target=contact(request),
                   route_set=request.headers.values("record-route"), local_cseq=0,
                   remote_cseq=request.cseq.number)

    def in_order(self, cseq: int) -> bool:
        """Whether a request with *cseq* comes after the last one received (12.2.2:
        a lower or equal one is out of order and gets 500)."""
        return cseq > self.remote_cseq

    def received(self, cseq: int, target: str | None) -> None:
        """A request in the dialog with *cseq* was taken: it is the remote's last,
        and *target*, the Contact it carried if any, the new remote target (a target
        refresh, 12.2.2)."""
        self.remote_cseq = cseq
        if target is not None:
            self.remote_target = target

    def request(self, method: str, flow: Peer) -> Request:
        """A new request in the dialog (12.2.1.1): the next local CSeq, the remote
        target as Request-URI, the route set as Route headers (loose routing), and
        this end's Contact for *flow* (where the peer reaches it)."""
        self.local_cseq += 1
        request = Request(method, self.remote_target)
        headers = request.headers
        headers.add("Max-Forwards", "70")
        headers.add("From", f"<{self.local_uri}>;tag={self.local_tag}")
        to = f"<{self.remote_uri}>"
        headers.add("To", f"{to};tag={self.remote_tag}" if self.remote_tag else to)
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{self.local_cseq} {method}")
        for route in self.route_set:
            headers.add("Route", route)
        headers.add("Contact", local_contact(flow))
        return request

    def next_hop(self, flow: Peer) -> Peer:
        """Where the dialog's requests go: the first Route when there is a route set;
        else back the way the peer's requests came (*flow*: its source address, or
        its connection), which also reaches a peer behind NAT whose Contact is a
        private address.  A stream whose connection is gone (after a restart) is
        reached at the remote target instead: the old source port was the peer's
        ephemeral one."""
        if self.route_set:
            try:
                uri = parse_name_addr(self.route_set[0]).uri
            except HeaderError:
                uri = None
            if isinstance(uri, SipURI):
                return uri_peer(uri, flow.local)
        if flow.transport != "UDP" and flow.connection is None:
            try:
                target = parse_uri(self.remote_target)
            except ValueError:
                target = None
            if isinstance(target, SipURI):
                return uri_peer(target, flow.local, flow.transport)
        return flow
