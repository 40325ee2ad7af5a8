"""Fuzzing the whole sans-IO agent with mutated SIP sessions (issue 9, point 4).

Each example is a session of seed messages (PUBLISH with PIDF and dialog-info bodies,
SUBSCRIBE for presence, presence.winfo and dialog, refreshes, REGISTER, INVITE, CANCEL,
OPTIONS, NOTIFY answers), some mutated (``tests/support/sipgen.py``), fed to Agent +
Endpoint as datagrams or over a stream.  After every input the stack checks its
promises (``tests/support/fuzzstack.py``): nothing escapes, everything sent parses,
an error answer changes no state, every journal row can be written by SQLite.

Deterministic by default (derandomized, no example database), bounded for ``make test``.
``FUZZ_EXAMPLES=20000 pytest tests/unit/fuzz`` runs a longer, randomized pass.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings

from sipresence.presence.agent import AgentConfig
from tests.support.fuzzstack import Stack, deterministic_ids
from tests.support.sipgen import Session, run, session

_LONG = int(os.environ.get("FUZZ_EXAMPLES", "0"))
SETTINGS = settings(
    max_examples=_LONG or 250, deadline=None, derandomize=not _LONG, database=None,
    report_multiple_bugs=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SMALL = settings(SETTINGS, max_examples=_LONG or 120)


def _run(s: Session, **stack_options: object) -> None:
    with deterministic_ids():
        run(Stack(**stack_options), s)  # type: ignore[arg-type]


@SETTINGS
@given(session())
def test_datagram_sessions_keep_every_promise(s):
    _run(s)


@SMALL
@given(session(stream=True))
def test_stream_sessions_keep_every_promise(s):
    _run(s)


@SMALL
@given(session())
def test_sessions_keep_every_promise_with_domains_and_confirmation(s):
    # A served domain and pending watchers: 404, 202 and rule decisions come into play.
    _run(s, domains=("example.com",), config=AgentConfig(sub_handling="confirm"))


@SMALL
@given(session())
def test_sessions_keep_every_promise_with_digest_authentication(s):
    # Every REGISTER, PUBLISH and SUBSCRIBE is challenged; broken Authorization values
    # must be refused with an answer, never crash, and a 401 changes nothing.
    _run(s, config=AgentConfig(realm="sipresence", users={"alice": "secret"}))
