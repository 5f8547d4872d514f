"""Writing the published outputs of a build (formats respected, nothing rewritten twice), and email rendering."""

from __future__ import annotations

import email
import os
import pickle
import re
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from datetime import timedelta
from email import policy
from pathlib import Path

import pytest
from render_data import DAY, config_for, digest, hostile_papers, papers_about, profile

from digest import files, publish, tasks
from digest.files import copy_if_changed, write_atomic, write_if_changed
from digest.parallel import ProcessRunner
from digest.publish import (
    SharedPapers,
    _pages_to_render,
    email_renderer,
    page_stamps,
    render_settings,
    write_outputs,
)
from digest.render.stamps import page_stamp
from digest.render.templates import template_environment
from digest.store import Store

KEY = b"0123456789abcdef0123"


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
    written = {p.relative_to(tmp_path).as_posix() for p in write_outputs(config, filled_store, digests)}
    assert {p for p in written if p.startswith("digests/")} == {
        "digests/continual-learning/2025-12-31.md",
        "digests/hostile/2025-12-31.md",
        "digests/empty/2025-12-31.md",
    }
    assert {p for p in written if p.startswith("feeds/")} == {
        "feeds/all.atom",
        "feeds/all.rss",
        "feeds/all.json",
        *(f"feeds/feed-only{cadence}.atom" for cadence in ("", ".weekly", ".monthly")),
        *(
            f"feeds/{pid}{cadence}.{kind}"
            for pid in ("continual-learning", "hostile", "empty")
            for cadence in ("", ".weekly", ".monthly")  # each profile's feeds of every cadence
            for kind in ("atom", "rss", "json")
        ),
    }
    assert {p.removeprefix("site/") for p in written if p.startswith("site/feeds/")} == {
        p for p in written if p.startswith("feeds/")
    }
    assert not any(p.startswith("outbox/") for p in written)  # emails go through the delivery ledger
    assert "site/digests/feed-only/2025-12-31.html" in written and "site/index.html" in written
    assert write_outputs(config, filled_store, digests) == []  # a rebuild changes nothing


def test_a_page_deleted_edited_or_unstamped_on_disk_is_rendered_again(filled_store: Store, tmp_path: Path) -> None:
    # A rebuild renders only the pages whose stamp on disk differs from what they are made
    # of; a page that lost its stamp, or whose stamp is not the one it would get, is
    # rendered again and comes back byte for byte.
    config, digests = build(filled_store, tmp_path)
    write_outputs(config, filled_store, digests)
    folder = tmp_path / "site" / "digests"
    deleted, edited, foreign = (
        folder / name for name in ("hostile/2025-12-31.html", "feed-only/index.html", "empty/2025-12-31.html")
    )
    kept = {path: path.read_bytes() for path in (deleted, edited, foreign)}
    deleted.unlink()
    edited.write_bytes(kept[edited] + b"<p>added by hand</p>\n")
    foreign.write_bytes(re.sub(rb"inputs [0-9a-f]{64}", b"inputs " + b"0" * 64, kept[foreign]))
    assert page_stamps(config.site, "empty") != ()
    written = sorted(write_outputs(config, filled_store, digests))
    assert written == sorted([deleted, edited, foreign])
    assert {path: path.read_bytes() for path in kept} == kept


def test_a_days_build_reads_and_renders_the_new_digest_its_neighbours_and_the_archive(
    filled_store: Store, tmp_path: Path
) -> None:
    # What makes a day's build cost the same after a year as on day one: of a profile's
    # history, only the pages whose stamp changed are rendered, and only what they show is
    # read from the store in full (the new digest, the one before it, and that one's older
    # neighbour, which its "older" link shows).
    papers = list(filled_store.iter_papers())
    prof = profile()
    config = config_for(tmp_path, prof)
    days = [DAY - timedelta(days=n) for n in range(6)]
    history = [digest(prof, tuple(papers[3 * n : 3 * n + 3]), day=day) for n, day in enumerate(days)]
    for made in reversed(history[1:]):
        assert filled_store.save_digest(made, filled_store.watermark())
    write_outputs(config, filled_store, history[1:])
    env = tasks.environment(render_settings(config, filled_store))
    assert _pages_to_render(config, filled_store, prof, env, ())[1] == {}  # nothing new: nothing to render
    assert filled_store.save_digest(history[0], filled_store.watermark())
    loaded, pages = _pages_to_render(config, filled_store, prof, env, ())
    folder = f"digests/{prof.id}/"
    assert sorted(pages) == sorted([folder + "index.html", f"{folder}{days[0]}.html", f"{folder}{days[1]}.html"])
    assert sorted(loaded.digests) == sorted(days[:3])
    assert [r.day for r in loaded.days] == days  # the archive lists every day from the records
    written = write_outputs(config, filled_store, history[:1])
    assert {p.relative_to(config.site).as_posix() for p in written if p.suffix == ".html"} == {"index.html", *pages}
    assert write_outputs(config, filled_store, history[:1]) == []


def test_reading_stamps_skips_what_is_no_page(tmp_path: Path) -> None:
    folder = tmp_path / "digests" / "p"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "pipe.html")  # opening it would wait for a writer forever
    (folder / "folder.html").mkdir()
    (folder / "tiny.html").write_bytes(b"x")
    stamp = "ab" * 32
    (folder / "2025-12-31.html").write_text("<p>page</p>\n<!-- paper-digest inputs " + stamp + " -->\n")
    assert page_stamps(tmp_path, "p") == (("digests/p/2025-12-31.html", stamp),)
    assert page_stamps(tmp_path, "nobody") == ()


def test_workers_render_with_the_coordinators_templates_and_refuse_other_code(
    filled_store: Store, tmp_path: Path
) -> None:
    config, _ = build(filled_store, tmp_path)
    settings = render_settings(config, filled_store)
    names = {name for name, _ in settings.templates}
    assert {"site/digest.html", "feed_entry.html", "reasons.txt"} <= names  # the built-in ones too
    coordinator = tasks.environment(settings)
    worker = template_environment()
    assert page_stamp(coordinator, "x") == page_stamp(worker, "x")
    with pytest.raises(tasks.OtherProgram, match="another version"):
        tasks.publish_shard(replace(settings, program="0" * 64), [])
    assert tasks.publish_shard(settings, []) == []


def test_feeds_are_written_once_and_linked_into_the_feeds_folder(
    filled_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, digests = build(filled_store, tmp_path)
    write_outputs(config, filled_store, digests)
    kept, published = config.feeds / "all.atom", config.site / "feeds" / "all.atom"
    assert kept.read_bytes() == published.read_bytes() and kept.stat().st_ino == published.stat().st_ino
    assert not [p for p in config.feeds.iterdir() if p.name.startswith(".")]  # no link left behind

    def no_links(source: object, target: object) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(files.os, "link", no_links)
    kept.unlink()
    (config.feeds / "feed-only.atom").unlink()  # (written in place, it would change both names' file)
    (config.feeds / "feed-only.atom").write_text("stale")
    written = write_outputs(config, filled_store, digests)
    assert sorted(p.name for p in written) == ["all.atom", "feed-only.atom"]
    assert kept.read_bytes() == published.read_bytes() and kept.stat().st_ino != published.stat().st_ino
    assert (config.feeds / "feed-only.atom").read_bytes() == (config.site / "feeds" / "feed-only.atom").read_bytes()


def rendered(config, digests, key: bytes | None) -> list:
    render = email_renderer(config, sender=config.sender, unsubscribe_key=key)
    found = []
    for d in digests:
        for who in d.profile.subscribers:
            message = render(d, who, f"<{d.profile.id}.{len(who)}@ledger.test>")
            if message is not None:
                found.append(email.message_from_bytes(message.as_bytes(), policy=policy.default))
    return found


def test_emails_are_whole_messages_with_the_ledgers_message_id(filled_store: Store, tmp_path: Path) -> None:
    config, digests = build(filled_store, tmp_path)
    messages = rendered(config, digests, KEY)
    # Two subscribers + one hostile profile; the feed-only profile still renders (delivery checks formats),
    # the empty digest gives no email.
    assert sorted(m["To"] for m in messages) == [
        "Bob.Smith@example.org",
        "ada@example.org",
        "carl@example.org",
        "dora@example.org",
    ]
    assert sorted(m["Message-ID"] for m in messages) == [
        "<continual-learning.15@ledger.test>",
        "<continual-learning.21@ledger.test>",
        "<feed-only.16@ledger.test>",
        "<hostile.16@ledger.test>",
    ]
    for message in messages:
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message["From"] == "Paper Digest <digest@example.org>"
    hostile = next(m for m in messages if m["To"] == "dora@example.org")
    assert hostile["Subject"] == "3 new papers for <script>x</script> — Wed 31 Dec 2025"
    assert all(m["List-Unsubscribe-Post"] is None for m in rendered(config, digests, None))


def test_documents_are_rendered_by_the_workers_and_for_profiles_no_longer_configured(
    filled_store: Store, tmp_path: Path
) -> None:
    config, digests = build(filled_store, tmp_path)
    inline = tmp_path / "inline"
    write_outputs(replace(config, digests=inline), filled_store, digests)
    # The same documents from two worker processes, and a digest whose profile left the config.
    gone = digest(profile("gone", title="Gone"), papers_about(list(filled_store.iter_papers()), "diffusion", limit=1))
    workers = ProcessRunner(2)
    written = write_outputs(replace(config, shard_size=2), filled_store, [*digests, gone], runner=workers)
    documents = [p for p in written if p.is_relative_to(config.digests)]
    made = {p.relative_to(config.digests).as_posix(): p.read_bytes() for p in documents}
    assert made.pop("gone/2025-12-31.md").startswith(b"# Gone")
    assert made == {p.relative_to(inline).as_posix(): p.read_bytes() for p in inline.rglob("*.md")}


def test_documents_and_the_folders_naming_them_are_flushed_to_disk(
    filled_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Markdown document is written once, when its digest is built: its bytes and its name
    must survive a power cut. Pages and feeds are rendered again by the next build."""
    config, digests = build(filled_store, tmp_path)
    flushed: list[Path] = []
    real = publish.sync_folder
    monkeypatch.setattr(publish, "sync_folder", lambda folder: (flushed.append(folder), real(folder)))
    written = write_outputs(config, filled_store, digests)
    documents = [p for p in written if p.is_relative_to(config.digests)]
    expected = {config.digests.parent, config.digests, *(p.parent for p in documents)}
    assert documents and sorted(set(flushed)) == sorted(expected)
    assert all(flushed.count(p.parent) == 1 for p in documents)  # a profile's folder once (the root once a shard)
    flushed.clear()
    assert not [p for p in write_outputs(config, filled_store, digests) if p.is_relative_to(config.digests)]
    assert flushed == []  # nothing written, nothing to flush


def test_a_shard_sends_each_paper_once_and_nothing_else_changes(filled_store: Store, tmp_path: Path) -> None:
    config, _ = build(filled_store, tmp_path)
    everything = config.profiles[0]
    loaded = [filled_store.load_digest(everything, DAY) for _ in range(3)]  # three copies of every paper
    entries = filled_store.digest_entries(everything.id, 10)
    assert loaded[0] is not None and loaded[0].items[0].paper is not entries[0].item.paper
    shared = SharedPapers()
    digests_sent = [shared.digest(d) for d in loaded if d is not None]
    entries_sent = [replace(e, item=shared.item(e.item)) for e in entries]
    assert digests_sent == loaded and entries_sent == entries  # equal objects merged, nothing else
    assert digests_sent[0] is digests_sent[2] and entries_sent[0].item.paper is digests_sent[1].items[0].paper
    assert len(pickle.dumps((digests_sent, entries_sent))) * 2 < len(pickle.dumps((loaded, entries)))


def test_no_digest_yet_still_gives_feeds_and_a_site(filled_store: Store, tmp_path: Path) -> None:
    config = config_for(tmp_path, profile())
    written = write_outputs(config, filled_store, [])
    assert (config.feeds / "continual-learning.atom") in written and (config.site / "index.html") in written
    assert not config.outbox.exists() and not config.digests.exists()
    assert DAY.isoformat() not in (config.site / "index.html").read_text()


def test_write_if_changed(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b.txt"
    assert write_if_changed(path, "one")
    assert not write_if_changed(path, b"one")
    assert write_if_changed(path, "two") and path.read_text() == "two"


def test_folders_are_made_when_missing_even_after_a_first_write(tmp_path: Path) -> None:
    site, kept = tmp_path / "site" / "feeds" / "p.atom", tmp_path / "feeds" / "deep" / "p.atom"
    assert write_if_changed(site, "one") and copy_if_changed(site, kept, b"one")
    assert kept.read_bytes() == b"one" and kept.stat().st_ino == site.stat().st_ino  # a hard link
    shutil.rmtree(tmp_path / "site")
    shutil.rmtree(tmp_path / "feeds")  # someone cleaned the folders between two builds
    assert write_if_changed(site, "two") and copy_if_changed(site, kept, b"two")
    assert site.read_text() == kept.read_text() == "two" and kept.stat().st_ino == site.stat().st_ino
    assert oct(site.stat().st_mode & 0o777) == oct(0o644)
    (tmp_path / "blocked").write_text("")  # a file where a folder should be: named as such
    with pytest.raises(FileExistsError):
        copy_if_changed(site, tmp_path / "blocked" / "p.atom", b"two")
    with pytest.raises(FileExistsError):
        write_if_changed(tmp_path / "blocked" / "p.rss", "two")


@pytest.mark.parametrize(
    ("step", "error"),
    [
        ("fsync", OSError(5, "Input/output error")),  # the data is half-way to the disk
        ("fchmod", KeyboardInterrupt()),  # not an Exception: the clean-up must still run
        ("replace", OSError(28, "No space left on device")),  # the rename itself fails
    ],
)
def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str, error: BaseException
) -> None:
    path = tmp_path / "feed.atom"
    write_atomic(path, "old content")
    new = tmp_path / "new.atom"  # a file that did not exist before the failed write
    calls: list[str] = []

    def fail(*args: object) -> None:
        calls.append(step)
        raise error

    monkeypatch.setattr(files.os, step, fail)
    for target in (path, new):
        with pytest.raises(type(error)):
            write_atomic(target, "new content " * 10_000)
    monkeypatch.undo()
    assert calls == [step, step]  # the write really got as far as `step`, twice
    assert path.read_text() == "old content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feed.atom"]  # no .feed.atom.*.tmp, no new.atom
    write_atomic(path, "new content")  # and the next write works
    assert path.read_text() == "new content" and sorted(p.name for p in tmp_path.iterdir()) == ["feed.atom"]


def dead_pid() -> int:
    """The id of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_publish_removes_only_stale_temporary_files_of_its_own(filled_store: Store, tmp_path: Path) -> None:
    config = config_for(tmp_path, profile())
    hour_ago = time.time() - 3600
    gone = dead_pid()
    stale = [
        config.site / "feeds" / ".all.rss.ab12cd34.tmp",  # a 33 MB feed half-written when a build was killed
        config.feeds / f".all.atom.{gone}.xyz_9876.tmp",
        config.feeds / f".all.json.{gone}.link",
        config.digests / "continual-learning" / f".2025-12-31.md.{gone}.q1w2e3r4.tmp",
        config.outbox / ".2025-12-31_x_0123456789ab.eml.k9j8h7g6.tmp",
    ]
    kept = [
        config.site / "feeds" / ".all.rss.zz99yy88.tmp",  # young: perhaps another build, writing now
        config.feeds / f".all.atom.{os.getppid()}.abcd1234.tmp",  # old, but its process is running
        config.feeds / f".all.json.{os.getppid()}.link",
        config.feeds / ".all.rss.tmp",  # not a name we make
        config.feeds / "notes.tmp",
        config.feeds / ".all.atom.ABCD1234.tmp",
        config.site / ".hidden",
        config.site / "feeds" / "all.rss.lock",
    ]
    for path in stale + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"<rss>half a feed")
        if path != kept[0]:
            os.utime(path, (hour_ago, hour_ago))
    write_outputs(config, filled_store, [])
    assert [path.exists() for path in stale] == [False] * len(stale)
    assert [path.exists() for path in kept] == [True] * len(kept)
    assert (config.feeds / "all.rss").exists() and (config.site / "index.html").exists()
    # What a publish writes itself never lingers either.
    hidden = {p for folder in (config.feeds, config.site, config.digests) for p in folder.rglob(".*")}
    assert hidden - set(kept) == {config.site / ".nojekyll"}
