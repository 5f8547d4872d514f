"""A real browser: headless Chromium opens the email and the site, at a phone's width and at 600 px.

The site is served by a real HTTP server on 127.0.0.1 under a sub-path (as GitHub Pages
serves a project site), and every link inside it is followed. Screenshots land in
tests/artifacts/ (ignored by git) for a person to look at.

Chromium is the system's (Debian's `chromium`, or a preinstalled Chrome on CI runners):
`make test` installs it when none is found. Playwright only drives it; it downloads nothing.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urldefrag

import feedparser
import pytest
from conftest import ROOT
from playwright.sync_api import Browser, Page, sync_playwright
from render_data import BUILT_AT, DAY, copy_store, digest, hostile_papers, papers_about

from digest.config import load_config
from digest.publish import email_renderer, write_outputs
from digest.store import Store

ARTIFACTS = ROOT / "tests" / "artifacts"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = [
    "--no-sandbox",  # root in a container has no user namespaces for the sandbox
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDTHS = (375, 600)


def find_chromium() -> str:
    explicit = os.environ.get("DIGEST_CHROMIUM")
    if explicit:
        return explicit
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(f"no Chromium found (looked for {', '.join(BROWSERS)}); `make test` installs Debian's chromium")


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("www")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", root
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Playwright gives each launch a fresh, temporary --user-data-dir of its own.
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=find_chromium(), args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def published(filled_db: Path, server: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The shipped profiles' site, feeds and emails, with hostile and empty digests among them."""
    base, root = server
    work = tmp_path_factory.mktemp("build")
    store: Store = copy_store(filled_db, work)
    shipped = load_config(ROOT / "digest.toml", ROOT)
    config = replace(
        shipped,
        site_url=base + "paper-digest/",
        site=root / "paper-digest",
        feeds=work / "feeds",
        digests=work / "digests",
        outbox=work / "outbox",
    )
    papers = list(store.iter_papers())
    cl, rl, efficient, diffusion, library = config.profiles
    digests = [
        digest(cl, papers_about(papers, "continual", "incremental", limit=6)),
        digest(rl, hostile_papers(papers) + papers_about(papers, "reinforcement", limit=4)),
        digest(efficient, (), empty_reason="below-threshold", runners_up=papers_about(papers, "quantiz", limit=4)),
        digest(diffusion, (), candidates=0, empty_reason="no-new-papers"),
        digest(library, tuple(papers[:300])),
    ]
    earlier = digest(cl, papers_about(papers, "learning", limit=3), day=DAY - timedelta(days=1))
    for d in (earlier, *digests):
        store.save_digest(d, store.watermark())
    write_outputs(config, store, digests)
    render = email_renderer(config, sender=config.sender, unsubscribe_key=b"browser-test-key-0123456789")
    emails = [
        (d.profile.id, who, message)
        for d in digests
        for who in d.profile.subscribers
        if (message := render(d, who, f"<{d.profile.id}@test>")) is not None
    ]
    store.close()
    for profile_id, who, message in emails:
        part = message.get_body(("html",))
        assert part is not None
        (root / f"{profile_id}-{who.split('@')[0]}.html").write_text(part.get_content(), encoding="utf-8")
    # The email pages stand in for a mail client's view; Chromium asks the server root for an icon.
    (root / "favicon.ico").write_bytes(b"")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return {"base": base, "site": base + "paper-digest/", "root": root, "emails": emails}


def open_page(browser: Browser, url: str, width: int, scheme: str = "light") -> tuple[Page, list[str]]:
    """The page at `url`, and every console error, page error and failed load it produced."""
    page = browser.new_page(viewport={"width": width, "height": 800}, color_scheme=scheme)  # type: ignore[arg-type]
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    response = page.goto(url, wait_until="load")
    assert response is not None and response.ok, url
    return page, problems


def scroll_width(page: Page) -> tuple[int, int]:
    return page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")


@pytest.mark.parametrize("width", WIDTHS)
def test_email_fits_without_horizontal_scrolling(browser: Browser, published: dict, width: int) -> None:
    for name in ("continual-learning-ada", "llm-reasoning-rl-alan", "from-my-library-donald"):
        for scheme in ("light", "dark"):
            page, problems = open_page(browser, f"{published['base']}{name}.html", width, scheme)
            content, viewport = scroll_width(page)
            assert content <= viewport, f"{name} at {width}px scrolls sideways ({content} > {viewport})"
            assert problems == [], problems
            assert page.evaluate("document.scripts.length") == 0
            page.screenshot(path=str(ARTIFACTS / f"email-{name}-{width}-{scheme}.png"), full_page=True)
            page.close()


def test_email_dark_mode_changes_the_colours(browser: Browser, published: dict) -> None:
    colours = {}
    for scheme in ("light", "dark"):
        page, _ = open_page(browser, f"{published['base']}continual-learning-ada.html", 600, scheme)
        colours[scheme] = page.evaluate("getComputedStyle(document.querySelector('.container')).backgroundColor")
        hidden = page.evaluate("getComputedStyle(document.querySelector('.preheader')).display")
        assert hidden == "none"
        page.close()
    assert colours == {"light": "rgb(255, 255, 255)", "dark": "rgb(39, 39, 42)"}


@pytest.mark.parametrize("width", WIDTHS)
def test_site_index_fits_without_horizontal_scrolling(browser: Browser, published: dict, width: int) -> None:
    page, problems = open_page(browser, published["site"] + "index.html", width)
    content, viewport = scroll_width(page)
    assert content <= viewport, f"index at {width}px scrolls sideways ({content} > {viewport})"
    assert problems == [], problems
    titles = page.eval_on_selector_all("section.profile h2", "els => els.map(e => e.textContent.trim())")
    assert titles == [
        "Continual learning",
        "RL for LLM reasoning",
        "Efficient LLMs",
        "Diffusion and flow models",
        "Papers like the ones I saved",
    ]
    page.screenshot(path=str(ARTIFACTS / f"site-index-{width}.png"), full_page=True)
    page.close()


def test_every_link_inside_the_site_resolves(browser: Browser, published: dict) -> None:
    site = published["site"]
    queue, seen, fetched = [site + "index.html"], set(), set()
    while queue:
        url = queue.pop()
        if url in seen:
            continue
        seen.add(url)
        page, problems = open_page(browser, url, 375)
        assert problems == [], (url, problems)
        content, viewport = scroll_width(page)
        assert content <= viewport, f"{url} scrolls sideways at 375px"
        links = page.eval_on_selector_all("a[href], link[href]", "els => els.map(e => e.href)")
        page.close()
        for link in links:
            target = urldefrag(link)[0]
            if not target.startswith(published["base"]):
                assert target.startswith(("https://huggingface.co/papers", "mailto:", "data:")), (url, target)
                continue
            assert target.startswith(site), f"{url} links outside the site's path: {target}"
            if target.endswith(".html"):
                queue.append(target)
            else:
                fetched.add(target)
    assert len(seen) >= 1 + 5 + 7  # the index, five archives, seven digest pages (and the unsubscribe page)
    for target in sorted(fetched):
        response = browser.new_context().request.get(target)
        assert response.ok, target
        if target.endswith((".atom", ".rss")):
            parsed = feedparser.parse(response.body())
            assert not parsed.bozo and parsed.entries is not None, target
    assert {t.rsplit("/", 1)[1] for t in fetched} >= {"all.atom", "continual-learning.json", "feeds.opml"}


def test_feed_self_links_and_opml_resolve_on_the_server(browser: Browser, published: dict) -> None:
    context = browser.new_context()
    opml = context.request.get(published["site"] + "feeds.opml")
    assert opml.ok
    from lxml import etree

    urls = [o.get("xmlUrl") for o in etree.fromstring(opml.body()).iter("outline") if o.get("xmlUrl")]
    assert len(urls) == 6 + 2 * 5  # all papers and five profiles; then each profile's weekly and monthly feed
    for url in urls:
        response = context.request.get(url)
        assert response.ok, url
        parsed = feedparser.parse(response.body())
        assert not parsed.bozo, url
        assert any(link.rel == "self" and link.href == url for link in parsed.feed.links), url
    assert BUILT_AT.isoformat() in context.request.get(published["site"] + "feeds/continual-learning.atom").text()
