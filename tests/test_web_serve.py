"""`digest serve` with the web side: the real command in its own process, stopped by SIGTERM;
and the mistakes that stop it before it starts (exit 2, one line)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from conftest import run_digest
from webside import ENVIRON, free_port, web_config


def start(folder: Path, *args: str) -> subprocess.Popen[str]:
    environ = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"} | ENVIRON
    return subprocess.Popen(
        [sys.executable, "-m", "digest", "serve", *args],
        cwd=folder,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until_up(url: str, process: subprocess.Popen[str], seconds: float = 30) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    return process.returncode, err


def test_serve_runs_the_web_side_and_the_scheduler_in_one_process(tmp_path: Path) -> None:
    port = free_port()
    # A daily schedule's latest tick is at most 24 hours old: with 25 hours of catch-up the
    # service builds at start whatever the time of day the test runs at.
    web_config(tmp_path, port=port, digest="catch_up_hours = 25")
    process = start(tmp_path)
    health = wait_until_up(f"http://127.0.0.1:{port}/healthz", process)
    assert health.status_code in (200, 503) and "healthy" in health.json()
    assert httpx.get(f"http://127.0.0.1:{port}/subscribe").status_code == 200
    deadline = time.monotonic() + 60
    while not (tmp_path / "site" / "index.html").exists() and time.monotonic() < deadline:
        time.sleep(0.2)  # the scheduler's catch-up run builds and publishes the digests
    code, err = stop(process)
    assert code == 0, err
    assert "web side on http://127.0.0.1:" in err and "ingest: ok" in err and "stopped" in err
    assert (tmp_path / "site" / "index.html").exists()
    # One line per run of a job (README "Logs"): none of APScheduler's own around it.
    assert "Running job" not in err and "executed successfully" not in err and "Added job" not in err, err


def test_serve_no_schedule_runs_the_web_side_alone_on_the_http_address(tmp_path: Path) -> None:
    port, other = free_port(), free_port()
    web_config(tmp_path, port=port)
    process = start(tmp_path, "--http", f"127.0.0.1:{other}", "--no-schedule")
    assert wait_until_up(f"http://127.0.0.1:{other}/subscribe", process).status_code == 200
    time.sleep(1.0)
    code, err = stop(process)
    assert code == 0, err
    assert "ingest" not in err and not (tmp_path / "site").exists()  # no scheduled job ran


def test_mistakes_stop_serve_before_it_starts(tmp_path: Path) -> None:
    port = free_port()
    web_config(tmp_path, port=port)
    once = run_digest("serve", "--once", "--http", f"127.0.0.1:{port}", cwd=tmp_path, env=ENVIRON)
    assert once.returncode == 2 and "--once" in once.stderr
    bad = run_digest("serve", "--http", "localhost", cwd=tmp_path, env=ENVIRON)
    assert bad.returncode == 2 and "not an address to listen on" in bad.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        busy = run_digest("serve", "--no-schedule", cwd=tmp_path, env=ENVIRON)
    assert busy.returncode == 2 and busy.stderr.strip().endswith(
        f"cannot listen on 127.0.0.1:{port}: Address already in use"
    )
    no_key = run_digest("serve", "--no-schedule", cwd=tmp_path, env={"DIGEST_SECRET_KEY": ""})
    assert no_key.returncode == 2 and "DIGEST_SECRET_KEY" in no_key.stderr
    text = (tmp_path / "digest.toml").read_text()
    (tmp_path / "digest.toml").write_text(text.replace(f'base_url = "http://127.0.0.1:{port}/"\n', ""))
    no_base = run_digest("serve", "--no-schedule", cwd=tmp_path, env=ENVIRON)
    assert no_base.returncode == 2 and "web.listen: needs base_url too" in no_base.stderr
    (tmp_path / "digest.toml").write_text(text.replace(f'listen = "127.0.0.1:{port}"\n', ""))
    nowhere = run_digest("serve", "--no-schedule", cwd=tmp_path, env=ENVIRON)
    assert nowhere.returncode == 2 and "--no-schedule runs the web side alone" in nowhere.stderr
