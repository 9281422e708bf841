"""bootstrap_mean and clustering_metrics against plain loop references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.metrics import adjusted_mutual_info_score, normalized_mutual_info_score

from dmlkeras.evaluation import bootstrap_mean, clustering_metrics, open_set_split


# ------------------------------------------------------------- references
def reference_bootstrap(values, groups, n_boot, seed):
    """The cluster bootstrap, one replicate and one group at a time (same draws as the library)."""
    values = np.asarray(values, dtype=np.float64)
    names = sorted(set(groups.tolist())) if groups is not None else list(range(len(values)))
    members = [
        [i for i in range(len(values)) if (groups[i] if groups is not None else i) == name] for name in names
    ]
    draws = np.random.default_rng(seed).integers(0, len(names), size=(n_boot, len(names)))
    replicates = []
    for row in draws:
        picked = [values[i] for g in row for i in members[g]]
        replicates.append(sum(picked) / len(picked))
    return float(np.mean(values)), float(np.std(replicates, ddof=1))


def reference_pairwise(truth, found):
    tp = claimed = true_pairs = 0
    for i, j in itertools.combinations(range(len(truth)), 2):
        same_cluster, same_person = found[i] == found[j], truth[i] == truth[j]
        claimed += same_cluster
        true_pairs += same_person
        tp += same_cluster and same_person
    return tp, claimed, true_pairs


# ------------------------------------------------------------- bootstrap_mean
@pytest.mark.parametrize("grouped", [False, True])
def test_bootstrap_matches_the_loop_reference(grouped: bool) -> None:
    rng = np.random.default_rng(3)
    values = rng.random(40) < 0.6
    groups = rng.integers(0, 9, size=40) * 7 if grouped else None  # unsorted, gappy labels
    got = bootstrap_mean(values, groups=groups, n_boot=300, seed=11)
    want = reference_bootstrap(values, groups, 300, 11)
    assert got.mean == pytest.approx(want[0], abs=1e-12)
    assert got.se == pytest.approx(want[1], rel=1e-10)


def test_bootstrap_se_agrees_with_the_textbook_formulas() -> None:
    rng = np.random.default_rng(0)
    hits = rng.random(2000) < 0.3
    analytic = np.sqrt(hits.mean() * (1 - hits.mean()) / hits.size)
    assert bootstrap_mean(hits, n_boot=4000).se == pytest.approx(analytic, rel=0.06)
    # Groups sharing one value (a person's probes all right or all wrong): the cluster
    # bootstrap sees G independent groups, the item bootstrap wrongly sees n items.
    sizes = rng.integers(1, 8, size=300)
    group_value = (rng.random(300) < 0.5).astype(float)
    values, groups = np.repeat(group_value, sizes), np.repeat(np.arange(300), sizes)
    m = values.mean()
    sums, counts = group_value * sizes, sizes.astype(float)
    linearised = np.sqrt(np.sum((sums - m * counts) ** 2)) / counts.sum()  # delta method of the ratio
    clustered = bootstrap_mean(values, groups=groups, n_boot=4000).se
    assert clustered == pytest.approx(linearised, rel=0.08)
    assert clustered > 1.5 * bootstrap_mean(values, n_boot=4000).se


def test_bootstrap_is_seeded_and_checks_its_inputs() -> None:
    x = np.arange(10.0)
    assert bootstrap_mean(x, seed=1) == bootstrap_mean(x, seed=1)
    assert bootstrap_mean(x, seed=1).se != bootstrap_mean(x, seed=2).se
    assert bootstrap_mean(np.full(5, 0.25)) == (0.25, 0.0)
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_mean([0.5, np.nan])
    with pytest.raises(ValueError, match=r"shape \(n_pairs,\)|non-empty 1-D"):
        bootstrap_mean([])
    with pytest.raises(ValueError, match=r"groups must have shape \(3,\)"):
        bootstrap_mean([1, 0, 1], groups=[0, 1])
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_mean([1, 0, 1], n_boot=1)
    with pytest.raises(ValueError, match="seed"):
        bootstrap_mean([1, 0, 1], seed=-1)


# ------------------------------------------------------------- clustering_metrics
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clustering_metrics_match_the_pair_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = np.array([f"person {i}" for i in rng.integers(0, 8, size=50)])
    found = rng.integers(0, 6, size=50) * 3 - 5  # negative, gappy cluster ids
    tp, claimed, true_pairs = reference_pairwise(truth, found)
    m = clustering_metrics(truth, found)
    assert m["pairwise_precision"] == pytest.approx(tp / claimed, abs=1e-12)
    assert m["pairwise_recall"] == pytest.approx(tp / true_pairs, abs=1e-12)
    assert m["pairwise_f1"] == pytest.approx(2 * tp / (claimed + true_pairs), abs=1e-12)
    p, r = tp / claimed, tp / true_pairs
    assert m["pairwise_f1"] == pytest.approx(2 * p * r / (p + r), abs=1e-12)
    assert m["nmi"] == pytest.approx(normalized_mutual_info_score(truth, found), abs=1e-12)
    assert m["ami"] == pytest.approx(adjusted_mutual_info_score(truth, found), abs=1e-12)
    assert m["n_clusters"] == len(set(found.tolist()))


def test_clustering_metrics_edge_cases() -> None:
    truth = [0, 0, 1, 1, 2]
    perfect = clustering_metrics(truth, [5, 5, 3, 3, 9])
    assert perfect["pairwise_precision"] == perfect["pairwise_recall"] == perfect["pairwise_f1"] == 1.0
    assert perfect["ami"] == pytest.approx(1.0)
    singletons = clustering_metrics(truth, [0, 1, 2, 3, 4])  # no pair claimed: precision undefined
    assert np.isnan(singletons["pairwise_precision"])
    assert singletons["pairwise_recall"] == 0.0 and singletons["pairwise_f1"] == 0.0
    one = clustering_metrics(truth, [0] * 5)
    assert one["pairwise_recall"] == 1.0 and one["pairwise_precision"] == pytest.approx(2 / 10)
    assert np.isnan(clustering_metrics([0, 1, 2], [0, 0, 1])["pairwise_recall"])  # nobody has two items
    with pytest.raises(ValueError, match=r"labels_pred must have shape \(5,\)"):
        clustering_metrics(truth, [0, 1])
    with pytest.raises(ValueError, match=r"labels_true must have shape \(n,\)"):
        clustering_metrics([[0, 1]], [[0, 1]])


# ------------------------------------------------------------- open_set_split
def test_open_set_split_enrols_one_item_per_identity() -> None:
    rng = np.random.default_rng(0)
    labels = np.array([f"p{i}" for i in rng.integers(0, 30, size=120)])
    split = open_set_split(labels, seed=4)
    everything = np.concatenate(split)
    assert sorted(everything.tolist()) == list(range(120))  # disjoint, complete
    for part in split:
        assert part.dtype == np.int64 and np.all(np.diff(part) > 0)
    for name in set(labels.tolist()):
        items = np.flatnonzero(labels == name)
        enrolled = np.intersect1d(items, split.gallery)
        if len(items) >= 2:  # one in the gallery, the rest mated probes
            assert len(enrolled) == 1 and set(items) - set(enrolled) <= set(split.mated)
        else:
            assert len(enrolled) == 0 and items[0] in split.non_mated
    assert set(labels[split.mated]) <= set(labels[split.gallery])
    assert set(labels[split.non_mated]).isdisjoint(labels[split.gallery])
    # the enrolled photo is drawn at random (not always the first), and the draw is seeded
    picks = {tuple(open_set_split(labels, seed=s).gallery) for s in range(5)}
    assert len(picks) > 1 and open_set_split(labels, seed=4).gallery.tolist() == split.gallery.tolist()


def test_open_set_split_rejects_what_it_cannot_split() -> None:
    with pytest.raises(ValueError, match="No identity has two items"):
        open_set_split([1, 2, 3])
    with pytest.raises(ValueError, match=r"shape \(n,\)"):
        open_set_split([])
