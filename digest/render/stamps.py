"""Page stamps: what a site page is made of, as a SHA-256 written at the page's end, so a
build renders again only the pages whose inputs changed instead of a profile's whole
history every day (bench/history.py).

A stamp covers this program (every `.py` file of the `digest` package as it was when this
module was imported, Python's version and the versions of the libraries that shape a page), the templates
an environment renders with (read once per environment, as Jinja caches them: `auto_reload`
is off), and the page's inputs as `repr`: frozen dataclasses of tuples, strings, numbers and
dates (for a digest or roll-up, its record: a version that changes with it, see
`site.plan_profile_pages`), so the text is the same in every process. An input whose repr
varies between processes (a set) would give a stamp that never matches: the page is always
rendered, never wrongly kept.

Pure but for reading the package's own files once; never reads or writes a page (`publish`
reads the stamps of the pages on disk).
"""

from __future__ import annotations

import hashlib
import re
import sys
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path

from jinja2 import Environment

STAMP_TAIL = 128  # a page's or a feed's last bytes, which hold its stamp
_STAMP = re.compile(rb"<!-- paper-digest inputs ([0-9a-f]{64}) -->\n\Z")
# A JSON Feed has no comments; an extension member (a name starting with "_") carries it.
_JSON_STAMP = re.compile(rb'"_paper_digest_inputs": "([0-9a-f]{64})"\n}\n\Z')
_LIBRARIES = ("jinja2", "markdown", "markupsafe", "nh3", "feedgen", "lxml", "python-dateutil")  # shape pages, feeds


def _program() -> bytes:
    found = hashlib.sha256(f"Python {sys.version}\0".encode())
    package = Path(__file__).resolve().parent.parent
    # An install without sources (compiled files only) is stamped by its compiled files.
    files = sorted(package.rglob("*.py")) or sorted(package.rglob("*.pyc"))
    if not files:
        raise RuntimeError(f"{package}: no code to stamp pages with")
    for path in files:
        found.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    for name in _LIBRARIES:
        found.update(f"{name} {version(name)}\0".encode())
    return found.digest()


# Read at import, so that a process whose package is upgraded under it keeps stamping
# with the code it runs, not the code on disk.
_PROGRAM = _program()


def program_identity() -> str:
    """This process's program, as its stamps cover it (for a worker to check it runs the
    coordinator's: `tasks.publish_shard`)."""
    return _PROGRAM.hex()


@lru_cache(maxsize=16)
def _renderer(env: Environment) -> bytes:
    """The program and every template `env` can load."""
    found = hashlib.sha256(_PROGRAM)
    assert env.loader is not None
    for name in sorted(env.list_templates()):
        source, _, _ = env.loader.get_source(env, name)
        found.update(name.encode() + b"\0" + source.encode() + b"\0")
    return found.digest()


def page_stamp(env: Environment, *inputs: object) -> str:
    """The stamp of a page rendered by `env` from `inputs` (or from their `fingerprint`s)."""
    return hashlib.sha256(_renderer(env) + fingerprint(inputs).encode()).hexdigest()


def fingerprint(value: object) -> str:
    """`value` as a SHA-256 of its `repr`: a page's input hashed once for the pages that share it."""
    return hashlib.sha256(repr(value).encode("utf-8", "surrogatepass")).hexdigest()


def with_stamp(page: str, stamp: str) -> str:
    """`page` ending in its stamp (an HTML comment on a line of its own)."""
    return f"{page}{'' if page.endswith(chr(10)) else chr(10)}<!-- paper-digest inputs {stamp} -->\n"


def with_feed_stamp(kind: str, feed: bytes, stamp: str) -> bytes:
    """A feed of format `kind` ending in its stamp: an XML comment after an Atom or RSS
    document, the last member of a JSON Feed's object. A feed of another format is left
    as it is (without a stamp it is always rendered)."""
    if kind in ("atom", "rss"):
        return with_stamp(feed.decode("utf-8"), stamp).encode("utf-8")
    if kind == "json" and feed.endswith(b"\n}\n"):
        return feed[:-3] + f',\n  "_paper_digest_inputs": "{stamp}"\n}}\n'.encode()
    return feed


def stamp_in(tail: bytes) -> str | None:
    """The stamp a page's or a feed's last `STAMP_TAIL` bytes end in, if any."""
    found = _STAMP.search(tail) or _JSON_STAMP.search(tail)
    return found.group(1).decode("ascii") if found else None
