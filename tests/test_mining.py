import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmlkeras.mining import (
    active_triplet_counts,
    hardest_negative,
    hardest_positive,
    mined_triplets,
    negative_mask,
    positive_mask,
    same_label_mask,
    semihard_negative,
)
from tests import references as ref
from tests.backend_utils import to_numpy, value_and_grad

labels_strategy = st.lists(st.integers(0, 3), min_size=1, max_size=12)


def _distances(n, seed):
    x = np.random.default_rng(seed).normal(size=(n, 3)).astype("float32")
    return ref.pairwise(x, "euclidean").astype("float32")


@settings(max_examples=30, deadline=None)
@given(labels=labels_strategy)
def test_masks_match_definition(labels):
    labels = np.array(labels)
    n = len(labels)
    pos, neg, same = to_numpy(positive_mask(labels)), to_numpy(negative_mask(labels)), to_numpy(same_label_mask(labels))
    for i in range(n):
        for j in range(n):
            assert same[i, j] == (labels[i] == labels[j])
            assert pos[i, j] == (labels[i] == labels[j] and i != j)
            assert neg[i, j] == (labels[i] != labels[j])


@settings(max_examples=30, deadline=None)
@given(labels=labels_strategy, seed=st.integers(0, 1000))
def test_hardest_positive_and_negative(labels, seed):
    labels = np.array(labels)
    d = _distances(len(labels), seed)
    hp, hp_ok = map(to_numpy, hardest_positive(d, labels))
    hn, hn_ok = map(to_numpy, hardest_negative(d, labels))
    for a in range(len(labels)):
        positives = [d[a, p] for p in range(len(labels)) if p != a and labels[p] == labels[a]]
        negatives = [d[a, k] for k in range(len(labels)) if labels[k] != labels[a]]
        assert hp_ok[a] == bool(positives) and hn_ok[a] == bool(negatives)
        if positives:
            assert hp[a] == pytest.approx(max(positives))
        if negatives:
            assert hn[a] == pytest.approx(min(negatives))


@settings(max_examples=30, deadline=None)
@given(labels=labels_strategy, seed=st.integers(0, 1000))
def test_semihard_negative_matches_loop(labels, seed):
    labels = np.array(labels)
    d = _distances(len(labels), seed)
    values, valid = map(to_numpy, semihard_negative(d, labels))
    for a in range(len(labels)):
        negatives = [d[a, k] for k in range(len(labels)) if labels[k] != labels[a]]
        for p in range(len(labels)):
            is_pair = p != a and labels[p] == labels[a] and bool(negatives)
            assert valid[a, p] == is_pair
            if is_pair:
                farther = [v for v in negatives if v > d[a, p]]
                assert values[a, p] == pytest.approx(min(farther) if farther else max(negatives))


@settings(max_examples=30, deadline=None)
@given(labels=labels_strategy, seed=st.integers(0, 1000))
def test_semihard_negative_gradient_reaches_the_chosen_negatives(labels, seed):
    # d(sum_ap w_ap * values_ap)/d(d_an) = sum of w_ap over the pairs whose
    # semi-hard negative is n; values off the pairs are the distances themselves.
    labels = np.array(labels)
    n = len(labels)
    d = _distances(n, seed) + 0.01 * np.random.default_rng(seed).random((n, n)).astype("float32")
    weights = np.random.default_rng(seed + 1).random((n, n)).astype("float32")
    # x * 1: distances are computed tensors in a loss (Keras' TF take_along_axis rejects a tf.Variable).
    _, grad = value_and_grad(lambda x: keras.ops.sum(keras.ops.multiply(semihard_negative(x * 1, labels)[0], weights)), d)
    expected = np.zeros((n, n))
    for a in range(n):
        negatives = [k for k in range(n) if labels[k] != labels[a]]
        for p in range(n):
            if p == a or labels[p] != labels[a]:
                expected[a, p] += weights[a, p]
            elif negatives:
                farther = [k for k in negatives if d[a, k] > d[a, p]]
                chosen = min(farther, key=lambda k: d[a, k]) if farther else max(negatives, key=lambda k: d[a, k])
                expected[a, chosen] += weights[a, p]
            else:
                expected[a, n - 1] += weights[a, p]  # no negative: an arbitrary column, not a valid pair
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-6)


def test_semihard_ties_are_not_semihard():
    # d(a,p) equals a negative distance exactly: that negative is not "farther".
    d = np.array([[0, 1, 1, 2], [1, 0, 5, 5], [1, 5, 0, 5], [2, 5, 5, 0]], "float32")
    values, _ = semihard_negative(d, np.array([0, 0, 1, 1]))
    assert to_numpy(values)[0, 1] == 2.0


@settings(max_examples=30, deadline=None)
@given(labels=labels_strategy, seed=st.integers(0, 1000), margin=st.sampled_from([0.1, 0.5, 2.0]))
def test_active_triplet_counts_match_loop(labels, seed, margin):
    labels = np.array(labels)
    n = len(labels)
    d = _distances(n, seed)
    per_positive, per_negative = map(to_numpy, active_triplet_counts(d, labels, margin))
    expected_p, expected_n = np.zeros((n, n)), np.zeros((n, n))
    for a in range(n):
        for p in range(n):
            if p == a or labels[p] != labels[a]:
                continue
            for k in range(n):
                if labels[k] != labels[a] and d[a, p] - d[a, k] + margin > 0:
                    expected_p[a, p] += 1
                    expected_n[a, k] += 1
    np.testing.assert_array_equal(per_positive, expected_p)
    np.testing.assert_array_equal(per_negative, expected_n)


@settings(max_examples=20, deadline=None)
@given(labels=labels_strategy, seed=st.integers(0, 1000))
def test_mined_triplets_are_the_miners_triplets(labels, seed):
    labels = np.array(labels)
    n = len(labels)
    d = _distances(n, seed)
    positive, negative, valid = map(to_numpy, mined_triplets(d, labels, "hard"))
    for a in range(n):
        positives = [d[a, p] for p in range(n) if p != a and labels[p] == labels[a]]
        negatives = [d[a, k] for k in range(n) if labels[k] != labels[a]]
        assert valid[a] == (bool(positives) and bool(negatives))
        if valid[a]:
            assert positive[a] == pytest.approx(max(positives))
            assert negative[a] == pytest.approx(min(negatives))
    positive, negative, valid = map(to_numpy, mined_triplets(d, labels, "semi-hard"))
    expected_negative, expected_valid = map(to_numpy, semihard_negative(d, labels))
    np.testing.assert_array_equal(positive, d)
    np.testing.assert_array_equal(valid, expected_valid)
    np.testing.assert_array_equal(negative[valid], expected_negative[valid])


def test_mined_triplets_rejects_batch_all():
    with pytest.raises(ValueError, match="'hard' or 'semi-hard'"):
        mined_triplets(np.zeros((2, 2), "float32"), np.array([0, 1]), "all")
