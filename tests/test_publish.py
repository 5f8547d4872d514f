"""Writing every output of a build: formats respected, safe outbox names, nothing rewritten twice."""

from __future__ import annotations

import email
import re
from email import policy
from pathlib import Path

import pytest
from render_data import DAY, config_for, digest, hostile_papers, papers_about, profile

from digest.config import ConfigError
from digest.files import write_if_changed
from digest.publish import build_emails, write_outbox, write_outputs
from digest.store import Store

ENV = {"DIGEST_UNSUBSCRIBE_KEY": "0123456789abcdef0123"}


def build(store: Store, tmp_path: Path):
    papers = list(store.iter_papers())
    everything = profile(subscribers=("ada@example.org", "Bob.Smith@example.org"))
    feed_only = profile("feed-only", title="Feed only", formats=("atom",), subscribers=("carl@example.org",))
    hostile = profile("hostile", title="<script>x</script>", subscribers=("dora@example.org",))
    empty = profile("empty", title="Empty", subscribers=("eve@example.org",))
    config = config_for(tmp_path, everything, feed_only, hostile, empty)
    digests = [
        digest(everything, papers_about(papers, "continual", limit=3)),
        digest(feed_only, papers_about(papers, "diffusion", limit=2)),
        digest(hostile, hostile_papers(papers)),
        digest(empty, (), empty_reason="no-new-papers", candidates=0),
    ]
    for d in digests:
        assert store.save_digest(d, store.watermark())
    return config, digests


def test_write_outputs_writes_what_each_profile_asks_for(filled_store: Store, tmp_path: Path) -> None:
    config, digests = build(filled_store, tmp_path)
    written = {p.relative_to(tmp_path).as_posix() for p in write_outputs(config, filled_store, digests, environ=ENV)}
    assert {p for p in written if p.startswith("digests/")} == {
        "digests/continual-learning/2025-12-31.md",
        "digests/hostile/2025-12-31.md",
        "digests/empty/2025-12-31.md",
    }
    assert {p for p in written if p.startswith("feeds/")} == {
        "feeds/all.atom",
        "feeds/all.rss",
        "feeds/all.json",
        "feeds/feed-only.atom",
        *(
            f"feeds/{pid}.{kind}"
            for pid in ("continual-learning", "hostile", "empty")
            for kind in ("atom", "rss", "json")
        ),
    }
    assert {p.removeprefix("site/") for p in written if p.startswith("site/feeds/")} == {
        p for p in written if p.startswith("feeds/")
    }
    outbox = sorted(p for p in written if p.startswith("outbox/"))
    assert len(outbox) == 3  # two subscribers + one hostile profile; no email for feed-only or empty digests
    assert all(re.fullmatch(r"outbox/2025-12-31_[a-z0-9-]+_[0-9a-f]{12}\.eml", p) for p in outbox)
    assert "site/digests/feed-only/2025-12-31.html" in written and "site/index.html" in written
    assert write_outputs(config, filled_store, digests, environ=ENV) == []  # a rebuild changes nothing


def test_outbox_files_are_whole_messages(filled_store: Store, tmp_path: Path) -> None:
    config, digests = build(filled_store, tmp_path)
    write_outputs(config, filled_store, digests, environ=ENV)
    messages = [
        email.message_from_bytes(path.read_bytes(), policy=policy.default)
        for path in sorted(config.outbox.glob("*.eml"))
    ]
    recipients = sorted(m["To"] for m in messages)
    assert recipients == ["Bob.Smith@example.org", "ada@example.org", "dora@example.org"]
    for message in messages:
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message["From"] == "Paper Digest <digest@example.org>"
        assert re.fullmatch(r"<digest\.2025-12-31\.[a-z-]+\.[0-9a-f]{16}@example\.org>", message["Message-ID"])
    hostile = next(m for m in messages if m["To"] == "dora@example.org")
    assert hostile["Subject"] == "3 new papers for <script>x</script> — Wed 31 Dec 2025"


def test_message_ids_come_from_the_caller(filled_store: Store, tmp_path: Path) -> None:
    config, digests = build(filled_store, tmp_path)
    emails = build_emails(
        config, digests, unsubscribe_key=None, message_id=lambda d, who: f"<{d.profile.id}.{len(who)}@ledger.test>"
    )
    assert sorted(e.message["Message-ID"] for e in emails) == [
        "<continual-learning.15@ledger.test>",
        "<continual-learning.21@ledger.test>",
        "<hostile.16@ledger.test>",
    ]
    assert all(e.message["List-Unsubscribe-Post"] is None for e in emails)
    paths = write_outbox(emails, tmp_path / "box")
    assert sorted(p.name for p in paths) == sorted(e.file_name for e in emails)


def test_a_short_key_stops_the_build_before_anything_is_written(filled_store: Store, tmp_path: Path) -> None:
    config, digests = build(filled_store, tmp_path)
    with pytest.raises(ConfigError):
        write_outputs(config, filled_store, digests, environ={"DIGEST_UNSUBSCRIBE_KEY": "short"})
    assert not config.feeds.exists() and not config.site.exists()


def test_no_digest_yet_still_gives_feeds_and_a_site(filled_store: Store, tmp_path: Path) -> None:
    config = config_for(tmp_path, profile())
    written = write_outputs(config, filled_store, [], environ={})
    assert (config.feeds / "continual-learning.atom") in written and (config.site / "index.html") in written
    assert not config.outbox.exists() and not config.digests.exists()
    assert DAY.isoformat() not in (config.site / "index.html").read_text()


def test_write_if_changed(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b.txt"
    assert write_if_changed(path, "one")
    assert not write_if_changed(path, b"one")
    assert write_if_changed(path, "two") and path.read_text() == "two"
