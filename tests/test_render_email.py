"""The digest email: golden parts, headers, size cap, hostile text, one-click unsubscribe."""

from __future__ import annotations

import email
import itertools
import re
from dataclasses import replace
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from lxml import html as lxml_html
from render_data import (
    BUILT_AT,
    HOSTILE_TITLE,
    SHOWN_TITLE,
    digest,
    format_characters_in,
    hidden_paper,
    hostile_papers,
    papers_about,
    profile,
)

from digest.config import ConfigError
from digest.models import Organization, Paper
from digest.render.email import HTML_LIMIT, render_email
from digest.render.links import SiteLinks, WebLinks
from digest.render.templates import template_environment
from digest.store import Store
from digest.unsubscribe import check_unsubscribe_token, find_subscriber, unsubscribe_key

LINKS = SiteLinks("https://example.org/paper-digest/")
KEY = b"a-test-key-of-plenty-length"
SENDER = "Paper Digest <digest@example.org>"
MESSAGE_ID = "<digest.2025-12-31.continual-learning.test@example.org>"


def render(d, *, key: bytes | None = KEY, **changes) -> EmailMessage:
    arguments = {
        "subscriber": "ada@example.org",
        "sender": SENDER,
        "message_id": MESSAGE_ID,
        "links": LINKS,
        "unsubscribe_key": key,
        **changes,
    }
    message = render_email(d, **arguments)
    assert message is not None
    return message


def parts(message: EmailMessage) -> tuple[str, str]:
    """The text and HTML parts as a receiving client sees them (after a trip through bytes)."""
    received = email.message_from_bytes(message.as_bytes(), policy=policy.default)
    assert isinstance(received, EmailMessage)
    text = received.get_body(("plain",))
    html = received.get_body(("html",))
    assert text is not None and html is not None
    # The parts travel with CRLF line ends (SMTP); compare them as text with LF.
    return text.get_content().replace("\r\n", "\n"), html.get_content().replace("\r\n", "\n")


def sent_html_part(message: EmailMessage) -> bytes:
    """The HTML part as it travels in the message: its headers and encoded body, between two boundaries."""
    raw = message.as_bytes()
    boundary = message.get_boundary()
    assert boundary is not None
    chunks = raw.split(b"\r\n--" + boundary.encode("ascii"))
    (chunk,) = [c for c in chunks if b"\r\nContent-Type: text/html" in c.split(b"\r\n\r\n", 1)[0]]
    assert chunk.startswith(b"\r\n")  # the end of the boundary line
    return chunk[2:]


def links_in(html: str) -> list[str]:
    document = lxml_html.fromstring(html)
    return [value for element in document.iter() for name, value in element.items() if name in ("href", "src")]


def seed_digest(store: Store, count: int = 4):
    papers = list(store.iter_papers())
    return digest(profile(), papers_about(papers, "continual", "incremental", limit=count))


def test_golden_parts(filled_store: Store, credited_paper: Paper, golden) -> None:
    # The seed digest's papers are credited by author count; one more is credited to an organisation.
    d = seed_digest(filled_store)
    text, html = parts(render(digest(d.profile, (*(item.paper for item in d.items), credited_paper))))
    golden("email/continual-learning.txt", text)
    golden("email/continual-learning.html", html)


def test_headers(filled_store: Store) -> None:
    message = render(seed_digest(filled_store))
    assert message["Subject"] == "4 new papers for Continual learning — Wed 31 Dec 2025"
    assert message["From"] == SENDER and message["To"] == "ada@example.org"
    assert message["Date"] == "Wed, 31 Dec 2025 07:00:12 +0100"  # the digest's built_at, with its zone
    assert message["Message-ID"] == MESSAGE_ID
    assert message["List-Id"] == "Continual learning <continual-learning.example.org>"
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    raw = message.as_bytes()
    assert b"=?utf-8?q?=3Chttps" not in raw  # List-Unsubscribe is never folded into encoded words
    assert all(len(line) <= 78 for line in raw.split(b"\r\n")[raw.split(b"\r\n").index(b"") :])  # QP bodies


def test_a_domain_outside_ascii_is_written_in_its_idna_form(filled_store: Store) -> None:
    # An encoded-word inside an address is invalid (RFC 2047 section 5); IDNA is what SMTP carries.
    message = render(seed_digest(filled_store), subscriber="jorg@bücher.example")
    assert message["To"] == "jorg@xn--bcher-kva.example"
    received = email.message_from_bytes(message.as_bytes(), policy=policy.strict)
    assert received["To"] == "jorg@xn--bcher-kva.example"
    assert b"\r\nTo: jorg@xn--bcher-kva.example\r\n" in message.as_bytes()


def test_headers_parsed_once_stay_each_messages_own(filled_store: Store) -> None:
    d = seed_digest(filled_store)
    ada, bob = render(d), render(d, subscriber="bob@example.org")
    before = bob.as_bytes()
    ada.replace_header("From", "Someone Else <else@example.org>")
    del ada["Date"]
    ada.get_payload()[0].set_param("charset", "us-ascii")
    assert bob.as_bytes() == before and bob["From"] == SENDER and bob["To"] == "bob@example.org"
    assert render(d, subscriber="bob@example.org").as_bytes() == before
    assert bob["From"] is render(d)["From"]  # the same parsed header, shared


def test_one_click_unsubscribe_carries_a_signed_token(filled_store: Store) -> None:
    message = render(seed_digest(filled_store))
    header = message["List-Unsubscribe"]
    https, mailto = re.findall(r"<([^>]+)>", header)
    assert https.startswith("https://example.org/paper-digest/unsubscribe.html?list=continual-learning&token=")
    token = https.rsplit("token=", 1)[1]
    assert check_unsubscribe_token(KEY, "continual-learning", "ada@example.org", token)
    assert not check_unsubscribe_token(KEY, "continual-learning", "eve@example.org", token)
    assert not check_unsubscribe_token(b"another-key-entirely!", "continual-learning", "ada@example.org", token)
    assert (
        find_subscriber(KEY, "continual-learning", ["bob@example.org", "ada@example.org"], token) == "ada@example.org"
    )
    assert "ada@example.org" not in https  # the address never travels in the URL
    assert mailto == "mailto:digest@example.org?subject=unsubscribe%20continual-learning"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert https in parts(message)[1].replace("&amp;", "&")  # the footer link is the same signed URL


def test_without_a_key_there_is_no_one_click(filled_store: Store) -> None:
    message = render(seed_digest(filled_store), key=None)
    assert message["List-Unsubscribe-Post"] is None
    first, second = re.findall(r"<([^>]+)>", message["List-Unsubscribe"])
    assert first.startswith("mailto:") and second.endswith("unsubscribe.html?list=continual-learning")
    http_only = render(seed_digest(filled_store), links=SiteLinks("http://127.0.0.1:8000/"))
    assert http_only["List-Unsubscribe-Post"] is None  # RFC 8058 needs an https URI


def test_key_comes_from_the_environment() -> None:
    assert unsubscribe_key({}) is None
    assert unsubscribe_key({"DIGEST_UNSUBSCRIBE_KEY": "k" * 32}) == b"k" * 32
    with pytest.raises(ConfigError, match="DIGEST_UNSUBSCRIBE_KEY: too short"):
        unsubscribe_key({"DIGEST_UNSUBSCRIBE_KEY": "short"})


def test_html_follows_the_mail_rules(filled_store: Store) -> None:
    text, html = parts(render(seed_digest(filled_store)))
    assert all(re.match(r"https?://", link) for link in links_in(html))
    assert "<script" not in html and "<link" not in html and "@import" not in html and "url(" not in html
    assert "@media (prefers-color-scheme: dark)" in html and "max-width: 620px" in html  # kept by css-inline
    assert 'class="preheader"' in html and "display: none" in html
    assert 'style="' in html and "font-size: 17px" in html  # CSS inlined
    widths = [int(w) for w in re.findall(r'\bwidth="(\d+)"', html)]
    assert widths and max(widths) <= 600
    for expected in ("Web version", "Feed", "Unsubscribe", "You get this email because ada@example.org"):
        assert expected in html
    assert "<" not in text.replace("<https", "")  # the text part carries no markup
    assert "Web version: https://example.org/paper-digest/digests/continual-learning/2025-12-31.html" in text
    assert "Unsubscribe: https://example.org/paper-digest/unsubscribe.html?list=continual-learning&token=" in text


def test_paper_links(filled_store: Store) -> None:
    papers = list(filled_store.iter_papers())
    known = replace(papers[0], arxiv_id="2401.01234")
    odd = replace(papers[1], arxiv_id="javascript:alert(1)")
    _, html = parts(render(digest(profile(), (known, odd))))
    assert 'href="https://huggingface.co/papers/2401.01234"' in html
    assert "javascript" not in html
    assert 'href="https://huggingface.co/papers?q=' in html


def test_organisation_and_upvotes_are_credited(filled_store: Store, credited_paper: Paper) -> None:
    by_authors = seed_digest(filled_store).items[0].paper
    text, html = parts(render(digest(profile(), (credited_paper, by_authors))))
    document = lxml_html.fromstring(html)
    meta = [element.text_content() for element in document.find_class("meta")]
    assert meta == ["OpenBMB · 4 Sep 2024 · 2 upvotes", "6 authors · 8 Jul 2024"]
    assert "\n   OpenBMB · 4 Sep 2024 · 2 upvotes\n" in text
    assert "\n   6 authors · 8 Jul 2024\n" in text


def test_three_hundred_papers_stay_under_the_limit(filled_store: Store) -> None:
    papers = list(filled_store.iter_papers())[:300]
    assert len(papers) == 300
    message = render(digest(profile(), tuple(papers)))
    text, html = parts(message)
    # The limit is on the part as sent (quoted-printable, CRLF): some 8 % more than the HTML itself.
    size = len(sent_html_part(message))
    assert len(html.encode("utf-8")) < size < HTML_LIMIT
    (part,) = [p for p in message.walk() if p.get_content_type() == "text/html"]
    assert part["Content-Transfer-Encoding"] == "quoted-printable"  # mostly English: smaller than base64
    shown = html.count('class="paper"')
    assert 10 < shown < 300
    assert f"…and {300 - shown} more on the web</a>" in html
    assert html.rstrip().endswith("</html>")  # the list was cut, not the markup
    document = lxml_html.fromstring(html)
    assert len(document.find_class("paper")) == shown and document.find_class("footer")
    assert f"...and {300 - shown} more on the web: https://example.org/paper-digest/digests/" in text
    assert message["Subject"].startswith("300 new papers for")
    # one more paper would not have fitted
    bigger = render_email(
        digest(profile(), tuple(papers[: shown + 1])),
        subscriber="ada@example.org",
        sender=SENDER,
        message_id=MESSAGE_ID,
        links=LINKS,
        unsubscribe_key=KEY,
        html_limit=size + 1,
    )
    assert bigger is not None and parts(bigger)[1].count('class="paper"') == shown
    # and with one more paper the part would have gone over the limit: the list was cut no shorter than needed
    one_more = render(digest(profile(), tuple(papers[: shown + 1])), html_limit=2 * HTML_LIMIT)
    assert len(sent_html_part(one_more)) >= HTML_LIMIT


def test_a_non_ascii_hostile_day_stays_under_the_limit_once_encoded(filled_store: Store) -> None:
    # Quoted-printable would write each non-ASCII byte as three ('=E5'), and escaping makes '<' four ('&lt;').
    papers = tuple(
        replace(
            paper,
            title=f"継続学習 {i}: «Ünïcödé» <b>&</b> — {paper.title}",
            abstract="忘却を抑えながら新しい課題を学ぶ手法を提案する。" * 30 + paper.abstract,
            organization=Organization(f"lab{i}", '東京大学 <Ürban> & "Lab"'),
        )
        for i, paper in enumerate(list(filled_store.iter_papers())[:300])
    )
    message = render(digest(profile(), papers))
    text, html = parts(message)
    size = len(sent_html_part(message))
    # Base64 (four bytes for three) is chosen over quoted-printable (three for one) here.
    (part,) = [p for p in message.walk() if p.get_content_type() == "text/html"]
    assert part["Content-Transfer-Encoding"] == "base64"
    assert size < HTML_LIMIT and len(html.encode("utf-8")) < 0.8 * size
    shown = html.count('class="paper"')
    assert 20 < shown < 300  # quoted-printable fitted 16
    assert f"…and {300 - shown} more on the web</a>" in html and html.rstrip().endswith("</html>")
    assert '東京大学 &lt;Ürban&gt; &amp; "Lab"' in html and "<b>" not in html
    assert f"...and {300 - shown} more on the web:" in text


def test_a_long_subject_outside_ascii_is_written_in_encoded_words_of_at_most_75_characters(
    filled_store: Store,
) -> None:
    # RFC 2047: an encoded word is at most 75 characters; the headers' long lines (998) had
    # made a long Cyrillic or CJK title one word of a few hundred.
    papers = list(filled_store.iter_papers())[:3]
    for title in ("Непрерывное обучение и дистилляция знаний в больших языковых моделях", "長い題名 " * 30):
        message = render(digest(profile(title=title), papers))
        lines = message.as_bytes().split(b"\r\n\r\n")[0].decode("ascii").split("\r\n")
        start = next(n for n, line in enumerate(lines) if line.startswith("Subject:"))
        subject = [lines[start], *itertools.takewhile(lambda line: line.startswith(" "), lines[start + 1 :])]
        words = re.findall(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=", " ".join(subject))
        assert len(words) > 2 and max(map(len, words)) <= 75 and max(map(len, subject)) <= 78
        received = email.message_from_bytes(message.as_bytes(), policy=policy.default)
        assert received["Subject"] == message["Subject"] and title.split()[0] in received["Subject"]


def test_hostile_text_is_escaped_and_the_subject_is_clean(filled_store: Store) -> None:
    papers = hostile_papers(list(filled_store.iter_papers()))
    prof = profile(title='Evil\r\nBcc: eve@example.org\x00 <b>"title"</b>')
    message = render(digest(prof, papers))
    assert "\n" not in message["Subject"] and "\r" not in message["Subject"] and "\x00" not in message["Subject"]
    assert message["Subject"].startswith("3 new papers for Evil Bcc: eve@example.org <b>")
    assert message["Bcc"] is None
    raw = message.as_bytes()
    assert b"\r\nBcc:" not in raw
    received = email.message_from_bytes(raw, policy=policy.default)
    assert received["Bcc"] is None and received["Subject"] == message["Subject"]
    text, html = parts(message)
    assert "<script" not in html
    assert html.count('&lt;script&gt;alert(1)&lt;/script&gt; &amp; ]]&gt; "x"') == 2  # preheader and title
    assert "<img" not in html and "onerror=alert" in html  # the attack is shown as text
    assert all(c not in html + text for c in "\x01\x07\x0b\x0c\x1b\x7f")
    assert HOSTILE_TITLE in text
    lxml_html.fromstring(html)


# base64 of "x\r\nReply-To: eve@example.org": decoded by the email package, written out raw by
# Python before 3.11.10 and 3.12.5 (CVE-2024-6923).
ENCODED_INJECTION = "=?utf-8?b?eA0KUmVwbHktVG86IGV2ZUBleGFtcGxlLm9yZw==?="


def assert_no_injected_header(message: EmailMessage) -> None:
    raw = message.as_bytes()
    received = email.message_from_bytes(raw, policy=policy.strict)
    assert received["Reply-To"] is None and b"\r\nReply-To:" not in raw
    assert [name for name, _ in received.items()].count("Subject") == 1
    for name, value in message.items():
        assert "\r" not in str(value) and "\n" not in str(value), name


def test_an_encoded_word_in_a_title_is_text_and_never_a_header(filled_store: Store) -> None:
    papers = hostile_papers(list(filled_store.iter_papers()))
    message = render(digest(profile(title=f"Evil {ENCODED_INJECTION}"), papers))
    assert_no_injected_header(message)
    # The title reads as written (its "=?" kept apart so that no mail client decodes it).
    assert "Evil = ?utf-8?b?eA0KUmVwbHktVG86IGV2ZUBleGFtcGxlLm9yZw== ?=" in message["Subject"]
    assert message["List-Id"].startswith("Evil = ?utf-8?b?")
    # An address keeps its "=?" (valid before the "@"): a line break its name decodes to is refused.
    with pytest.raises(ValueError, match=r"CR or LF|line break"):
        render(seed_digest(filled_store), sender=f'"{ENCODED_INJECTION}" <digest@example.org>')
    assert render(seed_digest(filled_store), subscriber="foo=?bar@example.org")["To"] == "foo=?bar@example.org"


def test_format_characters_never_reach_an_email(filled_store: Store) -> None:
    message = render(digest(profile(title="Continual\u202e learning\u200b"), (hidden_paper(filled_store),)))
    text, html = parts(message)
    assert format_characters_in(text) == [] and format_characters_in(html) == []
    assert format_characters_in(str(message["Subject"])) == [] and "Continual learning" in message["Subject"]
    assert SHOWN_TITLE in text and SHOWN_TITLE in html


def test_a_reader_is_offered_to_mute_an_organisation_by_its_cleaned_name(filled_store: Store) -> None:
    # The "Mute ..." link named the organisation as the listing wrote it: controls, a bidi
    # override and a terminal escape reached the email (and broke the reader's private feed).
    paper = hidden_paper(filled_store)
    links = WebLinks("https://digest.example.org/", KEY)
    message = render(digest(profile(), (paper,)), reader=links.reader("continual-learning", "r1", (paper,)))
    text, html = parts(message)
    assert "Mute Evil Org" in text and "Mute Evil Org" in html
    assert format_characters_in(text) == [] and format_characters_in(html) == []
    assert links.paper_feedback("continual-learning", "r1", paper).organization == "Evil Org"


def test_an_empty_digest_gives_no_email() -> None:
    d = digest(profile(), (), empty_reason="below-threshold")
    assert (
        render_email(
            d, subscriber="a@example.org", sender=SENDER, message_id=MESSAGE_ID, links=LINKS, unsubscribe_key=KEY
        )
        is None
    )


def test_bad_message_id_is_refused(filled_store: Store) -> None:
    with pytest.raises(ValueError, match="Message-ID"):
        render_email(
            seed_digest(filled_store),
            subscriber="ada@example.org",
            sender=SENDER,
            message_id="no-brackets\r\nX: y",
            links=LINKS,
            unsubscribe_key=KEY,
        )


def test_same_input_same_bytes(filled_store: Store) -> None:
    d = seed_digest(filled_store)
    assert render(d).as_bytes() == render(d).as_bytes()


def test_a_user_template_folder_overrides_the_builtin(filled_store: Store, tmp_path: Path) -> None:
    (tmp_path / "email.txt").write_text("Custom: {{ c.subject }} ({{ papers|length }})\n", encoding="utf-8")
    env = template_environment(tmp_path)
    text, html = parts(render(seed_digest(filled_store), env=env))
    assert text == "Custom: 4 new papers for Continual learning — Wed 31 Dec 2025 (4)\n"
    assert 'class="paper"' in html  # the HTML still comes from the built-in template


def test_undefined_template_variables_are_errors(tmp_path: Path, filled_store: Store) -> None:
    (tmp_path / "email.txt").write_text("{{ c.nonexistent }}\n", encoding="utf-8")
    with pytest.raises(Exception, match="nonexistent"):
        render(seed_digest(filled_store), env=template_environment(tmp_path))


def test_date_defaults_to_built_at_and_can_be_given(filled_store: Store) -> None:
    d = seed_digest(filled_store)
    assert render(d)["Date"] == "Wed, 31 Dec 2025 07:00:12 +0100"
    later = BUILT_AT.replace(hour=9)
    assert render(d, date=later)["Date"] == "Wed, 31 Dec 2025 09:00:12 +0100"


@pytest.mark.parametrize(
    "call",
    [
        "{{ s|wordwrap(72, break_long_words=False, break_on_hyphens=False) }}",
        "{{ s|wordwrap(20) }}",
        "{{ s|wordwrap(10, wrapstring='<br>') }}",
        "{{ s|wordwrap }}",
    ],
)
def test_the_remembered_wordwrap_is_jinjas(filled_store: Store, call: str) -> None:
    from jinja2.filters import do_wordwrap

    plain = template_environment().overlay()
    plain.filters = {**plain.filters, "wordwrap": do_wordwrap}
    ours, jinjas = template_environment().from_string(call), plain.from_string(call)
    texts = [p.abstract for p in list(filled_store.iter_papers())[:40]]
    texts += ["", "a\nb\n\nc", "a-very-long-hyphenated-word-that-goes-on " * 5, "x" * 200, "tab\there  two  spaces"]
    for text in texts * 2:  # the second time from memory
        assert ours.render(s=text) == jinjas.render(s=text)


def test_the_remembered_wordwrap_keeps_markup_apart_from_text() -> None:
    from jinja2.filters import do_wordwrap
    from markupsafe import Markup

    plain = template_environment().overlay()
    plain.filters = {**plain.filters, "wordwrap": do_wordwrap}
    call = "{{ s|wordwrap(10, wrapstring=w) }}"
    ours, jinjas = template_environment().from_string(call), plain.from_string(call)
    text = "a <b> c d and some more words to wrap"
    for w in ("<br>", Markup("<br>"), "<br>"):  # a str and Markup of the same text, both ways round
        for s in (text, Markup(text)):
            assert ours.render(s=s, w=w) == jinjas.render(s=s, w=w)
    with pytest.raises(AttributeError):
        ours.render(s=5, w="\n")  # as Jinja: no number is wrapped
