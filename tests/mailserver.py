"""A real SMTP server on 127.0.0.1 (aiosmtpd) that records what it accepts, with failure injection.

Also the test side of delivery: digests saved in a real store, and the email messages a
renderer would make for them (multipart/alternative, UTF-8 subject, List-Unsubscribe).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from email.utils import format_datetime
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from conftest import NOW, SEEDS, TODAY

from digest.deliver import Outgoing, outgoing_emails
from digest.ingest.hf_dump import content_hash, decode_dump, parse_dump
from digest.models import Digest, Profile, Reason, ReasonKind, ScoredPaper
from digest.store import Store

SENDER = "Paper Digest <digest@example.org>"


@dataclass(frozen=True, slots=True)
class Received:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    peer: tuple[str, int] | None = None  # the client's address and port: one per connection

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=default)  # type: ignore[return-value]


@dataclass
class Faults:
    """What the server does wrong, and when. Lists are replies given in turn, then all is well."""

    rcpt: dict[str, list[str]] = field(default_factory=dict)  # address -> replies to its next RCPTs
    refuse: dict[str, str] = field(default_factory=dict)  # address -> reply to every RCPT (a 5xx)
    data: list[str] = field(default_factory=list)  # replies to the next ends of DATA, instead of accepting
    drop_in_data: int = 0  # close the connection right after "354", this many times
    drop_after_accept: int = 0  # record the message, then close without replying, this many times
    hang_up_after_reply: bool = False  # reply 250, then close the connection (as with idle clients)
    rcpt_delay: float = 0.0  # seconds before answering each RCPT
    on_rcpt: Callable[[str, int], None] | None = None  # (address, RCPTs so far), before answering
    on_accept: Callable[[Received, int], None] | None = None  # (message, accepted so far), before replying


class _Handler:
    def __init__(self, server: MailServer) -> None:
        self.server = server

    async def handle_RCPT(self, smtp: SMTP, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        faults = self.server.faults
        with self.server.lock:
            self.server.rcpt_count += 1
            count = self.server.rcpt_count
            queued = faults.rcpt.get(address)
            reply = queued.pop(0) if queued else faults.refuse.get(address)
        if faults.on_rcpt:
            faults.on_rcpt(address, count)
        if faults.rcpt_delay:
            await asyncio.sleep(faults.rcpt_delay)
        if reply:
            return await _maybe_close(smtp, reply)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, smtp: SMTP, session: Any, envelope: Any) -> str:
        faults = self.server.faults
        with self.server.lock:
            reply = faults.data.pop(0) if faults.data else None
        if reply:
            return await _maybe_close(smtp, reply)
        peer = tuple(session.peer[:2]) if session.peer else None
        received = Received(envelope.mail_from, tuple(envelope.rcpt_tos), bytes(envelope.original_content), peer)
        with self.server.lock:
            self.server.messages.append(received)
            count = len(self.server.messages)
            drop = faults.drop_after_accept > 0
            faults.drop_after_accept -= drop
        if faults.on_accept:
            faults.on_accept(received, count)
        if drop:
            smtp.transport.close()
            return "250 never seen by the client"
        if faults.hang_up_after_reply:
            await smtp.push("250 Message accepted for delivery")
            smtp.transport.close()
        return "250 Message accepted for delivery"


async def _maybe_close(smtp: SMTP, reply: str) -> str:
    if reply.startswith("421"):
        # A server that says 421 closes the connection right after.
        await smtp.push(reply)
        smtp.transport.close()
    return reply


class _FaultySMTP(SMTP):
    server: MailServer

    async def smtp_DATA(self, arg: str) -> None:
        faults = self.server.faults
        with self.server.lock:
            drop = faults.drop_in_data > 0
            faults.drop_in_data -= drop
        if not drop or not self.envelope or not self.envelope.rcpt_tos:
            await super().smtp_DATA(arg)
            return
        # Closed with the "354" (its FIN right behind it), not after reading some of the body:
        # then the client always meets the hang-up before its final ".", however loaded the
        # machine, instead of sometimes writing a small message whole before the close.
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        self.transport.close()


class _Controller(Controller):
    def __init__(self, server: MailServer, port: int, options: dict[str, Any]) -> None:
        super().__init__(_Handler(server), hostname="127.0.0.1", port=port, **options)
        self.mail_server = server

    def factory(self) -> SMTP:
        smtp = _FaultySMTP(self.handler, **self.SMTP_kwargs)
        smtp.server = self.mail_server
        return smtp

    def _trigger_server(self) -> None:
        # Bound to port 0: learn the port the system gave before the controller connects to it.
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class MailServer:
    """`with MailServer() as server:` a running server; `server.port`, `server.messages`."""

    def __init__(self, port: int = 0, faults: Faults | None = None, smtp_options: dict[str, Any] | None = None) -> None:
        self.port = port
        self.smtp_options = smtp_options or {}
        self.faults = faults or Faults()
        self.messages: list[Received] = []
        self.rcpt_count = 0
        self.lock = threading.Lock()
        self._controller: _Controller | None = None

    def start(self) -> MailServer:
        self._controller = _Controller(self, self.port, self.smtp_options)
        self._controller.start()
        self.port = self._controller.port
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> MailServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def by_recipient(self) -> dict[str, list[Received]]:
        found: dict[str, list[Received]] = {}
        with self.lock:
            for received in self.messages:
                for address in received.rcpt_tos:
                    found.setdefault(address, []).append(received)
        return found

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.messages)} of {count} messages after {timeout} s")
            time.sleep(0.02)


# -- digests and their messages ---------------------------------------------------------


def profile(pid: str, subscribers: list[str], **extra: Any) -> Profile:
    return Profile(pid, pid.replace("-", " ").capitalize(), description="d", subscribers=tuple(subscribers), **extra)


def save_digests(store: Store, profiles: list[Profile], day: date = TODAY, papers: int = 3) -> list[Digest]:
    """A real digest per profile, saved in `store`, from papers of a real seed dump."""
    if store.paper_count() == 0:
        text = decode_dump((SEEDS / "000_9d0724fe38360f6f.txt").read_bytes())
        store.add_dump(parse_dump(text, "seed.txt", today=TODAY), content_hash(text), NOW)
    stored = list(store.iter_papers())
    digests = []
    for index, p in enumerate(profiles):
        chosen = stored[index * papers : (index + 1) * papers]
        items = tuple(
            ScoredPaper(paper, 0.9 - rank / 10, (Reason(ReasonKind.LEGACY, text="matches 'learning'"),))
            for rank, paper in enumerate(chosen)
        )
        digest = Digest(p, day, items, NOW, candidates=len(stored))
        assert store.save_digest(digest, store.watermark())
        loaded = store.load_digest(p, day)
        assert loaded is not None
        digests.append(loaded)
    return digests


def digest_message(digest: Digest, subscriber: str, message_id: str) -> EmailMessage:
    """What a renderer makes for one subscriber: multipart/alternative, UTF-8 subject, list headers."""
    message = EmailMessage()
    count = len(digest.items)
    message["Subject"] = f"{count} new papers for {digest.profile.title} — {digest.date:%a %d %b %Y} ✓"
    message["From"] = SENDER
    message["To"] = subscriber
    message["Date"] = format_datetime(digest.built_at)
    message["Message-ID"] = message_id
    message["List-Id"] = f"{digest.profile.title} <{digest.profile.id}.digest.example.org>"
    message["List-Unsubscribe"] = (
        f"<https://example.org/paper-digest/unsubscribe?p={digest.profile.id}&t=tok>, "
        f"<mailto:digest@example.org?subject=unsubscribe%20{digest.profile.id}>"
    )
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    titles = [item.paper.title for item in digest.items]
    message.set_content("Für dich:\n\n" + "\n".join(f"- {t}" for t in titles) + "\n.\n.leading dot\n")
    items = "".join(f"<li>{t}</li>" for t in titles)
    message.add_alternative(f"<html><body><p>Für dich</p><ul>{items}</ul></body></html>", subtype="html")
    return message


def outgoing_for(digests: list[Digest]) -> list[Outgoing]:
    return outgoing_emails(digests, digest_message)
