"""Roll-ups rendered: golden email, feed and page; headers, stable entry ids, hostile text, labels."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from lxml import html as lxml_html
from render_data import HOSTILE_TITLE, format_characters_in, hidden_paper, hostile_papers, papers_about, profile, scored
from test_render_email import ENCODED_INJECTION, KEY, LINKS, SENDER, assert_no_injected_header, links_in, parts
from test_render_feeds import assert_plausible_dates, assert_valid_atom, read

from digest.models import Paper, Rollup
from digest.periods import parse_period
from digest.render.email import render_rollup_email
from digest.render.rollups import format_span, period_label, render_rollup_feeds, render_rollup_markdown
from digest.render.site import render_site
from digest.store import Store
from digest.unsubscribe import unsubscribe_token

BERLIN = ZoneInfo("Europe/Berlin")
BUILT_AT = datetime(2026, 1, 5, 7, 0, 12, tzinfo=BERLIN)
MESSAGE_ID = "<rollup.2026-W01.continual-learning.test@example.org>"


def week_rollup(store: Store, *, key: str = "2026-W01", built_at: datetime = BUILT_AT, count: int = 3) -> Rollup:
    """A week's roll-up of real seed papers: `count` in full, two more by title."""
    papers = papers_about(list(store.iter_papers()), "continual", "incremental", limit=count + 2)
    return Rollup(
        profile=profile(),
        period=parse_period(key),
        items=scored(papers[:count]),
        also=scored(papers[count:], top=0.3),
        built_at=built_at,
        considered=57,
        above=count + 2,
    )


def with_credited(rollup: Rollup, credited: Paper) -> Rollup:
    """The roll-up with one more paper in full, credited to an organisation, with upvotes."""
    from dataclasses import replace

    return replace(rollup, items=scored((*(i.paper for i in rollup.items), credited)), above=rollup.above + 1)


def render(rollup: Rollup, **changes: object):
    arguments = {
        "subscriber": "ada@example.org",
        "sender": SENDER,
        "message_id": MESSAGE_ID,
        "links": LINKS,
        "unsubscribe_key": KEY,
        **changes,
    }
    message = render_rollup_email(rollup, **arguments)  # type: ignore[arg-type]
    assert message is not None
    return message


def test_golden_rollup_email(filled_store: Store, credited_paper: Paper, golden) -> None:
    text, html = parts(render(with_credited(week_rollup(filled_store), credited_paper)))
    golden("email/rollup-week.txt", text)
    golden("email/rollup-week.html", html)


def test_a_token_made_beforehand_gives_the_message_the_key_gives(filled_store: Store) -> None:
    # What a worker renders (it is given the token, never the key) is the coordinator's message.
    rollup = week_rollup(filled_store)
    token = unsubscribe_token(KEY, rollup.profile.id, "ada@example.org")
    with_key, with_token = render(rollup), render(rollup, unsubscribe_key=None, unsubscribe_token=token)
    assert with_token.as_bytes() == with_key.as_bytes()
    assert with_token["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert render(rollup, unsubscribe_key=None)["List-Unsubscribe-Post"] is None


def test_rollup_email_headers_and_links(filled_store: Store) -> None:
    message = render(week_rollup(filled_store))
    assert message["Subject"] == "Week 1: 3 papers for Continual learning — 29 Dec 2025 – 4 Jan 2026"
    assert message["Date"] == "Mon, 05 Jan 2026 07:00:12 +0100"  # the roll-up's built_at, with its zone
    assert message["Message-ID"] == MESSAGE_ID and message["To"] == "ada@example.org"
    assert message["List-Id"] == "Continual learning <continual-learning.example.org>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click" and "token=" in message["List-Unsubscribe"]
    text, html = parts(message)
    assert "57 papers considered, 5 above your threshold (0.15)." in text and "Also this week:" in text
    links = links_in(html)
    assert "https://example.org/paper-digest/digests/continual-learning/2026-W01.html" in links  # its page
    assert "https://example.org/paper-digest/feeds/continual-learning.weekly.atom" in links  # its feed
    assert all(link.startswith(("https://", "mailto:")) for link in links), links


def test_a_month_and_what_a_reader_missed_are_worded_for_what_they_are(filled_store: Store) -> None:
    month = week_rollup(filled_store, key="2025-12")
    assert render(month)["Subject"] == "December 2025: 3 papers for Continual learning"
    missed = week_rollup(filled_store, key="2025-12-29--2026-01-02")
    message = render(missed)
    assert message["Subject"] == "What you missed: 3 papers for Continual learning — 29 Dec 2025 – 2 Jan 2026"
    text, html = parts(message)
    assert "Also in those days:" in text and "What you missed · 29 Dec 2025 – 2 Jan 2026" in html
    # Not a page of the site: the web version is the profile's archive, the feed its daily one.
    assert "https://example.org/paper-digest/digests/continual-learning/index.html" in links_in(html)
    assert "https://example.org/paper-digest/feeds/continual-learning.atom" in links_in(html)


def test_a_rollup_showing_no_paper_gives_no_email(filled_store: Store) -> None:
    from dataclasses import replace

    empty = replace(week_rollup(filled_store), items=(), also=())
    assert (
        render_rollup_email(
            empty, subscriber="a@example.org", sender=SENDER, message_id=MESSAGE_ID, links=LINKS, unsubscribe_key=None
        )
        is None
    )


@pytest.mark.parametrize(
    ("first", "last", "span"),
    [
        (date(2025, 12, 22), date(2025, 12, 28), "22–28 Dec 2025"),
        (date(2025, 9, 29), date(2025, 10, 5), "29 Sep – 5 Oct 2025"),
        (date(2025, 12, 29), date(2026, 1, 4), "29 Dec 2025 – 4 Jan 2026"),
        (date(2026, 1, 2), date(2026, 1, 2), "Fri 2 Jan 2026"),
    ],
)
def test_spans_are_written_as_people_write_them(first: date, last: date, span: str) -> None:
    assert format_span(first, last) == span


def test_labels_of_periods() -> None:
    assert period_label(parse_period("2026-W01")) == "Week 1 of 2026"
    assert period_label(parse_period("2025-12")) == "December 2025"
    assert period_label(parse_period("2025-12-29--2026-01-02")) == "What you missed"


# -- feeds per cadence ---------------------------------------------------------------------------


def weekly_feeds(store: Store, credited: Paper) -> dict[str, bytes]:
    newer = with_credited(week_rollup(store), credited)
    older = week_rollup(store, key="2025-W52", built_at=BUILT_AT - timedelta(days=7), count=2)
    empty = Rollup(profile(), parse_period("2025-W51"), (), (), BUILT_AT - timedelta(days=14), 12, 0)
    return render_rollup_feeds(
        profile(), parse_period("2026-W01").kind, [newer, older, empty], links=LINKS, site_title="Paper Digest"
    )


def test_golden_rollup_feeds(filled_store: Store, credited_paper: Paper, golden) -> None:
    for kind, data in weekly_feeds(filled_store, credited_paper).items():
        golden(f"feeds/continual-learning.weekly.{kind}", data)


def test_rollup_feeds_hold_one_entry_per_rollup_with_stable_ids(filled_store: Store, credited_paper: Paper) -> None:
    feeds = weekly_feeds(filled_store, credited_paper)
    assert_valid_atom(feeds["atom"])
    for kind, data in feeds.items():
        parsed = read(kind, data)
        assert not parsed.get("bozo"), kind
        # The empty week adds no entry; ids come from the profile and the period only.
        assert [e.id for e in parsed.entries] == [
            "urn:paper-digest:continual-learning:week:2026-W01",
            "urn:paper-digest:continual-learning:week:2025-W52",
        ], kind
        assert parsed.entries[0].link == "https://example.org/paper-digest/digests/continual-learning/2026-W01.html"
        assert parsed.entries[0].title == "Week 1 of 2026: 4 papers for Continual learning", kind
        if kind != "json":
            assert_plausible_dates(kind, data)
    atom = read("atom", feeds["atom"])
    assert atom.feed.title == "Continual learning, weekly · Paper Digest"
    assert any(
        link.rel == "self" and link.href.endswith("/feeds/continual-learning.weekly.atom") for link in atom.feed.links
    )
    assert atom.entries[0].published == "2026-01-05T07:00:12+01:00"
    content = atom.entries[0].content[0].value
    assert "<p><strong>Also this week:</strong></p>" in content and "<p>OpenBMB · 4 Sep 2024</p>" in content
    assert "upvote" not in content  # they change with every listing: the entry would change under its date


def test_hostile_text_in_a_rollup_is_escaped_everywhere(filled_store: Store) -> None:
    from dataclasses import replace

    hostile = replace(week_rollup(filled_store), items=scored(hostile_papers(list(filled_store.iter_papers()))))
    hidden = replace(hostile, also=scored((hidden_paper(filled_store),)))
    _, html = parts(render(hidden))
    assert HOSTILE_TITLE not in html and "<script>" not in html and format_characters_in(html) == []
    feeds = render_rollup_feeds(profile(), hidden.period.kind, [hidden], links=LINKS, site_title="Paper Digest")
    for kind, data in feeds.items():
        assert (
            not read(kind, data).get("bozo") and b"<script>" not in data and format_characters_in(data.decode()) == []
        )
    markdown = render_rollup_markdown(hidden)
    assert "<script>" not in markdown and format_characters_in(markdown) == []


def test_an_encoded_word_in_a_title_never_becomes_a_header_of_a_rollup(filled_store: Store) -> None:
    from dataclasses import replace

    rollup = week_rollup(filled_store)
    hostile = replace(rollup, profile=replace(rollup.profile, title=f"Evil {ENCODED_INJECTION}"))
    assert_no_injected_header(render(hostile))


# -- pages ---------------------------------------------------------------------------------------


def test_golden_rollup_page_and_the_archive_by_month_and_week(filled_store: Store, golden) -> None:
    week, older = week_rollup(filled_store), week_rollup(filled_store, key="2025-W52", count=2)
    month = week_rollup(filled_store, key="2025-12", count=4)
    prof = week.profile
    pages = render_site(
        [prof],
        {},
        links=LINKS,
        site_title="Paper Digest",
        sender="d@example.org",
        rollups={prof.id: [month, week, older]},
    )
    golden("site/rollup-week.html", pages["digests/continual-learning/2026-W01.html"])
    golden("markdown/rollup-week.md", render_rollup_markdown(week))
    page = lxml_html.fromstring(pages["digests/continual-learning/2026-W01.html"])
    assert [a.get("href") for a in page.xpath("//main/p[@class='muted']/a")] == ["index.html", "2025-W52.html"]
    alternates = [link.get("href") for link in page.xpath("//head/link[@rel='alternate']")]
    assert "../../feeds/continual-learning.weekly.atom" in alternates
    assert "../../feeds/continual-learning.monthly.json" in alternates
    archive = lxml_html.fromstring(pages["digests/continual-learning/index.html"])
    headings = [" ".join(h.text_content().split()) for h in archive.xpath("//main/h3 | //main/h4")]
    # 2026-W01 straddles the year, but has no digest: it is listed under the month of its Thursday.
    assert headings == [
        "January 2026",
        "Week 1 of 2026 (29 Dec 2025 – 4 Jan 2026)",
        "December 2025",
        "Week 52 of 2025 (22–28 Dec 2025)",
    ]
    rollup_links = [a.get("href") for a in archive.xpath("//main/p[@class='muted']/a")]
    assert rollup_links == ["2026-W01.html", "2025-12.html", "2025-W52.html"]
