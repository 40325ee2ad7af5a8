"""Nothing lost across a restart: subscriptions, dialogs, CSeq, entity tags (issue 4.5)."""

from __future__ import annotations

import time

from sipresence.sip.message import Request
from sipresence.sip.uas import make_response
from tests.support.server import start_server
from tests.support.sip import UdpClient, request

PIDF = ('<?xml version="1.0"?><presence xmlns="urn:ietf:params:xml:ns:pidf" '
        'xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" '
        'xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:alice@127.0.0.1">'
        '<tuple id="t"><status><basic>open</basic></status></tuple>'
        '<dm:person id="p"><rpid:activities><rpid:{activity}/></rpid:activities></dm:person>'
        '</presence>')


def publish(client, server, activity, etag=None, cseq=1):
    headers = "Event: presence\r\nContent-Type: application/pidf+xml\r\n"
    if etag:
        headers += f"SIP-If-Match: {etag}\r\n"
    client.server = server
    return client.ask("PUBLISH", uri="sip:alice@127.0.0.1", headers=headers, cseq=cseq,
                      call_id="publisher", body=PIDF.format(activity=activity).encode())


def next_notify(watcher: UdpClient) -> Request:
    message = watcher.recv(timeout=10)
    assert isinstance(message, Request) and message.method == "NOTIFY"
    watcher.sock.sendto(make_response(message, 200).to_bytes(), watcher.last_source)
    return message


def subscribe(watcher, server):
    watcher.server = server
    watcher.send(request("SUBSCRIBE", server, watcher.local, uri="sip:alice@127.0.0.1",
                         call_id="watcher-dialog",
                         headers=("Event: presence\r\nExpires: 3600\r\n"
                                  "Accept: application/pidf+xml\r\n"
                                  f"Contact: <sip:bob@127.0.0.1:{watcher.local[1]}>\r\n")))
    assert watcher.recv().status == 200


class Watcher(UdpClient):
    """Remembers where the last message came from, to answer NOTIFYs there."""

    def recv(self, timeout: float = 5.0):
        self.sock.settimeout(timeout)
        data, self.last_source = self.sock.recvfrom(65535)
        from sipresence.sip.parser import parse_datagram

        return parse_datagram(data)


def test_after_a_restart_the_watcher_gets_the_next_notify_in_its_old_dialog(tmp_path):
    db = str(tmp_path / "state.sqlite3")
    server = start_server(tmp_path, listen=("udp:127.0.0.1:0",), http=None, db=db)
    publisher = UdpClient(server.udp)
    watcher = Watcher(server.udp)
    try:
        first = publish(publisher, server.udp, "busy")
        assert first.status == 200
        etag = first.headers.get("SIP-ETag")
        subscribe(watcher, server.udp)
        before = next_notify(watcher)
        assert b"<rpid:busy/>" in before.body
        assert server.stop() == 0

        server = start_server(tmp_path, listen=("udp:127.0.0.1:0",), http=None, db=db)
        server.wait_for_line("restored 1 publications, 1 subscriptions")
        modified = publish(publisher, server.udp, "away", etag=etag, cseq=2)
        assert modified.status == 200  # the entity tag survived the restart
        after = next_notify(watcher)
        assert (after.call_id, after.from_.tag, after.to.tag) == (
            before.call_id, before.from_.tag, before.to.tag)
        assert after.cseq.number > before.cseq.number  # from the stored reservation
        assert b"<rpid:away/>" in after.body
    finally:
        publisher.close()
        watcher.close()
        server.stop()


def test_after_a_crash_counters_still_go_up(tmp_path):
    db = str(tmp_path / "state.sqlite3")
    server = start_server(tmp_path, listen=("udp:127.0.0.1:0",), http=None, db=db)
    publisher = UdpClient(server.udp)
    watcher = Watcher(server.udp)
    try:
        etag = publish(publisher, server.udp, "busy").headers.get("SIP-ETag")
        subscribe(watcher, server.udp)
        before = next_notify(watcher)
        time.sleep(0.5)  # let the writer thread commit
        server.proc.kill()
        server.proc.wait()

        server = start_server(tmp_path, listen=("udp:127.0.0.1:0",), http=None, db=db)
        server.wait_for_line("after an unclean stop")
        assert publish(publisher, server.udp, "away", etag=etag, cseq=2).status == 200
        after = next_notify(watcher)
        assert after.call_id == before.call_id
        assert after.cseq.number > before.cseq.number
    finally:
        publisher.close()
        watcher.close()
        server.stop()


DIALOG_INFO = ('<?xml version="1.0"?><dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" '
               'version="{version}" state="full" entity="sip:line@127.0.0.1">'
               '<dialog id="d1" call-id="c9" local-tag="lt" remote-tag="rt" '
               'direction="recipient"><state>{state}</state>'
               '<local><identity>sip:line@127.0.0.1</identity></local>'
               '<remote><identity>sip:carol@127.0.0.1</identity></remote>'
               '</dialog></dialog-info>')


def test_registrations_and_busy_lamps_survive_a_restart(tmp_path):
    """The phone stays reachable (302 to its contact) and the lamp's dialog-info
    version keeps rising in its old dialog."""
    import re

    db = str(tmp_path / "state.sqlite3")
    server = start_server(tmp_path, listen=("udp:127.0.0.1:0",), http=None, db=db)
    phone = UdpClient(server.udp)
    lamp = Watcher(server.udp)
    caller = UdpClient(server.udp)

    def publish_line(state: str, version: int, etag: str | None = None) -> str | None:
        headers = "Event: dialog\r\nContent-Type: application/dialog-info+xml\r\n"
        if etag:
            headers += f"SIP-If-Match: {etag}\r\n"
        phone.server = server.udp
        response = phone.ask("PUBLISH", uri="sip:line@127.0.0.1", headers=headers,
                             call_id="line-publisher", cseq=version,
                             body=DIALOG_INFO.format(state=state, version=version).encode())
        assert response.status == 200
        return response.headers.get("SIP-ETag")

    def version(notify: Request) -> int:
        match = re.search(rb'version="(\d+)"', notify.body)
        assert match, notify.body
        return int(match.group(1))

    try:
        contact = f"sip:line@127.0.0.1:{phone.local[1]}"
        registered = phone.ask("REGISTER", uri="sip:127.0.0.1", to="sip:line@127.0.0.1",
                               call_id="line-reg",
                               headers=f"Contact: <{contact}>\r\nExpires: 600\r\n")
        assert registered.status == 200
        lamp.server = server.udp
        lamp.send(request("SUBSCRIBE", server.udp, lamp.local, uri="sip:line@127.0.0.1",
                          call_id="lamp-dialog",
                          headers=("Event: dialog\r\nExpires: 3600\r\n"
                                   f"Contact: <sip:lamp@127.0.0.1:{lamp.local[1]}>\r\n")))
        assert lamp.recv().status == 200
        versions = [version(next_notify(lamp))]
        etag = publish_line("early", 1)
        early = next_notify(lamp)
        versions.append(version(early))
        assert b">early<" in early.body
        assert server.stop() == 0

        server = start_server(tmp_path, listen=("udp:127.0.0.1:0",), http=None, db=db)
        server.wait_for_line("1 registrations")
        publish_line("confirmed", 2, etag)
        confirmed = next_notify(lamp)
        assert (confirmed.call_id, confirmed.cseq.number > early.cseq.number) == (
            "lamp-dialog", True)
        versions.append(version(confirmed))
        assert b">confirmed<" in confirmed.body
        assert versions == sorted(set(versions)), versions  # never backwards, never twice

        publish_line("terminated", 3, etag=None)  # a new publication ends the call
        next_notify(lamp)
        caller.server = server.udp
        answer = caller.ask("INVITE", uri="sip:line@127.0.0.1",
                            headers=f"Contact: <sip:carol@127.0.0.1:{caller.local[1]}>\r\n")
        assert answer.status == 302
        assert answer.headers.get("Contact") == f"<{contact}>"  # the binding survived
    finally:
        for client in (phone, lamp, caller):
            client.close()
        server.stop()
