"""The diagnostic metrics against loop-based NumPy references: fixed and
degenerate batches, accumulation and reset, label shapes, serialisation, and
use inside compile / fit / save / load."""

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmlkeras.metrics import (
    ActiveTripletFraction,
    DistanceGap,
    EmbeddingNormMean,
    EmbeddingNormStd,
    MeanNegativeDistance,
    MeanPositiveDistance,
)
from tests import references as ref
from tests.backend_utils import to_numpy

METRICS = ["euclidean", "squared_euclidean", "cosine", "manhattan"]
MINING = ["all", "semi-hard", "hard"]
LAYOUTS = {
    "p4k3": np.repeat(np.arange(4), 3),
    "uneven_with_singletons": np.array([0, 0, 0, 0, 1, 1, 2, 3, 3, 4, 5, 5]),
    "two_classes": np.array([0, 1] * 6),
}
DEGENERATE = {
    "single_sample": np.array([3]),
    "one_class": np.array([1, 1, 1, 1]),
    "no_positives": np.array([0, 1, 2, 3]),
}


def _batch(labels, seed, d=5, separation=0.0):
    """Shuffled ``labels`` and Gaussian embeddings around random class centres."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(labels)
    centres = rng.normal(size=(int(labels.max()) + 1, d))
    return labels, (rng.normal(size=(len(labels), d)) + separation * centres[labels]).astype("float32")


# ---------------------------------------------------------------- references
# Each returns (sum of values, number of items) of one batch: the epoch value
# of a metric is the pooled sum over its batches divided by the pooled count.
def _pairs(labels, same):
    n = len(labels)
    return [(i, j) for i in range(n) for j in range(n) if i != j and (labels[i] == labels[j]) == same]


def ref_pair_distances(x, labels, metric, same):
    d = ref.pairwise(x, metric)
    pairs = _pairs(labels, same)
    return sum(d[i, j] for i, j in pairs), len(pairs)


def ref_active(x, labels, margin, mining, metric):
    d = ref.pairwise(x, metric)
    n = len(labels)
    active = count = 0
    for a in range(n):
        positives = [p for p in range(n) if p != a and labels[p] == labels[a]]
        negatives = [k for k in range(n) if labels[k] != labels[a]]
        if not negatives or not positives:
            continue
        if mining == "all":
            for p in positives:
                for k in negatives:
                    active += d[a, p] - d[a, k] + margin > 0
                    count += 1
        elif mining == "semi-hard":
            for p in positives:
                farther = [d[a, k] for k in negatives if d[a, k] > d[a, p]]
                chosen = min(farther) if farther else max(d[a, k] for k in negatives)
                active += d[a, p] - chosen + margin > 0
                count += 1
        else:
            hardest_p = max(d[a, p] for p in positives)
            hardest_n = min(d[a, k] for k in negatives)
            active += hardest_p - hardest_n + margin > 0
            count += 1
    return float(active), count


def _pooled(parts):
    total = sum(t for t, _ in parts)
    count = sum(c for _, c in parts)
    return total / count if count else 0.0


def ref_value(name, batches, metric="euclidean", margin=1.0, mining="all"):
    """The epoch value of metric ``name`` over ``batches`` of (labels, x)."""
    if name == "active":
        return _pooled([ref_active(x, y, margin, mining, metric) for y, x in batches])
    if name in ("positive", "negative"):
        return _pooled([ref_pair_distances(x, y, metric, name == "positive") for y, x in batches])
    if name == "gap":
        positives = [ref_pair_distances(x, y, metric, True) for y, x in batches]
        negatives = [ref_pair_distances(x, y, metric, False) for y, x in batches]
        if not sum(c for _, c in positives) or not sum(c for _, c in negatives):
            return 0.0
        return _pooled(negatives) - _pooled(positives)
    norms = np.concatenate([np.linalg.norm(np.asarray(x, np.float64), axis=1) for _, x in batches])
    if not len(norms):
        return 0.0
    return float(norms.mean()) if name == "norm_mean" else float(norms.std())


def make(name, metric="euclidean", margin=1.0, mining="all"):
    return {
        "active": lambda: ActiveTripletFraction(margin=margin, mining=mining, metric=metric),
        "positive": lambda: MeanPositiveDistance(metric=metric),
        "negative": lambda: MeanNegativeDistance(metric=metric),
        "gap": lambda: DistanceGap(metric=metric),
        "norm_mean": lambda: EmbeddingNormMean(),
        "norm_std": lambda: EmbeddingNormStd(),
    }[name]()


NAMES = ["active", "positive", "negative", "gap", "norm_mean", "norm_std"]


def _result(m):
    return float(to_numpy(m.result()))


def _check(m, expected):
    got = _result(m)
    assert np.isfinite(got)
    assert got == pytest.approx(expected, rel=1e-4, abs=1e-5), m.get_config()


# ---------------------------------------------------------------- values
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("metric", METRICS)
def test_distance_metrics_match_references(layout, metric):
    batch = _batch(LAYOUTS[layout], seed=len(layout))
    for name in ("positive", "negative", "gap"):
        m = make(name, metric)
        m.update_state(*batch)
        _check(m, ref_value(name, [batch], metric))


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("mining", MINING)
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_active_fraction_matches_reference(layout, mining, metric):
    margin = 0.3 if metric == "cosine" else 1.0
    # Separated classes and seeds for which each mining has active and inactive triplets.
    batch = _batch(LAYOUTS[layout], seed=2 if layout == "two_classes" else 1, separation=2.0)
    m = ActiveTripletFraction(margin=margin, mining=mining, metric=metric)
    m.update_state(*batch)
    expected = ref_value("active", [batch], metric, margin, mining)
    assert 0.0 < expected < 1.0  # the batches are not trivially all active or inactive
    _check(m, expected)


def test_active_fraction_counts_exact_ties_as_inactive():
    # d_ap = d_an everywhere and margin 0: every triplet loss is exactly 0.
    for mining in MINING:
        m = ActiveTripletFraction(margin=0.0, mining=mining, metric="squared_euclidean")
        m.update_state(np.array([0, 0, 1]), np.zeros((3, 5), "float32"))
        assert _result(m) == 0.0


@pytest.mark.parametrize("name", ["norm_mean", "norm_std"])
def test_norm_metrics_match_references(name):
    batch = _batch(LAYOUTS["p4k3"], seed=3)
    m = make(name)
    m.update_state(*batch)
    _check(m, ref_value(name, [batch]))


def test_norm_std_is_stable_for_nearly_constant_norms():
    rng = np.random.default_rng(0)
    m = EmbeddingNormStd()
    for _ in range(20):
        x = rng.normal(size=(64, 8))
        x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype("float32")
        m.update_state(np.zeros(64), x)
    assert _result(m) < 1e-6  # unit norms: 0, not float32 cancellation noise
    big = EmbeddingNormStd()
    norms = []
    for _ in range(5):
        x = (1000.0 + rng.normal(size=(32, 1))).astype("float32")
        big.update_state(np.zeros(32), x)
        norms.append(np.abs(x[:, 0].astype(np.float64)))
    assert _result(big) == pytest.approx(np.concatenate(norms).std(), rel=1e-3)


@settings(max_examples=5, deadline=None)
@given(
    labels=st.lists(st.integers(0, 3), min_size=1, max_size=8),
    seed=st.integers(0, 10_000),
    mining=st.sampled_from(MINING),
)
def test_random_batches_match_references(labels, seed, mining):
    batch = _batch(np.array(labels), seed)
    for name in NAMES:
        m = make(name, mining=mining, margin=0.5)
        m.update_state(*batch)
        _check(m, ref_value(name, [batch], mining=mining, margin=0.5))


# ---------------------------------------------------------------- degenerate batches
@pytest.mark.parametrize("case", sorted(DEGENERATE))
@pytest.mark.parametrize("mining", MINING)
def test_degenerate_batches_give_zero_and_add_nothing(case, mining):
    labels = DEGENERATE[case]
    x = np.random.default_rng(0).normal(size=(len(labels), 5)).astype("float32")
    good = _batch(LAYOUTS["p4k3"], seed=1)
    for name in ("active", "positive", "negative", "gap"):
        alone = make(name, mining=mining)
        alone.update_state(labels, x)
        expected_alone = ref_value(name, [(labels, x)], mining=mining)
        _check(alone, expected_alone)
        if name in ("active", "gap"):  # no valid triplet, and never both kinds of pair
            assert expected_alone == 0.0
        mixed = make(name, mining=mining)
        mixed.update_state(*good)
        mixed.update_state(labels, x)
        _check(mixed, ref_value(name, [good, (labels, x)], mining=mining))


def test_fresh_metric_results_are_zero():
    for name in NAMES:
        assert _result(make(name)) == 0.0


def test_constant_embeddings_are_finite():
    labels = LAYOUTS["p4k3"]
    x = np.ones((len(labels), 4), "float32")
    for metric in METRICS:
        for name in ("positive", "negative", "gap"):
            m = make(name, metric)
            m.update_state(labels, x)
            _check(m, 0.0)
        m = ActiveTripletFraction(margin=1.0, mining="hard", metric=metric)
        m.update_state(labels, x)
        _check(m, 1.0)


# ---------------------------------------------------------------- accumulation and reset
@pytest.mark.parametrize("name", NAMES)
def test_accumulates_over_batches_and_resets(name):
    batches = [_batch(LAYOUTS[layout], seed) for seed, layout in enumerate(sorted(LAYOUTS))]
    batches.append(_batch(np.array([0, 0, 1]), seed=9))  # a small batch weighs less
    m = make(name, mining="semi-hard")
    for batch in batches:
        m.update_state(*batch)
    _check(m, ref_value(name, batches, mining="semi-hard"))
    m.reset_state()
    assert _result(m) == 0.0
    m.update_state(*batches[-1])
    _check(m, ref_value(name, batches[-1:], mining="semi-hard"))


# ---------------------------------------------------------------- label shapes and input checks
@pytest.mark.parametrize("name", NAMES)
def test_labels_as_column_or_float_are_accepted(name):
    labels, x = _batch(LAYOUTS["uneven_with_singletons"], seed=4)
    expected = ref_value(name, [(labels, x)])
    for y in (labels, labels.reshape(-1, 1), labels.astype("float32").reshape(-1, 1), labels.astype("int32")):
        m = make(name)
        m.update_state(y, x)
        _check(m, expected)


def test_bad_inputs_raise():
    x = np.zeros((4, 2), "float32")
    with pytest.raises(ValueError, match="sample_weight"):
        DistanceGap().update_state(np.arange(4), x, sample_weight=np.ones(4))
    with pytest.raises(ValueError, match="mining"):
        ActiveTripletFraction(mining="hardest")
    with pytest.raises(ValueError, match="Unknown metric"):
        MeanPositiveDistance(metric="hamming")
    with pytest.raises(ValueError, match="y_pred"):
        EmbeddingNormMean().update_state(np.arange(4), np.zeros((4, 2, 2), "float32"))
    with pytest.raises(ValueError, match="y_true"):
        MeanNegativeDistance().update_state(np.zeros((4, 2)), x)


# ---------------------------------------------------------------- serialisation
def test_config_round_trip():
    metrics = [
        ActiveTripletFraction(margin=0.2, mining="hard", metric="angular", name="atf"),
        DistanceGap(metric="cosine"),
        MeanPositiveDistance(metric="manhattan"),
        MeanNegativeDistance(metric="squared-L2"),
        EmbeddingNormMean(name="norms"),
        EmbeddingNormStd(),
    ]
    for m in metrics:
        restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(m))
        assert type(restored) is type(m)
        assert restored.get_config() == m.get_config()
    assert metrics[0].get_config()["metric"] == "cosine"
    assert metrics[0].get_config()["name"] == "atf"


def _embedding_model(d_in=6, d_out=3):
    return keras.Sequential(
        [keras.Input((d_in,)), keras.layers.Dense(d_out, kernel_initializer=keras.initializers.GlorotUniform(0))]
    )


def _all_metrics():
    return [
        ActiveTripletFraction(margin=0.5, mining="hard"),
        DistanceGap(),
        MeanPositiveDistance(),
        MeanNegativeDistance(),
        EmbeddingNormMean(),
        EmbeddingNormStd(),
    ]


KEYS = {
    "active_triplet_fraction": ("active", {"margin": 0.5, "mining": "hard"}),
    "distance_gap": ("gap", {}),
    "mean_positive_distance": ("positive", {}),
    "mean_negative_distance": ("negative", {}),
    "embedding_norm_mean": ("norm_mean", {}),
    "embedding_norm_std": ("norm_std", {}),
}


def test_fit_logs_epoch_values_matching_references():
    from dmlkeras.losses import TripletLoss

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6)).astype("float32")
    y = rng.integers(0, 4, 40)
    model = _embedding_model()
    # A zero learning rate keeps the weights fixed, so the epoch values can be
    # recomputed from model.predict on the same batches.
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss=TripletLoss(margin=0.5), metrics=_all_metrics())
    history = model.fit(x, y.reshape(-1, 1).astype("float32"), batch_size=16, epochs=2, shuffle=False, verbose=0)
    embeddings = model.predict(x, verbose=0)
    batches = [(y[i : i + 16], embeddings[i : i + 16]) for i in range(0, 40, 16)]
    for key, (name, kwargs) in KEYS.items():
        values = history.history[key]
        assert len(values) == 2
        expected = ref_value(name, batches, **kwargs)
        # Same value both epochs: the state is reset between them.
        assert values == pytest.approx([expected, expected], rel=1e-4, abs=1e-5), key


def test_compiled_model_saves_and_loads_without_custom_objects(tmp_path):
    from dmlkeras.losses import TripletLoss

    rng = np.random.default_rng(1)
    x = rng.normal(size=(24, 6)).astype("float32")
    y = np.repeat(np.arange(4), 6)
    model = _embedding_model()
    model.compile(optimizer="adam", loss=TripletLoss(margin=0.5), metrics=_all_metrics())
    model.optimizer.build(model.trainable_variables)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    before = model.evaluate(x, y, batch_size=12, verbose=0, return_dict=True)
    after = loaded.evaluate(x, y, batch_size=12, verbose=0, return_dict=True)
    assert set(KEYS) <= set(after)
    for key in KEYS:
        assert after[key] == pytest.approx(before[key], rel=1e-5, abs=1e-6), key
