"""Benchmark: how many ledger commits a second the database takes, SQLite against PostgreSQL.

    .venv/bin/python bench/ledger.py [--rows 2000] [--seconds 10] [--clients 1,4,16] [--runs 3]

Each sent message costs the ledger two durable commits (`sending` before the final ".",
`sent` after the server's answer); this is what limits the messages a day can send.

- SQLite (the embedded default): the store's own `mark_delivery_sending` and
  `mark_delivery_sent` on a fresh database in WAL mode with `synchronous = FULL`, from
  1, 4 and 16 threads, each with its own connection (as `[smtp] connections` senders do).
- PostgreSQL, when its server programs are installed (Debian's `postgresql`): a private
  server started for the run on 127.0.0.1 (`initdb` in a temporary folder, as the
  `postgres` user when run as root), the same `deliveries` table, and `pgbench` running
  the ledger's two updates (a row taken with `... WHERE state = 'pending'`, then marked
  sent), each its own transaction, with `synchronous_commit = on` (every commit flushed,
  as the ledger needs), from 1, 4 and 16 clients.

Each figure is the median of `--runs` runs, the settings interleaved (so that a busy
machine slows each alike). Prints a Markdown table for docs/SCALING.md.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digest.models import TransportKind  # noqa: E402
from digest.rows import DeliveryKey  # noqa: E402
from digest.store import open_store  # noqa: E402

DAY = date(2026, 1, 5)
NOW = datetime(2026, 1, 5, 7, tzinfo=UTC)
PG_BIN = Path("/usr/lib/postgresql")
TIMEOUT = 300  # seconds any PostgreSQL program may take before the benchmark gives up

TABLE = """
CREATE TABLE deliveries (
    profile_id TEXT NOT NULL, day TEXT NOT NULL, subscriber TEXT NOT NULL,
    transport TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
    message_id TEXT NOT NULL UNIQUE, last_error TEXT, possible_duplicate INTEGER NOT NULL DEFAULT 0,
    note TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, sent_at TEXT, taken_by TEXT,
    PRIMARY KEY (profile_id, day, subscriber)
);
INSERT INTO deliveries (profile_id, day, subscriber, transport, message_id, created_at, updated_at)
SELECT 'p', '2026-01-05', 'r' || n, 'smtp', '<' || n || '@x>', 'now', 'now' FROM generate_series(1, {rows}) AS n;
"""

# One message: taken ('pending' -> 'sending'), then sent; a sent row goes back to pending so
# that every transaction writes (a commit that changed nothing would flush nothing).
SCRIPT = """\\set n random(1, {rows})
UPDATE deliveries SET state = 'sending', attempts = attempts + 1, taken_by = 'b', updated_at = 'now'
 WHERE profile_id = 'p' AND day = '2026-01-05' AND subscriber = 'r' || :n AND state = 'pending';
UPDATE deliveries SET state = CASE state WHEN 'sending' THEN 'sent' ELSE 'pending' END, updated_at = 'now'
 WHERE profile_id = 'p' AND day = '2026-01-05' AND subscriber = 'r' || :n;
"""


def sqlite_commits(rows: int, clients: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(Path(folder) / "state.db")
        keys = [DeliveryKey("p", DAY, f"r{n}@example.org") for n in range(rows)]
        store.add_deliveries(keys, lambda k: f"<{k.subscriber}>", TransportKind.SMTP, NOW)
        parts = [keys[i::clients] for i in range(clients)]

        def send(part: list[DeliveryKey]) -> None:
            own = open_store(store.path)
            for key in part:
                own.mark_delivery_sending(key, NOW, batch="bench")
                own.mark_delivery_sent(key, NOW)
            own.close()

        threads = [threading.Thread(target=send, args=(part,)) for part in parts]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
        store.close()
    return 2 * rows / seconds


def _as_postgres(command: list[str], **extra: object) -> subprocess.CompletedProcess[str]:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run(  # type: ignore[call-overload]
        [*prefix, *command], capture_output=True, text=True, check=True, timeout=TIMEOUT, **extra
    )


def postgres_commits(rows: int, clients: list[int], seconds: int, runs: int) -> tuple[str, dict[int, float]] | None:
    """The server's major version and commits a second per number of clients; None without PostgreSQL."""
    versions = sorted(PG_BIN.glob("*/bin/postgres")) if PG_BIN.exists() else []
    if not versions:
        return None
    bin_dir = versions[-1].parent
    folder = Path(tempfile.mkdtemp(prefix="pg-ledger-"))
    data = folder / "data"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    try:
        _as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"])
        options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={folder} -c fsync=on"
        # The server's output goes to a file: otherwise it inherits pg_ctl's pipes and the run
        # never sees them close.
        log = str(folder / "server.log")
        _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", log, "-o", options, "-w", "start"])
        try:
            connect = ["-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
            _as_postgres([str(bin_dir / "psql"), *connect, "-q", "-c", TABLE.format(rows=rows)])
            script = folder / "ledger.sql"
            script.write_text(SCRIPT.format(rows=rows))
            if os.geteuid() == 0:
                shutil.chown(script, "postgres", "postgres")
            found: dict[int, list[float]] = {count: [] for count in clients}
            for _, count in itertools.product(range(runs), clients):
                done = _as_postgres(
                    [
                        str(bin_dir / "pgbench"),
                        *connect,
                        "-n",
                        "-c",
                        str(count),
                        "-j",
                        str(min(count, 4)),
                        "-T",
                        str(seconds),
                        "-f",
                        str(script),
                        "postgres",
                    ]
                )
                tps = float(re.search(r"tps = ([0-9.]+)", done.stdout).group(1))  # type: ignore[union-attr]
                found[count].append(2 * tps)  # two commits a transaction of the script (autocommit statements)
            return bin_dir.parent.name, {count: statistics.median(rates) for count, rates in found.items()}
        finally:
            _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--seconds", type=int, default=10, help="per PostgreSQL measurement")
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    clients = [int(n) for n in args.clients.split(",")]
    lite: dict[int, list[float]] = {n: [] for n in clients}
    for _, n in itertools.product(range(args.runs), clients):
        lite[n].append(sqlite_commits(args.rows, n))
    pg = postgres_commits(100_000, clients, args.seconds, args.runs)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    print(f"Machine: {machine}; load average {os.getloadavg()[0]:.1f}; median of {args.runs} runs\n")
    print("| database | " + " | ".join(f"{n} connection{'s' if n > 1 else ''}" for n in clients) + " |")
    print("|---|" + "---:|" * len(clients))
    print(
        "| SQLite, WAL, synchronous = FULL (commits/s) | "
        + " | ".join(f"{statistics.median(lite[n]):,.0f}" for n in clients)
        + " |"
    )
    if pg is None:
        print(
            f"\nPostgreSQL: not measured, its server programs are not installed ({PG_BIN}/*/bin/postgres); SQLite only."
        )
    else:
        version, rates = pg
        print(
            f"| PostgreSQL {version}, synchronous_commit = on (commits/s) | "
            + " | ".join(f"{rates[n]:,.0f}" for n in clients)
            + " |"
        )


if __name__ == "__main__":
    main()
