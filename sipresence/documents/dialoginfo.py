"""RFC 4235 dialog-info: the dialog event package behind BLF lamps and directed pickup.

Reading is lenient, because every PBX and phone bends the schema (see ``INDEX.md``):
``<local>``/``<remote>`` before ``<state>`` or in either order (Asterisk, Kamailio),
``pvalue=`` for ``pval=`` (Asterisk, FreeSWITCH), ``display`` on ``<target>`` (Kamailio)
or ``display-name`` on ``<identity>`` (the verbatim RFC schema), empty tags, targets
without a scheme, an empty ``<dialog-info/>`` and bare ``<dialog><state>`` entries
(Yealink).  A dialog without a state says nothing and is dropped.

Writing follows the patched schema (``display`` on identities, schema element order) and
always writes ``<local>``/``<remote>`` when the model has them: pjsua's BLF crashes when a
dialog loses them after having had them.  A target's ``display`` has no place in the
schema, so it is folded into the identity's display when that has none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lxml import etree

from .xml import (
    DIALOG_INFO_NS,
    XML_DECLARATION,
    DocumentError,
    any_uri,
    clean_text,
    parse_xml,
    qualified,
    split_tag,
    text_of,
)

__all__ = [
    "DIALOG_STATES",
    "Dialog",
    "DialogInfo",
    "Participant",
    "parse_dialog_info",
    "serialize_dialog_info",
]

#: RFC 4235 section 3.7.1 dialog states.
DIALOG_STATES = ("trying", "proceeding", "early", "confirmed", "terminated")
_EVENTS = ("cancelled", "rejected", "replaced", "local-bye", "remote-bye", "error", "timeout")

Direction = Literal["initiator", "recipient"]


@dataclass(frozen=True)
class Participant:
    """``<local>`` or ``<remote>``: who, as a URI and display name, and the target contact.

    ``target_params`` are the target's ``<param pname pval>`` pairs in order, for example
    ``("+sip.rendering", "no")`` for a call on hold.
    """

    identity: str | None = None
    display: str | None = None
    target: str | None = None
    target_params: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Dialog:
    """One dialog: ids for pickup, its state with the optional ``event``/``code``."""

    id: str
    state: str
    call_id: str | None = None
    local_tag: str | None = None
    remote_tag: str | None = None
    direction: Direction | None = None
    event: str | None = None
    code: int | None = None
    duration: int | None = None
    local: Participant | None = None
    remote: Participant | None = None


@dataclass(frozen=True)
class DialogInfo:
    """A dialog-info document; ``version`` is the notifier's counter (it only goes up)."""

    entity: str
    version: int = 0
    state: Literal["full", "partial"] = "full"
    dialogs: tuple[Dialog, ...] = ()


def _attr(element: etree._Element, name: str) -> str | None:
    return (element.get(name) or "").strip() or None


def _number(value: str | None) -> int | None:
    value = (value or "").strip()
    return int(value) if value.isdigit() else None


def parse_dialog_info(data: bytes) -> DialogInfo:
    """Parse a dialog-info body leniently; raise :class:`DocumentError` if it is not one."""
    root = parse_xml(data)
    default_ns = DIALOG_INFO_NS if not split_tag(root.tag)[0] else ""
    if qualified(root, default_ns) != (DIALOG_INFO_NS, "dialog-info"):
        raise DocumentError("not a dialog-info document")
    dialogs = []
    for index, child in enumerate(root):
        if qualified(child, default_ns) == (DIALOG_INFO_NS, "dialog"):
            dialog = _parse_dialog(child, default_ns, index)
            dialogs.extend([dialog] if dialog else [])
    return DialogInfo(
        entity=_attr(root, "entity") or "",
        version=_number(root.get("version")) or 0,
        state="partial" if (root.get("state") or "").strip().lower() == "partial" else "full",
        dialogs=tuple(dialogs),
    )


def _parse_dialog(element: etree._Element, default_ns: str, index: int) -> Dialog | None:
    parts = {qualified(child, default_ns)[1]: child for child in reversed(element)
             if qualified(child, default_ns)[0] == DIALOG_INFO_NS}
    state_element = parts.get("state")
    if state_element is None or not text_of(state_element):
        return None
    state = text_of(state_element).lower()
    event = (state_element.get("event") or "").strip().lower() or None
    code = _number(state_element.get("code"))
    direction = (element.get("direction") or "").strip().lower()
    call_id = _attr(element, "call-id")
    duration = parts.get("duration")
    return Dialog(
        id=_attr(element, "id") or call_id or f"d{index}",
        state=state,
        call_id=call_id,
        local_tag=_attr(element, "local-tag"),
        remote_tag=_attr(element, "remote-tag"),
        direction="initiator" if direction == "initiator"
        else "recipient" if direction == "recipient" else None,
        event=event if event in _EVENTS else None,
        code=code if code is not None and 100 <= code <= 699 else None,
        duration=_number(duration.text) if duration is not None else None,
        local=_participant(parts.get("local"), default_ns),
        remote=_participant(parts.get("remote"), default_ns),
    )


def _participant(element: etree._Element | None, default_ns: str) -> Participant | None:
    if element is None:
        return None
    parts = {qualified(child, default_ns)[1]: child for child in reversed(element)
             if qualified(child, default_ns)[0] == DIALOG_INFO_NS}
    identity = parts.get("identity")
    target = parts.get("target")
    display = None
    if identity is not None:
        display = _attr(identity, "display") or _attr(identity, "display-name")
    if target is not None:
        display = display or _attr(target, "display")
    params: list[tuple[str, str]] = []
    for param in target if target is not None else ():
        if qualified(param, default_ns) == (DIALOG_INFO_NS, "param"):
            name = _attr(param, "pname")
            value = param.get("pval", param.get("pvalue"))
            if name and value is not None:
                params.append((name, value.strip()))
    return Participant(
        identity=(text_of(identity) or None) if identity is not None else None,
        display=display,
        target=_attr(target, "uri") if target is not None else None,
        target_params=tuple(params),
    )


def _tag(local: str) -> str:
    return f"{{{DIALOG_INFO_NS}}}{local}"


def _dialog_info_element(info: DialogInfo) -> etree._Element:
    """The ``<dialog-info>`` element tree of *info*, valid against the patched schema."""
    root = etree.Element(_tag("dialog-info"), nsmap={None: DIALOG_INFO_NS})
    root.set("version", str(max(info.version, 0)))
    root.set("state", info.state)
    root.set("entity", any_uri(info.entity))
    for dialog in info.dialogs:
        _build_dialog(root, dialog)
    return root


def _build_dialog(parent: etree._Element, dialog: Dialog) -> None:
    element = etree.SubElement(parent, _tag("dialog"), id=clean_text(dialog.id))
    for name, value in (("call-id", dialog.call_id), ("local-tag", dialog.local_tag),
                        ("remote-tag", dialog.remote_tag), ("direction", dialog.direction)):
        if value:
            element.set(name, clean_text(value))
    state = etree.SubElement(element, _tag("state"))
    state.text = clean_text(dialog.state)
    if dialog.event in _EVENTS:
        state.set("event", dialog.event)
    if dialog.code is not None and 100 <= dialog.code <= 699:
        state.set("code", str(dialog.code))
    if dialog.duration is not None and dialog.duration >= 0:
        etree.SubElement(element, _tag("duration")).text = str(dialog.duration)
    for name, participant in (("local", dialog.local), ("remote", dialog.remote)):
        if participant is not None:
            _build_participant(etree.SubElement(element, _tag(name)), participant)


def _build_participant(element: etree._Element, participant: Participant) -> None:
    if participant.identity:
        identity = etree.SubElement(element, _tag("identity"))
        identity.text = any_uri(participant.identity)
        if participant.display:
            identity.set("display", clean_text(participant.display))
    if participant.target:
        target = etree.SubElement(element, _tag("target"), uri=clean_text(participant.target))
        for name, value in participant.target_params:
            etree.SubElement(target, _tag("param"), pname=clean_text(name),
                             pval=clean_text(value))


def serialize_dialog_info(info: DialogInfo) -> bytes:
    """*info* as dialog-info bytes: UTF-8, XML declaration, schema-valid."""
    return XML_DECLARATION + etree.tostring(_dialog_info_element(info), encoding="UTF-8",
                                            pretty_print=True)
