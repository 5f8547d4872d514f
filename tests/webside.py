"""The web side under test: a real uvicorn on 127.0.0.1 over a real config, store and clock.

`web_config` writes a `digest.toml` (the shipped profiles, `continual-learning` open to
subscribers, `[web]` on a free loopback port, `[smtp]` when a mail server is given);
`serving` runs the web side on it in this process; `Clock` is a clock a test moves.
"""

from __future__ import annotations

import email
import re
import socket
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path

from conftest import ROOT, SEEDS

from digest.app import App
from digest.config import Config, load_config
from digest.models import Entry, Organization, Paper
from digest.render.links import WebLinks
from digest.web.app import create_app
from digest.web.server import WebServer

KEY = "web-side-test-key-0123456789"
ENVIRON = {"DIGEST_SECRET_KEY": KEY}
NOW = datetime(2026, 1, 10, 8, 0, tzinfo=UTC)
OPEN = "continual-learning"
ADA = "ada@example.org"  # continual-learning's one subscriber in digest.toml: its owner


class Clock:
    """A clock a test moves: `clock.now += timedelta(...)`."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def web_config(
    folder: Path,
    *,
    port: int | None = None,
    smtp_port: int | None = None,
    inbox: Path = SEEDS,
    extra: str = "",
    profiles: str | None = None,
    digest: str = "",
) -> Path:
    """A `digest.toml` in `folder` for the web side on 127.0.0.1:`port`; returns its path."""
    port = port or free_port()
    text = profiles if profiles is not None else (ROOT / "digest.toml").read_text(encoding="utf-8")
    text = text.replace('inbox = "seeds"', f'inbox = "{inbox}"\n{digest}')
    text = text.replace(f'id = "{OPEN}"', f'id = "{OPEN}"\nopen = true', 1)
    head = f'[web]\nlisten = "127.0.0.1:{port}"\nbase_url = "http://127.0.0.1:{port}/"\n'
    if smtp_port is not None:
        head += f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\nsecurity = "none"\n'
        head += "timeout = 5\nattempts = 2\nbackoff = 0\n"
    path = folder / "digest.toml"
    path.write_text(head + extra + "\n" + text, encoding="utf-8")
    return path


def load(path: Path) -> Config:
    return load_config(path, path.parent, environ=ENVIRON)


@contextmanager
def serving(config: Config, clock: Clock | None = None) -> Iterator[tuple[App, str]]:
    """The web side of `config` on its `[web] listen` address: an `App` for the test's own
    use (the same database, its own connection) and the base URL."""
    app = App(config, clock=clock or Clock(), environ=ENVIRON)
    assert config.web.listen is not None
    server = WebServer(create_app(app), config.web.listen).start()
    try:
        yield app, server.url
    finally:
        server.stop()
        app.close()


def links(config: Config) -> WebLinks:
    assert config.web.base_url is not None
    return WebLinks(config.web.base_url, KEY.encode())


def database_rows(path: Path) -> list[str]:
    """Every row of every table, as SQL: equal before and after means nothing changed."""
    db = sqlite3.connect(path)
    try:
        return list(db.iterdump())
    finally:
        db.close()


def read_eml(path: Path) -> EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def text_of(message: EmailMessage) -> str:
    parts = [message] if not message.is_multipart() else list(message.walk())
    return "\n".join(p.get_content() for p in parts if p.get_content_maintype() == "text")


_URL = re.compile(r"""https?://[^\s"'<>]+""")


def links_in(message: EmailMessage) -> list[str]:
    """Every URL in the message: its headers and both parts (HTML entities undone)."""
    found = _URL.findall(str(message.get("List-Unsubscribe", "")))
    found += [u.replace("&amp;", "&") for u in _URL.findall(text_of(message))]
    return list(dict.fromkeys(found))


def confirm_link(message: EmailMessage) -> str:
    (link,) = [u for u in links_in(message) if "/c/" in u]
    return link


# -- a day of near-duplicates ------------------------------------------------------------------

_FILLER = (
    "We evaluate on standard benchmarks and report accuracy over several runs. Our experiments use common "
    "image classification datasets and compare with strong baselines."
)
OTHERS = (
    (
        "Learning New Speech Accents Over Time",
        "Speech recognisers meet new accents after deployment. We study continual learning for them: a recogniser "
        "adapts to a sequence of accents without catastrophic forgetting of earlier ones, with a small regulariser "
        "on the decoder and no stored audio.",
    ),
    (
        "Prototype Memories for Graph Neural Networks",
        "We keep one prototype per node type in a graph neural network so that it still recognises earlier node "
        "types as new ones appear in a growing graph, and evaluate it on citation and product graphs.",
    ),
)


def near_duplicates(paper: Paper, day: date, organization: Organization | None = None) -> list[Entry]:
    """Four papers saying more and more of what `paper` says (its first quarter, 40 %, 60 %, all
    of its sentences, then the same two sentences of filler), then two others near the topic
    (for continual-learning: they score below the look-alikes, until a reader marks `paper`
    "less like this")."""
    sentences = re.split(r"(?<=[.!?])\s+", paper.abstract)
    entries = []
    for number, share in enumerate((0.25, 0.4, 0.6, 1.0), start=1):
        kept = " ".join(sentences[: max(1, int(len(sentences) * share))])
        entries.append(Entry(f"{paper.title}: Variant {number}", f"{kept} {_FILLER}", 4, organization, day, 3))
    entries += [Entry(title, abstract, 5, organization, day, 2) for title, abstract in OTHERS]
    return entries
