"""Benchmark: sending 1,000 digest emails through the ledger to a local SMTP server.

    .venv/bin/python bench/send.py [--messages 1000] [--runs 3] [--html-kb 40]
                                   [--connections 1,4,16] [--latency-ms 0,20]

Starts aiosmtpd (`python -m aiosmtpd`, a handler that accepts and discards, after
`--latency-ms` per message: 0 is aiosmtpd's own speed, 20 a relay's) in its own process
on 127.0.0.1 for each latency, then per run: a fresh state database with 100 profiles'
digests (10 subscribers each by default), and `send_digests` over `--connections` SMTP
connections at once (`[smtp] connections`), timed end to end (ledger rows, rendering
callback, SMTP, two ledger commits per message with fsync). The same batch is also
written to an outbox. Prints a Markdown table for bench/RESULTS.md (median of --runs runs).
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digest.config import SmtpSettings  # noqa: E402
from digest.deliver import Outgoing, outgoing_emails, send_digests  # noqa: E402
from digest.ingest.hf_dump import content_hash, decode_dump, parse_dump  # noqa: E402
from digest.models import Digest, Profile, Reason, ReasonKind, ScoredPaper  # noqa: E402
from digest.store import Store, open_store  # noqa: E402

DAY = date(2025, 12, 31)
NOW = datetime(2025, 12, 31, 7, tzinfo=UTC)
SEED = ROOT / "seeds" / "000_9d0724fe38360f6f.txt"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(port: int, latency_ms: float = 0) -> subprocess.Popen[bytes]:
    handler = ["-c", "smtp_sink.SlowSink", str(latency_ms)]
    server = subprocess.Popen(
        [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}", *handler],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent)},
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server
        except OSError:
            time.sleep(0.05)
    server.kill()
    raise SystemExit("the SMTP server did not start")


def prepare(db: Path, messages: int, per_profile: int) -> list[Digest]:
    store = open_store(db)
    text = decode_dump(SEED.read_bytes())
    store.add_dump(parse_dump(text, SEED.name, today=DAY), content_hash(text), NOW)
    papers = list(store.iter_papers())
    digests = []
    for n in range(messages // per_profile):
        subscribers = tuple(f"reader{n}-{k}@example.org" for k in range(per_profile))
        profile = Profile(f"profile-{n}", f"Profile {n}", description="d", subscribers=subscribers)
        items = tuple(
            ScoredPaper(papers[(n + i) % len(papers)], 0.8, (Reason(ReasonKind.LEGACY, text="keyword"),))
            for i in range(10)
        )
        digest = Digest(profile, DAY, items, NOW, candidates=len(papers))
        store.save_digest(digest, store.watermark())
        digests.append(digest)
    store.close()
    return digests


def make_renderer(html_kb: int):
    filler = "<tr><td style='padding:8px;font-family:sans-serif'>" + "x" * 200 + "</td></tr>\n"
    html_body = "<html><body><table>" + filler * (html_kb * 1024 // len(filler)) + "</table></body></html>"

    def render(digest: Digest, subscriber: str, message_id: str) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = f"{len(digest.items)} new papers for {digest.profile.title} — Wed 31 Dec 2025"
        message["From"] = "Paper Digest <digest@example.org>"
        message["To"] = subscriber
        message["Message-ID"] = message_id
        message["List-Unsubscribe"] = "<https://example.org/u?t=token>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message.set_content("\n".join(item.paper.title for item in digest.items))
        message.add_alternative(html_body, subtype="html")
        return message

    return render


def run_once(
    port: int | None, messages: int, per_profile: int, html_kb: int, connections: int = 1
) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "state.db"
        digests = prepare(db, messages, per_profile)
        store: Store = open_store(db)
        outgoing: list[Outgoing] = outgoing_emails(digests, make_renderer(html_kb))
        settings = SmtpSettings(host="127.0.0.1", port=port, security="none") if port else None
        started = time.perf_counter()
        report = send_digests(
            store,
            settings,
            outgoing,
            outbox=Path(folder) / "outbox",
            clock=lambda: datetime.now(UTC),
            connections=connections,
        )
        seconds = time.perf_counter() - started
        store.close()
        if not report.complete:
            raise SystemExit(f"the batch did not complete: {report.summary()}")
        return seconds, len(report.sent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--per-profile", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--html-kb", type=int, default=40)
    parser.add_argument("--connections", default="1,4,16", help="SMTP connections at once, comma-separated")
    parser.add_argument("--latency-ms", default="0,20", help="the server's time per message, comma-separated")
    args = parser.parse_args()
    rows = []
    for latency in [float(n) for n in args.latency_ms.split(",")]:
        port = free_port()
        server = start_server(port, latency)
        try:
            for connections in [int(n) for n in args.connections.split(",")]:
                times = []
                for _ in range(args.runs):
                    seconds, sent = run_once(port, args.messages, args.per_profile, args.html_kb, connections)
                    times.append(seconds)
                rows.append((f"smtp, {latency:g} ms a message", connections, sent, times))
        finally:
            server.terminate()
            server.wait(timeout=10)
    times = [run_once(None, args.messages, args.per_profile, args.html_kb)[0] for _ in range(args.runs)]
    rows.append(("outbox", 1, args.messages, times))
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    print(f"Machine: {machine}, {args.runs} runs each")
    print(f"HTML part {args.html_kb} KB; {args.per_profile} subscribers per profile\n")
    print("| transport | connections | messages | median s | min s | max s | messages/s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for mode, connections, sent, runs in rows:
        median = statistics.median(runs)
        print(
            f"| {mode} | {connections} | {sent} | {median:.2f} | {min(runs):.2f} | {max(runs):.2f} | "
            f"{sent / median:,.0f} |"
        )


if __name__ == "__main__":
    main()
