"""Evaluation metrics for embeddings: retrieval, verification, ranking.

Every function takes NumPy arrays (embeddings, distances, scores), never a
model. (The Keras callback that embeds a validation set with
``model.predict`` and calls :func:`retrieval_metrics` is
:class:`dmlkeras.callbacks.RetrievalEvaluation`.)

* Retrieval (image retrieval, few-shot, deduplication):
  :func:`retrieval_metrics` - Precision@1, Recall@K, Precision@K,
  R-Precision, MAP@R (Musgrave et al., "A Metric Learning Reality Check",
  ECCV 2020) and KMeans NMI / AMI; single labels or multi-hot label sets;
  :func:`retrieval_per_query` keeps Precision@1 and MAP@R per query, for
  bootstrap intervals over queries.
* Verification (face verification, LFW): :func:`verification_metrics`,
  :func:`roc_curve`, :func:`best_threshold`,
  :func:`kfold_verification_accuracy`, :func:`hardest_errors`, and
  :func:`calibrate` (the threshold for a target precision, false accept
  rate or F1). Lower distance = more similar.
* Recommendation: :func:`ranking_metrics` (full ranking) and
  :func:`sampled_ranking_metrics` (NCF leave-one-out with sampled negatives).
* Regression of similarities (STS): :func:`correlation_metrics`.
* Identification and clustering (face identification, photo albums):
  :func:`open_set_split` (a gallery of one item per identity, mated and
  non-mated probes), :func:`bootstrap_mean` (a mean with its bootstrap
  standard error, over items or whole groups),
  :func:`verification_bootstrap` (verification metrics and paired gaps with
  bootstrap standard errors over pairs) and :func:`clustering_metrics` (NMI, AMI, pairwise precision / recall / F1).
* Probes of a frozen embedding (self-supervised training):
  :func:`knn_accuracy` (k-NN classification) and :func:`linear_probe_accuracy`
  (scikit-learn logistic regression on a fraction of the labels), and
  :func:`effective_rank`, which tells dimensional collapse.
"""

from __future__ import annotations

import os
import queue
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from dmlkeras._validation import (
    check_float,
    check_int,
    check_pairs,
    check_seed,
    embedding_array,
    float_vector,
    label_vector,
)
from dmlkeras.index import NearestNeighbors

__all__ = [
    "retrieval_metrics",
    "retrieval_per_query",
    "verification_metrics",
    "roc_curve",
    "RocCurve",
    "best_threshold",
    "calibrate",
    "Calibration",
    "kfold_verification_accuracy",
    "hardest_errors",
    "ranking_metrics",
    "sampled_ranking_metrics",
    "correlation_metrics",
    "correlation_difference",
    "CorrelationDifference",
    "knn_accuracy",
    "linear_probe_accuracy",
    "label_subset",
    "compare_runs",
    "describe_comparison",
    "effective_rank",
    "bootstrap_mean",
    "BootstrapMean",
    "verification_bootstrap",
    "clustering_metrics",
    "open_set_split",
    "OpenSetSplit",
]

RETRIEVAL_METRICS = ("euclidean", "cosine", "dot")
# Entries of one (queries, n_gallery) distance block: the block size of
# NearestNeighbors, so that each search call is one block.
_BLOCK_ELEMENTS = 1 << 24


# ---------------------------------------------------------------- helpers
def _as_k_tuple(k: int | Sequence[int]) -> tuple[int, ...]:
    if isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_)):
        ks: tuple[Any, ...] = (k,)
    elif isinstance(k, (Sequence, np.ndarray)) and not isinstance(k, str):
        ks = tuple(k)
    else:
        ks = ()
    if not ks:
        raise ValueError(f"k must be a positive int or a non-empty sequence of positive ints; got {k!r}.")
    try:
        return tuple(sorted({check_int(v, "k") for v in ks}))
    except ValueError:
        raise ValueError(f"k must be a positive int or a non-empty sequence of positive ints; got {k!r}.") from None


def _usable_cores() -> int:
    """CPU cores this process may run on (its affinity where the OS tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _retrieval_labels(labels: ArrayLike, n: int, name: str) -> np.ndarray:
    """(n,) labels of any comparable dtype, or an (n, L) multi-hot boolean matrix."""
    arr = np.asarray(labels)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim == 2 and arr.shape[0] == n:
        if arr.dtype != np.bool_:
            if not (np.issubdtype(arr.dtype, np.number) and np.isin(arr, (0, 1)).all()):
                raise ValueError(
                    f"{name} of shape (n, L) must be a multi-hot 0/1 (or boolean) matrix; got dtype {arr.dtype} "
                    "with other values."
                )
            arr = arr.astype(bool)
        return arr
    if arr.shape != (n,):
        raise ValueError(
            f"{name} must have shape ({n},) (one label per embedding) or ({n}, n_labels) (multi-hot); "
            f"got shape {arr.shape}."
        )
    return arr


# -------------------------------------------------------------- retrieval
def _retrieval_inputs(
    query_emb: ArrayLike, query_labels: ArrayLike, gallery_emb: ArrayLike | None, gallery_labels: ArrayLike | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:
    """Checked ``(q, query labels, gallery, gallery labels, leave_one_out)`` of a retrieval evaluation."""
    q = embedding_array(query_emb, "query_emb")
    ql = _retrieval_labels(query_labels, q.shape[0], "query_labels")
    loo = gallery_emb is None
    if loo:
        if gallery_labels is not None:
            raise ValueError("gallery_labels given without gallery_emb.")
        g, gl = q, ql
    else:
        if gallery_labels is None:
            raise ValueError("gallery_emb given without gallery_labels.")
        g = embedding_array(gallery_emb, "gallery_emb")
        if g.shape[1] != q.shape[1]:
            raise ValueError(
                f"gallery_emb must have shape (n_gallery, {q.shape[1]}) like query_emb; got shape {g.shape}."
            )
        gl = _retrieval_labels(gallery_labels, g.shape[0], "gallery_labels")
    multi_hot = ql.ndim == 2
    if gl.ndim != ql.ndim or (multi_hot and gl.shape[1] != ql.shape[1]):
        raise ValueError(
            f"query_labels and gallery_labels must be of the same kind (both (n,) or both (n, L)); "
            f"got shapes {ql.shape} and {gl.shape}."
        )
    return q, ql, g, gl, loo


def retrieval_metrics(
    query_emb: ArrayLike,
    query_labels: ArrayLike,
    gallery_emb: ArrayLike | None = None,
    gallery_labels: ArrayLike | None = None,
    k: int | Sequence[int] = (1, 5, 10),
    metric: str = "euclidean",
    clustering: bool = True,
    seed: int = 0,
    backend: str = "numpy",
    n_jobs: int | None = None,
) -> dict[str, float]:
    """Retrieval and clustering quality of labelled embeddings.

    Each query is ranked against the gallery by ``metric`` distance (exact
    search, ties by smaller gallery index, the order of
    :class:`dmlkeras.index.NearestNeighbors`). ``rel(i) = 1`` when the
    ``i``-th retrieved item is relevant: it has the query's label, or, with
    multi-hot labels, shares at least one label with the query. With ``R``
    the number of relevant gallery items (the query itself excluded in
    leave-one-out mode) the metrics are, each averaged over queries
    (definitions of Musgrave, Belongie and Lim, "A Metric Learning Reality
    Check", ECCV 2020):

    * ``precision_at_1``: ``rel(1)``.
    * ``recall_at_{k}``: 1 if at least one of the top ``k`` is relevant
      (the "Recall@K" of the deep metric learning literature).
    * ``precision_at_{k}``: ``(1/k) sum_{i<=k} rel(i)``.
    * ``r_precision``: ``(1/R) sum_{i<=R} rel(i)``.
    * ``map_at_r``: ``(1/R) sum_{i<=R} P(i) rel(i)`` with
      ``P(i) = (1/i) sum_{j<=i} rel(j)``.
    * ``nmi``, ``ami`` (when ``clustering``; single labels only):
      normalized / adjusted mutual information between the query labels
      and KMeans clusters of the query embeddings (``n_clusters`` = number
      of query classes, ``n_init=10``, ``random_state=seed``; embeddings are
      L2-normalised first when ``metric="cosine"``).

    Queries without a relevant gallery item (``R = 0``) are left out of the
    retrieval averages, as in the reference implementation; ``n_queries``
    says how many were used.

    The exact search runs in blocks of queries: one BLAS matrix product per
    block, then a linear-time selection (:func:`numpy.partition`) of each
    query's ``max(R, k)`` nearest items and a sort of those only. Queries
    are processed grouped by class, so that a block selects exactly ``R``
    items. ``n_jobs`` threads search blocks at once, each with one BLAS
    thread, so that the selection (which NumPy runs on one core) uses every
    core as the product does. Memory is bounded by the blocks (about
    100 to 150 MiB per thread), whatever the number of embeddings.

    Parameters
    ----------
    query_emb : array-like of shape (n_queries, d)
    query_labels : array-like of shape (n_queries,) or (n_queries, n_labels)
        Any labels comparable with ``==`` (ints, strings), or a multi-hot
        0/1 matrix (relevant = shares a label).
    gallery_emb : array-like of shape (n_gallery, d), optional
        ``None``: leave-one-out within the query set (each query is searched
        among the other queries).
    gallery_labels : array-like of shape (n_gallery,) or (n_gallery, n_labels), optional
        Required with ``gallery_emb``; the same kind as ``query_labels``.
    k : int or sequence of int, default (1, 5, 10)
        Cut-offs of ``recall_at_k`` and ``precision_at_k``.
    metric : {"euclidean", "cosine", "dot"}, default "euclidean"
        ``"dot"`` ranks by decreasing inner product.
    clustering : bool, default True
        Also compute ``nmi`` and ``ami`` (KMeans costs time on large sets).
    seed : int, default 0
        KMeans ``random_state``.
    backend : {"numpy", "faiss"}, default "numpy"
        Neighbour search backend (same results; the numpy one is the faster
        here, faiss is kept for comparison).
    n_jobs : int, optional
        Threads that search blocks of queries at once (numpy backend);
        ``None``: one per CPU core this process may use. While two or more
        run, BLAS is limited to one thread (``threadpoolctl``; restored
        afterwards). The values do not depend on ``n_jobs`` beyond float32
        rounding: a BLAS product may round differently with its thread
        count, which can reorder two items whose float32 distances differ
        in the last bit (about 1e-9 on MAP@R at n = 60,000).

    Returns
    -------
    dict
        Float values keyed ``precision_at_1``, ``recall_at_{k}``,
        ``precision_at_{k}`` for each ``k``, ``r_precision``, ``map_at_r``,
        ``nmi``, ``ami`` (when ``clustering``) and ``n_queries``.

    Raises
    ------
    ValueError
        On shape mismatches, a ``k`` that is not a positive int or larger
        than the gallery, an ``n_jobs`` that is not a positive int,
        ``clustering=True`` with multi-hot labels, or when no query has a
        relevant gallery item.

    Examples
    --------
    >>> import numpy as np
    >>> emb = np.array([[0.0], [1.0], [4.0], [5.0], [3.0]])
    >>> labels = np.array([0, 0, 1, 1, 1])
    >>> m = retrieval_metrics(emb, labels, k=(1, 2), clustering=False)
    >>> m["precision_at_1"], m["recall_at_2"], m["r_precision"], m["map_at_r"]
    (1.0, 1.0, 0.9, 0.9)

    The last query (3.0) retrieves 4.0 (relevant), then 1.0 (not relevant;
    it ties with 5.0 at distance 2 and has the smaller index), so its
    ``R = 2`` gives AP = (1/2) (1/1 + 0) = 0.5; the others score 1.

    Multi-hot labels: an item is relevant when it shares a label.

    >>> tags = np.array([[1, 0], [1, 1], [0, 1], [0, 1], [1, 1]])
    >>> retrieval_metrics(emb, tags, k=1, clustering=False)["precision_at_1"]
    1.0
    """
    if metric not in RETRIEVAL_METRICS:
        raise ValueError(f"metric must be one of {RETRIEVAL_METRICS}; got {metric!r}.")
    if backend not in ("numpy", "faiss"):
        raise ValueError(f"backend must be 'numpy' or 'faiss'; got {backend!r}.")
    ks = _as_k_tuple(k)
    n_jobs = _usable_cores() if n_jobs is None else check_int(n_jobs, "n_jobs")
    q, ql, g, gl, loo = _retrieval_inputs(query_emb, query_labels, gallery_emb, gallery_labels)
    multi_hot = ql.ndim == 2
    if multi_hot and clustering:
        raise ValueError("clustering=True needs one label per embedding; pass clustering=False with multi-hot labels.")
    n_avail = g.shape[0] - (1 if loo else 0)
    if ks[-1] > n_avail:
        raise ValueError(
            f"k={ks[-1]} is larger than the {n_avail} gallery items a query can retrieve"
            f"{' (leave-one-out)' if loo else ''}; use smaller k."
        )
    relevance = _Relevance(ql, gl, loo)
    r_all = relevance.counts()
    evaluated = np.flatnonzero(r_all > 0)
    if evaluated.size == 0:
        raise ValueError("No query has a relevant item in the gallery (R = 0 for all queries).")
    # Group queries of equal R (of one class) so that each block selects
    # exactly R items.
    order = evaluated[np.argsort(r_all[evaluated], kind="stable")]

    cuts = tuple(sorted(set(ks) | {1}))  # Precision@1 is always reported
    acc = _ranked_sums(q, g, relevance, r_all, order, ks[-1], cuts, metric, backend, loo, n_jobs)

    n_eval = evaluated.size
    out: dict[str, float] = {"precision_at_1": acc.correct[1] / n_eval}
    for kk in ks:
        out[f"recall_at_{kk}"] = acc.hits[kk] / n_eval
        out[f"precision_at_{kk}"] = acc.correct[kk] / n_eval
    out["r_precision"] = acc.r_precision / n_eval
    out["map_at_r"] = acc.map_at_r / n_eval
    if clustering:
        out.update(_clustering_scores(q, relevance.query_codes, metric, seed))
    out["n_queries"] = int(n_eval)
    return out


def retrieval_per_query(
    query_emb: ArrayLike,
    query_labels: ArrayLike,
    gallery_emb: ArrayLike | None = None,
    gallery_labels: ArrayLike | None = None,
    metric: str = "euclidean",
) -> dict[str, np.ndarray]:
    """Precision@1 and MAP@R of every query, for intervals over queries.

    The per-query values whose means :func:`retrieval_metrics` reports (same
    search, same ties, same definitions), kept apart so that a bootstrap
    over queries (:func:`bootstrap_mean`) can put a standard error on a
    score, or, given the per-query differences of two embeddings of the same
    queries, on a gap.

    Parameters
    ----------
    query_emb : array-like of shape (n_queries, d)
    query_labels : array-like of shape (n_queries,) or (n_queries, n_labels)
        As in :func:`retrieval_metrics`.
    gallery_emb : array-like of shape (n_gallery, d), optional
        ``None``: leave-one-out within the query set.
    gallery_labels : array-like, optional
        Required with ``gallery_emb``.
    metric : {"euclidean", "cosine", "dot"}, default "euclidean"

    Returns
    -------
    dict
        ``precision_at_1`` and ``map_at_r``: float arrays of shape
        ``(n_queries,)``, NaN for a query without a relevant gallery item
        (``R = 0``; :func:`retrieval_metrics` leaves those out). Their
        ``numpy.nanmean`` is the value :func:`retrieval_metrics` reports.

    Raises
    ------
    ValueError
        On a bad ``metric``, shape mismatches, or when no query has a
        relevant gallery item.

    Examples
    --------
    >>> import numpy as np
    >>> emb = np.array([[0.0], [1.0], [4.0], [5.0], [3.0]])
    >>> per_query = retrieval_per_query(emb, [0, 0, 1, 1, 1])
    >>> per_query["map_at_r"].tolist()   # the last query: AP = (1/2) (1/1 + 0)
    [1.0, 1.0, 1.0, 1.0, 0.5]
    >>> bootstrap_mean(per_query["map_at_r"]).mean
    0.9
    """
    if metric not in RETRIEVAL_METRICS:
        raise ValueError(f"metric must be one of {RETRIEVAL_METRICS}; got {metric!r}.")
    q, ql, g, gl, loo = _retrieval_inputs(query_emb, query_labels, gallery_emb, gallery_labels)
    relevance = _Relevance(ql, gl, loo)
    r_all = relevance.counts()
    evaluated = np.flatnonzero(r_all > 0)
    if evaluated.size == 0:
        raise ValueError("No query has a relevant item in the gallery (R = 0 for all queries).")
    order = evaluated[np.argsort(r_all[evaluated], kind="stable")]  # blocks of similar R
    out = {"precision_at_1": np.full(q.shape[0], np.nan), "map_at_r": np.full(q.shape[0], np.nan)}
    nn = NearestNeighbors(metric=metric).fit(g)
    block = max(1, _BLOCK_ELEMENTS // g.shape[0])
    for start in range(0, order.size, block):
        rows = order[start : start + block]
        r = r_all[rows]
        idx = nn.search(q[rows], int(r.max()), exclude=rows if loo else None, return_distance=False)
        rel = relevance.of(rows, idx)
        out["precision_at_1"][rows] = rel[:, 0]
        out["map_at_r"][rows] = _average_precisions_at_r(rel, r, np.cumsum(rel, axis=1, dtype=np.int32))
    return out


class _Relevance:
    """Which gallery items are relevant to which query (label codes or multi-hot sets)."""

    def __init__(self, ql: np.ndarray, gl: np.ndarray, loo: bool) -> None:
        self.loo = loo
        self.multi_hot = ql.ndim == 2
        if self.multi_hot:
            self.q_bits = np.packbits(ql, axis=1)
            self.g_bits = np.packbits(gl, axis=1)
            self.q_float = ql.astype(np.float32)
            self.g_float_t = np.ascontiguousarray(gl.T.astype(np.float32))
            self.query_codes = None
        else:
            _, codes = np.unique(np.concatenate([ql, gl]), return_inverse=True)
            codes = codes.ravel()
            codes = codes.astype(np.min_scalar_type(codes.max()))  # small codes: a faster gather in of()
            self.query_codes, self.g_codes = codes[: len(ql)], codes[len(ql):]

    def counts(self) -> np.ndarray:
        """R of every query."""
        if not self.multi_hot:
            n_per_label = np.bincount(self.g_codes, minlength=int(max(self.query_codes.max(), self.g_codes.max())) + 1)
            return n_per_label[self.query_codes] - (1 if self.loo else 0)
        n_q = self.q_float.shape[0]
        out = np.empty(n_q, dtype=np.int64)
        block = max(1, _BLOCK_ELEMENTS // self.g_float_t.shape[1])
        for start in range(0, n_q, block):
            shared = self.q_float[start : start + block] @ self.g_float_t
            out[start : start + block] = np.count_nonzero(shared > 0.5, axis=1)
        if self.loo:
            out -= self.q_bits.any(axis=1)  # an item with a label shares it with itself
        return out

    def of(self, rows: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """rel[i, j]: is gallery item idx[i, j] relevant to query rows[i]?"""
        if not self.multi_hot:
            return np.take(self.g_codes, idx) == self.query_codes[rows, None]  # take: 2x faster than g_codes[idx]
        return (self.q_bits[rows][:, None, :] & self.g_bits[idx]).any(axis=2)


def _ranked_sums(
    q: np.ndarray,
    g: np.ndarray,
    relevance: _Relevance,
    r_all: np.ndarray,
    order: np.ndarray,
    k_max: int,
    cuts: tuple[int, ...],
    metric: str,
    backend: str,
    loo: bool,
    n_jobs: int,
) -> _RetrievalSums:
    """Rank the queries ``order`` (grouped by R) block by block and sum their metrics.

    Blocks are searched by ``n_jobs`` threads, each with its own
    :class:`NearestNeighbors` (its work buffers are not shared) and BLAS
    limited to one thread meanwhile, so that the product and the selection
    of every block run on their own core. Block sums are merged in block
    order, whatever the thread that computed them. The faiss backend runs
    its own threads, so it searches one block at a time.
    """
    block = max(1, _BLOCK_ELEMENTS // g.shape[0])
    if backend == "faiss":
        block = max(1, min(block, (1 << 22) // max(k_max, int(r_all[order].max()))))
    starts = range(0, order.size, block)
    workers = 1 if backend == "faiss" else min(n_jobs, len(starts))
    idle: queue.SimpleQueue[NearestNeighbors] = queue.SimpleQueue()
    for _ in range(workers):
        idle.put(NearestNeighbors(metric=metric, backend=backend).fit(g))

    def block_sums(start: int) -> _RetrievalSums:
        rows = order[start : start + block]
        r = r_all[rows]
        nn = idle.get()
        try:
            idx = nn.search(q[rows], max(k_max, int(r.max())), exclude=rows if loo else None, return_distance=False)
        finally:
            idle.put(nn)
        sums = _RetrievalSums(cuts)
        sums.add(relevance.of(rows, idx), r)
        return sums

    acc = _RetrievalSums(cuts)
    if workers == 1:
        for start in starts:
            acc.merge(block_sums(start))
        return acc
    from threadpoolctl import threadpool_limits  # noqa: PLC0415 (a dependency of scikit-learn)

    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
        for sums in pool.map(block_sums, starts):
            acc.merge(sums)
    return acc


def _average_precisions_at_r(rel: np.ndarray, r: np.ndarray, cum: np.ndarray) -> np.ndarray:
    """AP@R of each query: ``rel[i, j]`` (is its ``j``-th retrieved item relevant?), ``r`` its R.

    ``cum`` is ``rel``'s int32 cumulative sum along axis 1; it is overwritten.
    """
    kc = rel.shape[1]
    if np.any(r < kc):
        rel = rel & (np.arange(1, kc + 1)[None, :] <= r[:, None])  # the first R retrieved only
    # sum_{i <= R} rel(i) P(i) = sum_i rel(i) cum(i) / i: one matrix-vector product.
    cum *= rel
    return np.dot(cum, 1.0 / np.arange(1, kc + 1)) / r


class _RetrievalSums:
    """Running sums of the per-query retrieval metrics."""

    def __init__(self, cuts: tuple[int, ...]) -> None:
        self.cuts = cuts
        self.hits = dict.fromkeys(cuts, 0.0)
        self.correct = dict.fromkeys(cuts, 0.0)
        self.r_precision = 0.0
        self.map_at_r = 0.0

    def add(self, rel: np.ndarray, r: np.ndarray) -> None:
        """Add the queries of ``rel[i, j]`` (is the ``j``-th retrieved item relevant?) with R ``r``."""
        b = rel.shape[0]
        cum = np.cumsum(rel, axis=1, dtype=np.int32)  # 10x faster than an int64 or float64 cumsum
        for kk in self.cuts:
            self.hits[kk] += float(np.count_nonzero(cum[:, kk - 1]))
            self.correct[kk] += float(cum[:, kk - 1].sum()) / kk
        self.r_precision += float(np.sum(cum[np.arange(b), r - 1] / r))
        self.map_at_r += float(np.sum(_average_precisions_at_r(rel, r, cum)))

    def merge(self, other: _RetrievalSums) -> None:
        for kk in self.cuts:
            self.hits[kk] += other.hits[kk]
            self.correct[kk] += other.correct[kk]
        self.r_precision += other.r_precision
        self.map_at_r += other.map_at_r


def _clustering_scores(x: np.ndarray, codes: np.ndarray, metric: str, seed: int) -> dict[str, float]:
    from sklearn.cluster import KMeans  # noqa: PLC0415
    from sklearn.metrics import adjusted_mutual_info_score, normalized_mutual_info_score  # noqa: PLC0415

    x = np.asarray(x, dtype=np.float64 if np.asarray(x).dtype == np.float64 else np.float32)
    if metric == "cosine":
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    n_clusters = int(np.unique(codes).size)
    pred = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit_predict(x)
    return {
        "nmi": float(normalized_mutual_info_score(codes, pred)),
        "ami": float(adjusted_mutual_info_score(codes, pred)),
    }


# ----------------------------------------------------------- verification
def best_threshold(distances: ArrayLike, is_same: ArrayLike) -> tuple[float, float]:
    """Distance threshold with the best pair-classification accuracy.

    A pair is predicted "same" when ``distance <= threshold``. Every distinct
    split of the sorted distances is tried (exhaustive, ``O(n log n)``); the
    returned threshold lies midway between the last distance predicted
    "same" and the next distance (so that it generalises to held-out pairs),
    is the largest distance when all pairs are predicted "same", and is just
    below the smallest distance when none is. Among equally accurate splits
    the smallest threshold wins.

    Parameters
    ----------
    distances : array-like of shape (n_pairs,)
        Lower = more similar.
    is_same : array-like of shape (n_pairs,)
        Boolean (or 0/1): True when the pair shows the same identity.

    Returns
    -------
    threshold : float
    accuracy : float
        Fraction of pairs classified correctly at ``threshold``.

    Examples
    --------
    >>> best_threshold([0.1, 0.2, 0.5, 0.9], [True, True, False, False])
    (0.35, 1.0)
    >>> best_threshold([0.1, 0.6, 0.5, 0.9], [True, True, False, False])
    (0.3, 0.75)
    """
    d, s = check_pairs(distances, is_same)
    return _best_threshold(d, s)


def _best_threshold(d: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    n = d.size
    order = np.argsort(d, kind="stable")
    ds, ss = d[order], s[order]
    uniq, first = np.unique(ds, return_index=True)
    ends = np.append(first[1:], n)  # exclusive end of each distinct value
    cum_same = np.cumsum(ss)[ends - 1]
    n_same = int(ss.sum())
    n_diff = n - n_same
    # correct = same pairs at or below + different pairs above the cut
    correct = cum_same + (n_diff - (ends - cum_same))
    correct = np.concatenate([[n_diff], correct])  # first entry: nothing "same"
    j = int(np.argmax(correct)) - 1
    if j == -1:
        thr = float(np.nextafter(uniq[0], -np.inf))
    elif j == uniq.size - 1:
        thr = float(uniq[-1])
    else:
        thr = float((uniq[j] + uniq[j + 1]) / 2.0)
        if not uniq[j] <= thr < uniq[j + 1]:
            thr = float(uniq[j])
    return thr, float(correct[j + 1] / n)


def verification_metrics(distances: ArrayLike, is_same: ArrayLike) -> dict[str, float]:
    """ROC-based verification metrics of pair distances.

    Lower distance = more similar; the ROC curve is computed by
    :func:`sklearn.metrics.roc_curve` on ``-distances``.

    * ``roc_auc``: area under the ROC curve.
    * ``eer``: equal error rate, where the false accept rate (FAR, FPR)
      equals the false reject rate (1 - TPR), linearly interpolated between
      the two ROC points around the crossing.
    * ``best_threshold``, ``accuracy``: from :func:`best_threshold`
      (predict "same" when ``distance <= threshold``).
    * ``tar_at_far_0.001``, ``tar_at_far_0.01``: the largest true accept rate
      (TPR) of an ROC operating point whose FAR is at most 1e-3 / 1e-2.

    Parameters
    ----------
    distances : array-like of shape (n_pairs,)
    is_same : array-like of shape (n_pairs,)
        Boolean (or 0/1); both classes must be present.

    Returns
    -------
    dict
        Float values keyed as above.

    Examples
    --------
    >>> m = verification_metrics([0.1, 0.3, 0.2, 0.9], [True, False, True, False])
    >>> m["roc_auc"], m["eer"], m["accuracy"], m["best_threshold"]
    (1.0, 0.0, 1.0, 0.25)
    """
    d, s = check_pairs(distances, is_same)
    roc = roc_curve(d, s)
    thr, acc = _best_threshold(d, s)
    out = {"roc_auc": roc.auc, "eer": roc.eer, "best_threshold": thr, "accuracy": acc}
    for far in (1e-3, 1e-2):
        out[f"tar_at_far_{far:g}"] = float(roc.tar[roc.far <= far].max())
    return out


@dataclass(frozen=True)
class RocCurve:
    """ROC curve of pair distances, from :func:`roc_curve`.

    Attributes
    ----------
    far : ndarray
        False accept rates (FPR), increasing from 0 to 1.
    tar : ndarray
        True accept rates (TPR) at the same operating points.
    thresholds : ndarray
        Distance threshold of each point (predict "same" when
        ``distance <= threshold``), decreasing strictness: ``-inf`` first
        (nothing accepted), then every distinct distance in increasing order.
    auc : float
        Area under the curve.
    eer : float
        Equal error rate: where FAR equals the false reject rate
        ``1 - TAR``, linearly interpolated between the two points around
        the crossing.
    """

    far: np.ndarray
    tar: np.ndarray
    thresholds: np.ndarray
    auc: float
    eer: float


def roc_curve(distances: ArrayLike, is_same: ArrayLike) -> RocCurve:
    """ROC curve, AUC and equal error rate of pair distances (lower = same).

    Computed by :func:`sklearn.metrics.roc_curve` and
    :func:`sklearn.metrics.roc_auc_score` on ``-distances`` with every
    operating point kept (``drop_intermediate=False``).

    Parameters
    ----------
    distances : array-like of shape (n_pairs,)
    is_same : array-like of shape (n_pairs,)
        Boolean (or 0/1); both classes must be present.

    Returns
    -------
    RocCurve

    Examples
    --------
    >>> roc = roc_curve([0.1, 0.4, 0.35, 0.8], [True, True, False, False])
    >>> roc.far, roc.tar
    (array([0. , 0. , 0.5, 0.5, 1. ]), array([0. , 0.5, 0.5, 1. , 1. ]))
    >>> roc.thresholds
    array([-inf, 0.1 , 0.35, 0.4 , 0.8 ])
    >>> roc.auc, roc.eer
    (0.75, 0.5)
    """
    from sklearn import metrics  # noqa: PLC0415

    d, s = check_pairs(distances, is_same)
    if s.all() or not s.any():
        raise ValueError("is_same must contain both same (True) and different (False) pairs.")
    fpr, tpr, thr = metrics.roc_curve(s, -d, drop_intermediate=False)
    return RocCurve(
        far=fpr,
        tar=tpr,
        thresholds=-thr,
        auc=float(metrics.roc_auc_score(s, -d)),
        eer=_equal_error_rate(fpr, tpr),
    )


def _equal_error_rate(fpr: np.ndarray, tpr: np.ndarray) -> float:
    diff = (1.0 - tpr) - fpr  # starts at 1, ends at -1
    i = int(np.argmax(diff <= 0))
    if i == 0:
        return float(fpr[0])
    t = diff[i - 1] / (diff[i - 1] - diff[i])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def kfold_verification_accuracy(
    distances: ArrayLike,
    is_same: ArrayLike,
    n_folds: int = 10,
    folds: ArrayLike | None = None,
) -> tuple[float, float, np.ndarray]:
    """Verification accuracy with the LFW k-fold protocol.

    For each fold the threshold is chosen by :func:`best_threshold` on the
    other folds and the accuracy is measured on the held-out fold.

    Parameters
    ----------
    distances : array-like of shape (n_pairs,)
    is_same : array-like of shape (n_pairs,)
    n_folds : int, default 10
        Number of consecutive, (nearly) equal folds when ``folds`` is None
        (LFW's pairs.txt: 10 folds of 600 consecutive pairs).
    folds : array-like of shape (n_pairs,), optional
        Fold id of each pair; then the number of folds is the number of
        distinct ids and ``n_folds`` is ignored.

    Returns
    -------
    mean : float
        Mean held-out accuracy.
    std : float
        Its standard deviation over folds (population, ``ddof=0``, as in the
        usual LFW reports).
    thresholds : ndarray of shape (n_folds,)
        Threshold used on each fold, in sorted fold-id order.

    Examples
    --------
    >>> d = [0.1, 0.9, 0.2, 0.8, 0.3, 0.7, 0.4, 0.6]
    >>> same = [True, False] * 4
    >>> mean, std, thr = kfold_verification_accuracy(d, same, n_folds=4)
    >>> mean, std, thr.shape
    (1.0, 0.0, (4,))
    """
    d, s = check_pairs(distances, is_same)
    n = d.size
    if folds is None:
        if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or not 2 <= n_folds <= n:
            raise ValueError(f"n_folds must be an int in [2, n_pairs={n}]; got {n_folds!r}.")
        fold_ids = np.arange(n) * int(n_folds) // n
    else:
        fold_ids = np.asarray(folds)
        if fold_ids.shape != (n,):
            raise ValueError(f"folds must have shape ({n},) (a fold id per pair); got shape {fold_ids.shape}.")
    uniq = np.unique(fold_ids)
    if uniq.size < 2:
        raise ValueError("folds must contain at least 2 distinct fold ids.")
    accs, thrs = [], []
    for f in uniq:
        test = fold_ids == f
        thr, _ = _best_threshold(d[~test], s[~test])
        thrs.append(thr)
        accs.append(float(np.mean((d[test] <= thr) == s[test])))
    return float(np.mean(accs)), float(np.std(accs)), np.asarray(thrs)


def hardest_errors(
    distances: ArrayLike, is_same: ArrayLike, threshold: float, k: int = 8
) -> dict[str, np.ndarray]:
    """Indices of the worst misclassified pairs at a threshold.

    Parameters
    ----------
    distances : array-like of shape (n_pairs,)
    is_same : array-like of shape (n_pairs,)
    threshold : float
        Pairs with ``distance <= threshold`` are predicted "same".
    k : int, default 8
        At most ``k`` pairs of each kind.

    Returns
    -------
    dict
        ``false_accepts``: different-identity pairs predicted "same", smallest
        distance (most wrong) first; ``false_rejects``: same-identity pairs
        predicted "different", largest distance first (int64 index arrays,
        ties by smaller index); ``n_false_accepts``, ``n_false_rejects``: the
        total counts (ints).

    Examples
    --------
    >>> e = hardest_errors([0.1, 0.2, 0.9, 0.8, 0.3], [False, True, True, True, False], 0.5, k=2)
    >>> e["false_accepts"], e["false_rejects"]
    (array([0, 4]), array([2, 3]))
    """
    d, s = check_pairs(distances, is_same)
    k = check_int(k, "k", minimum=0)
    thr = float(threshold)
    if not np.isfinite(thr):
        raise ValueError(f"threshold must be a finite float; got {threshold!r}.")
    fa = np.flatnonzero(~s & (d <= thr))
    fr = np.flatnonzero(s & (d > thr))
    fa = fa[np.argsort(d[fa], kind="stable")]
    fr = fr[np.argsort(-d[fr], kind="stable")]
    return {
        "false_accepts": fa[:k].astype(np.int64),
        "false_rejects": fr[:k].astype(np.int64),
        "n_false_accepts": int(fa.size),
        "n_false_rejects": int(fr.size),
    }


# ------------------------------------------------------------ calibration
CALIBRATION_METRICS = ("precision", "far", "f1")


@dataclass(frozen=True)
class Calibration:
    """A calibrated distance threshold and the curve it was read from.

    Pairs with ``distance <= threshold`` are predicted "same". The curve has
    one point per distinct distance ``t`` (ascending): the operating point
    of the rule ``distance <= t``.

    Attributes
    ----------
    threshold : float
        The chosen threshold.
    metric : str
        ``"precision"``, ``"far"`` or ``"f1"``.
    target : float or None
        The requested value (``None``: F1 maximised).
    value : float
        The metric's value at ``threshold``.
    thresholds : ndarray
        The distinct distances, ascending.
    precision, recall, far, f1 : ndarray
        Precision, recall (true accept rate), false accept rate and F1 at
        each threshold.
    """

    threshold: float
    metric: str
    target: float | None
    value: float
    thresholds: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    far: np.ndarray
    f1: np.ndarray


def calibrate(
    distances: ArrayLike,
    is_same: ArrayLike,
    target: float | None = None,
    metric: str = "f1",
) -> Calibration:
    """Choose a distance threshold for a target precision, false accept rate or F1.

    Every distinct distance ``t`` is a candidate (predict "same" when
    ``distance <= t``); the rule depends on ``metric``:

    * ``"far"``: the largest ``t`` whose false accept rate (different pairs
      accepted / different pairs) is at most ``target``, i.e. the highest
      recall at that FAR ("1 in 1,000 false accepts": ``target=1e-3``). If
      even the smallest distance is a false accept above the budget, the
      threshold lies just below it (nothing accepted, FAR 0).
    * ``"precision"``: the largest ``t`` whose precision (same pairs among
      the accepted) is at least ``target`` (highest recall at that
      precision); an error if no ``t`` reaches it.
    * ``"f1"``: with ``target=None``, the ``t`` of maximal F1 (the smallest
      of equal ones); with a target, the largest ``t`` whose F1 reaches it.

    Calibrate on validation pairs, then apply the threshold to new ones
    (for example in :class:`dmlkeras.index.Matcher`).

    Parameters
    ----------
    distances : array-like of shape (n_pairs,)
        Lower = more similar (for similarities, pass ``-similarity`` and
        negate the threshold).
    is_same : array-like of shape (n_pairs,)
        Boolean (or 0/1); both classes must be present.
    target : float, optional
        In ``[0, 1]``; required for ``"precision"`` and ``"far"``.
    metric : {"f1", "precision", "far"}, default "f1"

    Returns
    -------
    Calibration
        ``threshold``, ``value`` and the curve (``thresholds``,
        ``precision``, ``recall``, ``far``, ``f1``).

    Raises
    ------
    ValueError
        Bad shapes, one class only, a missing or out-of-range target, or a
        precision that no threshold reaches.

    Examples
    --------
    >>> d = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    >>> same = [True, True, False, True, False, False]
    >>> c = calibrate(d, same, target=0.0, metric="far")
    >>> c.threshold, c.value, float(c.recall[1])
    (0.2, 0.0, 0.6666666666666666)
    >>> c = calibrate(d, same, target=0.7, metric="precision")
    >>> c.threshold, c.value
    (0.4, 0.75)
    >>> calibrate(d, same).threshold  # best F1 = 6/7
    0.4
    """
    if metric not in CALIBRATION_METRICS:
        raise ValueError(f"metric must be one of {CALIBRATION_METRICS}; got {metric!r}.")
    if target is None:
        if metric != "f1":
            raise ValueError(f"metric={metric!r} needs a target in [0, 1] (e.g. target=1e-3 for 'far').")
    else:
        target = check_float(target, "target", minimum=0.0, maximum=1.0)
    d, s = check_pairs(distances, is_same)
    n_same = int(s.sum())
    n_diff = s.size - n_same
    if n_same == 0 or n_diff == 0:
        raise ValueError("is_same must contain both same (True) and different (False) pairs.")
    order = np.argsort(d, kind="stable")
    ds, ss = d[order], s[order]
    uniq, first = np.unique(ds, return_index=True)
    accepted = np.append(first[1:], ds.size)  # pairs with distance <= each threshold
    tp = np.cumsum(ss)[accepted - 1]
    fp = accepted - tp
    precision = tp / accepted
    recall = tp / n_same
    far = fp / n_diff
    f1 = 2.0 * tp / (accepted + n_same)
    curve = {"precision": precision, "far": far, "f1": f1}[metric]
    if metric == "far":
        ok = np.flatnonzero(far <= target)
    elif target is None:
        ok = np.array([int(np.argmax(f1))])
    else:
        ok = np.flatnonzero(curve >= target)
    if ok.size:
        j = int(ok[-1])
        threshold, value = float(uniq[j]), float(curve[j])
    elif metric == "far":
        threshold, value = float(np.nextafter(uniq[0], -np.inf)), 0.0
    else:
        best = int(np.argmax(curve))
        raise ValueError(
            f"No threshold reaches {metric} >= {target}; the best is {curve[best]:.4g} at threshold {uniq[best]:.4g}."
        )
    return Calibration(
        threshold=threshold,
        metric=metric,
        target=target,
        value=value,
        thresholds=uniq,
        precision=precision,
        recall=recall,
        far=far,
        f1=f1,
    )


# ----------------------------------------------------------------- ranking
def _positives_matrix(positives: Any, shape: tuple[int, int]) -> np.ndarray:
    n_users, n_items = shape
    if isinstance(positives, np.ndarray) and positives.shape == shape:
        return positives.astype(bool)
    if isinstance(positives, np.ndarray) and positives.ndim == 2 and positives.dtype == bool:
        raise ValueError(f"a boolean positives matrix must have shape {shape} like scores; got {positives.shape}.")
    if len(positives) != n_users:
        raise ValueError(
            f"positives must be a boolean ndarray of shape {shape} or a sequence of "
            f"{n_users} index arrays (one per user); got length {len(positives)}."
        )
    mat = np.zeros(shape, dtype=bool)
    for u, items in enumerate(positives):
        items = np.asarray(items, dtype=np.int64).ravel()
        if items.size and (items.min() < 0 or items.max() >= n_items):
            raise ValueError(f"positives[{u}] has item indices outside [0, {n_items - 1}].")
        mat[u, items] = True
    return mat


def ranking_metrics(scores: ArrayLike, positives: Any, k: int = 10) -> dict[str, float]:
    """Top-k recommendation metrics over a full item ranking.

    Each user's items are ranked by decreasing score (ties: smaller item
    index first). With ``rel(i)`` = 1 when the ``i``-th ranked item is
    positive and ``P`` the user's number of positives, averaged over users
    with at least one positive:

    * ``hit_rate_at_k``: 1 if a positive is in the top ``k``.
    * ``recall_at_k``: ``(sum_{i<=k} rel(i)) / P``.
    * ``ndcg_at_k``: ``DCG / IDCG`` with ``DCG = sum_{i<=k} rel(i) / log2(i + 1)``
      and IDCG the DCG of a perfect ranking (``min(k, P)`` positives first).
    * ``mrr``: ``1 / rank`` of the first positive in the full (untruncated)
      ranking.

    Items to leave out of the ranking (e.g. training interactions) should be
    given a score of ``-np.inf``.

    Parameters
    ----------
    scores : array-like of shape (n_users, n_items)
        Higher = better; ``-inf`` allowed, NaN not.
    positives : ndarray of shape (n_users, n_items) or sequence of arrays
        Either a relevance matrix with the shape of ``scores`` (nonzero /
        True = relevant) or, per user, an array of relevant item indices.
    k : int, default 10

    Returns
    -------
    dict
        ``hit_rate_at_k``, ``recall_at_k``, ``ndcg_at_k``, ``mrr`` (floats)
        and ``n_users`` (users with at least one positive).

    Examples
    --------
    >>> scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.3]])
    >>> m = ranking_metrics(scores, [[2], [0, 1]], k=2)
    >>> m["hit_rate_at_k"], m["recall_at_k"], m["mrr"]
    (1.0, 0.75, 0.75)
    >>> round(m["ndcg_at_k"], 4)  # (1/log2(3) + 1/(1 + 1/log2(3))) / 2
    0.622
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.size == 0:
        raise ValueError(f"scores must be a 2-D array of shape (n_users, n_items); got shape {s.shape}.")
    if np.isnan(s).any() or np.isposinf(s).any():
        raise ValueError("scores contains NaN or +inf (use -inf to exclude items).")
    n_users, n_items = s.shape
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n_items:
        raise ValueError(f"k must be an int in [1, n_items={n_items}]; got {k!r}.")
    pos = _positives_matrix(positives, s.shape)
    n_pos = pos.sum(axis=1)
    users = np.flatnonzero(n_pos > 0)
    if users.size == 0:
        raise ValueError("No user has a positive item.")
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    idcg_table = np.cumsum(discounts)
    totals = {"hit_rate_at_k": 0.0, "recall_at_k": 0.0, "ndcg_at_k": 0.0, "mrr": 0.0}
    chunk = max(1, (1 << 22) // n_items)
    items = np.arange(n_items)
    for start in range(0, users.size, chunk):
        u = users[start : start + chunk]
        su, pu, npu = s[u], pos[u], n_pos[u]
        top = np.argsort(-su, axis=1, kind="stable")[:, :k]
        rel = np.take_along_axis(pu, top, axis=1)
        hits = rel.sum(axis=1)
        totals["hit_rate_at_k"] += float(np.count_nonzero(hits))
        totals["recall_at_k"] += float(np.sum(hits / npu))
        dcg = rel @ discounts
        totals["ndcg_at_k"] += float(np.sum(dcg / idcg_table[np.minimum(npu, k) - 1]))
        best = np.where(pu, su, -np.inf).max(axis=1)
        at_best = pu & (su == best[:, None])
        first = np.argmax(at_best, axis=1)
        ahead = (su > best[:, None]).sum(axis=1) + ((su == best[:, None]) & (items[None, :] < first[:, None])).sum(axis=1)
        totals["mrr"] += float(np.sum(1.0 / (ahead + 1)))
    out = {name: value / users.size for name, value in totals.items()}
    out["n_users"] = int(users.size)
    return out


def sampled_ranking_metrics(pos_scores: ArrayLike, neg_scores: ArrayLike, k: int = 10) -> dict[str, float]:
    """NCF leave-one-out metrics: one held-out positive vs sampled negatives.

    For user ``u`` the held-out positive's rank (0-based) is the number of
    its sampled negatives scoring at least as high: ``rank = #{neg >= pos}``
    (ties count against the positive, so a constant model does not score
    perfectly). Averaged over users:

    * ``hit_rate_at_k``: ``rank < k``.
    * ``ndcg_at_k``: ``1 / log2(rank + 2)`` if ``rank < k`` else 0.
    * ``mrr``: ``1 / (rank + 1)``.

    Parameters
    ----------
    pos_scores : array-like of shape (n_users,)
        Score of each user's held-out positive item (higher = better).
    neg_scores : array-like of shape (n_users, n_negatives)
        Scores of its sampled negatives (e.g. 99 in He et al., 2017).
    k : int, default 10

    Returns
    -------
    dict
        ``hit_rate_at_k``, ``ndcg_at_k``, ``mrr``.

    Examples
    --------
    >>> m = sampled_ranking_metrics([0.9, 0.5], [[0.1, 0.2, 0.3], [0.6, 0.7, 0.1]], k=2)
    >>> m["hit_rate_at_k"], round(m["ndcg_at_k"], 4), round(m["mrr"], 4)
    (0.5, 0.5, 0.6667)
    """
    p = np.asarray(pos_scores, dtype=np.float64)
    neg = np.asarray(neg_scores, dtype=np.float64)
    if p.ndim != 1 or p.size == 0:
        raise ValueError(f"pos_scores must be a non-empty 1-D array of shape (n_users,); got shape {p.shape}.")
    if neg.ndim != 2 or neg.shape[0] != p.size or neg.shape[1] == 0:
        raise ValueError(
            f"neg_scores must have shape ({p.size}, n_negatives) with n_negatives >= 1; got shape {neg.shape}."
        )
    if np.isnan(p).any() or np.isnan(neg).any():
        raise ValueError("pos_scores and neg_scores must not contain NaN.")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive int; got {k!r}.")
    rank = (neg >= p[:, None]).sum(axis=1)
    hit = rank < k
    return {
        "hit_rate_at_k": float(hit.mean()),
        "ndcg_at_k": float(np.mean(np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0))),
        "mrr": float(np.mean(1.0 / (rank + 1.0))),
    }


def correlation_metrics(predicted: ArrayLike, gold: ArrayLike) -> dict[str, float]:
    """Pearson and Spearman correlation (e.g. STS similarity vs gold scores).

    Parameters
    ----------
    predicted : array-like of shape (n,)
        Predicted similarities (e.g. cosine similarity of embedding pairs).
    gold : array-like of shape (n,)
        Gold scores, ``n >= 2``.

    Returns
    -------
    dict
        ``{"pearson": r, "spearman": rho}`` from :func:`scipy.stats.pearsonr`
        and :func:`scipy.stats.spearmanr` (NaN when an input is constant).

    Examples
    --------
    >>> m = correlation_metrics([0.1, 0.4, 0.35, 0.8], [1.0, 2.0, 3.0, 4.0])
    >>> round(m["pearson"], 3), round(m["spearman"], 3)
    (0.913, 0.8)
    """
    from scipy import stats  # noqa: PLC0415

    p = float_vector(predicted, "predicted")
    g = float_vector(gold, "gold")
    if p.shape != g.shape or p.size < 2:
        raise ValueError(f"predicted and gold must have the same shape (n,), n >= 2; got {p.shape} and {g.shape}.")
    if np.ptp(p) == 0 or np.ptp(g) == 0:
        return {"pearson": float("nan"), "spearman": float("nan")}
    return {
        "pearson": float(stats.pearsonr(p, g).statistic),
        "spearman": float(stats.spearmanr(p, g).statistic),
    }


class CorrelationDifference(NamedTuple):
    """A difference of two correlations and its paired bootstrap standard error (see :func:`correlation_difference`)."""

    difference: float
    se: float


def correlation_difference(
    predicted_a: ArrayLike,
    predicted_b: ArrayLike,
    gold: ArrayLike,
    method: str = "spearman",
    n_boot: int = 1000,
    seed: int = 0,
) -> CorrelationDifference:
    """How much better ``predicted_a`` correlates with ``gold`` than ``predicted_b``, with a paired bootstrap error.

    The difference is ``corr(predicted_a, gold) - corr(predicted_b, gold)``
    (Spearman or Pearson, as :func:`correlation_metrics`). Each of ``n_boot``
    replicates draws ``n`` items with replacement, the *same* items for both
    predictions (the paired bootstrap), and recomputes the difference; the
    standard error is the standard deviation of the replicates
    (``ddof=1``). Ranks are recomputed in every replicate, ties averaged.

    Parameters
    ----------
    predicted_a, predicted_b : array-like of shape (n,)
        Two methods' predicted similarities of the same ``n`` pairs.
    gold : array-like of shape (n,)
        Gold scores, ``n >= 2``.
    method : {"spearman", "pearson"}, default "spearman"
    n_boot : int, default 1000
        Number of replicates (>= 2).
    seed : int, default 0
        Seeds the resampling (``numpy.random.default_rng``).

    Returns
    -------
    CorrelationDifference
        ``(difference, se)``; NaN when an input is constant.

    Raises
    ------
    ValueError
        On inputs of different shapes, fewer than 2 items, NaN or infinite
        values, an unknown ``method`` or a bad ``n_boot`` / ``seed``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> gold = rng.random(500)
    >>> good, noisy = gold + 0.1 * rng.standard_normal(500), gold + 0.3 * rng.standard_normal(500)
    >>> difference, se = correlation_difference(good, noisy, gold)
    >>> round(difference, 2), bool(difference > 3 * se)
    (0.26, True)
    """
    from scipy import stats  # noqa: PLC0415

    if method not in ("spearman", "pearson"):
        raise ValueError(f'method must be "spearman" or "pearson"; got {method!r}.')
    a = float_vector(predicted_a, "predicted_a")
    b = float_vector(predicted_b, "predicted_b")
    g = float_vector(gold, "gold")
    if not (a.shape == b.shape == g.shape) or g.size < 2:
        raise ValueError(
            "predicted_a, predicted_b and gold must have the same shape (n,), n >= 2; "
            f"got {a.shape}, {b.shape} and {g.shape}."
        )
    n_boot = check_int(n_boot, "n_boot", minimum=2)
    rng = np.random.default_rng(check_seed(seed))
    draws = rng.integers(0, g.size, size=(n_boot, g.size))
    samples = [np.vstack([x, x[draws]]) for x in (a, b, g)]   # row 0: the data itself, then the replicates
    if method == "spearman":
        samples = [stats.rankdata(x, axis=1) for x in samples]
    a_s, b_s, g_s = samples
    differences = _rowwise_correlation(a_s, g_s) - _rowwise_correlation(b_s, g_s)
    return CorrelationDifference(float(differences[0]), float(np.std(differences[1:], ddof=1)))


def _rowwise_correlation(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``x`` with the same row of ``y`` (NaN for a constant row)."""
    x = x - x.mean(axis=1, keepdims=True)
    y = y - y.mean(axis=1, keepdims=True)
    denominator = np.sqrt(np.sum(x * x, axis=1) * np.sum(y * y, axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, np.sum(x * y, axis=1) / np.where(denominator > 0, denominator, 1.0), np.nan)


def compare_runs(
    runs: Any,
    metric: str,
    method: str = "method",
    seed: str = "seed",
    higher_is_better: bool = True,
    ties_within: float = 2.0,
) -> Any:
    """Mean and standard error of a metric over seeds, and which methods tie with the best.

    ``runs`` has one row per (method, seed). The best method has the best
    mean; every method's gap to it is *paired* (the difference on the same
    seed, i.e. the same batches and initial weights), and a method is tied
    with the best when its mean gap is at most ``ties_within`` standard
    errors of that gap (the standard error is ``std(ddof=1) / sqrt(n)``
    over the seeds both have; NaN with one seed, when only the best itself
    counts as tied).

    Parameters
    ----------
    runs : pandas.DataFrame or mapping of columns
        Columns ``method``, ``seed`` and ``metric``; each (method, seed) once.
    metric : str
        The column to compare.
    method, seed : str, default "method", "seed"
        Names of the method and seed columns.
    higher_is_better : bool, default True
        False for metrics where smaller is better (errors, times).
    ties_within : float, default 2.0
        Standard errors of the paired gap within which a method ties.

    Returns
    -------
    pandas.DataFrame
        Indexed by method, best first: ``mean``, ``se``, ``n`` (seeds),
        ``gap`` (best minus this method, oriented so that a positive gap
        means worse), ``gap_se`` and ``tied`` (bool).

    Raises
    ------
    ValueError
        If a column is missing, a (method, seed) pair repeats, or
        ``ties_within`` is negative.

    Examples
    --------
    >>> runs = {"method": ["a", "a", "a", "b", "b", "b"], "seed": [0, 1, 2] * 2,
    ...         "map": [0.50, 0.55, 0.60, 0.49, 0.53, 0.61]}
    >>> table = compare_runs(runs, "map")
    >>> table.index.tolist(), round(float(table.loc["b", "gap"]), 4), bool(table.loc["b", "tied"])
    (['a', 'b'], 0.0067, True)
    """
    import pandas as pd  # noqa: PLC0415

    frame = pd.DataFrame(runs)
    missing = [c for c in (method, seed, metric) if c not in frame.columns]
    if missing:
        raise ValueError(f"runs must have the columns {method!r}, {seed!r} and {metric!r}; missing {missing}.")
    if frame.duplicated([method, seed]).any():
        raise ValueError(f"runs must have one row per ({method!r}, {seed!r}); some pairs repeat.")
    ties_within = check_float(ties_within, "ties_within", minimum=0.0)
    sign = 1.0 if higher_is_better else -1.0
    values = frame.pivot(index=seed, columns=method, values=metric).astype(float)
    n = values.notna().sum()
    table = pd.DataFrame({"mean": values.mean(), "se": values.std(ddof=1) / np.sqrt(n), "n": n})
    best = (sign * table["mean"]).idxmax()
    gaps = sign * (values[[best]].to_numpy() - values)
    table["gap"] = gaps.mean()
    table["gap_se"] = gaps.std(ddof=1) / np.sqrt(gaps.notna().sum())
    table["tied"] = (table["gap"] <= ties_within * table["gap_se"]) | (table.index == best)
    table = table.sort_values("mean", ascending=not higher_is_better)
    table.index.name = method
    return table


def describe_comparison(table: Any, name: str | None = None, digits: int = 3) -> str:
    """One line that states what a :func:`compare_runs` table shows: the best, and each gap with its interval.

    Each other method is given with its paired gap to the best (negative:
    worse, when higher is better) +- the gap's standard error, and a verdict:
    ``tied`` (within the table's tie rule), ``real`` (outside it), or ``no
    interval`` (one seed: the gap has no standard error, so nothing can be
    called real). The lesson of a sweep or an ablation is this line, read
    off the data rather than asserted.

    Parameters
    ----------
    table : pandas.DataFrame
        The output of :func:`compare_runs` (best first; columns ``mean``,
        ``se``, ``gap``, ``gap_se``, ``tied``).
    name : str, optional
        What was compared; default: the table's index name.
    digits : int, default 3
        Decimals of the numbers.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        If a column of :func:`compare_runs` is missing or the table is empty.

    Examples
    --------
    >>> runs = {"lr": [1e-3] * 3 + [1e-2] * 3 + [1e-4] * 3, "seed": [0, 1, 2] * 3,
    ...         "map": [0.50, 0.55, 0.60, 0.49, 0.53, 0.61, 0.30, 0.36, 0.40]}
    >>> print(describe_comparison(compare_runs(runs, "map", method="lr")))
    lr: best 0.001 (0.550 +- 0.029); 0.01 -0.007 +- 0.009 (tied); 0.0001 -0.197 +- 0.003 (real)
    """
    columns = ("mean", "se", "gap", "gap_se", "tied")
    if not hasattr(table, "columns") or any(c not in table.columns for c in columns):
        raise ValueError(f"table must be the output of compare_runs, with the columns {list(columns)}.")
    if len(table) == 0:
        raise ValueError("table is empty: nothing was compared.")
    digits = check_int(digits, "digits", minimum=0)
    label = name if name is not None else (table.index.name or "comparison")
    best = table.index[0]
    parts = [f"{label}: best {best} ({table.loc[best, 'mean']:.{digits}f} +- {table.loc[best, 'se']:.{digits}f})"]
    for value in table.index[1:]:
        row = table.loc[value]
        if not np.isfinite(row["gap_se"]):
            verdict = "no interval"
        else:
            verdict = "tied" if bool(row["tied"]) else "real"
        parts.append(f"{value} {-row['gap']:+.{digits}f} +- {row['gap_se']:.{digits}f} ({verdict})")
    return "; ".join(parts)


# ---------------------------------------------------------------- probes of a frozen embedding
def _probe_inputs(train_embeddings, train_labels, test_embeddings, test_labels):
    x_train = embedding_array(train_embeddings, "train_embeddings").astype(np.float64)
    x_test = embedding_array(test_embeddings, "test_embeddings").astype(np.float64)
    y_train = label_vector(train_labels, "train_labels")
    y_test = label_vector(test_labels, "test_labels")
    if len(y_train) != len(x_train) or len(y_test) != len(x_test):
        raise ValueError(
            f"Expected one label per embedding; got {len(x_train)} train embeddings and {len(y_train)} labels, "
            f"{len(x_test)} test embeddings and {len(y_test)} labels."
        )
    if x_train.shape[1] != x_test.shape[1]:
        raise ValueError(
            f"train and test embeddings must have the same dimension; got {x_train.shape[1]} and {x_test.shape[1]}."
        )
    return x_train, y_train, x_test, y_test


def knn_accuracy(
    train_embeddings: ArrayLike,
    train_labels: ArrayLike,
    test_embeddings: ArrayLike,
    test_labels: ArrayLike,
    k: int = 1,
    metric: str = "cosine",
) -> float:
    """Accuracy of the k-nearest-neighbour classifier on a frozen embedding.

    Each test embedding takes the most frequent label among its ``k``
    nearest training embeddings (:class:`dmlkeras.index.NearestNeighbors`);
    a tie goes to the tied label whose neighbour is nearest. With ``k=1``
    this is the 1-NN accuracy of the self-supervised literature.

    Parameters
    ----------
    train_embeddings, test_embeddings : array-like of shape (n, d) and (q, d)
    train_labels, test_labels : array-like of int, shape (n,) and (q,)
    k : int, default 1
        ``1 <= k <= n``.
    metric : {"euclidean", "cosine", "dot"}, default "cosine"

    Returns
    -------
    float
        The fraction of test samples classified correctly.

    Raises
    ------
    ValueError
        On mismatched shapes, NaN embeddings or ``k`` out of range.

    Examples
    --------
    >>> import numpy as np
    >>> train = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    >>> knn_accuracy(train, [0, 0, 1], np.array([[1.0, 0.05], [0.1, 1.0]]), [0, 1])
    1.0
    >>> knn_accuracy(train, [0, 0, 1], np.array([[0.1, 1.0]]), [1], k=3)   # outvoted
    0.0
    """
    x_train, y_train, x_test, y_test = _probe_inputs(train_embeddings, train_labels, test_embeddings, test_labels)
    k = check_int(k, "k")
    if k > len(x_train):
        raise ValueError(f"k must be at most the number of training embeddings ({len(x_train)}); got {k}.")
    indices = NearestNeighbors(metric=metric).fit(x_train).search(x_test, k=k, return_distance=False)
    neighbour_labels = y_train[indices]
    correct = 0
    for row, truth in zip(neighbour_labels, y_test):
        values, counts = np.unique(row, return_counts=True)
        tied = set(values[counts == counts.max()].tolist())
        predicted = next(label for label in row.tolist() if label in tied)  # nearest among the tied
        correct += int(predicted == truth)
    return correct / len(y_test)


def label_subset(labels: ArrayLike, fraction: float, seed: int = 0) -> np.ndarray:
    """Indices of a stratified ``fraction`` of labelled samples, at least one per class (sorted).

    Each class keeps ``max(1, round(fraction * size))`` of its samples, drawn
    with ``numpy.random.default_rng(seed)``: the "1 % / 10 % of the labels"
    protocol of semi-supervised evaluation.

    Examples
    --------
    >>> label_subset([0, 0, 0, 0, 1, 1, 1, 1, 1, 1], 0.5).size
    5
    >>> label_subset([0, 0, 1], 0.01)   # one per class at least
    array([1, 2])
    """
    y = label_vector(labels)
    fraction = check_float(fraction, "fraction", minimum=0.0, maximum=1.0, strict=False)
    if fraction == 0.0:
        raise ValueError("fraction must be in (0, 1]; got 0.0.")
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        size = max(1, int(round(fraction * len(members))))
        chosen.append(rng.choice(members, size=size, replace=False))
    return np.sort(np.concatenate(chosen))


def linear_probe_accuracy(
    train_embeddings: ArrayLike,
    train_labels: ArrayLike,
    test_embeddings: ArrayLike,
    test_labels: ArrayLike,
    label_fraction: float = 1.0,
    C: float = 1.0,
    max_iter: int = 1000,
    seed: int = 0,
) -> float:
    """Test accuracy of a linear classifier trained on a frozen embedding (the linear probe).

    The embeddings are standardised with the training set's mean and
    variance, then scikit-learn's ``LogisticRegression(C=C)`` (multinomial,
    L-BFGS) is fitted on a stratified ``label_fraction`` of the training
    samples (:func:`label_subset`), and scored on the test set.

    Parameters
    ----------
    train_embeddings, test_embeddings : array-like of shape (n, d) and (q, d)
    train_labels, test_labels : array-like of int, shape (n,) and (q,)
    label_fraction : float, default 1.0
        In (0, 1]: the fraction of training labels used (e.g. 0.01, 0.1, 1.0).
    C : float, default 1.0
        Inverse L2 regularisation strength, > 0.
    max_iter : int, default 1000
    seed : int, default 0
        Seeds the label subset.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        On mismatched shapes, NaN embeddings, a fraction outside (0, 1], or a
        training subset with a single class.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.arange(40) % 2
    >>> x = rng.normal(size=(40, 3)) + 3.0 * y[:, None]
    >>> linear_probe_accuracy(x[:20], y[:20], x[20:], y[20:])
    1.0
    """
    from sklearn.linear_model import LogisticRegression

    x_train, y_train, x_test, y_test = _probe_inputs(train_embeddings, train_labels, test_embeddings, test_labels)
    C = check_float(C, "C", minimum=0.0, strict=True)
    rows = label_subset(y_train, label_fraction, seed=seed)
    x_fit, y_fit = x_train[rows], y_train[rows]
    if np.unique(y_fit).size < 2:
        raise ValueError("The linear probe needs at least two classes among the training labels; got one.")
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    classifier = LogisticRegression(C=C, max_iter=check_int(max_iter, "max_iter"))
    classifier.fit((x_fit - mean) / std, y_fit)
    return float(np.mean(classifier.predict((x_test - mean) / std) == y_test))


def effective_rank(embeddings: ArrayLike) -> float:
    """Effective rank of a set of embeddings: how many dimensions they really use.

    The RankMe measure (Garrido et al., "RankMe: Assessing the downstream
    performance of pretrained self-supervised representations by their
    rank", ICML 2023), computed on the centred embeddings: with
    ``s_1 >= ... >= s_r`` the singular values of ``x - mean(x)`` and
    ``p_k = s_k / sum(s)``, it is ``exp(-sum_k p_k log p_k)``. It lies in
    ``[1, min(n - 1, d)]``: ``d`` for isotropic embeddings, 1 when they lie on
    a line. A value far below ``d`` is *dimensional collapse*, which a
    positive distance gap does not reveal (docs/ssl.md).

    Parameters
    ----------
    embeddings : array-like of shape (n, d)
        ``n >= 2`` finite embeddings.

    Returns
    -------
    float
        The effective rank; 0.0 when all embeddings are equal (complete collapse).

    Raises
    ------
    ValueError
        For an array that is not ``(n, d)`` with ``n >= 2``, or with NaN or infinite values.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> round(effective_rank(rng.normal(size=(5000, 8))), 1)   # isotropic: about d
    8.0
    >>> line = rng.normal(size=(100, 1)) * np.ones((1, 8))
    >>> round(effective_rank(line), 6)                          # on a line
    1.0
    >>> effective_rank(np.ones((10, 4)))                       # one point
    0.0
    """
    x = embedding_array(embeddings, "embeddings").astype(np.float64)
    if x.shape[0] < 2:
        raise ValueError(f"embeddings must have at least 2 rows; got shape {x.shape}.")
    centred = x - x.mean(axis=0)
    singular = np.linalg.svd(centred, compute_uv=False)
    total = singular.sum()
    if total <= np.finfo(np.float64).eps * max(1.0, float(np.abs(x).max())) * x.size:
        return 0.0
    p = singular[singular > 0] / total
    return float(np.exp(-np.sum(p * np.log(p))))


# ------------------------------------------------- intervals and clustering
class BootstrapMean(NamedTuple):
    """A mean and its bootstrap standard error (see :func:`bootstrap_mean`)."""

    mean: float
    se: float


def bootstrap_mean(
    values: ArrayLike,
    groups: ArrayLike | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> BootstrapMean:
    """The mean of per-item values and its bootstrap standard error, optionally resampling whole groups.

    Each of ``n_boot`` replicates draws, with replacement, as many items as
    there are (``groups=None``), or as many groups as there are, each with
    all its items (the *cluster* bootstrap: for example every probe photo
    of a person together, since photos of one person are not independent);
    the replicate's statistic is the mean over the drawn items. The
    standard error is the standard deviation of the replicates (``ddof=1``).

    For a difference between two methods on the same items, pass the
    per-item differences (``hits_a - hits_b``): the paired bootstrap, whose
    interval is much narrower than the two separate ones combined.

    Parameters
    ----------
    values : array-like of shape (n,)
        Per-item values (booleans count as 0/1): hits of rank-1
        identification, detections, differences of two methods, ...
        NaN or infinite values are an error.
    groups : array-like of shape (n,), optional
        The group of each item (any labels); ``None``: every item alone.
    n_boot : int, default 1000
        Number of replicates (>= 2).
    seed : int, default 0
        Seeds the resampling (``numpy.random.default_rng``).

    Returns
    -------
    BootstrapMean
        ``(mean, se)``: the mean of ``values`` and its standard error.

    Raises
    ------
    ValueError
        On an empty or non-finite ``values``, ``groups`` of another length,
        or a bad ``n_boot`` / ``seed``.

    Examples
    --------
    >>> import numpy as np
    >>> hits = np.array([1, 1, 0, 1, 0, 1, 1, 1], dtype=bool)
    >>> mean, se = bootstrap_mean(hits, n_boot=2000)
    >>> float(mean), round(se, 2)   # about sqrt(p (1 - p) / n) = 0.15
    (0.75, 0.15)
    >>> people = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    >>> round(bootstrap_mean(hits, groups=people).se, 2)
    0.12
    """
    v = float_vector(values, "values")
    n_boot = check_int(n_boot, "n_boot", minimum=2)
    rng = np.random.default_rng(check_seed(seed))
    if groups is None:
        sums, counts = v, np.ones_like(v)
    else:
        g = np.asarray(groups)
        if g.shape != v.shape:
            raise ValueError(f"groups must have shape {v.shape} like values; got shape {g.shape}.")
        _, codes = np.unique(g, return_inverse=True)
        codes = codes.ravel()
        sums = np.bincount(codes, weights=v)
        counts = np.bincount(codes).astype(np.float64)
    draws = rng.integers(0, sums.size, size=(n_boot, sums.size))
    replicates = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    return BootstrapMean(float(v.mean()), float(replicates.std(ddof=1)))


VERIFICATION_BOOTSTRAP_METRICS = ("accuracy", "roc_auc", "eer", "tar_at_far_0.01")


def _verification_values(d: np.ndarray, s: np.ndarray, threshold: float) -> np.ndarray:
    roc = roc_curve(d, s)
    return np.array([np.mean((d <= threshold) == s), roc.auc, roc.eer, roc.tar[roc.far <= 1e-2].max()])


def verification_bootstrap(
    distances: ArrayLike,
    is_same: ArrayLike,
    threshold: float,
    baseline: tuple[ArrayLike, float] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, BootstrapMean]:
    """Verification metrics of test pairs with bootstrap standard errors, or a paired gap over a baseline.

    The metrics are those of :func:`verification_metrics` that a protocol
    reports: ``accuracy`` at a **given** ``threshold`` (chosen beforehand on
    other pairs, e.g. validation pairs), ``roc_auc``, ``eer`` and
    ``tar_at_far_0.01``. Each of ``n_boot`` replicates resamples the pairs
    with replacement, separately among same and different pairs (so every
    replicate keeps both classes and their counts, as a fixed protocol such
    as LFW's 500 + 500 pairs does), and recomputes the metrics; the standard
    error is the standard deviation of the replicates (``ddof=1``).

    With ``baseline=(distances_b, threshold_b)``, distances of another
    method on the **same** pairs, every value is the difference
    ``method - baseline`` computed on the same resampled pairs (the paired
    bootstrap), whose error is much smaller than the two separate ones
    combined. (For ``eer`` lower is better, so a better method has a
    negative gap.)

    Parameters
    ----------
    distances : array-like of shape (n_pairs,)
        Lower = more similar; NaN or infinite values are an error.
    is_same : array-like of shape (n_pairs,)
        Boolean (or 0/1); both classes must be present.
    threshold : float
        Pairs with ``distance <= threshold`` are predicted "same".
    baseline : tuple (distances, threshold), optional
        The baseline's distances on the same pairs (same shape) and its
        threshold.
    n_boot : int, default 1000
        Number of replicates (>= 2).
    seed : int, default 0
        Seeds the resampling (``numpy.random.default_rng``).

    Returns
    -------
    dict of str to BootstrapMean
        Keys ``"accuracy"``, ``"roc_auc"``, ``"eer"``, ``"tar_at_far_0.01"``;
        each ``(mean, se)``: the value on all pairs (or the gap over the
        baseline) and its bootstrap standard error.

    Raises
    ------
    ValueError
        On bad shapes, non-finite values, one class only, a non-finite
        threshold, or a bad ``n_boot`` / ``seed``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> same = np.repeat([True, False], 500)
    >>> good = rng.normal(np.where(same, 0.0, 2.0))       # well separated
    >>> poor = rng.normal(np.where(same, 0.0, 0.5))
    >>> m = verification_bootstrap(good, same, threshold=1.0)
    >>> round(m["accuracy"].mean, 3), round(m["accuracy"].se, 3)   # about sqrt(p (1 - p) / 1000)
    (0.833, 0.012)
    >>> gap = verification_bootstrap(good, same, 1.0, baseline=(poor, 0.25))
    >>> bool(gap["roc_auc"].mean > 3 * gap["roc_auc"].se), bool(gap["eer"].mean < 0)
    (True, True)
    """
    d, s = check_pairs(distances, is_same)
    if s.all() or not s.any():
        raise ValueError("is_same must contain both same (True) and different (False) pairs.")
    threshold = check_float(threshold, "threshold")
    n_boot = check_int(n_boot, "n_boot", minimum=2)
    rng = np.random.default_rng(check_seed(seed))
    if baseline is not None:
        if not isinstance(baseline, (tuple, list)) or len(baseline) != 2:
            raise ValueError("baseline must be a tuple (distances, threshold) of the baseline method.")
        d_b, _ = check_pairs(baseline[0], s)
        t_b = check_float(baseline[1], "baseline threshold")

    def values(rows: np.ndarray) -> np.ndarray:
        v = _verification_values(d[rows], s[rows], threshold)
        if baseline is not None:
            v = v - _verification_values(d_b[rows], s[rows], t_b)
        return v

    same_rows, diff_rows = np.flatnonzero(s), np.flatnonzero(~s)
    replicates = np.array([
        values(np.concatenate([rng.choice(same_rows, same_rows.size), rng.choice(diff_rows, diff_rows.size)]))
        for _ in range(n_boot)
    ])
    point = values(np.arange(d.size))
    se = replicates.std(axis=0, ddof=1)
    return {name: BootstrapMean(float(point[i]), float(se[i])) for i, name in enumerate(VERIFICATION_BOOTSTRAP_METRICS)}


def clustering_metrics(labels_true: ArrayLike, labels_pred: ArrayLike) -> dict[str, float]:
    """How well a clustering recovers identities: NMI, AMI and pairwise precision / recall / F1.

    * ``nmi``, ``ami``: scikit-learn's normalized and adjusted mutual
      information (arithmetic normalisation); AMI is 0 for a random
      clustering and 1 for a perfect one, whatever the number of clusters.
    * ``pairwise_precision``: among the pairs of items put in one cluster,
      the fraction of the same identity (NaN when every cluster is a
      single item: no pair is claimed).
    * ``pairwise_recall``: among the pairs of the same identity, the
      fraction put in one cluster (NaN when every identity has one item).
    * ``pairwise_f1``: their harmonic mean, ``2 TP / (claimed + true pairs)``
      (0 when no claimed pair is right).
    * ``n_clusters``: the number of predicted clusters.

    Parameters
    ----------
    labels_true : array-like of shape (n,)
        The identities (any labels comparable with ``==``).
    labels_pred : array-like of shape (n,)
        The cluster of each item (any labels).

    Returns
    -------
    dict of str to float

    Raises
    ------
    ValueError
        If the two label vectors are not 1-D of the same length (>= 2).

    Examples
    --------
    >>> truth = ["ann", "ann", "ann", "bob", "bob", "cy"]
    >>> found = [0, 0, 1, 1, 1, 2]      # one of Ann's photos joined Bob's cluster
    >>> m = clustering_metrics(truth, found)
    >>> m["pairwise_precision"], m["pairwise_recall"], m["n_clusters"]   # 2 of 4 claimed pairs, 2 of 4 true pairs
    (0.5, 0.5, 3.0)
    >>> clustering_metrics(truth, ["a", "a", "a", "b", "b", "c"])["ami"]
    1.0
    """
    from sklearn.metrics import adjusted_mutual_info_score, normalized_mutual_info_score  # noqa: PLC0415

    t, p = np.asarray(labels_true), np.asarray(labels_pred)
    if t.ndim != 1 or t.size < 2:
        raise ValueError(f"labels_true must have shape (n,) with n >= 2; got shape {t.shape}.")
    if p.shape != t.shape:
        raise ValueError(f"labels_pred must have shape {t.shape} like labels_true; got shape {p.shape}.")
    _, ti = np.unique(t, return_inverse=True)
    _, pi = np.unique(p, return_inverse=True)
    ti, pi = ti.ravel(), pi.ravel()
    joint = np.unique(ti.astype(np.int64) * (pi.max() + 1) + pi, return_counts=True)[1]

    def pairs(counts: np.ndarray) -> float:
        counts = counts.astype(np.float64)
        return float(np.sum(counts * (counts - 1.0) / 2.0))

    tp, true_pairs, claimed = pairs(joint), pairs(np.bincount(ti)), pairs(np.bincount(pi))
    return {
        "nmi": float(normalized_mutual_info_score(ti, pi)),
        "ami": float(adjusted_mutual_info_score(ti, pi)),
        "pairwise_precision": tp / claimed if claimed else float("nan"),
        "pairwise_recall": tp / true_pairs if true_pairs else float("nan"),
        "pairwise_f1": 2.0 * tp / (claimed + true_pairs) if claimed + true_pairs else float("nan"),
        "n_clusters": float(pi.max() + 1),
    }


class OpenSetSplit(NamedTuple):
    """Positions of the gallery, the mated and the non-mated probes (see :func:`open_set_split`)."""

    gallery: np.ndarray
    mated: np.ndarray
    non_mated: np.ndarray


def open_set_split(labels: ArrayLike, seed: int = 0) -> OpenSetSplit:
    """Split labelled items into a gallery of one item per identity and probes (identification protocols).

    Every identity with two items or more enrols one of them, drawn at
    random, in the gallery; its other items are the **mated** probes (their
    identity is in the gallery: closed-set identification, rank-k accuracy).
    Identities with a single item are the **non-mated** probes (nobody to
    find: open-set identification must answer "unknown"), as in the LFW
    open-set protocol of Best-Rowden et al. ("Unconstrained face
    recognition: identifying a person of interest from a media collection",
    IEEE TIFS 2014).

    Parameters
    ----------
    labels : array-like of shape (n,)
        The identity of each item (any labels comparable with ``==``).
    seed : int, default 0
        Seeds the choice of each identity's gallery item.

    Returns
    -------
    OpenSetSplit
        ``(gallery, mated, non_mated)``: sorted int64 positions into
        ``labels``, disjoint, together all of them.

    Raises
    ------
    ValueError
        If ``labels`` is not 1-D and non-empty, or no identity has two items.

    Examples
    --------
    >>> split = open_set_split(["ann", "bob", "ann", "cy", "ann", "bob"])
    >>> len(split.gallery), len(split.mated), split.non_mated.tolist()
    (2, 3, [3])
    >>> sorted(["ann", "bob", "ann", "cy", "ann", "bob"][i] for i in split.gallery)
    ['ann', 'bob']
    """
    y = np.asarray(labels)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"labels must have shape (n,) with n >= 1; got shape {y.shape}.")
    rng = np.random.default_rng(check_seed(seed))
    _, codes, counts = np.unique(y, return_inverse=True, return_counts=True)
    codes = codes.ravel()
    if counts.max() < 2:
        raise ValueError("No identity has two items: there is nothing to identify (every item would be non-mated).")
    # One random item per identity: the smallest random key within each identity.
    keys = rng.random(y.size)
    order = np.lexsort((keys, codes))
    first = order[np.searchsorted(codes[order], np.arange(counts.size))]
    several = counts[codes] >= 2
    in_gallery = np.zeros(y.size, dtype=bool)
    in_gallery[first[counts >= 2]] = True
    return OpenSetSplit(
        gallery=np.flatnonzero(in_gallery),
        mated=np.flatnonzero(several & ~in_gallery),
        non_mated=np.flatnonzero(~several),
    )
