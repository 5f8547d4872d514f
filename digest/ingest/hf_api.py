"""Turn one day of the Hugging Face Daily Papers JSON API into a `Dump`.

`GET /api/daily_papers?date=YYYY-MM-DD` answers with a JSON list, one object per paper
on that day's listing. The shape, as documented on the Hub's API docs page
(https://huggingface.co/docs/hub/en/api, "GET /api/daily_papers") and read by
huggingface_hub's `PaperInfo` (src/huggingface_hub/hf_api.py, used by `list_daily_papers`):

    [{"paper": {"id": "2512.01234",                   # arXiv id (a version suffix is dropped)
                "title": "...", "summary": "...",     # the abstract
                "authors": [{"name": "Ada Lovelace", ...}, ...],
                "publishedAt": "2025-12-30T18:59:59.000Z",   # arXiv publication time
                "upvotes": 12,
                "organization": {"name": "openbmb", "fullname": "OpenBMB"},  # optional
                "ai_summary": "...", "ai_keywords": ["...", ...],     # optional, machine-written
                "submittedOnDailyAt": "2025-12-31T...", ...},
      "title": "...", "summary": "...",            # copies of the paper's
      "publishedAt": "2025-12-31T...",             # when it was put on the listing
      "numComments": 3, "submittedBy": {...}, ...}, ...]

Only the fields above are read; anything else is ignored, so new fields do not break
ingest. A response that is not such a list (HTML, truncated JSON, an error object) is
rejected whole (`NotAnApiResponse`), and so is one for a listing day in the future (more
than a day after the caller's `today`); an item with a missing or mistyped field, or a
number outside its plausible range (`ingest.limits`), is reported as
`FILE:item N: what is wrong` and skipped, and the other items are kept. A title or
summary longer than its cap is reported and kept, shortened. `ai_summary` and
`ai_keywords` are extras: a mistyped one is reported and ignored, and the paper is kept.

Pure: this module never fetches, reads files or touches the store (see `digest.fetch`).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import Counter
from datetime import UTC, date, datetime
from typing import Any

from digest.ingest.common import NotADump, decode_text, snippet
from digest.ingest.hf_dump import latest_listing
from digest.ingest.limits import (
    ABSTRACT_CAP,
    AI_KEYWORD_CAP,
    AI_KEYWORDS_CAP,
    AI_SUMMARY_CAP,
    EARLIEST_YEAR,
    MAX_AUTHORS,
    MAX_COMMENTS,
    MAX_UPVOTES,
    TITLE_CAP,
    cap,
)
from digest.models import Dump, Entry, Organization, Problem

API_KIND = "hf-api"
PAPER_PAGE = "https://huggingface.co/papers/"

# ASCII digits only: "２５１２.０１２３４" is not an id (as one it made a second row of the same paper).
_ARXIV_ID = re.compile(r"(\d{4}\.\d{4,5}|[a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?", re.ASCII)
_DAY_IN_NAME = re.compile(r"(?<!\d)(\d{4}-\d{2}-\d{2})(?!\d)")


class NotAnApiResponse(NotADump):
    """The input is not a Daily Papers API response (not JSON, truncated, not a list)."""


class _BadItem(Exception):
    pass


class _LongNumber(float):
    """A JSON number with more digits than Python converts to an int (an infinite float,
    so the response can still be hashed); no field accepts it."""

    def __new__(cls, digits: int) -> _LongNumber:
        number = super().__new__(cls, "inf")
        number.digits = digits
        return number

    digits: int


# Python refuses to convert longer digit strings to an int (sys.get_int_max_str_digits).
_LONGEST_INT = 4000


def _parse_int(text: str) -> int | float:
    return int(text) if len(text) <= _LONGEST_INT else _LongNumber(len(text))


def looks_like_api_response(data: bytes, name: str) -> bool:
    """Whether a file should be read as a JSON API response rather than a text dump.

    By content first (a JSON document starts with `[` or `{`); a `.json` name also counts,
    so an HTML page saved under that name is reported as "not JSON", not "not a dump".
    """
    head = data.removeprefix(b"\xef\xbb\xbf").lstrip()[:1]
    return head in (b"[", b"{") or name.lower().endswith(".json")


def decode_api_response(data: bytes) -> list[Any]:
    """Bytes of a response body to its list of items; raise `NotAnApiResponse` if it is none."""
    text = decode_text(
        data, NotAnApiResponse, empty="empty response", binary="binary data (contains NUL bytes), not JSON"
    )
    stripped = text.lstrip()
    if stripped.startswith("<"):
        raise NotAnApiResponse(f"not JSON: an HTML or XML page (starts with {snippet(stripped.splitlines()[0])!r})")
    try:
        value = json.loads(text, parse_int=_parse_int)
    except RecursionError:
        raise NotAnApiResponse("not a list of papers: JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        # An unterminated string runs to the end of the text, so it is a cut-off body too.
        if exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string"):
            raise NotAnApiResponse(
                f"truncated JSON: the response ends early (line {exc.lineno} column {exc.colno})"
            ) from None
        raise NotAnApiResponse(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if isinstance(value, dict):
        said = value.get("error")
        detail = f" (the API said: {snippet(said)!r})" if isinstance(said, str) else ""
        raise NotAnApiResponse(f"expected a JSON list of papers, got an object{detail}")
    if not isinstance(value, list):
        raise NotAnApiResponse(f"expected a JSON list of papers, got {_describe(value)}")
    if not _SURROGATE_ESCAPE.search(text):
        return value
    try:
        return _without_lone_surrogates(value)
    except RecursionError:  # nested deeper than this walk goes, though not than the JSON decoder did
        raise NotAnApiResponse("not a list of papers: JSON nested too deeply") from None


# JSON may escape half of a UTF-16 pair alone ("\ud800"): Python decodes it to a string no
# codec can write, and hashing or saving the response then failed. Each becomes U+FFFD,
# as an undecodable character does anywhere else.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _without_lone_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_without_lone_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_without_lone_surrogates(key): _without_lone_surrogates(item) for key, item in value.items()}
    return value


def api_listing_day(name: str, items: list[Any], *, today: date) -> date:
    """The listing day a saved response is for: the date in its file name
    (`hf-daily-2025-12-31.json`), else the day most of its papers were put on the listing.

    Raise `NotAnApiResponse` when neither says, or when that day is in the future (after
    `latest_listing(today)`) or before `EARLIEST_YEAR`: no usable response is for such a day.
    """
    day = _named_day(name) or _listed_day(items)
    if day > latest_listing(today):
        raise NotAnApiResponse(
            f"the listing day {day.isoformat()} is in the future (more than a day after {today.isoformat()})"
        )
    if day.year < EARLIEST_YEAR:
        raise NotAnApiResponse(f"the listing day {day.isoformat()} is before {EARLIEST_YEAR}")
    return day


def _named_day(name: str) -> date | None:
    match = _DAY_IN_NAME.search(name)
    if match:
        try:
            return date.fromisoformat(match[1])
        except ValueError:
            pass
    return None


def item_listing_day(item: Any) -> date | None:
    """The listing day (UTC) one item was put on: its paper's `submittedOnDailyAt`, else the
    item's `publishedAt`; None when it says neither. A week's or a month's listing is saved
    as one file per such day (`fetch.fetch_period`)."""
    if not isinstance(item, dict):
        return None
    paper = item.get("paper")
    for when in (paper.get("submittedOnDailyAt") if isinstance(paper, dict) else None, item.get("publishedAt")):
        if isinstance(when, str) and (moment := _timestamp(when)) is not None:
            return moment.date()
    return None


def _listed_day(items: list[Any]) -> date:
    days: Counter[date] = Counter()
    for item in items:
        paper = item.get("paper") if isinstance(item, dict) else None
        when = paper.get("submittedOnDailyAt") if isinstance(paper, dict) else None
        if isinstance(when, str) and (moment := _timestamp(when)) is not None:
            days[moment.date()] += 1
    if not days:
        raise NotAnApiResponse(
            "cannot tell which listing day this response is for: no date in the file name "
            "(like hf-daily-2025-12-31.json) and no paper says when it was listed"
        )
    return days.most_common(1)[0][0]


def api_content_hash(items: list[Any], day: date) -> str:
    """The identity of a response: its day and its JSON, re-serialised canonically, so a
    re-indented copy is the same dump and an empty list on two days is two dumps."""
    canonical = json.dumps(items, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{API_KIND}\n{day.isoformat()}\n{canonical}".encode()).hexdigest()


def parse_api_response(data: bytes, source: str, day: date) -> Dump:
    """Parse a response body for listing `day`; raise `NotAnApiResponse` if it is not one."""
    return parse_api_items(decode_api_response(data), source, day)


def parse_api_items(items: list[Any], source: str, day: date) -> Dump:
    """The items of a decoded response as a `Dump`; bad items become `Problem`s."""
    entries: list[Entry] = []
    problems: list[Problem] = []
    first_item: dict[str, int] = {}
    for number, item in enumerate(items, start=1):
        notes: list[str] = []
        try:
            entry = _entry(item, number, day, notes)
        except _BadItem as exc:
            problems.append(Problem(source, 0, f"{exc}; item skipped", item=number))
            continue
        assert entry.arxiv_id is not None
        if entry.arxiv_id in first_item:
            earlier = first_item[entry.arxiv_id]
            problems.append(Problem(source, 0, f"same paper as item {earlier}; item skipped", item=number))
            continue
        first_item[entry.arxiv_id] = number
        entries.append(entry)
        problems.extend(Problem(source, 0, note, item=number) for note in notes)
    return Dump(source=source, date=day, entries=tuple(entries), problems=tuple(problems), kind=API_KIND)


def arxiv_id(value: str) -> str | None:
    """An arXiv id without its version suffix ("2512.01234v2" -> "2512.01234"), or None."""
    match = _ARXIV_ID.fullmatch(value.strip())
    return match[1] if match else None


def _entry(item: Any, number: int, day: date, notes: list[str]) -> Entry:
    """One item as an `Entry`; raise `_BadItem` naming every wrong field. What was kept
    but changed (a title or summary cut to its cap) is added to `notes`."""
    if not isinstance(item, dict):
        raise _BadItem(f"expected an object, got {_describe(item)}")
    paper = item.get("paper")
    if not isinstance(paper, dict):
        raise _BadItem("paper is missing" if paper is None else f"paper: expected an object, got {_describe(paper)}")
    errors: list[str] = []
    check = _Checker(errors)

    raw_id = check.string(paper, "id", "paper.id", required=True)
    the_id = arxiv_id(raw_id) if raw_id else None
    if raw_id and the_id is None:
        errors.append(f"paper.id {snippet(raw_id)!r} is not an arXiv id")
    title_at = _pick(paper, item, "title")
    title = _one_line(check.string(*title_at, required=True) or "")
    summary_at = _pick(paper, item, "summary")
    abstract = _one_line(check.string(*summary_at, required=True, allow_empty=True) or "")
    authors = check.authors(paper)
    published_at = check.timestamp(paper, "publishedAt", "paper.publishedAt")
    upvotes = check.count(paper, "upvotes", "paper.upvotes", most=MAX_UPVOTES)
    comments = check.count(item, "numComments", "numComments", most=MAX_COMMENTS)
    organization = check.organization(paper, "paper.organization")
    if organization is None and paper.get("organization") is None:
        organization = check.organization(item, "organization")
    if published_at is not None and published_at.date() > day:
        errors.append(f"paper.publishedAt {published_at.date().isoformat()} is after the listing day {day.isoformat()}")
    if errors:
        raise _BadItem("; ".join(errors))
    assert the_id is not None
    for (_, _, path), text, limit in ((title_at, title, TITLE_CAP), (summary_at, abstract, ABSTRACT_CAP)):
        if len(text) > limit:
            notes.append(f"{path} truncated to {limit:,} characters")
    ai_summary, ai_keywords = _ai_summary(paper, item, notes), _ai_keywords(paper, item, notes)
    return Entry(
        title=cap(title, TITLE_CAP),
        abstract=cap(abstract, ABSTRACT_CAP),
        authors_count=len(authors) if authors else None,
        organization=organization,
        published=published_at.date() if published_at else None,
        upvotes=upvotes,
        line=number,
        arxiv_id=the_id,
        authors=authors,
        url=PAPER_PAGE + the_id,
        comments=comments,
        published_at=published_at,
        ai_summary=ai_summary,
        ai_keywords=ai_keywords,
    )


def _ai_summary(paper: dict[str, Any], item: dict[str, Any], notes: list[str]) -> str | None:
    """Hugging Face's summary of the paper, one line, capped; a mistyped one is noted and ignored."""
    obj, key, path = _pick(paper, item, "ai_summary")
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        notes.append(f"{path}: expected a string, got {_describe(value)}; ignored")
        return None
    text = _one_line(value)
    if len(text) > AI_SUMMARY_CAP:
        notes.append(f"{path} truncated to {AI_SUMMARY_CAP:,} characters")
    return cap(text, AI_SUMMARY_CAP) or None


def _ai_keywords(paper: dict[str, Any], item: dict[str, Any], notes: list[str]) -> tuple[str, ...]:
    """Hugging Face's keywords for the paper, each one line; a mistyped list is noted and ignored."""
    obj, key, path = _pick(paper, item, "ai_keywords")
    value = obj.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
        what = _describe(value) if not isinstance(value, list) else "a list with an item that is not a string"
        notes.append(f"{path}: expected a list of strings, got {what}; ignored")
        return ()
    keywords = list(dict.fromkeys(k for k in (_one_line(k) for k in value) if k))
    if len(keywords) > AI_KEYWORDS_CAP or any(len(k) > AI_KEYWORD_CAP for k in keywords):
        notes.append(f"{path}: cut to {AI_KEYWORDS_CAP} keywords of at most {AI_KEYWORD_CAP} characters")
    return tuple(cap(k, AI_KEYWORD_CAP) for k in keywords[:AI_KEYWORDS_CAP])


class _Checker:
    """Reads typed fields out of one item, collecting what is wrong instead of stopping."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors

    def string(
        self, obj: dict[str, Any], key: str, path: str, *, required: bool = False, allow_empty: bool = False
    ) -> str | None:
        value = obj.get(key)
        if value is None:
            if required:
                self.errors.append(f"{path} is missing")
            return None
        if not isinstance(value, str):
            self.errors.append(f"{path}: expected a string, got {_describe(value)}")
            return None
        if required and not allow_empty and not value.strip():
            self.errors.append(f"{path} is empty")
            return None
        return value

    def count(self, obj: dict[str, Any], key: str, path: str, *, most: int) -> int | None:
        value = obj.get(key)
        if value is None:
            return None
        if isinstance(value, _LongNumber) or (isinstance(value, int) and value > most):
            self.errors.append(f"{path}: {_describe(value)} is out of range (0 to {most:,})")
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self.errors.append(f"{path}: expected a whole number of at least 0, got {_describe(value)}")
            return None
        return value

    def timestamp(self, obj: dict[str, Any], key: str, path: str) -> datetime | None:
        value = self.string(obj, key, path)
        if value is None:
            return None
        moment = _timestamp(value)
        if moment is None:
            self.errors.append(f"{path}: {snippet(value)!r} is not an ISO 8601 time")
        elif moment.year < EARLIEST_YEAR:
            self.errors.append(f"{path}: {snippet(value)!r} is before {EARLIEST_YEAR}")
            return None
        return moment

    def authors(self, paper: dict[str, Any]) -> tuple[str, ...]:
        value = paper.get("authors")
        if value is None:
            return ()
        if not isinstance(value, list):
            self.errors.append(f"paper.authors: expected a list, got {_describe(value)}")
            return ()
        if len(value) > MAX_AUTHORS:
            self.errors.append(f"paper.authors: {len(value):,} authors, more than {MAX_AUTHORS:,}")
            return ()
        names = []
        for index, author in enumerate(value):
            name = author.get("name") if isinstance(author, dict) else None
            if not isinstance(name, str) or not name.strip():
                got = _describe(name) if isinstance(author, dict) else _describe(author)
                self.errors.append(f"paper.authors[{index}]: expected an object with a name, got {got}")
                return ()
            names.append(_one_line(name))
        return tuple(names)

    def organization(self, obj: dict[str, Any], path: str) -> Organization | None:
        value = obj.get("organization")
        if value is None:
            return None
        if not isinstance(value, dict):
            self.errors.append(f"{path}: expected an object, got {_describe(value)}")
            return None
        org_id = self.string(value, "name", f"{path}.name", required=True)
        name = self.string(value, "fullname", f"{path}.fullname")
        if org_id is None:
            return None
        return Organization(org_id.strip(), _one_line(name or "") or org_id.strip())


def _pick(paper: dict[str, Any], item: dict[str, Any], key: str) -> tuple[dict[str, Any], str, str]:
    """The paper's own field, or the copy on the item when the paper lacks it."""
    if paper.get(key) is None and item.get(key) is not None:
        return item, key, key
    return paper, key, f"paper.{key}"


def _timestamp(value: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value.strip())
        # The API writes UTC ("...Z"); a time without an offset is taken as UTC too.
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _one_line(text: str) -> str:
    return unicodedata.normalize("NFC", " ".join(text.split()))


def _describe(value: Any) -> str:
    kind = {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
        type(None): "null",
    }.get(type(value), type(value).__name__)
    if isinstance(value, _LongNumber):
        return f"a number of {value.digits:,} digits"
    if isinstance(value, (dict, list)) or value is None:
        return kind
    text = repr(value)
    return f"{kind} {text}" if len(text) <= 40 else kind
