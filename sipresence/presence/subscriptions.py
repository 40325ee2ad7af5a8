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

from ..sip.dialog import Dialog, contact, local_contact
from ..sip.endpoint import Outgoing
from ..sip.headers import HeaderError, parse_params
from ..sip.message import Request, Response
from ..sip.transport import Peer
from ..sip.uas import RequestError, make_response, new_tag
from .packages import EventPackage, negotiate
from .subscription import FlowAction, FlowEvent, FlowState, Subscription, SubState
from .timers import DeadlineQueue

__all__ = ["Notifier", "SubscribeError", "parse_event"]


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
        try:
            dialog = Dialog.as_uas(request, new_tag())
        except HeaderError as exc:
            raise SubscribeError(400, str(exc)) from None
        watcher = request.from_.uri.aor()
        decision = self.policy(watcher, resource, package.name)
        if decision == "rejected":
            raise SubscribeError(403)
        state = SubState.PENDING if decision == "pending" else SubState.ACTIVE
        subscription = Subscription(
            id=secrets.token_hex(8), package=package.name, resource=resource,
            event_id=event_id, watcher=watcher, watcher_display=request.from_.display,
            dialog=dialog, transport=peer.transport,
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
        if not subscription.dialog.in_order(request.cseq.number):
            raise SubscribeError(500, "CSeq out of order")
        expires = self._expires(request, package)
        try:
            target = contact(request) if "contact" in request.headers else None
        except HeaderError as exc:
            raise SubscribeError(400, str(exc)) from None
        # Checks done; from here on the subscription changes.
        subscription.dialog.received(request.cseq.number, target)
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
        return make_response(request, status, to_tag=subscription.dialog.local_tag, headers=[
            ("Expires", str(expires)),
            ("Contact", local_contact(subscription.peer)),
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
        # The watcher's own unsubscribe is told apart from an expiry (both end with
        # reason timeout): a bridge maps the one, not the other (RFC 8048 6.3).
        self.observe(subscription, "unsubscribe" if event == "unsubscribe" else reason)

    def _mark(self, subscription: Subscription) -> None:
        self._apply(subscription, subscription.flow_event(FlowEvent.CHANGE), 0.0)

    def _apply(self, subscription: Subscription, actions: tuple[FlowAction, ...],
               now: float) -> None:
        """Carry out what the NOTIFY flow's table asked for."""
        for action in actions:
            if action is FlowAction.QUEUE:
                self._pending.append(subscription)
            elif action is FlowAction.RETRY_LATER:
                # The state of that moment, in full: the watcher may not have the
                # partial document that was lost.
                subscription.full_state_due = True
                self._timers.set(("retry", subscription.id), now + self.retry_delay)
            else:
                # The watcher is gone (RFC 6665 4.2.2): no further NOTIFY.  The
                # owner's watcher information says "deactivated" (RFC 3858: ended by
                # the server, the watcher may subscribe again); "giveup" is for a
                # decision that never came.
                if subscription.ending is None:
                    self.end(subscription, "deactivated", "giveup")
                self._drop(subscription)

    # -- NOTIFY --------------------------------------------------------------------------
    def flush(self, now: float) -> None:
        """Queue the NOTIFYs that are due (after each response, input and timer)."""
        while self._pending:
            batch, self._pending = self._pending, []
            for subscription in batch:
                if subscription.flow_state is FlowState.DUE:
                    self._notify(subscription, now)

    def _notify(self, subscription: Subscription, now: float) -> None:
        subscription.flow_event(FlowEvent.SEND)
        ending = subscription.ending
        if ending is not None:
            state = f"terminated;reason={ending}"
        else:
            remaining = max(0, int(subscription.expires_at - now))
            state = f"{subscription.state.value};expires={remaining}"
        content = self.render(subscription, now)
        flow = subscription.peer
        request = subscription.dialog.request("NOTIFY", flow)
        headers = request.headers
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
        self._outbox.append(Outgoing(request, subscription.dialog.next_hop(flow), subscription))

    def take(self) -> list[Outgoing]:
        """The NOTIFYs queued so far, each with its subscription as the reference its
        answer comes back with (:meth:`answered`)."""
        out, self._outbox = self._outbox, []
        return out

    def answered(self, subscription: Subscription, response: Response, now: float) -> None:
        """The final answer to the NOTIFY in flight for *subscription*: a 2xx, a
        transient failure (408, 503 or no answer: retried ``notify_retries`` times,
        never for the last NOTIFY) or the end of the watcher (481, any other error)."""
        status = response.status
        if 200 <= status < 300:
            event = FlowEvent.OK
        elif (status in (408, 503) and subscription.ending is None
              and subscription.failures < self.notify_retries):
            event = FlowEvent.TRANSIENT
        else:
            event = FlowEvent.FATAL
        self._apply(subscription, subscription.flow_event(event), now)
        if subscription.flow_state is FlowState.IDLE and subscription.ending is not None:
            self._drop(subscription)  # its last NOTIFY was taken

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
            elif kind == "retry":
                self._apply(subscription, subscription.flow_event(FlowEvent.RETRY_TIMER), now)

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
