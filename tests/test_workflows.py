"""The GitHub workflows: linted (zizmor, actionlint) and checked against what they promise."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from digest.config import ENVIRONMENT_SETTINGS, PASSWORD_VARIABLE, load_config

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
BIN = Path(sys.executable).parent
SMTP_ENVIRONMENT = [variable for variable, (table, _) in ENVIRONMENT_SETTINGS.items() if table == "smtp"]


def workflow(name: str) -> dict[Any, Any]:
    # PyYAML reads the bare key `on` as True.
    data = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    data["on"] = data.pop(True)
    return data


def tool(name: str) -> str:
    found = BIN / name
    assert found.exists(), f"{name} is installed by the test extra"
    return str(found)


def test_zizmor_finds_nothing_even_as_an_auditor() -> None:
    result = subprocess.run(
        [tool("zizmor"), "--offline", "--persona", "auditor", "--no-progress", str(WORKFLOWS)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr


def test_actionlint_finds_nothing() -> None:
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    result = subprocess.run([tool("actionlint"), *files], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_runs_make_test_on_three_pythons() -> None:
    ci = workflow("ci.yml")
    assert set(ci["on"]) == {"push", "pull_request"}
    job = ci["jobs"]["test"]
    assert job["runs-on"] == "ubuntu-latest"
    assert job["strategy"]["matrix"]["python"] == ["3.11", "3.12", "3.13"]
    assert job["steps"][-1]["run"].startswith("make test")


def test_publish_triggers_permissions_and_concurrency() -> None:
    publish = workflow("publish.yml")
    on = publish["on"]
    (cron,) = [entry["cron"] for entry in on["schedule"]]
    assert cron.split()[0] not in ("0", "*"), "an off-the-hour minute: GitHub delays runs queued at :00"
    assert set(on["workflow_dispatch"]["inputs"]) == {"profile", "date", "send"}
    assert on["workflow_dispatch"]["inputs"]["send"]["type"] == "boolean"
    assert set(on["push"]["paths"]) == {"seeds/**", "digest.toml"}
    assert publish["permissions"] == {}
    assert publish["concurrency"]["cancel-in-progress"] is False
    jobs = publish["jobs"]
    # Each job the least it needs; only the save job may write to the repository.
    assert {name: job["permissions"] for name, job in jobs.items()} == {
        "build": {"contents": "read"},
        "save-state": {"contents": "write"},
        "deploy": {"pages": "write", "id-token": "write"},
        "keepalive": {"contents": "read", "actions": "write"},
        "notify": {"contents": "read", "issues": "write"},
    }
    deploy = jobs["deploy"]
    assert deploy["needs"] == "build" and deploy["environment"]["name"] == "github-pages"
    build = jobs["build"]
    uses = [step.get("uses", "") for job in publish["jobs"].values() for step in job["steps"]]
    assert any(u.startswith("actions/upload-pages-artifact@") for u in uses)
    assert any(u.startswith("actions/deploy-pages@") for u in uses)
    upload = next(s for s in build["steps"] if s.get("uses", "").startswith("actions/upload-pages-artifact@"))
    assert upload["with"]["path"] == "site"


def test_every_action_is_pinned_to_a_commit() -> None:
    for path in WORKFLOWS.glob("*.yml"):
        for ref in re.findall(r"uses:\s*(\S+)", path.read_text()):
            # owner/repo, or owner/repo/sub-action (actions/cache/restore), at a full commit SHA.
            assert re.fullmatch(r"[\w.-]+/[\w.-]+(/[\w.-]+)*@[0-9a-f]{40}", ref), f"{path.name}: {ref}"


def test_no_expression_inside_a_script() -> None:
    for path in WORKFLOWS.glob("*.yml"):
        for job in workflow(path.name)["jobs"].values():
            for step in job["steps"]:
                assert "${{" not in step.get("run", ""), f"{path.name}: {step.get('name')}: use env: instead"


def test_smtp_secrets_reach_only_the_send_step() -> None:
    build = workflow("publish.yml")["jobs"]["build"]
    for step in build["steps"]:
        secrets = [k for k, v in step.get("env", {}).items() if "secrets.DIGEST_SMTP" in str(v)]
        if step.get("name") == "Send the emails":
            # Every [smtp] setting digest.config reads from the environment, and the password.
            assert set(secrets) == set(SMTP_ENVIRONMENT) | {PASSWORD_VARIABLE}
            assert all(step["env"][k] == f"${{{{ secrets.{k} }}}}" for k in secrets)
            assert "inputs.send" in step["if"]
        else:
            assert secrets == [], step.get("name")


def test_the_unsubscribe_key_reaches_the_steps_that_render_emails() -> None:
    # The build writes the emails to the outbox and the send step renders them for SMTP:
    # both sign unsubscribe links. The README says so (and no longer "only the step that sends").
    steps = step_names(workflow("publish.yml")["jobs"]["build"])
    for name in ("Build digests, feeds and site", "Send the emails"):
        assert steps[name]["env"]["DIGEST_UNSUBSCRIBE_KEY"] == "${{ secrets.DIGEST_UNSUBSCRIBE_KEY }}"
    section = " ".join(readme_publish_section().split())
    assert "They reach only the step that sends" not in section
    assert "`DIGEST_UNSUBSCRIBE_KEY` reaches both the build step and the send step" in section
    assert "`DIGEST_SMTP_SECURITY`" in section


def step_names(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step.get("name", step.get("uses", "")): step for step in job["steps"]}


def test_the_state_database_is_carried_from_run_to_run() -> None:
    jobs = workflow("publish.yml")["jobs"]
    build, save = jobs["build"], jobs["save-state"]
    steps = step_names(build)
    # The digest-state branch is the state's only home: never an Actions cache, whose entries
    # are evicted after a week unused (an evicted state made every stored paper new again).
    cached = [s["with"]["path"] for job in jobs.values() for s in job["steps"] if is_cache(s)]
    assert cached and not any(".digest" in paths or "state" in paths for paths in cached)
    names = list(steps)
    restore = steps["Restore the state database"]
    assert restore["run"].startswith(".github/digest-state.sh restore ")
    assert names.index("Restore the state database") < names.index("Build digests, feeds and site")
    assert restore["env"] == {"GITHUB_TOKEN": "${{ github.token }}"}
    # Kept for the save job even when the build or send step failed, never when the restore did.
    keep = steps["Keep the state database for the save job"]
    assert names.index("Send the emails") < names.index(keep["name"])
    condition = keep["if"].removeprefix("${{").removesuffix("}}").strip()
    assert condition == "always() && steps.restore.outcome == 'success' && hashFiles('.digest/state.db') != ''"
    assert keep["with"]["name"] == "digest-state" and keep["with"]["include-hidden-files"] is True
    assert set(keep["with"]["path"].split()) == {".digest/state.db", ".digest/state.db-wal", ".digest/state.db.base"}
    assert build["outputs"]["state"] == "${{ steps.keep-state.outputs.artifact-id }}" and keep["id"] == "keep-state"
    # The save job runs after a failed build too, whenever there is a state to save.
    assert save["needs"] == "build"
    assert save["if"].removeprefix("${{").removesuffix("}}").strip() == "always() && needs.build.outputs.state != ''"
    download = next(s for s in save["steps"] if s.get("uses", "").startswith("actions/download-artifact@"))
    assert download["with"] == {"name": "digest-state", "path": ".digest"}
    push = step_names(save)["Push the state to the digest-state branch"]
    assert push["run"].startswith(".github/digest-state.sh save ")
    assert push["env"] == {"GITHUB_TOKEN": "${{ github.token }}"}
    assert all(
        s.get("with", {}).get("persist-credentials") is False for s in save["steps"] if "checkout" in s.get("uses", "")
    )


def test_the_notify_job_sees_every_outcome_and_the_notifier_knows_every_step() -> None:
    jobs = workflow("publish.yml")["jobs"]
    notify = jobs["notify"]
    assert set(notify["needs"]) == {"build", "save-state", "deploy"}
    assert notify["if"] == "${{ always() }}"
    (issue,) = [s for s in notify["steps"] if "run" in s]
    assert issue["run"] == "python3 .github/notify_owner.py issue"
    assert issue["env"] == {"GITHUB_TOKEN": "${{ github.token }}", "NEEDS": "${{ toJSON(needs) }}"}
    download = next(s for s in notify["steps"] if s.get("uses", "").startswith("actions/download-artifact@"))
    assert download["with"]["pattern"] == "digest-logs*" and download["with"]["merge-multiple"] is True
    # The steps the notifier names are the workflow's, with the outputs and log files it reads.
    spec = importlib.util.spec_from_file_location("notify_owner", ROOT / ".github" / "notify_owner.py")
    assert spec and spec.loader
    notifier = importlib.util.module_from_spec(spec)
    sys.modules["notify_owner"] = notifier
    spec.loader.exec_module(notifier)
    for place in notifier.STEPS:
        job = jobs[place.job]
        if place.output is None:
            assert job["name"] == place.name.split(" (")[0] or job["name"] == place.name
            continue
        step = next(s for s in job["steps"] if s.get("id") == place.output)
        assert step["name"] == place.name
        assert job["outputs"][place.output] == f"${{{{ steps.{place.output}.outcome }}}}"
        assert step["run"].endswith(f'| python3 .github/notify_owner.py tee "$RUNNER_TEMP/digest-logs/{place.log}"')
        assert step["shell"] == "bash", "bash -eo pipefail: the step fails when the script does, not tee"
    save_step = step_names(jobs["save-state"])["Push the state to the digest-state branch"]
    assert save_step["run"].endswith('tee "$RUNNER_TEMP/digest-logs/save.log"')


def test_no_secret_reaches_the_save_or_notify_jobs() -> None:
    jobs = workflow("publish.yml")["jobs"]
    for name in ("save-state", "notify"):
        assert "environment" not in jobs[name]
        for step in jobs[name]["steps"]:
            assert "secrets." not in json.dumps(step), (name, step.get("name"))


def is_cache(step: dict[str, Any]) -> bool:
    return bool(step.get("uses", "").startswith("actions/cache"))


def test_the_pages_and_feeds_of_the_last_run_are_kept_for_the_next() -> None:
    # Each page and feed ends in a stamp of what it was made from (render/stamps.py), so a
    # run that starts from the last run's outputs renders only what changed.
    build = workflow("publish.yml")["jobs"]["build"]
    names = list(step_names(build))
    restore = step_names(build)["Restore the pages and feeds of the last run"]
    save = step_names(build)["Keep the pages and feeds for the next run"]
    assert restore["uses"].split("@")[0] == "actions/cache/restore"
    assert save["uses"].split("@")[0] == "actions/cache/save"
    assert [s["name"] for s in build["steps"] if is_cache(s)] == [restore["name"], save["name"]]
    assert names.index(restore["name"]) < names.index("Build digests, feeds and site") < names.index(save["name"])
    # The folders digest run writes its stamped outputs to, by the defaults digest.toml keeps.
    config = load_config(ROOT / "digest.toml", ROOT, environ={})
    folders = {config.site.relative_to(ROOT).as_posix(), config.feeds.relative_to(ROOT).as_posix()}
    assert folders == {"site", "feeds"}
    assert set(restore["with"]["path"].split()) == folders == set(save["with"]["path"].split())
    # A new entry every run (keys cannot be overwritten); the newest earlier one restored.
    key = "digest-outputs-${{ github.run_id }}-${{ github.run_attempt }}"
    assert restore["with"]["key"] == save["with"]["key"] == key
    assert restore["with"]["restore-keys"] == "digest-outputs-"
    # Saved only when every step before it succeeded: no `if:` that would save a failed build's.
    assert "if" not in save and "continue-on-error" not in save


def test_a_failed_build_never_deploys() -> None:
    publish = workflow("publish.yml")
    build, deploy = publish["jobs"]["build"], publish["jobs"]["deploy"]
    upload = next(s for s in build["steps"] if s.get("uses", "").startswith("actions/upload-pages-artifact@"))
    # No `if:` on the upload or on the deploy job: both run only when every step before succeeded.
    assert "if" not in upload and "if" not in deploy
    assert not any(s.get("continue-on-error") for s in build["steps"])
    for name in ("Build digests, feeds and site", "Send the emails"):
        assert step_names(build)[name]["run"].startswith(".github/publish-")


def readme_publish_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return text.split("## Publish your own feeds", 1)[1].split("\n## ", 1)[0]


def test_the_workflow_runs_what_make_run_runs() -> None:
    section = " ".join(readme_publish_section().split())
    assert "installs with `make install` and runs `.venv/bin/digest run`, the command `make run` runs" in section
    makefile = (ROOT / "Makefile").read_text()
    run_recipe = re.search(r"^run: \$\(STAMP\)\n\t(.+)$", makefile, re.M)
    assert run_recipe and run_recipe.group(1) == "$(BIN)/digest run $(RUN_ARGS)"
    assert re.search(r"^install: \$\(STAMP\)$", makefile, re.M)
    script = (ROOT / ".github" / "publish-build.sh").read_text()
    assert re.search(r"^make install\b", script, re.M)
    assert re.search(r'^\.venv/bin/digest run "\$\{args\[@\]\}"', script, re.M)
    assert "Error [0-9]" not in script, "no parsing of make's error line any more"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "```sh\nmake run" in readme


@pytest.mark.parametrize(
    ("variable", "value"),
    [("PROFILE", "x; rm -rf ~"), ("PROFILE", "$(id)"), ("DIGEST_DATE", "2025-13-01'"), ("DIGEST_DATE", "today")],
)
def test_publish_scripts_refuse_hostile_inputs_before_running_anything(
    variable: str, value: str, tmp_path: Path
) -> None:
    # An empty PATH apart from bash's own folder: if validation let the value through, `make`
    # (or .venv/bin/digest) would not even be found, and the exit code would differ from 2.
    env = {"PATH": str(Path(shutil.which("bash") or "/bin/bash").parent), variable: value}
    for script in ("publish-build.sh", "publish-send.sh"):
        result = subprocess.run(
            ["bash", str(ROOT / ".github" / script)], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert result.returncode == 2, (script, result.stdout, result.stderr)
        assert "::error::" in result.stdout


def test_publish_build_installs_then_runs_digest_with_good_inputs(tmp_path: Path) -> None:
    # Stand-ins for `make` and `.venv/bin/digest` that log their arguments prove what the script runs.
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "make").write_text('#!/bin/sh\necho "make $*"\n')
    (fake / "make").chmod(0o755)
    fake_digest(tmp_path, 0)
    env = {
        "PATH": f"{fake}:{os.environ['PATH']}",
        "PROFILE": "continual-learning",
        "DIGEST_DATE": "2025-12-31",
        "DIGEST_STALE_FAIL": "true",
    }
    result = subprocess.run(
        ["bash", str(ROOT / ".github" / "publish-build.sh")], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "make install",
        "digest run --profile continual-learning --date 2025-12-31 --stale fail",
        "digest prune",
    ]


def fake_digest(folder: Path, code: int, *, prune: int = 0) -> None:
    """A `.venv/bin/digest` under `folder` that prints its arguments and exits with `code`
    (with `prune` for `digest prune`)."""
    bin_dir = folder / ".venv" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    digest = bin_dir / "digest"
    digest.write_text(
        f'#!/bin/sh\necho "digest $*"\n[ "$1" = prune ] && exit {prune}\n'
        f'echo "digest says something on stderr" >&2\nexit {code}\n'
    )
    digest.chmod(0o755)


def run_script(script: str, cwd: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    # Only PATH from this process: not PROFILE, MAKEFLAGS and the like from `make test`.
    env = {"PATH": os.environ["PATH"], **variables}
    return subprocess.run(
        ["bash", str(ROOT / ".github" / script)], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    """A folder where the real Makefile's `make install` finds the project installed (a stamp
    newer than pyproject.toml) and so does nothing."""
    assert shutil.which("make"), "make runs this suite, so it is installed"
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    (tmp_path / "pyproject.toml").write_text("")
    fake_digest(tmp_path, 0)
    python = tmp_path / ".venv" / "bin" / "python"
    python.write_text("#!/bin/sh\necho 'the install ran' >&2\nexit 1\n")
    python.chmod(0o755)
    stamp = tmp_path / ".venv" / ".installed"
    stamp.touch()
    os.utime(tmp_path / "pyproject.toml", (1_000_000_000, 1_000_000_000))
    return tmp_path


@pytest.mark.parametrize("code", [0, 1, 2, 3, 4, 5])
def test_publish_build_warns_on_rejected_input_and_fails_on_the_rest(code: int, installed: Path) -> None:
    # The real `make install`, then a stand-in digest whose exit code the script sees as is:
    # exit 1 (some input rejected, all else done) deploys with a warning.
    fake_digest(installed, code)
    result = run_script("publish-build.sh", installed, PROFILE="continual-learning")
    assert "digest run --profile continual-learning" in result.stdout
    assert "digest says something on stderr" in result.stderr, "digest's stderr still reaches the log"
    assert_step_outcome(result, code, warned=1, warning="rejected")
    assert ("digest prune" in result.stdout) == (code in (0, 1)), "old records are pruned after a good run only"


def test_publish_build_fails_when_the_prune_fails(installed: Path) -> None:
    fake_digest(installed, 0, prune=2)
    result = run_script("publish-build.sh", installed)
    assert result.returncode == 2
    assert "::error::digest prune failed (exit code 2)" in result.stdout


def assert_step_outcome(result: subprocess.CompletedProcess[str], code: int, *, warned: int, warning: str) -> None:
    """0 passes quietly, `warned` passes with a warning annotation, any other code fails with an error."""
    if code == 0:
        assert result.returncode == 0, result.stdout + result.stderr
        assert "::" not in result.stdout
    elif code == warned:
        assert result.returncode == 0, result.stdout + result.stderr
        assert re.search(rf"^::warning::.*{warning}", result.stdout, re.M), result.stdout
        assert "::error::" not in result.stdout
    else:
        assert result.returncode == code, result.stdout + result.stderr
        assert re.search(rf"^::error::.*exit code {code}\b", result.stdout, re.M), result.stdout
        assert "::warning::" not in result.stdout


def test_publish_build_fails_when_the_install_fails_even_with_exit_code_1(installed: Path) -> None:
    # pip failing with 1 is not digest's "some input rejected": the build must fail.
    (installed / "pyproject.toml").touch()
    os.utime(installed / ".venv" / ".installed", (1_000_000_000, 1_000_000_000))
    result = run_script("publish-build.sh", installed)
    assert "the install ran" in result.stderr
    assert "digest run" not in result.stdout
    assert result.returncode != 0, result.stdout + result.stderr
    assert "::error::" in result.stdout and "::warning::" not in result.stdout


@pytest.mark.parametrize("code", [0, 1, 2, 3, 4, 130])
def test_publish_send_warns_on_undelivered_emails_and_fails_on_the_rest(code: int, tmp_path: Path) -> None:
    # Exit 3: some emails refused or pending, the others sent and recorded; the state must
    # still be saved and the site deployed, so the step succeeds with a warning.
    fake_digest(tmp_path, code)
    result = run_script("publish-send.sh", tmp_path, PROFILE="continual-learning", DIGEST_DATE="2025-12-31")
    assert "digest send --profile continual-learning --date 2025-12-31" in result.stdout
    assert_step_outcome(result, code, warned=3, warning="not delivered")


@pytest.mark.parametrize("code", [0, 1, 2])
def test_publish_status_keeps_the_verdict_and_fails_only_when_status_cannot_run(code: int, tmp_path: Path) -> None:
    # Exit 1 ("needs attention") is the verdict for the notify job, not a failure of the step.
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "digest").write_text(
        f'#!/bin/sh\nif [ "$2" = --json ]; then echo \'{{"healthy": {"true" if code == 0 else "false"}}}\'; '
        f'else echo "digest $*"; fi\nexit {code}\n'
    )
    (bin_dir / "digest").chmod(0o755)
    logs = tmp_path / "logs"
    result = run_script("publish-status.sh", tmp_path, DIGEST_LOGS=str(logs))
    if code == 2:
        assert result.returncode == 2
        assert "::error::digest status failed (exit code 2)" in result.stdout
        assert not (logs / "status.json").exists(), "no verdict rather than a wrong one"
        return
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads((logs / "status.json").read_text()) == {"healthy": code == 0}
    assert "digest status" in result.stdout, "the text form goes to the log"


def test_publish_status_without_an_install_says_so(tmp_path: Path) -> None:
    result = run_script("publish-status.sh", tmp_path, DIGEST_LOGS=str(tmp_path / "logs"))
    assert result.returncode == 0
    assert "no health check" in result.stdout
    assert not (tmp_path / "logs" / "status.json").exists()
