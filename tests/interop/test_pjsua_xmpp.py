"""pjsua2 and a chat client through the bridge and a real Prosody: a softphone's buddy
list shows a chat user's presence, and the chat user sees the softphone's."""

from __future__ import annotations

import pytest

from tests.integration.test_xmpp_bridge import agent_config, prosody, watched  # noqa: F401
from tests.interop.test_pjsua_presence import buddy
from tests.support.pjsua import PjsuaUA, pjsua_available
from tests.support.prosody import COMPONENT, SIP_DOMAIN, XMPP_DOMAIN, ChatUser, prosody_missing
from tests.support.server import start_server

pytestmark = [pytest.mark.interop,
              pytest.mark.skipif(not pjsua_available(), reason="pjsua2-python not installed"),
              pytest.mark.skipif(prosody_missing() is not None, reason=prosody_missing() or "")]


def test_a_pjsua_buddy_sees_a_chat_user_go_away_and_come_back(tmp_path, prosody):  # noqa: F811
    agent = start_server(tmp_path, "--config", agent_config(tmp_path / "agent.toml", prosody))
    agent.wait_for_line("is online")
    chat = ChatUser(f"carol@{XMPP_DOMAIN}", prosody.c2s)  # says yes to requests
    phone = PjsuaUA(agent.udp, "paula", domain=SIP_DOMAIN)
    try:
        phone.command(cmd="subscribe", uri=f"sip:carol@{XMPP_DOMAIN}")
        phone.wait_for(buddy("online"))  # Carol said yes; she is online in chat

        chat.call(chat.client.send_presence, pshow="away", pstatus="Back in ten")
        phone.wait_for(buddy("online", "Back in ten", "away"))
        chat.call(chat.client.send_presence, pshow="dnd", pstatus="Presenting")
        phone.wait_for(buddy("online", "Presenting", "busy"))
        chat.call(chat.client.send_presence, pstatus="Back")
        phone.wait_for(buddy("online", "Back", "unknown"))

        # And the other way: the softphone publishes, the chat user watches it.
        chat.call(chat.client.send_presence, pto=f"paula@{COMPONENT}", ptype="subscribe")
        phone.command(cmd="publish", online=True, activity="busy", note="On a deadline")
        watched(chat, f"paula@{COMPONENT}", "dnd", "On a deadline")

        chat.close()  # Carol logs out
        phone.wait_for(buddy("offline"))
    finally:
        phone.close()
        agent.stop()
