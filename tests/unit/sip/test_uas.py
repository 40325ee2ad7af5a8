"""UAS helpers: which device sent a request, and the shared error answer."""

from __future__ import annotations

from sipresence.sip.parser import parse_datagram
from sipresence.sip.uas import RequestError, origin


def publish(*vias: str) -> bytes:
    lines = ["PUBLISH sip:alice@example.com SIP/2.0", *(f"Via: {v}" for v in vias),
             "From: <sip:alice@example.com>;tag=1", "To: <sip:alice@example.com>",
             "Call-ID: c1", "CSeq: 1 PUBLISH", "Max-Forwards: 70", "Content-Length: 0", "", ""]
    return "\r\n".join(lines).encode()


def test_origin_is_the_phone_not_the_proxy_in_front_of_it():
    direct = parse_datagram(publish("SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bK1;rport=5070"
                                    ";received=198.51.100.9"))
    assert origin(direct) == "UDP:198.51.100.9:5070"
    proxied = parse_datagram(publish(
        "SIP/2.0/UDP proxy.example.com;branch=z9hG4bK2",
        "SIP/2.0/TCP 192.0.2.8:5071;branch=z9hG4bK3, SIP/2.0/UDP 10.0.0.5;branch=z9hG4bK4"))
    assert origin(proxied) == "UDP:10.0.0.5:5060"


def test_a_request_error_is_answered_with_its_status_reason_and_headers():
    request = parse_datagram(publish("SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bK1"))
    error = RequestError(423, headers=[("Min-Expires", "60")])
    response = error.response(request)
    assert (response.status, response.headers.get("Min-Expires")) == (423, "60")
    assert response.to.tag is not None and response.call_id == "c1"
