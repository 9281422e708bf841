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
    "center": lambda x, y, w: center_loss(x, y, w),
    "triplet_center": lambda x, y, w: triplet_center_loss(x, y, w, margin=2.0),
    "triplet_center_euclidean": lambda x, y, w: triplet_center_loss(x, y, w, margin=0.5, metric="euclidean"),
    "proxy_anchor": lambda x, y, w: proxy_anchor_loss(x, y, w, margin=0.1, alpha=32.0),
    "proxy_anchor_2": lambda x, y, w: proxy_anchor_loss(x, y, w, margin=0.2, alpha=8.0),
    "arcface": lambda x, y, w: arcface_loss(x, y, w, scale=64.0, margin=0.5),
    "arcface_2": lambda x, y, w: arcface_loss(x, y, w, scale=16.0, margin=1.2),
    "cosface": lambda x, y, w: cosface_loss(x, y, w, scale=64.0, margin=0.35),
    "cosface_2": lambda x, y, w: cosface_loss(x, y, w, scale=10.0, margin=0.1),
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
        got = to_numpy(center_update(x, labels, centers, alpha))
        np.testing.assert_allclose(got, ref_center_update(x, labels, centers, alpha), rtol=1e-5, atol=1e-6)


def test_arcface_margin_zero_and_cosface_margin_zero_are_normalised_softmax():
    x, labels, weights = _batch(4)
    plain = ref_cosface(x, labels, weights, 8.0, 0.0)
    arc = _call("arcface_m0", lambda e, y, w: arcface_loss(e, y, w, 8.0, 0.0), x, labels, weights)
    cos = _call("cosface_m0", lambda e, y, w: cosface_loss(e, y, w, 8.0, 0.0), x, labels, weights)
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
    out = head([x, labels[:, None]])  # (n, 1) labels are accepted
    np.testing.assert_array_equal(to_numpy(out), x)
    assert head.weights[0].shape == (5, 4)
    assert head.weights[0].path.split("/")[-1] == WEIGHT_NAMES[name]
    head.set_weights([weights])
    head([x, labels])
    assert len(head.losses) == 1
    assert float(to_numpy(head.losses[0])) == pytest.approx(REFERENCES[name](x, labels, weights), rel=1e-5)


def test_loss_weight_scales_the_added_loss():
    x, labels, weights = _batch(6)
    head = ProxyAnchorLoss(5, loss_weight=0.25)
    head([x, labels])
    head.set_weights([weights])
    head([x, labels])
    expected = 0.25 * ref_proxy_anchor(x, labels, weights, 0.1, 32.0)
    assert float(to_numpy(head.losses[0])) == pytest.approx(expected, rel=1e-5)


def test_center_loss_moving_update_only_in_training():
    x, labels, centers = _batch(7)
    head = CenterLoss(5, alpha=0.5)
    head([x, labels])
    assert not head.centers.trainable
    head.set_weights([centers])
    head([x, labels], training=False)
    np.testing.assert_array_equal(to_numpy(head.centers), centers)
    head([x, labels], training=True)
    # The loss uses the centres before the update; the update is the paper's rule.
    assert float(to_numpy(head.losses[0])) == pytest.approx(ref_center_loss(x, labels, centers), rel=1e-5)
    np.testing.assert_allclose(to_numpy(head.centers), ref_center_update(x, labels, centers, 0.5), rtol=1e-5, atol=1e-6)
    trainable = CenterLoss(5, update="gradient")
    trainable([x, labels], training=True)
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
    head([keras.ops.cast(x, "float16"), labels])
    assert np.isfinite(float(to_numpy(head.losses[0])))


def test_bad_input_raises_value_error():
    x, labels, weights = _batch(11)
    for function in (center_loss, triplet_center_loss, proxy_anchor_loss, arcface_loss, cosface_loss):
        with pytest.raises(ValueError, match=r"\(num_classes, embedding_dim\) = \(num_classes, 4\)"):
            function(x, labels, weights[:, :3])
        with pytest.raises(ValueError, match=r"\(batch_size, embedding_dim\)"):
            function(x[:, :, None], labels, weights)
        with pytest.raises(ValueError, match=r"labels must be integer class ids of shape \(batch_size,\) = \(10,\)"):
            function(x, labels[:4], weights)
    head = ProxyAnchorLoss(5)
    with pytest.raises(ValueError, match=r"\[embeddings, labels\]"):
        head(x)
    with pytest.raises(ValueError, match=r"\(batch_size, embedding_dim\)"):
        ProxyAnchorLoss(5)([x[:, :, None], labels])
    with pytest.raises(ValueError, match=r"num_classes must be a positive integer"):
        ArcFace(0)
    with pytest.raises(ValueError, match=r"update must be one of"):
        CenterLoss(3, update="ema")
    with pytest.raises(ValueError, match=r"alpha \(the centre update rate\) must be in \[0, 1\]"):
        CenterLoss(3, alpha=2.0)
    with pytest.raises(ValueError, match="Unknown metric"):
        TripletCenterLoss(3, metric="hamming")


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
    model = keras.Model([inputs, label_input], head([tower(inputs), label_input]))
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
    head([embeddings, labels])
    loaded_head([embeddings, labels])
    assert float(to_numpy(loaded_head.losses[0])) == pytest.approx(float(to_numpy(head.losses[0])), rel=1e-6)


def test_reloaded_model_evaluates_and_keeps_training(tmp_path):
    keras.utils.set_random_seed(1)
    x, labels = _separable_data()
    inputs = keras.Input((4,))
    label_input = keras.Input((), dtype="int32")
    tower = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)], name="tower")
    model = keras.Model([inputs, label_input], ProxyAnchorLoss(3, alpha=8.0, name="head")([tower(inputs), label_input]))
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
