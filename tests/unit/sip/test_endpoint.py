"""The sans-IO endpoint: UAS checks, transactions, Via routing, client transactions."""

from __future__ import annotations

import pytest

from sipresence.sip.endpoint import Endpoint, Outgoing
from sipresence.sip.message import Request, Response
from sipresence.sip.parser import StreamFramer, parse_datagram
from sipresence.sip.transport import Peer
from sipresence.sip.uas import make_response

CLIENT = Peer("UDP", "192.0.2.7", 5070, None, ("127.0.0.1", 5060))


class App:
    """Answers every request with 200 and remembers what it saw."""

    allowed_methods = ("OPTIONS", "INVITE", "ACK", "CANCEL", "SUBSCRIBE", "PUBLISH", "NOTIFY")
    supported = ("eventlist",)

    def __init__(self, status: int = 200):
        self.status = status
        self.seen: list[Request] = []
        self.queued: list[Outgoing] = []  # requests it wants sent
        self.responses: list[tuple[object, Response]] = []  # their answers

    def handle_request(self, request, peer, now):
        self.seen.append(request)
        return make_response(request, self.status)

    def outgoing(self, now):
        out, self.queued = self.queued, []
        return out

    def handle_response(self, ref, response, now):
        self.responses.append((ref, response))


def request(method="OPTIONS", branch="z9hG4bK-1", *, via_host="192.0.2.7", via_port="5070",
            rport=True, extra="", cseq=None, to_tag="", call_id="call-1", transport="UDP"):
    rp = ";rport" if rport else ""
    port = f":{via_port}" if via_port else ""
    cseq = cseq or f"1 {method}"
    return (f"{method} sip:alice@example.com SIP/2.0\r\n"
            f"Via: SIP/2.0/{transport} {via_host}{port};branch={branch}{rp}\r\n"
            "Max-Forwards: 70\r\n"
            "From: <sip:bob@example.com>;tag=from1\r\n"
            f"To: <sip:alice@example.com>{to_tag}\r\n"
            f"Call-ID: {call_id}\r\nCSeq: {cseq}\r\n{extra}Content-Length: 0\r\n\r\n").encode()


def answers(endpoint):
    out = []
    for t in endpoint.transmissions():
        message = parse_datagram(t.data)
        assert isinstance(message, Response)
        out.append((message, t.peer))
    return out


def test_a_request_reaches_the_application_once_and_retransmissions_are_absorbed():
    app = App()
    ep = Endpoint(app)
    ep.receive_datagram(request("SUBSCRIBE", cseq="1 SUBSCRIBE"), CLIENT, 0.0)
    [(first, _)] = answers(ep)
    ep.receive_datagram(request("SUBSCRIBE", cseq="1 SUBSCRIBE"), CLIENT, 0.3)
    [(again, _)] = answers(ep)
    assert len(app.seen) == 1
    assert again.to.tag == first.to.tag and again.status == 200
    assert ep.stats.retransmissions_absorbed == 1
    assert ep.transaction_count() == 1
    ep.handle_timer(32.0)  # timer J
    assert ep.transaction_count() == 0


def test_options_is_answered_statelessly_with_identical_retransmitted_answers():
    app = App()
    ep = Endpoint(app)
    ep.receive_datagram(request(), CLIENT, 0.0)
    [(first, _)] = answers(ep)
    ep.receive_datagram(request(), CLIENT, 0.3)
    [(again, _)] = answers(ep)
    assert ep.transaction_count() == 0  # RFC 3261 8.2.7: no state kept
    assert again.to.tag == first.to.tag  # the same tag for the same request
    ep.receive_datagram(request(branch="z9hG4bK-2", call_id="call-2"), CLIENT, 0.4)
    [(other, _)] = answers(ep)
    assert other.to.tag != first.to.tag


def test_rport_and_received_are_stamped_and_the_answer_goes_to_the_source():
    ep = Endpoint(App())
    peer = Peer("UDP", "198.51.100.9", 40000, None, ("127.0.0.1", 5060))
    ep.receive_datagram(request(via_host="10.0.0.5", via_port="5060"), peer, 0.0)
    [(response, to)] = answers(ep)
    via = response.top_via
    assert via.received == "198.51.100.9" and via.rport == 40000
    assert (to.host, to.port) == ("198.51.100.9", 40000)


def test_without_rport_the_answer_goes_to_received_and_the_sent_by_port():
    ep = Endpoint(App())
    peer = Peer("UDP", "198.51.100.9", 40000, None, ("127.0.0.1", 5060))
    ep.receive_datagram(request(via_host="10.0.0.5", via_port="5062", rport=False), peer, 0.0)
    [(response, to)] = answers(ep)
    assert response.top_via.received == "198.51.100.9"
    assert (to.host, to.port) == ("198.51.100.9", 5062)


def test_maddr_is_ignored_and_the_answer_goes_to_the_source():
    """RFC 3261 18.2.2 would send to a Via's maddr; this agent never does.  Anyone can
    write any address there, so honouring it lets a forged request reflect the answer at
    a third party (a multicast group, a victim); and the source is where the client
    hears, which is where every other answer goes (issue 9)."""
    ep = Endpoint(App())
    data = request(rport=False).replace(b";branch=", b";maddr=239.1.1.1;branch=")
    ep.receive_datagram(data, CLIENT, 0.0)
    [(response, to)] = answers(ep)
    assert (to.host, to.port) == (CLIENT.host, 5070)  # the source, at the sent-by port
    assert response.top_via.params["maddr"] == "239.1.1.1"  # copied, not followed


def test_streams_answer_on_the_same_connection():
    ep = Endpoint(App())
    peer = Peer("TCP", "192.0.2.7", 51000, 17, ("127.0.0.1", 5060))
    ep.receive_datagram(request(transport="TCP"), peer, 0.0)  # framing aside, same path
    [(_, to)] = answers(ep)
    assert to.connection == 17 and to.transport == "TCP"
    assert (to.host, to.port) == ("192.0.2.7", 5070)  # if it closes: received + sent-by port


def test_unknown_method_gets_501_and_known_unimplemented_gets_405_both_with_allow():
    ep = Endpoint(App())
    ep.receive_datagram(request("FOOBAR", cseq="1 FOOBAR"), CLIENT, 0.0)
    ep.receive_datagram(request("REGISTER", "z9hG4bK-2", cseq="2 REGISTER"), CLIENT, 0.0)
    (r501, _), (r405, _) = answers(ep)
    assert r501.status == 501 and r405.status == 405
    assert r501.headers.get("Allow") == r405.headers.get("Allow") == ", ".join(
        App.allowed_methods)


def test_require_with_unknown_options_gets_420_listing_them():
    ep = Endpoint(App())
    ep.receive_datagram(request(extra="Require: eventlist, foo\r\nRequire: bar\r\n"), CLIENT, 0)
    [(response, _)] = answers(ep)
    assert response.status == 420
    assert response.headers.get("Unsupported") == "foo, bar"


def test_unknown_uri_scheme_gets_416():
    ep = Endpoint(App())
    ep.receive_datagram(request().replace(b"OPTIONS sip:alice@example.com",
                                          b"OPTIONS isbn:2983792873"), CLIENT, 0.0)
    [(response, _)] = answers(ep)
    assert response.status == 416


def test_merged_request_gets_482():
    app = App()
    ep = Endpoint(app)
    ep.receive_datagram(request("SUBSCRIBE", "z9hG4bK-a", cseq="1 SUBSCRIBE"), CLIENT, 0.0)
    ep.receive_datagram(request("SUBSCRIBE", "z9hG4bK-b", cseq="1 SUBSCRIBE"), CLIENT, 0.1)
    (first, _), (second, _) = answers(ep)
    assert (first.status, second.status) == (200, 482)
    assert len(app.seen) == 1


def test_malformed_request_gets_400_with_reason_and_never_reaches_the_application():
    app = App()
    ep = Endpoint(app)
    ep.receive_datagram(request().replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE"), CLIENT, 0.0)
    [(response, _)] = answers(ep)
    assert (response.status, response.reason) == (400, "CSeq method does not match request method")
    assert app.seen == []


def without(name, data):
    """*data* with every field line of header *name* left out."""
    prefix = f"{name}:".lower().encode()
    return b"\r\n".join(line for line in data.split(b"\r\n")
                         if not line.lower().startswith(prefix))


def test_request_without_via_gets_400_at_its_source_address_over_udp():
    app = App()
    ep = Endpoint(app)
    peer = Peer("UDP", "198.51.100.9", 40000, None, ("127.0.0.1", 5060))
    ep.receive_datagram(without("Via", request("SUBSCRIBE", cseq="1 SUBSCRIBE")), peer, 0.0)
    [(response, to)] = answers(ep)
    assert (response.status, response.reason) == (400, "Missing Via")
    assert "Via" not in response.headers  # nothing to copy
    assert response.call_id == "call-1" and response.cseq.method == "SUBSCRIBE"
    assert to == peer
    assert app.seen == [] and ep.transaction_count() == 0 and ep.get_timer() is None


def test_request_without_via_gets_400_on_the_same_connection_over_a_stream():
    app = App()
    ep = Endpoint(app)
    peer = Peer("TCP", "192.0.2.7", 51000, 17, ("127.0.0.1", 5060))
    [item] = StreamFramer().feed(without("Via", request("SUBSCRIBE", cseq="1 SUBSCRIBE")))
    ep.receive_stream(item, peer, 0.0)
    [(response, to)] = answers(ep)
    assert (response.status, response.reason) == (400, "Missing Via")
    assert to == peer  # connection 17, and its source address should it close
    assert app.seen == [] and ep.transaction_count() == 0


def test_junk_without_via_over_udp_is_not_reflected_larger():
    """The source of a datagram can be forged: an answer routed by it alone must not
    be larger than what came, or the agent amplifies floods aimed at someone else."""
    ep = Endpoint(App())
    for junk in (b"S", b"FOO sip:x SIP/2.0\r\n\r\n", b"INVITE sip:a@b SIP/2.0\r\nTo: x\r\n\r\n"):
        ep.receive_datagram(junk, CLIENT, 0.0)
    assert ep.transmissions() == []
    assert sum(ep.stats.malformed.values()) == 3


def test_response_or_ack_without_via_is_dropped_silently():
    ep = Endpoint(App())
    ep.receive_datagram(b"SIP/2.0 200 OK\r\nFrom: <sip:a@example.com>;tag=1\r\n"
                        b"To: <sip:b@example.com>;tag=2\r\nCall-ID: c\r\nCSeq: 1 NOTIFY\r\n"
                        b"Content-Length: 0\r\n\r\n", CLIENT, 0.0)
    ep.receive_datagram(without("Via", request("ACK", cseq="1 ACK")), CLIENT, 0.0)
    assert ep.transmissions() == []
    assert ep.stats.malformed["Missing Via"] == 2


@pytest.mark.parametrize("name, reason", [
    ("From", "Missing From"), ("To", "Missing To"), ("CSeq", "Missing CSeq"),
    ("Call-ID", "Missing Call-ID"),
])
def test_request_missing_a_mandatory_header_gets_400_naming_it(name, reason):
    app = App()
    ep = Endpoint(app)
    ep.receive_datagram(without(name, request("SUBSCRIBE", cseq="1 SUBSCRIBE")), CLIENT, 0.0)
    [(response, to)] = answers(ep)
    assert (response.status, response.reason) == (400, reason)
    assert name not in response.headers
    assert to == CLIENT
    assert app.seen == [] and ep.transaction_count() == 0


def test_malformed_response_is_dropped():
    ep = Endpoint(App())
    ep.receive_datagram(b"SIP/2.0 4294967301 better not break the receiver\r\n"
                        b"Via: SIP/2.0/UDP 192.0.2.7;branch=z9hG4bK-x\r\n\r\n", CLIENT, 0.0)
    assert ep.transmissions() == []


def test_application_errors_become_500_and_header_errors_400():
    class Broken(App):
        def handle_request(self, request, peer, now):
            if request.method == "PUBLISH":
                request.headers.set("Expires", "abc")
                request.forget("expires")
                _ = request.expires  # raises HeaderError: a 400 for the client
            raise RuntimeError("bug")

    ep = Endpoint(Broken())
    ep.receive_datagram(request("PUBLISH", cseq="1 PUBLISH"), CLIENT, 0.0)
    ep.receive_datagram(request("OPTIONS", "z9hG4bK-2"), CLIENT, 0.0)
    (bad, _), (bug, _) = answers(ep)
    assert (bad.status, bad.reason) == (400, "Bad Expires")
    assert bug.status == 500


def test_invite_error_is_retransmitted_until_ack_and_ack_is_absorbed():
    app = App(status=486)
    ep = Endpoint(app)
    ep.receive_datagram(request("INVITE", cseq="1 INVITE"), CLIENT, 0.0)
    [(busy, _)] = answers(ep)
    assert busy.status == 486
    assert ep.get_timer() == 0.5  # timer G
    ep.handle_timer(0.5)
    [(again, _)] = answers(ep)
    assert again.status == 486
    ack = request("ACK", cseq="1 ACK", to_tag=f";tag={busy.to.tag}")
    ep.receive_datagram(ack, CLIENT, 0.7)
    assert ep.transmissions() == []
    ep.handle_timer(1.5)  # G would have fired here
    assert ep.transmissions() == []
    assert [r.method for r in app.seen] == ["INVITE"]  # the ACK stayed in the transaction
    ep.handle_timer(0.7 + 5.0)  # timer I
    assert ep.transaction_count() == 0


def test_cancel_of_an_answered_invite_gets_200_and_of_an_unknown_one_481():
    ep = Endpoint(App(status=480))
    ep.receive_datagram(request("INVITE", cseq="1 INVITE"), CLIENT, 0.0)
    answers(ep)
    ep.receive_datagram(request("CANCEL", cseq="1 CANCEL"), CLIENT, 0.1)
    ep.receive_datagram(request("CANCEL", "z9hG4bK-other", cseq="1 CANCEL"), CLIENT, 0.1)
    (ok, _), (unknown, _) = answers(ep)
    assert (ok.status, unknown.status) == (200, 481)


def make_notify():
    req = Request("NOTIFY", "sip:bob@192.0.2.7:5070")
    req.headers.add("Max-Forwards", "70")
    req.headers.add("From", "<sip:alice@example.com>;tag=srv")
    req.headers.add("To", "<sip:bob@example.com>;tag=from1")
    req.headers.add("Call-ID", "sub-1")
    req.headers.add("CSeq", "7 NOTIFY")
    return req


def test_client_transaction_retransmits_and_reports_408_when_timer_f_fires():
    app = App()
    ep = Endpoint(app)
    ep.add_listener("UDP", "127.0.0.1", 5060)
    app.queued.append(Outgoing(make_notify(), CLIENT, "notify-1"))
    ep.pump(0.0)  # the application's queue is taken: events out, no call back in
    [sent] = ep.transmissions()
    first = parse_datagram(sent.data)
    assert first.top_via.branch.startswith("z9hG4bK") and first.top_via.host == "127.0.0.1"
    now = 0.0
    count = 1
    while (deadline := ep.get_timer()) is not None:
        now = deadline
        ep.handle_timer(now)
        count += len(ep.transmissions())
    assert count == 11 and now == 32.0
    assert [(ref, r.status) for ref, r in app.responses] == [("notify-1", 408)]


def test_client_transaction_delivers_the_response_once():
    app = App()
    ep = Endpoint(app)
    ep.send_request(make_notify(), CLIENT, 0.0, "notify-1")
    [sent] = ep.transmissions()
    req = parse_datagram(sent.data)
    ok = make_response(req, 200).to_bytes()
    ep.receive_datagram(ok, CLIENT, 0.1)
    ep.receive_datagram(ok, CLIENT, 0.2)  # a retransmitted 200 is absorbed
    assert [(ref, r.status) for ref, r in app.responses] == [("notify-1", 200)]
    assert ep.transmissions() == []


def test_transport_failure_reports_503():
    app = App()
    ep = Endpoint(app)
    ep.send_request(make_notify(), Peer("TCP", "192.0.2.7", 5070), 0.0, "notify-1")
    [sent] = ep.transmissions()
    ep.transport_failed(sent, 0.1)
    assert [(ref, r.status) for ref, r in app.responses] == [("notify-1", 503)]
    assert ep.transaction_count() == 0


def test_stream_keepalive_gets_a_pong():
    from sipresence.sip.parser import KEEPALIVE

    ep = Endpoint(App())
    peer = Peer("TCP", "192.0.2.7", 51000, 3)
    ep.receive_stream(KEEPALIVE, peer, 0.0)
    [pong] = ep.transmissions()
    assert pong.data == b"\r\n" and pong.peer == peer


def test_overloaded_endpoint_sheds_new_requests_but_serves_dialogs_and_retransmissions():
    app = App()
    ep = Endpoint(app)
    ep.receive_datagram(request("SUBSCRIBE", "z9hG4bK-old", cseq="1 SUBSCRIBE"), CLIENT, 0.0)
    answers(ep)
    ep.admission.admit = 0.0
    ep.receive_datagram(request("SUBSCRIBE", "z9hG4bK-new", cseq="1 SUBSCRIBE",
                                call_id="call-2"), CLIENT, 0.1)
    ep.receive_datagram(request(branch="z9hG4bK-opt", call_id="call-3"), CLIENT, 0.1)
    (shed, _), (options, _) = answers(ep)
    assert (shed.status, shed.headers.get("Retry-After")) == (503, "2")
    assert options.status == 200  # as cheap to answer as to refuse
    ep.receive_datagram(request("SUBSCRIBE", "z9hG4bK-old", cseq="1 SUBSCRIBE"), CLIENT, 0.2)
    ep.receive_datagram(request("SUBSCRIBE", "z9hG4bK-in", cseq="2 SUBSCRIBE",
                                to_tag=";tag=x"), CLIENT, 0.2)
    (retransmitted, _), (in_dialog, _) = answers(ep)
    assert (retransmitted.status, in_dialog.status) == (200, 200)
    assert len(app.seen) == 3 and ep.stats.shed == 1


def test_a_shed_request_retransmitted_after_the_load_fell_gets_the_same_503():
    """The 503 is a final answer of a server transaction: a retransmission is not
    taken as new work once the endpoint admits again (its client already counted it
    refused, and would make its publication or subscription again)."""
    app = App()
    ep = Endpoint(app)
    ep.admission.admit = 0.0
    shed = request("SUBSCRIBE", "z9hG4bK-shed", cseq="1 SUBSCRIBE", call_id="call-shed")
    ep.receive_datagram(shed, CLIENT, 0.0)
    [(first, _)] = answers(ep)
    ep.admission.admit = 1.0
    ep.receive_datagram(shed, CLIENT, 0.5)
    [(again, _)] = answers(ep)
    assert (first.status, again.status) == (503, 503) and app.seen == []
    assert ep.stats.shed == 1 and ep.stats.retransmissions_absorbed == 1
    invite = request("INVITE", "z9hG4bK-inv", cseq="1 INVITE", call_id="call-inv")
    ep.admission.admit = 0.0
    ep.receive_datagram(invite, CLIENT, 1.0)
    [(refused, _)] = answers(ep)
    assert refused.status == 503 and ep.transaction_count() == 2
    ep.handle_timer(100.0)
    assert ep.transaction_count() == 0  # timers J and H end them like any other


def test_answered_transactions_let_go_of_their_parsed_request():
    """Timer J keeps a server transaction 32 s for retransmissions: only the bytes of
    its answer are kept, not the parsed message (garbage-collector pauses)."""
    ep = Endpoint(App(status=200))
    ep.receive_datagram(request("SUBSCRIBE", cseq="1 SUBSCRIBE"), CLIENT, 0.0)
    class Ringing(App):
        def handle_request(self, request, peer, now):
            return None  # not answered yet: the endpoint sends 100 Trying

    invite = Endpoint(Ringing())  # an INVITE still ringing keeps it, for CANCEL
    invite.receive_datagram(request("INVITE", cseq="1 INVITE"), CLIENT, 0.0)
    notify = Endpoint(App())
    notify.send_request(make_notify(), CLIENT, 0.0, "notify-1")
    [sent] = notify.transmissions()
    notify.receive_datagram(make_response(parse_datagram(sent.data), 200).to_bytes(), CLIENT, 0.1)

    [answered] = ep._server.values()
    [ringing] = invite._server.values()
    [completed] = notify._client.values()
    assert answered.tx.last is not None and answered.request is None
    assert ringing.request is not None
    assert completed.request is None
    ep.receive_datagram(request("SUBSCRIBE", cseq="1 SUBSCRIBE"), CLIENT, 1.0)
    [(again, _)] = answers(ep)[-1:]
    assert again.status == 200  # retransmission still answered from the kept bytes


def test_while_overloaded_the_admitted_share_of_new_requests_is_served_evenly():
    app = App()
    ep = Endpoint(app)
    ep.admission.admit = 0.25
    for i in range(12):
        ep.receive_datagram(request("SUBSCRIBE", f"z9hG4bK-{i}", cseq="1 SUBSCRIBE",
                                    call_id=f"call-{i}"), CLIENT, 0.0)
    statuses = [r.status for r, _ in answers(ep)]
    assert statuses == [503, 503, 503, 200] * 3
    assert ep.stats.shed == 9 and len(app.seen) == 3


def test_a_withdrawn_2xx_becomes_the_error_that_retransmissions_get():
    """Group commit: a 2xx held back until its state is durable is replaced when the
    store fails, and the transaction resends the replacement, never the 2xx."""
    ep = Endpoint(App())
    ep.receive_datagram(request("PUBLISH", cseq="1 PUBLISH"), CLIENT, 0.0)
    [held] = ep.transmissions()
    sent = ep.withdraw(held, frozenset({"PUBLISH"}), 500, "Store Failure",
                       [("Retry-After", "5")])
    error = parse_datagram(sent.data)
    original = parse_datagram(held.data)
    assert error.status == 500 and error.reason == "Store Failure"
    assert error.headers.get("retry-after") == "5"
    assert error.to.tag == original.to.tag and error.call_id == original.call_id
    assert sent.peer == held.peer
    assert ep.stats.responses_sent[200] == 0 and ep.stats.responses_sent[500] == 1
    ep.receive_datagram(request("PUBLISH", cseq="1 PUBLISH"), CLIENT, 0.3)
    [(again, _)] = answers(ep)
    assert again.status == 500


def test_only_2xx_answers_to_the_named_methods_are_withdrawn():
    ep = Endpoint(App())
    ep.receive_datagram(request("SUBSCRIBE", cseq="1 SUBSCRIBE"), CLIENT, 0.0)
    [subscribe] = ep.transmissions()
    assert ep.withdraw(subscribe, frozenset({"PUBLISH"}), 500, "x") is subscribe
    ep.receive_datagram(request("OPTIONS"), CLIENT, 0.0)
    [options] = ep.transmissions()  # stateless: no transaction to amend
    assert ep.withdraw(options, frozenset({"OPTIONS"}), 500, "x") is options
    failing = Endpoint(App(status=404))
    failing.receive_datagram(request("PUBLISH", cseq="1 PUBLISH"), CLIENT, 0.0)
    [refused] = failing.transmissions()
    assert failing.withdraw(refused, frozenset({"PUBLISH"}), 500, "x") is refused
