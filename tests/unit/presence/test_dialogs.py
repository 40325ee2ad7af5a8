"""Dialog event package: merging publications, line state, busy lamps, the agent's bridge."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from sipresence.documents.dialoginfo import Dialog, DialogInfo, Participant, parse_dialog_info
from sipresence.documents.pidf import parse_pidf
from sipresence.documents.xml import schema
from sipresence.presence.dialogs import merge
from sipresence.sip.transport import Peer
from tests.support.phone import PEER, Phone, subscribe_headers

SAMPLES = Path(__file__).resolve().parents[4] / "shared" / "reference" / "samples"
BOB = Participant("sip:bob@example.com", "Bob", "sip:bob@192.0.2.9")
ALICE = Participant("sip:alice@example.com", "Alice", "sip:alice@192.0.2.7")


def info(*dialogs, state="full"):
    return DialogInfo("sip:alice@example.com", 1, state, tuple(dialogs))


def test_merge_full_replaces_partial_updates_terminated_goes_and_identities_stay():
    first, _ = merge(None, info(Dialog("a", "early", "c1", "lt", "rt", "initiator",
                                       local=ALICE, remote=BOB)))
    update, body = merge(first, info(Dialog("a", "confirmed"), Dialog("b", "trying"),
                                     state="partial"))
    a, b = update.dialogs
    assert (a.state, a.local, a.remote, a.call_id) == ("confirmed", ALICE, BOB, "c1")
    assert b.id == "b" and update.state == "full"
    assert parse_dialog_info(body).dialogs == update.dialogs  # what is stored is whole
    ended, _ = merge(update, info(Dialog("a", "terminated"), state="partial"))
    assert [d.id for d in ended.dialogs] == ["b"]
    replaced, _ = merge(ended, info(Dialog("c", "confirmed")))
    assert [d.id for d in replaced.dialogs] == ["c"]


def publish_dialog(p, body: bytes, *, call_id="pbx-1", cseq=1, headers=(), peer=PEER):
    return p.request("PUBLISH", headers=["Event: dialog",
                                         "Content-Type: application/dialog-info+xml",
                                         *headers],
                     body=body.decode("utf-8", "surrogateescape"), from_uri="sip:alice@example.com",
                     from_tag="pbx",
                     call_id=call_id, cseq=cseq, peer=peer)


def dialog_doc(state: str, dialog_id="d1", version=1) -> bytes:
    return (f'<?xml version="1.0"?><dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" '
            f'version="{version}" state="full" entity="sip:alice@example.com">'
            f'<dialog id="{dialog_id}" call-id="call-9" local-tag="lt" remote-tag="rt" '
            f'direction="recipient"><state>{state}</state>'
            f'<local><identity display="Alice">sip:alice@example.com</identity></local>'
            f'<remote><identity display="Bob">sip:bob@example.com</identity></remote>'
            f'</dialog></dialog-info>').encode()


def watched_phone(presence: bool = False) -> Phone:
    """A phone line with a busy lamp watching it (and a presence watcher)."""
    p = Phone()
    p.request("SUBSCRIBE", call_id="blf", headers=subscribe_headers(
        event="dialog", accept="application/dialog-info+xml"))
    if presence:
        p.request("SUBSCRIBE", call_id="pres", from_tag="b2", headers=subscribe_headers())
    p.answer_all()
    return p


def lamp_notifies(p):
    return [n for n in p.notifies() if n.headers.get("Event") == "dialog"]


def presence_notifies(p):
    return [n for n in p.notifies() if n.headers.get("Event") == "presence"]


def valid(body: bytes) -> bool:
    return bool(schema().validate(etree.fromstring(body)))


def test_every_dialog_info_sample_is_accepted_as_a_publication():
    samples = [path for path in sorted(SAMPLES.glob("*.xml"))
               if etree.QName(etree.parse(str(path)).getroot()).localname == "dialog-info"]
    assert len(samples) >= 2
    for path in samples:
        p = Phone()
        assert publish_dialog(p, path.read_bytes()).status == 200, path.name
        assert p.agent.lines.dialogs("sip:alice@example.com", 0.0) or b"<dialog " not in (
            path.read_bytes()), path.name


def test_blf_watcher_gets_full_then_partial_with_rising_versions_and_identities_kept():
    p = Phone()
    p.request("SUBSCRIBE", call_id="blf", headers=subscribe_headers(
        event="dialog", accept="application/dialog-info+xml"))
    first = lamp_notifies(p)[-1]
    doc = parse_dialog_info(first.body)
    assert (doc.state, doc.version, doc.dialogs) == ("full", 1, ())
    assert valid(first.body)
    p.answer_all()
    etag = publish_dialog(p, dialog_doc("early")).headers.get("SIP-ETag")
    p.answer_all()
    ringing = parse_dialog_info(lamp_notifies(p)[-1].body)
    assert (ringing.state, ringing.version) == ("partial", 2)
    [dialog] = ringing.dialogs
    assert (dialog.state, dialog.call_id, dialog.local_tag, dialog.remote_tag) == (
        "early", "call-9", "lt", "rt")
    publish_dialog(p, dialog_doc("terminated"), cseq=2, headers=[f"SIP-If-Match: {etag}"])
    ended_notify = lamp_notifies(p)[-1]
    ended = parse_dialog_info(ended_notify.body)
    [dialog] = ended.dialogs
    assert (ended.version, dialog.state) == (3, "terminated")
    assert dialog.local.identity == "sip:alice@example.com"  # never lost once known
    assert dialog.remote.identity == "sip:bob@example.com"
    assert valid(ended_notify.body)


def test_a_confirmed_dialog_puts_the_person_on_the_phone_for_presence_watchers():
    p = Phone()
    p.publish(activity="unknown", note="")
    p.request("SUBSCRIBE", headers=subscribe_headers())
    p.answer_all()
    etag = publish_dialog(p, dialog_doc("confirmed")).headers.get("SIP-ETag")
    busy = presence_notifies(p)[-1]
    assert b"<rpid:on-the-phone/>" in busy.body
    assert [t.basic for t in parse_pidf(busy.body).tuples] == ["open"]
    p.answer_all()
    publish_dialog(p, dialog_doc("terminated"), cseq=2, headers=[f"SIP-If-Match: {etag}"])
    assert b"on-the-phone" not in presence_notifies(p)[-1].body


def test_a_dialog_change_that_keeps_the_person_on_the_phone_does_not_renotify_presence():
    p = Phone()
    p.request("SUBSCRIBE", headers=subscribe_headers())
    p.answer_all()
    etag = publish_dialog(p, dialog_doc("early")).headers.get("SIP-ETag")
    p.answer_all()
    count = len(presence_notifies(p))
    publish_dialog(p, dialog_doc("confirmed"), cseq=2, headers=[f"SIP-If-Match: {etag}"])
    assert len(presence_notifies(p)) == count


def test_a_dialog_left_ringing_goes_stale_and_lamps_and_presence_are_told():
    p = watched_phone(presence=True)
    publish_dialog(p, dialog_doc("early"))
    p.answer_all()
    assert b"on-the-phone" in presence_notifies(p)[-1].body
    assert p.agent.get_timer() <= 180.0
    p.now = 180.0
    p.agent.handle_timer(180.0)
    p.collect()
    [dialog] = parse_dialog_info(lamp_notifies(p)[-1].body).dialogs
    assert dialog.state == "terminated"
    assert b"on-the-phone" not in presence_notifies(p)[-1].body


def test_a_proxy_publishing_each_call_on_its_own_keeps_every_call():
    """Kamailio pua_dialoginfo: one publication per call, all from the proxy's address,
    each with its own Call-ID.  A second call (call waiting) must not end the first."""
    p = watched_phone()
    first = publish_dialog(p, dialog_doc("confirmed", "call-a"), call_id="kamailio-1")
    p.answer_all()
    second = publish_dialog(p, dialog_doc("early", "call-b"), call_id="kamailio-2")
    assert second.status == 200
    p.answer_all()
    dialogs = p.agent.lines.dialogs("sip:alice@example.com", 0.0)
    assert sorted((d.state, d.id) for d in dialogs) == [("confirmed", "call-a"),
                                                        ("early", "call-b")]
    [lamp] = parse_dialog_info(lamp_notifies(p)[-1].body).dialogs
    assert (lamp.id, lamp.state) == ("call-b", "early")  # nothing said about call A
    refresh = publish_dialog(p, dialog_doc("confirmed", "call-a"), call_id="kamailio-3",
                             headers=[f"SIP-If-Match: {first.headers.get('SIP-ETag')}"])
    assert refresh.status == 200


def test_a_publisher_starting_over_in_its_call_id_replaces_its_dialogs():
    p = Phone()
    publish_dialog(p, dialog_doc("confirmed", "old"), call_id="pj-1")
    publish_dialog(p, dialog_doc("early", "new"), call_id="pj-1", cseq=2)
    dialogs = p.agent.lines.dialogs("sip:alice@example.com", 0.0)
    assert [(d.id, d.state) for d in dialogs] == [("new", "early")]


def test_two_publishers_with_the_same_dialog_id_keep_two_dialogs():
    p = Phone()
    publish_dialog(p, dialog_doc("confirmed", "1000"), call_id="pbx-a")
    other = Peer("UDP", "192.0.2.99", 5060, None, ("127.0.0.1", 5060))
    publish_dialog(p, dialog_doc("early", "1000"), call_id="pbx-b", peer=other)
    dialogs = p.agent.lines.dialogs("sip:alice@example.com", 0.0)
    assert sorted(d.state for d in dialogs) == ["confirmed", "early"]
    assert len({d.id for d in dialogs}) == 2


def test_a_lamp_sees_every_state_of_a_call_in_order_and_the_person_is_busy_when_it_rings():
    p = watched_phone(presence=True)
    etag = None
    seen = []
    for cseq, state in enumerate(("trying", "proceeding", "early", "confirmed", "terminated"),
                                 start=1):
        headers = [f"SIP-If-Match: {etag}"] if etag else []
        response = publish_dialog(p, dialog_doc(state, version=cseq), cseq=cseq,
                                  headers=headers)
        assert response.status == 200, state
        etag = response.headers.get("SIP-ETag")
        p.answer_all()
        doc = parse_dialog_info(lamp_notifies(p)[-1].body)
        [dialog] = doc.dialogs
        seen.append((doc.version, dialog.state,
                     b"on-the-phone" in presence_notifies(p)[-1].body))
    assert seen == [(2, "trying", False), (3, "proceeding", False), (4, "early", True),
                    (5, "confirmed", True), (6, "terminated", False)]


def test_a_call_left_up_past_max_call_goes_stale():
    """A PBX that lost the BYE keeps refreshing its publication: the lamp still goes out."""
    p = watched_phone()
    # Up for 5 h 55 min already when published: stale five minutes later (max_call 6 h).
    body = dialog_doc("confirmed").replace(b"</state>", b"</state><duration>21300</duration>")
    assert publish_dialog(p, body, headers=["Expires: 86400"]).status == 200
    p.answer_all()
    assert p.agent.lines.on_the_phone("sip:alice@example.com", 0.0)
    assert p.agent.get_timer() == 300.0
    p.now = 300.0
    p.agent.handle_timer(300.0)
    p.collect()
    [dialog] = parse_dialog_info(lamp_notifies(p)[-1].body).dialogs
    assert dialog.state == "terminated"
    assert not p.agent.lines.on_the_phone("sip:alice@example.com", 300.0)


def test_registrations_can_be_left_out_of_presence():
    from sipresence.presence.agent import AgentConfig
    from tests.support.phone import register

    p = Phone(config=AgentConfig(registrations_as_source=False))
    assert register(p).status == 200
    p.request("SUBSCRIBE", headers=subscribe_headers())
    assert [t.basic for t in parse_pidf(p.notifies()[-1].body).tuples] == ["closed"]
    assert p.agent.route("sip:alice@example.com", 0.0).status == 480


def test_a_call_over_and_its_dialog_state_removed_leaves_no_version_entry():
    """The removal of a terminated call's publication changes nothing watchers see,
    and left the presentity's version entry behind for good (the soak's leak: one per
    PBX extension that ever called)."""
    p = Phone()
    etag = publish_dialog(p, dialog_doc("confirmed")).headers.get("SIP-ETag")
    assert "sip:alice@example.com" in p.agent.presentities._versions  # on the phone
    etag = publish_dialog(p, dialog_doc("terminated"), cseq=2,
                          headers=[f"SIP-If-Match: {etag}"]).headers.get("SIP-ETag")
    seen = p.agent.presentities.version("sip:alice@example.com")
    removed = publish_dialog(p, b"", cseq=3, headers=[f"SIP-If-Match: {etag}", "Expires: 0"])
    assert removed.status == 200
    assert p.agent.presentities._versions == {}
    assert p.agent.presentities.version("sip:alice@example.com") >= seen
