"""Benchmark: the web side under 100 concurrent clients on loopback.

    .venv/bin/python bench/web.py [--requests 5000] [--clients 100]

Prepares a state database with `--requests` readers subscribed on the web side to one
open profile, each with a confirmation waiting; starts `digest serve --no-schedule`
(uvicorn, one process, as a deployment runs it) on 127.0.0.1; then, from this process,
`--clients` concurrent httpx clients (asyncio, keep-alive):

1. `GET /c/TOKEN`: the confirmation page of a different reader each time (a token checked,
   three reads, a page rendered);
2. `POST /u/TOKEN` with `List-Unsubscribe=One-Click`: the RFC 8058 one-click unsubscribe of
   a different reader each time (a token checked, one write transaction, fsync'd).

Counts requests per second and latencies, checks every answer was a 200, and checks that
the unsubscribes table holds exactly one row per POST (none lost). The client and the
server share the machine's cores; say so beside the numbers. Prints a Markdown table
for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digest.render.links import WebLinks  # noqa: E402
from digest.store import open_store  # noqa: E402

KEY = "bench-web-key-0123456789abcdef"
PROFILE = "bench"
NOW = datetime.now(UTC).replace(microsecond=0)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def prepare(folder: Path, port: int, count: int) -> tuple[list[str], list[str]]:
    """The config and database; the confirmation URLs and the unsubscribe URLs, one per reader."""
    (folder / "digest.toml").write_text(
        f'[web]\nlisten = "127.0.0.1:{port}"\nbase_url = "http://127.0.0.1:{port}/"\n'
        f'[[profiles]]\nid = "{PROFILE}"\ndescription = "machine learning"\nopen = true\n',
        encoding="utf-8",
    )
    store = open_store(folder / ".digest" / "state.db")
    links = WebLinks(f"http://127.0.0.1:{port}/", KEY.encode())
    expires = NOW + timedelta(hours=48)
    confirms, unsubscribes = [], []
    for n in range(count):
        reader = store.reader_id(f"reader{n}@example.org", create=True, at=NOW)
        assert reader is not None
        store.request_confirmation(PROFILE, reader, NOW, expires)
        store.confirm_subscription(PROFILE, reader, expires_at=expires, at=NOW, other_profiles=[])
        store.request_confirmation(PROFILE, reader, NOW, expires)  # a second request: the page shows it waiting
        confirms.append(links.confirm(PROFILE, reader, expires))
        unsubscribes.append(links.unsubscribe(PROFILE, reader))
    store.close()
    return confirms, unsubscribes


def start_server(folder: Path, port: int) -> subprocess.Popen[bytes]:
    environ = dict(os.environ) | {"DIGEST_SECRET_KEY": KEY}
    server = subprocess.Popen(
        [sys.executable, "-m", "digest", "serve", "--no-schedule"], cwd=folder, env=environ, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/subscribe", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("the web side did not start")


async def load(urls: list[str], clients: int, post: bool) -> tuple[float, list[float], list[int]]:
    """Every URL once, `clients` at a time: (seconds in all, latencies, status codes)."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for url in urls:
        queue.put_nowait(url)
    latencies: list[float] = []
    statuses: list[int] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def worker() -> None:
            while not queue.empty():
                url = queue.get_nowait()
                started = time.perf_counter()
                if post:
                    response = await client.post(url, data={"List-Unsubscribe": "One-Click"})
                else:
                    response = await client.get(url)
                latencies.append(time.perf_counter() - started)
                statuses.append(response.status_code)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return time.perf_counter() - started, latencies, statuses


def row(name: str, seconds: float, latencies: list[float], statuses: list[int]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[int(0.99 * (len(ordered) - 1))]
    ok = sum(status == 200 for status in statuses)
    return (
        f"| {name} | {len(statuses)} | {ok} | {seconds:.2f} | {len(statuses) / seconds:.0f} | "
        f"{statistics.median(ordered) * 1000:.0f} | {p99 * 1000:.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000, help="requests of each kind (default 5000)")
    parser.add_argument("--clients", type=int, default=100, help="concurrent clients (default 100)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        port = free_port()
        confirms, unsubscribes = prepare(folder, port, args.requests)
        server = start_server(folder, port)
        try:
            load_before = os.getloadavg()[0]
            get = asyncio.run(load(confirms, args.clients, post=False))
            post = asyncio.run(load(unsubscribes, args.clients, post=True))
        finally:
            server.terminate()
            server.wait(30)
        db = sqlite3.connect(folder / ".digest" / "state.db")
        recorded = db.execute("SELECT COUNT(*) FROM unsubscribes WHERE profile_id = ?", (PROFILE,)).fetchone()[0]
        db.close()
    cpus = os.cpu_count()
    print(f"Machine: {platform.machine()}, {cpus} CPUs, Python {platform.python_version()}, {NOW:%Y-%m-%d}.")
    print(f"Load average when it started: {load_before:.2f}. {args.clients} concurrent clients, this process;")
    print("the server: `digest serve --no-schedule` (uvicorn, h11, one process) on 127.0.0.1.")
    print()
    print("| request | sent | 200 | seconds | requests/s | median ms | p99 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(row("GET /c/TOKEN (confirmation page)", *get))
    print(row("POST /u/TOKEN (one-click unsubscribe)", *post))
    print()
    lost = len(unsubscribes) - recorded
    print(f"unsubscribes recorded: {recorded} of {len(unsubscribes)} POSTs ({lost} lost)")


if __name__ == "__main__":
    main()
