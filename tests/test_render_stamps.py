"""Page stamps: a page is rendered again exactly when what it is made of changed.

The site's pages each end in a stamp of their inputs (`digest.render.stamps`):
`plan_profile_pages` gives every page's stamp, and only the pages whose planned stamp is not
the one on disk are rendered (`render_profile_pages`, from what `shown_in_full` names).
These tests hold that rule from both sides: nothing changed renders nothing,
and every kind of change (a new day, a paper's upvotes, the profile, a template, the site's
address) renders the pages that show it, and those only, with the same bytes as a full
render. `tests/test_publish.py` holds the publisher's side (stamps read from disk).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from jinja2 import UndefinedError
from render_data import DAY, digest, profile

from digest.models import Digest, Profile
from digest.render.links import SiteLinks
from digest.render.site import (
    ProfilePages,
    full_history,
    plan_profile_pages,
    render_profile_pages,
    shown_in_full,
)
from digest.render.stamps import STAMP_TAIL, page_stamp, stamp_in, with_stamp
from digest.render.templates import sources_environment, template_environment
from digest.store import Store

LINKS = SiteLinks("https://example.org/paper-digest/")


def history(store: Store, prof: Profile, count: int = 4) -> list[Digest]:
    """`count` digests of `prof`, newest first, each of different papers."""
    papers = list(store.iter_papers())
    return [digest(prof, tuple(papers[3 * n : 3 * n + 3]), day=DAY - timedelta(days=n)) for n in range(count)]


def render(prof: Profile, digests: list[Digest], stamps=None, **options) -> ProfilePages:
    """As the publisher renders: plan every page, keep those whose stamp is on disk, and
    render the rest from a history holding in full only what `shown_in_full` names."""
    settings = {"links": LINKS, "site_title": "Paper Digest", "env": template_environment()} | options
    full = full_history(digests)
    plan = plan_profile_pages(prof, full, **settings)
    todo = {path: stamp for path, stamp in plan.items() if (stamps or {}).get(path) != stamp}
    days, _ = shown_in_full(prof, full, todo)
    needed = replace(full, digests={day: full.digests[day] for day in days})
    return render_profile_pages(prof, needed, todo, **settings)


def stamps_of(pages: dict[str, bytes]) -> dict[str, str]:
    """What `publish.page_stamps` would read from these pages on disk."""
    found = {path: stamp_in(data[-STAMP_TAIL:]) for path, data in pages.items()}
    assert all(found.values()), "a page without a stamp"
    return found  # type: ignore[return-value]


def test_every_page_ends_in_its_stamp_and_the_stamp_is_read_back() -> None:
    stamp = "ab" * 32
    page = with_stamp("<html></html>", stamp)
    assert page == "<html></html>\n<!-- paper-digest inputs " + stamp + " -->\n"
    assert with_stamp("<p>\n", stamp) == "<p>\n<!-- paper-digest inputs " + stamp + " -->\n"
    assert stamp_in(page.encode()[-STAMP_TAIL:]) == stamp
    assert stamp_in(page.encode() + b"edited") is None  # text after it: the page was changed by hand
    assert stamp_in(b"<!-- paper-digest inputs " + b"zz" * 32 + b" -->\n") is None
    assert stamp_in(b"") is None


def test_a_stamp_covers_the_inputs_and_the_templates() -> None:
    env = template_environment()
    assert page_stamp(env, "a", 1) == page_stamp(env, "a", 1)
    assert page_stamp(env, "a", 1) != page_stamp(env, "a", 2)
    other = sources_environment((("site/digest.html", "{{ body }}"),))
    assert page_stamp(env, "a", 1) != page_stamp(other, "a", 1)
    # the same templates given another way (a folder or their sources) stamp alike
    same = sources_environment(())
    assert page_stamp(env, "a", 1) == page_stamp(same, "a", 1)


def test_nothing_changed_renders_no_page(filled_store: Store) -> None:
    prof = profile()
    digests = history(filled_store, prof)
    first = render(prof, digests)
    again = render(prof, digests, stamps_of(first.pages))
    assert again.pages == {}
    assert again.index == first.index  # the index's entry is made all the same


def test_a_new_day_renders_its_page_the_one_before_it_and_the_archive(filled_store: Store) -> None:
    prof = profile()
    digests = history(filled_store, prof)
    first = render(prof, digests[1:])
    after = render(prof, digests, stamps_of(first.pages))
    folder = f"digests/{prof.id}/"
    assert sorted(after.pages) == sorted(
        folder + name for name in (f"{DAY}.html", f"{DAY - timedelta(days=1)}.html", "index.html")
    )
    assert after.pages == {path: data for path, data in render(prof, digests).pages.items() if path in after.pages}


def test_a_changed_paper_renders_the_pages_that_show_it(filled_store: Store) -> None:
    prof = profile()
    digests = history(filled_store, prof)
    first = render(prof, digests)
    oldest = digests[-1]
    upvoted = replace(oldest.items[0], paper=replace(oldest.items[0].paper, upvotes=999))
    changed = [*digests[:-1], replace(oldest, items=(upvoted, *oldest.items[1:]))]
    after = render(prof, changed, stamps_of(first.pages))
    folder = f"digests/{prof.id}/"
    # its own page, the newer one (whose "older" link shows it) and the archive
    assert sorted(after.pages) == sorted(
        folder + name for name in (f"{oldest.date}.html", f"{oldest.date + timedelta(days=1)}.html", "index.html")
    )
    assert b"999" in after.pages[f"{folder}{oldest.date}.html"]


def test_the_profile_the_templates_and_the_site_address_render_every_page_again(filled_store: Store) -> None:
    prof = profile()
    digests = history(filled_store, prof)
    first = render(prof, digests)
    stamps = stamps_of(first.pages)
    retitled = replace(prof, title="Lifelong learning")
    renamed = [replace(d, profile=retitled) for d in digests]
    assert sorted(render(retitled, renamed, stamps).pages) == sorted(first.pages)
    changed = sources_environment((("site/base.html", "{% block main %}{% endblock %}"),))
    assert sorted(render(prof, digests, stamps, env=changed).pages) == sorted(first.pages)
    moved = SiteLinks("https://example.net/")
    assert sorted(render(prof, digests, stamps, links=moved).pages) == sorted(first.pages)
    assert render(prof, digests, stamps, env=template_environment()).pages == {}


def test_a_digest_page_cannot_show_the_latest_digest(filled_store: Store) -> None:
    # A page that showed the latest digest would change every day; its `profile` has no
    # `latest`, and a template that asks for it fails plainly (undefined is an error).
    prof = profile()
    digests = history(filled_store, prof, 2)
    env = sources_environment((("site/digest.html", "{{ profile.latest }}"),))
    with pytest.raises(UndefinedError, match="latest"):
        render(prof, digests, env=env)
    archive = sources_environment((("site/profile.html", "{{ profile.latest.label }} {{ profile.days }}"),))
    page = render(prof, digests, env=archive).pages[f"digests/{prof.id}/index.html"]
    assert page.startswith(b"Wed 31 Dec 2025 2\n")


def test_a_profile_moved_to_another_line_of_the_config_renders_nothing_again(filled_store: Store) -> None:
    prof = profile(line=12)
    digests = history(filled_store, prof)
    first = render(prof, digests)
    moved = replace(prof, line=40)
    assert render(moved, [replace(d, profile=moved) for d in digests], stamps_of(first.pages)).pages == {}


def test_a_template_folder_with_other_files_in_it_still_stamps(tmp_path: Path, filled_store: Store) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "state.db").write_bytes(b"SQLite format 3\x00\xd3\xff")  # not text: no template
    prof = profile()
    pages = render(prof, history(filled_store, prof, 1), env=template_environment(folder)).pages
    assert all(stamp_in(data[-STAMP_TAIL:]) for data in pages.values())


def test_a_templates_text_is_read_once_so_a_stamp_covers_what_rendered_the_page(tmp_path: Path) -> None:
    # Jinja reads a template when first used; the stamp reads every template when first
    # asked. Both read the environment's copy, made when it was: a file edited in between
    # cannot give a page rendered from one text and stamped with the other.
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "note.txt").write_text("first", encoding="utf-8")
    env = template_environment(folder)
    (folder / "note.txt").write_text("second", encoding="utf-8")
    assert env.get_template("note.txt").render() == "first"
    assert page_stamp(env, "x") == page_stamp(sources_environment((("note.txt", "first"),)), "x")
    assert page_stamp(env, "x") != page_stamp(sources_environment((("note.txt", "second"),)), "x")


def test_subscribers_and_the_owner_are_no_part_of_a_page(filled_store: Store) -> None:
    prof = profile(owner="owner@example.org")
    digests = history(filled_store, prof)
    first = render(prof, digests)
    changed = replace(prof, subscribers=("new@example.org",), owner="other@example.org")
    assert render(changed, [replace(d, profile=changed) for d in digests], stamps_of(first.pages)).pages == {}
    assert b"example.org" not in b"".join(first.pages.values()).replace(LINKS.base.encode(), b"")
