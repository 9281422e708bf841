"""Interaction data for recommendation: the leave-one-out split and the negative-sampling dataset."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from dmlkeras._validation import check_int
from dmlkeras.data import EpochSeededDataset

__all__ = ["InteractionTriplets", "LeaveOneOutSplit", "leave_one_out_split"]

#: The purpose (first spawn-key element) of the negatives' random stream; the
#: plan (the epoch's order) uses :data:`dmlkeras.data.base.PLAN` = 0.
NEGATIVES = 1


def _as_interactions(interactions: Any, num_users: int | None = None, num_items: int | None = None) -> np.ndarray:
    """``(n, 2)`` int64 array of (user, item) indices, validated."""
    if isinstance(interactions, LeaveOneOutSplit):
        return interactions.train
    arr = np.asarray(interactions)
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] == 0:
        raise ValueError(
            f"interactions must be a non-empty (n, 2) array of (user, item) indices; got shape {arr.shape}."
        )
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"interactions must hold integer indices; got dtype {arr.dtype}.")
    arr = arr.astype(np.int64)
    if arr.min() < 0:
        raise ValueError("interactions must hold non-negative user and item indices.")
    if num_users is not None and arr[:, 0].max() >= num_users:
        raise ValueError(f"user index {arr[:, 0].max()} out of range for num_users={num_users}.")
    if num_items is not None and arr[:, 1].max() >= num_items:
        raise ValueError(f"item index {arr[:, 1].max()} out of range for num_items={num_items}.")
    return arr


@dataclass(frozen=True)
class LeaveOneOutSplit:
    """A leave-one-out split of implicit feedback (see :func:`leave_one_out_split`).

    Attributes
    ----------
    train : ndarray of shape (n_train, 2), int64
        Training interactions ``(user, item)`` as contiguous indices.
    train_timestamps : ndarray of shape (n_train,), int64
    test_items : ndarray of shape (num_users,), int64
        Each user's held-out item; ``-1`` for users with a single interaction.
    test_timestamps : ndarray of shape (num_users,), int64
    user_ids, item_ids : ndarray
        The raw id of each user / item index (``raw = item_ids[index]``).
    """

    train: np.ndarray
    train_timestamps: np.ndarray
    test_items: np.ndarray
    test_timestamps: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray

    @property
    def num_users(self) -> int:
        """Number of users (the contiguous index range)."""
        return int(self.user_ids.size)

    @property
    def num_items(self) -> int:
        """Number of items (the contiguous index range)."""
        return int(self.item_ids.size)

    @property
    def test_users(self) -> np.ndarray:
        """Users with a held-out item, ascending."""
        return np.flatnonzero(self.test_items >= 0)

    def train_matrix(self) -> sp.csr_matrix:
        """Binary user-item matrix of the training interactions, ``(num_users, num_items)`` float32 CSR."""
        data = np.ones(len(self.train), dtype=np.float32)
        m = sp.csr_matrix((data, (self.train[:, 0], self.train[:, 1])), shape=(self.num_users, self.num_items))
        m.sum_duplicates()
        m.data[:] = 1.0
        return m

    def seen_items(self) -> list[np.ndarray]:
        """Per user, the sorted training items."""
        m = self.train_matrix()
        return [m.indices[m.indptr[u] : m.indptr[u + 1]].astype(np.int64) for u in range(self.num_users)]

    def train_frame(self) -> pd.DataFrame:
        """The training interactions with raw ids: ``[user_id, item_id, timestamp]``.

        ``leave_one_out_split(split.train_frame())`` holds out each user's
        second-latest interaction: a validation split for tuning that never
        looks at the test items.
        """
        return pd.DataFrame(
            {
                "user_id": self.user_ids[self.train[:, 0]],
                "item_id": self.item_ids[self.train[:, 1]],
                "timestamp": self.train_timestamps,
            }
        )


def leave_one_out_split(
    ratings: pd.DataFrame,
    user_col: str = "user_id",
    item_col: str = "item_id",
    time_col: str = "timestamp",
    rating_col: str = "rating",
    min_rating: float | None = None,
) -> LeaveOneOutSplit:
    """Hold out each user's latest interaction (the NCF protocol of He et al., 2017).

    Ratings become implicit feedback: every (user, item) pair that was rated
    counts as a positive, whatever its value (or only ratings ``>=
    min_rating``); repeated pairs keep their latest timestamp. Each user's
    latest interaction is the test item; equal timestamps are broken by the
    order of the rows (the later row is the later interaction). Users with a
    single interaction keep it for training and have no test item (``-1``).
    Raw user and item ids are mapped to contiguous indices in sorted order.

    Parameters
    ----------
    ratings : pandas.DataFrame
        One row per interaction.
    user_col, item_col, time_col, rating_col : str
        Column names (``rating_col`` only used with ``min_rating``).
    min_rating : float, optional
        Keep only ratings ``>= min_rating`` as positives.

    Returns
    -------
    LeaveOneOutSplit

    Raises
    ------
    ValueError
        Missing columns, no rows left, or missing values.

    Examples
    --------
    >>> import pandas as pd
    >>> ratings = pd.DataFrame({"user_id": [7, 7, 7, 9, 9], "item_id": [1, 2, 3, 2, 1],
    ...                         "rating": [5, 3, 4, 1, 2], "timestamp": [10, 30, 20, 5, 6]})
    >>> split = leave_one_out_split(ratings)
    >>> split.test_items, split.item_ids[split.test_items]  # user 7 -> item 2, user 9 -> item 1
    (array([1, 0]), array([2, 1]))
    >>> split.train.tolist()
    [[0, 0], [0, 2], [1, 1]]
    """
    if not isinstance(ratings, pd.DataFrame):
        raise ValueError(f"ratings must be a pandas DataFrame; got {type(ratings).__name__}.")
    needed = [user_col, item_col, time_col] + ([rating_col] if min_rating is not None else [])
    missing = [c for c in needed if c not in ratings.columns]
    if missing:
        raise ValueError(f"ratings lacks the column(s) {missing}; it has {list(ratings.columns)}.")
    frame = ratings[needed].reset_index(drop=True)
    if frame.isna().any().any():
        raise ValueError("ratings has missing values in the user, item, timestamp or rating columns.")
    if min_rating is not None:
        frame = frame[frame[rating_col] >= float(min_rating)]
    if frame.empty:
        raise ValueError("No interaction left (empty ratings, or min_rating too high).")
    user_ids, users = np.unique(frame[user_col].to_numpy(), return_inverse=True)
    item_ids, items = np.unique(frame[item_col].to_numpy(), return_inverse=True)
    times = frame[time_col].to_numpy().astype(np.int64)
    order = np.lexsort((np.arange(len(frame)), times, users))  # per user, chronological; row order breaks ties
    users, items, times = users[order].astype(np.int64), items[order].astype(np.int64), times[order]
    # Implicit feedback: a pair seen twice keeps its latest occurrence.
    key = users * item_ids.size + items
    last = np.ones(len(key), dtype=bool)
    _, first_from_end = np.unique(key[::-1], return_index=True)
    last[:] = False
    last[len(key) - 1 - first_from_end] = True
    users, items, times = users[last], items[last], times[last]
    # Rows are still grouped by user in chronological order: each user's final row is the test item.
    counts = np.bincount(users, minlength=user_ids.size)
    ends = np.cumsum(counts) - 1
    held = ends[counts >= 2]
    test_items = np.full(user_ids.size, -1, dtype=np.int64)
    test_times = np.full(user_ids.size, -1, dtype=np.int64)
    test_items[users[held]] = items[held]
    test_times[users[held]] = times[held]
    keep = np.ones(len(users), dtype=bool)
    keep[held] = False
    return LeaveOneOutSplit(
        train=np.stack([users[keep], items[keep]], axis=1),
        train_timestamps=times[keep],
        test_items=test_items,
        test_timestamps=test_times,
        user_ids=user_ids,
        item_ids=item_ids,
    )


class _PositiveSet:
    """Membership test for (user, item) pairs through sorted keys."""

    def __init__(self, users: np.ndarray, items: np.ndarray, num_items: int) -> None:
        self.num_items = num_items
        self.keys = np.unique(users.astype(np.int64) * num_items + items.astype(np.int64))

    def contains(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        keys = users.astype(np.int64) * self.num_items + items.astype(np.int64)
        pos = np.searchsorted(self.keys, keys)
        pos = np.minimum(pos, self.keys.size - 1)
        return self.keys[pos] == keys

    def sample_negatives(self, users: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """``(len(users), n)`` uniform items, none a positive of its user (with replacement)."""
        out = rng.integers(0, self.num_items, size=(users.size, n))
        rows = np.repeat(users, n).reshape(users.size, n)
        bad = self.contains(rows, out)
        while bad.any():
            out[bad] = rng.integers(0, self.num_items, size=int(bad.sum()))
            bad[bad] = self.contains(rows[bad], out[bad])
        return out


class InteractionTriplets(EpochSeededDataset):
    """``PyDataset`` of ``(user, positive item, sampled negatives)`` batches for CML and MF.

    Each epoch visits every training interaction once, in a fresh random
    order, and draws ``num_negatives`` items per interaction uniformly among
    the items the user has **not** interacted with (rejection sampling: a
    known positive is never yielded as a negative). Batch ``index`` of epoch
    ``epoch`` is a pure function of ``(seed, epoch, index)``, whichever order
    or thread asks for it; :meth:`on_epoch_end` (called by ``fit``)
    advances :attr:`epoch`. The epoch-seeded machinery is
    :class:`dmlkeras.data.EpochSeededDataset`'s: the plan of an epoch is the
    order of the interactions, and batch ``index`` draws its negatives from
    ``(seed, NEGATIVES, epoch, index)``.

    Parameters
    ----------
    interactions : array-like of shape (n, 2) or LeaveOneOutSplit
        ``(user, item)`` index pairs (a split: its ``train``).
    num_items : int
        Catalogue size; negatives are drawn from ``0 .. num_items - 1``.
    num_negatives : int, default 10
    batch_size : int, default 256
    seed : int or None, default 0
        Base seed (``None``: drawn once from OS entropy).
    shuffle : bool, default True
        Reshuffle the interactions every epoch.
    **kwargs
        ``workers``, ``use_multiprocessing``, ``max_queue_size`` of :class:`keras.utils.PyDataset`.

    Yields
    ------
    tuple
        ``({"user": (b,) int32, "items": (b, 1 + num_negatives) int32},)``:
        inputs only (the models add their own loss); column 0 of ``items``
        is the positive.

    Raises
    ------
    ValueError
        Bad shapes, indices out of range, or a user who already has every
        item (no negative to draw).

    Examples
    --------
    >>> ds = InteractionTriplets([[0, 0], [0, 1], [1, 2]], num_items=4, num_negatives=2, batch_size=2)
    >>> len(ds)
    2
    >>> (x,) = ds[0]
    >>> x["user"].shape, x["items"].shape
    ((2,), (2, 3))
    """

    def __init__(
        self,
        interactions: Any,
        num_items: int,
        num_negatives: int = 10,
        batch_size: int = 256,
        seed: int | None = 0,
        shuffle: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(seed, **kwargs)
        self.num_items = check_int(num_items, "num_items")
        self.pairs = _as_interactions(interactions, num_items=self.num_items)
        self.num_negatives = check_int(num_negatives, "num_negatives")
        self.batch_size = check_int(batch_size, "batch_size")
        self.shuffle = bool(shuffle)
        self._positives = _PositiveSet(self.pairs[:, 0], self.pairs[:, 1], self.num_items)
        per_user = np.bincount(self._positives.keys // self.num_items)
        if per_user.max() >= self.num_items:
            raise ValueError("A user has interacted with every item: there is no negative to sample for them.")

    def __len__(self) -> int:
        return math.ceil(len(self.pairs) / self.batch_size)

    def build_plan(self, rng: np.random.Generator) -> np.ndarray:
        """The order in which this epoch visits the interactions."""
        n = len(self.pairs)
        return rng.permutation(n) if self.shuffle else np.arange(n)

    def __getitem__(self, index: int) -> tuple[dict[str, np.ndarray]]:
        index = self.check_index(index)
        epoch = int(self.epoch)
        rows = self.plan()[index * self.batch_size : (index + 1) * self.batch_size]
        users, positives = self.pairs[rows, 0], self.pairs[rows, 1]
        negatives = self._positives.sample_negatives(users, self.num_negatives, self.rng(NEGATIVES, epoch, index))
        items = np.concatenate([positives[:, None], negatives], axis=1)
        return ({"user": users.astype(np.int32), "items": items.astype(np.int32)},)
