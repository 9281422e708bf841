"""The composable core of the in-batch losses (dmlkeras/losses/base.py): miners from one
loss feeding another, multi-hot labels and precomputed relations, reducers, distances,
parameter checks and serialisation of miners and reducers, against loop references."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from dmlkeras import losses
from dmlkeras.losses import (
    BatchContrastiveLoss,
    CircleLoss,
    LiftedStructureLoss,
    MultiSimilarityLoss,
    NPairsLoss,
    QuadrupletLoss,
    SupervisedContrastiveLoss,
    TripletLoss,
)
from dmlkeras.mining import (
    AllTripletsMiner,
    DistanceWeightedMiner,
    HardMiner,
    MultiSimilarityMiner,
    PairMarginMiner,
    SemiHardMiner,
)
from tests import references as R
from tests.backend_utils import to_numpy


def _value(loss, labels, x, **kwargs) -> float:
    return float(to_numpy(loss(labels, x, **kwargs)))


def _batch(seed=0, n=12, classes=4, d=5, normalise=False):
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % classes)
    x = rng.normal(size=(n, d)).astype("float32")
    if normalise:
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return labels, x


MINERS = {
    "semi-hard": (SemiHardMiner(), {}),
    "hard": (HardMiner(), {}),
    "all": (AllTripletsMiner(), {}),
    "multi-similarity": (MultiSimilarityMiner(epsilon=0.3), {"epsilon": 0.3}),
    "pair-margin": (PairMarginMiner(pos_margin=0.8, neg_margin=1.2), {"pos_margin": 0.8, "neg_margin": 1.2}),
    "distance-weighted": (DistanceWeightedMiner(), {"dim": 5}),
}


def _reference_layout(seed):
    """Queries against a reference with two queries in it, or the batch itself."""
    labels, x = _batch(seed, n=7, normalise=True)
    ref_labels, ref = _batch(seed + 50, n=10, normalise=True)
    self_index = np.array([3, -1, -1, 8, -1, -1, -1])
    ref[[3, 8]] = x[[0, 3]]
    ref_labels[[3, 8]] = labels[[0, 3]]
    return labels, x, ref_labels, ref, self_index


@pytest.mark.parametrize("kind", sorted(MINERS))
@pytest.mark.parametrize("form", ["square", "reference"])
def test_any_miner_feeds_the_triplet_and_the_contrastive_loss(kind, form):
    miner, params = MINERS[kind]
    if form == "square":
        labels, x = _batch(1, normalise=True)
        ref_labels, ref, self_index, kwargs = labels, x, None, {}
    else:
        labels, x, ref_labels, ref, self_index = _reference_layout(2)
        kwargs = {"ref_labels": ref_labels, "ref_embeddings": ref, "self_index": self_index}
    pos, neg = R.relation(labels, None if form == "square" else ref_labels, self_index)
    d = R.cross(x, ref, "euclidean")
    mined = R.ref_mine(kind, d, pos, neg, **params)
    triplet = TripletLoss(margin=0.3, miner=miner)
    assert _value(triplet, labels, x, **kwargs) == pytest.approx(R.ref_triplet_mined(d, mined, 0.3), rel=2e-5, abs=1e-6)
    contrastive = BatchContrastiveLoss(pos_margin=0.1, neg_margin=1.0, miner=miner)
    expected = R.ref_batch_contrastive(d, mined[0], mined[1], 0.1, 1.0, nw=mined[2])
    assert _value(contrastive, labels, x, **kwargs) == pytest.approx(expected, rel=2e-5, abs=1e-6)


@pytest.mark.parametrize("kind", ["multi-similarity", "pair-margin", "hard", "distance-weighted"])
def test_a_miner_feeds_the_similarity_losses(kind):
    miner, params = MINERS[kind]
    labels, x = _batch(3, normalise=True)
    pos, neg = R.relation(labels)
    d = R.cross(x, x, "euclidean")
    mined = R.ref_mine(kind, d, pos, neg, **params)
    s = R.cosine_similarities(x, x)
    ms = MultiSimilarityLoss(miner=miner, distance="cosine")
    # The miner sees the loss's distance (cosine here): mine on it for the reference.
    dc = R.cross(x, x, "cosine")
    mined_c = R.ref_mine(kind, dc, pos, neg, **params)
    expected = R.ref_multi_similarity(s, pos, neg, 2.0, 50.0, 0.5, 0.1, mined=mined_c[:3])
    assert _value(ms, labels, x) == pytest.approx(expected, rel=2e-5, abs=1e-6)
    npairs = NPairsLoss(miner=miner, distance="euclidean")
    expected = R.ref_npairs(-d, mined[0], mined[1], nw=mined[2])
    assert _value(npairs, labels, x) == pytest.approx(expected, rel=2e-5, abs=1e-6)


def test_mining_short_forms_equal_their_miner_objects():
    labels, x = _batch(4)
    assert _value(TripletLoss(mining="semi-hard"), labels, x) == pytest.approx(
        _value(TripletLoss(miner=SemiHardMiner()), labels, x), rel=1e-6
    )
    assert _value(TripletLoss(mining="hard"), labels, x) == pytest.approx(
        _value(TripletLoss(miner=HardMiner()), labels, x), rel=1e-6
    )
    assert _value(TripletLoss(mining="all"), labels, x) == pytest.approx(
        _value(TripletLoss(miner=AllTripletsMiner(), reducer="nonzero_mean"), labels, x), rel=1e-6
    )


MULTI_HOT_LOSSES = {
    "triplet-semihard": lambda q, r, pos, neg: R.ref_triplet(R.cross(q, r, "euclidean"), pos, neg, 0.5, "semi-hard"),
    "triplet-all": lambda q, r, pos, neg: R.ref_triplet(R.cross(q, r, "euclidean"), pos, neg, 0.2, "all"),
    "batch-contrastive": lambda q, r, pos, neg: R.ref_batch_contrastive(R.cross(q, r, "euclidean"), pos, neg, 0.0, 1.0),
    "supcon": lambda q, r, pos, neg: R.ref_supcon(R.cosine_similarities(q, r), pos, neg, 0.1),
    "multi-similarity": lambda q, r, pos, neg: R.ref_multi_similarity(
        R.cosine_similarities(q, r), pos, neg, 2.0, 50.0, 0.5, 0.1
    ),
}


@pytest.mark.parametrize("name", sorted(MULTI_HOT_LOSSES))
def test_multi_hot_labels_and_relations_match_loops(name):
    rng = np.random.default_rng(5)
    hot = (rng.random((10, 4)) < 0.35).astype("float32")
    x = rng.normal(size=(10, 5)).astype("float32")
    pos, neg = R.relation(hot)
    expected = MULTI_HOT_LOSSES[name](x, x, pos, neg)
    assert _value(losses.get(name), hot, x) == pytest.approx(expected, rel=2e-5, abs=1e-6)
    relation = pos | np.eye(10, dtype=bool)  # a relation: self may be marked or not
    got = _value(losses.get(name, label_format="relation"), relation, x)
    assert got == pytest.approx(expected, rel=2e-5, abs=1e-6)
    # Against a reference, the relation is (n, m).
    ref = rng.normal(size=(6, 5)).astype("float32")
    ref_hot = (rng.random((6, 4)) < 0.35).astype("float32")
    pos, neg = R.relation(hot, ref_hot)
    expected = MULTI_HOT_LOSSES[name](x, ref, pos, neg)
    got = _value(losses.get(name), hot, x, ref_labels=ref_hot, ref_embeddings=ref)
    assert got == pytest.approx(expected, rel=2e-5, abs=1e-6)
    got = _value(losses.get(name, label_format="relation"), pos, x, ref_embeddings=ref)
    assert got == pytest.approx(expected, rel=2e-5, abs=1e-6)


def test_quadruplet_loss_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="takes no miner"):
        QuadrupletLoss(miner=HardMiner())
    with pytest.raises(ValueError, match="needs class ids"):
        QuadrupletLoss()(np.eye(3)[[0, 1, 2, 0]], np.zeros((4, 2)))


def test_reducers_select_the_reduction():
    labels, x = _batch(6)
    pos, neg = R.relation(labels)
    d = R.cross(x, x, "euclidean")
    all_triplets = R.ref_mine("all", d, pos, neg)
    assert _value(TripletLoss(mining="all", margin=0.5, reducer="mean"), labels, x) == pytest.approx(
        R.ref_triplet_mined(d, all_triplets, 0.5), rel=2e-5
    )
    contrastive = R.ref_batch_contrastive(d, pos, neg, 0.0, 1.0, nonzero=False)
    assert _value(BatchContrastiveLoss(reducer="mean"), labels, x) == pytest.approx(contrastive, rel=2e-5)
    total = _value(BatchContrastiveLoss(reducer="sum"), labels, x)
    count = sum(1 for a in range(len(labels)) for j in range(len(labels)) if pos[a, j] or neg[a, j])
    assert total == pytest.approx(contrastive * count, rel=2e-5)


def test_distances_reach_the_similarity_losses():
    labels, x = _batch(7)
    pos, neg = R.relation(labels)
    s = np.asarray(x, np.float64) @ np.asarray(x, np.float64).T
    expected = R.ref_supcon(s, pos, neg, 1.0)
    got = _value(SupervisedContrastiveLoss(temperature=1.0, distance="dot_product"), labels, x)
    assert got == pytest.approx(expected, rel=2e-5)
    d = R.cross(x, x, "euclidean")
    expected = R.ref_multi_similarity(-d, pos, neg, 2.0, 10.0, -1.0, 0.5)
    got = _value(MultiSimilarityLoss(beta=10.0, base=-1.0, epsilon=0.5, distance="euclidean"), labels, x)
    assert got == pytest.approx(expected, rel=2e-5)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    expected = R.ref_npairs(R.cosine_similarities(xn, xn), pos, neg)
    assert _value(NPairsLoss(distance="cosine_similarity"), labels, x) == pytest.approx(expected, rel=2e-5)
    with pytest.raises(ValueError, match="CircleLoss needs a similarity"):
        CircleLoss(distance="euclidean")
    # tensorflow-addons' callable distance_metric keeps working.
    def manhattan(a, b=None):
        b = a if b is None else b
        return keras.ops.sum(keras.ops.abs(keras.ops.expand_dims(a, 1) - keras.ops.expand_dims(b, 0)), axis=-1)

    expected = R.ref_triplet(R.cross(x, x, "manhattan"), pos, neg, 1.0, "semi-hard")
    assert _value(losses.TripletSemiHardLoss(distance_metric=manhattan), labels, x) == pytest.approx(expected, rel=2e-5)


BAD_PARAMETERS = [
    (lambda: TripletLoss(margin=-0.1), "margin must be a finite number >= 0"),
    (lambda: TripletLoss(margin=float("nan")), "margin must be a finite number"),
    (lambda: BatchContrastiveLoss(neg_margin=-1.0), "neg_margin must be"),
    (lambda: LiftedStructureLoss(margin=-1.0), "margin must be"),
    (lambda: QuadrupletLoss(margin_neg=-0.5), "margin_neg must be"),
    (lambda: MultiSimilarityLoss(alpha=0.0), "alpha must be a finite number > 0"),
    (lambda: MultiSimilarityLoss(beta=float("inf")), "beta must be a finite number"),
    (lambda: MultiSimilarityLoss(epsilon=-0.1), "epsilon must be"),
    (lambda: CircleLoss(gamma=0.0), "gamma must be a finite number > 0"),
    (lambda: SupervisedContrastiveLoss(temperature=float("nan")), "temperature must be a finite number > 0"),
    (lambda: NPairsLoss(l2_reg=-0.01), "l2_reg must be a finite number >= 0"),
    (lambda: losses.NPairsTupleLoss(l2_reg=-0.01), "l2_reg must be"),
    (lambda: losses.ContrastiveLoss(margin=-1.0), "margin must be"),
    (lambda: losses.TripletMarginLoss(margin=-1.0), "margin must be"),
    (lambda: TripletLoss(miner=AllTripletsMiner(), soft=True), "soft=True"),
    (lambda: TripletLoss(reducer="median"), "reducer must be"),
    (lambda: TripletLoss(label_format="onehot"), "label_format must be one of"),
    (lambda: TripletLoss(distance="cosine", metric="cosine"), "not both"),
    (lambda: losses.get("triplet"), "Registered losses"),
]


@pytest.mark.parametrize("make, message", BAD_PARAMETERS, ids=[m for _, m in BAD_PARAMETERS])
def test_bad_parameters_raise_value_errors_naming_them(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_large_class_ids_are_exact_or_refused():
    labels = np.array([2**24, 2**24 + 1] * 3, "int64")
    x = np.random.default_rng(8).normal(size=(6, 3)).astype("float32")
    small = np.array([0, 1] * 3)
    assert _value(TripletLoss(), labels, x) == pytest.approx(_value(TripletLoss(), small, x))
    with pytest.raises(ValueError, match="2\\*\\*24"):
        TripletLoss()(labels.astype("float32"), x)


def test_large_int_ids_stay_exact_in_fit():
    labels = np.array([2**24, 2**24 + 1] * 6, "int64")
    x = np.random.default_rng(9).normal(size=(12, 3)).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss=TripletLoss(margin=0.5))
    evaluated = model.evaluate(x, labels, batch_size=12, verbose=0)
    expected = _value(TripletLoss(margin=0.5), np.array([0, 1] * 6), model.predict(x, verbose=0))
    assert evaluated == pytest.approx(expected, rel=1e-5)


def test_a_model_with_a_miner_and_a_reducer_saves_and_loads(tmp_path):
    loss = BatchContrastiveLoss(miner=MultiSimilarityMiner(epsilon=0.2), reducer="mean", distance="cosine")
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    model.compile(optimizer="sgd", loss=loss)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.loss.miner, MultiSimilarityMiner) and loaded.loss.miner.epsilon == 0.2
    assert loaded.loss.get_config() == loss.get_config()
    labels, x = _batch(10)
    assert _value(loaded.loss, labels, x) == pytest.approx(_value(loss, labels, x))


def test_configs_of_the_first_version_still_load():
    old = {"name": "triplet_loss", "reduction": "sum_over_batch_size", "margin": 0.5, "mining": "hard",
           "metric": "cosine", "soft": False}
    loss = TripletLoss.from_config(old)
    assert loss.metric == "cosine" and loss.mining == "hard"
    old = {"name": "batch_contrastive_loss", "reduction": "sum_over_batch_size", "pos_margin": 0.0,
           "neg_margin": 1.0, "metric": "euclidean"}
    assert BatchContrastiveLoss.from_config(old).distance.name == "euclidean"


def test_the_worked_example_of_docs_losses_md(tmp_path):
    """The ~25-line loss of docs/losses.md runs as written and matches a loop reference."""
    from pathlib import Path

    text = (Path(__file__).parents[1] / "docs" / "losses.md").read_text()
    code = text.split("### Writing a new loss", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    assert len(code.strip().splitlines()) <= 35
    namespace: dict = {}
    exec(compile(code, "docs/losses.md", "exec"), namespace)
    loss = namespace["MarginLoss"]()
    labels, x = _batch(11, normalise=True)
    pos, neg = R.relation(labels)
    d = R.cross(x, x, "euclidean")
    mpos, mneg, weights, _ = R.ref_mine("distance-weighted", d, pos, neg, dim=x.shape[1])
    total = count = 0.0
    for a in range(len(labels)):
        for j in range(len(labels)):
            if mpos[a, j]:
                cost, w = max(d[a, j] - 1.0, 0.0), 1.0
            elif mneg[a, j]:
                cost, w = max(1.4 - d[a, j], 0.0), weights[a, j]
            else:
                continue
            if cost > 0:
                total, count = total + w * cost, count + w
    assert _value(loss, labels, x) == pytest.approx(total / count, rel=2e-5)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    model.compile(optimizer="sgd", loss=loss)
    model.save(tmp_path / "m.keras")
    assert type(keras.saving.load_model(tmp_path / "m.keras").loss).__name__ == "MarginLoss"


@pytest.mark.skipif(
    keras.backend.backend() == "torch",
    reason="Keras trains eagerly on torch, where such ids raise the eager ValueError (tested above); nothing is traced",
)
def test_traced_float_ids_beyond_float32_give_nan_not_merged_classes():
    labels = np.array([2**24, 2**24 + 2] * 3, "float32")
    x = np.random.default_rng(12).normal(size=(6, 3)).astype("float32")
    loss = TripletLoss()
    if keras.backend.backend() == "jax":
        import jax

        value = jax.jit(lambda y, v: loss(y, v))(labels, x)
    else:
        import tensorflow as tf

        value = tf.function(lambda y, v: loss(y, v))(labels, x)
    assert np.isnan(float(to_numpy(value)))


def test_a_subclass_of_the_first_version_with_compute_still_works():
    from dmlkeras.mining import positive_mask
    from dmlkeras.reducers import masked_mean

    class MeanPositiveDistance(losses.InBatchLoss):
        def compute(self, labels, embeddings):
            return masked_mean(self.distance.distance_matrix(embeddings), positive_mask(labels))

    assert _value(MeanPositiveDistance(), np.array([0, 0]), np.array([[0.0, 0.0], [3.0, 4.0]])) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="takes no reference"):
        MeanPositiveDistance()(np.array([0, 0]), np.zeros((2, 2)), ref_labels=np.array([0]), ref_embeddings=np.zeros((1, 2)))
    with pytest.raises(ValueError, match="self_index names rows of a reference"):
        TripletLoss()(np.array([0, 0]), np.zeros((2, 2)), self_index=np.array([0, 1]))


# ----------------------------------------------------------------------------- functional forms and tuple losses


def _cosine(u, v):
    return 1.0 - R.distance(u, v, "cosine")


FUNCTIONAL = {
    "circle_loss": (
        lambda **k: losses.circle_loss(margin=0.25, gamma=32.0, **k),
        lambda s, d, pos, neg: R.ref_circle(s, pos, neg, 0.25, 32.0),
        "cosine",
    ),
    "multi_similarity_loss": (
        lambda **k: losses.multi_similarity_loss(alpha=2.0, beta=10.0, base=0.5, epsilon=0.3, **k),
        lambda s, d, pos, neg: R.ref_multi_similarity(s, pos, neg, 2.0, 10.0, 0.5, 0.3),
        "cosine",
    ),
    "supervised_contrastive_loss": (
        lambda **k: losses.supervised_contrastive_loss(temperature=0.5, **k),
        lambda s, d, pos, neg: R.ref_supcon(s, pos, neg, 0.5),
        "cosine",
    ),
    "supervised_contrastive_loss/dot_product": (
        lambda **k: losses.supervised_contrastive_loss(temperature=0.5, distance="dot_product", **k),
        lambda s, d, pos, neg: R.ref_supcon(d, pos, neg, 0.5),  # d: the dot products here
        "dot",
    ),
    "lifted_structure_loss": (
        lambda **k: losses.lifted_structure_loss(margin=1.0, **k),
        lambda s, d, pos, neg: R.ref_lifted(d, pos, neg, 1.0),
        "euclidean",
    ),
    "lifted_structure_loss/manhattan": (
        lambda **k: losses.lifted_structure_loss(margin=1.0, distance="manhattan", **k),
        lambda s, d, pos, neg: R.ref_lifted(d, pos, neg, 1.0),
        "manhattan",
    ),
}


@pytest.mark.parametrize("name", sorted(FUNCTIONAL))
@pytest.mark.parametrize("form", ["square", "reference"])
def test_functional_forms_take_a_reference_and_a_distance(name, form):
    function, reference, metric = FUNCTIONAL[name]
    labels, x, ref_labels, ref, self_index = _reference_layout(3)
    x, ref = 2.0 * x, 2.0 * ref  # off the unit sphere: dot products and distances differ from cosines
    if form == "square":
        kwargs, ref_labels, ref, self_index = {}, None, x, None
    else:
        kwargs = {"ref_labels": ref_labels, "ref_embeddings": ref, "self_index": self_index}
        assert len(ref) != len(x)
    pos, neg = R.relation(labels, ref_labels, self_index)
    s = R.cosine_similarities(x, ref)
    d = x.astype(np.float64) @ ref.T.astype(np.float64) if metric == "dot" else R.cross(x, ref, "euclidean" if metric == "cosine" else metric)
    expected = reference(s, d, pos, neg)
    value = float(to_numpy(function(labels=labels, embeddings=x, **kwargs)))
    assert expected > 0
    assert value == pytest.approx(expected, rel=1e-4, abs=1e-5)


def test_npairs_loss_takes_a_distance():
    rng = np.random.default_rng(4)
    anchors, positives = rng.normal(size=(2, 6, 5)).astype("float32")
    labels = np.array([0, 1, 2, 0, 3, 4])
    for distance, similarity in ((None, lambda u, v: float(np.dot(u, v))), ("cosine_similarity", _cosine)):
        expected = R.ref_npairs_tuple(labels, anchors, positives, similarity)
        value = float(to_numpy(losses.npairs_loss(labels, anchors, positives, distance=distance)))
        assert value == pytest.approx(expected, rel=1e-5)
        tuple_loss = losses.NPairsTupleLoss(distance=distance)
        assert float(to_numpy(tuple_loss(labels, np.stack([anchors, positives], axis=1)))) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("distance", ["euclidean", "squared_euclidean", "manhattan", "cosine"])
def test_tuple_losses_take_a_distance_and_keep_metric(distance):
    from dmlkeras import distances

    rng = np.random.default_rng(5)
    triplets = rng.normal(size=(6, 3, 4)).astype("float32")
    quadruplets = rng.normal(size=(6, 4, 4)).astype("float32")
    zeros = np.zeros(6)
    expected = R.triplet_margin(triplets, 0.5, distance, soft=False)
    for loss in (
        losses.TripletMarginLoss(margin=0.5, distance=distance),
        losses.TripletMarginLoss(margin=0.5, distance=distances.get(distance)),
        losses.TripletMarginLoss(margin=0.5, metric=distance),
    ):
        assert loss.metric == distance
        assert float(to_numpy(loss(zeros, triplets))) == pytest.approx(expected, rel=1e-5)
        reloaded = losses.TripletMarginLoss.from_config(loss.get_config())
        assert float(to_numpy(reloaded(zeros, triplets))) == pytest.approx(expected, rel=1e-5)
    expected = R.quadruplet_margin(quadruplets, 1.0, 0.5, distance)
    for loss in (losses.QuadrupletMarginLoss(distance=distance), losses.QuadrupletMarginLoss(metric=distance)):
        assert float(to_numpy(loss(zeros, quadruplets))) == pytest.approx(expected, rel=1e-5)
        reloaded = losses.QuadrupletMarginLoss.from_config(loss.get_config())
        assert float(to_numpy(reloaded(zeros, quadruplets))) == pytest.approx(expected, rel=1e-5)
    pairs, similar = triplets[:, :2], np.array([1.0, 0.0] * 3)
    paired = np.array([R.distance(a, b, distance) for a, b in pairs])
    loss = losses.ContrastiveLoss(margin=1.0, distance=distance)
    expected = R.contrastive(similar, paired, 1.0)
    assert float(to_numpy(loss(similar, pairs))) == pytest.approx(expected, rel=1e-5)
    assert float(to_numpy(loss(similar, paired.astype("float32")))) == pytest.approx(expected, rel=1e-5)  # distances as given
    assert float(to_numpy(losses.ContrastiveLoss.from_config(loss.get_config())(similar, pairs))) == pytest.approx(expected, rel=1e-5)


def test_tuple_losses_refuse_two_distances_and_load_first_version_configs():
    with pytest.raises(ValueError, match="not both"):
        losses.TripletMarginLoss(distance="cosine", metric="euclidean")
    with pytest.raises(ValueError, match="Unknown metric"):
        losses.QuadrupletMarginLoss(metric="nope")
    with pytest.raises(ValueError, match=r"\(batch_size, 2, embedding_dim\)"):
        losses.ContrastiveLoss()(np.zeros(2), np.zeros((2, 3, 4), "float32"))
    old = {"name": "triplet_margin_loss", "reduction": "sum_over_batch_size", "margin": 1.0, "metric": "cosine", "soft": False}
    assert losses.TripletMarginLoss.from_config(old).metric == "cosine"
    old = {"name": "quadruplet_margin_loss", "reduction": "sum_over_batch_size", "margin_pos": 1.0, "margin_neg": 0.5,
           "metric": "squared_euclidean"}
    assert losses.QuadrupletMarginLoss.from_config(old).metric == "squared_euclidean"
    assert losses.ContrastiveLoss.from_config({"name": "c", "reduction": "sum_over_batch_size", "margin": 1.0}).distance.name == "euclidean"
