"""Tests of dmlkeras.recsys.losses (and the unit-ball constraint of the models).

Backend-agnostic (run with KERAS_BACKEND=tensorflow and KERAS_BACKEND=jax).
"""

from __future__ import annotations

import numpy as np
import pytest

from dmlkeras import recsys
from tests.backend_utils import to_numpy


def test_cml_loss_matches_hand_computation():
    d = np.array([[0.5, 0.2, 0.9, 2.0], [0.1, 1.0, 1.0, 1.0]], "float32")
    margin, num_items = 0.5, 60
    # Row 0: impostors = negatives with 0.5 + 0.5 - d > 0 -> 0.2 and 0.9 (2 of 3).
    rank = np.floor(num_items * 2 / 3)
    expected0 = np.log(rank + 1) * (margin + 0.5 - 0.2)
    np.testing.assert_allclose(to_numpy(recsys.cml_loss(d, margin, num_items)), [expected0, 0.0], rtol=1e-5)
    np.testing.assert_allclose(to_numpy(recsys.cml_loss(d, margin)), [0.8, 0.0], rtol=1e-5)
    with pytest.raises(ValueError, match="num_negatives"):
        recsys.cml_loss(np.zeros((2, 1), "float32"))


def test_covariance_bpr_and_softmax_losses_match_numpy():
    x = np.random.default_rng(0).normal(size=(16, 5)).astype("float32")
    c = np.cov(x, rowvar=False, bias=True)
    expected = np.sum(c**2) - np.sum(np.diag(c) ** 2)
    np.testing.assert_allclose(float(to_numpy(recsys.covariance_loss(x))), expected, rtol=1e-4)
    s = np.random.default_rng(1).normal(size=(4, 6)).astype("float32")
    bpr = np.mean(np.log1p(np.exp(s[:, 1:] - s[:, :1])), axis=1)
    np.testing.assert_allclose(to_numpy(recsys.bpr_loss(s)), bpr, rtol=1e-5)
    softmax = np.log(np.exp(s).sum(axis=1)) - s[:, 0]
    np.testing.assert_allclose(to_numpy(recsys.sampled_softmax_loss(s)), softmax, rtol=1e-5)


def test_unit_ball_constraint_only_shrinks_long_rows():
    w = np.array([[3.0, 4.0], [0.1, 0.0], [0.0, 0.0]], "float32")
    out = to_numpy(recsys.UnitBallConstraint()(w))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.1, 0.0], [0.0, 0.0]], atol=1e-6)
    np.testing.assert_allclose(
        np.linalg.norm(to_numpy(recsys.UnitBallConstraint(2.0)(w * 10)), axis=1)[:2], [2.0, 1.0], rtol=1e-5
    )
    assert recsys.UnitBallConstraint.from_config(recsys.UnitBallConstraint(0.5).get_config()).max_norm == 0.5
    with pytest.raises(ValueError):
        recsys.UnitBallConstraint(0.0)
