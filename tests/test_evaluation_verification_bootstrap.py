"""verification_bootstrap against plain loop references (stratified bootstrap over pairs)."""

from __future__ import annotations

import numpy as np
import pytest

from dmlkeras.evaluation import roc_curve, verification_bootstrap, verification_metrics


def _pairs(n: int = 60, gap: float = 1.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    same = np.arange(n) % 3 == 0                      # unbalanced on purpose: 20 same, 40 different
    return rng.normal(np.where(same, 0.0, gap)), same


def _loop_values(d: np.ndarray, s: np.ndarray, threshold: float) -> list[float]:
    """Accuracy, AUC (Mann-Whitney, ties 1/2), EER and TAR@FAR<=1e-2 by plain loops."""
    pos = [x for x, t in zip(d, s) if t]
    neg = [x for x, t in zip(d, s) if not t]
    accuracy = sum((x <= threshold) == t for x, t in zip(d, s)) / len(d)
    auc = sum(1.0 if p < q else 0.5 if p == q else 0.0 for p in pos for q in neg) / (len(pos) * len(neg))
    tar = 0.0
    for t in sorted(set(d)):
        if sum(q <= t for q in neg) / len(neg) <= 1e-2:
            tar = max(tar, sum(p <= t for p in pos) / len(pos))
    return [accuracy, auc, roc_curve(d, s).eer, tar]


def _loop_bootstrap(d, s, threshold, n_boot, seed, baseline=None):
    rng = np.random.default_rng(seed)
    same_rows, diff_rows = np.flatnonzero(s), np.flatnonzero(~s)
    reps = []
    for _ in range(n_boot):
        rows = np.concatenate([rng.choice(same_rows, same_rows.size), rng.choice(diff_rows, diff_rows.size)])
        v = np.array(_loop_values(d[rows], s[rows], threshold))
        if baseline is not None:
            v = v - np.array(_loop_values(baseline[0][rows], s[rows], baseline[1]))
        reps.append(v)
    return np.std(reps, axis=0, ddof=1)


KEYS = ["accuracy", "roc_auc", "eer", "tar_at_far_0.01"]


@pytest.mark.parametrize("paired", [False, True])
def test_matches_the_loop_reference(paired: bool) -> None:
    d, s = _pairs()
    baseline = (_pairs(gap=0.4, seed=1)[0], 0.2) if paired else None
    got = verification_bootstrap(d, s, 0.5, baseline=baseline, n_boot=60, seed=3)
    point = np.array(_loop_values(d, s, 0.5))
    if paired:
        point = point - np.array(_loop_values(baseline[0], s, baseline[1]))
    se = _loop_bootstrap(d, s, 0.5, 60, 3, baseline)
    assert list(got) == KEYS
    for i, key in enumerate(KEYS):
        assert got[key].mean == pytest.approx(point[i], abs=1e-12), key
        assert got[key].se == pytest.approx(se[i], abs=1e-12), key
    # the point values agree with verification_metrics (threshold-free ones)
    if not paired:
        m = verification_metrics(d, s)
        assert got["roc_auc"].mean == pytest.approx(m["roc_auc"])
        assert got["eer"].mean == pytest.approx(m["eer"])
        assert got["tar_at_far_0.01"].mean == pytest.approx(m["tar_at_far_0.01"])


def test_standard_errors_behave_like_the_textbook() -> None:
    rng = np.random.default_rng(0)
    same = np.repeat([True, False], 500)
    d = rng.normal(np.where(same, 0.0, 1.5))
    m = verification_bootstrap(d, same, threshold=0.75, n_boot=1500)
    p = m["accuracy"].mean
    # stratified resampling keeps 500 + 500 pairs: a little below the binomial sqrt(p (1 - p) / n)
    assert 0.8 * np.sqrt(p * (1 - p) / 1000) < m["accuracy"].se <= 1.05 * np.sqrt(p * (1 - p) / 1000)
    # paired: a slightly perturbed copy differs by little, with an error far below the separate ones
    other = d + rng.normal(0.0, 0.1, d.size)
    gap = verification_bootstrap(d, same, 0.75, baseline=(other, 0.75), n_boot=1500)
    alone = verification_bootstrap(other, same, 0.75, n_boot=1500)
    assert gap["roc_auc"].se < 0.5 * np.hypot(m["roc_auc"].se, alone["roc_auc"].se)
    # against itself the gap is exactly zero
    zero = verification_bootstrap(d, same, 0.75, baseline=(d, 0.75), n_boot=50)
    assert all(v == (0.0, 0.0) for v in zero.values())
    # seeded
    assert verification_bootstrap(d, same, 0.75, n_boot=50, seed=4) == verification_bootstrap(d, same, 0.75, n_boot=50, seed=4)


def test_checks_its_inputs() -> None:
    d, s = _pairs()
    with pytest.raises(ValueError, match="finite"):
        verification_bootstrap(np.where(s, np.nan, d), s, 0.5)
    with pytest.raises(ValueError, match="both"):
        verification_bootstrap(d, np.ones_like(s), 0.5)
    with pytest.raises(ValueError, match="shape"):
        verification_bootstrap(d, s, 0.5, baseline=(d[:-1], 0.5))
    with pytest.raises(ValueError, match="baseline"):
        verification_bootstrap(d, s, 0.5, baseline=d)
    with pytest.raises(ValueError, match="threshold"):
        verification_bootstrap(d, s, float("inf"))
    with pytest.raises(ValueError, match="n_boot"):
        verification_bootstrap(d, s, 0.5, n_boot=1)
