"""A digest as one subscriber's email: multipart/alternative, plain text and inlined HTML.

Pure: the digest, the addresses, the Message-ID and the signing key come in; an
`email.message.EmailMessage` comes out (nothing is sent or written here). An empty
digest gives no email: `render_email` returns None and the caller sends nothing.

The HTML part is built from `templates/email.html` (autoescaped), its CSS inlined by
css-inline with `@media` rules kept (dark mode, phones). The HTML part stays under
`HTML_LIMIT` bytes as it travels, encoded, with its headers, however many papers a day
brings (Gmail clips a message at about 102 KB). Quoted-printable makes English HTML
about 8 % bigger but writes each non-ASCII byte as three, so text mostly outside ASCII
goes as base64 (a third bigger). When the full list is too big, the list is cut, never
the markup, and the email says how many more papers the web version has. Every link in
it is absolute http(s).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.header import Header
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import SMTP, Policy
from email.utils import format_datetime, parseaddr
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlencode

import css_inline
from jinja2 import Environment

from digest.formats import FormatKind, chosen
from digest.models import Digest, Rollup
from digest.periods import PeriodKind
from digest.profiles import mail_address
from digest.readers import is_owner
from digest.render.links import UNSUBSCRIBE, PaperFeedback, ReaderLinks, SiteLinks, rollup_feed_name
from digest.render.rollups import RollupView, format_span, period_label, rollup_view
from digest.render.templates import template_environment
from digest.render.text import clip, format_day, is_http_url, one_line, papers_count
from digest.render.views import PaperView, paper_view
from digest.unsubscribe import unsubscribe_token

# The HTML part's size in the message (its headers and its encoded body, CRLF line ends),
# not the size of the decoded HTML.
HTML_LIMIT = 100_000
# Headers are written with RFC 5322's hard limit of 998 characters a line: at the default 78,
# the email package folds the long List-Unsubscribe URL into RFC 2047 encoded words, which
# mail clients cannot parse. Bodies are encoded with lines of at most 76 characters, as
# quoted-printable requires (RFC 2045; the email package would otherwise use 78).


class _RememberedHeaders(HeaderRegistry):
    """The email package's headers, the same parsed once per value: each message and part
    sets Content-Type, Content-Transfer-Encoding, MIME-Version, From and Date as the last
    did, and parsing headers was a third of making a message (bench/RESULTS.md). A header
    is an immutable string, so one may stand in many messages."""

    def __call__(self, name: str, value: Any) -> BaseHeader:
        if type(value) is str:
            # Every value set here is meant as it reads. The email package decodes an RFC 2047
            # encoded-word ("=?utf-8?b?...?=") in it, and Python before 3.11.10 and 3.12.5
            # wrote a line break so decoded out raw (CVE-2024-6923): a profile title could add
            # headers. "= ?" is never decoded. An address keeps its "=?" (valid before the "@";
            # rewritten, mail went elsewhere): a line break in its decoded name is refused below.
            text = value if name.lower() in _ADDRESS_HEADERS else value.replace("=?", "= ?")
            header = _parsed_header(name, text)
            if "\r" in header or "\n" in header:
                raise ValueError(f"a line break in the {name} header: {value!r}")
            return header
        return super().__call__(name, value)

    @lru_cache(maxsize=64)  # noqa: B019 (one registry, kept for the process's life)
    def __getitem__(self, name: str) -> type[BaseHeader]:
        """The class of `name`'s headers: made once, where the email package makes one per
        header; the Subject's folded as `_fold_subject` says."""
        made = super().__getitem__(name)
        if name.lower() != "subject":
            return made
        return type(made.__name__, (made,), {"fold": _fold_subject})


def _fold_subject(header: BaseHeader, *, policy: Policy) -> str:
    """The Subject as written: as the email package writes it, unless that makes an RFC 2047
    encoded word longer than the 75 characters the RFC allows.

    The messages' headers have lines of up to 998 characters (`POLICY`), and the email
    package sizes encoded words by the line: a long title outside ASCII became one word of
    a few hundred characters, which some readers show undecoded. Folding at 76 instead
    doubles a space where it breaks the line next to an encoded word (CPython's folder), so
    such a Subject is written whole as encoded words of at most 75 characters, which
    readers decode to exactly the text (the space between two encoded words is not text)."""
    folded = BaseHeader.fold(header, policy=policy)
    if all(len(word) <= 75 for word in _ENCODED_WORD.findall(folded)):
        return folded
    words = Header(str(header), "utf-8", maxlinelen=76, header_name=header.name).encode(linesep=policy.linesep)
    return f"{header.name}: {words}{policy.linesep}"


_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


_ADDRESS_HEADERS = frozenset({"from", "to", "cc", "bcc", "reply-to", "sender"})
_HEADERS = _RememberedHeaders()


@lru_cache(maxsize=512)
def _parsed_header(name: str, value: str) -> BaseHeader:
    return HeaderRegistry.__call__(_HEADERS, name, value)


POLICY = SMTP.clone(max_line_length=998, header_factory=_HEADERS)
_BODY_POLICY = SMTP.clone(max_line_length=76, header_factory=_HEADERS)
_INLINER = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)
_MESSAGE_ID = re.compile(r"<[^<>\s@]+@[^<>\s@]+>")
_LIST_ID_PHRASE = re.compile(r'[<>"()\\,;:@\[\]]')


@dataclass(frozen=True, slots=True)
class _Context:
    """Everything the two templates share except the list of papers."""

    subject: str
    profile_title: str
    profile_description: str
    day: str
    total: int
    subscriber: str
    site_title: str
    web_url: str
    feed_url: str | None
    site_url: str
    unsubscribe_url: str
    preferences_url: str | None = None  # the reader's preferences on the web side, when there is one


def email_subject(digest: Digest) -> str:
    """'7 new papers for Continual learning — Wed 31 Dec 2025': one clean line."""
    title = clip(one_line(digest.profile.title), 80)
    return f"{papers_count(len(digest.items))} for {title} — {format_day(digest.date)}"


def render_email(
    digest: Digest,
    *,
    subscriber: str,
    sender: str,
    message_id: str,
    links: SiteLinks,
    unsubscribe_key: bytes | None,
    site_title: str = "Paper Digest",
    date: datetime | None = None,
    env: Environment | None = None,
    html_limit: int = HTML_LIMIT,
    reader: ReaderLinks | None = None,
    unsubscribe_token: str | None = None,
) -> EmailMessage | None:
    """The digest as an email to `subscriber`, or None when the digest is empty (send nothing).

    `message_id` ('<...@...>') comes from the caller's delivery ledger, so a resend reuses
    it. `date` defaults to the digest's `built_at`. With `unsubscribe_key` (see
    `digest.unsubscribe`) the message carries a signed one-click unsubscribe link (RFC 8058);
    without it, only the mailto: and the site's unsubscribe page. With `reader` (the
    subscriber's links on the web side), the unsubscribe link is the web side's one-click
    address, each paper carries "more like this", "less like this" and "mute" links, and
    the footer links to the subscriber's preferences.
    `unsubscribe_token` is that link's token made beforehand (`unsubscribe.unsubscribe_token`),
    for a renderer that is not given the key (a worker process): the same message as with the key.
    """
    if not digest.items:
        return None
    if not _MESSAGE_ID.fullmatch(message_id):
        raise ValueError(f"not a Message-ID like '<id@host>': {message_id!r}")
    env = env or template_environment()
    context = _context(digest, subscriber, links, unsubscribe_key, site_title, reader, unsubscribe_token)
    mine = digest.own or is_owner(digest.profile, subscriber)
    papers = [paper_view(item, env, mine=mine) for item in digest.items]
    feedback = dict(reader.papers) if reader is not None else {}
    html, html_part, shown = _fit_html(env, context, papers, html_limit, feedback)
    text = env.get_template("email.txt").render(
        c=context, papers=papers[:shown], more=len(papers) - shown, feedback=feedback
    )
    signed = unsubscribe_key is not None or unsubscribe_token is not None
    return _message(
        context,
        sender=sender,
        subscriber=subscriber,
        sent=date or digest.built_at,
        message_id=message_id,
        list_id=_list_id(digest, links),
        mailto=_mailto(sender, digest.profile.id),
        one_click=reader is not None or (signed and links.https),
        body=(text, html, html_part),
    )


def _message(
    context: _Context | _RollupContext,
    *,
    sender: str,
    subscriber: str,
    sent: datetime,
    message_id: str,
    list_id: str,
    mailto: str,
    one_click: bool,
    body: tuple[str, str, EmailMessage],
) -> EmailMessage:
    """The email around its rendered parts: headers, the plain text, the measured HTML part.

    `one_click`: the unsubscribe link takes RFC 8058's POST (the web side, whose address is
    https or this machine's; or a signed link on an https site). Without it one-click does
    not apply, and mail and the information page remain."""
    text, html, html_part = body
    message = EmailMessage(policy=_BODY_POLICY)
    message["Subject"] = context.subject
    message["From"] = sender
    message["To"] = mail_address(subscriber)
    message["Date"] = format_datetime(sent)
    message["Message-ID"] = message_id
    message["List-Id"] = list_id
    if one_click:
        message["List-Unsubscribe"] = f"<{context.unsubscribe_url}>, <{mailto}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    else:
        message["List-Unsubscribe"] = f"<{mailto}>, <{context.unsubscribe_url}>"
    message.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.make_alternative()
    message.attach(html_part)  # what add_alternative would make, already encoded and measured by _fit_html
    message.set_boundary(_boundary(message_id, text, html))
    message.policy = POLICY
    return message


def _check_links(context: _Context | _RollupContext, reader: ReaderLinks | None) -> None:
    """Refuse any link of the email that is not http(s)."""
    urls = [context.web_url, context.feed_url, context.site_url, context.unsubscribe_url, context.preferences_url]
    for feedback in reader.papers.values() if reader is not None else ():
        urls += [feedback.more, feedback.less, feedback.mute]
    for url in urls:
        if url is not None and not is_http_url(url):
            raise ValueError(f"refusing a link that is not http(s): {url!r}")


def _context(
    digest: Digest,
    subscriber: str,
    links: SiteLinks,
    key: bytes | None,
    site_title: str,
    reader: ReaderLinks | None,
    token: str | None = None,
) -> _Context:
    profile = digest.profile
    query = {"list": profile.id}
    if token is None and key is not None:
        token = unsubscribe_token(key, profile.id, subscriber)
    if token is not None:
        query["token"] = token
    unsubscribe = reader.unsubscribe if reader is not None else f"{links.url(UNSUBSCRIBE)}?{urlencode(query)}"
    feeds = [output.name for output in chosen(profile.formats, FormatKind.FEED)]
    context = _Context(
        subject=email_subject(digest),
        profile_title=one_line(profile.title),
        profile_description=clip(one_line(profile.description), 300),
        day=format_day(digest.date),
        total=len(digest.items),
        subscriber=one_line(subscriber),
        site_title=one_line(site_title),
        web_url=links.digest(profile.id, digest.date),
        feed_url=links.feed(profile.id, feeds[0]) if feeds else None,
        site_url=links.index,
        unsubscribe_url=unsubscribe,
        preferences_url=reader.preferences if reader is not None else None,
    )
    _check_links(context, reader)
    return context


def _fit_html(
    env: Environment,
    context: _Context | _RollupContext,
    papers: list[PaperView],
    limit: int,
    feedback: Mapping[str, PaperFeedback],
    template_name: str = "email.html",
) -> tuple[str, EmailMessage, int]:
    """The inlined HTML and its encoded part, with as many papers as keep the part under `limit` bytes.

    Returns the HTML, the part (ready to attach) and how many papers it shows.
    """
    template = env.get_template(template_name)

    def render(count: int) -> tuple[str, EmailMessage | None]:
        """The HTML with `count` papers, and its part if that is under `limit` bytes (else None)."""
        page = template.render(c=context, papers=papers[:count], more=len(papers) - count, feedback=feedback)
        html = _INLINER.inline(page)
        # Encoding never makes the HTML smaller: when the decoded HTML is already too big, skip encoding it.
        if len(html.encode("utf-8")) >= limit:
            return html, None
        part = _html_part(html)
        return html, part if _part_size(part) < limit else None

    html, part = render(len(papers))
    if part is not None:
        return html, part, len(papers)
    # Binary search on the number of papers. At least one is always shown: its title,
    # reasons and summary are bounded (views.paper_view), so one paper is a few KB at most.
    low, high = 1, len(papers) - 1
    fitted: tuple[str, EmailMessage] | None = None  # the render of `low` papers once one fitted
    while low < high:
        middle = (low + high + 1) // 2
        html, part = render(middle)
        if part is not None:
            low, fitted = middle, (html, part)
        else:
            high = middle - 1
    if fitted is None:
        html = render(low)[0]
        fitted = html, _html_part(html)
    return fitted[0], fitted[1], low


def _html_part(html: str) -> EmailMessage:
    """The text/html part as `EmailMessage.add_alternative` would make it: quoted-printable,
    or base64 when that is smaller (text mostly outside ASCII takes three bytes a byte in
    quoted-printable, four for three in base64), so more papers fit under the limit."""
    part = _encoded_part(html, "quoted-printable")
    if not html.isascii():
        other = _encoded_part(html, "base64")
        if _part_size(other) < _part_size(part):
            return other
    return part


def _encoded_part(html: str, cte: str) -> EmailMessage:
    part = EmailMessage(policy=_BODY_POLICY)
    part.set_content(html, subtype="html", charset="utf-8", cte=cte)
    return part


def _part_size(part: EmailMessage) -> int:
    """Bytes the part takes inside the sent message: its headers and encoded body, CRLF line ends.

    The same as `len(part.as_bytes(policy=POLICY))` (the tests measure the sent bytes), counted
    from the encoded payload instead of serialising the part once more for each size tried.
    """
    body = part.get_payload()  # ASCII (quoted-printable or base64), lines ending in LF
    assert isinstance(body, str)
    head = sum(len(name) + len(value) + 4 for name, value in part.items()) + 2  # "Name: value" CRLF, blank line
    return head + len(body) + body.count("\n")


def _list_id(digest: Digest | Rollup, links: SiteLinks) -> str:
    phrase = clip(_LIST_ID_PHRASE.sub("", one_line(digest.profile.title)), 60)
    return f"{phrase} <{digest.profile.id}.{links.host}>"


def _mailto(sender: str, profile_id: str) -> str:
    address = parseaddr(sender)[1]
    return f"mailto:{address}?subject={quote('unsubscribe ' + profile_id)}"


def _boundary(message_id: str, *parts: str) -> str:
    # A boundary derived from the Message-ID makes the same message serialise to the same bytes.
    seed = message_id
    while True:
        boundary = "=_pd_" + hashlib.sha256(seed.encode("utf-8")).hexdigest()[:32]
        if not any(boundary in part for part in parts):
            return boundary
        seed += "+"


# -- roll-ups ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _RollupContext:
    """Everything a roll-up email's two templates share except the list of papers."""

    subject: str
    heading: str  # "Week 52 of 2025 · 22–28 Dec 2025"
    headline: str  # "10 papers for Continual learning"
    counts: str  # "312 papers considered, 24 above your threshold (0.15)."
    also_heading: str
    also: tuple[PaperView, ...]
    total: int
    profile_title: str
    profile_description: str
    subscriber: str
    site_title: str
    web_url: str
    feed_url: str | None
    site_url: str
    unsubscribe_url: str
    preferences_url: str | None = None  # the reader's preferences on the web side, when there is one


def rollup_subject(rollup: Rollup) -> str:
    """'Week 52: 10 papers for Continual learning — 22–28 Dec 2025', 'December 2025: ...',
    'What you missed: ... — 29 Dec 2025 – 2 Jan 2026': one clean line."""
    title = clip(one_line(rollup.profile.title), 80)
    count = len(rollup.items)
    papers = f"{count} paper{'' if count == 1 else 's'} for {title}"
    period = rollup.period
    if period.kind is PeriodKind.WEEK:
        return f"Week {period.first.isocalendar()[1]}: {papers} — {format_span(period.first, period.last)}"
    if period.kind is PeriodKind.MONTH:
        return f"{period_label(period)}: {papers}"
    return f"{period_label(period)}: {papers} — {format_span(period.first, period.last)}"


def render_rollup_email(
    rollup: Rollup,
    *,
    subscriber: str,
    sender: str,
    message_id: str,
    links: SiteLinks,
    unsubscribe_key: bytes | None,
    site_title: str = "Paper Digest",
    env: Environment | None = None,
    html_limit: int = HTML_LIMIT,
    reader: ReaderLinks | None = None,
    unsubscribe_token: str | None = None,
) -> EmailMessage | None:
    """A subscriber's copy of a roll-up (a week, a month, or what they missed) as their email,
    or None when it shows no paper. Made as `render_email` makes a digest's: the same
    headers, size limit, encodings and unsubscribe links (with `reader`, the web side's
    one-click address and the reader's preferences; `unsubscribe_token`, the link's token
    made beforehand); the `Date` is the roll-up's `built_at`, and the web version is its
    page (for what they missed, the profile's)."""
    if not rollup.items:
        return None
    if not _MESSAGE_ID.fullmatch(message_id):
        raise ValueError(f"not a Message-ID like '<id@host>': {message_id!r}")
    env = env or template_environment()
    view = rollup_view(rollup, env, whose="your", mine=is_owner(rollup.profile, subscriber))
    context = _rollup_context(rollup, view, subscriber, links, unsubscribe_key, site_title, reader, unsubscribe_token)
    papers = list(view.items)
    feedback = dict(reader.papers) if reader is not None else {}
    html, html_part, shown = _fit_html(env, context, papers, html_limit, feedback, "rollup_email.html")
    text = env.get_template("rollup_email.txt").render(
        c=context, papers=papers[:shown], more=len(papers) - shown, feedback=feedback
    )
    return _message(
        context,
        sender=sender,
        subscriber=subscriber,
        sent=rollup.built_at,
        message_id=message_id,
        list_id=_list_id(rollup, links),
        mailto=_mailto(sender, rollup.profile.id),
        one_click=reader is not None or ((unsubscribe_key or unsubscribe_token) is not None and links.https),
        body=(text, html, html_part),
    )


def _rollup_context(
    rollup: Rollup,
    view: RollupView,
    subscriber: str,
    links: SiteLinks,
    key: bytes | None,
    site_title: str,
    reader: ReaderLinks | None,
    token: str | None = None,
) -> _RollupContext:
    profile, period = rollup.profile, rollup.period
    query = {"list": profile.id}
    if token is None and key is not None:
        token = unsubscribe_token(key, profile.id, subscriber)
    if token is not None:
        query["token"] = token
    feeds = [output.name for output in chosen(profile.formats, FormatKind.FEED)]
    if period.kind is PeriodKind.MISSED:
        web_url, feed_name = links.profile(profile.id), profile.id
    else:
        web_url, feed_name = links.rollup(profile.id, period), rollup_feed_name(profile.id, period.kind)
    title = one_line(profile.title)
    count = len(rollup.items)
    context = _RollupContext(
        subject=rollup_subject(rollup),
        heading=f"{view.label} · {view.span}",
        headline=f"{count} paper{'' if count == 1 else 's'} for {title}",
        counts=view.counts,
        also_heading=view.also_heading,
        also=view.also,
        total=count,
        profile_title=title,
        profile_description=clip(one_line(profile.description), 300),
        subscriber=one_line(subscriber),
        site_title=one_line(site_title),
        web_url=web_url,
        feed_url=links.feed(feed_name, feeds[0]) if feeds else None,
        site_url=links.index,
        unsubscribe_url=reader.unsubscribe if reader is not None else f"{links.url(UNSUBSCRIBE)}?{urlencode(query)}",
        preferences_url=reader.preferences if reader is not None else None,
    )
    _check_links(context, reader)
    return context


__all__ = ["HTML_LIMIT", "email_subject", "render_email", "render_rollup_email", "rollup_subject"]
