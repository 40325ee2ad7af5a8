"""Every answer reaches the sender (issue 9), through the real agent and real sockets.

Every request of the RFC 4475 and RFC 5118 archives is sent over UDP from its own
loopback socket, with its top Via naming ``<message>.invalid`` (never resolves, RFC
6761) and asking for rport.  Each must be answered at that socket: the agent may not
look the name up, nor send to an address written in the message (the example
addresses 192.0.2.x and 2001:db8:: are renamed before anything goes on the wire, so
nothing can reach a non-loopback address even if it tried).  The parser's and the UAS
checks' error answers (400, 505) are the ones that used to go astray.
"""

from __future__ import annotations

import selectors
import socket
import time

import pytest

from sipresence.sip.headers import HeaderError
from sipresence.sip.message import Response
from sipresence.sip.parser import parse_datagram
from tests.support.server import start_server
from tests.support.torture import MESSAGES, RESPONSES, rename_via

ANSWER_WITHIN = 2.0
# Every request is to be answered, the malformed ones too: the corpora have no ACK (the
# one request never answered), and no other request is excepted.
# badinv01's Via is malformed and test.dat has none: answered at the source all the
# same, but there is no Via in which to find received and rport.
NO_USABLE_VIA = {"badinv01", "test"}
REQUESTS = sorted(set(MESSAGES) - RESPONSES)


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("agent"), "--log-level", "debug",
                          listen=("udp:127.0.0.1:0",), http=None)
    yield server
    assert server.stop() == 0
    # Read after the agent stopped, so that a lookup failing late would be seen too.
    log = server.output()
    assert "answering 400" in log  # the debug log was on: what is not there was not done
    for sign in ("could not send", "DNSLookupError", "resolv", ".invalid:"):
        assert sign not in log, f"{sign!r} in the agent's log:\n{log}"


def send_all(agent, names: list[str]) -> dict[str, socket.socket]:
    sockets = {}
    for name in names:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        sock.sendto(rename_via(MESSAGES[name], f"{name}.invalid".encode(), rport=True),
                    agent.udp)
        sockets[name] = sock
    return sockets


def first_answers(sockets: dict[str, socket.socket], wait: float) -> dict[str, bytes]:
    """The first datagram each socket gets within *wait* seconds."""
    got: dict[str, bytes] = {}
    with selectors.DefaultSelector() as selector:
        for name, sock in sockets.items():
            selector.register(sock, selectors.EVENT_READ, name)
        end = time.monotonic() + wait
        while len(got) < len(sockets) and (left := end - time.monotonic()) > 0:
            for key, _ in selector.select(left):
                data, _ = key.fileobj.recvfrom(65535)  # type: ignore[union-attr]
                got.setdefault(key.data, data)
                selector.unregister(key.fileobj)
    return got


def test_every_request_is_answered_at_its_source_and_nothing_is_looked_up(agent):
    assert not [name for name in REQUESTS if MESSAGES[name].startswith(b"ACK ")]
    sockets = send_all(agent, REQUESTS + sorted(RESPONSES))
    try:
        got = first_answers(sockets, ANSWER_WITHIN)
        missing = [name for name in REQUESTS if name not in got]
        assert not missing, f"no answer at the source for {missing}:\n{agent.output()}"
        assert not set(got) & RESPONSES  # a response is never answered
        for name in REQUESTS:
            answer = parse_datagram(got[name])
            assert isinstance(answer, Response), name
            try:
                via = answer.top_via
            except HeaderError:
                assert name in NO_USABLE_VIA, name
                continue
            assert name not in NO_USABLE_VIA
            assert via.host == f"{name}.invalid", name
            assert (via.received, via.rport) == ("127.0.0.1", sockets[name].getsockname()[1])
    finally:
        for sock in sockets.values():
            sock.close()
