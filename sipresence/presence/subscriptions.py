"""The notifier of RFC 6665 (with RFC 3856's presence rules): subscriptions and NOTIFY.

A subscription is a dialog plus a state from this table (RFC 6665 section 4.1.2.3):

    ====================  =============  ==================================
    state                 event          next state
    ====================  =============  ==================================
    (new)                 subscribe      active, or pending (policy)
    pending               approve        active
    pending, active       refresh        unchanged
    pending, active       unsubscribe,   terminated (reason timeout,
                          expire,        rejected, deactivated, giveup,
                          reject,        noresource)
                          give up
    ====================  =============  ==================================

NOTIFYs go out in the subscription's dialog with rising CSeq, at most one in flight
per dialog (RFC 6665 section 4.1.2.2 asks the subscriber to cope with reordering;
not making it is kinder and coalesces bursts).  A change while one is in flight is
sent when its answer comes, with the state of that moment.  A 481 ends the
subscription at once; a 408, 503, timeout or transport error is retried
``notify_retries`` times, then the subscription is given up.  A watcher that never
answers holds up nobody but itself.

The notifier sends nothing itself: :meth:`Notifier.flush` queues the NOTIFYs that
are due, :meth:`Notifier.take` hands them over (the endpoint starts a client
transaction for each), and :meth:`Notifier.answered` takes each one's final answer.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import cast

from ..sip.endpoint import Outgoing
from ..sip.headers import HeaderError, parse_name_addr, parse_params
from ..sip.message import Request, Response
from ..sip.transport import Peer
from ..sip.uas import RequestError, make_response, new_tag
from ..sip.uri import SipURI, format_host, parse_uri
from .packages import EventPackage, negotiate
from .subscription import Subscription, SubState
from .timers import DeadlineQueue

__all__ = ["Notifier", "SubscribeError", "agent_contact", "parse_event"]


_TRANSITIONS: dict[tuple[SubState, str], SubState] = {
    (SubState.PENDING, "approve"): SubState.ACTIVE,
    (SubState.PENDING, "refresh"): SubState.PENDING,
    (SubState.ACTIVE, "refresh"): SubState.ACTIVE,
    **{(s, e): SubState.TERMINATED
       for s in (SubState.PENDING, SubState.ACTIVE)
       for e in ("unsubscribe", "expire", "reject", "giveup", "deactivate")},
}


class SubscribeError(RequestError):
    """A SUBSCRIBE answered with an error (RFC 6665); nothing was changed."""


def agent_contact(peer: Peer) -> str:
    """The agent's Contact for a dialog: the address the peer reached it on."""
    host, port = peer.local or ("127.0.0.1", 5060)
    transport = "" if peer.transport == "UDP" else f";transport={peer.transport.lower()}"
    return f"<sip:{format_host(host)}:{port}{transport}>"


def parse_event(value: str | None) -> tuple[str, str | None]:
    """``Event: presence;id=7`` -> ("presence", "7")."""
    if value is None or not value.strip():
        raise HeaderError("Missing Event header")
    package, _, params = value.strip().partition(";")
    event_params = parse_params(";" + params) if params else {}
    return package.strip(), event_params.get("id")


# Renders the body of the next NOTIFY: (content type, body), or None for no body.
Renderer = Callable[[Subscription, float], tuple[str, bytes] | None]
# Told of every subscription created, changed or ended: (subscription, watcherinfo event).
Observer = Callable[[Subscription, str], None]
# Decides a new subscription: "active", "pending" or "rejected".
Policy = Callable[[str, str, str], str]


def _allow_all(watcher: str, resource: str, package: str) -> str:
    return "active"


def _ignore(*args: object) -> None:
    return None


class Notifier:
    """All subscriptions of all packages, and the NOTIFYs they cause."""

    def __init__(
        self,
        packages: dict[str, EventPackage],
        render: Renderer,
        *,
        policy: Policy = _allow_all,
        observe: Observer = _ignore,
        persist: Callable[[Subscription], None] = _ignore,
        forget: Callable[[Subscription], None] = _ignore,
        notify_retries: int = 2,
        retry_delay: float = 1.0,
    ) -> None:
        self.packages = packages
        self.render = render
        self.policy = policy
        self.observe = observe
        self.persist = persist
        self.forget = forget
        self.notify_retries = notify_retries
        self.retry_delay = retry_delay
        self._by_dialog: dict[tuple[str, str, str, str, str | None], Subscription] = {}
        self._by_resource: dict[tuple[str, str], dict[str, Subscription]] = {}
        self._by_id: dict[str, Subscription] = {}
        self._timers = DeadlineQueue()
        self._pending: list[Subscription] = []  # dirty subscriptions to look at in flush()
        self._outbox: list[Outgoing] = []  # NOTIFYs queued by flush(), until take()

    # -- lookups -----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, subscription_id: str) -> Subscription | None:
        return self._by_id.get(subscription_id)

    def watchers(self, package: str, resource: str) -> list[Subscription]:
        return list(self._by_resource.get((package, resource), {}).values())

    def all(self) -> list[Subscription]:
        return list(self._by_id.values())

    # -- SUBSCRIBE -----------------------------------------------------------------------
    def subscribe(self, request: Request, peer: Peer, resource: str, now: float) -> Response:
        """Answer a SUBSCRIBE; its NOTIFY goes out at the next :meth:`flush`.

        Every check runs before anything changes, so an error answer leaves no trace.
        """
        try:
            if request.to.tag is None:
                return self._new(request, peer, resource, now)
            return self._in_dialog(request, peer, now)
        except SubscribeError as exc:
            return exc.response(request)

    def _package(self, request: Request) -> tuple[EventPackage, str | None]:
        try:
            name, event_id = parse_event(request.single("event"))
        except HeaderError as exc:
            raise SubscribeError(400, str(exc)) from None
        package = self.packages.get(name)
        if package is None:
            raise SubscribeError(489, headers=[("Allow-Events", ", ".join(self.packages))])
        return package, event_id

    def _expires(self, request: Request, package: EventPackage) -> int:
        expires = request.expires
        if expires is None:
            return package.default_expires
        if 0 < expires < package.min_expires:
            raise SubscribeError(423, headers=[("Min-Expires", str(package.min_expires))])
        return min(expires, package.max_expires)

    def _new(self, request: Request, peer: Peer, resource: str, now: float) -> Response:
        package, event_id = self._package(request)
        expires = self._expires(request, package)
        content_type = negotiate(request.headers.get_all("accept"), package.notify_types)
        if content_type is None:
            raise SubscribeError(406, headers=[("Accept", ", ".join(package.notify_types))])
        target = _contact_uri(request)
        watcher = request.from_.uri.aor()
        decision = self.policy(watcher, resource, package.name)
        if decision == "rejected":
            raise SubscribeError(403)
        state = SubState.PENDING if decision == "pending" else SubState.ACTIVE
        subscription = Subscription(
            id=secrets.token_hex(8), package=package.name, resource=resource,
            event_id=event_id, watcher=watcher, watcher_display=request.from_.display,
            call_id=request.call_id, local_tag=new_tag(), remote_tag=request.from_.tag or "",
            local_uri=request.to.uri_text, remote_uri=request.from_.uri_text,
            remote_target=target, route_set=request.headers.values("record-route"),
            local_cseq=0, remote_cseq=request.cseq.number, transport=peer.transport,
            host=peer.host, port=peer.port, connection=peer.connection, local=peer.local,
            content_type=content_type, state=state, expires_at=now + expires, created_at=now,
            authorized=state is SubState.ACTIVE)
        if expires == 0:
            # A fetch (RFC 6665 4.4.3): one NOTIFY with the state and "terminated".
            subscription.ending = "timeout"
        else:
            self._add(subscription)
            self.persist(subscription)
            self.observe(subscription, "subscribe")
        self._mark(subscription)
        return self._ok(request, subscription, 202 if state is SubState.PENDING else 200,
                        expires)

    def _in_dialog(self, request: Request, peer: Peer, now: float) -> Response:
        package, event_id = self._package(request)
        key = (request.call_id, request.to.tag or "", request.from_.tag or "", package.name,
               event_id)
        subscription = self._by_dialog.get(key)
        if subscription is None or subscription.ending is not None:
            raise SubscribeError(481)
        if request.cseq.number <= subscription.remote_cseq:
            raise SubscribeError(500, "CSeq out of order")
        expires = self._expires(request, package)
        target = _contact_uri(request) if "contact" in request.headers else None
        # Checks done; from here on the subscription changes.
        if target is not None:
            subscription.remote_target = target  # target refresh
        subscription.remote_cseq = request.cseq.number
        if peer.reliable:
            subscription.connection = peer.connection  # the newest flow
        status = 202 if subscription.state is SubState.PENDING else 200
        if expires == 0:
            self.end(subscription, "timeout", "unsubscribe")
        else:
            subscription.state = _TRANSITIONS[(subscription.state, "refresh")]
            subscription.expires_at = now + expires
            self._timers.set(("expire", subscription.id), subscription.expires_at)
            self._mark(subscription)  # RFC 6665 4.2.1.2: a NOTIFY after every refresh
            self.persist(subscription)
        return self._ok(request, subscription, status, expires)

    @staticmethod
    def _ok(request: Request, subscription: Subscription, status: int,
            expires: int) -> Response:
        return make_response(request, status, to_tag=subscription.local_tag, headers=[
            ("Expires", str(expires)),
            ("Contact", agent_contact(subscription.peer)),
        ])

    # -- state changes -------------------------------------------------------------------
    def changed(self, package: str, resource: str) -> None:
        """The state *resource* shows in *package* changed: NOTIFY its watchers."""
        for subscription in self._by_resource.get((package, resource), {}).values():
            self._mark(subscription)

    def refresh_one(self, subscription: Subscription) -> None:
        """Send one watcher a NOTIFY with its current state (its view changed)."""
        self._mark(subscription)

    def approve(self, subscription: Subscription) -> None:
        subscription.state = _TRANSITIONS[(subscription.state, "approve")]
        subscription.authorized = True
        self._mark(subscription)
        self.persist(subscription)
        self.observe(subscription, "approved")

    def end(self, subscription: Subscription, reason: str, event: str) -> None:
        """Terminate: a last NOTIFY with ``terminated;reason=...``, then it is gone."""
        if subscription.ending is not None:
            return
        subscription.state = _TRANSITIONS.get((subscription.state, event), SubState.TERMINATED)
        subscription.ending = reason
        self._mark(subscription)
        self._detach(subscription)
        self.observe(subscription, reason)

    def _mark(self, subscription: Subscription) -> None:
        if not subscription.dirty:
            subscription.dirty = True
            self._pending.append(subscription)

    # -- NOTIFY --------------------------------------------------------------------------
    def flush(self, now: float) -> None:
        """Queue the NOTIFYs that are due (after each response, input and timer)."""
        while self._pending:
            batch, self._pending = self._pending, []
            for subscription in batch:
                if subscription.dirty and not subscription.in_flight:
                    self._notify(subscription, now)

    def _notify(self, subscription: Subscription, now: float) -> None:
        subscription.dirty = False
        ending = subscription.ending
        if ending is not None:
            state = f"terminated;reason={ending}"
        else:
            remaining = max(0, int(subscription.expires_at - now))
            state = f"{subscription.state.value};expires={remaining}"
        content = self.render(subscription, now)
        subscription.local_cseq += 1
        request = Request("NOTIFY", subscription.remote_target)
        headers = request.headers
        headers.add("Max-Forwards", "70")
        headers.add("From", f"<{subscription.local_uri}>;tag={subscription.local_tag}")
        to = f"<{subscription.remote_uri}>"
        headers.add("To", f"{to};tag={subscription.remote_tag}" if subscription.remote_tag else to)
        headers.add("Call-ID", subscription.call_id)
        headers.add("CSeq", f"{subscription.local_cseq} NOTIFY")
        for route in subscription.route_set:
            headers.add("Route", route)
        headers.add("Contact", agent_contact(subscription.peer))
        event = subscription.package
        if subscription.event_id is not None:
            event += f";id={subscription.event_id}"
        headers.add("Event", event)
        headers.add("Subscription-State", state)
        if content is not None:
            headers.add("Content-Type", content[0])
            request.body = content[1]
        if ending is None and subscription.reserve_counters():
            self.persist(subscription)
        subscription.in_flight = True
        self._outbox.append(Outgoing(request, self._destination(subscription), subscription))

    def take(self) -> list[Outgoing]:
        """The NOTIFYs queued so far, each with its subscription as the reference its
        answer comes back with (:meth:`answered`)."""
        out, self._outbox = self._outbox, []
        return out

    def _destination(self, subscription: Subscription) -> Peer:
        """Where NOTIFYs go: the first Route if there is a route set, else back the way
        the SUBSCRIBE came (its source address, or its connection), which also works
        for watchers behind NAT whose Contact is a private address.  A stream whose
        connection is gone (after a restart) is reached at its Contact instead: the
        old source port was the watcher's ephemeral one."""
        if subscription.route_set:
            try:
                uri = parse_name_addr(subscription.route_set[0]).uri
            except HeaderError:
                uri = None
            if isinstance(uri, SipURI):
                return _uri_peer(uri, subscription.local)
        if subscription.transport != "UDP" and subscription.connection is None:
            try:
                target = parse_uri(subscription.remote_target)
            except ValueError:
                target = None
            if isinstance(target, SipURI):
                return _uri_peer(target, subscription.local, subscription.transport)
        return subscription.peer

    def answered(self, subscription: Subscription, response: Response, now: float) -> None:
        """The final answer to the NOTIFY in flight for *subscription*."""
        subscription.in_flight = False
        status = response.status
        if 200 <= status < 300:
            subscription.failures = 0
            if subscription.dirty:
                self._pending.append(subscription)
            elif subscription.ending is not None:
                self._drop(subscription)
            return
        if (status in (408, 503) and subscription.ending is None
                and subscription.failures < self.notify_retries):
            # Transient: try again shortly, with the state of that moment, in full:
            # the watcher may not have the partial document that was lost.
            subscription.failures += 1
            subscription.dirty = True
            subscription.full_state_due = True
            self._timers.set(("retry", subscription.id), now + self.retry_delay)
            return
        # 481 (the dialog is gone), any other error, or retries used up: the watcher
        # is gone (RFC 6665 4.2.2); it gets no further NOTIFY.  The owner's watcher
        # information says "deactivated" (RFC 3858: ended by the server, the watcher
        # may subscribe again); "giveup" is for a decision that never came.
        if subscription.ending is None:
            self.end(subscription, "deactivated", "giveup")
        subscription.dirty = False
        self._drop(subscription)

    # -- time ----------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        return self._timers.next_deadline()

    def handle_timer(self, now: float) -> None:
        for key in self._timers.pop_due(now):
            kind, subscription_id = cast(tuple[str, str], key)
            subscription = self._by_id.get(subscription_id)
            if subscription is None:
                continue
            if kind == "expire":
                self.end(subscription, "timeout", "expire")
            elif kind == "retry" and subscription.dirty:
                self._pending.append(subscription)

    # -- bookkeeping ---------------------------------------------------------------------
    def restore(self, subscription: Subscription) -> None:
        """Put back a subscription read from the store."""
        subscription.authorized = subscription.state is SubState.ACTIVE
        self._add(subscription)

    def _add(self, subscription: Subscription) -> None:
        self._by_id[subscription.id] = subscription
        self._by_dialog[subscription.dialog_key] = subscription
        group = (subscription.package, subscription.resource)
        self._by_resource.setdefault(group, {})[subscription.id] = subscription
        self._timers.set(("expire", subscription.id), subscription.expires_at)

    def _detach(self, subscription: Subscription) -> None:
        """No more notifications of changes; the last NOTIFY may still be under way."""
        group = (subscription.package, subscription.resource)
        members = self._by_resource.get(group)
        if members is not None:
            members.pop(subscription.id, None)
            if not members:
                del self._by_resource[group]
        self._timers.cancel(("expire", subscription.id))
        self.forget(subscription)

    def _drop(self, subscription: Subscription) -> None:
        self._detach(subscription)
        self._by_id.pop(subscription.id, None)
        if self._by_dialog.get(subscription.dialog_key) is subscription:
            del self._by_dialog[subscription.dialog_key]
        self._timers.cancel(("retry", subscription.id))


def _uri_peer(uri: SipURI, local: tuple[str, int] | None,
              transport: str | None = None) -> Peer:
    """The next hop a SIP URI names (RFC 3263 without DNS records: host and port)."""
    transport = uri.transport or transport or ("TLS" if uri.scheme == "sips" else "UDP")
    default = 5061 if transport == "TLS" else 5060
    return Peer(transport, uri.host.strip("[]"), uri.port or default, None, local)


def _contact_uri(request: Request) -> str:
    """The remote target from a request's Contact (RFC 6665: SUBSCRIBE must carry one)."""
    values = request.headers.values("contact")
    if len(values) != 1:
        raise SubscribeError(400, "Missing Contact" if not values else "Multiple Contacts")
    try:
        contact = parse_name_addr(values[0])
        parse_uri(contact.uri_text)
    except (HeaderError, ValueError):
        raise SubscribeError(400, "Bad Contact") from None
    return contact.uri_text
