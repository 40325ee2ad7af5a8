"""The presence agent behind the sans-IO endpoint: the whole SIP flow without sockets."""

from __future__ import annotations

from sipresence.documents.pidf import parse_pidf
from sipresence.documents.watcherinfo import parse_watcherinfo
from sipresence.presence.journal import Snapshot
from sipresence.sip.transport import Peer
from sipresence.sip.uas import make_response
from tests.support.phone import PIDF, Phone, invite, register, subscribe_headers, valid


def test_publish_then_subscribe_gets_the_composed_pidf():
    p = Phone()
    published = p.publish()
    assert published.status == 200 and published.headers.get("SIP-ETag")
    assert published.headers.get("Expires") == "3600"
    response = p.request("SUBSCRIBE", headers=subscribe_headers())
    assert response.status == 200
    [notify] = p.notifies()
    assert notify.headers.get("Subscription-State") == "active;expires=600"
    assert valid(notify.body)
    assert b"<rpid:busy/>" in notify.body and b'xmlns="urn:ietf:params:xml:ns:pidf"' in notify.body
    doc = parse_pidf(notify.body)
    assert doc.entity == "sip:alice@example.com"
    assert [t.basic for t in doc.tuples] == ["open"]


def test_a_change_notifies_the_watcher_in_its_dialog_with_the_next_cseq():
    p = Phone()
    etag = p.publish().headers.get("SIP-ETag")
    p.request("SUBSCRIBE", headers=subscribe_headers())
    p.answer_all()
    modified = p.publish(basic="closed", activity="away", note="Gone",
                         headers=[f"SIP-If-Match: {etag}"], cseq=2)
    assert modified.status == 200 and modified.headers.get("SIP-ETag") != etag
    first, second = p.notifies()
    assert second.cseq.number == first.cseq.number + 1
    assert second.from_.tag == first.from_.tag and second.call_id == first.call_id
    assert b"<rpid:away/>" in second.body and b"closed" in second.body


def test_a_refresh_publish_without_body_does_not_notify():
    p = Phone()
    etag = p.publish().headers.get("SIP-ETag")
    p.request("SUBSCRIBE", headers=subscribe_headers())
    p.answer_all()
    refreshed = p.request("PUBLISH", headers=["Event: presence", f"SIP-If-Match: {etag}"],
                          from_uri="sip:alice@example.com", call_id="pub-1", cseq=2)
    assert refreshed.status == 200
    assert len(p.notifies()) == 1


def test_removal_and_expiry_make_the_presentity_closed_for_its_watchers():
    p = Phone()
    etag = p.publish().headers.get("SIP-ETag")
    p.request("SUBSCRIBE", headers=subscribe_headers())
    p.answer_all()
    removed = p.request("PUBLISH", headers=["Event: presence", f"SIP-If-Match: {etag}",
                                            "Expires: 0"],
                        from_uri="sip:alice@example.com", call_id="pub-1", cseq=2)
    assert removed.status == 200 and removed.headers.get("Expires") == "0"
    assert removed.headers.get("SIP-ETag") == etag  # every 2xx has one (RFC 3903 11.3)
    last = p.notifies()[-1]
    assert [t.basic for t in parse_pidf(last.body).tuples] == ["closed"]
    gone = p.request("PUBLISH", headers=["Event: presence", "Expires: 0",
                                         "Content-Type: application/pidf+xml"],
                     body=PIDF.format(basic="open", activity="busy", note="x"),
                     from_uri="sip:alice@example.com", call_id="pub-9")
    assert gone.status == 200 and gone.headers.get("SIP-ETag")  # nothing stored under it
    assert p.agent.publications.for_resource("sip:alice@example.com", "presence") == []


def test_watchers_get_the_format_they_accept():
    p = Phone()
    p.publish()
    p.request("SUBSCRIBE", headers=subscribe_headers(accept="application/xpidf+xml"),
              call_id="x1")
    p.request("SUBSCRIBE", headers=subscribe_headers(accept="application/cpim-pidf+xml"),
              call_id="x2", from_tag="b2")
    p.request("SUBSCRIBE", headers=subscribe_headers(accept=None), call_id="x3",
              from_tag="b3")
    xpidf, cpim, default = p.notifies()
    assert xpidf.content_type.mime == "application/xpidf+xml" and b"<atom" in xpidf.body
    assert cpim.content_type.mime == "application/cpim-pidf+xml" and b"<atom" in cpim.body
    assert default.content_type.mime == "application/pidf+xml" and valid(default.body)


def test_pres_uri_names_the_same_presentity():
    p = Phone()
    p.publish()
    response = p.request("SUBSCRIBE", uri="pres:alice@example.com",
                         to_uri="pres:alice@example.com", headers=subscribe_headers())
    assert response.status == 200
    assert b"<rpid:busy/>" in p.notifies()[0].body


def test_domains_not_served_get_404():
    p = Phone(domains=["example.com"])
    assert p.request("SUBSCRIBE", uri="sip:eve@elsewhere.test",
                     headers=subscribe_headers()).status == 404
    assert p.request("SUBSCRIBE", headers=subscribe_headers(), cseq=2).status == 200


def test_publish_errors_are_answered():
    p = Phone()
    assert p.request("PUBLISH", headers=["Event: conference"],
                     body="x").headers.get("Allow-Events") == "presence, dialog"
    bad = p.request("PUBLISH", headers=["Event: presence", "Content-Type: application/pidf+xml"],
                    body="<presence", cseq=2)
    assert bad.status == 400 and bad.reason.startswith("Bad presence body")
    assert len(p.agent.publications) == 0


def test_options_advertises_packages_and_body_types():
    p = Phone()
    response = p.request("OPTIONS")
    assert response.headers.get("Allow-Events") == "presence, presence.winfo, dialog"
    assert "application/pidf+xml" in response.headers.get("Accept")
    assert response.headers.get("Allow") == (
        "OPTIONS, REGISTER, PUBLISH, SUBSCRIBE, INVITE, MESSAGE, ACK, CANCEL")


def test_watcherinfo_full_then_partial_with_rising_versions():
    p = Phone()
    owner = p.request("SUBSCRIBE", from_uri="sip:alice@example.com", from_tag="own",
                      call_id="w1", headers=[*subscribe_headers(event="presence.winfo",
                                                                accept=None)])
    assert owner.status == 200
    [full] = p.notifies()
    doc = parse_watcherinfo(full.body)
    assert (doc.state, doc.version, doc.lists[0].watchers) == ("full", 1, ())
    p.answer_all()
    p.request("SUBSCRIBE", headers=subscribe_headers(), call_id="watch-1")
    winfo = [n for n in p.notifies() if n.headers.get("Event") == "presence.winfo"]
    partial = parse_watcherinfo(winfo[-1].body)
    assert (partial.state, partial.version) == ("partial", 2)
    [watcher] = partial.lists[0].watchers
    assert (watcher.uri, watcher.status, watcher.event) == ("sip:bob@example.com", "active",
                                                            "subscribe")


def test_watcherinfo_is_for_the_owner_only():
    p = Phone()
    response = p.request("SUBSCRIBE", headers=subscribe_headers(event="presence.winfo",
                                                                accept=None))
    assert response.status == 403


def test_state_in_the_journal_restores_into_a_new_agent_with_counters_intact():
    p = Phone()
    etag = p.publish().headers.get("SIP-ETag")
    p.request("SUBSCRIBE", headers=subscribe_headers())
    p.answer_all()
    ops = p.agent.journal.drain()
    publications = [obj for kind, _, obj in ops if kind == "publication" and obj]
    subscriptions = [obj for kind, _, obj in ops if kind == "subscription" and obj]
    assert [pub.etag for pub in publications] == [etag]

    q = Phone()
    q.agent.restore(Snapshot(publications, subscriptions), now=10.0)
    q.now = 10.0
    modified = q.publish(basic="closed", headers=[f"SIP-If-Match: {etag}"], cseq=2)
    assert modified.status == 200  # the entity tag survived
    [notify] = q.notifies()
    assert notify.cseq.number > 1  # the dialog goes on, its CSeq above any sent
    assert notify.call_id == "c1"


def test_a_registered_phone_makes_the_presentity_open_and_unregistering_closed():
    p = Phone()
    p.request("SUBSCRIBE", headers=subscribe_headers())
    p.answer_all()
    assert [t.basic for t in parse_pidf(p.notifies()[-1].body).tuples] == ["closed"]
    response = register(p)
    assert response.status == 200
    assert response.headers.get_all("Contact") == ["<sip:alice@192.0.2.7:5070>;expires=600"]
    doc = parse_pidf(p.notifies()[-1].body)
    assert [(t.basic, t.contact) for t in doc.tuples] == [("open", "sip:alice@192.0.2.7:5070")]
    p.answer_all()
    assert register(p, expires=0, cseq=2).status == 200
    assert [t.basic for t in parse_pidf(p.notifies()[-1].body).tuples] == ["closed"]


def test_a_phone_that_registers_and_publishes_offline_is_offline():
    """Its publication speaks for the device; another device's binding still counts."""
    p = Phone()
    register(p)
    p.publish(basic="closed", activity="away", note="Gone home")
    p.request("SUBSCRIBE", headers=subscribe_headers())
    p.answer_all()
    doc = parse_pidf(p.notifies()[-1].body)
    assert [t.basic for t in doc.tuples] == ["closed"]
    assert invite(p).status == 480

    desk = Peer("UDP", "192.0.2.8", 5060, None, ("127.0.0.1", 5060))
    p.request("REGISTER", uri="sip:example.com", to_uri="sip:alice@example.com",
              from_uri="sip:alice@example.com", from_tag="desk", call_id="reg-desk",
              headers=["Contact: <sip:alice@192.0.2.8>", "Expires: 600"], peer=desk)
    doc = parse_pidf(p.notifies()[-1].body)
    assert sorted(t.basic for t in doc.tuples) == ["closed", "open"]


def test_registration_expiry_notifies_and_bindings_are_journaled():
    p = Phone()
    register(p, expires=120)
    assert [kind for kind, _, _ in p.agent.journal.drain()] == ["binding", "meta"]  # + clock
    p.request("SUBSCRIBE", headers=subscribe_headers())
    p.answer_all()
    p.now = 120.0
    p.agent.handle_timer(120.0)
    p.collect()
    assert [t.basic for t in parse_pidf(p.notifies()[-1].body).tuples] == ["closed"]
    assert ("binding" in [kind for kind, _, obj in p.agent.journal.drain() if obj is None])


def test_register_errors():
    p = Phone(domains=["example.com"])
    assert register(p, expires=10).status == 423
    other = p.request("REGISTER", uri="sip:elsewhere.test", to_uri="sip:eve@elsewhere.test",
                      headers=["Contact: <sip:eve@192.0.2.9>"], call_id="r2")
    assert other.status == 404


def test_an_available_registered_callee_is_redirected_to_their_phone():
    p = Phone()
    register(p)
    response = invite(p)
    assert response.status == 302
    assert response.headers.get_all("Contact") == ["<sip:alice@192.0.2.7:5070>"]


def test_a_callee_on_the_phone_gets_486_with_the_note():
    from tests.unit.presence.test_dialogs import dialog_doc, publish_dialog

    p = Phone()
    register(p)
    publish_dialog(p, dialog_doc("confirmed"))
    response = invite(p)
    assert response.status == 486
    assert response.headers.get("Warning") == '399 sipresence "On the phone"'


def test_an_unregistered_or_away_callee_gets_480_with_retry_after_from_until():
    p = Phone()
    assert invite(p).status == 480  # nobody registered
    register(p)
    body = PIDF.format(basic="open", activity="away", note="Lunch").replace(
        "<rpid:activities>", '<rpid:activities until="2030-01-01T12:30:00Z">')
    p.request("PUBLISH", headers=["Event: presence", "Content-Type: application/pidf+xml"],
              body=body, from_uri="sip:alice@example.com", call_id="pub-2")
    p.now = 1893499200.0  # 2030-01-01T12:00:00Z
    response = invite(p, call_id="call-2")
    assert response.status == 480
    assert response.headers.get("Retry-After") == "1800"
    assert response.headers.get("Warning") == '399 sipresence "Lunch"'


def test_unavailable_target_redirects_busy_callers_to_an_announcement():
    from sipresence.presence.agent import AgentConfig
    from sipresence.presence.routing import RoutingPolicy

    p = Phone(config=AgentConfig(routing=RoutingPolicy(
        unavailable_target="sip:{reason}@announce.example.com")))
    response = invite(p)
    assert response.status == 302
    assert response.headers.get_all("Contact") == ["<sip:unavailable@announce.example.com>"]


def test_the_invite_transaction_absorbs_retransmissions_and_ack_and_answers_cancel():
    p = Phone()
    head = ("{method} sip:alice@example.com SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bKinv1;rport\r\n"
            "From: <sip:carol@example.com>;tag=c1\r\nTo: <sip:alice@example.com>{to_tag}\r\n"
            "Call-ID: call-1\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n"
            "Contact: <sip:carol@192.0.2.8>\r\nContent-Length: 0\r\n\r\n")
    invite_text = head.format(method="INVITE", to_tag="")
    p.send(invite_text)
    p.send(invite_text)  # a retransmission: the same answer, from the transaction
    first, again = p.inbox
    assert (first.status, again.status) == (480, 480) and first.to.tag == again.to.tag
    p.send(head.format(method="CANCEL", to_tag=""))  # too late to cancel, still 200
    assert p.inbox[-1].status == 200 and p.inbox[-1].cseq.method == "CANCEL"
    p.send(head.format(method="ACK", to_tag=f";tag={first.to.tag}"))
    count = len(p.inbox)
    p.now = 10.0
    p.endpoint.handle_timer(10.0)  # timer G would have resent the 480 by now
    p.collect()
    assert len(p.inbox) == count  # ACK absorbed and retransmissions stopped
    in_dialog = p.request("INVITE", call_id="call-9", to_tag="abc", from_tag="c9",
                          headers=["Contact: <sip:carol@192.0.2.8>"])
    assert in_dialog.status == 481


def test_watchers_of_nobody_share_one_closed_document_made_once():
    """A BLF key per colleague means many watchers of addresses with no source: their
    document is composed and serialised once, then the same bytes for everyone."""
    p = Phone()
    first = p.agent.presentities.get("sip:nobody@example.com")
    again = p.agent.presentities.get("sip:nobody@example.com")
    assert first is again
    assert first.body("application/pidf+xml") is again.body("application/pidf+xml")
    assert [t.basic for t in parse_pidf(first.body("application/pidf+xml")).tuples] == [
        "closed"]
    p.publish()  # alice has a source: her document is her own, not the shared one
    alice = p.agent.presentities.get("sip:alice@example.com")
    assert [t.basic for t in alice.document.tuples] == ["open"]


def winfo_of(p) -> list:
    """The watcherinfo documents the owner got, in order."""
    return [parse_watcherinfo(n.body) for n in p.notifies()
            if n.headers.get("Event") == "presence.winfo"]


def owner_watches_her_watchers(p):
    response = p.request("SUBSCRIBE", from_uri="sip:alice@example.com", from_tag="own",
                         call_id="w1", headers=subscribe_headers(
                             event="presence.winfo", accept=None, expires=3600))
    assert response.status == 200
    p.answer_all()


def test_watcherinfo_shows_a_watcher_that_unsubscribes_as_terminated_by_timeout():
    """RFC 3857: an unsubscription ends the watcher with the ``timeout`` event (there
    is no event of its own for it); the owner gets it as a partial document."""
    p = Phone()
    owner_watches_her_watchers(p)
    tag = p.request("SUBSCRIBE", headers=subscribe_headers(), call_id="watch-1").to.tag
    p.answer_all()
    [came] = winfo_of(p)[-1].lists[0].watchers
    assert p.request("SUBSCRIBE", headers=subscribe_headers(expires=0), call_id="watch-1",
                     to_tag=tag, cseq=2).status == 200
    before, after = winfo_of(p)[-2:]
    assert (after.state, after.version) == ("partial", before.version + 1)
    [gone] = after.lists[0].watchers
    assert (gone.id, gone.uri, gone.status, gone.event) == (
        came.id, "sip:bob@example.com", "terminated", "timeout")


def test_watcherinfo_shows_a_watcher_whose_subscription_expires_as_terminated_by_timeout():
    p = Phone()
    owner_watches_her_watchers(p)
    p.request("SUBSCRIBE", headers=subscribe_headers(expires=600), call_id="watch-1")
    p.answer_all()
    seen = len(winfo_of(p))
    p.advance(599.0)
    assert len(winfo_of(p)) == seen  # still watching
    p.advance(600.0)
    before, after = winfo_of(p)[-2:]
    assert len(winfo_of(p)) == seen + 1
    assert (after.state, after.version) == ("partial", before.version + 1)
    [gone] = after.lists[0].watchers
    assert (gone.uri, gone.status, gone.event) == ("sip:bob@example.com", "terminated",
                                                   "timeout")


def test_one_change_composes_once_and_serialises_once_per_format_for_all_watchers(
        monkeypatch):
    from sipresence.presence import presentity as presentity_module
    from sipresence.presence.packages import PIDF as PIDF_TYPE
    from sipresence.presence.packages import XPIDF as XPIDF_TYPE

    p = Phone()
    etag = p.publish().headers.get("SIP-ETag")
    for i in range(50):
        p.request("SUBSCRIBE", headers=subscribe_headers(), call_id=f"pidf-{i}",
                  from_tag=f"p{i}")
    for i in range(3):
        p.request("SUBSCRIBE", headers=subscribe_headers(accept="application/xpidf+xml"),
                  call_id=f"xpidf-{i}", from_tag=f"x{i}")
    p.answer_all()
    seen = len(p.notifies())

    calls = {"compose": 0, PIDF_TYPE: 0, XPIDF_TYPE: 0}

    def counting(name, function):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(presentity_module, "compose",
                        counting("compose", presentity_module.compose))
    for content_type in (PIDF_TYPE, XPIDF_TYPE):
        monkeypatch.setitem(presentity_module.SERIALIZERS, content_type,
                            counting(content_type, presentity_module.SERIALIZERS[content_type]))

    p.publish(basic="closed", activity="away", note="Gone",
              headers=[f"SIP-If-Match: {etag}"], cseq=2)
    changed = p.notifies()[seen:]
    assert len(changed) == 53
    assert calls == {"compose": 1, PIDF_TYPE: 1, XPIDF_TYPE: 1}
    pidf = {n.body for n in changed if n.content_type.mime == PIDF_TYPE}
    xpidf = {n.body for n in changed if n.content_type.mime == XPIDF_TYPE}
    assert len(pidf) == 1 and len(xpidf) == 1  # byte-identical within each format
    [body] = pidf
    assert [t.basic for t in parse_pidf(body).tuples] == ["closed"]


def test_a_watcher_that_never_answers_holds_up_nobody_and_is_given_up_after_its_retries():
    """Its NOTIFYs time out (timer F, 32 s each); the other watcher gets every change at
    once, and the dead one gets ``notify_retries`` more tries, then is dropped."""
    dead_peer = Peer("UDP", "192.0.2.66", 5070, None, ("127.0.0.1", 5060))
    p = Phone()
    etag = p.publish().headers.get("SIP-ETag")
    p.request("SUBSCRIBE", headers=subscribe_headers(), call_id="dead", from_tag="d",
              peer=dead_peer)
    p.request("SUBSCRIBE", headers=subscribe_headers(), call_id="live", from_tag="l")

    def to(call_id):
        return [n for n in p.notifies() if n.call_id == call_id]

    def answer_live():
        answered = set()
        for notify in to("live"):
            if notify.cseq.number not in answered:
                answered.add(notify.cseq.number)
                p.send(make_response(notify, 200).to_bytes().decode())

    answer_live()
    states = [("closed", "away"), ("open", "busy"), ("closed", "away"), ("open", "busy")]
    for cseq, (when, (basic, activity)) in enumerate(zip((1.0, 40.0, 70.0, 120.0), states,
                                                         strict=True), start=2):
        p.advance(when)
        live_before = len(to("live"))
        etag = p.publish(basic=basic, activity=activity, cseq=cseq,
                         headers=[f"SIP-If-Match: {etag}"]).headers.get("SIP-ETag")
        fresh = to("live")[live_before:]
        assert len(fresh) == 1, f"no prompt NOTIFY for the change at {when}"
        assert [t.basic for t in parse_pidf(fresh[0].body).tuples] == [basic]
        answer_live()

    # First try at 0, timer F at 32, retry at 33 (F at 65), retry at 66 (F at 98): given up.
    assert sorted({n.cseq.number for n in to("dead")}) == [1, 2, 3]
    assert all(n.headers.get("Subscription-State").startswith("active") for n in to("dead"))
    assert [s.dialog.call_id for s in p.agent.notifier.all()] == ["live"]
    assert len(p.agent.notifier.watchers("presence", "sip:alice@example.com")) == 1


def test_an_expired_publication_makes_the_presentity_closed_for_its_watchers():
    p = Phone()
    published = p.publish(headers=["Expires: 120"])
    assert published.headers.get("Expires") == "120"
    p.request("SUBSCRIBE", headers=subscribe_headers())
    p.answer_all()
    assert [t.basic for t in parse_pidf(p.notifies()[-1].body).tuples] == ["open"]
    p.advance(119.0)
    assert len(p.notifies()) == 1  # not yet
    p.advance(120.0)
    [_, expired] = p.notifies()
    assert [t.basic for t in parse_pidf(expired.body).tuples] == ["closed"]
    assert b"<rpid:busy/>" not in expired.body  # nothing of the old publication is left
    assert len(p.agent.publications) == 0


def test_a_change_made_while_a_notify_is_in_flight_goes_out_when_its_answer_comes():
    """Not at the next request or timer (timer K: 5 s on UDP, none on TCP)."""
    p = Phone()
    etag = p.publish().headers.get("SIP-ETag")
    p.request("SUBSCRIBE", headers=subscribe_headers())
    p.publish(basic="closed", activity="away", headers=[f"SIP-If-Match: {etag}"], cseq=2)
    assert len(p.notifies()) == 1  # one NOTIFY in flight per dialog
    p.answer_all()
    [_, latest] = p.notifies()
    assert [t.basic for t in parse_pidf(latest.body).tuples] == ["closed"]


def test_watcherinfo_versions_go_on_above_every_value_sent_after_a_restart(tmp_path):
    """The owner's client drops documents whose version goes back (RFC 3858 4.4)."""
    p = Phone()
    owner_watches_her_watchers(p)
    for i, watcher in enumerate(("bob", "carol")):
        p.request("SUBSCRIBE", from_uri=f"sip:{watcher}@example.com", from_tag=f"w{i}",
                  call_id=f"watch-{i}", headers=subscribe_headers())
    p.answer_all()
    before = winfo_of(p)[-1].version
    assert before == 3
    q = p.restarted(tmp_path, now=10.0)
    q.request("SUBSCRIBE", from_uri="sip:dave@example.com", from_tag="w3", call_id="watch-3",
              headers=subscribe_headers())
    after = winfo_of(q)[-1]
    assert after.version > before
    # The first document after a restart is full: the changes in between are unknown.
    assert after.state == "full"
    assert sorted(w.uri for w in after.lists[0].watchers) == [
        "sip:bob@example.com", "sip:carol@example.com", "sip:dave@example.com"]
