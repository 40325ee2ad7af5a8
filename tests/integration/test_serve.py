"""The real agent in a subprocess: the CLI contract, UDP, TCP, IPv6, shutdown, metrics."""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.error
import urllib.request

import pytest

from tests.support.server import start_server
from tests.support.sip import TcpClient, UdpClient, request


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("agent"))
    yield server
    assert server.stop() == 0


def test_ready_line_lists_every_bound_address(agent):
    line = agent.wait_for_line("ready")
    assert "udp:127.0.0.1:" in line and "tcp:127.0.0.1:" in line and "http:127.0.0.1:" in line


def test_options_over_udp_is_answered_with_capabilities_and_rport(agent):
    client = UdpClient(agent.udp)
    try:
        response = client.ask("OPTIONS")
        assert response.status == 200
        assert "OPTIONS" in response.headers.get("Allow")
        assert "Accept" in response.headers and "Supported" in response.headers
        via = response.top_via
        assert via.rport == client.local[1] and via.received == "127.0.0.1"
        assert response.to.tag
    finally:
        client.close()


def test_a_retransmitted_request_gets_the_same_answer(agent):
    client = UdpClient(agent.udp)
    try:
        data = request("OPTIONS", agent.udp, client.local)
        client.send(data)
        first = client.recv()
        client.send(data)
        second = client.recv()
        assert second.to.tag == first.to.tag
    finally:
        client.close()


def test_missing_content_length_on_udp_means_the_rest_of_the_datagram(agent):
    client = UdpClient(agent.udp)
    try:
        data = request("OPTIONS", agent.udp, client.local).replace(b"Content-Length: 0\r\n", b"")
        client.send(data)
        assert client.recv().status == 200
    finally:
        client.close()


@pytest.mark.parametrize("mutate, status, reason", [
    (lambda d: d.replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE"), 400,
     "CSeq method does not match request method"),
    (lambda d: d.replace(b"Call-ID:", b"X-Call-ID:"), 400, "Missing Call-ID"),
    (lambda d: d.replace(b"SIP/2.0\r\n", b"SIP/7.0\r\n", 1), 505, "Version Not Supported"),
    (lambda d: d.replace(b"OPTIONS sip:", b"FROBNICATE sip:").replace(b"1 OPTIONS",
                                                                   b"1 FROBNICATE"), 501, None),
    (lambda d: d.replace(b"Max-Forwards: 70", b"Max-Forwards: 300"), 400,
     "Max-Forwards out of range"),
])
def test_malformed_requests_get_specific_errors_over_udp(agent, mutate, status, reason):
    client = UdpClient(agent.udp)
    try:
        client.send(mutate(request("OPTIONS", agent.udp, client.local)))
        response = client.recv()
        assert response.status == status
        if reason:
            assert response.reason == reason
    finally:
        client.close()


def test_tcp_answers_on_the_same_connection_with_pipelining_and_split_writes(agent):
    client = TcpClient(agent.tcp)
    try:
        one = request("OPTIONS", agent.tcp, client.local, transport="TCP", call_id="one")
        two = request("OPTIONS", agent.tcp, client.local, transport="TCP", call_id="two")
        client.send(one + two[:17])
        time.sleep(0.05)
        client.send(two[17:])
        first, second = client.recv(), client.recv()
        assert (first.status, second.status) == (200, 200)
        assert (first.call_id, second.call_id) == ("one", "two")
    finally:
        client.close()


def test_a_framing_error_closes_only_that_connection(agent):
    good = TcpClient(agent.tcp)
    bad = TcpClient(agent.tcp)
    try:
        bad.send(request("OPTIONS", agent.tcp, bad.local, transport="TCP").replace(
            b"Content-Length: 0", b"Content-Length: -4"))
        answer = bad.recv()
        assert (answer.status, answer.reason) == (400, "Negative Content-Length")
        assert bad.closed_by_peer()
        assert good.ask("OPTIONS").status == 200
    finally:
        good.close()
        bad.close()


def test_crlf_keepalive_on_tcp_gets_a_pong(agent):
    client = TcpClient(agent.tcp)
    try:
        client.send(b"\r\n\r\n")
        client.sock.settimeout(5)
        assert client.sock.recv(16) == b"\r\n"
    finally:
        client.close()


def test_metrics_count_requests_and_errors(agent):
    client = UdpClient(agent.udp)
    try:
        client.ask("OPTIONS")
    finally:
        client.close()
    host, port = agent.http
    text = urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5).read().decode()
    assert 'sipresence_sip_requests_total{method="OPTIONS"}' in text
    assert 'sipresence_sip_responses_sent_total{status="200"}' in text
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(f"http://{host}:{port}/nothing", timeout=5)
    assert error.value.code == 404
    assert json.loads(error.value.read()) == {"error": "no such resource"}


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6(), reason="no IPv6 loopback on this machine")
def test_ipv6_over_udp_and_tcp(tmp_path):
    server = start_server(tmp_path, listen=("udp:[::1]:0", "tcp:[::1]:0"), http=None)
    try:
        udp = UdpClient(server.udp)
        response = udp.ask("OPTIONS")
        assert response.status == 200 and response.top_via.received == "::1"
        udp.close()
        tcp = TcpClient(server.tcp)
        assert tcp.ask("OPTIONS").status == 200
        tcp.close()
    finally:
        assert server.stop() == 0


def test_config_file_with_flags_on_top_and_idle_tcp_timeout(tmp_path):
    config = tmp_path / "agent.toml"
    config.write_text('[server]\nlisten = ["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]\n'
                      '[sip]\ntcp_idle_timeout = 1\n[log]\nformat = "json"\n')
    server = start_server(tmp_path, "--config", str(config), "--log-level", "info",
                          listen=(), http=None)
    try:
        records = [json.loads(line) for line in server.lines if line.startswith("{")]
        assert any("ready" in r["message"] for r in records)
        assert "http" not in server.addresses
        client = TcpClient(server.tcp)
        assert client.ask("OPTIONS").status == 200
        started = time.monotonic()
        assert client.closed_by_peer(timeout=5)
        assert 0.5 < time.monotonic() - started < 4
        client.close()
    finally:
        assert server.stop() == 0


def test_domain_flags_restrict_what_is_served_and_text_logs_are_lines(tmp_path):
    server = start_server(tmp_path, "--domain", "example.com", "--domain", "Example.ORG",
                          "--log-format", "text", "--log-level", "info",
                          listen=("udp:127.0.0.1:0",), http=None)
    client = UdpClient(server.udp)
    try:
        subscribe = "Event: presence\r\nContact: <sip:tester@127.0.0.1>\r\n"
        for uri, status in (("sip:bob@elsewhere.test", 404), ("sip:bob@example.com", 200),
                            ("sip:bob@example.org", 200)):
            answer = client.ask("SUBSCRIBE", uri=uri, to=uri, headers=subscribe)
            assert answer.status == status, uri
            if status == 200:
                client.recv()  # its NOTIFY
        assert client.ask("OPTIONS").status == 200  # the agent itself answers anyone
        ready = server.wait_for_line("ready")
        # Text format: a timestamp, the namespace and level, the message.
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\S* \[sipresence\S*#info\] ", ready)
    finally:
        client.close()
        assert server.stop() == 0


def test_sigterm_stops_cleanly_and_logs_it(tmp_path):
    server = start_server(tmp_path)
    assert server.stop(timeout=5) == 0
    assert any("stopped" in line for line in server.lines)


def test_bad_arguments_and_busy_ports_are_reported(tmp_path):
    bad = start_server(tmp_path, listen=("carrier-pigeon:1.2.3.4:5",), expect_ready=False)
    assert bad.proc.returncode == 2
    assert "expected udp:, tcp:, tls:, ws: or wss:" in bad.output()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        busy = start_server(tmp_path, listen=(f"udp:127.0.0.1:{port}",), http=None,
                            expect_ready=False)
    assert busy.proc.returncode == 2
    assert "cannot listen" in busy.output()


def test_sip_over_tls(tmp_path):
    from tests.support.certs import self_signed
    from tests.support.sip import TlsClient

    cert, key = self_signed(tmp_path)
    config = tmp_path / "tls.toml"
    config.write_text(f'[tls]\ncertificate = "{cert}"\nkey = "{key}"\n')
    server = start_server(tmp_path, "--config", str(config),
                          listen=("tls:127.0.0.1:0",), http=None)
    try:
        client = TlsClient(server.address("tls"))
        response = client.ask("OPTIONS")
        assert response.status == 200
        assert response.top_via.transport == "TLS"
        client.close()
    finally:
        assert server.stop() == 0


def test_a_tls_listener_without_certificate_is_a_configuration_error(tmp_path):
    server = start_server(tmp_path, listen=("tls:127.0.0.1:0",), expect_ready=False)
    assert server.proc.returncode == 2
    assert "tls.certificate and tls.key" in server.output()
