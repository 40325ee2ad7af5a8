"""SIPp, a real SIP implementation, against the running agent."""

from __future__ import annotations

import pytest

from tests.support.server import start_server
from tests.support.sipp import run_sipp, sipp_available

pytestmark = [pytest.mark.interop,
              pytest.mark.skipif(not sipp_available(), reason="sipp (Debian sip-tester) missing")]


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("agent"), http=None)
    yield server
    assert server.stop() == 0


@pytest.mark.parametrize("transport, kind", [("u1", "udp"), ("t1", "tcp")])
def test_sipp_options_all_answered(agent, tmp_path, transport, kind):
    result = run_sipp("options.xml", agent.address(kind), tmp_path, calls=300, rate=200,
                      transport=transport, timeout=30)
    assert result.returncode == 0, result.output[-2000:]
    assert (result.successful, result.failed) == (300, 0)
