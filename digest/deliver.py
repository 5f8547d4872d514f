"""Delivering digest emails once: SMTP (or `.eml` files in the outbox) through the delivery ledger.

The ledger (`deliveries` in the store) has one row per profile, subscriber and digest
day. A row is made, with its Message-ID, the first time a message is due; every later
attempt reuses that Message-ID. For each message, in order:

1. the row and the subscriber's unsubscribe state are read again (another process or an
   unsubscribe may have changed them); a row already 'sent', 'failed' or 'skipped' is left;
2. the caller's `render(message_id)` gives the `EmailMessage`;
3. MAIL FROM, RCPT TO and DATA are sent, then the body; the row becomes 'sending'
   (committed) just before the final "." that lets the server accept the message;
4. on the server's 250 the row becomes 'sent' (committed), and the digest 'delivered'.

So the only moment at which the server may hold the message while the ledger does not
say 'sent' is between the final "." and that commit. A row found 'sending' when a batch
starts was left by a process that died in that window: it is sent again with the same
Message-ID and flagged `possible_duplicate` (see the README, "Delivery"). So is a message
whose connection was lost after its final ".", but by the next run, not by a retry in
this one; and a message that may have arrived twice that way is not sent a third time.

Temporary failures (4xx replies, refused, dropped or timed-out connections) are retried
with exponential backoff (stamina) and, if still failing, left 'pending' for the next
run; a 5xx reply for a recipient marks that row 'failed'; several consecutive connection
failures stop the run. This module never renders, ranks or builds digests.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import secrets
import select
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from email.utils import parseaddr
from functools import partial
from pathlib import Path

import stamina
from filelock import FileLock, Timeout

from digest.config import SmtpSettings
from digest.files import write_atomic
from digest.models import Digest, Profile
from digest.store import Delivery, DeliveryKey, Store

log = logging.getLogger(__name__)

DONE_STATES = ("sent", "failed", "skipped")
RETRY_DAYS = 7  # an email not accepted this many days after its digest's day is given up
SEND_LOCK_TIMEOUT = 60.0  # seconds to wait for another process that is sending
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
_DOT_LINE = re.compile(rb"(?m)^\.")


class DeliveryError(Exception):
    """Nothing can be sent as configured (an SMTP login without its password). One line."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One subscriber's copy of one profile's digest for one day.

    `render(message_id)` returns the message to send; it is called only when the message
    is actually due, with the ledger's Message-ID (the same on every retry).
    """

    profile_id: str
    day: date
    subscriber: str
    render: Callable[[str], EmailMessage | None]

    @property
    def key(self) -> DeliveryKey:
        return (self.profile_id, self.day, self.subscriber)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try. Times in seconds; the wait doubles from `backoff` up to `backoff_max`."""

    attempts: int = 4
    backoff: float = 2.0
    backoff_max: float = 60.0
    jitter: float = 1.0
    max_connection_failures: int = 5

    @classmethod
    def from_settings(cls, smtp: SmtpSettings) -> RetryPolicy:
        return cls(
            attempts=smtp.attempts,
            backoff=smtp.backoff,
            backoff_max=smtp.backoff_max,
            jitter=min(1.0, smtp.backoff),
            max_connection_failures=smtp.max_connection_failures,
        )


@dataclass(slots=True)
class DeliveryReport:
    """What one batch did. `stopped` says why the run ended early (None: it went through)."""

    transport: str
    sent: list[DeliveryKey] = field(default_factory=list)
    already: int = 0
    failed: list[tuple[DeliveryKey, str]] = field(default_factory=list)
    pending: list[tuple[DeliveryKey, str]] = field(default_factory=list)
    skipped: list[DeliveryKey] = field(default_factory=list)
    possible_duplicates: list[DeliveryKey] = field(default_factory=list)
    digests_failed: list[tuple[str, date]] = field(default_factory=list)
    not_reached: int = 0
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
        text = f"{self.transport}: " + ", ".join(parts) + f" in {self.seconds:.1f} s"
        return f"{text}; stopped: {self.stopped}" if self.stopped else text


@dataclass(frozen=True, slots=True)
class Planned:
    """What `send_digests` would do with one outgoing message (`digest send --dry-run`)."""

    outgoing: Outgoing
    state: str  # 'new', a ledger state, or 'unsubscribed'
    message_id: str | None


def outgoing_emails(
    digests: Sequence[Digest], render: Callable[[Digest, str, str], EmailMessage | None]
) -> list[Outgoing]:
    """One `Outgoing` per subscriber of each non-empty digest whose profile wants email.

    `render(digest, subscriber, message_id)` makes the message, e.g. a call of
    `render_email(digest, subscriber=..., sender=..., message_id=..., ...)`.
    """
    found = []
    for digest in digests:
        if not digest.items or "email" not in digest.profile.formats:
            continue
        for subscriber in digest.profile.subscribers:
            found.append(Outgoing(digest.profile.id, digest.date, subscriber, partial(render, digest, subscriber)))
    return found


def is_done(row: Delivery, transport: str) -> bool:
    """True when a ledger row needs nothing more over `transport` ('smtp' or 'outbox').

    A message only written to the outbox is not done once SMTP is configured: it is then
    sent over SMTP, with the same Message-ID.
    """
    if transport == "smtp" and row.transport == "outbox" and row.state == "sent":
        return False
    return row.state in DONE_STATES


def email_done(store: Store, digest: Digest, transport: str = "smtp") -> bool:
    """True when no email of `digest` is still to go: each was sent, refused for good or unsubscribed.

    An empty digest, or a profile without email, has nothing to send.
    """
    profile = digest.profile
    if not digest.items or "email" not in profile.formats:
        return True
    if store.digest_state(profile.id, digest.date) == "failed":
        return True
    rows = {row.subscriber: row for row in store.deliveries(day=digest.date, profile_id=profile.id)}
    return all(
        (address in rows and is_done(rows[address], transport)) or store.is_unsubscribed(address, profile.id)
        for address in profile.subscribers
    )


def digest_done(store: Store, profile: Profile, day: date, transport: str = "smtp") -> bool:
    """The service's `is_done`: the digest of `profile` for `day` is built and its emails are done."""
    digest = store.load_digest(profile, day)
    return digest is not None and email_done(store, digest, transport)


def due_digests(
    store: Store,
    profiles: Sequence[Profile],
    *,
    today: date,
    day: date | None = None,
    days: int = RETRY_DAYS,
    transport: str = "smtp",
) -> list[Digest]:
    """Built digests whose emails are still to go: of `day`, or of the `days` days up to `today`, oldest first."""
    found = []
    for profile in profiles:
        for built in store.digest_days(profile.id):
            in_range = built == day if day is not None else today - timedelta(days=days) < built <= today
            digest = store.load_digest(profile, built) if in_range else None
            if digest is not None and not email_done(store, digest, transport):
                found.append(digest)
    return sorted(found, key=lambda d: d.date)


def with_earlier_due(store: Store, digests: Sequence[Digest], *, transport: str = "smtp") -> list[Digest]:
    """`digests`, after their profiles' earlier digests whose emails are still due (left
    pending by a failed run): each scheduled run also finishes what an earlier one could not."""
    found: dict[tuple[str, date], Digest] = {}
    for digest in digests:
        for earlier in due_digests(store, [digest.profile], today=digest.date, transport=transport):
            found.setdefault((earlier.profile.id, earlier.date), earlier)
    for digest in digests:
        found.setdefault((digest.profile.id, digest.date), digest)
    return sorted(found.values(), key=lambda d: d.date)


def give_up_stale_emails(
    store: Store,
    profiles: Sequence[Profile],
    *,
    today: date,
    at: datetime,
    days: int = RETRY_DAYS,
    transport: str = "smtp",
) -> list[tuple[str, date]]:
    """Mark 'failed' every email still unsent `days` days after its digest's day.

    A digest that nothing delivered then becomes 'failed' too, so its papers come back in
    the profile's next digest instead of waiting forever. Returns those digests.
    """
    error = f"not accepted within {days} days: given up"
    last_day = today - timedelta(days=days)
    failed = []
    for profile in profiles:
        rows = store.deliveries(profile_id=profile.id)  # one read per profile, not one per day
        stale = [r for r in rows if r.day <= last_day and not is_done(r, transport)]
        for row in stale:
            store.record_delivery_attempt(
                (profile.id, row.day, row.subscriber), "failed", at, error=error, counted=True
            )
            log.warning("%s %s %s: %s", profile.id, row.day, row.subscriber, error)
        for day in dict.fromkeys(row.day for row in stale):
            if store.fail_undelivered_digest(profile.id, day, at):
                failed.append((profile.id, day))
    return failed


def plan_deliveries(store: Store, outgoing: Sequence[Outgoing], transport: str = "smtp") -> list[Planned]:
    """The state of each message in the ledger, changing nothing."""
    plans = []
    for item in outgoing:
        row = store.get_delivery(item.key)
        state = "new" if row is None else ("pending" if not is_done(row, transport) else row.state)
        if state not in DONE_STATES and store.is_unsubscribed(item.subscriber, item.profile_id):
            state = "unsubscribed"
        plans.append(Planned(item, state, row.message_id if row else None))
    return plans


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
) -> DeliveryReport:
    """Send every message in `outgoing` that the ledger does not record as done.

    With `smtp`, over one SMTP connection (reopened when the server drops it); without,
    each message becomes `outbox/<day>_<profile>_<address hash>.eml`, through the same
    ledger. `clock` gives aware datetimes. One process sends at a time (a lock file beside
    the database): when another one holds it for `lock_timeout` seconds, nothing is sent
    and the report says why (`stopped`; the emails stay pending for the next run).
    `should_stop()` is checked before each message and each retry. `delivers=False` says an
    accepted message does not deliver its digest (an outbox preview while SMTP is
    configured): its papers are not yet taken as given. Raises `DeliveryError` (nothing
    sent) for configuration problems (`smtp_login_problem`).
    """
    started = time.monotonic()
    policy = retry or (RetryPolicy.from_settings(smtp) if smtp else RetryPolicy())
    problem = smtp_login_problem(smtp)
    if problem:
        raise DeliveryError(problem)
    transport: _Transport = _Outbox(outbox) if smtp is None else _Smtp(smtp, policy, tls_context)
    domain = message_id_domain or _domain(smtp.sender if smtp else None) or "paper-digest.invalid"
    report = DeliveryReport(transport=transport.name)
    lock = FileLock(f"{store.path}.send.lock", timeout=lock_timeout)
    try:
        lock.acquire()
    except Timeout:
        report.stopped = f"another process is sending (it holds {lock.lock_file}); the emails stay pending"
        rows = (store.get_delivery(item.key) for item in outgoing)
        report.already = sum(row is not None and is_done(row, transport.name) for row in rows)
        report.not_reached = len(outgoing) - report.already
        report.seconds = time.monotonic() - started
        log.warning("delivery %s", report.summary())
        return report
    try:
        store.add_deliveries(
            [o.key for o in outgoing], lambda key: make_message_id(key, domain), transport.name, clock()
        )
        batch = _Batch(store, transport, policy, clock, should_stop, smtp.sender if smtp else None, report, delivers)
        for index, item in enumerate(outgoing):
            if should_stop():
                report.stopped = "stop requested"
                report.not_reached = len(outgoing) - index
                break
            if not batch.deliver(item):
                report.not_reached = len(outgoing) - index - 1
                break
        for profile_id, day in dict.fromkeys((o.profile_id, o.day) for o in outgoing):
            if store.fail_undelivered_digest(profile_id, day, clock()):
                report.digests_failed.append((profile_id, day))
    finally:
        transport.close()
        lock.release()
    report.seconds = time.monotonic() - started
    log.info("delivery %s", report.summary())
    return report


def smtp_login_problem(smtp: SmtpSettings | None) -> str | None:
    """Why sending over `smtp` cannot log in (a username without its password), or None."""
    if smtp is not None and smtp.username and not smtp.password:
        return "[smtp] username is set but DIGEST_SMTP_PASSWORD is not set in the environment"
    return None


def make_message_id(key: DeliveryKey, domain: str) -> str:
    """A new, unique Message-ID for a ledger row: `<day.random@domain>` (short: no header folding)."""
    _, day, _ = key
    return f"<{day:%Y%m%d}.{secrets.token_hex(8)}@{domain}>"


def outbox_name(key: DeliveryKey) -> str:
    """`<day>_<profile>_<hash of the address>.eml`: no raw address in file names."""
    profile_id, day, subscriber = key
    who = hashlib.sha256(subscriber.strip().lower().encode("utf-8")).hexdigest()[:12]
    return f"{day.isoformat()}_{profile_id}_{who}.eml"


def message_bytes(message: EmailMessage) -> bytes:
    """The message as it goes on the wire and into `.eml` files: CRLF line ends."""
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


def _domain(address: str | None) -> str | None:
    if not address:
        return None
    return parseaddr(address)[1].rpartition("@")[2] or None


# -- failures ----------------------------------------------------------------------------


class _Failure(Exception):
    """A try that did not end with the server's acceptance.

    `after_dot`: the whole message had been sent, so the server may have accepted it.
    """

    def __init__(self, message: str, *, after_dot: bool = False) -> None:
        super().__init__(message)
        self.after_dot = after_dot


class _Temporary(_Failure):
    """Worth another try. `connection`: the connection failed (counts toward stopping the run)."""

    def __init__(self, message: str, *, connection: bool = False, after_dot: bool = False, stage: str = "") -> None:
        super().__init__(message, after_dot=after_dot)
        self.connection = connection
        self.stage = stage


class _Permanent(_Failure):
    """Refused for good for this recipient (a 5xx reply, an address SMTP cannot carry)."""


class _Fatal(_Failure):
    """Nothing more can be sent in this run (bad credentials, sender refused, server unreachable)."""


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


# -- the batch -----------------------------------------------------------------------------


class _Batch:
    def __init__(
        self,
        store: Store,
        transport: _Transport,
        policy: RetryPolicy,
        clock: Callable[[], datetime],
        should_stop: Callable[[], bool],
        sender: str | None,
        report: DeliveryReport,
        delivers: bool,
    ) -> None:
        self.store = store
        self.delivers = delivers
        self.transport = transport
        self.policy = policy
        self.clock = clock
        self.should_stop = should_stop
        self.sender = sender
        self.report = report

    def deliver(self, item: Outgoing) -> bool:
        """Try to deliver one message; False when the run must stop."""
        row = self.store.get_delivery(item.key)
        assert row is not None, "add_deliveries made every row"
        if is_done(row, self.transport.name):
            self.report.already += 1
            return True
        if row.state == "sent":
            self.store.reopen_outbox_delivery(item.key, self.clock())
        if self.store.is_unsubscribed(item.subscriber, item.profile_id):
            self._skip_unsubscribed(item)
            return True
        resent = row.possible_duplicate
        if row.state == "sending":
            self.store.resume_interrupted_delivery(item.key, self.clock(), INTERRUPTED_NOTE)
            log.warning("%s %s %s: %s", item.profile_id, item.day, item.subscriber, INTERRUPTED_NOTE)
            resent = True
        who = f"{item.profile_id} {item.day} {item.subscriber}"
        try:
            payload, sender = self._prepare(item, row)
        except ValueError as exc:
            error = f"cannot prepare the message: {exc}"
            self.store.record_delivery_attempt(item.key, "pending", self.clock(), error=error, counted=True)
            self._left_pending(item, error)
            return True
        try:
            resent = self._send_with_retries(item, payload, sender, resent)
        except _Unsubscribed:
            self._skip_unsubscribed(item)
            return True
        except _Permanent as exc:
            self.report.failed.append((item.key, str(exc)))
            log.warning("%s: failed for good: %s", who, exc)
            return True
        except _LostReply as exc:
            if exc.again:
                self.report.failed.append((item.key, str(exc)))
                log.warning("%s: %s", who, exc)
            else:
                self._left_pending(item, str(exc))
            return True
        except _Temporary as exc:
            self._left_pending(item, str(exc))
            return True
        except (_Fatal, _Stopped) as exc:
            self.report.stopped = str(exc)
            self._left_pending(item, str(exc))
            return False
        self.report.sent.append(item.key)
        if resent:
            self.report.possible_duplicates.append(item.key)
        log.debug("%s: sent", who)
        return True

    def _prepare(self, item: Outgoing, row: Delivery) -> tuple[bytes, str]:
        try:
            message = item.render(row.message_id)
        except Exception as exc:
            raise ValueError(f"{type(exc).__name__}: {exc}") from exc
        if message is None:
            raise ValueError("the renderer gave no message")
        given = message.get("Message-ID")
        if given is None:
            message["Message-ID"] = row.message_id
        elif str(given).strip() != row.message_id:
            raise ValueError(f"the message's Message-ID {given!s} is not the ledger's {row.message_id}")
        sender = parseaddr(self.sender or str(message.get("From", "")))[1]
        if "@" not in sender:
            raise ValueError("no sender address: set [smtp] from, or give the message a From")
        return message_bytes(message), sender

    def _send_with_retries(self, item: Outgoing, payload: bytes, sender: str, resent: bool) -> bool:
        """Send until accepted; returns whether a copy may have been accepted before (a resend).

        A try that ends after the final "." without the server's answer is not retried in
        this run (`_LostReply`): every retry could add a copy. The row stays pending, flagged,
        for one more send by the next run; if that one ends the same way, the row fails for
        good (two copies may have arrived) instead of sending a third.
        """
        for attempt in stamina.retry_context(
            on=_Temporary,
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
                except _Failure as exc:
                    if exc.after_dot and not isinstance(exc, _Fatal | _Permanent):
                        lost = _LostReply(LOST_TWICE_ERROR if resent else LOST_REPLY_ERROR, again=resent)
                        self._record_lost_reply(item, lost, exc)
                        raise lost from exc
                    # Every try is recorded as it ends: if the process dies during a backoff, the ledger knows.
                    self.store.record_delivery_attempt(
                        item.key,
                        "failed" if isinstance(exc, _Permanent) else "pending",
                        self.clock(),
                        error=str(exc),
                        counted=self._counted,
                        possible_duplicate=exc.after_dot,
                        note=LOST_REPLY_NOTE if exc.after_dot else None,
                    )
                    resent = resent or exc.after_dot
                    raise
        return resent

    def _record_lost_reply(self, item: Outgoing, lost: _LostReply, cause: _Failure) -> None:
        self.store.record_delivery_attempt(
            item.key,
            "failed" if lost.again else "pending",
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
            self.store.mark_delivery_sending(item.key, self.clock())
            self._counted = True

        self.transport.send(item.key, sender, payload, before_dot)
        self.store.mark_delivery_sent(item.key, self.clock(), counted=self._counted, delivers=self.delivers)

    def _skip_unsubscribed(self, item: Outgoing) -> None:
        self.store.record_delivery_attempt(item.key, "skipped", self.clock(), error="unsubscribed", counted=True)
        self.report.skipped.append(item.key)

    def _left_pending(self, item: Outgoing, error: str) -> None:
        self.report.pending.append((item.key, error))
        log.warning("%s %s %s: left for the next run: %s", item.profile_id, item.day, item.subscriber, error)


# -- transports ---------------------------------------------------------------------------


class _Transport:
    name = ""

    def send(self, key: DeliveryKey, sender: str, payload: bytes, before_dot: Callable[[], None]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release the connection, if any."""


class _Outbox(_Transport):
    """Messages as `.eml` files: a rewrite of the same file is harmless, so no window at all."""

    name = "outbox"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, key: DeliveryKey, sender: str, payload: bytes, before_dot: Callable[[], None]) -> None:
        # No 'sending' mark (one commit less per message): a file written but not yet
        # recorded is simply written again, under the same name, by the next run.
        try:
            write_atomic(self.folder / outbox_name(key), payload)
        except OSError as exc:
            raise _Temporary(f"cannot write to the outbox: {exc}") from exc


class _Smtp(_Transport):
    """One SMTP connection for the whole batch, opened lazily and reopened after a drop."""

    name = "smtp"

    def __init__(self, settings: SmtpSettings, policy: RetryPolicy, tls_context: ssl.SSLContext | None) -> None:
        self.settings = settings
        self.policy = policy
        self.tls_context = tls_context
        self.connection: smtplib.SMTP | None = None
        self.connection_failures = 0

    def send(self, key: DeliveryKey, sender: str, payload: bytes, before_dot: Callable[[], None]) -> None:
        for first in (True, False):
            reused = self.connection is not None
            try:
                self._transaction(self._connect(), sender, key[2], payload, before_dot)
                return
            except _Temporary as exc:
                if not exc.connection:
                    raise
                self.close()
                if first and reused and exc.stage == "MAIL FROM":
                    continue  # the server closed an idle connection: open a new one at once, no backoff
                self._connection_failed(exc)
                raise

    def _connection_failed(self, exc: _Temporary) -> None:
        self.connection_failures += 1
        if self.connection_failures >= self.policy.max_connection_failures:
            raise _Fatal(
                f"gave up after {self.connection_failures} consecutive connection failures "
                f"({self.settings.host}:{self.settings.port}; last: {exc})",
                after_dot=exc.after_dot,
            ) from exc

    def _connect(self) -> smtplib.SMTP:
        if self.connection is not None:
            return self.connection
        s = self.settings
        where = f"{s.host}:{s.port}"
        context = self.tls_context or ssl.create_default_context()
        try:
            if s.security == "ssl":
                connection: smtplib.SMTP = smtplib.SMTP_SSL(
                    s.host, s.port, local_hostname=socket.gethostname(), timeout=s.timeout, context=context
                )
            else:
                connection = smtplib.SMTP(s.host, s.port, local_hostname=socket.gethostname(), timeout=s.timeout)
            try:
                # The final "." goes in its own small packet after the ledger commit: without
                # TCP_NODELAY, Nagle's algorithm holds it for the server's delayed ACK (~40 ms).
                if connection.sock is not None:
                    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                connection.ehlo()
                if s.security == "starttls":
                    connection.starttls(context=context)
                    connection.ehlo()
                if s.username:
                    connection.login(s.username, s.password or "")
            except BaseException:
                _close_quietly(connection)
                raise
        except smtplib.SMTPAuthenticationError as exc:
            raise _Fatal(f"{where} refused the login of {s.username!r}: {_reply(exc)}") from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise _Fatal(f"{where} does not support {'STARTTLS' if s.security == 'starttls' else 'AUTH'}") from exc
        except ssl.SSLCertVerificationError as exc:
            raise _Fatal(f"{where}: the server's certificate was not accepted: {exc.verify_message}") from exc
        except smtplib.SMTPResponseException as exc:
            if 400 <= exc.smtp_code < 500:
                raise _Temporary(f"{where} said {_reply(exc)} when connecting", connection=True) from exc
            raise _Fatal(f"{where} said {_reply(exc)} when connecting") from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise _Temporary(f"cannot connect to {where}: {_describe(exc)}", connection=True) from exc
        self.connection = connection
        return connection

    def _transaction(
        self, connection: smtplib.SMTP, sender: str, recipient: str, payload: bytes, before_dot: Callable[[], None]
    ) -> None:
        stage = "MAIL FROM"
        after_dot = False
        try:
            code, reply = connection.mail(sender)
            self._check(connection, stage, code, reply, sender=True)
            stage = "RCPT TO"
            code, reply = connection.rcpt(recipient)
            self._check(connection, stage, code, reply, ok=(250, 251))
            stage = "DATA"
            code, reply = connection.docmd("DATA")
            self._check(connection, stage, code, reply, ok=(354,))
            body = _DOT_LINE.sub(b"..", payload)
            connection.send(body if body.endswith(b"\r\n") else body + b"\r\n")
            before_dot()
            if _server_spoke(connection):
                # A server says nothing during the body: it hung up (or is about to), and the
                # "." is not yet written, so it cannot hold the message. Not a possible duplicate.
                raise smtplib.SMTPServerDisconnected("the server hung up before the end of the message")
            connection.send(b".\r\n")
            after_dot = True
            stage = "end of DATA"
            code, reply = connection.getreply()
            self._check(connection, stage, code, reply)
        except UnicodeEncodeError as exc:
            _reset(connection)
            raise _Permanent(f"the address {recipient!r} needs SMTPUTF8, which is not supported") from exc
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise _Temporary(
                f"connection lost at {stage}: {_describe(exc)}", connection=True, after_dot=after_dot, stage=stage
            ) from exc
        self.connection_failures = 0

    def _check(
        self,
        connection: smtplib.SMTP,
        stage: str,
        code: int,
        reply: bytes,
        *,
        ok: tuple[int, ...] = (250,),
        sender: bool = False,
    ) -> None:
        if code in ok:
            return
        text = f"{code} {reply.decode('utf-8', 'replace').strip()}"
        if code == 421:
            # The server is closing the connection: a connection failure, not the recipient's.
            raise _Temporary(f"{stage}: {text}", connection=True, stage=stage)
        self.connection_failures = 0
        _reset(connection)
        if code == -1:
            raise _Temporary(f"{stage}: no reply ({text})", connection=True)
        if 400 <= code < 500:
            raise _Temporary(f"{stage}: {text}")
        if sender:
            raise _Fatal(f"the server refused the sender at {stage}: {text}")
        raise _Permanent(f"{stage}: {text}")

    def close(self) -> None:
        if self.connection is not None:
            _close_quietly(self.connection)
            self.connection = None


def _server_spoke(connection: smtplib.SMTP) -> bool:
    """True when the server sent something, or closed the connection, since its last reply."""
    sock = connection.sock
    if sock is None:
        return True
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


def _reset(connection: smtplib.SMTP) -> None:
    with contextlib.suppress(smtplib.SMTPException, OSError):
        connection.rset()


def _close_quietly(connection: smtplib.SMTP) -> None:
    with contextlib.suppress(smtplib.SMTPException, OSError):
        connection.quit()
    connection.close()


def _reply(exc: smtplib.SMTPResponseException) -> str:
    error = exc.smtp_error
    text = error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)
    return f"{exc.smtp_code} {text.strip()}"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    return str(exc) or type(exc).__name__


__all__ = [
    "SEND_LOCK_TIMEOUT",
    "DeliveryError",
    "DeliveryReport",
    "Outgoing",
    "Planned",
    "RetryPolicy",
    "digest_done",
    "due_digests",
    "email_done",
    "make_message_id",
    "message_bytes",
    "outbox_name",
    "outgoing_emails",
    "plan_deliveries",
    "send_digests",
    "smtp_login_problem",
]
