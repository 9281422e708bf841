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


def test_ranking_eval_per_user_matches_loops_and_the_means(tiny_split):
    rng = np.random.default_rng(3)
    scores = np.round(rng.normal(size=(3, 6)), 1)  # rounded: ties on purpose
    per_user = recsys.ranking_eval_per_user(scores, tiny_split, num_negatives=3, k=2, full_k=2)
    np.testing.assert_array_equal(per_user["users"], tiny_split.test_users)
    negatives = recsys.sample_eval_negatives(tiny_split, 3, seed=0)
    seen = tiny_split.seen_items()
    for r, u in enumerate(tiny_split.test_users):
        held = tiny_split.test_items[u]
        rank = sum(scores[u, j] >= scores[u, held] for j in negatives[r])  # ties count against the held item
        assert per_user["hit_rate_at_2"][r] == float(rank < 2)
        assert per_user["ndcg_at_2"][r] == pytest.approx(1 / np.log2(rank + 2) if rank < 2 else 0.0)
        assert per_user["reciprocal_rank"][r] == pytest.approx(1 / (rank + 1))
        # Full ranking by a stable sort of the unseen items (smaller index first among ties).
        unseen = [j for j in range(6) if j not in seen[u]]
        ordered = sorted(unseen, key=lambda j: (-scores[u, j], j))
        assert per_user["recall_at_2"][r] == float(held in ordered[:2])
    means = recsys.sampled_ranking_eval(scores, tiny_split, num_negatives=3, k=2, full_k=2)
    assert means == {
        "hit_rate_at_2": per_user["hit_rate_at_2"].mean(),
        "ndcg_at_2": per_user["ndcg_at_2"].mean(),
        "mrr": per_user["reciprocal_rank"].mean(),
        "recall_at_2": per_user["recall_at_2"].mean(),
        "n_users": 3,
    }
    with pytest.raises(ValueError, match="NaN"):
        recsys.ranking_eval_per_user(np.full((3, 6), np.nan), tiny_split, num_negatives=3)


def test_ranking_evaluation_callback_logs_the_validation_metrics():
    import keras

    from tests.recsys_helpers import block_ratings

    split = recsys.leave_one_out_split(block_ratings())
    keras.utils.set_random_seed(0)
    model = recsys.build_cml_model(split.num_users, split.num_items, embedding_dim=8, num_negatives=4,
                                   learning_rate=0.05)
    before = recsys.sampled_ranking_eval(model, split, num_negatives=20, k=5)
    data = recsys.InteractionTriplets(split, split.num_items, num_negatives=4, batch_size=32, seed=0)
    callback = recsys.RankingEvaluation(split, num_negatives=20, k=5)
    history = model.fit(data, epochs=3, verbose=0, callbacks=[callback])
    curve = history.history["val_hit_rate_at_5"]
    assert len(curve) == 3 and sorted(k for k in history.history if k.startswith("val_")) == [
        "val_hit_rate_at_5", "val_mrr", "val_ndcg_at_5", "val_recall_at_20"]
    # The last logged value is the trained model's score, and training on block data beats the start.
    assert curve[-1] == recsys.sampled_ranking_eval(model, split, num_negatives=20, k=5)["hit_rate_at_5"]
    assert curve[-1] > before["hit_rate_at_5"] + 0.2
    with pytest.raises(ValueError, match="unseen"):
        recsys.RankingEvaluation(split, num_negatives=10_000)
