import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmlkeras.distances import (
    METRICS,
    cosine_similarity_matrix,
    l2_normalize,
    paired_distances,
    pairwise_distances,
    resolve_metric,
)
from tests import references as ref
from tests.backend_utils import to_numpy, value_and_grad


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pairwise_matches_loop_reference(metric, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(7, 5)).astype("float32")
    b = rng.normal(size=(4, 5)).astype("float32")
    np.testing.assert_allclose(to_numpy(pairwise_distances(a, metric=metric)), ref.pairwise(a, metric), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        to_numpy(pairwise_distances(a, b, metric=metric)), ref.pairwise(a, metric, b), rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize("metric", METRICS)
def test_paired_matches_loop_reference(metric):
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(2, 9, 4)).astype("float32")
    expected = [ref.distance(u, v, metric) for u, v in zip(a, b)]
    np.testing.assert_allclose(to_numpy(paired_distances(a, b, metric=metric)), expected, rtol=1e-5, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 6),
    d=st.integers(1, 4),
    scale=st.sampled_from([1e-3, 1.0, 100.0]),
    metric=st.sampled_from(METRICS),
    seed=st.integers(0, 10_000),
)
def test_pairwise_properties(n, d, scale, metric, seed):
    x = (np.random.default_rng(seed).normal(size=(n, d)) * scale).astype("float32")
    dist = to_numpy(pairwise_distances(x, metric=metric))
    assert dist.shape == (n, n)
    assert np.all(dist >= 0)
    assert np.all(np.diag(dist) == 0)
    np.testing.assert_allclose(dist, dist.T, rtol=1e-4, atol=1e-4 * scale**2 + 1e-6)


def test_diagonal_gradient_is_finite_for_identical_rows():
    x = np.ones((4, 3), "float32")
    for metric in METRICS:
        value, grad = value_and_grad(lambda v: keras.ops.sum(pairwise_distances(v, metric=metric)), x)
        assert np.isfinite(value) and np.all(np.isfinite(grad)), metric
    value, grad = value_and_grad(lambda v: keras.ops.sum(paired_distances(v, v * 1.0)), x)
    assert np.all(np.isfinite(grad))


def test_zero_vector_cosine_is_defined():
    x = np.zeros((2, 3), "float32")
    np.testing.assert_allclose(to_numpy(pairwise_distances(x, metric="cosine")), [[0, 1], [1, 0]])
    _, grad = value_and_grad(lambda v: keras.ops.sum(pairwise_distances(v, metric="cosine")), x)
    assert np.all(np.isfinite(grad))


def test_half_precision_is_computed_in_float32():
    x = np.random.default_rng(0).normal(size=(5, 3))
    for dtype in ("float16", "bfloat16"):
        half = keras.ops.cast(x, dtype)
        out = to_numpy(pairwise_distances(half))
        assert out.dtype == np.float32
        np.testing.assert_allclose(out, ref.pairwise(x, "euclidean"), rtol=2e-2, atol=2e-2)


def test_aliases_and_unknown_metric():
    assert resolve_metric("L2") == "euclidean"
    assert resolve_metric("squared-L2") == "squared_euclidean"
    assert resolve_metric("angular") == "cosine"
    with pytest.raises(ValueError, match="euclidean, squared_euclidean, cosine, manhattan"):
        pairwise_distances(np.zeros((2, 2)), metric="chebyshev")


def test_shape_errors():
    with pytest.raises(ValueError, match=r"\(n, d\)"):
        pairwise_distances(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="same embedding size"):
        pairwise_distances(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="same embedding size"):
        paired_distances(np.zeros((2, 3)), np.zeros((2, 4)))


def test_normalize_and_cosine_similarity():
    x = np.array([[3.0, 4.0], [0.0, 0.0], [-1.0, 0.0]], "float32")
    norm = to_numpy(l2_normalize(x))
    np.testing.assert_allclose(np.linalg.norm(norm, axis=1), [1, 0, 1], atol=1e-6)
    sim = to_numpy(cosine_similarity_matrix(x))
    np.testing.assert_allclose(sim[0, 2], -0.6, atol=1e-6)
    np.testing.assert_allclose(1 - sim[0, 2], to_numpy(pairwise_distances(x, metric="cosine"))[0, 2], atol=1e-6)


# ---------------------------------------------------------------------------
# Distance objects
# ---------------------------------------------------------------------------

from dmlkeras import distances  # noqa: E402

OBJECTS = {
    "euclidean": distances.Euclidean(),
    "squared_euclidean": distances.Euclidean(squared=True),
    "cosine": distances.Cosine(),
    "cosine_similarity": distances.CosineSimilarity(),
    "manhattan": distances.Manhattan(),
    "dot_product": distances.DotProduct(),
    "lp1": distances.LpDistance(1),
    "lp2": distances.LpDistance(2),
    "lp3": distances.LpDistance(3.0),
    "lp_inf": distances.LpDistance(float("inf")),
}


def _ref_value(u, v, name):
    """float64 loop reference of one object's value (its own orientation)."""
    u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
    if name in METRICS:
        return ref.distance(u, v, name)
    if name == "cosine_similarity":
        return 1.0 - ref.distance(u, v, "cosine") if np.any(u) and np.any(v) else 0.0
    if name == "dot_product":
        return float(np.dot(u, v))
    p = {"lp1": 1.0, "lp2": 2.0, "lp3": 3.0, "lp_inf": np.inf}[name]
    return float(np.max(np.abs(u - v))) if np.isinf(p) else float(np.sum(np.abs(u - v) ** p) ** (1 / p))


def _ref_matrix(a, name, b=None):
    same = b is None
    b = a if same else b
    out = np.array([[_ref_value(u, v, name) for v in b] for u in a])
    if same and not OBJECTS[name].is_similarity:
        np.fill_diagonal(out, 0.0)
    return out


@pytest.mark.parametrize("name", sorted(OBJECTS))
def test_objects_match_loop_references_with_and_without_reference(name):
    rng = np.random.default_rng(11)
    query = rng.normal(size=(6, 5)).astype("float32")
    reference = rng.normal(size=(3, 5)).astype("float32")
    obj = OBJECTS[name]
    np.testing.assert_allclose(to_numpy(obj.pairwise(query)), _ref_matrix(query, name), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(to_numpy(obj(query, reference)), _ref_matrix(query, name, reference), rtol=1e-5, atol=1e-5)
    expected = [_ref_value(u, v, name) for u, v in zip(query[:3], reference)]
    np.testing.assert_allclose(to_numpy(obj.paired(query[:3], reference)), expected, rtol=1e-5, atol=1e-5)
    if not obj.is_similarity:
        assert np.all(np.diag(to_numpy(obj.pairwise(query))) == 0)


@pytest.mark.parametrize("name", sorted(OBJECTS))
def test_distance_and_similarity_orientation(name):
    rng = np.random.default_rng(12)
    q, r = rng.normal(size=(2, 5, 3)).astype("float32")
    obj = OBJECTS[name]
    values = to_numpy(obj.pairwise(q, r))
    dist, sim = to_numpy(obj.distance_matrix(q, r)), to_numpy(obj.similarity_matrix(q, r))
    if name in ("cosine", "cosine_similarity"):
        np.testing.assert_allclose(dist, np.maximum(1 - sim, 0), atol=1e-6)
        np.testing.assert_allclose(dist, _ref_matrix(q, "cosine", r), rtol=1e-5, atol=1e-6)
    else:
        np.testing.assert_allclose(dist, -sim, atol=0)
    np.testing.assert_array_equal(sim if obj.is_similarity else dist, values)
    assert obj.is_similarity == (name in ("cosine_similarity", "dot_product"))
    # Same order either way: the closest reference of each query row.
    np.testing.assert_array_equal(np.argmin(dist, 1), np.argmax(sim, 1))


def test_get_names_aliases_callables_and_errors():
    assert distances.get("euclidean") == distances.Euclidean()
    assert distances.get("L2") == distances.Euclidean()
    assert distances.get("squared-L2") == distances.Euclidean(squared=True)
    assert distances.get("Squared_Euclidean").name == "squared_euclidean"
    assert distances.get("angular") == distances.Cosine()
    assert distances.get("l1") == distances.Manhattan()
    assert distances.get("dot") == distances.get("dot_product") == distances.DotProduct()
    assert distances.get("cosine_similarity").is_similarity
    obj = distances.LpDistance(3)
    assert distances.get(obj) is obj
    assert {o.name for o in OBJECTS.values()} == {
        "euclidean", "squared_euclidean", "cosine", "cosine_similarity", "manhattan", "dot_product", "lp"
    }

    def chebyshev(a, b=None):
        b = a if b is None else b
        return keras.ops.max(keras.ops.abs(a[:, None] - b[None]), axis=-1)

    wrapped = distances.get(chebyshev)
    assert not wrapped.is_similarity and wrapped.name == "chebyshev"
    x = np.random.default_rng(13).normal(size=(4, 3)).astype("float32")
    np.testing.assert_allclose(to_numpy(wrapped.pairwise(x)), _ref_matrix(x, "lp_inf"), rtol=1e-6)
    np.testing.assert_allclose(to_numpy(wrapped.paired(x, x[::-1])), [_ref_value(u, v, "lp_inf") for u, v in zip(x, x[::-1])])
    with pytest.raises(ValueError, match="Unknown distance 'hamming'. Valid names: euclidean, squared_euclidean, cosine"):
        distances.get("hamming")
    with pytest.raises(ValueError, match="must be a name"):
        distances.get(3)
    with pytest.raises(ValueError, match=r"p must be a finite number >= 1.0"):
        distances.LpDistance(0.5)
    with pytest.raises(ValueError, match="squared must be True or False"):
        distances.Euclidean(squared="yes")
    with pytest.raises(ValueError, match=r"query and reference must have the same embedding size d; got 3 and 4"):
        distances.Cosine().pairwise(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"query must have shape \(n, d\)"):
        distances.Manhattan().pairwise(np.zeros(3))


@pytest.mark.parametrize("name", sorted(OBJECTS))
def test_serialize_round_trip(name):
    obj = OBJECTS[name]
    config = distances.serialize(obj)
    assert config["registered_name"] == f"dmlkeras>{type(obj).__name__}"
    back = distances.deserialize(config)
    assert back == obj and type(back) is type(obj) and back.get_config() == obj.get_config()
    assert distances.get(config) == obj
    assert keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(obj)) == obj


def test_old_functions_accept_objects_and_equal_them():
    x = np.random.default_rng(14).normal(size=(5, 3)).astype("float32")
    for metric in METRICS:
        np.testing.assert_array_equal(
            to_numpy(pairwise_distances(x, metric=metric)), to_numpy(distances.get(metric).pairwise(x))
        )
    np.testing.assert_array_equal(
        to_numpy(pairwise_distances(x, metric=distances.DotProduct())), -to_numpy(distances.DotProduct().pairwise(x))
    )
    np.testing.assert_array_equal(to_numpy(cosine_similarity_matrix(x)), to_numpy(distances.CosineSimilarity()(x)))
    assert distances.as_float32 is __import__("dmlkeras._validation", fromlist=["as_float32"]).as_float32


@pytest.mark.parametrize("name", sorted(OBJECTS))
def test_objects_are_safe_at_zero_and_compute_half_precision_in_float32(name):
    obj = OBJECTS[name]
    x = np.ones((4, 3), "float32")
    x[2] = 0.0
    value, grad = value_and_grad(lambda v: keras.ops.sum(obj.pairwise(v)), x)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    value, grad = value_and_grad(lambda v: keras.ops.sum(obj.paired(v, v * 1.0)), x)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    half = keras.ops.cast(np.random.default_rng(15).normal(size=(5, 3)), "bfloat16")
    assert keras.backend.standardize_dtype(obj.pairwise(half).dtype) == "float32"


# ---------------------------------------------------------------------------
# Accuracy at large norms, NaN in -> NaN out, bounded normalisation gradients
# (regression tests of issue 21, items 1, 3 and 4)
# ---------------------------------------------------------------------------


def _cluster(n, d, norm, spread, seed):
    """``n`` float32 rows at ``spread`` (per coordinate) around a centre of norm ``norm``."""
    rng = np.random.default_rng(seed)
    centre = rng.normal(size=d)
    centre *= norm / np.linalg.norm(centre)
    return (centre + spread * rng.normal(size=(n, d))).astype("float32")


def _ref_euclidean(a, b, squared=False):
    a, b = np.float64(a), np.float64(b)  # the float32 rows' exact distances
    out = np.sum((a[:, None] - b[None]) ** 2, axis=-1)
    return out if squared else np.sqrt(out)


@pytest.mark.parametrize(
    "norm, spread",
    [(1100.0, 0.034), (1e4, 1e-2), (1e4, 1.0), (1.0, 0.1)],  # 1100 / 0.034: true distances ~0.39
)
def test_euclidean_is_accurate_relative_to_the_distance_at_large_norms(norm, spread):
    x = _cluster(16, 64, norm, spread, seed=16)
    off = ~np.eye(16, dtype=bool)
    for squared in (False, True):
        got = to_numpy(distances.Euclidean(squared=squared).pairwise(x))
        want = _ref_euclidean(x, x, squared)
        assert np.all(got[off] > 0)  # none cancels to 0 (before: 96 of 240 at norm 1100)
        np.testing.assert_allclose(got[off], want[off], rtol=1e-5)
        old = to_numpy(pairwise_distances(x, metric="squared_euclidean" if squared else "euclidean"))
        np.testing.assert_array_equal(old, got)
    # Query x reference, the reference a memory bank near the query.
    reference = _cluster(9, 64, norm, spread, seed=17)
    got = to_numpy(distances.Euclidean().pairwise(x, reference))
    np.testing.assert_allclose(got, _ref_euclidean(x, reference), rtol=1e-5)


def test_euclidean_is_accurate_for_a_query_far_from_its_reference():
    x = _cluster(8, 32, 1e4, 1e-2, seed=18)
    reference = _cluster(5, 32, 1.0, 0.5, seed=19)
    got = to_numpy(distances.Euclidean().pairwise(x, reference))
    np.testing.assert_allclose(got, _ref_euclidean(x, reference), rtol=1e-5)


def test_safe_sqrt_keeps_nan():
    from dmlkeras.distances import safe_sqrt

    out = to_numpy(safe_sqrt(keras.ops.array([float("nan"), 0.0, -1e-7, 9.0, float("inf")])))
    assert np.isnan(out[0]) and out[1] == 0 and out[2] == 0 and out[3] == 3 and out[4] == np.inf


@pytest.mark.parametrize("name", sorted(OBJECTS))
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_or_inf_rows_give_nan_in_their_row_and_column_only(name, bad):
    obj = OBJECTS[name]
    x = np.random.default_rng(20).normal(size=(6, 4)).astype("float32")
    x[1, 2] = bad
    x[4, 0] = bad
    reference = np.random.default_rng(21).normal(size=(3, 4)).astype("float32")
    reference[2, 3] = bad
    good = [0, 2, 3, 5]

    within = to_numpy(obj.pairwise(x))
    assert np.all(np.isnan(within[[1, 4]])) and np.all(np.isnan(within[:, [1, 4]]))
    np.testing.assert_allclose(within[np.ix_(good, good)], to_numpy(obj.pairwise(x[good])), rtol=1e-5, atol=1e-6)

    cross = to_numpy(obj.pairwise(x, reference))
    assert np.all(np.isnan(cross[[1, 4]])) and np.all(np.isnan(cross[:, 2]))
    np.testing.assert_allclose(
        cross[np.ix_(good, [0, 1])], to_numpy(obj.pairwise(x[good], reference[:2])), rtol=1e-5, atol=1e-6
    )
    paired = to_numpy(obj.paired(x[:3], reference))
    assert np.isnan(paired[1]) and np.isnan(paired[2]) and np.isfinite(paired[0])
    for metric in METRICS:  # the old functions too
        assert np.all(np.isnan(to_numpy(pairwise_distances(x, metric=metric))[1]))


def _grad_of_normalised(x, dtype, upstream):
    x = keras.ops.cast(x, dtype)

    def loss(v):
        return keras.ops.sum(keras.ops.multiply(l2_normalize(v), upstream))

    return value_and_grad(loss, x)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_l2_normalize_gradient_is_finite_and_bounded_at_zero_rows(dtype):
    rng = np.random.default_rng(22)
    x = rng.normal(size=(4, 8)).astype("float32")
    x[1] = 0.0
    x[2] = 1e-8
    upstream = (30.0 * rng.uniform(-1, 1, size=(1, 8))).astype("float32")  # e.g. a scale-30 ArcFace head
    _, grad = _grad_of_normalised(x, dtype, upstream)
    grad = np.asarray(grad, np.float32)
    assert np.all(np.isfinite(grad)), dtype
    bound = 65504.0 if dtype == "float16" else 1e6 * np.abs(upstream).max() * 8
    assert np.all(np.abs(grad) < bound)
    # Ordinary rows: unit norm, the values of x / ||x||.
    out = to_numpy(l2_normalize(keras.ops.cast(x, dtype)))
    rounded = np.asarray(to_numpy(keras.ops.cast(x, dtype)), np.float64)
    for i in (0, 3):
        np.testing.assert_allclose(out[i], rounded[i] / np.linalg.norm(rounded[i]), rtol=1e-6, atol=1e-7)
    assert np.all(out[1] == 0)


def test_l2_normalize_keeps_nan_and_unit_rows_down_to_the_floor():
    x = np.array([[np.nan, 1.0], [2e-6, 0.0], [0.0, 5e-7], [3.0, 4.0]], "float32")
    out = to_numpy(l2_normalize(x))
    assert np.all(np.isnan(out[0]))
    np.testing.assert_allclose(out[1:], [[1.0, 0.0], [0.0, 0.5], [0.6, 0.8]], rtol=1e-6)


def test_semi_hard_triplet_loss_is_translation_invariant_at_norm_1e4():
    # Issue 21 item 3: near-duplicates at norm 1e4 gave 0.167 with a zero gradient (truth ~1.0).
    from dmlkeras.losses import TripletLoss

    rng = np.random.default_rng(32)
    labels = np.repeat(np.arange(4), 4)
    centre = rng.normal(size=32)
    x = (centre * 1e4 / np.linalg.norm(centre) + 0.05 * rng.normal(size=(16, 32))).astype("float32")
    at_origin = (np.float64(x) - np.float64(x).mean(axis=0)).astype("float32")  # the same rows, shifted exactly
    loss = TripletLoss(mining="semi-hard", margin=1.0)
    value, grad = value_and_grad(lambda e: loss(labels, e), x)
    expected, expected_grad = value_and_grad(lambda e: loss(labels, e), at_origin)
    assert float(value) == pytest.approx(float(expected), rel=1e-4) and float(expected) > 0.9
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("within", [True, False])
def test_written_out_euclidean_gradient_equals_autodiff(monkeypatch, squared, within):
    # The torch backend's pairwise Euclidean carries its gradient written out (a custom gradient);
    # the other backends differentiate the expression. Both paths run here, on this backend.
    from dmlkeras import distances as distances_module

    rng = np.random.default_rng(0)
    x = rng.normal(size=(9, 4)).astype("float32")
    upstream = rng.normal(size=(9, 9) if within else (5, 4)).astype("float32")
    distance = distances_module.Euclidean(squared=squared)

    def objective(v):
        values = distance.pairwise(v) if within else distance.pairwise(v[:5], v[5:])
        return keras.ops.sum(values * keras.ops.convert_to_tensor(upstream))

    results = {}
    for written_out in (False, True):
        monkeypatch.setattr(distances_module, "_written_out_gradients", lambda w=written_out: w)
        results[written_out] = value_and_grad(objective, x)
    np.testing.assert_allclose(results[True][0], results[False][0], rtol=1e-6)
    np.testing.assert_allclose(results[True][1], results[False][1], rtol=1e-4, atol=1e-5)
    assert np.abs(results[True][1]).max() > 0.1  # a gradient, not zeros


@pytest.mark.parametrize("squared", [False, True])
def test_written_out_euclidean_gradient_is_zero_on_the_diagonal_and_finite_at_duplicates(monkeypatch, squared):
    from dmlkeras import distances as distances_module

    monkeypatch.setattr(distances_module, "_written_out_gradients", lambda: True)
    x = np.repeat(np.array([[1.0, 2.0], [3.0, -1.0]], "float32"), 2, axis=0)  # two pairs of duplicates
    value, grad = value_and_grad(lambda v: keras.ops.sum(distances_module.Euclidean(squared=squared).pairwise(v)), x)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    # Moving one row of a duplicate pair away from its twin and toward the other pair is symmetric:
    # the gradients of twins are equal.
    np.testing.assert_allclose(grad[0], grad[1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad[2], grad[3], rtol=1e-5, atol=1e-5)
