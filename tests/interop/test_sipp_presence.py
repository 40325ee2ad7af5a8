"""SIPp scenarios for PUBLISH, SUBSCRIBE/NOTIFY and the error answers, against the agent."""

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


@pytest.mark.parametrize("scenario", ["publish.xml", "subscribe.xml", "errors.xml"])
@pytest.mark.parametrize("transport, kind", [("u1", "udp"), ("t1", "tcp")])
def test_scenario_succeeds(agent, tmp_path, scenario, transport, kind):
    result = run_sipp(scenario, agent.address(kind), tmp_path, calls=50, rate=50,
                      transport=transport, timeout=30)
    assert result.returncode == 0, result.output[-3000:]
    assert (result.successful, result.failed) == (50, 0)
