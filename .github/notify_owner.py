#!/usr/bin/env python3
"""Tell the repository's owner when publishing needs them: one GitHub issue, opened,
commented on and closed by the publish workflow. Standard library only: it runs on the
runner's Python, without the project installed.

    notify_owner.py tee FILE   copy standard input to standard output, and keep its last
                               lines, scrubbed of secrets, in FILE: a step's log tail
    notify_owner.py issue      open, comment on or close the health issue

`issue` reads the environment: GITHUB_TOKEN (sent only in the Authorization header),
GITHUB_REPOSITORY, GITHUB_API_URL, GITHUB_SERVER_URL and GITHUB_RUN_ID (set by Actions),
NEEDS (the workflow's `toJSON(needs)`: each job's result and the build job's step
outcomes) and DIGEST_LOGS (the folder of log tails and `digest status --json`'s
status.json; default $RUNNER_TEMP/digest-logs). A failed job, or a stale inbox, opens
the issue (or comments on the open one); a run where every job succeeded and the papers
are fresh closes it. It makes three kinds of REST calls: list the open issues, create an
issue or a comment, close an issue.

Nothing that looks like a secret reaches a log tail or the issue: the values of secret
environment variables (names with PASSWORD, TOKEN, SECRET or KEY), Authorization headers,
`password=`-like pairs, credentials in URLs and GitHub or Hugging Face tokens are
replaced with `***`, once when the tail is written and again in the issue's body.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

MARKER = "<!-- paper-digest:health -->"
TITLE_PREFIX = "paper-digest: "
FAILING_TITLE = "paper-digest: publishing is failing"
TAIL_LINES = 40
LINE_LIMIT = 400
MAX_PAGES = 10
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
REDACTED = "***"

# -- scrubbing -------------------------------------------------------------------------

_SECRET_NAME = re.compile(r"PASSWORD|PASSWD|TOKEN|SECRET|KEY", re.IGNORECASE)
_MIN_SECRET = 4  # shorter values would blank ordinary words and say nothing anyway
_PATTERNS = (
    # Authorization: Bearer abc / Proxy-Authorization: basic abc
    (re.compile(r"(?i)\b((?:proxy-)?authorization)(\s*[:=]\s*)(?:(?:bearer|basic|token)\s+)?\S+"), r"\1\2***"),
    # bearer abc123..., token abc123... (a word followed by something long with a digit)
    (re.compile(r"(?i)\b(bearer|basic|token)(\s+)(?=\S*\d)[\w.~+/=-]{16,}"), r"\1\2***"),
    # password=..., "api_key": "...", DIGEST_SMTP_PASSWORD=..., secret: ...
    (
        re.compile(
            r"(?i)\b([\w-]*(?:password|passwd|secret|token|api[_-]?key|_key))"
            r"(\"?'?\s*[:=]\s*[\"']?)([^\s\"',;&]+)"
        ),
        r"\1\2***",
    ),
    # https://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^@\s/]+@"), r"\1***@"),
    # ?token=... &sig=...
    (re.compile(r"(?i)([?&](?:access_token|token|key|sig|signature|password)=)[^&\s]+"), r"\1***"),
    # GitHub and Hugging Face tokens wherever they stand
    (re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_\w{20,}|hf_[A-Za-z0-9]{20,})\b"), REDACTED),
)


def secret_values(environ: Mapping[str, str]) -> list[str]:
    """The values of the secret-looking variables in `environ`, with the encoded forms a
    log could show them in (URL-quoted, base64), longest first."""
    found: set[str] = set()
    for name, value in environ.items():
        if not _SECRET_NAME.search(name) or len(value) < _MIN_SECRET:
            continue
        found.add(value)
        found.add(urllib.parse.quote(value, safe=""))
        found.add(base64.b64encode(value.encode()).decode())
        found.add(base64.b64encode(f"x-access-token:{value}".encode()).decode())
    return sorted(found, key=len, reverse=True)


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every secret value and every secret-looking pattern replaced by `***`."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


# -- tee: a step's log tail ---------------------------------------------------------------


def tee(source: BinaryIO, sink: BinaryIO, path: Path, environ: Mapping[str, str]) -> None:
    """Copy `source` to `sink` as it comes; at the end (or on SIGTERM) write its last
    `TAIL_LINES` lines to `path`, each cut to `LINE_LIMIT` characters, scrubbed."""
    tail: deque[str] = deque(maxlen=TAIL_LINES)

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    try:
        for raw in source:
            sink.write(raw)
            sink.flush()
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            tail.append(line if len(line) <= LINE_LIMIT else line[:LINE_LIMIT] + " …")
    finally:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(scrub("\n".join(tail), secret_values(environ)) + "\n", encoding="utf-8")


# -- the verdict of a run --------------------------------------------------------------------


class Outcome(StrEnum):
    HEALTHY = "healthy"
    FAILING = "failing"
    STALE = "stale"
    UNKNOWN = "unknown"  # neither failed nor known to be fresh: the issue is left as it is


@dataclass(frozen=True, slots=True)
class Step:
    """A place a run can fail: a job, or a step of the build job whose outcome it outputs."""

    job: str
    output: str | None
    name: str
    log: str | None
    advice: str


STEPS = (
    Step(
        "build",
        "restore",
        "Restore the state database",
        "restore.log",
        "The `digest-state` branch could not be read. Check the log: a network error goes away on the next run; "
        "a branch without `state.db` must be fixed or deleted (deleting it starts afresh: every stored paper "
        "becomes new again, and today's emails may repeat yesterday's papers).",
    ),
    Step(
        "build",
        "build",
        "Build digests, feeds and site",
        "build.log",
        "Exit code 2 is a configuration problem: run `digest profiles check` and check the repository variables "
        "`DIGEST_SITE_URL` and `DIGEST_UNSUBSCRIBE_KEY`. Exit code 4 means the inbox is stale while "
        "`DIGEST_STALE_FAIL` is `true`. Run `make run` on your machine to see the same error.",
    ),
    Step(
        "build",
        "send",
        "Send the emails",
        "send.log",
        "Check the `DIGEST_SMTP_*` secrets of the `paper-digest` environment (host, port, security, username, "
        "password, from). What was sent before the failure is recorded; `digest deliveries` shows the ledger.",
    ),
    Step(
        "build",
        None,
        "Build digests, feeds and site (set-up or upload)",
        None,
        "A step around the build failed (checkout, Python set-up, health check or an upload): open the run's log.",
    ),
    Step(
        "save-state",
        None,
        "Save the state database",
        "save.log",
        "The state could not be pushed to the `digest-state` branch. If the log says the branch moved during the "
        "run, something else wrote to it (a run outside the concurrency group, or a push by hand): this run's "
        "database is kept for 7 days as the run's `digest-state` artifact; decide which state to keep and push it "
        "to the branch yourself (nothing here forces a push). Otherwise check that the workflow may write to the "
        "repository (Settings → Actions → General → Workflow permissions).",
    ),
    Step(
        "deploy",
        None,
        "Deploy to GitHub Pages",
        None,
        "Check Settings → Pages → Build and deployment → Source: **GitHub Actions**, and the `github-pages` "
        "environment's deployment branch rules.",
    ),
)

STALE_ADVICE = (
    "Turn on the live source (`[source] enabled = true` in `digest.toml`) or put new dumps into the inbox. If it "
    "is on, run `digest fetch` on your machine to see whether the Daily Papers API answers."
)


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    failed: Step | None = None
    stale_since: str | None = None
    stale_message: str | None = None


def failed_step(needs: Mapping[str, Any]) -> Step | None:
    """The first place the run failed (a job whose result is failure or cancelled), or None."""
    for step in STEPS:
        job = needs.get(step.job) or {}
        if job.get("result") not in ("failure", "cancelled"):
            continue
        if step.output is None or (job.get("outputs") or {}).get(step.output) == "failure":
            return step
    return None


def verdict(needs: Mapping[str, Any], status: Mapping[str, Any] | None) -> Verdict:
    """Failing when a job failed; else stale when `digest status` said so; healthy when it
    said the papers are fresh; unknown without a status to go by."""
    failed = failed_step(needs)
    dumps = (status or {}).get("dumps") or {}
    stale = bool(dumps.get("stale"))
    attention = (status or {}).get("attention") or []
    message = next((a.get("message") for a in attention if a.get("kind") in ("stale", "no-dumps")), None)
    since = dumps.get("newest")
    if failed is not None:
        return Verdict(Outcome.FAILING, failed, since if stale else None, message if stale else None)
    if status is None:
        return Verdict(Outcome.UNKNOWN)
    if stale:
        return Verdict(Outcome.STALE, None, since, message)
    return Verdict(Outcome.HEALTHY)


def title(result: Verdict) -> str:
    if result.outcome is Outcome.FAILING:
        return FAILING_TITLE
    if result.stale_since:
        return f"paper-digest: no new papers since {result.stale_since}"
    return "paper-digest: no papers stored yet"


def fence(text: str) -> str:
    """`text` in a code block whose fence no run of backticks inside can close."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    marks = "`" * max(3, longest + 1)
    return f"{marks}text\n{text}\n{marks}"


def body(result: Verdict, *, run_url: str, logs: Path, secrets: Iterable[str]) -> str:
    """The issue's (or comment's) text, scrubbed."""
    parts = [MARKER]
    if result.failed is not None:
        step = result.failed
        parts.append(f"Publishing failed in [this run]({run_url}), at the step **{step.name}**.")
        tail = _read(logs / step.log) if step.log else None
        if tail:
            parts.append("The last lines of its log:\n\n" + fence(tail))
        else:
            parts.append("Its log is on the run's page.")
        parts.append(f"**What to do:** {step.advice}")
    if result.stale_since is not None or result.outcome is Outcome.STALE:
        why = result.stale_message or "no dumps are stored yet"
        parts.append(f"The feeds get no new papers: {why} ([run]({run_url})).")
        parts.append(f"**What to do:** {STALE_ADVICE}")
    parts.append(
        "_Every run that fails comments here; the first run that succeeds with fresh papers closes this issue._"
    )
    return scrub("\n\n".join(parts), secrets)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip() or None
    except OSError:
        return None


# -- the GitHub REST API ---------------------------------------------------------------------


class ApiError(Exception):
    """A call to the GitHub API failed; the message says which and why (never the token)."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect would carry the Authorization header along, possibly to another host.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def checked_api_url(url: str) -> str:
    """The API address, refused when the token would go out in clear text."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS):
        return url.rstrip("/")
    raise ApiError(f"GITHUB_API_URL must be an https address (got {url!r}): the token is never sent in clear text")


class GitHub:
    """The three kinds of calls the notifier makes, on one repository."""

    def __init__(self, api_url: str, repository: str, token: str) -> None:
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", repository):
            raise ApiError(f"GITHUB_REPOSITORY must be OWNER/NAME (got {repository!r})")
        self.api = checked_api_url(api_url)
        self.repository = repository
        self._token = token
        self._opener = urllib.request.build_opener(_NoRedirect)

    def open_issue(self) -> dict[str, Any] | None:
        """The open health issue, if any: one this notifier opened (its marker in the body, and
        opened by a bot: the workflow's token), never one a person opened with a like title
        (anyone may open an issue in a public repository). Pull requests are not issues."""
        url: str | None = f"{self.api}/repos/{self.repository}/issues?state=open&per_page=100"
        for _ in range(MAX_PAGES):
            if url is None:
                break
            page, link = self._call("GET", url)
            for issue in page:
                if "pull_request" in issue:
                    continue
                opened_by_a_bot = (issue.get("user") or {}).get("type") == "Bot"
                if MARKER in (issue.get("body") or "") and opened_by_a_bot:
                    return issue
            url = self._next_page(link)
        return None

    def create_issue(self, title: str, text: str) -> dict[str, Any]:
        return self._call("POST", f"{self.api}/repos/{self.repository}/issues", {"title": title, "body": text})[0]

    def comment(self, number: int, text: str) -> dict[str, Any]:
        url = f"{self.api}/repos/{self.repository}/issues/{number}/comments"
        return self._call("POST", url, {"body": text})[0]

    def close(self, number: int) -> dict[str, Any]:
        url = f"{self.api}/repos/{self.repository}/issues/{number}"
        return self._call("PATCH", url, {"state": "closed", "state_reason": "completed"})[0]

    def enable_workflow(self, workflow: str) -> None:
        """Enable `workflow` (a file name under .github/workflows): harmless when it is
        enabled, and what restarts GitHub's 60-day count of a scheduled workflow."""
        if not re.fullmatch(r"[\w.-]+\.ya?ml", workflow):
            raise ApiError(f"not a workflow file name: {workflow!r}")
        self._call("PUT", f"{self.api}/repos/{self.repository}/actions/workflows/{workflow}/enable")

    def _next_page(self, link: str | None) -> str | None:
        match = re.search(r'<([^>]+)>;\s*rel="next"', link or "")
        # Only pages of the same API: the token never follows a link elsewhere.
        if match and match.group(1).startswith(self.api + "/"):
            return match.group(1)
        return None

    def _call(self, method: str, url: str, payload: dict[str, Any] | None = None) -> tuple[Any, str | None]:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self._token}")
        request.add_header("Accept", "application/vnd.github+json")
        request.add_header("X-GitHub-Api-Version", "2022-11-28")
        request.add_header("User-Agent", "paper-digest-notifier")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        where = f"{method} {urllib.parse.urlsplit(url).path}"
        try:
            with self._opener.open(request, timeout=30) as response:
                return json.loads(response.read() or b"null"), response.headers.get("Link")
        except urllib.error.HTTPError as exc:
            raise ApiError(f"{where}: {exc.code} {_api_message(exc)}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise ApiError(f"{where}: {getattr(exc, 'reason', exc)}") from None


def _api_message(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read()).get("message", exc.reason))
    except (ValueError, AttributeError, OSError):
        return str(exc.reason)


# -- issue: what the workflow's last job runs ---------------------------------------------


def notify(github: GitHub, result: Verdict, *, run_url: str, logs: Path, secrets: Iterable[str]) -> str:
    """Open, comment on or close the health issue as `result` asks; say what was done."""
    if result.outcome is Outcome.UNKNOWN:
        return "no verdict (no status and no failed job): the health issue is left as it is"
    existing = github.open_issue()
    if result.outcome is Outcome.HEALTHY:
        if existing is None:
            return "healthy: no health issue is open"
        number = int(existing["number"])
        github.comment(number, f"{MARKER}\n\nFixed: [this run]({run_url}) succeeded with fresh papers.")
        github.close(number)
        return f"healthy: closed issue #{number}"
    text = body(result, run_url=run_url, logs=logs, secrets=secrets)
    if existing is not None:
        number = int(existing["number"])
        github.comment(number, text)
        return f"{result.outcome}: commented on issue #{number}"
    created = github.create_issue(title(result), text)
    return f"{result.outcome}: opened issue #{created.get('number')}"


def run_issue(environ: Mapping[str, str]) -> int:
    token = environ.get("GITHUB_TOKEN", "")
    repository = environ.get("GITHUB_REPOSITORY", "")
    if not token or not repository:
        print("::error::GITHUB_TOKEN and GITHUB_REPOSITORY must be set")
        return 2
    logs = Path(environ.get("DIGEST_LOGS") or Path(environ.get("RUNNER_TEMP", ".")) / "digest-logs")
    try:
        needs = json.loads(environ.get("NEEDS") or "{}")
    except ValueError:
        print("::error::NEEDS is not JSON (expected the workflow's toJSON(needs))")
        return 2
    status = _status(logs / "status.json")
    server = environ.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
    run_url = f"{server}/{repository}/actions/runs/{environ.get('GITHUB_RUN_ID', '')}"
    try:
        github = GitHub(environ.get("GITHUB_API_URL", "https://api.github.com"), repository, token)
        said = notify(github, verdict(needs, status), run_url=run_url, logs=logs, secrets=secret_values(environ))
    except ApiError as exc:
        print(f"::error::the health issue could not be updated: {scrub(str(exc), secret_values(environ))}")
        return 1
    print(said)
    return 0


def run_keepalive(environ: Mapping[str, str], workflow: str) -> int:
    """Enable the publish workflow again, so that its schedule is not disabled after 60 days
    without activity even if GitHub does not count the state branch's pushes as activity."""
    token, repository = environ.get("GITHUB_TOKEN", ""), environ.get("GITHUB_REPOSITORY", "")
    if not token or not repository:
        print("::error::GITHUB_TOKEN and GITHUB_REPOSITORY must be set")
        return 2
    try:
        GitHub(environ.get("GITHUB_API_URL", "https://api.github.com"), repository, token).enable_workflow(workflow)
    except ApiError as exc:
        print(f"::warning::could not keep the schedule alive: {scrub(str(exc), secret_values(environ))}")
        return 1
    print(f"kept {workflow} enabled")
    return 0


def _status(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[1] == "tee":
        tee(sys.stdin.buffer, sys.stdout.buffer, Path(argv[2]), os.environ)
        return 0
    if len(argv) == 2 and argv[1] == "issue":
        return run_issue(os.environ)
    if len(argv) == 3 and argv[1] == "keepalive":
        return run_keepalive(os.environ, argv[2])
    print(f"usage: {argv[0]} tee FILE | issue | keepalive WORKFLOW.yml", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
