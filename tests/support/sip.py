"""A minimal SIP test client over UDP and TCP, with bounded waits."""

from __future__ import annotations

import itertools
import socket
import uuid

from sipresence.sip.message import Message, Response
from sipresence.sip.parser import StreamFramer, parse_datagram

_counter = itertools.count(1)
TIMEOUT = 5.0


def family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def request(method: str, target: tuple[str, int], local: tuple[str, int], *,
            transport: str = "UDP", branch: str | None = None, cseq: int = 1,
            headers: str = "", body: bytes = b"", uri: str | None = None,
            call_id: str | None = None, to: str | None = None) -> bytes:
    host, port = target
    branch = branch or f"z9hG4bK{uuid.uuid4().hex[:16]}"
    uri = uri or f"sip:{bracket(host)}:{port}"
    return (f"{method} {uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/{transport} {bracket(local[0])}:{local[1]};branch={branch};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:tester@{bracket(local[0])}>;tag=t{next(_counter)}\r\n"
            f"To: <{to or f'sip:{bracket(host)}'}>\r\n"
            f"Call-ID: {call_id or uuid.uuid4().hex}\r\n"
            f"CSeq: {cseq} {method}\r\n"
            f"{headers}Content-Length: {len(body)}\r\n\r\n").encode() + body


class UdpClient:
    def __init__(self, server: tuple[str, int]) -> None:
        self.server = server
        self.sock = socket.socket(family(server[0]), socket.SOCK_DGRAM)
        self.sock.bind((server[0], 0))
        self.sock.settimeout(TIMEOUT)
        self.local = self.sock.getsockname()[:2]

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.server)

    def recv(self, timeout: float = TIMEOUT) -> Message:
        self.sock.settimeout(timeout)
        data, _ = self.sock.recvfrom(65535)
        message = parse_datagram(data)
        assert message is not None
        return message

    def nothing(self, wait: float = 0.5) -> bool:
        """True when nothing arrives within *wait* seconds."""
        self.sock.settimeout(wait)
        try:
            self.sock.recvfrom(65535)
        except TimeoutError:
            return True
        return False

    def ask(self, method: str, **kwargs: object) -> Response:
        self.send(request(method, self.server, self.local, **kwargs))  # type: ignore[arg-type]
        response = self.recv()
        assert isinstance(response, Response)
        return response

    def close(self) -> None:
        self.sock.close()


class TcpClient:
    def __init__(self, server: tuple[str, int]) -> None:
        self.server = server
        self.sock = socket.create_connection(server, timeout=TIMEOUT)
        self.local = self.sock.getsockname()[:2]
        self.framer = StreamFramer()
        self.pending: list[object] = []

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self, timeout: float = TIMEOUT) -> Message:
        self.sock.settimeout(timeout)
        while not self.pending:
            data = self.sock.recv(65535)
            if not data:
                raise ConnectionError("closed by the agent")
            self.pending += self.framer.feed(data)
        item = self.pending.pop(0)
        assert isinstance(item, Message), item
        return item

    def closed_by_peer(self, timeout: float = TIMEOUT) -> bool:
        self.sock.settimeout(timeout)
        try:
            while True:
                if not self.sock.recv(65535):
                    return True
        except (TimeoutError, ConnectionResetError):
            return False

    def ask(self, method: str, **kwargs: object) -> Response:
        self.send(request(method, self.server, self.local, transport="TCP",  # type: ignore[arg-type]
                          **kwargs))
        response = self.recv()
        assert isinstance(response, Response)
        return response

    def close(self) -> None:
        self.sock.close()


class TlsClient(TcpClient):
    """SIP over TLS; the test certificate is self-signed, so it is not verified."""

    def __init__(self, server: tuple[str, int]) -> None:
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        raw = socket.create_connection(server, timeout=TIMEOUT)
        self.server = server
        self.sock = context.wrap_socket(raw, server_hostname=server[0])
        self.local = self.sock.getsockname()[:2]
        self.framer = StreamFramer()
        self.pending = []

    def ask(self, method: str, **kwargs: object) -> Response:
        self.send(request(method, self.server, self.local, transport="TLS",  # type: ignore[arg-type]
                          **kwargs))
        response = self.recv()
        assert isinstance(response, Response)
        return response
