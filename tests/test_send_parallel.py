"""Several SMTP connections at once (`[smtp] connections`), every message still once through the ledger.

The ledger rows are what the senders share: a sender takes a row by turning it from
'pending' into 'sending' in one short transaction, so of two senders that reach one row
only one hands the message over. Real aiosmtpd on 127.0.0.1, a real SQLite file.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from mailserver import Faults, MailServer, outgoing_for, profile, save_digests
from test_build_golden import EXPECTED, build
from test_deliver import FAST, assert_exactly_one_each, clock, smtp

from digest.deliver import Outgoing, outbox_name, send_digests
from digest.models import DeliveryState, TransportKind
from digest.rows import DeliveryKey
from digest.store import Store, open_store

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def many(store: Store, profiles: int = 10, readers: int = 4) -> tuple[list[Outgoing], list[str]]:
    """`profiles` digests of `readers` subscribers each, saved; their messages and addresses."""
    made = [profile(f"topic-{p}", [f"reader{p}-{r}@example.org" for r in range(readers)]) for p in range(profiles)]
    digests = save_digests(store, made, papers=2)
    return outgoing_for(digests), [address for p in made for address in p.subscribers]


def send(store: Store, port: int, outgoing: list[Outgoing], tmp_path: Path, connections: int):
    return send_digests(
        store, smtp(port), outgoing, outbox=tmp_path / "outbox", clock=clock, retry=FAST, connections=connections
    )


def test_several_connections_send_each_message_once(store: Store, tmp_path: Path) -> None:
    outgoing, addresses = many(store)
    with MailServer(faults=Faults(rcpt_delay=0.005)) as server:
        report = send(store, server.port, outgoing, tmp_path, connections=4)
        assert len(report.sent) == 40 and report.complete and not report.possible_duplicates
        assert_exactly_one_each(server, addresses)
        assert len({m.peer for m in server.messages}) > 1  # several connections did send
    rows = store.deliveries()
    assert {r.state for r in rows} == {DeliveryState.SENT} and {r.attempts for r in rows} == {1}
    # Each message went with its own ledger row's Message-ID.
    sent_ids = sorted(str(m.message["Message-ID"]) for m in server.messages)
    assert sent_ids == sorted(r.message_id for r in rows)


def test_connections_dropped_in_the_middle_of_a_batch_lose_and_duplicate_nothing(store: Store, tmp_path: Path) -> None:
    # Three connections are cut while a message's body is on its way: the server keeps nothing
    # of those, the senders reconnect and send them again. A sender that learns of the cut only
    # after writing the final "." (a busy machine) cannot know the server kept nothing: it
    # leaves that message to the next run, flagged, which sends it once.
    outgoing, addresses = many(store)
    with MailServer(faults=Faults(drop_in_data=3)) as server:
        report = send(store, server.port, outgoing, tmp_path, connections=4)
        late = [key for key, _ in report.pending]
        assert len(report.sent) + len(late) == 40 and len(late) <= 3 and not report.failed
        again = send(store, server.port, outgoing, tmp_path, connections=4)
        assert sorted(again.sent) == sorted(late) and again.complete
        assert_exactly_one_each(server, addresses)
    assert {r.state for r in store.deliveries()} == {DeliveryState.SENT}


def test_an_answer_lost_after_acceptance_is_flagged_and_sent_again_only_once(store: Store, tmp_path: Path) -> None:
    # The server keeps one message and the connection drops before its answer: that row
    # waits for the next run, flagged; every other message arrives once, in this run.
    outgoing, addresses = many(store)
    with MailServer(faults=Faults(drop_after_accept=1)) as server:
        first = send(store, server.port, outgoing, tmp_path, connections=4)
        assert len(first.sent) == 39 and len(first.pending) == 1
        ((lost, _),) = first.pending
        flagged = store.get_delivery(lost)
        assert flagged is not None and flagged.possible_duplicate and flagged.state == DeliveryState.PENDING
        second = send(store, server.port, outgoing, tmp_path, connections=4)
        assert second.sent == [lost] and second.already == 39 and second.possible_duplicates == [lost]
        received = server.by_recipient()
        assert len(received[lost.subscriber]) == 2  # the copy the ledger says may be a duplicate
        assert all(len(copies) == 1 for address, copies in received.items() if address != lost.subscriber)
        assert sorted(received) == sorted(addresses)


def test_of_two_senders_that_reach_the_same_row_only_one_hands_it_over(store: Store, tmp_path: Path) -> None:
    # The same message twice in one batch, on two connections at once: both senders read
    # the row while it is 'pending' (the server takes its time over RCPT) and both send
    # the body; the one that takes the row ('sending') writes the final "."; the other
    # finds it taken and abandons its copy before the ".", so the server keeps one.
    (item,) = outgoing_for(save_digests(store, [profile("solo", ["ada@example.org"])]))
    with MailServer(faults=Faults(rcpt_delay=0.3)) as server:
        report = send(store, server.port, [item, item], tmp_path, connections=2)
        assert server.rcpt_count == 2  # both senders went for the row
        assert len(server.messages) == 1
    assert len(report.sent) == 1 and report.already == 1
    (row,) = store.deliveries()
    assert row.state == DeliveryState.SENT and row.attempts == 1 and not row.possible_duplicate


def test_a_rollup_and_the_daily_email_of_its_last_day_are_taken_apart(store: Store) -> None:
    # A roll-up's row has its period's last day: taking one took both, the batch counted the
    # message "done before", and the roll-up was never sent.
    daily = DeliveryKey("p", NOW.date(), "ada@example.org")
    weekly = DeliveryKey("p", NOW.date(), "ada@example.org", "2026-W01")
    store.add_deliveries([daily, weekly], lambda k: f"<{k.period or 'day'}@example.org>", TransportKind.SMTP, NOW)
    assert store.mark_delivery_sending(weekly, NOW, batch="run-a") is True
    assert [store.get_delivery(k).state for k in (daily, weekly)] == ["pending", "sending"]  # type: ignore[union-attr]
    assert store.resume_interrupted_delivery(weekly, NOW, "died", batch="run-b") is True
    assert store.get_delivery(daily).possible_duplicate is False  # type: ignore[union-attr]
    assert store.mark_delivery_sending(daily, NOW, batch="run-b") is True


def test_a_row_is_taken_by_one_sender_only(store: Store, tmp_path: Path) -> None:
    key = DeliveryKey("p", NOW.date(), "ada@example.org")
    store.add_deliveries([key], lambda k: "<1@example.org>", TransportKind.SMTP, NOW)
    other = open_store(store.path)  # a second sender: its own connection to the same file
    try:
        assert store.mark_delivery_sending(key, NOW, batch="run-a") is True
        assert other.mark_delivery_sending(key, NOW, batch="run-a") is False
        # A row this run took is being sent by one of its senders: never resumed by this run...
        assert other.resume_interrupted_delivery(key, NOW, "note", batch="run-a") is False
        assert other.get_delivery(key).state == DeliveryState.SENDING  # type: ignore[union-attr]
        # ...while a later run (the first died: it held the send lock) resumes it, flagged.
        assert other.resume_interrupted_delivery(key, NOW, "note", batch="run-b") is True
        row = other.get_delivery(key)
        assert row is not None and row.state == DeliveryState.PENDING and row.possible_duplicate and row.attempts == 1
    finally:
        other.close()


def test_a_build_sends_over_several_connections_what_one_process_writes_to_the_outbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The seeds built with two worker processes (which render the emails) and sent over
    # three SMTP connections: each subscriber gets one message, byte for byte the .eml the
    # one-process build writes to its outbox (the golden copy).
    with MailServer() as server:
        tables = f'\n[smtp]\nhost = "127.0.0.1"\nport = {server.port}\nsecurity = "none"\nconnections = 3\n'
        code, stdout, stderr = build(
            tmp_path, monkeypatch, capsys, "workers = 2\nshard_size = 1", tables=tables, args=("run", "--send")
        )
        assert code == 1, stdout + stderr  # 1: the hostile dump's truncated entry, as in the golden build
        assert "smtp: 6 sent" in stdout
        received = server.by_recipient()
    assert all(len(copies) == 1 for copies in received.values()) and len(received) == 6
    store = open_store(tmp_path / ".digest" / "state.db")
    try:
        rows = store.deliveries()
    finally:
        store.close()
    assert {r.state for r in rows} == {DeliveryState.SENT}
    for row in rows:
        (message,) = received[row.subscriber]
        assert message.data == (EXPECTED / "outbox" / outbox_name(row.key)).read_bytes()
