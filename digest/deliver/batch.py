"""Sending a batch of emails once each, through the delivery ledger.

For each message, in order:

1. the ledger row and the subscriber's unsubscribe state are read again (another process
   or an unsubscribe may have changed them), and `lifecycle.next_step` says what to do;
2. the caller's `render(message_id)` gives the `EmailMessage`;
3. the transport sends it; the row becomes 'sending' (committed) just before the final
   "." that lets the server accept the message;
4. on the server's 250 the row becomes 'sent' (committed), and the digest 'delivered'.
   An outbox file has no such window (a file written again is the same file): once
   flushed to disk it is recorded with others, `OUTBOX_RECORDED_TOGETHER` to a commit.

So the only moment at which the server may hold the message while the ledger does not
say 'sent' is between the final "." and that commit. A row found 'sending' when a batch
starts was left by a process that died in that window: it is sent again with the same
Message-ID and flagged `possible_duplicate` (see the README, "Delivery").

With `connections` > 1 (`[smtp] connections`), that many threads send at once, each over
its own SMTP connection and its own connection to the state database. The ledger rows are
what they share: a sender takes a row by turning it from 'pending' into 'sending' in one
short transaction, so of two senders that reach the same row only one hands its message
over; the other abandons it before the final "." (the server keeps nothing). A row found
'sending' that this batch did not take was left by a process that died (one process
sends at a time: the lock file), and only then is it resumed.

Temporary failures (4xx replies, refused, dropped or timed-out connections) are retried
with exponential backoff (stamina) and, if still failing, left 'pending' for the next
run; a 5xx reply for a recipient marks that row 'failed'; several consecutive connection
failures stop the run. An answer lost after the final "." is not retried in the same run
(every retry could add a copy). This module never renders, ranks or builds digests.
"""

from __future__ import annotations

import logging
import queue
import secrets
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from typing import NamedTuple

import stamina
from filelock import FileLock, Timeout

from digest.config import SmtpSettings
from digest.deliver.due import Outgoing, Prepared
from digest.deliver.transports import (
    FatalFailure,
    PermanentFailure,
    RetryPolicy,
    SendFailure,
    TemporaryFailure,
    Transport,
    Withdrawn,
    message_bytes,
    open_transport,
    transport_kind,
)
from digest.lifecycle import Step, is_done, next_step
from digest.models import DeliveryState, TransportKind
from digest.rows import Accepted, Delivery, DeliveryKey
from digest.store import Store, open_store

log = logging.getLogger(__name__)

SEND_LOCK_TIMEOUT = 60.0  # seconds to wait for another process that is sending
# Outbox files recorded 'sent' together, in one ledger commit: a flushed commit per file was
# a third of the writer threads' time (bench/RESULTS.md, 2026-12-02). A process killed before
# the commit leaves at most this many files a writer thread written and not recorded; the
# next run writes them again.
OUTBOX_RECORDED_TOGETHER = 64
INTERRUPTED_NOTE = (
    "a process died after handing the message to the server and before recording its answer; "
    "sent again with the same Message-ID"
)
LOST_REPLY_NOTE = (
    "the connection was lost after the whole message was sent, before the server's answer; "
    "sent again with the same Message-ID"
)
LOST_REPLY_ERROR = "the server's answer was lost after the whole message was sent: sent once more by the next run"
LOST_TWICE_ERROR = (
    "the server's answer was lost twice after the whole message was sent: it may have arrived (twice); not sent again"
)


class DeliveryError(Exception):
    """Nothing can be sent as configured (an SMTP login without its password). One line."""


class Undelivered(NamedTuple):
    """A message a batch did not deliver, and why."""

    key: DeliveryKey
    error: str


@dataclass(slots=True)
class DeliveryReport:
    """What one batch did. `stopped` says why the run ended early (None: it went through)."""

    transport: TransportKind
    sent: list[DeliveryKey] = field(default_factory=list)
    already: int = 0
    failed: list[Undelivered] = field(default_factory=list)
    pending: list[Undelivered] = field(default_factory=list)
    skipped: list[DeliveryKey] = field(default_factory=list)
    possible_duplicates: list[DeliveryKey] = field(default_factory=list)
    digests_failed: list[tuple[str, date]] = field(default_factory=list)
    not_reached: int = 0
    left_for_smtp: int = 0  # due over SMTP, and this run had none (see `lifecycle.Step.LEAVE`)
    stopped: str | None = None
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        """True when nothing is left for a later run."""
        return not self.pending and not self.not_reached and self.stopped is None

    def summary(self) -> str:
        parts = [
            f"{len(self.sent)} sent",
            f"{self.already} done before",
            f"{len(self.failed)} failed",
            f"{len(self.pending) + self.not_reached} left pending",
        ]
        if self.skipped:
            parts.append(f"{len(self.skipped)} unsubscribed")
        if self.possible_duplicates:
            parts.append(f"{len(self.possible_duplicates)} sent again after an interruption")
        if self.left_for_smtp:
            parts.append(f"{self.left_for_smtp} waiting for a run with SMTP")
        text = f"{self.transport}: " + ", ".join(parts) + f" in {self.seconds:.1f} s"
        return f"{text}; stopped: {self.stopped}" if self.stopped else text


Prepare = Callable[[Sequence[Outgoing]], Iterable[Outgoing]]
"""Gives the batch's messages back, in the same order, with `prepared` set (rendered by
workers once their ledger rows exist, so with the ledger's Message-IDs)."""


def send_digests(
    store: Store,
    smtp: SmtpSettings | None,
    outgoing: Sequence[Outgoing],
    *,
    outbox: Path,
    clock: Callable[[], datetime],
    retry: RetryPolicy | None = None,
    message_id_domain: str | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    tls_context: ssl.SSLContext | None = None,
    lock_timeout: float = SEND_LOCK_TIMEOUT,
    delivers: bool = True,
    connections: int = 1,
    prepare: Prepare | None = None,
) -> DeliveryReport:
    """Send every message in `outgoing` that the ledger does not record as done.

    With `smtp`, over `connections` SMTP connections at once (each reopened when the
    server drops it; see the module docstring); without, each message becomes
    `outbox/<day>_<profile>_<address hash>.eml`, through the same ledger. `clock` gives
    aware datetimes. One process sends at a time (a lock file beside the database): when
    another one holds it for `lock_timeout` seconds, nothing is sent and the report says
    why (`stopped`; the emails stay pending for the next run). `should_stop()` is checked
    before each message and each retry. `delivers=False` says an accepted message does not
    deliver its digest (an outbox preview while SMTP is configured): its papers are not
    yet taken as given. `prepare` renders the messages once their ledger rows exist
    (`Prepare`). Raises `DeliveryError` (nothing sent) for configuration problems
    (`smtp_login_problem`).
    """
    started = time.monotonic()
    policy = retry or (RetryPolicy.from_settings(smtp) if smtp else RetryPolicy())
    problem = smtp_login_problem(smtp)
    if problem:
        raise DeliveryError(problem)
    kind = transport_kind(smtp)
    domain = message_id_domain or _domain(smtp.sender if smtp else None) or "paper-digest.invalid"
    report = DeliveryReport(transport=kind)
    lock = FileLock(f"{store.path}.send.lock", timeout=lock_timeout)
    try:
        lock.acquire()
    except Timeout:
        report.stopped = f"another process is sending (it holds {lock.lock_file}); the emails stay pending"
        rows = (store.get_delivery(item.key) for item in outgoing)
        report.already = sum(row is not None and is_done(row, kind) for row in rows)
        report.not_reached = len(outgoing) - report.already
        report.seconds = time.monotonic() - started
        log.warning("delivery %s", report.summary())
        return report
    batch = uuid.uuid4().hex  # names this run's senders in the ledger (`taken_by`)

    def sender(own_store: Store, own_report: DeliveryReport) -> _Sender:
        transport = open_transport(smtp, outbox=outbox, policy=policy, tls_context=tls_context)
        return _Sender(
            own_store, transport, policy, clock, should_stop, smtp.sender if smtp else None, own_report, delivers, batch
        )

    try:
        store.add_deliveries([o.key for o in outgoing], lambda key: make_message_id(key, domain), kind, clock())
        items = iter(prepare(outgoing) if prepare else outgoing)
        if connections > 1:
            _send_in_parallel(store, items, len(outgoing), connections, sender, should_stop, report)
        else:
            _send_in_turn(sender(store, report), items, len(outgoing), should_stop)
        report.digests_failed += store.settle_digests(
            dict.fromkeys((o.profile_id, o.day) for o in outgoing if not o.period), clock()
        )
    finally:
        lock.release()
    report.seconds = time.monotonic() - started
    log.info("delivery %s", report.summary())
    return report


def _send_in_turn(sender: _Sender, items: Iterator[Outgoing], total: int, should_stop: Callable[[], bool]) -> None:
    """One message after another, over one connection."""
    report = sender.report
    try:
        for index, item in enumerate(items):
            if should_stop():
                report.stopped = "stop requested"
                report.not_reached = total - index
                break
            if not sender.deliver(item):
                report.not_reached = total - index - 1
                break
    finally:
        sender.close()


def _send_in_parallel(
    store: Store,
    items: Iterator[Outgoing],
    total: int,
    connections: int,
    make_sender: Callable[[Store, DeliveryReport], _Sender],
    should_stop: Callable[[], bool],
    report: DeliveryReport,
) -> None:
    """`connections` senders at once, each with its own SMTP connection and database
    connection, taking messages from one queue; the first that must stop stops them all."""
    work: queue.Queue[Outgoing | None] = queue.Queue(maxsize=2 * connections)
    stop = threading.Event()
    reports = [DeliveryReport(transport=report.transport) for _ in range(connections)]
    crashes: list[BaseException] = []

    def run(own_report: DeliveryReport) -> None:
        own_store = open_store(store.path)
        sender = make_sender(own_store, own_report)
        try:
            while (item := work.get()) is not None:
                if not stop.is_set() and should_stop():
                    own_report.stopped = "stop requested"
                    stop.set()
                if stop.is_set():
                    own_report.not_reached += 1
                    continue
                try:
                    if not sender.deliver(item):
                        stop.set()
                except BaseException as exc:  # reported by the coordinator, after the others stopped
                    crashes.append(exc)
                    stop.set()
        finally:
            try:
                sender.close()  # records what this thread accepted: a failure is the batch's too
            except BaseException as exc:
                crashes.append(exc)
                stop.set()
            finally:
                own_store.close()

    threads = [threading.Thread(target=run, args=(r,), name=f"smtp-{n}") for n, r in enumerate(reports)]
    for thread in threads:
        thread.start()
    handed = 0
    try:
        for item in items:
            if stop.is_set():
                break
            work.put(item)
            handed += 1
    finally:
        for _ in threads:
            work.put(None)
        for thread in threads:
            thread.join()
    for own in reports:
        report.sent += own.sent
        report.already += own.already
        report.failed += own.failed
        report.pending += own.pending
        report.skipped += own.skipped
        report.possible_duplicates += own.possible_duplicates
        report.not_reached += own.not_reached
        report.left_for_smtp += own.left_for_smtp
        report.stopped = report.stopped or own.stopped
    report.not_reached += total - handed
    if crashes:
        raise crashes[0]


def smtp_login_problem(smtp: SmtpSettings | None) -> str | None:
    """Why sending over `smtp` cannot log in (a username without its password), or None."""
    if smtp is not None and smtp.username and not smtp.password:
        return "[smtp] username is set but DIGEST_SMTP_PASSWORD is not set in the environment"
    return None


def prepare_message(render: Callable[[str], EmailMessage | None], message_id: str) -> Prepared:
    """What `render(message_id)` makes, as it goes on the wire, or why it cannot be sent.

    A message without a Message-ID gets the ledger's; one with another is refused. A
    template's failure is raised (`render.templates.is_template_failure`): every message
    made with that template would fail alike, and the owner must fix it (exit 5, naming
    the template and line); the message stays pending."""
    from digest.render.templates import is_template_failure

    try:
        message = render(message_id)
    except Exception as exc:
        if is_template_failure(exc):
            raise
        return Prepared(message_id, error=f"{type(exc).__name__}: {exc}")
    if message is None:
        return Prepared(message_id, error="the renderer gave no message")
    given = message.get("Message-ID")
    if given is None:
        message["Message-ID"] = message_id
    elif str(given).strip() != message_id:
        return Prepared(message_id, error=f"the message's Message-ID {given!s} is not the ledger's {message_id}")
    return Prepared(message_id, message_bytes(message), str(message.get("From", "")))


def make_message_id(key: DeliveryKey, domain: str) -> str:
    """A new, unique Message-ID for a ledger row: `<day.random@domain>` (short: no header folding)."""
    return f"<{key.day:%Y%m%d}.{secrets.token_hex(8)}@{domain}>"


def _domain(address: str | None) -> str | None:
    if not address:
        return None
    return parseaddr(address)[1].rpartition("@")[2] or None


# -- the batch -----------------------------------------------------------------------------


class _LostReply(Exception):
    """The server's answer to the final "." never came: the message may have arrived.

    Not retried in this run. `again`: a copy may have arrived before too (a resend), so
    the message is not sent again at all.
    """

    def __init__(self, message: str, *, again: bool) -> None:
        super().__init__(message)
        self.again = again


class _Unsubscribed(Exception):
    """The subscriber unsubscribed while their message waited."""


class _Stopped(Exception):
    """`should_stop()` said so."""


class _Sender:
    """Sends one batch through the ledger, message by message (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        transport: Transport,
        policy: RetryPolicy,
        clock: Callable[[], datetime],
        should_stop: Callable[[], bool],
        sender: str | None,
        report: DeliveryReport,
        delivers: bool,
        batch: str | None = None,
    ) -> None:
        self.store = store
        self.batch = batch
        self.delivers = delivers
        self.transport = transport
        self.policy = policy
        self.clock = clock
        self.should_stop = should_stop
        self.sender = sender
        self.report = report
        # Outbox files written and not yet recorded (OUTBOX_RECORDED_TOGETHER); over SMTP each
        # acceptance is recorded at once, as the window after the final "." must stay short.
        self._unrecorded: list[tuple[Accepted, bool]] = []
        self._together = OUTBOX_RECORDED_TOGETHER if transport.kind == TransportKind.OUTBOX else 1

    def close(self) -> None:
        """Record what was accepted and not yet recorded, then release the transport."""
        try:
            self.record()
        finally:
            self.transport.close()

    def record(self) -> None:
        """Save the acceptances not yet saved, in one transaction, and report them sent."""
        if not self._unrecorded:
            return
        self.transport.settle()
        changed = self.store.mark_deliveries_sent(
            [accepted for accepted, _ in self._unrecorded], delivers=self.delivers
        )
        for (accepted, resent), first in zip(self._unrecorded, changed, strict=True):
            if not first:  # the same outbox message twice in one batch: written again, recorded once
                self.report.already += 1
                continue
            self.report.sent.append(accepted.key)
            if resent:
                self.report.possible_duplicates.append(accepted.key)
            log.debug("%s %s %s: sent", *accepted.key[:3])
        self._unrecorded.clear()

    def deliver(self, item: Outgoing) -> bool:
        """Try to deliver one message; False when the run must stop."""
        row = self.store.get_delivery(item.key)
        assert row is not None, "add_deliveries made every row"
        step = next_step(
            row, self.transport.kind, unsubscribed=self.store.is_unsubscribed(item.subscriber, item.profile_id)
        )
        if step == Step.DONE:
            self.report.already += 1
            return True
        if step == Step.LEAVE:
            self.report.left_for_smtp += 1
            return True
        if step == Step.SKIP:
            self._skip_unsubscribed(item)
            return True
        if step == Step.REOPEN:
            self.store.reopen_outbox_delivery(item.key, self.clock())
        resent = row.possible_duplicate
        if step == Step.RESUME:
            if not self.store.resume_interrupted_delivery(item.key, self.clock(), INTERRUPTED_NOTE, batch=self.batch):
                self.report.already += 1  # another sender of this batch has it
                return True
            log.warning("%s %s %s: %s", item.profile_id, item.day, item.subscriber, INTERRUPTED_NOTE)
            resent = True
        who = f"{item.profile_id} {item.day} {item.subscriber}"
        try:
            payload, sender = self._prepare(item, row)
        except ValueError as exc:
            error = f"cannot prepare the message: {exc}"
            self.store.record_delivery_attempt(item.key, DeliveryState.PENDING, self.clock(), error=error, counted=True)
            self._left_pending(item, error)
            return True
        try:
            resent = self._send_with_retries(item, payload, sender, resent)
        except _Unsubscribed:
            self._skip_unsubscribed(item)
            return True
        except Withdrawn:
            self.report.already += 1  # another sender took the row: it reports the message
            log.info("%s: taken by another sender", who)
            return True
        except PermanentFailure as exc:
            self.report.failed.append(Undelivered(item.key, str(exc)))
            log.warning("%s: failed for good: %s", who, exc)
            return True
        except _LostReply as exc:
            if exc.again:
                self.report.failed.append(Undelivered(item.key, str(exc)))
                log.warning("%s: %s", who, exc)
            else:
                self._left_pending(item, str(exc))
            return True
        except TemporaryFailure as exc:
            self._left_pending(item, str(exc))
            return True
        except (FatalFailure, _Stopped) as exc:
            self.report.stopped = str(exc)
            self._left_pending(item, str(exc))
            return False
        self._unrecorded.append((Accepted(item.key, self.clock(), self._counted), resent))
        if len(self._unrecorded) >= self._together:
            self.record()
        return True

    def _prepare(self, item: Outgoing, row: Delivery) -> tuple[bytes, str]:
        prepared = item.prepared
        if prepared is None or prepared.message_id != row.message_id:
            prepared = prepare_message(item.render, row.message_id)
        if prepared.error is not None:
            raise ValueError(prepared.error)
        sender = parseaddr(self.sender or prepared.sender)[1]
        if "@" not in sender:
            raise ValueError("no sender address: set [smtp] from, or give the message a From")
        return prepared.payload, sender

    def _send_with_retries(self, item: Outgoing, payload: bytes, sender: str, resent: bool) -> bool:
        """Send until accepted; returns whether a copy may have been accepted before (a resend).

        A try that ends after the final "." without the server's answer is not retried in
        this run (`_LostReply`): every retry could add a copy. The row stays pending, flagged,
        for one more send by the next run; if that one ends the same way, the row fails for
        good (two copies may have arrived) instead of sending a third.
        """
        for attempt in stamina.retry_context(
            on=TemporaryFailure,
            attempts=self.policy.attempts,
            timeout=None,
            wait_initial=self.policy.backoff,
            wait_max=self.policy.backoff_max,
            wait_jitter=self.policy.jitter,
        ):
            with attempt:
                if self.should_stop():
                    raise _Stopped("stop requested")
                if self.store.is_unsubscribed(item.subscriber, item.profile_id):
                    raise _Unsubscribed  # re-read before every try: a backoff can last a minute
                if attempt.num > 1:
                    log.info("%s %s %s: attempt %d", item.profile_id, item.day, item.subscriber, attempt.num)
                try:
                    self._send_once(item, payload, sender)
                except SendFailure as exc:
                    if exc.after_dot and not isinstance(exc, FatalFailure | PermanentFailure):
                        lost = _LostReply(LOST_TWICE_ERROR if resent else LOST_REPLY_ERROR, again=resent)
                        self._record_lost_reply(item, lost, exc)
                        raise lost from exc
                    # Every try is recorded as it ends: if the process dies during a backoff, the ledger knows.
                    self.store.record_delivery_attempt(
                        item.key,
                        DeliveryState.FAILED if isinstance(exc, PermanentFailure) else DeliveryState.PENDING,
                        self.clock(),
                        error=str(exc),
                        counted=self._counted,
                        possible_duplicate=exc.after_dot,
                        note=LOST_REPLY_NOTE if exc.after_dot else None,
                    )
                    resent = resent or exc.after_dot
                    raise
        return resent

    def _record_lost_reply(self, item: Outgoing, lost: _LostReply, cause: SendFailure) -> None:
        self.store.record_delivery_attempt(
            item.key,
            DeliveryState.FAILED if lost.again else DeliveryState.PENDING,
            self.clock(),
            error=f"{lost} ({cause})",
            counted=self._counted,
            possible_duplicate=True,
            note=LOST_REPLY_NOTE,
        )

    _counted = False

    def _send_once(self, item: Outgoing, payload: bytes, sender: str) -> None:
        self._counted = False

        def before_dot() -> None:
            if not self.store.mark_delivery_sending(item.key, self.clock(), batch=self.batch):
                raise Withdrawn(f"{item.key}: another sender took it")
            self._counted = True

        self.transport.send(item.key, sender, payload, before_dot)

    def _skip_unsubscribed(self, item: Outgoing) -> None:
        self.store.record_delivery_attempt(
            item.key, DeliveryState.SKIPPED, self.clock(), error="unsubscribed", counted=True
        )
        self.report.skipped.append(item.key)

    def _left_pending(self, item: Outgoing, error: str) -> None:
        self.report.pending.append(Undelivered(item.key, error))
        log.warning("%s %s %s: left for the next run: %s", item.profile_id, item.day, item.subscriber, error)
