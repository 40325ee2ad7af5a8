"""SIP over WebSocket (RFC 7118), as browser softphones (JsSIP, SIP.js) speak it."""

from __future__ import annotations

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from sipresence.sip.parser import parse_datagram
from sipresence.sip.uas import make_response
from tests.support.server import start_server, wait_for_metric
from tests.support.sip import UdpClient, request

# JsSIP's made-up host for its Via and Contact: a browser has no address to give.
BROWSER = ("df7jal23ls0d.invalid", 9)
PIDF = (b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:alice@example.com">'
        b'<tuple id="t"><status><basic>open</basic></status></tuple></presence>')


@pytest.fixture
def agent(tmp_path):
    server = start_server(tmp_path, listen=("udp:127.0.0.1:0", "ws:127.0.0.1:0"))
    yield server
    assert server.stop() == 0
    assert "Traceback" not in server.output()


def open_ws(agent):
    host, port = agent.address("ws")
    return connect(f"ws://{host}:{port}", subprotocols=["sip"], open_timeout=5)


def received(ws):
    message = parse_datagram(ws.recv(timeout=5).encode())
    assert message is not None
    return message


def test_the_sip_subprotocol_is_required(agent):
    host, port = agent.address("ws")
    with pytest.raises(InvalidStatus) as refused:
        connect(f"ws://{host}:{port}", open_timeout=5)
    assert refused.value.response.status_code == 400
    with open_ws(agent) as ws:
        assert ws.subprotocol == "sip"


def test_a_browser_watches_over_its_websocket_and_a_closed_one_is_given_up(agent):
    phone = UdpClient(agent.udp)
    with open_ws(agent) as ws:
        ws.send(request("OPTIONS", agent.address("ws"), BROWSER, transport="WS").decode())
        answer = received(ws)
        assert answer.status == 200 and answer.top_via.received == "127.0.0.1"

        ws.send(request("SUBSCRIBE", agent.address("ws"), BROWSER, transport="WS",
                        uri="sip:alice@example.com", to="sip:alice@example.com",
                        headers="Event: presence\r\nExpires: 600\r\nContact: "
                                "<sip:x7d1@df7jal23ls0d.invalid;transport=ws>\r\n").decode())
        assert received(ws).status == 200
        first = received(ws)
        assert first.method == "NOTIFY" and first.top_via.transport == "WS"
        assert "transport=ws" in first.headers.get("Contact")
        ws.send(make_response(first, 200).to_bytes().decode())

        phone.send(request("PUBLISH", agent.udp, phone.local, uri="sip:alice@example.com",
                           to="sip:alice@example.com", body=PIDF,
                           headers="Event: presence\r\nContent-Type: application/pidf+xml\r\n"))
        assert phone.recv().status == 200
        change = received(ws)  # the browser hears the change on its own connection
        assert b"<basic>open</basic>" in change.body
        ws.send(make_response(change, 200).to_bytes().decode())
    # The browser is gone: the next NOTIFY has nowhere to go, and nothing breaks.
    phone.send(request("PUBLISH", agent.udp, phone.local, uri="sip:alice@example.com",
                       to="sip:alice@example.com", body=PIDF.replace(b"open", b"closed"),
                       headers="Event: presence\r\nContent-Type: application/pidf+xml\r\n"))
    assert phone.recv().status == 200
    assert phone.ask("OPTIONS").status == 200
    phone.close()
    wait_for_metric(agent, 'sipresence_subscriptions{package="presence"} 0.0')  # retried, dropped


def test_secure_websocket_with_the_tls_certificate(tmp_path):
    import ssl

    from tests.support.certs import self_signed

    cert, key = self_signed(tmp_path)
    config = tmp_path / "wss.toml"
    config.write_text(f'[tls]\ncertificate = "{cert}"\nkey = "{key}"\n')
    server = start_server(tmp_path, "--config", str(config), listen=("wss:127.0.0.1:0",),
                          http=None)
    try:
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        host, port = server.address("wss")
        with connect(f"wss://{host}:{port}", subprotocols=["sip"], ssl=context,
                     open_timeout=5) as ws:
            ws.send(request("OPTIONS", (host, port), BROWSER, transport="WSS").decode())
            answer = received(ws)
            assert answer.status == 200 and answer.top_via.transport == "WSS"
    finally:
        assert server.stop() == 0
    missing = start_server(tmp_path, listen=("wss:127.0.0.1:0",), expect_ready=False)
    assert missing.proc.returncode == 2
    assert "a wss: listener needs tls.certificate and tls.key" in missing.output()
