"""Every seed with every well-formed but meaningful field value, after a full setup.

Random sessions (``test_sessions.py``) rarely hit one exact field of one exact request;
the values of ``sipgen.MEANINGFUL`` (another user or domain, expiries at the bounds,
stray tags, other packages) are few enough to try them all: each after the same
setup (a PIDF and a dialog-info publication, a registration, subscriptions to the
three packages, their NOTIFYs answered), in a fresh stack that checks every invariant.
"""

from __future__ import annotations

import pytest

from sipresence.presence.agent import AgentConfig
from tests.support.fuzzstack import SEEDS, Stack, deterministic_ids
from tests.support.sipgen import MEANINGFUL, Session, SetField, Step, run

SETUP = ("publish-pidf", "publish-dialog", "register", "subscribe-presence", "subscribe-winfo",
         "subscribe-dialog", *["notify-200"] * 5)
CONFIGS = {
    "plain": {},
    "domains": {"domains": ("example.com",), "config": AgentConfig(sub_handling="confirm")},
    "digest": {"config": AgentConfig(realm="sipresence", users={"alice": "secret"})},
}


@pytest.mark.parametrize(("config", "seed"), [
    pytest.param(config, seed, id=f"{config}-{seed}")
    for config in CONFIGS for seed in sorted(SEEDS)])
def test_every_meaningful_field_value_keeps_every_promise(config, seed):
    for name, values in MEANINGFUL.items():
        for value in values:
            mutated = Step(seed, (SetField(name, value),))
            with deterministic_ids():
                run(Stack(**CONFIGS[config]), Session([*map(Step, SETUP), mutated]))
