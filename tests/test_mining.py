import itertools

import keras
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dmlkeras.mining import (
    AllTripletsMiner,
    DistanceWeightedMiner,
    HardMiner,
    MultiSimilarityMiner,
    PairMarginMiner,
    SemiHardMiner,
    active_triplet_counts,
    get_miner,
    hardest_negative,
    hardest_negative_pair,
    label_relation,
    multi_similarity_pairs,
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


# ---------------------------------------------------------------------------
# Multi-similarity pairs and the quadruplet's negative pair (moved from the loss tests)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("labels", [np.repeat(np.arange(4), 3), np.array([0, 0, 0, 0, 1, 1, 2, 3, 3, 4, 5, 5])])
def test_multi_similarity_pairs_match_loops(labels):
    x = np.random.default_rng(6).normal(size=(len(labels), 5))
    normalised = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = (normalised @ normalised.T).astype("float32")
    positives, negatives = (to_numpy(m) for m in multi_similarity_pairs(s, labels, 0.2))
    n = len(labels)
    for a in range(n):
        pos = [p for p in range(n) if p != a and labels[p] == labels[a]]
        neg = [k for k in range(n) if labels[k] != labels[a]]
        for p in range(n):
            expected = p in pos and bool(neg) and s[a, p] < max(s[a, k] for k in neg) + np.float32(0.2)
            assert positives[a, p] == expected
        for k in range(n):
            expected = k in neg and bool(pos) and s[a, k] > min(s[a, p] for p in pos) - np.float32(0.2)
            assert negatives[a, k] == expected


@settings(max_examples=12, deadline=None)
@given(classes=st.integers(1, 5), seed=st.integers(0, 1000))
def test_hardest_negative_pair_matches_brute_force(classes, seed):
    n = 8
    labels = np.random.default_rng(seed + 1).integers(0, classes, n)
    x = np.random.default_rng(seed).normal(size=(n, 2))
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1)).astype("float32")
    values, valid = (to_numpy(t) for t in hardest_negative_pair(d, labels))
    for a in range(n):
        pairs = [
            d[l, k]
            for l, k in itertools.product(range(n), repeat=2)
            if labels[l] != labels[k] and labels[l] != labels[a] and labels[k] != labels[a]
        ]
        assert valid[a] == bool(pairs)
        if pairs:
            assert values[a] == pytest.approx(min(pairs))


# ---------------------------------------------------------------------------
# Label relations: ids, multi-hot, precomputed, query x reference, large ids
# ---------------------------------------------------------------------------


def _reference_case(seed=0, n=6, m=9):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    ref_labels = rng.integers(0, 3, m)
    self_index = np.full(n, -1)
    self_index[[0, 3]] = [4, 1]
    ref_labels[[4, 1]] = labels[[0, 3]]
    return labels, ref_labels, self_index


def test_relation_of_ids_multi_hot_and_precomputed_match_loops():
    labels, ref_labels, self_index = _reference_case()
    relation = label_relation(labels, ref_labels, self_index=self_index)
    pos, neg = ref.relation(labels, ref_labels, self_index)
    np.testing.assert_array_equal(to_numpy(relation.positives), pos)
    np.testing.assert_array_equal(to_numpy(relation.negatives), neg)
    hot = np.random.default_rng(1).random((7, 4)) < 0.4
    relation = label_relation(hot.astype("float32"))
    pos, neg = ref.relation(hot)
    np.testing.assert_array_equal(to_numpy(relation.positives), pos)
    np.testing.assert_array_equal(to_numpy(relation.negatives), neg)
    same = labels[:, None] == labels[None, :]
    relation = label_relation(same, label_format="relation")
    np.testing.assert_array_equal(to_numpy(relation.positives), to_numpy(positive_mask(labels)))
    # One-hot multi-hot labels are the class ids.
    one_hot = np.eye(3)[labels]
    np.testing.assert_array_equal(to_numpy(label_relation(one_hot).positives), to_numpy(positive_mask(labels)))


def test_large_integer_ids_stay_apart_and_large_float_ids_are_refused():
    big = np.array([2**24, 2**24 + 1, 2**24, 2**24 + 1], "int64")
    np.testing.assert_array_equal(to_numpy(positive_mask(big)), to_numpy(positive_mask(np.array([0, 1, 0, 1]))))
    with pytest.raises(ValueError, match="2\\*\\*24"):
        positive_mask(big.astype("float32"))
    with pytest.raises(ValueError, match="label_format must be one of"):
        label_relation(big, label_format="one_hot")
    with pytest.raises(ValueError, match="must be square"):
        label_relation(np.ones((2, 3)), label_format="relation")


@pytest.mark.parametrize("seed", range(3))
def test_slot_miners_over_a_reference_match_loops(seed):
    labels, ref_labels, self_index = _reference_case(seed)
    rng = np.random.default_rng(seed + 10)
    d = rng.random((len(labels), len(ref_labels))).astype("float32")
    relation = label_relation(labels, ref_labels, self_index=self_index)
    pos, neg = ref.relation(labels, ref_labels, self_index)
    values, valid = semihard_negative(d, relation)
    expected = ref.ref_mine("semi-hard", d.astype(np.float64), pos, neg)
    chosen = expected[3]
    for a in range(len(labels)):
        for p in range(len(ref_labels)):
            assert bool(to_numpy(valid)[a, p]) == bool(expected[0][a, p])
            if expected[0][a, p]:
                assert to_numpy(values)[a, p] == d[a, chosen[a, p]]
    per_p, per_n = active_triplet_counts(d, relation, margin=0.3)
    for a in range(len(labels)):
        for p in range(len(ref_labels)):
            count = sum(1 for k in range(len(ref_labels)) if pos[a, p] and neg[a, k] and d[a, p] - d[a, k] + 0.3 > 0)
            assert to_numpy(per_p)[a, p] == count
    # The same through the generic (multi-hot) slot tables.
    hot = np.eye(3)[labels]
    hot_relation = label_relation(hot, np.eye(3)[ref_labels], self_index=self_index)
    hot_values, hot_valid = semihard_negative(d, hot_relation)
    np.testing.assert_array_equal(to_numpy(hot_valid), to_numpy(valid))
    np.testing.assert_array_equal(np.where(to_numpy(valid), to_numpy(hot_values), 0), np.where(to_numpy(valid), to_numpy(values), 0))


MINERS = {
    "semi-hard": (SemiHardMiner(), {}),
    "hard": (HardMiner(), {}),
    "all": (AllTripletsMiner(), {}),
    "multi-similarity": (MultiSimilarityMiner(epsilon=0.3), {"epsilon": 0.3}),
    "pair-margin": (PairMarginMiner(pos_margin=0.4, neg_margin=0.7), {"pos_margin": 0.4, "neg_margin": 0.7}),
    "distance-weighted": (DistanceWeightedMiner(), {"dim": 5}),
}


@pytest.mark.parametrize("kind", sorted(MINERS))
@pytest.mark.parametrize("square", [True, False])
def test_miners_match_loops(kind, square):
    miner, params = MINERS[kind]
    if square:
        labels = np.random.default_rng(2).permutation(np.repeat(np.arange(3), 3))
        relation, (pos, neg) = label_relation(labels), ref.relation(labels)
        n = m = len(labels)
    else:
        labels, ref_labels, self_index = _reference_case(3)
        relation = label_relation(labels, ref_labels, self_index=self_index)
        pos, neg = ref.relation(labels, ref_labels, self_index)
        n, m = len(labels), len(ref_labels)
    d = (np.random.default_rng(4).random((n, m)) * 1.5).astype("float32")
    mined = miner(d, relation, embedding_dim=5)
    expected = ref.ref_mine(kind, d.astype(np.float64), pos, neg, **params)
    np.testing.assert_array_equal(to_numpy(mined.positives), expected[0])
    np.testing.assert_array_equal(to_numpy(mined.negatives), expected[1])
    if expected[2] is not None:
        np.testing.assert_allclose(to_numpy(mined.negative_weights), expected[2], rtol=1e-5, atol=1e-7)
    if expected[3] is not None:
        chosen = to_numpy(mined.triplet_negative)
        np.testing.assert_array_equal(np.where(expected[0], chosen, 0), np.where(expected[0], expected[3], 0))


def test_miners_serialise_and_validate():
    for miner, _ in MINERS.values():
        config = keras.saving.serialize_keras_object(miner)
        again = keras.saving.deserialize_keras_object(config)
        assert type(again) is type(miner) and again.get_config() == miner.get_config()
    assert isinstance(get_miner("semi-hard"), SemiHardMiner)
    with pytest.raises(ValueError, match="epsilon must be a finite number >= 0"):
        MultiSimilarityMiner(epsilon=-1.0)
    with pytest.raises(ValueError, match="miner must be"):
        get_miner("easy")
    with pytest.raises(ValueError, match="embedding dimension"):
        DistanceWeightedMiner()(np.zeros((2, 2), "float32"), np.array([0, 1]))


# ----------------------------------------------------------------------------- the two slot-loop paths
# mining._eager_slot_loop() picks the path: torch gathers every slot's values in a Python loop
# under autograd; JAX and TensorFlow select in a traced loop and gather afterwards. Both must
# give the same triplets, values and gradients. The eager path needs a concrete slot count, so
# it runs here on torch and on eager TensorFlow (under jax.grad the count is traced).
SLOT_PATHS = (False,) if keras.backend.backend() == "jax" else (False, True)


def _signed_distances(n, seed, ties):
    """An (n, n) matrix with negative entries (a negated similarity); with ``ties``, repeated values."""
    d = np.random.default_rng(seed).normal(size=(n, n)).astype("float32")
    return np.round(d * 2) / 2 if ties else d


def _semihard_loop_gradient(d, labels, margin):
    """d/dD of the sum over semi-hard triplets of max(d_ap - d_an + margin, 0), by loops (first column among equals)."""
    n = len(labels)
    grad = np.zeros((n, n))
    for a in range(n):
        negatives = [k for k in range(n) if labels[k] != labels[a]]
        if not negatives:
            continue
        for p in range(n):
            if p == a or labels[p] != labels[a]:
                continue
            farther = [k for k in negatives if d[a, k] > d[a, p]]
            chosen = min(farther, key=lambda k: (d[a, k], k)) if farther else min(negatives, key=lambda k: (-d[a, k], k))
            if d[a, p] - d[a, chosen] + margin > 0:
                grad[a, p] += 1.0
                grad[a, chosen] -= 1.0
    return grad


@pytest.mark.parametrize("eager", SLOT_PATHS, ids=lambda e: "eager-slots" if e else "traced-slots")
@settings(max_examples=15, deadline=None)
@given(labels=labels_strategy, seed=st.integers(0, 1000), ties=st.booleans())
def test_slot_paths_give_the_loop_triplets_on_signed_distances(eager, labels, seed, ties):
    import dmlkeras.mining as mining
    from dmlkeras.mining import semihard_triplets

    # The eager path breaks ties by torch's argmin (the first column); TensorFlow's does not promise that.
    assume(not (eager and ties and keras.backend.backend() != "torch"))
    labels = np.array(labels)
    n, margin = len(labels), 0.5
    d = _signed_distances(n, seed, ties)
    pos, neg = ref.relation(labels)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mining, "_eager_slot_loop", lambda: eager)

        def semihard_sum(x):
            positive, negative, valid = semihard_triplets(x * 1, labels)
            hinge = keras.ops.relu(positive - negative + margin)
            return keras.ops.sum(keras.ops.where(valid, hinge, keras.ops.zeros_like(hinge))), keras.ops.sum(
                keras.ops.cast(valid, "float32")
            )

        total, count = map(to_numpy, semihard_sum(d))
        _, grad = value_and_grad(lambda x: semihard_sum(x)[0], d)
        per_positive, per_negative = map(to_numpy, active_triplet_counts(d, labels, margin))
    assert count == (pos & neg.any(axis=1, keepdims=True)).sum()
    expected = ref.ref_triplet(d.astype(np.float64), pos, neg, margin, "semi-hard") * count
    np.testing.assert_allclose(total, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad, _semihard_loop_gradient(d, labels, margin), atol=1e-6)
    expected_p, expected_n = np.zeros((n, n)), np.zeros((n, n))
    for a, p, k in itertools.product(range(n), repeat=3):
        if pos[a, p] and neg[a, k] and d[a, p] - d[a, k] + margin > 0:
            expected_p[a, p] += 1
            expected_n[a, k] += 1
    np.testing.assert_array_equal(per_positive, expected_p)
    np.testing.assert_array_equal(per_negative, expected_n)


@pytest.mark.skipif(keras.backend.backend() == "jax", reason="the eager slot path needs a concrete slot count")
@pytest.mark.parametrize("mining_name", ["semi-hard", "all"])
@pytest.mark.parametrize("distance", ["euclidean", "dot_product"])
def test_triplet_loss_is_the_same_on_both_slot_paths(mining_name, distance):
    import dmlkeras.mining as mining
    from dmlkeras.losses import TripletLoss

    rng = np.random.default_rng(3)
    x = rng.normal(size=(24, 5)).astype("float32")
    labels = rng.permutation(np.repeat(np.arange(6), 4))
    multi_hot = np.eye(6, dtype="float32")[labels]  # the mask-slot tables
    results = []
    for eager in (False, True):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(mining, "_eager_slot_loop", lambda: eager)
            loss = TripletLoss(margin=0.3, mining=mining_name, distance=distance)
            results.append([value_and_grad(lambda v: loss(y, v), x) for y in (labels, multi_hot)])
    for (value_a, grad_a), (value_b, grad_b) in zip(*results):
        assert value_a > 0
        np.testing.assert_allclose(value_b, value_a, rtol=1e-6)
        np.testing.assert_allclose(grad_b, grad_a, rtol=1e-5, atol=1e-7)
