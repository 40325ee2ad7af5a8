"""The IM bridge on the wire: an XMPP server component (XEP-0114) on Twisted Words.

The component connects to the XMPP server's component port, authenticates with the
shared secret (the ``<handshake/>``), and from then on every stanza addressed to
``<component>`` or to ``user@<component>`` reaches it.  It reads them into the
stanzas of ``bridges/gateway.py``, which decides everything, and writes back what
the gateway gives, each call through the driver (``Driver.call``), so the NOTIFYs
and answers a stanza causes leave at once.

The link is kept up: Twisted's reconnecting factory starts again after the server
went away or restarted, with an exponential back-off from half a second up to
:data:`MAX_DELAY`, reset once a connection is authenticated; each change of the link
is logged.  A wrong secret is named as such (the server closes the stream with
``not-authorized``) and retried at the same pace, since the operator may be fixing
the server's side.  At the agent's stop, every XMPP watcher is told that the SIP
users it watches are unavailable, so no chat client shows them online for the
time the agent is down.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application import service
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.words.protocols.jabber import component, error, xmlstream
from twisted.words.xish import domish

from ..config import XmppConfig
from ..net.driver import Driver
from ..presence.agent import Agent
from .gateway import Gateway, MessageStanza, PresenceStanza, Stanza
from .rfc8048 import Addresses

__all__ = ["XmppBridge", "MAX_DELAY"]

log = Logger(namespace="sipresence.xmpp")

MAX_DELAY = 30.0  # seconds between two attempts to reach the XMPP server, at most
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_PING = "urn:xmpp:ping"


def _text(element: domish.Element, name: str) -> str | None:
    for child in element.elements():
        if child.name == name:
            return str(child)
    return None


def _condition(element: domish.Element) -> str | None:
    """The defined condition of a stanza's ``<error/>`` (RFC 6120 8.3.3)."""
    for child in element.elements():
        if child.name == "error":
            for condition in child.elements():
                if condition.uri == NS_STANZAS and condition.name != "text":
                    return str(condition.name)
    return None


def read_presence(element: domish.Element) -> PresenceStanza:
    return PresenceStanza(element.getAttribute("from", ""), element.getAttribute("to", ""),
                          element.getAttribute("type"), _text(element, "show"),
                          _text(element, "status"), _condition(element))


def read_message(element: domish.Element) -> MessageStanza:
    return MessageStanza(element.getAttribute("from", ""), element.getAttribute("to", ""),
                         _text(element, "body"), element.getAttribute("type", "normal"),
                         element.getAttribute("id"), _condition(element))


def write(stanza: Stanza) -> domish.Element:
    kind = "presence" if isinstance(stanza, PresenceStanza) else "message"
    element = domish.Element((None, kind))
    element["from"] = stanza.sender
    element["to"] = stanza.to
    if stanza.type is not None:
        element["type"] = stanza.type
    if isinstance(stanza, PresenceStanza):
        if stanza.show:
            element.addElement("show", content=stanza.show)
        if stanza.status:
            element.addElement("status", content=stanza.status)
    else:
        if stanza.id is not None:
            element["id"] = stanza.id
        if stanza.body is not None:
            element.addElement("body", content=stanza.body)
    if stanza.error:
        error_element = element.addElement("error")
        error_element["type"] = "cancel"
        error_element.addElement((NS_STANZAS, stanza.error))
        text = getattr(stanza, "text", None)
        if text:
            error_element.addElement((NS_STANZAS, "text"), content=text)
    return element


class XmppBridge(service.Service):
    """The component: one reconnecting link to one XMPP server, and the gateway."""

    def __init__(self, reactor: Any, driver: Driver, agent: Agent,
                 config: XmppConfig) -> None:
        self.reactor = reactor
        self.driver = driver
        self.config = config
        self.gateway = Gateway(agent, Addresses(config.component, config.sip_domain,
                                                config.xmpp_domains), wake=self._wake)
        self.xs: Any = None
        self._drain_call: IDelayedCall | None = None
        self._connector: Any = None
        factory = component.componentFactory(config.component, config.secret)
        factory.initialDelay = 0.5
        factory.maxDelay = MAX_DELAY
        factory.addBootstrap(xmlstream.STREAM_CONNECTED_EVENT, self._connected)
        factory.addBootstrap(xmlstream.STREAM_AUTHD_EVENT, self._authenticated)
        factory.addBootstrap(xmlstream.STREAM_ERROR_EVENT, self._stream_error)
        factory.addBootstrap(xmlstream.STREAM_END_EVENT, self._lost)
        self.factory = factory

    # -- service -----------------------------------------------------------------------
    def startService(self) -> None:
        super().startService()
        host, port = self.config.server
        log.info("connecting to the XMPP server at {host}:{port} as {component}",
                 host=host, port=port, component=self.config.component)
        self._connector = self.reactor.connectTCP(host, port, self.factory)

    def stopService(self) -> None:
        super().stopService()
        self.factory.stopTrying()
        if self.xs is not None:
            for stanza in self.driver.call(self.gateway.stopping):
                self.xs.send(write(stanza))
            self.xs.transport.loseConnection()
        elif self._connector is not None:
            self._connector.disconnect()
        if self._drain_call is not None and self._drain_call.active():
            self._drain_call.cancel()

    # -- the link ----------------------------------------------------------------------
    def _connected(self, xs: Any) -> None:
        log.info("connected to the XMPP server; authenticating")

    def _authenticated(self, xs: Any) -> None:
        self.xs = xs
        self.factory.resetDelay()
        xs.addObserver("/presence", self._presence)
        xs.addObserver("/message", self._message)
        xs.addObserver("/iq", self._iq)
        log.info("XMPP component {component} is online", component=self.config.component)
        self.driver.call(self.gateway.connected)
        self._drain()

    def _stream_error(self, failure: Failure) -> None:
        exc = failure.value
        if isinstance(exc, error.StreamError) and exc.condition == "not-authorized":
            log.error("the XMPP server refused the component secret of {component} "
                      "(check [xmpp] secret)", component=self.config.component)
        else:
            log.warn("XMPP stream error: {error}", error=exc)

    def _lost(self, reason: Any) -> None:
        was_online = self.xs is not None
        self.xs = None
        if was_online:
            self.driver.call(self.gateway.disconnected)
        if self.running:
            log.warn("lost the XMPP server ({why}); reconnecting with back-off",
                     why=getattr(reason, "getErrorMessage", lambda: reason)())

    # -- stanzas in --------------------------------------------------------------------
    def _presence(self, element: domish.Element) -> None:
        self._receive(element, read_presence, self.gateway.presence)

    def _message(self, element: domish.Element) -> None:
        self._receive(element, read_message, self.gateway.message)

    def _receive(self, element: domish.Element, read: Callable[[domish.Element], Any],
                 door: Callable[[Any, float], None]) -> None:
        """One stanza in: read, through the gateway's door (a fault there drops this
        stanza, not the link), then whatever it caused out."""
        try:
            stanza = read(element)
        except (KeyError, ValueError, AttributeError):
            log.debug("ignored a stanza it cannot read: {xml}", xml=element.toXml())
            return
        try:
            self.driver.call(door, stanza)
        except Exception:
            log.failure("dropped a {kind} stanza from {sender}", kind=element.name,
                        sender=stanza.sender)
        self._drain()

    def _iq(self, element: domish.Element) -> None:
        """Service discovery and ping are answered; any other request is an error
        (RFC 6120 8.2.3: every get and set gets an answer)."""
        kind = element.getAttribute("type")
        if kind not in ("get", "set") or self.xs is None:
            return
        query = next(iter(element.elements()), None)
        reply = domish.Element((None, "iq"))
        reply["type"] = "result"
        reply["from"] = element.getAttribute("to", self.config.component)
        reply["to"] = element.getAttribute("from", "")
        if element.getAttribute("id") is not None:
            reply["id"] = element["id"]
        if kind == "get" and query is not None and query.uri == NS_DISCO_INFO:
            answer = reply.addElement((NS_DISCO_INFO, "query"))
            identity = answer.addElement("identity")
            identity["category"], identity["type"] = "gateway", "sip"
            identity["name"] = "sipresence"
            for feature in (NS_DISCO_INFO, NS_PING):
                answer.addElement("feature")["var"] = feature
        elif not (kind == "get" and query is not None and query.uri == NS_PING):
            reply["type"] = "error"
            failure = reply.addElement("error")
            failure["type"] = "cancel"
            failure.addElement((NS_STANZAS, "service-unavailable"))
        self.xs.send(reply)

    # -- stanzas out -------------------------------------------------------------------
    def _wake(self) -> None:
        """The agent told the gateway something: send what it makes of it soon, once
        for everything told in this turn of the reactor."""
        if self._drain_call is None or not self._drain_call.active():
            self._drain_call = self.reactor.callLater(0, self._drain)

    def _drain(self) -> None:
        stanzas = self.driver.call(self.gateway.take)
        if self.xs is None:
            return
        for stanza in stanzas:
            self.xs.send(write(stanza))
