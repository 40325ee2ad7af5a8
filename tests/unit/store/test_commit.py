"""Group commit: answers wait for the commit of what they acknowledge (issue 9.1, 9.2)."""

from __future__ import annotations

from sipresence.presence.agent import CHANGES_STATE, Agent
from sipresence.presence.journal import Journal
from sipresence.sip.endpoint import Endpoint
from sipresence.sip.message import Response
from sipresence.sip.parser import parse_datagram
from sipresence.sip.transport import Peer, Transmit
from sipresence.store.commit import GroupCommit

PEER = Peer("UDP", "127.0.0.1", 5070, None, ("127.0.0.1", 5060))


class Store:
    """Takes batches and lets the test say when each is committed."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[str, object, object]]] = []

    def submit(self, ops) -> int:
        self.batches.append(list(ops))
        return len(self.batches)


def gate(journal=None, store=None, **kwargs):
    journal = journal if journal is not None else Journal()
    store = store or Store()
    return journal, store, GroupCommit(journal, store.submit, lambda t: t, **kwargs)


def t(name: str) -> Transmit:
    return Transmit(name.encode(), PEER)


def test_without_changes_everything_goes_at_once():
    _, store, commit = gate()
    assert commit.gate([t("a")], 0.0) == [t("a")]
    assert store.batches == []


def test_an_answer_after_a_change_waits_for_its_commit_and_later_ones_wait_behind_it():
    journal, store, commit = gate()
    journal.put("publication", "e1", object())
    assert commit.gate([t("200")], 0.0) == []
    assert len(store.batches) == 1
    # No change of its own (an OPTIONS answer, a retransmitted 200): it must not
    # overtake the commit.
    assert commit.gate([t("retransmitted 200")], 0.0) == []
    assert commit.committed(1, None, 0.01) == [t("200"), t("retransmitted 200")]
    assert commit.gate([t("later")], 0.02) == [t("later")]


def test_changes_made_during_a_commit_form_the_next_batch_whole():
    journal, store, commit = gate()
    journal.put("publication", "e1", "v1")
    commit.gate([t("a")], 0.0)
    for i in range(50):  # a burst while the disk is busy
        journal.put("publication", "e2", f"v{i}")
        journal.put("binding", f"b{i}", "x")
        assert commit.gate([t(f"answer {i}")], 0.0) == []
    assert len(store.batches) == 1
    assert commit.committed(1, None, 0.01) == [t("a")]
    assert commit.gate([], 0.01) == []  # the next batch goes at once, not on a tick
    assert len(store.batches) == 2 and len(store.batches[1]) == 51  # e2 once: its latest
    released = commit.committed(2, None, 0.02)
    assert released == [t(f"answer {i}") for i in range(50)]


def test_the_http_api_hears_when_its_change_is_durable():
    journal, _, commit = gate()
    heard = []
    commit.durable(heard.append)
    assert heard == [None]  # nothing pending
    journal.put("rule", "r", "x")
    commit.durable(heard.append)
    commit.gate([], 0.0)
    assert heard == [None]
    commit.committed(1, None, 0.0)
    assert heard == [None, None]


def stack():
    agent = Agent()
    endpoint = Endpoint(agent)
    store = Store()
    states = []

    def refuse(retry_after):
        agent.refusing = retry_after
        states.append(retry_after)

    def withdraw(transmit):
        return endpoint.withdraw(transmit, methods=CHANGES_STATE, status=500,
                                 reason="Store Failure")

    commit = GroupCommit(agent.journal, store.submit, withdraw, on_state=refuse)
    return agent, endpoint, store, commit, states


def register(cseq=1, branch="z9hG4bK-r1"):
    return (f"REGISTER sip:127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5070;branch={branch};rport\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=f\r\n"
            "To: <sip:alice@127.0.0.1>\r\nCall-ID: reg\r\n"
            f"CSeq: {cseq} REGISTER\r\nContact: <sip:alice@127.0.0.1:5070>\r\n"
            "Expires: 600\r\nContent-Length: 0\r\n\r\n").encode()


def status(transmit):
    message = parse_datagram(transmit.data)
    assert isinstance(message, Response)
    return message.status


def test_a_failed_commit_withdraws_its_2xx_and_changes_are_refused_until_the_store_writes():
    agent, endpoint, store, commit, states = stack()
    endpoint.receive_datagram(register(), PEER, 0.0)
    assert commit.gate(endpoint.transmissions(), 0.0) == []  # held
    [answer] = commit.committed(1, OSError("disk full"), 0.01)
    assert status(answer) == 500  # never the 200
    assert states == [1] and not commit.writable
    # Retransmitted, the REGISTER gets the 500 again (the transaction's answer now).
    endpoint.receive_datagram(register(), PEER, 0.2)
    [again] = commit.gate(endpoint.transmissions(), 0.2)
    assert status(again) == 500
    # A new change is refused before it is made.
    endpoint.receive_datagram(register(2, "z9hG4bK-r2"), PEER, 0.3)
    [refused] = commit.gate(endpoint.transmissions(), 0.3)
    assert status(refused) == 503
    assert parse_datagram(refused.data).headers.get("retry-after") == "1"
    # The store is tried again after the back-off, with what it still owes.
    assert commit.get_timer() == 0.01 + 0.5
    commit.gate([], 0.2)
    assert len(store.batches) == 1
    commit.gate([], 0.6)
    assert len(store.batches) == 2
    assert commit.committed(2, None, 0.61) == []
    assert states == [1, None] and agent.refusing is None
    endpoint.receive_datagram(register(3, "z9hG4bK-r3"), PEER, 0.7)
    assert commit.gate(endpoint.transmissions(), 0.7) == []
    [ok] = commit.committed(3, None, 0.71)
    assert status(ok) == 200


def test_while_the_store_fails_notifies_and_reads_still_go_out_and_back_off_grows():
    journal, store, commit = gate()
    journal.put("publication", "e1", "v")
    commit.gate([t("200")], 0.0)
    commit.committed(1, OSError("locked"), 0.0)
    journal.put("subscription", "s1", "cseq reserved")
    assert commit.gate([t("NOTIFY")], 0.1) == [t("NOTIFY")]
    commit.gate([], 0.5)
    commit.committed(2, OSError("locked"), 0.5)
    assert commit.retry_after == 1 and commit.get_timer() == 1.5
    commit.gate([], 1.5)
    commit.committed(3, OSError("locked"), 1.5)
    assert commit.get_timer() == 3.5 and commit.retry_after == 2
    heard = []
    commit.durable(heard.append)
    assert isinstance(heard[0], OSError)


def test_a_batch_with_rows_the_store_refused_withdraws_its_answers_but_nothing_else():
    """A row no retry could write (left out by the store) must not make one request
    put everyone else's changes on 503."""
    from sipresence.store.base import RowsRefused

    agent, endpoint, store, commit, states = stack()
    endpoint.receive_datagram(register(), PEER, 0.0)
    commit.gate(endpoint.transmissions(), 0.0)
    [answer] = commit.committed(1, RowsRefused("OverflowError"), 0.01)
    assert status(answer) == 500
    assert commit.writable and states == [] and agent.refusing is None
    endpoint.receive_datagram(register(2, "z9hG4bK-r2"), PEER, 0.1)
    assert commit.gate(endpoint.transmissions(), 0.1) == []  # held: the store writes
