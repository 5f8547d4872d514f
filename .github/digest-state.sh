#!/usr/bin/env bash
# The publish workflow's state database, kept in the repository on an orphan branch
# (`digest-state`) that holds only the database, cut into files state.db.000, .001, ...
# of at most 45 MiB (GitHub warns about files over 50 MB and refuses them over 100 MB;
# a year of daily digests makes about 60 MB). See README, "Publish your own feeds".
#
#   digest-state.sh restore   before the build: the branch's parts become .digest/state.db,
#                             and .digest/state.db.base records the commit it came from
#                             ("none" when there is no branch yet: the first run)
#   digest-state.sh save      after the build and send steps, failed or not: a compact,
#                             checked snapshot of .digest/state.db is committed on top of
#                             that commit and pushed; never forced
#
# All git work happens in a scratch bare repository, so the checkout's working tree,
# index, HEAD and refs are never touched; only the remote's URL is read from it.
#
# Why a rejected push is never merged or forced: a SQLite file cannot be merged, and a
# run's database holds what that run did (emails sent), so replacing someone else's
# state loses their record and overwriting ours loses this run's. The workflow runs one
# at a time, so the branch can only move under a run when someone else wrote to it. The
# save therefore pushes only a fast-forward from the commit this run restored. When a
# push is rejected it fetches the branch again: if the branch still is at that commit
# (the rejection was transient) or already has ours, it pushes again; otherwise it stops
# with an error and pushes nothing, and this run's state stays in the workflow's
# artifact for a person to decide.
#
# Environment (all optional): STATE_BRANCH (digest-state), STATE_DB (.digest/state.db),
# STATE_REMOTE (origin: a remote of the checkout, or a URL or path), STATE_KEEPALIVE_DAYS
# (30: an unchanged state still gets an empty commit this often, which keeps the
# repository active), STATE_PART_BYTES (47185920, 45 MiB), STATE_PUSH_ATTEMPTS (3),
# STATE_RETRY_PAUSE (5 seconds, times the attempt), PYTHON (python3), GITHUB_TOKEN (sent
# to GITHUB_SERVER_URL as an HTTP header set through git's environment, never on a
# command line or in a URL).
set -euo pipefail
shopt -s inherit_errexit

branch="${STATE_BRANCH:-digest-state}"
db="${STATE_DB:-.digest/state.db}"
base_file="$db.base"
remote="${STATE_REMOTE:-origin}"
keepalive_days="${STATE_KEEPALIVE_DAYS:-30}"
part_bytes="${STATE_PART_BYTES:-47185920}"
attempts="${STATE_PUSH_ATTEMPTS:-3}"
pause="${STATE_RETRY_PAUSE:-5}"
python="${PYTHON:-python3}"

export GIT_AUTHOR_NAME="${GIT_AUTHOR_NAME:-github-actions[bot]}"
export GIT_AUTHOR_EMAIL="${GIT_AUTHOR_EMAIL:-41898282+github-actions[bot]@users.noreply.github.com}"
export GIT_COMMITTER_NAME="${GIT_COMMITTER_NAME:-$GIT_AUTHOR_NAME}"
export GIT_COMMITTER_EMAIL="${GIT_COMMITTER_EMAIL:-$GIT_AUTHOR_EMAIL}"
export GIT_TERMINAL_PROMPT=0

die() {
  echo "::error::$*"
  exit 1
}

if [[ -n "${GITHUB_TOKEN:-}" ]]; then
  header="AUTHORIZATION: basic $(printf 'x-access-token:%s' "$GITHUB_TOKEN" | base64 | tr -d '\n')"
  [[ "${GITHUB_ACTIONS:-}" == "true" ]] && echo "::add-mask::${header#AUTHORIZATION: basic }"
  export GIT_CONFIG_COUNT=1
  export GIT_CONFIG_KEY_0="http.${GITHUB_SERVER_URL:-https://github.com}/.extraheader"
  export GIT_CONFIG_VALUE_0="$header"
  unset header
fi

url="$(git remote get-url "$remote" 2> /dev/null || printf '%s' "$remote")"
# git runs in the scratch repository below: a local path must not be relative.
[[ -e "$url" ]] && url="$(cd "$url" && pwd)"
scratch="$(mktemp -d "${RUNNER_TEMP:-${TMPDIR:-/tmp}}/digest-state.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
repo="$scratch/state.git"
git init --quiet --bare "$repo"

tip=""

size() { printf '%s bytes' "$(wc -c < "$1" | tr -d ' ')"; }

# Sets `tip` to the branch's commit on the remote, fetched into the scratch repository
# (empty: no such branch). Any other failure (network, permissions) is an error, never
# taken for "no branch": a run that cannot read the state must not start afresh.
fetch_tip() {
  local status=0
  tip=""
  git -C "$repo" ls-remote --exit-code --heads "$url" "refs/heads/$branch" > /dev/null || status=$?
  case $status in
    0) ;;
    2) return 0 ;;
    *) die "cannot read the $branch branch of the repository (git ls-remote exit code $status)" ;;
  esac
  git -C "$repo" fetch --quiet --no-tags --depth=1 "$url" "refs/heads/$branch" \
    || die "cannot fetch the $branch branch"
  tip="$(git -C "$repo" rev-parse FETCH_HEAD)"
}

moved() {
  die "the $branch branch moved during this run (restored from ${1:-no branch}, now at ${2:-no branch}): this run's state is not pushed, and nothing is forced; see README, \"Publish your own feeds\""
}

restore() {
  [[ ! -e "$db" ]] || die "$db already exists: restore only into a fresh checkout (the branch is the truth)"
  mkdir -p "$(dirname "$db")"
  fetch_tip
  if [[ -z "$tip" ]]; then
    echo "none" > "$base_file"
    echo "no $branch branch yet: this run starts with an empty state, and its save creates the branch"
    return 0
  fi
  assemble "$tip" "$db.restoring"
  rm -f "$db-wal" "$db-shm"
  mv "$db.restoring" "$db"
  echo "$tip" > "$base_file"
  echo "restored $db ($(size "$db")) from the $branch branch at $tip"
}

# `sqlite snapshot DB COPY`: a consistent, compact copy of the database (its write-ahead
# log included), checked. `sqlite same A B`: exit 0 when two snapshots hold the same
# database, telling apart only the header's counters, which every VACUUM INTO moves on.
sqlite() {
  "$python" - "$@" << 'PYTHON'
import sqlite3
import sys

COUNTERS = ((24, 28), (40, 44), (92, 100))  # change counter, schema cookie, version-valid-for + version


def snapshot(source_path, copy_path):
    source = sqlite3.connect(source_path)
    source.execute("VACUUM INTO ?", (copy_path,))
    source.close()
    copy = sqlite3.connect(copy_path)
    verdict = copy.execute("PRAGMA quick_check").fetchone()[0]
    copy.close()
    return 0 if verdict == "ok" else f"the snapshot of the state database fails its check: {verdict}"


def content(path):
    data = bytearray(open(path, "rb").read())
    for start, end in COUNTERS:
        data[start:end] = bytes(end - start)
    return data


if sys.argv[1] == "snapshot":
    sys.exit(snapshot(sys.argv[2], sys.argv[3]))
sys.exit(0 if content(sys.argv[2]) == content(sys.argv[3]) else 1)
PYTHON
}

# `assemble COMMIT FILE`: the database of a commit of the branch, its parts put together in order.
assemble() {
  local parts
  parts="$(git -C "$repo" ls-tree --name-only "$1" | grep -E '^state\.db\.[0-9]{3}$' || true)"
  [[ -n "$parts" ]] || die "the $branch branch at $1 holds no state.db.000"
  : > "$2"
  while read -r part; do
    git -C "$repo" cat-file blob "$1:$part" >> "$2"
  done <<< "$parts"
}

# `tree_of FILE`: a tree of FILE cut into state.db.000, state.db.001, ...
tree_of() {
  local folder="$scratch/parts" part
  rm -rf "$folder"
  mkdir "$folder"
  split -b "$part_bytes" -d -a 3 "$1" "$folder/state.db."
  for part in "$folder"/state.db.*; do
    printf '100644 blob %s\t%s\n' "$(git -C "$repo" hash-object -w "$part")" "${part##*/}"
  done | git -C "$repo" mktree
}

commit_message() {
  local what="$1"
  if [[ -n "${GITHUB_RUN_ID:-}" ]]; then
    printf '%s\n\nRun: %s/%s/actions/runs/%s (%s)\n' "$what" "${GITHUB_SERVER_URL:-https://github.com}" \
      "${GITHUB_REPOSITORY:-}" "$GITHUB_RUN_ID" "${GITHUB_EVENT_NAME:-}"
  else
    printf '%s\n' "$what"
  fi
}

push() {
  local commit="$1" expected="$2" attempt
  for ((attempt = 1; ; attempt++)); do
    if git -C "$repo" push --quiet "$url" "$commit:refs/heads/$branch"; then
      echo "$commit" > "$base_file"
      echo "saved the state to the $branch branch at $commit"
      return 0
    fi
    ((attempt < attempts)) || die "the push to the $branch branch failed $attempts times; this run's state is not saved"
    echo "::warning::the push to the $branch branch was rejected (attempt $attempt of $attempts); fetching the branch again"
    fetch_tip
    # Ours descends from theirs only when the branch is where this run found it, or has ours.
    [[ "$tip" == "$expected" || "$tip" == "$commit" ]] || moved "$expected" "$tip"
    sleep $((attempt * pause))
  done
}

save() {
  [[ -f "$base_file" ]] || die "no $base_file: only a state restored from the $branch branch is saved to it (run restore first)"
  if [[ ! -f "$db" ]]; then
    echo "no $db: nothing to save"
    return 0
  fi
  local base expected snap tree parent=() message commit age
  base="$(< "$base_file")"
  expected="$base"
  [[ "$base" == "none" ]] && expected=""
  snap="$scratch/state.db"
  sqlite snapshot "$db" "$snap" || die "cannot take a snapshot of $db (see above); nothing is pushed"
  tree="$(tree_of "$snap")"
  fetch_tip
  [[ "$tip" == "$expected" ]] || moved "$expected" "$tip"
  message="state after a run: state.db $(size "$snap")"
  if [[ -n "$expected" ]]; then
    parent=(-p "$expected")
    assemble "$expected" "$scratch/base.db"
    if sqlite same "$snap" "$scratch/base.db"; then
      tree="$(git -C "$repo" rev-parse "$expected^{tree}")"
      age=$((($(date +%s) - $(git -C "$repo" log -1 --format=%ct "$expected")) / 86400))
      if ((age < keepalive_days)); then
        echo "the state did not change since $expected ($age days ago): nothing to push"
        return 0
      fi
      message="keep-alive: the state did not change for $age days"
    fi
  fi
  commit="$(commit_message "$message" | git -C "$repo" commit-tree "$tree" "${parent[@]}")"
  push "$commit" "$expected"
}

case "${1:-}" in
  restore) restore ;;
  save) save ;;
  *)
    echo "usage: $0 restore|save" >&2
    exit 2
    ;;
esac
