"""The ranker, one signal at a time, on hand-made papers (no store, no files)."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import date

import pytest

from digest.models import Keyword, Organization, Paper, PaperPart, Profile, Reason, ReasonKind, ScoredPaper, Votes
from digest.rank import UPVOTE_BOOST, score_papers, select_digest, text_similarity, upvote_prior

DAY = date(2025, 12, 1)

FILLER = [
    ("Graph Neural Networks for Molecules", "We predict molecular properties with message passing on graphs."),
    (
        "A Benchmark for Table Question Answering",
        "We collect questions over spreadsheets and evaluate language models.",
    ),
    ("Faster Sorting on GPUs", "We present a radix sort that uses shared memory on modern graphics cards."),
    (
        "Speech Recognition in Noisy Rooms",
        "Robust acoustic models transcribe speech recorded with far-field microphones.",
    ),
    (
        "Weather Forecasting with Transformers",
        "Attention over satellite images improves medium-range weather forecasts.",
    ),
    ("Protein Folding with Diffusion", "A generative model samples protein structures conditioned on sequences."),
]


def paper(title: str, abstract: str, **fields: object) -> Paper:
    defaults: dict[str, object] = {
        "id": hashlib.sha256(title.encode()).hexdigest()[:16],
        "authors_count": 3,
        "organization": None,
        "published": DAY,
        "upvotes": None,
        "first_seen": DAY,
        "last_seen": DAY,
        "sightings": 1,
    }
    return Paper(title=title, abstract=abstract, **{**defaults, **fields})  # type: ignore[arg-type]


def filler() -> list[Paper]:
    return [paper(t, a) for t, a in FILLER]


def profile(**fields: object) -> Profile:
    return Profile(**{"id": "p", "title": "P", "min_score": 0.15, **fields})  # type: ignore[arg-type]


def rank(papers: list[Paper], who: Profile, **options: object) -> list[ScoredPaper]:
    return score_papers(papers, [who], **options)[who.id]  # type: ignore[arg-type]


def keywords(*terms: str, where: PaperPart) -> Reason:
    return Reason(ReasonKind.KEYWORDS, terms=terms, where=where)


def titles(ranked: list[ScoredPaper]) -> list[str]:
    return [s.paper.title for s in ranked]


def score_of(ranked: list[ScoredPaper], title: str) -> float:
    return next(s.score for s in ranked if s.paper.title == title)


def test_a_keyword_in_the_title_outranks_it_in_the_abstract() -> None:
    in_title = paper("Catastrophic Forgetting in Vision Models", "We study how networks lose old skills.")
    in_abstract = paper("How Vision Models Lose Skills", "We study catastrophic forgetting in networks.")
    ranked = rank([in_abstract, in_title, *filler()], profile(keywords=(Keyword("catastrophic forgetting"),)))
    assert titles(ranked)[:2] == [in_title.title, in_abstract.title]
    assert ranked[0].reasons[0] == keywords("catastrophic forgetting", where=PaperPart.TITLE)
    assert ranked[1].reasons[0] == keywords("catastrophic forgetting", where=PaperPart.ABSTRACT)


def test_stemming_lets_quantize_find_quantization() -> None:
    target = paper("Post-Training Quantization of Large Language Models", "Weights are quantized to four bits.")
    ranked = rank([*filler(), target], profile(keywords=(Keyword("quantize"),)))
    assert titles(ranked)[0] == target.title and ranked[0].score >= 0.15
    assert keywords("quantize", where=PaperPart.TITLE) in ranked[0].reasons


def test_a_phrase_keyword_needs_the_whole_phrase() -> None:
    phrase = paper("Knowledge Distillation for Detectors", "A teacher guides a student detector.")
    scattered = paper("Distillation of Domain Knowledge", "Experts write rules; we compress them.")
    ranked = rank([scattered, phrase, *filler()], profile(keywords=(Keyword("knowledge distillation"),)))
    assert ranked[0].paper.title == phrase.title
    scattered_reasons = next(s.reasons for s in ranked if s.paper.title == scattered.title)
    assert not any(r.kind is ReasonKind.KEYWORDS for r in scattered_reasons)


def test_a_heavier_keyword_counts_more() -> None:
    first = paper("Sparse Attention Kernels", "We speed up attention.")
    second = paper("Pruning Large Networks", "We remove weights.")
    who = profile(keywords=(Keyword("sparse attention", 1.0), Keyword("pruning", 3.0)))
    assert titles(rank([first, second, *filler()], who))[0] == second.title
    lighter = replace(who, keywords=(Keyword("sparse attention", 3.0), Keyword("pruning", 1.0)))
    assert titles(rank([first, second, *filler()], lighter))[0] == first.title


def test_an_excluded_term_removes_the_paper() -> None:
    federated = paper("Federated Continual Learning", "Clients learn continually without sharing data.")
    plain = paper("Continual Learning without Replay", "A model learns tasks in sequence.")
    who = profile(keywords=(Keyword("continual learning"),), exclude=("Federated",))
    ranked = rank([federated, plain, *filler()], who)
    assert titles(ranked) == [plain.title]
    # A phrase must not be pieced together from the end of the title and the start of the abstract.
    edge = paper("Learning Rates for Federated", "Learning with clients.")
    lenient = replace(who, exclude=("federated learning",), keywords=(), description="learning rates")
    assert edge.title in titles(rank([edge, *filler()], lenient))


def test_hugging_faces_summary_and_keywords_count_as_more_text() -> None:
    terse = paper("SkipGate", "We make models faster.")
    described = replace(
        terse, id="described", ai_summary="Token routing for mixture of experts.", ai_keywords=("mixture of experts",)
    )
    who = profile(description="token routing in mixture of experts")
    assert rank([terse, *filler()], who) == []  # its own words say nothing of the topic
    (found,) = rank([described, *filler()], who)
    assert found.paper.id == described.id and found.score >= who.min_score
    # A keyword found only in Hugging Face's text is not said to be in the abstract.
    with_keyword = rank([described, *filler()], profile(keywords=(Keyword("mixture of experts"),)))
    assert with_keyword[0].paper.id == described.id
    assert not any(r.kind is ReasonKind.KEYWORDS for r in with_keyword[0].reasons)
    # A liked paper's extra text counts too.
    liked = replace(terse, id="liked", title="Routing Study", ai_summary="Token routing for mixture of experts.")
    twin = paper("Routing Tokens to Experts", "Token routing decides which expert of a mixture reads each token.")
    ranked = rank([*filler(), twin], profile(liked=("liked",)), liked={"p": [liked]})
    assert titles(ranked)[0] == twin.title and ranked[0].score >= 0.15


def test_a_liked_papers_near_twin_rises() -> None:
    liked = paper(
        "Prototype Replay for Class-Incremental Learning",
        "Class-incremental learning suffers catastrophic forgetting; stored prototypes replay old classes.",
    )
    twin = paper(
        "Prototype Memories Against Forgetting in Class-Incremental Learning",
        "Stored prototypes of old classes reduce catastrophic forgetting when new classes arrive.",
    )
    who = profile(liked=(liked.title,))
    ranked = rank([*filler(), twin, liked], who, liked={"p": [liked]})
    assert titles(ranked)[0] == twin.title and ranked[0].score >= 0.15
    assert Reason(ReasonKind.LIKED, paper_id=liked.id, title=liked.title) in ranked[0].reasons
    assert liked.title not in titles(ranked)  # already read


def test_a_followed_organisation_boosts() -> None:
    text = ("Routing Tokens", "Routing tokens to experts saves compute in sparse models.")
    theirs = paper(*text, organization=Organization("openbmb", "OpenBMB"))
    others = paper(*text, id="other", organization=Organization("other", "Other Lab"))
    who = profile(description="sparse models with experts", follow=("OpenBMB",))
    plain = {s.paper.id: s.score for s in rank([others, theirs, *filler()], replace(who, follow=()))}
    ranked = rank([others, theirs, *filler()], who)
    assert titles(ranked)[0] == theirs.title and plain[theirs.id] == plain["other"]
    assert score_of(ranked, theirs.title) == pytest.approx(min(1.0, 1.25 * plain[theirs.id]), abs=1e-3)
    assert ranked[1].score == plain["other"]
    assert Reason(ReasonKind.FOLLOWED, organization="OpenBMB") in ranked[0].reasons


def test_a_followed_author_boosts_whatever_the_case_accents_or_punctuation() -> None:
    text = ("Routing Tokens", "Routing tokens to experts saves compute in sparse models.")
    by_them = paper(*text, authors=("Ada Smith", "Yánn LéCun"))
    by_others = paper(*text, id="other", authors=("Yann Lecunn", "Ann LeCun"))
    both = paper(*text, id="both", authors=("yann lecun",), organization=Organization("openbmb", "OpenBMB"))
    who = profile(description="sparse models with experts", follow_authors=("Yann  LeCun",))
    batch = [by_others, by_them, both, *filler()]
    plain = {s.paper.id: s.score for s in rank(batch, replace(who, follow_authors=()))}
    ranked = {s.paper.id: s for s in rank(batch, replace(who, follow=("openbmb",)))}
    assert ranked[by_them.id].score == pytest.approx(min(1.0, 1.25 * plain[by_them.id]), abs=1e-3)
    assert ranked["other"].score == plain["other"]  # a like name is not the name
    assert ranked["both"].score == ranked[by_them.id].score  # organisation and author boost once
    assert (
        Reason(ReasonKind.FOLLOWED_AUTHOR, author="Yánn LéCun") in ranked[by_them.id].reasons
    )  # as the paper spells it
    assert not any(r.kind is ReasonKind.FOLLOWED_AUTHOR for r in ranked["other"].reasons)
    assert {r.kind for r in ranked["both"].reasons} >= {ReasonKind.FOLLOWED, ReasonKind.FOLLOWED_AUTHOR}


@pytest.mark.parametrize(
    ("followed", "written"),
    [
        ("Lukasz Kaiser", "Łukasz Kaiser"),
        ("Søren Hauberg", "Soren Hauberg"),
        ("Æsa Ødegård", "aesa odegard"),
        ("Pallarès", "Paŀlarès"),
    ],
)
def test_a_followed_author_matches_letters_that_are_not_accented_ones(followed: str, written: str) -> None:
    # NFKD leaves ł, ø and æ whole: 'Łukasz' and 'Lukasz' were two people, and arXiv writes either.
    text = ("Routing Tokens", "Routing tokens to experts saves compute in sparse models.")
    theirs = paper(*text, authors=(written,))
    who = profile(description="sparse models with experts", follow_authors=(followed,))
    (found,) = [s for s in rank([theirs, *filler()], who) if s.paper.id == theirs.id]
    assert Reason(ReasonKind.FOLLOWED_AUTHOR, author=written) in found.reasons


def test_already_delivered_papers_drop_out() -> None:
    a = paper("Continual Learning A", "continual learning")
    b = paper("Continual Learning B", "continual learning")
    ranked = rank([a, b, *filler()], profile(keywords=(Keyword("continual learning"),)), delivered={"p": {a.id}})
    assert titles(ranked) == [b.title]


def test_upvotes_count_relative_to_their_listing_day() -> None:
    quiet = [paper(f"Quiet {i}", "x", upvotes=u, last_seen=date(2025, 12, 1)) for i, u in enumerate((10, 5))]
    busy = [paper(f"Busy {i}", "x", upvotes=u, last_seen=date(2025, 12, 2)) for i, u in enumerate((100, 5))]
    prior = upvote_prior(quiet + busy)
    assert prior[0] == prior[2] == 1.0  # each day's most upvoted paper
    assert prior[1] > prior[3] > 0  # 5 upvotes weigh more on a quiet day


def test_upvotes_are_a_small_prior_and_a_reason() -> None:
    base = ("Diffusion Models for Video", "We generate video with diffusion models.")
    popular = paper(*base, upvotes=42)
    unknown = paper(base[0] + " Again", base[1], upvotes=None)
    ranked = rank([unknown, popular, *filler()], profile(keywords=(Keyword("diffusion models"),)))
    assert titles(ranked)[0] == popular.title
    assert Reason(ReasonKind.UPVOTES, count=42, most_of_day=True) in ranked[0].reasons
    assert score_of(ranked, popular.title) <= score_of(ranked, unknown.title) * (1 + UPVOTE_BOOST) + 1e-4


def test_scores_are_in_the_unit_interval_and_do_not_depend_on_the_batch() -> None:
    pool = [*filler(), *[paper(f"Continual Learning Study {i}", "continual learning " * (i + 1)) for i in range(6)]]
    who = profile(description="continual learning of many tasks", keywords=(Keyword("continual learning"),))
    alone = {s.paper.id: s.score for s in rank(pool[:8], who, background=pool)}
    together = {s.paper.id: s.score for s in rank(pool, who, background=pool)}
    assert all(0.0 <= value <= 1.0 for value in together.values())
    assert {pid: together[pid] for pid in alone} == alone


def test_many_profiles_at_once_score_as_one_at_a_time() -> None:
    pool = [*filler(), paper("Continual Learning of Tasks", "continual learning"), paper("Sorting", "radix sort")]
    profiles = [
        profile(id="a", keywords=(Keyword("continual learning"),)),
        profile(id="b", description="fast sorting on graphics processors", follow=("x",)),
        profile(id="c", liked=(pool[0].title,)),
    ]
    liked = {"c": [pool[0]]}
    together = score_papers(pool, profiles, liked=liked, background=pool)
    for who in profiles:
        assert together[who.id] == score_papers(pool, [who], liked=liked, background=pool)[who.id]


def test_a_profile_matching_nothing_and_an_empty_batch() -> None:
    assert rank(filler(), profile(keywords=(Keyword("xylophone orchestration"),))) == []
    assert score_papers([], [profile(keywords=(Keyword("x"),))]) == {"p": []}
    assert score_papers(filler(), []) == {}


def test_the_description_alone_ranks_and_says_why() -> None:
    target = paper("Robust Speech Recognition", "Acoustic models for far-field speech transcription in noisy rooms.")
    ranked = rank([*filler(), target], profile(description="speech recognition with far-field microphones"))
    top = ranked[0]
    assert top.paper.title in (target.title, FILLER[3][0])
    (description,) = [r for r in top.reasons if r.kind is ReasonKind.DESCRIPTION]
    assert description.terms and not description.semantic


# -- choosing the digest --------------------------------------------------------------------


def scored(title: str, abstract: str, score: float) -> ScoredPaper:
    return ScoredPaper(paper(title, abstract), score, ())


def test_the_digest_keeps_near_duplicates_apart() -> None:
    same = "Low-bit quantization of large language model weights with outlier handling and rotations."
    ranked = [
        scored("LLM Quantization A", same, 0.90),
        scored("LLM Quantization B", same, 0.89),
        scored("LLM Quantization C", same, 0.88),
        scored("Sparse Attention for Long Contexts", "Block-sparse attention patterns speed up long inputs.", 0.80),
    ]
    items, runners_up = select_digest(ranked, profile(max_items=2))
    assert [s.paper.title for s in items] == ["LLM Quantization A", "Sparse Attention for Long Contexts"]
    assert runners_up == []
    assert text_similarity([same, same])[0, 1] == pytest.approx(1.0)


def test_the_digest_respects_the_threshold_and_keeps_runners_up() -> None:
    ranked = [scored(f"Paper {i}", f"topic {i} words", s) for i, s in enumerate((0.5, 0.2, 0.14, 0.1, 0.05, 0.01))]
    items, runners_up = select_digest(ranked, profile(min_score=0.15, max_items=10))
    assert [s.score for s in items] == [0.5, 0.2]
    assert [s.score for s in runners_up] == [0.14, 0.1, 0.05]
    nothing, below = select_digest(ranked[2:], profile(min_score=0.15))
    assert nothing == [] and len(below) == 3


# -- votes: "more like this", "less like this", muted organisations -----------------------------

FORGETTING = paper(
    "Catastrophic Forgetting in Sequential Tasks", "Networks forget earlier tasks when trained on new ones."
)
REPLAY = paper(
    "Replay Buffers Against Catastrophic Forgetting", "A small rehearsal buffer of earlier tasks limits forgetting."
)
FEDERATED = paper(
    "Federated Averaging on Mobile Phones", "Phones train a shared model by federated averaging of updates."
)
FEDERATED_TOO = paper(
    "Federated Averaging at the Edge", "Edge devices train a shared model by federated averaging of updates."
)
INTERESTS = "catastrophic forgetting of earlier tasks, and federated averaging"


def test_a_paper_marked_more_like_this_counts_as_a_liked_one() -> None:
    papers = [*filler(), REPLAY, FEDERATED]
    reader = profile(description="", liked=())
    assert rank(papers, reader) == []  # nothing to go on yet
    voted = rank(papers, reader, votes={"p": Votes(more=(FORGETTING,))})
    assert voted[0].paper == REPLAY and voted[0].score >= reader.min_score
    (why,) = [r for r in voted[0].reasons if r.kind == ReasonKind.MORE_LIKE_THIS]
    assert (why.paper_id, why.title, why.count) == (FORGETTING.id, FORGETTING.title, 1)


def test_a_paper_marked_less_like_this_pushes_its_likes_down_and_says_so() -> None:
    papers = [*filler(), REPLAY, FEDERATED_TOO]
    reader = profile(description=INTERESTS)
    before = {s.paper.id: s for s in rank(papers, reader)}
    after = {s.paper.id: s for s in rank(papers, reader, votes={"p": Votes(less=(FEDERATED,))})}
    assert after[FEDERATED_TOO.id].score < before[FEDERATED_TOO.id].score / 2  # a near-duplicate of the vote
    assert after[REPLAY.id].score > 0.8 * before[REPLAY.id].score  # a paper unlike it keeps most of its score
    (why,) = [r for r in after[FEDERATED_TOO.id].reasons if r.kind == ReasonKind.LESS_LIKE_THIS]
    assert (why.paper_id, why.count) == (FEDERATED.id, 1)
    assert not any(r.kind == ReasonKind.LESS_LIKE_THIS for r in after[REPLAY.id].reasons)


def test_more_like_this_moves_the_description_toward_the_votes_and_says_so() -> None:
    papers = [*filler(), REPLAY, FEDERATED_TOO]
    reader = profile(description="tasks learned in sequence and shared models")
    before = {s.paper.id: s for s in rank(papers, reader)}
    after = {s.paper.id: s for s in rank(papers, reader, votes={"p": Votes(more=(FORGETTING,))})}
    lift = {pid: after[pid].score - before[pid].score for pid in (REPLAY.id, FEDERATED_TOO.id)}
    assert lift[REPLAY.id] > 0.1 and lift[REPLAY.id] > 3 * abs(lift[FEDERATED_TOO.id])  # like the vote: up
    assert after[REPLAY.id].score > after[FEDERATED_TOO.id].score  # ... past a paper it was behind
    (why,) = [r for r in after[REPLAY.id].reasons if r.kind == ReasonKind.MORE_LIKE_THIS]
    assert (why.paper_id, why.count) == (FORGETTING.id, 1)
    assert not any(r.kind == ReasonKind.MORE_LIKE_THIS for r in after[FEDERATED_TOO.id].reasons)
    # The vote moves the description's view; it does not become a view of its own that
    # could outrank what the description asks for with one paper's words.
    assert not any(r.kind == ReasonKind.LIKED for s in after.values() for r in s.reasons)


def test_less_like_this_pushes_look_alikes_down_in_both_views() -> None:
    liked = paper("Federated Learning on Phones", "Phones train a shared model without sending their data.")
    papers = [*filler(), REPLAY, FEDERATED_TOO]
    for reader, extra in (
        (profile(description=INTERESTS), {}),
        (profile(liked=(liked.title,)), {"liked": {"p": [liked]}}),
    ):
        before = {s.paper.id: s.score for s in rank(papers, reader, **extra)}
        after = {s.paper.id: s.score for s in rank(papers, reader, votes={"p": Votes(less=(FEDERATED,))}, **extra)}
        assert after.get(FEDERATED_TOO.id, 0.0) < before[FEDERATED_TOO.id]
        # A paper unlike the vote stays where it was.
        assert after.get(REPLAY.id, 0.0) == pytest.approx(before.get(REPLAY.id, 0.0), rel=0.1)
        assert all(0.0 <= score <= 1.0 for score in after.values())


def test_a_paper_marked_less_like_this_may_have_words_no_other_paper_has() -> None:
    # An old vote need not be among the papers ranked or the background: its words are still features.
    odd = paper("Quokka Zymurgy Xylophones", "Quokkas brew zymurgic xylophone lacquers; federated averaging aside.")
    papers = [*filler(), FEDERATED_TOO]
    reader = profile(description=INTERESTS)
    before = {s.paper.id: s.score for s in rank(papers, reader)}
    after = {s.paper.id: s.score for s in rank(papers, reader, votes={"p": Votes(less=(odd,))})}
    assert 0.0 < after[FEDERATED_TOO.id] < before[FEDERATED_TOO.id]


def test_a_muted_organisation_is_left_out_and_voted_papers_never_come_back() -> None:
    lab = Organization("lab", "The Lab")
    from_lab = replace(REPLAY, id="from-lab", organization=lab)
    papers = [*filler(), from_lab, FEDERATED, FORGETTING]
    reader = profile(description=INTERESTS)
    assert {s.paper.id for s in rank(papers, reader)} >= {from_lab.id, FEDERATED.id, FORGETTING.id}
    votes = {"p": Votes(more=(FORGETTING,), less=(FEDERATED,), muted=("LAB",))}
    shown = {s.paper.id for s in rank(papers, reader, votes=votes)}
    assert not shown & {from_lab.id, FEDERATED.id, FORGETTING.id}


def test_votes_change_only_their_own_profile() -> None:
    papers = [*filler(), REPLAY, FEDERATED_TOO]
    mine, theirs = profile(id="mine", description=INTERESTS), profile(id="theirs", description=INTERESTS)
    both = score_papers(papers, [mine, theirs], votes={"mine": Votes(less=(FEDERATED,))})
    alone = score_papers(papers, [theirs])
    assert both["theirs"] == alone["theirs"] != [] and both["mine"] != both["theirs"]


def description_terms(ranked: list[ScoredPaper]) -> tuple[str, ...]:
    found = [r for s in ranked for r in s.reasons if r.kind is ReasonKind.DESCRIPTION]
    assert found, "no description reason"
    return found[0].terms


def test_a_stem_spelled_as_often_two_ways_is_named_by_the_first_in_alphabetical_order() -> None:
    # 'generate', 'generation' and 'generative' are read once each: whichever is read first,
    # the reason names 'generate'.
    ranked = paper("Image synthesis", "We generate images.")
    other = paper("Protein folding", "A generative model of proteins.")
    who = profile(description="generation of images", min_score=0.0)
    as_background = rank([ranked], who, background=[other])
    read_first = rank([other, ranked], who, background=[other])
    assert description_terms(as_background) == ("generate images",)
    assert description_terms([s for s in read_first if s.paper.id == ranked.id]) == ("generate images",)


def test_terms_that_weigh_the_same_are_named_in_alphabetical_order() -> None:
    ranked = paper("Alpha beta gamma zeta", "")
    who = profile(description="zeta, gamma, beta, alpha", min_score=0.0)
    for background in ([paper("Zeta gamma", "nothing"), paper("Other", "alpha beta")], []):
        assert description_terms(rank([ranked], who, background=background)) == ("alpha", "beta", "gamma")


def test_a_digest_of_papers_without_a_word_the_ranker_reads_is_chosen() -> None:
    # Text in another script gives no stems (with the embedding extra such papers can score):
    # choosing among them crashed scikit-learn's TF-IDF on a matrix of no columns.
    pool = [ScoredPaper(paper("Ω", "ΑΒΓ ΔΕ"), 0.9, ()), ScoredPaper(paper("Ж", "ЖЖ Ю"), 0.8, ())]
    items, runners_up = select_digest(pool, profile(max_items=5))
    assert [s.score for s in items] == [0.9, 0.8]
    assert runners_up == []
    assert text_similarity(["Ω", "Ж"]).tolist() == [[0.0, 0.0], [0.0, 0.0]]


@pytest.mark.parametrize("bulk", [0, 10**9])
def test_keywords_are_named_alike_matched_paper_by_paper_or_all_at_once(
    bulk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # From `explain.BULK` papers to explain, keywords are matched by sparse products for all of them.
    from digest.rank import explain

    papers = [
        paper("Catastrophic Forgetting in Replay", "Replay buffers and catastrophic forgetting."),
        paper("Vision Models", "We study catastrophic forgetting in networks with replay."),
        replace(paper("SkipGate", "We make models faster."), id="extra", ai_keywords=("replay",)),
        *filler(),
    ]
    who = profile(keywords=(Keyword("catastrophic forgetting"), Keyword("replay"), Keyword("networks")))
    expected = [
        [keywords("catastrophic forgetting", "replay", where=PaperPart.TITLE)],
        [keywords("catastrophic forgetting", "replay", "networks", where=PaperPart.ABSTRACT)],  # in keyword order
    ]
    monkeypatch.setattr(explain, "BULK", bulk)
    ranked = {s.paper.id: s for s in rank(papers, who)}
    found = [[r for r in ranked[p.id].reasons if r.kind is ReasonKind.KEYWORDS] for p in papers[:2]]
    assert found == expected
    assert not any(r.kind is ReasonKind.KEYWORDS for r in ranked["extra"].reasons)
