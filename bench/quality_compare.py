"""Every ranking method on the same judged splits: nDCG@10 and P@5 per profile and mean.

    .venv/bin/python bench/quality_compare.py [--splits seen,tune,...,blind6] [--json PATH] [--check-cli]

Judged sets, never pooled (the split of each number is named in the output):

- `seen`: the six profiles of bench/quality/profiles.toml; the first ranker was tuned on them;
- `tune`: six of the twelve held-out profiles (bench/quality/heldout/README.md): may be
  looked at while choosing methods and weights;
- `report`: the other six held-out profiles: the figures that count, never used to choose
  (but seen after issue 16's first pass: see bench/RESULTS.md);
- `final`: eight more profiles (bench/quality/final/README.md), written and graded after
  `report` had been seen, and run only once the second pass's choices were committed;
- `blind`: eight more (bench/quality/blind/README.md), written and graded blind on 2026-12-02
  and first ranked after that day's change (`rank.wanted`, now `digest.wanted`) was fixed;
- `blind2`: eight more (bench/quality/blind2/README.md), written and graded blind later that
  day and first ranked after the second session's change (`LIKED_AGREEMENT`) was fixed;
- `blind3`: eight more (bench/quality/blind3/README.md), written and graded blind after
  `blind2` had been seen, first ranked after the weights chosen on all 42 earlier profiles
  were fixed;
- `blind4`: eight more (bench/quality/blind4/README.md), first ranked after the stemming
  change of that session's end was fixed;
- `blind5`: eight more (bench/quality/blind5/README.md), written and graded blind on
  2026-12-02's third session and first ranked with the ranker unchanged;
- `blind6`: eight more (bench/quality/blind6/README.md), written and graded blind in the
  fourth session, first ranked with the ranker unchanged and the fusions of
  bench/learned_fusion.py fixed.

Each profile is ranked in two forms (see bench/quality.py): `text`, its description and
keywords (and its `exclude` terms, which only `ours` understands); `liked`, its three liked
papers alone, which are then left out of the ranking and of the judged set. Methods:

- ours: `digest.rank.score_papers`, core install; ours+semantic: with the `[semantic]`
  extra (all-MiniLM-L6-v2);
- tfidf: plain TF-IDF cosine (words, English stop words, sublinear tf) to the query or to
  the liked papers' centroid;
- bm25: `bm25s` (Lucene BM25, k1 = 1.5, b = 0.75, English stop words, Snowball stems) of
  title + abstract; the query is the description + keywords, or the three liked papers'
  titles and abstracts concatenated into one query;
- minilm: all-MiniLM-L6-v2 alone, cosine to the description + keywords, or the mean
  cosine to the liked papers;
- svm: arxiv-sanity-lite's per-profile classifier: its TF-IDF features (words and word
  pairs, max_df 0.5, min_df 5, 10,000 features; title + abstract, the seeds have no author
  names) and `LinearSVC(class_weight="balanced", C=0.01, tol=1e-6, max_iter=10000)`, the
  liked papers (or the description + keywords as one text) positive, every other paper
  negative, ranked by the decision function;
- floor: "z-scored bigram TF-IDF + MiniLM": TF-IDF cosine with words and word pairs
  (as tfidf otherwise) and minilm, each z-scored over the profile's papers, summed;
- ours, no exclude: ours given the profile without its `exclude` terms, to show what
  they do (in both forms ours reads them; no other method does).

`--check-cli` also ranks every profile and form the user's way, `digest rank --all
--json` on a store of the seeds (core install), and says whether each ranking equals the
library's. Nothing here changes a ranker parameter.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import bm25s
import numpy as np
import Stemmer
from quality import (
    QUALITY,
    ROOT,
    Ranker,
    by_score,
    cached,
    embedding_alone,
    embedding_scores,
    forms,
    load_labels,
    load_papers,
    load_profiles,
    ndcg,
    ours,
    precision,
    query_text,
    tfidf_cosine,
    tfidf_scores,
)
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC

from digest.models import Paper, Profile
from digest.rank import Embedder

HELDOUT = QUALITY / "heldout"
FINAL = QUALITY / "final"
BLIND = QUALITY / "blind"
BLIND2 = QUALITY / "blind2"
BLIND3 = QUALITY / "blind3"
BLIND4 = QUALITY / "blind4"
BLIND5 = QUALITY / "blind5"
BLIND6 = QUALITY / "blind6"
# Fixed in heldout/README.md before any method was run on these profiles.
TUNE = ("adversarial-security", "code-llms", "dl-theory", "llm-agents", "multimodal-llm", "ssl-representations")
REPORT = ("moe-ssm", "neural-3d", "robot-learning", "search-retrieval", "ts-forecasting", "video-understanding")
SPLIT_NOTES = {
    "seen": "the six older profiles (bench/quality/profiles.toml): the first ranker was tuned on them",
    "tune": "held-out profiles that may be looked at while choosing",
    "report": "held-out profiles never used for any choice (seen after the first pass)",
    "final": "held-out profiles first ranked after every choice was fixed (and seen since)",
    "blind": "profiles written and graded blind on 2026-12-02, first ranked after that day's change was fixed",
    "blind2": "profiles written and graded blind later on 2026-12-02, first ranked after the next change was fixed",
    "blind3": "profiles written and graded blind after blind2 was seen, first ranked after the weights were fixed",
    "blind4": "profiles written and graded blind at the end of 2026-12-02, first ranked after one more change",
    "blind5": "profiles written and graded blind in 2026-12-02's third session, first ranked with the ranker unchanged",
    "blind6": "profiles written and graded blind in the fourth session of 2026-12-02, first ranked unchanged",
}
FORMS = ("text", "liked")


@dataclass(frozen=True, slots=True)
class Split:
    name: str
    profiles: tuple[Profile, ...]
    labels: dict[str, dict[str, int]]


@dataclass(frozen=True, slots=True)
class Score:
    ndcg10: float
    p5: float
    twos: int  # papers graded 2 in this form's judged set (P@5 is at most twos / 5)
    ones: int


# results[method][(profile id, form)]
Results = dict[str, dict[tuple[str, str], Score]]


def load_splits(names: Sequence[str]) -> list[Split]:
    heldout = load_profiles(HELDOUT / "profiles.toml")
    heldout_labels = load_labels(HELDOUT / "labels.tsv")
    if {p.id for p in heldout} != set(TUNE) | set(REPORT) or set(TUNE) & set(REPORT):
        raise SystemExit("bench/quality/heldout/profiles.toml does not match the fixed tune/report split")
    available = {
        "seen": Split("seen", tuple(load_profiles()), load_labels()),
        "tune": Split("tune", tuple(p for p in heldout if p.id in TUNE), heldout_labels),
        "report": Split("report", tuple(p for p in heldout if p.id in REPORT), heldout_labels),
    }
    for name, folder in (
        ("final", FINAL),
        ("blind", BLIND),
        ("blind2", BLIND2),
        ("blind3", BLIND3),
        ("blind4", BLIND4),
        ("blind5", BLIND5),
        ("blind6", BLIND6),
    ):
        if name in names:
            folder_profiles = tuple(load_profiles(folder / "profiles.toml"))
            available[name] = Split(name, folder_profiles, load_labels(folder / "labels.tsv"))
    return [available[name] for name in names]


# -- the methods that quality.py does not have ----------------------------------------------


def bm25_scores(profile: Profile, papers: Sequence[Paper], liked: Sequence[Paper]) -> np.ndarray:
    stem = Stemmer.Stemmer("english").stemWords

    def tokens(texts: list[str]) -> list[list[str]]:
        found = bm25s.tokenize(texts, stopwords="en", stemmer=stem, show_progress=False, return_ids=False)
        return list(found)  # type: ignore[arg-type]

    index = bm25s.BM25()
    index.index(tokens([f"{p.title} {p.abstract}" for p in papers]), show_progress=False)
    query = " ".join(f"{p.title} {p.abstract}" for p in liked) if liked else query_text(profile)
    return np.asarray(index.get_scores(tokens([query])[0]))


def bm25(profile: Profile, papers: Sequence[Paper], liked: Sequence[Paper]) -> list[str]:
    return by_score(papers, bm25_scores(profile, papers, liked))


def arxiv_sanity_svm(profile: Profile, papers: Sequence[Paper], liked: Sequence[Paper]) -> list[str]:
    vectorizer = TfidfVectorizer(
        strip_accents="unicode",
        lowercase=True,
        analyzer="word",
        stop_words="english",
        token_pattern=r"(?u)\b[a-zA-Z_][a-zA-Z0-9_]+\b",
        ngram_range=(1, 2),
        max_features=10000,
        norm="l2",
        use_idf=True,
        smooth_idf=True,
        sublinear_tf=True,
        max_df=0.5,
        min_df=5,
    )
    texts = [f"{p.title} {p.abstract}" for p in papers]
    positives = [f"{p.title} {p.abstract}" for p in liked] if liked else [query_text(profile)]
    # arxiv-sanity fits its features on every paper it knows, the liked ones among them.
    vectorizer.fit(texts + positives if liked else texts)
    features = vectorizer.transform(texts + positives)
    labels = np.r_[np.zeros(len(texts)), np.ones(len(positives))]
    classifier = LinearSVC(class_weight="balanced", verbose=False, max_iter=10000, tol=1e-6, C=0.01)
    classifier.fit(features, labels)
    return by_score(papers, classifier.decision_function(features[: len(texts)]))


def zscore(scores: np.ndarray) -> np.ndarray:
    spread = scores.std()
    return (scores - scores.mean()) / spread if spread > 0 else np.zeros_like(scores)


def floor(embed: Embedder) -> Ranker:
    def rank(profile: Profile, papers: Sequence[Paper], liked: Sequence[Paper]) -> list[str]:
        lexical = tfidf_scores(profile, papers, liked, ngram_range=(1, 2))
        semantic = embedding_scores(embed, profile, papers, liked)
        return by_score(papers, zscore(lexical) + zscore(semantic))

    return rank


def without_exclude(system: Ranker) -> Ranker:
    """The ranker given the profile without its `exclude` terms (no other method reads them)."""

    def rank(profile: Profile, papers: Sequence[Paper], liked: Sequence[Paper]) -> list[str]:
        return system(replace(profile, exclude=()), papers, liked)

    return rank


def methods(embed: Embedder | None) -> dict[str, Ranker]:
    found: dict[str, Ranker] = {
        "ours": ours(),
        "ours, no exclude": without_exclude(ours()),
        "tfidf": tfidf_cosine,
        "bm25": bm25,
        "svm": arxiv_sanity_svm,
    }
    if embed is not None:
        found |= {"ours+semantic": ours(embed), "minilm": embedding_alone(embed), "floor": floor(embed)}
    order = ("ours", "ours+semantic", "tfidf", "bm25", "minilm", "svm", "floor", "ours, no exclude")
    return {name: found[name] for name in order if name in found}


# -- evaluation ------------------------------------------------------------------------------


def evaluate(split: Split, papers: list[Paper], systems: dict[str, Ranker]) -> Results:
    by_title = {p.title: p for p in papers}
    results: Results = {name: {} for name in systems}
    for profile in split.profiles:
        for form, (variant, liked) in forms(profile, by_title).items():
            excluded = {p.id for p in liked}
            pool = [p for p in papers if p.id not in excluded]
            grades = {pid: g for pid, g in split.labels[profile.id].items() if pid not in excluded}
            for name, system in systems.items():
                ranking = system(variant, pool, liked)
                twos, ones = sum(g == 2 for g in grades.values()), sum(g == 1 for g in grades.values())
                results[name][(profile.id, form)] = Score(ndcg(ranking, grades), precision(ranking, grades), twos, ones)
    return results


def mean(results: Results, name: str, form: str | None, metric: str) -> float:
    chosen = [score for (_, f), score in results[name].items() if form is None or f == form]
    return statistics.mean(getattr(score, metric) for score in chosen)


def markdown(split: Split, results: Results) -> str:
    names = list(results)
    ids = ", ".join(p.id for p in split.profiles)
    lines = [
        f"Split `{split.name}` ({SPLIT_NOTES[split.name]}; {len(split.profiles)} profiles: {ids}).",
        "",
        "Means, nDCG@10 / P@5:",
        "",
        "| method | text nDCG@10 | text P@5 | liked nDCG@10 | liked P@5 | both nDCG@10 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        cells = [f"{mean(results, name, form, metric):.3f}" for form in FORMS for metric in ("ndcg10", "p5")]
        lines.append(f"| {name} | {' | '.join(cells)} | {mean(results, name, None, 'ndcg10'):.3f} |")
    lines += ["", f"Per profile (`{split.name}`), nDCG@10 / P@5:", ""]
    lines.append("| profile | form | judged 2 / 1 | " + " | ".join(names) + " |")
    lines.append("|---|---|---:|" + "---:|" * len(names))
    for key in results[names[0]]:
        first = results[names[0]][key]
        cells = " | ".join(f"{results[n][key].ndcg10:.3f} / {results[n][key].p5:.1f}" for n in names)
        lines.append(f"| {key[0]} | {key[1]} | {first.twos} / {first.ones} | {cells} |")
    return "\n".join(lines)


def as_json(split: Split, results: Results) -> dict[str, object]:
    return {
        "profiles": [p.id for p in split.profiles],
        "note": SPLIT_NOTES[split.name],
        "methods": {
            name: {
                "mean": {
                    form or "both": {m: mean(results, name, form, m) for m in ("ndcg10", "p5")}
                    for form in (*FORMS, None)
                },
                "per_profile": [
                    {
                        "profile": pid,
                        "form": form,
                        "ndcg10": s.ndcg10,
                        "p5": s.p5,
                        "graded_2": s.twos,
                        "graded_1": s.ones,
                    }
                    for (pid, form), s in results[name].items()
                ],
            }
            for name in results
        },
    }


BOOTSTRAP = 10_000  # resamples of the profiles for the pooled intervals


def pooled(every: dict[str, Results]) -> dict[str, dict[str, dict[str, float]]]:
    """Per method and form, over every profile of every split given: the mean nDCG@10, and
    ours minus it with a 95 % paired bootstrap interval (profiles resampled, the same draws
    for every method; a fixed seed, so a rerun prints the same)."""
    rng = np.random.default_rng(0)
    names = list(next(iter(every.values())))
    found: dict[str, dict[str, dict[str, float]]] = {name: {} for name in names}
    for form in FORMS:
        keys = [(split, pid) for split, results in every.items() for (pid, f) in results["ours"] if f == form]
        draws = rng.integers(0, len(keys), size=(BOOTSTRAP, len(keys)))
        ours_values = np.array([every[split]["ours"][(pid, form)].ndcg10 for split, pid in keys])
        for name in names:
            values = np.array([every[split][name][(pid, form)].ndcg10 for split, pid in keys])
            gap = ours_values - values
            low, high = np.percentile(gap[draws].mean(axis=1), [2.5, 97.5])
            found[name][form] = {
                "profiles": len(keys),
                "ndcg10": float(values.mean()),
                "ours_minus": float(gap.mean()),
                "low": float(low),
                "high": float(high),
            }
    return found


def pooled_markdown(names: Sequence[str], table: dict[str, dict[str, dict[str, float]]]) -> str:
    count = table["ours"]["text"]["profiles"]
    lines = [
        f"Every profile of the splits {', '.join(names)} ({count:.0f}), pooled. Splits seen while choosing are "
        "in it, so this is no unseen figure; it says how sure a gap is, not how large it would be on new profiles.",
        "",
        "| method | text nDCG@10 | ours − it (95 % CI) | liked nDCG@10 | ours − it (95 % CI) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, forms_found in table.items():
        cells = []
        for form in FORMS:
            f = forms_found[form]
            gap = "" if name == "ours" else f"{f['ours_minus']:+.3f} ({f['low']:+.3f} to {f['high']:+.3f})"
            cells += [f"{f['ndcg10']:.3f}", gap]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return "\n".join(lines)


# -- the user's path: `digest rank --all --json` -----------------------------------------------


def toml_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def profile_toml(profile: Profile) -> str:
    keywords = ", ".join(f"{{term = {toml_string(k.term)}, weight = {k.weight}}}" for k in profile.keywords)
    fields = [
        f"id = {toml_string(profile.id)}",
        f"title = {toml_string(profile.title)}",
        *([f"description = {toml_string(profile.description)}"] if profile.description else []),
        *([f"keywords = [{keywords}]"] if profile.keywords else []),
        *([f"exclude = [{', '.join(map(toml_string, profile.exclude))}]"] if profile.exclude else []),
        *([f"liked = [{', '.join(map(toml_string, profile.liked))}]"] if profile.liked else []),
    ]
    return "[[profiles]]\n" + "\n".join(fields) + "\n"


def check_cli(splits: list[Split], papers: list[Paper]) -> dict[str, dict[str, float]]:
    """nDCG@10 of `ours` through `score_papers` and through `digest rank --all --json` on a
    store of the seeds (core install), per split and form."""
    digest = ROOT / ".venv" / "bin" / "digest"
    by_title = {p.title: p for p in papers}
    rank = ours()
    found: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        variants = {
            f"{profile.id}-{form}": (split, profile.id, form, variant, liked)
            for split in splits
            for profile in split.profiles
            for form, (variant, liked) in forms(profile, by_title).items()
        }
        config = Path(tmp) / "digest.toml"
        head = f'[digest]\ninbox = {toml_string(str(ROOT / "seeds"))}\ndb = "state.db"\n\n'
        config.write_text(head + "\n".join(profile_toml(replace(v[3], id=key)) for key, v in variants.items()))
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}

        def digest_says(*arguments: str) -> str:
            done = subprocess.run(
                [str(digest), "--config", str(config), *arguments], cwd=tmp, env=env, text=True, capture_output=True
            )
            if done.returncode:
                raise SystemExit(f"digest {' '.join(arguments)} failed ({done.returncode}): {done.stderr.strip()}")
            return done.stdout

        digest_says("ingest")
        for key, (split, profile_id, form, variant, liked) in variants.items():
            shown = [record["id"] for record in json.loads(digest_says("rank", "--profile", key, "--all", "--json"))]
            excluded = {p.id for p in liked}
            grades = {pid: g for pid, g in split.labels[profile_id].items() if pid not in excluded}
            library = rank(variant, [p for p in papers if p.id not in excluded], liked)
            # `digest rank` leaves out what scores 0 (excluded, liked); those come last either way.
            cli = shown + [pid for pid in library if pid not in set(shown)]
            for path, ranking in (("library", library), ("cli", cli)):
                found.setdefault(f"{split.name} {form} {path}", {})[profile_id] = ndcg(ranking, grades)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--splits", default="seen,tune,report", help="comma-separated: " + ", ".join(SPLIT_NOTES))
    parser.add_argument("--no-semantic", action="store_true", help="leave out the methods that need the extra")
    parser.add_argument("--json", type=Path, default=QUALITY / "results.json", help="where to write every number")
    parser.add_argument("--check-cli", action="store_true", help="also compare with `digest rank --all --json`")
    args = parser.parse_args()
    names = [n.strip() for n in args.splits.split(",") if n.strip()]
    if not names or not set(names) <= set(SPLIT_NOTES):
        parser.error("--splits takes " + ", ".join(SPLIT_NOTES))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    embed = None
    if not args.no_semantic:
        from digest.semantic import load_embedder

        embed = cached(load_embedder())
    systems = methods(embed)
    papers = load_papers()
    splits = load_splits(names)
    started = time.perf_counter()
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {date.today()}"
    print(f"machine: {machine}\n")
    record: dict[str, object] = {"machine": machine, "command": " ".join(sys.argv), "splits": {}}
    every: dict[str, Results] = {}
    for split in splits:
        results = every[split.name] = evaluate(split, papers, systems)
        print(f"### Split `{split.name}`\n\n{markdown(split, results)}\n")
        record["splits"][split.name] = as_json(split, results)  # type: ignore[index]
    if len(splits) > 1:
        record["pooled"] = table = pooled(every)
        print(f"### Every split pooled\n\n{pooled_markdown(names, table)}\n")
    if args.check_cli:
        check = check_cli(splits, papers)
        print("`ours` through score_papers (library) and `digest rank --all --json` (cli), mean nDCG@10:\n")
        for key, values in check.items():
            print(f"- {key}: {statistics.mean(values.values()):.3f}")
        print()
        record["cli_check"] = check
    args.json.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(f"({time.perf_counter() - started:.0f} s; every number in {args.json})")


if __name__ == "__main__":
    main()
