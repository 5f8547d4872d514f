"""The web side over HTTP: a real uvicorn on 127.0.0.1, driven by httpx, over a real state database.

One-click unsubscribe (RFC 8058), the pages behind each link (a GET changes nothing),
forged and cross-profile tokens, confirmations that expire, rate limits, bounded bodies,
security headers, no redirects, votes, preferences, the private page and feed, and the
web side and another writer sharing the database.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import feedparser
import httpx
import pytest
from conftest import run_digest
from render_data import digest as made_digest
from render_data import profile as made_profile
from webside import (
    ADA,
    ENVIRON,
    NOW,
    OPEN,
    Clock,
    database_rows,
    links,
    load,
    read_eml,
    serving,
    text_of,
    web_config,
)

from digest.app import App
from digest.config import Config
from digest.models import Cadence, Digest, Paper, Reason, ReasonKind, ScoredPaper, VoteKind
from digest.readers import mailbox_of
from digest.render.links import ReaderLinks, WebLinks
from digest.render.templates import template_environment
from digest.tokens import Action, Token, sign, verify
from digest.web.pages import Pages

ALAN, GRACE = "alan@example.org", "grace@example.org"  # llm-reasoning-rl's two subscribers
RL = "llm-reasoning-rl"
BOB = "bob@example.org"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state database with the seeds and every profile's digest of NOW, built with the web side on."""
    folder = tmp_path_factory.mktemp("built")
    config = load(web_config(folder, extra="", profiles=None))
    with App(config, clock=Clock(), environ=ENVIRON) as app:
        app.ingest()
        app.build(config.profiles)
    return config.db


@dataclass
class Site:
    """The web side of one test: its config, the test's own `App`, the base URL, the clock."""

    config: Config
    app: App
    base: str
    clock: Clock
    links: WebLinks

    @property
    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=10, follow_redirects=False)

    def reader(self, address: str) -> str:
        found = self.app.store.reader_id(address, create=True, at=self.clock())
        assert found is not None
        return found

    def rows(self) -> list[str]:
        return database_rows(self.config.db)

    def outbox(self, count: int = 0) -> list[Path]:
        """The notices written, oldest first; once there are `count` of them (a confirmation is
        sent after the answer to the form, so it may still be on its way), or after 10 s."""
        deadline = time.monotonic() + 10
        while True:
            found = sorted(self.config.outbox.glob("notice_*.eml"), key=lambda path: path.stat().st_mtime_ns)
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.01)

    def paper(self, index: int = 0, *, organisation: bool = False) -> str:
        """A paper of continual-learning's digest (or any stored paper of an organisation)."""
        if organisation:
            return [p for p in self.app.store.iter_papers() if p.organization][index].id
        digest = self.app.store.load_digest(self.config.profiles[0], NOW.date())
        assert digest is not None
        return digest.items[index].paper.id


@pytest.fixture
def site(built: Path, tmp_path: Path) -> Iterator[Site]:
    config = load(web_config(tmp_path))
    config.db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(built, config.db)
    clock = Clock()
    with serving(config, clock) as (app, base):
        yield Site(config, app, base, clock, links(config))


def forms(page: str) -> list[tuple[str, str, dict[str, str]]]:
    """(method, action, hidden fields) of each form of a page."""
    found = []
    for attributes, body in re.findall(r"<form([^>]*)>(.*?)</form>", page, re.S):
        method = re.search(r'method="([^"]*)"', attributes)
        action = re.search(r'action="([^"]*)"', attributes)
        hidden = dict(re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)">', body))
        found.append((method[1] if method else "get", action[1] if action else "", hidden))
    return found


# -- unsubscribing -------------------------------------------------------------------------


def test_one_click_unsubscribe_is_a_post_that_answers_200_at_once_and_again(site: Site) -> None:
    url = site.links.unsubscribe(OPEN, site.reader(ADA))
    with site.client as client:
        first = client.post(url, data={"List-Unsubscribe": "One-Click"})
        again = client.post(url, data={"List-Unsubscribe": "One-Click"})
        # RFC 8058 allows multipart/form-data too (it is what the RFC suggests mail clients send).
        multipart = client.post(
            site.links.unsubscribe(RL, site.reader(ALAN)), files={"List-Unsubscribe": (None, "One-Click")}
        )
        no_body = client.post(site.links.unsubscribe(RL, site.reader(GRACE)))
    assert (first.status_code, again.status_code, multipart.status_code) == (200, 200, 200)
    assert "location" not in first.headers and "no longer gets" in first.text
    assert site.app.store.is_unsubscribed(ADA, OPEN) and site.app.store.is_unsubscribed(ALAN, RL)
    assert not site.app.store.is_unsubscribed(ADA, RL)  # one profile, not every one
    assert no_body.status_code == 400 and not site.app.store.is_unsubscribed(GRACE, RL)
    assert [u.address for u in site.app.store.unsubscribes()] == [ADA, ALAN]


def test_the_unsubscribe_page_changes_nothing_and_its_button_posts_one_click(site: Site) -> None:
    url = site.links.unsubscribe(OPEN, site.reader(ADA))
    before = site.rows()
    with site.client as client:
        page = client.get(url)
        head = client.head(url)
    assert page.status_code == 200 and head.status_code == 200
    assert site.rows() == before
    assert forms(page.text) == [("post", "", {"List-Unsubscribe": "One-Click"})]
    assert ADA in page.text and "Continual learning" in page.text


# -- tokens --------------------------------------------------------------------------------


def _swap(text: str, index: int, value: str) -> str:
    """`text` with field `index` replaced and the old signature kept."""
    parts = text.split(".")
    parts[index] = value
    return ".".join(parts)


def test_forged_foreign_and_cross_profile_tokens_get_the_same_plain_404(site: Site) -> None:
    ada, alan = site.reader(ADA), site.reader(ALAN)
    paper, other_paper = site.paper(index=0), site.paper(index=1)
    unsubscribe = site.links.token(Action.UNSUBSCRIBE, OPEN, ada)
    vote = site.links.token(Action.LESS, OPEN, ada, paper)
    foreign = WebLinks(site.base, b"another-key-0123456789").token(Action.UNSUBSCRIBE, OPEN, ada)
    gone = site.links.token(Action.UNSUBSCRIBE, "no-such-profile", ada)
    nobody = site.links.token(Action.UNSUBSCRIBE, OPEN, "NoSuchReader0000")
    attempts = {
        "u/" + unsubscribe[:-1] + ("A" if unsubscribe[-1] != "A" else "B"): "a flipped signature",
        "u/" + foreign: "another key",
        "u/" + _swap(unsubscribe, 1, RL): "another profile",
        "u/" + _swap(unsubscribe, 2, alan): "another reader",
        "v/" + _swap(vote, 3, other_paper): "another paper",
        "v/" + _swap(vote, 0, "more"): "another vote",
        "v/" + unsubscribe: "an unsubscribe token as a vote",
        "c/" + unsubscribe: "an unsubscribe token as a confirmation",
        "p/" + vote: "a vote token as preferences",
        "r/" + unsubscribe: "an unsubscribe token as the reader's page",
        "r/" + unsubscribe + "/feed.atom": "... and feed",
        "u/" + gone: "a profile no longer configured",
        "u/" + nobody: "a reader nobody is",
        "u/garbage": "garbage",
        "u/" + "x" * 5000: "a very long token",
    }
    before = site.rows()
    with site.client as client:
        reference = client.get("/no-such-page").text
        for path, what in attempts.items():
            tries = [client.get(path)]
            if not path.startswith("r/"):  # the reader's page and feed take no POST (405)
                tries.append(client.post(path, data={"List-Unsubscribe": "One-Click"}))
            for response in tries:
                assert response.status_code == 404, what
                assert response.text == reference, what  # no detail: the same page whatever is wrong
    assert site.rows() == before
    assert not site.app.store.is_unsubscribed(ADA, OPEN) and not site.app.store.is_unsubscribed(ADA, RL)
    # The genuine token works: the 404s above were about the token, not the route.
    assert verify(ENVIRON["DIGEST_SECRET_KEY"].encode(), unsubscribe) is not None
    with site.client as client:
        assert client.post("u/" + unsubscribe, data={"List-Unsubscribe": "One-Click"}).status_code == 200


# -- subscribing -------------------------------------------------------------------------------


def subscribe(site: Site, address: str, profile: str = OPEN, client_ip: str = "203.0.113.7") -> httpx.Response:
    with site.client as client:
        return client.post(
            "subscribe", data={"address": address, "profile": profile}, headers={"X-Forwarded-For": client_ip}
        )


def confirm_url(site: Site, count: int = 1) -> str:
    """The link of the newest confirmation, once `count` have been written."""
    text = text_of(read_eml(site.outbox(count)[-1]))
    (url,) = re.findall(r"http://\S+/c/\S+", text.replace("=\n", ""))
    return url


def test_confirming_subscribes_once_and_a_second_press_is_harmless(site: Site) -> None:
    page = site.client.get("subscribe")
    assert page.status_code == 200 and f'value="{OPEN}"' in page.text and 'value="efficient-llm"' not in page.text
    answer = subscribe(site, "Bob@Example.org")
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    (notice,) = site.outbox(1)
    message = read_eml(notice)
    assert (
        message["To"] == "Bob@example.org" and message["Subject"] == "Confirm your subscription to Continual learning"
    )
    url = confirm_url(site)
    assert BOB not in url.lower() and "@" not in url
    assert BOB not in [s.address.lower() for s in site.app.subscribers(site.config.profiles[0])]
    before = site.rows()
    with site.client as client:
        shown = client.get(url)
        assert shown.status_code == 200 and forms(shown.text) == [("post", "", {})]
        assert site.rows() == before  # the page alone subscribes nobody
        done = client.post(url)
        again = client.post(url)
        after = site.rows()
        shown_again = client.get(url)  # no pending row left: the page asks the profile's audience
    assert done.status_code == 200 and "Subscribed" in done.text
    assert again.status_code == 200 and "Already subscribed" in again.text
    assert shown_again.status_code == 200 and "Already subscribed" in shown_again.text and site.rows() == after
    readers = site.app.subscribers(site.config.profiles[0])
    assert [(s.address, s.web) for s in readers] == [(ADA, False), ("bob@example.org", True)]
    assert "bob@example.org" in site.app.audience(site.config.profiles[0])
    # Asking again once subscribed sends nothing, and says the same.
    assert subscribe(site, BOB).text == answer.text.replace("Bob@Example.org", BOB)
    assert len(site.outbox()) == 1


def test_an_expired_confirmation_is_refused_and_subscribes_nobody(site: Site) -> None:
    assert subscribe(site, BOB).status_code == 200
    url = confirm_url(site)
    site.clock.advance(hours=47, minutes=59)
    with site.client as client:
        assert client.get(url).status_code == 200
        site.clock.advance(minutes=1)
        shown, posted = client.get(url), client.post(url)
    assert shown.status_code == 410 and posted.status_code == 410 and "expired" in posted.text
    assert site.app.store.web_subscriptions() == []
    assert site.app.store.reader_id(BOB) is not None
    subscribe(site, "carol@example.org")  # any request clears what expired: bob's address is not kept
    assert site.app.store.reader_id(BOB) is None and site.app.store.reader_id("carol@example.org") is not None
    assert site.app.store.reader_id(ADA) is not None  # digest.toml's reader, emailed before, stays


def test_an_address_that_unsubscribed_needs_a_new_confirmation(site: Site) -> None:
    profile = site.config.profiles[0]
    subscribe(site, BOB)
    first = confirm_url(site)
    assert site.client.post(first).status_code == 200
    unsubscribe = site.links.unsubscribe(OPEN, site.reader(BOB))
    assert site.client.post(unsubscribe, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert BOB not in site.app.audience(profile)
    assert site.client.post(first).status_code == 404  # a used link does not subscribe again
    assert subscribe(site, BOB).status_code == 200
    assert len(site.outbox(2)) == 2 and BOB not in site.app.audience(profile)  # asked, not confirmed
    assert site.client.post(confirm_url(site, 2)).status_code == 200
    assert BOB in site.app.audience(profile)


def test_an_address_unsubscribed_from_everything_confirms_one_profile_only(site: Site) -> None:
    site.app.unsubscribe(ADA, None)
    subscribe(site, ADA.upper())
    assert site.client.post(confirm_url(site)).status_code == 200
    assert ADA in site.app.audience(site.config.profiles[0])
    assert site.app.store.is_unsubscribed(ADA, RL)


def test_addresses_are_validated_and_only_open_profiles_taken(site: Site) -> None:
    before = site.rows()
    for address in ("not an address", "a@b", "x" * 250 + "@example.org", "bob@example.org\r\nBcc: eve@example.org"):
        answer = subscribe(site, address)
        assert answer.status_code == 400 and "not an email address" in answer.text, address
    closed = subscribe(site, BOB, profile="efficient-llm")
    assert closed.status_code == 400 and "Choose one of these" in closed.text
    assert site.outbox() == []
    assert [r for r in site.rows() if "readers" in r or "confirmations" in r] == [
        r for r in before if "readers" in r or "confirmations" in r
    ]


def test_rate_limits_per_client_and_per_address(site: Site) -> None:
    """A stranger's mailbox gets at most 3 confirmations a day, whoever asks; one client may
    ask 10 times an hour. The answer to an address over its limit is the usual one."""
    answers = [subscribe(site, "victim@example.org", client_ip=f"198.51.100.{n}") for n in range(5)]
    assert [a.status_code for a in answers] == [200] * 5
    assert len({a.text for a in answers}) == 1
    assert len(site.outbox(3)) == 3
    busy = [subscribe(site, f"reader{n}@example.org", client_ip="192.0.2.1").status_code for n in range(11)]
    assert busy == [200] * 10 + [429]
    assert subscribe(site, "another@example.org", client_ip="192.0.2.2").status_code == 200
    site.clock.advance(hours=1)
    assert subscribe(site, "later@example.org", client_ip="192.0.2.1").status_code == 200
    counted = [row for row in site.rows() if "request_counts" in row and "client:" in row]
    assert counted == [
        f"INSERT INTO \"request_counts\" VALUES('client:192.0.2.1',{int(site.clock().timestamp()) // 3600},1);"
    ]
    limited = subscribe(site, "x@example.org", client_ip="192.0.2.2")
    assert limited.status_code == 200
    for _ in range(10):
        limited = subscribe(site, "y@example.org", client_ip="192.0.2.3")
    assert subscribe(site, "z@example.org", client_ip="192.0.2.3").headers.get("retry-after") == "3600"


def test_tagged_forms_of_one_address_share_its_limit(site: Site) -> None:
    # "+tag" and capitals reach the same inbox: as separate addresses they let the form send
    # a stranger 3 confirmations a day for every tag.
    tags = ["victim+1@example.org", "Victim+2@Example.org", "victim@example.org", "victim+news@example.org"]
    answers = [subscribe(site, address, client_ip=f"198.51.100.{n}") for n, address in enumerate(tags * 2)]
    assert {a.status_code for a in answers} == {200}
    assert [a.text for a in answers[:4]] == [a.text for a in answers[4:]], "over the limit, the usual answer"
    assert len(site.outbox(3)) == 3
    assert subscribe(site, "victim2@example.org", client_ip="198.51.100.99").status_code == 200
    assert len(site.outbox(4)) == 4, "another mailbox has its own limit"


def test_the_mailbox_an_address_reaches() -> None:
    assert mailbox_of("Ada+Papers@Example.ORG") == "ada@example.org"
    assert mailbox_of("ada@example.org") == "ada@example.org"
    assert mailbox_of("+only@example.org") == "+only@example.org"  # no mailbox name before the tag


# -- bounds, headers, redirects --------------------------------------------------------------


def test_bodies_and_fields_are_bounded(site: Site) -> None:
    before = site.rows()
    big = "address=" + "a" * 17_000 + "@example.org&profile=" + OPEN

    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"a" * 1000

    with site.client as client:
        declared = client.post("subscribe", content=big, headers={"Content-Type": "application/x-www-form-urlencoded"})
        streamed = client.post(
            "subscribe", content=chunks(), headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        long_field = client.post("subscribe", data={"address": "a" * 2000 + "@example.org", "profile": OPEN})
        many_fields = client.post("subscribe", data={f"f{n}": "1" for n in range(20)})
        a_file = client.post("subscribe", files={"address": ("a.txt", b"bob@example.org")}, data={"profile": OPEN})
    assert declared.status_code == 413 and streamed.status_code == 413
    # A body announced as a gigabyte is refused before a byte of it is read.
    host, port = site.base.removeprefix("http://").rstrip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        raw.sendall(b"POST /subscribe HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\naddress=")
        assert raw.recv(100).startswith(b"HTTP/1.1 413 ")
    assert (long_field.status_code, many_fields.status_code, a_file.status_code) == (400, 400, 400)
    assert site.rows() == before and site.outbox() == []


def test_the_request_line_and_headers_are_bounded(site: Site) -> None:
    """16 KiB of request line and headers at most, whole or still arriving (HTTP is parsed
    by httptools, which sets no bound of its own); a head under it is served."""
    host, port = site.base.removeprefix("http://").rstrip("/").split(":")

    def answer(*pieces: bytes) -> bytes:
        with socket.create_connection((host, int(port)), timeout=5) as raw:
            for piece in pieces:
                try:
                    raw.sendall(piece)
                except OSError:  # refused and closed before the rest was sent
                    break
                time.sleep(0.01)
            return raw.recv(100)

    def head(size: int) -> bytes:
        return b"GET /subscribe HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * size + b"\r\n"

    assert answer(head(8_000) + b"\r\n").startswith(b"HTTP/1.1 200 ")
    assert answer(head(20_000) + b"\r\n").startswith(b"HTTP/1.1 400 ")  # a whole head, too large
    endless = [head(100)] + [b"X-Pad-%d: %s\r\n" % (n, b"a" * 1_000) for n in range(30)]
    assert answer(*endless).startswith(b"HTTP/1.1 400 ")  # one that never ends
    assert answer(b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 400 ")


SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


def test_every_response_carries_the_security_headers(site: Site) -> None:
    ada = site.reader(ADA)
    with site.client as client:
        responses = [
            client.get("/"),
            client.get("subscribe"),
            client.get("healthz"),
            client.get("no-such-page"),
            client.delete("subscribe"),
            client.post("subscribe", content=b"x" * 20_000),
            client.get(site.links.unsubscribe(OPEN, ada)),
            client.get(site.links.preferences(OPEN, ada)),
            client.get(site.links.page(OPEN, ada)),
            client.get(site.links.feed(OPEN, ada)),
            client.get(site.links.vote(Action.MORE, OPEN, ada, site.paper())),
            subscribe(site, "not an address"),
        ]
    assert [r.status_code for r in responses] == [200, 200, 503, 404, 405, 413, 200, 200, 200, 200, 200, 400]
    for response in responses:
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (response.url, name)
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "form-action 'self'" in policy
        assert "frame-ancestors 'none'" in policy and "unsafe" not in policy and "script-src" not in policy
        assert "server" not in response.headers  # no software and version announced
        if response.headers.get("content-type", "").startswith("text/html"):
            assert "<script" not in response.text and " style=" not in response.text


def test_nothing_redirects_and_no_link_comes_from_the_host_header(site: Site) -> None:
    with site.client as client:
        for path in ("//evil.example/", "/subscribe/", "/u/", "/./subscribe", "/%2F%2Fevil.example"):
            response = client.get(path, headers={"Host": "evil.example"})
            assert response.status_code < 300 or response.status_code >= 400, path
            assert "location" not in response.headers
        page = client.get("subscribe", headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"})
    assert page.status_code == 200 and "evil.example" not in page.text
    assert f'action="{site.base}subscribe"' in page.text


def test_healthz_serves_the_status_verdict(built: Path, tmp_path: Path) -> None:
    config = load(web_config(tmp_path, digest="stale_after_days = 30"))
    config.db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(built, config.db)
    clock = Clock()
    with serving(config, clock) as (app, base):
        healthy = httpx.get(base + "healthz")
        clock.advance(days=2)  # no digest built since: behind the schedule
        behind = httpx.get(base + "healthz")
        full = app.status().to_json()
    assert healthy.status_code == 200 and healthy.json()["healthy"] is True
    assert behind.status_code == 503 and behind.json()["healthy"] is False
    assert behind.json()["attention"] == ["behind"] == sorted({a["kind"] for a in full["attention"]})
    # Anyone can ask: no path, profile id or message of the owner's verdict is served.
    for private in [str(config.db), str(config.db.parent), *(p.id for p in config.profiles)]:
        assert private not in behind.text and private not in healthy.text
    assert set(behind.json()) == {"healthy", "checked_at", "attention"}


# -- votes, preferences, the reader's own page and feed -----------------------------------------


def test_a_vote_is_recorded_by_its_button_once_and_can_be_undone(site: Site, tmp_path: Path) -> None:
    ada, paper = site.reader(ADA), site.paper()
    url = site.links.vote(Action.LESS, OPEN, ada, paper)
    before = site.rows()
    with site.client as client:
        page = client.get(url)
        assert page.status_code == 200 and site.rows() == before
        assert forms(page.text) == [("post", url, {})] and "Less like this" in page.text
        first = client.post(url)
        record = site.app.store.vote(OPEN, ada, paper, VoteKind.LESS)
        second = client.post(url)
        assert first.status_code == second.status_code == 200
        assert site.app.store.vote(OPEN, ada, paper, VoteKind.LESS) == record  # the second press changed nothing
        assert forms(second.text) == [("post", url + "/undo", {})]
        undo_page = client.get(url + "/undo")
        assert undo_page.status_code == 200 and site.app.store.vote(OPEN, ada, paper, VoteKind.LESS) == record
        undone = client.post(url + "/undo")
    assert undone.status_code == 200 and "Taken back" in undone.text
    taken_back = site.app.store.vote(OPEN, ada, paper, VoteKind.LESS)
    assert record is not None and record.active and taken_back is not None and not taken_back.active
    listed = run_digest("--config", str(site.config.path), "feedback", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    (vote,) = json.loads(listed.stdout)
    assert vote["reader"] == ADA and vote["vote"] == "less" and vote["paper_id"] == paper and vote["undone_at"]
    table = run_digest("--config", str(site.config.path), "feedback", "--profile", OPEN, cwd=tmp_path)
    assert "taken back" in table.stdout and table.stdout.splitlines()[-1] == "1 vote (1 taken back)"
    unknown = run_digest("--config", str(site.config.path), "feedback", "--profile", "nope", cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown profile 'nope'" in unknown.stderr


def test_more_and_less_replace_each_other_and_a_mute_covers_the_organisation(site: Site) -> None:
    ada, paper = site.reader(ADA), site.paper()
    profile = site.config.profiles[0]
    with site.client as client:
        client.post(site.links.vote(Action.MORE, OPEN, ada, paper))
        assert [p.id for p in site.app.reader_votes(profile, ada).more] == [paper]
        client.post(site.links.vote(Action.LESS, OPEN, ada, paper))
        votes = site.app.reader_votes(profile, ada)
        assert votes.more == () and [p.id for p in votes.less] == [paper]
        credited = site.paper(index=0, organisation=True)
        organisation = site.app.store.get_papers([credited])[0].organization
        assert organisation is not None
        mute = site.links.vote(Action.MUTE, OPEN, ada, credited)
        assert f"Mute {organisation.name}" in client.get(mute).text
        client.post(mute)
        assert site.app.reader_votes(profile, ada).muted == (organisation.id,)
        client.post(mute + "/undo")
    assert site.app.reader_votes(profile, ada).muted == ()


def test_preferences_pause_resume_number_cadence_and_unsubscribe(site: Site) -> None:
    profile = site.config.profiles[0]
    url = site.links.preferences(OPEN, site.reader(ADA))
    with site.client as client:
        page = client.get(url)
        assert page.status_code == 200
        assert (
            site.links.page(OPEN, site.reader(ADA)) in page.text
            and site.links.feed(OPEN, site.reader(ADA)) in page.text
        )
        paused = client.post(url, data={"action": "pause", "weeks": "2"})
        assert paused.status_code == 200 and "Sat 24 Jan 2026" in paused.text
        assert ADA not in site.app.audience(profile)
        site.clock.advance(days=14)
        assert ADA in site.app.audience(profile)  # the pause ended
        client.post(url, data={"action": "pause", "weeks": "4"})
        client.post(url, data={"action": "resume"})
        assert ADA in site.app.audience(profile)
        saved = client.post(url, data={"action": "save", "max_items": "3", "cadence": "weekly"})
        assert saved.status_code == 200
        (ada,) = site.app.subscribers(profile)
        assert (ada.max_items, ada.cadence) == (3, Cadence.WEEKLY) and ADA not in site.app.audience(profile)
        wrong = client.post(url, data={"action": "save", "max_items": "0", "cadence": "daily"})
        weeks = client.post(url, data={"action": "pause", "weeks": "99"})
        assert (wrong.status_code, weeks.status_code) == (400, 400)
        client.post(url, data={"action": "save", "max_items": "10", "cadence": "daily"})
        assert site.app.subscribers(profile)[0].max_items is None  # the profile's own number
        client.post(url, data={"action": "unsubscribe-all"})
    assert all(site.app.store.is_unsubscribed(ADA, p.id) for p in site.config.profiles)


def test_the_readers_page_and_feed_carry_their_own_links(site: Site) -> None:
    ada = site.reader(ADA)
    key = ENVIRON["DIGEST_SECRET_KEY"].encode()
    before = site.rows()
    with site.client as client:
        page = client.get(site.links.page(OPEN, ada))
        feed = client.get(site.links.feed(OPEN, ada))
    assert site.rows() == before
    assert page.status_code == 200 and feed.headers["content-type"].startswith("application/atom+xml")
    votes = re.findall(r'href="http://127\.0\.0\.1:\d+/v/([^"]+)"', page.text)
    digest = site.app.store.load_digest(site.config.profiles[0], NOW.date())
    assert digest is not None and len(votes) >= 2 * len(digest.items)
    for text in votes:
        token = verify(key, text)
        assert token is not None and token.profile_id == OPEN and token.subscriber_id == ada
    parsed = feedparser.parse(feed.content)
    assert not parsed.bozo and len(parsed.entries) == len(digest.items)
    assert all("Less like this" in entry.content[0].value for entry in parsed.entries)
    assert any(link.rel == "self" and link.href == site.links.feed(OPEN, ada) for link in parsed.feed.links)


# -- the database shared with the scheduler ---------------------------------------------------------


def test_a_long_write_elsewhere_makes_the_web_side_wait_not_fail(site: Site) -> None:
    """Another process's write transaction (the scheduler's build) holds SQLite's lock; a
    one-click POST meanwhile waits for it (busy timeout) and then succeeds."""
    url = site.links.unsubscribe(OPEN, site.reader(ADA))
    other = sqlite3.connect(site.config.db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO request_counts (bucket, window, count) VALUES ('held', 1, 1)")
    answer: list[httpx.Response] = []
    thread = threading.Thread(
        target=lambda: answer.append(site.client.post(url, data={"List-Unsubscribe": "One-Click"}))
    )
    thread.start()
    time.sleep(1.0)
    assert answer == []  # waiting for the lock, not failed
    other.execute("COMMIT")
    other.close()
    thread.join(10)
    assert answer[0].status_code == 200 and site.app.store.is_unsubscribed(ADA, OPEN)


def test_the_web_side_and_a_build_share_the_database(site: Site) -> None:
    """Twenty readers unsubscribe while the next day's digests are built and emailed."""
    profile = site.config.profiles[1]  # llm-reasoning-rl: alan and grace, plus 18 web readers
    addresses = [f"reader{n}@example.org" for n in range(18)]
    for address in addresses:
        reader = site.reader(address)
        site.app.store.request_confirmation(RL, reader, NOW, NOW + timedelta(hours=1))
        site.app.store.confirm_subscription(RL, reader, expires_at=NOW + timedelta(hours=1), at=NOW, other_profiles=[])
    everyone = [ALAN, GRACE, *addresses]
    site.clock.advance(days=1)
    answers: list[int] = []

    def unsubscribe_all() -> None:
        with site.client as client:
            for address in everyone:
                url = site.links.unsubscribe(RL, site.reader(address))
                answers.append(client.post(url, data={"List-Unsubscribe": "One-Click"}).status_code)

    thread = threading.Thread(target=unsubscribe_all)
    thread.start()
    with App(site.config, clock=site.clock, environ=ENVIRON) as builder:
        builder.build([profile])
    thread.join(30)
    assert answers == [200] * len(everyone)
    assert site.app.store.unsubscribed(everyone, RL) == set(everyone)


def test_a_token_signed_for_a_paper_names_it(site: Site) -> None:
    """The signed fields are what the page shows: the paper of the token, not another."""
    ada, paper = site.reader(ADA), site.paper(index=1)
    title = site.app.store.get_papers([paper])[0].title
    page = site.client.get(site.links.vote(Action.MORE, OPEN, ada, paper))
    assert title.split()[0] in page.text
    text = sign(ENVIRON["DIGEST_SECRET_KEY"].encode(), Token(Action.MORE, OPEN, ada, "f" * 16))
    assert site.client.get("v/" + text).status_code == 404  # signed, but no such paper


# -- whose votes a reader's page words ---------------------------------------------------------


def test_a_readers_page_and_feed_say_you_marked_only_for_votes_of_theirs() -> None:
    """The profile's digest is ranked with its owner's votes: another reader's page words them
    as the owner's; the owner's page, and a reader's own digest, say "you marked"."""
    voted = Reason(ReasonKind.LESS_LIKE_THIS, paper_id="p0", title="The Voted Paper", count=1)
    day = NOW.date()
    paper = Paper("p1", "A Look-Alike", "Much like the voted paper.", 2, None, day, 3, day, day, 1)
    shared = replace(made_digest(made_profile(), ()), items=(ScoredPaper(paper, 0.4, (voted,)),))
    pages = Pages(
        template_environment(), site_title="Paper Digest", site_url="https://example.org/", subscribe_url="/s"
    )
    links = ReaderLinks(unsubscribe="/u", preferences="/p", page="/r", feed="/f")
    yours, owners = "you marked 'less like this'", "this profile's owner marked 'less like this'"

    def shown(made: Digest, *, owner: bool) -> list[str]:
        page = pages.reader(shared.profile, [made], links, owner=owner)
        feed = feedparser.parse(pages.reader_feed(shared.profile, [made], links, owner=owner))
        words = [re.sub(r"<[^>]+>", " ", page), *(e.content[0].value for e in feed.entries)]
        return [" ".join(html.unescape(w).split()) for w in words]

    for made, owner, expected, not_expected in (
        (shared, False, owners, yours),
        (shared, True, yours, owners),
        (replace(shared, own=True), False, yours, owners),
    ):
        for text in shown(made, owner=owner):
            assert expected in text and not_expected not in text, (owner, made.own, text)
