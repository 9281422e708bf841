"""Training under a mixed-precision policy: every in-batch loss and every head, on every backend.

Half precision is where the field's NaN reports come from (a float16 tower
whose gradients overflow, a loss computed in half). Each case trains a tiny
tower on one P x K batch under ``keras.mixed_precision.set_dtype_policy``
(``"mixed_float16"``: Keras wraps the optimizer in a ``LossScaleOptimizer``;
``"mixed_bfloat16"``: no loss scaling) and checks

- the loss of the untrained model on the batch is within ``TOLERANCE`` of the
  same model (same weights) in float32;
- the first ``STEPS`` steps give finite losses, every weight stays finite;
- the loss goes down over ``MORE_STEPS`` further steps on the same batch.

Tolerances (relative, on the loss value): the embeddings of a half-precision
tower carry the policy's rounding (float16: 11 significant bits, bfloat16: 8),
and the losses compute in float32 from them. Measured on this batch, the
largest deviation of a smooth loss or head is 0.06% (float16) and 1.3%
(bfloat16, TensorFlow), so the bounds are 1% and 3%. Semi-hard mining is
discontinuous: a negative that changes rank under rounding moves the loss of
a 16-sample batch by about 3% (JAX float16, every backend's bfloat16), so it
gets 5%.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from dmlkeras import heads, losses
from tests.backend_utils import to_numpy

BACKEND = keras.backend.backend()
POLICIES = ("mixed_float16", "mixed_bfloat16")
TOLERANCE = {"mixed_float16": 1e-2, "mixed_bfloat16": 3e-2}
DISCONTINUOUS = {"triplet-semi-hard": 5e-2}  # mining whose choice rounding can flip
STEPS, MORE_STEPS = 3, 7
CLASSES, PER_CLASS, INPUT_DIM, EMBEDDING_DIM = 4, 4, 8, 8

LOSSES = {
    "triplet-semi-hard": lambda: losses.TripletLoss(mining="semi-hard"),
    "triplet-hard": lambda: losses.TripletLoss(mining="hard"),
    "triplet-all": lambda: losses.TripletLoss(mining="all"),
    "batch-contrastive": lambda: losses.BatchContrastiveLoss(),
    "lifted": lambda: losses.LiftedStructureLoss(),
    "npairs": lambda: losses.NPairsLoss(),
    "quadruplet": lambda: losses.QuadrupletLoss(),
    "multi-similarity": lambda: losses.MultiSimilarityLoss(),
    "circle": lambda: losses.CircleLoss(),
    "supcon": lambda: losses.SupervisedContrastiveLoss(),
}
HEADS = {
    "center": lambda: heads.CenterLoss(num_classes=CLASSES, name="head"),
    "triplet-center": lambda: heads.TripletCenterLoss(num_classes=CLASSES, name="head"),
    "proxy-anchor": lambda: heads.ProxyAnchorLoss(num_classes=CLASSES, name="head"),
    "arcface": lambda: heads.ArcFace(num_classes=CLASSES, name="head"),
    "cosface": lambda: heads.CosFace(num_classes=CLASSES, name="head"),
}


def _cases(names):
    return [pytest.param(name, policy, id=f"{name}-{policy}") for name in names for policy in POLICIES]


@pytest.fixture
def set_policy():
    """Set a global dtype policy for the test; always back to float32 afterwards."""
    yield keras.mixed_precision.set_dtype_policy
    keras.mixed_precision.set_dtype_policy("float32")


def _batch():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(CLASSES), PER_CLASS).astype("int32")
    centres = rng.normal(size=(CLASSES, INPUT_DIM))
    x = (centres[labels] + rng.normal(scale=1.5, size=(len(labels), INPUT_DIM))).astype("float32")
    return x, labels


def _tower():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((INPUT_DIM,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(EMBEDDING_DIM),
        ],
        name="tower",
    )


def _head_model(name):
    features = keras.Input((INPUT_DIM,), name="features")
    labels = keras.Input((), dtype="int32", name="label")
    return keras.Model([features, labels], HEADS[name]()([_tower()(features), labels]))


def _head_loss(model, x, labels) -> float:
    model([x, labels])
    return float(sum(float(to_numpy(value)) for value in model.losses))


def _check_training(model, fit_inputs, fit_targets, policy):
    if policy == "mixed_float16":
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    history = model.fit(
        fit_inputs, fit_targets, batch_size=CLASSES * PER_CLASS, epochs=STEPS + MORE_STEPS, shuffle=False, verbose=0
    )
    values = np.asarray(history.history["loss"], dtype="float64")
    assert np.isfinite(values).all(), values
    for weight in model.weights:
        assert np.isfinite(to_numpy(weight)).all(), weight.path
    assert values[-1] < values[0], values


@pytest.mark.parametrize("name, policy", _cases(LOSSES))
def test_in_batch_loss_trains_under_mixed_precision(name, policy, set_policy):
    x, labels = _batch()
    reference = _tower()
    expected = float(to_numpy(LOSSES[name]()(labels, reference(x))))

    set_policy(policy)
    tower = _tower()
    tower.set_weights(reference.get_weights())
    assert keras.backend.standardize_dtype(tower(x).dtype) == policy.split("_")[1]
    loss = LOSSES[name]()
    tolerance = DISCONTINUOUS.get(name, TOLERANCE[policy])
    assert float(to_numpy(loss(labels, tower(x)))) == pytest.approx(expected, rel=tolerance, abs=1e-4)

    tower.compile(optimizer=keras.optimizers.Adam(0.01), loss=loss)
    _check_training(tower, x, labels, policy)


@pytest.mark.parametrize("name, policy", _cases(HEADS))
def test_head_trains_under_mixed_precision(name, policy, set_policy):
    x, labels = _batch()
    reference = _head_model(name)
    expected = _head_loss(reference, x, labels)

    set_policy(policy)
    model = _head_model(name)
    model.set_weights(reference.get_weights())
    assert _head_loss(model, x, labels) == pytest.approx(expected, rel=TOLERANCE[policy], abs=1e-4)

    model.compile(optimizer=keras.optimizers.Adam(0.01))
    _check_training(model, [x, labels], None, policy)


# All-zero embedding rows (a dead ReLU tower, zero-padded inputs): cosine losses
# L2-normalise them. l2_normalize bounds the gradient gain at zero to 1e3 (it
# was 1e6, issue 21 item 4), so multi-similarity now trains under float16 loss
# scaling. Circle (gamma = 256) and SupCon (1 / temperature = 10) multiply that
# gain by their logit scales: in float16 the gradient still overflows for the
# ten steps this test allows, while the loss-scale optimizer halves its scale
# from 2**15 after each skipped step (docs/reliability.md, known limits).
ZERO_ROW_LOSSES = ("circle", "supcon", "multi-similarity")
ZERO_ROW_FLOAT16 = pytest.mark.xfail(
    strict=True,
    reason="known limit: a logit scale of 10-256 times the bounded 1e3 gain at a zero row overflows float16 "
    "under loss scaling for the first steps, so LossScaleOptimizer skips them",
)


@pytest.mark.parametrize(
    "name, policy",
    [
        pytest.param(name, policy, id=f"{name}-{policy}", marks=[ZERO_ROW_FLOAT16] if policy == "mixed_float16" and name != "multi-similarity" else [])
        for name in ZERO_ROW_LOSSES
        for policy in POLICIES
    ],
)
def test_all_zero_embedding_rows_train_under_mixed_precision(name, policy, set_policy):
    x, labels = _batch()
    x[[0, 5]] = 0.0  # with no bias, these rows embed to exactly 0
    set_policy(policy)
    keras.utils.set_random_seed(0)
    tower = keras.Sequential([keras.Input((INPUT_DIM,)), keras.layers.Dense(EMBEDDING_DIM, use_bias=False)])
    tower.compile(optimizer=keras.optimizers.Adam(0.01), loss=LOSSES[name]())
    _check_training(tower, x, labels, policy)
