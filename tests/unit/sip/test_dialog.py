"""Dialog state (RFC 3261 section 12): creation, in-dialog requests, order, next hop."""

from __future__ import annotations

import pytest

from sipresence.sip.dialog import Dialog
from sipresence.sip.headers import HeaderError
from sipresence.sip.parser import parse_datagram
from sipresence.sip.transport import Peer

FLOW = Peer("UDP", "198.51.100.9", 40123, None, ("127.0.0.1", 5060))


def subscribe(extra: str = "Contact: <sip:bob@10.0.0.7:5070>\r\n") -> object:
    return parse_datagram((
        "SUBSCRIBE sip:alice@example.com SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 10.0.0.7:5070;branch=z9hG4bK-1\r\n"
        "From: <sip:bob@example.com>;tag=bob1\r\nTo: <sip:alice@example.com>\r\n"
        "Call-ID: d1\r\nCSeq: 4 SUBSCRIBE\r\nMax-Forwards: 70\r\n"
        f"{extra}Content-Length: 0\r\n\r\n").encode())


def test_the_uas_dialog_takes_its_route_set_target_and_cseq_from_the_request():
    dialog = Dialog.as_uas(subscribe(
        "Record-Route: <sip:p1.example.com;lr>\r\nRecord-Route: <sip:p2.example.com;lr>\r\n"
        "Contact: <sip:bob@10.0.0.7:5070>\r\n"), "alice1")
    assert (dialog.call_id, dialog.local_tag, dialog.remote_tag) == ("d1", "alice1", "bob1")
    assert dialog.route_set == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    assert dialog.remote_target == "sip:bob@10.0.0.7:5070"
    assert (dialog.local_cseq, dialog.remote_cseq) == (0, 4)


@pytest.mark.parametrize("extra,reason", [
    ("", "Missing Contact"),
    ("Contact: <sip:a@h>\r\nContact: <sip:b@h>\r\n", "Multiple Contacts"),
    ("Contact: <not a uri\r\n", "Bad Contact")])
def test_a_request_without_one_usable_contact_makes_no_dialog(extra, reason):
    with pytest.raises(HeaderError, match=reason):
        Dialog.as_uas(subscribe(extra), "alice1")


def test_requests_in_the_dialog_count_up_and_carry_its_identity_and_routes():
    dialog = Dialog.as_uas(subscribe("Record-Route: <sip:p1.example.com;lr>\r\n"
                                     "Contact: <sip:bob@10.0.0.7:5070>\r\n"), "alice1")
    first, second = dialog.request("NOTIFY", FLOW), dialog.request("NOTIFY", FLOW)
    assert [r.cseq.number for r in (first, second)] == [1, 2]
    assert first.uri == "sip:bob@10.0.0.7:5070"
    assert first.headers.get("From") == "<sip:alice@example.com>;tag=alice1"
    assert first.headers.get("To") == "<sip:bob@example.com>;tag=bob1"
    assert first.headers.values("route") == ["<sip:p1.example.com;lr>"]
    assert first.headers.get("Contact") == "<sip:127.0.0.1:5060>"


def test_order_and_target_refresh():
    dialog = Dialog.as_uas(subscribe(), "alice1")
    assert not dialog.in_order(4) and dialog.in_order(5)
    dialog.received(5, "sip:bob@10.0.0.8:5070")
    assert dialog.remote_cseq == 5 and dialog.remote_target == "sip:bob@10.0.0.8:5070"
    dialog.received(6, None)
    assert dialog.remote_target == "sip:bob@10.0.0.8:5070"


def test_the_next_hop_is_the_first_route_else_the_flow_else_the_target_of_a_lost_stream():
    routed = Dialog.as_uas(subscribe("Record-Route: <sip:192.0.2.50:5080;lr>\r\n"
                                     "Contact: <sip:bob@10.0.0.7:5070>\r\n"), "a")
    assert routed.next_hop(FLOW) == Peer("UDP", "192.0.2.50", 5080, None, FLOW.local)
    direct = Dialog.as_uas(subscribe(), "a")
    assert direct.next_hop(FLOW) is FLOW  # behind NAT: back where it came from
    stream = Peer("TCP", "198.51.100.9", 40123, 7, FLOW.local)
    assert direct.next_hop(stream) is stream  # the connection it came on
    lost = Peer("TCP", "198.51.100.9", 40123, None, FLOW.local)
    assert direct.next_hop(lost) == Peer("TCP", "10.0.0.7", 5070, None, FLOW.local)
