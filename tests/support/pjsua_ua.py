"""A pjsua2 user agent in its own process, driven by JSON lines on stdin.

pjsua2 2.15.1 allows one Endpoint and one account per process (INTEROP.md), so each
phone in a test is one of these.  Commands (one JSON object per line on stdin):

    {"cmd": "publish", "online": true, "activity": "busy", "note": "In a meeting"}
    {"cmd": "unpublish"}
    {"cmd": "subscribe", "uri": "sip:bob@127.0.0.1:5060"}
    {"cmd": "quit"}

Events go to stdout, one JSON object per line:

    {"event": "ready", "port": 40123}
    {"event": "buddy", "uri": ..., "status": "online"|"offline"|"unknown",
     "text": ..., "note": ..., "activity": "busy"|"away"|"unknown", "sub_state": ...}
    {"event": "publish", "code": 200}   (from the account's registration-less PUBLISH)

Run: python -m tests.support.pjsua_ua --agent 127.0.0.1:5060 --user alice
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys

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


class Account(pj.Account):
    pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agent", required=True, help="HOST:PORT of the presence agent")
    parser.add_argument("--user", required=True)
    parser.add_argument("--transport", default="udp", choices=("udp", "tcp"))
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
    acfg.idUri = f"sip:{args.user}@{host}:{port}"
    if args.transport == "tcp":
        acfg.idUri += ";transport=tcp"
    acfg.presConfig.publishEnabled = True
    acfg.sipConfig.transportId = tid
    account = Account()
    account.create(acfg)
    buddies: list[Buddy] = []
    emit(event="ready", port=int(local_port))

    running = True
    while running:
        ep.libHandleEvents(20)
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
            buddy = Buddy()
            buddy.create(account, bcfg)
            buddies.append(buddy)
            emit(event="subscribed", uri=command["uri"])
        elif command["cmd"] == "quit":
            running = False
    for buddy in buddies:
        del buddy
    account.shutdown()
    for _ in range(25):
        ep.libHandleEvents(20)  # let un-PUBLISH and un-SUBSCRIBE go out
    ep.libDestroy()


if __name__ == "__main__":
    main()
