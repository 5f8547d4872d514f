#!/usr/bin/env bash
# The publish workflow's build step: install with `make install`, then run `digest run`
# (what `make run` runs) and `digest prune`. Dispatch inputs arrive only through the
# environment and are checked against strict patterns before they reach a command.
#
# Exit codes of `digest run` (README, "Exit codes"): 1 means some input was rejected
# (a dump entry skipped, a file quarantined) and everything else was done, so the site
# is complete: a warning annotation, and the workflow goes on to deploy. Anything else
# that is not 0 (2 usage or configuration, 3 emails not delivered, 4 stale inbox, a
# failed install) fails the step, and nothing is deployed.
set -euo pipefail

args=()
if [[ -n "${PROFILE:-}" ]]; then
  [[ "$PROFILE" =~ ^[a-z0-9]+(-[a-z0-9]+)*$ ]] || { echo "::error::profile must be a profile id like 'continual-learning'"; exit 2; }
  args+=(--profile "$PROFILE")
fi
if [[ -n "${DIGEST_DATE:-}" ]]; then
  [[ "$DIGEST_DATE" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ ]] || { echo "::error::date must be YYYY-MM-DD"; exit 2; }
  args+=(--date "$DIGEST_DATE")
fi
if [[ "${DIGEST_STALE_FAIL:-}" == "true" ]]; then
  args+=(--stale fail)
fi

status=0
make install || status=$?
if [[ $status -ne 0 ]]; then
  echo "::error::the install failed (make install, exit code $status; see the log above); nothing is deployed"
  exit "$status"
fi

# The README's `make run`, without make in between: the exit code is digest's own.
.venv/bin/digest run "${args[@]}" || status=$?
case $status in
  0) ;;
  1) echo "::warning::digest run rejected some input (an entry skipped or a file quarantined; see the log above); everything else was built, so the site is deployed" ;;
  *) echo "::error::the build failed (exit code $status; see the log above); nothing is deployed"; exit "$status" ;;
esac

# Ledger rows and fetch records past [digest] retention_days: the state branch stays small.
.venv/bin/digest prune || { status=$?; echo "::error::digest prune failed (exit code $status)"; exit "$status"; }
