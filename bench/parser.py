"""Parser throughput on a typical PUBLISH (pjsua-style headers, a PIDF body)."""

from __future__ import annotations

import timeit
from pathlib import Path

from sipresence.presence.agent import Agent
from sipresence.sip.endpoint import Endpoint
from sipresence.sip.parser import parse_datagram, validate
from sipresence.sip.transport import Peer

BODY = (b'<?xml version="1.0" encoding="UTF-8"?>\r\n'
        b'<presence xmlns="urn:ietf:params:xml:ns:pidf" '
        b'xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" '
        b'xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:alice@example.com">\r\n'
        b' <tuple id="pj0c9e7b2d"><status><basic>open</basic></status>'
        b'<timestamp>2026-11-25T07:29:07.123Z</timestamp><note>On the phone</note></tuple>\r\n'
        b' <dm:person id="pj4f1a4e3c"><rpid:activities><rpid:busy/></rpid:activities>'
        b'<dm:note>On the phone</dm:note></dm:person>\r\n</presence>\r\n')


def publish(n: int = 1) -> bytes:
    head = ("PUBLISH sip:alice@example.com SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 192.0.2.10:5062;rport;branch=z9hG4bKPj0c9e7b2d4f1a{n:08d}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:alice@example.com>;tag=5f2a7c1e9b3d{n:08d}\r\n"
            "To: <sip:alice@example.com>\r\n"
            "Call-ID: 8d0e1f2a3b4c5d6e7f8091a2b3c4d5e6\r\n"
            f"CSeq: {4312 + n} PUBLISH\r\n"
            "Expires: 3600\r\n"
            "SIP-If-Match: 1a2b3c4d\r\n"
            "Event: presence\r\n"
            "User-Agent: PJSUA v2.15.1 Linux-6.1/x86_64/glibc-2.36\r\n"
            "Content-Type: application/pidf+xml\r\n"
            f"Content-Length: {len(BODY)}\r\n\r\n")
    return head.encode() + BODY


def per_call(fn, number: int = 20000) -> float:  # type: ignore[no-untyped-def]
    """Best of five runs, in microseconds per call."""
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def main() -> None:
    data = publish()
    framed = per_call(lambda: parse_datagram(data))

    def full() -> None:
        message = parse_datagram(data)
        assert message is not None
        validate(message)

    checked = per_call(full)
    print(f"PUBLISH, {len(data)} bytes ({len(BODY)}-byte PIDF body):")
    print(f"  parse (framing, start line, headers)     {framed:6.1f} us  "
          f"{1e6 / framed:9.0f} msg/s")
    print(f"  parse + validate (mandatory headers)     {checked:6.1f} us  "
          f"{1e6 / checked:9.0f} msg/s")
    endpoint = Endpoint(Agent())
    peer = Peer("UDP", "192.0.2.10", 5062, None, ("127.0.0.1", 5060))
    option = (Path(__file__).parent / "data" / "options.sip").read_bytes()

    def answer() -> None:
        endpoint.receive_datagram(option, peer, 0.0)
        endpoint.transmissions()

    print(f"  OPTIONS in, 200 out (sans-IO endpoint)   {per_call(answer):6.1f} us")
