"""The announcement's prompts and how it picks one: no pjsua2 needed."""

from __future__ import annotations

import wave

from sipresence.media.announce import _reason
from sipresence.media.tones import RATE, busy, unavailable, write_prompts


def test_prompts_are_8khz_mono_wavs_of_tone_and_silence(tmp_path):
    paths = write_prompts(tmp_path / "prompts")
    for name, samples in (("busy", busy()), ("unavailable", unavailable())):
        with wave.open(str(paths[name])) as prompt:
            assert (prompt.getframerate(), prompt.getnchannels(), prompt.getsampwidth()) == (
                RATE, 1, 2)
            assert prompt.getnframes() == len(samples)
        assert max(abs(s) for s in samples) > 5000  # audible
        assert samples.count(0) > RATE // 4  # with pauses: a cadence, not a drone
    assert len(busy()) == 4 * RATE  # four half-second cycles on and off


def invite(uri: str) -> str:
    return (f"INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n"
            "From: <sip:carol@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\n"
            "Call-ID: c1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")


def test_the_request_uri_user_picks_the_prompt():
    assert _reason(invite("sip:busy@127.0.0.1:5090")) == "busy"
    assert _reason(invite("sip:unavailable@127.0.0.1:5090")) == "unavailable"
    assert _reason(invite("sip:voicemail@127.0.0.1:5090")) == "unavailable"
    assert _reason("not SIP at all") == "unavailable"
