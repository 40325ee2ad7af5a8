"""The SIP-XMPP gateway's logic, sans-IO: stanzas in, stanzas out (RFC 8048, 7572).

``bridges/xmpp.py`` holds the XMPP connection (Twisted) and turns the XML into the
stanzas of this module and back; everything that decides lives here, against the
agent's doors, so that it is tested without a socket and without a clock.

Subscriptions map both ways (RFC 8048 section 6, RFC 6121 section 3):

* **An XMPP user watches a SIP user.**  ``subscribe`` to ``alice@<component>`` is a
  watcher of ``sip:alice@<sip_domain>`` (``sip:bob@<domain>`` for a user of a bridged
  domain, ``xmpp:bob@<domain>`` for anyone else, so that no JID can pass for a SIP
  user), decided by Alice's rules as a SIP SUBSCRIBE would be: allowed, it gets
  ``subscribed`` and her state at once; ``confirm``, it waits (a pending entry of the
  roster, among Alice's watchers and in her watcher information) until a rule
  decides; blocked, ``unavailable`` and ``unsubscribed``.  ``unsubscribe`` ends it; a
  ``probe`` gets the state again, and from someone who is no watcher, only
  ``unsubscribed`` (RFC 6121 4.3.2).  Later changes of Alice's composed state go to
  every allowed XMPP watcher, once per change that XMPP can show.
* **A SIP user watches an XMPP user.**  A SIP SUBSCRIBE to ``sip:bob@<xmpp domain>``
  is pending (the presentities of a bridged domain default to ``confirm``: Bob decides
  in his own client) and sends ``subscribe`` from ``alice@<component>``; Bob's
  ``subscribed`` becomes the rule that allows Alice (an unasked ``subscribed`` is
  ignored, RFC 6121 3.1.6), ``unsubscribed`` ends her subscription with reason
  ``rejected``; an address a server says does not exist (``item-not-found``) ends it
  with ``noresource``.  Servers need not say so (RFC 6121 3.1.3; Prosody keeps
  silent rather than tell who has an account): a subscription to someone who never
  answers stays pending, showing nothing, as for a person who has not decided.  A
  SIP watcher the component cannot speak for (not of ``sip_domain``) is rejected at
  once rather than left pending.  Bob's presence is a
  source of ``sip:bob@<domain>`` through the agent's one door, one per resource; XMPP
  sends it to each subscribed contact, so a resource is gone only when no SIP user
  hears it any more (the ``unavailable`` that ends one contact's subscription is
  not Bob logging out).

Messages (RFC 7572): a SIP MESSAGE to ``sip:bob@<xmpp domain>`` becomes a chat
message from ``alice@<component>`` (and when XMPP cannot deliver it, Alice's devices
get a notice saying so); a chat message to ``alice@<component>`` goes to
Alice's registered devices through the agent's pager (``presence/pager.py``), and
when none takes it the XMPP sender gets a message error: ``recipient-unavailable``
when Alice has no device or every device refused, ``item-not-found`` for no such
user.  Messages without a body (chat states, receipts) and errors are never
answered with an error, so two gateways cannot bounce one between them.

Nothing is echoed: XMPP users' presence feeds presentities of bridged domains, and
only SIP users' presentities are sent to XMPP.  When the link to the XMPP server
goes, what was heard from it goes too (the XMPP users are not known to be there any
more); when it comes back, every watcher is told the state again and every XMPP
user is asked again (subscribe or probe), so nothing waits for the next change.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from ..presence.pager import Delivery
from ..presence.roster import RosterEntry
from ..presence.subscription import Subscription, SubState
from .rfc8048 import SHOWS, SOURCE_PREFIX, Addresses, XmppPresence, from_summary, source_of

if TYPE_CHECKING:
    from ..presence.agent import Agent

__all__ = ["Gateway", "MessageStanza", "PresenceStanza", "NETWORK"]

log = logging.getLogger("sipresence.xmpp")

NETWORK = "xmpp"
# Presence errors that say the address does not exist (RFC 6120 8.3.3); the others
# (a server out of reach, a policy) may pass and end nothing.
_NO_SUCH_ADDRESS = frozenset({"item-not-found", "jid-malformed", "gone"})


@dataclass(frozen=True, slots=True)
class PresenceStanza:
    """A ``<presence/>`` as the gateway reads and writes it: *type* None is
    available; *error* the defined condition of a ``type='error'``."""

    sender: str
    to: str
    type: str | None = None
    show: str | None = None
    status: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class MessageStanza:
    """A ``<message/>``: *type* chat, normal, headline, groupchat or error; *error*
    the condition of an error, *text* its human-readable explanation."""

    sender: str
    to: str
    body: str | None
    type: str = "chat"
    id: str | None = None
    error: str | None = None
    text: str | None = None


Stanza = PresenceStanza | MessageStanza
# Which SIP answer of the devices means which XMPP error (RFC 7572 section 6).
_MESSAGE_ERRORS = {404: "item-not-found", 403: "forbidden", 415: "not-acceptable",
                   408: "remote-server-timeout"}


class Gateway:
    """One bridge between the agent and one XMPP server (module documentation)."""

    def __init__(self, agent: Agent, addresses: Addresses,
                 wake: Callable[[], None] = lambda: None) -> None:
        self.agent = agent
        self.addresses = addresses
        # Called when the agent told of something to act on: the network layer then
        # calls take() soon, outside the agent's own call.
        self.wake = wake
        self.online = False
        # For the metrics: times online, stanzas in and out.
        self.connections = self.received = self.sent = 0
        self._out: list[Stanza] = []
        # What the agent told, acted on in take() (never inside the agent's call).
        self._events: list[tuple[Subscription | None, str, str]] = []
        self._failed: list[Delivery] = []
        # The ids of the chat messages sent lately: an error names one of them.
        self._sent: dict[str, str] = {}
        # Unsubscribes made while the link was down: (SIP user's JID, contact).
        self._cancels: set[tuple[str, str]] = set()
        self._ids = itertools.count(1)
        # SIP presentities whose XMPP watchers may need their state again.
        self._dirty: set[str] = set()
        # What each SIP presentity's XMPP watchers were last sent.
        self._shown: dict[str, XmppPresence] = {}
        # What each XMPP resource last said to each SIP user's JID:
        # (presentity, resource) -> {component JID: presence}.
        self._heard: dict[tuple[str, str], dict[str, XmppPresence]] = {}
        for domain in addresses.xmpp_domains:
            agent.authorization.set_domain_default(domain, "confirm")
            agent.message_gateways[domain] = self
        agent.presence_listeners.append(self._presence_changed)
        agent.watcher_listeners.append(self._watcher_changed)
        agent.rule_listeners.append(self._rule_changed)
        agent.pager.listeners.append(self._delivery_ended)

    # -- the link --------------------------------------------------------------------
    def connected(self, now: float) -> None:
        """The component is authenticated: tell and ask everything again."""
        self.online = True
        self.connections += 1
        cancels, self._cancels = self._cancels, set()
        for sender, contact in sorted(cancels):
            self._out.append(PresenceStanza(sender, contact, "unsubscribe"))
        self._shown.clear()
        for entry in self._active_watchers():
            self._send_state(entry.presentity, entry.watcher)
        for subscription in self.agent.notifier.all():
            self._ask(subscription, now)

    def disconnected(self, now: float) -> None:
        """The link went: the XMPP users' presence is no longer known."""
        self.online = False
        self._dirty.clear()
        unsent = sum(isinstance(s, MessageStanza) and s.type == "chat" for s in self._out)
        if unsent:
            log.warning("%d chat messages were not sent: the XMPP server went away", unsent)
        self._out.clear()
        heard, self._heard = self._heard, {}
        for aor, resource in heard:
            self.agent.clear_source(aor, SOURCE_PREFIX + resource, now)

    def stopping(self, now: float) -> list[Stanza]:
        """At the agent's stop: every XMPP watcher hears its SIP users go away (the
        agent will not be there to say when they change)."""
        if not self.online:
            return []
        gone = XmppPresence(False, None, "The presence server is restarting")
        out: list[Stanza] = [
            stanza for entry in self._active_watchers()
            if (stanza := self._availability(entry.presentity, entry.watcher, gone))]
        self.sent += len(out)
        return out

    def take(self, now: float) -> list[Stanza]:
        """Act on what the agent told, then the stanzas to send now."""
        events, self._events = self._events, []
        for subscription, event, presentity in events:
            if subscription is None:
                self._rules_changed(presentity, now)
            elif event == "subscribe":
                self._ask(subscription, now)
            else:
                self._cancel(subscription, now)
        failed, self._failed = self._failed, []
        for delivery in failed:
            reply_to, stanza_id, sent_to = cast(tuple[str, str | None, str], delivery.origin)
            condition = _MESSAGE_ERRORS.get(delivery.status or 0, "recipient-unavailable")
            self._out.append(MessageStanza(
                sent_to, reply_to, None, "error", stanza_id, condition,
                f"No device of {delivery.recipient} took the message "
                f"(SIP {delivery.status})"))
        if not self.online:
            self._dirty.clear()
            self._out.clear()
            return []
        dirty, self._dirty = self._dirty, set()
        for aor in sorted(dirty):
            watchers = self._active_watchers(aor)
            if not watchers:
                self._shown.pop(aor, None)
                continue
            presence = from_summary(self.agent.presentities.get(aor).summary)
            if self._shown.get(aor) == presence:
                continue  # a change XMPP cannot show
            self._shown[aor] = presence
            for entry in watchers:
                stanza = self._availability(aor, entry.watcher, presence)
                if stanza is not None:
                    self._out.append(stanza)
        out, self._out = self._out, []
        self.sent += len(out)
        return out

    # -- from XMPP -------------------------------------------------------------------
    def presence(self, stanza: PresenceStanza, now: float) -> None:
        self.received += 1
        kind = stanza.type
        if kind in ("subscribe", "unsubscribe", "probe"):
            self._to_sip_user(stanza, now)
        elif kind in ("subscribed", "unsubscribed"):
            self._answer_from_xmpp_user(stanza, now)
        elif kind is None or kind == "unavailable":
            self._availability_in(stanza, now)
        elif kind == "error":
            self._error_in(stanza, now)
        # Anything else is no presence type (RFC 6121 4.7.1): ignored.

    def _to_sip_user(self, stanza: PresenceStanza, now: float) -> None:
        """An XMPP user's subscription request, cancellation or probe, to a SIP user."""
        aor = self.addresses.sip_user_aor(stanza.to)
        watcher = self.addresses.watcher(stanza.sender)
        if aor is None or watcher is None or not self.agent.knows(aor):
            if stanza.type != "unsubscribe" and stanza.sender:
                self._out.append(PresenceStanza(Addresses.bare(stanza.to), stanza.sender,
                                                "error", error="item-not-found"))
            return
        entry = self.agent.roster.get(aor, watcher)
        if stanza.type == "unsubscribe":
            if self.agent.remove_roster(aor, watcher, now):
                log.info("%s no longer watches %s", watcher, aor)
                self._send_state(aor, watcher, XmppPresence(False))
            return
        if stanza.type == "probe":
            if entry is None:  # no watcher: nothing is revealed (RFC 6121 4.3.2)
                self._out.append(PresenceStanza(self._jid(aor) or "", Addresses.bare(
                    stanza.sender), "unsubscribed"))
            elif entry.state == "active":
                self._send_state(aor, watcher)
            return
        self._decide(aor, watcher, entry, now, announce=True)

    def _decide(self, aor: str, watcher: str, entry: RosterEntry | None, now: float,
                announce: bool) -> None:
        """Apply *aor*'s rules to the XMPP watcher, as to a SIP one."""
        decision = self.agent.presence.authorize(watcher, aor)
        contact = _jid_of(watcher)
        if decision == "rejected":
            if entry is not None:
                self.agent.remove_roster(aor, watcher, now, event="rejected")
                if entry.state == "active":  # RFC 6121 3.2.2: unavailable first
                    self._send_state(aor, watcher, XmppPresence(False))
            log.info("%s may not watch %s: unsubscribed", watcher, aor)
            self._out.append(PresenceStanza(self._jid(aor) or "", contact, "unsubscribed"))
        elif decision == "pending" and (entry is None or entry.state == "pending"):
            if entry is None:
                log.info("%s asks to watch %s: waiting for a rule", watcher, aor)
            self.agent.set_roster(RosterEntry(aor, watcher, NETWORK, "pending"), now)
        else:  # allowed now, or allowed before (a later confirm takes nothing back)
            newly = entry is None or entry.state != "active"
            self.agent.set_roster(RosterEntry(aor, watcher, NETWORK, "active"), now)
            if announce or newly:
                self._out.append(PresenceStanza(self._jid(aor) or "", contact, "subscribed"))
                self._send_state(aor, watcher)

    def _answer_from_xmpp_user(self, stanza: PresenceStanza, now: float) -> None:
        """An XMPP user allows or refuses a SIP user's subscription (or cancels it)."""
        presentity = self.addresses.xmpp_user_aor(stanza.sender)
        watcher = self.addresses.sip_user_aor(stanza.to)
        if presentity is None or watcher is None:
            return
        if stanza.type == "subscribed":
            if not self._watches(watcher, presentity):
                return  # nobody asked (RFC 6121 3.1.6): no lasting rule from it
            log.info("%s lets %s watch", presentity, watcher)
            self.agent.set_rule(presentity, watcher, "allow", now)
        else:
            # No rule is kept: XMPP has no lasting "block"; asking again asks again.
            log.info("%s does not let %s watch", presentity, watcher)
            self.agent.remove_rule(presentity, watcher, now)
            self.agent.end_watchers(presentity, "rejected", now, watcher=watcher)
            self._hears_no_more(presentity, Addresses.bare(stanza.to), now)

    def _availability_in(self, stanza: PresenceStanza, now: float) -> None:
        """An XMPP resource's presence: a source of its presentity, through the door."""
        aor = self.addresses.xmpp_user_aor(stanza.sender)
        if aor is None:
            return  # not a user of a bridged domain (a directed presence from elsewhere)
        resource = Addresses.resource(stanza.sender) or "-"
        key, listener = (aor, resource), Addresses.bare(stanza.to)
        sip_user = self.addresses.sip_user_aor(listener)
        if stanza.type is None and (sip_user is None or not self._watches(sip_user, aor)):
            # Only what the user sends to a SIP user who watches: a presence directed
            # elsewhere (to one contact, to a made-up address) is not for the others.
            return
        heard = self._heard.get(key, {})
        before = next(reversed(heard.values()), None)
        if stanza.type == "unavailable":
            # To this SIP user: Bob logged out, or only this one hears no more.
            heard.pop(listener, None)
        else:
            show = stanza.show if stanza.show in SHOWS else None
            heard.pop(listener, None)  # the newest last
            heard[listener] = XmppPresence(True, show, stanza.status or None)
        self._update(aor, resource, heard, before, now)

    def _hears_no_more(self, aor: str, listener: str, now: float) -> None:
        """*listener* (a component JID) no longer hears any resource of *aor*."""
        for (presentity, resource), heard in list(self._heard.items()):
            if presentity == aor and listener in heard:
                before = next(reversed(heard.values()), None)
                del heard[listener]
                self._update(aor, resource, heard, before, now)

    def _update(self, aor: str, resource: str, heard: dict[str, XmppPresence],
                before: XmppPresence | None, now: float) -> None:
        key = (aor, resource)
        latest = next(reversed(heard.values()), None)
        if latest is None:
            self._heard.pop(key, None)
            if before is not None:
                self.agent.clear_source(aor, SOURCE_PREFIX + resource, now)
            return
        self._heard[key] = heard
        if latest != before:  # the same again (one copy per SIP user): no new version
            jid = f"{self.addresses.xmpp_user_jid(aor)}/{resource}"
            self.agent.set_source(aor, SOURCE_PREFIX + resource,
                                  source_of(aor, jid, latest, now), now)

    def _error_in(self, stanza: PresenceStanza, now: float) -> None:
        """An error about an XMPP user to one SIP user: when the address does not
        exist, that SIP user's subscriptions to it end (noresource) and the user is
        no watcher of anyone here any more."""
        sip_user = self.addresses.sip_user_aor(stanza.to)
        gone = self.addresses.watcher(stanza.sender)
        if gone is None or sip_user is None or stanza.error not in _NO_SUCH_ADDRESS:
            return
        self.agent.remove_roster(sip_user, gone, now)  # a chat watcher that is gone
        aor = self.addresses.xmpp_user_aor(stanza.sender)
        if aor is None:
            return
        ended = self.agent.end_watchers(aor, "noresource", now, watcher=sip_user)
        log.info("%s does not exist (%s): %d subscriptions of %s ended", aor, stanza.error,
                 ended, sip_user)

    def message(self, stanza: MessageStanza, now: float) -> None:
        """A chat message to a SIP user: to each of the user's registered devices."""
        self.received += 1
        if stanza.type == "error":
            self._undelivered(stanza)
            return
        if stanza.type == "groupchat" or not stanza.body or not stanza.sender:
            return  # a chat state alone is no message for SIP
        recipient = self.addresses.sip_user_aor(stanza.to)
        sender = self.addresses.watcher(stanza.sender)
        if sender is None:
            self._refuse(stanza, "jid-malformed", "Your address cannot be written in SIP")
            return
        if recipient is None or not self.agent.knows(recipient):
            self._refuse(stanza, "item-not-found", f"No user {stanza.to} here")
            return
        contacts = self.agent.contacts(recipient)
        if not contacts:
            self._refuse(stanza, "recipient-unavailable",
                         f"{recipient} has no phone or softphone registered")
            return
        self.agent.pager.send(sender, recipient, "text/plain;charset=UTF-8",
                              stanza.body.encode(), contacts,
                              origin=(stanza.sender, stanza.id, stanza.to))

    def _undelivered(self, stanza: MessageStanza) -> None:
        """XMPP could not deliver a message a SIP user sent (answered 202 already):
        the sender's devices get a notice from the address it was for, never an
        error back into XMPP (two gateways would bounce it between them), and a
        notice that fails is not noticed in turn."""
        sender = self.addresses.sip_user_aor(stanza.to)
        recipient = self.addresses.watcher(stanza.sender)
        if stanza.id is None or self._sent.pop(stanza.id, None) is None:
            return  # no error about a message this gateway sent: nothing to tell
        log.info("XMPP could not deliver a message from %s to %s: %s", stanza.to,
                 stanza.sender, stanza.error)
        if sender is None or recipient is None:
            return
        contacts = self.agent.contacts(sender)
        if contacts:
            text = (f"Your message to {Addresses.bare(stanza.sender)} was not delivered"
                    f" ({stanza.error or 'error'}).")
            self.agent.pager.send(recipient, sender, "text/plain;charset=UTF-8",
                                  text.encode(), contacts)

    def _refuse(self, stanza: MessageStanza, condition: str, text: str) -> None:
        self._out.append(MessageStanza(stanza.to, stanza.sender, None, "error", stanza.id,
                                       condition, text))

    def deliver(self, sender: str, recipient: str, text: str, now: float) -> int:
        """A SIP MESSAGE for an XMPP user (the agent's message gateway)."""
        if not self.online:
            return 480
        sender_jid = self.addresses.sip_user_jid(sender)
        recipient_jid = self.addresses.xmpp_user_jid(recipient)
        if sender_jid is None or recipient_jid is None:
            return 403
        stanza_id = f"sip{next(self._ids)}"
        self._sent[stanza_id] = recipient
        while len(self._sent) > 1000:  # the errors that come back come within seconds
            del self._sent[next(iter(self._sent))]
        self._out.append(MessageStanza(sender_jid, recipient_jid, text, id=stanza_id))
        self.wake()
        return 202

    # -- from the agent (noted, acted on in take) ----------------------------------------
    def _presence_changed(self, aor: str) -> None:
        if self.online and aor in self.agent.roster:
            self._dirty.add(aor)
            self.wake()

    def _rule_changed(self, presentity: str) -> None:
        if presentity in self.agent.roster:
            self._events.append((None, "rules", presentity))
            self.wake()

    def _watcher_changed(self, subscription: Subscription, event: str) -> None:
        """A SIP user started or stopped watching someone: if an XMPP user, ask."""
        if event in ("subscribe", "unsubscribe") and subscription.package == "presence" \
                and self.addresses.xmpp_user_jid(subscription.resource) is not None:
            self._events.append((subscription, event, subscription.resource))
            self.wake()

    def _delivery_ended(self, delivery: Delivery) -> None:
        """A chat message no device took: the sender hears of it."""
        if not delivery.delivered and isinstance(delivery.origin, tuple):
            self._failed.append(delivery)
            self.wake()

    def _rules_changed(self, presentity: str, now: float) -> None:
        """Decide the presentity's XMPP watchers again (a confirm answered, a block)."""
        for entry in self.agent.roster.watchers(presentity):
            if entry.network == NETWORK:
                decision = self.agent.presence.authorize(entry.watcher, presentity)
                if entry.state == "active" and decision != "rejected":
                    continue  # allowed before: a later confirm takes nothing back
                self._decide(presentity, entry.watcher, entry, now, announce=False)

    def _ask(self, subscription: Subscription, now: float) -> None:
        """Subscribe (pending) or probe (allowed) the XMPP user a SIP user watches; a
        pending watcher the component cannot speak for is refused (nobody can ask)."""
        if not self.online or subscription.package != "presence" \
                or subscription.ending is not None:
            return
        contact = self.addresses.xmpp_user_jid(subscription.resource)
        if contact is None:
            return
        sender = self.addresses.sip_user_jid(subscription.watcher)
        if sender is None:
            if subscription.state is SubState.PENDING:
                log.info("%s watches %s but has no XMPP address: rejected",
                         subscription.watcher, contact)
                self.agent.notifier.end(subscription, "rejected", "reject")
            return
        kind = "subscribe" if subscription.state is SubState.PENDING else "probe"
        self._out.append(PresenceStanza(sender, contact, kind))

    def _cancel(self, subscription: Subscription, now: float) -> None:
        """The SIP user's own unsubscribe, when no other of its subscriptions to the
        same person is left (RFC 8048 section 6.3)."""
        contact = self.addresses.xmpp_user_jid(subscription.resource)
        sender = self.addresses.sip_user_jid(subscription.watcher)
        if contact is None or sender is None or self._watches(
                subscription.watcher, subscription.resource, besides=subscription):
            return
        # The next subscription asks the XMPP user again, as XMPP would.
        self.agent.remove_rule(subscription.resource, subscription.watcher, now)
        if self.online:
            self._out.append(PresenceStanza(sender, contact, "unsubscribe"))
        else:  # said when the link is back, or the chat user's server keeps sending
            self._cancels.add((sender, contact))

    def _watches(self, sip_user: str, aor: str,
                 besides: Subscription | None = None) -> bool:
        """Whether *sip_user* has a live presence subscription to *aor* (other than
        *besides*)."""
        return any(s.watcher == sip_user and s is not besides
                   for s in self.agent.notifier.watchers("presence", aor))

    # -- to XMPP -----------------------------------------------------------------------
    def _active_watchers(self, aor: str | None = None) -> list[RosterEntry]:
        """The allowed XMPP watchers of *aor*, or of everyone."""
        entries = self.agent.roster.all() if aor is None else self.agent.roster.watchers(aor)
        return [e for e in entries if e.network == NETWORK and e.state == "active"]

    def _jid(self, aor: str) -> str | None:
        """The component JID of a SIP user; None when *aor* is no longer of
        ``sip_domain`` (a roster stored under another configuration)."""
        return self.addresses.sip_user_jid(aor)

    def _send_state(self, aor: str, watcher: str, presence: XmppPresence | None = None) -> None:
        if not self.online:
            return
        if presence is None:
            presence = from_summary(self.agent.presentities.get(aor).summary)
        stanza = self._availability(aor, watcher, presence)
        if stanza is not None:
            self._out.append(stanza)

    def _availability(self, aor: str, watcher: str,
                      presence: XmppPresence) -> PresenceStanza | None:
        sender = self._jid(aor)
        if sender is None:
            log.warning("%s is not of the bridged SIP domain: %s is not told", aor, watcher)
            return None
        return PresenceStanza(sender, _jid_of(watcher),
                              None if presence.available else "unavailable",
                              show=presence.show, status=presence.status)


def _jid_of(watcher: str) -> str:
    """The bare JID of an XMPP watcher's address (``sip:`` or ``xmpp:``)."""
    return watcher.partition(":")[2]
