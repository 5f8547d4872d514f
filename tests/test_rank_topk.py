"""Keeping each profile's best N (issue 18): the chunk's best first, then against the ones held.

`score_papers(limit=N)` gathers only each chunk's best N per profile instead of stacking
every score of the chunk; the papers it keeps, their scores and their reasons must be the
first N of the whole ranking (no limit, nothing cut). Checked on the seeds with the
shipped profiles, in chunks of a few papers so that many merges happen, with copies of
papers so that scores tie at the cut (the earlier paper is kept).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from conftest import ROOT, SEEDS, TODAY

from digest.config import load_config
from digest.ingest.hf_dump import decode_dump, parse_dump
from digest.models import Paper
from digest.rank import score_papers, scoring


def seed_papers() -> list[Paper]:
    papers: list[Paper] = []
    for path in sorted(SEEDS.iterdir()):
        dump = parse_dump(decode_dump(path.read_bytes()), path.name, today=TODAY)
        for entry in dump.entries:
            n = len(papers)
            papers.append(
                Paper(
                    id=f"seed{n:04d}",
                    title=entry.title,
                    abstract=entry.abstract,
                    authors_count=3,
                    organization=None,
                    published=TODAY,
                    upvotes=n % 7 or None,
                    first_seen=TODAY,
                    last_seen=TODAY,
                    sightings=1,
                )
            )
    # Twins score alike: ties at every cut. A third of them next to their paper (the same
    # chunk), the others after all the papers (a later chunk).
    near = [twin for p in papers for twin in (p, replace(p, id=f"{p.id}-twin"))[: 2 if int(p.id[4:]) % 3 == 0 else 1]]
    return near + [replace(p, id=f"{p.id}-twin") for p in papers if int(p.id[4:]) % 3]


@pytest.mark.parametrize(("chunk", "limit"), [(5, 1), (5, 3), (11, 9), (4096, 9)])
def test_the_best_n_are_the_first_n_of_the_whole_ranking(
    chunk: int, limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    papers = seed_papers()
    profiles = list(load_config(ROOT / "digest.toml", ROOT).profiles)
    whole = score_papers(papers, profiles)
    monkeypatch.setattr(scoring, "CHUNK", chunk)
    cut = score_papers(papers, profiles, limit=limit)
    ties = 0
    for profile in profiles:
        expected = whole[profile.id][:limit]
        assert cut[profile.id] == expected
        ranked = whole[profile.id]
        ties += len(ranked) > limit and ranked[limit - 1].score == ranked[limit].score
    assert ties  # the twins do tie at the cut, so the tie rule is checked
