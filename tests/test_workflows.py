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

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
BIN = Path(sys.executable).parent


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
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref), f"{path.name}: {ref}"


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
            assert set(secrets) >= {"DIGEST_SMTP_HOST", "DIGEST_SMTP_PASSWORD"}
            assert "inputs.send" in step["if"]
        else:
            assert secrets == [], step.get("name")


def test_the_state_database_is_carried_from_run_to_run() -> None:
    build = workflow("publish.yml")["jobs"]["build"]
    cache = next(s for s in build["steps"] if s.get("uses", "").startswith("actions/cache@"))
    assert cache["with"]["path"] == ".digest"
    assert "github.run_id" in cache["with"]["key"] and cache["with"]["restore-keys"] == "digest-state-"


def readme_publish_command() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Publish your own feeds", 1)[1].split("\n## ", 1)[0]
    (command,) = re.findall(r"The workflow builds with `([^`]+)`", section)
    return command


def test_the_workflow_builds_with_the_readmes_command() -> None:
    command = readme_publish_command()
    assert command == "make run"
    build = workflow("publish.yml")["jobs"]["build"]
    step = next(s for s in build["steps"] if s.get("name") == "Build digests, feeds and site")
    script = (ROOT / step["run"]).read_text()
    assert re.search(rf"^{re.escape(command)} RUN_ARGS=", script, re.M)
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
