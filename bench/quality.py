"""Ranking quality on the hand-judged seeds: nDCG@10 and precision@5, per profile.

    .venv/bin/python bench/quality.py [--semantic] [--markdown]

The labelled set (bench/quality/labels.tsv, see LABELS.md) grades every seed paper
0/1/2 for six profiles (bench/quality/profiles.toml). Each profile is ranked in two
forms: as its description + keywords, and as its three liked papers alone (the way
zotero-arxiv-daily users work); in the liked form the liked papers are left out of the
ranking and of the judged set. Systems:

- ours: `digest.rank.score_papers` (with `--semantic`, also with the embedding extra);
- tfidf: plain TF-IDF cosine of title + abstract to the query (description + keywords,
  or the liked papers' centroid): the arxiv-sanity approach;
- embedding: the embedding model alone (cosine to the description, or the mean cosine
  to the liked papers): the zotero-arxiv-daily approach (needs `--semantic`).

nDCG@10 uses the grades as gains; precision@5 counts grade-2 papers in the top five.
"""

from __future__ import annotations

import argparse
import csv
import math
import platform
import statistics
import sys
import tempfile
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digest.config import parse_config  # noqa: E402
from digest.models import Paper, Profile  # noqa: E402
from digest.pipeline import find_dump_files, ingest_files  # noqa: E402
from digest.rank import Embedder, score_papers  # noqa: E402
from digest.store import open_store  # noqa: E402

QUALITY = ROOT / "bench" / "quality"
Ranker = Callable[[Profile, Sequence[Paper], Sequence[Paper]], list[str]]


def load_papers() -> list[Paper]:
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "state.db")
        now = datetime(2026, 11, 22, tzinfo=UTC)
        files = find_dump_files([ROOT / "seeds"])
        ingest_files(store, files, quarantine=Path(tmp) / "q", today=now.date(), now=now)
        papers = list(store.iter_papers())
        store.close()
    return papers


def load_profiles(path: Path = QUALITY / "profiles.toml") -> list[Profile]:
    text = path.read_text(encoding="utf-8")
    return list(parse_config(tomllib.loads(text), text, str(path), base=path.parent, environ={}).profiles)


def load_labels(path: Path = QUALITY / "labels.tsv") -> dict[str, dict[str, int]]:
    with path.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    profiles = [c for c in rows[0] if c not in ("paper_id", "title")]
    return {pid: {row["paper_id"]: int(row[pid]) for row in rows} for pid in profiles}


def ndcg(ranking: Sequence[str], grades: dict[str, int], k: int = 10) -> float:
    gains = [grades.get(pid, 0) for pid in ranking[:k]]
    dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
    ideal = sorted(grades.values(), reverse=True)[:k]
    best = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / best if best else 0.0


def precision(ranking: Sequence[str], grades: dict[str, int], k: int = 5) -> float:
    return sum(grades.get(pid, 0) == 2 for pid in ranking[:k]) / k


def forms(profile: Profile, papers_by_title: dict[str, Paper]) -> dict[str, tuple[Profile, list[Paper]]]:
    liked = [papers_by_title[t] for t in profile.liked]
    return {
        "text": (replace(profile, liked=()), []),
        "liked": (replace(profile, description="", keywords=(), liked=profile.liked), liked),
    }


def ours(embed: Embedder | None = None) -> Ranker:
    def rank(profile: Profile, papers: Sequence[Paper], liked: Sequence[Paper]) -> list[str]:
        ranked = score_papers(papers, [profile], liked={profile.id: liked}, embed=embed, background=papers)[profile.id]
        seen = {s.paper.id for s in ranked}
        return [s.paper.id for s in ranked] + [p.id for p in papers if p.id not in seen]

    return rank


def query_text(profile: Profile) -> str:
    """The description and keywords as one text: the query every baseline is given."""
    return " ".join([profile.description, *(k.term for k in profile.keywords)])


def paper_text(paper: Paper) -> str:
    return f"{paper.title}. {paper.abstract}"


def by_score(papers: Sequence[Paper], scores: np.ndarray) -> list[str]:
    """Paper ids, best score first (ties in the papers' order)."""
    return [papers[i].id for i in np.argsort(-scores, kind="stable")]


def tfidf_scores(
    profile: Profile, papers: Sequence[Paper], liked: Sequence[Paper], ngram_range: tuple[int, int] = (1, 1)
) -> np.ndarray:
    """TF-IDF cosine of each paper to the query, or to the liked papers' centroid."""
    vectorizer = TfidfVectorizer(stop_words="english", sublinear_tf=True, ngram_range=ngram_range)
    matrix = vectorizer.fit_transform([f"{p.title} {p.abstract}" for p in papers])
    if liked:
        query = np.asarray(vectorizer.transform([f"{p.title} {p.abstract}" for p in liked]).mean(axis=0))
    else:
        query = vectorizer.transform([query_text(profile)]).toarray()
    return np.asarray(matrix @ query.ravel()).ravel()


def tfidf_cosine(profile: Profile, papers: Sequence[Paper], liked: Sequence[Paper]) -> list[str]:
    return by_score(papers, tfidf_scores(profile, papers, liked))


def cached(embed: Embedder) -> Embedder:
    """The embedder, remembering every text's vector: each method and profile embeds the
    same papers again, and a model on two CPU cores embeds about 30 abstracts a second."""
    memo: dict[str, np.ndarray] = {}

    def embed_cached(texts: Sequence[str]) -> np.ndarray:
        new = list(dict.fromkeys(t for t in texts if t not in memo))
        if new:
            memo.update(zip(new, np.asarray(embed(new), dtype=np.float64), strict=True))
        if not texts:
            return np.zeros((0, next(iter(memo.values())).shape[0] if memo else 0))
        return np.stack([memo[t] for t in texts])

    return embed_cached


def embedding_scores(embed: Embedder, profile: Profile, papers: Sequence[Paper], liked: Sequence[Paper]) -> np.ndarray:
    """Cosine of each paper to the description, or its mean cosine to the liked papers."""
    vectors = embed([paper_text(p) for p in papers])
    if liked:
        return (embed([paper_text(p) for p in liked]) @ vectors.T).mean(axis=0)
    return embed([query_text(profile)])[0] @ vectors.T


def embedding_alone(embed: Embedder) -> Ranker:
    def rank(profile: Profile, papers: Sequence[Paper], liked: Sequence[Paper]) -> list[str]:
        return by_score(papers, embedding_scores(embed, profile, papers, liked))

    return rank


def evaluate(systems: dict[str, Ranker]) -> dict[str, dict[tuple[str, str], tuple[float, float]]]:
    papers = load_papers()
    by_title = {p.title: p for p in papers}
    labels = load_labels()
    results: dict[str, dict[tuple[str, str], tuple[float, float]]] = {name: {} for name in systems}
    for profile in load_profiles():
        for form, (variant, liked) in forms(profile, by_title).items():
            excluded = {p.id for p in liked}
            pool = [p for p in papers if p.id not in excluded]
            grades = {pid: g for pid, g in labels[profile.id].items() if pid not in excluded}
            for name, system in systems.items():
                ranking = system(variant, pool, liked)
                results[name][(profile.id, form)] = (ndcg(ranking, grades), precision(ranking, grades))
    return results


def report(results: dict[str, dict[tuple[str, str], tuple[float, float]]]) -> str:
    names = list(results)
    keys = list(results[names[0]])
    lines = [
        "| profile | form | " + " | ".join(f"{n} nDCG@10 | {n} P@5" for n in names) + " |",
        "|---|---|" + "---:|---:|" * len(names),
    ]
    for key in keys:
        cells = " | ".join(f"{results[n][key][0]:.3f} | {results[n][key][1]:.2f}" for n in names)
        lines.append(f"| {key[0]} | {key[1]} | {cells} |")
    for form in ("text", "liked", None):
        chosen = [k for k in keys if form is None or k[1] == form]
        label = "**mean**" if form is None else f"mean ({form})"
        cells = " | ".join(
            f"{statistics.mean(results[n][k][0] for k in chosen):.3f} | "
            f"{statistics.mean(results[n][k][1] for k in chosen):.2f}"
            for n in names
        )
        lines.append(f"| {label} | | {cells} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--semantic", action="store_true", help="include the embedding extra (must be installed)")
    args = parser.parse_args()
    systems: dict[str, Ranker] = {"ours": ours(), "tfidf": tfidf_cosine}
    if args.semantic:
        from digest.semantic import load_embedder

        embed = cached(load_embedder())
        systems["ours+semantic"] = ours(embed)
        systems["embedding"] = embedding_alone(embed)
    print(f"machine: {platform.machine()}, Python {platform.python_version()}, {date.today()}\n")
    print(report(evaluate(systems)))


if __name__ == "__main__":
    main()
