"""P x K batches for in-batch losses: :class:`ClassBalancedBatches`."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from dmlkeras._validation import check_int, label_vector
from dmlkeras.data.base import EpochSeededDataset, Inputs, as_inputs, take_rows
from dmlkeras.data.sampling import ClassGroups, cyclic_rows

__all__ = ["ClassBalancedBatches"]


class ClassBalancedBatches(EpochSeededDataset):
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
    num_replicas : int, default 1
        Devices the global batch is split across (data parallelism). Each
        replica's slice of a batch, rows ``r * P * K / R`` to
        ``(r + 1) * P * K / R``, the split of ``tf.distribute`` and
        ``keras.distribution.DataParallel``, then holds ``P / R`` whole
        classes (all K samples of each), so that a replica that mines on its
        own still finds every positive. P must be divisible by it.
    replica : int, optional
        With ``num_replicas``: return only this replica's slice of each
        batch (``P / R`` classes, ``P * K / R`` rows), for setups where each
        process reads its own data. The replicas must share the seed; their
        slices then partition the global batch. Default: the global batch.
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
        Rows of a returned batch: ``P * K``, or ``P * K / num_replicas`` for one ``replica``.

    Raises
    ------
    ValueError
        If ``x`` and ``y`` lengths differ, ``y`` has fewer than P classes,
        P < 2 or K < 2, ``steps_per_epoch < 1``, P is not divisible by
        ``num_replicas``, or ``replica`` is not in ``[0, num_replicas)``.

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

    Sharded across 2 replicas, each replica's slice holds whole classes:

    >>> ds = ClassBalancedBatches(x, y, classes_per_batch=4, samples_per_class=2, num_replicas=2)
    >>> ds[0][1]  # replica 0 gets classes 0 and 1, replica 1 classes 5 and 2
    array([0, 0, 1, 1, 5, 5, 2, 2], dtype=int32)
    >>> ClassBalancedBatches(x, y, 4, 2, num_replicas=2, replica=1)[0][1]  # replica 1 reading on its own
    array([5, 5, 2, 2], dtype=int32)
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
        num_replicas: int = 1,
        replica: int | None = None,
        **pydataset_kwargs: Any,
    ):
        super().__init__(seed, augment, **pydataset_kwargs)
        P = check_int(classes_per_batch, "classes_per_batch", 1)
        if P < 2:
            raise ValueError(
                "`classes_per_batch` (P) must be >= 2: in-batch metric "
                "losses need samples of other classes as negatives; got "
                f"{classes_per_batch!r}."
            )
        K = check_int(samples_per_class, "samples_per_class", 1)
        if K < 2:
            raise ValueError(
                "`samples_per_class` (K) must be >= 2: in-batch metric "
                "losses need at least two samples of a class in the batch "
                f"to form positive pairs; got {samples_per_class!r}."
            )
        y = label_vector(y, "y")
        if y.min() < np.iinfo(np.int32).min or y.max() > np.iinfo(np.int32).max:
            raise ValueError("`y` labels must fit in int32.")
        self.x = as_inputs(x, len(y))
        self.y = y.astype(np.int32)
        self._groups = ClassGroups(y)
        n_classes = self._groups.n_classes
        if n_classes < P:
            raise ValueError(
                f"classes_per_batch={P} but `y` has only {n_classes} distinct "
                f"classes; use classes_per_batch <= {n_classes}."
            )
        self.classes_per_batch = P
        self.samples_per_class = K
        self.num_replicas = check_int(num_replicas, "num_replicas")
        if P % self.num_replicas:
            raise ValueError(
                f"classes_per_batch={P} must be divisible by num_replicas={self.num_replicas}, so that "
                "each replica gets whole classes; choose P as a multiple of the number of replicas."
            )
        if replica is not None:
            replica = check_int(replica, "replica", 0)
            if replica >= self.num_replicas:
                raise ValueError(f"replica must be in [0, num_replicas={self.num_replicas}); got {replica}.")
        self.replica = replica
        if steps_per_epoch is None:
            steps_per_epoch = math.ceil(len(y) / (P * K))
        self.steps_per_epoch = check_int(steps_per_epoch, "steps_per_epoch")
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
        rows = self.classes_per_batch * self.samples_per_class
        return rows if self.replica is None else rows // self.num_replicas

    def __len__(self) -> int:
        return self.steps_per_epoch

    def build_plan(self, rng: np.random.Generator) -> np.ndarray:
        S, P, K = self.steps_per_epoch, self.classes_per_batch, self.samples_per_class
        g = self._groups
        class_slots = cyclic_rows(np.arange(g.n_classes), S, P, rng).reshape(-1)
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
                plan[slots] = cyclic_rows(members, a, K, rng)
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
        ndarray of intp, shape (batch_size,)
            Indices into ``x``/``y``, class by class (this replica's classes
            only, with ``replica``).

        Examples
        --------
        >>> import numpy as np
        >>> y = np.repeat(np.arange(4), 3)
        >>> ds = ClassBalancedBatches(np.zeros((12, 1)), y, 2, 3)
        >>> ds.batch_indices(0).shape
        (6,)
        """
        rows = self.plan()[self.check_index(index)]
        if self.replica is None:
            return rows
        return rows[self.replica * self.batch_size : (self.replica + 1) * self.batch_size]

    def __getitem__(self, index: int) -> tuple[Any, np.ndarray]:
        """Return ``(x_batch, y_batch)`` for batch ``index`` of this epoch."""
        index = self.check_index(index)
        idx = self.batch_indices(index)
        return self.augment_batch(take_rows(self.x, idx), index), self.y[idx]
