"""Make the next blind judged split: the graders' folder first, their work into bench/quality/ after.

    .venv/bin/python bench/blind_split.py prepare /tmp/blind7 [--brief bench/quality/blind6/BRIEF.md]
    .venv/bin/python bench/blind_split.py assemble /tmp/blind7 bench/quality/blind7

Every change the ranker gets is first run on a split nobody looked at while choosing it
(bench/RESULTS.md says why). `prepare` writes what two graders working apart may read: the
seed papers in `papers.txt` (`#N<TAB>id=...`, the title, the whole abstract), the titles
of every judged profile so far in `existing_profiles.txt`, and the brief (the last split's,
its folder names and counts rewritten); give each grader that folder, a half (`A` or `B`)
and a pool of topics, and nothing else. `assemble` checks their work (the frozen
profiles unchanged, 309 lines of four grades in papers order, every liked title a seed
paper graded 2) and writes the split as the earlier ones are: `profiles.toml` (A then B),
`labels.tsv`, `BRIEF.md`, `LABELS-A.md`, `LABELS-B.md`, `notes-A.txt`, `notes-B.txt`.
The split's README, and its name in quality_compare.py, are written by hand.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import tomllib
from pathlib import Path

from quality import QUALITY, load_papers, load_profiles

HALVES = ("A", "B")
PER_HALF = 4
_LINE = re.compile(r"#?(\d+)\t([0-9a-f]{16})\t([012]) ([012]) ([012]) ([012])(\t.*)?")


def judged_profiles() -> list[str]:
    """`id: title` of every profile of bench/quality/ (the first set, then each folder's)."""
    files = [QUALITY / "profiles.toml", *sorted(QUALITY.glob("*/profiles.toml"))]
    return [f"{p.id}: {p.title}" for path in files for p in load_profiles(path)]


def prepare(folder: Path, brief: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for half in HALVES:
        (folder / half).mkdir(exist_ok=True)
    papers = load_papers()
    text = "".join(f"#{n}\tid={p.id}\n{p.title}\n{p.abstract}\n\n" for n, p in enumerate(papers, 1))
    (folder / "papers.txt").write_text(text, encoding="utf-8")
    existing = judged_profiles()
    (folder / "existing_profiles.txt").write_text("\n".join(existing) + "\n", encoding="utf-8")
    words = brief.read_text(encoding="utf-8")
    words = re.sub(r"/tmp/blind\d*", str(folder), words)
    words = re.sub(r"the \d+ profiles", f"the {len(existing)} profiles", words)
    words = re.sub(r"existing \d+", f"existing {len(existing)}", words)
    (folder / "BRIEF.md").write_text(words, encoding="utf-8")
    print(f"{folder}: papers.txt ({len(papers)} papers), existing_profiles.txt ({len(existing)}), BRIEF.md")


def _half(folder: Path, half: str, ids: list[str], titles: dict[str, str]) -> tuple[list[dict[str, object]], list[str]]:
    """One grader's profiles and, per paper, their grades joined by tabs; SystemExit on a fault."""
    where = folder / half
    toml = (where / "profiles.toml").read_bytes()
    frozen = (where / "profiles.frozen.sha256").read_text(encoding="utf-8").split()[0]
    if hashlib.sha256(toml).hexdigest() != frozen:
        raise SystemExit(f"{where / 'profiles.toml'}: changed after it was frozen")
    profiles = tomllib.loads(toml.decode("utf-8"))["profiles"]
    if len(profiles) != PER_HALF:
        raise SystemExit(f"{where / 'profiles.toml'}: {len(profiles)} profiles, not {PER_HALF}")
    lines = (where / "notes.txt").read_text(encoding="utf-8").rstrip("\n").split("\n")
    if len(lines) != len(ids):
        raise SystemExit(f"{where / 'notes.txt'}: {len(lines)} lines, not {len(ids)}")
    grades = []
    for number, (line, pid) in enumerate(zip(lines, ids, strict=True), 1):
        found = _LINE.fullmatch(line)
        if not found or int(found[1]) != number or found[2] != pid:
            raise SystemExit(f"{where / 'notes.txt'}:{number}: not 'N<TAB>{pid}<TAB>g g g g<TAB>reason'")
        grades.append("\t".join(found.group(3, 4, 5, 6)))
    for column, profile in enumerate(profiles):
        for title in profile["liked"]:
            if title not in titles:
                raise SystemExit(f"{where / 'profiles.toml'}: {profile['id']}: liked {title!r} is no seed paper")
            if grades[ids.index(titles[title])].split("\t")[column] != "2":
                raise SystemExit(f"{where / 'notes.txt'}: liked {title!r} not graded 2 for {profile['id']}")
    return profiles, grades


def assemble(folder: Path, split: Path) -> None:
    papers = load_papers()
    ids, titles = [p.id for p in papers], {p.title: p.id for p in papers}
    halves = [_half(folder, half, ids, titles) for half in HALVES]
    names = [str(p["id"]) for profiles, _ in halves for p in profiles]
    if len(set(names)) != len(names):
        raise SystemExit(f"the two halves share a profile id: {names}")
    split.mkdir(parents=True, exist_ok=True)
    toml = [(folder / half / "profiles.toml").read_text(encoding="utf-8").rstrip("\n") for half in HALVES]
    (split / "profiles.toml").write_text("\n\n".join(toml) + "\n", encoding="utf-8")
    rows = ["\t".join(["paper_id", *names, "title"])]
    for row, paper in enumerate(papers):
        rows.append("\t".join([paper.id, *(grades[row] for _, grades in halves), paper.title]))
    (split / "labels.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (split / "BRIEF.md").write_text((folder / "BRIEF.md").read_text(encoding="utf-8"), encoding="utf-8")
    for half in HALVES:
        (split / f"LABELS-{half}.md").write_text((folder / half / "LABELS.md").read_text(encoding="utf-8"))
        (split / f"notes-{half}.txt").write_text((folder / half / "notes.txt").read_text(encoding="utf-8"))
    for column, name in enumerate(names):
        counts = [sum(line.split("\t")[1 + column] == g for line in rows[1:]) for g in "210"]
        print(f"{name}: graded 2 / 1 / 0: {counts[0]} / {counts[1]} / {counts[2]}")
    print(f"{split}: written; add its README and its name to quality_compare.py before the first run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", required=True)
    ready = verbs.add_parser("prepare", help="the graders' folder")
    ready.add_argument("folder", type=Path)
    ready.add_argument("--brief", type=Path, default=QUALITY / "blind6" / "BRIEF.md")
    done = verbs.add_parser("assemble", help="their work into a split of bench/quality/")
    done.add_argument("folder", type=Path)
    done.add_argument("split", type=Path)
    args = parser.parse_args()
    if args.verb == "prepare":
        prepare(args.folder, args.brief)
    else:
        assemble(args.folder, args.split)


if __name__ == "__main__":
    main()
