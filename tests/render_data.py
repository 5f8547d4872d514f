"""Test data for the renderers: the real seed papers, a hostile dump entry, digests built by hand.

Digests are assembled here (ranking is not under test); their papers are real rows of
a real store, ingested from `seeds/` and from a hostile dump through the real parser.
"""

from __future__ import annotations

import html
import shutil
import unicodedata
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from conftest import NOW, SEEDS, TODAY

from digest.config import Config, load_config
from digest.ingest.hf_dump import content_hash, decode_dump, format_dump, parse_dump
from digest.models import Digest, Entry, Organization, Paper, Profile, Reason, ReasonKind, ScoredPaper
from digest.store import Store, open_store

HOSTILE_TITLE = '<script>alert(1)</script> & ]]> "x"'
HOSTILE_ABSTRACT = (
    "Bad\x01 abstract\x07 with \x1b[31m control\x0b chars\x0c and\x7f more. "
    "Second *sentence* | [x](javascript:alert(1)) <img src=x onerror=alert(1)> ]]> &amp; `tick`."
)
MARKDOWN_TITLE = "# Heading? *bold* _it_ `code` [link](http://x) | a | b | ~~s~~ $x$ <b>b</b>"
# One unbroken 'word' longer than a phone is wide: layouts must wrap it, not scroll.
WIDE_TITLE = "Supercalifragilistic" * 12 + " wide"
HOSTILE_DAY = date(2026, 1, 2)
BERLIN = ZoneInfo("Europe/Berlin")
DAY = date(2025, 12, 31)
BUILT_AT = datetime(2025, 12, 31, 7, 0, 12, tzinfo=BERLIN)
CONTROL = [chr(c) for c in range(0x20) if c not in (0x09, 0x0A, 0x0D)] + ["\x7f"]


def hostile_dump() -> str:
    """A dump in the real text format whose entries attack every output format."""
    return format_dump(
        HOSTILE_DAY,
        [
            Entry(
                HOSTILE_TITLE,
                HOSTILE_ABSTRACT,
                None,
                Organization("evilcorp", 'Evil <b>Org</b> | *x* "q"'),
                date(2025, 12, 30),
                5,
            ),
            Entry(MARKDOWN_TITLE, "1. list? - item > quote\\ | pipe", 7, None, date(2025, 12, 29), None),
            Entry(WIDE_TITLE, "See https://example.org/" + "x" * 300 + " for more.", 1, None, None, None),
        ],
    )


# Format characters (Unicode Cf) hidden in a title: a bidi override (U+202E) makes the
# rest read backwards, zero-width characters and isolates hide inside words. Also a C1
# control (U+009B, a terminal's escape) and a non-character (U+FDD0).
HIDDEN_TITLE = "Lo\u200bRA \u202etxet desrever\u202c \u2066isolated\u2069 soft\u00adhyphen\u200d\u009b\ufdd0"
SHOWN_TITLE = "LoRA txet desrever isolated softhyphen"
HIDDEN_ABSTRACT = "A \ufeffzero\u2060width \u202eabstract.\u0080 \u200eSecond sentence.\U0010ffff"


def hidden_paper(store: Store) -> Paper:
    """A paper ingested through the real parser with format characters in every field shown."""
    entry = Entry(
        HIDDEN_TITLE, HIDDEN_ABSTRACT, None, Organization("evilcorp", "Evil\u202e\u009b Org"), date(2025, 12, 30), 5
    )
    ingest(store, format_dump(HOSTILE_DAY, [entry]), "hidden.txt")
    return next(p for p in store.iter_papers() if p.title == HIDDEN_TITLE)


def format_characters_in(text: str) -> list[str]:
    """The format characters, C1 controls and non-characters in `text`, as characters or as
    character references."""
    return [c for c in html.unescape(text) if unicodedata.category(c) == "Cf" or _c1_or_nonchar(c)]


def _c1_or_nonchar(c: str) -> bool:
    point = ord(c)
    return 0x80 <= point <= 0x9F or 0xFDD0 <= point <= 0xFDEF or point & 0xFFFE == 0xFFFE


def ingest(store: Store, text: str, name: str) -> None:
    dump = parse_dump(decode_dump(text.encode("utf-8")), name, today=TODAY)
    assert not dump.problems, dump.problems
    store.add_dump(dump, content_hash(text), NOW)


def fill_store(store: Store) -> None:
    """The five seeds and the hostile dump, ingested through the real parser."""
    for path in sorted(SEEDS.iterdir()):
        dump = parse_dump(decode_dump(path.read_bytes()), path.name, today=TODAY)
        store.add_dump(dump, content_hash(decode_dump(path.read_bytes())), NOW)
    ingest(store, hostile_dump(), "hostile.txt")


def copy_store(template: Path, folder: Path) -> Store:
    target = folder / "state.db"
    shutil.copyfile(template, target)
    return open_store(target)


def papers_about(papers: list[Paper], *words: str, limit: int = 7) -> tuple[Paper, ...]:
    """The first papers (in order of first sighting) whose title mentions one of `words`."""
    picked = [p for p in papers if any(w.lower() in p.title.lower() for w in words)]
    return tuple(picked[:limit])


def hostile_papers(papers: list[Paper]) -> tuple[Paper, ...]:
    return tuple(p for p in papers if p.title in (HOSTILE_TITLE, MARKDOWN_TITLE, WIDE_TITLE))


def profile(pid: str = "continual-learning", **changes: object) -> Profile:
    base = Profile(
        id=pid,
        title="Continual learning",
        description="Continual and lifelong learning without catastrophic forgetting.",
        subscribers=("ada@example.org",),
        formats=("email", "atom", "rss", "json", "markdown"),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def legacy(*texts: str) -> tuple[Reason, ...]:
    """Reasons as a version before structured reasons stored them: as their words."""
    return tuple(Reason(ReasonKind.LEGACY, text=text) for text in texts)


def scored(papers: tuple[Paper, ...], *, top: float = 0.82) -> tuple[ScoredPaper, ...]:
    return tuple(
        ScoredPaper(
            paper, round(top - 0.04 * rank, 2), legacy(f"matches “{paper.title.split()[0]}” in the title", "recent")
        )
        for rank, paper in enumerate(papers)
    )


def digest(
    prof: Profile,
    papers: tuple[Paper, ...],
    *,
    day: date = DAY,
    built_at: datetime = BUILT_AT,
    candidates: int = 57,
    empty_reason: str | None = None,
    runners_up: tuple[Paper, ...] = (),
) -> Digest:
    return Digest(
        profile=prof,
        date=day,
        items=scored(papers),
        built_at=built_at,
        candidates=candidates,
        empty_reason=empty_reason,
        runners_up=scored(runners_up, top=0.12),
    )


def config_for(folder: Path, *profiles: Profile, site_url: str = "https://example.org/paper-digest/") -> Config:
    """A real config (loaded through `load_config`) whose outputs go under `folder`."""
    base = load_config(None, folder)
    return replace(base, profiles=tuple(profiles), site_url=site_url, db=folder / "state.db")


def days(start: date, count: int) -> list[date]:
    return [start + timedelta(days=i) for i in range(count)]
