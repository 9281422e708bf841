"""Tests of dmlkeras.recsys: split, sampler, losses, CML/MF models, evaluation, recommend.

Backend-agnostic (run with KERAS_BACKEND=tensorflow and KERAS_BACKEND=jax).
"""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from dmlkeras import recsys
from tests.backend_utils import to_numpy


# ---------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------
def _random_ratings(num_users: int = 12, num_items: int = 20, per_user: int = 6, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(num_users):
        items = rng.choice(num_items, size=per_user, replace=False)
        times = rng.integers(0, 5, size=per_user)  # many ties on purpose
        for i, t in zip(items, times):
            rows.append((100 + u, 1000 + i, int(rng.integers(1, 6)), int(t)))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def _block_ratings(
    num_blocks: int = 3, users_per_block: int = 20, items_per_block: int = 15, per_user: int = 8, seed: int = 0
):
    """Users of block b only interact with items of block b."""
    rng = np.random.default_rng(seed)
    rows = []
    for b in range(num_blocks):
        for u in range(users_per_block):
            user = b * users_per_block + u
            items = b * items_per_block + rng.choice(items_per_block, size=per_user, replace=False)
            for t, i in enumerate(items):
                rows.append((user, int(i), 5, t))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


# ---------------------------------------------------------------------------
# leave_one_out_split
# ---------------------------------------------------------------------------
def test_split_holds_out_exactly_the_latest_item_per_user():
    ratings = _random_ratings()
    split = recsys.leave_one_out_split(ratings)
    assert split.num_users == ratings.user_id.nunique()
    assert split.num_items == ratings.item_id.nunique()
    assert np.all(split.test_items >= 0)
    # Every pair lands in exactly one of train / test.
    train_pairs = {(split.user_ids[u], split.item_ids[i]) for u, i in split.train}
    test_pairs = {(split.user_ids[u], split.item_ids[i]) for u, i in enumerate(split.test_items)}
    assert len(train_pairs) == len(split.train)
    assert not train_pairs & test_pairs
    assert train_pairs | test_pairs == set(zip(ratings.user_id, ratings.item_id))
    for u, raw_user in enumerate(split.user_ids):
        rows = ratings[ratings.user_id == raw_user]
        latest = rows[rows.timestamp == rows.timestamp.max()]
        # Ties on the timestamp: the later row wins.
        assert split.item_ids[split.test_items[u]] == latest.item_id.iloc[-1]
        assert split.test_timestamps[u] == rows.timestamp.max()
        assert (split.train[:, 0] == u).sum() == len(rows) - 1


def test_split_implicit_feedback_options():
    ratings = pd.DataFrame(
        {
            "user_id": [1, 1, 1, 2, 3, 3],
            "item_id": [5, 6, 5, 5, 6, 7],
            "rating": [1, 4, 2, 5, 5, 2],
            "timestamp": [1, 2, 3, 1, 1, 2],
        }
    )
    split = recsys.leave_one_out_split(ratings)
    # User 1 rated item 5 twice: one implicit interaction, latest at t=3 -> held out.
    assert split.item_ids[split.test_items[0]] == 5
    assert split.train[split.train[:, 0] == 0, 1].tolist() == [1]  # item 6
    # A user with a single interaction keeps it for training and has no test item.
    assert split.test_items[1] == -1
    assert split.test_users.tolist() == [0, 2]
    high = recsys.leave_one_out_split(ratings, min_rating=4)
    assert high.num_users == 3 and high.num_items == 2
    frame = split.train_frame()
    assert list(frame.columns) == ["user_id", "item_id", "timestamp"]
    assert len(frame) == len(split.train)
    matrix = split.train_matrix()
    assert sp.issparse(matrix) and matrix.shape == (3, 3) and matrix.sum() == len(split.train)


def test_split_validation_nests_and_rejects_bad_input():
    split = recsys.leave_one_out_split(_random_ratings())
    val = recsys.leave_one_out_split(split.train_frame())
    assert len(val.train) == len(split.train) - val.test_users.size
    with pytest.raises(ValueError, match="column"):
        recsys.leave_one_out_split(pd.DataFrame({"user_id": [1], "item_id": [2]}))
    with pytest.raises(ValueError, match="DataFrame"):
        recsys.leave_one_out_split(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="No interaction"):
        recsys.leave_one_out_split(_random_ratings(), min_rating=99)


# ---------------------------------------------------------------------------
# InteractionTriplets
# ---------------------------------------------------------------------------
def test_sampler_never_yields_a_known_positive():
    rng = np.random.default_rng(1)
    num_users, num_items = 15, 12
    pairs = np.array(
        [(u, i) for u in range(num_users) for i in range(num_items) if rng.random() < 0.7 or i == u % num_items]
    )
    positives = {tuple(p) for p in pairs}
    ds = recsys.InteractionTriplets(pairs, num_items, num_negatives=7, batch_size=16, seed=3)
    for _ in range(3):
        seen_rows = []
        for b in range(len(ds)):
            (x,) = ds[b]
            assert x["items"].shape[1] == 8 and x["items"].dtype == np.int32
            for user, row in zip(x["user"], x["items"]):
                assert (user, row[0]) in positives
                for negative in row[1:]:
                    assert (user, negative) not in positives
                    assert 0 <= negative < num_items
                seen_rows.append((user, row[0]))
        # Every interaction exactly once per epoch.
        assert sorted(seen_rows) == sorted(map(tuple, pairs))
        ds.on_epoch_end()


def test_sampler_is_a_function_of_seed_epoch_index():
    pairs = np.array([(u, i) for u in range(10) for i in range(0, 30, 3)])
    a = recsys.InteractionTriplets(pairs, 30, num_negatives=4, batch_size=8, seed=5)
    b = recsys.InteractionTriplets(pairs, 30, num_negatives=4, batch_size=8, seed=5)
    last = a[len(a) - 1][0]["items"]
    for index in reversed(range(len(b))):  # other order
        b[index]
    np.testing.assert_array_equal(b[len(b) - 1][0]["items"], last)
    np.testing.assert_array_equal(b[-1][0]["items"], last)
    b.on_epoch_end()
    assert not np.array_equal(b[len(b) - 1][0]["items"], last)
    c = recsys.InteractionTriplets(pairs, 30, num_negatives=4, batch_size=8, seed=6)
    assert not np.array_equal(c[len(c) - 1][0]["items"], last)


def test_sampler_rejects_bad_input():
    with pytest.raises(ValueError, match="every item"):
        recsys.InteractionTriplets([[0, 0], [0, 1]], num_items=2)
    with pytest.raises(ValueError, match="out of range"):
        recsys.InteractionTriplets([[0, 5]], num_items=3)
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        recsys.InteractionTriplets(np.zeros((3, 3), int), num_items=3)
    with pytest.raises(ValueError, match="num_negatives"):
        recsys.InteractionTriplets([[0, 0]], num_items=3, num_negatives=0)
    with pytest.raises(ValueError, match="seed"):
        recsys.InteractionTriplets([[0, 0]], num_items=3, seed=-1)
    with pytest.raises(IndexError):
        recsys.InteractionTriplets([[0, 0]], num_items=3)[1]


# ---------------------------------------------------------------------------
# losses, constraint
# ---------------------------------------------------------------------------
def test_cml_loss_matches_hand_computation():
    d = np.array([[0.5, 0.2, 0.9, 2.0], [0.1, 1.0, 1.0, 1.0]], "float32")
    margin, num_items = 0.5, 60
    # Row 0: impostors = negatives with 0.5 + 0.5 - d > 0 -> 0.2 and 0.9 (2 of 3).
    rank = np.floor(num_items * 2 / 3)
    expected0 = np.log(rank + 1) * (margin + 0.5 - 0.2)
    np.testing.assert_allclose(to_numpy(recsys.cml_loss(d, margin, num_items)), [expected0, 0.0], rtol=1e-5)
    np.testing.assert_allclose(to_numpy(recsys.cml_loss(d, margin)), [0.8, 0.0], rtol=1e-5)
    with pytest.raises(ValueError, match="num_negatives"):
        recsys.cml_loss(np.zeros((2, 1), "float32"))


def test_covariance_bpr_and_softmax_losses_match_numpy():
    x = np.random.default_rng(0).normal(size=(16, 5)).astype("float32")
    c = np.cov(x, rowvar=False, bias=True)
    expected = np.sum(c**2) - np.sum(np.diag(c) ** 2)
    np.testing.assert_allclose(float(to_numpy(recsys.covariance_loss(x))), expected, rtol=1e-4)
    s = np.random.default_rng(1).normal(size=(4, 6)).astype("float32")
    bpr = np.mean(np.log1p(np.exp(s[:, 1:] - s[:, :1])), axis=1)
    np.testing.assert_allclose(to_numpy(recsys.bpr_loss(s)), bpr, rtol=1e-5)
    softmax = np.log(np.exp(s).sum(axis=1)) - s[:, 0]
    np.testing.assert_allclose(to_numpy(recsys.sampled_softmax_loss(s)), softmax, rtol=1e-5)


def test_unit_ball_constraint_only_shrinks_long_rows():
    w = np.array([[3.0, 4.0], [0.1, 0.0], [0.0, 0.0]], "float32")
    out = to_numpy(recsys.UnitBallConstraint()(w))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.1, 0.0], [0.0, 0.0]], atol=1e-6)
    np.testing.assert_allclose(
        np.linalg.norm(to_numpy(recsys.UnitBallConstraint(2.0)(w * 10)), axis=1)[:2], [2.0, 1.0], rtol=1e-5
    )
    assert recsys.UnitBallConstraint.from_config(recsys.UnitBallConstraint(0.5).get_config()).max_norm == 0.5
    with pytest.raises(ValueError):
        recsys.UnitBallConstraint(0.0)


# ---------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------
def test_cml_learns_a_planted_block_structure():
    split = recsys.leave_one_out_split(_block_ratings())
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
    split = recsys.leave_one_out_split(_block_ratings(users_per_block=6, items_per_block=8, per_user=4))
    features = np.eye(3, dtype="float32")[np.arange(split.num_items) // 8]
    keras.utils.set_random_seed(0)
    cml = recsys.build_cml_model(
        split.num_users, split.num_items, embedding_dim=4, num_negatives=3, item_features=features
    )
    assert cml.get_layer("item_features").count_params() > 0
    mf = recsys.build_mf_model(split.num_users, split.num_items, embedding_dim=4, num_negatives=3, loss="softmax")
    ds = recsys.InteractionTriplets(split, split.num_items, num_negatives=3, batch_size=32)
    for model in (cml, mf):
        history = model.fit(ds, epochs=2, verbose=0)
        assert np.isfinite(history.history["loss"]).all()
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
    split = recsys.leave_one_out_split(_block_ratings(users_per_block=5, items_per_block=6, per_user=3))
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


# ---------------------------------------------------------------------------
# recommend
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("builder", [recsys.build_cml_model, recsys.build_mf_model])
def test_recommend_excludes_seen_and_matches_the_score_ranking(builder):
    split = recsys.leave_one_out_split(_random_ratings(num_users=8, num_items=15, per_user=6))
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
