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
