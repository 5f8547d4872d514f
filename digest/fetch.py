"""Fetch days of the Daily Papers JSON API over HTTP, save them, and ingest them.

**A listing is paged.** The API answers at most `limit` (1-100) items per request and a
page index `p` (from 0) says which; a day often has more than one page. `fetch_listing`
asks for `limit=100` and follows `p = 0, 1, ...` until a short page (fewer than 100
items; an empty page too). It takes the query (`{"date": "2026-01-02"}`; a week or month
query pages the same way), so it is not tied to days. A listing still going on after
`[source] max_pages` full pages is an error, not a silent stop: the pages fetched are
saved and ingested (nothing lost), the day is reported as failed, naming the setting,
and its validators are forgotten so the next fetch asks again. An item on two pages (the
listing moves while it is paged) is kept once, by its paper id.

**One file per day.** Every item of every page goes, as one JSON list, to the inbox as
`hf-daily-YYYY-MM-DD.json` (a day of one page: the body as it came), atomically,
*before* the items are parsed; then it is ingested through the normal pipeline. So
re-ingesting the inbox gives every paper of the day. A day is saved only when every page
it asked for was answered: a page that fails (retries used up, a refusal, an unusable
body, too big, too slow) fails the day with nothing written to the inbox and the
validators of the last complete fetch kept, so the next fetch asks for the whole day
again.

**Conditional requests: kept per page, used per day.** A 304 answers one URL, and each
page is a URL, so the ETag / Last-Modified of every page are stored (table `fetches`,
keyed by the page's URL). But a 304 only counts for the day as a whole: the unit saved and
ingested is the day, and a 304 page has no body to rebuild the day's file from. So the
next fetch of a day sends every page its validators and the day is *not modified* only
when every page of the last complete fetch answers 304 (its last page was short then, so
nothing follows it). As soon as one page answers 200, the rest of the day is asked for
without validators (all of it is needed); if pages before it had answered 304, the day
is asked for again from page 0 without validators, since their bodies are missing.
Validators are stored only for a day fetched completely, all pages together, and only
when every page had some; otherwise none are kept and the next fetch downloads the day.
(Page 0's validators alone would not do: a day grows on its last page while page 0 stays
the same.) A validator that is not printable ASCII counts as none: httpx sends headers
as ASCII, so it could never be sent back; one stored before this check is not sent.

**Bounded downloads.** An answer is streamed and decompressed here, a chunk at a time:
more than `[source] max_response_mb` once decompressed (a gzip bomb) stops the download.
Each request has a total `[source] deadline` besides the per-read `timeout`, which a
server dripping a byte at a time never trips: a watchdog thread shuts the connection down
when the deadline passes, even while the headers are still coming. Either way nothing
reaches the inbox; a note saying the URL and why is left in the quarantine folder
(`NAME.error`, without the body), the day fails and the run exits 1. Neither is retried.

**Weeks and months** (`fetch_period`): the API's own period query (`week=2025-W52`,
`month=2025-12`) is paged the same way, once for the whole period, and its items are
saved as one file per listing day (`hf-daily-YYYY-MM-DD.json`, the day each item was put
on the listing: `item_listing_day`), so re-ingesting the inbox gives each paper its own
listing day, as a day's fetch does; a day of the period with no item gets an empty list.
Days already fetched (an API response for them is stored, and they are over: not today
or yesterday, in UTC, whose listings still fill up) are neither asked for nor saved
again; when every day of the period is, nothing is requested. No item that came is
dropped without a word: items of a day fetched before whose papers its stored responses
lack (it grew since) are saved apart, beside its file, as `hf-daily-DAY.PERIOD.json`
(`.2.json`, ... rather than over other items), and ingested; an item that names no
listing day, one outside the period, or one listed after today is reported and not
saved. The period's validators are kept only when every item was placed and every day
saved, so a 304 never stands for a day that was not.

**Politeness.** Requests go one at a time, `[source] pace` seconds apart (between pages
and between days); 429 and 5xx answers and network errors are retried with exponential
backoff (stamina), honouring `Retry-After`. A 400 for the first page means the API does
not have that day yet (it counts days in UTC): reported, not retried, and a range stops
there.

This module is the project's only HTTP client. It reads `HF_TOKEN` from the environment
and nothing else secret; it never parses items (`ingest.hf_api` does; this module only
splits a page into its items with `hf_api`'s decoder, to count and join them) and never
writes SQL (`store` does).
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import os
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import stamina

from digest import __version__
from digest.clock import utc_now
from digest.config import Config, SourceConfig, is_loopback
from digest.files import free_name, write_atomic
from digest.ingest.hf_api import NotAnApiResponse, arxiv_id, decode_api_response, item_listing_day, parse_api_items
from digest.models import Problem
from digest.periods import Period
from digest.pipeline import IngestSummary, QuarantineError, ingest_files
from digest.store import Store, Validators

USER_AGENT = f"paper-digest/{__version__} (+https://github.com/paper-digest/paper-digest)"
API_PATH = "/api/daily_papers"
TOKEN_VARIABLE = "HF_TOKEN"
PAGE_SIZE = 100  # the most the API gives per request

FETCHED = "fetched"
NOT_MODIFIED = "not-modified"
NOT_AVAILABLE = "not-available"
FAILED = "failed"
ALREADY_FETCHED = "already-fetched"  # a day of a week or month fetched before: not asked for again

_MEGABYTE = 1_000_000
_INFLATE_CHUNK = 64 * 1024  # the most one decompression step may produce

# stamina logs each retry through the standard library; with no logging configured that
# would print bare "stamina.retry_scheduled" lines. Our report says what was retried.
logging.getLogger("stamina").addHandler(logging.NullHandler())


class FetchError(Exception):
    """The fetch cannot start (e.g. a token would be sent in clear text): one line, exit 2."""


@dataclass(frozen=True, slots=True)
class DayResult:
    """What fetching one day did.

    `outcome` is `fetched` (a response was saved and ingested, `ingest` says what it
    held), `not-modified` (304: nothing downloaded), `not-available` (400: the API does
    not have the day yet) or `failed` (see `message`; `path` and `ingest` are set when
    what came was still saved, as for a day longer than `[source] max_pages`).
    `attempts` counts the tries of the page that needed the most (1: nothing retried).
    """

    day: date
    outcome: str
    message: str
    path: Path | None = None
    attempts: int = 1
    ingest: IngestSummary | None = None

    @property
    def rejected(self) -> bool:
        """True when the day failed or some of what it fetched was rejected (exit code 1)."""
        return self.outcome == FAILED or bool(self.ingest and self.ingest.rejected)


@dataclass(slots=True)
class FetchReport:
    """What a fetch run did, day by day; `stopped_at` is a day a range stopped before.
    `unplaced` are items of a week's or month's listing that no day of it could be given."""

    days: list[DayResult] = field(default_factory=list)
    stopped_at: date | None = None
    unplaced: list[Problem] = field(default_factory=list)

    @property
    def rejected(self) -> bool:
        return any(day.rejected for day in self.days) or bool(self.unplaced)

    @property
    def problems(self) -> list[Problem]:
        """Items reported and skipped in the responses that were ingested, or not placed."""
        return [p for day in self.days if day.ingest for p in day.ingest.problems] + self.unplaced

    def count(self, outcome: str) -> int:
        return sum(day.outcome == outcome for day in self.days)


class ListingState(enum.Enum):
    """How paging through a listing ended."""

    COMPLETE = "complete"  # every page up to a short one
    NOT_MODIFIED = "not-modified"  # every page of the last complete fetch answered 304
    NOT_AVAILABLE = "not-available"  # the first page answered 400
    TOO_LONG = "too-long"  # `max_pages` full pages, and the listing goes on


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing as it came: its URL, body, items and validators."""

    url: str
    number: int
    body: bytes
    items: tuple[Any, ...]
    validators: Validators


@dataclass(frozen=True, slots=True)
class Listing:
    """The pages of one listing query (none unless COMPLETE or TOO_LONG).

    `attempts` is the most tries one page needed; `said` is the API's words with a 400.
    """

    state: ListingState
    pages: tuple[Page, ...] = ()
    attempts: int = 1
    said: str = ""

    @property
    def items(self) -> list[Any]:
        """Every item of every page, in order; an item on two pages only where first seen."""
        return join_pages(self.pages)

    def body(self) -> bytes:
        """The listing as one JSON list: a single page as it came, else the joined items."""
        if len(self.pages) == 1:
            return self.pages[0].body
        return _json_list(self.items)


class ListingError(Exception):
    """A page of a listing failed (`message` says which and why): the listing is unusable.

    `set_aside` is why what came should be noted in the quarantine folder, with `body`
    (None: not kept, as for an answer too big or too slow) and the `url` it came from.
    """

    def __init__(
        self, message: str, *, url: str, attempts: int, set_aside: str | None = None, body: bytes | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.url = url
        self.attempts = attempts
        self.set_aside = set_aside
        self.body = body


def listing_page_url(base_url: str, query: Mapping[str, str], page: int) -> str:
    """The API URL of page `page` (from 0) of a listing query such as `{"date": "2026-01-02"}`."""
    params = {**query, "limit": str(PAGE_SIZE), "p": str(page)}
    return f"{base_url.rstrip('/')}{API_PATH}?{urlencode(params)}"


def day_query(day: date) -> dict[str, str]:
    return {"date": day.isoformat()}


def daily_papers_url(base_url: str, day: date, page: int = 0) -> str:
    """The API URL of one page of one listing day."""
    return listing_page_url(base_url, day_query(day), page)


def saved_response_path(inbox: Path, day: date) -> Path:
    """Where the responses of `day` are saved: one file per day, named by its date."""
    return inbox / f"hf-daily-{day.isoformat()}.json"


def token_from_environment(environ: Mapping[str, str] = os.environ) -> str | None:
    """The Hugging Face token from `HF_TOKEN`, or None when unset or empty."""
    token = environ.get(TOKEN_VARIABLE, "").strip()
    return token or None


def open_client(source: SourceConfig, *, token: str | None = None) -> httpx.Client:
    """An HTTP client for the API: timeouts, our User-Agent, the token as a Bearer header.

    Raises `FetchError` rather than send a token over plain http to a host that is not
    this machine.
    """
    # Only gzip, which this module decompresses itself, a bounded chunk at a time.
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json", "Accept-Encoding": "gzip"}
    if token:
        parts = urlsplit(source.base_url)
        if parts.scheme != "https" and not is_loopback(parts.hostname or ""):
            raise FetchError(
                f"refusing to send {TOKEN_VARIABLE} over plain http to {parts.hostname}: "
                "use an https [source] base_url, or unset the token"
            )
        if _sendable(token) is None:
            raise FetchError(f"{TOKEN_VARIABLE} holds characters an HTTP header cannot carry (only printable ASCII)")
        headers["Authorization"] = f"Bearer {token}"
    # No kept-alive connections: each request opens its own, so the deadline watchdog
    # always knows the socket to shut down (a reused one would be announced to no one).
    limits = httpx.Limits(max_keepalive_connections=0)
    return httpx.Client(headers=headers, timeout=httpx.Timeout(source.timeout), limits=limits)


def day_range(since: date, until: date) -> list[date]:
    """Every day from `since` to `until`, both included."""
    return [since + timedelta(days=n) for n in range((until - since).days + 1)]


def fetch_days(
    config: Config,
    store: Store,
    days: Iterable[date],
    *,
    client: httpx.Client | None = None,
    clock: Callable[[], datetime] = utc_now,
    sleep: Callable[[float], None] = time.sleep,
    label: Callable[[Path], str] = lambda path: path.name,
    on_day: Callable[[DayResult], None] | None = None,
    stop_when_unavailable: bool = True,
) -> FetchReport:
    """Fetch, save and ingest each day in turn, `[source] pace` seconds between requests.

    Saved responses go to `config.inbox`, unusable ones end in `config.quarantine`.
    With `stop_when_unavailable`, the first day the API does not have yet ends the run
    (a range reaching into the future stops at the latest available day). Without a
    `client`, one is opened with the token from `HF_TOKEN` and closed at the end.
    `on_day` is called after each day (progress, printing).
    """
    own_client = client is None
    http = client or open_client(config.source, token=token_from_environment())
    report = FetchReport()
    try:
        for index, day in enumerate(days):
            if index:
                sleep(config.source.pace)
            result = fetch_day(config, store, http, day, clock=clock, label=label, sleep=sleep)
            report.days.append(result)
            if on_day:
                on_day(result)
            if result.outcome == NOT_AVAILABLE and stop_when_unavailable:
                report.stopped_at = day
                break
    finally:
        if own_client:
            http.close()
    return report


def fetch_recent_days(
    config: Config,
    store: Store,
    *,
    clock: Callable[[], datetime] = utc_now,
    client: httpx.Client | None = None,
    lookback: int = 1,
    label: Callable[[Path], str] = lambda path: path.name,
) -> FetchReport | None:
    """The scheduler's fetch: today's listing (in UTC) and the `lookback` days before it.

    Returns None, fetching nothing, when `[source] enabled` is false. The day before is
    fetched again because a listing fills up during its day; conditional requests make
    that free when nothing changed. `label` names files in the messages.
    """
    if not config.source.enabled:
        return None
    today = clock().astimezone(UTC).date()
    days = day_range(today - timedelta(days=lookback), today)
    return fetch_days(config, store, days, client=client, clock=clock, label=label)


def fetch_day(
    config: Config,
    store: Store,
    client: httpx.Client,
    day: date,
    *,
    clock: Callable[[], datetime] = utc_now,
    label: Callable[[Path], str] = lambda path: path.name,
    sleep: Callable[[float], None] = time.sleep,
) -> DayResult:
    """Fetch every page of one day; save them in the inbox as one file, then ingest it
    (see the module docstring)."""
    source = config.source
    query = day_query(day)
    known = known_validators(store, source.base_url, query)
    try:
        listing = fetch_listing(client, source, query, known=known, clock=clock, sleep=sleep)
    except ListingError as exc:
        message, kept = _failure(config, day, exc, clock(), label)
        return DayResult(day, FAILED, message, path=kept, attempts=exc.attempts)
    attempts = listing.attempts
    if listing.state is ListingState.NOT_MODIFIED:
        return DayResult(day, NOT_MODIFIED, "not modified since the last fetch", attempts=attempts)
    if listing.state is ListingState.NOT_AVAILABLE:
        message = f"not available yet (the API answered 400{listing.said})"
        return DayResult(day, NOT_AVAILABLE, message, attempts=attempts)

    path = saved_response_path(config.inbox, day)
    try:
        write_atomic(path, listing.body())
    except OSError as exc:
        return DayResult(day, FAILED, f"cannot save the response to {path}: {exc.strerror or exc}", attempts=attempts)
    now = clock()
    summary = ingest_files(store, [path], quarantine=config.quarantine, today=now.date(), now=now, label=label)
    if summary.quarantined:
        aside = summary.quarantined[0]
        forget_validators(store, source.base_url, query, day, len(known), now)
        message = f"unusable response: {aside.reason}; moved to {aside.moved_name}"
        return DayResult(day, FAILED, message, path=aside.moved_to, attempts=attempts, ingest=summary)
    if summary.problems and not summary.dumps_new and not summary.dumps_seen:
        return DayResult(day, FAILED, str(summary.problems[0]), path=path, attempts=attempts, ingest=summary)
    if listing.state is ListingState.TOO_LONG:
        forget_validators(store, source.base_url, query, day, len(known), now)
        message = (
            f"incomplete: the listing goes on after [source] max_pages = {source.max_pages} pages of {PAGE_SIZE}; "
            f"saved what came, {_fetched(summary)} -> {label(path)}; raise max_pages to fetch the rest"
        )
        return DayResult(day, FAILED, message, path=path, attempts=attempts, ingest=summary)
    remember_validators(store, source.base_url, query, day, listing.pages, len(known), now)
    return DayResult(day, FETCHED, _fetched(summary), path=path, attempts=attempts, ingest=summary)


def period_query(period: Period) -> dict[str, str]:
    """The API's query of a week or month: `{"week": "2025-W52"}`, `{"month": "2025-12"}`."""
    return {period.kind.value: period.key}


def fetch_period(
    config: Config,
    store: Store,
    period: Period,
    *,
    client: httpx.Client | None = None,
    clock: Callable[[], datetime] = utc_now,
    sleep: Callable[[float], None] = time.sleep,
    label: Callable[[Path], str] = lambda path: path.name,
    on_day: Callable[[DayResult], None] | None = None,
) -> FetchReport:
    """Backfill a week or month with the API's period query, saving and ingesting one file
    per listing day not fetched before (see the module docstring). Each day of the period
    up to today (UTC) gets a `DayResult`."""
    today = clock().astimezone(UTC).date()
    days = [day for day in period.days() if day <= today]
    fetched = store.api_listing_days(period.first, period.last)
    settled = {day for day in fetched if day < today - timedelta(days=1)}
    report = FetchReport()
    missing = [day for day in days if day not in settled]
    results = {day: DayResult(day, ALREADY_FETCHED, "already fetched") for day in days if day in settled}
    if missing:
        own_client = client is None
        http = client or open_client(config.source, token=token_from_environment())
        try:
            results |= _fetch_period(config, store, http, period, missing, report, clock, sleep, label)
        finally:
            if own_client:
                http.close()
    for day in days:
        report.days.append(results[day])
        if on_day:
            on_day(results[day])
    return report


def _fetch_period(
    config: Config,
    store: Store,
    client: httpx.Client,
    period: Period,
    missing: Sequence[date],
    report: FetchReport,
    clock: Callable[[], datetime],
    sleep: Callable[[float], None],
    label: Callable[[Path], str],
) -> dict[date, DayResult]:
    """The days `missing` of `period`, from one paged listing of the whole period."""
    source = config.source
    query = period_query(period)
    known = known_validators(store, source.base_url, query)
    try:
        listing = fetch_listing(client, source, query, known=known, clock=clock, sleep=sleep)
    except ListingError as exc:
        message = exc.message
        if exc.set_aside is not None:
            kept = _set_aside(config.quarantine, f"hf-{period.kind}-{period.key}.json", exc, clock())
            message = f"{message}; see {label(kept)}"
        return {day: DayResult(day, FAILED, f"{period.key}: {message}", attempts=exc.attempts) for day in missing}
    if listing.state is ListingState.NOT_MODIFIED:
        message = f"not modified since the last fetch of {period.key}"
        return {day: DayResult(day, NOT_MODIFIED, message, attempts=listing.attempts) for day in missing}
    if listing.state is ListingState.NOT_AVAILABLE:
        message = f"not available yet (the API answered 400{listing.said} for {period.key})"
        return {day: DayResult(day, NOT_AVAILABLE, message, attempts=listing.attempts) for day in missing}
    today = clock().astimezone(UTC).date()
    by_day, before, unplaced = _place_items(listing.items, period, missing, today)
    report.unplaced += unplaced
    now = clock()
    results = {}
    for day, items in by_day.items():
        path = saved_response_path(config.inbox, day)
        results[day] = _save_day(config, store, day, path, _json_list(items), listing, now, label)
    for day, items in before.items():
        stored = store.api_listing_papers(day)
        # Only an item ingest stores can ever be found stored: one it rejects is reported, not
        # saved apart (that repeated, one more file each time the Hub changed the item).
        rejections = [(item, _rejection(item, day)) for item in items]
        report.unplaced += [Problem(period.key, 0, f"listed on {day}: {why}") for _, why in rejections if why]
        lacking = [item for item, why in rejections if not why and _paper_key(item) not in stored]
        if lacking:
            results[day] = _save_lacking(config, store, day, period, lacking, listing, now, label)
    # Items listed after today are placed by a later fetch: ask again in full. Those with no
    # day, or outside the period, no fetch of it will ever place (reported each time).
    later = any((on := item_listing_day(item)) is not None and on in period and on > today for item in listing.items)
    complete = listing.state is ListingState.COMPLETE and not later
    if complete and all(result.outcome == FETCHED for result in results.values()):
        remember_validators(store, source.base_url, query, period.last, listing.pages, len(known), now)
    else:
        # A 304 next time would say "not modified" for what was not saved: ask again in full.
        forget_validators(store, source.base_url, query, period.last, max(len(known), len(listing.pages)), now)
    return results


def _place_items(
    items: Sequence[Any], period: Period, missing: Sequence[date], today: date
) -> tuple[dict[date, list[Any]], dict[date, list[Any]], list[Problem]]:
    """A period's items by listing day: the days `missing`, the days fetched before, and
    the items no day of the period up to `today` can take (reported, not saved)."""
    by_day: dict[date, list[Any]] = {day: [] for day in missing}
    before: dict[date, list[Any]] = {}
    unplaced: list[Problem] = []
    for number, item in enumerate(items, start=1):
        day = item_listing_day(item)
        if day is None:
            why = "names no listing day (paper.submittedOnDailyAt, publishedAt); not saved"
        elif day not in period:
            why = f"listed on {day}, outside {period.key}; not saved (fetch that day with --date)"
        elif day > today:
            why = f"listed on {day}, after today ({today} in UTC); not saved (fetch that day with --date)"
        else:
            (by_day[day] if day in by_day else before.setdefault(day, [])).append(item)
            continue
        unplaced.append(Problem(period.key, 0, why, item=number))
    return by_day, before, unplaced


def _save_day(
    config: Config,
    store: Store,
    day: date,
    path: Path,
    data: bytes,
    listing: Listing,
    now: datetime,
    label: Callable[[Path], str],
) -> DayResult:
    """Write `data` to `path` and ingest it: one day of a period's listing."""
    try:
        write_atomic(path, data)
    except OSError as exc:
        return DayResult(day, FAILED, f"cannot save the response to {path}: {exc.strerror or exc}")
    summary = ingest_files(store, [path], quarantine=config.quarantine, today=now.date(), now=now, label=label)
    return _saved_day(day, path, summary, listing, config.source, label)


def _save_lacking(
    config: Config,
    store: Store,
    day: date,
    period: Period,
    items: list[Any],
    listing: Listing,
    now: datetime,
    label: Callable[[Path], str],
) -> DayResult:
    """Save apart the items of a day fetched before that its stored responses lack."""
    data = _json_list(items)
    path = _beside_day(config.inbox, day, period, data)
    result = _save_day(config, store, day, path, data, listing, now, label)
    if result.outcome != FETCHED:
        return result
    count = f"{len(items)} item{'' if len(items) == 1 else 's'}"
    message = f"fetched before, without {count} of the {period.key} listing, saved apart: {result.message}"
    return replace(result, message=message)


def _beside_day(inbox: Path, day: date, period: Period, data: bytes) -> Path:
    """`hf-daily-DAY.PERIOD.json` (then `.2.json`, ...): never over a file holding other items,
    so the inbox keeps every item that came."""
    stem = f"hf-daily-{day.isoformat()}.{period.key}"
    path, number = inbox / f"{stem}.json", 1
    while _holds_other(path, data):
        number += 1
        path = inbox / f"{stem}.{number}.json"
    return path


def _holds_other(path: Path, data: bytes) -> bool:
    try:
        return path.read_bytes() != data
    except OSError:  # missing, or unreadable: writing there says why, if it fails
        return False


def _saved_day(
    day: date,
    path: Path,
    summary: IngestSummary,
    listing: Listing,
    source: SourceConfig,
    label: Callable[[Path], str],
) -> DayResult:
    """What saving and ingesting one day of a period's listing did."""
    attempts = listing.attempts
    if summary.quarantined:
        aside = summary.quarantined[0]
        message = f"unusable response: {aside.reason}; moved to {aside.moved_name}"
        return DayResult(day, FAILED, message, path=aside.moved_to, attempts=attempts, ingest=summary)
    if listing.state is ListingState.TOO_LONG:
        message = (
            f"incomplete: the listing goes on after [source] max_pages = {source.max_pages} pages of {PAGE_SIZE}; "
            f"saved what came, {_fetched(summary)} -> {label(path)}; raise max_pages to fetch the rest"
        )
        return DayResult(day, FAILED, message, path=path, attempts=attempts, ingest=summary)
    return DayResult(day, FETCHED, _fetched(summary), path=path, attempts=attempts, ingest=summary)


def fetch_listing(
    client: httpx.Client,
    source: SourceConfig,
    query: Mapping[str, str],
    *,
    known: Sequence[Validators] = (),
    clock: Callable[[], datetime] = utc_now,
    sleep: Callable[[float], None] = time.sleep,
) -> Listing:
    """Every page of one listing query (`{"date": ...}`, or a week or month), `pace` apart.

    `known` are the validators of pages 0, 1, ... from the last complete fetch (see
    `known_validators`): the listing is NOT_MODIFIED when each of them answers 304. Raises
    `ListingError` when a page fails.
    """
    conditional = 0 < len(known) <= source.max_pages
    requests = 0
    most_attempts = 1
    while True:  # twice at most: the second time without validators
        pages: list[Page] = []
        unchanged = 0
        for number in range(source.max_pages):
            if requests:
                sleep(source.pace)
            url = listing_page_url(source.base_url, query, number)
            sent = known[number] if conditional and number < len(known) else None
            answer, attempts = _get_page(client, url, number, sent, source, clock)
            requests += attempts
            most_attempts = max(most_attempts, attempts)
            if answer.status == 304 and sent is not None:
                unchanged += 1
                if number == len(known) - 1:
                    return Listing(ListingState.NOT_MODIFIED, attempts=most_attempts)
                continue
            if answer.status == 400 and number == 0:
                return Listing(ListingState.NOT_AVAILABLE, attempts=most_attempts, said=_said(answer))
            if answer.status != 200:
                raise ListingError(_on_page(number, _refused(answer, url)), url=url, attempts=attempts)
            conditional = False  # the listing changed: every page of it is needed
            if unchanged:
                break  # the pages that answered 304 have no body: ask again from page 0
            page = _page(answer, url, number, attempts)
            pages.append(page)
            if len(page.items) < PAGE_SIZE:
                return Listing(ListingState.COMPLETE, tuple(pages), attempts=most_attempts)
        else:
            return Listing(ListingState.TOO_LONG, tuple(pages), attempts=most_attempts)


def _json_list(items: list[Any]) -> bytes:
    """`items` as UTF-8 JSON, characters as they are (decoding made any lone surrogate U+FFFD)."""
    return json.dumps(items, ensure_ascii=False).encode("utf-8")


def join_pages(pages: Iterable[Page]) -> list[Any]:
    """The items of `pages` in order, leaving out an item whose paper an earlier page listed
    (the listing moved while it was paged). Items without a paper id are all kept."""
    seen: set[str] = set()
    items: list[Any] = []
    for page in pages:
        on_this_page: set[str] = set()
        for item in page.items:
            key = _paper_key(item)
            if key is not None and key in seen:
                continue
            items.append(item)
            if key is not None:
                on_this_page.add(key)
        seen |= on_this_page
    return items


def known_validators(store: Store, base_url: str, query: Mapping[str, str]) -> list[Validators]:
    """The validators of pages 0, 1, ... of the last complete fetch of a listing."""
    found: list[Validators] = []
    while (known := store.fetch_validators(listing_page_url(base_url, query, len(found)))) is not None:
        found.append(known)
    return found


def remember_validators(
    store: Store,
    base_url: str,
    query: Mapping[str, str],
    day: date,
    pages: Sequence[Page],
    before: int,
    now: datetime,
) -> None:
    """Keep the validators of a listing fetched completely: every page's, or none at all
    when some page had none. `before` is how many pages the previous fetch kept."""
    if not all(page.validators.etag or page.validators.last_modified for page in pages):
        forget_validators(store, base_url, query, day, max(before, len(pages)), now)
        return
    # Last page first, then the rows of a longer earlier fetch: were this cut short, the
    # pages found would end at a stale page, whose validators the server no longer
    # matches, so the next fetch downloads the day rather than wrongly skip it.
    for page in reversed(pages):
        store.save_fetch(page.url, day, page.validators, now)
    for number in range(len(pages), before):
        store.save_fetch(listing_page_url(base_url, query, number), day, Validators(), now)


def forget_validators(
    store: Store, base_url: str, query: Mapping[str, str], day: date, pages: int, now: datetime
) -> None:
    """Forget the validators of a listing's first `pages` pages: the next fetch downloads it."""
    for number in range(pages):  # page 0 first: without it, the later ones are never used
        store.save_fetch(listing_page_url(base_url, query, number), day, Validators(), now)


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """A `Retry-After` header as seconds to wait (delay-seconds or an HTTP date), or None."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():  # "²".isdigit() is true too, and float() refuses it
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


# -- one request ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Answer:
    """An HTTP answer with its whole (decompressed, bounded) body."""

    status: int
    reason: str
    headers: httpx.Headers
    body: bytes


class _RetryableStatus(Exception):
    """A 429 or 5xx answer: retried; what is left when the retries run out."""

    def __init__(self, answer: _Answer, wait: float | None) -> None:
        super().__init__(f"{answer.status} {answer.reason}")
        self.answer = answer
        self.wait = wait
        self.attempts = 1


class _Unbounded(Exception):
    """An answer bigger or slower than the `[source]` limits allow: not kept, not retried."""

    attempts = 1


class _Undecodable(Exception):
    """An answer in an encoding this module does not decompress, or corrupt: not retried."""

    attempts = 1


def _get_page(
    client: httpx.Client,
    url: str,
    number: int,
    known: Validators | None,
    source: SourceConfig,
    clock: Callable[[], datetime],
) -> tuple[_Answer, int]:
    """One page, retried; a failure becomes a `ListingError` naming the page."""
    headers = {}
    # A validator stored before they were checked may still be one a header cannot carry.
    if known and (etag := _sendable(known.etag)):
        headers["If-None-Match"] = etag
    if known and (last_modified := _sendable(known.last_modified)):
        headers["If-Modified-Since"] = last_modified
    try:
        return _get(client, url, headers, source, clock)
    except _RetryableStatus as exc:
        raise ListingError(_on_page(number, _gave_up(exc, source)), url=url, attempts=exc.attempts) from None
    except _Unbounded as exc:
        message = _on_page(number, f"the answer from {url} {exc}: not kept")
        raise ListingError(message, url=url, attempts=exc.attempts, set_aside=str(exc)) from None
    except _Undecodable as exc:
        raise ListingError(_on_page(number, f"{exc} ({url})"), url=url, attempts=exc.attempts) from None
    except httpx.HTTPError as exc:
        tries = getattr(exc, "attempts", 1)
        message = f"gave up after {_attempts(tries)}: cannot reach {url}: {_describe_error(exc)}"
        raise ListingError(_on_page(number, message), url=url, attempts=tries) from None


def _get(
    client: httpx.Client, url: str, headers: dict[str, str], source: SourceConfig, clock: Callable[[], datetime]
) -> tuple[_Answer, int]:
    attempts = 0

    def should_retry(exc: Exception) -> bool | float:
        if isinstance(exc, _RetryableStatus):
            if exc.wait is None:
                return True
            return exc.wait if exc.wait <= source.max_retry_after else False
        return isinstance(exc, httpx.TransportError)

    retries = stamina.retry_context(
        on=should_retry,
        attempts=source.attempts,
        timeout=None,
        wait_initial=source.backoff,
        wait_max=source.backoff_max,
        wait_jitter=source.backoff,
    )
    try:
        for attempt in retries:
            with attempt:
                attempts += 1
                answer = _download(client, url, headers, source)
                if answer.status == 429 or answer.status >= 500:
                    wait = retry_after_seconds(answer.headers.get("Retry-After"), clock())
                    raise _RetryableStatus(answer, wait)
    except (_RetryableStatus, _Unbounded, _Undecodable, httpx.HTTPError) as exc:
        exc.attempts = attempts  # type: ignore[union-attr]
        raise
    return answer, attempts


def _download(client: httpx.Client, url: str, headers: dict[str, str], source: SourceConfig) -> _Answer:
    """One GET, redirects followed, its body read within `max_response_mb` and `deadline`.

    Raises `_Unbounded` when the answer is too big or too slow, `_Undecodable` when its
    encoding cannot be undone, `httpx.HTTPError` for network errors.
    """
    watchdog = _Watchdog(source.deadline)
    request = client.build_request("GET", url, headers=headers, extensions={"trace": watchdog.trace})
    try:
        with watchdog:
            response = client.send(request, stream=True, follow_redirects=False)
            # Redirects by hand: httpx reads a redirect's body whole, unbounded.
            for _ in range(client.max_redirects):
                if response.next_request is None:
                    break
                response.close()
                response = client.send(response.next_request, stream=True, follow_redirects=False)
            try:
                body = _read_body(response, source, watchdog)
            finally:
                response.close()
    except httpx.TransportError:
        if watchdog.expired:
            raise _Unbounded(watchdog.message) from None
        raise
    if watchdog.expired:  # a body that runs to the end of the connection just stops there
        raise _Unbounded(watchdog.message)
    return _Answer(response.status_code, response.reason_phrase, response.headers, body)


def _read_body(response: httpx.Response, source: SourceConfig, watchdog: _Watchdog) -> bytes:
    """The body, decompressed a bounded chunk at a time; `_Unbounded` past the limits."""
    limit = int(source.max_response_mb * _MEGABYTE)
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    too_big = f"is larger than [source] max_response_mb = {source.max_response_mb:g} MB"
    if encoding not in ("", "identity"):
        too_big += " once decompressed"
    declared = response.headers.get("Content-Length", "").strip()
    if declared.isdigit() and int(declared) > limit:
        raise _Unbounded(too_big)
    inflater = _Inflater(encoding)
    body = bytearray()
    received = 0
    for raw in response.iter_raw():
        watchdog.check()
        received += len(raw)
        if received > limit:
            raise _Unbounded(too_big)
        for piece in inflater.feed(raw):
            body += piece
            if len(body) > limit:
                raise _Unbounded(too_big)
    body += inflater.end()
    if len(body) > limit:
        raise _Unbounded(too_big)
    return bytes(body)


class _Inflater:
    """Undoes a `Content-Encoding` chunk by chunk, never making more than `_INFLATE_CHUNK`
    at once (httpx's decoder inflates a whole network read: 64 KB of a gzip bomb is 64 MB)."""

    def __init__(self, encoding: str) -> None:
        self._encoding = encoding
        self._zlib = None
        if encoding in ("gzip", "x-gzip", "deflate"):
            self._zlib = zlib.decompressobj(32 + zlib.MAX_WBITS)  # a gzip or zlib header, either
        elif encoding not in ("", "identity"):
            raise _Undecodable(f"the answer is encoded as {encoding[:40]!r}, which was not asked for")

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._zlib is None:
            yield data
            return
        while data and not self._zlib.eof:
            try:
                yield self._zlib.decompress(data, _INFLATE_CHUNK)
            except zlib.error as exc:
                raise _Undecodable(f"the answer's {self._encoding} data is corrupt: {exc}") from None
            data = self._zlib.unconsumed_tail

    def end(self) -> bytes:
        """What the decompressor still holds (a few bytes: `feed` left no input behind)."""
        if self._zlib is None:
            return b""
        try:
            return self._zlib.flush()
        except zlib.error as exc:
            raise _Undecodable(f"the answer's {self._encoding} data is corrupt: {exc}") from None


class _Watchdog:
    """The deadline of one request. httpx's read timeout starts again with every byte, so
    a server dripping bytes (even its headers) would never trip it: when the deadline
    passes, a timer thread shuts the request's sockets down, which ends a blocked read."""

    def __init__(self, seconds: float) -> None:
        self.message = f"took longer than [source] deadline = {seconds:g} s"
        self.expired = False
        self._ends = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._timer.cancel()

    def trace(self, event: str, info: Mapping[str, Any]) -> None:
        """httpcore's `trace` extension: note each socket the request connects."""
        if event not in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            _shut_down(sock)

    def check(self) -> None:
        """Between two chunks of the body: stop if the deadline has passed."""
        if time.monotonic() >= self._ends:
            self.expired = True
            raise _Unbounded(self.message)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut_down(sock)


def _shut_down(sock: socket.socket) -> None:
    # A socket closed already refuses (OSError): a closed Python socket never reaches another fd.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


# -- what a page holds and what to say ------------------------------------------------------


def _page(answer: _Answer, url: str, number: int, attempts: int) -> Page:
    try:
        items = decode_api_response(answer.body)
    except NotAnApiResponse as exc:
        message = _on_page(number, f"unusable response: {exc}")
        raise ListingError(message, url=url, attempts=attempts, set_aside=str(exc), body=answer.body) from None
    return Page(url, number, answer.body, tuple(items), _validators(answer.headers))


def _rejection(item: Any, day: date) -> str:
    """Why ingest would not store `item` as a paper `Store.api_listing_papers` can hold, or ""."""
    parsed = parse_api_items([item], "", day)
    if not parsed.entries:
        return parsed.problems[0].message if parsed.problems else "not a paper; not saved"
    return ""


def _paper_key(item: Any) -> str | None:
    paper = item.get("paper") if isinstance(item, dict) else None
    raw = paper.get("id") if isinstance(paper, dict) else None
    if not isinstance(raw, str) or not raw.strip():
        return None
    return arxiv_id(raw) or raw.strip()


def _failure(
    config: Config, day: date, exc: ListingError, now: datetime, label: Callable[[Path], str]
) -> tuple[str, Path | None]:
    """The one line for a failed day, and what was set aside in the quarantine folder (if anything)."""
    if exc.set_aside is None:
        return exc.message, None
    kept = _set_aside(config.quarantine, saved_response_path(config.inbox, day).name, exc, now)
    return f"{exc.message}; see {label(kept)}", kept


def _set_aside(folder: Path, name: str, exc: ListingError, now: datetime) -> Path:
    """Write `NAME` (the body, if kept) and `NAME.error` (URL and why) in the quarantine folder;
    return the file, or the note when the body was not kept."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        target = free_name(folder, name)
        note = target.with_name(target.name + ".error")
        kept = "" if exc.body is not None else "the answer was not kept\n"
        if exc.body is not None:
            write_atomic(target, exc.body)
        write_atomic(note, f"{exc.url}: {exc.set_aside}\nset aside at {now.isoformat()}\n{kept}")
    except OSError as error:
        raise QuarantineError(f"cannot use the quarantine folder {folder}: {error.strerror or error}") from None
    return target if exc.body is not None else note


def _on_page(number: int, message: str) -> str:
    return message if number == 0 else f"page {number + 1}: {message}"


def _gave_up(exc: _RetryableStatus, source: SourceConfig) -> str:
    answer = f"{exc.answer.status} {exc.answer.reason}{_said(exc.answer)}"
    if exc.wait is not None and exc.wait > source.max_retry_after:
        return (
            f"the API answered {answer} and asks to wait {exc.wait:.0f} s, longer than "
            f"[source] max_retry_after ({source.max_retry_after:g} s): try again later"
        )
    return f"gave up after {_attempts(exc.attempts)}: the API answered {answer}"


def _attempts(count: int) -> str:
    return f"{count} attempt{'' if count == 1 else 's'}"


def _refused(answer: _Answer, url: str) -> str:
    said = f"the API answered {answer.status} {answer.reason}{_said(answer)}"
    if answer.status == 404:
        return f"{said} for {url}: is [source] base_url right?"
    if answer.status in (401, 403):
        return f"{said}: check {TOKEN_VARIABLE} (a token is optional; a wrong one is refused)"
    if answer.status == 304:
        return f"{said} to a request that was not conditional"
    return said


def _said(answer: _Answer) -> str:
    """A short, printable excerpt of an error body (its `error` field when it is JSON)."""
    text = answer.body.decode("utf-8", "replace").strip()
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        if text.startswith("<"):
            return ""
    else:
        said = value.get("error") if isinstance(value, dict) else None
        text = said if isinstance(said, str) else ""
    text = "".join(ch if ch.isprintable() else " " for ch in " ".join(text.split()))
    if not text:
        return ""
    return f": {text[:99] + '…' if len(text) > 100 else text}"


def _describe_error(exc: httpx.HTTPError) -> str:
    kind = type(exc).__name__
    detail = str(exc).strip()
    return f"{kind}: {detail}" if detail else kind


def _validators(headers: httpx.Headers) -> Validators:
    return Validators(etag=_sendable(headers.get("ETag")), last_modified=_sendable(headers.get("Last-Modified")))


def _sendable(value: str | None) -> str | None:
    """`value` if it can go out again as a header (printable ASCII), else None."""
    # httpx encodes a header as ASCII: anything else would fail every later request.
    if value and all(" " <= ch <= "~" for ch in value):
        return value
    return None


def _fetched(summary: IngestSummary) -> str:
    if summary.dumps_seen:
        return "unchanged: the same response is already stored"
    papers = summary.entries
    if not papers and not summary.problems:
        return "no papers listed that day"
    text = f"{papers} paper{'' if papers == 1 else 's'} ({summary.papers_new} new, {summary.papers_updated} updated)"
    if summary.problems:
        count = len(summary.problems)
        text += f", {count} item{'' if count == 1 else 's'} rejected"
    return text
