"""Tests of dmlkeras.recsys.serving: recommend.

Backend-agnostic (run with KERAS_BACKEND=tensorflow and KERAS_BACKEND=jax).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from dmlkeras import recsys
from tests.recsys_helpers import random_ratings


@pytest.mark.parametrize("builder", [recsys.build_cml_model, recsys.build_mf_model])
def test_recommend_excludes_seen_and_matches_the_score_ranking(builder):
    split = recsys.leave_one_out_split(random_ratings(num_users=8, num_items=15, per_user=6))
    keras.utils.set_random_seed(1)
    model = builder(split.num_users, split.num_items, embedding_dim=5)
    if builder is recsys.build_mf_model:  # non-zero biases, to check they are used
        model.get_layer("item_bias").embeddings.assign(
            np.linspace(-0.3, 0.3, split.num_items).reshape(-1, 1).astype("float32")
        )
    users = np.arange(split.num_users)
    items, scores = recsys.recommend(model, users, k=4, seen=split)
    seen = split.seen_items()
    full = recsys.score_matrix(model)
    for u in users:
        assert not set(items[u]) & set(seen[u])
        masked = full[u].copy()
        masked[seen[u]] = -np.inf
        expected = np.argsort(-masked, kind="stable")[:4]
        # (float32 distances near 0 carry ~1e-3 of cancellation error.)
        np.testing.assert_allclose(scores[u], masked[expected], rtol=1e-4, atol=1e-3)
        assert np.all(np.diff(scores[u]) <= 1e-6)
        np.testing.assert_allclose(full[u, items[u]], scores[u], rtol=1e-4, atol=1e-3)
    # Other ways to pass the seen items, and no exclusion.
    same, _ = recsys.recommend(model, users, k=4, seen=split.train_matrix())
    np.testing.assert_array_equal(same, items)
    same, _ = recsys.recommend(model, users, k=4, seen=seen)
    np.testing.assert_array_equal(same, items)
    unfiltered, _ = recsys.recommend(model, [0], k=3, exclude_seen=False)
    np.testing.assert_array_equal(unfiltered[0], np.argsort(-full[0], kind="stable")[:3])
    with pytest.raises(ValueError, match="seen"):
        recsys.recommend(model, [0], k=3)
    with pytest.raises(ValueError, match="unseen items"):
        recsys.recommend(model, [0], k=split.num_items, seen=split)
    with pytest.raises(ValueError, match="user_ids"):
        recsys.recommend(model, [split.num_users], k=3, exclude_seen=False)


def test_readers_reject_other_models():
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="user_embedding"):
        recsys.user_embeddings(plain)
    with pytest.raises(ValueError):
        recsys.score_matrix(plain)
