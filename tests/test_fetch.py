"""Fetching the Daily Papers API from a real HTTP server on 127.0.0.1 (pytest-httpserver).

The server answers with fixtures in the documented response shape (see test_hf_api.py)
and with the failures a real API has: rate limits, server errors, future dates, HTML
pages, truncated bodies. Nothing here reaches the internet; backoff and pace are zero
except where a test checks that a `Retry-After` wait is honoured.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import SEEDS, run_digest
from hub import DrippingServer, PagedListing, day_of_papers, gzip_bomb, listed_on
from hub import paper_item as item
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from digest.config import Config, SourceConfig, load_config
from digest.fetch import (
    FAILED,
    FETCHED,
    NOT_AVAILABLE,
    NOT_MODIFIED,
    USER_AGENT,
    FetchError,
    FetchReport,
    ListingState,
    day_range,
    fetch_days,
    fetch_listing,
    fetch_recent_days,
    known_validators,
    open_client,
    retry_after_seconds,
    token_from_environment,
)
from digest.pipeline import find_dump_files, ingest_files
from digest.store import Store, Validators, open_store

FIXTURE = Path(__file__).parent / "fixtures" / "daily_papers_2026-01-02.json"
DAY = date(2026, 1, 2)
NOW = datetime(2026, 1, 3, 8, 0, tzinfo=UTC)
PATH = "/api/daily_papers"


@pytest.fixture
def server(httpserver_ipv4: HTTPServer) -> HTTPServer:
    return httpserver_ipv4


def write_config(tmp_path: Path, server: HTTPServer, **source: Any) -> Path:
    settings = {"base_url": server.url_for("/").rstrip("/"), "pace": 0, "backoff": 0, "backoff_max": 0}
    settings |= {"attempts": 3, "max_retry_after": 5} | source
    lines = "\n".join(f"{key} = {json.dumps(value)}" for key, value in settings.items())
    path = tmp_path / "digest.toml"
    path.write_text(
        f'[digest]\ninbox = "inbox"\ndb = "state.db"\nquarantine = "quarantine"\n\n[source]\n{lines}\n',
        encoding="utf-8",
    )
    return path


@pytest.fixture
def config(tmp_path: Path, server: HTTPServer) -> Config:
    return load_config(write_config(tmp_path, server), tmp_path)


def fetch(config: Config, store: Store, *days: date, token: str | None = None, **kw: Any) -> FetchReport:
    with open_client(config.source, token=token) as client:
        return fetch_days(config, store, days or (DAY,), client=client, clock=lambda: NOW, **kw)


def expect(
    server: HTTPServer,
    day: date = DAY,
    *,
    page: int = 0,
    oneshot: bool = False,
    headers: dict[str, str] | None = None,
):
    method = server.expect_oneshot_request if oneshot else server.expect_request
    query = {"date": day.isoformat(), "limit": "100", "p": str(page)}
    return method(PATH, query_string=query, headers=headers)


def page_url(server: HTTPServer, day: date = DAY, page: int = 0) -> str:
    return f"{server.url_for(PATH)}?date={day.isoformat()}&limit=100&p={page}"


def requests_for(server: HTTPServer, day: date = DAY) -> list[Request]:
    return [req for req, _ in server.log if req.args.get("date") == day.isoformat()]


# -- the happy path ----------------------------------------------------------------


def test_a_day_is_saved_raw_then_ingested(config: Config, store: Store, server: HTTPServer) -> None:
    body = FIXTURE.read_bytes()
    expect(server).respond_with_data(body, content_type="application/json")
    report = fetch(config, store)
    (day,) = report.days
    saved = config.inbox / "hf-daily-2026-01-02.json"
    assert (day.outcome, day.path, day.attempts, report.rejected) == (FETCHED, saved, 1, False)
    assert day.message == "3 papers (3 new, 0 updated)"
    assert saved.read_bytes() == body  # the raw response, byte for byte
    papers = {p.arxiv_id: p for p in store.iter_papers()}
    assert set(papers) == {"2310.01174", "2409.02877", "2601.00731"}
    light = papers["2310.01174"]
    assert light.title == "Light Schrödinger Bridge" and light.authors[0] == "Alexander Korotin"
    assert (light.url, light.comments, light.first_seen) == ("https://huggingface.co/papers/2310.01174", 2, DAY)
    server.check_assertions()


def test_a_day_with_a_lone_surrogate_escape_is_saved_and_ingested(
    config: Config, store: Store, server: HTTPServer
) -> None:
    # Half of a UTF-16 pair escaped alone: it crashed every later run (ingest could not hash it).
    body = FIXTURE.read_bytes().replace(b"Light Schr", b"Light \\ud800Schr", 1)
    assert b"\\ud800" in body
    expect(server).respond_with_data(body, content_type="application/json")
    (day,) = fetch(config, store).days
    assert (day.outcome, day.message) == (FETCHED, "3 papers (3 new, 0 updated)")
    assert (config.inbox / "hf-daily-2026-01-02.json").read_bytes() == body
    titles = {p.title for p in store.iter_papers()}
    assert "Light \ufffdSchrödinger Bridge" in titles


def test_headers_name_the_project_and_carry_the_token(config: Config, store: Store, server: HTTPServer) -> None:
    expect(server).respond_with_json([])
    fetch(config, store, token="hf_secret")
    (request,) = requests_for(server)
    assert request.headers["User-Agent"] == USER_AGENT and USER_AGENT.startswith("paper-digest/0.")
    assert request.headers["Authorization"] == "Bearer hf_secret"
    assert request.headers["Accept"] == "application/json"


def test_no_token_no_authorization_header(config: Config, store: Store, server: HTTPServer) -> None:
    expect(server).respond_with_json([])
    fetch(config, store)
    (request,) = requests_for(server)
    assert "Authorization" not in request.headers


def test_empty_list_is_a_day_without_papers_not_an_error(config: Config, store: Store, server: HTTPServer) -> None:
    expect(server).respond_with_json([])
    report = fetch(config, store)
    assert (report.days[0].outcome, report.days[0].message, report.rejected) == (
        FETCHED,
        "no papers listed that day",
        False,
    )
    assert store.dump_count() == 1 and store.paper_count() == 0


# -- retries -----------------------------------------------------------------------


def test_429_with_retry_after_is_waited_out_then_fetched(tmp_path: Path, store: Store, server: HTTPServer) -> None:
    config = load_config(write_config(tmp_path, server, max_retry_after=5), tmp_path)
    times: list[float] = []

    def limited(_request: Request) -> Response:
        times.append(time.monotonic())
        return Response("slow down", status=429, headers={"Retry-After": "1"})

    def ok(_request: Request) -> Response:
        times.append(time.monotonic())
        return Response(json.dumps([item("2601.00001", "After The Wait")]), content_type="application/json")

    expect(server, oneshot=True).respond_with_handler(limited)
    expect(server).respond_with_handler(ok)
    (day,) = fetch(config, store).days
    assert (day.outcome, day.attempts) == (FETCHED, 2)
    assert times[1] - times[0] >= 1.0  # backoff is 0 in this config: the wait came from Retry-After


def test_retry_after_longer_than_allowed_fails_the_day_at_once(
    config: Config, store: Store, server: HTTPServer
) -> None:
    expect(server).respond_with_data("later", status=429, headers={"Retry-After": "3600"})
    (day,) = fetch(config, store).days
    assert (day.outcome, day.attempts, len(requests_for(server))) == (FAILED, 1, 1)
    assert "asks to wait 3600 s, longer than [source] max_retry_after (5 s)" in day.message


def test_500_then_200(config: Config, store: Store, server: HTTPServer) -> None:
    expect(server, oneshot=True).respond_with_data("oops", status=500)
    expect(server).respond_with_json([item("2601.00002", "Second Time Lucky")])
    (day,) = fetch(config, store).days
    assert (day.outcome, day.attempts, store.paper_count()) == (FETCHED, 2, 1)


def test_503_forever_gives_up_after_the_configured_attempts(config: Config, store: Store, server: HTTPServer) -> None:
    expect(server).respond_with_json({"error": "Service temporarily unavailable"}, status=503)
    report = fetch(config, store)
    (day,) = report.days
    assert (day.outcome, day.attempts, len(requests_for(server)), report.rejected) == (FAILED, 3, 3, True)
    assert day.message == (
        "gave up after 3 attempts: the API answered 503 SERVICE UNAVAILABLE: Service temporarily unavailable"
    )
    assert not config.inbox.exists() and store.dump_count() == 0


def test_a_server_that_is_not_there_is_reported(tmp_path: Path, store: Store) -> None:
    with socket.socket() as sock:  # a port nothing listens on: bind it, note it, close it
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    source = SourceConfig(base_url=f"http://127.0.0.1:{port}", pace=0, backoff=0, backoff_max=0, attempts=2)
    config = replace(load_config(None, tmp_path), source=source)
    (day,) = fetch(config, store).days
    assert (day.outcome, day.attempts) == (FAILED, 2)
    url = f"http://127.0.0.1:{port}/api/daily_papers?date=2026-01-02&limit=100&p=0"
    assert day.message.startswith(f"gave up after 2 attempts: cannot reach {url}: Connect")


def test_a_server_slower_than_the_timeout_fails_the_day_instead_of_hanging(
    tmp_path: Path, store: Store, server: HTTPServer
) -> None:
    config = load_config(write_config(tmp_path, server, timeout=0.3, attempts=2), tmp_path)
    release = threading.Event()

    def stalled(_request: Request) -> Response:
        release.wait(10)  # far longer than the 0.3 s timeout, unless the test lets it go
        return Response("[]", content_type="application/json")

    expect(server).respond_with_handler(stalled)
    started = time.monotonic()
    try:
        report = fetch(config, store)
    finally:
        release.set()  # so the server's thread does not keep stalling the next test
    elapsed = time.monotonic() - started
    (day,) = report.days
    assert (day.outcome, day.attempts, report.rejected) == (FAILED, 2, True)
    assert day.message == (f"gave up after 2 attempts: cannot reach {page_url(server)}: ReadTimeout: timed out")
    assert elapsed < 5  # two 0.3 s timeouts, not the server's 10 s
    assert not config.inbox.exists() and store.dump_count() == 0


# -- answers that are not a day of papers -------------------------------------------


def test_400_for_a_future_day_is_reported_and_not_retried(config: Config, store: Store, server: HTTPServer) -> None:
    expect(server).respond_with_json({"error": "Date cannot be in the future"}, status=400)
    report = fetch(config, store)
    (day,) = report.days
    assert (day.outcome, day.attempts, report.rejected) == (NOT_AVAILABLE, 1, False)
    assert day.message == "not available yet (the API answered 400: Date cannot be in the future)"


def test_a_range_stops_at_the_latest_available_day(config: Config, store: Store, server: HTTPServer) -> None:
    days = day_range(DAY - timedelta(days=1), DAY + timedelta(days=3))
    expect(server, DAY - timedelta(days=1)).respond_with_json([item("2601.00003", "Yesterday")])
    expect(server, DAY).respond_with_json([item("2601.00004", "Today")])
    expect(server, DAY + timedelta(days=1)).respond_with_json({"error": "future"}, status=400)
    report = fetch(config, store, *days)
    assert [d.outcome for d in report.days] == [FETCHED, FETCHED, NOT_AVAILABLE]
    assert report.stopped_at == DAY + timedelta(days=1) and not report.rejected
    assert len(server.log) == 3  # the two later days were never asked for
    server.check_assertions()


def test_404_fails_the_day_without_retrying(config: Config, store: Store, server: HTTPServer) -> None:
    expect(server).respond_with_data("Not Found", status=404)
    (day,) = fetch(config, store).days
    assert (day.outcome, day.attempts) == (FAILED, 1)
    assert day.message.startswith("the API answered 404 NOT FOUND: Not Found for http://127.0.0.1:")
    assert day.message.endswith("is [source] base_url right?")


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"<!DOCTYPE html>\n<html><title>Hugging Face</title></html>", "not JSON: an HTML or XML page"),
        (FIXTURE.read_bytes()[:700], "truncated JSON: the response ends early"),
    ],
)
def test_an_unusable_body_is_saved_then_quarantined(
    config: Config, store: Store, server: HTTPServer, body: bytes, why: str
) -> None:
    expect(server).respond_with_data(body, content_type="text/html")
    report = fetch(config, store)
    (day,) = report.days
    kept = config.quarantine / "hf-daily-2026-01-02.json"
    assert (day.outcome, day.path, report.rejected) == (FAILED, kept, True)
    assert why in day.message
    assert kept.read_bytes() == body  # what the server sent, saved before it was parsed
    assert why in (config.quarantine / "hf-daily-2026-01-02.json.error").read_text()
    assert not (config.inbox / "hf-daily-2026-01-02.json").exists()
    assert store.dump_count() == 0 and store.fetch_validators(page_url(server)) is None


def test_bad_items_are_reported_and_the_rest_stored(config: Config, store: Store, server: HTTPServer) -> None:
    broken = item("2601.00006", "Broken")
    broken["paper"]["upvotes"] = "many"
    expect(server).respond_with_json([item("2601.00005", "Fine"), broken, {"paper": {"title": "No Id"}}])
    report = fetch(config, store)
    (day,) = report.days
    assert day.outcome == FETCHED and report.rejected
    assert day.message == "1 paper (1 new, 0 updated), 2 items rejected"
    assert [str(p) for p in report.problems] == [
        "hf-daily-2026-01-02.json:item 2: paper.upvotes: expected a whole number of at least 0, "
        "got a string 'many'; item skipped",
        "hf-daily-2026-01-02.json:item 3: paper.id is missing; paper.summary is missing; item skipped",
    ]
    assert [p.title for p in store.iter_papers()] == ["Fine"]


# -- conditional requests ------------------------------------------------------------


def test_etag_makes_the_second_fetch_download_nothing(config: Config, store: Store, server: HTTPServer) -> None:
    body = FIXTURE.read_bytes()
    expect(server, headers={"If-None-Match": '"v1"'}).respond_with_data("", status=304)
    expect(server).respond_with_data(body, content_type="application/json", headers={"ETag": '"v1"'})
    first = fetch(config, store)
    saved = config.inbox / "hf-daily-2026-01-02.json"
    stamp = saved.stat().st_mtime_ns
    second = fetch(config, store)
    assert [first.days[0].outcome, second.days[0].outcome] == [FETCHED, NOT_MODIFIED]
    assert second.days[0].message == "not modified since the last fetch" and not second.rejected
    assert requests_for(server)[1].headers["If-None-Match"] == '"v1"'
    assert saved.stat().st_mtime_ns == stamp and store.dump_count() == 1


def test_last_modified_makes_the_second_fetch_download_nothing(
    config: Config, store: Store, server: HTTPServer
) -> None:
    stamp = "Fri, 02 Jan 2026 22:00:00 GMT"
    expect(server, headers={"If-Modified-Since": stamp}).respond_with_data("", status=304)
    expect(server).respond_with_json([item("2601.00007", "Dated")], headers={"Last-Modified": stamp})
    assert [fetch(config, store).days[0].outcome for _ in range(2)] == [FETCHED, NOT_MODIFIED]
    first, second = requests_for(server)
    assert "If-Modified-Since" not in first.headers and second.headers["If-Modified-Since"] == stamp


def test_a_changed_day_is_downloaded_again_and_updates_the_papers(
    config: Config, store: Store, server: HTTPServer
) -> None:
    expect(server, oneshot=True).respond_with_json([item("2601.00008", "Growing", 1)], headers={"ETag": '"a"'})
    expect(server).respond_with_json([item("2601.00008", "Growing", 9)], headers={"ETag": '"b"'})
    fetch(config, store)
    (day,) = fetch(config, store).days
    assert day.message == "1 paper (0 new, 1 updated)"
    (paper,) = store.iter_papers()
    assert (paper.upvotes, paper.sightings, store.dump_count()) == (9, 1, 2)


def test_a_quarantined_answer_leaves_no_validators(config: Config, store: Store, server: HTTPServer) -> None:
    expect(server, oneshot=True).respond_with_data("<html>", headers={"ETag": '"bad"'})
    expect(server).respond_with_json([item("2601.00009", "Good Later")], headers={"ETag": '"good"'})
    assert [fetch(config, store).days[0].outcome for _ in range(2)] == [FAILED, FETCHED]
    assert "If-None-Match" not in requests_for(server)[1].headers


# -- the same paper from both sources -----------------------------------------------------


def test_a_seed_paper_fetched_later_is_enriched_not_duplicated(
    config: Config, store: Store, server: HTTPServer, tmp_path: Path
) -> None:
    ingest_files(store, find_dump_files([SEEDS]), quarantine=tmp_path / "q", today=NOW.date(), now=NOW)
    assert store.paper_count() == 309
    expect(server).respond_with_data(FIXTURE.read_bytes(), content_type="application/json")
    (day,) = fetch(config, store).days
    assert day.message == "3 papers (1 new, 2 updated)"
    papers = {p.title: p for p in store.iter_papers()}
    assert len(papers) == 310
    light = papers["Light Schrödinger Bridge"]
    assert (light.arxiv_id, light.authors_count, light.upvotes, light.comments) == ("2310.01174", 3, 14, 2)
    assert (light.first_seen, light.last_seen, light.sightings) == (date(2025, 11, 17), DAY, 2)
    cfm = papers["Configurable Foundation Models: Building LLMs from a Modular Perspective"]
    assert cfm.arxiv_id == "2409.02877" and cfm.organization is not None and cfm.organization.id == "openbmb"
    assert cfm.authors == ("Chaojun Xiao", "Zhengyan Zhang", "Maosong Sun") and cfm.first_seen == date(2025, 11, 27)


def test_an_older_api_view_fills_in_without_overwriting(config: Config, store: Store, server: HTTPServer) -> None:
    ingest_files(store, find_dump_files([SEEDS]), quarantine=config.quarantine, today=NOW.date(), now=NOW)
    before = next(p for p in store.iter_papers() if p.title.startswith("Knapsack RL"))
    older = date(2025, 10, 1)
    listed = item("2509.25849", "Knapsack RL: unlocking exploration of LLMs via optimizing budget allocation", 50)
    listed["paper"]["publishedAt"] = "2025-09-30T17:00:00Z"
    expect(server, older).respond_with_json([listed])
    fetch(config, store, older)
    after = next(p for p in store.iter_papers() if p.id == before.id)
    assert (after.title, after.last_seen) == (before.title, before.last_seen)
    # The seed listing showed no count: the older one's is the newest count any listing showed.
    assert (before.upvotes, after.upvotes) == (None, 50)
    assert (after.arxiv_id, after.authors, after.comments) == ("2509.25849", ("Ada Lovelace", "Alan Turing"), 4)
    assert (after.published, after.first_seen, after.sightings) == (date(2025, 9, 30), older, 2)
    assert store.paper_count() == 309


# -- the scheduler's entry point and the small parts -----------------------------------------


def test_fetch_recent_days_does_nothing_when_disabled(config: Config, store: Store, server: HTTPServer) -> None:
    assert fetch_recent_days(config, store, clock=lambda: NOW) is None
    assert server.log == []


def test_fetch_recent_days_asks_for_today_and_yesterday_in_utc(
    tmp_path: Path, store: Store, server: HTTPServer
) -> None:
    config = load_config(write_config(tmp_path, server, enabled=True), tmp_path)
    late_evening_in_new_york = datetime(2026, 1, 3, 23, 30, tzinfo=UTC) - timedelta(hours=1)
    for day in (date(2026, 1, 2), date(2026, 1, 3)):
        expect(server, day).respond_with_json([])
    with open_client(config.source) as client:
        report = fetch_recent_days(config, store, clock=lambda: late_evening_in_new_york, client=client)
    assert report is not None and [d.day for d in report.days] == [date(2026, 1, 2), date(2026, 1, 3)]
    server.check_assertions()


def test_pace_between_days(config: Config, store: Store, server: HTTPServer) -> None:
    slept: list[float] = []
    paced = replace(config, source=replace(config.source, pace=2.5))
    for day in day_range(DAY, DAY + timedelta(days=2)):
        expect(server, day).respond_with_json([])
    fetch(paced, store, *day_range(DAY, DAY + timedelta(days=2)), sleep=slept.append)
    assert slept == [2.5, 2.5]


def test_retry_after_values() -> None:
    now = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("120", now) == 120.0
    assert retry_after_seconds("Fri, 02 Jan 2026 12:01:30 GMT", now) == 90.0
    assert retry_after_seconds("Fri, 02 Jan 2026 11:00:00 GMT", now) == 0.0
    assert retry_after_seconds("soon", now) is None and retry_after_seconds(None, now) is None


def test_token_comes_from_the_environment_only_and_never_in_clear_text() -> None:
    assert token_from_environment({"HF_TOKEN": " hf_x "}) == "hf_x"
    assert token_from_environment({"HF_TOKEN": ""}) is None and token_from_environment({}) is None
    with pytest.raises(FetchError, match=r"refusing to send HF_TOKEN over plain http to example\.org"):
        open_client(SourceConfig(base_url="http://example.org"), token="hf_x")
    open_client(SourceConfig(base_url="http://example.org")).close()  # no token: fine
    with pytest.raises(FetchError, match=r"^HF_TOKEN holds characters an HTTP header cannot carry"):
        open_client(SourceConfig(base_url="https://example.org"), token="hf_\u00e9")


def test_an_inbox_that_cannot_be_written_fails_the_day(tmp_path: Path, store: Store, server: HTTPServer) -> None:
    config = load_config(write_config(tmp_path, server), tmp_path)
    config.inbox.parent.mkdir(parents=True, exist_ok=True)
    config.inbox.write_text("a file where the inbox folder should be")
    expect(server).respond_with_json([])
    (day,) = fetch(config, store).days
    assert day.outcome == FAILED and day.message.startswith(f"cannot save the response to {config.inbox}/")


# -- a day of more than one page ------------------------------------------------------------


def serve_listing(server: HTTPServer, listing: PagedListing) -> PagedListing:
    server.expect_request(PATH).respond_with_handler(listing)
    return listing


def saved_ids(config: Config, day: date = DAY) -> list[str]:
    items = json.loads((config.inbox / f"hf-daily-{day.isoformat()}.json").read_bytes())
    return [entry["paper"]["id"] for entry in items]


def test_a_day_of_75_papers_is_stored_whole(config: Config, store: Store, server: HTTPServer) -> None:
    hub = serve_listing(server, PagedListing({"2026-01-02": day_of_papers(75)}))
    (day,) = fetch(config, store).days
    assert (day.outcome, day.message) == (FETCHED, "75 papers (75 new, 0 updated)")
    assert store.paper_count() == 75 and len(saved_ids(config)) == 75
    assert [(a.page, a.limit) for a in hub.asked] == [(0, 100)]  # one page of 100 holds it


def test_a_day_of_230_papers_is_paged_to_the_end_and_saved_as_one_file(
    config: Config, store: Store, server: HTTPServer, tmp_path: Path
) -> None:
    papers = day_of_papers(230)
    hub = serve_listing(server, PagedListing({"2026-01-02": papers}))
    report = fetch(config, store)
    (day,) = report.days
    assert (day.outcome, day.message, day.attempts, report.rejected) == (
        FETCHED,
        "230 papers (230 new, 0 updated)",
        1,
        False,
    )
    assert [(a.page, a.limit) for a in hub.asked] == [(0, 100), (1, 100), (2, 100)]
    assert saved_ids(config) == [p["paper"]["id"] for p in papers]  # every item of every page, in order
    assert sorted(path.name for path in config.inbox.iterdir()) == ["hf-daily-2026-01-02.json"]
    # Re-ingesting what was saved, into a new database, gives the whole day.
    fresh = open_store(tmp_path / "fresh.db")
    try:
        summary = ingest_files(
            fresh, [config.inbox / "hf-daily-2026-01-02.json"], quarantine=tmp_path / "q", today=NOW.date(), now=NOW
        )
        assert (summary.papers_new, summary.problems, fresh.paper_count()) == (230, [], 230)
    finally:
        fresh.close()


def test_a_day_of_exactly_one_full_page_ends_with_an_empty_page(
    config: Config, store: Store, server: HTTPServer
) -> None:
    hub = serve_listing(server, PagedListing({"2026-01-02": day_of_papers(100)}))
    (day,) = fetch(config, store).days
    assert (day.outcome, store.paper_count()) == (FETCHED, 100)
    assert [a.page for a in hub.asked] == [0, 1]


def test_an_item_on_two_pages_is_saved_once(config: Config, store: Store, server: HTTPServer) -> None:
    papers = day_of_papers(150)

    def newcomer_on_top(listing: PagedListing, page: int) -> None:
        if page == 0:  # a paper is put on the listing while it is paged: everything moves down one
            listing.days["2026-01-02"] = [item("2601.99999", "Late Arrival"), *papers]

    serve_listing(server, PagedListing({"2026-01-02": list(papers)}, between_pages=newcomer_on_top))
    report = fetch(config, store)
    (day,) = report.days
    # Paper 100 ends page 0 and, moved down, starts page 1: kept once, and no item is rejected.
    assert (day.outcome, day.message, report.problems) == (FETCHED, "150 papers (150 new, 0 updated)", [])
    assert saved_ids(config) == [p["paper"]["id"] for p in papers]


def test_a_day_longer_than_max_pages_is_saved_but_fails_the_run(
    tmp_path: Path, store: Store, server: HTTPServer
) -> None:
    config = load_config(write_config(tmp_path, server, max_pages=2), tmp_path)
    hub = serve_listing(server, PagedListing({"2026-01-02": day_of_papers(230)}))
    report = fetch(config, store)
    (day,) = report.days
    saved = config.inbox / "hf-daily-2026-01-02.json"
    assert (day.outcome, day.path, report.rejected) == (FAILED, saved, True)
    assert day.message == (
        "incomplete: the listing goes on after [source] max_pages = 2 pages of 100; saved what came, "
        "200 papers (200 new, 0 updated) -> hf-daily-2026-01-02.json; raise max_pages to fetch the rest"
    )
    assert [a.page for a in hub.asked] == [0, 1]
    assert store.paper_count() == 200 and len(saved_ids(config)) == 200  # nothing that came is lost
    assert known_validators(store, config.source.base_url, {"date": "2026-01-02"}) == []
    fetch(config, store)  # tried again in full, not answered with 304s
    assert [a.conditional for a in hub.asked[2:]] == [False, False]


def test_a_page_failing_mid_day_fails_the_day_and_saves_nothing(
    config: Config, store: Store, server: HTTPServer
) -> None:
    hub = PagedListing({"2026-01-02": day_of_papers(230)})
    server.expect_request(PATH, query_string={"date": "2026-01-02", "limit": "100", "p": "1"}).respond_with_data(
        "busy", status=503
    )
    serve_listing(server, hub)
    report = fetch(config, store)
    (day,) = report.days
    assert (day.outcome, day.attempts, report.rejected) == (FAILED, 3, True)
    assert day.message == "page 2: gave up after 3 attempts: the API answered 503 SERVICE UNAVAILABLE: busy"
    assert not config.inbox.exists() and store.paper_count() == 0
    assert known_validators(store, config.source.base_url, {"date": "2026-01-02"}) == []


def test_a_page_failing_mid_day_keeps_the_last_complete_fetch(config: Config, store: Store, server: HTTPServer) -> None:
    hub = serve_listing(server, PagedListing({"2026-01-02": day_of_papers(230)}))
    fetch(config, store)
    saved = (config.inbox / "hf-daily-2026-01-02.json").read_bytes()
    kept = known_validators(store, config.source.base_url, {"date": "2026-01-02"})
    assert len(kept) == 3
    hub.days["2026-01-02"] = day_of_papers(250)
    server.clear_all_handlers()
    expect(server, page=1).respond_with_data("<html>Bad Gateway</html>", status=200)  # the first that matches
    serve_listing(server, hub)
    (day,) = fetch(config, store).days
    assert day.outcome == FAILED and day.message.startswith("page 2: unusable response: not JSON: an HTML")
    assert (config.inbox / "hf-daily-2026-01-02.json").read_bytes() == saved
    assert known_validators(store, config.source.base_url, {"date": "2026-01-02"}) == kept
    note = (config.quarantine / "hf-daily-2026-01-02.json.error").read_text()
    assert note.startswith(f"{page_url(server, page=1)}: not JSON: an HTML")  # says where it came from
    assert (config.quarantine / "hf-daily-2026-01-02.json").read_bytes() == b"<html>Bad Gateway</html>"


# -- conditional requests for a day of several pages ---------------------------------------------


def test_an_unchanged_paged_day_is_not_modified(config: Config, store: Store, server: HTTPServer) -> None:
    hub = serve_listing(server, PagedListing({"2026-01-02": day_of_papers(230)}))
    fetch(config, store)
    saved = config.inbox / "hf-daily-2026-01-02.json"
    stamp = saved.stat().st_mtime_ns
    (day,) = fetch(config, store).days
    assert (day.outcome, day.message) == (NOT_MODIFIED, "not modified since the last fetch")
    assert hub.pages_asked()[3:] == [(0, True), (1, True), (2, True)]
    assert [a.status for a in hub.asked[3:]] == [304, 304, 304]
    assert saved.stat().st_mtime_ns == stamp and store.dump_count() == 1


def test_a_day_that_grows_on_its_last_page_is_fetched_again_whole(
    config: Config, store: Store, server: HTTPServer
) -> None:
    papers = day_of_papers(260)
    hub = serve_listing(server, PagedListing({"2026-01-02": papers[:230]}))
    fetch(config, store)
    hub.days["2026-01-02"] = papers  # pages 0 and 1 stay the same; page 2 grows from 30 to 60
    (day,) = fetch(config, store).days
    assert (day.outcome, day.message) == (FETCHED, "260 papers (30 new, 230 updated)")
    # Pages 0 and 1 answered 304 and have no body: the day is asked for again without validators.
    assert hub.pages_asked()[3:] == [(0, True), (1, True), (2, True), (0, False), (1, False), (2, False)]
    assert len(saved_ids(config)) == 260 and store.paper_count() == 260
    assert fetch(config, store).days[0].outcome == NOT_MODIFIED  # the new validators were kept


def test_a_day_whose_first_page_changed_is_fetched_without_validators(
    config: Config, store: Store, server: HTTPServer
) -> None:
    papers = day_of_papers(230)
    hub = serve_listing(server, PagedListing({"2026-01-02": papers}))
    fetch(config, store)
    hub.days["2026-01-02"] = papers[:150]  # page 0 is the same; the day shrank to two pages
    assert fetch(config, store).days[0].outcome == FETCHED
    hub.days["2026-01-02"] = [item("2601.10001", "Paper 1 Of Series 1", 7), *papers[1:150]]
    before = len(hub.asked)
    assert fetch(config, store).days[0].outcome == FETCHED
    assert hub.pages_asked()[before:] == [(0, True), (1, False)]  # page 0 changed: page 1 is needed as it is
    # The third page of the longer day is forgotten: an unchanged day is two 304s now.
    assert len(known_validators(store, config.source.base_url, {"date": "2026-01-02"})) == 2
    assert fetch(config, store).days[0].outcome == NOT_MODIFIED
    assert hub.pages_asked()[-2:] == [(0, True), (1, True)]


def test_validators_are_kept_only_when_every_page_has_them(config: Config, store: Store, server: HTTPServer) -> None:
    hub = serve_listing(server, PagedListing({"2026-01-02": day_of_papers(230)}, etags=False))
    fetch(config, store)
    assert known_validators(store, config.source.base_url, {"date": "2026-01-02"}) == []
    assert fetch(config, store).days[0].outcome == FETCHED
    assert not any(a.conditional for a in hub.asked)


def test_validators_of_the_unpaged_url_are_not_used(config: Config, store: Store, server: HTTPServer) -> None:
    # An older version asked for `?date=D` alone and kept that URL's ETag for a day it cut at 50.
    store.save_fetch(f"{server.url_for(PATH)}?date=2026-01-02", DAY, Validators(etag='"old"'), NOW)
    hub = serve_listing(server, PagedListing({"2026-01-02": day_of_papers(75)}))
    (day,) = fetch(config, store).days
    assert (day.outcome, store.paper_count(), hub.pages_asked()) == (FETCHED, 75, [(0, False)])


def test_the_paging_takes_any_listing_query(config: Config, server: HTTPServer) -> None:
    def weekly(request: Request) -> Response:
        assert request.args["week"] == "2026-W01"
        page = int(request.args["p"])
        return Response(json.dumps(day_of_papers(120)[page * 100 : (page + 1) * 100]), content_type="application/json")

    server.expect_request(PATH).respond_with_handler(weekly)
    with open_client(config.source) as client:
        listing = fetch_listing(client, config.source, {"week": "2026-W01"})
    assert listing.state is ListingState.COMPLETE and len(listing.items) == 120
    assert [page.url for page in listing.pages] == [
        f"{server.url_for(PATH)}?week=2026-W01&limit=100&p={n}" for n in (0, 1)
    ]


# -- bounded downloads -------------------------------------------------------------------------


def test_a_gzip_bomb_is_stopped_and_noted_not_kept(config: Config, store: Store, server: HTTPServer) -> None:
    bomb = gzip_bomb()  # 1 MB that inflates to 1 GB
    expect(server).respond_with_data(bomb, content_type="application/json", headers={"Content-Encoding": "gzip"})
    tracemalloc.start()
    try:
        report = fetch(config, store)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40_000_000  # a 5 MB limit, not the gigabyte
    (day,) = report.days
    note = config.quarantine / "hf-daily-2026-01-02.json.error"
    assert (day.outcome, day.path, day.attempts, report.rejected) == (FAILED, note, 1, True)
    assert day.message == (
        f"the answer from {page_url(server)} is larger than [source] max_response_mb = 5 MB once decompressed: "
        "not kept; see hf-daily-2026-01-02.json.error"
    )
    assert note.read_text().startswith(
        f"{page_url(server)}: is larger than [source] max_response_mb = 5 MB once decompressed\n"
    )
    assert sorted(p.name for p in config.quarantine.iterdir()) == ["hf-daily-2026-01-02.json.error"]
    assert not config.inbox.exists() and store.dump_count() == 0
    assert len(requests_for(server)) == 1  # not retried


def test_a_redirect_body_is_never_read(config: Config, store: Store, server: HTTPServer) -> None:
    moved = {"Location": "/mirror" + PATH + "?date=2026-01-02&limit=100&p=0", "Content-Encoding": "gzip"}
    expect(server).respond_with_data(gzip_bomb(), status=302, headers=moved)
    server.expect_request("/mirror" + PATH).respond_with_json([item("2601.00011", "Moved")])
    tracemalloc.start()
    try:
        (day,) = fetch(config, store).days
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (day.outcome, store.paper_count()) == (FETCHED, 1)
    assert peak < 40_000_000


@pytest.mark.parametrize("declared", [True, False], ids=["with-content-length", "streamed"])
def test_a_plain_body_over_the_limit_is_not_kept(
    tmp_path: Path, store: Store, server: HTTPServer, declared: bool
) -> None:
    config = load_config(write_config(tmp_path, server, max_response_mb=0.01), tmp_path)
    body = json.dumps(day_of_papers(60)).encode()
    assert len(body) > 10_000
    if declared:
        expect(server).respond_with_data(body, content_type="application/json")
    else:
        chunks = (body[i : i + 1000] for i in range(0, len(body), 1000))
        expect(server).respond_with_response(Response(chunks, content_type="application/json"))
    (day,) = fetch(config, store).days
    assert day.outcome == FAILED and "is larger than [source] max_response_mb = 0.01 MB: not kept" in day.message
    assert not config.inbox.exists() and store.dump_count() == 0


def test_an_encoding_not_asked_for_fails_the_day(config: Config, store: Store, server: HTTPServer) -> None:
    expect(server).respond_with_data(b"\x8b\x00", headers={"Content-Encoding": "br"})
    (day,) = fetch(config, store).days
    assert day.outcome == FAILED
    assert day.message == f"the answer is encoded as 'br', which was not asked for ({page_url(server)})"
    assert requests_for(server)[0].headers["Accept-Encoding"] == "gzip"


def test_a_server_dripping_its_body_fails_at_the_deadline(tmp_path: Path, store: Store, server: HTTPServer) -> None:
    config = load_config(write_config(tmp_path, server, deadline=1), tmp_path)
    stop = threading.Event()

    def drip() -> Iterator[bytes]:
        yield b"["
        while not stop.wait(0.1):  # a byte well within the read timeout, again and again
            yield b" "
        yield b"]"

    expect(server).respond_with_response(Response(drip(), content_type="application/json"))
    try:
        report = fetch(config, store)
    finally:
        stop.set()
    (day,) = report.days
    assert (day.outcome, day.attempts, report.rejected) == (FAILED, 1, True)
    assert day.message == (
        f"the answer from {page_url(server)} took longer than [source] deadline = 1 s: not kept; "
        "see hf-daily-2026-01-02.json.error"
    )
    assert not config.inbox.exists() and len(requests_for(server)) == 1


def test_a_server_dripping_its_headers_fails_at_the_deadline(tmp_path: Path, store: Store) -> None:
    # Headers that never end: the server hangs up after 8 s. Only a watchdog ends it sooner,
    # and says why; without one this would be a protocol error once the server gives up.
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Slow: " + b"x" * 120
    with DrippingServer(answer, interval=0.05) as dripping:
        base_url = dripping.base_url
        source = SourceConfig(base_url=base_url, pace=0, backoff=0, backoff_max=0, attempts=1, deadline=1)
        config = replace(load_config(None, tmp_path), source=source)
        (day,) = fetch(config, store).days
    assert day.outcome == FAILED and dripping.connections == 1
    assert day.message == (
        f"the answer from {base_url}{PATH}?date=2026-01-02&limit=100&p=0 took longer than [source] deadline = 1 s: "
        "not kept; see hf-daily-2026-01-02.json.error"
    )
    assert not config.inbox.exists() and store.dump_count() == 0


# -- headers and error bodies no request can carry or decode ------------------------------------------


def raw_header(text: str) -> str:
    """`text` as werkzeug's latin-1 header string whose bytes on the wire are its UTF-8."""
    return text.encode("utf-8").decode("latin-1")


@pytest.mark.parametrize("name", ["ETag", "Last-Modified"])
def test_a_validator_that_is_not_ascii_is_not_kept(config: Config, store: Store, server: HTTPServer, name: str) -> None:
    expect(server).respond_with_json([item("2601.00012", "Accented Tag")], headers={name: raw_header('"étag"')})
    assert [fetch(config, store).days[0].outcome for _ in range(2)] == [FETCHED, FETCHED]
    assert store.fetch_validators(page_url(server)) is None  # the next fetch is unconditional
    second = requests_for(server)[1].headers
    assert "If-None-Match" not in second and "If-Modified-Since" not in second


def test_a_stored_validator_that_is_not_ascii_is_not_sent(config: Config, store: Store, server: HTTPServer) -> None:
    store.save_fetch(page_url(server), DAY, Validators(etag='"étag"', last_modified="Fri, 02 Jän 2026"), NOW)
    expect(server).respond_with_json([item("2601.00013", "Stored Before")])
    (day,) = fetch(config, store).days
    sent = requests_for(server)[0].headers
    assert day.outcome == FETCHED and "If-None-Match" not in sent and "If-Modified-Since" not in sent


@pytest.mark.parametrize("wait", ["²", "①", "٣"])
def test_a_retry_after_of_other_digits_is_not_honoured(
    config: Config, store: Store, server: HTTPServer, wait: str
) -> None:
    expect(server, oneshot=True).respond_with_data("busy", status=503, headers={"Retry-After": raw_header(wait)})
    expect(server).respond_with_json([item("2601.00014", "After Any Wait")])
    (day,) = fetch(config, store).days
    assert (day.outcome, day.attempts) == (FETCHED, 2)
    assert retry_after_seconds(wait, NOW) is None


@pytest.mark.parametrize(
    ("status", "start"),
    [(404, "the API answered 404 NOT FOUND: [[["), (503, "gave up after 3 attempts: the API answered 503 ")],
)
def test_an_error_body_nested_too_deeply_is_quoted_in_one_line(
    config: Config, store: Store, server: HTTPServer, status: int, start: str
) -> None:
    expect(server).respond_with_data("[" * 100_000, status=status, content_type="application/json")
    report = fetch(config, store)
    (day,) = report.days
    assert (day.outcome, report.rejected) == (FAILED, True)
    assert day.message.startswith(start) and "[" * 99 + "…" in day.message and "\n" not in day.message


# -- weeks and months -------------------------------------------------------------------------------


def test_a_week_is_fetched_with_the_week_query_and_saved_as_one_file_per_listing_day(
    tmp_path: Path, server: HTTPServer
) -> None:
    # 2026-W01 runs from Monday 29 December 2025 to Sunday 4 January 2026.
    write_config(tmp_path, server)
    by_day = {"2025-12-31": 60, "2026-01-02": 55, "2026-01-04": 40}
    week = [
        listed_on(item(f"2512.{offset}{i:04d}", f"Week Paper {offset}-{i}"), day)
        for offset, (day, n) in enumerate(by_day.items())
        for i in range(n)
    ]
    undated = item("2512.09998", "A Paper That Says No Day")
    del undated["publishedAt"]
    week += [undated, listed_on(item("2512.09999", "A Paper Of The Next Week"), "2026-01-05")]
    earlier = [item("2512.08000", "Fetched Before")]
    hub = serve_listing(server, PagedListing({"2026-W01": week, "2025-12-30": earlier}))
    clock = lambda: datetime(2026, 1, 6, 8, tzinfo=UTC)  # noqa: E731
    assert run_digest("fetch", "--date", "2025-12-30", cwd=tmp_path, clock=clock).returncode == 0
    hub.asked.clear()
    result = run_digest("fetch", "--week", "2026-W01", cwd=tmp_path, clock=clock)
    assert result.returncode == 1, result.stderr  # two items could not be placed: reported, not saved
    assert [(a.day, a.page, a.limit) for a in hub.asked] == [("2026-W01", 0, 100), ("2026-W01", 1, 100)]
    assert result.stderr.splitlines() == [
        "2026-W01:item 156: names no listing day (paper.submittedOnDailyAt, publishedAt); not saved",
        "2026-W01:item 157: listed on 2026-01-05, outside 2026-W01; not saved (fetch that day with --date)",
    ]
    assert "2025-12-30: already fetched" in result.stdout
    assert "7 days: 6 fetched, 0 not modified, 0 not available yet, 0 failed, 1 already fetched" in result.stdout
    inbox = tmp_path / "inbox"
    saved = {p.name: json.loads(p.read_bytes()) for p in sorted(inbox.glob("hf-daily-*.json"))}
    assert {name: len(items) for name, items in saved.items()} == {
        "hf-daily-2025-12-29.json": 0,  # nothing listed that day: an empty list says so
        "hf-daily-2025-12-30.json": 1,  # the day fetched before, as it was
        "hf-daily-2025-12-31.json": 60,
        "hf-daily-2026-01-01.json": 0,
        "hf-daily-2026-01-02.json": 55,
        "hf-daily-2026-01-03.json": 0,
        "hf-daily-2026-01-04.json": 40,
    }
    store = open_store(tmp_path / "state.db")
    try:
        first_seen = {p.title: p.first_seen for p in store.iter_papers()}
        assert first_seen["Week Paper 0-0"] == date(2025, 12, 31) and first_seen["Week Paper 2-39"] == date(2026, 1, 4)
        assert len(first_seen) == 1 + 155 and "A Paper Of The Next Week" not in first_seen
    finally:
        store.close()
    # Every day of the week is fetched now: nothing is asked for again.
    hub.asked.clear()
    again = run_digest("fetch", "--week", "2026-W01", cwd=tmp_path, clock=clock)
    assert again.returncode == 0 and hub.asked == []
    assert "7 days: 0 fetched, 0 not modified, 0 not available yet, 0 failed, 7 already fetched" in again.stdout


def test_a_month_is_fetched_with_the_month_query_and_today_is_fetched_again(tmp_path: Path, server: HTTPServer) -> None:
    write_config(tmp_path, server)
    month = [listed_on(item(f"2601.{i:05d}", f"Month Paper {i}"), f"2026-01-{i % 5 + 1:02d}") for i in range(20)]
    hub = serve_listing(server, PagedListing({"2026-01": month}))
    clock = lambda: datetime(2026, 1, 5, 8, tzinfo=UTC)  # noqa: E731
    result = run_digest("fetch", "--month", "2026-01", cwd=tmp_path, clock=clock)
    assert result.returncode == 0, result.stderr
    assert "5 days: 5 fetched, 0 not modified, 0 not available yet, 0 failed" in result.stdout  # up to today
    assert [(a.day, a.page) for a in hub.asked] == [("2026-01", 0)]
    month.append(listed_on(item("2601.09000", "Later Today"), "2026-01-05"))
    again = run_digest("fetch", "--month", "2026-01", cwd=tmp_path, clock=clock)
    # Today and yesterday still fill up: asked for again (the validators say the listing changed).
    assert "5 days: 2 fetched, 0 not modified, 0 not available yet, 0 failed, 3 already fetched" in again.stdout
    assert len(json.loads((tmp_path / "inbox" / "hf-daily-2026-01-05.json").read_bytes())) == 5


@pytest.mark.parametrize(("option", "value"), [("--week", "2025-W53"), ("--week", "2025-12"), ("--month", "2025-W52")])
def test_a_period_that_is_not_one_is_a_usage_error(tmp_path: Path, server: HTTPServer, option: str, value: str) -> None:
    write_config(tmp_path, server)
    result = run_digest("fetch", option, value, cwd=tmp_path)
    assert result.returncode == 2 and f"'{value}' is not " in result.stderr


def test_a_week_saves_apart_what_a_day_fetched_before_lacked(tmp_path: Path, server: HTTPServer) -> None:
    write_config(tmp_path, server)
    a, b, c, d = (listed_on(item(f"2512.0000{n}", f"Late Paper {n}"), "2025-12-31") for n in range(1, 5))
    hub = serve_listing(server, PagedListing({"2025-12-31": [a, b], "2026-W01": [a, b, c]}))
    clock = lambda: datetime(2026, 1, 4, 8, tzinfo=UTC)  # noqa: E731  (a Sunday: today and yesterday are asked for again)
    assert run_digest("fetch", "--date", "2025-12-31", cwd=tmp_path, clock=clock).returncode == 0
    inbox = tmp_path / "inbox"
    day_file = (inbox / "hf-daily-2025-12-31.json").read_bytes()
    result = run_digest("fetch", "--week", "2026-W01", cwd=tmp_path, clock=clock)
    assert result.returncode == 0, result.stderr
    assert (
        "2025-12-31: fetched before, without 1 item of the 2026-W01 listing, saved apart: "
        "1 paper (1 new, 0 updated) -> inbox/hf-daily-2025-12-31.2026-W01.json"
    ) in result.stdout
    hub.days["2026-W01"] = [a, b, c, d]
    assert run_digest("fetch", "--week", "2026-W01", cwd=tmp_path, clock=clock).returncode == 0
    # A second lack goes to a file of its own: the first one's items stay in the inbox.
    apart = [
        json.loads((inbox / f"hf-daily-2025-12-31.{name}.json").read_bytes()) for name in ("2026-W01", "2026-W01.2")
    ]
    assert [[entry["paper"]["id"] for entry in items] for items in apart] == [["2512.00003"], ["2512.00004"]]
    assert (inbox / "hf-daily-2025-12-31.json").read_bytes() == day_file
    store = open_store(tmp_path / "state.db")
    try:
        assert {p.title: p.first_seen for p in store.iter_papers()} == {
            f"Late Paper {n}": date(2025, 12, 31) for n in range(1, 5)
        }
    finally:
        store.close()


def test_a_week_reports_items_listed_after_today_and_asks_for_them_again(tmp_path: Path, server: HTTPServer) -> None:
    write_config(tmp_path, server)
    week = [
        listed_on(item("2601.00001", "Listed Today"), "2026-01-02"),
        listed_on(item("2601.00002", "Early"), "2026-01-03"),
    ]
    hub = serve_listing(server, PagedListing({"2026-W01": week}))
    friday = lambda: datetime(2026, 1, 2, 8, tzinfo=UTC)  # noqa: E731
    result = run_digest("fetch", "--week", "2026-W01", cwd=tmp_path, clock=friday)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "2026-W01:item 2: listed on 2026-01-03, after today (2026-01-02 in UTC); not saved (fetch that day with --date)"
    ]
    # Not kept: the next fetch is not conditional, so it cannot be told "not modified".
    sunday = lambda: datetime(2026, 1, 4, 8, tzinfo=UTC)  # noqa: E731
    again = run_digest("fetch", "--week", "2026-W01", cwd=tmp_path, clock=sunday)
    assert again.returncode == 0, again.stderr
    assert [a.conditional for a in hub.asked] == [False, False]
    assert json.loads((tmp_path / "inbox" / "hf-daily-2026-01-03.json").read_bytes())[0]["title"] == "Early"


def test_an_item_no_fetch_of_the_period_can_place_keeps_the_validators(tmp_path: Path, server: HTTPServer) -> None:
    # An item listed outside the week is reported every time, but no later fetch of the week
    # can place it: forgetting the validators for it downloaded the week in full every run.
    write_config(tmp_path, server)
    week = [listed_on(item("2601.00001", "In Week"), "2026-01-02"), listed_on(item("2601.00002", "Next"), "2026-01-05")]
    hub = serve_listing(server, PagedListing({"2026-W01": week}))
    sunday = lambda: datetime(2026, 1, 4, 8, tzinfo=UTC)  # noqa: E731
    first = run_digest("fetch", "--week", "2026-W01", cwd=tmp_path, clock=sunday)
    assert first.returncode == 1 and "listed on 2026-01-05, outside 2026-W01" in first.stderr
    again = run_digest("fetch", "--week", "2026-W01", cwd=tmp_path, clock=sunday)
    assert again.returncode == 0, again.stderr  # not modified: nothing new to report
    assert [a.conditional for a in hub.asked] == [False, True]


def test_an_item_ingest_rejects_is_not_saved_apart_again_and_again(tmp_path: Path, server: HTTPServer) -> None:
    # An item with an empty title is never stored, so it always looked "lacking": each change of
    # its upvotes on the Hub wrote one more file beside the day's, and every fetch exited 1.
    write_config(tmp_path, server)
    good = listed_on(item("2512.00001", "Good"), "2025-12-31")
    bad = listed_on(item("2512.00002", "Bad"), "2025-12-31")
    bad["paper"]["title"] = bad["title"] = ""
    serve_listing(server, PagedListing({"2025-12-31": [good], "2026-W01": [good, bad]}))
    sunday = lambda: datetime(2026, 1, 4, 8, tzinfo=UTC)  # noqa: E731
    assert run_digest("fetch", "--date", "2025-12-31", cwd=tmp_path, clock=sunday).returncode == 0
    for upvotes in (10, 11):
        bad["paper"]["upvotes"] = upvotes
        week = run_digest("fetch", "--week", "2026-W01", cwd=tmp_path, clock=sunday)
        assert week.returncode == 1 and week.stderr.startswith("2026-W01: listed on 2025-12-31: "), week.stderr
        assert week.stderr.rstrip().endswith("; item skipped")  # reported, as ingest reports it
    assert [p.name for p in (tmp_path / "inbox").iterdir() if ".2026-W01" in p.name] == []


def test_a_week_day_that_could_not_be_saved_is_asked_for_again(tmp_path: Path, server: HTTPServer) -> None:
    write_config(tmp_path, server)
    hub = serve_listing(server, PagedListing({"2026-W01": [listed_on(item("2601.00001", "Blocked"), "2026-01-01")]}))
    blocker = tmp_path / "inbox" / "hf-daily-2026-01-01.json"
    blocker.mkdir(parents=True)  # a folder where the day's file goes
    clock = lambda: datetime(2026, 1, 6, 8, tzinfo=UTC)  # noqa: E731
    failed = run_digest("fetch", "--week", "2026-W01", cwd=tmp_path, clock=clock)
    assert failed.returncode == 1 and "2026-01-01: cannot save the response to " in failed.stderr
    blocker.rmdir()
    again = run_digest("fetch", "--week", "2026-W01", cwd=tmp_path, clock=clock)
    assert again.returncode == 0 and [a.conditional for a in hub.asked] == [False, False]
    assert json.loads(blocker.read_bytes())[0]["title"] == "Blocked"


def test_a_paged_day_with_a_lone_surrogate_is_joined_as_utf8(config: Config, server: HTTPServer) -> None:
    odd, plain = day_of_papers(101), day_of_papers(101)
    odd[100]["title"] = "Half \udfff A Pair"
    plain[100]["title"] = "Schrödinger Bridges"
    serve_listing(server, PagedListing({"2026-01-02": odd, "2026-01-03": plain}))
    with open_client(config.source) as client:
        bodies = [fetch_listing(client, config.source, {"date": day}).body() for day in ("2026-01-02", "2026-01-03")]
    # Read as U+FFFD when the pages were decoded (hf_api), so the joined body is UTF-8 as ever.
    assert "Half \ufffd A Pair".encode() in bodies[0] and len(json.loads(bodies[0].decode("utf-8"))) == 101
    assert "Schrödinger Bridges".encode() in bodies[1]  # without a surrogate, characters as they came
