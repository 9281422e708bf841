"""N-pairs, lifted structure, quadruplet, multi-similarity, circle and
supervised contrastive losses against plain loop-based NumPy references,
degenerate batches, bad input and serialisation (the golden values of the
reference libraries are in test_golden_losses_family.py)."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmlkeras.losses.lifted import LiftedStructureLoss, lifted_structure_loss
from dmlkeras.losses.npairs import NPairsLoss, NPairsTupleLoss, npairs_loss
from dmlkeras.losses.quadruplet import QuadrupletLoss, QuadrupletMarginLoss
from dmlkeras.losses.similarity import (
    CircleLoss,
    MultiSimilarityLoss,
    SupervisedContrastiveLoss,
    circle_loss,
    multi_similarity_loss,
    supervised_contrastive_loss,
)
from tests.backend_utils import to_numpy, value_and_grad

# On JAX every new shape recompiles each op of an eager call; one jitted
# function per loss configuration (cached) keeps this file fast there, and
# checks on the way that every loss traces under jit, as in model.fit.
_JITTED: dict = {}


def _jitted(loss, grad: bool, cast: str | None = None):
    import jax

    key = (type(loss).__name__, json.dumps(loss.get_config(), sort_keys=True, default=str), grad, cast)
    if key not in _JITTED:

        def fn(labels, x):
            return loss(labels, x if cast is None else keras.ops.cast(x, cast))

        _JITTED[key] = jax.jit(jax.value_and_grad(fn, argnums=1) if grad else fn)
    return _JITTED[key]


def _value(loss, labels, x) -> float:
    if keras.backend.backend() == "jax":
        return float(_jitted(loss, False)(np.asarray(labels), np.asarray(x)))
    return float(to_numpy(loss(labels, x)))


def _loss_value_and_grad(loss, labels, x, cast: str | None = None):
    """Value and gradient (w.r.t. the embeddings) of ``loss(labels, x)``, ``x`` cast first if asked."""
    if keras.backend.backend() == "jax":
        value, grad = _jitted(loss, True, cast)(np.asarray(labels), np.asarray(x))
        return np.asarray(value), np.asarray(grad)
    return value_and_grad(lambda v: loss(labels, v if cast is None else keras.ops.cast(v, cast)), x)

# ---------------------------------------------------------------------------
# Loop-based references (float64, straight from the papers / libraries)
# ---------------------------------------------------------------------------


def _log1p_sum_exp(values) -> float:
    """log(1 + sum(exp(values))), stable."""
    return float(np.logaddexp.reduce(np.concatenate([[0.0], np.asarray(values, np.float64)])))


def _logsumexp(values) -> float:
    return float(np.logaddexp.reduce(np.asarray(values, np.float64)))


def _euclidean(u, v) -> float:
    return float(np.sqrt(np.sum((np.float64(u) - np.float64(v)) ** 2)))


def _cosine(u, v) -> float:
    u = np.float64(u)
    v = np.float64(v)
    return float(np.dot(u, v) / (max(np.linalg.norm(u), 1e-6) * max(np.linalg.norm(v), 1e-6)))


def ref_npairs_in_batch(x, labels, l2_reg=0.0) -> float:
    n = len(labels)
    losses = []
    for a in range(n):
        for p in range(n):
            if p == a or labels[p] != labels[a]:
                continue
            s_ap = float(np.dot(np.float64(x[a]), x[p]))
            diffs = [float(np.dot(np.float64(x[a]), x[k])) - s_ap for k in range(n) if labels[k] != labels[a]]
            losses.append(_log1p_sum_exp(diffs))
    loss = float(np.mean(losses)) if losses else 0.0
    penalty = np.mean([np.sum(np.float64(row) ** 2) for row in x])
    return loss + l2_reg * 0.5 * penalty


def ref_npairs_tuple(labels, anchors, positives, l2_reg=0.0) -> float:
    n = len(labels)
    total = 0.0
    for i in range(n):
        logits = [float(np.dot(np.float64(anchors[i]), positives[j])) for j in range(n)]
        normaliser = _logsumexp(logits)
        same = [j for j in range(n) if labels[j] == labels[i]]
        for j in same:
            total += -(logits[j] - normaliser) / len(same)
    penalty = np.mean(np.sum(np.float64(anchors) ** 2, 1)) + np.mean(np.sum(np.float64(positives) ** 2, 1))
    return total / n + l2_reg * 0.25 * penalty


def ref_lifted(x, labels, margin) -> float:
    n = len(labels)
    total, count = 0.0, 0
    for i in range(n):
        for j in range(i + 1, n):
            if labels[i] != labels[j]:
                continue
            count += 1
            terms = [margin - _euclidean(x[i], x[k]) for k in range(n) if labels[k] != labels[i]]
            terms += [margin - _euclidean(x[j], x[k]) for k in range(n) if labels[k] != labels[j]]
            if not terms:
                continue
            j_ij = _logsumexp(terms) + _euclidean(x[i], x[j])
            total += max(j_ij, 0.0) ** 2
    return total / (2 * count) if count else 0.0


def ref_quadruplet(x, labels, margin_pos, margin_neg) -> float:
    n = len(labels)
    first, second = [], []
    for a in range(n):
        positives = [_euclidean(x[a], x[p]) for p in range(n) if p != a and labels[p] == labels[a]]
        negatives = [_euclidean(x[a], x[k]) for k in range(n) if labels[k] != labels[a]]
        pairs = [
            _euclidean(x[l], x[k])
            for l in range(n)
            for k in range(n)
            if labels[l] != labels[k] and labels[l] != labels[a] and labels[k] != labels[a]
        ]
        if positives and negatives:
            first.append(max(max(positives) - min(negatives) + margin_pos, 0.0))
        if positives and pairs:
            second.append(max(max(positives) - min(pairs) + margin_neg, 0.0))
    return (np.mean(first) if first else 0.0) + (np.mean(second) if second else 0.0)


def ref_quadruplet_margin(q, margin_pos, margin_neg) -> float:
    losses = []
    for a, p, n1, n2 in q:
        d_ap = _euclidean(a, p)
        triplet_term = max(d_ap - _euclidean(a, n1) + margin_pos, 0.0)
        pair_term = max(d_ap - _euclidean(n1, n2) + margin_neg, 0.0)
        losses.append(triplet_term + pair_term)
    return float(np.mean(losses))


def ref_multi_similarity(x, labels, alpha, beta, base, epsilon) -> float:
    n = len(labels)
    total = 0.0
    for a in range(n):
        pos = [_cosine(x[a], x[p]) for p in range(n) if p != a and labels[p] == labels[a]]
        neg = [_cosine(x[a], x[k]) for k in range(n) if labels[k] != labels[a]]
        if not pos or not neg:
            continue
        mined_pos = [s for s in pos if s < max(neg) + epsilon]
        mined_neg = [s for s in neg if s > min(pos) - epsilon]
        if not mined_pos or not mined_neg:
            continue
        total += _log1p_sum_exp([-alpha * (s - base) for s in mined_pos]) / alpha
        total += _log1p_sum_exp([beta * (s - base) for s in mined_neg]) / beta
    return total / n


def _circle_logits(x, labels, a, margin, gamma):
    n = len(labels)
    z_p, z_n = [], []
    for j in range(n):
        s = _cosine(x[a], x[j])
        if j != a and labels[j] == labels[a]:
            z_p.append(-gamma * max(1 + margin - s, 0.0) * (s - (1 - margin)))
        elif labels[j] != labels[a]:
            z_n.append(gamma * max(s + margin, 0.0) * (s - margin))
    return z_p, z_n


def ref_circle_paper(x, labels, margin, gamma) -> float:
    losses = []
    for a in range(len(labels)):
        z_p, z_n = _circle_logits(x, labels, a, margin, gamma)
        if z_p and z_n:
            losses.append(float(np.logaddexp(0.0, _logsumexp(z_p) + _logsumexp(z_n))))
    return float(np.mean(losses)) if losses else 0.0


def ref_circle_tfsim(x, labels, margin, gamma) -> float:
    total = 0.0
    for a in range(len(labels)):
        z_p, z_n = _circle_logits(x, labels, a, margin, gamma)
        if z_p and z_n:
            total += _log1p_sum_exp(z_p) + _log1p_sum_exp(z_n)
    return total / len(labels)


def ref_supcon(x, labels, temperature) -> float:
    n = len(labels)
    losses = []
    for i in range(n):
        positives = [p for p in range(n) if p != i and labels[p] == labels[i]]
        if not positives:
            continue
        logits = {j: _cosine(x[i], x[j]) / temperature for j in range(n) if j != i}
        normaliser = _logsumexp(list(logits.values()))
        losses.append(-np.mean([logits[p] - normaliser for p in positives]))
    return float(np.mean(losses)) if losses else 0.0


# ---------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------

LAYOUTS = {
    "p4k3": np.repeat(np.arange(4), 3),
    "uneven_with_singletons": np.array([0, 0, 0, 0, 1, 1, 2, 3, 3, 4, 5, 5]),
    "two_classes": np.array([0, 1] * 6),
    "p3k2": np.repeat(np.arange(3), 2),
}


def _batch(layout, seed, d=5, scale=1.0):
    rng = np.random.default_rng(seed)
    labels = rng.permutation(LAYOUTS[layout])
    return labels, (scale * rng.normal(size=(len(labels), d))).astype("float32")


def _references(labels, x):
    """(loss, reference value, relative tolerance) for every in-batch loss."""
    return [
        (NPairsLoss(), ref_npairs_in_batch(x, labels), 1e-5),
        (NPairsLoss(l2_reg=0.01), ref_npairs_in_batch(x, labels, 0.01), 1e-5),
        (LiftedStructureLoss(margin=1.0), ref_lifted(x, labels, 1.0), 1e-5),
        (LiftedStructureLoss(margin=0.3), ref_lifted(x, labels, 0.3), 1e-5),
        (QuadrupletLoss(1.0, 0.5), ref_quadruplet(x, labels, 1.0, 0.5), 1e-5),
        (QuadrupletLoss(0.4, 0.1), ref_quadruplet(x, labels, 0.4, 0.1), 1e-5),
        (MultiSimilarityLoss(), ref_multi_similarity(x, labels, 2.0, 50.0, 0.5, 0.1), 1e-5),
        (MultiSimilarityLoss(1.0, 20.0, 0.3, 0.4), ref_multi_similarity(x, labels, 1.0, 20.0, 0.3, 0.4), 1e-5),
        (CircleLoss(0.4, 80.0), ref_circle_paper(x, labels, 0.4, 80.0), 1e-5),
        (CircleLoss(0.4, 80.0, "tensorflow-similarity"), ref_circle_tfsim(x, labels, 0.4, 80.0), 1e-5),
        # gamma=256 amplifies float32 rounding of the cosines ~256x (see the CircleLoss notes).
        (CircleLoss(), ref_circle_paper(x, labels, 0.25, 256.0), 1e-4),
        (CircleLoss(variant="tfsim"), ref_circle_tfsim(x, labels, 0.25, 256.0), 1e-4),
        (SupervisedContrastiveLoss(), ref_supcon(x, labels, 0.1), 1e-5),
        (SupervisedContrastiveLoss(0.5), ref_supcon(x, labels, 0.5), 1e-5),
    ]


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("seed", [0, 1])
def test_in_batch_losses_match_loop_references(layout, seed):
    labels, x = _batch(layout, seed)
    for loss, expected, rtol in _references(labels, x):
        assert _value(loss, labels, x) == pytest.approx(expected, rel=rtol, abs=1e-6), loss.get_config()


@settings(max_examples=10, deadline=None)
@given(
    size=st.sampled_from([6, 12]),
    classes=st.integers(1, 5),
    seed=st.integers(0, 10_000),
    scale=st.sampled_from([0.3, 1.0, 3.0]),
)
def test_in_batch_losses_random_layouts(size, classes, seed, scale):
    # The batch shapes of LAYOUTS only (nothing new to compile on JAX); any class layout.
    labels = np.random.default_rng(seed + 1).integers(0, classes, size)
    x = (scale * np.random.default_rng(seed).normal(size=(len(labels), 5))).astype("float32")
    for loss, expected, rtol in _references(labels, x):
        assert _value(loss, labels, x) == pytest.approx(expected, rel=rtol, abs=1e-5), loss.get_config()


def _call(fn, *args) -> float:
    """``fn(*args)`` as a float (jitted on JAX, see ``_jitted``)."""
    if keras.backend.backend() == "jax":
        import jax

        return float(jax.jit(fn)(*args))
    return float(to_numpy(fn(*args)))


def test_functional_forms_equal_the_classes():
    labels, x = _batch("p4k3", 2)
    pairs = [
        (lambda y, e: lifted_structure_loss(y, e, 0.7), LiftedStructureLoss(0.7)),
        (lambda y, e: multi_similarity_loss(y, e, 1.0, 30.0, 0.4, 0.2), MultiSimilarityLoss(1.0, 30.0, 0.4, 0.2)),
        (lambda y, e: circle_loss(y, e, 0.3, 64.0, "tfsim"), CircleLoss(0.3, 64.0, "tfsim")),
        (lambda y, e: supervised_contrastive_loss(y, e, 0.2), SupervisedContrastiveLoss(0.2)),
    ]
    for function, loss in pairs:
        assert _call(function, labels, x) == pytest.approx(_value(loss, labels, x), rel=1e-6), loss.get_config()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("repeat_classes", [False, True])
def test_npairs_tuple_matches_reference(seed, repeat_classes):
    rng = np.random.default_rng(seed)
    labels = np.array([3, 1, 1, 0, 2, 2, 2]) if repeat_classes else rng.permutation(7)
    anchors = rng.normal(size=(7, 4)).astype("float32")
    positives = rng.normal(size=(7, 4)).astype("float32")
    for l2_reg in (0.0, 0.002):
        expected = ref_npairs_tuple(labels, anchors, positives, l2_reg)
        assert float(npairs_loss(labels, anchors, positives, l2_reg)) == pytest.approx(expected, rel=1e-5)
        stacked = np.stack([anchors, positives], axis=1)
        assert _value(NPairsTupleLoss(l2_reg), labels, stacked) == pytest.approx(expected, rel=1e-5)


def test_npairs_tuple_with_one_row_per_class_is_sohns_formula():
    rng = np.random.default_rng(5)
    anchors, positives = rng.normal(size=(2, 6, 3)).astype("float32")
    losses = []
    for i in range(6):
        s_ii = np.dot(anchors[i], positives[i])
        losses.append(_log1p_sum_exp([np.dot(anchors[i], positives[j]) - s_ii for j in range(6) if j != i]))
    expected = np.mean(losses)
    assert float(npairs_loss(np.arange(6), anchors, positives)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("margins", [(1.0, 0.5), (0.3, 0.1)])
def test_quadruplet_margin_matches_reference(margins):
    q = np.random.default_rng(3).normal(size=(9, 4, 3)).astype("float32")
    assert _value(QuadrupletMarginLoss(*margins), np.zeros(9), q) == pytest.approx(
        ref_quadruplet_margin(q, *margins), rel=1e-5
    )


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_circle_paper_variant_equals_keras_circle(layout):
    labels, x = _batch(layout, 4)
    normalised = x / np.linalg.norm(x, axis=1, keepdims=True)
    for margin, gamma in ((0.25, 256.0), (0.4, 80.0)):
        expected = float(to_numpy(keras.losses.Circle(gamma=gamma, margin=margin)(labels, normalised)))
        assert _value(CircleLoss(margin, gamma), labels, x) == pytest.approx(expected, rel=1e-5)


# ---------------------------------------------------------------------------
# Degenerate batches, half precision, gradients
# ---------------------------------------------------------------------------


def _all_losses():
    return [
        NPairsLoss(),
        LiftedStructureLoss(),
        QuadrupletLoss(),
        MultiSimilarityLoss(),
        CircleLoss(),
        CircleLoss(variant="tfsim"),
        SupervisedContrastiveLoss(),
    ]


DEGENERATE = {
    "one_class": (np.zeros(6, int), None),
    "all_distinct": (np.arange(6), None),
    "identical_embeddings": (np.array([0, 0, 1, 1, 2, 2]), np.ones((6, 5), "float32")),
    "zero_embeddings": (np.array([0, 0, 1, 1, 2, 2]), np.zeros((6, 5), "float32")),
    "batch_of_1": (np.array([3]), None),
    "batch_of_2_same": (np.array([1, 1]), None),
    "batch_of_2_different": (np.array([0, 1]), None),
    "huge_norms": (np.array([0, 0, 1, 1, 2, 2]), np.random.default_rng(0).normal(size=(6, 5)).astype("float32") * 1e3),
}
# Cases where no pair contributes: (case, loss class name) -> 0 with zero gradient.
NOTHING_CONTRIBUTES = {
    "all_distinct": None,
    "batch_of_1": None,
    "batch_of_2_different": None,
    "one_class": {"NPairsLoss", "LiftedStructureLoss", "QuadrupletLoss", "MultiSimilarityLoss", "CircleLoss"},
    "batch_of_2_same": {"NPairsLoss", "LiftedStructureLoss", "QuadrupletLoss", "MultiSimilarityLoss", "CircleLoss"},
}


@pytest.mark.parametrize("case", sorted(DEGENERATE))
def test_degenerate_batches_are_finite(case):
    labels, x = DEGENERATE[case]
    if x is None:
        x = np.random.default_rng(1).normal(size=(len(labels), 5)).astype("float32")
    for loss in _all_losses():
        value, grad = _loss_value_and_grad(loss, labels, x)
        assert np.isfinite(value), (case, loss.get_config())
        assert np.all(np.isfinite(grad)), (case, loss.get_config())
        if case in NOTHING_CONTRIBUTES:
            names = NOTHING_CONTRIBUTES[case]
            if names is None or type(loss).__name__ in names:
                assert value == 0.0 and np.all(grad == 0.0), (case, loss.get_config())


def test_degenerate_tuple_losses_are_finite():
    same = np.ones((3, 4, 2), "float32")
    value, grad = _loss_value_and_grad(QuadrupletMarginLoss(), np.zeros(3), same)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    value, grad = _loss_value_and_grad(NPairsTupleLoss(), np.zeros(1), np.ones((1, 2, 3), "float32"))
    assert value == pytest.approx(0.0, abs=1e-6) and np.all(np.isfinite(grad))


def test_half_precision_inputs_compute_in_float32():
    labels, x = _batch("p3k2", 0)
    half = x.astype("float16")
    for loss in _all_losses():
        value, grad = _loss_value_and_grad(loss, labels, x, cast="float16")
        assert value.dtype == np.float32 and np.isfinite(value)
        assert np.all(np.isfinite(grad))
        assert value == pytest.approx(_value(loss, labels, half.astype("float32")), rel=1e-5, abs=1e-6)
    value = to_numpy(SupervisedContrastiveLoss()(labels, keras.ops.cast(x, "float16")))  # eager, too
    assert value.dtype == np.float32


def test_gradient_step_lowers_each_loss():
    labels, x = _batch("p3k2", 3)
    for loss in _all_losses():
        before, grad = _loss_value_and_grad(loss, labels, x)
        step = 1e-3 / max(np.abs(grad).max(), 1e-12)
        after = _value(loss, labels, x - step * grad)
        assert after < before, loss.get_config()


# ---------------------------------------------------------------------------
# Bad input, serialisation
# ---------------------------------------------------------------------------


def test_bad_input_raises_value_error():
    for loss in _all_losses():
        with pytest.raises(ValueError, match=r"\(batch_size, embedding_dim\)"):
            loss(np.zeros(4), np.zeros((4, 2, 3)))
        with pytest.raises(ValueError, match="3 labels but y_pred has 4 embeddings"):
            loss(np.zeros(3), np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"\(batch_size, 4, embedding_dim\)"):
        QuadrupletMarginLoss()(np.zeros(4), np.zeros((4, 3, 2)))
    with pytest.raises(ValueError, match=r"\(batch_size, 2, embedding_dim\)"):
        NPairsTupleLoss()(np.zeros(4), np.zeros((4, 3, 2)))
    with pytest.raises(ValueError, match=r"\(batch_size, embedding_dim\)"):
        npairs_loss(np.zeros(4), np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"labels must have shape \(batch_size,\)"):
        npairs_loss(np.zeros(3), np.zeros((4, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="mining must be one of"):
        QuadrupletLoss(mining="all")
    with pytest.raises(ValueError, match="variant must be one of"):
        CircleLoss(variant="pml")
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        SupervisedContrastiveLoss(temperature=0.0)
    with pytest.raises(ValueError, match="Unknown metric"):
        LiftedStructureLoss(metric="hamming")


IN_BATCH = [
    NPairsLoss(l2_reg=0.01),
    LiftedStructureLoss(margin=0.5),
    QuadrupletLoss(margin_pos=0.8, margin_neg=0.3, metric="squared_euclidean"),
    MultiSimilarityLoss(alpha=1.0, beta=20.0, base=0.4, epsilon=0.2),
    CircleLoss(margin=0.3, gamma=64.0, variant="tensorflow-similarity"),
    SupervisedContrastiveLoss(temperature=0.2),
]


@pytest.mark.parametrize("loss", IN_BATCH, ids=lambda loss: type(loss).__name__)
def test_in_batch_loss_saves_and_loads_without_custom_objects(loss, tmp_path):
    labels, x = _batch("p4k3", 0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    model.compile(optimizer="sgd", loss=loss)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert type(loaded.loss) is type(loss)
    assert loaded.loss.get_config() == loss.get_config()
    embeddings = loaded.predict(x, verbose=0)
    assert _value(loaded.loss, labels, embeddings) == pytest.approx(_value(loss, labels, embeddings))


@pytest.mark.parametrize(
    "loss, slots",
    [(QuadrupletMarginLoss(margin_pos=0.7, margin_neg=0.2), 4), (NPairsTupleLoss(l2_reg=0.002), 2)],
    ids=lambda v: type(v).__name__,
)
def test_tuple_loss_saves_and_loads(loss, slots, tmp_path):
    model = keras.Sequential([keras.Input((slots, 3)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss=loss)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert type(loaded.loss) is type(loss)
    assert loaded.loss.get_config() == loss.get_config()


def test_a_compiled_model_trains_with_an_in_batch_loss():
    labels, x = _batch("p4k3", 7)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss=MultiSimilarityLoss())
    history = model.fit(x, labels, batch_size=12, epochs=5, verbose=0, shuffle=False)
    assert np.all(np.isfinite(history.history["loss"]))
    assert history.history["loss"][-1] < history.history["loss"][0]
