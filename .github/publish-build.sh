#!/usr/bin/env bash
# The publish workflow's build step. Dispatch inputs arrive only through the
# environment and are checked against strict patterns before they reach a command.
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

# The README's command.
make run RUN_ARGS="${args[*]}"
