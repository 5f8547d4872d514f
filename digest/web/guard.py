"""What every request of the web side is held to and every response carries.

A pure ASGI wrapper around the whole application (so it covers error pages too):

- a request body is read whole, up to `MAX_BODY` bytes, before the application sees it
  (the forms are a few hundred bytes); a larger one, announced or not, gets a 413 and
  never reaches a parser;
- every response gets a strict Content-Security-Policy (nothing loads but the page's
  own style blocks, by hash; forms post only to this origin; no framing),
  `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer` (a token in a page's
  address never leaves in a Referer), `X-Frame-Options: DENY` and `Cache-Control:
  no-store` (the pages are one reader's).

Never looks at what a request asks for; the application does.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Iterable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY = 16 * 1024
_STYLE = re.compile(r"<style>(.*?)</style>", re.S)


def style_hashes(page: str) -> list[str]:
    """The CSP sources that allow exactly the `<style>` blocks of `page`."""
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(block.encode("utf-8")).digest()).decode("ascii") + "'"
        for block in dict.fromkeys(_STYLE.findall(page))
    ]


def security_headers(styles: Iterable[str]) -> list[tuple[bytes, bytes]]:
    allowed = " ".join(styles) or "'none'"
    policy = (
        f"default-src 'none'; style-src {allowed}; img-src data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    headers = {
        "content-security-policy": policy,
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        "x-frame-options": "DENY",
        "cache-control": "no-store",
        "x-robots-tag": "noindex, nofollow",
    }
    return [(name.encode("ascii"), value.encode("ascii")) for name, value in headers.items()]


class Guard:
    """The ASGI wrapper described in the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        headers: list[tuple[bytes, bytes]],
        max_body: int = MAX_BODY,
        on_close: Callable[[], None] = lambda: None,
    ) -> None:
        self.app = app
        self.headers = headers
        self.names = frozenset(name for name, _ in headers)  # the application's own values give way to these
        self.max_body = max_body
        self.on_close = on_close

    def close(self) -> None:
        """Release what the application holds (its database connections), once it is stopped."""
        self.on_close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in self.names]
                message = {**message, "headers": kept + self.headers}
            await send(message)

        body = await self._read_body(scope, receive)
        if body is None:
            await _too_large(send_guarded)
            return
        await self.app(scope, _replay(body, receive), send_guarded)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole body, or None when it is (or says it is) larger than `max_body`."""
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            text: str = value.decode("latin-1").strip()
            return text
    return None


async def _too_large(send: Any) -> None:
    body = b"Request body too large\n"
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
