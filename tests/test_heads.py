"""Loss heads (dmlkeras.heads): the loss functions against loop-based NumPy
references, the layers' add_loss and centre update, degenerate input, bad
input, a short fit on separable data and a save/load round trip (the golden
pytorch-metric-learning values are in test_golden_losses_family.py)."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from dmlkeras.heads import (
    ArcFace,
    CenterLoss,
    CosFace,
    ProxyAnchorLoss,
    TripletCenterLoss,
    arcface_loss,
    center_loss,
    center_update,
    cosface_loss,
    proxy_anchor_loss,
    triplet_center_loss,
)
from tests.backend_utils import to_numpy, value_and_grad

# ---------------------------------------------------------------------------
# Loop-based references (float64)
# ---------------------------------------------------------------------------


def _unit(v):
    v = np.asarray(v, np.float64)
    return v / max(np.linalg.norm(v), 1e-6)


def _log1p_sum_exp(values) -> float:
    return float(np.logaddexp.reduce(np.concatenate([[0.0], np.asarray(values, np.float64)])))


def ref_center_loss(x, labels, centers) -> float:
    return float(np.mean([0.5 * np.sum((np.float64(x[i]) - centers[labels[i]]) ** 2) for i in range(len(x))]))


def ref_center_update(x, labels, centers, alpha):
    new = np.array(centers, np.float64)
    for j in range(len(centers)):
        members = [i for i in range(len(x)) if labels[i] == j]
        delta = sum((np.float64(centers[j]) - x[i] for i in members), np.zeros(centers.shape[1]))
        new[j] = centers[j] - alpha * delta / (1 + len(members))
    return new


def ref_triplet_center(x, labels, centers, margin, squared=True) -> float:
    losses = []
    for i in range(len(x)):
        dist = [np.sum((np.float64(x[i]) - c) ** 2) for c in centers]
        if not squared:
            dist = [math.sqrt(v) for v in dist]
        others = [dist[j] for j in range(len(centers)) if j != labels[i]]
        if others:
            losses.append(max(dist[labels[i]] + margin - min(others), 0.0))
    return float(np.mean(losses)) if losses else 0.0


def ref_proxy_anchor(x, labels, proxies, margin, alpha) -> float:
    positive_total, negative_total, present = 0.0, 0.0, 0
    for c in range(len(proxies)):
        sims = [float(np.dot(_unit(x[i]), _unit(proxies[c]))) for i in range(len(x))]
        pos = [-alpha * (s - margin) for i, s in enumerate(sims) if labels[i] == c]
        neg = [alpha * (s + margin) for i, s in enumerate(sims) if labels[i] != c]
        if pos:
            present += 1
            positive_total += _log1p_sum_exp(pos)
        negative_total += _log1p_sum_exp(neg)
    return positive_total / max(present, 1) + negative_total / len(proxies)


def _ref_margin_softmax(x, labels, weights, scale, target) -> float:
    losses = []
    for i in range(len(x)):
        cosines = [float(np.clip(np.dot(_unit(x[i]), _unit(w)), -1.0, 1.0)) for w in weights]
        logits = [scale * c for c in cosines]
        logits[labels[i]] = scale * target(cosines[labels[i]])
        losses.append(float(np.logaddexp.reduce(logits)) - logits[labels[i]])
    return float(np.mean(losses))


def ref_arcface(x, labels, weights, scale, margin) -> float:
    def target(c):
        theta = math.acos(c)
        return math.cos(theta + margin) if theta <= math.pi - margin else c - margin * math.sin(margin)

    return _ref_margin_softmax(x, labels, weights, scale, target)


def ref_cosface(x, labels, weights, scale, margin) -> float:
    return _ref_margin_softmax(x, labels, weights, scale, lambda c: c - margin)


# ---------------------------------------------------------------------------
# Helpers: one jitted function per loss on JAX (eager JAX recompiles per op)
# ---------------------------------------------------------------------------

_JITTED: dict = {}


def _jitted(name, function, grad_argnums):
    import jax

    key = (name, grad_argnums)
    if key not in _JITTED:
        _JITTED[key] = jax.jit(function if grad_argnums is None else jax.value_and_grad(function, grad_argnums))
    return _JITTED[key]


def _call(name, function, *args) -> float:
    if keras.backend.backend() == "jax":
        return float(_jitted(name, function, None)(*args))
    return float(to_numpy(function(*args)))


def _value_and_grads(name, function, embeddings, labels, weights):
    """Value and the gradients w.r.t. the embeddings and the weights."""
    if keras.backend.backend() == "jax":
        value, (g_x, g_w) = _jitted(name, function, (0, 2))(embeddings, labels, weights)
        return np.asarray(value), np.asarray(g_x), np.asarray(g_w)
    value, g_x = value_and_grad(lambda v: function(v, labels, weights), embeddings)
    _, g_w = value_and_grad(lambda w: function(embeddings, labels, w), weights)
    return value, g_x, g_w


FUNCTIONS = {
    "center": lambda x, y, w: center_loss(y, x, w),
    "triplet_center": lambda x, y, w: triplet_center_loss(y, x, w, margin=2.0),
    "triplet_center_euclidean": lambda x, y, w: triplet_center_loss(y, x, w, margin=0.5, distance="euclidean"),
    "proxy_anchor": lambda x, y, w: proxy_anchor_loss(y, x, w, margin=0.1, alpha=32.0),
    "proxy_anchor_2": lambda x, y, w: proxy_anchor_loss(y, x, w, margin=0.2, alpha=8.0),
    "arcface": lambda x, y, w: arcface_loss(y, x, w, scale=64.0, margin=0.5),
    "arcface_2": lambda x, y, w: arcface_loss(y, x, w, scale=16.0, margin=1.2),
    "cosface": lambda x, y, w: cosface_loss(y, x, w, scale=64.0, margin=0.35),
    "cosface_2": lambda x, y, w: cosface_loss(y, x, w, scale=10.0, margin=0.1),
}
REFERENCES = {
    "center": lambda x, y, w: ref_center_loss(x, y, w),
    "triplet_center": lambda x, y, w: ref_triplet_center(x, y, w, 2.0),
    "triplet_center_euclidean": lambda x, y, w: ref_triplet_center(x, y, w, 0.5, squared=False),
    "proxy_anchor": lambda x, y, w: ref_proxy_anchor(x, y, w, 0.1, 32.0),
    "proxy_anchor_2": lambda x, y, w: ref_proxy_anchor(x, y, w, 0.2, 8.0),
    "arcface": lambda x, y, w: ref_arcface(x, y, w, 64.0, 0.5),
    "arcface_2": lambda x, y, w: ref_arcface(x, y, w, 16.0, 1.2),
    "cosface": lambda x, y, w: ref_cosface(x, y, w, 64.0, 0.35),
    "cosface_2": lambda x, y, w: ref_cosface(x, y, w, 10.0, 0.1),
}


def _batch(seed, n=10, d=4, num_classes=5):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n).astype("int32")  # some classes may be absent
    x = rng.normal(size=(n, d)).astype("float32")
    weights = rng.normal(size=(num_classes, d)).astype("float32")
    return x, labels, weights


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_head_functions_match_loop_references(name, seed):
    x, labels, weights = _batch(seed)
    if name.startswith("arcface"):
        weights[labels[0]] = -x[0]  # an anti-aligned target: the monotonic fallback branch
    expected = REFERENCES[name](x, labels, weights)
    assert _call(name, FUNCTIONS[name], x, labels, weights) == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_center_update_matches_reference():
    x, labels, centers = _batch(3)
    for alpha in (0.5, 1.0):
        got = to_numpy(center_update(labels, x, centers, alpha))
        np.testing.assert_allclose(got, ref_center_update(x, labels, centers, alpha), rtol=1e-5, atol=1e-6)


def test_arcface_margin_zero_and_cosface_margin_zero_are_normalised_softmax():
    x, labels, weights = _batch(4)
    plain = ref_cosface(x, labels, weights, 8.0, 0.0)
    arc = _call("arcface_m0", lambda e, y, w: arcface_loss(y, e, w, 8.0, 0.0), x, labels, weights)
    cos = _call("cosface_m0", lambda e, y, w: cosface_loss(y, e, w, 8.0, 0.0), x, labels, weights)
    assert arc == pytest.approx(plain, rel=1e-5) and cos == pytest.approx(plain, rel=1e-5)


# ---------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------

HEADS = {
    "center": lambda: CenterLoss(5, alpha=0.5, update="gradient"),
    "triplet_center": lambda: TripletCenterLoss(5, margin=2.0),
    "proxy_anchor": lambda: ProxyAnchorLoss(5, margin=0.1, alpha=32.0),
    "arcface": lambda: ArcFace(5, scale=64.0, margin=0.5),
    "cosface": lambda: CosFace(5, scale=64.0, margin=0.35),
}
WEIGHT_NAMES = {
    "center": "centers",
    "triplet_center": "centers",
    "proxy_anchor": "proxies",
    "arcface": "weights",
    "cosface": "weights",
}


@pytest.mark.parametrize("name", sorted(HEADS))
def test_head_adds_its_function_loss_and_returns_the_embeddings(name):
    x, labels, weights = _batch(5)
    head = HEADS[name]()
    out = head([labels[:, None], x])  # (n, 1) labels are accepted
    np.testing.assert_array_equal(to_numpy(out), x)
    assert head.weights[0].shape == (5, 4)
    assert head.weights[0].path.split("/")[-1] == WEIGHT_NAMES[name]
    head.set_weights([weights])
    head([labels, x])
    assert len(head.losses) == 1
    assert float(to_numpy(head.losses[0])) == pytest.approx(REFERENCES[name](x, labels, weights), rel=1e-5)


def test_loss_weight_scales_the_added_loss():
    x, labels, weights = _batch(6)
    head = ProxyAnchorLoss(5, loss_weight=0.25)
    head([labels, x])
    head.set_weights([weights])
    head([labels, x])
    expected = 0.25 * ref_proxy_anchor(x, labels, weights, 0.1, 32.0)
    assert float(to_numpy(head.losses[0])) == pytest.approx(expected, rel=1e-5)


def test_center_loss_moving_update_only_in_training():
    x, labels, centers = _batch(7)
    head = CenterLoss(5, alpha=0.5)
    head([labels, x])
    assert not head.centers.trainable
    head.set_weights([centers])
    head([labels, x], training=False)
    np.testing.assert_array_equal(to_numpy(head.centers), centers)
    head([labels, x], training=True)
    # The loss uses the centres before the update; the update is the paper's rule.
    assert float(to_numpy(head.losses[0])) == pytest.approx(ref_center_loss(x, labels, centers), rel=1e-5)
    np.testing.assert_allclose(to_numpy(head.centers), ref_center_update(x, labels, centers, 0.5), rtol=1e-5, atol=1e-6)
    trainable = CenterLoss(5, update="gradient")
    trainable([labels, x], training=True)
    assert trainable.centers.trainable and len(trainable.trainable_weights) == 1


# ---------------------------------------------------------------------------
# Degenerate and bad input
# ---------------------------------------------------------------------------


def _degenerate_cases():
    rng = np.random.default_rng(8)
    weights = rng.normal(size=(3, 4)).astype("float32")
    random = rng.normal(size=(6, 4)).astype("float32")
    aligned = np.concatenate([weights, -weights]).astype("float32")  # cos = +1 and -1 exactly-ish
    return {
        "one_class": (random, np.zeros(6, "int32"), weights),
        "identical_embeddings": (np.ones((6, 4), "float32"), np.array([0, 0, 1, 1, 2, 2], "int32"), weights),
        "zero_embeddings": (np.zeros((6, 4), "float32"), np.array([0, 0, 1, 1, 2, 2], "int32"), weights),
        "aligned_and_opposite": (aligned, np.array([0, 1, 2, 0, 1, 2], "int32"), weights),
        "equal_weights": (random, np.array([0, 0, 1, 1, 2, 2], "int32"), np.ones((3, 4), "float32")),
        "huge_norms": (random * 1e3, np.array([0, 0, 1, 1, 2, 2], "int32"), weights * 1e3),
        "batch_of_1": (random[:1], np.array([2], "int32"), weights),
    }


@pytest.mark.parametrize("case", sorted(_degenerate_cases()))
def test_degenerate_input_gives_finite_loss_and_gradients(case):
    x, labels, weights = _degenerate_cases()[case]
    for name in ("center", "triplet_center", "triplet_center_euclidean", "proxy_anchor", "arcface", "cosface"):
        value, g_x, g_w = _value_and_grads(name, FUNCTIONS[name], x, labels, weights)
        assert np.isfinite(value), (case, name)
        assert np.all(np.isfinite(g_x)) and np.all(np.isfinite(g_w)), (case, name)


def test_single_class_triplet_center_is_zero():
    x, _, _ = _batch(9)
    value, g_x, g_w = _value_and_grads(
        "triplet_center", FUNCTIONS["triplet_center"], x, np.zeros(10, "int32"), np.ones((1, 4), "float32")
    )
    assert value == 0.0 and np.all(g_x == 0.0) and np.all(g_w == 0.0)


def test_half_precision_embeddings_are_computed_in_float32():
    x, labels, weights = _batch(10)
    for name in ("proxy_anchor", "arcface", "triplet_center"):
        half = FUNCTIONS[name](keras.ops.cast(x, "float16"), labels, weights)
        assert keras.backend.standardize_dtype(half.dtype) == "float32"
        rounded = x.astype("float16").astype("float32")
        assert float(to_numpy(half)) == pytest.approx(REFERENCES[name](rounded, labels, weights), rel=1e-5)
    head = ArcFace(5)
    head([labels, keras.ops.cast(x, "float16")])
    assert np.isfinite(float(to_numpy(head.losses[0])))


def test_bad_input_raises_value_error():
    x, labels, weights = _batch(11)
    for function in (center_loss, triplet_center_loss, proxy_anchor_loss, arcface_loss, cosface_loss):
        with pytest.raises(ValueError, match=r"\(num_classes, embedding_dim\) = \(num_classes, 4\)"):
            function(labels, x, weights[:, :3])
        with pytest.raises(ValueError, match=r"\(batch_size, embedding_dim\)"):
            function(labels, x[:, :, None], weights)
        with pytest.raises(ValueError, match=r"labels must be integer class ids of shape \(batch_size,\) = \(10,\)"):
            function(labels[:4], x, weights)
        # The first version's order (embeddings, labels, weights) is refused with a hint.
        with pytest.raises(ValueError, match=r"take \(labels, embeddings, weights\)"):
            function(x, labels, weights)
    head = ProxyAnchorLoss(5)
    with pytest.raises(ValueError, match=r"\[labels, embeddings\]"):
        head(x)
    with pytest.raises(ValueError, match=r"\(batch_size, embedding_dim\)"):
        ProxyAnchorLoss(5)([labels, x[:, :, None]])
    with pytest.raises(ValueError, match=r"update must be one of"):
        CenterLoss(3, update="ema")
    with pytest.raises(ValueError, match="Unknown distance 'hamming'"):
        TripletCenterLoss(3, distance="hamming")
    with pytest.raises(ValueError, match="Unknown distance 'hamming'"):
        TripletCenterLoss(3, metric="hamming")
    with pytest.raises(ValueError, match="not both"):
        TripletCenterLoss(3, distance="cosine", metric="euclidean")
    with pytest.raises(ValueError, match="DotProduct"):
        CenterLoss(3, distance="dot")


BAD_CONSTRUCTORS = [
    (lambda: ArcFace(0), r"num_classes must be an integer >= 1; got 0"),
    (lambda: CosFace(2.5), r"num_classes must be an integer >= 1; got 2.5"),
    (lambda: ProxyAnchorLoss(-3), r"num_classes must be an integer >= 1"),
    (lambda: CenterLoss(True), r"num_classes must be an integer >= 1"),
    (lambda: CenterLoss(3, alpha=2.0), r"alpha \(the centre update rate\) must be a finite number >= 0.0 and <= 1.0"),
    (lambda: CenterLoss(3, alpha=0.0), r"alpha \(the centre update rate\) must be in \(0, 1\]"),
    (lambda: CenterLoss(3, alpha=float("nan")), r"alpha \(the centre update rate\) must be a finite number"),
    (lambda: CenterLoss(3, loss_weight=-1.0), r"loss_weight must be a finite number >= 0.0"),
    (lambda: TripletCenterLoss(3, margin=-1.0), r"margin must be a finite number >= 0.0"),
    (lambda: TripletCenterLoss(3, loss_weight=float("inf")), r"loss_weight must be a finite number"),
    (lambda: ProxyAnchorLoss(3, margin=-0.1), r"margin must be a finite number >= 0.0 and <= 1.0"),
    (lambda: ProxyAnchorLoss(3, alpha=0.0), r"alpha must be a finite number > 0.0"),
    (lambda: ProxyAnchorLoss(3, alpha="big"), r"alpha must be a number"),
    (lambda: ArcFace(3, scale=0.0), r"scale must be a finite number > 0.0"),
    (lambda: ArcFace(3, scale=float("inf")), r"scale must be a finite number > 0.0"),
    (lambda: ArcFace(3, margin=28.6), r"margin must be a finite number >= 0.0 and <= 1.57.*radians"),
    (lambda: ArcFace(3, margin=-0.5), r"margin must be a finite number >= 0.0"),
    (lambda: CosFace(3, scale=-64.0), r"scale must be a finite number > 0.0"),
    (lambda: CosFace(3, margin=1.5), r"margin must be a finite number >= 0.0 and <= 1.0"),
    (lambda: CosFace(3, margin=float("nan")), r"margin must be a finite number"),
]


@pytest.mark.parametrize("index", range(len(BAD_CONSTRUCTORS)))
def test_constructors_refuse_bad_arguments_naming_them(index):
    make, message = BAD_CONSTRUCTORS[index]
    with pytest.raises(ValueError, match=message):
        make()


def test_functional_forms_check_their_scalars():
    x, labels, weights = _batch(11)
    with pytest.raises(ValueError, match="scale must be a finite number > 0.0"):
        arcface_loss(labels, x, weights, scale=0.0)
    with pytest.raises(ValueError, match="radians"):
        arcface_loss(labels, x, weights, margin=28.6)
    with pytest.raises(ValueError, match="margin must be a finite number >= 0.0 and <= 1.0"):
        cosface_loss(labels, x, weights, margin=-0.35)
    with pytest.raises(ValueError, match="alpha must be a finite number > 0.0"):
        proxy_anchor_loss(labels, x, weights, alpha=-32.0)
    with pytest.raises(ValueError, match="margin must be a finite number >= 0.0"):
        triplet_center_loss(labels, x, weights, margin=float("nan"))
    with pytest.raises(ValueError, match=r"must be in \(0, 1\]"):
        center_update(labels, x, weights, alpha=0.0)


# ---------------------------------------------------------------------------
# Labels: checked eagerly, NaN when compiled (issue 21, item 2)
# ---------------------------------------------------------------------------

_HEAD_FUNCTIONS = {
    "center": center_loss,
    "center_update": center_update,
    "triplet_center": triplet_center_loss,
    "proxy_anchor": proxy_anchor_loss,
    "arcface": arcface_loss,
    "cosface": cosface_loss,
}
_BAD_LABELS = {
    "too_large": (np.array([0, 1, 5, 2] * 2 + [0, 1], "int32"), r"got 5 \(at index 2\)"),
    "negative": (np.array([0, 1, -1, 2] * 2 + [0, 1], "int32"), r"got -1 \(at index 2\)"),
    "non_integral_float": (np.array([0, 1, 1.5, 2] * 2 + [0, 1], "float32"), r"got non-integral 1.5"),
    "nan_float": (np.array([0, 1, np.nan, 2] * 2 + [0, 1], "float32"), r"got nan"),
    "huge_int64": (np.array([0, 1, 2**40, 2] * 2 + [0, 1], "int64"), r"got 1099511627776"),
}


@pytest.mark.parametrize("kind", sorted(_BAD_LABELS))
@pytest.mark.parametrize("name", sorted(_HEAD_FUNCTIONS))
def test_invalid_labels_raise_naming_num_classes(name, kind):
    x, _, weights = _batch(23)
    labels, message = _BAD_LABELS[kind]
    with pytest.raises(ValueError, match=r"labels must be class ids in \[0, num_classes\) = \[0, 5\); " + message):
        _HEAD_FUNCTIONS[name](labels, x, weights)


@pytest.mark.parametrize("name", sorted(HEADS))
def test_heads_raise_on_invalid_labels_eagerly(name):
    x, labels, weights = _batch(24)
    head = HEADS[name]()
    head([labels, x])
    bad = labels.copy()
    bad[3] = 5
    with pytest.raises(ValueError, match=r"num_classes\) = \[0, 5\); got 5 \(at index 3\)"):
        head([bad, x], training=True)
    with pytest.raises(ValueError, match="num_classes"):
        head([x, bad.astype("float32") + 0.5])  # the old order, float labels


def test_integral_float_and_column_labels_are_accepted():
    x, labels, weights = _batch(25)
    for name in ("center", "triplet_center", "proxy_anchor", "arcface", "cosface"):
        expected = REFERENCES[name](x, labels, weights)
        for variant in (labels.astype("float32"), labels.astype("int64")[:, None], labels.astype("float64")[:, None]):
            assert _call(name + "_eager", lambda e, y, w: FUNCTIONS[name](e, y, w), x, variant, weights) == pytest.approx(
                expected, rel=1e-5
            )


# Keras runs torch eagerly (fit too), where every label check raises the eager
# ValueError tested above: there is nothing traced to give NaN.
TRACED_BACKENDS_ONLY = pytest.mark.skipif(
    keras.backend.backend() == "torch", reason="torch runs eagerly: invalid labels raise the eager ValueError"
)


def _compiled(function):
    """``function`` compiled as in ``fit``: the labels' values are unknown while tracing."""
    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(function)
    import tensorflow as tf

    return tf.function(function, reduce_retracing=True)


@TRACED_BACKENDS_ONLY
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_compiled_loss_is_nan_for_a_batch_with_an_invalid_label(name):
    x, labels, weights = _batch(26)
    compiled = _compiled(FUNCTIONS[name])
    assert np.isfinite(float(to_numpy(compiled(x, labels, weights))))
    for bad_value, dtype in ((5, "int32"), (-1, "int32"), (1.5, "float32"), (7.0, "float32")):
        bad = labels.astype(dtype)
        bad[4] = bad_value
        assert np.isnan(float(to_numpy(compiled(x, bad, weights)))), (name, bad_value)
    assert float(to_numpy(compiled(x, labels.astype("float32"), weights))) == pytest.approx(
        REFERENCES[name](x, labels, weights), rel=1e-5
    )


@TRACED_BACKENDS_ONLY
def test_compiled_center_update_keeps_the_centres_for_an_invalid_batch():
    x, labels, centers = _batch(27)
    compiled = _compiled(lambda e, y, c: center_update(y, e, c, 0.5))
    np.testing.assert_allclose(
        to_numpy(compiled(x, labels, centers)), ref_center_update(x, labels, centers, 0.5), rtol=1e-5, atol=1e-6
    )
    bad = labels.copy()
    bad[0] = 9
    np.testing.assert_array_equal(to_numpy(compiled(x, bad, centers)), centers)


def test_fit_with_an_out_of_range_label_gives_a_nan_loss_and_keeps_the_centres():
    keras.utils.set_random_seed(3)
    x, labels = _separable_data()
    inputs = keras.Input((4,))
    label_input = keras.Input((), dtype="int32")
    tower = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)], name="tower")
    head = CenterLoss(3, alpha=0.5, name="head")
    model = keras.Model([inputs, label_input], head([label_input, tower(inputs)]))
    model.compile(optimizer="adam")
    model.fit([x, labels], None, batch_size=24, epochs=1, verbose=0)
    centres = to_numpy(head.centers).copy()
    bad = labels.copy()
    bad[5] = 3
    if keras.backend.backend() == "torch":  # eager: the check raises
        with pytest.raises(ValueError, match="num_classes"):
            model.fit([x, bad], None, batch_size=24, epochs=1, verbose=0)
    else:
        history = model.fit([x, bad], None, batch_size=24, epochs=1, verbose=0)
        assert np.isnan(history.history["loss"][0])
    np.testing.assert_array_equal(to_numpy(head.centers), centres)


# ---------------------------------------------------------------------------
# Input order: [labels, embeddings], and the first version's [embeddings, labels]
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(HEADS))
def test_both_input_orders_add_the_same_loss(name):
    x, labels, weights = _batch(28)
    expected = REFERENCES[name](x, labels, weights)
    for inputs in ([labels, x], [x, labels], [labels[:, None], x], [x, labels[:, None]],
                   [labels.astype("float32"), x], [x, labels.astype("float32")[:, None]]):
        head = HEADS[name]()
        head(inputs)
        head.set_weights([weights])
        out = head(inputs)
        np.testing.assert_array_equal(to_numpy(out), x)
        assert float(to_numpy(head.losses[0])) == pytest.approx(expected, rel=1e-5)


def test_ambiguous_inputs_are_refused():
    x = np.zeros((6, 1), "float32")
    with pytest.raises(ValueError, match="cannot tell which input is which"):
        ArcFace(3)([x, x])
    with pytest.raises(ValueError, match="cannot tell which input is which"):
        ArcFace(3)([np.zeros((6, 4), "float32"), np.zeros((6, 4), "float32")])


def test_old_order_model_saves_loads_and_trains(tmp_path):
    keras.utils.set_random_seed(4)
    x, labels = _separable_data()
    inputs = keras.Input((4,))
    label_input = keras.Input((), dtype="int32")
    tower = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)], name="tower")
    model = keras.Model([inputs, label_input], ArcFace(3, scale=8.0, name="head")([tower(inputs), label_input]))
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    losses = model.fit([x, labels], None, batch_size=24, epochs=8, verbose=0).history["loss"]
    assert losses[-1] < losses[0]
    model.save(tmp_path / "old.keras")
    loaded = keras.saving.load_model(tmp_path / "old.keras")
    assert loaded.evaluate([x, labels], None, batch_size=24, verbose=0) == pytest.approx(
        model.evaluate([x, labels], None, batch_size=24, verbose=0), rel=1e-5
    )


# ---------------------------------------------------------------------------
# distance= on the centre heads
# ---------------------------------------------------------------------------


def test_center_heads_take_a_distance():
    from dmlkeras import distances

    x, labels, centers = _batch(29)
    got = _call("center_cos", lambda e, y, w: center_loss(y, e, w, distance="cosine"), x, labels, centers)
    expected = np.mean([0.5 * (1.0 - np.dot(_unit(x[i]), _unit(centers[labels[i]]))) for i in range(len(x))])
    assert got == pytest.approx(expected, rel=1e-5)
    got = _call(
        "tc_manhattan", lambda e, y, w: triplet_center_loss(y, e, w, 1.0, distance=distances.Manhattan()), x, labels, centers
    )
    losses = []
    for i in range(len(x)):
        dist = [np.sum(np.abs(np.float64(x[i]) - c)) for c in centers]
        losses.append(max(dist[labels[i]] + 1.0 - min(d for j, d in enumerate(dist) if j != labels[i]), 0.0))
    assert got == pytest.approx(np.mean(losses), rel=1e-5)
    # Old keyword and old configs keep working.
    old = TripletCenterLoss(5, margin=0.5, metric="euclidean")
    assert old.distance == distances.Euclidean()
    restored = TripletCenterLoss.from_config({"name": "h", "num_classes": 5, "margin": 0.5, "metric": "euclidean"})
    assert restored.distance == distances.Euclidean()
    head = TripletCenterLoss(5, distance=distances.LpDistance(3))
    assert TripletCenterLoss.from_config(head.get_config()).distance == distances.LpDistance(3)
    assert CenterLoss.from_config(CenterLoss(5, distance="cosine").get_config()).distance == distances.Cosine()


# ---------------------------------------------------------------------------
# NaN in -> NaN out; half-precision gradients at zero embeddings (issue 21, items 1 and 4)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_a_nan_embedding_gives_a_nan_loss(name):
    x, labels, weights = _batch(30)
    x[3, 1] = np.nan
    assert np.isnan(_call(name, FUNCTIONS[name], x, labels, weights))


def _grads_in(dtype, name, x, labels, weights):
    function = FUNCTIONS[name]
    x = keras.ops.cast(x, dtype)
    if keras.backend.backend() == "jax":
        import jax

        value, grad = jax.jit(jax.value_and_grad(function))(x, labels, weights)
        return np.asarray(value), np.asarray(grad)
    return value_and_grad(lambda v: function(v, labels, weights), x)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("scale", [0.0, 1e-8])
def test_half_precision_gradients_are_finite_at_zero_embeddings(dtype, scale):
    rng = np.random.default_rng(31)
    weights = rng.normal(size=(5, 8)).astype("float32")
    labels = np.array([0, 1, 2, 3, 4, 0], "int32")
    x = (scale * rng.normal(size=(6, 8))).astype("float32")
    for name in ("proxy_anchor", "arcface", "cosface", "center", "triplet_center"):
        value, grad = _grads_in(dtype, name, x, labels, weights)
        grad = np.asarray(grad, np.float32)
        assert np.isfinite(value) and np.all(np.isfinite(grad)), (dtype, scale, name)
        if dtype == "float16":
            assert np.all(np.abs(grad) < 65504), (scale, name)
    single = _grads_in(dtype, "arcface", x[:1], labels[:1], weights)[1]  # batch of 1: no mean to divide by
    assert np.all(np.isfinite(np.asarray(single, np.float32)))


# ---------------------------------------------------------------------------
# Training and saving
# ---------------------------------------------------------------------------


def _separable_data():
    rng = np.random.default_rng(12)
    labels = np.repeat(np.arange(3), 8).astype("int32")
    means = np.array([[3.0, 0, 0, 0], [0, 3.0, 0, 0], [0, 0, 3.0, 0]], "float32")
    x = (means[labels] + 0.3 * rng.normal(size=(24, 4))).astype("float32")
    return x, labels


FIT_HEADS = {
    "center_moving": lambda: CenterLoss(3, alpha=0.5, name="head"),
    "triplet_center": lambda: TripletCenterLoss(3, margin=1.0, name="head"),
    "proxy_anchor": lambda: ProxyAnchorLoss(3, margin=0.1, alpha=8.0, name="head"),
    "arcface": lambda: ArcFace(3, scale=8.0, margin=0.3, name="head"),
    "cosface": lambda: CosFace(3, scale=8.0, margin=0.2, name="head"),
}


@pytest.mark.parametrize("name", sorted(FIT_HEADS))
def test_short_fit_moves_the_weights_lowers_the_loss_and_reloads(name, tmp_path):
    keras.utils.set_random_seed(0)
    x, labels = _separable_data()
    inputs = keras.Input((4,), name="features")
    label_input = keras.Input((), dtype="int32", name="label")
    tower = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)], name="tower")
    head = FIT_HEADS[name]()
    model = keras.Model([inputs, label_input], head([label_input, tower(inputs)]))
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    before = to_numpy(head.weights[0]).copy()
    history = model.fit([x, labels], None, batch_size=24, epochs=12, verbose=0, shuffle=False)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0], losses
    after = to_numpy(head.weights[0])
    assert not np.allclose(before, after), "the centres / proxies / weights did not move"

    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    loaded_head = loaded.get_layer("head")
    assert type(loaded_head) is type(head) and loaded_head.get_config() == head.get_config()
    np.testing.assert_array_equal(to_numpy(loaded_head.weights[0]), after)
    embeddings = to_numpy(tower(x))
    np.testing.assert_allclose(to_numpy(loaded([x, labels])), embeddings, rtol=1e-6, atol=1e-6)
    # The head in the reloaded model adds the same loss.
    head([labels, embeddings])
    loaded_head([labels, embeddings])
    assert float(to_numpy(loaded_head.losses[0])) == pytest.approx(float(to_numpy(head.losses[0])), rel=1e-6)


def test_reloaded_model_evaluates_and_keeps_training(tmp_path):
    keras.utils.set_random_seed(1)
    x, labels = _separable_data()
    inputs = keras.Input((4,))
    label_input = keras.Input((), dtype="int32")
    tower = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)], name="tower")
    model = keras.Model([inputs, label_input], ProxyAnchorLoss(3, alpha=8.0, name="head")([label_input, tower(inputs)]))
    model.compile(optimizer="adam", loss=None)
    model.fit([x, labels], None, batch_size=24, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.evaluate([x, labels], None, batch_size=24, verbose=0) == pytest.approx(
        model.evaluate([x, labels], None, batch_size=24, verbose=0), rel=1e-5
    )
    loaded.fit([x, labels], None, batch_size=24, epochs=1, verbose=0)
    inference = loaded.get_layer("tower")  # embeddings only, no labels
    assert tuple(inference(x).shape) == (24, 3)
