"""The presence agent as the SIP endpoint's transaction user.

The agent receives every new request once (retransmissions are absorbed below it)
and routes it by method: PUBLISH to the event state compositor, SUBSCRIBE to the
notifier, OPTIONS answered here.  It advertises exactly what it implements:
``Allow`` lists the methods with a handler, ``Allow-Events`` the event packages and
``Accept`` the body types PUBLISH takes, so OPTIONS, 405 and 489 answers stay true
as capabilities are added.

State changes are noted in a :class:`~sipresence.presence.journal.Journal`; group
commit drains it into the store after each input.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from ..documents.compose import Source
from ..documents.datamodel import Person
from ..documents.pidf import Basic, PresenceDocument, PresenceTuple, serialize_pidf
from ..documents.rpid import Activities
from ..documents.xml import Note
from ..sip.digest import Authenticator
from ..sip.endpoint import Outgoing
from ..sip.headers import HeaderError
from ..sip.message import Request, Response
from ..sip.transport import Peer
from ..sip.uas import make_response, origin
from ..sip.uri import URI, AbsoluteURI, SipURI, parse_uri
from .dialogs import BusyLamps, DialogPackage, Lines
from .journal import Journal, Snapshot
from .packages import PIDF, EventPackage
from .pager import Attempt, MessageGateway, Pager, flow
from .policy import Authorization, Rule
from .presentity import PRESENCE_CLOCK, PresencePackage, Presentities, registration_sources
from .publications import (
    EventStateCompositor,
    PublishError,
    PublishResult,
    new_etag,
)
from .registrar import RegisterError, Registrar
from .roster import Roster, RosterEntry
from .routing import Decision, RoutingPolicy, decide, line_state
from .subscription import Subscription, SubState
from .subscriptions import Notifier
from .timers import DeadlineQueue
from .watchers import WatcherInfoPackage, WatcherInformation

# Requests whose 2xx acknowledges a change of stored state.
CHANGES_STATE = frozenset({"REGISTER", "PUBLISH", "SUBSCRIBE"})
# Requests that must prove who sends them when users are configured: those, and a
# MESSAGE, whose From the recipient trusts.
AUTHENTICATED = CHANGES_STATE | {"MESSAGE"}
# What a MESSAGE for a user of another network may hold: text (RFC 7572 section 5).
TEXT_PLAIN = "text/plain"
# The publisher name of the HTTP API's source of a presentity.
API_SOURCE = "api"

__all__ = ["Agent", "AgentConfig"]


def _presentity(uri: URI) -> str | None:
    """The presentity a URI names, as an address of record; None if it names none.
    ``pres:`` URIs (RFC 3859) name the same presentity as the ``sip:`` URI with the
    same user and host."""
    if isinstance(uri, AbsoluteURI) and uri.scheme == "pres":
        return "sip:" + uri.opaque
    return uri.aor() if isinstance(uri, SipURI) else None


def _user(aor: str) -> str:
    """``sip:alice@example.com`` -> ``alice``: the user name digest credentials carry."""
    return aor.partition(":")[2].rpartition("@")[0]


def _domain(aor: str) -> str:
    """``sip:alice@Example.com`` -> ``example.com``."""
    return aor.rpartition("@")[2].lower()


Handler = Callable[[Request, Peer, float], Response | None]


@dataclass(frozen=True)
class AgentConfig:
    """Limits and behaviour the operator can set (``[presence]`` in the config file).

    ``min_expires`` and ``max_expires`` bound PUBLISH and SUBSCRIBE expiries (shorter
    gets 423 with Min-Expires, longer is cut down); a NOTIFY answered 408 or 503, or
    not at all, is sent again ``notify_retries`` times, ``retry_delay`` seconds apart,
    before the subscription is given up.
    """

    min_expires: int = 60
    max_expires: int = 86400
    notify_retries: int = 2
    retry_delay: float = 1.0
    # A registered device makes an open tuple of its own (RFC 4479: a service).
    registrations_as_source: bool = True
    # What happens to a watcher no rule names: allow, confirm or block (policy.py).
    sub_handling: str = "allow"
    # Digest authentication (sip/digest.py) of REGISTER, PUBLISH and SUBSCRIBE when
    # users are given: user name -> password, in this realm.
    realm: str = "sipresence"
    users: Mapping[str, str] = field(default_factory=dict)
    # How INVITEs are answered (see presence/routing.py).
    routing: RoutingPolicy = field(default_factory=RoutingPolicy)


class Agent:
    """Dispatches requests to the presence services and keeps their deadlines."""

    supported: tuple[str, ...] = ()

    def __init__(self, domains: Iterable[str] = (), user_agent: str = "sipresence",
                 config: AgentConfig | None = None) -> None:
        config = config or AgentConfig()
        self.domains = frozenset(d.lower() for d in domains)
        self.user_agent = user_agent
        self.journal = Journal()
        self.packages: dict[str, EventPackage] = {}
        self.publications = EventStateCompositor()
        self.registrar = Registrar(min_expires=config.min_expires,
                                   max_expires=config.max_expires)
        self.presentities = Presentities()
        self.registrations_as_source = config.registrations_as_source
        # When a package's view of a resource changes by itself (a dialog turning
        # stale): (package, resource) -> deadline.
        self._package_timers = DeadlineQueue()
        self.authorization = Authorization(config.sub_handling)
        self.authenticator = (Authenticator(config.realm, config.users) if config.users
                              else None)
        self.users = frozenset(config.users)
        # Events out to the other doors (the HTTP API's live updates, the bridges),
        # which read the new state when they choose to: the address of every
        # presentity whose composed state changed; every SIP subscription that came,
        # changed or ended, with its watcher-information event; every presentity
        # whose rules changed.
        self.presence_listeners: list[Callable[[str], None]] = []
        self.watcher_listeners: list[Callable[[Subscription, str], None]] = []
        self.rule_listeners: list[Callable[[str], None]] = []
        # Instant messages (RFC 3428): to SIP users through the pager, to the users
        # of another network's domain through its gateway.
        self.pager = Pager()
        self.message_gateways: dict[str, MessageGateway] = {}
        self.notifier = Notifier(
            self.packages, self._render, policy=self._policy,
            observe=self._watcher_event,
            persist=lambda s: self.journal.put("subscription", s.id, s),
            forget=self._forget_subscription,
            notify_retries=config.notify_retries, retry_delay=config.retry_delay)
        # Watchers from other networks (the XMPP bridge's subscribers).
        self.roster = Roster()
        self.watcherinfo = WatcherInformation(self.notifier, self.roster)
        self.lines = Lines(self.publications)
        self.lamps = BusyLamps(self.lines)
        # The event packages: each one module, registered here.
        bounds = (config.min_expires, config.max_expires)
        self.presence = PresencePackage(*bounds, self.presentities, self.publications,
                                        self.authorization, self.watcherinfo)
        self.register_package(self.presence)
        self.register_package(WatcherInfoPackage(*bounds, self.watcherinfo))
        self.register_package(DialogPackage(*bounds, self.lines, self.lamps,
                                            self.authorization))
        self._capabilities: tuple[tuple[tuple[str, ...], tuple[str, ...]],
                                  list[tuple[str, str]]] | None = None
        self.handlers: dict[str, Handler] = {
            "OPTIONS": self._options,
            "REGISTER": self._register,
            "PUBLISH": self._publish,
            "SUBSCRIBE": self._subscribe,
            "INVITE": self._invite,
            "MESSAGE": self._message,
        }
        # ACK and CANCEL of INVITE are the endpoint's (RFC 3261 17.2.1, 9.2).  Checked
        # for every request, so spelled out once.
        self.allowed_methods: tuple[str, ...] = (*self.handlers, "ACK", "CANCEL")
        self.routing = config.routing
        # While the store cannot write (store/commit.py): the Retry-After of the 503
        # that requests changing stored state get, since their change could not be
        # made durable.  None: the store writes.
        self.refusing: int | None = None

    def register_package(self, package: EventPackage) -> None:
        """Serve *package*: advertised, published to and subscribed to by its name."""
        self.packages[package.name] = package

    # -- capabilities --------------------------------------------------------------------
    @property
    def accept(self) -> list[str]:
        types: list[str] = []
        for package in self.packages.values():
            types += [t for t in package.publish_types if t not in types]
        return types

    def capabilities(self) -> list[tuple[str, str]]:
        """Allow, Accept, Allow-Events and Supported, as OPTIONS answers them.

        Built once per set of handlers and packages: OPTIONS pings are frequent."""
        key = (self.allowed_methods, tuple(self.packages))
        if self._capabilities is None or self._capabilities[0] != key:
            headers = [("Allow", ", ".join(self.allowed_methods)),
                       ("Accept", ", ".join(self.accept)),
                       ("Allow-Events", ", ".join(self.packages)),
                       ("Supported", ", ".join(self.supported)),
                       ("Server", self.user_agent)]
            self._capabilities = (key, headers)
        return self._capabilities[1]

    # -- requests ------------------------------------------------------------------------
    def handle_request(self, request: Request, peer: Peer, now: float) -> Response | None:
        if self.refusing is not None and request.method in CHANGES_STATE:
            return make_response(request, 503, "Store Unavailable",
                                 headers=[("Retry-After", str(self.refusing))])
        if self.authenticator is not None and request.method in AUTHENTICATED:
            refused = self._authenticate(request, now)
            if refused is not None:
                return refused
        return self.handlers[request.method](request, peer, now)

    def _authenticate(self, request: Request, now: float) -> Response | None:
        """None when the request proved who sent it and speaks for that user's own
        address: a REGISTER for its own To, a PUBLISH for its own presentity, a
        SUBSCRIBE as its own From (the watcher rules are about).  Otherwise 401 with
        a challenge (RFC 3261 22.2), or 403 for someone else's address."""
        assert self.authenticator is not None
        # The credentials must be for this Request-URI when the request came
        # straight from the device; a proxy may have retargeted it (RFC 3261 16.5),
        # and the device computed them over the URI it sent.
        direct = len(request.vias) == 1
        verdict = self.authenticator.check(
            request.method, request.headers.get_all("authorization"), now,
            uri=str(request.request_uri) if direct else None)
        if isinstance(verdict, bool):
            return make_response(request, 401, headers=self.authenticator.challenge(
                now, stale=verdict))
        if request.method == "REGISTER":
            address = request.to.uri.aor()
        elif request.method == "PUBLISH":
            address = self._resource(request)
        else:
            address = request.from_.uri.aor()
        if _user(address) != verdict:
            return make_response(request, 403, "Not Your Address")
        return None

    def outgoing(self, now: float) -> list[Outgoing]:
        """The requests to send now (the endpoint takes them after every input, the
        network layer after every call from elsewhere): the NOTIFYs that are due."""
        self.notifier.flush(now)
        return self.notifier.take() + self.pager.take()

    def handle_response(self, ref: object, response: Response, now: float) -> None:
        """The final answer to a request :meth:`outgoing` gave (its reference is the
        subscription a NOTIFY was for, or the delivery a MESSAGE was part of)."""
        if isinstance(ref, Attempt):
            self.pager.answered(ref, response, now)
            return
        assert isinstance(ref, Subscription), ref
        self.notifier.answered(ref, response, now)

    def _options(self, request: Request, peer: Peer, now: float) -> Response:
        return make_response(request, 200, headers=self.capabilities())

    def _resource(self, request: Request) -> str:
        """The presentity a request is for: its Request-URI as an address of record."""
        aor = _presentity(request.request_uri)
        if aor is None:
            raise HeaderError("Request-URI is not a SIP URI")
        return aor

    @staticmethod
    def address(text: str) -> str:
        """The address of record a user or script names (``alice@example.com``,
        ``sip:Alice@EXAMPLE.com``, ``pres:...``), as requests name presentities.
        Raises ValueError when it is no SIP address."""
        text = text.strip()
        if ":" not in text.partition("@")[0]:
            text = "sip:" + text
        aor = _presentity(parse_uri(text))
        if aor is None:
            raise ValueError(f"not a SIP address: {text}")
        return aor

    def knows(self, aor: str) -> bool:
        """Whether *aor* names someone here: a served domain and, when users are
        configured, one of them (without users every name of a served domain is
        someone, as for PUBLISH and REGISTER)."""
        if not self._served(aor):
            return False
        return not self.users or _user(aor) in self.users

    def _served(self, resource: str) -> bool:
        if not self.domains:
            return True
        host = resource.rpartition("@")[2] if "@" in resource else resource.partition(":")[2]
        return host.lower() in self.domains

    def _foreign(self, aor: str) -> bool:
        """Whether *aor* is a user of another network's domain (a bridged XMPP
        domain): its presence and messages come through that network only, and no
        SIP request may speak for it."""
        return bool(self.message_gateways) and _domain(aor) in self.message_gateways

    def _publish(self, request: Request, peer: Peer, now: float) -> Response:
        resource = self._resource(request)
        if not self._served(resource):
            return make_response(request, 404, "Domain Not Served")
        if self._foreign(resource):
            return make_response(request, 403, "Address Of Another Network")
        event = request.single("event")
        name = (event or "").partition(";")[0].strip()
        package = self.packages.get(name)
        if package is None or not package.publishable:
            allowed = [p.name for p in self.packages.values() if p.publishable]
            return make_response(request, 489, headers=[("Allow-Events", ", ".join(allowed))])
        content_type = request.content_type
        try:
            result = self.publications.publish(
                package=package, resource=resource,
                if_match=request.single("sip-if-match"), expires=request.expires,
                content_type=content_type.mime if content_type else None, body=request.body,
                publisher=origin(request), call_id=request.call_id, now=now)
        except PublishError as exc:
            return exc.response(request)
        if_match = request.single("sip-if-match")
        self._published(package, resource, result, if_match, now)
        # Every 2xx carries an entity tag (RFC 3903 section 11.3): a removal answers
        # with the one it removed, an initial PUBLISH that expires at once with a tag
        # nothing was stored under.
        etag = result.etag or (if_match.strip() if if_match is not None else new_etag())
        return make_response(request, 200, headers=[("SIP-ETag", etag),
                                                     ("Expires", str(result.expires))])

    def _published(self, package: EventPackage, resource: str, result: PublishResult,
                   if_match: str | None, now: float) -> None:
        """Persist what a publication changed and tell the watchers."""
        # A replaced publication and a superseded entity tag lose their rows.
        if result.removed is not None:
            self.journal.delete("publication", result.removed.etag)
        if if_match is not None and result.etag is not None:
            self.journal.delete("publication", if_match.strip())
        if result.etag is not None:
            self.journal.put("publication", result.etag, self.publications.get(result.etag))
        if result.changed:
            self._publications_changed(package, resource, now)

    def _publications_changed(self, package: EventPackage, resource: str,
                              now: float) -> None:
        """What *package*'s publications of *resource* mean changed: its watchers
        hear if they hear of every change, its presence sources go through the one
        door, and its next change with no request is scheduled."""
        if package.notify_on_publish:
            self.notifier.changed(package.name, resource)
        if package.source_prefix is not None and self.presentities.replace_sources(
                resource, package.source_prefix, package.sources(resource, now)):
            self._presence_changed(resource)
        deadline = package.next_deadline(resource, now)
        if deadline is None:
            self._package_timers.cancel((package.name, resource))
        else:
            self._package_timers.set((package.name, resource), deadline)

    # -- sources ---------------------------------------------------------------------
    def set_source(self, aor: str, key: str, source: Source, now: float) -> None:
        """The one door of every source of presence (``Presentities.set_source``): the
        watchers of *aor* hear of it when it changed anything.  PUBLISH, registrations,
        the phone line and the HTTP API come in here; so will the bridges."""
        if self.presentities.set_source(aor, key, source):
            self._presence_changed(aor)

    def clear_source(self, aor: str, key: str, now: float) -> bool:
        """Remove the source *key* of *aor*; False when it had none."""
        if not self.presentities.clear_source(aor, key):
            return False
        self._presence_changed(aor)
        return True

    def _binding_sources(self, aor: str) -> dict[str, Source]:
        if not self.registrations_as_source:
            return {}
        return registration_sources(self.registrar.bindings(aor))

    def _sync_bindings(self, aor: str) -> None:
        if self.presentities.replace_sources(aor, "registration:",
                                             self._binding_sources(aor)):
            self._presence_changed(aor)

    # -- the HTTP API's source ---------------------------------------------------------
    def set_api_state(self, aor: str, basic: str, activities: Iterable[str] = (),
                      note: str | None = None, expires: int | None = None,
                      now: float = 0.0) -> int:
        """Set the ``api`` source of *aor* (DESIGN.md, ``PUT /v1/presentities``): a
        publication like a device's, composed with the others, persisted, expiring
        after *expires* seconds (the PUBLISH default when None).  Returns the expiry
        granted.  Raises ValueError, with the reason, for anything unacceptable."""
        if basic not in ("open", "closed"):
            raise ValueError('basic must be "open" or "closed"')
        values = tuple(activities)
        unknown = [a for a in values if a not in Activities.VALUES]
        if unknown:
            raise ValueError(f"unknown activities: {', '.join(map(str, unknown))}")
        if expires is not None and expires <= 0:
            raise ValueError("expires must be a positive number of seconds")
        person = Person("api", activities=Activities(values) if values else None,
                        notes=(Note(note),) if note else ())
        state: Basic = "open" if basic == "open" else "closed"
        document = PresenceDocument(aor, (PresenceTuple("api", state),), persons=(person,))
        package = self.presence
        try:
            result = self.publications.publish(
                package=package, resource=aor, if_match=None, expires=expires,
                content_type=PIDF, body=serialize_pidf(document), publisher=API_SOURCE,
                call_id=API_SOURCE, now=now)
        except PublishError as exc:
            raise ValueError(f"{exc.status} {exc.reason}: "
                             + ", ".join(f"{k} {v}" for k, v in exc.headers)) from None
        self._published(package, aor, result, None, now)
        return result.expires

    def clear_api_state(self, aor: str, now: float) -> bool:
        """Remove the ``api`` source of *aor*; False when it had none."""
        for publication in self.publications.for_resource(aor, self.presence.name):
            if publication.publisher == API_SOURCE:
                package = self.presence
                result = self.publications.publish(
                    package=package, resource=aor, if_match=publication.etag, expires=0,
                    content_type=None, body=b"", publisher=API_SOURCE, call_id=API_SOURCE,
                    now=now)
                self._published(package, aor, result, None, now)
                return True
        return False

    def _register(self, request: Request, peer: Peer, now: float) -> Response:
        """RFC 3261 section 10.3; the 200 lists every binding with its expiry."""
        uri = request.request_uri
        if isinstance(uri, SipURI) and self.domains and uri.host.lower() not in self.domains:
            return make_response(request, 404, "Domain Not Served")
        to = request.to.uri
        if isinstance(to, SipURI) and not self._served(to.aor()):
            return make_response(request, 404, "Domain Not Served")  # before any change
        if isinstance(to, SipURI) and self._foreign(to.aor()):
            return make_response(request, 403, "Address Of Another Network")
        try:
            result = self.registrar.register(request, now)
        except RegisterError as exc:
            return exc.response(request)
        for binding in result.removed:
            self.journal.delete("binding", binding.store_key)
        for binding in result.added:
            self.journal.put("binding", binding.store_key, binding)
        if result.changed:
            self._sync_bindings(result.aor)
        return make_response(request, 200, headers=self.registrar.contact_headers(
            result.bindings, now))

    def _invite(self, request: Request, peer: Peer, now: float) -> Response:
        """Answer a call by the callee's presence: 302 to the registered contacts when
        available, 486 when busy, 480 when away or unreachable (presence/routing.py)."""
        if request.to.tag is not None:
            return make_response(request, 481)  # the agent keeps no call dialogs
        resource = self._resource(request)
        if not self._served(resource):
            return make_response(request, 404, "Domain Not Served")
        decision = self.route(resource, now)
        return make_response(request, decision.status, headers=decision.headers())

    def _message(self, request: Request, peer: Peer, now: float) -> Response:
        """RFC 3428: hand the message on (202) to the other network's gateway or to
        the user's registered contacts; 404, 480, 415 or 483 when it cannot be."""
        resource = self._resource(request)
        if not self._served(resource):
            return make_response(request, 404, "Domain Not Served")
        hops = request.max_forwards
        if hops is not None and hops <= 0:
            return make_response(request, 483)
        content_type = request.content_type
        mime = content_type.mime if content_type is not None else TEXT_PLAIN
        sender = request.from_.uri.aor()
        if self._foreign(sender):
            return make_response(request, 403, "Address Of Another Network")
        gateway = self.message_gateways.get(_domain(resource))
        if gateway is not None:
            if mime != TEXT_PLAIN:
                return make_response(request, 415, headers=[("Accept", TEXT_PLAIN)])
            charset = (content_type.param("charset") if content_type else None) or "utf-8"
            try:
                text = request.body.decode(charset)
            except (LookupError, UnicodeDecodeError):
                return make_response(request, 415, "Text Not In Its Charset",
                                     headers=[("Accept", f"{TEXT_PLAIN};charset=utf-8")])
            status = gateway.deliver(sender, resource, text, now)
            return make_response(request, status)
        if not self.knows(resource):
            return make_response(request, 404)
        contacts = self.contacts(resource)
        if not contacts:
            return make_response(request, 480, "Not Registered")
        self.pager.send(sender, resource, request.single("content-type") or TEXT_PLAIN,
                        request.body, contacts, max_forwards=(hops or 70) - 1,
                        display=request.from_.display)
        return make_response(request, 202)

    def contacts(self, aor: str) -> list[tuple[str, Peer | None]]:
        """Where a request for *aor*'s devices goes: each registered contact, with the
        flow it registered from (``pager.flow``)."""
        return [flow(b.uri, b.source) for b in self.registrar.bindings(aor)]

    def route(self, aor: str, now: float) -> Decision:
        """What a call to *aor* would get now (the INVITE answer; the HTTP API's too)."""
        presentity = self.presentities.get(aor)
        bindings = self.registrar.bindings(aor)
        state = line_state(presentity.document, presentity.summary,
                           [b.uri for b in bindings], bool(bindings), now)
        return decide(state, self.routing, now)

    def _subscribe(self, request: Request, peer: Peer, now: float) -> Response:
        resource = self._resource(request)
        if not self._served(resource):
            return make_response(request, 404, "Domain Not Served")
        if request.to.tag is None and self._foreign(request.from_.uri.aor()):
            return make_response(request, 403, "Address Of Another Network")
        return self.notifier.subscribe(request, peer, resource, now)

    # -- presence state --------------------------------------------------------------------
    def _presence_changed(self, resource: str) -> None:
        """A source of *resource* changed (the door said so): persist the clock's
        reservation when it moved past it, and tell the watchers and listeners."""
        reserved = self.presentities.reserve_clock()
        if reserved is not None:
            self.journal.put("meta", PRESENCE_CLOCK, (PRESENCE_CLOCK, str(reserved)))
        self.notifier.changed(self.presence.name, resource)
        for listener in self.presence_listeners:
            listener(resource)

    def _render(self, subscription: Subscription, now: float) -> tuple[str, bytes] | None:
        if not subscription.authorized:
            return None  # RFC 3856 6.6.2: no state before authorization, nor after a no
        return self.packages[subscription.package].render(subscription, now)

    def _forget_subscription(self, subscription: Subscription) -> None:
        self.journal.delete("subscription", subscription.id)
        self.packages[subscription.package].forget(subscription)

    def _policy(self, watcher: str, resource: str, package: str) -> str:
        """Who may subscribe: the package says (presence and the line follow the
        person's rules, watcher information is the presentity's own)."""
        return self.packages[package].authorize(watcher, resource)

    # -- authorization rules -----------------------------------------------------------
    def set_rule(self, presentity: str, watcher: str, action: str, now: float) -> Rule:
        """Set what *watcher* (an address of record or a domain) may see of
        *presentity*; live subscriptions it names are decided again at once.
        Raises ValueError for an unknown action.  (*now*, as every call from outside
        SIP takes it: the network layer's :meth:`~sipresence.net.driver.Driver.call`.)"""
        rule = self.authorization.set(presentity, watcher, action)
        self.journal.put("rule", rule.store_key, rule)
        self._authorize(presentity)
        return rule

    def remove_rule(self, presentity: str, watcher: str, now: float) -> Rule | None:
        rule = self.authorization.remove(presentity, watcher)
        if rule is not None:
            self.journal.delete("rule", rule.store_key)
            self._authorize(presentity)
        return rule

    def _authorize(self, presentity: str) -> None:
        """Apply the rules to the live subscriptions of *presentity*: a pending one
        that is now allowed becomes active and gets the state; a blocked one ends
        with reason rejected (RFC 6665 4.2.2).  An allowed watcher is not made
        pending again by a later ``confirm``: that decision was taken.  Watchers of
        other networks hear through the rule listeners, and decide the same way."""
        for package in self.packages.values():
            for subscription in self.notifier.watchers(package.name, presentity):
                decision = package.authorize(subscription.watcher, presentity)
                if decision == "rejected":
                    self.notifier.end(subscription, "rejected", "reject")
                elif decision == "active" and subscription.state is SubState.PENDING:
                    self.notifier.approve(subscription)
        for listener in self.rule_listeners:
            listener(presentity)

    def end_watchers(self, resource: str, reason: str, now: float,
                     watcher: str | None = None) -> int:
        """End the SIP subscriptions to *resource* (of *watcher* only, when given)
        with *reason*: ``noresource`` when a bridge learns the address does not
        exist, ``rejected`` when the person there said no.  How many ended."""
        ended = 0
        for package in self.packages.values():
            for subscription in self.notifier.watchers(package.name, resource):
                if watcher is None or subscription.watcher == watcher:
                    self.notifier.end(subscription, reason, reason)
                    ended += 1
        return ended

    # -- watchers from other networks --------------------------------------------------
    def set_roster(self, entry: RosterEntry, now: float) -> None:
        """Add or change a watcher of another network (persisted; the owner's
        watcher information hears of it)."""
        before = self.roster.get(entry.presentity, entry.watcher)
        if self.roster.put(entry):
            self.journal.put("roster", entry.store_key, entry)
            self.watcherinfo.roster_changed(
                entry, "approved" if before is not None else "subscribe")

    def remove_roster(self, presentity: str, watcher: str, now: float,
                      event: str = "timeout") -> bool:
        """Forget a watcher of another network: it left (``timeout``) or was refused
        (``rejected``)."""
        entry = self.roster.remove(presentity, watcher)
        if entry is None:
            return False
        self.journal.delete("roster", entry.store_key)
        self.watcherinfo.roster_changed(entry, event, ended=True)
        return True

    def _watcher_event(self, subscription: Subscription, event: str) -> None:
        self.packages[subscription.package].watcher_event(subscription, event)
        for listener in self.watcher_listeners:
            listener(subscription, event)

    # -- time and restart ------------------------------------------------------------------
    def get_timer(self) -> float | None:
        deadlines = [d for d in (self.notifier.next_deadline(),
                                 self.publications.next_deadline(),
                                 self.registrar.next_deadline(),
                                 self._package_timers.next_deadline()) if d is not None]
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> None:
        expired = self.publications.expire(now)
        for publication in expired:
            self.journal.delete("publication", publication.etag)
        unbound = set()
        for binding in self.registrar.expire(now):
            self.journal.delete("binding", binding.store_key)
            unbound.add(binding.aor)
        for aor in unbound:
            self._sync_bindings(aor)
        due = {(p.package, p.resource) for p in expired}
        due.update(self._package_timers.pop_due(now))  # type: ignore[arg-type]
        for name, resource in sorted(due):
            package = self.packages.get(name)
            if package is not None:
                self._publications_changed(package, resource, now)
        self.notifier.handle_timer(now)

    def restore(self, snapshot: Snapshot, now: float) -> None:
        """Load stored state (counters come back as the reservations the store held)."""
        self.presentities.restore_clock(snapshot.clock)
        for rule in snapshot.rules:
            self.authorization.restore(rule)
        for entry in snapshot.roster:
            self.roster.put(entry)
        for binding in snapshot.bindings:
            self.registrar.restore(binding)
        for publication in snapshot.publications:
            package = self.packages.get(publication.package)
            if package is None or package.parse is None:
                continue
            try:
                publication.document = package.parse(publication.body, publication.content_type)
            except ValueError:
                continue
            self.publications.restore(publication)
        for subscription in snapshot.subscriptions:
            if subscription.package not in self.packages:
                continue
            self.notifier.restore(subscription)
        # The sources as they were are the baseline (no change, no NOTIFY); what
        # expired while the agent was down expires now, and its watchers hear it.
        for name, resource in {(p.package, p.resource) for p in self.publications.all()}:
            package = self.packages[name]
            for key, source in package.sources(resource, now).items():
                self.presentities.load(resource, key, source)
            deadline = package.next_deadline(resource, now)
            if deadline is not None:
                self._package_timers.set((name, resource), deadline)
        for aor in {b.aor for b in self.registrar.all()}:
            for key, source in self._binding_sources(aor).items():
                self.presentities.load(aor, key, source)
        self.handle_timer(now)

