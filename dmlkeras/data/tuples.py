"""Pairs, triplets and quadruplets: index samplers, materialised arrays, and one epoch-seeded dataset.

* :func:`make_pair_indices` / :func:`make_pairs` -- positive/negative pairs
  for Siamese (contrastive) models;
* :func:`make_triplet_indices` / :func:`make_triplets` -- (anchor, positive,
  negative) triplets;
* :func:`make_quadruplet_indices` / :func:`make_quadruplets` -- (anchor,
  positive, negative1, negative2) quadruplets (Chen et al., 2017);
* :class:`TupleDataset` -- a ``PyDataset`` that draws fresh tuples of one of
  these kinds every epoch; :class:`PairsDataset`, :class:`TripletsDataset`
  and :class:`QuadrupletsDataset` are its three kinds under their own names.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Union

import numpy as np

from dmlkeras._validation import check_fraction, check_int, label_vector
from dmlkeras.data.base import EpochSeededDataset, Inputs, as_inputs, take_rows
from dmlkeras.data.sampling import ClassGroups, balanced_draws, other_classes, pair_classes, require_classes

__all__ = [
    "SeedLike",
    "PairsDataset",
    "QuadrupletsDataset",
    "TripletsDataset",
    "TupleDataset",
    "make_pair_indices",
    "make_pairs",
    "make_quadruplet_indices",
    "make_quadruplets",
    "make_triplet_indices",
    "make_triplets",
]

#: Anything :func:`numpy.random.default_rng` accepts.
SeedLike = Union[int, np.random.Generator, np.random.SeedSequence, None]


def _generator(seed: SeedLike) -> np.random.Generator:
    """``numpy.random.default_rng(seed)``, refusing a negative integer with a message naming ``seed``."""
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_)) and seed < 0:
        raise ValueError(f"seed must be a non-negative integer, a Generator, a SeedSequence or None; got {seed!r}.")
    return np.random.default_rng(seed)


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
    y = label_vector(y, "y")
    n_pairs = check_int(n_pairs, "n_pairs")
    positive_fraction = check_fraction(positive_fraction, "positive_fraction")
    rng = _generator(seed)
    groups = ClassGroups(y)

    n_pos = int(math.floor(n_pairs * positive_fraction + 0.5))
    n_neg = n_pairs - n_pos
    parts = []
    if n_pos:
        eligible = pair_classes(groups, "Positive pairs")
        cls = balanced_draws(n_pos, eligible, rng)
        parts.append(np.stack(groups.sample_two(cls, rng), axis=1))
    if n_neg:
        require_classes(groups, 2, "Negative pairs")
        cls_a = balanced_draws(n_neg, np.arange(groups.n_classes), rng)
        cls_b = other_classes(cls_a, groups.n_classes, 1, rng)[:, 0]
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
    y = label_vector(y, "y")
    x = as_inputs(x, len(y))
    idx, same = make_pair_indices(y, n_pairs, positive_fraction, seed)
    return (take_rows(x, idx[:, 0]), take_rows(x, idx[:, 1])), same


def _anchor_positive(
    groups: ClassGroups, n: int, rng: np.random.Generator, what: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    eligible = pair_classes(groups, what)
    cls = balanced_draws(n, eligible, rng)
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
    y = label_vector(y, "y")
    n_triplets = check_int(n_triplets, "n_triplets")
    rng = _generator(seed)
    groups = ClassGroups(y)
    require_classes(groups, 2, "Triplets")
    cls, a, p = _anchor_positive(groups, n_triplets, rng, "Triplets")
    neg_cls = other_classes(cls, groups.n_classes, 1, rng)[:, 0]
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
    y = label_vector(y, "y")
    x = as_inputs(x, len(y))
    idx = make_triplet_indices(y, n_triplets, seed)
    return tuple(take_rows(x, idx[:, j]) for j in range(3))  # type: ignore[return-value]


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
    y = label_vector(y, "y")
    n = check_int(n, "n")
    rng = _generator(seed)
    groups = ClassGroups(y)
    require_classes(groups, 3, "Quadruplets")
    cls, a, p = _anchor_positive(groups, n, rng, "Quadruplets")
    neg_cls = other_classes(cls, groups.n_classes, 2, rng)
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
    y = label_vector(y, "y")
    x = as_inputs(x, len(y))
    idx = make_quadruplet_indices(y, n, seed)
    return tuple(take_rows(x, idx[:, j]) for j in range(4))  # type: ignore[return-value]




_KINDS = {
    # kind: (input names, sampler of (idx, targets) from (y, n, positive_fraction, rng))
    "pairs": (2, lambda y, n, fraction, rng: make_pair_indices(y, n, fraction, seed=rng)),
    "triplets": (3, lambda y, n, fraction, rng: _zero_targets(make_triplet_indices(y, n, seed=rng))),
    "quadruplets": (4, lambda y, n, fraction, rng: _zero_targets(make_quadruplet_indices(y, n, seed=rng))),
}


def _zero_targets(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return idx, np.zeros(len(idx), dtype=np.float32)


class TupleDataset(EpochSeededDataset):
    """``PyDataset`` of fresh pairs, triplets or quadruplets every epoch.

    Each epoch draws ``tuples_per_epoch`` tuples with
    :func:`make_pair_indices`, :func:`make_triplet_indices` or
    :func:`make_quadruplet_indices` (seeded from ``(seed, epoch)``) and
    serves them in batches ``((x_1, ..., x_k), targets)``: the inputs of a
    model with ``k`` inputs (:func:`dmlkeras.models.build_siamese_model`,
    ``build_triplet_model``, ``build_quadruplet_model``) and, for pairs, the
    float32 ``same`` targets (1 = same class); for triplets and quadruplets
    a dummy float32 target of zeros, for losses that ignore ``y_true``.
    Nothing is materialised beyond one batch.

    Parameters
    ----------
    x : ndarray, tuple/list of ndarrays, or dict of ndarrays
        Inputs, each with first dimension ``n_samples``.
    y : array-like of int, shape (n_samples,)
        Class labels.
    kind : {"pairs", "triplets", "quadruplets"}
    batch_size : int, default 64
        Tuples per batch (the last batch of an epoch may be smaller).
    tuples_per_epoch : int, optional
        Tuples per epoch; default ``n_samples``.
    positive_fraction : float, default 0.5
        Pairs only: the fraction of positive pairs, in [0, 1].
    augment : callable, optional
        Applied separately to each input of the tuple; receives ``rng=`` (a
        Generator derived from ``(seed, epoch, index, branch)``) if it
        accepts that keyword.
    seed : int or None, default 0
        Base seed (``None``: drawn once from OS entropy).
    **pydataset_kwargs
        ``workers``, ``use_multiprocessing``, ``max_queue_size``.

    Raises
    ------
    ValueError
        If ``x`` and ``y`` lengths differ, ``kind`` is unknown,
        ``batch_size`` or ``tuples_per_epoch`` < 1, or as in the sampler.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(12, 4)).astype("float32")
    >>> y = np.repeat(np.arange(3), 4)
    >>> ds = TupleDataset(x, y, "quadruplets", batch_size=5)
    >>> len(ds)
    3
    >>> inputs, dummy = ds[0]
    >>> len(inputs), inputs[0].shape, dummy.shape
    (4, (5, 4), (5,))
    """

    def __init__(
        self,
        x: Inputs,
        y: Any,
        kind: str,
        batch_size: int = 64,
        tuples_per_epoch: int | None = None,
        positive_fraction: float = 0.5,
        augment: Callable[..., Any] | None = None,
        seed: int | None = 0,
        **pydataset_kwargs: Any,
    ) -> None:
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {sorted(_KINDS)}; got {kind!r}.")
        super().__init__(seed, augment, **pydataset_kwargs)
        self.kind = kind
        y = label_vector(y, "y")
        self.x = as_inputs(x, len(y))
        self.y = y
        self.batch_size = check_int(batch_size, "batch_size")
        if tuples_per_epoch is None:
            tuples_per_epoch = len(y)
        self.tuples_per_epoch = check_int(tuples_per_epoch, f"{kind}_per_epoch")
        self.positive_fraction = check_fraction(positive_fraction, "positive_fraction")
        self.plan()  # validates the labels now rather than in fit()

    @property
    def tuple_size(self) -> int:
        """Inputs per tuple: 2, 3 or 4."""
        return _KINDS[self.kind][0]

    def __len__(self) -> int:
        return math.ceil(self.tuples_per_epoch / self.batch_size)

    def build_plan(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        sampler = _KINDS[self.kind][1]
        return sampler(self.y, self.tuples_per_epoch, self.positive_fraction, rng)

    def batch(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Tuple indices ``(b, k)`` and targets ``(b,)`` of batch ``index`` in the current epoch.

        Examples
        --------
        >>> import numpy as np
        >>> y = np.repeat(np.arange(3), 2)
        >>> idx, same = TupleDataset(np.zeros((6, 1)), y, "pairs", batch_size=4).batch(0)
        >>> idx.shape, same.shape
        ((4, 2), (4,))
        """
        index = self.check_index(index)
        idx, targets = self.plan()
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return idx[rows], targets[rows]

    def batch_indices(self, index: int) -> Any:
        """Tuple indices of batch ``index`` in the current epoch, shape ``(b, k)``.

        Examples
        --------
        >>> import numpy as np
        >>> y = np.repeat(np.arange(3), 2)
        >>> TupleDataset(np.zeros((6, 1)), y, "triplets", batch_size=4).batch_indices(1).shape
        (2, 3)
        """
        return self.batch(index)[0]

    def __getitem__(self, index: int) -> tuple[tuple[Any, ...], np.ndarray]:
        """Return ``((x_1, ..., x_k), targets)`` for batch ``index`` of this epoch."""
        index = self.check_index(index)
        idx, targets = self.batch(index)
        inputs = tuple(self.augment_batch(take_rows(self.x, idx[:, j]), index, j) for j in range(idx.shape[1]))
        return inputs, targets


class PairsDataset(TupleDataset):
    """``PyDataset`` of fresh positive/negative pairs every epoch: :class:`TupleDataset` of ``kind="pairs"``.

    Batches are ``((x1, x2), same)``, the inputs and targets of a Siamese
    model with two inputs and a distance or similarity output (e.g. with a
    contrastive loss); pairs come from :func:`make_pair_indices`.

    Parameters
    ----------
    x, y, batch_size, augment, seed, **pydataset_kwargs
        As in :class:`TupleDataset`.
    pairs_per_epoch : int, optional
        Pairs per epoch; default ``n_samples``.
    positive_fraction : float, default 0.5
        Fraction of positive pairs, in [0, 1].

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
    ) -> None:
        super().__init__(x, y, "pairs", batch_size, pairs_per_epoch, positive_fraction, augment, seed, **pydataset_kwargs)

    @property
    def pairs_per_epoch(self) -> int:
        return self.tuples_per_epoch

    def batch_indices(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Pair indices ``(b, 2)`` and targets ``(b,)`` of batch ``index`` (as :meth:`TupleDataset.batch`).

        Examples
        --------
        >>> import numpy as np
        >>> y = np.repeat(np.arange(3), 2)
        >>> idx, same = PairsDataset(np.zeros((6, 1)), y, batch_size=4).batch_indices(0)
        >>> idx.shape, same.shape
        ((4, 2), (4,))
        """
        return self.batch(index)


class TripletsDataset(TupleDataset):
    """``PyDataset`` of fresh (anchor, positive, negative) triplets every epoch: ``kind="triplets"``.

    Batches are ``((a, p, n), zeros)``; triplets come from
    :func:`make_triplet_indices`.

    Parameters
    ----------
    x, y, batch_size, augment, seed, **pydataset_kwargs
        As in :class:`TupleDataset`.
    triplets_per_epoch : int, optional
        Triplets per epoch; default ``n_samples``.

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
    ) -> None:
        super().__init__(
            x, y, "triplets", batch_size, triplets_per_epoch, augment=augment, seed=seed, **pydataset_kwargs
        )

    @property
    def triplets_per_epoch(self) -> int:
        return self.tuples_per_epoch


class QuadrupletsDataset(TupleDataset):
    """``PyDataset`` of fresh (anchor, positive, negative1, negative2) quadruplets: ``kind="quadruplets"``.

    Batches are ``((a, p, n1, n2), zeros)``; quadruplets come from
    :func:`make_quadruplet_indices` (``n2`` is of a third class).

    Parameters
    ----------
    x, y, batch_size, augment, seed, **pydataset_kwargs
        As in :class:`TupleDataset`.
    quadruplets_per_epoch : int, optional
        Quadruplets per epoch; default ``n_samples``.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.repeat(np.arange(3), 2)
    >>> (a, p, n1, n2), dummy = QuadrupletsDataset(np.eye(6), y, batch_size=4)[0]
    >>> a.shape, dummy.tolist()
    ((4, 6), [0.0, 0.0, 0.0, 0.0])
    """

    def __init__(
        self,
        x: Inputs,
        y: Any,
        batch_size: int = 64,
        quadruplets_per_epoch: int | None = None,
        augment: Callable[..., Any] | None = None,
        seed: int | None = 0,
        **pydataset_kwargs: Any,
    ) -> None:
        super().__init__(
            x, y, "quadruplets", batch_size, quadruplets_per_epoch, augment=augment, seed=seed, **pydataset_kwargs
        )

    @property
    def quadruplets_per_epoch(self) -> int:
        return self.tuples_per_epoch
