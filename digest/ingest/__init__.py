"""Sources of papers: each turns one input into a `Dump`. `SOURCES` is their registry.

A `Source` says what its inputs look like (`sniff`, on the first bytes and the file
name), and how one is read (`read`): its identity (content hashes, so the same dump is
stored once) and how to parse it (only when its content is new). The pipeline tries each
registered source in order and takes the first that recognises a file; the text dump
comes last and takes anything else, rejecting what is not a dump.

Adding a source is a parser (and, if it is fetched, a fetcher) and one `register(Source(...))`.
Nothing here reads files or touches the store: the pipeline hands over bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Literal

from digest.ingest.common import NotADump
from digest.ingest.hf_api import (
    API_KIND,
    api_content_hash,
    api_listing_day,
    decode_api_response,
    looks_like_api_response,
    parse_api_items,
)
from digest.ingest.hf_dump import TEXT_KIND, content_hash, decode_dump, legacy_content_hash, parse_dump
from digest.models import Dump


@dataclass(frozen=True, slots=True)
class ReadContext:
    """What a source may need to read one input: its names, today, and a year given by the user."""

    filename: str  # the file's own name (dates can be in it)
    label: str  # how messages name the input
    today: date
    year: int | None = None


@dataclass(frozen=True, slots=True)
class Reading:
    """One input as a source read it: its identity, and how to parse it.

    `hashes` are the content hash, then any older hash the same content was stored under;
    the input is new when none of them is stored. `parse` is called only then.
    """

    hashes: tuple[str, ...]
    parse: Callable[[], Dump]


@dataclass(frozen=True, slots=True)
class Source:
    """A kind of input (see the module docstring). `unit` is how its problems point into
    it: by line, or by item number."""

    kind: str
    unit: Literal["line", "item"]
    sniff: Callable[[bytes, str], bool]
    read: Callable[[bytes, ReadContext], Reading]


SOURCES: list[Source] = []


def register(source: Source) -> Source:
    """Add a source, tried before those registered earlier (the text dump stays last)."""
    unregister(source.kind)
    SOURCES.insert(0, source)
    return source


def unregister(kind: str) -> None:
    SOURCES[:] = [s for s in SOURCES if s.kind != kind]


def source_for(data: bytes, filename: str) -> Source:
    """The first registered source that recognises the input."""
    for source in SOURCES:
        if source.sniff(data, filename):
            return source
    raise NotADump("not an input any source reads")


def source_of_kind(kind: str) -> Source | None:
    return next((s for s in SOURCES if s.kind == kind), None)


def _read_text(data: bytes, context: ReadContext) -> Reading:
    text = decode_dump(data)
    legacy = legacy_content_hash(text)  # stored by older versions for text with blank lines at an end
    return Reading(
        hashes=(content_hash(text),) + ((legacy,) if legacy else ()),
        parse=lambda: parse_dump(text, context.label, today=context.today, year=context.year, from_file=True),
    )


def _read_api(data: bytes, context: ReadContext) -> Reading:
    items = decode_api_response(data)
    day = api_listing_day(context.filename, items, today=context.today)
    return Reading(hashes=(api_content_hash(items, day),), parse=lambda: parse_api_items(items, context.label, day))


register(Source(TEXT_KIND, "line", lambda data, name: True, _read_text))
register(Source(API_KIND, "item", looks_like_api_response, _read_api))

__all__ = ["SOURCES", "NotADump", "ReadContext", "Reading", "Source", "register", "source_for", "unregister"]
