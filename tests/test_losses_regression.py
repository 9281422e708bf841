"""CosineSimilarityLoss (pair regression onto graded similarity) against a
loop-based NumPy reference, on both y_pred layouts, degenerate input, bad
shapes and serialisation."""

import keras
import numpy as np
import pytest

from dmlkeras.losses.regression import CosineSimilarityLoss
from dmlkeras.models import Stack, build_embedding_model, build_siamese_model
from tests import references as ref
from tests.backend_utils import to_numpy, value_and_grad


def cosine_similarity_regression(targets: np.ndarray, pairs: np.ndarray) -> float:
    """Sentence-BERT's CosineSimilarityLoss, one pair at a time, in float64."""
    total = 0.0
    for y, (u, v) in zip(targets, pairs):
        cosine = 1.0 - ref.distance(u, v, "cosine")
        total += (cosine - float(y)) ** 2
    return total / len(targets)


def _pairs(seed, n=12, d=6):
    rng = np.random.default_rng(seed)
    pairs = rng.normal(size=(n, 2, d)).astype("float32")
    targets = rng.uniform(0.0, 1.0, n).astype("float32")
    return targets, pairs


def _value(loss, y_true, y_pred):
    return float(to_numpy(loss(y_true, y_pred)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stacked_embeddings_match_reference(seed):
    targets, pairs = _pairs(seed)
    got = _value(CosineSimilarityLoss(), targets, pairs)
    assert got == pytest.approx(cosine_similarity_regression(targets, pairs), rel=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("column", [False, True])
def test_cosine_distances_match_reference(seed, column):
    targets, pairs = _pairs(seed)
    cosine_distances = np.array([ref.distance(u, v, "cosine") for u, v in pairs], "float32")
    if column:
        targets, cosine_distances = targets[:, None], cosine_distances[:, None]
    got = _value(CosineSimilarityLoss(), targets, cosine_distances)
    assert got == pytest.approx(cosine_similarity_regression(targets.ravel(), pairs), rel=1e-5)


def test_siamese_output_and_stacked_embeddings_agree():
    tower = build_embedding_model((5,), embedding_dim=4, backbone="mlp")
    left = keras.Input((5,))
    right = keras.Input((5,))
    stacked = keras.Model([left, right], Stack()([tower(left), tower(right)]))
    siamese = build_siamese_model(tower, metric="cosine")
    rng = np.random.default_rng(3)
    x1, x2 = rng.normal(size=(8, 5)), rng.normal(size=(8, 5))
    targets = rng.uniform(size=8)
    loss = CosineSimilarityLoss()
    from_distances = _value(loss, targets, siamese.predict([x1, x2], verbose=0))
    from_embeddings = _value(loss, targets, stacked.predict([x1, x2], verbose=0))
    assert from_distances == pytest.approx(from_embeddings, rel=1e-5)


def test_perfect_prediction_costs_nothing_and_scale_is_ignored():
    pairs = np.array([[[1.0, 0.0], [5.0, 0.0]], [[1.0, 1.0], [-2.0, -2.0]], [[1.0, 0.0], [0.0, 0.5]]], "float32")
    assert _value(CosineSimilarityLoss(), np.array([1.0, -1.0, 0.0]), pairs) == pytest.approx(0.0, abs=1e-6)


def test_sample_weight_and_reduction():
    targets, pairs = _pairs(4, n=4)
    per_pair = to_numpy(CosineSimilarityLoss(reduction=None)(targets, pairs))
    expected = [cosine_similarity_regression(targets[i : i + 1], pairs[i : i + 1]) for i in range(4)]
    np.testing.assert_allclose(per_pair, expected, rtol=1e-5)
    weights = np.array([1.0, 0.0, 2.0, 1.0], "float32")
    weighted = float(to_numpy(CosineSimilarityLoss()(targets, pairs, sample_weight=weights)))
    assert weighted == pytest.approx(float(np.sum(np.array(expected) * weights) / 4), rel=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_zero_vectors_give_finite_loss_and_gradient(dtype):
    pairs = np.zeros((4, 2, 3), dtype)
    pairs[1, 0] = [1.0, 2.0, 0.0]  # one zero embedding against a non-zero one
    pairs[2] = [[1e-4, 0.0, 0.0], [0.0, 1e-4, 0.0]]  # tiny in float16
    targets = np.array([0.5, 1.0, 0.0, 0.2], "float32")
    value, grad = value_and_grad(lambda p: CosineSimilarityLoss()(targets, p), pairs.astype("float32"))
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    half = _value(CosineSimilarityLoss(), targets, pairs)
    assert np.isfinite(half)
    # A zero embedding has cosine 0 with anything: pairs 0 and 1 cost target**2.
    assert half == pytest.approx((0.25 + 1.0 + 0.0 + 0.04) / 4, abs=2e-3)


def test_gradient_matches_finite_differences():
    targets, pairs = _pairs(5, n=3, d=3)
    _, grad = value_and_grad(lambda p: CosineSimilarityLoss()(targets, p), pairs)  # float32 on every backend
    step = 1e-6
    numeric = np.zeros(pairs.shape)
    for index in np.ndindex(pairs.shape):  # central differences of the float64 reference
        shifted = pairs.astype("float64")
        shifted[index] += step
        up = cosine_similarity_regression(targets, shifted)
        shifted[index] -= 2 * step
        numeric[index] = (up - cosine_similarity_regression(targets, shifted)) / (2 * step)
    np.testing.assert_allclose(grad, numeric, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize(
    "y_true, y_pred, match",
    [
        (np.zeros(4), np.zeros((4, 3, 5)), r"\(batch_size, 2, embedding_dim\)"),
        (np.zeros(4), np.zeros((4, 5)), r"cosine distances"),
        (np.zeros(4), np.zeros((4, 2, 3, 1)), r"shape \(4, 2, 3, 1\)"),
        (np.zeros((4, 2)), np.zeros(4), r"y_true"),
        (np.zeros(3), np.zeros((4, 2, 5)), r"3 targets but y_pred has 4 pairs"),
        (np.zeros(3), np.zeros(4), r"3 targets but y_pred has 4 pairs"),
    ],
)
def test_bad_shapes_raise(y_true, y_pred, match):
    with pytest.raises(ValueError, match=match):
        CosineSimilarityLoss()(y_true.astype("float32"), y_pred.astype("float32"))


def test_serialization_round_trip():
    loss = CosineSimilarityLoss(name="sts_loss")
    config = keras.saving.serialize_keras_object(loss)
    restored = keras.saving.deserialize_keras_object(config)
    assert isinstance(restored, CosineSimilarityLoss)
    assert restored.get_config() == loss.get_config()
    targets, pairs = _pairs(6)
    assert _value(restored, targets, pairs) == pytest.approx(_value(loss, targets, pairs))


def test_compiled_siamese_trains_and_saves(tmp_path):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(size=(64, 6)).astype("float32"), rng.normal(size=(64, 6)).astype("float32")
    targets = (1.0 - ref.pairwise(x1, "cosine", x2).diagonal()).astype("float32")  # input-space cosines
    tower = build_embedding_model((6,), embedding_dim=8, backbone="mlp")
    siamese = build_siamese_model(tower, metric="cosine")
    siamese.compile(optimizer=keras.optimizers.Adam(0.01), loss=CosineSimilarityLoss())
    history = siamese.fit([x1, x2], targets, batch_size=16, epochs=15, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    path = tmp_path / "siamese.keras"
    siamese.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored.loss, CosineSimilarityLoss)
    np.testing.assert_allclose(
        restored.predict([x1, x2], verbose=0), siamese.predict([x1, x2], verbose=0), rtol=1e-5, atol=1e-6
    )
    assert restored.evaluate([x1, x2], targets, verbose=0) == pytest.approx(
        siamese.evaluate([x1, x2], targets, verbose=0), rel=1e-5
    )
