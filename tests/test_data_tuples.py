"""Tests of dmlkeras.data.tuples: pair, triplet and quadruplet samplers and TupleDataset (and its named kinds)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dmlkeras.data import (
    PairsDataset,
    TripletsDataset,
    make_pair_indices,
    make_pairs,
    make_quadruplet_indices,
    make_quadruplets,
    make_triplet_indices,
    make_triplets,
)
from tests.data_helpers import HYP, blobs, counts_over, label_layouts


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


def test_fit_on_pairs_and_triplets_datasets():
    import keras

    keras.utils.set_random_seed(0)
    x, y = blobs()
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
