"""Admission control without a reactor: lags in, the share admitted out."""

from __future__ import annotations

from sipresence.sip.admission import Admission


def test_the_admitted_share_is_spread_evenly():
    admission = Admission(admit=0.25)
    taken = [admission.admits() for _ in range(12)]
    assert taken == [False, False, False, True] * 3


def test_a_burst_is_not_overload_a_streak_is_and_the_change_is_reported_once():
    admission = Admission(max_lag=0.1, streak=3, decrease=0.5, settle=0.0, step=0.25)
    assert admission.tick(0.4, 1.0) is None  # one late tick: a burst
    assert admission.tick(0.0, 1.1) is None and not admission.overloaded
    assert [admission.tick(0.2, t) for t in (1.2, 1.3)] == [None, None]
    assert admission.tick(0.2, 1.4) == "overloaded" and admission.admit == 0.5
    assert admission.late_ticks == 3
    assert admission.tick(0.2, 1.5) is None and admission.admit == 0.25
    assert admission.tick(0.0, 1.6) is None and admission.admit == 0.5
    assert admission.tick(0.0, 1.7) is None
    assert admission.tick(0.0, 1.8) == "recovered" and admission.admit == 1.0
    assert all(admission.admits() for _ in range(5))
