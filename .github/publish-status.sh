#!/usr/bin/env bash
# The publish workflow's health check: `digest status` in the log, and its verdict as
# JSON in $DIGEST_LOGS/status.json for the job that tells the owner (a stale inbox opens
# an issue there). "Needs attention" (exit code 1) is the verdict, not a failure of this
# step: the build and send steps have already said what went wrong.
set -euo pipefail

logs="${DIGEST_LOGS:-${RUNNER_TEMP:-/tmp}/digest-logs}"
mkdir -p "$logs"
if [[ ! -x .venv/bin/digest ]]; then
  echo "digest is not installed (the build step failed before): no health check"
  exit 0
fi
status=0
.venv/bin/digest status --json > "$logs/status.json" || status=$?
if [[ $status -gt 1 ]]; then
  rm -f "$logs/status.json"
  echo "::error::digest status failed (exit code $status)"
  exit "$status"
fi
.venv/bin/digest status || true
