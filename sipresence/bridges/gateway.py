"""The SIP-XMPP gateway's logic, sans-IO: stanzas in, stanzas out (RFC 8048, 7572).

``bridges/xmpp.py`` holds the XMPP connection (Twisted) and turns the XML into the
stanzas of this module and back; everything that decides lives here, against the
agent's doors, so that it is tested without a socket and without a clock.

Subscriptions map both ways (RFC 8048 section 6, RFC 6121 section 3):

* **An XMPP user watches a SIP user.**  ``subscribe`` to ``alice@<component>`` is a
  watcher ``sip:bob@<domain>`` of ``sip:alice@<sip_domain>``, decided by Alice's rules
  as a SIP SUBSCRIBE would be: allowed, it gets ``subscribed`` and her state at once;
  ``confirm``, it waits (a pending entry of the roster, among Alice's watchers) until a
  rule decides; blocked, ``unsubscribed``.  ``unsubscribe`` ends it, a ``probe``
  gets the state again.  Later changes of Alice's composed state go to every allowed
  XMPP watcher, once per change that XMPP can show.
* **A SIP user watches an XMPP user.**  A SIP SUBSCRIBE to ``sip:bob@<xmpp domain>``
  is pending (the presentities of a bridged domain default to ``confirm``: Bob decides
  in his own client) and sends ``subscribe`` from ``alice@<component>``; Bob's
  ``subscribed`` becomes the rule that allows Alice, ``unsubscribed`` ends her
  subscription with reason ``rejected``; an unknown address (``item-not-found``,
  ``remote-server-not-found``) ends it with ``noresource``.  Bob's presence is a
  source of ``sip:bob@<domain>`` through the agent's one door, per resource.

Messages (RFC 7572): a SIP MESSAGE to ``sip:bob@<xmpp domain>`` becomes a chat
message from ``alice@<component>``; a chat message to ``alice@<component>`` goes to
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

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from ..presence.roster import RosterEntry
from ..presence.subscription import Subscription, SubState
from .rfc8048 import SHOWS, SOURCE_PREFIX, Addresses, XmppPresence, from_summary, source_of

if TYPE_CHECKING:
    from ..presence.agent import Agent

__all__ = ["Gateway", "MessageStanza", "PresenceStanza", "NETWORK"]

log = logging.getLogger("sipresence.xmpp")

NETWORK = "xmpp"
# Presence errors that say the address does not exist (RFC 6120 8.3.3).
_NO_SUCH_ADDRESS = frozenset({"item-not-found", "remote-server-not-found", "jid-malformed",
                              "recipient-unavailable", "gone"})


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
        self._out: list[Stanza] = []
        # What the agent told, acted on in take() (never inside the agent's call).
        self._events: list[tuple[Subscription | None, str, str]] = []
        # SIP presentities whose XMPP watchers may need their state again.
        self._dirty: set[str] = set()
        # What each SIP presentity's XMPP watchers were last sent.
        self._shown: dict[str, XmppPresence] = {}
        # What each XMPP resource last said: (presentity, resource) -> presence.
        self._heard: dict[tuple[str, str], XmppPresence] = {}
        for domain in addresses.xmpp_domains:
            agent.authorization.set_domain_default(domain, "confirm")
        agent.presence_listeners.append(self._presence_changed)
        agent.watcher_listeners.append(self._watcher_changed)
        agent.rule_listeners.append(self._rule_changed)
        for domain in addresses.xmpp_domains:
            agent.message_gateways[domain] = self

    # -- the link --------------------------------------------------------------------
    def connected(self, now: float) -> None:
        """The component is authenticated: tell and ask everything again."""
        self.online = True
        self._shown.clear()
        for entry in list(self.agent.roster.all()):
            if entry.network == NETWORK and entry.state == "active":
                self._send_state(entry.presentity, entry.watcher)
        for subscription in self.agent.notifier.all():
            self._ask(subscription)

    def disconnected(self, now: float) -> None:
        """The link went: the XMPP users' presence is no longer known."""
        self.online = False
        self._dirty.clear()
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
        return [self._availability(entry.presentity, entry.watcher, gone)
                for entry in self.agent.roster.all()
                if entry.network == NETWORK and entry.state == "active"]

    def take(self, now: float) -> list[Stanza]:
        """Act on what the agent told, then the stanzas to send now."""
        events, self._events = self._events, []
        for subscription, event, presentity in events:
            if subscription is None:
                self._rules_changed(presentity, now)
            elif event == "subscribe":
                self._ask(subscription)
            else:
                self._cancel(subscription, now)
        for delivery in self.agent.pager.take_finished():
            if not delivery.delivered and self.online:
                origin = cast(tuple[str, str | None, str], delivery.origin)
                reply_to, stanza_id, sent_to = origin
                condition = _MESSAGE_ERRORS.get(delivery.status or 0, "recipient-unavailable")
                self._out.append(MessageStanza(
                    sent_to, reply_to, None, "error", stanza_id, condition,
                    f"No device of {delivery.recipient} took the message "
                    f"(SIP {delivery.status})"))
        if not self.online:
            self._dirty.clear()
            return []
        dirty, self._dirty = self._dirty, set()
        for aor in sorted(dirty):
            presence = from_summary(self.agent.presentities.get(aor).summary)
            if self._shown.get(aor) == presence:
                continue  # a change XMPP cannot show
            self._shown[aor] = presence
            for entry in self.agent.roster.watchers(aor):
                if entry.network == NETWORK and entry.state == "active":
                    self._out.append(self._availability(aor, entry.watcher, presence))
        out, self._out = self._out, []
        return out

    # -- from XMPP -------------------------------------------------------------------
    def presence(self, stanza: PresenceStanza, now: float) -> None:
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
        if aor is None or not self.agent.knows(aor):
            if stanza.type != "unsubscribe":
                self._out.append(PresenceStanza(Addresses.bare(stanza.to), stanza.sender,
                                                "error", error="item-not-found"))
            return
        watcher = "sip:" + Addresses.bare(stanza.sender)
        entry = self.agent.roster.get(aor, watcher)
        if stanza.type == "unsubscribe":
            if self.agent.remove_roster(aor, watcher, now):
                log.info("%s no longer watches %s", watcher, aor)
                self._out.append(self._availability(aor, watcher, XmppPresence(False)))
            return
        if stanza.type == "probe" and entry is not None and entry.state == "active":
            self._send_state(aor, watcher)
            return
        self._decide(aor, watcher, entry, now, announce=stanza.type == "subscribe")

    def _decide(self, aor: str, watcher: str, entry: RosterEntry | None, now: float,
                announce: bool) -> None:
        """Apply *aor*'s rules to the XMPP watcher, as to a SIP one."""
        decision = self.agent.presence.authorize(watcher, aor)
        if decision == "rejected":
            if entry is not None:
                self.agent.remove_roster(aor, watcher, now)
            log.info("%s may not watch %s: unsubscribed", watcher, aor)
            self._out.append(PresenceStanza(self._jid(aor), watcher[4:], "unsubscribed"))
        elif decision == "pending" and (entry is None or entry.state == "pending"):
            if entry is None:
                log.info("%s asks to watch %s: waiting for a rule", watcher, aor)
            self.agent.set_roster(RosterEntry(aor, watcher, NETWORK, "pending"), now)
        else:  # allowed now, or allowed before (a later confirm takes nothing back)
            self.agent.set_roster(RosterEntry(aor, watcher, NETWORK, "active"), now)
            if announce or entry is None or entry.state != "active":
                self._out.append(PresenceStanza(self._jid(aor), watcher[4:], "subscribed"))
            self._send_state(aor, watcher)

    def _answer_from_xmpp_user(self, stanza: PresenceStanza, now: float) -> None:
        """An XMPP user allows or refuses a SIP user's subscription (or cancels it)."""
        presentity = self.addresses.xmpp_user_aor(stanza.sender)
        watcher = self.addresses.sip_user_aor(stanza.to)
        if presentity is None or watcher is None:
            return
        if stanza.type == "subscribed":
            log.info("%s lets %s watch", presentity, watcher)
            self.agent.set_rule(presentity, watcher, "allow", now)
        else:
            # No rule is kept: XMPP has no lasting "block"; asking again asks again.
            log.info("%s does not let %s watch", presentity, watcher)
            self.agent.remove_rule(presentity, watcher, now)
            self.agent.end_watchers(presentity, "rejected", now, watcher=watcher)

    def _availability_in(self, stanza: PresenceStanza, now: float) -> None:
        """An XMPP resource's presence: a source of its presentity, through the door."""
        aor = self.addresses.xmpp_user_aor(stanza.sender)
        if aor is None:
            return  # not a user of a bridged domain (a directed presence from elsewhere)
        resource = Addresses.resource(stanza.sender) or "-"
        key = (aor, resource)
        if stanza.type == "unavailable":
            if self._heard.pop(key, None) is not None:
                self.agent.clear_source(aor, SOURCE_PREFIX + resource, now)
            return
        show = stanza.show if stanza.show in SHOWS else None
        presence = XmppPresence(True, show, stanza.status or None)
        if self._heard.get(key) == presence:
            return  # the same, once more for another SIP watcher: no new version
        self._heard[key] = presence
        self.agent.set_source(aor, SOURCE_PREFIX + resource,
                              source_of(aor, stanza.sender, presence, now), now)

    def _error_in(self, stanza: PresenceStanza, now: float) -> None:
        aor = self.addresses.xmpp_user_aor(stanza.sender)
        if aor is None or stanza.error not in _NO_SUCH_ADDRESS:
            return
        ended = self.agent.end_watchers(aor, "noresource", now)
        log.info("%s does not exist (%s): %d subscriptions ended", aor, stanza.error, ended)

    def message(self, stanza: MessageStanza, now: float) -> None:
        """A chat message to a SIP user: to each of the user's registered devices."""
        if stanza.type in ("error", "groupchat") or not stanza.body:
            return  # never bounce an error; a chat state alone is no message for SIP
        recipient = self.addresses.sip_user_aor(stanza.to)
        if recipient is None or not self.agent.knows(recipient):
            self._refuse(stanza, "item-not-found", f"No user {stanza.to} here")
            return
        contacts = [b.uri for b in self.agent.registrar.bindings(recipient)]
        if not contacts:
            self._refuse(stanza, "recipient-unavailable",
                         f"{recipient} has no phone or softphone registered")
            return
        self.agent.pager.send(
            "sip:" + Addresses.bare(stanza.sender), recipient, "text/plain;charset=UTF-8",
            stanza.body.encode(), contacts, origin=(stanza.sender, stanza.id, stanza.to))

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
        self._out.append(MessageStanza(sender_jid, recipient_jid, text))
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

    def _rules_changed(self, presentity: str, now: float) -> None:
        """Decide the presentity's XMPP watchers again (a confirm answered, a block)."""
        for entry in self.agent.roster.watchers(presentity):
            if entry.network == NETWORK:
                decision = self.agent.presence.authorize(entry.watcher, presentity)
                if entry.state == "active" and decision != "rejected":
                    continue  # allowed before: a later confirm takes nothing back
                self._decide(presentity, entry.watcher, entry, now, announce=False)

    def _ask(self, subscription: Subscription) -> None:
        """Subscribe (pending) or probe (allowed) the XMPP user a SIP user watches."""
        if not self.online or subscription.package != "presence" \
                or subscription.ending is not None:
            return
        pair = self._pair(subscription)
        if pair is None:
            return
        sender, contact = pair
        kind = "subscribe" if subscription.state is SubState.PENDING else "probe"
        self._out.append(PresenceStanza(sender, contact, kind))

    def _cancel(self, subscription: Subscription, now: float) -> None:
        """The SIP user's own unsubscribe, when no other of its subscriptions to the
        same person is left (RFC 8048 section 6.3)."""
        pair = self._pair(subscription)
        if pair is None or any(s.watcher == subscription.watcher and s is not subscription
                               for s in self.agent.notifier.watchers(
                                   "presence", subscription.resource)):
            return
        # The next subscription asks the XMPP user again, as XMPP would.
        self.agent.remove_rule(subscription.resource, subscription.watcher, now)
        if self.online:
            self._out.append(PresenceStanza(*pair, "unsubscribe"))

    def _pair(self, subscription: Subscription) -> tuple[str, str] | None:
        """(the SIP watcher's JID, the XMPP user's JID) of a subscription to an XMPP
        user; None for anything else (a watcher the component cannot speak for)."""
        contact = self.addresses.xmpp_user_jid(subscription.resource)
        if contact is None:
            return None
        sender = self.addresses.sip_user_jid(subscription.watcher)
        if sender is None:
            log.debug("%s watches %s but has no XMPP address", subscription.watcher, contact)
            return None
        return sender, contact

    # -- to XMPP -----------------------------------------------------------------------
    def _jid(self, aor: str) -> str:
        jid = self.addresses.sip_user_jid(aor)
        assert jid is not None, aor  # only SIP users of sip_domain get here
        return jid

    def _send_state(self, aor: str, watcher: str) -> None:
        if not self.online:
            return
        presence = from_summary(self.agent.presentities.get(aor).summary)
        self._out.append(self._availability(aor, watcher, presence))

    def _availability(self, aor: str, watcher: str, presence: XmppPresence) -> PresenceStanza:
        return PresenceStanza(self._jid(aor), watcher[4:],
                              None if presence.available else "unavailable",
                              show=presence.show, status=presence.status)
