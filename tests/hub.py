"""Loopback stand-ins for the Hub's Daily Papers API, well-behaved and hostile.

`PagedListing` is a werkzeug handler for pytest-httpserver that pages listing days the
way the Hub does (`limit`, default 50 and at most 100, and the page index `p`), with an
ETag per page. `gzip_bomb` is a valid gzip body that inflates a thousandfold.
`DrippingServer` is a bare socket server that sends its answer a byte at a time, headers
included (werkzeug always writes its headers at once).
"""

from __future__ import annotations

import functools
import hashlib
import json
import socket
import struct
import threading
import zlib
from dataclasses import dataclass, field
from typing import Any

from werkzeug import Request, Response

HUB_DEFAULT_LIMIT = 50
HUB_MAX_LIMIT = 100


def paper_item(arxiv: str, title: str, upvotes: int = 1) -> dict[str, Any]:
    """One listing item in the API's shape."""
    paper = {
        "id": arxiv,
        "title": title,
        "summary": f"About {title}.",
        "authors": [{"name": "Ada Lovelace"}, {"name": "Alan Turing"}],
        "publishedAt": "2025-12-30T12:00:00.000Z",
        "upvotes": upvotes,
    }
    return {"paper": paper, "title": title, "numComments": 4, "publishedAt": "2026-01-02T02:00:00.000Z"}


def listed_on(item: dict[str, Any], day: str) -> dict[str, Any]:
    """The item as the API gives it within a week's or a month's listing: saying its listing day."""
    return {**item, "paper": {**item["paper"], "submittedOnDailyAt": f"{day}T09:00:00.000Z"}}


def day_of_papers(count: int, *, series: int = 1) -> list[dict[str, Any]]:
    """`count` distinct papers, `2601.{series}{n:04d}`; another series gives other papers."""
    return [paper_item(f"2601.{series}{n:04d}", f"Paper {n} Of Series {series}") for n in range(1, count + 1)]


@dataclass(frozen=True, slots=True)
class Asked:
    """One request the listing answered: which page, how many items, whether it was conditional."""

    day: str
    page: int
    limit: int
    conditional: bool
    status: int


@dataclass(slots=True)
class PagedListing:
    """Serves `days` (a date, week or month -> items) page by page like the Hub; change `days` between fetches.

    `etags=False` leaves the ETag off the last page of a day. `between_pages`, when set, is
    called after each page is served (a test moves the listing while it is paged).
    """

    days: dict[str, list[Any]]
    etags: bool = True
    asked: list[Asked] = field(default_factory=list)
    between_pages: Any = None

    def __call__(self, request: Request) -> Response:
        # A day (`date=2026-01-02`), or the API's week and month queries (`week=2026-W01`, `month=2025-12`).
        day = request.args.get("date") or request.args.get("week") or request.args.get("month") or ""
        limit = min(int(request.args.get("limit", HUB_DEFAULT_LIMIT)), HUB_MAX_LIMIT)
        page = int(request.args.get("p", 0))
        items = self.days.get(day, [])
        chunk = items[page * limit : (page + 1) * limit]
        body = json.dumps(chunk)
        etag = f'"{hashlib.sha256(body.encode()).hexdigest()[:16]}"'
        last = len(chunk) < limit
        conditional = "If-None-Match" in request.headers
        headers = {"ETag": etag} if self.etags or not last else {}
        if conditional and request.headers["If-None-Match"] == etag:
            response = Response(status=304, headers=headers)
        else:
            response = Response(body, content_type="application/json", headers=headers)
        self.asked.append(Asked(day, page, limit, conditional, response.status_code))
        if self.between_pages:
            self.between_pages(self, page)
        return response

    def pages_asked(self) -> list[tuple[int, bool]]:
        """(page, conditional) of every request, in order."""
        return [(a.page, a.conditional) for a in self.asked]


@functools.cache
def gzip_bomb(mebibytes: int = 1024) -> bytes:
    """A valid gzip body of about `mebibytes` KB that inflates to `mebibytes` MiB of zeros.

    Each MiB is compressed once and repeated: after a full flush the compressor starts
    afresh, so every further MiB compresses to the same bytes.
    """
    block = bytes(1 << 20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    segment = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH) == segment
    crc = 0
    for _ in range(mebibytes):
        crc = zlib.crc32(block, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = struct.pack("<II", crc, (mebibytes << 20) & 0xFFFFFFFF)
    return header + segment * mebibytes + compressor.flush(zlib.Z_FINISH) + trailer


class DrippingServer:
    """A server on 127.0.0.1 that answers every request a byte every `interval` seconds,
    status line and headers first, until its whole answer is out or it is stopped."""

    def __init__(self, answer: bytes, interval: float = 0.1) -> None:
        self.answer = answer
        self.interval = interval
        self.connections = 0
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> DrippingServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            with conn:
                conn.recv(65536)  # the request: one read is enough for a GET on loopback
                for byte in self.answer:
                    if self._stop.wait(self.interval):
                        return
                    try:
                        conn.sendall(bytes([byte]))
                    except OSError:
                        break  # the client hung up
