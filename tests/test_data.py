"""Tests for dmlkeras.data (NumPy batch builders for metric learning)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dmlkeras.data as data
from dmlkeras.data import (
    ClassBalancedBatches,
    EpochSeededDataset,
    PairsDataset,
    TripletsDataset,
    make_pair_indices,
    make_pairs,
    make_quadruplet_indices,
    make_quadruplets,
    make_triplet_indices,
    make_triplets,
)

HYP = settings(max_examples=25, deadline=None)
REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------
# helpers / strategies
# ---------------------------------------------------------------------------
@st.composite
def label_layouts(draw, min_classes=2, max_classes=7, min_size=1, max_size=6):
    """Random labels: arbitrary (non-contiguous, maybe negative) class ids of
    random sizes, in random order."""
    sizes = draw(
        st.lists(
            st.integers(min_size, max_size), min_size=min_classes, max_size=max_classes
        )
    )
    ids = draw(
        st.lists(
            st.integers(-50, 1000),
            min_size=len(sizes),
            max_size=len(sizes),
            unique=True,
        )
    )
    y = np.repeat(np.array(ids), sizes)
    perm = np.random.default_rng(draw(st.integers(0, 2**16))).permutation(len(y))
    return y[perm]


def counts_over(values, classes):
    return np.array([(values == c).sum() for c in classes])


# ---------------------------------------------------------------------------
# pairs
# ---------------------------------------------------------------------------
def test_pair_indices_shapes_and_labels():
    y = np.array([0, 0, 1, 1, 1, 2, 2, 3])
    idx, same = make_pair_indices(y, 101, positive_fraction=0.3, seed=1)
    assert idx.shape == (101, 2) and idx.dtype == np.intp
    assert same.shape == (101,) and same.dtype == np.float32
    assert set(np.unique(same)) <= {0.0, 1.0}
    assert same.sum() == 30  # round(101 * 0.3)
    np.testing.assert_array_equal(y[idx[:, 0]] == y[idx[:, 1]], same == 1)
    pos = idx[same == 1]
    assert np.all(pos[:, 0] != pos[:, 1])
    # positives and negatives are interleaved, not sorted
    assert not np.all(np.diff(same) <= 0)


@HYP
@given(y=label_layouts(), n_pairs=st.integers(1, 120), frac=st.floats(0, 1))
def test_pair_indices_random_layouts(y, n_pairs, frac):
    classes, counts = np.unique(y, return_counts=True)
    eligible = classes[counts >= 2]
    n_pos = int(np.floor(n_pairs * frac + 0.5))
    if n_pos and len(eligible) == 0:
        with pytest.raises(ValueError, match=">= 2 samples"):
            make_pair_indices(y, n_pairs, frac, seed=0)
        return
    idx, same = make_pair_indices(y, n_pairs, frac, seed=0)
    assert idx.shape == (n_pairs, 2)
    assert int(same.sum()) == n_pos
    np.testing.assert_array_equal(y[idx[:, 0]] == y[idx[:, 1]], same == 1)
    assert idx.min() >= 0 and idx.max() < len(y)
    pos, neg = idx[same == 1], idx[same == 0]
    assert np.all(pos[:, 0] != pos[:, 1])
    # positives balanced over classes with >= 2 samples, singletons skipped
    if n_pos:
        c = counts_over(y[pos[:, 0]], classes)
        assert c[counts < 2].sum() == 0
        assert c[counts >= 2].max() - c[counts >= 2].min() <= 1
    # negatives: every class takes part in at least floor(n_neg / C) of them
    if len(neg):
        for cls in classes:
            involved = np.any(y[neg] == cls, axis=1).sum()
            assert involved >= len(neg) // len(classes)


def test_pair_balance_statistics():
    # unbalanced data set: positives and negatives still balanced over classes
    y = np.repeat(np.arange(5), [100, 50, 10, 5, 2])
    idx, same = make_pair_indices(y, 10_000, seed=3)
    pos = idx[same == 1]
    c = np.bincount(y[pos[:, 0]], minlength=5)
    assert c.max() - c.min() <= 1
    neg = idx[same == 0]
    c_neg = np.bincount(y[neg].ravel(), minlength=5)
    expected = 2 * len(neg) / 5
    assert np.all(np.abs(c_neg - expected) < 0.08 * expected)
    # either position of a negative pair is about balanced too
    c_first = np.bincount(y[neg[:, 0]], minlength=5)
    assert np.all(np.abs(c_first - len(neg) / 5) < 0.1 * len(neg) / 5)


def test_pair_fraction_edges():
    singletons = np.arange(6)
    idx, same = make_pair_indices(singletons, 10, positive_fraction=0.0)
    assert same.sum() == 0 and np.all(idx[:, 0] != idx[:, 1])
    one_class = np.zeros(5, dtype=int)
    idx, same = make_pair_indices(one_class, 10, positive_fraction=1.0)
    assert np.all(same == 1) and np.all(idx[:, 0] != idx[:, 1])


def test_pair_reproducibility():
    y = np.repeat(np.arange(4), 5)
    a = make_pair_indices(y, 50, seed=7)
    b = make_pair_indices(y, 50, seed=7)
    c = make_pair_indices(y, 50, seed=8)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    g = make_pair_indices(y, 50, seed=np.random.default_rng(7))
    np.testing.assert_array_equal(a[0], g[0])


def test_make_pairs_gathers_rows_for_all_input_kinds():
    y = np.repeat(np.arange(3), 4)
    x = np.arange(12.0)[:, None] * np.ones((1, 3))
    idx, same = make_pair_indices(y, 20, seed=5)
    (x1, x2), s = make_pairs(x, y, 20, seed=5)
    np.testing.assert_array_equal(x1[:, 0], idx[:, 0])
    np.testing.assert_array_equal(x2[:, 0], idx[:, 1])
    np.testing.assert_array_equal(s, same)
    (t1, t2), _ = make_pairs((x, np.arange(12)), y, 20, seed=5)
    assert isinstance(t1, tuple) and len(t1) == 2
    np.testing.assert_array_equal(t2[1], idx[:, 1])
    (d1, d2), _ = make_pairs({"a": x, "b": np.arange(12)}, y, 20, seed=5)
    np.testing.assert_array_equal(d1["b"], idx[:, 0])
    # a plain nested list is one input, not a multi-input list
    (l1, _), _ = make_pairs(x.tolist(), y, 20, seed=5)
    assert l1.shape == (20, 3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(y=np.arange(5), n_pairs=4), r">= 2 samples"),
        (dict(y=np.zeros(5, int), n_pairs=4), r"at least 2 distinct classes"),
        (dict(y=np.zeros((5, 2), int), n_pairs=4), r"\(n_samples,\)"),
        (dict(y=np.array([0.5, 1.0]), n_pairs=4), r"integer class labels"),
        (dict(y=np.array(["a", "b"]), n_pairs=4), r"integer class labels"),
        (dict(y=np.array([], int), n_pairs=4), r"empty"),
        (dict(y=np.arange(4) % 2, n_pairs=0), r"n_pairs.*>= 1"),
        (dict(y=np.arange(4) % 2, n_pairs=2.5), r"n_pairs"),
        (dict(y=np.arange(4) % 2, n_pairs=4, positive_fraction=1.5), r"positive_fraction must be a finite number >= 0.0 and <= 1.0"),
        (dict(y=np.arange(4) % 2, n_pairs=4, positive_fraction=np.nan), r"positive_fraction must be a finite number"),
    ],
)
def test_pair_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_pair_indices(**kwargs)


def test_xy_length_mismatch():
    y = np.arange(6) % 2
    for fn, args in [
        (make_pairs, (4,)),
        (make_triplets, (4,)),
        (make_quadruplets, (4,)),
    ]:
        with pytest.raises(ValueError, match=r"same number of samples.*\(6, \.\.\.\)"):
            fn(np.zeros((5, 2)), y, *args)
    with pytest.raises(ValueError, match=r"x\[1\]"):
        make_pairs((np.zeros((6, 2)), np.zeros((7, 2))), y, 4)
    with pytest.raises(ValueError, match=r"x\['b'\]"):
        make_pairs({"a": np.zeros(6), "b": np.zeros(3)}, y, 4)


def test_labels_as_column_and_float_are_accepted():
    y = np.repeat(np.arange(3), 2)
    a = make_pair_indices(y[:, None], 9, seed=0)
    b = make_pair_indices(y.astype(float), 9, seed=0)
    c = make_pair_indices(y, 9, seed=0)
    np.testing.assert_array_equal(a[0], c[0])
    np.testing.assert_array_equal(b[0], c[0])


# ---------------------------------------------------------------------------
# triplets / quadruplets
# ---------------------------------------------------------------------------
@HYP
@given(y=label_layouts(), n=st.integers(1, 100))
def test_triplet_indices_random_layouts(y, n):
    classes, counts = np.unique(y, return_counts=True)
    if not np.any(counts >= 2):
        with pytest.raises(ValueError, match=">= 2 samples"):
            make_triplet_indices(y, n)
        return
    idx = make_triplet_indices(y, n, seed=1)
    assert idx.shape == (n, 3) and idx.dtype == np.intp
    lab = y[idx]
    assert np.all(lab[:, 0] == lab[:, 1])
    assert np.all(idx[:, 0] != idx[:, 1])
    assert np.all(lab[:, 2] != lab[:, 0])
    c = counts_over(lab[:, 0], classes)
    assert c[counts < 2].sum() == 0
    assert c[counts >= 2].max() - c[counts >= 2].min() <= 1


@HYP
@given(y=label_layouts(min_classes=3), n=st.integers(1, 100))
def test_quadruplet_indices_random_layouts(y, n):
    classes, counts = np.unique(y, return_counts=True)
    if not np.any(counts >= 2):
        with pytest.raises(ValueError, match=">= 2 samples"):
            make_quadruplet_indices(y, n)
        return
    idx = make_quadruplet_indices(y, n, seed=2)
    assert idx.shape == (n, 4)
    lab = y[idx]
    assert np.all(lab[:, 0] == lab[:, 1])
    assert np.all(idx[:, 0] != idx[:, 1])
    assert np.all(lab[:, 2] != lab[:, 0])
    assert np.all(lab[:, 3] != lab[:, 0])
    assert np.all(lab[:, 3] != lab[:, 2])
    c = counts_over(lab[:, 0], classes)
    assert c[counts >= 2].max() - c[counts >= 2].min() <= 1


def test_triplet_negative_classes_are_uniform():
    y = np.repeat(np.arange(4), 3)
    idx = make_triplet_indices(y, 8000, seed=0)
    lab = y[idx]
    # for anchors of class 0, negatives spread evenly over classes 1..3
    neg = lab[lab[:, 0] == 0, 2]
    c = np.bincount(neg, minlength=4)[1:]
    assert np.all(np.abs(c - c.mean()) < 0.1 * c.mean())


def test_triplets_and_quadruplets_materialise_and_reproduce():
    y = np.repeat(np.arange(4), 3)
    x = np.arange(12.0)[:, None]
    a, p, n = make_triplets(x, y, 10, seed=4)
    idx = make_triplet_indices(y, 10, seed=4)
    np.testing.assert_array_equal(np.concatenate([a, p, n], 1), idx.astype(float))
    q = make_quadruplets(x, y, 10, seed=4)
    qi = make_quadruplet_indices(y, 10, seed=4)
    np.testing.assert_array_equal(np.concatenate(q, 1), qi.astype(float))
    np.testing.assert_array_equal(qi, make_quadruplet_indices(y, 10, seed=4))
    assert not np.array_equal(qi, make_quadruplet_indices(y, 10, seed=5))
    assert not np.array_equal(idx, make_triplet_indices(y, 10, seed=5))


def test_triplet_and_quadruplet_errors():
    with pytest.raises(ValueError, match="at least 2 distinct classes in `y`; got 1"):
        make_triplet_indices(np.zeros(4, int), 3)
    with pytest.raises(ValueError, match=">= 2 samples"):
        make_triplet_indices(np.arange(4), 3)
    with pytest.raises(ValueError, match="at least 3 distinct classes in `y`; got 2"):
        make_quadruplet_indices(np.arange(6) % 2, 3)
    with pytest.raises(ValueError, match=r"n must be an integer >= 1"):
        make_quadruplet_indices(np.arange(6) % 3, -1)
    with pytest.raises(ValueError, match=r"n_triplets"):
        make_triplet_indices(np.arange(6) % 3, 0)


# ---------------------------------------------------------------------------
# ClassBalancedBatches
# ---------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------
# PairsDataset / TripletsDataset
# ---------------------------------------------------------------------------
def test_pairs_dataset_batches():
    y = np.repeat(np.arange(5), 6)
    x = np.arange(30.0)[:, None]
    ds = PairsDataset(x, y, batch_size=8, positive_fraction=0.25, seed=2)
    assert len(ds) == 4  # 30 pairs per epoch by default
    sizes, all_same = [], []
    for i in range(len(ds)):
        (x1, x2), same = ds[i]
        idx, s = ds.batch_indices(i)
        np.testing.assert_array_equal(x1[:, 0], idx[:, 0])
        np.testing.assert_array_equal(x2[:, 0], idx[:, 1])
        np.testing.assert_array_equal(same, s)
        np.testing.assert_array_equal(y[idx[:, 0]] == y[idx[:, 1]], same == 1)
        sizes.append(len(same))
        all_same.append(same)
    assert sizes == [8, 8, 8, 6]
    assert np.concatenate(all_same).sum() == 8  # round(30 * 0.25)
    first = ds.batch_indices(0)[0].copy()
    ds.on_epoch_end()
    assert not np.array_equal(first, ds.batch_indices(0)[0])
    again = PairsDataset(x, y, batch_size=8, positive_fraction=0.25, seed=2)
    np.testing.assert_array_equal(again.batch_indices(0)[0], first)
    ds = PairsDataset(x, y, batch_size=10, pairs_per_epoch=25)
    assert len(ds) == 3 and len(ds[2][1]) == 5


def test_pairs_dataset_augment_and_errors():
    y = np.repeat(np.arange(3), 4)
    x = np.zeros((12, 2))
    calls = []
    ds = PairsDataset(x, y, batch_size=4, augment=lambda v: calls.append(1) or v + 1)
    (x1, x2), _ = ds[0]
    assert len(calls) == 2 and np.all(x1 == 1) and np.all(x2 == 1)
    with pytest.raises(ValueError, match=">= 2 samples"):
        PairsDataset(np.zeros((3, 1)), np.arange(3))
    with pytest.raises(ValueError, match="batch_size"):
        PairsDataset(x, y, batch_size=0)
    with pytest.raises(ValueError, match="pairs_per_epoch"):
        PairsDataset(x, y, pairs_per_epoch=0)
    with pytest.raises(ValueError, match="same number of samples"):
        PairsDataset(x[:5], y)


def test_triplets_dataset_batches():
    y = np.repeat(np.arange(4), 5)
    x = np.arange(20.0)[:, None]
    ds = TripletsDataset(x, y, batch_size=6, seed=1)
    assert len(ds) == 4
    for i in range(len(ds)):
        (a, p, n), dummy = ds[i]
        idx = ds.batch_indices(i)
        np.testing.assert_array_equal(np.concatenate([a, p, n], 1), idx.astype(float))
        assert dummy.dtype == np.float32 and np.all(dummy == 0)
        assert dummy.shape == (len(idx),)
        lab = y[idx]
        assert np.all(lab[:, 0] == lab[:, 1]) and np.all(lab[:, 0] != lab[:, 2])
        assert np.all(idx[:, 0] != idx[:, 1])
    first = ds.batch_indices(0).copy()
    ds.on_epoch_end()
    assert not np.array_equal(first, ds.batch_indices(0))
    with pytest.raises(ValueError, match="at least 2 distinct classes"):
        TripletsDataset(x, np.zeros(20, int))
    with pytest.raises(ValueError, match="triplets_per_epoch"):
        TripletsDataset(x, y, triplets_per_epoch=-3)


# ---------------------------------------------------------------------------
# Keras integration
# ---------------------------------------------------------------------------
def _blobs(n_classes=4, per_class=12, dim=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), per_class)
    x = (rng.normal(size=(len(y), dim)) + y[:, None]).astype("float32")
    return x, y


def test_fit_on_class_balanced_batches():
    import keras

    keras.utils.set_random_seed(0)
    x, y = _blobs()
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)])
    model.compile(keras.optimizers.Adam(0.05), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = model.evaluate(x, y, verbose=0)
    ds = ClassBalancedBatches(x, y, classes_per_batch=2, samples_per_class=4, workers=2)
    hist = model.fit(ds, epochs=3, verbose=0)
    assert len(hist.history["loss"]) == 3
    assert model.evaluate(x, y, verbose=0) < before
    assert ds.epoch >= 2  # on_epoch_end was called by fit


def test_fit_on_pairs_and_triplets_datasets():
    import keras

    keras.utils.set_random_seed(0)
    x, y = _blobs()
    embed = keras.layers.Dense(2)
    in1, in2 = keras.Input((3,)), keras.Input((3,))
    diff = keras.layers.Subtract()([embed(in1), embed(in2)])
    out = keras.layers.Dense(1, activation="sigmoid")(
        keras.layers.Lambda(lambda t: keras.ops.abs(t))(diff)
    )
    siamese = keras.Model([in1, in2], out)
    siamese.compile(keras.optimizers.Adam(0.05), "binary_crossentropy")
    pairs, same = make_pairs(x, y, 64, seed=1)  # a fixed set to measure on
    before = siamese.evaluate(list(pairs), same, verbose=0)
    siamese.fit(PairsDataset(x, y, batch_size=16), epochs=3, verbose=0)
    assert siamese.evaluate(list(pairs), same, verbose=0) < before

    ins = [keras.Input((3,)) for _ in range(3)]
    stacked = keras.layers.Lambda(lambda ts: keras.ops.stack(ts, axis=1))(
        [embed(t) for t in ins]
    )
    triplet = keras.Model(ins, stacked)

    def triplet_loss(y_true, y_pred):  # ignores y_true
        a, p, n = y_pred[:, 0], y_pred[:, 1], y_pred[:, 2]
        d_ap = keras.ops.sum(keras.ops.square(a - p), axis=-1)
        d_an = keras.ops.sum(keras.ops.square(a - n), axis=-1)
        return keras.ops.relu(d_ap - d_an + 1.0)

    triplet.compile(keras.optimizers.Adam(0.05), triplet_loss)
    triplets = list(make_triplets(x, y, 64, seed=1))
    before = triplet.evaluate(triplets, np.zeros(64), verbose=0)
    triplet.fit(TripletsDataset(x, y, batch_size=16), epochs=3, verbose=0)
    assert triplet.evaluate(triplets, np.zeros(64), verbose=0) < before


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


def test_public_api_documented():
    for name in data.__all__:
        obj = getattr(data, name)
        doc = obj.__doc__ or ""
        assert "Examples" in doc and ">>>" in doc, name
        assert "Parameters" in doc, name


# ---------------------------------------------------------------------------
# One tuple dataset, one epoch-seeded base
# ---------------------------------------------------------------------------
def test_tuple_dataset_kinds_equal_the_named_datasets():
    from dmlkeras.data import QuadrupletsDataset, TupleDataset

    x = np.random.default_rng(0).normal(size=(30, 3)).astype("float32")
    y = np.repeat(np.arange(5), 6)
    named = {
        "pairs": PairsDataset(x, y, batch_size=8, seed=3),
        "triplets": TripletsDataset(x, y, batch_size=8, seed=3),
        "quadruplets": QuadrupletsDataset(x, y, batch_size=8, seed=3),
    }
    for kind, dataset in named.items():
        general = TupleDataset(x, y, kind, batch_size=8, seed=3)
        assert isinstance(dataset, TupleDataset) and len(general) == len(dataset) == 4
        for epoch in (0, 2):
            general.epoch = dataset.epoch = epoch
            for index in range(len(dataset)):
                (inputs, targets), (expected, expected_targets) = general[index], dataset[index]
                assert len(inputs) == general.tuple_size == {"pairs": 2, "triplets": 3, "quadruplets": 4}[kind]
                for got, want in zip(inputs, expected, strict=True):
                    np.testing.assert_array_equal(got, want)
                np.testing.assert_array_equal(targets, expected_targets)
    quads = named["quadruplets"].batch_indices(0)
    labels = y[quads]
    assert np.all(labels[:, 0] == labels[:, 1]) and np.all(labels[:, 2] != labels[:, 3])
    assert named["quadruplets"].quadruplets_per_epoch == 30 and named["pairs"].pairs_per_epoch == 30
    with pytest.raises(ValueError, match="kind must be one of"):
        TupleDataset(x, y, "quintuplets")
    with pytest.raises(ValueError, match="at least 3 distinct classes"):
        QuadrupletsDataset(x[:12], np.repeat([0, 1], 6))


class Shuffled(EpochSeededDataset):
    def __len__(self):
        return 3

    def build_plan(self, rng):
        return rng.permutation(6).reshape(3, 2)

    def __getitem__(self, index):
        return self.plan()[self.check_index(index)], self.rng(9, self.epoch, index).integers(100)


def test_epoch_seeded_dataset_pickles_without_its_plan_and_lock():
    import pickle

    ds = Shuffled(seed=4)
    ds.epoch = 5
    first = ds[1]
    copy = pickle.loads(pickle.dumps(ds))
    assert copy._plan is None and copy.epoch == 5
    np.testing.assert_array_equal(copy[1][0], first[0])
    assert copy[1][1] == first[1]
    assert isinstance(Shuffled(seed=None).seed, int)  # None draws a seed once
    with pytest.raises(IndexError, match="out of range for 3 batches"):
        ds[3]
