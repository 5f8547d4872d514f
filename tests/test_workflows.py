"""The GitHub workflows: linted (zizmor, actionlint) and checked against what they promise."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from digest.config import ENVIRONMENT_SETTINGS, PASSWORD_VARIABLE

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
    build, deploy = publish["jobs"]["build"], publish["jobs"]["deploy"]
    assert build["permissions"] == {"contents": "read"}
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["needs"] == "build" and deploy["environment"]["name"] == "github-pages"
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
    build = workflow("publish.yml")["jobs"]["build"]
    uses = [s.get("uses", "").split("@")[0] for s in build["steps"]]
    # actions/cache saves in a post step that runs only when the job succeeded: a send that
    # failed part-way would lose the record of the emails it did send.
    assert "actions/cache" not in uses
    names = [s.get("name") for s in build["steps"]]
    restore = build["steps"][uses.index("actions/cache/restore")]
    save = build["steps"][uses.index("actions/cache/save")]
    order = [
        names.index(restore["name"]),
        names.index("Build digests, feeds and site"),
        names.index("Send the emails"),
        names.index(save["name"]),
    ]
    assert order == sorted(order), names
    assert restore["with"]["path"] == save["with"]["path"] == ".digest"
    # A new entry per run (entries are immutable); the restore finds the newest by prefix.
    assert restore["with"]["key"] == save["with"]["key"]
    assert "github.run_id" in save["with"]["key"] and "github.run_attempt" in save["with"]["key"]
    assert restore["with"]["restore-keys"] == "digest-state-" and save["with"]["key"].startswith("digest-state-")
    # Saved even when the build or send step failed, but only when there is a state to save.
    condition = save["if"].removeprefix("${{").removesuffix("}}").strip()
    assert re.fullmatch(r"always\(\) && hashFiles\('\.digest/state\.db'\) != ''", condition), condition


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


def readme_publish_command() -> str:
    (command,) = re.findall(r"The workflow builds with `([^`]+)`", readme_publish_section())
    return command


def test_the_workflow_builds_with_the_readmes_command() -> None:
    command = readme_publish_command()
    assert command == "make run"
    build = workflow("publish.yml")["jobs"]["build"]
    step = next(s for s in build["steps"] if s.get("name") == "Build digests, feeds and site")
    script = (ROOT / step["run"]).read_text()
    assert re.search(rf"^\s*{re.escape(command)} RUN_ARGS=", script, re.M)
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


def test_publish_build_passes_good_inputs_to_make_run(tmp_path: Path) -> None:
    # A stand-in `make` that prints its arguments proves what the script would run.
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "make").write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    (fake / "make").chmod(0o755)
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
    assert result.stdout.splitlines() == ["run", "RUN_ARGS=--profile continual-learning --date 2025-12-31 --stale fail"]


def fake_digest(folder: Path, code: int) -> None:
    """A `.venv/bin/digest` under `folder` that prints its arguments and exits with `code`."""
    bin_dir = folder / ".venv" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    digest = bin_dir / "digest"
    digest.write_text(f'#!/bin/sh\necho "digest $*"\necho "digest says something on stderr" >&2\nexit {code}\n')
    digest.chmod(0o755)


def run_script(script: str, cwd: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    # Only PATH from this process: not PROFILE, MAKEFLAGS and the like from `make test`.
    env = {"PATH": os.environ["PATH"], **variables}
    return subprocess.run(
        ["bash", str(ROOT / ".github" / script)], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    """A folder where the real Makefile's `make run` finds the project installed (a stamp
    newer than pyproject.toml) and so runs only `.venv/bin/digest run`."""
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
    # The real `make run` (which exits 2 whatever its recipe exited with) around a stand-in
    # digest: exit 1 (some input rejected, all else done) deploys with a warning.
    fake_digest(installed, code)
    result = run_script("publish-build.sh", installed, PROFILE="continual-learning")
    assert "digest run --profile continual-learning" in result.stdout
    assert "digest says something on stderr" in result.stderr, "digest's stderr still reaches the log"
    assert_step_outcome(result, code, warned=1, warning="rejected")


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
