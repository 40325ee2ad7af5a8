"""A pjsua2 user agent in its own process, driven by JSON lines on stdin.

pjsua2 2.15.1 allows one Endpoint and one account per process (INTEROP.md), so each
phone in a test is one of these.  Commands (one JSON object per line on stdin):

    {"cmd": "publish", "online": true, "activity": "busy", "note": "In a meeting"}
    {"cmd": "unpublish"}
    {"cmd": "subscribe", "uri": "sip:bob@127.0.0.1:5060"}
    {"cmd": "watch_dialog", "uri": "sip:bob@127.0.0.1:5060"}   (BLF, through the C API)
    {"cmd": "call", "uri": ..., "follow": false, "record": "/tmp/x.wav", "seconds": 8}
    {"cmd": "hangup"}
    {"cmd": "quit"}

Events go to stdout, one JSON object per line:

    {"event": "ready", "port": 40123}
    {"event": "buddy", "uri": ..., "status": "online"|"offline"|"unknown",
     "text": ..., "note": ..., "activity": "busy"|"away"|"unknown", "sub_state": ...}
    {"event": "registered", "code": 200, "expires": 300}   (with --register)
    {"event": "dialog", "uri": ..., "state": "confirmed", "info_state": "full",
     "call_id": ..., "local_tag": ..., "remote_tag": ..., "direction": ...,
     "local": ..., "remote": ..., "sub_state": "ACTIVE"}
    {"event": "redirected", "target": "sip:..."}
    {"event": "call", "state": "CALLING"|"EARLY"|"CONFIRMED"|..., "code": 180}
    {"event": "media"}                           (audio flowing, recording started)
    {"event": "ended", "code": 486, "reason": "Busy Here", "record": path|null,
     "by": "them"|"us"}                          (who hung up)
    {"event": "incoming", "from": ...}           (answered at once with 200)

Run: python -m tests.support.pjsua_ua --agent 127.0.0.1:5060 --user alice [--register]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import select
import sys
import time
from collections.abc import Callable
from typing import Any

import pjsua2 as pj

ACTIVITIES = {"busy": pj.PJRPID_ACTIVITY_BUSY, "away": pj.PJRPID_ACTIVITY_AWAY,
              "unknown": pj.PJRPID_ACTIVITY_UNKNOWN}
ACTIVITY_NAMES = {v: k for k, v in ACTIVITIES.items()}
STATUS_NAMES = {pj.PJSUA_BUDDY_STATUS_ONLINE: "online", pj.PJSUA_BUDDY_STATUS_OFFLINE: "offline",
                pj.PJSUA_BUDDY_STATUS_UNKNOWN: "unknown"}


def emit(**event: object) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


class Buddy(pj.Buddy):
    def onBuddyState(self) -> None:  # noqa: N802 (pjsua2 callback name)
        info = self.getInfo()
        status = info.presStatus
        emit(event="buddy", uri=info.uri, status=STATUS_NAMES.get(status.status, "?"),
             text=status.statusText, note=status.note,
             activity=ACTIVITY_NAMES.get(status.activity, "?"), sub_state=info.subStateName)


class PjStr(ctypes.Structure):
    _fields_ = [("ptr", ctypes.c_char_p), ("slen", ctypes.c_ssize_t)]

    def text(self) -> str:
        return (self.ptr or b"")[: max(self.slen, 0)].decode("utf-8", "replace")


class DlgEventInfo(ctypes.Structure):
    """``pjsua_buddy_dlg_event_info`` of pjsua.h 2.15.1 (not wrapped by pjsua2)."""

    _fields_ = [("id", ctypes.c_int)] + [(name, PjStr) for name in (
        "uri", "dialog_id", "dialog_info_state", "dialog_info_entity", "dialog_call_id",
        "dialog_remote_tag", "dialog_local_tag", "dialog_direction", "dialog_state",
        "dialog_duration", "local_identity", "local_identity_display", "local_target_uri",
        "remote_identity", "remote_identity_display", "remote_target_uri")] + [
        ("sub_state", ctypes.c_int), ("sub_state_name", ctypes.c_char_p),
        ("sub_term_code", ctypes.c_uint), ("sub_term_reason", PjStr),
        ("buf_", ctypes.c_char * 1024)]


PJSUA = ctypes.CDLL(pj._pjsua2.__file__)  # the C library pjsua2 is built on, already loaded
PJSUA.pjsua_buddy_subscribe_dlg_event.argtypes = [ctypes.c_int, ctypes.c_int]
PJSUA.pjsua_buddy_get_dlg_event_info.argtypes = [ctypes.c_int, ctypes.POINTER(DlgEventInfo)]


class DialogWatch:
    """A BLF subscription; pjsua2 has no callback for it, so its state is polled."""

    def __init__(self, account: pj.Account, uri: str) -> None:
        config = pj.BuddyConfig()
        config.uri = uri
        config.subscribe = False
        self.buddy = pj.Buddy()
        self.buddy.create(account, config)
        self.last: dict[str, Any] | None = None
        status = PJSUA.pjsua_buddy_subscribe_dlg_event(self.buddy.getId(), 1)
        if status != 0:
            raise RuntimeError(f"pjsua_buddy_subscribe_dlg_event: {status}")

    @staticmethod
    def poll_all(watches: list[DialogWatch]) -> None:
        for watch in watches:
            watch.poll()

    def poll(self) -> None:
        info = DlgEventInfo()
        if PJSUA.pjsua_buddy_get_dlg_event_info(self.buddy.getId(), ctypes.byref(info)) != 0:
            return
        seen = {"uri": info.uri.text(), "state": info.dialog_state.text(),
                "info_state": info.dialog_info_state.text(),
                "call_id": info.dialog_call_id.text(),
                "local_tag": info.dialog_local_tag.text(),
                "remote_tag": info.dialog_remote_tag.text(),
                "direction": info.dialog_direction.text(),
                "local": info.local_identity.text(), "remote": info.remote_identity.text(),
                "sub_state": (info.sub_state_name or b"").decode()}
        if seen != self.last:
            self.last = seen
            emit(event="dialog", **seen)


class Call(pj.Call):
    """An outgoing (or answered incoming) call; records what it hears when asked."""

    def __init__(self, account: pj.Account, call_id: int = pj.PJSUA_INVALID_ID,
                 follow: bool = False, record: str | None = None,
                 seconds: float = 10.0) -> None:
        super().__init__(account, call_id)
        self.follow = follow
        self.record = record
        self.seconds = seconds
        self.recorder: pj.AudioMediaRecorder | None = None
        self.confirmed_at: float | None = None
        self.ended = False
        self.hung_up_here = False  # this side ended the call (its timer or a command)

    def onCallRedirected(self, prm: Any) -> int:  # noqa: N802
        emit(event="redirected", target=prm.targetUri)
        return pj.PJSIP_REDIRECT_ACCEPT if self.follow else pj.PJSIP_REDIRECT_STOP

    def onCallState(self, prm: Any) -> None:  # noqa: N802
        info = self.getInfo()
        emit(event="call", state=info.stateText, code=info.lastStatusCode)
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.confirmed_at = time.monotonic()
        if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            if self.recorder is not None:
                del self.recorder  # the WAV file is complete once the recorder is gone
                self.recorder = None
            self.ended = True
            emit(event="ended", code=info.lastStatusCode, reason=info.lastReason,
                 record=self.record, by="us" if self.hung_up_here else "them")

    def onCallMediaState(self, prm: Any) -> None:  # noqa: N802
        info = self.getInfo()
        for index, media in enumerate(info.media):
            if (media.type == pj.PJMEDIA_TYPE_AUDIO
                    and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE
                    and self.record and self.recorder is None):
                self.recorder = pj.AudioMediaRecorder()
                self.recorder.createRecorder(self.record)
                self.getAudioMedia(index).startTransmit(self.recorder)
                emit(event="media")

    def overdue(self) -> bool:
        return (self.confirmed_at is not None and not self.ended
                and time.monotonic() - self.confirmed_at > self.seconds)


class Account(pj.Account):
    def __init__(self) -> None:
        super().__init__()
        self.incoming: list[Call] = []

    def onRegState(self, prm: Any) -> None:  # noqa: N802
        emit(event="registered", code=prm.code, expires=prm.expiration)

    def onIncomingCall(self, prm: Any) -> None:  # noqa: N802
        call = Call(self, prm.callId)
        emit(event="incoming", **{"from": call.getInfo().remoteUri})
        answer = pj.CallOpParam()
        answer.statusCode = 200
        call.answer(answer)
        self.incoming.append(call)


def hang_up(calls: list[Call], when: Callable[[Call], bool] = lambda call: True) -> None:
    for call in calls:
        if call.isActive() and when(call):
            call.hung_up_here = True
            call.hangup(pj.CallOpParam())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agent", required=True, help="HOST:PORT of the presence agent")
    parser.add_argument("--user", required=True)
    parser.add_argument("--transport", default="udp", choices=("udp", "tcp"))
    parser.add_argument("--register", action="store_true", help="REGISTER with the agent")
    parser.add_argument("--password", help="answer digest challenges as --user with it")
    parser.add_argument("--domain", help="be sip:USER@DOMAIN, every request sent through "
                        "the agent as outbound proxy (as a phone of that domain is)")
    args = parser.parse_args()
    host, port = args.agent.rsplit(":", 1)

    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.logConfig.level = int(os.environ.get("PJSUA_LOG_LEVEL", "0"))
    cfg.logConfig.consoleLevel = cfg.logConfig.level
    cfg.medConfig.noVad = True
    ep.libInit(cfg)
    ep.audDevManager().setNullDev()
    tcfg = pj.TransportConfig()
    tcfg.port = 0
    tcfg.boundAddress = "127.0.0.1"
    kind = pj.PJSIP_TRANSPORT_UDP if args.transport == "udp" else pj.PJSIP_TRANSPORT_TCP
    tid = ep.transportCreate(kind, tcfg)
    ep.libStart()
    local_port = ep.transportGetInfo(tid).localName.rsplit(":", 1)[1]

    acfg = pj.AccountConfig()
    acfg.idUri = f"sip:{args.user}@{args.domain or f'{host}:{port}'}"
    if args.transport == "tcp":
        acfg.idUri += ";transport=tcp"
    if args.domain:
        acfg.sipConfig.proxies.append(f"sip:{host}:{port};lr")
    acfg.presConfig.publishEnabled = True
    acfg.sipConfig.transportId = tid
    if args.password is not None:
        acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", args.user, 0,
                                                        args.password))
    if args.register:
        acfg.regConfig.registrarUri = f"sip:{host}:{port}"
        acfg.regConfig.timeoutSec = 300
    account = Account()
    account.create(acfg)
    buddies: list[Buddy] = []
    watches: list[DialogWatch] = []
    calls: list[Call] = []
    emit(event="ready", port=int(local_port))

    running = True
    while running:
        ep.libHandleEvents(20)
        DialogWatch.poll_all(watches)
        hang_up(calls, Call.overdue)
        ready, _, _ = select.select([sys.stdin], [], [], 0)
        if not ready:
            continue
        line = sys.stdin.readline()
        if not line:
            break
        command = json.loads(line)
        if command["cmd"] == "publish":
            status = pj.PresenceStatus()
            online = command.get("online", True)
            status.status = (pj.PJSUA_BUDDY_STATUS_ONLINE if online
                             else pj.PJSUA_BUDDY_STATUS_OFFLINE)
            status.activity = ACTIVITIES[command.get("activity", "unknown")]
            status.note = command.get("note", "")
            account.setOnlineStatus(status)
            emit(event="published")
        elif command["cmd"] == "subscribe":
            bcfg = pj.BuddyConfig()
            bcfg.uri = command["uri"]
            bcfg.subscribe = True
            buddies.append(Buddy())
            buddies[-1].create(account, bcfg)
            emit(event="subscribed", uri=command["uri"])
        elif command["cmd"] == "watch_dialog":
            watches.append(DialogWatch(account, command["uri"]))
            emit(event="watching", uri=command["uri"])
        elif command["cmd"] == "call":
            calls.append(Call(account, follow=command.get("follow", False),
                              record=command.get("record"),
                              seconds=command.get("seconds", 10.0)))
            calls[-1].makeCall(command["uri"], pj.CallOpParam(True))
        elif command["cmd"] == "hangup":
            hang_up(calls + account.incoming)
        elif command["cmd"] == "quit":
            running = False
    # Every pjsua2 object goes before the library: their destructors call into it
    # (hence no loop variable in this function ever holds one).
    hang_up(calls + account.incoming)
    for _ in range(50):
        if not any(c.isActive() for c in calls + account.incoming):
            break
        ep.libHandleEvents(20)
    calls.clear()
    account.incoming.clear()
    buddies.clear()
    watches.clear()
    gc.collect()
    account.shutdown()
    for _ in range(25):
        ep.libHandleEvents(20)  # let un-PUBLISH and un-SUBSCRIBE go out
    ep.libDestroy()


if __name__ == "__main__":
    main()
