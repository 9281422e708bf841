"""Tests of dmlkeras.recsys.models: CML and MF builders, training, saving, readers.

Backend-agnostic (run with KERAS_BACKEND=tensorflow and KERAS_BACKEND=jax).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from dmlkeras import recsys
from tests.backend_utils import to_numpy
from tests.recsys_helpers import block_ratings


def test_cml_learns_a_planted_block_structure():
    split = recsys.leave_one_out_split(block_ratings())
    keras.utils.set_random_seed(0)
    model = recsys.build_cml_model(
        split.num_users, split.num_items, embedding_dim=8, margin=0.5, num_negatives=5, learning_rate=0.02
    )
    before = recsys.sampled_ranking_eval(model, split, num_negatives=30, k=5, full_k=5)
    ds = recsys.InteractionTriplets(split, split.num_items, num_negatives=5, batch_size=64, seed=0)
    history = model.fit(ds, epochs=15, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    after = recsys.sampled_ranking_eval(model, split, num_negatives=30, k=5, full_k=5)
    # 30 negatives, of which ~1/3 in the user's block: chance HR@5 ~ 5/31 = 0.16;
    # even perfect block knowledge ranks the held-out item among ~10 block items.
    assert after["hit_rate_at_5"] > 0.4 > before["hit_rate_at_5"]
    norms = np.linalg.norm(np.concatenate([recsys.user_embeddings(model), recsys.item_embeddings(model)]), axis=1)
    assert norms.max() <= 1.0 + 1e-5
    # Users are nearer to their block's items than to the others.
    scores = recsys.score_matrix(model)
    blocks_u, blocks_i = np.arange(split.num_users) // 20, np.arange(split.num_items) // 15
    same = blocks_u[:, None] == blocks_i[None, :]
    assert scores[same].mean() > scores[~same].mean() + 0.2


def test_cml_with_item_features_and_mf_train(tmp_path):
    split = recsys.leave_one_out_split(block_ratings(users_per_block=6, items_per_block=8, per_user=4))
    features = np.eye(3, dtype="float32")[np.arange(split.num_items) // 8]
    keras.utils.set_random_seed(0)
    cml = recsys.build_cml_model(
        split.num_users, split.num_items, embedding_dim=4, num_negatives=3, item_features=features,
        learning_rate=1e-2,
    )
    assert cml.get_layer("item_features").count_params() > 0
    mf = recsys.build_mf_model(
        split.num_users, split.num_items, embedding_dim=4, num_negatives=3, loss="softmax", learning_rate=1e-2
    )
    ds = recsys.InteractionTriplets(split, split.num_items, num_negatives=3, batch_size=32)
    fixed = [ds[i] for i in range(len(ds))]  # one epoch's batches, to measure on
    for model in (cml, mf):
        before = np.mean([model.evaluate(batch[0], verbose=0) for batch in fixed])
        model.fit(ds, epochs=5, verbose=0)
        after = np.mean([model.evaluate(batch[0], verbose=0) for batch in fixed])
        assert after < before, (model.name, before, after)
    with pytest.raises(ValueError, match="item_features"):
        recsys.build_cml_model(3, 4, item_features=np.zeros((5, 2)))
    with pytest.raises(ValueError, match="loss"):
        recsys.build_mf_model(3, 4, loss="hinge")
    with pytest.raises(ValueError, match="num_items"):
        recsys.build_cml_model(3, 0)
    with pytest.raises(ValueError, match="metric"):
        recsys.CMLLoss(metric="cosine")


@pytest.mark.parametrize("kind", ["cml", "cml_features", "mf"])
def test_save_load_round_trip_without_custom_objects(tmp_path, kind):
    split = recsys.leave_one_out_split(block_ratings(users_per_block=5, items_per_block=6, per_user=3))
    keras.utils.set_random_seed(0)
    if kind == "mf":
        model = recsys.build_mf_model(split.num_users, split.num_items, embedding_dim=4, num_negatives=2)
    else:
        features = np.arange(split.num_items * 2, dtype="float32").reshape(-1, 2) if kind == "cml_features" else None
        model = recsys.build_cml_model(
            split.num_users,
            split.num_items,
            embedding_dim=4,
            num_negatives=2,
            item_features=features,
            covariance_weight=0.5,
        )
    ds = recsys.InteractionTriplets(split, split.num_items, num_negatives=2, batch_size=16)
    model.fit(ds, epochs=1, verbose=0)
    path = tmp_path / f"{kind}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(recsys.user_embeddings(loaded), recsys.user_embeddings(model))
    np.testing.assert_allclose(recsys.item_embeddings(loaded), recsys.item_embeddings(model))
    np.testing.assert_allclose(recsys.score_matrix(loaded), recsys.score_matrix(model), rtol=1e-6)
    (x,) = ds[0]
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(model(x)), rtol=1e-5, atol=1e-6)
    if kind == "cml_features":
        np.testing.assert_array_equal(
            to_numpy(loaded.get_layer("item_features").features), to_numpy(model.get_layer("item_features").features)
        )
    assert loaded.optimizer is not None and loaded.compiled
    if kind == "cml":  # still trainable (once is enough: each fit compiles a step)
        loaded.fit(ds, epochs=1, verbose=0)


@pytest.mark.parametrize("builder", [recsys.build_cml_model, recsys.build_mf_model])
def test_builders_compile_by_default_or_not_on_request(builder):
    assert builder(3, 4, embedding_dim=2).compiled
    model = builder(3, 4, embedding_dim=2, compile=False)
    assert not model.compiled
    model.compile(optimizer="adam")  # no loss: the model adds its own
    items = np.random.default_rng(0).integers(0, 4, size=(2, 1 + 10)).astype("int32")  # num_negatives=10
    batch = {"user": np.array([0, 1], "int32"), "items": items}
    before = model.evaluate(batch, verbose=0)
    for _ in range(20):
        model.train_on_batch(batch)
    assert model.evaluate(batch, verbose=0) < before
