"""The static site: every profile with its feeds, empty-digest explanations, sanitised archive, OPML."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from lxml import etree
from lxml import html as lxml_html
from render_data import (
    BUILT_AT,
    DAY,
    HOSTILE_TITLE,
    SHOWN_TITLE,
    config_for,
    digest,
    format_characters_in,
    hidden_paper,
    hostile_papers,
    papers_about,
    profile,
)

from digest.models import Digest
from digest.publish import write_site
from digest.render.links import SiteLinks
from digest.render.site import render_site
from digest.store import Store

LINKS = SiteLinks("https://example.org/paper-digest/")


def site_of(store: Store) -> tuple[dict[str, bytes], dict[str, list[Digest]]]:
    """Three profiles: one with two digests, one whose latest found nothing above the threshold, one empty."""
    papers = list(store.iter_papers())
    cl = profile()
    diffusion = profile("diffusion-generation", title="Diffusion and flow models", formats=("atom", "email"))
    quiet = profile("quiet", title="Quiet <profile>", description="Nothing yet.", formats=("rss",))
    history = {
        cl.id: [
            digest(cl, hostile_papers(papers), day=DAY + timedelta(days=1), built_at=BUILT_AT + timedelta(days=1)),
            digest(cl, papers_about(papers, "continual", limit=3)),
        ],
        diffusion.id: [
            digest(
                diffusion,
                (),
                day=DAY + timedelta(days=1),
                empty_reason="below-threshold",
                runners_up=papers_about(papers, "diffusion", limit=5),
            ),
            digest(diffusion, (), candidates=0, empty_reason="no-new-papers"),
        ],
    }
    pages = render_site([cl, diffusion, quiet], history, links=LINKS, site_title="Paper Digest", sender="d@example.org")
    return pages, history


def page(pages: dict[str, bytes], path: str) -> lxml_html.HtmlElement:
    return lxml_html.fromstring(pages[path])


def test_layout(filled_store: Store) -> None:
    pages, _ = site_of(filled_store)
    assert sorted(pages) == [
        "digests/continual-learning/2025-12-31.html",
        "digests/continual-learning/2026-01-01.html",
        "digests/continual-learning/index.html",
        "digests/diffusion-generation/2025-12-31.html",
        "digests/diffusion-generation/2026-01-01.html",
        "digests/diffusion-generation/index.html",
        "digests/quiet/index.html",
        "feeds.opml",
        "index.html",
        "unsubscribe.html",
    ]


def test_index_lists_every_profile_with_its_feeds_and_autodiscovery(filled_store: Store) -> None:
    pages, _ = site_of(filled_store)
    index = page(pages, "index.html")
    sections = {s.get("id"): s for s in index.iter("section")}
    assert list(sections) == ["continual-learning", "diffusion-generation", "quiet"]
    feeds = {pid: [a.get("href") for a in s.xpath(".//p[@class='feeds']/a")] for pid, s in sections.items()}
    cadences = ("", ".weekly", ".monthly")  # each profile's daily feeds, then its roll-ups' in the same formats
    assert feeds == {
        "continual-learning": [f"feeds/continual-learning{c}.{k}" for c in cadences for k in ("atom", "rss", "json")],
        "diffusion-generation": [f"feeds/diffusion-generation{c}.atom" for c in cadences],
        "quiet": [f"feeds/quiet{c}.rss" for c in cadences],
    }
    alternates = [(link.get("type"), link.get("href")) for link in index.xpath("//head/link[@rel='alternate']")]
    assert ("application/atom+xml", "feeds/all.atom") in alternates
    assert ("application/feed+json", "feeds/continual-learning.json") in alternates
    assert ("application/rss+xml", "feeds/quiet.rss") in alternates
    assert ("application/atom+xml", "feeds/diffusion-generation.weekly.atom") in alternates
    assert ("application/rss+xml", "feeds/quiet.monthly.rss") in alternates
    assert len(alternates) == 3 + 3 * (3 + 1 + 1)
    assert (
        "Quiet &lt;profile&gt;" in pages["index.html"].decode() and "No digest yet." in sections["quiet"].text_content()
    )


def test_links_between_pages_are_relative(filled_store: Store) -> None:
    pages, _ = site_of(filled_store)
    for path, data in pages.items():
        if not path.endswith(".html"):
            continue
        for _element, _attribute, link, _pos in lxml_html.fromstring(data).iterlinks():
            if link.startswith(("https://huggingface.co/papers", "mailto:", "data:")):
                continue
            assert not re.match(r"[a-z]+:|/", link), (path, link)  # no scheme, no leading slash


def test_empty_digests_are_explained(filled_store: Store) -> None:
    pages, history = site_of(filled_store)
    section = page(pages, "index.html").xpath("//section[@id='diffusion-generation']")[0]
    text = " ".join(section.text_content().split())
    assert "nothing new scored above this profile's threshold (0.15) among 57 new papers" in text
    assert "The best 3 below it, marked as such" in text
    assert text.count("(below the threshold: score") == 3
    below = [a.text_content() for a in section.xpath(".//ul[@class='papers']/li/a")]
    assert below == [item.paper.title for item in history["diffusion-generation"][0].runners_up[:3]]
    older = page(pages, "digests/diffusion-generation/2025-12-31.html").text_content()
    assert "No new papers since the last digest" in older
    archive = " ".join(page(pages, "digests/diffusion-generation/index.html").text_content().split())
    assert "Wed 31 Dec 2025: no new papers" in archive and "Thu 1 Jan 2026: nothing above the threshold" in archive


def test_archive_pages_come_from_the_markdown_and_are_sanitised(filled_store: Store) -> None:
    pages, _ = site_of(filled_store)
    data = pages["digests/continual-learning/2026-01-01.html"].decode()
    document = lxml_html.fromstring(data)
    assert not document.xpath("//script | //img | //iframe | //*[@onerror]")
    article = document.xpath("//article")[0]
    assert article.xpath("./h1")[0].text_content() == "Continual learning — Thu 1 Jan 2026"
    titles = [h.text_content() for h in article.xpath("./h2")]
    assert titles[0] == f"1. {HOSTILE_TITLE}"
    assert all(a.get("href").startswith("https://huggingface.co/") for a in article.xpath(".//a"))
    assert all(a.get("rel") == "noopener noreferrer" for a in article.xpath(".//a"))
    assert document.xpath("//a[text()='older (Wed 31 Dec 2025)']/@href") == ["2025-12-31.html"]


def test_opml_lists_every_feed_with_absolute_addresses(filled_store: Store) -> None:
    pages, _ = site_of(filled_store)
    opml = etree.fromstring(pages["feeds.opml"])
    outlines = [(o.get("text"), o.get("xmlUrl"), o.get("htmlUrl")) for o in opml.iter("outline")]
    assert outlines == [
        ("All papers", "https://example.org/paper-digest/feeds/all.atom", "https://example.org/paper-digest/"),
        (
            "Continual learning",
            "https://example.org/paper-digest/feeds/continual-learning.atom",
            "https://example.org/paper-digest/digests/continual-learning/index.html",
        ),
        (
            "Diffusion and flow models",
            "https://example.org/paper-digest/feeds/diffusion-generation.atom",
            "https://example.org/paper-digest/digests/diffusion-generation/index.html",
        ),
        (
            "Quiet <profile>",
            "https://example.org/paper-digest/feeds/quiet.rss",
            "https://example.org/paper-digest/digests/quiet/index.html",
        ),
        *(
            outline
            for cadence in ("weekly", "monthly")
            for outline in (
                (f"{cadence.capitalize()} roll-ups", None, None),  # a folder of its own in the reader
                (
                    f"Continual learning, {cadence}",
                    f"https://example.org/paper-digest/feeds/continual-learning.{cadence}.atom",
                    "https://example.org/paper-digest/digests/continual-learning/index.html",
                ),
                (
                    f"Diffusion and flow models, {cadence}",
                    f"https://example.org/paper-digest/feeds/diffusion-generation.{cadence}.atom",
                    "https://example.org/paper-digest/digests/diffusion-generation/index.html",
                ),
                (
                    f"Quiet <profile>, {cadence}",
                    f"https://example.org/paper-digest/feeds/quiet.{cadence}.rss",
                    "https://example.org/paper-digest/digests/quiet/index.html",
                ),
            )
        ),
    ]


def test_format_characters_never_reach_a_page(filled_store: Store) -> None:
    prof = profile(title="Continual\u202e learning", description="Read\u2067 this")
    history = {prof.id: [digest(prof, (hidden_paper(filled_store),))]}
    pages = render_site([prof], history, links=LINKS, site_title="Paper\u200b Digest", sender="d@example.org")
    for path, data in pages.items():
        assert format_characters_in(data.decode("utf-8")) == [], path
    assert any(SHOWN_TITLE in page(pages, path).text_content() for path in pages if path.endswith(".html"))


def test_no_javascript_anywhere(filled_store: Store) -> None:
    pages, _ = site_of(filled_store)
    for path, data in pages.items():
        if path.endswith(".html"):
            document = lxml_html.fromstring(data)
            assert not document.xpath("//script"), path
            assert not [a for e in document.iter() for a, v in e.items() if a.startswith("on")], path


def test_write_site_is_byte_identical_on_rebuild(filled_store: Store, tmp_path: Path) -> None:
    papers = list(filled_store.iter_papers())
    prof = profile()
    config = config_for(tmp_path, prof, profile("other", title="Other"))
    filled_store.save_digest(digest(prof, tuple(papers[:3])), filled_store.watermark())
    written = write_site(config, filled_store)
    assert {p.relative_to(tmp_path).as_posix() for p in written} == {
        "site/index.html",
        "site/feeds.opml",
        "site/unsubscribe.html",
        "site/.nojekyll",
        "site/digests/continual-learning/index.html",
        "site/digests/continual-learning/2025-12-31.html",
        "site/digests/other/index.html",
    }
    mtimes = {p: p.stat().st_mtime_ns for p in written}
    assert write_site(config, filled_store) == []
    assert {p: p.stat().st_mtime_ns for p in written} == mtimes
