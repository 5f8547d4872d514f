"""Delivery through the ledger to a real SMTP server on 127.0.0.1, with failures injected."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from conftest import TODAY, run_digest
from filelock import FileLock
from mailserver import SENDER, Faults, MailServer, digest_message, outgoing_for, profile, save_digests

from digest.config import SmtpSettings
from digest.deliver import (
    RETRY_DAYS,
    DeliveryError,
    Outgoing,
    RetryPolicy,
    batch,
    give_up_stale_emails,
    outbox_name,
    plan_deliveries,
    send_digests,
)
from digest.models import TransportKind
from digest.store import Store, open_store

FAST = RetryPolicy(attempts=4, backoff=0.01, backoff_max=0.05, jitter=0.0, max_connection_failures=5)
TESTS = Path(__file__).resolve().parent

ADA, ALAN, GRACE, EDSGER = "ada@example.org", "alan@example.org", "grace@example.org", "edsger@example.org"


def clock() -> datetime:
    return datetime.now(UTC)


def smtp(port: int, **extra: Any) -> SmtpSettings:
    return SmtpSettings(**{"host": "127.0.0.1", "port": port, "security": "none", "timeout": 5, **extra})


def send(store: Store, port: int | None, outgoing: list[Outgoing], tmp_path: Path, **extra: Any):
    settings = smtp(port) if port is not None else None
    return send_digests(store, settings, outgoing, outbox=tmp_path / "outbox", clock=clock, retry=FAST, **extra)


def two_profiles(store: Store) -> list[Outgoing]:
    digests = save_digests(store, [profile("continual-learning", [ADA]), profile("llm-rl", [ALAN, GRACE, EDSGER])])
    return outgoing_for(digests)


def states(store: Store) -> dict[str, str]:
    return {row.subscriber: row.state for row in store.deliveries()}


def assert_exactly_one_each(server: MailServer, addresses: list[str]) -> None:
    received = server.by_recipient()
    assert sorted(received) == sorted(addresses)
    assert all(len(copies) == 1 for copies in received.values()), {a: len(c) for a, c in received.items()}


def test_a_batch_arrives_once_with_its_headers(store: Store, tmp_path: Path) -> None:
    outgoing = two_profiles(store)
    with MailServer() as server:
        report = send(store, server.port, outgoing, tmp_path)
        assert len(report.sent) == 4 and report.complete and report.stopped is None
        assert_exactly_one_each(server, [ADA, ALAN, GRACE, EDSGER])
        ledger = {row.subscriber: row for row in store.deliveries()}
        for address, (received,) in server.by_recipient().items():
            message = received.message
            row = ledger[address]
            assert received.mail_from == "digest@example.org" and received.rcpt_tos == (address,)
            assert message["Message-ID"].strip() == row.message_id and message["To"] == address
            assert (row.state, row.attempts, row.transport, row.possible_duplicate) == ("sent", 1, "smtp", False)
            assert message["Subject"].endswith(f"— {TODAY:%a %d %b %Y} ✓")
            assert message["Subject"].startswith("3 new papers for ")
            assert message["List-Unsubscribe"].strip().startswith("<https://example.org/paper-digest/unsubscribe?")
            assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            assert message.get_content_type() == "multipart/alternative"
            parts = [part.get_content_type() for part in message.iter_parts()]
            assert parts == ["text/plain", "text/html"]
            text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
            assert text.startswith("Für dich") and "\n.\n.leading dot\n" in text  # dot-stuffing undone
        assert len({row.message_id for row in ledger.values()}) == 4
        assert store.digest_state("continual-learning", TODAY) == "delivered"
        assert store.digest_state("llm-rl", TODAY) == "delivered"

        again = send(store, server.port, outgoing, tmp_path)
        assert (len(again.sent), again.already) == (0, 4)
        assert len(server.messages) == 4


def test_a_subscriber_added_later_gets_only_their_copy(store: Store, tmp_path: Path) -> None:
    outgoing = two_profiles(store)
    with MailServer() as server:
        send(store, server.port, outgoing[:2], tmp_path)
        report = send(store, server.port, outgoing, tmp_path)
        assert (len(report.sent), report.already) == (2, 2)
        assert_exactly_one_each(server, [ADA, ALAN, GRACE, EDSGER])


def test_temporary_failures_are_retried_until_each_arrives_once(store: Store, tmp_path: Path) -> None:
    outgoing = two_profiles(store)
    faults = Faults(
        rcpt={ALAN: ["451 4.7.1 greylisted, try again later"], GRACE: ["452 4.2.2 mailbox full", "450 busy"]},
        data=["421 4.3.2 shutting down", "451 4.3.0 local error"],
    )
    with MailServer(faults=faults) as server:
        report = send(store, server.port, outgoing, tmp_path)
        assert report.complete and len(report.sent) == 4
        assert_exactly_one_each(server, [ADA, ALAN, GRACE, EDSGER])
    rows = {row.subscriber: row for row in store.deliveries()}
    assert all(row.state == "sent" and row.last_error is None for row in rows.values())
    # ada met the 421 and the 451 at the end of DATA, alan one 451, grace two 45x: every try counted.
    assert {a: r.attempts for a, r in rows.items()} == {ADA: 3, ALAN: 2, GRACE: 3, EDSGER: 1}
    assert not any(row.possible_duplicate for row in rows.values())


def test_an_address_with_a_domain_outside_ascii_goes_out_in_its_idna_form(store: Store, tmp_path: Path) -> None:
    # RCPT needed SMTPUTF8 (refused for good); the ledger keeps the address as written. (The
    # To header the renderer writes: tests/test_render_email.py.)
    written = "jorg@bücher.example"
    outgoing = outgoing_for(save_digests(store, [profile("continual-learning", [written])]))
    with MailServer() as server:
        report = send(store, server.port, outgoing, tmp_path)
        assert len(report.sent) == 1 and report.failed == []
        (received,) = server.messages
    assert received.rcpt_tos == ("jorg@xn--bcher-kva.example",)
    assert [(row.subscriber, row.state) for row in store.deliveries()] == [(written, "sent")]


def test_an_email_given_up_says_whether_it_may_have_arrived(store: Store) -> None:
    # A row a dead process left half-sent may have been delivered: its reason says so.
    digests = save_digests(store, [profile("continual-learning", [ADA, ALAN])])
    outgoing = outgoing_for(digests)
    store.add_deliveries([o.key for o in outgoing], lambda k: f"<{k.subscriber}>", TransportKind.SMTP, clock())
    half_sent = next(o.key for o in outgoing if o.key.subscriber == ALAN)
    assert store.mark_delivery_sending(half_sent, clock())
    later = TODAY + timedelta(days=RETRY_DAYS)
    given_up = dict(
        give_up_stale_emails(store, [digests[0].profile], today=later, at=clock(), transport=TransportKind.SMTP)
    )
    assert given_up[half_sent].startswith("left half-sent by a process that died")
    assert [error for key, error in given_up.items() if key != half_sent] == [
        f"not accepted within {RETRY_DAYS} days: given up"
    ]
    assert {row.state for row in store.deliveries()} == {"failed"}


def test_a_refused_recipient_fails_alone_and_is_not_retried(store: Store, tmp_path: Path) -> None:
    outgoing = two_profiles(store)
    faults = Faults(refuse={GRACE: "550 5.1.1 <grace@example.org>: no such user"})
    with MailServer(faults=faults) as server:
        report = send(store, server.port, outgoing, tmp_path)
        assert_exactly_one_each(server, [ADA, ALAN, EDSGER])
        assert [key[2] for key, _ in report.failed] == [GRACE] and "550 5.1.1" in report.failed[0][1]
        assert report.complete  # nothing is left for a later run
        row = next(r for r in store.deliveries() if r.subscriber == GRACE)
        assert (row.state, row.attempts) == ("failed", 1) and "no such user" in (row.last_error or "")
        again = send(store, server.port, outgoing, tmp_path)
        assert again.already == 4 and server.rcpt_count == 4  # the refused address was not tried again
    assert store.digest_state("llm-rl", TODAY) == "delivered"


def test_a_digest_nobody_accepted_fails_and_its_papers_come_back(store: Store, tmp_path: Path) -> None:
    (digest,) = save_digests(store, [profile("solo", [ADA])])
    faults = Faults(refuse={ADA: "554 5.7.1 rejected"})
    with MailServer(faults=faults) as server:
        report = send(store, server.port, outgoing_for([digest]), tmp_path)
    assert report.digests_failed == [("solo", TODAY)]
    assert store.digest_state("solo", TODAY) == "failed"
    picked = {item.paper.id for item in digest.items}
    assert picked <= {p.id for p in store.candidate_papers("solo", TODAY + timedelta(days=1))}


def padded(render: Callable[[str], EmailMessage | None], size: int) -> Callable[[str], EmailMessage | None]:
    """`render`'s message with `size` bytes attached."""

    def make(message_id: str) -> EmailMessage | None:
        message = render(message_id)
        assert message is not None
        message.add_attachment(b"x" * size, maintype="application", subtype="octet-stream", filename="pad.bin")
        return message

    return make


def test_a_connection_dropped_in_the_middle_of_data_is_sent_again(store: Store, tmp_path: Path) -> None:
    first, *others = two_profiles(store)
    # The first message (the one the server hangs up on, twice) is larger than the sockets'
    # buffers on loopback, so the client is still writing its body when the hang-up comes:
    # a small one could be written whole before it, whatever the machine's load.
    outgoing = [replace(first, render=padded(first.render, 12 * 1024 * 1024)), *others]
    with MailServer(faults=Faults(drop_in_data=2)) as server:
        report = send(store, server.port, outgoing, tmp_path)
        assert report.complete
        assert_exactly_one_each(server, [ADA, ALAN, GRACE, EDSGER])
    assert set(states(store).values()) == {"sent"}
    # The hang-up was seen before the final "." went out: the server cannot have kept a copy.
    assert not any(row.possible_duplicate for row in store.deliveries()) and not report.possible_duplicates


def test_a_reply_to_the_final_dot_without_a_code_is_a_possible_duplicate_not_retried_at_once(
    store: Store, tmp_path: Path
) -> None:
    # smtplib reads a reply with no number as code -1: it was retried in the same run, and a
    # server that had kept the message got it twice with the ledger saying "sent", unflagged.
    outgoing = two_profiles(store)
    with MailServer(faults=Faults(data=["garbled reply"])) as server:
        first = send(store, server.port, outgoing, tmp_path)
        assert len(first.pending) == 1 and len(first.sent) == 3
        (key,) = [key for key, _ in first.pending]
        row = store.get_delivery(key)
        assert row is not None and (row.state, row.possible_duplicate, row.attempts) == ("pending", True, 1)
        again = send(store, server.port, outgoing, tmp_path)
        assert [k for k in again.sent] == [key] and again.possible_duplicates
    assert set(states(store).values()) == {"sent"}


def test_a_lost_reply_after_acceptance_is_resent_by_the_next_run_with_the_same_message_id_and_flagged(
    store: Store, tmp_path: Path
) -> None:
    outgoing = two_profiles(store)
    with MailServer(faults=Faults(drop_after_accept=1)) as server:
        first = send(store, server.port, outgoing, tmp_path)
        # The server kept the copy but its "250" never arrived: not retried in this run.
        assert len(server.by_recipient()[ADA]) == 1 and [key[2] for key, _ in first.pending] == [ADA]
        row = next(r for r in store.deliveries() if r.subscriber == ADA)
        assert (row.state, row.possible_duplicate, row.attempts) == ("pending", True, 1)
        assert "sent once more by the next run" in (row.last_error or "")
        report = send(store, server.port, outgoing, tmp_path)
        received = server.by_recipient()
    # The one case that can give two: the same message, with the same Message-ID.
    assert len(received[ADA]) == 2 and received[ADA][0].message["Message-ID"] == received[ADA][1].message["Message-ID"]
    assert all(len(received[a]) == 1 for a in (ALAN, GRACE, EDSGER))
    row = next(r for r in store.deliveries() if r.subscriber == ADA)
    assert row.state == "sent" and row.possible_duplicate and row.attempts == 2
    assert "connection was lost after the whole message was sent" in (row.note or "")
    assert [key[2] for key in report.possible_duplicates] == [ADA]


def test_a_server_that_drops_every_accepted_message_gets_it_twice_at_most(store: Store, tmp_path: Path) -> None:
    (digest,) = save_digests(store, [profile("solo", [ADA])])
    outgoing = outgoing_for([digest])
    with MailServer(faults=Faults(drop_after_accept=1000)) as server:
        reports = [send(store, server.port, outgoing, tmp_path) for _run in range(3)]
        copies = len(server.by_recipient()[ADA])
    # One copy per run while the outcome is unknown, and no third: not 4 per run (every retry), nor 12.
    assert copies == 2
    assert [key[2] for key, _ in reports[0].pending] == [ADA] and reports[0].failed == []
    assert [key[2] for key, _ in reports[1].failed] == [ADA] and "lost twice" in reports[1].failed[0][1]
    assert reports[2].already == 1 and reports[2].sent == reports[2].failed == []
    (row,) = store.deliveries()
    assert (row.state, row.attempts, row.possible_duplicate) == ("failed", 2, True)
    assert "it may have arrived (twice); not sent again" in (row.last_error or "")
    assert "connection was lost after the whole message was sent" in (row.note or "")


def test_a_server_that_closes_idle_connections_is_reconnected_without_failures(store: Store, tmp_path: Path) -> None:
    outgoing = two_profiles(store)
    strict = RetryPolicy(attempts=1, max_connection_failures=1)
    with MailServer(faults=Faults(hang_up_after_reply=True)) as server:
        report = send_digests(store, smtp(server.port), outgoing, outbox=tmp_path, clock=clock, retry=strict)
        assert report.complete
        assert_exactly_one_each(server, [ADA, ALAN, GRACE, EDSGER])
    assert all(row.attempts == 1 for row in store.deliveries())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_server_down_then_up_during_the_retries(store: Store, tmp_path: Path) -> None:
    outgoing = two_profiles(store)
    port = free_port()
    server = MailServer(port=port)
    starter = threading.Timer(0.3, server.start)
    starter.start()
    try:
        policy = RetryPolicy(attempts=6, backoff=0.1, backoff_max=0.4, jitter=0.0, max_connection_failures=10)
        report = send_digests(store, smtp(port), outgoing, outbox=tmp_path, clock=clock, retry=policy)
        assert report.complete
        assert_exactly_one_each(server, [ADA, ALAN, GRACE, EDSGER])
        ada = next(r for r in store.deliveries() if r.subscriber == ADA)
        assert ada.attempts > 1 and ada.state == "sent"
    finally:
        starter.join()
        server.stop()


def test_a_server_that_stays_down_stops_the_run_then_the_next_run_delivers(store: Store, tmp_path: Path) -> None:
    outgoing = two_profiles(store)
    port = free_port()
    policy = RetryPolicy(attempts=3, backoff=0.01, backoff_max=0.02, jitter=0.0, max_connection_failures=4)
    report = send_digests(store, smtp(port), outgoing, outbox=tmp_path, clock=clock, retry=policy)
    assert report.stopped is not None and "4 consecutive connection failures" in report.stopped
    assert "Connection refused" in report.stopped and not report.complete
    assert len(report.sent) == 0 and len(report.pending) == 2 and report.not_reached == 2
    assert set(states(store).values()) == {"pending"}
    assert store.digest_state("llm-rl", TODAY) == "built"  # not failed: its emails are still to go
    with MailServer(port=port) as server:
        later = send_digests(store, smtp(port), outgoing, outbox=tmp_path, clock=clock, retry=policy)
        assert later.complete and len(later.sent) == 4
        assert_exactly_one_each(server, [ADA, ALAN, GRACE, EDSGER])


def test_an_address_unsubscribed_during_the_batch_is_skipped(store: Store, tmp_path: Path) -> None:
    outgoing = two_profiles(store)
    other = open_store(store.path)  # another process's view: the unsubscribe command

    def unsubscribe_edsger(address: str, count: int) -> None:
        if address == ALAN:
            other.unsubscribe(EDSGER.upper(), "llm-rl", clock())

    with MailServer(faults=Faults(on_rcpt=unsubscribe_edsger)) as server:
        report = send(store, server.port, outgoing, tmp_path)
        assert_exactly_one_each(server, [ADA, ALAN, GRACE])
    other.close()
    assert [key[2] for key in report.skipped] == [EDSGER]
    assert states(store)[EDSGER] == "skipped"


def test_an_address_unsubscribed_while_its_message_waits_for_a_retry_is_skipped(store: Store, tmp_path: Path) -> None:
    outgoing = two_profiles(store)
    other = open_store(store.path)

    def unsubscribe_on_first_try(address: str, count: int) -> None:
        if address == GRACE:
            other.unsubscribe(GRACE, "llm-rl", clock())  # while grace's first try is answered 451

    faults = Faults(rcpt={GRACE: ["451 4.7.1 greylisted, try again later"]}, on_rcpt=unsubscribe_on_first_try)
    with MailServer(faults=faults) as server:
        report = send(store, server.port, outgoing, tmp_path)
        assert_exactly_one_each(server, [ADA, ALAN, EDSGER])
    other.close()
    assert [key[2] for key in report.skipped] == [GRACE] and report.pending == []
    assert states(store)[GRACE] == "skipped"


def test_an_unsubscribe_from_all_profiles_and_a_resubscribe(store: Store, tmp_path: Path) -> None:
    assert store.unsubscribe(ALAN, None, clock()) and not store.unsubscribe("Alan@Example.org", None, clock())
    assert store.is_unsubscribed(ALAN, "llm-rl") and store.is_unsubscribed(ALAN, "any")
    assert store.resubscribe(ALAN, None) and not store.is_unsubscribed(ALAN, "llm-rl")


def test_undo_without_a_profile_takes_back_every_unsubscribe_of_the_address(tmp_path: Path) -> None:
    # It said "subscribed again to all profiles" and left the one profile it had left first.
    (tmp_path / "digest.toml").write_text(CONFIG)
    assert digest_command("unsubscribe", GRACE, "--profile", "llm-rl", cwd=tmp_path).returncode == 0
    assert digest_command("unsubscribe", GRACE, cwd=tmp_path).returncode == 0
    partly = digest_command("unsubscribe", GRACE, "--profile", "llm-rl", "--undo", cwd=tmp_path)
    assert partly.stdout == f"{GRACE}: subscribed again to profile llm-rl\n"
    assert "still unsubscribed from all profiles" in partly.stderr
    assert digest_command("unsubscribe", GRACE, "--profile", "llm-rl", cwd=tmp_path).returncode == 0
    undo = digest_command("unsubscribe", GRACE, "--undo", cwd=tmp_path)
    assert undo.stdout == f"{GRACE}: subscribed again to all profiles\n" and undo.stderr == ""
    store = open_store(tmp_path / "state.db")
    assert not any(store.is_unsubscribed(GRACE, p) for p in ("llm-rl", "continual-learning", "any"))
    store.close()


def test_a_message_that_cannot_be_rendered_stays_pending_and_the_rest_go(store: Store, tmp_path: Path) -> None:
    outgoing = two_profiles(store)

    def broken(message_id: str) -> EmailMessage:
        raise KeyError("template variable")

    outgoing[1] = Outgoing(outgoing[1].profile_id, outgoing[1].day, outgoing[1].subscriber, broken)
    with MailServer() as server:
        report = send(store, server.port, outgoing, tmp_path)
        assert_exactly_one_each(server, [ADA, GRACE, EDSGER])
    assert [key[2] for key, _ in report.pending] == [ALAN] and "KeyError" in report.pending[0][1]
    assert states(store)[ALAN] == "pending"


def test_a_stop_request_leaves_the_rest_pending(store: Store, tmp_path: Path) -> None:
    outgoing = two_profiles(store)
    with MailServer() as server:
        report = send(store, server.port, outgoing, tmp_path, should_stop=lambda: len(server.messages) >= 2)
        assert report.stopped == "stop requested" and report.not_reached == 2 and len(report.sent) == 2
        later = send(store, server.port, outgoing, tmp_path)
        assert len(later.sent) == 2
        assert_exactly_one_each(server, [ADA, ALAN, GRACE, EDSGER])


def test_dry_run_plan_changes_nothing(store: Store, tmp_path: Path) -> None:
    outgoing = two_profiles(store)
    store.unsubscribe(GRACE, None, clock())
    assert [p.state for p in plan_deliveries(store, outgoing, TransportKind.SMTP)] == [
        "new",
        "new",
        "unsubscribed",
        "new",
    ]
    assert store.deliveries() == []


def test_outbox_mode_goes_through_the_same_ledger(store: Store, tmp_path: Path) -> None:
    outgoing = two_profiles(store)
    report = send(store, None, outgoing, tmp_path)
    assert report.transport == "outbox" and len(report.sent) == 4
    files = sorted((tmp_path / "outbox").iterdir())
    assert [f.name for f in files] == sorted(outbox_name(o.key) for o in outgoing)
    assert all(ADA not in f.name for f in files)
    rows = {row.subscriber: row for row in store.deliveries()}
    for item in outgoing:
        data = (tmp_path / "outbox" / outbox_name(item.key)).read_bytes()
        assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")
        assert f"Message-ID: {rows[item.subscriber].message_id}".encode() in data
    assert {(r.state, r.transport) for r in rows.values()} == {("sent", "outbox")}
    stamps = [f.stat().st_mtime_ns for f in files]
    again = send(store, None, outgoing, tmp_path)
    assert (len(again.sent), again.already) == (0, 4)
    assert [f.stat().st_mtime_ns for f in files] == stamps


def eight_readers(store: Store) -> list[Outgoing]:
    return outgoing_for(save_digests(store, [profile("many", [f"reader{n}@example.org" for n in range(8)])]))


def commits_of(store: Store, run: Callable[[], object]) -> int:
    """How many transactions `run` commits on `store`'s own connection."""
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    try:
        run()
    finally:
        store._db.set_trace_callback(None)
    return sum(statement.strip().upper() == "COMMIT" for statement in statements)


def test_outbox_files_are_recorded_sent_a_group_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    one_by_one = open_store(tmp_path / "one.db")
    monkeypatch.setattr(batch, "OUTBOX_RECORDED_TOGETHER", 1)
    alone = commits_of(one_by_one, lambda: send(one_by_one, None, eight_readers(one_by_one), tmp_path / "one"))
    grouped = open_store(tmp_path / "grouped.db")
    monkeypatch.setattr(batch, "OUTBOX_RECORDED_TOGETHER", 3)
    report: list[Any] = []
    together = commits_of(
        grouped, lambda: report.append(send(grouped, None, eight_readers(grouped), tmp_path / "grouped"))
    )
    # Eight files: eight commits one by one, three in groups of three (3 + 3 + 2).
    assert alone - together == 8 - 3
    assert len(report[0].sent) == 8 and {row.state for row in grouped.deliveries()} == {"sent"}
    assert len(list((tmp_path / "grouped" / "outbox").iterdir())) == 8


def test_the_outbox_folder_is_flushed_before_its_files_are_recorded(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A rename reaches the disk when its folder is flushed: a row must never say 'sent' for a
    # file a power cut could take back. What was flushed, in order, beside each ledger commit:
    events: list[str] = []
    real_fsync, real_mark = os.fsync, Store.mark_deliveries_sent

    def fsync(fd: int) -> None:
        real_fsync(fd)
        events.append("folder" if os.path.isdir(os.readlink(f"/proc/self/fd/{fd}")) else "file")

    def mark(self: Store, *args: Any, **kwargs: Any) -> list[bool]:
        events.append("commit")
        return real_mark(self, *args, **kwargs)

    monkeypatch.setattr(batch, "OUTBOX_RECORDED_TOGETHER", 3)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(Store, "mark_deliveries_sent", mark)
    report = send(store, None, eight_readers(store), tmp_path)
    assert len(report.sent) == 8
    groups = "".join({"file": "f", "folder": "d", "commit": "c"}[e] for e in events)
    assert groups == "fffdcfffdcffdc"


@pytest.mark.parametrize("connections", [1, 2])
def test_outbox_files_written_and_not_yet_recorded_are_written_again_under_their_names(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, connections: int
) -> None:
    # The recording fails (a full disk; a process killed there leaves the same ledger): the
    # batch fails, also when a writer thread's last recording is what failed.
    outgoing = eight_readers(store)

    def full_disk(*args: Any, **kwargs: Any) -> None:
        raise OSError("database or disk is full")

    with monkeypatch.context() as patch:
        patch.setattr(Store, "mark_deliveries_sent", full_disk)
        with pytest.raises(OSError, match="disk is full"):
            send(store, None, outgoing, tmp_path, connections=connections)
    written = sorted(path.name for path in (tmp_path / "outbox").iterdir())
    assert len(written) == 8 and {row.state for row in store.deliveries()} == {"pending"}
    again = send(store, None, outgoing, tmp_path)
    assert len(again.sent) == 8 and sorted(path.name for path in (tmp_path / "outbox").iterdir()) == written
    for row in store.deliveries():
        data = (tmp_path / "outbox" / outbox_name(row.key)).read_bytes()
        assert row.state == "sent" and f"Message-ID: {row.message_id}".encode() in data


@pytest.mark.parametrize("connections", [1, 2])
def test_the_same_outbox_message_twice_in_a_batch_is_recorded_once(tmp_path: Path, connections: int) -> None:
    # With two writer threads each may write the file (the same bytes, under the same name);
    # the ledger records one of them, the other counts as done before. Several rounds: a race.
    for round_ in range(12):
        store = open_store(tmp_path / f"state{round_}.db")
        outgoing = two_profiles(store)
        report = send(store, None, [*outgoing, outgoing[1]], tmp_path / str(round_), connections=connections)
        assert (len(report.sent), report.already) == (4, 1)
        assert len(list((tmp_path / str(round_) / "outbox").iterdir())) == 4
        assert [row.attempts for row in store.deliveries()] == [1, 1, 1, 1]
        store.close()


def test_once_smtp_is_configured_an_outbox_only_day_is_sent_once_with_its_message_id(
    store: Store, tmp_path: Path
) -> None:
    outgoing = two_profiles(store)
    send(store, None, outgoing, tmp_path)
    written = {row.subscriber: row.message_id for row in store.deliveries()}
    assert [p.state for p in plan_deliveries(store, outgoing, TransportKind.OUTBOX)] == ["sent"] * 4
    assert [p.state for p in plan_deliveries(store, outgoing, TransportKind.SMTP)] == ["pending"] * 4
    with MailServer() as server:
        report = send(store, server.port, outgoing, tmp_path)
        assert len(report.sent) == 4 and report.complete
        again = send(store, server.port, outgoing, tmp_path)
        assert (len(again.sent), again.already) == (0, 4)
        assert_exactly_one_each(server, [ADA, ALAN, GRACE, EDSGER])
        for address, (received,) in server.by_recipient().items():
            assert received.message["Message-ID"].strip() == written[address]
    rows = store.deliveries()
    assert {(r.state, r.transport) for r in rows} == {("sent", "smtp")}
    assert all(r.note and "written to the outbox" in r.note for r in rows)


def test_login_with_the_password_from_the_environment(store: Store, tmp_path: Path) -> None:
    outgoing = two_profiles(store)
    seen: list[tuple[str, str]] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult

        seen.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=auth_data.password == b"s3cret", handled=False)

    options = {"authenticator": authenticator, "auth_require_tls": False}
    with MailServer(smtp_options=options) as server:
        with pytest.raises(DeliveryError, match="DIGEST_SMTP_PASSWORD"):
            send_digests(store, smtp(server.port, username="digest"), outgoing, outbox=tmp_path, clock=clock)
        wrong = smtp(server.port, username="digest", password="wrong")
        report = send_digests(store, wrong, outgoing, outbox=tmp_path, clock=clock, retry=FAST)
        assert report.stopped and "refused the login of 'digest'" in report.stopped and not server.messages
        assert set(states(store).values()) == {"pending"}
        right = smtp(server.port, username="digest", password="s3cret")
        report = send_digests(store, right, outgoing, outbox=tmp_path, clock=clock, retry=FAST)
        assert report.complete
        assert_exactly_one_each(server, [ADA, ALAN, GRACE, EDSGER])
    assert seen[-1] == ("digest", "s3cret")


def test_starttls_with_a_verified_certificate(store: Store, tmp_path: Path) -> None:
    outgoing = two_profiles(store)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))
    options = {"tls_context": server_context, "require_starttls": True}
    with MailServer(smtp_options=options) as server:
        untrusted = send_digests(
            store, smtp(server.port, security="starttls"), outgoing, outbox=tmp_path, clock=clock, retry=FAST
        )
        assert untrusted.stopped and "certificate" in untrusted.stopped and not server.messages
        report = send_digests(
            store,
            smtp(server.port, security="starttls"),
            outgoing,
            outbox=tmp_path,
            clock=clock,
            retry=FAST,
            tls_context=client_context,
        )
        assert report.complete
        assert_exactly_one_each(server, [ADA, ALAN, GRACE, EDSGER])


def test_one_sender_at_a_time(store: Store, tmp_path: Path) -> None:
    outgoing = two_profiles(store)
    with FileLock(f"{store.path}.send.lock"):
        report = send_digests(store, None, outgoing, outbox=tmp_path, clock=clock, lock_timeout=0.1)
    assert report.stopped is not None and report.stopped.startswith("another process is sending (it holds ")
    assert report.stopped.endswith("the emails stay pending") and not report.complete
    assert (report.not_reached, report.already, report.sent) == (4, 0, [])
    assert store.deliveries() == [] and not any(tmp_path.glob("*.eml"))
    later = send_digests(store, None, outgoing, outbox=tmp_path, clock=clock)
    assert len(later.sent) == 4 and later.complete


# -- a process killed in the middle of a batch ---------------------------------------------------


KILL_SUBSCRIBERS = [f"reader{n}@example.org" for n in range(8)]


class Sender:
    """`tests/send_batch.py` in its own process, sending the kill-test digest to the server."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.process: subprocess.Popen[str] | None = None

    def start(self, port: int) -> subprocess.Popen[str]:
        command = [sys.executable, str(TESTS / "send_batch.py"), str(self.db), str(port)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return self.process

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        time.sleep(0.2)  # let it die before the server says anything more on this connection


def kill_run(tmp_path: Path, sender: Sender, faults: Faults) -> tuple[MailServer, Store]:
    seeded = open_store(sender.db)
    save_digests(seeded, [profile("kill-test", KILL_SUBSCRIBERS)])
    seeded.close()
    server = MailServer(faults=faults).start()
    child = sender.start(server.port)
    assert child.wait(timeout=30) == -signal.SIGKILL, child.communicate()
    return server, open_store(sender.db)


def test_killed_mid_batch_then_restarted_sends_each_message_once(tmp_path: Path) -> None:
    sender = Sender(tmp_path / "state.db")

    def kill_at_the_fourth(address: str, count: int) -> None:
        if count == 4:
            sender.kill()

    server, store = kill_run(tmp_path, sender, Faults(on_rcpt=kill_at_the_fourth))
    try:
        assert len(server.messages) == 3
        before = [row.state for row in store.deliveries()]
        assert before.count("sent") == 3 and before.count("pending") == 5
        server.faults.on_rcpt = None
        restarted = sender.start(server.port)
        out, err = restarted.communicate(timeout=30)
        assert restarted.returncode == 0, err
        assert "5 sent, 3 done before" in out
        assert_exactly_one_each(server, KILL_SUBSCRIBERS)
        rows = store.deliveries()
        assert {row.state for row in rows} == {"sent"} and not any(row.possible_duplicate for row in rows)
    finally:
        server.stop()
        store.close()


def test_killed_after_the_server_accepted_but_before_the_ledger_knew(tmp_path: Path) -> None:
    sender = Sender(tmp_path / "state.db")

    def kill_at_the_third(received: Any, count: int) -> None:
        if count == 3:
            sender.kill()

    server, store = kill_run(tmp_path, sender, Faults(on_accept=kill_at_the_third))
    try:
        rows = {row.subscriber: row for row in store.deliveries()}
        in_window = [a for a, row in rows.items() if row.state == "sending"]
        assert in_window == [KILL_SUBSCRIBERS[2]]
        server.faults.on_accept = None
        restarted = sender.start(server.port)
        out, err = restarted.communicate(timeout=30)
        assert restarted.returncode == 0, err
        received = server.by_recipient()
        # The documented window: that one subscriber gets the same message (same Message-ID) twice,
        # and the ledger says so; nobody else gets two.
        twice = received.pop(KILL_SUBSCRIBERS[2])
        assert len(twice) == 2 and len({r.message["Message-ID"] for r in twice}) == 1
        assert sorted(received) == sorted(KILL_SUBSCRIBERS[:2] + KILL_SUBSCRIBERS[3:])
        assert all(len(copies) == 1 for copies in received.values())
        rows = {row.subscriber: row for row in store.deliveries()}
        flagged = [a for a, row in rows.items() if row.possible_duplicate]
        assert flagged == [KILL_SUBSCRIBERS[2]] and "process died" in (rows[flagged[0]].note or "")
        assert {row.state for row in rows.values()} == {"sent"}
        assert "sent again after an interruption" in out
    finally:
        server.stop()
        store.close()


def test_digest_message_helper_uses_the_ledger_message_id(store: Store) -> None:
    (digest,) = save_digests(store, [profile("x", [ADA])])
    message = digest_message(digest, ADA, "<a.b@example.org>")
    assert message["From"] == SENDER and message["Message-ID"] == "<a.b@example.org>"


# -- the commands ---------------------------------------------------------------------------------


def digest_command(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_digest(*args, cwd=cwd)


CONFIG = """\
[digest]
db = "state.db"

[[profiles]]
id = "llm-rl"
description = "RL"
subscribers = ["alan@example.org", "grace@example.org", "edsger@example.org"]

[[profiles]]
id = "continual-learning"
description = "CL"
subscribers = ["ada@example.org"]
"""


def test_deliveries_command_shows_the_ledger(tmp_path: Path) -> None:
    (tmp_path / "digest.toml").write_text(CONFIG)
    store = open_store(tmp_path / "state.db")
    outgoing = two_profiles(store)
    with MailServer(faults=Faults(refuse={GRACE: "550 5.1.1 no such user"}, drop_after_accept=1)) as server:
        send(store, server.port, outgoing, tmp_path)
        send(store, server.port, outgoing, tmp_path)  # ada's reply was lost: she gets it once more
    store.close()
    table = digest_command("deliveries", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["day", "profile", "subscriber", "state", "tries", "when", "details"]
    ada = next(line for line in lines if ADA in line)
    assert "sent" in ada and "possible duplicate: the connection was lost" in ada
    assert "failed" in next(line for line in lines if GRACE in line) and "550 5.1.1 no such user" in table.stdout
    assert lines[-1] == "4 deliveries: 1 failed, 3 sent"
    one = digest_command("deliveries", "--profile", "llm-rl", "--date", TODAY.isoformat(), "--json", cwd=tmp_path)
    records = json.loads(one.stdout)
    assert [r["subscriber"] for r in records] == sorted([ALAN, GRACE, EDSGER])
    assert {r["state"] for r in records} == {"sent", "failed"} and all(r["message_id"] for r in records)
    other_day = digest_command("deliveries", "--date", "2001-01-01", cwd=tmp_path)
    assert other_day.stdout.splitlines()[-1] == "0 deliveries"
    bad = digest_command("deliveries", "--date", "yesterday", cwd=tmp_path)
    assert bad.returncode == 2 and "'yesterday' is not a date" in bad.stderr
    unknown = digest_command("deliveries", "--profile", "llm-r1", cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown profile 'llm-r1' (known: llm-rl, continual-learning)" in unknown.stderr
    assert digest_command("deliveries", "--profile", "llm-rl", "--date", "2001-01-01", cwd=tmp_path).returncode == 0
    # A profile taken out of digest.toml keeps its ledger rows, and they can still be listed.
    (tmp_path / "digest.toml").write_text(CONFIG.split('\n[[profiles]]\nid = "continual')[0])
    removed = digest_command("deliveries", "--profile", "continual-learning", cwd=tmp_path)
    assert removed.returncode == 0 and ADA in removed.stdout


def test_unsubscribe_command_takes_effect_for_the_next_send(tmp_path: Path) -> None:
    (tmp_path / "digest.toml").write_text(CONFIG)
    done = digest_command("unsubscribe", "Grace@example.org", "--profile", "llm-rl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Grace@example.org: unsubscribed from profile llm-rl\n"
    again = digest_command("unsubscribe", "grace@example.org", "--profile", "llm-rl", cwd=tmp_path)
    assert "already unsubscribed" in again.stdout
    stranger = digest_command("unsubscribe", "who@example.org", cwd=tmp_path)
    assert stranger.returncode == 0 and "not a subscriber of any configured profile" in stranger.stderr
    assert digest_command("unsubscribe", "not an address", cwd=tmp_path).returncode == 2
    unknown = digest_command("unsubscribe", ADA, "--profile", "nope", cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown profile 'nope'" in unknown.stderr
    store = open_store(tmp_path / "state.db")
    outgoing = two_profiles(store)
    with MailServer() as server:
        send(store, server.port, outgoing, tmp_path)
        assert_exactly_one_each(server, [ADA, ALAN, EDSGER])
    assert states(store)[GRACE] == "skipped"
    store.close()
    undo = digest_command("unsubscribe", "grace@example.org", "--profile", "llm-rl", "--undo", cwd=tmp_path)
    assert undo.stdout == "grace@example.org: subscribed again to profile llm-rl\n"
