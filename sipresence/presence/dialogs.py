"""The phone line as presence: the dialog event package (RFC 4235) and busy lamps.

PBXes and phones PUBLISH ``Event: dialog`` (Kamailio pua_dialoginfo, Asterisk, Yealink,
Snom); desk phones SUBSCRIBE to it for their busy lamp fields.  :class:`Lines` keeps
the dialogs of each address of record from every live publication, and
:class:`BusyLamps` turns them into dialog-info NOTIFYs: the full state first (and after
a restart or a lost NOTIFY), then partial documents with what changed, every document
with a version one above the last (the notifier persists it), never going back.

What INTEROP.md asks of BLF, and where it is done:

* ``<local>`` and ``<remote>`` stay in a dialog once known (pjsua's BLF crashes when
  they vanish): :func:`_keep_participants`, for updates and for terminations alike.
* call-id and tags are kept so that phones can pick the call up.
* Stale dialogs are cleaned up: a dialog still ringing after ``early_timeout`` or
  still up after ``max_call`` is dropped (and reported terminated), so a lamp never
  stays lit because a PBX lost a BYE.
"""

from __future__ import annotations

from dataclasses import replace

from ..documents.compose import Source
from ..documents.dialoginfo import Dialog, DialogInfo, parse_dialog_info, serialize_dialog_info
from ..documents.pidf import PresenceDocument
from ..documents.xml import digest
from .packages import DIALOG_INFO, EventPackage
from .policy import Authorization
from .publications import EventStateCompositor
from .subscription import Subscription

__all__ = ["DialogPackage", "Lines", "BusyLamps", "ACTIVE_STATES", "LINE"]

PACKAGE = "dialog"
# The key of the phone line's source of a presentity (while a call is up).
LINE = "line"
# The states in which the person is on the phone (RFC 4235: early is ringing).
ACTIVE_STATES = frozenset({"early", "confirmed"})
_SETUP_STATES = frozenset({"trying", "proceeding", "early"})


def _parse(body: bytes, content_type: str) -> DialogInfo:
    return parse_dialog_info(body)


def _keep_participants(new: Dialog, old: Dialog | None) -> Dialog:
    """*new* with the identities and tags *old* had and *new* does not say again."""
    if old is None:
        return new
    return replace(
        new,
        local=new.local or old.local,
        remote=new.remote or old.remote,
        call_id=new.call_id or old.call_id,
        local_tag=new.local_tag or old.local_tag,
        remote_tag=new.remote_tag or old.remote_tag,
        direction=new.direction or old.direction,
    )


def merge(old: DialogInfo | None, new: DialogInfo) -> tuple[DialogInfo, bytes]:
    """A publisher's dialogs after its new document: a full document replaces, a
    partial one updates by dialog id.  Terminated dialogs are not kept: their end is
    reported to watchers as the dialog disappears."""
    known = {d.id: d for d in old.dialogs} if old is not None else {}
    dialogs: dict[str, Dialog] = {} if new.state == "full" or old is None else dict(known)
    for dialog in new.dialogs:
        if dialog.state == "terminated":
            dialogs.pop(dialog.id, None)
        else:
            dialogs[dialog.id] = _keep_participants(dialog, known.get(dialog.id))
    merged = DialogInfo(new.entity, new.version, "full", tuple(dialogs.values()))
    return merged, serialize_dialog_info(merged)


class DialogPackage(EventPackage):
    """RFC 4235: PBXes and phones publish the calls of a line, busy lamps watch them
    (every change, full then partial), and the line is a source of presence while a
    call is up (the person is on the phone).  Watchers follow the person's rules."""

    def __init__(self, min_expires: int, max_expires: int, lines: Lines, lamps: BusyLamps,
                 authorization: Authorization) -> None:
        super().__init__(PACKAGE, notify_types=(DIALOG_INFO,), publish_types=(DIALOG_INFO,),
                         parse=_parse, merge=merge, min_expires=min_expires,
                         max_expires=max_expires, one_per_source=False,
                         source_prefix=LINE, notify_on_publish=True)
        self.lines = lines
        self.lamps = lamps
        self.authorization = authorization
        # Since when each line with a call up has been busy (the source's time).
        self._since: dict[str, float] = {}

    def authorize(self, watcher: str, resource: str) -> str:
        return self.authorization.sub_state(watcher, resource)

    def render(self, subscription: Subscription, now: float) -> tuple[str, bytes]:
        return self.lamps.render(subscription, now)

    def sources(self, resource: str, now: float) -> dict[str, Source]:
        """The line, while a call is up: no tuple of its own, it puts the person on
        the phone (documents/compose.py)."""
        if not self.lines.on_the_phone(resource, now):
            self._since.pop(resource, None)
            return {}
        since = self._since.setdefault(resource, now)
        return {LINE: Source(LINE, PresenceDocument(resource, ()), since, on_the_phone=True)}

    def next_deadline(self, resource: str, now: float) -> float | None:
        return self.lines.next_stale(resource, now)

    def forget(self, subscription: Subscription) -> None:
        self.lamps.forget(subscription)


class Lines:
    """The dialogs of each address of record, from all its dialog publications."""

    def __init__(self, publications: EventStateCompositor, *, early_timeout: float = 180.0,
                 max_call: float = 6 * 3600.0) -> None:
        self.publications = publications
        self.early_timeout = early_timeout
        self.max_call = max_call

    def dialogs(self, aor: str, now: float) -> list[Dialog]:
        """Live dialogs, ids unique across publishers (Asterisk uses the extension as
        id; two PBXes may well both say ``1000``)."""
        out: dict[str, Dialog] = {}
        for publication in self.publications.for_resource(aor, PACKAGE):
            info: DialogInfo = publication.document
            for dialog in info.dialogs:
                if self._stale(dialog, publication.updated_at, now):
                    continue
                key = dialog.id
                if key in out:
                    key = f"{dialog.id}-{digest(publication.publisher)}"
                out[key] = dialog if key == dialog.id else replace(dialog, id=key)
        return list(out.values())

    def on_the_phone(self, aor: str, now: float) -> bool:
        return any(d.state in ACTIVE_STATES for d in self.dialogs(aor, now))

    def _stale(self, dialog: Dialog, updated: float, now: float) -> bool:
        age = now - updated + (dialog.duration or 0)
        if dialog.state in _SETUP_STATES:
            return age >= self.early_timeout
        return age >= self.max_call

    def next_stale(self, aor: str, now: float) -> float | None:
        """When the next dialog of *aor* turns stale, so that watchers can be told."""
        deadlines = []
        for publication in self.publications.for_resource(aor, PACKAGE):
            for dialog in publication.document.dialogs:
                limit = self.early_timeout if dialog.state in _SETUP_STATES else self.max_call
                at = publication.updated_at + limit - (dialog.duration or 0)
                if at > now:
                    deadlines.append(at)
        return min(deadlines) if deadlines else None


class BusyLamps:
    """Dialog-info documents for each dialog subscription: full, then partial."""

    def __init__(self, lines: Lines) -> None:
        self.lines = lines
        # What each subscription was last sent, to report changes and to keep
        # identities; runtime only (after a restart the first NOTIFY is full again).
        self._sent: dict[str, dict[str, Dialog]] = {}

    def render(self, subscription: Subscription, now: float) -> tuple[str, bytes]:
        current = {d.id: d for d in self.lines.dialogs(subscription.resource, now)}
        sent = self._sent.get(subscription.id, {})
        subscription.version += 1
        if subscription.full_state_due:
            subscription.full_state_due = False
            dialogs = [_keep_participants(d, sent.get(d.id)) for d in current.values()]
            state = "full"
        else:
            dialogs = [_keep_participants(d, sent.get(d.id)) for d in current.values()
                       if sent.get(d.id) != _keep_participants(d, sent.get(d.id))]
            # Dialogs that went away are reported terminated, identities included.
            dialogs += [replace(d, state="terminated") for key, d in sent.items()
                        if key not in current]
            state = "partial"
        if subscription.ending is None:
            self._sent[subscription.id] = {
                d.id: d for d in (_keep_participants(d, sent.get(d.id)) for d in current.values())}
        else:
            self._sent.pop(subscription.id, None)
        document = DialogInfo(subscription.resource, subscription.version, state,  # type: ignore[arg-type]
                              tuple(dialogs))
        return DIALOG_INFO, serialize_dialog_info(document)

    def forget(self, subscription: Subscription) -> None:
        self._sent.pop(subscription.id, None)

