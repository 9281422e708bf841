"""Cross-batch memory (dmlkeras.models.CrossBatchMemory) against a NumPy queue kept by loops."""

from __future__ import annotations

import collections

import keras
import numpy as np
import pytest

from dmlkeras import losses
from dmlkeras.models import CrossBatchMemory
from tests import references as ref
from tests.backend_utils import to_numpy, value_and_grad

DIM = 3


def _tower():
    return keras.Sequential([keras.Input((DIM,)), keras.layers.Dense(DIM)])


def _model(loss, memory_size, warmup_steps=0):
    model = CrossBatchMemory(_tower(), loss, memory_size=memory_size, warmup_steps=warmup_steps)
    model.build((None, DIM))
    return model


def _steps(count=6, n=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, classes, n), rng.normal(size=(n, DIM)).astype("float32")) for _ in range(count)]


LOSSES = {
    "triplet-semihard": (
        lambda: losses.TripletLoss(margin=0.5),
        lambda q, r, pos, neg: ref.ref_triplet(ref.cross(q, r, "euclidean"), pos, neg, 0.5, "semi-hard"),
    ),
    "multi-similarity": (
        lambda: losses.MultiSimilarityLoss(),
        lambda q, r, pos, neg: ref.ref_multi_similarity(ref.cosine_similarities(q, r), pos, neg, 2.0, 50.0, 0.5, 0.1),
    ),
    "supcon": (
        lambda: losses.SupervisedContrastiveLoss(temperature=0.5),
        lambda q, r, pos, neg: ref.ref_supcon(ref.cosine_similarities(q, r), pos, neg, 0.5),
    ),
}


def _reference_loss(name, queue, labels, x, memory_size, use_memory):
    """The loss of a batch against itself and the last ``memory_size - n`` earlier rows, by loops."""
    earlier = list(queue)[max(0, len(queue) - (memory_size - len(labels))) :] if use_memory else []
    rows = [(label, row) for label, row in zip(labels, x)] + earlier
    ref_labels = np.array([label for label, _ in rows])
    reference = np.array([row for _, row in rows], np.float64)
    pos, neg = ref.relation(labels, ref_labels, self_index=np.arange(len(labels)))
    return LOSSES[name][1](x.astype(np.float64), reference, pos, neg)


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("warmup_steps", [0, 2])
def test_loss_per_step_equals_a_numpy_queue(name, warmup_steps):
    memory_size = 10  # batches of 4: the memory wraps around at the third step
    model = _model(LOSSES[name][0](), memory_size, warmup_steps)
    queue = collections.deque(maxlen=memory_size)
    for step, (labels, x) in enumerate(_steps()):
        value = float(to_numpy(model.compute_loss(y=labels, y_pred=x, training=True)))
        expected = _reference_loss(name, queue, labels, x, memory_size, use_memory=step >= warmup_steps)
        assert value == pytest.approx(expected, rel=1e-4, abs=1e-5), step
        queue.extend(zip(labels, x.astype(np.float64)))
    assert int(to_numpy(model.memory_filled)) == memory_size
    assert int(to_numpy(model.memory_steps)) == 6


def test_warmup_steps_give_the_plain_loss_then_use_the_memory():
    model = _model(losses.MultiSimilarityLoss(), 12, warmup_steps=2)
    plain = losses.MultiSimilarityLoss()
    values = []
    for labels, x in _steps(4, n=6):
        values.append((float(to_numpy(model.compute_loss(y=labels, y_pred=x))), float(to_numpy(plain(labels, x)))))
    for memory_value, plain_value in values[:2]:
        assert memory_value == pytest.approx(plain_value, rel=1e-5)
    assert all(abs(memory_value - plain_value) > 1e-3 for memory_value, plain_value in values[2:])


def test_memory_size_zero_is_exactly_the_plain_loss():
    model = _model(losses.TripletLoss(margin=0.3), 0)
    assert not model.non_trainable_variables
    for labels, x in _steps(3):
        assert float(to_numpy(model.compute_loss(y=labels, y_pred=x))) == float(
            to_numpy(losses.TripletLoss(margin=0.3)(labels, x))
        )


def test_slots_wrap_around_and_keep_each_embedding_with_its_label():
    """After every step the memory holds the last rows seen, oldest overwritten first; a slot's label is its row's."""
    memory_size, n = 7, 3
    model = _model(losses.TripletLoss(), memory_size)
    seen = []
    for step in range(8):
        labels = np.arange(step * n, (step + 1) * n) % 5
        x = np.zeros((n, DIM), "float32")
        x[:, 0] = np.arange(step * n, (step + 1) * n)  # the row's global number
        x[:, 1] = labels  # and its label, carried by the embedding
        model.compute_loss(y=labels, y_pred=x, training=True)
        seen.extend(range(step * n, (step + 1) * n))
        memory = to_numpy(model.memory_embeddings)
        stored_labels = to_numpy(model.memory_labels)
        filled = int(to_numpy(model.memory_filled))
        assert filled == min(len(seen), memory_size)
        np.testing.assert_array_equal(memory[:filled, 1], stored_labels[:filled])  # never mixed
        assert sorted(memory[:filled, 0].astype(int)) == seen[-filled:]
        pointer = int(to_numpy(model.memory_pointer))
        assert pointer == len(seen) % memory_size
        assert int(memory[(pointer - 1) % memory_size, 0]) == seen[-1]  # the newest row sits before the pointer


def test_evaluation_reads_the_memory_without_updating_it():
    model = _model(losses.TripletLoss(), 8)
    (labels, x), (labels2, x2) = _steps(2)
    model.compute_loss(y=labels, y_pred=x, training=True)
    before = [to_numpy(v).copy() for v in model.non_trainable_variables]
    model.compute_loss(y=labels2, y_pred=x2, training=False)
    for old, variable in zip(before, model.non_trainable_variables):
        np.testing.assert_array_equal(old, to_numpy(variable))


def test_gradient_reaches_the_batch_at_both_ends_and_never_the_memory():
    """The gradient with respect to the batch equals a finite-difference gradient of the NumPy
    reference in which the earlier rows are constants and the batch's own rows move."""
    memory_size = 10
    model = _model(LOSSES["supcon"][0](), memory_size)
    queue = collections.deque(maxlen=memory_size)
    steps = _steps(3)
    for labels, x in steps[:2]:
        model.compute_loss(y=labels, y_pred=x, training=True)
        queue.extend(zip(labels, x.astype(np.float64)))
    labels, x = steps[2]
    _, grad = value_and_grad(lambda v: model.compute_loss(y=labels, y_pred=v, training=False), x)
    numeric = np.zeros(x.shape)
    step = 1e-5
    for index in np.ndindex(*x.shape):
        up, down = x.astype(np.float64), x.astype(np.float64)
        up[index] += step
        down[index] -= step
        numeric[index] = (
            _reference_loss("supcon", queue, labels, up, memory_size, True)
            - _reference_loss("supcon", queue, labels, down, memory_size, True)
        ) / (2 * step)
    assert np.abs(numeric).max() > 1e-3
    np.testing.assert_allclose(grad, numeric, rtol=1e-3, atol=1e-4)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="in-batch loss"):
        CrossBatchMemory(_tower(), keras.losses.MeanSquaredError(), memory_size=8)
    with pytest.raises(ValueError, match="memory_size must be an integer >= 0"):
        CrossBatchMemory(_tower(), losses.TripletLoss(), memory_size=-1)
    with pytest.raises(ValueError, match="label_format"):
        CrossBatchMemory(_tower(), losses.TripletLoss(label_format="relation"), memory_size=8)
    model = _model("triplet-hard", 4)
    labels, x = _steps(1, n=6)[0]
    with pytest.raises(ValueError, match="at least the batch size"):
        model.compute_loss(y=labels, y_pred=x)
    with pytest.raises(ValueError, match="class ids"):
        model.compute_loss(y=np.eye(3)[labels[:4]], y_pred=x[:4])


def _data(n=192, classes=8, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), n // classes)
    centres = rng.normal(size=(classes, DIM)) * 2.0
    x = (centres[y] + rng.normal(size=(n, DIM))).astype("float32")
    return x, y


@pytest.mark.parametrize("name", ["triplet-semihard", "multi-similarity"])
def test_fit_lowers_the_loss_and_fills_the_memory(name):
    keras.utils.set_random_seed(0)
    x, y = _data()
    model = CrossBatchMemory(_tower(), losses.get(name), memory_size=64)
    model.compile(keras.optimizers.Adam(0.02))
    history = model.fit(x, y, batch_size=32, epochs=6, verbose=0).history["loss"]
    assert history[-1] < history[0]
    assert int(to_numpy(model.memory_filled)) == 64
    assert int(to_numpy(model.memory_steps)) == 6 * 6
    # The memory holds embeddings of the tower (computed before the last updates): close to the current ones.
    stored = to_numpy(model.memory_embeddings)
    assert np.isfinite(stored).all() and np.abs(stored).max() > 0


def test_retrieval_evaluation_scores_the_memory_model_during_fit():
    # CrossBatchMemory is a subclassed model (no symbolic inputs); its predict is the tower's.
    from dmlkeras.callbacks import RetrievalEvaluation  # noqa: PLC0415

    keras.utils.set_random_seed(0)
    x, y = _data()
    model = CrossBatchMemory(_tower(), losses.get("batch-contrastive"), memory_size=64)
    model.compile(keras.optimizers.Adam(0.02))
    evaluation = RetrievalEvaluation(x, y, k=(1,))
    model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[evaluation])
    assert [epoch for epoch, _ in evaluation.results] == [0, 1]
    assert all(0.0 <= values["map_at_r"] <= 1.0 for _, values in evaluation.results)


def test_save_and_load_round_trip(tmp_path):
    keras.utils.set_random_seed(0)
    x, y = _data(n=64)
    model = CrossBatchMemory(_tower(), losses.TripletLoss(margin=0.2, block_size=8), memory_size=32, warmup_steps=1)
    model.compile(keras.optimizers.SGD(0.01))
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    path = tmp_path / "memory.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, CrossBatchMemory)
    assert (loaded.memory_size, loaded.warmup_steps, loaded.memory_loss.block_size) == (32, 1, 8)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    for saved, restored in zip(model.non_trainable_variables, loaded.non_trainable_variables):
        np.testing.assert_array_equal(to_numpy(saved), to_numpy(restored))
    loaded.compile(keras.optimizers.SGD(0.01))
    loaded.fit(x, y, batch_size=16, epochs=1, verbose=0)  # trains on from the restored queue
    assert int(to_numpy(loaded.memory_steps)) == 8
