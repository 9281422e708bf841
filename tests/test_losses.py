"""The foundation losses against loop-based references, degenerate batches,
bad input and serialisation (the golden tensorflow-addons values are in
test_golden.py)."""

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmlkeras.losses import (
    BatchContrastiveLoss,
    ContrastiveLoss,
    TripletHardLoss,
    TripletLoss,
    TripletMarginLoss,
    TripletSemiHardLoss,
)
from tests import references as ref
from tests.backend_utils import to_numpy, value_and_grad

METRICS = ["euclidean", "squared_euclidean", "cosine", "manhattan"]
LAYOUTS = {
    "p4k3": np.repeat(np.arange(4), 3),
    "uneven_with_singletons": np.array([0, 0, 0, 0, 1, 1, 2, 3, 3, 4, 5, 5]),
    "two_classes": np.array([0, 1] * 6),
}


def _batch(layout, seed, d=5):
    rng = np.random.default_rng(seed)
    labels = rng.permutation(LAYOUTS[layout])
    return labels, rng.normal(size=(len(labels), d)).astype("float32")


def _loss_value(loss, labels, x):
    return float(to_numpy(loss(labels, x)))


@pytest.mark.parametrize("margin", [1.0, 0.5])
def test_contrastive_matches_reference(margin):
    rng = np.random.default_rng(0)
    similar = rng.integers(0, 2, 20).astype("float32")
    distances = rng.uniform(0, 2, 20).astype("float32")
    got = _loss_value(ContrastiveLoss(margin=margin), similar, distances)
    assert got == pytest.approx(ref.contrastive(similar, distances, margin), rel=1e-5)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("soft", [False, True])
def test_triplet_margin_matches_reference(metric, soft):
    triplets = np.random.default_rng(1).normal(size=(10, 3, 4)).astype("float32")
    got = _loss_value(TripletMarginLoss(margin=0.7, metric=metric, soft=soft), np.zeros(10), triplets)
    assert got == pytest.approx(ref.triplet_margin(triplets, 0.7, metric, soft), rel=1e-4)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("seed", [0, 1])
def test_in_batch_triplet_losses_match_references(layout, metric, seed):
    labels, x = _batch(layout, seed)
    margin = 0.5 if metric == "cosine" else 1.0
    cases = [
        (TripletLoss(margin, "semi-hard", metric), ref.triplet_semihard(x, labels, margin, metric)),
        (TripletLoss(margin, "semi-hard", metric, soft=True), ref.triplet_semihard(x, labels, margin, metric, True)),
        (TripletLoss(margin, "hard", metric), ref.triplet_hard(x, labels, margin, metric)),
        (TripletLoss(margin, "hard", metric, soft=True), ref.triplet_hard(x, labels, margin, metric, True)),
        (TripletLoss(margin, "all", metric), ref.triplet_all(x, labels, margin, metric)),
        (BatchContrastiveLoss(0.1, 1.5, metric), ref.batch_contrastive(x, labels, 0.1, 1.5, metric)),
    ]
    for loss, expected in cases:
        assert _loss_value(loss, labels, x) == pytest.approx(expected, rel=1e-4, abs=1e-6), loss.get_config()


@settings(max_examples=20, deadline=None)
@given(
    labels=st.lists(st.integers(0, 4), min_size=1, max_size=16),
    seed=st.integers(0, 10_000),
    margin=st.sampled_from([0.05, 0.3, 1.0]),
)
def test_triplet_mining_random_layouts(labels, seed, margin):
    labels = np.array(labels)
    x = np.random.default_rng(seed).normal(size=(len(labels), 3)).astype("float32")
    for mining, reference in (
        ("semi-hard", ref.triplet_semihard),
        ("hard", ref.triplet_hard),
        ("all", ref.triplet_all),
    ):
        got = _loss_value(TripletLoss(margin, mining), labels, x)
        assert got == pytest.approx(reference(x, labels, margin, "euclidean"), rel=1e-4, abs=1e-6), mining


def _all_losses():
    return [
        TripletLoss(mining="semi-hard"),
        TripletLoss(mining="hard"),
        TripletLoss(mining="hard", soft=True),
        TripletLoss(mining="all"),
        TripletLoss(mining="semi-hard", metric="cosine"),
        BatchContrastiveLoss(),
    ]


DEGENERATE = {
    "one_class": (np.zeros(6, int), None),
    "all_distinct": (np.arange(6), None),
    "identical_embeddings": (np.array([0, 0, 1, 1, 2, 2]), np.ones((6, 4), "float32")),
    "batch_of_1": (np.array([3]), None),
    "batch_of_2_same": (np.array([1, 1]), None),
    "batch_of_2_different": (np.array([0, 1]), None),
    "huge_norms": (np.array([0, 0, 1, 1]), np.random.default_rng(0).normal(size=(4, 4)).astype("float32") * 1e4),
    "zero_embeddings": (np.array([0, 0, 1, 1]), np.zeros((4, 4), "float32")),
}


@pytest.mark.parametrize("case", sorted(DEGENERATE))
def test_degenerate_batches_are_finite(case):
    labels, x = DEGENERATE[case]
    if x is None:
        x = np.random.default_rng(1).normal(size=(len(labels), 4)).astype("float32")
    for loss in _all_losses():
        value, grad = value_and_grad(lambda v: loss(labels, v), x)
        assert np.isfinite(value), (case, loss.get_config())
        assert np.all(np.isfinite(grad)), (case, loss.get_config())
        if case in ("one_class", "all_distinct", "batch_of_1", "batch_of_2_same", "batch_of_2_different"):
            # No anchor has both a positive and a negative: 0 with zero gradient.
            if not (isinstance(loss, BatchContrastiveLoss) or loss.mining == "all"):
                assert value == 0.0 and np.all(grad == 0.0), (case, loss.get_config())


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_inputs_compute_in_float32(dtype):
    labels, x = _batch("p4k3", 0)
    for loss in _all_losses():
        half = keras.ops.cast(x, dtype)
        value = to_numpy(loss(labels, half))
        assert value.dtype == np.float32 and np.isfinite(value)
        full = to_numpy(loss(labels, keras.ops.cast(half, "float32")))
        assert value == pytest.approx(full, rel=1e-5, abs=1e-6)
        _, grad = value_and_grad(lambda v: loss(labels, keras.ops.cast(v, dtype)), x)
        assert np.all(np.isfinite(grad))


def test_gradient_pulls_positives_together():
    labels, x = _batch("p4k3", 3)
    for loss in (TripletLoss(mining="hard"), TripletLoss(mining="all"), TripletLoss(mining="semi-hard")):
        before, grad = value_and_grad(lambda v: loss(labels, v), x)
        after = _loss_value(loss, labels, x - 0.01 * grad)
        assert after < before, loss.get_config()


def test_bad_input_raises_value_error():
    loss = TripletLoss()
    with pytest.raises(ValueError, match=r"\(batch_size, embedding_dim\)"):
        loss(np.zeros(4), np.zeros((4, 2, 3)))
    with pytest.raises(ValueError, match="3 labels but y_pred has 4 embeddings"):
        loss(np.zeros(3), np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"\(batch_size,\) or \(batch_size, 1\)"):
        loss(np.zeros((4, 2, 2)), np.zeros((4, 2)))  # (4, 2) is multi-hot now
    with pytest.raises(ValueError, match=r"\(batch_size, 3, embedding_dim\)"):
        TripletMarginLoss()(np.zeros(4), np.zeros((4, 2, 3)))
    with pytest.raises(ValueError, match=r"\(n,\) or \(n, 1\)"):
        ContrastiveLoss()(np.zeros(4), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="mining must be one of"):
        TripletLoss(mining="easy")
    with pytest.raises(ValueError, match="soft=True is not available"):
        TripletLoss(mining="all", soft=True)
    with pytest.raises(ValueError, match="Unknown metric"):
        TripletLoss(metric="hamming")


def test_labels_of_shape_n_by_1_are_accepted():
    labels, x = _batch("p4k3", 0)
    loss = TripletLoss(mining="hard")
    assert _loss_value(loss, labels[:, None], x) == pytest.approx(_loss_value(loss, labels, x))


def test_aliases_follow_tensorflow_addons_signature():
    semi = TripletSemiHardLoss(margin=0.3, distance_metric="squared-L2")
    hard = TripletHardLoss(margin=0.2, soft=True, distance_metric="angular")
    assert (semi.mining, semi.metric, semi.margin) == ("semi-hard", "squared_euclidean", 0.3)
    assert (hard.mining, hard.metric, hard.soft) == ("hard", "cosine", True)
    labels, x = _batch("p4k3", 0)
    assert _loss_value(semi, labels, x) == pytest.approx(
        _loss_value(TripletLoss(0.3, "semi-hard", "squared_euclidean"), labels, x)
    )


IN_BATCH = [
    TripletLoss(margin=0.3, mining="all", metric="cosine"),
    TripletLoss(margin=0.2, mining="hard", soft=True),
    TripletSemiHardLoss(margin=0.5, distance_metric="angular"),
    TripletHardLoss(margin=0.4),
    BatchContrastiveLoss(pos_margin=0.1, neg_margin=0.8),
]


@pytest.mark.parametrize("loss", IN_BATCH, ids=lambda loss: type(loss).__name__)
def test_in_batch_loss_saves_and_loads_without_custom_objects(loss, tmp_path):
    labels, x = _batch("p4k3", 0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    model.compile(optimizer="sgd", loss=loss)
    model.fit(x, labels, batch_size=12, epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert type(loaded.loss) is type(loss)
    assert loaded.loss.get_config() == loss.get_config()
    embeddings = loaded.predict(x, verbose=0)
    assert _loss_value(loaded.loss, labels, embeddings) == pytest.approx(_loss_value(loss, labels, embeddings))


@pytest.mark.parametrize("loss", [ContrastiveLoss(margin=0.5), TripletMarginLoss(margin=0.3, soft=True)], ids=lambda l: type(l).__name__)
def test_tuple_loss_saves_and_loads(loss, tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss=loss)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert loaded.loss.get_config() == loss.get_config()
