#!/usr/bin/env bash
# The publish workflow's send step: sends the digests the build step made, through
# the delivery ledger. Only this step sees the SMTP secrets.
set -euo pipefail

args=()
if [[ -n "${PROFILE:-}" ]]; then
  [[ "$PROFILE" =~ ^[a-z0-9]+(-[a-z0-9]+)*$ ]] || { echo "::error::profile must be a profile id"; exit 2; }
  args+=(--profile "$PROFILE")
fi
if [[ -n "${DIGEST_DATE:-}" ]]; then
  [[ "$DIGEST_DATE" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ ]] || { echo "::error::date must be YYYY-MM-DD"; exit 2; }
  args+=(--date "$DIGEST_DATE")
fi

.venv/bin/digest send "${args[@]}"
