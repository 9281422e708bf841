"""The self-supervised losses (dmlkeras.losses.ssl): loop references, golden values, degenerate batches.

The references below are plain float64 loops over samples, pairs and
dimensions, written from the papers' formulas (docs/ssl.md).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from dmlkeras import losses
from dmlkeras.losses import BarlowTwinsLoss, NTXentLoss, SimSiamLoss, VICRegLoss
from tests.backend_utils import to_numpy, value_and_grad
from tests.golden_utils import golden_cases

# ----------------------------------------------------------------------------- loop references


def _cos(u, v):
    u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
    nu, nv = max(np.linalg.norm(u), 1e-6), max(np.linalg.norm(v), 1e-6)
    return float(np.dot(u, v) / (nu * nv))


def ref_ntxent_pairs(x, labels, temperature):
    """Per positive pair (a, p): -log(e^z_ap / (e^z_ap + sum_neg e^z_ak)); returns {(a, p): value}."""
    n = len(x)
    out = {}
    for a in range(n):
        for p in range(n):
            if p == a or labels[p] != labels[a]:
                continue
            z_ap = _cos(x[a], x[p]) / temperature
            denominator = np.exp(z_ap)
            for k in range(n):
                if labels[k] != labels[a]:
                    denominator += np.exp(_cos(x[a], x[k]) / temperature)
            out[(a, p)] = -np.log(np.exp(z_ap) / denominator)
    return out


def ref_ntxent(x, labels, temperature):
    values = list(ref_ntxent_pairs(x, labels, temperature).values())
    return float(np.mean(values)) if values else 0.0


def ref_ntxent_views(views, temperature):
    """Per sample: the mean over its views' anchors of their mean over positive pairs."""
    n, v, d = views.shape
    flat, ids = views.reshape(n * v, d), np.repeat(np.arange(n), v)
    pairs = ref_ntxent_pairs(flat, ids, temperature)
    per_row = [np.mean([value for (a, _), value in pairs.items() if a == row]) for row in range(n * v)]
    return np.asarray(per_row).reshape(n, v).mean(axis=1)


def _standardise(column, epsilon):
    column = np.asarray(column, np.float64)
    mean = sum(column) / len(column)
    variance = sum((c - mean) ** 2 for c in column) / len(column)
    std = np.sqrt(variance + epsilon)
    return [(c - mean) / std if std > 0 else 0.0 for c in column]


def ref_barlow(views, lambda_, epsilon):
    n, _, d = views.shape
    za = np.array([_standardise(views[:, 0, j], epsilon) for j in range(d)]).T
    zb = np.array([_standardise(views[:, 1, j], epsilon) for j in range(d)]).T
    total = 0.0
    for i in range(d):
        for j in range(d):
            c = sum(za[k, i] * zb[k, j] for k in range(n)) / n
            total += (1.0 - c) ** 2 if i == j else lambda_ * c**2
    return total


def _vicreg_terms(z, epsilon):
    z = np.asarray(z, np.float64)
    n, d = z.shape
    means = [sum(z[:, j]) / n for j in range(d)]
    cov = [[sum((z[k, i] - means[i]) * (z[k, j] - means[j]) for k in range(n)) / (n - 1) for j in range(d)]
           for i in range(d)]
    variance = np.mean([max(0.0, 1.0 - np.sqrt(cov[j][j] + epsilon)) for j in range(d)])
    covariance = sum(cov[i][j] ** 2 for i in range(d) for j in range(d) if i != j) / d
    return variance, covariance


def ref_vicreg_per_sample(views, sim, var, cov, epsilon):
    views = np.asarray(views, np.float64)
    n, _, d = views.shape
    va, ca = _vicreg_terms(views[:, 0], epsilon)
    vb, cb = _vicreg_terms(views[:, 1], epsilon)
    batch = var * (va + vb) / 2 + cov * (ca + cb)
    return np.array([sim * sum((views[k, 0, j] - views[k, 1, j]) ** 2 for j in range(d)) / d + batch
                     for k in range(n)])


def ref_simsiam(outputs):
    return np.array([-(_cos(o[2], o[1]) + _cos(o[3], o[0])) / 2 for o in outputs])


def _views(n=6, v=2, d=5, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=(n, 1, d))
    return (scale * (shared + 0.5 * rng.normal(size=(n, v, d)))).astype("float32")


def _value(loss, views, **kwargs):
    return float(to_numpy(loss(None, views, **kwargs)))


# ----------------------------------------------------------------------------- NT-Xent


@pytest.mark.parametrize("views_per_sample", [2, 3])
@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_ntxent_views_match_the_loop_reference(temperature, views_per_sample):
    views = _views(v=views_per_sample, seed=views_per_sample)
    loss = NTXentLoss(temperature=temperature)
    expected = ref_ntxent_views(views, temperature)
    np.testing.assert_allclose(to_numpy(loss.call(None, views)), expected, rtol=2e-5, atol=1e-6)
    assert _value(loss, views) == pytest.approx(expected.mean(), rel=2e-5)
    none = NTXentLoss(temperature=temperature, reduction="none")
    np.testing.assert_allclose(to_numpy(none(None, views)), expected, rtol=2e-5, atol=1e-6)
    summed = NTXentLoss(temperature=temperature, reduction="sum")
    assert _value(summed, views) == pytest.approx(expected.sum(), rel=2e-5)


def test_ntxent_on_labels_matches_the_loop_reference_with_several_positives():
    rng = np.random.default_rng(3)
    labels = rng.permutation(np.arange(12) % 3)  # four positives-in-class per anchor: not SupCon
    x = rng.normal(size=(12, 4)).astype("float32")
    got = float(to_numpy(NTXentLoss(temperature=0.3)(labels, x)))
    assert got == pytest.approx(ref_ntxent(x, labels, 0.3), rel=2e-5)
    supcon = float(to_numpy(losses.SupervisedContrastiveLoss(temperature=0.3)(labels, x)))
    assert abs(got - supcon) > 1e-3  # the denominators differ with more than one positive


def test_ntxent_views_equal_the_sample_id_form_and_supcon_with_two_views():
    views = _views(n=5, seed=4)
    flat, ids = views.reshape(10, -1), np.repeat(np.arange(5), 2)
    value = _value(NTXentLoss(temperature=0.2), views)
    assert float(to_numpy(NTXentLoss(temperature=0.2)(ids, flat))) == pytest.approx(value, rel=1e-6)
    supcon = losses.SupervisedContrastiveLoss(temperature=0.2)
    assert float(to_numpy(supcon(ids, flat))) == pytest.approx(value, rel=1e-5)


def test_ntxent_sample_weight_zero_drops_the_sample_and_two_duplicates_its_anchors():
    views = _views(n=6, seed=5)
    loss = NTXentLoss(temperature=0.5)
    per_sample = ref_ntxent_views(views, 0.5)
    w = np.array([0.0, 2.0, 1.0, 1.0, 1.0, 1.0], "float32")
    expected = float(np.sum(w * per_sample) / np.sum(w))
    assert _value(loss, views, sample_weight=w) == pytest.approx(expected, rel=2e-5)


def test_ntxent_views_refuse_a_reference_and_bad_shapes():
    views = _views()
    with pytest.raises(ValueError, match="sample ids"):
        NTXentLoss()(None, views, ref_embeddings=views[:, 0], ref_labels=np.arange(6))
    with pytest.raises(ValueError, match="sample ids"):
        NTXentLoss()(None, views, ref_mask=np.ones(6, bool))
    with pytest.raises(ValueError, match=r"\(batch_size, v, embedding_dim\) with v >= 2"):
        NTXentLoss()(None, views[:, :1])
    with pytest.raises(ValueError, match="temperature"):
        NTXentLoss(temperature=0.0)


def test_ntxent_ref_mask_rows_are_absent_as_in_cross_batch_memory():
    # CrossBatchMemory hands every in-batch loss a ref_mask of the slots that hold rows.
    rng = np.random.default_rng(3)
    x, kept, masked = (rng.normal(size=(k, 5)).astype("float32") for k in (6, 4, 3))
    labels, kept_labels, masked_labels = np.array([0, 0, 1, 1, 2, 2]), np.array([0, 1, 2, 3]), np.array([0, 1, 2])
    loss = NTXentLoss(temperature=0.5)
    self_index = np.arange(6)
    with_mask = loss(
        labels, x, ref_labels=np.concatenate([labels, kept_labels, masked_labels]),
        ref_embeddings=np.concatenate([x, kept, masked]), self_index=self_index,
        ref_mask=np.array([True] * 10 + [False] * 3),
    )
    without = loss(labels, x, ref_labels=np.concatenate([labels, kept_labels]),
                   ref_embeddings=np.concatenate([x, kept]), self_index=self_index)
    np.testing.assert_allclose(float(to_numpy(with_mask)), float(to_numpy(without)), rtol=1e-6)
    assert float(to_numpy(with_mask)) != pytest.approx(float(to_numpy(loss(labels, x))), rel=1e-3)


# ----------------------------------------------------------------------------- Barlow, VICReg, SimSiam


@pytest.mark.parametrize("lambda_, epsilon", [(5e-3, 1e-5), (0.5, 0.0)])
def test_barlow_matches_the_loop_reference(lambda_, epsilon):
    views = _views(n=10, d=4, seed=6)
    got = _value(BarlowTwinsLoss(lambda_=lambda_, epsilon=epsilon), views)
    assert got == pytest.approx(ref_barlow(views, lambda_, epsilon), rel=2e-5)


@pytest.mark.parametrize("params", [{}, {"sim": 5.0, "var": 10.0, "cov": 2.0, "epsilon": 1e-3}])
def test_vicreg_matches_the_loop_reference(params):
    views = _views(n=9, d=4, seed=7)
    settings = {"sim": 25.0, "var": 25.0, "cov": 1.0, "epsilon": 1e-4, **params}
    expected = ref_vicreg_per_sample(views, **settings)
    loss = VICRegLoss(**params)
    np.testing.assert_allclose(to_numpy(loss.call(None, views)), expected, rtol=2e-5)
    assert _value(loss, views) == pytest.approx(expected.mean(), rel=2e-5)


def test_simsiam_matches_the_loop_reference_and_stops_the_projections_gradient():
    outputs = _views(n=7, v=4, seed=8)
    loss = SimSiamLoss()
    np.testing.assert_allclose(to_numpy(loss.call(None, outputs)), ref_simsiam(outputs), rtol=2e-5, atol=1e-6)
    _, grad = value_and_grad(lambda x: loss(None, x), outputs)
    assert np.all(grad[:, :2] == 0.0)  # the projections are targets
    assert np.any(grad[:, 2:] != 0.0)


def test_view_losses_check_their_inputs():
    with pytest.raises(ValueError, match=r"\(batch_size, 2, embedding_dim\)"):
        BarlowTwinsLoss()(None, _views(v=3))
    with pytest.raises(ValueError, match=r"\(batch_size, 4, embedding_dim\)"):
        SimSiamLoss()(None, _views(v=2))
    with pytest.raises(ValueError, match="at least 2"):
        VICRegLoss()(None, _views(n=1))
    with pytest.raises(ValueError, match="sample_weight"):
        BarlowTwinsLoss()(None, _views(), sample_weight=np.ones(6))
    with pytest.raises(ValueError, match="lambda_"):
        BarlowTwinsLoss(lambda_=-1.0)
    with pytest.raises(ValueError, match="epsilon"):
        VICRegLoss(epsilon=0.0)


# ----------------------------------------------------------------------------- degenerate batches, NaN

SSL_LOSSES = {
    "simclr": (lambda: NTXentLoss(), 2),
    "barlow-twins": (lambda: BarlowTwinsLoss(), 2),
    "vicreg": (lambda: VICRegLoss(), 2),
    "simsiam": (lambda: SimSiamLoss(), 4),
}


def _degenerate(kind, k, d=4, n=6):
    rng = np.random.default_rng(9)
    if kind == "equal_views":
        return np.repeat(rng.normal(size=(n, 1, d)), k, axis=1)
    if kind == "constant":
        return np.full((n, k, d), 0.7)
    if kind == "zeros":
        return np.zeros((n, k, d))
    if kind == "two_samples":
        return rng.normal(size=(2, k, d))
    raise ValueError(kind)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("kind", ["equal_views", "constant", "zeros", "two_samples"])
@pytest.mark.parametrize("method", list(SSL_LOSSES))
def test_degenerate_batches_give_finite_values_and_gradients(method, kind, dtype):
    make, k = SSL_LOSSES[method]
    x = keras.ops.convert_to_numpy(keras.ops.cast(_degenerate(kind, k), dtype))
    loss = make()
    value, grad = value_and_grad(lambda v: loss(None, v), x)
    assert np.isfinite(float(value)), (method, kind, dtype, value)
    assert np.all(np.isfinite(np.asarray(grad, np.float32))), (method, kind, dtype)


def test_equal_views_are_a_minimum_where_the_method_says_so():
    same = _degenerate("equal_views", 2, d=4, n=32).astype("float32")
    assert _value(VICRegLoss(var=0.0, cov=0.0), same) == pytest.approx(0.0, abs=1e-7)
    assert _value(BarlowTwinsLoss(lambda_=0.0), same) == pytest.approx(0.0, abs=1e-4)
    collapsed = _degenerate("constant", 2, d=4, n=32).astype("float32")
    # A collapsed batch is the worst case of the variance term: var * 1 (both views).
    assert _value(VICRegLoss(sim=0.0, cov=0.0), collapsed) == pytest.approx(25.0 * (1 - 1e-2), rel=1e-4)


@pytest.mark.parametrize("method", list(SSL_LOSSES))
def test_nan_in_gives_nan_out(method):
    make, k = SSL_LOSSES[method]
    x = _views(v=k, seed=10)
    x[2, 1, 0] = np.nan
    assert np.isnan(_value(make(), x))


@pytest.mark.parametrize("method", list(SSL_LOSSES))
def test_registry_builds_each_method_and_config_round_trips(method):
    loss = losses.get_ssl(method)
    assert type(loss) is type(SSL_LOSSES[method][0]())
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    _, k = SSL_LOSSES[method]
    x = _views(v=k, seed=11)
    assert _value(again, x) == pytest.approx(_value(loss, x), rel=1e-6)
    with pytest.raises(ValueError, match="simclr"):
        losses.get_ssl("byol")


# ----------------------------------------------------------------------------- golden values


@pytest.mark.parametrize("case", golden_cases("pml_ntxent"), ids=lambda c: c["id"])
def test_ntxent_matches_pytorch_metric_learning(case):
    loss = NTXentLoss(**case["params"])
    if "views" in case:
        views = case["views"]
        assert _value(loss, views) == pytest.approx(float(case["loss"]), rel=1e-5)
        per_row = to_numpy(loss.call(np.repeat(np.arange(len(views)), 2), views.reshape(-1, views.shape[-1])))
        np.testing.assert_allclose(per_row, case["per_sample"], rtol=1e-5, atol=1e-6)
    else:
        got = float(to_numpy(loss(case["labels"], case["embeddings"])))
        assert got == pytest.approx(float(case["loss"]), rel=1e-5)


@pytest.mark.parametrize("case", golden_cases("pml_vicreg"), ids=lambda c: c["id"])
def test_vicreg_matches_pytorch_metric_learning(case):
    p = case["params"]
    loss = VICRegLoss(sim=p["invariance_lambda"], var=p["variance_mu"], cov=p["covariance_v"], epsilon=p["eps"])
    assert _value(loss, case["views"]) == pytest.approx(float(case["loss"]), rel=1e-5)


@pytest.mark.parametrize("case", golden_cases("tfsim_simclr"), ids=lambda c: c["id"])
def test_ntxent_is_half_tensorflow_similarity_simclr(case):
    loss = NTXentLoss(**case["params"])
    views = case["views"]
    # tfsim adds the two directions' cross-entropies per sample; NT-Xent averages them.
    np.testing.assert_allclose(to_numpy(loss.call(None, views)), case["per_sample"] / 2, rtol=1e-5, atol=1e-6)
    assert _value(loss, views) == pytest.approx(float(case["loss"]) / 2, rel=1e-5)


@pytest.mark.parametrize("case", golden_cases("tfsim_barlow"), ids=lambda c: c["id"])
def test_barlow_matches_tensorflow_similarity(case):
    p = case["params"]
    loss = BarlowTwinsLoss(lambda_=p["lambda_"], epsilon=0.0)
    assert _value(loss, case["views"]) + p["margin"] == pytest.approx(float(case["loss"]), rel=1e-5)
    with_epsilon = _value(BarlowTwinsLoss(lambda_=p["lambda_"]), case["views"])
    assert with_epsilon == pytest.approx(float(case["loss"]), rel=1e-3)  # the default epsilon moves it a little


def _biased_variance_term(z, epsilon):
    z = np.asarray(z, np.float64)
    return np.mean(np.maximum(0.0, 1.0 - np.sqrt(z.var(axis=0) + epsilon)))


@pytest.mark.parametrize("case", golden_cases("tfsim_vicreg"), ids=lambda c: c["id"])
def test_vicreg_matches_tensorflow_similarity_up_to_its_biased_variance(case):
    p = case["params"]
    views = case["views"]
    loss = VICRegLoss(sim=p["lambda_"], var=p["mu"], cov=p["nu"], epsilon=p["std_const"])
    got = to_numpy(loss.call(None, views))
    # tfsim's variance term divides by n, ours (PML's, the authors') by n - 1.
    ours_var = np.mean([_vicreg_terms(views[:, k], p["std_const"])[0] for k in (0, 1)])
    theirs_var = np.mean([_biased_variance_term(views[:, k], p["std_const"]) for k in (0, 1)])
    shift = p["mu"] * (theirs_var - ours_var)
    np.testing.assert_allclose(got + shift, case["per_sample"], rtol=1e-5, atol=1e-5)
    if np.min(views.std(axis=0)) > 1.0:  # the scaled cases: no variance term, equal values
        assert shift == 0.0
        assert _value(loss, views) == pytest.approx(float(case["loss"]), rel=1e-5)


@pytest.mark.parametrize("case", golden_cases("tfsim_simsiam"), ids=lambda c: c["id"])
def test_simsiam_matches_tensorflow_similarity(case):
    margin = case["params"]["margin"]
    outputs = case["views"]
    got = to_numpy(SimSiamLoss().call(None, outputs))
    np.testing.assert_allclose(got + 2 * margin, case["per_sample"], rtol=1e-5, atol=1e-6)
    assert _value(SimSiamLoss(), outputs) + 2 * margin == pytest.approx(float(case["loss"]), rel=1e-5, abs=1e-6)


def test_ntxent_with_a_miner_uses_the_mined_pairs_only():
    from dmlkeras.mining import HardMiner

    rng = np.random.default_rng(12)
    labels = rng.permutation(np.arange(12) % 3)
    x = rng.normal(size=(12, 4)).astype("float32")
    got = float(to_numpy(NTXentLoss(temperature=0.5, miner=HardMiner())(labels, x)))
    expected = []
    for a in range(12):  # hardest positive: least similar; hardest negative: most similar
        pos = min((p for p in range(12) if p != a and labels[p] == labels[a]), key=lambda p: _cos(x[a], x[p]))
        neg = max((k for k in range(12) if labels[k] != labels[a]), key=lambda k: _cos(x[a], x[k]))
        z_ap, z_an = _cos(x[a], x[pos]) / 0.5, _cos(x[a], x[neg]) / 0.5
        expected.append(-np.log(np.exp(z_ap) / (np.exp(z_ap) + np.exp(z_an))))
    assert got == pytest.approx(float(np.mean(expected)), rel=2e-5)
