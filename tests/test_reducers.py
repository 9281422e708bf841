"""Reducers: masked means, the masked log-sum-exp, and the reducer objects with per-query weights."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from dmlkeras import reducers
from dmlkeras.reducers import MeanReducer, NonZeroMeanReducer, SumReducer, Terms, element_terms, masked_logsumexp
from tests.backend_utils import to_numpy, value_and_grad


def test_masked_logsumexp_values_and_gradients():
    x = np.array([[0.0, 1000.0, 2.0], [5.0, 6.0, 7.0], [-3.0, 0.5, 1e4]], "float32")
    mask = np.array([[True, False, True], [False, False, False], [True, True, False]])
    got = to_numpy(masked_logsumexp(x, mask, axis=1))
    assert got[0] == pytest.approx(np.logaddexp(0.0, 2.0)) and got[1] == -np.inf
    assert got[2] == pytest.approx(np.logaddexp(-3.0, 0.5))
    plus_one = to_numpy(masked_logsumexp(x, mask, axis=1, add_one=True))
    assert plus_one[1] == 0.0 and plus_one[0] == pytest.approx(np.log(1 + np.exp(0.0) + np.exp(2.0)))
    value, grad = value_and_grad(lambda v: keras.ops.sum(masked_logsumexp(v, mask, axis=1, add_one=True)), x)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    assert np.all(grad[~mask] == 0.0)
    _, grad = value_and_grad(lambda v: keras.ops.sum(keras.ops.softplus(masked_logsumexp(v, mask, axis=1))), x)
    assert np.all(np.isfinite(grad)) and np.all(grad[1] == 0.0)


def _loop_terms(values, valid, weights=None):
    n = values.shape[0]
    total, count, nonzero = np.zeros(n), np.zeros(n), np.zeros(n)
    for a in range(n):
        for j in range(values.shape[1]):
            if valid[a, j]:
                w = 1.0 if weights is None else weights[a, j]
                total[a] += w * values[a, j]
                count[a] += w
                nonzero[a] += w if values[a, j] > 0 else 0.0
    return total, count, nonzero


@pytest.mark.parametrize("seed", range(3))
def test_element_terms_match_loops(seed):
    rng = np.random.default_rng(seed)
    values = np.maximum(rng.normal(size=(5, 7)), 0.0).astype("float32")
    valid = rng.random((5, 7)) < 0.6
    weights = rng.random((5, 7)).astype("float32")
    for w in (None, weights):
        got = [to_numpy(t) for t in element_terms(values, valid, w)]
        for g, e in zip(got, _loop_terms(values, valid, w)):
            np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-6)


def test_reducers_weight_queries_in_sum_and_count():
    terms = Terms(np.array([3.0, 4.0, 0.0], "float32"), np.array([1.0, 2.0, 0.0], "float32"), np.array([1.0, 1.0, 0.0], "float32"))
    w = np.array([2.0, 0.0, 1.0], "float32")
    assert float(MeanReducer().reduce(terms)) == pytest.approx(7.0 / 3.0)
    assert float(MeanReducer().reduce(terms, w)) == pytest.approx(6.0 / 2.0)  # query 1 dropped, 0 twice
    assert float(NonZeroMeanReducer().reduce(terms)) == pytest.approx(7.0 / 2.0)
    assert float(SumReducer().reduce(terms, w)) == pytest.approx(6.0)
    np.testing.assert_allclose(to_numpy(MeanReducer().per_query(terms)), [3.0, 2.0, 0.0])


def test_an_empty_reduction_is_zero_with_zero_gradient():
    valid = np.zeros((2, 3), bool)

    def fn(v):
        return MeanReducer().reduce(element_terms(v, valid))

    value, grad = value_and_grad(fn, np.ones((2, 3), "float32"))
    assert value == 0.0 and np.all(grad == 0.0)


def test_get_and_serialisation():
    assert isinstance(reducers.get(None), MeanReducer)
    assert isinstance(reducers.get(None, default="sum"), SumReducer)
    assert isinstance(reducers.get("nonzero_mean"), NonZeroMeanReducer)
    config = keras.saving.serialize_keras_object(SumReducer())
    assert isinstance(reducers.get(config), SumReducer)
    with pytest.raises(ValueError, match="reducer must be"):
        reducers.get("median")
