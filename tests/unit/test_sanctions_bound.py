"""Screening skips the alignment of a name against a listed alias whose length alone keeps
it under the review threshold (fjordbank/domain/sanctions.py `could_be_like`): the bound
holds for any words, so the results are the same, and a long name costs a fraction."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from fjordbank.domain import sanctions
from fjordbank.domain.sanctions import REVIEW_THRESHOLD, could_be_like, name_similarity

WORDS = st.sampled_from(["ivan", "ivanov", "petrov", "petrova", "nordic", "holding", "as", "oslo", "a", "b"])


@settings(max_examples=500, deadline=None)
@given(st.lists(WORDS, min_size=1, max_size=9), st.lists(WORDS, min_size=1, max_size=9))
def test_a_pair_it_skips_could_never_be_a_review(query, alias):
    if not could_be_like(tuple(query), tuple(alias)):
        assert name_similarity(tuple(query), tuple(alias)) < REVIEW_THRESHOLD


def test_a_long_name_is_aligned_only_with_aliases_of_a_length_that_could_be_like_it(monkeypatch):
    entries = [
        sanctions.SanctionedEntity(f"E{n}", (name,), (), (), None)
        for n, name in enumerate(["Ivan Petrov", "Ivan Ivanovich Petrov", "Nordic Holding Oslo Ivan Petrov Ivanov"])
    ]
    listed = sanctions.SanctionsList(entries)
    pairs: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    real = sanctions.name_similarity
    monkeypatch.setattr(sanctions, "name_similarity", lambda q, a, **kw: pairs.append((q, a)) or real(q, a, **kw))
    name = "Ivan Petrov Nordic Holding Oslo Ivanov Petrova"  # seven words
    result = listed.screen(name, None)
    assert pairs and all(could_be_like(q, a) for q, a in pairs)
    assert not [a for _q, a in pairs if len(a) == 2]  # two words against six or seven: never aligned
    assert result.outcome == "review"  # "Ivan Petrov" found among its words all the same
