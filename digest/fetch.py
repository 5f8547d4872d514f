"""Fetch days of the Daily Papers JSON API over HTTP, save them, and ingest them.

For each day: `GET <base_url>/api/daily_papers?date=YYYY-MM-DD`, conditional on the ETag
and Last-Modified stored for that URL (a 304 downloads nothing); 429 and 5xx answers and
network errors are retried with exponential backoff (stamina), honouring `Retry-After`.
A 200 body is saved in the inbox as `hf-daily-YYYY-MM-DD.json` (atomically) *before*
anything parses it, then ingested through the normal pipeline, which quarantines it if
it is not a usable response, so what was fetched can always be ingested again. A 400
means the API does not have that day yet (it counts days in UTC): reported, not retried,
and a range stops there. Days are fetched one at a time, `[source] pace` seconds apart.

This module is the project's only HTTP client. It reads `HF_TOKEN` from the environment
and nothing else secret; it never parses JSON itself (`ingest.hf_api` does) and never
writes SQL (`store` does).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import stamina

from digest import __version__
from digest.config import Config, SourceConfig
from digest.files import write_atomic
from digest.models import Problem
from digest.pipeline import IngestSummary, ingest_files
from digest.store import Store, Validators

USER_AGENT = f"paper-digest/{__version__} (+https://github.com/paper-digest/paper-digest)"
API_PATH = "/api/daily_papers"
TOKEN_VARIABLE = "HF_TOKEN"

FETCHED = "fetched"
NOT_MODIFIED = "not-modified"
NOT_AVAILABLE = "not-available"
FAILED = "failed"

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
    not have the day yet) or `failed` (see `message`). `attempts` counts the requests.
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
    """What a fetch run did, day by day; `stopped_at` is a day a range stopped before."""

    days: list[DayResult] = field(default_factory=list)
    stopped_at: date | None = None

    @property
    def rejected(self) -> bool:
        return any(day.rejected for day in self.days)

    @property
    def problems(self) -> list[Problem]:
        """Items reported and skipped in the responses that were ingested."""
        return [p for day in self.days if day.ingest for p in day.ingest.problems]

    def count(self, outcome: str) -> int:
        return sum(day.outcome == outcome for day in self.days)


def daily_papers_url(base_url: str, day: date) -> str:
    """The API URL of one listing day."""
    return f"{base_url.rstrip('/')}{API_PATH}?date={day.isoformat()}"


def saved_response_path(inbox: Path, day: date) -> Path:
    """Where the raw response of `day` is saved: one file per day, named by its date."""
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
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if token:
        parts = urlsplit(source.base_url)
        if parts.scheme != "https" and not _is_loopback(parts.hostname or ""):
            raise FetchError(
                f"refusing to send {TOKEN_VARIABLE} over plain http to {parts.hostname}: "
                "use an https [source] base_url, or unset the token"
            )
        headers["Authorization"] = f"Bearer {token}"
    return httpx.Client(headers=headers, timeout=httpx.Timeout(source.timeout), follow_redirects=True)


def day_range(since: date, until: date) -> list[date]:
    """Every day from `since` to `until`, both included."""
    return [since + timedelta(days=n) for n in range((until - since).days + 1)]


def utc_now() -> datetime:
    return datetime.now(UTC)


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
    """Fetch, save and ingest each day in turn, `[source] pace` seconds apart.

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
            result = fetch_day(config, store, http, day, clock=clock, label=label)
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
) -> FetchReport | None:
    """The scheduler's fetch: today's listing (in UTC) and the `lookback` days before it.

    Returns None, fetching nothing, when `[source] enabled` is false. The day before is
    fetched again because a listing fills up during its day; conditional requests make
    that free when nothing changed.
    """
    if not config.source.enabled:
        return None
    today = clock().astimezone(UTC).date()
    return fetch_days(config, store, day_range(today - timedelta(days=lookback), today), client=client, clock=clock)


def fetch_day(
    config: Config,
    store: Store,
    client: httpx.Client,
    day: date,
    *,
    clock: Callable[[], datetime] = utc_now,
    label: Callable[[Path], str] = lambda path: path.name,
) -> DayResult:
    """Fetch one day; save a 200 body in the inbox, then ingest it (see the module docstring)."""
    url = daily_papers_url(config.source.base_url, day)
    known = store.fetch_validators(url)
    headers = {}
    if known and known.etag:
        headers["If-None-Match"] = known.etag
    if known and known.last_modified:
        headers["If-Modified-Since"] = known.last_modified
    try:
        response, attempts = _get(client, url, headers, config.source, clock)
    except _RetryableStatus as exc:
        return DayResult(day, FAILED, _gave_up(exc, config.source), attempts=exc.attempts)
    except httpx.HTTPError as exc:
        tries = getattr(exc, "attempts", 1)
        message = f"gave up after {_attempts(tries)}: cannot reach {url}: {_describe_error(exc)}"
        return DayResult(day, FAILED, message, attempts=tries)

    status = response.status_code
    if status == 304 and known:
        return DayResult(day, NOT_MODIFIED, "not modified since the last fetch", attempts=attempts)
    if status == 400:
        said = _said(response)
        return DayResult(day, NOT_AVAILABLE, f"not available yet (the API answered 400{said})", attempts=attempts)
    if status != 200:
        return DayResult(day, FAILED, _refused(response, url), attempts=attempts)

    path = saved_response_path(config.inbox, day)
    try:
        write_atomic(path, response.content)
    except OSError as exc:
        return DayResult(day, FAILED, f"cannot save the response to {path}: {exc.strerror or exc}", attempts=attempts)
    now = clock()
    summary = ingest_files(store, [path], quarantine=config.quarantine, today=now.date(), now=now, label=label)
    if summary.quarantined:
        _, moved_to, reason = summary.quarantined[0]
        store.save_fetch(url, day, Validators(), now)
        message = f"unusable response: {reason}; moved to {label(moved_to)}"
        return DayResult(day, FAILED, message, path=moved_to, attempts=attempts, ingest=summary)
    if summary.problems and not summary.dumps_new and not summary.dumps_seen:
        return DayResult(day, FAILED, str(summary.problems[0]), path=path, attempts=attempts, ingest=summary)
    store.save_fetch(url, day, _validators(response), now)
    return DayResult(day, FETCHED, _fetched(summary), path=path, attempts=attempts, ingest=summary)


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """A `Retry-After` header as seconds to wait (delay-seconds or an HTTP date), or None."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class _RetryableStatus(Exception):
    """A 429 or 5xx answer: retried; what is left when the retries run out."""

    def __init__(self, response: httpx.Response, wait: float | None) -> None:
        super().__init__(f"{response.status_code} {response.reason_phrase}")
        self.response = response
        self.wait = wait
        self.attempts = 1


def _get(
    client: httpx.Client, url: str, headers: dict[str, str], source: SourceConfig, clock: Callable[[], datetime]
) -> tuple[httpx.Response, int]:
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
                response = client.get(url, headers=headers)
                if response.status_code == 429 or response.status_code >= 500:
                    wait = retry_after_seconds(response.headers.get("Retry-After"), clock())
                    raise _RetryableStatus(response, wait)
    except (_RetryableStatus, httpx.HTTPError) as exc:
        exc.attempts = attempts  # type: ignore[union-attr]
        raise
    return response, attempts


def _gave_up(exc: _RetryableStatus, source: SourceConfig) -> str:
    answer = f"{exc.response.status_code} {exc.response.reason_phrase}{_said(exc.response)}"
    if exc.wait is not None and exc.wait > source.max_retry_after:
        return (
            f"the API answered {answer} and asks to wait {exc.wait:.0f} s, longer than "
            f"[source] max_retry_after ({source.max_retry_after:g} s): try again later"
        )
    return f"gave up after {_attempts(exc.attempts)}: the API answered {answer}"


def _attempts(count: int) -> str:
    return f"{count} attempt{'' if count == 1 else 's'}"


def _refused(response: httpx.Response, url: str) -> str:
    answer = f"the API answered {response.status_code} {response.reason_phrase}{_said(response)}"
    if response.status_code == 404:
        return f"{answer} for {url}: is [source] base_url right?"
    if response.status_code in (401, 403):
        return f"{answer}: check {TOKEN_VARIABLE} (a token is optional; a wrong one is refused)"
    if response.status_code == 304:
        return f"{answer} to a request that was not conditional"
    return answer


def _said(response: httpx.Response) -> str:
    """A short, printable excerpt of an error body (its `error` field when it is JSON)."""
    text = response.text.strip()
    try:
        value = json.loads(text)
    except ValueError:
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


def _validators(response: httpx.Response) -> Validators:
    return Validators(etag=response.headers.get("ETag"), last_modified=response.headers.get("Last-Modified"))


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


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
