"""`digest.wanted`: the parts of a description that say what the reader does not want are not
words the ranker looks for (input/expected pairs, then the ranking itself)."""

from __future__ import annotations

import pytest
from test_rank import filler, paper, profile, rank

from digest.wanted import wanted_text

PAIRS = [
    # (description, what the ranker reads of it)
    (
        "I work on vision-language models. I am not interested in text-to-image generation.",
        "I work on vision-language models.",
    ),
    ("Temporal grounding and tracking. Generation is out of scope.", "Temporal grounding and tracking."),
    (
        "Provable results that explain a phenomenon — not a new SOTA method with a theorem.",
        "Provable results that explain a phenomenon",
    ),
    ("Robot manipulation; I skip self-driving perception entirely.", "Robot manipulation;"),
    (
        "Residual networks with skip connections and their training.",
        "Residual networks with skip connections and their training.",
    ),
    ("Forecasting demand. I don't care about video work that happens to be 'temporal'.", "Forecasting demand."),
    ("Noisy labels are not my area unless there is an adversary.", ""),
    ("Tracking benchmarks are a different team's job, so leave those.", ""),
    (
        "Retrieval-augmented generation, rerankers and dense retrieval.",
        "Retrieval-augmented generation, rerankers and dense retrieval.",
    ),
    ("Plain classification isn't what I'm after. Dense retrieval.", "Dense retrieval."),
    ("Not only detection but also segmentation.", "Not only detection but also segmentation."),
    ("Word2vec skip-gram embeddings and skip lists.", "Word2vec skip-gram embeddings and skip lists."),
]


@pytest.mark.parametrize(("description", "read"), PAIRS)
def test_the_parts_a_reader_turns_away_are_left_out(description: str, read: str) -> None:
    assert wanted_text(description) == read


def test_a_sentence_turning_a_topic_away_does_not_ask_for_it() -> None:
    papers = [
        *filler(),
        paper("Rehearsal-Free Continual Learning", "We learn a sequence of tasks without catastrophic forgetting."),
        paper("Fast Diffusion Sampling for Images", "A diffusion model generates images in four steps."),
    ]
    plain = profile(description="Continual learning of a sequence of tasks without forgetting.")
    turning_away = profile(
        description=plain.description + " I am not interested in diffusion models that generate images."
    )
    scores = {s.paper.title: s.score for s in rank(papers, plain, limit=None)}
    # Read as words, the second sentence would have raised the diffusion paper; it is not read.
    assert {s.paper.title: s.score for s in rank(papers, turning_away, limit=None)} == scores
    assert scores.get("Fast Diffusion Sampling for Images", 0.0) < scores["Rehearsal-Free Continual Learning"]
