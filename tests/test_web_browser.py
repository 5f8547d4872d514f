"""The web side in a real browser: headless Chromium (the system's, through Playwright) on a real uvicorn.

A subscriber opens their private digest page, clicks "Less like this" on a paper and the
button that confirms it; the next build ranks that paper's near-duplicates lower in their
email, whose reason line says why. Every page of the web side fits a 375 px phone and
loads without a console error (a style the Content-Security-Policy blocked would be one).
"""

from __future__ import annotations

import html
import re
import shutil
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from conftest import SEEDS
from playwright.sync_api import Browser, sync_playwright
from test_browser import ARTIFACTS, FLAGS, find_chromium, open_page, scroll_width
from webside import (
    ADA,
    ENVIRON,
    NOW,
    OPEN,
    OTHERS,
    Clock,
    links,
    load,
    near_duplicates,
    read_eml,
    serving,
    web_config,
)

from digest.app import App
from digest.ingest.hf_dump import format_dump
from digest.models import VoteKind
from digest.tokens import Action

BOB = "bob@example.org"
DAY2 = NOW.date() + timedelta(days=1)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=find_chromium(), args=FLAGS)
        yield launched
        launched.close()


def test_less_like_this_from_the_private_page_pushes_look_alikes_down_in_the_next_email(
    browser: Browser, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    shutil.copytree(SEEDS, inbox)
    config = load(web_config(tmp_path, inbox=inbox))
    clock = Clock()
    with App(config, clock=clock, environ=ENVIRON) as app:
        bob = app.store.reader_id(BOB, create=True, at=NOW)
        assert bob is not None
        app.store.request_confirmation(OPEN, bob, NOW, NOW + timedelta(hours=1))
        app.store.confirm_subscription(OPEN, bob, expires_at=NOW + timedelta(hours=1), at=NOW, other_profiles=[])
        app.ingest()
        app.build(config.profiles)
        first = app.store.load_digest(config.profiles[0], NOW.date())
    assert first is not None
    voted = first.items[0].paper
    web = links(config)
    with serving(config, clock) as (app, _):
        page, problems = open_page(browser, web.page(OPEN, bob), 375)
        content, viewport = scroll_width(page)
        assert content <= viewport and problems == []
        page.screenshot(path=str(ARTIFACTS / "web-reader-375.png"), full_page=True)
        item = page.locator("li", has_text=voted.title).first
        item.get_by_role("link", name="Less like this").click()
        page.wait_for_load_state()
        assert "Less like this" in page.locator("h1").inner_text()
        assert app.store.vote(OPEN, bob, voted.id, VoteKind.LESS) is None  # following the link alone: nothing
        page.get_by_role("button", name="Yes, less like this").click()
        page.wait_for_load_state()
        assert "Recorded" in page.locator("main").inner_text()
        assert page.get_by_role("button", name="Undo").count() == 1
        page.screenshot(path=str(ARTIFACTS / "web-vote-375.png"), full_page=True)
        page.close()
        record = app.store.vote(OPEN, bob, voted.id, VoteKind.LESS)
        assert record is not None and record.active

    (config.inbox / "day2.txt").write_text(format_dump(DAY2, near_duplicates(voted, DAY2)), encoding="utf-8")
    clock.advance(days=1)
    with App(config, clock=clock, environ=ENVIRON) as app:
        app.ingest()
        app.build(config.profiles)
    emails = {read_eml(p)["To"]: read_eml(p) for p in config.outbox.glob(f"{DAY2}_{OPEN}_*.eml")}
    bobs, adas = (_shown(emails[address]) for address in (BOB, ADA))
    look_alikes = [f"{voted.title}: Variant {n}" for n in range(1, 5)]
    day = [*look_alikes, *(title for title, _ in OTHERS)]
    in_bobs, in_adas = _order(bobs, day), _order(adas, day)
    # In ada's email (the profile's digest) a look-alike comes first; in bob's none does, the
    # closest one is gone, no look-alike still there passes a paper it came after in ada's, and
    # each says why.
    assert in_adas[0] in look_alikes and in_bobs[0] not in look_alikes
    assert look_alikes[3] in in_adas and look_alikes[3] not in in_bobs
    kept = [t for t in look_alikes if t in in_bobs]

    def others_before(order: list[str], title: str) -> int:
        return sum(other not in look_alikes for other in order[: order.index(title)])

    assert kept and all(others_before(in_bobs, t) >= others_before(in_adas, t) for t in kept)
    reason = f"down: like a paper you marked 'less like this': {voted.title}"
    assert bobs.count(reason) == len(kept) and reason not in adas


def _shown(message: EmailMessage) -> str:
    """The HTML part's text as a reader sees it, on one line."""
    part = message.get_body(("html",))
    assert part is not None
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", part.get_content())))


def _order(shown: str, titles: list[str]) -> list[str]:
    """Those of `titles` the email shows as papers, in its order (a title quoted in a reason
    ends with ':' or the line, not with a space)."""
    found = [(shown.find(f" {title} "), title) for title in titles]
    return [title for at, title in sorted(found) if at >= 0]


@pytest.mark.parametrize("which", ["subscribe", "confirm", "unsubscribe", "preferences", "vote"])
def test_every_page_of_the_web_side_fits_a_phone_and_loads_cleanly(
    browser: Browser, tmp_path: Path, which: str
) -> None:
    config = load(web_config(tmp_path))
    clock = Clock()
    web = links(config)
    with serving(config, clock) as (app, base):
        app.ingest()
        reader = app.store.reader_id(ADA, create=True, at=NOW)
        assert reader is not None
        paper = next(p for p in app.store.iter_papers() if p.organization)
        app.store.request_confirmation(OPEN, reader, NOW, NOW.replace(microsecond=0) + timedelta(hours=48))
        urls = {
            "subscribe": base + "subscribe",
            "confirm": web.confirm(OPEN, reader, NOW.replace(microsecond=0) + timedelta(hours=48)),
            "unsubscribe": web.unsubscribe(OPEN, reader),
            "preferences": web.preferences(OPEN, reader),
            "vote": web.vote(Action.MUTE, OPEN, reader, paper.id),
        }
        page, problems = open_page(browser, urls[which], 375)
        content, viewport = scroll_width(page)
        assert content <= viewport, f"{which} scrolls sideways at 375 px ({content} > {viewport})"
        assert problems == [] and page.evaluate("document.scripts.length") == 0
        assert page.locator("form button").count() >= 1
        page.screenshot(path=str(ARTIFACTS / f"web-{which}-375.png"), full_page=True)
        page.close()
