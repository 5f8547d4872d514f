"""Benchmark: the web side under 100 concurrent clients on loopback.

    .venv/bin/python bench/web.py [--requests 5000] [--clients 100] [--processes 2] [--client raw|httpx]

Prepares a state database with `--requests` readers subscribed on the web side to one
open profile, each with a confirmation waiting; starts `digest serve --no-schedule`
(uvicorn, one process, as a deployment runs it) on 127.0.0.1; then `--clients`
concurrent keep-alive connections, each sending its next request only once the answer
to the last one has been read whole (no pipelining):

1. `GET /c/TOKEN`: the confirmation page of a different reader each time (a token checked,
   three reads, a page rendered);
2. `POST /u/TOKEN` with `List-Unsubscribe=One-Click`: the RFC 8058 one-click unsubscribe of
   a different reader each time (a token checked, one write transaction, fsync'd).

The client and the server share the machine's cores, so the client is kept light: by
default (`--client raw`) the connections are plain asyncio sockets writing HTTP/1.1 by
hand and reading the status line, the headers and `Content-Length` bytes of body, spread
over `--processes` processes that start together. `--client httpx` is the earlier
client: httpx's AsyncClient in this one process (it spends about one core of its own on
100 connections). The CPU seconds the server and the clients used are printed beside
the table, so it shows who had the cores.

Counts requests per second and latencies, checks every answer was a 200, and checks that
the unsubscribes table holds exactly one row per POST (none lost). Prints a Markdown
table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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


Outcome = tuple[float, list[float], list[int], float]  # seconds, latencies, status codes, client CPU seconds


async def load_httpx(urls: list[str], clients: int, post: bool) -> Outcome:
    """Every URL once, `clients` at a time, with httpx in this process."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for url in urls:
        queue.put_nowait(url)
    latencies: list[float] = []
    statuses: list[int] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    cpu = time.process_time()
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
        return time.perf_counter() - started, latencies, statuses, time.process_time() - cpu


ONE_CLICK_BODY = b"List-Unsubscribe=One-Click"


def request_bytes(url: str, post: bool) -> bytes:
    parts = urlsplit(url)
    head = f"{'POST' if post else 'GET'} {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
    if not post:
        return (head + "\r\n").encode("ascii")
    head += f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(ONE_CLICK_BODY)}\r\n\r\n"
    return head.encode("ascii") + ONE_CLICK_BODY


async def raw_connections(host: str, port: int, requests: list[bytes], connections: int, start: Any) -> Outcome:
    """`connections` keep-alive sockets taking `requests` in turn; each waits for its whole answer."""
    opened = [await asyncio.open_connection(host, port) for _ in range(connections)]
    pending = iter(requests)
    latencies: list[float] = []
    statuses: list[int] = []

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for request in pending:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"\r\ncontent-length: *(\d+)", head, re.IGNORECASE)
            if length is None:
                raise SystemExit(f"an answer without Content-Length: {head[:200]!r}")
            await reader.readexactly(int(length[1]))
            latencies.append(time.perf_counter() - started)
            statuses.append(int(head[9:12]))
        writer.close()

    start.wait()  # every process has its connections open: go together
    began, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(connection(reader, writer) for reader, writer in opened))
    return time.perf_counter() - began, latencies, statuses, time.process_time() - cpu


def raw_process(host: str, port: int, requests: list[bytes], connections: int, start: Any, results: Any) -> None:
    try:
        results.put(asyncio.run(raw_connections(host, port, requests, connections, start)))
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, SystemExit) as exc:
        results.put(f"a client process failed: {exc!r}")  # the parent stops, rather than waiting


def load_raw(urls: list[str], clients: int, post: bool, processes: int) -> Outcome:
    """Every URL once, `clients` connections at a time spread over `processes` processes."""
    parts = urlsplit(urls[0])
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    context = multiprocessing.get_context("fork")
    start, results = context.Barrier(processes), context.Queue()
    shares = [[request_bytes(url, post) for url in urls[n::processes]] for n in range(processes)]
    workers = [
        context.Process(
            target=raw_process,
            args=(host, port, share, clients // processes + (n < clients % processes), start, results),
        )
        for n, share in enumerate(shares)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get() for _ in workers]
    for worker in workers:
        worker.join()
    failed = [outcome for outcome in outcomes if isinstance(outcome, str)]
    if failed:
        raise SystemExit(failed[0])
    seconds = max(outcome[0] for outcome in outcomes)  # they started together at the barrier
    latencies = [latency for outcome in outcomes for latency in outcome[1]]
    statuses = [status for outcome in outcomes for status in outcome[2]]
    return seconds, latencies, statuses, sum(outcome[3] for outcome in outcomes)


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) the process `pid` has used so far (Linux's /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    server: subprocess.Popen[bytes], urls: list[str], args: argparse.Namespace, post: bool
) -> tuple[Outcome, float]:
    """One kind of request: (seconds, latencies, status codes, the clients' CPU seconds), and the server's."""
    before = process_cpu(server.pid)
    if args.client == "httpx":
        outcome = asyncio.run(load_httpx(urls, args.clients, post))
    else:
        outcome = load_raw(urls, args.clients, post, args.processes)
    return outcome, process_cpu(server.pid) - before


def cpu_share(outcome: Outcome, server: float) -> str:
    seconds, clients = outcome[0], outcome[3]
    return (
        f"server {server:.1f} CPU s ({server / seconds:.2f} cores), "
        f"clients {clients:.1f} CPU s ({clients / seconds:.2f} cores)"
    )


def row(name: str, outcome: Outcome) -> str:
    seconds, latencies, statuses, _ = outcome
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
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw", help="the client (default raw)")
    parser.add_argument("--processes", type=int, default=2, help="client processes of the raw client (default 2)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        port = free_port()
        confirms, unsubscribes = prepare(folder, port, args.requests)
        server = start_server(folder, port)
        try:
            load_before = os.getloadavg()[0]
            get, get_server = measure(server, confirms, args, post=False)
            post, post_server = measure(server, unsubscribes, args, post=True)
        finally:
            server.terminate()
            server.wait(30)
        db = sqlite3.connect(folder / ".digest" / "state.db")
        recorded = db.execute("SELECT COUNT(*) FROM unsubscribes WHERE profile_id = ?", (PROFILE,)).fetchone()[0]
        db.close()
    cpus = os.cpu_count()
    print(f"Machine: {platform.machine()}, {cpus} CPUs, Python {platform.python_version()}, {NOW:%Y-%m-%d}.")
    clients = "httpx, this process" if args.client == "httpx" else f"raw sockets, {args.processes} processes"
    print(f"Load average when it started: {load_before:.2f}. {args.clients} concurrent clients ({clients});")
    print("the server: `digest serve --no-schedule` (uvicorn, one process) on 127.0.0.1.")
    print()
    print("| request | sent | 200 | seconds | requests/s | median ms | p99 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(row("GET /c/TOKEN (confirmation page)", get))
    print(row("POST /u/TOKEN (one-click unsubscribe)", post))
    print()
    lost = len(unsubscribes) - recorded
    print(f"unsubscribes recorded: {recorded} of {len(unsubscribes)} POSTs ({lost} lost)")
    print(f"CPU: GET {cpu_share(get, get_server)}; POST {cpu_share(post, post_server)}.")


if __name__ == "__main__":
    main()
