"""The NOTIFY flow's state table, row by row (presence/subscription.py)."""

from __future__ import annotations

import pytest

from sipresence.presence.subscription import (
    FlowAction,
    FlowError,
    FlowEvent,
    FlowState,
    NotifyFlow,
)

E, S, A = FlowEvent, FlowState, FlowAction


def walk(*events: FlowEvent) -> tuple[NotifyFlow, list[tuple[FlowAction, ...]]]:
    flow = NotifyFlow()
    return flow, [flow.flow_event(event) for event in events]


def test_a_change_is_queued_once_and_sent():
    flow, actions = walk(E.CHANGE, E.CHANGE, E.SEND)
    assert actions == [(A.QUEUE,), (), ()] and flow.flow_state is S.IN_FLIGHT and flow.in_flight


def test_changes_while_in_flight_coalesce_into_one_queued_after_the_answer():
    flow, actions = walk(E.CHANGE, E.SEND, E.CHANGE, E.CHANGE, E.OK)
    assert actions[-3:] == [(), (), (A.QUEUE,)] and flow.flow_state is S.DUE


def test_an_answer_with_nothing_waiting_leaves_it_idle():
    flow, _ = walk(E.CHANGE, E.SEND, E.OK)
    assert flow.flow_state is S.IDLE and not flow.due


def test_a_transient_failure_waits_for_the_retry_timer_and_counts():
    flow, actions = walk(E.CHANGE, E.SEND, E.TRANSIENT)
    assert actions[-1] == (A.RETRY_LATER,) and flow.flow_state is S.RETRY and flow.failures == 1
    assert flow.due  # the state of that moment goes out with the retry
    assert flow.flow_event(E.CHANGE) == () and flow.flow_state is S.RETRY
    assert flow.flow_event(E.RETRY_TIMER) == (A.QUEUE,) and flow.flow_state is S.DUE
    flow.flow_event(E.SEND)
    flow.flow_event(E.OK)
    assert flow.failures == 0


def test_a_fatal_answer_drops_the_watcher_and_nothing_follows():
    flow, actions = walk(E.CHANGE, E.SEND, E.CHANGE, E.FATAL)
    assert actions[-1] == (A.DROP,) and flow.flow_state is S.DONE
    assert [flow.flow_event(e) for e in (E.CHANGE, E.OK, E.RETRY_TIMER)] == [(), (), ()]


@pytest.mark.parametrize("events", [(), (E.CHANGE, E.SEND), (E.CHANGE, E.SEND, E.TRANSIENT)])
def test_sending_what_is_not_due_is_a_bug(events):
    flow, _ = walk(*events)
    with pytest.raises(FlowError):
        flow.flow_event(E.SEND)


@pytest.mark.parametrize("event", [E.OK, E.TRANSIENT, E.FATAL, E.RETRY_TIMER])
def test_remote_events_with_nothing_in_flight_are_absorbed(event):
    flow = NotifyFlow()
    assert flow.flow_event(event) == () and flow.flow_state is S.IDLE
