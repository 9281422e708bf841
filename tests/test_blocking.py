"""Blocked in-batch losses (``block_size=``): the same values and gradients as unblocked, in less memory."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from dmlkeras import losses
from dmlkeras.mining import DistanceWeightedMiner, MultiSimilarityMiner, SemiHardMiner
from tests.backend_utils import to_numpy, value_and_grad

BLOCKABLE = [name for name in losses.names() if name not in ("lifted-structure", "quadruplet")]


def _compiled(fn):
    """``fn`` compiled with ``jax.jit`` on JAX (eager JAX dispatches the mining loops op by op: slow)."""
    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(fn)
    return fn


def _batch(n=29, d=6, classes=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype("float32"), rng.integers(0, classes, n)


def _both(name, **kwargs):
    return losses.get(name, **kwargs), losses.get(name, block_size=8, **kwargs)


@pytest.mark.parametrize("name", BLOCKABLE)
def test_blocked_value_and_gradient_equal_unblocked(name):
    x, y = _batch()
    weights = np.random.default_rng(1).uniform(0.0, 2.0, len(y)).astype("float32")
    plain, blocked = _both(name)
    for w in (None, weights):
        value, grad = value_and_grad(_compiled(lambda v, loss=plain: loss(y, v, sample_weight=w)), x)
        blocked_value, blocked_grad = value_and_grad(_compiled(lambda v, loss=blocked: loss(y, v, sample_weight=w)), x)
        np.testing.assert_allclose(blocked_value, value, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(blocked_grad, grad, rtol=1e-4, atol=1e-6)
        assert np.abs(grad).max() > 0  # a gradient that could differ


@pytest.mark.parametrize("name", ["triplet-semihard", "multi-similarity", "supcon", "batch-contrastive"])
def test_blocked_per_query_values_and_sum_reduction(name):
    x, y = _batch(n=21)
    plain, blocked = _both(name)
    np.testing.assert_allclose(to_numpy(blocked.call(y, x)), to_numpy(plain.call(y, x)), rtol=1e-5, atol=1e-6)
    plain_sum, blocked_sum = _both(name, reduction="sum")
    np.testing.assert_allclose(to_numpy(blocked_sum(y, x)), to_numpy(plain_sum(y, x)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["triplet-semihard", "triplet-all", "multi-similarity", "supcon", "circle"])
def test_blocked_against_a_reference_with_self_index_and_mask(name):
    x, y = _batch(n=13)
    memory, memory_labels = _batch(n=20, seed=2)
    reference = np.concatenate([x, memory])
    ref_labels = np.concatenate([y, memory_labels])
    self_index = np.arange(len(y))
    ref_mask = np.arange(len(reference)) < len(reference) - 7  # the last rows are empty slots
    plain, blocked = _both(name)

    def run(loss):
        return _compiled(
            lambda v: loss(y, v, ref_labels=ref_labels, ref_embeddings=reference, self_index=self_index, ref_mask=ref_mask)
        )

    value, grad = value_and_grad(run(plain), x)
    blocked_value, blocked_grad = value_and_grad(run(blocked), x)
    np.testing.assert_allclose(blocked_value, value, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(blocked_grad, grad, rtol=1e-4, atol=1e-6)


def test_ref_mask_removes_rows_exactly():
    """Masked reference rows count nowhere: the loss equals the loss without them (ids and multi-hot).

    Not QuadrupletLoss: its negative pairs among the reference rows read the class ids, not the mask.
    """
    x, y = _batch(n=8)
    memory, memory_labels = _batch(n=9, seed=3)
    keep = np.array([True, False, True, True, False, True, False, True, True])
    for name in [name for name in losses.names() if name != "quadruplet"]:
        loss = losses.get(name)
        masked = _compiled(lambda v, loss=loss: loss(y, v, ref_labels=memory_labels, ref_embeddings=memory, ref_mask=keep))(x)
        dropped = _compiled(lambda v, loss=loss: loss(y, v, ref_labels=memory_labels[keep], ref_embeddings=memory[keep]))(x)
        np.testing.assert_allclose(to_numpy(masked), to_numpy(dropped), rtol=1e-5, atol=1e-6, err_msg=name)
    hot = np.eye(6, dtype="float32")[y]
    loss = losses.get("multi-similarity")
    masked = loss(hot, x, ref_labels=np.eye(6, dtype="float32")[memory_labels], ref_embeddings=memory, ref_mask=keep)
    dropped = loss(hot, x, ref_labels=np.eye(6, dtype="float32")[memory_labels[keep]], ref_embeddings=memory[keep])
    np.testing.assert_allclose(to_numpy(masked), to_numpy(dropped), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "loss",
    [
        losses.TripletLoss(margin=0.2, miner=SemiHardMiner()),
        losses.BatchContrastiveLoss(miner=MultiSimilarityMiner()),
        losses.MultiSimilarityLoss(miner=DistanceWeightedMiner()),
    ],
    ids=["semihard-miner", "contrastive-ms-miner", "ms-distance-weighted"],
)
def test_blocked_with_miners_and_multi_hot_labels(loss):
    x, y = _batch(n=20)
    blocked = type(loss).from_config({**loss.get_config(), "block_size": 8})
    hot = np.eye(6, dtype="float32")[y]
    for labels in (y, hot):
        value, grad = value_and_grad(_compiled(lambda v: loss(labels, v)), x)
        blocked_value, blocked_grad = value_and_grad(_compiled(lambda v: blocked(labels, v)), x)
        np.testing.assert_allclose(blocked_value, value, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(blocked_grad, grad, rtol=1e-4, atol=1e-6)


def test_blocked_relation_labels():
    x, y = _batch(n=17)
    relation = y[:, None] == y[None, :]
    plain = losses.TripletLoss(margin=0.3, label_format="relation")
    blocked = losses.TripletLoss(margin=0.3, label_format="relation", block_size=5)
    np.testing.assert_allclose(to_numpy(blocked(relation, x)), to_numpy(plain(relation, x)), rtol=1e-5)


@pytest.mark.parametrize("name", ["lifted-structure", "quadruplet"])
def test_losses_that_need_the_whole_batch_refuse_block_size(name):
    with pytest.raises(ValueError, match="does not take block_size"):
        losses.get(name, block_size=8)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_block_size_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match="block_size must be an integer >= 1"):
        losses.TripletLoss(block_size=bad)


def test_block_size_is_serialised_and_one_block_is_the_plain_loss():
    loss = losses.MultiSimilarityLoss(block_size=64)
    again = losses.MultiSimilarityLoss.from_config(loss.get_config())
    assert again.block_size == 64
    x, y = _batch(n=40)
    assert float(to_numpy(again(y, x))) == float(to_numpy(losses.MultiSimilarityLoss()(y, x)))


@pytest.mark.parametrize("cls", [losses.TripletSemiHardLoss, losses.TripletHardLoss, losses.TripletLoss])
def test_block_size_survives_the_config_of_every_triplet_class(cls):
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(cls(block_size=16)))
    assert type(again) is cls and again.block_size == 16


def test_blocked_loss_in_fit_and_evaluate():
    """Compiled (traced, with an unknown batch size on TensorFlow): same evaluation loss, and training lowers it."""
    x, y = _batch(n=96, d=8, classes=4)
    x = x + 2.0 * np.eye(8, dtype="float32")[y]  # learnable classes

    def model(loss):
        keras.utils.set_random_seed(0)
        tower = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
        tower.compile(keras.optimizers.SGD(0.05), loss=loss)
        return tower

    plain = model(losses.TripletLoss(margin=0.5))
    blocked = model(losses.TripletLoss(margin=0.5, block_size=10))
    np.testing.assert_allclose(
        blocked.evaluate(x, y, batch_size=48, verbose=0), plain.evaluate(x, y, batch_size=48, verbose=0), rtol=1e-5
    )
    history = blocked.fit(x, y, batch_size=48, epochs=8, shuffle=False, verbose=0).history["loss"]
    assert history[-1] < history[0]


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="XLA's compiled memory analysis (JAX)")
def test_blocked_gradient_needs_memory_of_a_block_not_of_the_batch():
    import jax

    x, y = _batch(n=1024, d=16, classes=64)

    def temp_bytes(loss):
        compiled = jax.jit(jax.grad(lambda v: loss(y, v))).lower(x).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    plain = temp_bytes(losses.TripletLoss(margin=0.2))
    blocked = temp_bytes(losses.TripletLoss(margin=0.2, block_size=64))
    assert plain > 4 * 1024 * 1024  # at least one (n, n) float32 matrix
    assert blocked < plain / 4
