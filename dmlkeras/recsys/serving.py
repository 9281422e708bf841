"""Serving: each user's top-k unseen items, by nearest-neighbour search (:func:`recommend`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike

from dmlkeras._validation import check_int, index_vector
from dmlkeras.index import NearestNeighbors
from dmlkeras.recsys.data import LeaveOneOutSplit
from dmlkeras.recsys.models import item_bias, item_embeddings, model_kind, user_embeddings

__all__ = ["recommend"]


def _seen_lists(seen: Any, num_users: int, num_items: int) -> Callable[[int], np.ndarray]:
    if isinstance(seen, LeaveOneOutSplit):
        seen = seen.train_matrix()
    if sp.issparse(seen):
        m = sp.csr_matrix(seen)
        if m.shape != (num_users, num_items):
            raise ValueError(f"seen must have shape ({num_users}, {num_items}); got {m.shape}.")
        return lambda u: m.indices[m.indptr[u] : m.indptr[u + 1]]
    if isinstance(seen, Mapping):
        return lambda u: np.asarray(seen.get(u, ()), dtype=np.int64)
    if isinstance(seen, (Sequence, np.ndarray)):
        if len(seen) != num_users:
            raise ValueError(f"seen must hold one array of items per user ({num_users}); got {len(seen)}.")
        return lambda u: np.asarray(seen[u], dtype=np.int64)
    raise ValueError(
        "seen must be a LeaveOneOutSplit, a sparse (num_users, num_items) matrix, a sequence of per-user "
        f"item arrays or a dict user -> items; got {type(seen).__name__}."
    )


def recommend(
    model: keras.Model,
    user_ids: ArrayLike,
    k: int = 10,
    exclude_seen: bool = True,
    seen: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` items of some users, by nearest-neighbour search.

    CML: the items nearest to the user in euclidean distance
    (:class:`dmlkeras.index.NearestNeighbors` over :func:`item_embeddings`).
    MF: the largest ``p_u . q_i + b_i``, found with the same euclidean index
    after the exact inner-product-to-distance reduction (Bachrach et al.,
    2014): items ``[q_i, b_i, sqrt(M^2 - ||(q_i, b_i)||^2)]`` and queries
    ``[p_u, 1, 0]``.

    Parameters
    ----------
    model : keras.Model
        From :func:`build_cml_model` or :func:`build_mf_model`.
    user_ids : array-like of shape (q,)
    k : int, default 10
    exclude_seen : bool, default True
        Never recommend an item in ``seen`` for that user.
    seen : LeaveOneOutSplit, sparse matrix, sequence or dict, optional
        The user's known items (a split: its training items). Required when
        ``exclude_seen``.

    Returns
    -------
    items : ndarray of shape (q, k), int64
        Recommended item indices, best first.
    scores : ndarray of shape (q, k), float32
        Their scores (higher = better): minus the distance for CML, the dot
        product plus bias for MF.

    Raises
    ------
    ValueError
        Bad ids, ``k`` larger than the number of unseen items, or
        ``exclude_seen`` without ``seen``.

    Examples
    --------
    >>> from dmlkeras.recsys import build_cml_model
    >>> model = build_cml_model(2, 5, embedding_dim=2)
    >>> _ = model.get_layer("user_embedding").embeddings.assign(np.array([[0.0, 0.0], [0.5, 0.5]], "float32"))
    >>> items_xy = np.array([[0.1, 0], [0.2, 0], [0.3, 0], [0.4, 0], [0.9, 0]], "float32")
    >>> _ = model.get_layer("item_embedding").embeddings.assign(items_xy)
    >>> items, scores = recommend(model, [0], k=2, seen=[[0], []])
    >>> items
    array([[1, 2]])
    >>> np.round(scores, 2)
    array([[-0.2, -0.3]], dtype=float32)
    """
    kind = model_kind(model)
    users_all = user_embeddings(model)
    items_all = item_embeddings(model)
    num_users, num_items = users_all.shape[0], items_all.shape[0]
    ids = index_vector(user_ids, num_users, "user_ids")
    k = check_int(k, "k")
    seen_of = None
    if exclude_seen:
        if seen is None:
            raise ValueError("exclude_seen=True needs seen= (e.g. the LeaveOneOutSplit used for training).")
        seen_of = _seen_lists(seen, num_users, num_items)
    queries = users_all[ids].astype(np.float32)
    gallery = items_all.astype(np.float32)
    if kind == "dot":
        bias = item_bias(model).astype(np.float32)
        gallery = np.concatenate([gallery, bias[:, None]], axis=1)
        norms2 = np.sum(gallery.astype(np.float64) ** 2, axis=1)
        extra = np.sqrt(np.maximum(norms2.max() - norms2, 0.0)).astype(np.float32)
        gallery = np.concatenate([gallery, extra[:, None]], axis=1)
        queries = np.concatenate(
            [queries, np.ones((ids.size, 1), np.float32), np.zeros((ids.size, 1), np.float32)], axis=1
        )
    exclusions = [seen_of(int(u)) if seen_of is not None else np.empty(0, np.int64) for u in ids]
    max_excluded = max((len(e) for e in exclusions), default=0)
    for u, e in zip(ids, exclusions):
        if num_items - len(np.unique(e)) < k:
            raise ValueError(f"k={k} is larger than the {num_items - len(np.unique(e))} unseen items of user {u}.")
    search_k = min(num_items, k + max_excluded)
    index = NearestNeighbors(metric="euclidean").fit(gallery)
    out_items = np.empty((ids.size, k), dtype=np.int64)
    out_scores = np.empty((ids.size, k), dtype=np.float32)
    if ids.size == 0:
        return out_items, out_scores
    dist, idx = index.search(queries, k=search_k)
    for r, e in enumerate(exclusions):
        keep = ~np.isin(idx[r], e)
        chosen = idx[r][keep][:k]
        out_items[r] = chosen
        if kind == "distance":
            out_scores[r] = -dist[r][keep][:k]
        else:
            out_scores[r] = queries[r, :-1] @ gallery[chosen, :-1].T
    return out_items, out_scores
