"""One contract for every registered loss: the same checks, one parametrised test each.

Each entry of ``CONTRACT`` is a registered in-batch loss (``dmlkeras.losses.names()``)
with a float64 loop reference on the query x reference form (tests/references.py).
The checks: value against the reference (square batch and an n != m reference set),
degenerate batches x dtypes finite in value and gradient, NaN / Inf in -> NaN out,
``sample_weight`` 0 = dropping the query and 2 = duplicating it, save / load in a
compiled model without ``custom_objects``, and a short ``fit`` whose loss goes down.

To add a head later: an entry whose ``make`` builds it and whose ``reference`` takes
the same arguments; the checks are written against the protocol, not a class.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from dmlkeras import losses
from tests import references as R
from tests.backend_utils import to_numpy, value_and_grad


def _triplet(mining):
    def reference(q, r, pos, neg, w, loss, **_):
        return R.ref_triplet(R.cross(q, r, "euclidean"), pos, neg, loss.margin, mining, w)

    return reference


def _contrastive(q, r, pos, neg, w, loss, **_):
    return R.ref_batch_contrastive(R.cross(q, r, "euclidean"), pos, neg, loss.pos_margin, loss.neg_margin, w)


def _multi_similarity(q, r, pos, neg, w, loss, **_):
    s = R.cosine_similarities(q, r)
    return R.ref_multi_similarity(s, pos, neg, loss.alpha, loss.beta, loss.base, loss.epsilon, w)


def _circle(q, r, pos, neg, w, loss, **_):
    return R.ref_circle(R.cosine_similarities(q, r), pos, neg, loss.margin, loss.gamma, loss.variant, w)


def _supcon(q, r, pos, neg, w, loss, **_):
    return R.ref_supcon(R.cosine_similarities(q, r), pos, neg, loss.temperature, w)


def _npairs(q, r, pos, neg, w, loss, **_):
    return R.ref_npairs(np.asarray(q, np.float64) @ np.asarray(r, np.float64).T, pos, neg, w)


def _lifted(q, r, pos, neg, w, loss, **_):
    return R.ref_lifted(R.cross(q, r, "euclidean"), pos, neg, loss.margin, w)


def _quadruplet(q, r, pos, neg, w, loss, labels, ref_labels, **_):
    d, d_ref = R.cross(q, r, "euclidean"), R.cross(r, r, "euclidean")
    return R.ref_quadruplet(d, d_ref, labels, ref_labels, pos, neg, loss.margin_pos, loss.margin_neg, w)


REFERENCES = {
    "triplet-semihard": _triplet("semi-hard"),
    "triplet-hard": _triplet("hard"),
    "triplet-all": _triplet("all"),
    "batch-contrastive": _contrastive,
    "multi-similarity": _multi_similarity,
    "circle": _circle,
    "supcon": _supcon,
    "n-pairs": _npairs,
    "lifted-structure": _lifted,
    "quadruplet": _quadruplet,
}
# Losses for which a weight of 0 / 2 is *not* dropping / duplicating the query: the
# lifted loss's second end takes its negatives among the queries, so dropping a query
# also changes other pairs' soft maxima (the weights change only the query's own pairs).
NOT_DUPLICATION = {"lifted-structure"}
# Settings that make every term of the loss active on the small random batches below.
SETTINGS = {"circle": {"gamma": 32.0}, "multi-similarity": {"epsilon": 0.5}}


class Entry:
    def __init__(self, name):
        self.name = name
        self.reference = REFERENCES[name]

    def make(self, **overrides):
        return losses.get(self.name, **{**SETTINGS.get(self.name, {}), **overrides})

    def __repr__(self):
        return self.name


CONTRACT = [Entry(name) for name in losses.names()]


def test_every_registered_loss_is_in_the_contract():
    assert sorted(REFERENCES) == sorted(losses.names())


def _value(loss, labels, x, **kwargs) -> float:
    return float(to_numpy(loss(labels, x, **kwargs)))


def _batch(n=12, classes=4, d=5, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % classes)
    return labels, rng.normal(size=(n, d)).astype("float32")


@pytest.mark.parametrize("entry", CONTRACT, ids=repr)
def test_value_matches_the_loop_reference(entry):
    loss = entry.make()
    for seed in range(2):
        labels, x = _batch(seed=seed)
        pos, neg = R.relation(labels)
        expected = entry.reference(x, x, pos, neg, None, loss, labels=labels, ref_labels=labels)
        assert _value(loss, labels, x) == pytest.approx(expected, rel=2e-5, abs=1e-6)


@pytest.mark.parametrize("entry", CONTRACT, ids=repr)
def test_reference_set_with_n_not_m_matches_the_loop_reference(entry):
    loss = entry.make()
    labels, x = _batch(n=7, seed=3)
    ref_labels, ref = _batch(n=10, seed=4)
    self_index = np.array([2, -1, 5, -1, -1, 0, -1])  # three queries are in the reference
    ref[self_index[self_index >= 0]] = x[self_index >= 0]
    ref_labels[self_index[self_index >= 0]] = labels[self_index >= 0]
    pos, neg = R.relation(labels, ref_labels, self_index)
    expected = entry.reference(x, ref, pos, neg, None, loss, labels=labels, ref_labels=ref_labels)
    got = _value(loss, labels, x, ref_labels=ref_labels, ref_embeddings=ref, self_index=self_index)
    assert got == pytest.approx(expected, rel=2e-5, abs=1e-6)


@pytest.mark.parametrize("entry", CONTRACT, ids=repr)
def test_the_batch_as_its_own_reference_is_the_plain_loss(entry):
    loss = entry.make()
    labels, x = _batch(seed=5)
    plain = _value(loss, labels, x)
    explicit = _value(loss, labels, x, ref_labels=labels, ref_embeddings=x, self_index=np.arange(len(labels)))
    assert explicit == pytest.approx(plain, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("entry", CONTRACT, ids=repr)
def test_sample_weights_drop_and_duplicate_queries(entry):
    loss = entry.make()
    labels, x = _batch(seed=6)
    n = len(labels)
    weights = np.ones(n, "float32")
    weights[[1, 4]] = 0.0
    weights[7] = 2.0
    rows = [i for i in range(n) if weights[i] > 0] + [7]  # 1 and 4 dropped, 7 twice (queries only)
    if entry.name not in NOT_DUPLICATION:
        expected = _value(loss, labels[rows], x[rows], ref_labels=labels, ref_embeddings=x, self_index=np.array(rows))
        assert _value(loss, labels, x, sample_weight=weights) == pytest.approx(expected, rel=1e-5, abs=1e-6)
    pos, neg = R.relation(labels)
    reference = entry.reference(x, x, pos, neg, weights, loss, labels=labels, ref_labels=labels)
    assert _value(loss, labels, x, sample_weight=weights) == pytest.approx(reference, rel=2e-5, abs=1e-6)


@pytest.mark.parametrize("entry", CONTRACT, ids=repr)
def test_per_query_values_carry_a_keras_mask(entry):
    loss = entry.make(reduction="none")
    labels, x = _batch(seed=7)
    values = loss(labels, x)
    assert tuple(values.shape) == (len(labels),)
    total = _value(entry.make(reduction="sum"), labels, x)
    assert float(np.sum(to_numpy(values))) == pytest.approx(total, rel=1e-5)


DEGENERATE = {
    "batch_of_1": (np.array([3]), None),
    "one_class": (np.zeros(6, int), None),
    "all_distinct": (np.arange(6), None),
    "identical_embeddings": (np.array([0, 0, 1, 1, 2, 2]), np.ones((6, 5))),
    "zero_embeddings": (np.array([0, 0, 1, 1, 2, 2]), np.zeros((6, 5))),
}


@pytest.mark.parametrize("entry", CONTRACT, ids=repr)
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_degenerate_batches_are_finite(entry, dtype):
    loss = entry.make()
    for case, (labels, x) in DEGENERATE.items():
        if x is None:
            x = np.random.default_rng(1).normal(size=(len(labels), 5))
        x = x.astype("float32")

        def fn(v):
            return loss(labels, keras.ops.cast(v, dtype))

        value, grad = value_and_grad(fn, x)
        assert np.isfinite(value) and np.all(np.isfinite(grad)), (entry, case, dtype)


@pytest.mark.parametrize("entry", CONTRACT, ids=repr)
def test_nan_or_inf_in_gives_nan_out(entry):
    loss = entry.make()
    labels, x = _batch(seed=8)
    for bad in (np.nan, np.inf):
        one_row = x.copy()
        one_row[3] = bad
        assert np.isnan(_value(loss, labels, one_row)), (entry, bad, "one row")
        assert np.isnan(_value(loss, labels, np.full_like(x, bad))), (entry, bad, "all rows")
    reference = x.copy()
    reference[0] = np.nan
    assert np.isnan(_value(loss, labels, x, ref_labels=labels, ref_embeddings=reference))


@pytest.mark.parametrize("entry", CONTRACT, ids=repr)
def test_empty_batch_raises_value_error(entry):
    with pytest.raises(ValueError, match="empty batch"):
        entry.make()(np.zeros((0,), "int32"), np.zeros((0, 4), "float32"))


@pytest.mark.parametrize("entry", CONTRACT, ids=repr)
def test_saves_and_loads_in_a_compiled_model_without_custom_objects(entry, tmp_path):
    loss = entry.make()
    labels, x = _batch(seed=9)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    model.compile(optimizer="sgd", loss=loss)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert type(loaded.loss) is type(loss)
    assert loaded.loss.get_config() == loss.get_config()
    embeddings = loaded.predict(x, verbose=0)
    assert _value(loaded.loss, labels, embeddings) == pytest.approx(_value(loss, labels, embeddings), rel=1e-6)


@pytest.mark.parametrize("entry", CONTRACT, ids=repr)
def test_a_short_fit_lowers_the_loss(entry):
    keras.utils.set_random_seed(0)
    labels, x = _batch(n=24, classes=4, d=6, seed=10)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4)])
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss=entry.make())
    history = model.fit(x, labels, batch_size=24, epochs=8, verbose=0, shuffle=False)
    values = history.history["loss"]
    assert np.all(np.isfinite(values)) and values[-1] < values[0], (entry, values)
