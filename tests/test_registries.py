"""Adding an output format or a source touches no other module: a renderer (or parser) and one entry.

Both are added here, in the tests only, through the registries (`digest.formats`,
`digest.ingest`), and go through the whole application: a build writes the new format's
files, and an ingest reads the new source's files, with problems named by line.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from conftest import SEEDS

from digest.app import App
from digest.config import ConfigError, load_config
from digest.formats import FormatKind, OutputFormat, format_names, register, unregister
from digest.ingest import ReadContext, Reading, Source
from digest.ingest import register as register_source
from digest.ingest import unregister as unregister_source
from digest.models import Digest, Dump, Entry, Problem
from digest.render.feeds import FeedData

NOW = datetime(2026, 1, 10, 8, 0, tzinfo=UTC)


def plain_text(digest: Digest, env: object) -> str:
    """The test format's renderer: its template, from the configured templates folder."""
    return env.get_template("digest.plain.txt").render(digest=digest)  # type: ignore[attr-defined]


@pytest.fixture
def plain_format() -> Iterator[OutputFormat]:
    output = register(
        OutputFormat("plain", FormatKind.DOCUMENT, "Plain text", "text/plain", "{profile}/{day}.txt", plain_text)
    )
    yield output
    unregister("plain")


def test_a_new_format_is_one_registry_entry(plain_format: OutputFormat, tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "digest.plain.txt").write_text(
        "{{ digest.profile.title }} on {{ digest.date }}\n{% for item in digest.items %}- {{ item.paper.title }}\n"
        "{% endfor %}",
        encoding="utf-8",
    )
    (tmp_path / "digest.toml").write_text(
        f'[digest]\ninbox = "{SEEDS}"\ntemplates = "templates"\n\n'
        '[[profiles]]\nid = "cl"\ndescription = "continual learning, catastrophic forgetting"\n'
        'formats = ["plain", "atom"]\n',
        encoding="utf-8",
    )
    assert "plain" in format_names()
    config = load_config(tmp_path / "digest.toml", tmp_path, environ={})
    with App(config, clock=lambda: NOW, environ={}) as app:
        app.ingest()
        report = app.build(app.profiles())
    written = config.digests / "cl" / "2026-01-10.txt"
    assert written in report.written
    lines = written.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "cl on 2026-01-10" and len(lines) == 1 + len(report.digests[0].items) > 1
    assert (config.feeds / "cl.atom").exists() and not list(config.digests.glob("cl/*.md"))  # only what it asked


def test_a_format_no_one_registered_is_refused(tmp_path: Path) -> None:
    (tmp_path / "digest.toml").write_text('[[profiles]]\nid = "cl"\ndescription = "d"\nformats = ["plain"]\n')
    with pytest.raises(ConfigError, match="unknown format 'plain'"):
        load_config(tmp_path / "digest.toml", tmp_path, environ={})


# -- a source: "paper lists", one paper a line -------------------------------------------------------


def read_paper_list(data: bytes, context: ReadContext) -> Reading:
    """`# 2026-01-09` on the first line, then `title | abstract` lines."""
    text = data.decode("utf-8")

    def parse() -> Dump:
        lines = text.splitlines()
        day = date.fromisoformat(lines[0].removeprefix("# "))
        entries, problems = [], []
        for number, line in enumerate(lines[1:], start=2):
            title, bar, abstract = line.partition(" | ")
            if not bar:
                problems.append(Problem(context.label, number, "expected 'title | abstract'; entry skipped"))
                continue
            entries.append(Entry(title, abstract, line=number))
        return Dump(context.label, day, tuple(entries), tuple(problems), kind="paper-list")

    return Reading(hashes=(hashlib.sha256(data).hexdigest(),), parse=parse)


@pytest.fixture
def paper_lists() -> Iterator[Source]:
    source = register_source(Source("paper-list", "line", lambda data, name: name.endswith(".papers"), read_paper_list))
    yield source
    unregister_source("paper-list")


def test_a_new_source_is_one_registry_entry(paper_lists: Source, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "mine.papers").write_text(
        "# 2026-01-09\nA Listed Paper | Its abstract.\nnot a paper line\nAnother One | More.\n"
        "a listed paper | The same paper again.\n",
        encoding="utf-8",
    )
    config = replace(load_config(None, tmp_path, environ={}), inbox=inbox, db=tmp_path / "state.db")
    with App(config, clock=lambda: NOW, environ={}, label=lambda path: path.name) as app:
        summary = app.ingest()
        again = app.ingest()
        titles = {paper.title: paper for paper in app.papers()}
    assert (summary.dumps_new, summary.papers_new, again.dumps_seen) == (1, 2, 1)
    assert set(titles) == {"A Listed Paper", "Another One"} and titles["A Listed Paper"].first_seen == date(2026, 1, 9)
    assert summary.lines() == [
        "mine.papers:3: expected 'title | abstract'; entry skipped",
        "mine.papers:5: same paper as line 2; entry skipped",  # the store's duplicate rule, worded by the unit
    ]


def test_the_text_dump_still_reads_everything_else(paper_lists: Source, tmp_path: Path) -> None:
    config = replace(load_config(None, tmp_path, environ={}), inbox=SEEDS, db=tmp_path / "state.db")
    with App(config, clock=lambda: NOW, environ={}) as app:
        assert app.ingest().papers_new == 309


def titles_feed(feed: FeedData, links: object) -> bytes:
    """A test-only feed format: one entry title a line."""
    return "".join(f"{item.paper.title}\n" for item in feed.items).encode("utf-8")


@pytest.fixture
def titles_format() -> Iterator[OutputFormat]:
    output = register(OutputFormat("titles", FormatKind.FEED, "Titles", "text/plain", "feeds/{name}.txt", titles_feed))
    yield output
    unregister("titles")


def test_a_new_feed_format_is_written_linked_and_autodiscovered(titles_format: OutputFormat, tmp_path: Path) -> None:
    (tmp_path / "digest.toml").write_text(
        f'[digest]\ninbox = "{SEEDS}"\n\n[[profiles]]\nid = "cl"\ndescription = "continual learning"\n'
        'formats = ["titles"]\n',
        encoding="utf-8",
    )
    config = load_config(tmp_path / "digest.toml", tmp_path, environ={})
    with App(config, clock=lambda: NOW, environ={}) as app:
        app.ingest()
        report = app.build(app.profiles())
    lines = (config.feeds / "cl.txt").read_text(encoding="utf-8").splitlines()
    assert lines == [item.paper.title for item in report.digests[0].items]
    assert (config.site / "feeds" / "all.txt").exists()  # the feed of all papers comes in every feed format
    page = (config.site / "digests" / "cl" / "index.html").read_text(encoding="utf-8")
    assert 'type="text/plain"' in page and "../../feeds/cl.txt" in page
    assert "feeds/cl.txt" in (config.site / "feeds.opml").read_text(encoding="utf-8")
