"""Whatever a device publishes, the agent answers without crashing; an error answer
changes nothing, and what watchers are sent is valid (lenient in, strict out)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from sipresence.documents.xml import schema
from sipresence.sip.message import Request
from tests.support.phone import PIDF, Phone, subscribe_headers

from .test_dialogs import dialog_doc, publish_dialog

PRESENCE_BODY = PIDF.format(basic="open", activity="busy", note="In a meeting").encode()
DIALOG_BODY = dialog_doc("confirmed")


@st.composite
def mutated(draw: st.DrawFn, body: bytes) -> bytes:
    """*body* with a few bytes cut, replaced or inserted, or cut short."""
    data = bytearray(body)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["cut", "replace", "insert", "truncate"]))
        if kind == "truncate":
            del data[at:]
        elif kind == "cut":
            del data[at:at + draw(st.integers(1, 12))]
        else:
            piece = draw(st.binary(min_size=1, max_size=6) | st.sampled_from(
                [b"<", b">", b"&", b'"', b"</", b"xmlns=", b"\xff", b"<![CDATA[", b"&amp;"]))
            if kind == "replace":
                data[at:at + len(piece)] = piece
            else:
                data[at:at] = piece
    return bytes(data)


TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12)


@st.composite
def reshaped(draw: st.DrawFn, body: bytes) -> bytes:
    """*body* still well-formed XML, but with elements dropped, repeated or moved and
    texts and attributes changed: what devices with their own idea of a schema send."""
    root = etree.fromstring(body)
    for _ in range(draw(st.integers(1, 5))):
        elements = list(root.iter())
        element = draw(st.sampled_from(elements))
        kind = draw(st.sampled_from(["drop", "repeat", "move", "text", "attribute"]))
        parent = element.getparent()
        if kind == "drop" and parent is not None:
            parent.remove(element)
        elif kind == "repeat" and parent is not None:
            parent.append(etree.fromstring(etree.tostring(element)))
        elif kind == "move" and parent is not None:
            parent.remove(element)
            draw(st.sampled_from(elements[:1] + [e for e in elements if e is not element
                                                 and element not in e.iterancestors()]
                                 )).insert(0, element)
        elif kind == "text":
            element.text = draw(TEXT)
        elif kind == "attribute" and element.attrib:
            name = draw(st.sampled_from(sorted(element.attrib)))
            if draw(st.booleans()):
                del element.attrib[name]
            else:
                element.set(name, draw(TEXT))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def valid(body: bytes) -> bool:
    return bool(schema().validate(etree.fromstring(body)))


def watched(event: str) -> Phone:
    """An agent with one watcher of alice's *event*, everything answered so far."""
    p = Phone()
    accept = "application/pidf+xml" if event == "presence" else "application/dialog-info+xml"
    assert p.request("SUBSCRIBE", headers=subscribe_headers(accept=accept, event=event)
                     ).status == 200
    p.answer_all()
    p.agent.journal.drain()
    return p


def check(p: Phone, status: int) -> list[Request]:
    """The new NOTIFYs; none, and nothing persisted, unless the PUBLISH was taken."""
    new = p.notifies()[p.answered:]
    if status == 200:
        for notify in new:
            assert valid(notify.body)
    else:
        assert 400 <= status < 500
        assert new == [] and p.agent.journal.drain() == []
        assert len(p.agent.publications) == 0
    return new


SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(mutated(PRESENCE_BODY) | reshaped(PRESENCE_BODY))
def test_any_presence_body_is_answered_and_watchers_get_valid_pidf(body):
    p = watched("presence")
    response = p.request("PUBLISH", headers=["Event: presence",
                                             "Content-Type: application/pidf+xml"],
                         body=body.decode("utf-8", "surrogateescape"),
                         from_uri="sip:alice@example.com", from_tag="pub", call_id="pub-x")
    check(p, response.status)


@SETTINGS
@given(mutated(DIALOG_BODY) | reshaped(DIALOG_BODY))
def test_any_dialog_body_is_answered_and_lamps_get_valid_dialog_info(body):
    p = watched("dialog")
    check(p, publish_dialog(p, body).status)
