"""How a message leaves: the `Transport` protocol, over SMTP or into the outbox folder.

`open_transport` chooses the transport, in one place: SMTP when `[smtp]` settings are
given, else `.eml` files in the outbox. A transport sends one message at a time and tells
the caller, through `before_dot`, the moment after which the server may hold it (the
ledger marks the row 'sending' then). Failures are classified here (`TemporaryFailure`,
`PermanentFailure`, `FatalFailure`); what to do about them is the batch's decision. This
module never touches the ledger or renders a message.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import select
import smtplib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from digest.config import SmtpSettings
from digest.files import sync_folder, write_atomic
from digest.models import TransportKind
from digest.profiles import mail_address
from digest.rows import DeliveryKey

_DOT_LINE = re.compile(rb"(?m)^\.")


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


class Transport(Protocol):
    """Sends messages one at a time; `close` releases what it holds."""

    kind: TransportKind

    def send(self, key: DeliveryKey, sender: str, payload: bytes, before_dot: Callable[[], None]) -> None:
        """Hand over `payload` for `key`'s subscriber; call `before_dot` just before the server can
        accept it. Raises a `SendFailure` when the message was not accepted."""
        ...

    def settle(self) -> None:
        """Make what was handed over so far survive a power cut, before the ledger records it."""
        ...

    def close(self) -> None: ...


def transport_kind(smtp: SmtpSettings | None) -> TransportKind:
    """Which transport `open_transport` gives for these settings."""
    return TransportKind.OUTBOX if smtp is None else TransportKind.SMTP


def open_transport(
    smtp: SmtpSettings | None, *, outbox: Path, policy: RetryPolicy, tls_context: ssl.SSLContext | None = None
) -> Transport:
    """SMTP when `smtp` is given, else the outbox folder: the one place the transport is chosen.
    SMTP with `[smtp] dkim_selector` signs each message first (`deliver.dkim`)."""
    if smtp is None:
        return OutboxTransport(outbox)
    from digest.deliver.dkim import SigningTransport, dkim_signer  # it wraps this module's transports

    signer = dkim_signer(smtp)
    smtp_transport = SmtpTransport(smtp, policy, tls_context)
    return SigningTransport(smtp_transport, signer) if signer is not None else smtp_transport


def outbox_name(key: DeliveryKey) -> str:
    """`<day>_<profile>_<hash of the address>.eml` (a roll-up's: `<period>_...`, e.g.
    `2025-W52_...`): no raw address in file names."""
    who = hashlib.sha256(key.subscriber.strip().lower().encode("utf-8")).hexdigest()[:12]
    return f"{key.period or key.day.isoformat()}_{key.profile_id}_{who}.eml"


def message_bytes(message: EmailMessage) -> bytes:
    """The message as it goes on the wire and into `.eml` files: CRLF line ends."""
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


# -- failures ----------------------------------------------------------------------------


class SendFailure(Exception):
    """A try that did not end with the server's acceptance.

    `after_dot`: the whole message had been sent, so the server may have accepted it.
    """

    def __init__(self, message: str, *, after_dot: bool = False) -> None:
        super().__init__(message)
        self.after_dot = after_dot


class TemporaryFailure(SendFailure):
    """Worth another try. `connection`: the connection failed (counts toward stopping the run)."""

    def __init__(self, message: str, *, connection: bool = False, after_dot: bool = False, stage: str = "") -> None:
        super().__init__(message, after_dot=after_dot)
        self.connection = connection
        self.stage = stage


class PermanentFailure(SendFailure):
    """Refused for good for this recipient (a 5xx reply, an address SMTP cannot carry)."""


class FatalFailure(SendFailure):
    """Nothing more can be sent in this run (bad credentials, sender refused, server unreachable)."""


class Withdrawn(Exception):
    """`before_dot` refused the hand-over: the ledger gave the row to another sender. The
    transport abandons the message before the final "." (the server then keeps nothing)."""


class OutboxTransport:
    """Messages as `.eml` files: a rewrite of the same file is harmless, so no window at all."""

    kind = TransportKind.OUTBOX

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, key: DeliveryKey, sender: str, payload: bytes, before_dot: Callable[[], None]) -> None:
        # No 'sending' mark (one commit less per message): a file written but not yet
        # recorded is simply written again, under the same name, by the next run.
        try:
            write_atomic(self.folder / outbox_name(key), payload)
        except OSError as exc:
            raise TemporaryFailure(f"cannot write to the outbox: {exc}") from exc

    def settle(self) -> None:
        """Each file's bytes are flushed as it is written; its name is in the folder, flushed here."""
        sync_folder(self.folder)

    def close(self) -> None:
        """Nothing to release."""


class SmtpTransport:
    """One SMTP connection for the whole batch, opened lazily and reopened after a drop."""

    kind = TransportKind.SMTP

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
                self._transaction(self._connect(), sender, mail_address(key.subscriber), payload, before_dot)
                return
            except Withdrawn:
                # In the middle of DATA: a QUIT would be read as body text; only closing the
                # connection without the final "." abandons the message.
                if self.connection is not None:
                    self.connection.close()
                    self.connection = None
                raise
            except TemporaryFailure as exc:
                if not exc.connection:
                    raise
                self.close()
                if first and reused and exc.stage == "MAIL FROM":
                    continue  # the server closed an idle connection: open a new one at once, no backoff
                self._connection_failed(exc)
                raise

    def _connection_failed(self, exc: TemporaryFailure) -> None:
        self.connection_failures += 1
        if self.connection_failures >= self.policy.max_connection_failures:
            raise FatalFailure(
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
            raise FatalFailure(f"{where} refused the login of {s.username!r}: {_reply(exc)}") from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise FatalFailure(
                f"{where} does not support {'STARTTLS' if s.security == 'starttls' else 'AUTH'}"
            ) from exc
        except ssl.SSLCertVerificationError as exc:
            raise FatalFailure(f"{where}: the server's certificate was not accepted: {exc.verify_message}") from exc
        except smtplib.SMTPResponseException as exc:
            if 400 <= exc.smtp_code < 500:
                raise TemporaryFailure(f"{where} said {_reply(exc)} when connecting", connection=True) from exc
            raise FatalFailure(f"{where} said {_reply(exc)} when connecting") from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise TemporaryFailure(f"cannot connect to {where}: {_describe(exc)}", connection=True) from exc
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
            self._check(connection, stage, code, reply, after_dot=True)
        except UnicodeEncodeError as exc:
            _reset(connection)
            raise PermanentFailure(f"the address {recipient!r} needs SMTPUTF8, which is not supported") from exc
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise TemporaryFailure(
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
        after_dot: bool = False,
    ) -> None:
        if code in ok:
            return
        text = f"{code} {reply.decode('utf-8', 'replace').strip()}"
        if code == 421:
            # The server is closing the connection: a connection failure, not the recipient's.
            raise TemporaryFailure(f"{stage}: {text}", connection=True, stage=stage)
        self.connection_failures = 0
        _reset(connection)
        if code == -1:
            # No code in the reply: after the "." the server may hold the message (it is not
            # sent again in this run, and the next run flags it), as when no reply comes.
            raise TemporaryFailure(f"{stage}: no reply ({text})", connection=True, after_dot=after_dot, stage=stage)
        if 400 <= code < 500:
            raise TemporaryFailure(f"{stage}: {text}")
        if sender:
            raise FatalFailure(f"the server refused the sender at {stage}: {text}")
        raise PermanentFailure(f"{stage}: {text}")

    def settle(self) -> None:
        """The server holds what it accepted: nothing to do here."""

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
