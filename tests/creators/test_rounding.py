import datetime
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from creators.models import DailyEngagement
from creators.services.cycles import _scores, integer_weights, split_largest_remainder

from .factories import engagement, make_creator

scores_strategy = st.dictionaries(
    st.integers(min_value=1, max_value=10**9), st.integers(min_value=0, max_value=10**15), min_size=1, max_size=60
)


@given(pool=st.integers(min_value=0, max_value=10**12), scores=scores_strategy)
def test_parts_sum_exactly_to_the_pool_and_are_within_one_unit(pool, scores):
    parts = split_largest_remainder(pool, scores)
    total = sum(scores.values())
    assert set(parts) == set(scores)
    if total == 0:
        assert all(v == 0 for v in parts.values())
        return
    assert sum(parts.values()) == pool
    for key, score in scores.items():
        exact = Fraction(pool * score, total)
        assert abs(parts[key] - exact) < 1
        assert parts[key] >= 0


@given(pool=st.integers(min_value=0, max_value=10**9), scores=scores_strategy, seed=st.randoms())
def test_split_is_deterministic_whatever_the_input_order(pool, scores, seed):
    items = list(scores.items())
    seed.shuffle(items)
    assert split_largest_remainder(pool, dict(items)) == split_largest_remainder(pool, scores)


def test_ties_go_to_the_smaller_creator_id():
    assert split_largest_remainder(2, {7: 1, 3: 1, 5: 1}) == {3: 1, 5: 1, 7: 0}


@given(
    weights=st.dictionaries(
        st.sampled_from(["impressions", "replies", "reposts", "likes"]),
        st.decimals(min_value=0, max_value=100, places=2),
    )
)
def test_integer_weights_keep_the_ratios(weights):
    ints, scale = integer_weights({k: str(v) for k, v in weights.items()})
    for name in ("impressions", "replies", "reposts", "likes"):
        assert Fraction(ints[name], scale) == Fraction(str(weights.get(name, 0)))


@pytest.mark.django_db
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    # Up to 10**16: pool x total score passes 2^63 too, where the SQL leaves bigint for numeric.
    pool=st.integers(min_value=0, max_value=10**16),
    rows=st.lists(st.tuples(st.integers(0, 10**7), st.integers(0, 1000)), min_size=1, max_size=8),
)
@example(pool=10**16 - 7, rows=[(10**7, 1000), (3, 0), (9_999_999, 999)])  # numeric path
@example(pool=10**10 - 1, rows=[(10**7, 1000), (3, 0), (9_999_999, 999)])  # bigint path
def test_sql_split_matches_the_python_rule(pool, rows):
    from django.db import transaction

    with transaction.atomic():
        sid = transaction.savepoint()
        day = datetime.date(2026, 9, 1)
        for impressions, replies in rows:
            engagement(make_creator(profile=False), day, impressions=impressions, replies=replies)
        weights, _ = integer_weights({"impressions": 1, "replies": 20, "reposts": 10, "likes": 2})
        sql = _scores(day, weights, pool)
        scores = {cid: score for cid, score, _ in sql}
        expected = split_largest_remainder(pool, scores)
        assert [(cid, part) for cid, _, part in sql] == sorted(expected.items())
        assert scores == {
            e.creator_id: e.impressions * weights["impressions"] + e.replies * weights["replies"]
            for e in DailyEngagement.objects.filter(day=day)
            if e.impressions or e.replies
        }
        transaction.savepoint_rollback(sid)
