"""Parity of the N-pairs, lifted, multi-similarity, circle, supervised
contrastive losses and of the proxy-anchor / ArcFace / CosFace heads with the
reference libraries, on the golden values of tools/make_golden.py and
tools/make_golden_pml.py (formulas: tools/README.md), and of CircleLoss with
Keras' own keras.losses.Circle.

Every comparison uses rtol=1e-5 (float32 against the libraries' float32).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from dmlkeras.heads import ArcFace, CosFace, ProxyAnchorLoss, arcface_loss, cosface_loss, proxy_anchor_loss
from dmlkeras.losses.lifted import LiftedStructureLoss
from dmlkeras.losses.npairs import NPairsTupleLoss, npairs_loss
from dmlkeras.losses.similarity import CircleLoss, MultiSimilarityLoss, SupervisedContrastiveLoss
from tests.backend_utils import to_numpy
from tests.golden_utils import golden_cases

RTOL = 1e-5


def _value(function, *args) -> float:
    """``function(*args)`` as a float; jitted on JAX (eager JAX recompiles every op per shape)."""
    if keras.backend.backend() == "jax":
        import jax

        return float(jax.jit(function)(*args))
    return float(to_numpy(function(*args)))


@pytest.mark.parametrize("case", golden_cases("tfa_npairs"), ids=lambda c: c["id"])
def test_npairs_matches_tensorflow_addons(case):
    # tfa: NpairsLoss()(labels, anchors @ positives.T); ours takes the anchors and positives.
    expected = float(case["loss"])
    labels, anchors, positives = case["labels"], case["anchors"], case["positives"]
    assert _value(npairs_loss, labels, anchors, positives) == pytest.approx(expected, rel=RTOL)
    stacked = np.stack([anchors, positives], axis=1)
    assert _value(NPairsTupleLoss(), labels, stacked) == pytest.approx(expected, rel=RTOL)


@pytest.mark.parametrize("case", golden_cases("tfa_lifted"), ids=lambda c: c["id"])
def test_lifted_matches_tensorflow_addons(case):
    loss = LiftedStructureLoss(margin=case["params"]["margin"])
    assert _value(loss, case["labels"], case["embeddings"]) == pytest.approx(float(case["loss"]), rel=RTOL)


@pytest.mark.parametrize("case", golden_cases("tfsim_multisimilarity"), ids=lambda c: c["id"])
def test_multi_similarity_matches_tensorflow_similarity(case):
    params = case["params"]
    assert params["distance"] == "cosine"
    # tfsim's lmda and center only enter as lmda - center: base = lmda + 1 - center.
    loss = MultiSimilarityLoss(
        alpha=params["alpha"],
        beta=params["beta"],
        base=params["lmda"] + 1.0 - params["center"],
        epsilon=params["epsilon"],
    )
    assert _value(loss, case["labels"], case["embeddings"]) == pytest.approx(float(case["loss"]), rel=RTOL)


@pytest.mark.parametrize("case", golden_cases("tfsim_circle"), ids=lambda c: c["id"])
def test_circle_matches_tensorflow_similarity(case):
    params = case["params"]
    loss = CircleLoss(margin=params["margin"], gamma=params["gamma"], variant="tensorflow-similarity")
    assert _value(loss, case["labels"], case["embeddings"]) == pytest.approx(float(case["loss"]), rel=RTOL)


@pytest.mark.parametrize("case", golden_cases("tfsim_circle"), ids=lambda c: c["id"])
def test_circle_paper_variant_matches_keras_circle(case):
    params = case["params"]
    labels, embeddings = case["labels"], case["embeddings"]  # stored L2-normalised
    expected = _value(keras.losses.Circle(gamma=params["gamma"], margin=params["margin"]), labels, embeddings)
    got = _value(CircleLoss(margin=params["margin"], gamma=params["gamma"]), labels, embeddings)
    assert got == pytest.approx(expected, rel=RTOL)


@pytest.mark.parametrize("case", golden_cases("pml_supcon"), ids=lambda c: c["id"])
def test_supervised_contrastive_matches_pytorch_metric_learning(case):
    loss = SupervisedContrastiveLoss(temperature=case["params"]["temperature"])
    assert _value(loss, case["labels"], case["embeddings"]) == pytest.approx(float(case["loss"]), rel=RTOL)


def _head_loss(head, embeddings, labels, weights) -> float:
    head([labels, embeddings])  # builds the weight
    head.set_weights([weights])
    head([labels, embeddings])
    return float(to_numpy(head.losses[0]))


def _check_head(case) -> bool:
    """The layer is checked on the first case of each file (it adds the function's value, see test_heads)."""
    return case["id"].endswith("-0")


@pytest.mark.parametrize("case", golden_cases("pml_proxy_anchor"), ids=lambda c: c["id"])
def test_proxy_anchor_matches_pytorch_metric_learning(case):
    params = case["params"]
    margin, alpha = params["margin"], params["alpha"]
    expected = float(case["loss"])

    def function(x, y, p):
        return proxy_anchor_loss(y, x, p, margin, alpha)

    assert _value(function, case["embeddings"], case["labels"], case["proxies"]) == pytest.approx(expected, rel=RTOL)
    if not _check_head(case):
        return
    head = ProxyAnchorLoss(params["num_classes"], margin=margin, alpha=alpha)
    assert _head_loss(head, case["embeddings"], case["labels"], case["proxies"]) == pytest.approx(expected, rel=RTOL)


@pytest.mark.parametrize("case", golden_cases("pml_arcface"), ids=lambda c: c["id"])
def test_arcface_matches_pytorch_metric_learning(case):
    params = case["params"]
    scale, margin = params["scale"], float(np.radians(params["margin"]))  # PML takes degrees
    expected = float(case["loss"])

    def function(x, y, w):
        return arcface_loss(y, x, w, scale, margin)

    assert _value(function, case["embeddings"], case["labels"], case["weights"]) == pytest.approx(expected, rel=RTOL)
    if not _check_head(case):
        return
    head = ArcFace(params["num_classes"], scale=scale, margin=margin)
    assert _head_loss(head, case["embeddings"], case["labels"], case["weights"]) == pytest.approx(expected, rel=RTOL)


@pytest.mark.parametrize("case", golden_cases("pml_cosface"), ids=lambda c: c["id"])
def test_cosface_matches_pytorch_metric_learning(case):
    params = case["params"]
    scale, margin = params["scale"], params["margin"]
    expected = float(case["loss"])

    def function(x, y, w):
        return cosface_loss(y, x, w, scale, margin)

    assert _value(function, case["embeddings"], case["labels"], case["weights"]) == pytest.approx(expected, rel=RTOL)
    if not _check_head(case):
        return
    head = CosFace(params["num_classes"], scale=scale, margin=margin)
    assert _head_loss(head, case["embeddings"], case["labels"], case["weights"]) == pytest.approx(expected, rel=RTOL)
