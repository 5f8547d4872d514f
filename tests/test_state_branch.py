"""The publish workflow's state steps, for real: `.github/digest-state.sh` and the publish
scripts against a local bare git repository standing in for GitHub (no network).

Each "run" is a fresh clone, as each workflow run is a fresh checkout: restore, the build
and send scripts with the real `digest` (emails to a real SMTP server on 127.0.0.1), save.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mailserver import MailServer

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / ".github"
SEED = ROOT / "seeds" / "000_9d0724fe38360f6f.txt"
BRANCH = "digest-state"

CONFIG = """\
[digest]
inbox = "seeds"
site_url = "https://example.org/digest/"

[[profiles]]
id = "continual-learning"
keywords = ["continual learning", "catastrophic forgetting"]
min_score = 0.01
subscribers = ["ada@example.org"]

[[profiles]]
id = "efficient-llm"
keywords = ["quantization", "efficient", "inference"]
min_score = 0.01
subscribers = ["edsger@example.org", "grace@example.org"]
"""
SUBSCRIBERS = ("ada@example.org", "edsger@example.org", "grace@example.org")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """No user or system git config; a fixed identity; no pause between push attempts."""
    home = tmp_path / "home"
    home.mkdir()
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.org",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.org",
        "STATE_RETRY_PAUSE": "0",
        "PYTHON": sys.executable,
    }


def git(cwd: Path, *args: str, env: dict[str, str]) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture
def remote(tmp_path: Path, env: dict[str, str]) -> Path:
    """'GitHub': a bare repository whose main branch holds a config, a seed dump and the Makefile."""
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(bare), env=env)
    seed = tmp_path / "seed"
    git(tmp_path, "init", "--quiet", "--initial-branch=main", str(seed), env=env)
    (seed / "digest.toml").write_text(CONFIG)
    (seed / "seeds").mkdir()
    shutil.copy(SEED, seed / "seeds" / SEED.name)
    shutil.copy(ROOT / "Makefile", seed / "Makefile")
    shutil.copy(ROOT / ".gitignore", seed / ".gitignore")
    (seed / "pyproject.toml").write_text("")
    git(seed, "add", "-A", env=env)
    git(seed, "commit", "--quiet", "-m", "main", env=env)
    git(seed, "push", "--quiet", str(bare), "main", env=env)
    return bare


def checkout(remote: Path, folder: Path, env: dict[str, str]) -> Path:
    """A fresh clone, as actions/checkout makes, with the project 'installed': `make install`
    finds it up to date and `.venv/bin/digest` is the real command."""
    git(remote.parent, "clone", "--quiet", str(remote), str(folder), env=env)
    bin_dir = folder / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(sys.executable)
    (bin_dir / "digest").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m digest "$@"\n')
    (bin_dir / "digest").chmod(0o755)
    os.utime(folder / "pyproject.toml", (1_000_000_000, 1_000_000_000))
    (folder / ".venv" / ".installed").touch()
    return folder


def script(name: str, cwd: Path, env: dict[str, str], *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPTS / name), *args],
        cwd=cwd,
        env={**env, **extra},
        capture_output=True,
        text=True,
        timeout=300,
    )


def smtp_env(server: MailServer) -> dict[str, str]:
    return {"DIGEST_SMTP_HOST": "127.0.0.1", "DIGEST_SMTP_PORT": str(server.port), "DIGEST_SMTP_SECURITY": "none"}


def workflow_run(
    remote: Path, folder: Path, env: dict[str, str], send: dict[str, str]
) -> dict[str, subprocess.CompletedProcess[str]]:
    """One run of the build job's steps and the save job, in the workflow's order; the
    save runs whatever the build and send steps did (the save job's `if: always()`)."""
    work = checkout(remote, folder, env)
    results = {"restore": script("digest-state.sh", work, env, "restore")}
    assert results["restore"].returncode == 0, results["restore"].stdout + results["restore"].stderr
    results["build"] = script("publish-build.sh", work, env)
    results["send"] = script("publish-send.sh", work, env, **send)
    results["save"] = script("digest-state.sh", work, env, "save")
    return results


def branch_commits(remote: Path, env: dict[str, str]) -> list[str]:
    return git(remote, "rev-list", BRANCH, env=env).splitlines()


def branch_state(remote: Path, env: dict[str, str], target: Path) -> sqlite3.Connection:
    """The database at the tip of the branch (its parts put together), opened read-only."""
    parts = git(remote, "ls-tree", "--name-only", BRANCH, env=env).splitlines()
    data = b"".join(
        subprocess.run(["git", "show", f"{BRANCH}:{part}"], cwd=remote, env=env, capture_output=True, check=True).stdout
        for part in parts
    )
    target.write_bytes(data)
    return sqlite3.connect(f"file:{target}?mode=ro", uri=True)


def test_first_run_creates_the_branch_and_the_second_restores_it_and_sends_nothing_twice(
    remote: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    with MailServer() as server:
        first = workflow_run(remote, tmp_path / "run1", env, smtp_env(server))
        assert "no digest-state branch yet" in first["restore"].stdout
        assert first["build"].returncode == 0, first["build"].stdout + first["build"].stderr
        assert first["send"].returncode == 0, first["send"].stdout + first["send"].stderr
        assert first["save"].returncode == 0, first["save"].stdout + first["save"].stderr
        assert sorted(server.by_recipient()) == sorted(SUBSCRIBERS)
        sent = len(server.messages)
        assert sent == len(SUBSCRIBERS)
        (tip,) = branch_commits(remote, env)
        # An orphan branch holding only the database: nothing of main's files.
        assert git(remote, "ls-tree", "--name-only", BRANCH, env=env).splitlines() == ["state.db.000"]
        unrelated = subprocess.run(["git", "merge-base", "main", BRANCH], cwd=remote, env=env, capture_output=True)
        assert unrelated.returncode == 1, "an orphan branch shares no history with main"

        second = workflow_run(remote, tmp_path / "run2", env, smtp_env(server))
        assert f"from the digest-state branch at {tip}" in second["restore"].stdout
        assert second["build"].returncode == 0, second["build"].stdout + second["build"].stderr
        assert "[built before]" in second["build"].stdout
        assert second["send"].returncode == 0, second["send"].stdout + second["send"].stderr
        assert len(server.messages) == sent, "nothing is sent twice"
        assert second["save"].returncode == 0, second["save"].stdout + second["save"].stderr

    state = branch_state(remote, env, tmp_path / "tip.db")
    rows = state.execute("SELECT subscriber, transport, state, attempts FROM deliveries ORDER BY subscriber").fetchall()
    assert rows == [(address, "smtp", "sent", 2) for address in SUBSCRIBERS]  # an outbox preview, then SMTP
    assert not list((tmp_path / "run2" / "outbox").glob("*.eml")), "no email is written again either"


def test_a_failed_send_step_still_pushes_the_state(remote: Path, tmp_path: Path, env: dict[str, str]) -> None:
    with MailServer() as server:
        # A broken SMTP setting: the send step fails (exit 2) after the build recorded its digests.
        broken = {**smtp_env(server), "DIGEST_SMTP_PORT": "not-a-port"}
        first = workflow_run(remote, tmp_path / "run1", env, broken)
        assert first["send"].returncode == 2, first["send"].stdout + first["send"].stderr
        assert "::error::" in first["send"].stdout
        assert server.messages == []
        assert first["save"].returncode == 0, first["save"].stdout + first["save"].stderr
        state = branch_state(remote, env, tmp_path / "after-failure.db")
        assert state.execute("SELECT COUNT(*) FROM digests").fetchone() == (2,)
        state.close()

        # The next run finds the digests and sends each email once; the one after, none.
        second = workflow_run(remote, tmp_path / "run2", env, smtp_env(server))
        assert "[built before]" in second["build"].stdout
        assert second["send"].returncode == 0, second["send"].stdout + second["send"].stderr
        assert {a: len(m) for a, m in server.by_recipient().items()} == dict.fromkeys(SUBSCRIBERS, 1)
        third = workflow_run(remote, tmp_path / "run3", env, smtp_env(server))
        assert third["send"].returncode == 0
        assert len(server.messages) == len(SUBSCRIBERS)
    assert len(branch_commits(remote, env)) >= 2


# -- the state script alone, on a small database ------------------------------------------


def small_db(path: Path, rows: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER)")
    db.executemany("INSERT INTO t VALUES (?)", [(n,) for n in range(rows)])
    db.commit()
    db.close()


def rows_in(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT COUNT(*) FROM t").fetchone()[0]
    finally:
        db.close()


def test_save_touches_nothing_of_the_checkout(remote: Path, tmp_path: Path, env: dict[str, str]) -> None:
    work = checkout(remote, tmp_path / "run", env)
    before = {
        "head": git(work, "rev-parse", "HEAD", env=env),
        "status": git(work, "status", "--porcelain", "--ignored", env=env),
        "refs": git(work, "for-each-ref", env=env),
        "objects": git(work, "count-objects", "-v", env=env),
    }
    assert script("digest-state.sh", work, env, "restore").returncode == 0
    small_db(work / ".digest" / "state.db")
    saved = script("digest-state.sh", work, env, "save")
    assert saved.returncode == 0, saved.stdout + saved.stderr
    after = {
        "head": git(work, "rev-parse", "HEAD", env=env),
        "status": git(work, "status", "--porcelain", "--ignored", env=env),
        "refs": git(work, "for-each-ref", env=env),
        "objects": git(work, "count-objects", "-v", env=env),
    }
    # Only the ignored .digest/ folder is new; HEAD, refs and the object store are as they were.
    assert {k: v for k, v in after.items() if k != "status"} == {k: v for k, v in before.items() if k != "status"}
    assert after["status"].replace("!! .digest/\n", "").replace("!! .digest/", "") == before["status"]
    assert len(branch_commits(remote, env)) == 1


def test_the_write_ahead_log_is_saved_too(remote: Path, tmp_path: Path, env: dict[str, str]) -> None:
    work = checkout(remote, tmp_path / "run", env)
    assert script("digest-state.sh", work, env, "restore").returncode == 0
    db = work / ".digest" / "state.db"
    small_db(db, rows=5)
    # A process that died leaves its last transactions in the WAL, not yet in the file.
    holder = sqlite3.connect(db)
    holder.execute("PRAGMA wal_autocheckpoint = 0")
    holder.executemany("INSERT INTO t VALUES (?)", [(n,) for n in range(7)])
    holder.commit()
    assert (work / ".digest" / "state.db-wal").stat().st_size > 0
    shutil.copy(db, tmp_path / "copy.db")
    shutil.copy(work / ".digest" / "state.db-wal", tmp_path / "copy.db-wal")
    holder.close()
    shutil.copy(tmp_path / "copy.db", db)
    shutil.copy(tmp_path / "copy.db-wal", work / ".digest" / "state.db-wal")
    assert script("digest-state.sh", work, env, "save").returncode == 0

    again = checkout(remote, tmp_path / "next", env)
    assert script("digest-state.sh", again, env, "restore").returncode == 0
    assert rows_in(again / ".digest" / "state.db") == 12


def test_a_large_database_is_kept_in_parts_under_githubs_file_size_limit(
    remote: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    # GitHub refuses files over 100 MB; a year of digests makes about 60 MB, so the
    # database is cut into parts (here of 4 KiB, for a small database).
    small = {**env, "STATE_PART_BYTES": "4096"}
    work = checkout(remote, tmp_path / "run", env)
    assert script("digest-state.sh", work, small, "restore").returncode == 0
    small_db(work / ".digest" / "state.db", rows=3000)
    saved = script("digest-state.sh", work, small, "save")
    assert saved.returncode == 0, saved.stdout + saved.stderr
    parts = git(remote, "ls-tree", "-l", BRANCH, env=env).splitlines()
    assert len(parts) > 3
    assert [line.split()[-1] for line in parts] == [f"state.db.{n:03d}" for n in range(len(parts))]
    assert all(int(line.split()[-2]) <= 4096 for line in parts)

    again = checkout(remote, tmp_path / "next", env)
    restored = script("digest-state.sh", again, env, "restore")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert rows_in(again / ".digest" / "state.db") == 3000
    unchanged = script("digest-state.sh", again, small, "save")
    assert "nothing to push" in unchanged.stdout, unchanged.stdout + unchanged.stderr


def test_a_rejected_push_is_retried_after_a_fetch(remote: Path, tmp_path: Path, env: dict[str, str]) -> None:
    # GitHub refusing a push once (a transient error): the branch has not moved, so the retry goes through.
    counter = tmp_path / "pushes"
    hook = remote / "hooks" / "pre-receive"
    hook.write_text(f'#!/bin/sh\necho x >> "{counter}"\n[ "$(wc -l < "{counter}")" -gt 1 ] || exit 1\n')
    hook.chmod(0o755)
    work = checkout(remote, tmp_path / "run", env)
    assert script("digest-state.sh", work, env, "restore").returncode == 0
    small_db(work / ".digest" / "state.db")
    saved = script("digest-state.sh", work, env, "save")
    assert saved.returncode == 0, saved.stdout + saved.stderr
    assert "::warning::the push to the digest-state branch was rejected (attempt 1 of 3)" in saved.stdout
    assert counter.read_text().count("x") == 2
    assert len(branch_commits(remote, env)) == 1


def test_a_branch_that_moved_is_never_overwritten(remote: Path, tmp_path: Path, env: dict[str, str]) -> None:
    first = checkout(remote, tmp_path / "run1", env)
    assert script("digest-state.sh", first, env, "restore").returncode == 0
    small_db(first / ".digest" / "state.db", rows=1)
    assert script("digest-state.sh", first, env, "save").returncode == 0
    # Two runs restore the same state; the other one saves first.
    ours = checkout(remote, tmp_path / "ours", env)
    theirs = checkout(remote, tmp_path / "theirs", env)
    for work in (ours, theirs):
        assert script("digest-state.sh", work, env, "restore").returncode == 0
    small_db(theirs / ".digest" / "state.db", rows=2)
    assert script("digest-state.sh", theirs, env, "save").returncode == 0
    their_tip = branch_commits(remote, env)[0]

    small_db(ours / ".digest" / "state.db", rows=3)
    saved = script("digest-state.sh", ours, env, "save")
    assert saved.returncode == 1
    assert "::error::the digest-state branch moved during this run" in saved.stdout
    assert branch_commits(remote, env)[0] == their_tip, "nothing forced"


def test_a_branch_that_moves_while_pushing_is_never_overwritten(
    remote: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    # Another writer pushes between this run's check and its push: the push is rejected,
    # the fetch after it shows the branch moved, and the save stops without forcing.
    first = checkout(remote, tmp_path / "run1", env)
    assert script("digest-state.sh", first, env, "restore").returncode == 0
    small_db(first / ".digest" / "state.db")
    assert script("digest-state.sh", first, env, "save").returncode == 0
    base = branch_commits(remote, env)[0]
    tree = git(remote, "rev-parse", f"{base}^{{tree}}", env=env)
    other = git(remote, "commit-tree", tree, "-p", base, "-m", "someone else", env=env)
    shim = tmp_path / "shim"
    shim.mkdir()
    real_git = shutil.which("git")
    (shim / "git").write_text(
        "#!/bin/sh\n"
        f'case " $* " in *" push "*) [ -e "{tmp_path}/raced" ] || {{ touch "{tmp_path}/raced"; '
        f'"{real_git}" -C "{remote}" update-ref refs/heads/{BRANCH} {other}; }};; esac\n'
        f'exec "{real_git}" "$@"\n'
    )
    (shim / "git").chmod(0o755)
    work = checkout(remote, tmp_path / "run2", env)
    assert script("digest-state.sh", work, env, "restore").returncode == 0
    small_db(work / ".digest" / "state.db", rows=4)
    saved = script("digest-state.sh", work, {**env, "PATH": f"{shim}:{env['PATH']}"}, "save")
    assert saved.returncode == 1, saved.stdout + saved.stderr
    assert "rejected (attempt 1 of 3)" in saved.stdout
    assert f"now at {other}" in saved.stdout
    assert branch_commits(remote, env)[0] == other


def test_an_unchanged_state_is_not_pushed_but_kept_alive_monthly(
    remote: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    work = checkout(remote, tmp_path / "run1", env)
    assert script("digest-state.sh", work, env, "restore").returncode == 0
    small_db(work / ".digest" / "state.db")
    # The branch's last commit is 40 days old.
    old = {**env, "GIT_COMMITTER_DATE": f"@{int(time.time()) - 40 * 86400} +0000"}
    assert script("digest-state.sh", work, old, "save").returncode == 0
    (first,) = branch_commits(remote, env)

    again = checkout(remote, tmp_path / "run2", env)
    assert script("digest-state.sh", again, env, "restore").returncode == 0
    kept = script("digest-state.sh", again, env, "save")
    assert kept.returncode == 0, kept.stdout + kept.stderr
    keepalive, parent = branch_commits(remote, env)
    assert parent == first
    assert git(remote, "log", "-1", "--format=%s", BRANCH, env=env).startswith("keep-alive:")
    assert git(remote, "rev-parse", f"{keepalive}^{{tree}}", env=env) == git(
        remote, "rev-parse", f"{first}^{{tree}}", env=env
    )

    third = checkout(remote, tmp_path / "run3", env)
    assert script("digest-state.sh", third, env, "restore").returncode == 0
    unchanged = script("digest-state.sh", third, env, "save")
    assert unchanged.returncode == 0
    assert "nothing to push" in unchanged.stdout
    assert branch_commits(remote, env)[0] == keepalive


def test_a_state_not_restored_from_the_branch_is_never_saved(remote: Path, tmp_path: Path, env: dict[str, str]) -> None:
    work = checkout(remote, tmp_path / "run", env)
    small_db(work / ".digest" / "state.db")
    saved = script("digest-state.sh", work, env, "save")
    assert saved.returncode == 1
    assert "run restore first" in saved.stdout
    with pytest.raises(AssertionError):
        branch_commits(remote, env)


def test_an_unreadable_remote_fails_the_restore(tmp_path: Path, remote: Path, env: dict[str, str]) -> None:
    # Not "no branch yet": a run that cannot read the state must not start afresh and resend.
    work = checkout(remote, tmp_path / "run", env)
    restored = script("digest-state.sh", work, env, "restore", STATE_REMOTE=str(tmp_path / "missing.git"))
    assert restored.returncode == 1
    assert "::error::cannot read the digest-state branch" in restored.stdout
    assert not (work / ".digest" / "state.db").exists() and not (work / ".digest" / "state.db.base").exists()


def test_the_token_goes_to_git_through_its_environment_only(remote: Path, tmp_path: Path, env: dict[str, str]) -> None:
    shim = tmp_path / "shim"
    shim.mkdir()
    log = tmp_path / "git-calls"
    real_git = shutil.which("git")
    (shim / "git").write_text(
        f'#!/bin/sh\necho "ARGS $*" >> "{log}"\necho "HEADER $GIT_CONFIG_KEY_0=$GIT_CONFIG_VALUE_0" >> "{log}"\n'
        f'exec "{real_git}" "$@"\n'
    )
    (shim / "git").chmod(0o755)
    work = checkout(remote, tmp_path / "run", env)
    secret = "ghs_TestTokenValue0123456789abcdef"
    shimmed = {**env, "PATH": f"{shim}:{env['PATH']}", "GITHUB_TOKEN": secret}
    restored = script("digest-state.sh", work, shimmed, "restore")
    assert restored.returncode == 0
    small_db(work / ".digest" / "state.db")
    saved = script("digest-state.sh", work, shimmed, "save")
    assert saved.returncode == 0
    calls = log.read_text()
    assert secret not in calls and secret not in restored.stdout + saved.stdout + restored.stderr + saved.stderr
    assert "HEADER http.https://github.com/.extraheader=AUTHORIZATION: basic " in calls
    assert all(secret not in line for line in calls.splitlines() if line.startswith("ARGS"))


def test_a_damaged_database_is_never_pushed(remote: Path, tmp_path: Path, env: dict[str, str]) -> None:
    first = checkout(remote, tmp_path / "run1", env)
    assert script("digest-state.sh", first, env, "restore").returncode == 0
    small_db(first / ".digest" / "state.db")
    assert script("digest-state.sh", first, env, "save").returncode == 0
    (tip,) = branch_commits(remote, env)
    work = checkout(remote, tmp_path / "run2", env)
    assert script("digest-state.sh", work, env, "restore").returncode == 0
    (work / ".digest" / "state.db").write_bytes(b"this is not a database" * 100)
    saved = script("digest-state.sh", work, env, "save")
    assert saved.returncode == 1
    assert "::error::cannot take a snapshot of .digest/state.db" in saved.stdout
    assert branch_commits(remote, env) == [tip]
