"""The announcement service: answers calls, plays why the callee cannot take them, hangs up.

The agent redirects busy or unavailable callers to ``unavailable_target``; with a
target such as ``sip:{reason}@127.0.0.1:5090`` the Request-URI's user tells this
service which prompt to play (``busy``, ``unavailable``; anything else gets the
unavailable prompt).  It is a real SIP user agent with media, pjsua2 (extra ``media``),
running its own event loop in its own process, since pjsua2 allows one endpoint per
process.
"""

from __future__ import annotations

import gc
import signal
import tempfile
from pathlib import Path
from typing import Any

from ..sip.message import Request
from ..sip.parser import parse_datagram
from ..sip.uri import SipURI
from .tones import write_prompts

__all__ = ["run"]


def _reason(whole_message: str) -> str:
    """The prompt to play: the user part of the INVITE's Request-URI."""
    try:
        message = parse_datagram(whole_message.encode("utf-8", "surrogateescape"))
    except ValueError:
        return "unavailable"
    if isinstance(message, Request):
        uri = message.request_uri
        if isinstance(uri, SipURI) and uri.user in ("busy", "unavailable"):
            return uri.user
    return "unavailable"


def run(host: str, port: int, prompts: dict[str, Path] | None = None,
        max_calls: int = 0) -> int:  # pragma: no cover - exercised by the interop tests
    import pjsua2 as pj

    files = prompts if prompts is not None else write_prompts(
        Path(tempfile.mkdtemp(prefix="sipresence-prompts-")))
    ep = pj.Endpoint()
    ep.libCreate()
    config = pj.EpConfig()
    config.uaConfig.threadCnt = 0
    config.uaConfig.mainThreadOnly = True
    config.uaConfig.userAgent = "sipresence-announce"
    config.logConfig.level = 1
    config.logConfig.consoleLevel = 1
    config.medConfig.noVad = True
    ep.libInit(config)
    ep.audDevManager().setNullDev()
    transport_config = pj.TransportConfig()
    transport_config.port = port
    transport_config.boundAddress = host
    transport = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport_config)
    ep.libStart()
    port = int(ep.transportGetInfo(transport).localName.rsplit(":", 1)[1])  # port 0: chosen

    calls: list[Any] = []
    # Calls hung up by us stay referenced until pjsua reports them disconnected: a
    # pjsua2 Call destroyed mid-hangup would leave the C side pointing at nothing.
    ending: list[Any] = []
    done = {"calls": 0, "stop": False}

    class Player(pj.AudioMediaPlayer):
        def __init__(self, call: Any) -> None:
            super().__init__()
            self.call = call

        def onEof2(self) -> None:  # noqa: N802 - pjsua2's name
            self.call.finished = True

    class Call(pj.Call):
        def __init__(self, account: Any, call_id: int, reason: str) -> None:
            super().__init__(account, call_id)
            self.reason = reason
            self.player: Player | None = None
            self.finished = False

        def onCallMediaState(self, prm: Any) -> None:  # noqa: N802
            info = self.getInfo()
            for index, media in enumerate(info.media):
                if (media.type == pj.PJMEDIA_TYPE_AUDIO
                        and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE and self.player is None):
                    self.player = Player(self)
                    self.player.createPlayer(str(files[self.reason]), pj.PJMEDIA_FILE_NO_LOOP)
                    self.player.startTransmit(self.getAudioMedia(index))

        def onCallState(self, prm: Any) -> None:  # noqa: N802
            if self.getInfo().state == pj.PJSIP_INV_STATE_DISCONNECTED:
                self.finished = True

    class Account(pj.Account):
        def onIncomingCall(self, prm: Any) -> None:  # noqa: N802
            call = Call(self, prm.callId, _reason(prm.rdata.wholeMsg))
            answer = pj.CallOpParam()
            answer.statusCode = 200
            call.answer(answer)
            calls.append(call)

    account_config = pj.AccountConfig()
    account_config.idUri = f"sip:announce@{host}:{port}"
    account = Account()
    account.create(account_config)
    signal.signal(signal.SIGTERM, lambda *_: done.update(stop=True))
    print(f"sipresence announce ready: udp:{host}:{port}", flush=True)
    def reap() -> None:
        """Hang up the calls whose prompt has ended (in a function: no stray references)."""
        for finished in [call for call in calls if call.finished]:
            calls.remove(finished)
            if finished.isActive():
                finished.hangup(pj.CallOpParam())
                ending.append(finished)
            done["calls"] += 1
            if max_calls and done["calls"] >= max_calls:
                done["stop"] = True
        ending[:] = [call for call in ending if call.isActive()]

    while not done["stop"]:
        ep.libHandleEvents(20)
        reap()
    # Stopping: hang up what is still going, give the BYEs two seconds, and let go of
    # every pjsua2 object before the library goes (their destructors call into it).
    for call in calls:
        if call.isActive():
            call.hangup(pj.CallOpParam())
    ending += calls
    calls.clear()
    for _ in range(100):
        ending[:] = [call for call in ending if call.isActive()]
        if not ending:
            break
        ep.libHandleEvents(20)
    ending.clear()
    account.shutdown()
    del account
    gc.collect()  # a Call and its Player refer to each other
    for _ in range(10):
        ep.libHandleEvents(20)
    ep.libDestroy()
    print(f"sipresence announce stopped after {done['calls']} calls", flush=True)
    return 0
