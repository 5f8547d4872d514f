"""The web side on a socket: uvicorn in a thread of the service's process.

`WebServer(app, "127.0.0.1:8080").start()` binds the address itself first (so a port in
use is a one-line error, and port 0 picks a free one: `port`), then serves until `stop`,
which lets requests in progress finish. Signals are the service's to handle (uvicorn
installs none outside the main thread). No access log: the paths of the web side carry
tokens, which do not belong in logs. `X-Forwarded-For` is believed only from this machine
(a reverse proxy in front, as the README shows), so rate limits count real clients.

HTTP is parsed by httptools (llhttp, in C) rather than h11: under 100 concurrent clients
it serves more requests per CPU second (bench/RESULTS.md, "Web side"). llhttp sets no
bound on the request line and headers, so `BoundedHead` keeps the one h11 had
(`MAX_HEAD`): a larger head gets a 400 and the connection closed, before its end arrives.
"""

from __future__ import annotations

import socket
import threading
import time

import httptools
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from digest.config import split_listen
from digest.web import WebUnavailable

STARTUP_SECONDS = 10.0
GRACEFUL_SECONDS = 10
MAX_HEAD = 16 * 1024  # request line and headers, bytes


class BoundedHead(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing a request line and headers over `MAX_HEAD` bytes.

    A whole head is measured when it ends (its URL, names and values); one still arriving is
    measured by the bytes received since it began, so an endless header is cut off too."""

    _head_done = False
    _head_bytes = 0  # received while the head is incomplete
    _head_size = 0  # of the URL, names and values parsed so far

    def data_received(self, data: bytes) -> None:
        if not self._head_done:
            self._head_bytes += len(data)
        super().data_received(data)
        if not self._head_done and self._head_bytes > MAX_HEAD and not self.transport.is_closing():
            self.send_400_response("Invalid HTTP request received.")

    def on_message_begin(self) -> None:
        self._head_done, self._head_size = False, 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._head_size > MAX_HEAD:
            raise httptools.HttpParserError("request line and headers too large")  # uvicorn answers 400
        self._head_done, self._head_bytes = True, 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._head_done = False
        super().on_message_complete()


class WebServer:
    """uvicorn serving `app` on `listen` (`HOST:PORT`, `[::1]:PORT` for IPv6) in a thread."""

    def __init__(self, app: ASGIApp, listen: str) -> None:
        self.app = app
        self.host, port = split_listen(listen)
        self.requested_port = int(port)
        self.config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            server_header=False,
            proxy_headers=True,
            forwarded_allow_ips="127.0.0.1,::1",
            lifespan="off",
            timeout_graceful_shutdown=GRACEFUL_SECONDS,
            http=BoundedHead,
        )
        self.server = uvicorn.Server(self.config)
        self.socket: socket.socket | None = None
        self.thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self.socket is not None, "start() first"
        port: int = self.socket.getsockname()[1]
        return port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> WebServer:
        """Bind, then serve in a thread; `WebUnavailable` when the address cannot be had."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.requested_port))
        except OSError as exc:
            sock.close()
            raise WebUnavailable(f"cannot listen on {self.host}:{self.requested_port}: {exc.strerror or exc}") from None
        sock.listen(self.config.backlog)
        sock.setblocking(False)
        self.socket = sock
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, name="web", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + STARTUP_SECONDS
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise WebUnavailable(f"the web side did not start on {self.host}:{self.requested_port}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop accepting, let requests in progress finish (at most `GRACEFUL_SECONDS`), close."""
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(GRACEFUL_SECONDS + 5)
            self.thread = None
        if self.socket is not None:
            self.socket.close()
            self.socket = None
        close = getattr(self.app, "close", None)  # the application's own connections (`Guard.close`)
        if callable(close):
            close()

    def __enter__(self) -> WebServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_web(app: ASGIApp, listen: str) -> WebServer:
    return WebServer(app, listen).start()
