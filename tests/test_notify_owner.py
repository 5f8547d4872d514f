"""`.github/notify_owner.py`: the health issue, against a loopback server imitating the
GitHub REST calls it makes (list open issues, create an issue or a comment, close), and
the scrubbed log tails it builds the issue from."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / ".github" / "notify_owner.py"
TOKEN = "ghs_LoopbackToken0123456789abcdefABCDEF"
REPO = "owner/repo"
PASSWORD = "hunter2-correct-horse"


def load_notifier() -> Any:
    spec = importlib.util.spec_from_file_location("notify_owner", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["notify_owner"] = module
    spec.loader.exec_module(module)
    return module


notifier = load_notifier()


BOT = {"login": "github-actions[bot]", "type": "Bot"}


def health_issue(number: int, title: str = "paper-digest: publishing is failing") -> dict[str, object]:
    """An open issue as the notifier opens it: its marker in the body, opened by the workflow's bot."""
    return {"number": number, "state": "open", "title": title, "body": notifier.MARKER, "user": BOT}


class FakeGitHub:
    """The issues API of one repository: open issues, comments; every request recorded."""

    def __init__(self, server: HTTPServer, issues: list[dict[str, Any]] | None = None, page_size: int = 100) -> None:
        self.server = server
        self.issues = issues or []
        self.comments: dict[int, list[str]] = {}
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.page_size = page_size
        self.next_link: str | None = None  # overrides the Link of the last page (a link elsewhere)
        server.expect_request(re.compile(r"^/.*$")).respond_with_handler(self.handle)

    def handle(self, request: Request) -> Response:
        body = request.get_data()
        self.requests.append((request.method, request.full_path, dict(request.headers), body))
        path = request.path
        if request.method == "GET" and path == f"/repos/{REPO}/issues":
            assert request.args.get("state") == "open"
            page = int(request.args.get("page", "1"))
            open_issues = [i for i in self.issues if i["state"] == "open"]
            chunk = open_issues[(page - 1) * self.page_size : page * self.page_size]
            headers = {}
            if page * self.page_size < len(open_issues):
                headers["Link"] = f'<{self.server.url_for(path)}?state=open&per_page=100&page={page + 1}>; rel="next"'
            elif self.next_link:
                headers["Link"] = f'<{self.next_link}>; rel="next"'
            return Response(json.dumps(chunk), 200, headers, content_type="application/json")
        payload = json.loads(body or b"{}")
        if request.method == "POST" and path == f"/repos/{REPO}/issues":
            issue = {"number": len(self.issues) + 1, "state": "open", "user": BOT, **payload}
            self.issues.append(issue)
            return Response(json.dumps(issue), 201, content_type="application/json")
        match = re.fullmatch(rf"/repos/{REPO}/issues/(\d+)(/comments)?", path)
        if match and request.method == "POST" and match.group(2):
            self.comments.setdefault(int(match.group(1)), []).append(payload["body"])
            return Response(json.dumps({"id": 1, "body": payload["body"]}), 201, content_type="application/json")
        if request.method == "PUT" and re.fullmatch(rf"/repos/{REPO}/actions/workflows/[\w.-]+/enable", path):
            return Response("", 204)
        if match and request.method == "PATCH" and not match.group(2):
            issue = next(i for i in self.issues if i["number"] == int(match.group(1)))
            issue.update(payload)
            return Response(json.dumps(issue), 200, content_type="application/json")
        return Response(json.dumps({"message": "Not Found"}), 404, content_type="application/json")

    def calls(self) -> list[tuple[str, str]]:
        return [(method, path.split("?")[0]) for method, path, _, _ in self.requests]

    def assert_token_only_in_the_authorization_header(self) -> None:
        for method, path, headers, body in self.requests:
            assert headers.get("Authorization") == f"Bearer {TOKEN}", (method, path)
            assert TOKEN not in path and TOKEN.encode() not in body, (method, path)
            others = {k: v for k, v in headers.items() if k != "Authorization"}
            assert TOKEN not in json.dumps(others), (method, path)


@pytest.fixture
def github(httpserver_ipv4: HTTPServer) -> FakeGitHub:
    return FakeGitHub(httpserver_ipv4)


def needs(build: str = "success", *, restore: str = "success", step: str = "success", send: str = "skipped",
          save: str = "success", deploy: str = "success") -> dict[str, Any]:  # fmt: skip
    return {
        "build": {"result": build, "outputs": {"restore": restore, "build": step, "send": send, "state": "7"}},
        "save-state": {"result": save, "outputs": {}},
        "deploy": {"result": deploy, "outputs": {}},
    }


def status(*, stale: bool, newest: str | None = "2026-11-20") -> dict[str, Any]:
    attention = []
    if stale:
        attention.append({"kind": "stale", "profile": None, "message": f"no new papers since {newest}: old"})
    return {"healthy": not stale, "attention": attention, "dumps": {"newest": newest, "stale": stale}}


def run_notifier(
    server: HTTPServer, logs: Path, run_needs: dict[str, Any], **extra: str
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_API_URL": server.url_for("/").rstrip("/"),
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_RUN_ID": "4242",
        "NEEDS": json.dumps(run_needs),
        "DIGEST_LOGS": str(logs),
        **extra,
    }
    return subprocess.run([sys.executable, str(SCRIPT), "issue"], env=env, capture_output=True, text=True, timeout=60)


def write_logs(logs: Path, *, status_json: dict[str, Any] | None = None, **tails: str) -> Path:
    logs.mkdir(parents=True, exist_ok=True)
    if status_json is not None:
        (logs / "status.json").write_text(json.dumps(status_json))
    for name, text in tails.items():
        (logs / f"{name}.log").write_text(text)
    return logs


def test_a_failed_build_opens_one_issue_with_the_step_its_log_and_what_to_do(
    github: FakeGitHub, tmp_path: Path
) -> None:
    tail = "\n".join(
        [
            "315 entries: 309 new papers",
            "digest.toml:12: profiles[0].subscribers: 'x' is not an address",
            f"smtp login password={PASSWORD}",
            f"Authorization: Bearer {TOKEN}",
            "::error::the build failed (exit code 2; see the log above); nothing is deployed",
        ]
    )
    logs = write_logs(tmp_path / "logs", status_json=status(stale=False), build=tail)
    result = run_notifier(github.server, logs, needs("failure", step="failure", deploy="skipped"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert github.calls() == [("GET", f"/repos/{REPO}/issues"), ("POST", f"/repos/{REPO}/issues")]
    (issue,) = github.issues
    assert issue["title"] == "paper-digest: publishing is failing"
    text = issue["body"]
    assert notifier.MARKER in text
    assert "**Build digests, feeds and site**" in text
    assert "digest.toml:12: profiles[0].subscribers" in text and "exit code 2" in text
    assert "**What to do:**" in text and "digest profiles check" in text
    assert "https://github.com/owner/repo/actions/runs/4242" in text
    assert PASSWORD not in text and TOKEN not in text
    assert "password=***" in text
    assert "opened issue #1" in result.stdout
    github.assert_token_only_in_the_authorization_header()


def test_an_open_issue_gets_a_comment_instead_of_a_second_issue(github: FakeGitHub, tmp_path: Path) -> None:
    github.issues += [
        {"number": 1, "state": "open", "title": "Unrelated", "body": "hello"},
        {"number": 2, "state": "open", "title": "A pull request", "body": notifier.MARKER, "pull_request": {}},
        {
            "number": 3,
            "state": "open",
            "title": "paper-digest: publishing is failing",
            "body": notifier.MARKER,
            "user": BOT,
        },
    ]
    logs = write_logs(tmp_path / "logs", save="::error::the digest-state branch moved during this run")
    result = run_notifier(github.server, logs, needs(save="failure"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert github.calls() == [("GET", f"/repos/{REPO}/issues"), ("POST", f"/repos/{REPO}/issues/3/comments")]
    (comment,) = github.comments[3]
    assert "**Save the state database**" in comment and "branch moved during this run" in comment
    assert "artifact" in comment
    assert len(github.issues) == 3
    github.assert_token_only_in_the_authorization_header()


def test_a_stale_inbox_opens_an_issue_naming_the_date(github: FakeGitHub, tmp_path: Path) -> None:
    logs = write_logs(tmp_path / "logs", status_json=status(stale=True, newest="2025-12-31"))
    result = run_notifier(github.server, logs, needs())
    assert result.returncode == 0, result.stdout + result.stderr
    (issue,) = github.issues
    assert issue["title"] == "paper-digest: no new papers since 2025-12-31"
    assert "[source] enabled = true" in issue["body"]
    assert "Publishing failed" not in issue["body"]


def test_a_failed_run_with_a_stale_inbox_says_both(github: FakeGitHub, tmp_path: Path) -> None:
    logs = write_logs(tmp_path / "logs", status_json=status(stale=True, newest="2025-12-31"), send="refused")
    result = run_notifier(github.server, logs, needs("failure", send="failure", deploy="skipped"))
    assert result.returncode == 0, result.stdout + result.stderr
    (issue,) = github.issues
    assert issue["title"] == "paper-digest: publishing is failing"
    assert "**Send the emails**" in issue["body"] and "no new papers since 2025-12-31" in issue["body"]


def test_the_first_successful_fresh_run_closes_the_issue(github: FakeGitHub, tmp_path: Path) -> None:
    github.issues.append(health_issue(1))
    logs = write_logs(tmp_path / "logs", status_json=status(stale=False))
    result = run_notifier(github.server, logs, needs())
    assert result.returncode == 0, result.stdout + result.stderr
    assert github.calls() == [
        ("GET", f"/repos/{REPO}/issues"),
        ("POST", f"/repos/{REPO}/issues/1/comments"),
        ("PATCH", f"/repos/{REPO}/issues/1"),
    ]
    assert github.issues[0]["state"] == "closed" and github.issues[0]["state_reason"] == "completed"
    assert "closed issue #1" in result.stdout
    github.assert_token_only_in_the_authorization_header()


def test_a_successful_but_stale_run_keeps_the_issue_open(github: FakeGitHub, tmp_path: Path) -> None:
    github.issues.append(health_issue(1))
    logs = write_logs(tmp_path / "logs", status_json=status(stale=True))
    assert run_notifier(github.server, logs, needs()).returncode == 0
    assert github.issues[0]["state"] == "open"
    assert ("PATCH", f"/repos/{REPO}/issues/1") not in github.calls()


def test_an_issue_a_person_opened_is_never_taken_for_the_health_issue(github: FakeGitHub, tmp_path: Path) -> None:
    person = {"login": "someone", "type": "User"}
    github.issues += [
        {"number": 1, "state": "open", "title": "paper-digest: publishing is failing", "body": "", "user": person},
        {"number": 2, "state": "open", "title": "paper-digest: hi", "body": notifier.MARKER, "user": person},
    ]
    logs = write_logs(tmp_path / "logs", status_json=status(stale=False))
    assert run_notifier(github.server, logs, needs()).returncode == 0
    assert github.calls() == [("GET", f"/repos/{REPO}/issues")]  # nothing commented, nothing closed
    assert [i["state"] for i in github.issues] == ["open", "open"]


def test_a_healthy_run_without_an_issue_only_looks(github: FakeGitHub, tmp_path: Path) -> None:
    logs = write_logs(tmp_path / "logs", status_json=status(stale=False))
    result = run_notifier(github.server, logs, needs())
    assert result.returncode == 0
    assert github.calls() == [("GET", f"/repos/{REPO}/issues")]


def test_without_a_failure_or_a_status_nothing_is_called(github: FakeGitHub, tmp_path: Path) -> None:
    # No status.json (its artifact missing) and no failed job: neither healthy nor failing.
    result = run_notifier(github.server, tmp_path / "no-logs", needs())
    assert result.returncode == 0, result.stdout + result.stderr
    assert github.requests == []


def test_the_issue_is_found_on_a_later_page_and_no_link_elsewhere_is_followed(
    github: FakeGitHub, tmp_path: Path
) -> None:
    github.page_size = 2
    github.issues += [{"number": n, "state": "open", "title": f"issue {n}", "body": ""} for n in range(1, 5)]
    github.issues.append(health_issue(5, "paper-digest: no new papers since x"))
    logs = write_logs(tmp_path / "logs", status_json=status(stale=False))
    assert run_notifier(github.server, logs, needs()).returncode == 0
    assert [c for c in github.calls() if c[0] == "GET"] == [("GET", f"/repos/{REPO}/issues")] * 3
    assert github.issues[4]["state"] == "closed"

    github.requests.clear()
    github.issues = [{"number": 1, "state": "open", "title": "other", "body": ""}]
    github.next_link = "http://127.0.0.2:9/steal?page=2"
    write_logs(tmp_path / "logs", status_json=status(stale=True))
    assert run_notifier(github.server, logs, needs()).returncode == 0
    assert [c for c in github.calls() if c[0] == "GET"] == [("GET", f"/repos/{REPO}/issues")]
    assert github.issues[-1]["title"].startswith("paper-digest: no new papers")
    github.assert_token_only_in_the_authorization_header()


def test_the_token_never_goes_out_in_clear_text(github: FakeGitHub, tmp_path: Path) -> None:
    logs = write_logs(tmp_path / "logs", status_json=status(stale=True))
    result = run_notifier(github.server, logs, needs(), GITHUB_API_URL="http://api.example.org")
    assert result.returncode == 1
    assert "::error::" in result.stdout and "https" in result.stdout
    assert TOKEN not in result.stdout + result.stderr
    assert github.requests == []


def test_an_api_error_fails_the_job_with_its_message(httpserver_ipv4: HTTPServer, tmp_path: Path) -> None:
    httpserver_ipv4.expect_request(f"/repos/{REPO}/issues").respond_with_json(
        {"message": "Resource not accessible by integration"}, status=403
    )
    logs = write_logs(tmp_path / "logs", status_json=status(stale=True))
    result = run_notifier(httpserver_ipv4, logs, needs())
    assert result.returncode == 1
    assert "403 Resource not accessible by integration" in result.stdout
    assert TOKEN not in result.stdout


# -- the log tails ------------------------------------------------------------------------


def test_tee_passes_the_output_through_and_keeps_a_scrubbed_tail(tmp_path: Path) -> None:
    lines = [f"line {n}" for n in range(100)]
    lines += [
        f"connecting with {PASSWORD}",
        f"key is {'k' * 8}unsubscribe-key-value",
        "https://user:pa55word@smtp.example.org/",
        "hf token hf_abcdefghijklmnopqrstuvwxyz012345",
        "::warning::some emails were not delivered",
    ]
    text = "\n".join(lines) + "\n"
    target = tmp_path / "logs" / "send.log"
    env = {
        "PATH": "/usr/bin:/bin",
        "DIGEST_SMTP_PASSWORD": PASSWORD,
        "DIGEST_UNSUBSCRIBE_KEY": "kkkkkkkkunsubscribe-key-value",
        "DIGEST_SMTP_HOST": "smtp.example.org",
    }
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "tee", str(target)], input=text, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0
    assert result.stdout == text, "the log itself is unchanged (Actions masks secrets there)"
    tail = target.read_text().splitlines()
    assert len(tail) == notifier.TAIL_LINES and tail[-1] == "::warning::some emails were not delivered"
    kept = "\n".join(tail)
    assert PASSWORD not in kept and "unsubscribe-key-value" not in kept and "pa55word" not in kept
    assert "hf_abcdefghijklmnopqrstuvwxyz012345" not in kept
    assert "smtp.example.org" in kept, "a host is not a secret"


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("Authorization: Bearer abc.def-123", "abc.def-123"),
        ("authorization: basic eC1hY2Nlc3MtdG9rZW46c2VjcmV0", "eC1hY2Nlc3MtdG9rZW46c2VjcmV0"),
        ('{"password": "s3cr3t!"}', "s3cr3t!"),
        ("DIGEST_SMTP_PASSWORD=s3cr3t", "s3cr3t"),
        ("api_key: abcd1234", "abcd1234"),
        ("unsubscribe_key=0123456789abcdef", "0123456789abcdef"),
        ("GET https://example.org/unsubscribe.html?list=x&token=deadbeef00", "deadbeef00"),
        ("push to https://x-access-token:ghs_abc@github.com/o/r", "ghs_abc"),
        ("token ghp_0123456789abcdefghijABCDEFGHIJ", "ghp_0123456789abcdefghijABCDEFGHIJ"),
        ("using github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "github_pat_11ABCDEFG0123456789_abcdefghijklmnop"),
    ],
)
def test_scrub_removes_what_looks_like_a_secret(line: str, secret: str) -> None:
    scrubbed = notifier.scrub(line)
    assert secret not in scrubbed and "***" in scrubbed


def test_scrub_keeps_ordinary_log_lines() -> None:
    lines = [
        "315 entries: 309 new papers, 6 updated, 0 problems",
        "digest continual-learning 2026-11-22: 10 papers [built]",
        "the token expired",
        "emails: smtp: 6 sent, 0 done before, 0 failed, 0 left pending in 0.1 s -> SMTP",
    ]
    assert [notifier.scrub(line) for line in lines] == lines


def test_secret_values_cover_their_encoded_forms() -> None:
    values = notifier.secret_values({"HF_TOKEN": "hf-secret/value", "PATH": "/usr/bin", "SHORT_KEY": "abc"})
    text = "a hf-secret/value b hf-secret%2Fvalue c aGYtc2VjcmV0L3ZhbHVl d"
    assert notifier.scrub(text, values) == "a *** b *** c *** d"
    assert "/usr/bin" not in values and "abc" not in values


def test_keepalive_enables_the_workflow_with_the_token_in_a_header_only(github: FakeGitHub, tmp_path: Path) -> None:
    environ = {
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_API_URL": github.server.url_for("/").rstrip("/"),
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "keepalive", "publish.yml"],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert github.calls() == [("PUT", f"/repos/{REPO}/actions/workflows/publish.yml/enable")]
    github.assert_token_only_in_the_authorization_header()
    bad = subprocess.run(
        [sys.executable, str(SCRIPT), "keepalive", "../../x"], capture_output=True, text=True, timeout=60, env=environ
    )
    assert bad.returncode == 1 and "not a workflow file name" in bad.stdout
