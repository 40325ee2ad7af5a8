"""The RFC 4475 and RFC 5118 torture messages as one corpus, and their top Via renamed.

Tests that send the messages somewhere real must not let the agent answer to the
example addresses written in them (192.0.2.x, 2001:db8::): :func:`rename_via` puts a
name under ``.invalid`` (RFC 6761: never resolves) in the top Via's sent-by instead,
wherever line folding and white space put it (RFC 4475 ``wsinv``).
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.sipcheck import load_corpus

_CORPORA = Path(__file__).parent.parent / "unit" / "sip"

# The top Via's sent-by host and port, LWS and folding allowed around every separator.
_TOP_VIA = re.compile(
    rb"(?im)^((?:via|v)[ \t]*:\s*SIP\s*/\s*[0-9.]+\s*/\s*[A-Za-z]+\s+)"
    rb"(\[[^\]\r\n]*\]|[^\s:;,]+)((?:\s*:\s*[0-9]+)?)([^\r\n]*)")


def _rfc5118_wire(data: bytes) -> bytes:
    """The archive's bare-LF message as a SIP element receives it (see test_rfc5118)."""
    data = data.replace(b"\n", b"\r\n")
    return data if b"\r\n\r\n" in data else data + b"\r\n"


MESSAGES: dict[str, bytes] = {
    **load_corpus(_CORPORA / "rfc4475"),
    **{name: _rfc5118_wire(data) for name, data in load_corpus(_CORPORA / "rfc5118").items()},
}
# The messages that are responses: never answered.
RESPONSES = frozenset({"bcast", "bigcode", "noreason", "scalarlg", "unreason"})


def rename_via(data: bytes, host: bytes, *, rport: bool = False) -> bytes:
    """*data* with the top Via's host replaced by *host* (its port kept), and with
    ``;rport`` after the sent-by when *rport* is set and the Via has none."""

    def rename(m: re.Match[bytes]) -> bytes:
        params = m.group(4)
        asked = rport and not re.search(rb"(?i);\s*rport\b", params)
        return m.group(1) + host + m.group(3) + (b";rport" if asked else b"") + params

    return _TOP_VIA.sub(rename, data, count=1)
