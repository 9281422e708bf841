"""Sampling by class: the building blocks of the pair, triplet, quadruplet and P x K samplers.

Plain NumPy on integer labels; every function takes the
:class:`numpy.random.Generator` it draws from, so callers decide the seeding.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ClassGroups", "balanced_draws", "cyclic_rows", "other_classes", "pair_classes", "require_classes"]


class ClassGroups:
    """Samples grouped by class (classes are coded 0..C-1 in sorted order).

    Examples
    --------
    >>> groups = ClassGroups(np.array([5, 3, 5, 5]))
    >>> groups.classes.tolist(), groups.counts.tolist(), groups.members(1).tolist()
    ([3, 5], [1, 3], [0, 2, 3])
    """

    def __init__(self, y: np.ndarray):
        self.classes, codes = np.unique(y, return_inverse=True)
        self.codes = codes.reshape(-1)
        self.n_classes = len(self.classes)
        self.counts = np.bincount(self.codes, minlength=self.n_classes)
        self.order = np.argsort(self.codes, kind="stable")
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])

    def members(self, c: int) -> np.ndarray:
        return self.order[self.starts[c] : self.starts[c] + self.counts[c]]

    def sample(self, cls: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One uniformly drawn sample index per entry of ``cls``."""
        offset = rng.integers(0, self.counts[cls])
        return self.order[self.starts[cls] + offset]

    def sample_two(
        self, cls: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Two distinct sample indices per entry of ``cls`` (counts >= 2)."""
        count = self.counts[cls]
        i = rng.integers(0, count)
        j = rng.integers(0, count - 1)
        j = j + (j >= i)
        base = self.starts[cls]
        return self.order[base + i], self.order[base + j]


def balanced_draws(n: int, pool: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``n`` draws from ``pool`` where every element appears floor or ceil(n/len)."""
    q, r = divmod(n, len(pool))
    out = np.concatenate([np.repeat(pool, q), rng.choice(pool, size=r, replace=False)])
    rng.shuffle(out)
    return out


def other_classes(
    anchor: np.ndarray, n_classes: int, n_other: int, rng: np.random.Generator
) -> np.ndarray:
    """(len(anchor), n_other) distinct class codes, all different from anchor."""
    m = len(anchor)
    k1 = rng.integers(0, n_classes - 1, size=m)
    cols = [k1]
    if n_other == 2:
        k2 = rng.integers(0, n_classes - 2, size=m)
        cols.append(k2 + (k2 >= k1))
    out = np.stack(cols, axis=1)
    return out + (out >= anchor[:, None])


def cyclic_rows(
    pool: np.ndarray, n_rows: int, k: int, rng: np.random.Generator
) -> np.ndarray:
    """(n_rows, k) draws from ``pool`` (len >= k), distinct within each row.

    Consecutive random permutations of ``pool`` are cut into rows, so every
    element is used about equally often (each once per pass).  The rare rows
    that straddle two permutations and repeat an element are redrawn.
    """
    m = len(pool)
    n_perm = -(-(n_rows * k) // m)
    stream = rng.permuted(np.tile(pool, (n_perm, 1)), axis=1).reshape(-1)
    rows = stream[: n_rows * k].reshape(n_rows, k).copy()
    if k > 1:
        s = np.sort(rows, axis=1)
        for r in np.flatnonzero((s[:, 1:] == s[:, :-1]).any(axis=1)):
            rows[r] = rng.choice(pool, size=k, replace=False)
    return rows


def require_classes(groups: ClassGroups, minimum: int, what: str) -> None:
    if groups.n_classes < minimum:
        raise ValueError(
            f"{what} need at least {minimum} distinct classes in `y`; got "
            f"{groups.n_classes} ({groups.classes.tolist()[:10]})."
        )


def pair_classes(groups: ClassGroups, what: str) -> np.ndarray:
    eligible = np.flatnonzero(groups.counts >= 2)
    if len(eligible) == 0:
        raise ValueError(
            f"{what} need at least one class with >= 2 samples (two distinct "
            f"samples of the same class); all {groups.n_classes} classes in "
            "`y` have a single sample."
        )
    return eligible


# ----------------------------------------------------------------------------
