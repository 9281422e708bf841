"""Parity with tensorflow-addons on the golden values of tools/make_golden.py.

The batches are P x K-like (every anchor has a positive and a negative), where
dmlkeras and tensorflow-addons define the same loss.
"""

import numpy as np
import pytest

from dmlkeras.losses import ContrastiveLoss, TripletHardLoss, TripletSemiHardLoss
from tests.backend_utils import to_numpy
from tests.golden_utils import golden_cases


@pytest.mark.parametrize("case", golden_cases("tfa_contrastive"), ids=lambda c: c["id"])
def test_contrastive_matches_tensorflow_addons(case):
    loss = ContrastiveLoss(**case["params"])
    per_pair = to_numpy(loss.call(case["y_true"].astype("float32"), case["y_pred"]))
    np.testing.assert_allclose(per_pair, case["per_sample"], rtol=1e-5, atol=1e-7)
    assert float(to_numpy(loss(case["y_true"], case["y_pred"]))) == pytest.approx(float(case["loss"]), rel=1e-5)


@pytest.mark.parametrize("case", golden_cases("tfa_triplet_semihard"), ids=lambda c: c["id"])
def test_semihard_matches_tensorflow_addons(case):
    loss = TripletSemiHardLoss(**case["params"])
    got = float(to_numpy(loss(case["labels"], case["embeddings"])))
    assert got == pytest.approx(float(case["loss"]), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("case", golden_cases("tfa_triplet_hard"), ids=lambda c: c["id"])
def test_hard_matches_tensorflow_addons(case):
    loss = TripletHardLoss(**case["params"])
    got = float(to_numpy(loss(case["labels"], case["embeddings"])))
    assert got == pytest.approx(float(case["loss"]), rel=1e-5, abs=1e-6)
