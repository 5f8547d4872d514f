"""Parse one Hugging Face "Daily Papers" text dump into a `Dump`.

The format (see docs/DESIGN.md): a few header lines, the listing date without a year
("Dec 31"), then per paper a title paragraph, an abstract paragraph and, usually, a
byline block (author count or organisation, a "·" line, a date with optional upvotes).

The year rule: the site writes a year only on dates from other years than the
listing's, so the listing's year is the latest year written on any entry plus one (or
the first year after that in which the listing's day exists: Feb 29). When no entry
carries a year, it is the latest year in which the listing date is not in the future.
"The future" is anything after `today` plus one day (a listing's day can begin before
the caller's, in another time zone), and no listing is dated before 1900: the years
searched are bounded. A year written on an entry that would push the listing into the
future is disregarded (that entry is then dated after its listing: reported and
skipped), so one bad entry cannot move a whole dump. A listing date that falls in no
year of that window (Feb 30, Apr 31) has no answer: the file is not a usable dump
(`NotADump`). `year=` overrides the rule; a year in which the listing date does not
exist (Feb 29) or is in the future is refused (`WrongYear`).

Numbers are checked against the plausible ranges of `ingest.limits` (an entry outside
is reported and skipped), and a title or abstract longer than its cap is reported and
kept, shortened.

A file can be cut off anywhere (an interrupted download or copy). A cut inside a title
or a byline leaves an entry that is reported and skipped; a cut inside an abstract
would leave a title and an abstract with no byline, which reads like an entry with no
date. So text read from a file is parsed with `from_file=True`: a last entry with no
byline is then reported as looking truncated and skipped. (An entry with no byline is
kept when another entry follows it; no such entry ends any of the seeds.)

This module only turns text into data: it never reads files, touches the store or
looks at the clock (the caller passes `today`).
"""

from __future__ import annotations

import calendar
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, timedelta

from digest.ingest.common import NotADump, decode_text, snippet
from digest.ingest.limits import (
    ABSTRACT_CAP,
    EARLIEST_YEAR,
    MAX_AUTHORS,
    MAX_UPVOTES,
    MIN_AUTHORS,
    TITLE_CAP,
    cap,
)
from digest.models import Dump, Entry, Organization, Problem

HEADER_LINES = (
    "new",
    "Get trending papers in your email inbox!",
    "Subscribe",
    "Daily Papers",
    "byAK and the research community",
)

_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_abbr) if name}
_MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_name) if name})
_MONTHS["sept"] = 9

_LISTING_DATE = re.compile(r"([A-Za-z]{3,9}) (\d{1,2})")
_ENTRY_DATE = re.compile(r"([A-Za-z]{3,9})\.? (\d{1,2})(?:, (\d{4}))?(?: (\d+))?")
_AUTHORS = re.compile(r"•\s*(\d+)\s+authors?")
_ORG_ID = re.compile(r"[A-Za-z0-9][\w.\-]*")
_SEPARATOR = "·"
TEXT_KIND = "hf-text"  # the kind of dumps read from text (`Dump.kind`)


class WrongYear(ValueError):
    """The year the caller gave cannot be the listing's: its date does not exist in that
    year, or is more than a day after `today`.

    Not a `NotADump`: the file is fine, the year is not (see the module docstring).
    """


@dataclass(frozen=True, slots=True)
class _Block:
    line: int
    lines: tuple[str, ...]

    @property
    def is_byline(self) -> bool:
        return _SEPARATOR in self.lines or self.lines[0].startswith("•")

    @property
    def text(self) -> str:
        return " ".join(self.lines)


@dataclass(frozen=True, slots=True)
class _Byline:
    authors_count: int | None
    organization: Organization | None
    month: int
    day: int
    year: int | None
    upvotes: int | None
    date_line: int


@dataclass(frozen=True, slots=True)
class _RawEntry:
    title: str
    abstract: str
    line: int
    byline: _Byline | None
    abstract_line: int = 0


def decode_dump(data: bytes) -> str:
    """Bytes to normalised text: UTF-8 (BOM allowed), LF line ends, no trailing spaces."""
    text = decode_text(data, NotADump, empty="empty file", binary="binary file (contains NUL bytes)")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines)


def content_hash(text: str) -> str:
    """The identity of a dump: the hash of its normalised text (see `decode_dump`) without
    blank lines at either end, so a CRLF copy, or one with a final newline, is the same dump.

    Text with no blank line at either end (every seed) hashes as it did before blank
    lines were ignored; `legacy_content_hash` gives the old hash of other text.
    """
    return hashlib.sha256(text.strip("\n").encode("utf-8")).hexdigest()


def legacy_content_hash(text: str) -> str | None:
    """The hash an older version stored for this text, when it differs from `content_hash`
    (text with blank lines at either end): a dump stored then must still count as seen."""
    if text == text.strip("\n"):
        return None
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_dump(text: str, source: str, *, today: date, year: int | None = None, from_file: bool = False) -> Dump:
    """Parse normalised dump text (see `decode_dump`); raise `NotADump` if it is not one.

    With `from_file`, the text was read from a file that may have been cut off: a last
    entry with no byline (a title and an abstract, then the end) is reported as looking
    truncated and skipped (see the module docstring). Without it, such an entry is a paper
    with no date, as `format_dump` writes one.
    """
    lines = text.split("\n")
    listing_month, listing_day, body_start = _find_listing_date(lines)
    problems: list[Problem] = []
    raw = list(_raw_entries(_blocks(lines, body_start), source, problems, from_file=from_file))

    explicit_years = [e.byline.year for e in raw if e.byline and e.byline.year is not None]
    inferred = year is None
    try:
        if year is None:
            listing = date(infer_year(listing_month, listing_day, explicit_years, today), listing_month, listing_day)
        else:
            listing = _given_listing(year, listing_month, listing_day, today)
    except NotADump as exc:
        raise NotADump(str(exc), line=body_start) from None

    entries = []
    for item in raw:
        entry = _resolve(item, listing, source, problems)
        if entry is not None:
            entries.append(entry)
    problems.sort(key=lambda p: p.line)
    return Dump(
        source=source,
        date=listing,
        entries=tuple(entries),
        problems=tuple(problems),
        year_inferred=inferred,
        kind=TEXT_KIND,
    )


def infer_year(month: int, day: int, explicit_years: list[int], today: date) -> int:
    """The listing's year: the first year after the latest year written on an entry in
    which month/day exists, else the latest year in which month/day is not in the future;
    never later than `latest_listing(today)` nor before `EARLIEST_YEAR` (see the module
    docstring). Raise `NotADump` when month/day falls in no year of that window."""
    name = f"{calendar.month_abbr[month]} {day}" if 1 <= month <= 12 else f"{month}/{day}"
    if not 1 <= month <= 12 or not 1 <= day <= _LONGEST_MONTH[month]:
        raise NotADump(f"the listing date {name} does not exist in any year")
    latest = latest_listing(today)
    newest = _latest_year_with(month, day, latest)
    if newest is None:
        raise NotADump(f"the listing date {name} falls in no year from {EARLIEST_YEAR} to {latest.isoformat()}")
    # A year at or after `newest` would put the listing in the future: that entry's date is wrong.
    usable = [y for y in explicit_years if EARLIEST_YEAR <= y < newest]
    if not usable:
        return newest
    return next(y for y in range(max(usable) + 1, newest + 1) if _exists(y, month, day))


def latest_listing(today: date) -> date:
    """The latest listing date accepted when the caller's day is `today`: the day after it."""
    return today + timedelta(days=1) if today < date.max else today


_LONGEST_MONTH = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _latest_year_with(month: int, day: int, latest: date) -> int | None:
    """The latest year from `EARLIEST_YEAR` on in which month/day exists and is not after `latest`."""
    for year in range(latest.year, EARLIEST_YEAR - 1, -1):
        if _exists(year, month, day) and date(year, month, day) <= latest:
            return year
    return None


def _given_listing(year: int, month: int, day: int, today: date) -> date:
    if not 1 <= day <= _LONGEST_MONTH[month]:
        raise NotADump(f"the listing date {calendar.month_abbr[month]} {day} does not exist in any year")
    try:
        listing = date(year, month, day)
    except ValueError:
        raise WrongYear(
            f"the year given ({year}) cannot be the listing's: {calendar.month_abbr[month]} {day} "
            f"does not exist in {year}; file not ingested"
        ) from None
    if listing > latest_listing(today):
        raise WrongYear(
            f"the year given ({year}) dates the listing {listing.isoformat()}, more than a day after "
            f"today ({today.isoformat()}); file not ingested"
        )
    return listing


def _exists(year: int, month: int, day: int) -> bool:
    return 1 <= day <= calendar.monthrange(year, month)[1]


def _month(name: str) -> int | None:
    return _MONTHS.get(name.lower())


def _find_listing_date(lines: list[str]) -> tuple[int, int, int]:
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped in HEADER_LINES:
            continue
        match = _LISTING_DATE.fullmatch(stripped)
        if match and (month := _month(match[1])) and 1 <= int(match[2]) <= 31:
            return month, int(match[2]), index + 1
        raise NotADump(
            f"not a Daily Papers dump: expected the header and the listing date (like 'Dec 31'), "
            f"found {snippet(stripped)!r}",
            line=index + 1,
        )
    raise NotADump("not a Daily Papers dump: no listing date (like 'Dec 31') found")


def _blocks(lines: list[str], start: int) -> list[_Block]:
    blocks: list[_Block] = []
    current: list[str] = []
    first = 0
    for index in range(start, len(lines)):
        stripped = lines[index].strip()
        if stripped:
            if not current:
                first = index + 1
            current.append(stripped)
        elif current:
            blocks.append(_Block(first, tuple(current)))
            current = []
    if current:
        blocks.append(_Block(first, tuple(current)))
    return blocks


def _raw_entries(
    blocks: list[_Block], source: str, problems: list[Problem], *, from_file: bool = False
) -> Iterator[_RawEntry]:
    pending: list[_Block] = []
    for block in blocks:
        if not block.is_byline:
            pending.append(block)
            continue
        if len(pending) < 2:
            what = "a byline with no title and abstract before it"
            if pending:
                what = f"title {snippet(pending[0].text)!r} has a byline but no abstract"
            problems.append(Problem(source, block.line, f"{what}; entry skipped"))
            pending = []
            continue
        *rest, title, abstract = pending
        pending = []
        yield from _unbylined(rest, source, problems)
        byline = _parse_byline(block, source, problems)
        if byline is not None:
            yield _RawEntry(title.text, abstract.text, title.line, byline, abstract.line)
    if from_file and len(pending) >= 2 and len(pending) % 2 == 0:
        # The file ends with a title and an abstract but no byline: most likely cut off
        # inside that abstract (or before its byline), so the entry is not trusted.
        *pending, title, abstract = pending
        yield from _unbylined(pending, source, problems)
        problems.append(
            Problem(
                source,
                title.line,
                f"the file ends after title {snippet(title.text)!r} and its abstract with no byline or date "
                "(looks truncated); entry skipped",
            )
        )
        return
    yield from _unbylined(pending, source, problems, at_end=True)


def _unbylined(blocks: list[_Block], source: str, problems: list[Problem], at_end: bool = False) -> Iterator[_RawEntry]:
    """Paragraphs with no byline pair up as title + abstract (papers with no date)."""
    for i in range(0, len(blocks) - 1, 2):
        yield _RawEntry(blocks[i].text, blocks[i + 1].text, blocks[i].line, None, blocks[i + 1].line)
    if len(blocks) % 2:
        lone = blocks[-1]
        why = "the file ends after a title with no abstract (truncated?)" if at_end else "paragraph has no partner"
        problems.append(Problem(source, lone.line, f"{why}: {snippet(lone.text)!r}; entry skipped"))


def _parse_byline(block: _Block, source: str, problems: list[Problem]) -> _Byline | None:
    def fail(offset: int, message: str) -> None:
        problems.append(Problem(source, block.line + offset, f"{message}; entry skipped"))

    lines = block.lines
    if _SEPARATOR not in lines:
        fail(0, f"byline {snippet(lines[0])!r} has no '·' line and no date after it")
        return None
    sep = lines.index(_SEPARATOR)
    if sep != 1:
        fail(0, "expected one byline line (author count or organisation) before '·'")
        return None
    if len(lines) == 2:
        fail(1, "byline and '·' with no date after them")
        return None
    if len(lines) > 3:
        fail(3, f"unexpected line after the date: {snippet(lines[3])!r}")
        return None

    authors_count: int | None = None
    organization: Organization | None = None
    byline = lines[0]
    if byline.startswith("•"):
        match = _AUTHORS.fullmatch(byline)
        if not match:
            fail(0, f"malformed author count {snippet(byline)!r} (expected '• N authors')")
            return None
        authors_count = _bounded(match[1], MIN_AUTHORS, MAX_AUTHORS)
        if authors_count is None:
            fail(0, f"author count {_long_number(match[1])} is out of range ({MIN_AUTHORS} to {MAX_AUTHORS:,})")
            return None
    else:
        org_id, _, org_name = byline.partition(" ")
        if not _ORG_ID.fullmatch(org_id):
            fail(0, f"malformed byline {snippet(byline)!r} (expected '• N authors' or an organisation)")
            return None
        organization = Organization(org_id, org_name.strip() or org_id)

    date_text = lines[2]
    match = _ENTRY_DATE.fullmatch(date_text)
    month = _month(match[1]) if match else None
    if not match or month is None or not 1 <= int(match[2]) <= 31:
        fail(2, f"{snippet(date_text)!r} is not a date (expected like 'Sep 23', 'Feb 2, 2024' or 'Nov 14, 2023 2')")
        return None
    year = int(match[3]) if match[3] else None
    if year is not None and year < EARLIEST_YEAR:
        fail(2, f"the year {match[3]} in {snippet(date_text)!r} is before {EARLIEST_YEAR}")
        return None
    upvotes = _bounded(match[4], 0, MAX_UPVOTES) if match[4] else None
    if match[4] and upvotes is None:
        fail(2, f"upvotes {_long_number(match[4])} is out of range (0 to {MAX_UPVOTES:,})")
        return None
    return _Byline(
        authors_count=authors_count,
        organization=organization,
        month=month,
        day=int(match[2]),
        year=year,
        upvotes=upvotes,
        date_line=block.line + 2,
    )


def _bounded(digits: str, low: int, high: int) -> int | None:
    """The number `digits` spell, or None outside low..high (a long string is never converted)."""
    if len(digits.lstrip("0")) > len(str(high)):
        return None
    value = int(digits.lstrip("0") or "0")
    return value if low <= value <= high else None


def _resolve(item: _RawEntry, listing: date, source: str, problems: list[Problem]) -> Entry | None:
    byline = item.byline
    if byline is None:
        return _capped(Entry(title=item.title, abstract=item.abstract, line=item.line), item, source, problems)
    year = byline.year if byline.year is not None else listing.year
    if not _exists(year, byline.month, byline.day):
        problems.append(
            Problem(
                source,
                byline.date_line,
                f"{calendar.month_abbr[byline.month]} {byline.day} {year} is not a date; entry skipped",
            )
        )
        return None
    published = date(year, byline.month, byline.day)
    if published > listing:
        problems.append(
            Problem(
                source,
                byline.date_line,
                f"date {published.isoformat()} is after the listing date {listing.isoformat()}; entry skipped",
            )
        )
        return None
    entry = Entry(
        title=item.title,
        abstract=item.abstract,
        authors_count=byline.authors_count,
        organization=byline.organization,
        published=published,
        upvotes=byline.upvotes,
        line=item.line,
    )
    return _capped(entry, item, source, problems)


def _capped(entry: Entry, item: _RawEntry, source: str, problems: list[Problem]) -> Entry:
    """The entry with its title and abstract cut to their caps, each cut reported (the entry is kept)."""
    title, abstract = cap(entry.title, TITLE_CAP), cap(entry.abstract, ABSTRACT_CAP)
    if title != entry.title:
        problems.append(Problem(source, item.line, f"title truncated to {TITLE_CAP:,} characters"))
    if abstract != entry.abstract:
        problems.append(Problem(source, item.abstract_line, f"abstract truncated to {ABSTRACT_CAP:,} characters"))
    return replace(entry, title=title, abstract=abstract)


def _long_number(digits: str) -> str:
    return digits if len(digits) <= 24 else f"{digits[:8]}… ({len(digits):,} digits)"


def format_dump(listing: date, entries: list[Entry] | tuple[Entry, ...]) -> str:
    """Write entries in the dump format (the inverse of `parse_dump`), for fixtures and benchmarks.

    Dates in the listing's year are written without a year, as the site does.
    """
    blocks = [*HEADER_LINES, _month_day(listing)]
    for entry in entries:
        blocks += [entry.title, entry.abstract]
        if entry.published is None:
            continue
        if entry.organization:
            org = entry.organization
            byline = org.id if org.name == org.id else f"{org.id} {org.name}"
        else:
            count = entry.authors_count or 0
            byline = f"  • {count} author{'' if count == 1 else 's'}"
        when = _month_day(entry.published)
        if entry.published.year != listing.year:
            when += f", {entry.published.year}"
        if entry.upvotes is not None:
            when += f" {entry.upvotes}"
        blocks.append(f"{byline}\n{_SEPARATOR}\n{when}")
    return "\n\n".join(blocks) + "\n"


def _month_day(day: date) -> str:
    return f"{calendar.month_abbr[day.month]} {day.day}"
