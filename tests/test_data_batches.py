"""Tests of dmlkeras.data.batches: ClassBalancedBatches (P x K batches)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
import threading
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dmlkeras.data import (
    ClassBalancedBatches,
)
from tests.data_helpers import HYP, REPO, blobs, label_layouts


def check_pk_batch(ds, xb, yb, idx, y):
    P, K = ds.classes_per_batch, ds.samples_per_class
    assert yb.shape == (P * K,) and yb.dtype == np.int32
    groups = yb.reshape(P, K)
    assert np.all(groups == groups[:, :1])  # K equal labels per group
    assert len(np.unique(groups[:, 0])) == P  # P distinct classes
    np.testing.assert_array_equal(yb, y[idx])
    counts = dict(zip(*np.unique(y, return_counts=True)))
    for row in idx.reshape(P, K):
        if counts[y[row[0]]] >= K:
            assert len(np.unique(row)) == K  # no repeats unless unavoidable
        else:
            assert len(np.unique(row)) == counts[y[row[0]]]  # all members used


@HYP
@given(
    y=label_layouts(min_classes=2, max_classes=8, min_size=1, max_size=9),
    p=st.integers(2, 8),
    k=st.integers(2, 5),
    seed=st.integers(0, 2**31),
)
def test_class_balanced_batches_pk_structure(y, p, k, seed):
    n_classes = len(np.unique(y))
    x = np.arange(len(y), dtype=np.float32)[:, None]
    if p > n_classes:
        with pytest.raises(ValueError, match=f"only {n_classes} distinct classes"):
            ClassBalancedBatches(x, y, p, k, seed=seed)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = ClassBalancedBatches(x, y, p, k, seed=seed)
    assert len(ds) == int(np.ceil(len(y) / (p * k)))
    assert ds.batch_size == p * k
    for _ in range(2):
        for i in range(len(ds)):
            xb, yb = ds[i]
            idx = ds.batch_indices(i)
            np.testing.assert_array_equal(xb[:, 0], idx)
            check_pk_batch(ds, xb, yb, idx, y)
        ds.on_epoch_end()


def test_class_balanced_batches_exact_coverage():
    # C % P == 0 and n_c % K == 0: every sample exactly once per epoch,
    # every class equally often.
    y = np.repeat(np.arange(6), 8)
    ds = ClassBalancedBatches(np.zeros((48, 1)), y, 3, 4, seed=11)
    for _ in range(3):
        idx = np.concatenate([ds.batch_indices(i) for i in range(len(ds))])
        np.testing.assert_array_equal(np.sort(idx), np.arange(48))
        ds.on_epoch_end()
    ds = ClassBalancedBatches(np.zeros((48, 1)), y, 3, 4, steps_per_epoch=10)
    idx = np.concatenate([ds.batch_indices(i) for i in range(10)])
    assert np.all(np.bincount(y[idx]) == 20)


def test_class_balanced_batches_balance_when_classes_do_not_divide():
    y = np.repeat(np.arange(7), [30, 3, 12, 5, 9, 4, 20])
    ds = ClassBalancedBatches(np.zeros((len(y), 1)), y, 3, 2, steps_per_epoch=700)
    classes = np.concatenate([ds[i][1][::2] for i in range(len(ds))])
    c = np.bincount(classes)
    assert np.all(np.abs(c - 300) < 30)


def test_class_balanced_batches_epochs_and_determinism():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    y = np.repeat(np.arange(5), 8)
    ds = ClassBalancedBatches(x, y, 2, 4, seed=3)
    epoch0 = [ds.batch_indices(i).copy() for i in range(len(ds))]
    # out-of-order / repeated access gives the same batch
    np.testing.assert_array_equal(ds[3][1], y[epoch0[3]])
    np.testing.assert_array_equal(ds[-1][1], y[epoch0[-1]])
    ds.on_epoch_end()
    assert ds.epoch == 1
    epoch1 = [ds.batch_indices(i).copy() for i in range(len(ds))]
    assert not all(np.array_equal(a, b) for a, b in zip(epoch0, epoch1))
    # a fresh instance reproduces both epochs, in any order
    other = ClassBalancedBatches(x, y, 2, 4, seed=3)
    other.epoch = 1
    for i in reversed(range(len(other))):
        np.testing.assert_array_equal(other.batch_indices(i), epoch1[i])
    other.epoch = 0
    np.testing.assert_array_equal(other[2][0], x[epoch0[2]])
    # another seed gives other batches
    third = ClassBalancedBatches(x, y, 2, 4, seed=4)
    assert not all(
        np.array_equal(third.batch_indices(i), epoch0[i]) for i in range(len(ds))
    )


def test_class_balanced_batches_threads_and_pickle():
    y = np.repeat(np.arange(10), 6)
    ds = ClassBalancedBatches(np.zeros((60, 2)), y, 4, 3, seed=9)
    expected = [ds.batch_indices(i).copy() for i in range(len(ds))]
    fresh = ClassBalancedBatches(np.zeros((60, 2)), y, 4, 3, seed=9)
    results = {}

    def work(i):
        results[i] = fresh.batch_indices(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(ds))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(len(ds)):
        np.testing.assert_array_equal(results[i], expected[i])
    clone = pickle.loads(pickle.dumps(ds))
    for i in range(len(ds)):
        np.testing.assert_array_equal(clone.batch_indices(i), expected[i])


def test_class_balanced_batches_replacement_warning_once():
    y = np.array([0] * 6 + [1] * 6 + [2] * 2 + [3] * 1)
    x = np.zeros((len(y), 2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = ClassBalancedBatches(x, y, 2, 4, steps_per_epoch=20, seed=0)
        for _ in range(2):
            for i in range(len(ds)):
                xb, yb = ds[i]
                check_pk_batch(ds, xb, yb, ds.batch_indices(i), y)
            ds.on_epoch_end()
    msgs = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert len(msgs) == 1
    assert "2 of 4 classes" in msgs[0] and "replacement" in msgs[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning when every class has >= K
        ClassBalancedBatches(x[:14], y[:14], 2, 2)


def test_class_balanced_batches_inputs_and_augment():
    y = np.repeat(np.arange(4), 4)
    xa = np.arange(16.0)[:, None]
    xb = np.arange(16)[:, None] * 10
    ds = ClassBalancedBatches((xa, xb), y, 2, 2, seed=1)
    (ba, bb), yb = ds[0]
    idx = ds.batch_indices(0)
    np.testing.assert_array_equal(ba[:, 0], idx)
    np.testing.assert_array_equal(bb[:, 0], idx * 10)
    ds = ClassBalancedBatches([xa, xb], y, 2, 2, seed=1)
    assert isinstance(ds[0][0], tuple)
    ds = ClassBalancedBatches({"a": xa, "b": xb}, y, 2, 2, seed=1)
    assert set(ds[0][0]) == {"a", "b"}

    ds = ClassBalancedBatches(xa, y, 2, 2, augment=lambda v: v + 100.0, seed=1)
    np.testing.assert_array_equal(ds[0][0][:, 0], idx + 100.0)

    def noisy(v, rng):
        return v + rng.normal(size=v.shape)

    ds1 = ClassBalancedBatches(xa, y, 2, 2, augment=noisy, seed=1)
    ds2 = ClassBalancedBatches(xa, y, 2, 2, augment=noisy, seed=1)
    np.testing.assert_array_equal(ds1[1][0], ds2[1][0])
    noise0 = ds1[0][0] - xa[ds1.batch_indices(0)]
    noise1 = ds1[1][0] - xa[ds1.batch_indices(1)]
    assert not np.array_equal(noise0, noise1)
    a = ds1[0][0]
    ds1.on_epoch_end()
    ds2.epoch = 1
    np.testing.assert_array_equal(ds1[0][0], ds2[0][0])
    assert not np.array_equal(a, ds1[0][0])


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(classes_per_batch=5), ValueError, r"only 4 distinct classes.*<= 4"),
        (dict(classes_per_batch=1), ValueError, r"negatives"),
        (dict(classes_per_batch=0), ValueError, r"classes_per_batch.*>= 1"),
        (dict(samples_per_class=1), ValueError, r"positive pairs"),
        (dict(steps_per_epoch=0), ValueError, r"steps_per_epoch.*>= 1"),
        (dict(seed=-1), ValueError, r"non-negative"),
        (dict(seed=np.random.default_rng(0)), ValueError, r"seed"),
        (dict(augment="flip"), TypeError, r"callable"),
        (dict(bogus=1), TypeError, r"bogus"),
        (dict(num_replicas=3), ValueError, r"classes_per_batch=2 must be divisible by num_replicas=3"),
        (dict(num_replicas=0), ValueError, r"num_replicas.*>= 1"),
        (dict(num_replicas=2, replica=2), ValueError, r"replica must be in \[0, num_replicas=2\)"),
        (dict(num_replicas=2, replica=-1), ValueError, r"replica.*>= 0"),
    ],
)
def test_class_balanced_batches_errors(kwargs, exc, match):
    y = np.repeat(np.arange(4), 4)
    args = dict(classes_per_batch=2, samples_per_class=2)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        ClassBalancedBatches(np.zeros((16, 1)), y, **args)


def test_class_balanced_batches_shape_errors_and_index():
    y = np.repeat(np.arange(4), 4)
    with pytest.raises(ValueError, match=r"same number of samples"):
        ClassBalancedBatches(np.zeros((15, 1)), y, 2, 2)
    with pytest.raises(ValueError, match=r"int32"):
        ClassBalancedBatches(np.zeros((2, 1)), np.array([0, 2**40]), 2, 2)
    ds = ClassBalancedBatches(np.zeros((16, 1)), y, 2, 2)
    assert len(ds) == 4
    with pytest.raises(IndexError):
        ds[4]
    with pytest.raises(IndexError):
        ds[-5]
    assert len(list(iter(ds))) == 4
    assert ds.workers == 1  # super().__init__ was called
    ds = ClassBalancedBatches(np.zeros((16, 1)), y, 2, 2, workers=3)
    assert ds.workers == 3


def test_fit_on_class_balanced_batches():
    import keras

    keras.utils.set_random_seed(0)
    x, y = blobs()
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)])
    model.compile(keras.optimizers.Adam(0.05), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = model.evaluate(x, y, verbose=0)
    ds = ClassBalancedBatches(x, y, classes_per_batch=2, samples_per_class=4, workers=2)
    hist = model.fit(ds, epochs=3, verbose=0)
    assert len(hist.history["loss"]) == 3
    assert model.evaluate(x, y, verbose=0) < before
    assert ds.epoch >= 2  # on_epoch_end was called by fit


@pytest.mark.skipif(
    os.environ.get("KERAS_BACKEND", "tensorflow") == "jax", reason="already on jax"
)
def test_fit_on_jax_backend_subprocess():
    pytest.importorskip("jax")
    code = textwrap.dedent(
        """
        import numpy as np, keras
        from dmlkeras.data import ClassBalancedBatches
        assert keras.backend.backend() == "jax"
        rng = np.random.default_rng(0)
        y = np.repeat(np.arange(4), 8)
        x = rng.normal(size=(32, 3)).astype("float32")
        m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)])
        m.compile(keras.optimizers.Adam(0.05), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        before = m.evaluate(x, y, verbose=0)
        m.fit(ClassBalancedBatches(x, y, 2, 4), epochs=3, verbose=0)
        print("LOSS", before, m.evaluate(x, y, verbose=0))
        """
    )
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=str(REPO))
    res = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    before, after = map(float, res.stdout.split("LOSS")[1].split())
    assert after < before


@HYP
@given(
    replicas=st.sampled_from([1, 2, 3, 4]),
    per_replica=st.integers(1, 3),
    k=st.integers(2, 4),
    seed=st.integers(0, 2**31),
)
def test_sharded_batches_give_each_replica_whole_classes(replicas, per_replica, k, seed):
    """Each replica's contiguous slice holds P / R classes with all K samples; shards partition the batch."""
    per_replica = max(per_replica, 2 // replicas)  # P >= 2
    p = replicas * per_replica
    y = np.repeat(np.arange(p + 3), 5)
    x = np.arange(len(y), dtype=np.float32)[:, None]
    ds = ClassBalancedBatches(x, y, p, k, num_replicas=replicas, seed=seed)
    shards = [ClassBalancedBatches(x, y, p, k, num_replicas=replicas, replica=r, seed=seed) for r in range(replicas)]
    assert ds.batch_size == p * k and all(s.batch_size == per_replica * k for s in shards)
    for _ in range(2):
        for i in range(len(ds)):
            xb, yb = ds[i]
            check_pk_batch(ds, xb, yb, ds.batch_indices(i), y)
            slices = np.split(yb, replicas)
            for part in slices:
                labels, counts = np.unique(part, return_counts=True)
                assert len(labels) == per_replica and np.all(counts == k)
            owners = [set(part) for part in slices]
            assert sum(len(o) for o in owners) == len(set().union(*owners))  # no class on two replicas
            for r, shard in enumerate(shards):
                xs, ys = shard[i]
                np.testing.assert_array_equal(ys, slices[r])
                np.testing.assert_array_equal(xs, np.split(xb, replicas)[r])
        for dataset in [ds, *shards]:
            dataset.on_epoch_end()


def test_unsharded_batches_are_unchanged_by_num_replicas_one():
    y = np.repeat(np.arange(6), 4)
    plain = ClassBalancedBatches(np.zeros((24, 1)), y, 4, 2, seed=5)
    one = ClassBalancedBatches(np.zeros((24, 1)), y, 4, 2, seed=5, num_replicas=1, replica=0)
    for i in range(len(plain)):
        np.testing.assert_array_equal(plain.batch_indices(i), one.batch_indices(i))
