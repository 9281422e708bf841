"""Exact k-nearest-neighbour search on NumPy embeddings.

:class:`NearestNeighbors` is the one neighbour search used by
:mod:`dmlkeras.evaluation`. It takes NumPy arrays (never a model) and has two
backends with the same API and the same results:

``backend="numpy"``
    Brute force in blocks of queries: for each block the ``(block, n_gallery)``
    distance matrix is computed with one matrix product, the ``k`` smallest
    are selected with :func:`numpy.partition` (linear time), and only those
    ``k`` are sorted. Memory is bounded by the block, so a 100k x 100k search
    never materialises the full distance matrix.
``backend="faiss"``
    ``faiss.IndexFlatL2`` (euclidean) or ``faiss.IndexFlatIP`` on
    L2-normalised vectors (cosine): also exact, usually several times faster.
    Needs ``pip install faiss-cpu``.

Conventions shared by both backends:

* ``metric="euclidean"``: true (not squared) distance
  :math:`\\lVert q - g \\rVert_2`, computed as
  :math:`\\sqrt{\\max(0, \\lVert q\\rVert^2 + \\lVert g\\rVert^2 - 2 q\\cdot g)}`.
* ``metric="cosine"``: :math:`1 - \\cos(q, g)` in ``[0, 2]``. As in
  :mod:`dmlkeras.distances`, an all-zero row has cosine 0 (distance 1).
* Ties are broken deterministically: results are sorted by
  ``(distance, gallery index)``, so among equally distant items the smaller
  gallery index comes first, and a tie at the k-th place keeps the smaller
  indices.
* The numpy backend computes in float64 when the fitted embeddings are
  float64 and in float32 otherwise; faiss always computes in float32.
  Distances are returned as float32 and indices as int64.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["NearestNeighbors", "METRICS", "BACKENDS"]

METRICS = ("euclidean", "cosine")
BACKENDS = ("numpy", "faiss")

# Elements of one (block, n_gallery) distance block of the numpy backend.
# About 9 bytes per element are alive at once (distances, a partitioned copy
# and a boolean mask), i.e. ~150 MiB for float32.
_BLOCK_ELEMENTS = 1 << 24
_EPSILON = 1e-12


def _import_faiss() -> Any:
    try:
        import faiss  # noqa: PLC0415
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "backend='faiss' needs the faiss package: pip install faiss-cpu "
            "(or use backend='numpy')."
        ) from err
    return faiss


def _as_2d(x: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (n, d); got shape {arr.shape}."
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must have at least one row and one column; got shape {arr.shape}.")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name} must be numeric (float or int); got dtype {arr.dtype}.")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return arr


def _normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, _EPSILON).astype(x.dtype)


class NearestNeighbors:
    """Exact k-nearest-neighbour search with deterministic tie-breaking.

    Parameters
    ----------
    metric : {"euclidean", "cosine"}, default "euclidean"
        Euclidean distance (not squared) or cosine distance ``1 - cos``.
    backend : {"numpy", "faiss"}, default "numpy"
        Brute-force NumPy in query blocks, or faiss flat (exact) indexes.
    block_size : int or None, default None
        Number of queries per block. ``None`` picks it so that a block of the
        distance matrix holds about 16.7 million entries (``2**24``), i.e.
        ~150 MiB of working memory for the numpy backend whatever the sizes.

    Attributes
    ----------
    n_gallery_ : int
        Number of fitted (gallery) embeddings.
    n_features_ : int
        Their dimension.

    Examples
    --------
    >>> import numpy as np
    >>> gallery = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [1.0, 0.0]])
    >>> nn = NearestNeighbors().fit(gallery)
    >>> distances, indices = nn.search(np.array([[0.9, 0.0]]), k=3)
    >>> indices  # the two copies of (1, 0) tie: smaller index first
    array([[1, 3, 0]])
    >>> np.round(distances, 3)
    array([[0.1, 0.1, 0.9]], dtype=float32)
    >>> nn.search(gallery, k=1, exclude_self=True)[1].ravel()
    array([1, 3, 0, 1])
    """

    def __init__(
        self,
        metric: str = "euclidean",
        backend: str = "numpy",
        block_size: int | None = None,
    ) -> None:
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}; got {metric!r}.")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}.")
        if block_size is not None and (
            isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1
        ):
            raise ValueError(f"block_size must be a positive int or None; got {block_size!r}.")
        if backend == "faiss":
            _import_faiss()
        self.metric = metric
        self.backend = backend
        self.block_size = None if block_size is None else int(block_size)
        self._gallery: np.ndarray | None = None
        self._raw_gallery: np.ndarray | None = None

    # ------------------------------------------------------------------ fit
    def fit(self, embeddings: ArrayLike) -> NearestNeighbors:
        """Index the gallery embeddings.

        Parameters
        ----------
        embeddings : array-like of shape (n, d)
            Gallery vectors (finite floats or ints).

        Returns
        -------
        NearestNeighbors
            ``self``.

        Raises
        ------
        ValueError
            If ``embeddings`` is not a finite 2-D ``(n, d)`` array.

        Examples
        --------
        >>> import numpy as np
        >>> NearestNeighbors(metric="cosine").fit(np.eye(3)).n_gallery_
        3
        """
        emb = _as_2d(embeddings, "embeddings")
        dtype = np.float64 if (self.backend == "numpy" and emb.dtype == np.float64) else np.float32
        self._dtype = dtype
        self._raw_gallery = np.array(emb, dtype=dtype, copy=True)
        gallery = self._raw_gallery
        if self.metric == "cosine":
            gallery = _normalize(gallery)
        self._gallery = np.ascontiguousarray(gallery)
        self._gallery_sq = np.einsum("ij,ij->i", self._gallery, self._gallery)
        self.n_gallery_ = int(emb.shape[0])
        self.n_features_ = int(emb.shape[1])
        if self.backend == "faiss":
            faiss = _import_faiss()
            index = faiss.IndexFlatL2(self.n_features_) if self.metric == "euclidean" else faiss.IndexFlatIP(self.n_features_)
            index.add(self._gallery)
            self._faiss_index = index
        return self

    # --------------------------------------------------------------- search
    def search(
        self,
        queries: ArrayLike,
        k: int,
        exclude_self: bool = False,
        *,
        exclude: ArrayLike | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Find the ``k`` nearest gallery items of each query.

        Parameters
        ----------
        queries : array-like of shape (q, d)
            Query vectors, same ``d`` as the gallery.
        k : int
            Number of neighbours, ``1 <= k <= n_gallery`` (``n_gallery - 1``
            when an item is excluded).
        exclude_self : bool, default False
            The queries ARE the fitted gallery, in the same order (checked):
            row ``i`` never returns gallery index ``i`` (leave-one-out), even
            when other items are exact duplicates of it.
        exclude : array-like of shape (q,), optional
            Keyword-only generalisation of ``exclude_self``: the gallery index
            to drop from each row, ``-1`` for none. Used to evaluate
            leave-one-out in chunks (``exclude=np.arange(start, stop)``).

        Returns
        -------
        distances : ndarray of shape (q, k), float32
            Sorted ascending.
        indices : ndarray of shape (q, k), int64
            Gallery indices; among equal distances the smaller index first.

        Raises
        ------
        ValueError
            Not fitted, wrong shapes, ``k`` out of range, or
            ``exclude_self=True`` with queries that are not the gallery.

        Examples
        --------
        >>> import numpy as np
        >>> nn = NearestNeighbors().fit(np.array([[0.0], [3.0], [1.0]]))
        >>> d, i = nn.search(np.array([[0.0], [2.5]]), k=2)
        >>> i
        array([[0, 2],
               [1, 2]])
        >>> d
        array([[0. , 1. ],
               [0.5, 1.5]], dtype=float32)
        """
        if self._gallery is None:
            raise ValueError("This NearestNeighbors is not fitted: call fit(embeddings) first.")
        q = _as_2d(queries, "queries")
        if q.shape[1] != self.n_features_:
            raise ValueError(
                f"queries must have shape (q, {self.n_features_}) like the fitted "
                f"embeddings; got shape {q.shape}."
            )
        n = self.n_gallery_
        if exclude_self and exclude is not None:
            raise ValueError("Pass either exclude_self=True or exclude=..., not both.")
        excl: np.ndarray | None = None
        if exclude_self:
            if q.shape != self._raw_gallery.shape or not np.array_equal(
                q.astype(self._dtype, copy=False), self._raw_gallery
            ):
                raise ValueError(
                    "exclude_self=True requires queries to be the fitted embeddings "
                    f"(same shape {self._raw_gallery.shape} and order); pass exclude=... "
                    "to drop other indices."
                )
            excl = np.arange(n, dtype=np.int64)
        elif exclude is not None:
            excl = np.asarray(exclude)
            if excl.shape != (q.shape[0],) or not np.issubdtype(excl.dtype, np.integer):
                raise ValueError(
                    f"exclude must be an int array of shape ({q.shape[0]},) (one gallery "
                    f"index per query, -1 for none); got {excl.dtype} array of shape {excl.shape}."
                )
            excl = excl.astype(np.int64)
            if np.any((excl < -1) | (excl >= n)):
                raise ValueError(f"exclude values must be in [-1, {n - 1}].")
            if not np.any(excl >= 0):
                excl = None
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise ValueError(f"k must be an int; got {k!r}.")
        k = int(k)
        k_max = n - 1 if excl is not None else n
        if not 1 <= k <= k_max:
            raise ValueError(
                f"k must be in [1, {k_max}] (gallery of {n} items"
                f"{', one excluded per query' if excl is not None else ''}); got k={k}."
            )

        qw = np.asarray(q, dtype=self._dtype)
        if self.metric == "cosine":
            qw = _normalize(qw)
        qw = np.ascontiguousarray(qw)
        n_q = qw.shape[0]
        block = self.block_size or max(1, _BLOCK_ELEMENTS // n)
        out_d = np.empty((n_q, k), dtype=np.float32)
        out_i = np.empty((n_q, k), dtype=np.int64)
        for start in range(0, n_q, block):
            stop = min(n_q, start + block)
            ex = None if excl is None else excl[start:stop]
            if self.backend == "numpy":
                d, i = self._numpy_block(qw[start:stop], k, ex)
            else:
                d, i = self._faiss_block(qw[start:stop], k, ex)
            out_d[start:stop] = d
            out_i[start:stop] = i
        return out_d, out_i

    # ------------------------------------------------------------ internals
    def _distance_block(self, qb: np.ndarray) -> np.ndarray:
        """Monotone distance surrogate for a block: squared euclidean or 1 - cos."""
        d = qb @ self._gallery.T
        if self.metric == "euclidean":
            d *= -2.0
            d += np.einsum("ij,ij->i", qb, qb)[:, None]
            d += self._gallery_sq[None, :]
        else:
            np.subtract(1.0, d, out=d)
        return d

    def _finish(self, d: np.ndarray) -> np.ndarray:
        d = np.maximum(d, 0.0)
        if self.metric == "euclidean":
            d = np.sqrt(d)
        return d.astype(np.float32)

    def _numpy_block(
        self, qb: np.ndarray, k: int, excl: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        d = self._distance_block(qb)
        b, n = d.shape
        if excl is not None:
            rows = np.flatnonzero(excl >= 0)
            d[rows, excl[rows]] = np.inf
        # k-th smallest value of each row (linear-time selection).
        kth = np.partition(d, k - 1, axis=1)[:, k - 1]
        mask = d <= kth[:, None]
        counts = mask.sum(axis=1)
        tied = np.flatnonzero(counts > k)
        if tied.size:
            # Keep every item strictly below the k-th value, then the
            # smallest indices among those equal to it.
            sub = d[tied]
            below = sub < kth[tied, None]
            need = k - below.sum(axis=1)
            equal = sub == kth[tied, None]
            keep = below | (equal & (np.cumsum(equal, axis=1, dtype=np.int32) <= need[:, None]))
            mask[tied] = keep
        _, cols = np.nonzero(mask)  # row-major: per row, ascending indices
        idx = cols.reshape(b, k).astype(np.int64)
        dist = np.take_along_axis(d, idx, axis=1)
        order = np.argsort(dist, axis=1, kind="stable")  # stable: index breaks ties
        idx = np.take_along_axis(idx, order, axis=1)
        dist = np.take_along_axis(dist, order, axis=1)
        return self._finish(dist), idx

    def _faiss_block(
        self, qb: np.ndarray, k: int, excl: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        n = self.n_gallery_
        need = k + (1 if excl is not None else 0)
        kp = min(n, need + 1)  # one more, to see whether a tie crosses the cut
        sims, idx = self._faiss_index.search(np.ascontiguousarray(qb, dtype=np.float32), kp)
        if self.metric == "euclidean":
            d = sims.astype(np.float64)
        else:
            d = 1.0 - sims.astype(np.float64)
        # faiss orders ties arbitrarily; rows whose (need)-th value also
        # appears at the last retrieved place may hide equal items beyond it:
        # recompute those rows exactly with the numpy routine.
        if kp < n:
            crossing = d[:, kp - 1] <= d[:, need - 1]
        else:
            crossing = np.zeros(d.shape[0], dtype=bool)
        if excl is not None:
            d[idx == excl[:, None]] = np.inf
        order = np.lexsort((idx, d), axis=1)[:, :k]
        out_i = np.take_along_axis(idx, order, axis=1).astype(np.int64)
        out_d = self._finish(np.take_along_axis(d, order, axis=1))
        rows = np.flatnonzero(crossing)
        if rows.size:
            ex = None if excl is None else excl[rows]
            out_d[rows], out_i[rows] = self._numpy_block(qb[rows], k, ex)
        return out_d, out_i

    def __repr__(self) -> str:
        return (
            f"NearestNeighbors(metric={self.metric!r}, backend={self.backend!r}, "
            f"block_size={self.block_size!r})"
        )
