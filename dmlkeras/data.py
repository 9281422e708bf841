"""NumPy batch builders for deep metric learning.

This module turns a labelled data set ``(x, y)`` into the tuples and batches
that metric-learning models consume:

* :func:`make_pairs` / :func:`make_pair_indices` -- positive/negative pairs
  for siamese (contrastive) models;
* :func:`make_triplets` / :func:`make_triplet_indices` -- (anchor, positive,
  negative) triplets;
* :func:`make_quadruplets` / :func:`make_quadruplet_indices` -- (anchor,
  positive, negative1, negative2) quadruplets (Chen et al., 2017);
* :class:`ClassBalancedBatches` -- a :class:`keras.utils.PyDataset` of
  "P x K" batches (P classes, K samples each) for in-batch losses
  (batch-hard triplet, multi-similarity, supervised contrastive, ...);
* :class:`PairsDataset` / :class:`TripletsDataset` -- ``PyDataset``\\ s that
  build fresh pairs/triplets every epoch instead of materialising them.

Everything is plain NumPy, so the datasets work with every Keras backend
(TensorFlow, JAX, PyTorch).  ``x`` may be one array, a tuple/list of arrays
(multi-input models) or a dict of arrays; ``y`` holds integer class labels of
shape ``(n_samples,)``.

Reproducibility
---------------
All randomness goes through :func:`numpy.random.default_rng`.  The
``make_*`` functions are pure functions of their arguments and ``seed``.  The
datasets derive every batch from ``(seed, epoch, index)`` only: the batch
returned by ``dataset[i]`` does not depend on which batches were requested
before, or in which order, or from which thread/process.  That keeps
training reproducible when Keras shuffles the batch order or fetches batches
with several ``workers``.  The ``epoch`` attribute is advanced by
``on_epoch_end`` (which ``model.fit`` calls) and can be set by hand, e.g. to
resume training.  (Keras' ``fit`` also calls ``on_epoch_end`` once after
peeking at a batch to build the model, so its first training epoch may use
``epoch == 1``; that is still a fixed function of the seed.)
"""

from __future__ import annotations

import inspect
import math
import threading
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Union

import numpy as np
from keras.utils import PyDataset

__all__ = [
    "make_pair_indices",
    "make_pairs",
    "make_triplet_indices",
    "make_triplets",
    "make_quadruplet_indices",
    "make_quadruplets",
    "ClassBalancedBatches",
    "PairsDataset",
    "TripletsDataset",
]

#: Anything :func:`numpy.random.default_rng` accepts.
SeedLike = Union[int, np.random.Generator, np.random.SeedSequence, None]
#: One array, a tuple/list of arrays (multi-input) or a dict of arrays.
Inputs = Any

# Purposes used as the first element of SeedSequence spawn keys so that the
# random streams of different uses never coincide.
_PLAN = 0
_AUGMENT = 1


# ----------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------
def _check_int(value: Any, name: str, minimum: int = 1) -> int:
    if (
        isinstance(value, (bool, np.bool_))
        or not isinstance(value, (int, np.integer))
        or value < minimum
    ):
        raise ValueError(f"`{name}` must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def _check_fraction(value: Any, name: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"`{name}` must be a number in [0, 1]; got {value!r}."
        ) from None
    if not 0.0 <= value <= 1.0:  # also rejects nan
        raise ValueError(f"`{name}` must be a number in [0, 1]; got {value!r}.")
    return value


def _check_seed(seed: Any) -> int:
    """Integer seed for the datasets (``None`` -> fresh OS entropy, fixed once)."""
    if seed is None:
        return int(np.random.SeedSequence().entropy)
    if (
        isinstance(seed, (bool, np.bool_))
        or not isinstance(seed, (int, np.integer))
        or seed < 0
    ):
        raise ValueError(
            "`seed` must be a non-negative integer (or None for a random seed "
            f"drawn once); got {seed!r}. Generators are not accepted here "
            "because batches must be a function of (seed, epoch, index)."
        )
    return int(seed)


def _as_labels(y: Any) -> np.ndarray:
    """Validate integer class labels of shape (n,) or (n, 1); return (n,)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(
            "`y` must hold integer class labels with shape (n_samples,) or "
            f"(n_samples, 1); got shape {y.shape}. (One-hot labels: use "
            "`y.argmax(axis=1)`.)"
        )
    if y.shape[0] == 0:
        raise ValueError("`y` is empty; expected at least one labelled sample.")
    if y.dtype == np.bool_:
        return y.astype(np.int64)
    if np.issubdtype(y.dtype, np.integer):
        return y
    if np.issubdtype(y.dtype, np.floating):
        if np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            return y.astype(np.int64)
        raise ValueError(
            "`y` must hold integer class labels; got non-integral floats "
            f"(dtype {y.dtype})."
        )
    raise ValueError(f"`y` must hold integer class labels; got dtype {y.dtype}.")


def _is_array_like(v: Any) -> bool:
    return hasattr(v, "shape") and hasattr(v, "__getitem__")


def _as_inputs(x: Any, n_samples: int) -> Inputs:
    """Normalise ``x`` (array / tuple / list / dict of arrays) and check lengths."""
    if isinstance(x, Mapping):
        if not x:
            raise ValueError("`x` is an empty dict; expected at least one input.")
        xs: Inputs = {k: np.asarray(v) for k, v in x.items()}
        items = [(f"x[{k!r}]", v) for k, v in xs.items()]
    elif isinstance(x, tuple) or (
        isinstance(x, list) and x and all(_is_array_like(v) for v in x)
    ):
        if not x:
            raise ValueError("`x` is an empty tuple; expected at least one input.")
        xs = tuple(np.asarray(v) for v in x)
        items = [(f"x[{i}]", v) for i, v in enumerate(xs)]
    else:
        xs = np.asarray(x)
        items = [("x", xs)]
    for name, arr in items:
        if arr.ndim == 0 or arr.shape[0] != n_samples:
            raise ValueError(
                "x and y must have the same number of samples: expected "
                f"{name} with shape ({n_samples}, ...) to match y "
                f"({n_samples} labels); got shape {arr.shape}."
            )
    return xs


def _take(x: Inputs, idx: np.ndarray) -> Inputs:
    if isinstance(x, dict):
        return {k: v[idx] for k, v in x.items()}
    if isinstance(x, tuple):
        return tuple(v[idx] for v in x)
    return x[idx]


def _check_augment(augment: Any) -> tuple[Callable | None, bool]:
    if augment is None:
        return None, False
    if not callable(augment):
        raise TypeError(f"`augment` must be a callable or None; got {augment!r}.")
    try:
        params = inspect.signature(augment).parameters
    except (TypeError, ValueError):
        return augment, False
    p = params.get("rng")
    takes_rng = p is not None and p.kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    )
    return augment, takes_rng


# ----------------------------------------------------------------------------
# sampling helpers
# ----------------------------------------------------------------------------
class _Groups:
    """Samples grouped by class (classes are coded 0..C-1 in sorted order)."""

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


def _balanced(n: int, pool: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``n`` draws from ``pool`` where every element appears floor or ceil(n/len)."""
    q, r = divmod(n, len(pool))
    out = np.concatenate([np.repeat(pool, q), rng.choice(pool, size=r, replace=False)])
    rng.shuffle(out)
    return out


def _other_classes(
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


def _cyclic_rows(
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


def _need_classes(groups: _Groups, minimum: int, what: str) -> None:
    if groups.n_classes < minimum:
        raise ValueError(
            f"{what} need at least {minimum} distinct classes in `y`; got "
            f"{groups.n_classes} ({groups.classes.tolist()[:10]})."
        )


def _eligible(groups: _Groups, what: str) -> np.ndarray:
    eligible = np.flatnonzero(groups.counts >= 2)
    if len(eligible) == 0:
        raise ValueError(
            f"{what} need at least one class with >= 2 samples (two distinct "
            f"samples of the same class); all {groups.n_classes} classes in "
            "`y` have a single sample."
        )
    return eligible


# ----------------------------------------------------------------------------
# pairs / triplets / quadruplets
# ----------------------------------------------------------------------------
def make_pair_indices(
    y: Any,
    n_pairs: int,
    positive_fraction: float = 0.5,
    seed: SeedLike = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw index pairs for siamese / contrastive training.

    ``round(n_pairs * positive_fraction)`` pairs are positives: two distinct
    samples of the same class, with the classes drawn balanced (every class
    with >= 2 samples is used ``floor`` or ``ceil`` of ``n_pos / n_eligible``
    times; single-sample classes are skipped).  The rest are negatives: one
    sample of a balanced class and one of a uniformly drawn *other* class
    (in random order).  Within a class, samples are drawn uniformly.  The
    pairs are returned in random order.

    Parameters
    ----------
    y : array-like of int, shape (n_samples,) or (n_samples, 1)
        Class labels.
    n_pairs : int
        Number of pairs (>= 1).
    positive_fraction : float, default 0.5
        Fraction of positive pairs, in [0, 1].
    seed : int, Generator, SeedSequence or None, default 0
        Passed to :func:`numpy.random.default_rng`.

    Returns
    -------
    idx : ndarray of intp, shape (n_pairs, 2)
        Sample indices into ``y`` (and ``x``).
    same : ndarray of float32, shape (n_pairs,)
        1.0 for positive pairs (same class), 0.0 for negatives.

    Raises
    ------
    ValueError
        If ``y`` is not a 1-D integer label array, ``n_pairs < 1``,
        ``positive_fraction`` is outside [0, 1], positives are needed but no
        class has >= 2 samples, or negatives are needed but ``y`` has fewer
        than 2 classes.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([0, 0, 1, 1, 2, 2])
    >>> idx, same = make_pair_indices(y, n_pairs=8, seed=0)
    >>> idx.shape, same.shape, same.dtype
    ((8, 2), (8,), dtype('float32'))
    >>> int(same.sum())
    4
    >>> bool(np.all((y[idx[:, 0]] == y[idx[:, 1]]) == (same == 1)))
    True
    """
    y = _as_labels(y)
    n_pairs = _check_int(n_pairs, "n_pairs")
    positive_fraction = _check_fraction(positive_fraction, "positive_fraction")
    rng = np.random.default_rng(seed)
    groups = _Groups(y)

    n_pos = int(math.floor(n_pairs * positive_fraction + 0.5))
    n_neg = n_pairs - n_pos
    parts = []
    if n_pos:
        eligible = _eligible(groups, "Positive pairs")
        cls = _balanced(n_pos, eligible, rng)
        parts.append(np.stack(groups.sample_two(cls, rng), axis=1))
    if n_neg:
        _need_classes(groups, 2, "Negative pairs")
        cls_a = _balanced(n_neg, np.arange(groups.n_classes), rng)
        cls_b = _other_classes(cls_a, groups.n_classes, 1, rng)[:, 0]
        neg = np.stack([groups.sample(cls_a, rng), groups.sample(cls_b, rng)], axis=1)
        swap = rng.random(n_neg) < 0.5
        neg[swap] = neg[swap, ::-1]
        parts.append(neg)
    idx = np.concatenate(parts, axis=0).astype(np.intp, copy=False)
    same = np.concatenate(
        [np.ones(n_pos, np.float32), np.zeros(n_neg, np.float32)]
    )
    perm = rng.permutation(n_pairs)
    return idx[perm], same[perm]


def make_pairs(
    x: Inputs,
    y: Any,
    n_pairs: int,
    positive_fraction: float = 0.5,
    seed: SeedLike = 0,
) -> tuple[tuple[Inputs, Inputs], np.ndarray]:
    """Materialise positive/negative pairs for a siamese model.

    Uses :func:`make_pair_indices` (see it for how pairs are drawn) and
    gathers the samples.  For large data sets prefer :class:`PairsDataset`,
    which builds the pairs batch by batch.

    Parameters
    ----------
    x : ndarray, tuple/list of ndarrays, or dict of ndarrays
        Inputs, each with first dimension ``n_samples``.
    y : array-like of int, shape (n_samples,)
        Class labels.
    n_pairs : int
        Number of pairs (>= 1).
    positive_fraction : float, default 0.5
        Fraction of positive pairs, in [0, 1].
    seed : int, Generator, SeedSequence or None, default 0
        Passed to :func:`numpy.random.default_rng`.

    Returns
    -------
    (x1, x2) : tuple
        The two members of each pair, each shaped like ``x`` with
        ``n_pairs`` rows.
    same : ndarray of float32, shape (n_pairs,)
        1.0 if the pair shares a class, else 0.0.

    Raises
    ------
    ValueError
        If ``x`` and ``y`` lengths differ, or as in :func:`make_pair_indices`.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(12, dtype="float32").reshape(6, 2)
    >>> y = np.array([0, 0, 1, 1, 2, 2])
    >>> (x1, x2), same = make_pairs(x, y, n_pairs=10, seed=1)
    >>> x1.shape, x2.shape, same.shape
    ((10, 2), (10, 2), (10,))
    """
    y = _as_labels(y)
    x = _as_inputs(x, len(y))
    idx, same = make_pair_indices(y, n_pairs, positive_fraction, seed)
    return (_take(x, idx[:, 0]), _take(x, idx[:, 1])), same


def _anchor_positive(
    groups: _Groups, n: int, rng: np.random.Generator, what: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    eligible = _eligible(groups, what)
    cls = _balanced(n, eligible, rng)
    a, p = groups.sample_two(cls, rng)
    return cls, a, p


def make_triplet_indices(
    y: Any, n_triplets: int, seed: SeedLike = 0
) -> np.ndarray:
    """Draw (anchor, positive, negative) index triplets.

    Anchor classes are balanced over the classes with >= 2 samples (each is
    used ``floor`` or ``ceil`` of ``n_triplets / n_eligible`` times); the
    positive is a different sample of the anchor's class; the negative is a
    uniformly drawn sample of a uniformly drawn other class (any class,
    including single-sample ones).

    Parameters
    ----------
    y : array-like of int, shape (n_samples,)
        Class labels.
    n_triplets : int
        Number of triplets (>= 1).
    seed : int, Generator, SeedSequence or None, default 0
        Passed to :func:`numpy.random.default_rng`.

    Returns
    -------
    ndarray of intp, shape (n_triplets, 3)
        Columns: anchor, positive, negative sample indices.

    Raises
    ------
    ValueError
        If ``y`` has fewer than 2 classes, no class has >= 2 samples, or
        ``n_triplets < 1``.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([0, 0, 1, 1, 2])
    >>> idx = make_triplet_indices(y, n_triplets=6, seed=0)
    >>> idx.shape
    (6, 3)
    >>> bool(np.all(y[idx[:, 0]] == y[idx[:, 1]]))
    True
    >>> bool(np.all(y[idx[:, 0]] != y[idx[:, 2]]))
    True
    """
    y = _as_labels(y)
    n_triplets = _check_int(n_triplets, "n_triplets")
    rng = np.random.default_rng(seed)
    groups = _Groups(y)
    _need_classes(groups, 2, "Triplets")
    cls, a, p = _anchor_positive(groups, n_triplets, rng, "Triplets")
    neg_cls = _other_classes(cls, groups.n_classes, 1, rng)[:, 0]
    n = groups.sample(neg_cls, rng)
    return np.stack([a, p, n], axis=1).astype(np.intp, copy=False)


def make_triplets(
    x: Inputs, y: Any, n_triplets: int, seed: SeedLike = 0
) -> tuple[Inputs, Inputs, Inputs]:
    """Materialise (anchor, positive, negative) triplets.

    Uses :func:`make_triplet_indices`; for large data sets prefer
    :class:`TripletsDataset`.

    Parameters
    ----------
    x : ndarray, tuple/list of ndarrays, or dict of ndarrays
        Inputs, each with first dimension ``n_samples``.
    y : array-like of int, shape (n_samples,)
        Class labels.
    n_triplets : int
        Number of triplets (>= 1).
    seed : int, Generator, SeedSequence or None, default 0
        Passed to :func:`numpy.random.default_rng`.

    Returns
    -------
    anchors, positives, negatives
        Each shaped like ``x`` with ``n_triplets`` rows.

    Raises
    ------
    ValueError
        If ``x`` and ``y`` lengths differ, or as in
        :func:`make_triplet_indices`.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(8, 3))
    >>> y = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    >>> a, p, n = make_triplets(x, y, n_triplets=5)
    >>> a.shape, p.shape, n.shape
    ((5, 3), (5, 3), (5, 3))
    """
    y = _as_labels(y)
    x = _as_inputs(x, len(y))
    idx = make_triplet_indices(y, n_triplets, seed)
    return tuple(_take(x, idx[:, j]) for j in range(3))  # type: ignore[return-value]


def make_quadruplet_indices(y: Any, n: int, seed: SeedLike = 0) -> np.ndarray:
    """Draw (anchor, positive, negative1, negative2) index quadruplets.

    As in the quadruplet loss of Chen et al. (2017, "Beyond triplet loss"):
    anchor and positive are distinct samples of one class (anchor classes
    balanced over the classes with >= 2 samples); negative1's class differs
    from the anchor's; negative2's class differs from both the anchor's and
    negative1's.  The two negative classes are a uniformly drawn ordered pair
    of distinct non-anchor classes.

    Parameters
    ----------
    y : array-like of int, shape (n_samples,)
        Class labels (at least 3 classes).
    n : int
        Number of quadruplets (>= 1).
    seed : int, Generator, SeedSequence or None, default 0
        Passed to :func:`numpy.random.default_rng`.

    Returns
    -------
    ndarray of intp, shape (n, 4)
        Columns: anchor, positive, negative1, negative2 sample indices.

    Raises
    ------
    ValueError
        If ``y`` has fewer than 3 classes, no class has >= 2 samples, or
        ``n < 1``.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([0, 0, 1, 1, 2, 2])
    >>> idx = make_quadruplet_indices(y, n=4, seed=0)
    >>> idx.shape
    (4, 4)
    >>> labels = y[idx]
    >>> bool(np.all(labels[:, 0] == labels[:, 1]))
    True
    >>> bool(np.all((labels[:, 2] != labels[:, 0]) & (labels[:, 3] != labels[:, 0])
    ...             & (labels[:, 3] != labels[:, 2])))
    True
    """
    y = _as_labels(y)
    n = _check_int(n, "n")
    rng = np.random.default_rng(seed)
    groups = _Groups(y)
    _need_classes(groups, 3, "Quadruplets")
    cls, a, p = _anchor_positive(groups, n, rng, "Quadruplets")
    neg_cls = _other_classes(cls, groups.n_classes, 2, rng)
    n1 = groups.sample(neg_cls[:, 0], rng)
    n2 = groups.sample(neg_cls[:, 1], rng)
    return np.stack([a, p, n1, n2], axis=1).astype(np.intp, copy=False)


def make_quadruplets(
    x: Inputs, y: Any, n: int, seed: SeedLike = 0
) -> tuple[Inputs, Inputs, Inputs, Inputs]:
    """Materialise (anchor, positive, negative1, negative2) quadruplets.

    Uses :func:`make_quadruplet_indices` (Chen et al., 2017).

    Parameters
    ----------
    x : ndarray, tuple/list of ndarrays, or dict of ndarrays
        Inputs, each with first dimension ``n_samples``.
    y : array-like of int, shape (n_samples,)
        Class labels (at least 3 classes).
    n : int
        Number of quadruplets (>= 1).
    seed : int, Generator, SeedSequence or None, default 0
        Passed to :func:`numpy.random.default_rng`.

    Returns
    -------
    anchors, positives, negatives1, negatives2
        Each shaped like ``x`` with ``n`` rows.

    Raises
    ------
    ValueError
        If ``x`` and ``y`` lengths differ, or as in
        :func:`make_quadruplet_indices`.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.eye(6, dtype="float32")
    >>> y = np.array([0, 0, 1, 1, 2, 2])
    >>> a, p, n1, n2 = make_quadruplets(x, y, n=3)
    >>> a.shape, n2.shape
    ((3, 6), (3, 6))
    """
    y = _as_labels(y)
    x = _as_inputs(x, len(y))
    idx = make_quadruplet_indices(y, n, seed)
    return tuple(_take(x, idx[:, j]) for j in range(4))  # type: ignore[return-value]


# ----------------------------------------------------------------------------
# PyDatasets
# ----------------------------------------------------------------------------
class _EpochPlanDataset(PyDataset):
    """Base: caches one "plan" per epoch, a pure function of (seed, epoch)."""

    def __init__(self, seed: Any, augment: Any, pydataset_kwargs: dict):
        super().__init__(**pydataset_kwargs)
        self.seed = _check_seed(seed)
        self.augment, self._augment_takes_rng = _check_augment(augment)
        self.epoch = 0
        self._lock = threading.Lock()
        self._plan: Any = None
        self._plan_epoch: int | None = None

    # -- to implement -------------------------------------------------------
    def _build_plan(self, rng: np.random.Generator) -> Any:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    # -- shared machinery ---------------------------------------------------
    def _rng(self, *key: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=key))

    def _get_plan(self) -> Any:
        with self._lock:
            epoch = int(self.epoch)
            if self._plan_epoch != epoch:
                self._plan = self._build_plan(self._rng(_PLAN, epoch))
                self._plan_epoch = epoch
            return self._plan

    def _check_index(self, index: Any) -> int:
        n = len(self)
        if isinstance(index, (bool, np.bool_)) or not isinstance(
            index, (int, np.integer)
        ):
            raise TypeError(f"batch index must be an integer; got {index!r}.")
        if not -n <= index < n:
            raise IndexError(f"batch index {index} out of range for {n} batches.")
        return int(index) % n

    def _augment(self, xb: Inputs, index: int, branch: int = 0) -> Any:
        if self.augment is None:
            return xb
        if self._augment_takes_rng:
            rng = self._rng(_AUGMENT, int(self.epoch), index, branch)
            return self.augment(xb, rng=rng)
        return self.augment(xb)

    def on_epoch_end(self) -> None:
        """Advance :attr:`epoch`, so the next epoch draws new batches."""
        self.epoch += 1

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_lock", None)
        state["_plan"] = None
        state["_plan_epoch"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


class ClassBalancedBatches(_EpochPlanDataset):
    """``PyDataset`` of P x K batches: P classes, K samples of each.

    The batches in-batch metric-learning losses need (batch-hard / batch-all
    triplet, multi-similarity, supervised contrastive, N-pair, ...): every
    batch holds ``classes_per_batch`` (P) distinct classes and
    ``samples_per_class`` (K) distinct samples of each, laid out class by
    class (``y_batch`` is P runs of K equal labels).

    Within an epoch, classes are taken from consecutive random permutations
    of all classes (every class appears about equally often) and each class's
    samples from consecutive random permutations of that class (every sample
    is used before any is reused).  Classes with fewer than K samples use all
    of their samples and fill up with replacement (a warning says so once, at
    construction).  Each epoch reshuffles: the content of batch ``index`` is a
    deterministic function of ``(seed, epoch, index)``.

    Parameters
    ----------
    x : ndarray, tuple/list of ndarrays, or dict of ndarrays
        Inputs, each with first dimension ``n_samples``.  A tuple/list is
        returned as a tuple (multi-input models), a dict as a dict.
    y : array-like of int, shape (n_samples,)
        Class labels (must fit in int32).
    classes_per_batch : int, default 8
        P, distinct classes per batch (>= 2, <= number of classes).
    samples_per_class : int, default 4
        K, samples per class in a batch (>= 2).
    steps_per_epoch : int, optional
        Batches per epoch; default ``ceil(n_samples / (P * K))``.
    augment : callable, optional
        Applied to each ``x_batch`` (NumPy in, NumPy or tensor out).  If it
        accepts a keyword argument ``rng`` it receives a
        :class:`numpy.random.Generator` derived from ``(seed, epoch, index)``
        so augmentation is reproducible too.
    seed : int or None, default 0
        Base seed (``None``: drawn once from OS entropy).
    **pydataset_kwargs
        ``workers``, ``use_multiprocessing``, ``max_queue_size``, passed to
        :class:`keras.utils.PyDataset`.

    Attributes
    ----------
    epoch : int
        Current epoch; incremented by :meth:`on_epoch_end`, may be set.
    classes : ndarray
        The distinct labels, sorted.
    batch_size : int
        ``P * K``.

    Raises
    ------
    ValueError
        If ``x`` and ``y`` lengths differ, ``y`` has fewer than P classes,
        P < 2 or K < 2, or ``steps_per_epoch < 1``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(60, 5)).astype("float32")
    >>> y = np.repeat(np.arange(6), 10)
    >>> ds = ClassBalancedBatches(x, y, classes_per_batch=3, samples_per_class=4)
    >>> len(ds)
    5
    >>> xb, yb = ds[0]
    >>> xb.shape, yb.shape, yb.dtype
    ((12, 5), (12,), dtype('int32'))
    >>> groups = yb.reshape(3, 4)
    >>> bool(np.all(groups == groups[:, :1])), len(set(groups[:, 0]))
    (True, 3)
    """

    def __init__(
        self,
        x: Inputs,
        y: Any,
        classes_per_batch: int = 8,
        samples_per_class: int = 4,
        steps_per_epoch: int | None = None,
        augment: Callable[..., Any] | None = None,
        seed: int | None = 0,
        **pydataset_kwargs: Any,
    ):
        super().__init__(seed, augment, pydataset_kwargs)
        P = _check_int(classes_per_batch, "classes_per_batch", 1)
        if P < 2:
            raise ValueError(
                "`classes_per_batch` (P) must be >= 2: in-batch metric "
                "losses need samples of other classes as negatives; got "
                f"{classes_per_batch!r}."
            )
        K = _check_int(samples_per_class, "samples_per_class", 1)
        if K < 2:
            raise ValueError(
                "`samples_per_class` (K) must be >= 2: in-batch metric "
                "losses need at least two samples of a class in the batch "
                f"to form positive pairs; got {samples_per_class!r}."
            )
        y = _as_labels(y)
        if y.min() < np.iinfo(np.int32).min or y.max() > np.iinfo(np.int32).max:
            raise ValueError("`y` labels must fit in int32.")
        self.x = _as_inputs(x, len(y))
        self.y = y.astype(np.int32)
        self._groups = _Groups(y)
        n_classes = self._groups.n_classes
        if n_classes < P:
            raise ValueError(
                f"classes_per_batch={P} but `y` has only {n_classes} distinct "
                f"classes; use classes_per_batch <= {n_classes}."
            )
        self.classes_per_batch = P
        self.samples_per_class = K
        if steps_per_epoch is None:
            steps_per_epoch = math.ceil(len(y) / (P * K))
        self.steps_per_epoch = _check_int(steps_per_epoch, "steps_per_epoch")
        n_small = int(np.sum(self._groups.counts < K))
        if n_small:
            warnings.warn(
                f"{n_small} of {n_classes} classes have fewer than "
                f"samples_per_class={K} samples; their batch slots are "
                "filled by sampling with replacement (repeated samples).",
                UserWarning,
                stacklevel=2,
            )

    @property
    def classes(self) -> np.ndarray:
        return self._groups.classes

    @property
    def batch_size(self) -> int:
        return self.classes_per_batch * self.samples_per_class

    def __len__(self) -> int:
        return self.steps_per_epoch

    def _build_plan(self, rng: np.random.Generator) -> np.ndarray:
        S, P, K = self.steps_per_epoch, self.classes_per_batch, self.samples_per_class
        g = self._groups
        class_slots = _cyclic_rows(np.arange(g.n_classes), S, P, rng).reshape(-1)
        plan = np.empty((S * P, K), dtype=np.intp)
        slot_order = np.argsort(class_slots, kind="stable")
        uses = np.bincount(class_slots, minlength=g.n_classes)
        start = 0
        for c in np.flatnonzero(uses):
            a = int(uses[c])
            slots = slot_order[start : start + a]
            start += a
            members = g.members(c)
            if len(members) >= K:
                plan[slots] = _cyclic_rows(members, a, K, rng)
            else:
                fill = rng.choice(members, size=(a, K - len(members)))
                rows = np.concatenate([np.tile(members, (a, 1)), fill], axis=1)
                plan[slots] = rng.permuted(rows, axis=1)
        return plan.reshape(S, P * K)

    def batch_indices(self, index: int) -> np.ndarray:
        """Sample indices of batch ``index`` in the current epoch.

        Parameters
        ----------
        index : int
            Batch index, ``-len(self) <= index < len(self)``.

        Returns
        -------
        ndarray of intp, shape (P * K,)
            Indices into ``x``/``y``, class by class.

        Examples
        --------
        >>> import numpy as np
        >>> y = np.repeat(np.arange(4), 3)
        >>> ds = ClassBalancedBatches(np.zeros((12, 1)), y, 2, 3)
        >>> ds.batch_indices(0).shape
        (6,)
        """
        return self._get_plan()[self._check_index(index)]

    def __getitem__(self, index: int) -> tuple[Any, np.ndarray]:
        """Return ``(x_batch, y_batch)`` for batch ``index`` of this epoch."""
        index = self._check_index(index)
        idx = self._get_plan()[index]
        return self._augment(_take(self.x, idx), index), self.y[idx]


class PairsDataset(_EpochPlanDataset):
    """``PyDataset`` of fresh positive/negative pairs every epoch.

    Each epoch draws ``pairs_per_epoch`` pairs with
    :func:`make_pair_indices` (seeded from ``(seed, epoch)``) and serves them
    in batches ``((x1, x2), same)``, the inputs/targets of a siamese model
    with two inputs and a distance / similarity output (e.g. with a
    contrastive loss).  Nothing is materialised beyond one batch.

    Parameters
    ----------
    x : ndarray, tuple/list of ndarrays, or dict of ndarrays
        Inputs, each with first dimension ``n_samples``.
    y : array-like of int, shape (n_samples,)
        Class labels.
    batch_size : int, default 64
        Pairs per batch (the last batch of an epoch may be smaller).
    pairs_per_epoch : int, optional
        Pairs per epoch; default ``n_samples``.
    positive_fraction : float, default 0.5
        Fraction of positive pairs, in [0, 1].
    augment : callable, optional
        Applied separately to ``x1`` and ``x2`` of each batch; receives
        ``rng=`` (a Generator derived from ``(seed, epoch, index, branch)``)
        if it accepts that keyword.
    seed : int or None, default 0
        Base seed (``None``: drawn once from OS entropy).
    **pydataset_kwargs
        ``workers``, ``use_multiprocessing``, ``max_queue_size``.

    Raises
    ------
    ValueError
        If ``x`` and ``y`` lengths differ, ``batch_size`` or
        ``pairs_per_epoch`` < 1, or as in :func:`make_pair_indices`.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(20, 4)).astype("float32")
    >>> y = np.repeat(np.arange(5), 4)
    >>> ds = PairsDataset(x, y, batch_size=8)
    >>> len(ds)
    3
    >>> (x1, x2), same = ds[0]
    >>> x1.shape, x2.shape, same.shape, same.dtype
    ((8, 4), (8, 4), (8,), dtype('float32'))
    >>> ds[2][1].shape  # last, smaller batch
    (4,)
    """

    def __init__(
        self,
        x: Inputs,
        y: Any,
        batch_size: int = 64,
        pairs_per_epoch: int | None = None,
        positive_fraction: float = 0.5,
        augment: Callable[..., Any] | None = None,
        seed: int | None = 0,
        **pydataset_kwargs: Any,
    ):
        super().__init__(seed, augment, pydataset_kwargs)
        y = _as_labels(y)
        self.x = _as_inputs(x, len(y))
        self.y = y
        self.batch_size = _check_int(batch_size, "batch_size")
        if pairs_per_epoch is None:
            pairs_per_epoch = len(y)
        self.pairs_per_epoch = _check_int(pairs_per_epoch, "pairs_per_epoch")
        self.positive_fraction = _check_fraction(positive_fraction, "positive_fraction")
        self._get_plan()  # validates the labels now rather than in fit()

    def __len__(self) -> int:
        return math.ceil(self.pairs_per_epoch / self.batch_size)

    def _build_plan(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return make_pair_indices(
            self.y, self.pairs_per_epoch, self.positive_fraction, seed=rng
        )

    def batch_indices(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Pair indices and targets of batch ``index`` in the current epoch.

        Parameters
        ----------
        index : int
            Batch index, ``-len(self) <= index < len(self)``.

        Returns
        -------
        idx : ndarray of intp, shape (b, 2)
        same : ndarray of float32, shape (b,)

        Examples
        --------
        >>> import numpy as np
        >>> y = np.repeat(np.arange(3), 2)
        >>> idx, same = PairsDataset(np.zeros((6, 1)), y, batch_size=4).batch_indices(0)
        >>> idx.shape, same.shape
        ((4, 2), (4,))
        """
        index = self._check_index(index)
        idx, same = self._get_plan()
        sl = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return idx[sl], same[sl]

    def __getitem__(self, index: int) -> tuple[tuple[Any, Any], np.ndarray]:
        """Return ``((x1, x2), same)`` for batch ``index`` of this epoch."""
        index = self._check_index(index)
        idx, same = self.batch_indices(index)
        x1 = self._augment(_take(self.x, idx[:, 0]), index, 0)
        x2 = self._augment(_take(self.x, idx[:, 1]), index, 1)
        return (x1, x2), same


class TripletsDataset(_EpochPlanDataset):
    """``PyDataset`` of fresh (anchor, positive, negative) triplets every epoch.

    Each epoch draws ``triplets_per_epoch`` triplets with
    :func:`make_triplet_indices` (seeded from ``(seed, epoch)``) and serves
    them in batches ``((a, p, n), zeros)``: the inputs of a triplet model
    with three inputs (e.g. one whose output stacks the three embeddings as
    ``(b, 3, d)``), and a dummy float32 target of shape ``(b,)`` for a loss
    that ignores ``y_true``.

    Parameters
    ----------
    x : ndarray, tuple/list of ndarrays, or dict of ndarrays
        Inputs, each with first dimension ``n_samples``.
    y : array-like of int, shape (n_samples,)
        Class labels (>= 2 classes, one with >= 2 samples).
    batch_size : int, default 64
        Triplets per batch (the last batch of an epoch may be smaller).
    triplets_per_epoch : int, optional
        Triplets per epoch; default ``n_samples``.
    augment : callable, optional
        Applied separately to the anchor, positive and negative inputs;
        receives ``rng=`` if it accepts that keyword.
    seed : int or None, default 0
        Base seed (``None``: drawn once from OS entropy).
    **pydataset_kwargs
        ``workers``, ``use_multiprocessing``, ``max_queue_size``.

    Raises
    ------
    ValueError
        If ``x`` and ``y`` lengths differ, ``batch_size`` or
        ``triplets_per_epoch`` < 1, or as in :func:`make_triplet_indices`.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(12, 4)).astype("float32")
    >>> y = np.repeat(np.arange(3), 4)
    >>> ds = TripletsDataset(x, y, batch_size=5)
    >>> len(ds)
    3
    >>> (a, p, n), dummy = ds[0]
    >>> a.shape, p.shape, n.shape, dummy.shape
    ((5, 4), (5, 4), (5, 4), (5,))
    """

    def __init__(
        self,
        x: Inputs,
        y: Any,
        batch_size: int = 64,
        triplets_per_epoch: int | None = None,
        augment: Callable[..., Any] | None = None,
        seed: int | None = 0,
        **pydataset_kwargs: Any,
    ):
        super().__init__(seed, augment, pydataset_kwargs)
        y = _as_labels(y)
        self.x = _as_inputs(x, len(y))
        self.y = y
        self.batch_size = _check_int(batch_size, "batch_size")
        if triplets_per_epoch is None:
            triplets_per_epoch = len(y)
        self.triplets_per_epoch = _check_int(triplets_per_epoch, "triplets_per_epoch")
        self._get_plan()  # validates the labels now rather than in fit()

    def __len__(self) -> int:
        return math.ceil(self.triplets_per_epoch / self.batch_size)

    def _build_plan(self, rng: np.random.Generator) -> np.ndarray:
        return make_triplet_indices(self.y, self.triplets_per_epoch, seed=rng)

    def batch_indices(self, index: int) -> np.ndarray:
        """Triplet indices of batch ``index`` in the current epoch.

        Parameters
        ----------
        index : int
            Batch index, ``-len(self) <= index < len(self)``.

        Returns
        -------
        ndarray of intp, shape (b, 3)
            Anchor, positive, negative sample indices.

        Examples
        --------
        >>> import numpy as np
        >>> y = np.repeat(np.arange(3), 2)
        >>> TripletsDataset(np.zeros((6, 1)), y, batch_size=4).batch_indices(1).shape
        (2, 3)
        """
        index = self._check_index(index)
        return self._get_plan()[index * self.batch_size : (index + 1) * self.batch_size]

    def __getitem__(self, index: int) -> tuple[tuple[Any, Any, Any], np.ndarray]:
        """Return ``((anchors, positives, negatives), zeros)`` for batch ``index``."""
        index = self._check_index(index)
        idx = self.batch_indices(index)
        xs = tuple(
            self._augment(_take(self.x, idx[:, j]), index, j) for j in range(3)
        )
        return xs, np.zeros(len(idx), dtype=np.float32)
