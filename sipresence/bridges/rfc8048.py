"""RFC 8048 (SIP-XMPP presence, obsoleting RFC 7248) and RFC 7247 (addresses), sans-IO.

Addresses (RFC 7247 section 5).  A SIP user the agent serves, ``sip:U@<sip_domain>``,
is the XMPP address ``U@<component>``; an XMPP user of a bridged domain, ``U@D``, is
the SIP address ``sip:U@D``.  XMPP local parts are case-insensitive (nodeprep folds
them), so a JID's local part is compared in lower case; characters a SIP user part
or a JID local part cannot carry as they are make the address unmappable rather
than silently changed (RFC 7247 section 5.3 escapes them; no client here needs it).

Presence.  What an XMPP client can show is five states and a line of text; the
mapping keeps the meaning a person acts on (can I call now?) rather than every
detail of the PIDF document:

==================================  =====================  ==========================
SIP (composed PIDF)                 XMPP                   why
==================================  =====================  ==========================
on the phone                        ``dnd``, "On the       the chat user must not
                                    phone"                 expect an answer
busy (and other busy activities)    ``dnd``                RFC 8048 section 5
away                                ``away``               RFC 8048 section 5
vacation, holiday, travel...        ``xa``                 gone for long
open, nothing else                  available              RFC 8048 section 4
closed                              ``unavailable``        RFC 8048 section 4
==================================  =====================  ==========================

The other way, each XMPP resource is one source of ``sip:U@D`` (one device): an
available resource an ``open`` tuple, ``away`` and ``xa`` the RPID activity
``away``, ``dnd`` ``busy``, ``chat`` nothing more than open, the ``<status/>`` text
the note; ``unavailable`` removes the resource's source, and with none left the
presentity is closed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..documents.compose import Source, Summary
from ..documents.datamodel import Person
from ..documents.pidf import PresenceDocument, PresenceTuple
from ..documents.rpid import Activities
from ..documents.xml import Note, digest
from ..presence.routing import AWAY_ACTIVITIES, BUSY_ACTIVITIES

__all__ = ["Addresses", "Show", "XmppPresence", "from_summary", "source_of",
           "SOURCE_PREFIX"]

# The key prefix of the sources this mapping makes (one per XMPP resource).
SOURCE_PREFIX = "xmpp:"
SHOWS = ("chat", "away", "xa", "dnd")
# A SIP user part and a JID local part both carry these as they are (RFC 3261
# "unreserved" without the ones RFC 7622 forbids in a local part).
_PORTABLE = re.compile(r"^[A-Za-z0-9\-_.!~*()+$,;?]+$")
_HOST = re.compile(r"^[a-z0-9.-]+$")
_LONG_ABSENCE = frozenset({"vacation", "holiday", "travel", "permanent-absence",
                           "looking-for-work", "sleeping"})
_STATUS_MAX = 1000  # a status line, not a document: longer texts are cut

Show = str | None  # None: plain available


@dataclass(frozen=True, slots=True)
class XmppPresence:
    """What one XMPP availability stanza says: ``available`` False is ``unavailable``;
    ``show`` one of :data:`SHOWS` or None; ``status`` the text."""

    available: bool
    show: Show = None
    status: str | None = None


class Addresses:
    """The address mapping of one bridge (the ``[xmpp]`` table)."""

    def __init__(self, component: str, sip_domain: str, xmpp_domains: tuple[str, ...]) -> None:
        self.component = component.lower()
        self.sip_domain = sip_domain.lower()
        self.xmpp_domains = frozenset(d.lower() for d in xmpp_domains)

    @staticmethod
    def bare(jid: str) -> str:
        """``User@Host/resource`` -> ``user@host`` (a bare JID as compared)."""
        local, at, host = jid.partition("/")[0].rpartition("@")
        return f"{local.lower()}{at}{host.lower()}"

    @staticmethod
    def resource(jid: str) -> str:
        return jid.partition("/")[2]

    def sip_user_jid(self, aor: str) -> str | None:
        """``sip:alice@<sip_domain>`` -> ``alice@<component>``; None for any other."""
        parts = _sip_parts(aor)
        if parts is None or parts[1] != self.sip_domain:
            return None
        return f"{parts[0]}@{self.component}"

    def sip_user_aor(self, jid: str) -> str | None:
        """``alice@<component>`` -> ``sip:alice@<sip_domain>``; None for any other."""
        parts = _jid_parts(jid)
        if parts is None or parts[1] != self.component:
            return None
        return f"sip:{parts[0]}@{self.sip_domain}"

    def xmpp_user_aor(self, jid: str) -> str | None:
        """``bob@xmpp.example.com/phone`` -> ``sip:bob@xmpp.example.com`` when that
        domain is bridged; None otherwise."""
        parts = _jid_parts(jid)
        if parts is None or parts[1] not in self.xmpp_domains:
            return None
        return f"sip:{parts[0]}@{parts[1]}"

    def watcher(self, jid: str) -> str | None:
        """The address an XMPP user watches and sends as: ``sip:bob@D`` for a bridged
        domain D, ``xmpp:bob@elsewhere`` for any other (a federated JID must never
        pass for a SIP user of the same name); None when it cannot be written."""
        parts = _jid_parts(jid)
        if parts is None:
            return None
        local, host = parts
        if host in self.xmpp_domains:
            return f"sip:{local}@{host}"
        return f"xmpp:{local}@{host}" if _HOST.match(host) else None

    def xmpp_user_jid(self, aor: str) -> str | None:
        """``sip:bob@xmpp.example.com`` -> ``bob@xmpp.example.com``; None when the
        address is not in a bridged domain."""
        parts = _sip_parts(aor)
        if parts is None or parts[1] not in self.xmpp_domains:
            return None
        return f"{parts[0]}@{parts[1]}"


def _sip_parts(aor: str) -> tuple[str, str] | None:
    """``sip:Alice@Example.com`` -> (``alice``, ``example.com``), the user as a JID
    local part; None for another scheme, no user, or a user XMPP cannot carry."""
    scheme, _, rest = aor.partition(":")
    user, at, host = rest.rpartition("@")
    if scheme != "sip" or not at or not _PORTABLE.match(user):
        return None
    return user.lower(), host.lower()


def _jid_parts(jid: str) -> tuple[str, str] | None:
    """``Bob@Host/resource`` -> (``bob``, ``host``); None for a server's JID or a
    local part SIP cannot carry."""
    local, at, host = Addresses.bare(jid).rpartition("@")
    if not at or not _PORTABLE.match(local):
        return None
    return local, host


def from_summary(summary: Summary) -> XmppPresence:
    """A SIP presentity's composed state as XMPP shows it (the module's table)."""
    status = summary.note[:_STATUS_MAX] if summary.note else None
    activities = set(summary.activities)
    if summary.on_the_phone:
        return XmppPresence(True, "dnd", status or "On the phone")
    if summary.basic != "open":
        return XmppPresence(False, None, status)
    if activities & BUSY_ACTIVITIES:
        return XmppPresence(True, "dnd", status)
    if activities & _LONG_ABSENCE:
        return XmppPresence(True, "xa", status)
    if activities & AWAY_ACTIVITIES:
        return XmppPresence(True, "away", status)
    return XmppPresence(True, None, status)


_ACTIVITY = {"away": "away", "xa": "away", "dnd": "busy"}


def source_of(aor: str, jid: str, presence: XmppPresence, now: float) -> Source:
    """The source an available XMPP resource is of its presentity (module's text)."""
    resource = Addresses.resource(jid) or "-"
    activity = _ACTIVITY.get(presence.show or "")
    notes = (Note(presence.status[:_STATUS_MAX]),) if presence.status else ()
    person = Person(f"p{digest(aor, 8)}",
                    activities=Activities((activity,)) if activity else None, notes=notes)
    tuple_ = PresenceTuple(id=f"x{digest(resource, 8)}", basic="open",
                           contact=f"xmpp:{Addresses.bare(jid)}")
    document = PresenceDocument(aor, (tuple_,), persons=(person,))
    return Source(f"{SOURCE_PREFIX}{resource}", document, now, device=jid)
