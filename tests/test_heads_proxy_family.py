"""The rest of the proxy family (issue 22): ProxyNCA, NormalizedSoftmax,
SoftTriple and SubCenterArcFace, with their functional forms and
subcenter_outliers.

Each loss against a loop-based float64 NumPy reference and against
pytorch-metric-learning 2.9's values (tests/golden/pml_*.npz, from
tools/make_golden_pml.py); the degenerate-batch grid of test_reliability in
every dtype, eager and compiled; NaN in -> NaN out; label and argument
checks; a short ``fit`` through ``build_head_model`` that lowers the loss;
the ``.keras`` round trip without ``custom_objects``; and the old
single-module heads' ``.keras`` file loading after the package split.
"""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import pytest

from dmlkeras import heads
from dmlkeras.heads import (
    NormalizedSoftmax,
    ProxyNCA,
    SoftTriple,
    SubCenterArcFace,
    normalized_softmax_loss,
    proxy_nca_loss,
    soft_triple_loss,
    subcenter_arcface_loss,
    subcenter_outliers,
)
from dmlkeras.models import build_head_model
from tests.backend_utils import to_numpy, value_and_grad
from tests.golden_utils import golden_cases
import tests.test_mixed_precision as mixed_precision
import tests.test_reliability as reliability
from tests.test_heads import _separable_data

BACKEND = keras.backend.backend()
OLD_HEADS = Path(__file__).parent / "fixtures" / "heads" / "single_module_v1.keras"

# ---------------------------------------------------------------------------
# Loop-based references (float64)
# ---------------------------------------------------------------------------


def _unit(v):
    v = np.asarray(v, np.float64)
    return v / max(np.linalg.norm(v), 1e-6)


def _cross_entropy(logits, target) -> float:
    return float(np.logaddexp.reduce(np.asarray(logits, np.float64)) - logits[target])


def ref_proxy_nca_per_sample(x, labels, proxies, softmax_scale=1.0, squared=True, normalize=True):
    out = []
    for i in range(len(x)):
        xi = _unit(x[i]) if normalize else np.float64(x[i])
        logits = []
        for p in proxies:
            pc = _unit(p) if normalize else np.float64(p)
            d = float(np.sum((xi - pc) ** 2))
            logits.append(-softmax_scale * (d if squared else math.sqrt(d)))
        out.append(_cross_entropy(logits, labels[i]))
    return np.array(out)


def ref_normalized_softmax_per_sample(x, labels, weights, temperature=0.05):
    return np.array([
        _cross_entropy([float(np.dot(_unit(x[i]), _unit(w))) / temperature for w in weights], labels[i])
        for i in range(len(x))
    ])


def ref_soft_triple_per_sample(x, labels, centers, scale=20.0, gamma=0.1, margin=0.01):
    out = []
    for i in range(len(x)):
        logits = []
        for c in range(len(centers)):
            sims = np.array([float(np.dot(_unit(x[i]), _unit(v))) for v in centers[c]])
            weights = np.exp(sims / gamma - np.max(sims / gamma))
            class_sim = float(np.sum(weights / weights.sum() * sims))
            logits.append(scale * (class_sim - (margin if c == labels[i] else 0.0)))
        out.append(_cross_entropy(logits, labels[i]))
    return np.array(out)


def ref_subcenter_arcface_per_sample(x, labels, weights, scale=64.0, margin=0.5):
    out = []
    for i in range(len(x)):
        cosines = [max(float(np.clip(np.dot(_unit(x[i]), _unit(v)), -1, 1)) for v in weights[c])
                   for c in range(len(weights))]
        logits = [scale * c for c in cosines]
        theta = math.acos(cosines[labels[i]])
        target = math.cos(theta + margin) if theta <= math.pi - margin else cosines[labels[i]] - margin * math.sin(margin)
        logits[labels[i]] = scale * target
        out.append(_cross_entropy(logits, labels[i]))
    return np.array(out)


def ref_subcenter_outliers(x, labels, weights, threshold):
    """PML's get_outliers, class by class: (outlier mask, dominant centres, first sub-centre for absent classes)."""
    outliers = np.zeros(len(x), bool)
    dominant = np.array(weights[:, 0], np.float64)
    for c in range(len(weights)):
        members = [i for i in range(len(x)) if labels[i] == c]
        if not members:
            continue
        cos = np.array([[float(np.dot(_unit(x[i]), _unit(v))) for v in weights[c]] for i in members])
        votes = np.bincount(np.argmax(cos, axis=1), minlength=len(weights[c]))
        best = int(np.argmax(votes))
        dominant[c] = weights[c, best]
        for row, i in enumerate(members):
            outliers[i] = not cos[row, best] >= math.cos(threshold)
    return outliers, dominant


# ---------------------------------------------------------------------------
# Settings: (function, reference, weight shape kind) per name
# ---------------------------------------------------------------------------

FUNCTIONS = {
    "proxy_nca": lambda x, y, w: proxy_nca_loss(y, x, w),
    "proxy_nca_scaled_euclidean": lambda x, y, w: proxy_nca_loss(y, x, w, softmax_scale=4.0, distance="euclidean"),
    "proxy_nca_unnormalized": lambda x, y, w: proxy_nca_loss(y, x, w, softmax_scale=0.5, normalize=False),
    "normalized_softmax": lambda x, y, w: normalized_softmax_loss(y, x, w),
    "normalized_softmax_t05": lambda x, y, w: normalized_softmax_loss(y, x, w, temperature=0.5),
    "soft_triple": lambda x, y, w: soft_triple_loss(y, x, w),
    "soft_triple_2": lambda x, y, w: soft_triple_loss(y, x, w, scale=8.0, gamma=0.5, margin=0.2),
    "subcenter_arcface": lambda x, y, w: subcenter_arcface_loss(y, x, w),
    "subcenter_arcface_2": lambda x, y, w: subcenter_arcface_loss(y, x, w, scale=16.0, margin=1.2),
}
REFERENCES = {
    "proxy_nca": lambda x, y, w: ref_proxy_nca_per_sample(x, y, w).mean(),
    "proxy_nca_scaled_euclidean": lambda x, y, w: ref_proxy_nca_per_sample(x, y, w, 4.0, squared=False).mean(),
    "proxy_nca_unnormalized": lambda x, y, w: ref_proxy_nca_per_sample(x, y, w, 0.5, normalize=False).mean(),
    "normalized_softmax": lambda x, y, w: ref_normalized_softmax_per_sample(x, y, w).mean(),
    "normalized_softmax_t05": lambda x, y, w: ref_normalized_softmax_per_sample(x, y, w, 0.5).mean(),
    "soft_triple": lambda x, y, w: ref_soft_triple_per_sample(x, y, w).mean(),
    "soft_triple_2": lambda x, y, w: ref_soft_triple_per_sample(x, y, w, 8.0, 0.5, 0.2).mean(),
    "subcenter_arcface": lambda x, y, w: ref_subcenter_arcface_per_sample(x, y, w).mean(),
    "subcenter_arcface_2": lambda x, y, w: ref_subcenter_arcface_per_sample(x, y, w, 16.0, 1.2).mean(),
}
MULTI_VECTOR = ("soft_triple", "subcenter_arcface")  # weights (C, k, d)


def _is_multi(name: str) -> bool:
    return name.startswith(MULTI_VECTOR)


def _batch_for(name, seed, n=10, d=4, num_classes=5, per_class=3):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n).astype("int32")  # some classes may be absent
    x = rng.normal(size=(n, d)).astype("float32")
    shape = (num_classes, per_class, d) if _is_multi(name) else (num_classes, d)
    return x, labels, rng.normal(size=shape).astype("float32")


_JITTED: dict = {}


def _call(name, function, *args) -> float:
    """``function(*args)`` as a float; jitted once per name on JAX (eager JAX recompiles every op)."""
    if BACKEND == "jax":
        import jax

        if name not in _JITTED:
            _JITTED[name] = jax.jit(function)
        return float(_JITTED[name](*args))
    return float(to_numpy(function(*args)))


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_functions_match_loop_references(name, seed):
    x, labels, weights = _batch_for(name, seed)
    if name.startswith("subcenter_arcface"):
        weights[labels[0], 1] = -x[0]  # one sub-centre anti-aligned: max must pick another
        weights[labels[1]] = -x[1]  # every sub-centre anti-aligned: the monotonic fallback branch
    expected = REFERENCES[name](x, labels, weights)
    assert _call(name, FUNCTIONS[name], x, labels, weights) == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_special_cases_reduce_to_the_known_heads():
    """k = 1 sub-centre is ArcFace; a normalised softmax is CosFace without margin; K equal centres are one."""
    x, labels, weights = _batch_for("normalized_softmax", 3)
    arc = _call("arc", lambda e, y, w: heads.arcface_loss(y, e, w, 16.0, 0.4), x, labels, weights)
    sub = _call("sub1", lambda e, y, w: subcenter_arcface_loss(y, e, w, 16.0, 0.4), x, labels, weights[:, None])
    assert sub == pytest.approx(arc, rel=1e-5)
    cos = _call("cos0", lambda e, y, w: heads.cosface_loss(y, e, w, 20.0, 0.0), x, labels, weights)
    assert _call("ns", lambda e, y, w: normalized_softmax_loss(y, e, w, 0.05), x, labels, weights) == pytest.approx(
        cos, rel=1e-5
    )
    repeated = np.repeat(weights[:, None], 4, axis=1)
    single = _call("st1", lambda e, y, w: soft_triple_loss(y, e, w), x, labels, weights[:, None])
    assert _call("st4", lambda e, y, w: soft_triple_loss(y, e, w), x, labels, repeated) == pytest.approx(single, rel=1e-5)


# ---------------------------------------------------------------------------
# pytorch-metric-learning's values
# ---------------------------------------------------------------------------

RTOL = 1e-5
# PML computes in float32 (at scale 64, through arccos): its per-sample values carry float32 rounding.
PER_SAMPLE_RTOL, ATOL = 5e-5, 1e-6


def _check_layer(case) -> bool:
    """The layer is checked on the first case of each file (it adds the function's value)."""
    return case["id"].endswith("-0")


def _layer_loss(head, labels, embeddings, weights) -> float:
    head([labels, embeddings])
    head.set_weights([weights])
    head([labels, embeddings])
    return float(to_numpy(head.losses[0]))


@pytest.mark.parametrize("case", golden_cases("pml_proxy_nca"), ids=lambda c: c["id"])
def test_proxy_nca_matches_pytorch_metric_learning(case):
    scale = case["params"]["softmax_scale"]
    x, labels, proxies = case["embeddings"], case["labels"], case["proxies"]
    np.testing.assert_allclose(ref_proxy_nca_per_sample(x, labels, proxies, scale), case["per_sample"], rtol=PER_SAMPLE_RTOL, atol=ATOL)
    got = _call(f"nca{scale}", lambda e, y, w: proxy_nca_loss(y, e, w, scale), x, labels, proxies)
    assert got == pytest.approx(float(case["loss"]), rel=RTOL)
    if _check_layer(case):
        head = ProxyNCA(case["params"]["num_classes"], softmax_scale=scale)
        assert _layer_loss(head, labels, x, proxies) == pytest.approx(float(case["loss"]), rel=RTOL)


@pytest.mark.parametrize("case", golden_cases("pml_normalized_softmax"), ids=lambda c: c["id"])
def test_normalized_softmax_matches_pytorch_metric_learning(case):
    temperature = case["params"]["temperature"]
    x, labels, weights = case["embeddings"], case["labels"], case["weights"]
    np.testing.assert_allclose(
        ref_normalized_softmax_per_sample(x, labels, weights, temperature), case["per_sample"], rtol=PER_SAMPLE_RTOL, atol=ATOL
    )
    got = _call(f"ns{temperature}", lambda e, y, w: normalized_softmax_loss(y, e, w, temperature), x, labels, weights)
    assert got == pytest.approx(float(case["loss"]), rel=RTOL)
    if _check_layer(case):
        head = NormalizedSoftmax(case["params"]["num_classes"], temperature=temperature)
        assert _layer_loss(head, labels, x, weights) == pytest.approx(float(case["loss"]), rel=RTOL)


@pytest.mark.parametrize("case", golden_cases("pml_soft_triple"), ids=lambda c: c["id"])
def test_soft_triple_matches_pytorch_metric_learning(case):
    p = case["params"]
    settings = {"scale": p["la"], "gamma": p["gamma"], "margin": p["margin"]}  # PML's la is our scale
    x, labels, centers = case["embeddings"], case["labels"], case["centers"]
    assert centers.shape == (p["num_classes"], p["centers_per_class"], x.shape[1])
    np.testing.assert_allclose(
        ref_soft_triple_per_sample(x, labels, centers, **settings), case["per_sample"], rtol=PER_SAMPLE_RTOL, atol=ATOL
    )
    got = _call(f"st{sorted(settings.items())}", lambda e, y, w: soft_triple_loss(y, e, w, **settings), x, labels, centers)
    assert got == pytest.approx(float(case["loss"]), rel=RTOL)
    if _check_layer(case):
        head = SoftTriple(p["num_classes"], centers_per_class=p["centers_per_class"], **settings)
        assert _layer_loss(head, labels, x, centers) == pytest.approx(float(case["loss"]), rel=RTOL)


@pytest.mark.parametrize("case", golden_cases("pml_subcenter_arcface"), ids=lambda c: c["id"])
def test_subcenter_arcface_matches_pytorch_metric_learning(case):
    p = case["params"]
    scale, margin = p["scale"], float(np.radians(p["margin"]))  # PML takes degrees
    x, labels, weights = case["embeddings"], case["labels"], case["weights"]
    np.testing.assert_allclose(
        ref_subcenter_arcface_per_sample(x, labels, weights, scale, margin), case["per_sample"], rtol=PER_SAMPLE_RTOL, atol=ATOL
    )
    got = _call(f"sc{margin}", lambda e, y, w: subcenter_arcface_loss(y, e, w, scale, margin), x, labels, weights)
    assert got == pytest.approx(float(case["loss"]), rel=RTOL)
    # get_outliers(threshold=75 degrees): the same samples and dominant sub-centres.
    assert 0 < case["outliers"].sum() < len(labels)  # the batch has both kinds
    outliers, dominant = subcenter_outliers(labels, x, weights, threshold=math.radians(75))
    np.testing.assert_array_equal(to_numpy(outliers), case["outliers"])
    present = case["present"]
    np.testing.assert_array_equal(to_numpy(dominant)[present], case["dominant_centers"][present])
    if _check_layer(case):
        head = SubCenterArcFace(p["num_classes"], sub_centers=p["sub_centers"], scale=scale, margin=margin)
        assert _layer_loss(head, labels, x, weights) == pytest.approx(float(case["loss"]), rel=RTOL)
        layer_outliers, _ = head.get_outliers(labels, x)  # the default threshold is PML's 75 degrees
        np.testing.assert_array_equal(to_numpy(layer_outliers), case["outliers"])


@pytest.mark.parametrize("seed", [0, 1])
def test_subcenter_outliers_match_the_loop_reference(seed):
    x, labels, weights = _batch_for("subcenter_arcface", seed, n=16, d=6, num_classes=4, per_class=3)
    x[::2] = weights[labels[::2], seed] + 0.2 * x[::2]  # half the samples near one sub-centre
    for threshold in (math.radians(40), math.radians(75), math.radians(100)):
        expected_outliers, expected_dominant = ref_subcenter_outliers(x, labels, weights, threshold)
        outliers, dominant = subcenter_outliers(labels, x, weights, threshold)
        np.testing.assert_array_equal(to_numpy(outliers), expected_outliers)
        np.testing.assert_allclose(to_numpy(dominant), expected_dominant, rtol=1e-6)
    poisoned = x.copy()
    poisoned[3] = np.nan
    assert bool(to_numpy(subcenter_outliers(labels, poisoned, weights)[0])[3])  # NaN in: flagged


# ---------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------

HEADS = {
    "proxy_nca": (lambda: ProxyNCA(5), "proxies", "proxies"),
    "normalized_softmax": (lambda: NormalizedSoftmax(5), "weights", "class_weights"),
    "soft_triple": (lambda: SoftTriple(5, centers_per_class=3), "centers", "centers"),
    "subcenter_arcface": (lambda: SubCenterArcFace(5, sub_centers=3), "weights", "class_weights"),
}


@pytest.mark.parametrize("name", sorted(HEADS))
def test_head_adds_its_function_loss_in_both_input_orders(name):
    make, weight_name, attribute = HEADS[name]
    x, labels, weights = _batch_for(name, 5)
    expected = REFERENCES[name](x, labels, weights)
    for inputs in ([labels, x], [x, labels], [labels[:, None], x], [x, labels.astype("float32")[:, None]]):
        head = make()
        out = head(inputs)
        np.testing.assert_array_equal(to_numpy(out), x)
        variable = getattr(head, attribute)
        assert tuple(variable.shape) == weights.shape and variable.path.split("/")[-1] == weight_name
        head.set_weights([weights])
        head(inputs)
        assert len(head.losses) == 1
        assert float(to_numpy(head.losses[0])) == pytest.approx(expected, rel=1e-5)
    head = make()
    head.loss_weight = 0.25
    head([labels, x])
    head.set_weights([weights])
    head([labels, x])
    assert float(to_numpy(head.losses[0])) == pytest.approx(0.25 * expected, rel=1e-5)


@pytest.mark.parametrize("name", sorted(HEADS))
def test_heads_raise_on_invalid_labels_eagerly(name):
    x, labels, _ = _batch_for(name, 6)
    head = HEADS[name][0]()
    head([labels, x])
    bad = labels.copy()
    bad[3] = 5
    with pytest.raises(ValueError, match=r"num_classes\) = \[0, 5\); got 5 \(at index 3\)"):
        head([bad, x], training=True)


def test_bad_arguments_raise_value_errors():
    x, labels, weights = _batch_for("proxy_nca", 7)
    _, _, multi = _batch_for("soft_triple", 7)
    with pytest.raises(ValueError, match="softmax_scale must be a finite number > 0.0"):
        proxy_nca_loss(labels, x, weights, softmax_scale=0.0)
    with pytest.raises(ValueError, match="normalize must be True or False"):
        ProxyNCA(3, normalize="yes")
    with pytest.raises(ValueError, match="temperature must be a finite number > 0.0"):
        normalized_softmax_loss(labels, x, weights, temperature=-0.05)
    with pytest.raises(ValueError, match="gamma must be a finite number > 0.0"):
        soft_triple_loss(labels, x, multi, gamma=0.0)
    with pytest.raises(ValueError, match="margin must be a finite number >= 0.0"):
        SoftTriple(3, margin=float("nan"))
    with pytest.raises(ValueError, match="centers_per_class"):
        SoftTriple(3, centers_per_class=0)
    with pytest.raises(ValueError, match="sub_centers"):
        SubCenterArcFace(3, sub_centers=0)
    with pytest.raises(ValueError, match="radians"):
        subcenter_arcface_loss(labels, x, multi, margin=28.6)
    with pytest.raises(ValueError, match="radians"):
        subcenter_outliers(labels, x, multi, threshold=75)
    # Weight shapes: (num_classes, d) for one vector per class, (num_classes, k, d) for several.
    with pytest.raises(ValueError, match=r"centers must have shape \(num_classes, vectors_per_class, embedding_dim\)"):
        soft_triple_loss(labels, x, weights)
    with pytest.raises(ValueError, match=r"weights must have shape \(num_classes, vectors_per_class, embedding_dim\) "
                                         r"= \(num_classes, vectors_per_class, 4\)"):
        subcenter_arcface_loss(labels, x, multi[:, :, :3])
    with pytest.raises(ValueError, match=r"proxies must have shape \(num_classes, embedding_dim\)"):
        proxy_nca_loss(labels, x, multi)
    with pytest.raises(ValueError, match=r"labels must be class ids in \[0, num_classes\) = \[0, 5\)"):
        normalized_softmax_loss(np.full(10, 7), x, weights)


# ---------------------------------------------------------------------------
# The degenerate grid of test_reliability, in every dtype; NaN in -> NaN out
# ---------------------------------------------------------------------------

GRID = {
    "proxy-nca": lambda y, e, w: proxy_nca_loss(y, e, w),
    "proxy-nca-cosine": lambda y, e, w: proxy_nca_loss(y, e, w, softmax_scale=9.0, distance="cosine"),
    "normalized-softmax": lambda y, e, w: normalized_softmax_loss(y, e, w),
    # (C, 2, D) from the grid's (C, D) weights: a second vector per class, so the gradient reaches both.
    "soft-triple": lambda y, e, w: soft_triple_loss(y, e, keras.ops.stack([w, keras.ops.flip(w, axis=1)], axis=1)),
    "subcenter-arcface": lambda y, e, w: subcenter_arcface_loss(
        y, e, keras.ops.stack([w, keras.ops.flip(w, axis=1)], axis=1)
    ),
}


def _in_the_grid(name, monkeypatch) -> str:
    """Put GRID[name] among test_reliability's heads (whose functions take (embeddings, labels, weights))."""
    monkeypatch.setitem(reliability.HEADS, name, lambda e, y, w: GRID[name](y, e, w))
    return name


@pytest.mark.skipif(BACKEND == "jax", reason="eager jax.grad compiles every primitive; the compiled grid covers JAX")
@pytest.mark.parametrize("name", sorted(GRID))
def test_grid_is_finite_eagerly(name, monkeypatch):
    problems = reliability._nonfinite(_in_the_grid(name, monkeypatch), reliability.DTYPES, compiled=False)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", sorted(GRID))
def test_grid_is_finite_when_compiled(name, monkeypatch):
    problems = reliability._nonfinite(_in_the_grid(name, monkeypatch), reliability.DTYPES, compiled=True)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", sorted(GRID))
def test_compiled_loss_is_nan_for_a_batch_with_an_invalid_label(name, monkeypatch):
    """test_reliability's check (skipped on torch, which raises eagerly) on these heads."""
    reliability.test_head_labels_out_of_range_give_nan_when_compiled(_in_the_grid(name, monkeypatch))


@pytest.mark.parametrize("poison", ["all_nan", "one_nan_row", "one_nan_entry", "one_inf_entry"])
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_nan_in_gives_nan_out(name, poison):
    x, labels, weights = _batch_for(name, 8)
    if poison == "all_nan":
        x[:] = np.nan
    elif poison == "one_nan_row":
        x[4] = np.nan
    elif poison == "one_nan_entry":
        x[2, 1] = np.nan
    else:
        x[6, 0] = np.inf
    value = _call(name, FUNCTIONS[name], x, labels, weights)
    assert not math.isfinite(value), f"{name} on {poison} gave {value}"


def test_half_precision_input_is_computed_in_float32():
    for name in ("proxy_nca", "soft_triple", "subcenter_arcface", "normalized_softmax"):
        x, labels, weights = _batch_for(name, 9)
        half = FUNCTIONS[name](keras.ops.cast(x, "float16"), labels, weights)
        assert keras.backend.standardize_dtype(half.dtype) == "float32"
        rounded = x.astype("float16").astype("float32")
        assert float(to_numpy(half)) == pytest.approx(REFERENCES[name](rounded, labels, weights), rel=1e-5)


def test_gradients_reach_every_sub_centre_softly_and_only_the_closest_hard():
    """SoftTriple's soft maximum moves every centre of a class; sub-center ArcFace's max only the closest."""
    x, labels, weights = _batch_for("soft_triple", 10)
    _, soft = value_and_grad(lambda w: soft_triple_loss(labels, x, w, gamma=1.0), weights)
    _, hard = value_and_grad(lambda w: subcenter_arcface_loss(labels, x, w, 16.0, 0.3), weights)
    present = np.unique(labels)
    assert np.all(np.abs(soft[present]).sum(axis=2) > 0)
    cosines = np.einsum("nd,ckd->nck", x / np.linalg.norm(x, axis=1, keepdims=True),
                        weights / np.linalg.norm(weights, axis=2, keepdims=True))
    closest = np.zeros(weights.shape[:2], bool)
    closest[np.arange(5)[None, :].repeat(len(x), 0), cosines.argmax(axis=2)] = True
    touched = np.abs(hard).sum(axis=2) > 0
    assert np.all(touched <= closest) and touched.any()


# ---------------------------------------------------------------------------
# Training, saving, loading
# ---------------------------------------------------------------------------


FIT_HEADS = {
    "proxy_nca": lambda: ProxyNCA(3, softmax_scale=4.0, name="head"),
    "normalized_softmax": lambda: NormalizedSoftmax(3, temperature=0.2, name="head"),
    "soft_triple": lambda: SoftTriple(3, centers_per_class=2, scale=8.0, name="head"),
    "subcenter_arcface": lambda: SubCenterArcFace(3, sub_centers=2, scale=8.0, margin=0.3, name="head"),
}


@pytest.mark.parametrize("name", sorted(FIT_HEADS))
def test_fit_lowers_the_loss_and_the_model_reloads_without_custom_objects(name, tmp_path):
    keras.utils.set_random_seed(0)
    x, labels = _separable_data()
    tower = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)], name="tower")
    head = FIT_HEADS[name]()
    model = build_head_model(tower, head)
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    before = to_numpy(head.weights[0]).copy()
    losses = model.fit([x, labels], None, batch_size=24, epochs=12, verbose=0, shuffle=False).history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < 0.8 * losses[0], losses
    after = to_numpy(head.weights[0])
    assert not np.allclose(before, after), "the class vectors did not move"

    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")  # no custom_objects
    loaded_head = loaded.get_layer("head")
    assert type(loaded_head) is type(head) and loaded_head.get_config() == head.get_config()
    np.testing.assert_array_equal(to_numpy(loaded_head.weights[0]), after)
    assert loaded.evaluate([x, labels], None, batch_size=24, verbose=0) == pytest.approx(
        model.evaluate([x, labels], None, batch_size=24, verbose=0), rel=1e-5
    )


MIXED_PRECISION_HEADS = {
    "proxy-nca": lambda: ProxyNCA(mixed_precision.CLASSES, name="head"),
    "normalized-softmax": lambda: NormalizedSoftmax(mixed_precision.CLASSES, name="head"),
    "soft-triple": lambda: SoftTriple(mixed_precision.CLASSES, name="head"),
    "subcenter-arcface": lambda: SubCenterArcFace(mixed_precision.CLASSES, name="head"),
}


@pytest.mark.parametrize("policy", mixed_precision.POLICIES)
@pytest.mark.parametrize("name", sorted(MIXED_PRECISION_HEADS))
def test_head_trains_under_mixed_precision(name, policy, monkeypatch):
    """test_mixed_precision's check (same loss as float32, finite training that lowers it), default settings."""
    monkeypatch.setitem(mixed_precision.HEADS, name, MIXED_PRECISION_HEADS[name])
    try:
        mixed_precision.test_head_trains_under_mixed_precision(name, policy, keras.mixed_precision.set_dtype_policy)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


def test_configs_round_trip_every_argument():
    from dmlkeras import distances

    for head in (
        ProxyNCA(4, softmax_scale=3.0, distance=distances.Cosine(), normalize=False, loss_weight=0.5),
        NormalizedSoftmax(4, temperature=0.1, initializer="zeros"),
        SoftTriple(4, centers_per_class=5, scale=10.0, gamma=0.2, margin=0.05),
        SubCenterArcFace(4, sub_centers=2, scale=30.0, margin=0.3),
    ):
        restored = type(head).from_config(head.get_config())
        assert restored.get_config() == head.get_config()
    assert ProxyNCA.from_config(ProxyNCA(4, distance="cosine").get_config()).distance == distances.Cosine()


def test_models_saved_with_the_single_module_heads_still_load():
    """tests/fixtures/heads/single_module_v1.keras was saved at commit 66f0b37, when dmlkeras.heads was one module.

    A tower followed by CenterLoss, TripletCenterLoss, ProxyAnchorLoss,
    ArcFace and CosFace (3 classes; tests/fixtures/heads/make_single_module_v1.py
    made it). It loads without custom_objects, and its
    loss is the sum of the five functional forms on the loaded weights.
    """
    model = keras.saving.load_model(OLD_HEADS)
    x = np.random.default_rng(0).normal(size=(12, 4)).astype("float32")
    y = (np.arange(12) % 3).astype("int32")
    embeddings = model.get_layer("tower")(x)
    functions = {
        "centerloss": heads.center_loss,
        "tripletcenterloss": heads.triplet_center_loss,
        "proxyanchorloss": heads.proxy_anchor_loss,
        "arcface": heads.arcface_loss,
        "cosface": heads.cosface_loss,
    }
    expected = 0.0
    for layer_name, function in functions.items():
        layer = model.get_layer(layer_name)
        assert type(layer).__name__.lower() == layer_name
        expected += float(to_numpy(function(y, embeddings, layer.weights[0])))
    assert model.evaluate([x, y], None, batch_size=12, verbose=0) == pytest.approx(expected, rel=1e-5)
