"""The epoch-seeded ``PyDataset`` every dmlkeras dataset builds on, and the input helpers they share.

:class:`EpochSeededDataset` caches one *plan* per epoch (which samples go
into which batch), built from a generator seeded by ``(seed, epoch)``; a
batch draws any further randomness (augmentation, sampled negatives) from
``(seed, purpose, epoch, index)``. So batch ``index`` of epoch ``epoch`` is
a pure function of those numbers, whichever thread or process asks for it and
in whichever order. The plan is built under a lock, and dropped when the
dataset is pickled (``workers`` with ``use_multiprocessing``).
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from keras.utils import PyDataset

from dmlkeras._validation import check_seed

__all__ = ["PLAN", "AUGMENT", "EpochSeededDataset", "Inputs", "as_inputs", "take_rows"]

#: One array, a tuple/list of arrays (multi-input) or a dict of arrays.
Inputs = Any

#: Purposes: the first element of the ``SeedSequence`` spawn key, so that the
#: random streams of different uses never coincide.
PLAN = 0
AUGMENT = 1


def _is_array_like(v: Any) -> bool:
    return hasattr(v, "shape") and hasattr(v, "__getitem__")


def as_inputs(x: Any, n_samples: int) -> Inputs:
    """Normalise ``x`` (array / tuple / list / dict of arrays) and check lengths.

    A tuple, or a list of arrays, becomes a tuple of arrays (multi-input
    models), a dict a dict of arrays, anything else one array. Every array
    must have ``n_samples`` rows.

    Examples
    --------
    >>> [a.shape for a in as_inputs([np.zeros((3, 2)), np.ones(3)], 3)]
    [(3, 2), (3,)]
    >>> as_inputs(np.zeros((2, 1)), 3)
    Traceback (most recent call last):
    ...
    ValueError: x and y must have the same number of samples: expected x with shape (3, ...) to match y (3 labels); got shape (2, 1).
    """
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


def take_rows(x: Inputs, idx: np.ndarray) -> Inputs:
    """Rows ``idx`` of every array of ``x`` (an array, a tuple of arrays or a dict of arrays).

    Examples
    --------
    >>> take_rows({"a": np.arange(4), "b": np.arange(4) * 10}, np.array([3, 0]))
    {'a': array([3, 0]), 'b': array([30,  0])}
    """
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


class EpochSeededDataset(PyDataset):
    """Base ``PyDataset``: one cached *plan* per epoch, a pure function of ``(seed, epoch)``.

    Subclasses implement ``__len__``, :meth:`build_plan` and
    ``__getitem__``, which reads :meth:`plan` (the current epoch's plan) and
    may draw more randomness from :meth:`rng`. :meth:`on_epoch_end` (which
    ``model.fit`` calls) advances :attr:`epoch`, which may also be set by
    hand (e.g. to resume training).

    Parameters
    ----------
    seed : int or None
        Base seed (``None``: drawn once from OS entropy, see
        :func:`dmlkeras._validation.check_seed`).
    augment : callable, optional
        Applied to the inputs of a batch by :meth:`augment_batch`; receives
        ``rng=`` (a generator of ``(seed, AUGMENT, epoch, index, branch)``)
        when it accepts that keyword.
    **pydataset_kwargs
        ``workers``, ``use_multiprocessing``, ``max_queue_size`` of
        :class:`keras.utils.PyDataset`.

    Examples
    --------
    >>> class Shuffled(EpochSeededDataset):
    ...     def __len__(self):
    ...         return 2
    ...     def build_plan(self, rng):
    ...         return rng.permutation(4).reshape(2, 2)
    ...     def __getitem__(self, index):
    ...         return self.plan()[self.check_index(index)]
    >>> ds = Shuffled(seed=0)
    >>> first = ds[0]
    >>> bool((Shuffled(seed=0)[0] == first).all())   # a function of (seed, epoch, index)
    True
    >>> ds.on_epoch_end(); ds.epoch
    1
    """

    def __init__(self, seed: Any = 0, augment: Any = None, **pydataset_kwargs: Any) -> None:
        super().__init__(**pydataset_kwargs)
        self.seed = check_seed(seed)
        self.augment, self._augment_takes_rng = _check_augment(augment)
        self.epoch = 0
        self._lock = threading.Lock()
        self._plan: Any = None
        self._plan_epoch: int | None = None

    # -- to implement -------------------------------------------------------
    def build_plan(self, rng: np.random.Generator) -> Any:
        """The plan of one epoch, drawn from ``rng`` (seeded by ``(seed, PLAN, epoch)``)."""
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    # -- shared machinery ---------------------------------------------------
    def rng(self, *key: int) -> np.random.Generator:
        """A generator seeded by ``(seed, *key)``, e.g. ``rng(purpose, epoch, index)``."""
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=key))

    def plan(self) -> Any:
        """The plan of the current :attr:`epoch`, built once per epoch (thread-safe)."""
        with self._lock:
            epoch = int(self.epoch)
            if self._plan_epoch != epoch:
                self._plan = self.build_plan(self.rng(PLAN, epoch))
                self._plan_epoch = epoch
            return self._plan

    def check_index(self, index: Any) -> int:
        """``index`` as an int in ``[0, len(self))``; negative indices count from the end."""
        n = len(self)
        if isinstance(index, (bool, np.bool_)) or not isinstance(
            index, (int, np.integer)
        ):
            raise TypeError(f"batch index must be an integer; got {index!r}.")
        if not -n <= index < n:
            raise IndexError(f"batch index {index} out of range for {n} batches.")
        return int(index) % n

    def augment_batch(self, xb: Inputs, index: int, branch: int = 0) -> Any:
        """``augment(xb)`` for batch ``index`` (input ``branch`` of a tuple), or ``xb`` without one."""
        if self.augment is None:
            return xb
        if self._augment_takes_rng:
            rng = self.rng(AUGMENT, int(self.epoch), index, branch)
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

