"""The output formats: one registry from which every list of formats derives.

A profile's `formats` (and their default, every known format), the feed kinds the site
links and autodiscovers, the files the publisher writes, and whether a profile gets an
email all come from `OUTPUT_FORMATS`. An entry names its kind, its file pattern, its
content type, its label and its renderer. The renderer is a callable, or a
"module:function" path imported on first use, so that reading the config never imports
the renderers.

Kinds and their renderers:

- `FEED`: `render(feed: FeedData, links: SiteLinks) -> bytes`, written to `path` under
  the site (`name` is a profile id, or `all` for the feed of every paper);
- `DOCUMENT`: `render(digest: Digest, env: jinja2.Environment) -> str`, one file per
  digest, written to `path` under `[digest] digests`; with a `rollup` renderer
  (`rollup(rollup: Rollup, env) -> str`), one file per weekly and monthly roll-up too,
  the period's key (`2025-W52`, `2025-12`) in place of the day;
- `EMAIL`: one message per subscriber, through the delivery ledger (`render/email.py`;
  no `path`).

Adding a format is a renderer, a template and one `register(OutputFormat(...))`. This
module never renders or writes anything itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class FormatKind(StrEnum):
    EMAIL = "email"
    FEED = "feed"
    DOCUMENT = "document"


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """One output format (see the module docstring)."""

    name: str
    kind: FormatKind
    label: str
    content_type: str
    path: str = ""  # "feeds/{name}.atom" for feeds, "{profile}/{day}.md" for documents
    renderer: Callable[..., Any] | str | None = None
    rollup: Callable[..., Any] | str | None = None  # a document format's renderer of roll-ups

    def render(self, *args: Any) -> Any:
        """Call the renderer (importing it the first time when it is a "module:function" path)."""
        return _call(self.renderer, self.name, args)

    def render_rollup(self, *args: Any) -> Any:
        """Call the roll-up renderer, as `render` calls the renderer."""
        return _call(self.rollup, self.name, args)

    def file(self, **fields: str) -> str:
        """The output's file, relative to its folder: `path` with `name`, `profile`, `day` filled in."""
        return self.path.format(**fields)


def _call(renderer: Callable[..., Any] | str | None, name: str, args: tuple[Any, ...]) -> Any:
    if isinstance(renderer, str):
        module, _, function = renderer.partition(":")
        found: Callable[..., Any] = getattr(importlib.import_module(module), function)
        return found(*args)
    if renderer is None:
        raise TypeError(f"the {name} format has no renderer for this")
    return renderer(*args)


OUTPUT_FORMATS: dict[str, OutputFormat] = {}


def register(output: OutputFormat) -> OutputFormat:
    """Add a format (or replace the one of that name); it keeps its place in the order."""
    OUTPUT_FORMATS[output.name] = output
    return output


def unregister(name: str) -> None:
    OUTPUT_FORMATS.pop(name, None)


def output_formats(kind: FormatKind | None = None) -> tuple[OutputFormat, ...]:
    """The registered formats, in registration order, optionally of one kind."""
    return tuple(f for f in OUTPUT_FORMATS.values() if kind is None or f.kind == kind)


def format_names() -> tuple[str, ...]:
    """Every format a profile can ask for (also a profile's default)."""
    return tuple(OUTPUT_FORMATS)


def chosen(formats: Iterable[str], kind: FormatKind) -> tuple[OutputFormat, ...]:
    """The formats of `kind` among a profile's `formats`, in registration order."""
    wanted = set(formats)
    return tuple(f for f in output_formats(kind) if f.name in wanted)


def wants(formats: Iterable[str], kind: FormatKind) -> bool:
    """Whether a profile's `formats` ask for any format of `kind`."""
    return bool(chosen(formats, kind))


register(OutputFormat("email", FormatKind.EMAIL, "Email", "message/rfc822"))
register(
    OutputFormat(
        "atom", FormatKind.FEED, "Atom", "application/atom+xml", "feeds/{name}.atom", "digest.render.feeds:atom_feed"
    )
)
register(
    OutputFormat(
        "rss", FormatKind.FEED, "RSS", "application/rss+xml", "feeds/{name}.rss", "digest.render.feeds:rss_feed"
    )
)
register(
    OutputFormat(
        "json",
        FormatKind.FEED,
        "JSON Feed",
        "application/feed+json",
        "feeds/{name}.json",
        "digest.render.feeds:json_feed",
    )
)
register(
    OutputFormat(
        "markdown",
        FormatKind.DOCUMENT,
        "Markdown",
        "text/markdown",
        "{profile}/{day}.md",
        "digest.render.markdown:render_markdown_document",
        "digest.render.rollups:render_rollup_markdown",
    )
)
