#!/usr/bin/env bash
# The publish workflow's send step: sends the digests the build step made, through
# the delivery ledger. Of the secrets, only this step sees the SMTP ones.
#
# Exit code 3 of `digest send` means some emails were refused for good or left pending
# for the next run, while every other one was sent and recorded in the ledger: a
# warning annotation, so the state is saved and the site deployed all the same. Any
# other non-zero code fails the step.
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

status=0
.venv/bin/digest send "${args[@]}" || status=$?
case $status in
  0) ;;
  3) echo "::warning::some emails were not delivered: refused for good, or left pending for the next run (digest deliveries says which); the others were sent and recorded" ;;
  *) echo "::error::digest send failed (exit code $status)"; exit "$status" ;;
esac
