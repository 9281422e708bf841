"""Evaluation of recommenders on a leave-one-out split: sampled ranking metrics, full recall, popularity."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from dmlkeras._validation import check_int, check_seed
from dmlkeras.recsys.data import LeaveOneOutSplit
from dmlkeras.recsys.models import score_matrix

__all__ = [
    "RankingEvaluation",
    "most_popular_scores",
    "ranking_eval_per_user",
    "sample_eval_negatives",
    "sampled_ranking_eval",
]


def _check_split(split: Any) -> LeaveOneOutSplit:
    if not isinstance(split, LeaveOneOutSplit):
        raise ValueError(f"split must be a LeaveOneOutSplit (from leave_one_out_split); got {type(split).__name__}.")
    if split.test_users.size == 0:
        raise ValueError("The split has no held-out item (every user has a single interaction).")
    return split


def sample_eval_negatives(split: LeaveOneOutSplit, num_negatives: int = 100, seed: int = 0) -> np.ndarray:
    """For each test user, ``num_negatives`` distinct items they never interacted with.

    Neither training nor held-out items are drawn. Deterministic in
    ``seed``, so every model is evaluated on the same candidates.

    Returns
    -------
    ndarray of shape (len(split.test_users), num_negatives), int64
        Row ``r`` belongs to user ``split.test_users[r]``.

    Raises
    ------
    ValueError
        If a user has fewer than ``num_negatives`` unseen items.

    Examples
    --------
    >>> from dmlkeras.recsys import leave_one_out_split
    >>> import pandas as pd
    >>> split = leave_one_out_split(pd.DataFrame({"user_id": [0, 0], "item_id": [0, 1], "timestamp": [1, 2]}))
    >>> split = LeaveOneOutSplit(split.train, split.train_timestamps, split.test_items, split.test_timestamps,
    ...                          split.user_ids, np.arange(5))  # pretend 5 items
    >>> sorted(sample_eval_negatives(split, num_negatives=3)[0].tolist())
    [2, 3, 4]
    """
    split = _check_split(split)
    num_negatives = check_int(num_negatives, "num_negatives")
    seed = check_seed(seed)
    users = split.test_users
    seen = split.train_matrix().tolil()
    rng = np.random.default_rng(seed)
    out = np.empty((users.size, num_negatives), dtype=np.int64)
    allowed = np.ones(split.num_items, dtype=bool)
    for r, u in enumerate(users):
        allowed[:] = True
        allowed[seen.rows[u]] = False
        allowed[split.test_items[u]] = False
        candidates = np.flatnonzero(allowed)
        if candidates.size < num_negatives:
            raise ValueError(
                f"User {u} has only {candidates.size} unseen items; cannot sample num_negatives={num_negatives}."
            )
        out[r] = rng.choice(candidates, size=num_negatives, replace=False)
    return out


def _score_rows(model_or_scorer: Any, num_users: int, num_items: int) -> Callable[[np.ndarray], np.ndarray]:
    """A function users (q,) -> scores (q, num_items) for any supported scorer."""
    if isinstance(model_or_scorer, keras.Model):
        matrix = score_matrix(model_or_scorer)
        if matrix.shape != (num_users, num_items):
            raise ValueError(
                f"The model scores {matrix.shape} user-item pairs; the split has ({num_users}, {num_items})."
            )
        return lambda users: matrix[users].astype(np.float64)
    if callable(model_or_scorer):
        items = np.arange(num_items)

        def rows(users: np.ndarray) -> np.ndarray:
            u = np.repeat(users, num_items)
            i = np.tile(items, users.size)
            s = np.asarray(keras.ops.convert_to_numpy(model_or_scorer(u, i)), dtype=np.float64)
            if s.size != u.size:
                raise ValueError(f"The scorer returned {s.size} scores for {u.size} (user, item) pairs.")
            return s.reshape(users.size, num_items)

        return rows
    matrix = np.asarray(model_or_scorer, dtype=np.float64)
    if matrix.shape != (num_users, num_items):
        raise ValueError(
            "model_or_scorer must be a model of dmlkeras.recsys, a callable (user_ids, item_ids) -> scores "
            f"or a ({num_users}, {num_items}) score matrix; got an array of shape {matrix.shape}."
        )
    return lambda users: matrix[users]


def ranking_eval_per_user(
    model_or_scorer: Any,
    split: LeaveOneOutSplit,
    num_negatives: int = 100,
    k: int = 10,
    seed: int = 0,
    full_k: int = 20,
) -> dict[str, np.ndarray]:
    """The metrics of :func:`sampled_ranking_eval`, one value per test user (for intervals).

    :func:`sampled_ranking_eval` returns the means of these arrays. Per
    user, with ``rank`` the number of the ``num_negatives`` sampled
    negatives scoring at least as high as the held-out item (ties count
    against it) and ``full_rank`` its 0-based position in the full ranking
    of the items the user did not train on (ties: smaller item index first,
    as a stable sort):

    * ``hit_rate_at_{k}``: 1 if ``rank < k``, else 0;
    * ``ndcg_at_{k}``: ``1 / log2(rank + 2)`` if ``rank < k``, else 0;
    * ``reciprocal_rank``: ``1 / (rank + 1)`` (its mean is ``mrr``);
    * ``recall_at_{full_k}``: 1 if ``full_rank < full_k``, else 0.

    Pass the arrays (or the per-user difference of two models' arrays: the
    paired comparison) to :func:`dmlkeras.evaluation.bootstrap_mean` for a
    standard error over users.

    Parameters
    ----------
    model_or_scorer, split, num_negatives, k, seed, full_k
        As in :func:`sampled_ranking_eval`.

    Returns
    -------
    dict
        The four arrays above, each of shape ``(n_test_users,)`` float64,
        and ``users``, the test users (``split.test_users``) they belong to.

    Raises
    ------
    ValueError
        On a scorer of the wrong shape, NaN scores or a split without test items.

    Examples
    --------
    >>> from dmlkeras.recsys import leave_one_out_split
    >>> import pandas as pd
    >>> ratings = pd.DataFrame({"user_id": [0, 0, 1, 1], "item_id": [0, 1, 0, 2], "timestamp": [1, 2, 1, 2]})
    >>> split = leave_one_out_split(ratings)  # test items: user 0 -> 1, user 1 -> 2
    >>> per_user = ranking_eval_per_user(lambda u, i: -i, split, num_negatives=1, k=1, full_k=1)
    >>> per_user["hit_rate_at_1"], per_user["recall_at_1"]  # prefers low ids: user 0 is hit, user 1 is not
    (array([1., 0.]), array([1., 0.]))
    """
    split = _check_split(split)
    k = check_int(k, "k")
    full_k = check_int(full_k, "full_k")
    cutoff = min(full_k, split.num_items)
    rows_fn = _score_rows(model_or_scorer, split.num_users, split.num_items)
    negatives = sample_eval_negatives(split, num_negatives, seed)
    users = split.test_users
    held = split.test_items[users]
    seen = split.train_matrix()
    pos_scores = np.empty(users.size)
    neg_scores = np.empty(negatives.shape)
    full_rank = np.empty(users.size, dtype=np.int64)
    items = np.arange(split.num_items)
    chunk = max(1, (1 << 21) // split.num_items)
    for start in range(0, users.size, chunk):
        u = users[start : start + chunk]
        h = held[start : start + u.size]
        s = rows_fn(u)
        if np.isnan(s).any():
            raise ValueError("The scorer returned NaN scores.")
        r = np.arange(u.size)
        pos = s[r, h]
        pos_scores[start : start + u.size] = pos
        neg_scores[start : start + u.size] = np.take_along_axis(s, negatives[start : start + u.size], axis=1)
        s = s.copy()
        block = seen[u]
        s[np.repeat(r, np.diff(block.indptr)), block.indices] = -np.inf
        ahead = (s > pos[:, None]).sum(axis=1) + ((s == pos[:, None]) & (items[None, :] < h[:, None])).sum(axis=1)
        full_rank[start : start + u.size] = ahead
    rank = (neg_scores >= pos_scores[:, None]).sum(axis=1)
    hit = rank < k
    return {
        f"hit_rate_at_{k}": hit.astype(np.float64),
        f"ndcg_at_{k}": np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0),
        "reciprocal_rank": 1.0 / (rank + 1.0),
        f"recall_at_{full_k}": (full_rank < cutoff).astype(np.float64),
        "users": users,
    }


def sampled_ranking_eval(
    model_or_scorer: Any,
    split: LeaveOneOutSplit,
    num_negatives: int = 100,
    k: int = 10,
    seed: int = 0,
    full_k: int = 20,
) -> dict[str, float]:
    """Evaluate any recommender on a leave-one-out split, the same way for all.

    Two protocols, over the users with a held-out item:

    * **Sampled** (He et al., 2017): the held-out item is ranked against
      ``num_negatives`` items the user never interacted with
      (:func:`sample_eval_negatives`, same ``seed`` = same candidates for
      every model); HR@k and NDCG@k as in
      :func:`dmlkeras.evaluation.sampled_ranking_metrics` (ties count
      against the held-out item).
    * **Full ranking**: the held-out item is ranked among *all* items the
      user has not trained on (training items get score ``-inf``);
      recall@``full_k`` as in :func:`dmlkeras.evaluation.ranking_metrics`
      (with one held-out item, recall = hit rate). Stricter: sampled
      metrics are known to flatter models (Krichene & Rendle, 2020).

    The values are the means over users of :func:`ranking_eval_per_user`.

    Parameters
    ----------
    model_or_scorer : keras.Model, ndarray or callable
        A model of this module; a score matrix ``(num_users, num_items)``;
        or a callable ``(user_ids, item_ids) -> scores`` on two equal-length
        1-D arrays. Higher = better.
    split : LeaveOneOutSplit
    num_negatives : int, default 100
    k : int, default 10
    seed : int, default 0
    full_k : int, default 20

    Returns
    -------
    dict
        ``hit_rate_at_{k}``, ``ndcg_at_{k}``, ``mrr`` (sampled),
        ``recall_at_{full_k}`` (full ranking) and ``n_users``.

    Raises
    ------
    ValueError
        On a scorer of the wrong shape or a split without test items.

    Examples
    --------
    >>> from dmlkeras.recsys import leave_one_out_split
    >>> import pandas as pd
    >>> ratings = pd.DataFrame({"user_id": [0, 0, 1, 1], "item_id": [0, 1, 0, 2], "timestamp": [1, 2, 1, 2]})
    >>> split = leave_one_out_split(ratings)  # test items: user 0 -> 1, user 1 -> 2
    >>> oracle = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    >>> m = sampled_ranking_eval(oracle, split, num_negatives=1, k=1, full_k=1)
    >>> m["hit_rate_at_1"], m["recall_at_1"]
    (1.0, 1.0)
    >>> m = sampled_ranking_eval(lambda u, i: -i, split, num_negatives=1, k=1, full_k=1)  # prefers low ids
    >>> m["hit_rate_at_1"], m["recall_at_1"]  # user 0 (item 1) is hit, user 1 (item 2) is not
    (0.5, 0.5)
    """
    per_user = ranking_eval_per_user(model_or_scorer, split, num_negatives, k, seed, full_k)
    hits, ndcg, reciprocal, recall = (name for name in per_user if name != "users")
    return {
        hits: float(per_user[hits].mean()),
        ndcg: float(per_user[ndcg].mean()),
        "mrr": float(per_user[reciprocal].mean()),
        recall: float(per_user[recall].mean()),
        "n_users": int(per_user["users"].size),
    }


class RankingEvaluation(keras.callbacks.Callback):
    """Keras callback logging the ranking metrics of a validation split after every epoch.

    After each epoch it scores the model being trained (a model of this
    module) with :func:`sampled_ranking_eval` on ``split`` and writes the
    metrics into the epoch ``logs`` with ``prefix`` (``val_hit_rate_at_10``,
    ``val_ndcg_at_10``, ``val_mrr``, ``val_recall_at_20``), so they show in
    ``history.history`` and ``keras.callbacks.EarlyStopping`` can monitor
    them (list this callback first). The split is a validation split, e.g.
    ``leave_one_out_split(test_split.train_frame())``, whose held-out items
    the model does not train on.

    Parameters
    ----------
    split : LeaveOneOutSplit
        The split the model trains on (its ``train``) and is scored on (its held-out items).
    num_negatives, k, seed, full_k
        As in :func:`sampled_ranking_eval`.
    prefix : str, default "val_"

    Examples
    --------
    >>> import pandas as pd
    >>> from dmlkeras.recsys import InteractionTriplets, build_cml_model, leave_one_out_split
    >>> ratings = pd.DataFrame({"user_id": np.repeat(np.arange(4), 5), "item_id": np.arange(20) % 12,
    ...                         "timestamp": np.tile(np.arange(5), 4)})
    >>> split = leave_one_out_split(ratings)
    >>> model = build_cml_model(split.num_users, split.num_items, embedding_dim=4, num_negatives=2)
    >>> data = InteractionTriplets(split, split.num_items, num_negatives=2, batch_size=8)
    >>> callback = RankingEvaluation(split, num_negatives=5, k=3, full_k=3)
    >>> history = model.fit(data, epochs=2, verbose=0, callbacks=[callback])
    >>> sorted(name for name in history.history if name.startswith("val_"))
    ['val_hit_rate_at_3', 'val_mrr', 'val_ndcg_at_3', 'val_recall_at_3']
    >>> len(history.history["val_hit_rate_at_3"])
    2
    """

    def __init__(
        self,
        split: LeaveOneOutSplit,
        num_negatives: int = 100,
        k: int = 10,
        seed: int = 0,
        full_k: int = 20,
        prefix: str = "val_",
    ) -> None:
        super().__init__()
        self.split = _check_split(split)
        self.num_negatives = check_int(num_negatives, "num_negatives")
        self.k = check_int(k, "k")
        self.seed = check_seed(seed)
        self.full_k = check_int(full_k, "full_k")
        self.prefix = str(prefix)
        # Fail now, not after the first epoch, when the split has too few unseen items.
        sample_eval_negatives(self.split, self.num_negatives, self.seed)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        metrics = sampled_ranking_eval(self.model, self.split, self.num_negatives, self.k, self.seed, self.full_k)
        if logs is not None:
            for name, value in metrics.items():
                if name != "n_users":
                    logs[self.prefix + name] = value


def most_popular_scores(split: LeaveOneOutSplit) -> np.ndarray:
    """The most-popular baseline: every user scores an item by its number of training interactions.

    Returns
    -------
    ndarray of shape (num_users, num_items), float32

    Examples
    --------
    >>> from dmlkeras.recsys import leave_one_out_split
    >>> import pandas as pd
    >>> ratings = pd.DataFrame({"user_id": [0, 0, 1, 1, 2], "item_id": [5, 6, 5, 7, 5], "timestamp": [1, 2, 1, 2, 1]})
    >>> most_popular_scores(leave_one_out_split(ratings))[0]
    array([3., 0., 0.], dtype=float32)
    """
    split = _check_split(split)
    counts = np.bincount(split.train[:, 1], minlength=split.num_items).astype(np.float32)
    return np.tile(counts, (split.num_users, 1))
