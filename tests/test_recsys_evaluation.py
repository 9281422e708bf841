"""Tests of dmlkeras.recsys.evaluation: sampled ranking metrics, popularity.

Backend-agnostic (run with KERAS_BACKEND=tensorflow and KERAS_BACKEND=jax).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dmlkeras import recsys


@pytest.fixture(scope="module")
def tiny_split() -> recsys.LeaveOneOutSplit:
    # 3 users, 6 items; test items: u0 -> 2, u1 -> 5, u2 -> 0.
    ratings = pd.DataFrame(
        {
            "user_id": [0, 0, 1, 1, 1, 2, 2],
            "item_id": [0, 2, 1, 3, 5, 4, 0],
            "timestamp": [1, 2, 1, 2, 3, 1, 2],
        }
    )
    return recsys.leave_one_out_split(ratings)


def test_eval_negatives_are_never_seen_and_reproducible(tiny_split):
    neg = recsys.sample_eval_negatives(tiny_split, num_negatives=3, seed=1)
    assert neg.shape == (3, 3)
    seen = tiny_split.seen_items()
    for row, u in zip(neg, tiny_split.test_users):
        assert len(set(row)) == 3
        assert not set(row) & set(seen[u]) and tiny_split.test_items[u] not in row
    np.testing.assert_array_equal(neg, recsys.sample_eval_negatives(tiny_split, num_negatives=3, seed=1))
    with pytest.raises(ValueError, match="unseen"):
        recsys.sample_eval_negatives(tiny_split, num_negatives=5)


def test_sampled_ranking_eval_on_hand_made_scores(tiny_split):
    # Item scores equal for all users: item j scores j. Test items 2, 5, 0.
    scores = np.tile(np.arange(6, dtype=float), (3, 1))
    m = recsys.sampled_ranking_eval(scores, tiny_split, num_negatives=3, k=2, full_k=1)
    negatives = recsys.sample_eval_negatives(tiny_split, 3, seed=0)
    held = tiny_split.test_items[tiny_split.test_users]
    ranks = (negatives >= held[:, None]).sum(axis=1)  # item j's score is j
    assert m["hit_rate_at_2"] == pytest.approx(np.mean(ranks < 2))
    assert m["ndcg_at_2"] == pytest.approx(np.mean(np.where(ranks < 2, 1 / np.log2(ranks + 2), 0.0)))
    # Full ranking, training items excluded: u0 ranks {1, 3, 4, 5} + held 2 -> top-1 is 5: miss;
    # u1 (held 5, trains 1, 3) -> top-1 is 5: hit; u2 (held 0) -> miss.
    assert m["recall_at_1"] == pytest.approx(1 / 3)
    assert m["n_users"] == 3
    # The same scores through a callable give the same numbers.
    assert recsys.sampled_ranking_eval(lambda u, i: i.astype(float), tiny_split, 3, k=2, full_k=1) == m
    # A perfect scorer.
    oracle = np.zeros((3, 6))
    oracle[tiny_split.test_users, held] = 1.0
    perfect = recsys.sampled_ranking_eval(oracle, tiny_split, num_negatives=3, k=1, full_k=1)
    assert perfect["hit_rate_at_1"] == perfect["ndcg_at_1"] == perfect["recall_at_1"] == 1.0
    # A constant scorer gets no credit from ties.
    assert recsys.sampled_ranking_eval(np.zeros((3, 6)), tiny_split, num_negatives=3, k=1)["hit_rate_at_1"] == 0.0
    with pytest.raises(ValueError, match="score matrix"):
        recsys.sampled_ranking_eval(np.zeros((2, 6)), tiny_split)
    with pytest.raises(ValueError, match="LeaveOneOutSplit"):
        recsys.sampled_ranking_eval(scores, "split")


def test_most_popular_scores(tiny_split):
    s = recsys.most_popular_scores(tiny_split)
    assert s.shape == (3, 6)
    np.testing.assert_array_equal(s[0], np.bincount(tiny_split.train[:, 1], minlength=6))
    np.testing.assert_array_equal(s[0], s[2])
