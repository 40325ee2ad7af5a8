"""RFC 3261 section 17 transactions, driven by events and a fake clock."""

from __future__ import annotations

import pytest

from sipresence.sip.transaction import (
    Deliver,
    Event,
    Failed,
    InviteServer,
    NonInviteClient,
    NonInviteServer,
    Send,
    State,
    Timeout,
    TimerConfig,
    TransactionError,
)

T = TimerConfig()  # T1 = 0.5 s, T2 = 4 s, T4 = 5 s


def run_until(tx, end: float, step: float = 0.01):
    """Advance a fake clock to *end*, firing due timers; return (time, effect) pairs."""
    out = []
    now = 0.0
    while now <= end + 1e-9:
        deadline = tx.next_deadline()
        if deadline is None or deadline > end:
            break
        now = deadline
        out += [(round(now, 6), effect) for effect in tx.handle_timers(now)]
    return out


# -- non-INVITE server (figure 8) -------------------------------------------------------

def test_non_invite_server_absorbs_retransmissions_in_trying():
    tx = NonInviteServer("k", reliable=False, config=T)
    assert tx.state is State.TRYING
    assert tx.handle(Event.REQUEST, 0.1) == []


def test_non_invite_server_resends_final_and_ends_after_timer_j():
    tx = NonInviteServer("k", reliable=False, config=T)
    assert tx.handle(Event.FINAL_OUT, 0.0, b"200") == [Send(b"200")]
    assert tx.state is State.COMPLETED
    assert tx.handle(Event.REQUEST, 1.0) == [Send(b"200")]
    assert tx.next_deadline() == pytest.approx(64 * T.t1)  # timer J
    assert tx.handle_timers(31.9) == []
    assert tx.handle_timers(32.0) == []
    assert tx.terminated


def test_non_invite_server_on_reliable_transport_ends_at_once():
    tx = NonInviteServer("k", reliable=True, config=T)
    tx.handle(Event.FINAL_OUT, 0.0, b"200")
    assert tx.terminated  # timer J is zero on reliable transports
    assert tx.next_deadline() is None


def test_non_invite_server_resends_last_provisional_in_proceeding():
    tx = NonInviteServer("k", reliable=False, config=T)
    tx.handle(Event.PROVISIONAL_OUT, 0.0, b"100")
    assert tx.state is State.PROCEEDING
    assert tx.handle(Event.REQUEST, 0.2) == [Send(b"100")]
    tx.handle(Event.FINAL_OUT, 0.3, b"202")
    assert tx.handle(Event.REQUEST, 0.4) == [Send(b"202")]


def test_a_second_final_response_is_a_programming_error():
    tx = NonInviteServer("k", reliable=False, config=T)
    tx.handle(Event.FINAL_OUT, 0.0, b"200")
    with pytest.raises(TransactionError):
        tx.handle(Event.FINAL_OUT, 0.1, b"500")


def test_transport_error_terminates_and_reports():
    tx = NonInviteServer("k", reliable=False, config=T)
    assert tx.handle(Event.TRANSPORT_ERROR, 0.0) == [Failed()]
    assert tx.terminated


# -- INVITE server (figure 7, RFC 6026) --------------------------------------------------

def test_invite_server_retransmits_error_with_timer_g_until_timer_h():
    tx = InviteServer("k", reliable=False, config=T)
    assert tx.state is State.PROCEEDING
    assert tx.handle(Event.FINAL_OUT, 0.0, b"486") == [Send(b"486")]
    fired = run_until(tx, 40.0)
    sends = [t for t, effect in fired if isinstance(effect, Send)]
    # G doubles from T1 up to T2: 0.5, 1.5, 3.5, 7.5, then every 4 s until H at 32 s.
    assert sends == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert fired[-1] == (32.0, Timeout())
    assert tx.terminated


def test_invite_server_ack_stops_retransmission_and_timer_i_ends_it():
    tx = InviteServer("k", reliable=False, config=T)
    tx.handle(Event.FINAL_OUT, 0.0, b"486")
    tx.handle_timers(0.5)  # one retransmission
    assert tx.handle(Event.ACK, 0.7) == []
    assert tx.state is State.CONFIRMED
    assert tx.handle(Event.ACK, 0.8) == []  # further ACKs absorbed
    assert tx.handle(Event.REQUEST, 0.9) == []  # so are INVITE retransmissions
    assert tx.next_deadline() == pytest.approx(0.7 + T.t4)  # timer I
    assert tx.handle_timers(0.7 + T.t4) == []
    assert tx.terminated


def test_invite_server_in_completed_resends_on_invite_retransmission():
    tx = InviteServer("k", reliable=False, config=T)
    tx.handle(Event.FINAL_OUT, 0.0, b"480")
    assert tx.handle(Event.REQUEST, 0.2) == [Send(b"480")]


def test_invite_server_reliable_has_no_timer_g_and_ack_ends_it():
    tx = InviteServer("k", reliable=True, config=T)
    tx.handle(Event.FINAL_OUT, 0.0, b"486")
    assert tx.next_deadline() == pytest.approx(64 * T.t1)  # only H
    tx.handle(Event.ACK, 0.1)
    assert tx.terminated  # timer I is zero on reliable transports


def test_invite_server_2xx_goes_to_accepted_and_timer_l():
    tx = InviteServer("k", reliable=False, config=T)
    tx.handle(Event.SUCCESS_OUT, 0.0, b"200")
    assert tx.state is State.ACCEPTED
    assert tx.handle(Event.REQUEST, 0.1) == []  # absorbed, RFC 6026 section 7.1
    assert tx.handle(Event.SUCCESS_OUT, 0.5, b"200") == [Send(b"200")]
    assert tx.handle_timers(32.0) == []
    assert tx.terminated


# -- non-INVITE client (figure 6) --------------------------------------------------------

def test_non_invite_client_retransmits_with_timer_e_and_times_out_with_f():
    tx = NonInviteClient("k", reliable=False, config=T)
    assert tx.start(b"NOTIFY", 0.0) == [Send(b"NOTIFY")]
    fired = run_until(tx, 40.0)
    sends = [t for t, effect in fired if isinstance(effect, Send)]
    assert sends == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert fired[-1] == (32.0, Timeout())
    assert tx.terminated


def test_non_invite_client_after_provisional_retransmits_every_t2():
    tx = NonInviteClient("k", reliable=False, config=T)
    tx.start(b"NOTIFY", 0.0)
    tx.handle_timers(0.5)
    assert tx.handle(Event.PROVISIONAL_IN, 0.6) == []
    assert tx.state is State.PROCEEDING
    fired = run_until(tx, 12.0)
    assert [t for t, e in fired if isinstance(e, Send)][:3] == [1.5, 5.5, 9.5]


def test_non_invite_client_delivers_final_once_and_absorbs_repeats():
    tx = NonInviteClient("k", reliable=False, config=T)
    tx.start(b"NOTIFY", 0.0)
    assert tx.handle(Event.FINAL_IN, 0.2, response="200") == [Deliver("200")]
    assert tx.state is State.COMPLETED
    assert tx.handle(Event.FINAL_IN, 0.3, response="200") == []  # retransmitted 200
    assert tx.next_deadline() == pytest.approx(0.2 + T.t4)  # timer K, no E or F left
    tx.handle_timers(5.2)
    assert tx.terminated


def test_non_invite_client_on_reliable_transport_never_retransmits():
    tx = NonInviteClient("k", reliable=True, config=T)
    tx.start(b"NOTIFY", 0.0)
    assert tx.next_deadline() == pytest.approx(32.0)  # F only
    assert tx.handle(Event.FINAL_IN, 1.0, response="481") == [Deliver("481")]
    assert tx.terminated  # K is zero on reliable transports


def test_unknown_network_events_are_absorbed():
    tx = NonInviteClient("k", reliable=False, config=T)
    tx.start(b"NOTIFY", 0.0)
    assert tx.handle(Event.ACK, 0.1) == []
    assert tx.state is State.TRYING


@pytest.mark.parametrize("kind", [NonInviteServer, InviteServer, NonInviteClient])
def test_no_row_leaves_the_terminated_state(kind):
    """Terminated is final: no table has a row that starts from it."""
    assert not any(state is State.TERMINATED for state, _ in kind.TABLE)
