"""Nearest-neighbour search on NumPy embeddings: exact, approximate, persistent.

* :class:`NearestNeighbors` is the one exact search of dmlkeras (used by
  :mod:`dmlkeras.evaluation`).
* :class:`Index` holds vectors with labels and payloads, searches them
  exactly (NumPy or FAISS flat) or approximately (FAISS factory strings
  such as ``"HNSW32"``, ``"IVF256,Flat"``, ``"IVF256,PQ16"``), and saves to /
  loads from a checksummed directory.
* :class:`Matcher` answers open-set identification ("who is this, or
  nobody?") from an index and a calibrated distance threshold
  (:func:`dmlkeras.evaluation.calibrate`).

Everything takes NumPy arrays, never a model. The exact backends:

``backend="numpy"``
    Brute force in blocks of queries: for each block the ``(block, n_gallery)``
    distance matrix is one matrix product (the norms ride in two extra
    columns, so no pass over the block follows it); then, a few rows at a
    time (so that they stay in the CPU cache), every item gets one int64 key
    (the order-preserving bits of its float32 distance, then its index), the
    ``k`` smallest keys are selected with :func:`numpy.partition` (linear
    time; the index in the key breaks ties) and only those ``k`` are sorted.
    Memory is bounded by the block, so a 100k x 100k search never
    materialises the full distance matrix.
``backend="faiss"``
    ``faiss.IndexFlatL2`` (euclidean) or ``faiss.IndexFlatIP`` (cosine on
    L2-normalised vectors, dot): also exact. Needs ``pip install faiss-cpu``.

Conventions shared by both backends:

* ``metric="euclidean"``: true (not squared) distance
  :math:`\\lVert q - g \\rVert_2`, computed as
  :math:`\\sqrt{\\max(0, \\lVert q\\rVert^2 + \\lVert g\\rVert^2 - 2 q\\cdot g)}`.
* ``metric="cosine"``: :math:`1 - \\cos(q, g)` in ``[0, 2]``. As in
  :mod:`dmlkeras.distances`, an all-zero row has cosine 0 (distance 1).
* ``metric="dot"``: :math:`-q \\cdot g`, so that lower is closer here too
  (maximum inner product search).
* Ties are broken deterministically: results are sorted by
  ``(distance, gallery index)``, so among equally distant items the smaller
  gallery index comes first, and a tie at the k-th place keeps the smaller
  indices.
* The numpy backend computes in float64 when the fitted embeddings are
  float64 and in float32 otherwise; faiss always computes in float32.
  Distances are returned as float32 and indices as int64.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from dmlkeras._validation import embedding_array, check_float, check_int

__all__ = ["NearestNeighbors", "Index", "Neighbors", "Matcher", "METRICS", "BACKENDS", "VOTES"]

METRICS = ("euclidean", "cosine", "dot")
BACKENDS = ("numpy", "faiss")

# Elements of one (block, n_gallery) distance block of the numpy backend:
# 64 MiB of float32 distances (the keys are made a piece at a time); a
# float64 gallery also holds a partitioned copy and a mask, ~290 MiB.
_BLOCK_ELEMENTS = 1 << 24
# Elements of the pieces of a block that are selected from at once (~1 MiB
# of float32 per piece: a few rows that stay in the CPU cache).
_PIECE_ELEMENTS = 1 << 18
_EPSILON = 1e-12
# The selection key of (+0.0, column 0): keys of distances at or below 0 are smaller.
_ZERO_KEY = 1 << 32


def _import_faiss() -> Any:
    try:
        import faiss  # noqa: PLC0415
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "backend='faiss' needs the faiss package: pip install faiss-cpu "
            "(or use backend='numpy')."
        ) from err
    return faiss


def _normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, _EPSILON).astype(x.dtype)


class NearestNeighbors:
    """Exact k-nearest-neighbour search with deterministic tie-breaking.

    Parameters
    ----------
    metric : {"euclidean", "cosine", "dot"}, default "euclidean"
        Euclidean distance (not squared), cosine distance ``1 - cos`` or
        the negative inner product.
    backend : {"numpy", "faiss"}, default "numpy"
        Brute-force NumPy in query blocks, or faiss flat (exact) indexes.
    block_size : int or None, default None
        Number of queries per block. ``None`` picks it so that a block of the
        distance matrix holds about 16.7 million entries (``2**24``), i.e.
        ~70 MiB of working memory for float32 with the numpy backend (~290 MiB
        for float64) whatever the sizes.

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
        self._workspace: dict[str, np.ndarray] = {}

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
        emb = embedding_array(embeddings, "embeddings")
        dtype = np.float64 if (self.backend == "numpy" and emb.dtype == np.float64) else np.float32
        self._dtype = dtype
        raw = np.asarray(emb, dtype=dtype)
        # The gallery is held once, as the first columns of the product's matrix (_augment); the
        # embeddings as given are kept apart only when they differ from it (cosine normalises).
        self._product_gallery = self._augment(_normalize(raw) if self.metric == "cosine" else raw, query=False)
        self._gallery = self._product_gallery[:, : emb.shape[1]]
        self._raw_gallery = np.array(raw, copy=True) if self.metric == "cosine" else self._gallery
        self.n_gallery_ = int(emb.shape[0])
        self.n_features_ = int(emb.shape[1])
        self._columns = np.arange(self.n_gallery_, dtype=np.int64)  # the low half of the selection keys
        if self.backend == "faiss":
            faiss = _import_faiss()
            index = faiss.IndexFlatL2(self.n_features_) if self.metric == "euclidean" else faiss.IndexFlatIP(self.n_features_)
            index.add(np.ascontiguousarray(self._gallery))
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
        return_distance: bool = True,
    ) -> tuple[np.ndarray, np.ndarray] | np.ndarray:
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
        return_distance : bool, default True
            Keyword-only. ``False`` returns the indices alone (as
            scikit-learn's ``kneighbors``), which saves converting and
            storing the distances: what a ranking metric needs.

        Returns
        -------
        distances : ndarray of shape (q, k), float32
            Sorted ascending. Only when ``return_distance=True``.
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
        >>> nn.search(np.array([[2.5]]), k=2, return_distance=False)
        array([[1, 2]])
        """
        if self._gallery is None:
            raise ValueError("This NearestNeighbors is not fitted: call fit(embeddings) first.")
        q = embedding_array(queries, "queries")
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
        out_d = np.empty((n_q, k), dtype=np.float32) if return_distance else None
        out_i = np.empty((n_q, k), dtype=np.int64)
        search_block = self._numpy_block if self.backend == "numpy" else self._faiss_block
        for start in range(0, n_q, block):
            stop = min(n_q, start + block)
            search_block(
                qw[start:stop],
                k,
                None if excl is None else excl[start:stop],
                out_i[start:stop],
                None if out_d is None else out_d[start:stop],
            )
        return (out_d, out_i) if return_distance else out_i

    # ------------------------------------------------------------ internals
    def _buffer(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A reused work array (fresh large arrays cost page faults on every block)."""
        size = math.prod(shape)
        buf = self._workspace.get(name)
        if buf is None or buf.size < size or buf.dtype != dtype:
            buf = self._workspace[name] = np.empty(size, dtype=dtype)
        return buf[:size].reshape(shape)

    def _augment(self, x: np.ndarray, query: bool) -> np.ndarray:
        """Rows whose (query x gallery) inner product is the distance surrogate itself.

        Squared euclidean ``|q|^2 + |g|^2 - 2 q.g`` is ``[-2q, |q|^2, 1] .
        [g, 1, |g|^2]``, cosine ``1 - q.g`` (normalised rows) is ``[-q, 1] .
        [g, 1]`` and ``-q.g`` is ``(-q) . g``: the one matrix product of a
        block gives the distances, with no pass over the block after it. The
        gallery's rows start with the gallery itself.
        """
        ones = np.ones((x.shape[0], 1), dtype=x.dtype)
        if self.metric == "euclidean":
            sq = np.einsum("ij,ij->i", x, x)[:, None]
            parts = [x * -2.0, sq, ones] if query else [x, ones, sq]  # -2q is exact: a power of 2
        elif self.metric == "cosine":
            parts = [-x, ones] if query else [x, ones]
        else:
            parts = [-x] if query else [x]
        return np.concatenate(parts, axis=1)

    def _distance_block(self, qb: np.ndarray) -> np.ndarray:
        """Distance surrogate of a block: squared euclidean, 1 - cos or -dot (monotone in the distance)."""
        d = self._buffer("distances", (qb.shape[0], self.n_gallery_), self._dtype)
        np.matmul(self._augment(qb, query=True), self._product_gallery.T, out=d)
        return d

    def _finish(self, d: np.ndarray, out: np.ndarray) -> None:
        """Write the distances of the surrogates ``d`` (any float dtype; overwritten) into ``out`` (float32)."""
        if self.metric == "euclidean":
            np.sqrt(np.maximum(d, 0.0, out=d), out=out)
        elif self.metric == "cosine":
            np.maximum(d, 0.0, out=out)
        else:
            np.copyto(out, d, casting="same_kind")

    def _numpy_block(
        self, qb: np.ndarray, k: int, excl: np.ndarray | None, out_i: np.ndarray, out_d: np.ndarray | None
    ) -> None:
        """Write the sorted k nearest of the queries ``qb`` into ``out_i`` (and their distances into ``out_d``)."""
        d = self._distance_block(qb)
        b, n = d.shape
        # The selection runs on a few rows at a time, which stay in the CPU
        # cache across the passes over them.
        rows_per_piece = max(1, _PIECE_ELEMENTS // n)
        for start in range(0, b, rows_per_piece):
            stop = min(b, start + rows_per_piece)
            piece = d[start:stop]
            if excl is not None:
                ex = excl[start:stop]
                rows = np.flatnonzero(ex >= 0)
                piece[rows, ex[rows]] = np.inf
            self._select(piece, k, out_i[start:stop], None if out_d is None else out_d[start:stop])

    def _select(self, d: np.ndarray, k: int, out_i: np.ndarray, out_d: np.ndarray | None) -> None:
        """Write the columns of the k smallest of each row of d, sorted by (value, column), and their distances."""
        if d.dtype == np.float32:
            self._select_keys(d, k, out_i, out_d)
            return
        b, n = d.shape
        # k-th smallest value of each row (linear-time selection).
        part = self._buffer("partitioned", d.shape, d.dtype)
        np.copyto(part, d)
        part.partition(k - 1, axis=1)
        kth = part[:, k - 1].copy()
        mask = np.less_equal(d, kth[:, None], out=self._buffer("mask", d.shape, np.bool_))
        flat = np.flatnonzero(mask)  # row-major: per row, ascending indices
        if flat.size != b * k:
            # Ties at the k-th value: keep every item strictly below it,
            # then the smallest indices among those equal to it.
            tied = np.flatnonzero(np.count_nonzero(mask, axis=1) > k)
            sub = d[tied]
            below = sub < kth[tied, None]
            need = k - below.sum(axis=1)
            equal = sub == kth[tied, None]
            mask[tied] = below | (equal & (np.cumsum(equal, axis=1, dtype=np.int32) <= need[:, None]))
            flat = np.flatnonzero(mask)
        flat = flat.reshape(b, k)
        idx = flat - (np.arange(b, dtype=np.int64) * n)[:, None]
        dist = d.reshape(-1)[flat]
        order = np.argsort(dist, axis=1, kind="stable")  # stable: index breaks ties
        out_i[...] = np.take_along_axis(idx, order, axis=1)
        if out_d is not None:
            self._finish(np.take_along_axis(dist, order, axis=1), out_d)

    def _select_keys(self, d: np.ndarray, k: int, out_i: np.ndarray, out_d: np.ndarray | None) -> None:
        """:meth:`_select` for float32: select and sort one int64 key per item.

        The key packs the order-preserving integer image of the float32
        distance in its high half and the column in its low half, so keys
        are distinct and their order is (distance, column): one partition
        keeps the k smallest, ties at the k-th value already broken by the
        smaller column, and one sort of those k orders them.
        """
        keys = self._buffer("keys", d.shape, np.int64)
        self._keys(self._image(d), keys)
        if k < d.shape[1]:
            keys.partition(k - 1, axis=1)
        top = keys[:, :k]
        top.sort(axis=1)
        if self.metric != "dot":
            bits = d.view(np.int32)
            for row in np.flatnonzero(top[:, 0] < _ZERO_KEY):
                self._clamp_row(bits[row], keys[row], k)
        self._unpack(top, out_i, out_d)

    def _image(self, d: np.ndarray) -> np.ndarray:
        """The order-preserving int32 image of float32 surrogates ``d`` (a ``-0.0`` in d may become ``+0.0``).

        Non-negative float32 bits order as the values do. A squared
        distance or 1 - cos is below 0 by rounding only (0 after _finish):
        the keys of those are fixed after the sort, in the rare rows that
        have them (:meth:`_clamp_row`). Negative inner products are mapped
        by flipping their magnitude bits.
        """
        bits = d.view(np.int32)
        if self.metric != "dot":
            return bits
        # A BLAS that starts a sum with its first product can return -0.0 (OpenBLAS starts at +0.0);
        # -0.0 + 0.0 is +0.0, and the keys would order -0.0 before +0.0.
        np.add(d, 0.0, out=d)
        image = self._buffer("image", d.shape, np.int32)
        np.right_shift(bits, 31, out=image)  # -1 where negative, else 0
        np.bitwise_and(image, np.int32(0x7FFFFFFF), out=image)
        np.bitwise_xor(image, bits, out=image)  # flips the magnitude bits of negative values
        return image

    def _keys(self, image: np.ndarray, out: np.ndarray) -> None:
        """Write the selection keys of rows of int32 distance images (:meth:`_image`) into ``out`` (int64)."""
        np.left_shift(image, 32, out=out, dtype=np.int64)
        np.bitwise_or(out, self._columns, out=out)

    def _unpack(self, top: np.ndarray, out_i: np.ndarray, out_d: np.ndarray | None) -> None:
        """Write the columns of sorted keys ``top`` into ``out_i`` and their distances into ``out_d``."""
        np.bitwise_and(top, np.int64(0xFFFFFFFF), out=out_i)
        if out_d is None:
            return
        image = out_d.view(np.int32)
        np.right_shift(top, 32, out=image, casting="unsafe")  # the high half: fits in int32
        if self.metric == "dot":
            image ^= (image >> 31) & np.int32(0x7FFFFFFF)  # the bit map is its own inverse
        self._finish(out_d, out_d)

    def _clamp_row(self, bits: np.ndarray, keys: np.ndarray, k: int) -> None:
        """Redo the k sorted keys of a row that has distances at or below 0 (``-0.0``, rounding).

        Those distances are 0 after :meth:`_finish`, where ties go by
        column; their keys are the only ones below the key of ``(+0.0, 0)``
        and come first. When fewer than ``k``, they are all selected: their
        keys become their columns (the key of ``(+0.0, column)``), already
        below every other. Otherwise the selection itself is redone with
        the distances clamped to 0.
        """
        top = keys[:k]
        if top[-1] < _ZERO_KEY:
            self._keys(np.maximum(bits, 0), keys)
            if k < keys.size:
                keys.partition(k - 1)
            top.sort()
            return
        at_zero = int(np.searchsorted(top, _ZERO_KEY))
        top[:at_zero] = np.sort(top[:at_zero] & np.int64(0xFFFFFFFF))

    def _faiss_block(
        self, qb: np.ndarray, k: int, excl: np.ndarray | None, out_i: np.ndarray, out_d: np.ndarray | None
    ) -> None:
        """:meth:`_numpy_block` with faiss's flat index; rows where a tie crosses the cut are recomputed by numpy."""
        n = self.n_gallery_
        need = k + (1 if excl is not None else 0)
        kp = min(n, need + 1)  # one more, to see whether a tie crosses the cut
        sims, idx = self._faiss_index.search(np.ascontiguousarray(qb, dtype=np.float32), kp)
        if self.metric == "euclidean":
            d = sims.astype(np.float64)
        elif self.metric == "cosine":
            d = 1.0 - sims.astype(np.float64)
        else:
            d = -sims.astype(np.float64)
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
        out_i[...] = np.take_along_axis(idx, order, axis=1)
        if out_d is not None:
            self._finish(np.take_along_axis(d, order, axis=1), out_d)
        rows = np.flatnonzero(crossing)
        if rows.size:
            fixed_i = np.empty((rows.size, k), dtype=np.int64)
            fixed_d = None if out_d is None else np.empty((rows.size, k), dtype=np.float32)
            self._numpy_block(qb[rows], k, None if excl is None else excl[rows], fixed_i, fixed_d)
            out_i[rows] = fixed_i
            if out_d is not None:
                out_d[rows] = fixed_d

    def __repr__(self) -> str:
        return (
            f"NearestNeighbors(metric={self.metric!r}, backend={self.backend!r}, "
            f"block_size={self.block_size!r})"
        )


# ------------------------------------------------------------------ Index
FORMAT = "dmlkeras.index"
FORMAT_VERSION = 1
_MANIFEST = "manifest.json"


class Neighbors(NamedTuple):
    """What :meth:`Index.search` returns (a named tuple: unpack it or use the names).

    Attributes
    ----------
    distances : ndarray of shape (q, k), float32
        Ascending (for ``metric="dot"``: the negative inner product).
        ``inf`` where an approximate index found fewer than ``k`` items.
    indices : ndarray of shape (q, k), int64
        Positions in the index (the order of :meth:`Index.add`); ``-1``
        where fewer than ``k`` were found.
    labels : ndarray of shape (q, k) or None
        The labels of the neighbours, ``None`` when the index has none.
        When some neighbour is missing (``-1``) it is an object array with
        ``None`` there.
    payloads : ndarray of shape (q, k, ...), list of lists, or None
        The payloads of the neighbours: an array when they were added as
        an array, else one list per query (``None`` for missing items).
    """

    distances: np.ndarray
    indices: np.ndarray
    labels: np.ndarray | None
    payloads: Any


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _faiss_metric(faiss: Any, metric: str) -> int:
    return faiss.METRIC_L2 if metric == "euclidean" else faiss.METRIC_INNER_PRODUCT


class Index:
    """A searchable, persistent set of embeddings with labels and payloads.

    Exact search (``factory="Flat"``) with NumPy or FAISS gives the results
    of :class:`NearestNeighbors` (same distances, ties by smaller
    position). Approximate search builds a FAISS index from a factory
    string (``"HNSW32"``, ``"IVF256,Flat"``, ``"IVF256,PQ16"``, ...): faster
    and (for PQ) smaller, at the cost of recall (measured in
    ``benchmarks/bench_index.py`` and ``docs/search.md``). Indexes that need
    training (IVF, PQ) are trained on the first :meth:`add` (or explicitly
    with :meth:`train`).

    Parameters
    ----------
    metric : {"euclidean", "cosine", "dot"}, default "euclidean"
        As in :class:`NearestNeighbors`: euclidean distance, ``1 - cos``
        (vectors are L2-normalised) or ``-q.g`` (lower is closer, like
        every distance here).
    backend : {"numpy", "faiss"}, default "numpy"
        ``"numpy"`` is exact only; ``"faiss"`` needs ``pip install faiss-cpu``.
    factory : str, default "Flat"
        FAISS ``index_factory`` string; ``"Flat"`` is exact.
    ef_search : int, optional
        HNSW search depth (``efSearch``; FAISS' default is 16). Higher:
        better recall, slower queries.
    nprobe : int, optional
        IVF lists visited per query (FAISS' default is 1).
    block_size : int, optional
        Queries per block of the exact search (see :class:`NearestNeighbors`).

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> index = Index(metric="euclidean")
    >>> _ = index.add(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0]]),
    ...               labels=np.array([7, 8, 9]), payloads=["a.jpg", "b.jpg", "c.jpg"])
    >>> len(index)
    3
    >>> result = index.search(np.array([[0.9, 0.1]]), k=2)
    >>> result.indices, result.labels, result.payloads
    (array([[1, 0]]), array([[8, 7]]), [['b.jpg', 'a.jpg']])
    >>> np.round(result.distances, 3)
    array([[0.141, 0.906]], dtype=float32)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = index.save(tmp + "/gallery")
    ...     Index.load(tmp + "/gallery").search(np.array([[0.0, 2.0]]), k=1).labels
    array([[9]])
    """

    def __init__(
        self,
        metric: str = "euclidean",
        backend: str = "numpy",
        factory: str = "Flat",
        *,
        ef_search: int | None = None,
        nprobe: int | None = None,
        block_size: int | None = None,
    ) -> None:
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}; got {metric!r}.")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}.")
        if not isinstance(factory, str) or not factory.strip():
            raise ValueError(f"factory must be a FAISS index_factory string such as 'HNSW32'; got {factory!r}.")
        factory = factory.strip()
        if backend == "numpy" and factory != "Flat":
            raise ValueError(
                f"approximate search (factory={factory!r}) needs backend='faiss'; the numpy backend is exact "
                "(factory='Flat')."
            )
        if backend == "faiss":
            _import_faiss()
        self.metric = metric
        self.backend = backend
        self.factory = factory
        self.ef_search = None if ef_search is None else check_int(ef_search, "ef_search")
        self.nprobe = None if nprobe is None else check_int(nprobe, "nprobe")
        self.block_size = None if block_size is None else check_int(block_size, "block_size")
        self._dim: int | None = None
        self._chunks: list[np.ndarray] = []  # exact: the raw vectors
        self._vectors: np.ndarray | None = None
        self._nn: NearestNeighbors | None = None
        self._faiss: Any = None  # approximate: the FAISS index
        self._size = 0
        self._labels: list[np.ndarray] | None = None
        self._payloads: list[Any] | None = None
        self._payload_kind: str | None = None  # "array" or "list"

    # ----------------------------------------------------------- properties
    @property
    def exact(self) -> bool:
        """Whether searches are exact (``factory="Flat"``)."""
        return self.factory == "Flat"

    @property
    def dim(self) -> int | None:
        """Dimension of the vectors (``None`` before the first add)."""
        return self._dim

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return (
            f"Index(metric={self.metric!r}, backend={self.backend!r}, factory={self.factory!r}, "
            f"size={self._size}, dim={self._dim})"
        )

    # ------------------------------------------------------------- building
    def _check_vectors(self, embeddings: ArrayLike, name: str) -> np.ndarray:
        x = embedding_array(embeddings, name)
        if self._dim is not None and x.shape[1] != self._dim:
            raise ValueError(f"{name} must have shape (n, {self._dim}) like the indexed vectors; got shape {x.shape}.")
        return x

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        return _normalize(x) if self.metric == "cosine" else x

    def _new_faiss(self, dim: int) -> Any:
        faiss = _import_faiss()
        try:
            index = faiss.index_factory(dim, self.factory, _faiss_metric(faiss, self.metric))
        except RuntimeError as err:
            raise ValueError(f"FAISS cannot build factory={self.factory!r} for d={dim}: {err}") from None
        ps = faiss.ParameterSpace()
        if self.ef_search is not None:
            ps.set_index_parameter(index, "efSearch", self.ef_search)
        if self.nprobe is not None:
            ps.set_index_parameter(index, "nprobe", self.nprobe)
        return index

    def train(self, embeddings: ArrayLike) -> Index:
        """Train an approximate index (IVF centroids, PQ codebooks) on a sample.

        Only needed to train on other vectors than the first :meth:`add`
        (which trains an untrained index on what it adds). A no-op for
        exact and HNSW indexes.

        Parameters
        ----------
        embeddings : array-like of shape (n, d)
            At least as many vectors as the index has clusters (``IVF256``:
            256; ``PQ16``: 256 codes per sub-quantizer); FAISS advises about
            40 times more.

        Returns
        -------
        Index
            ``self``.

        Raises
        ------
        ValueError
            Too few training vectors (the message says how many are needed).
        """
        x = self._check_vectors(embeddings, "embeddings")
        if self.exact:
            self._dim = int(x.shape[1])
            return self
        if self._faiss is None:
            self._faiss = self._new_faiss(int(x.shape[1]))
            self._dim = int(x.shape[1])
        if not self._faiss.is_trained:
            try:
                self._faiss.train(self._prepare(x))
            except RuntimeError as err:
                need = re.search(r"number of clusters \((\d+)\)", str(err))
                if need is None:
                    raise
                raise ValueError(
                    f"factory={self.factory!r} needs at least {need.group(1)} training vectors; got {x.shape[0]}. "
                    "Add more vectors at once, call train() on a larger sample, or use a smaller IVF / PQ size."
                ) from None
        return self

    def add(self, embeddings: ArrayLike, labels: ArrayLike | None = None, payloads: Any = None) -> Index:
        """Add vectors, with optional labels and payloads, at the end of the index.

        Parameters
        ----------
        embeddings : array-like of shape (n, d)
        labels : array-like of shape (n,), optional
            Any non-object dtype (ints, strings). Either every add has
            labels or none has.
        payloads : ndarray of shape (n, ...) or sequence of length n, optional
            What to return with each neighbour (file names, ids, metadata):
            a non-object NumPy array, or JSON-serialisable values (so that
            :meth:`save` can write them without pickle). Every add must use
            the same kind.

        Returns
        -------
        Index
            ``self``.

        Raises
        ------
        ValueError
            Shapes, dimension, label or payload kinds that do not match, or
            too few vectors to train an approximate index.
        """
        x = self._check_vectors(embeddings, "embeddings")
        n = int(x.shape[0])
        lab = self._check_labels(labels, n)
        pay, kind = self._check_payloads(payloads, n)
        if self.exact:
            self._chunks.append(np.array(x, dtype=np.float64 if x.dtype == np.float64 else np.float32))
            self._vectors, self._nn = None, None
        else:
            self.train(x)
            self._faiss.add(self._prepare(x))
        self._dim = int(x.shape[1])
        if lab is not None:
            self._labels = (self._labels or []) + [lab]
        if pay is not None:
            self._payloads = (self._payloads or []) + [pay]
            self._payload_kind = kind
        self._size += n
        return self

    def _check_labels(self, labels: ArrayLike | None, n: int) -> np.ndarray | None:
        has = self._labels is not None
        if labels is None:
            if has:
                raise ValueError("This index has labels: pass labels= to every add().")
            return None
        if self._size and not has:
            raise ValueError("This index was built without labels: add() them from the first call on, or never.")
        lab = np.asarray(labels)
        if lab.ndim == 2 and lab.shape[1] == 1:
            lab = lab[:, 0]
        if lab.shape != (n,):
            raise ValueError(f"labels must have shape ({n},) (one per vector); got shape {lab.shape}.")
        if lab.dtype == object:
            raise ValueError("labels must be a NumPy array of numbers or strings, not Python objects (dtype object).")
        if has and np.result_type(self._labels[0].dtype, lab.dtype) == object:
            raise ValueError(f"labels of dtype {lab.dtype} do not mix with the index's {self._labels[0].dtype}.")
        return lab

    def _check_payloads(self, payloads: Any, n: int) -> tuple[Any, str | None]:
        has = self._payloads is not None
        if payloads is None:
            if has:
                raise ValueError("This index has payloads: pass payloads= to every add().")
            return None, None
        if self._size and not has:
            raise ValueError("This index was built without payloads: add() them from the first call on, or never.")
        if isinstance(payloads, np.ndarray):
            if payloads.dtype == object or payloads.ndim == 0 or payloads.shape[0] != n:
                raise ValueError(
                    f"array payloads must have shape ({n}, ...) and a non-object dtype; got {payloads.dtype} "
                    f"of shape {payloads.shape}."
                )
            if has and (self._payload_kind != "array" or payloads.shape[1:] != self._payloads[0].shape[1:]):
                raise ValueError("payloads must be of the same kind and shape as in the previous add().")
            return payloads, "array"
        pay = list(payloads)
        if len(pay) != n:
            raise ValueError(f"payloads must have one entry per vector ({n}); got {len(pay)}.")
        if has and self._payload_kind != "list":
            raise ValueError("payloads must be of the same kind (array or list) as in the previous add().")
        try:
            json.dumps(pay)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"payloads must be JSON-serialisable (str, numbers, lists, dicts) or a NumPy array: {err}"
            ) from None
        return pay, "list"

    # ------------------------------------------------------------- searching
    def _exact_search(self) -> NearestNeighbors:
        if self._nn is None:
            if len(self._chunks) > 1:
                self._chunks = [np.concatenate(self._chunks)]
            self._vectors = self._chunks[0]
            self._nn = NearestNeighbors(self.metric, self.backend, self.block_size).fit(self._vectors)
        return self._nn

    def search(self, queries: ArrayLike, k: int = 1) -> Neighbors:
        """The ``k`` nearest indexed items of each query.

        Parameters
        ----------
        queries : array-like of shape (q, d)
        k : int, default 1
            ``1 <= k <= len(index)``.

        Returns
        -------
        Neighbors
            ``(distances, indices, labels, payloads)``, see :class:`Neighbors`.

        Raises
        ------
        ValueError
            Empty index, wrong query shape, or ``k`` out of range.
        """
        if self._size == 0:
            raise ValueError("The index is empty: add() vectors first.")
        q = self._check_vectors(queries, "queries")
        k = check_int(k, "k")
        if k > self._size:
            raise ValueError(f"k must be in [1, {self._size}] (the index holds {self._size} items); got k={k}.")
        if self.exact:
            dist, idx = self._exact_search().search(q, k)
        else:
            dist, idx = self._approximate_search(q, k)
        return Neighbors(dist, idx, self._gather_labels(idx), self._gather_payloads(idx))

    def _approximate_search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        sims, idx = self._faiss.search(self._prepare(q), k)
        if self.metric == "euclidean":
            d = np.sqrt(np.maximum(sims, 0.0))
        elif self.metric == "cosine":
            d = np.maximum(1.0 - sims, 0.0)
        else:
            d = -sims
        idx = idx.astype(np.int64)
        missing = idx < 0
        d = np.where(missing, np.inf, d).astype(np.float32)
        order = np.lexsort((np.where(missing, np.iinfo(np.int64).max, idx), d), axis=1)
        return np.take_along_axis(d, order, axis=1), np.take_along_axis(idx, order, axis=1)

    def _gather_labels(self, idx: np.ndarray) -> np.ndarray | None:
        if self._labels is None:
            return None
        if len(self._labels) > 1:
            self._labels = [np.concatenate(self._labels)]
        labels = self._labels[0]
        missing = idx < 0
        if not missing.any():
            return labels[idx]
        out = labels[np.maximum(idx, 0)].astype(object)
        out[missing] = None
        return out

    def _gather_payloads(self, idx: np.ndarray) -> Any:
        if self._payloads is None:
            return None
        if self._payload_kind == "array":
            if len(self._payloads) > 1:
                self._payloads = [np.concatenate(self._payloads)]
            payloads = self._payloads[0]
            if not (idx < 0).any():
                return payloads[idx]
            out = payloads[np.maximum(idx, 0)].astype(object)
            out[idx < 0] = None
            return out
        if len(self._payloads) > 1:
            self._payloads = [[p for chunk in self._payloads for p in chunk]]
        payloads = self._payloads[0]
        return [[payloads[j] if j >= 0 else None for j in row] for row in idx.tolist()]

    # ----------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the index to a directory.

        The directory holds ``vectors.npy`` (exact indexes) or
        ``index.faiss`` (approximate ones, ``faiss.serialize_index``),
        ``labels.npy``, ``payloads.json`` or ``payloads.npy`` when present,
        and ``manifest.json``: the format version, the index settings, and
        the size and SHA-256 of every file, checked by :meth:`load`. Arrays
        are written without pickle. The directory is written beside the
        target and renamed into place, so a crash never leaves half an index
        under ``path``.

        Parameters
        ----------
        path : str or path-like
            A directory that must not exist (or be empty), unless
            ``overwrite``.
        overwrite : bool, default False
            Replace an existing directory.

        Returns
        -------
        pathlib.Path
            ``path``.
        """
        if self._size == 0:
            raise ValueError("The index is empty: add() vectors before saving.")
        target = Path(path)
        if target.exists() and not overwrite and (not target.is_dir() or any(target.iterdir())):
            raise ValueError(f"{target} exists and is not empty; pass overwrite=True to replace it.")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            files = self._write_files(tmp)
            manifest = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "metric": self.metric,
                "backend": self.backend,
                "factory": self.factory,
                "ef_search": self.ef_search,
                "nprobe": self.nprobe,
                "size": self._size,
                "dim": self._dim,
                "payloads": self._payload_kind,
                "files": {name: {"bytes": (tmp / name).stat().st_size, "sha256": _sha256(tmp / name)} for name in files},
            }
            (tmp / _MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target

    def _write_files(self, directory: Path) -> list[str]:
        files = []
        if self.exact:
            self._exact_search()
            np.save(directory / "vectors.npy", self._vectors, allow_pickle=False)
            files.append("vectors.npy")
        else:
            faiss = _import_faiss()
            (directory / "index.faiss").write_bytes(faiss.serialize_index(self._faiss).tobytes())
            files.append("index.faiss")
        if self._labels is not None:
            self._gather_labels(np.zeros((0, 0), dtype=np.int64))
            np.save(directory / "labels.npy", self._labels[0], allow_pickle=False)
            files.append("labels.npy")
        if self._payloads is not None:
            self._gather_payloads(np.zeros((0, 0), dtype=np.int64))
            if self._payload_kind == "array":
                np.save(directory / "payloads.npy", self._payloads[0], allow_pickle=False)
                files.append("payloads.npy")
            else:
                (directory / "payloads.json").write_text(json.dumps(self._payloads[0]))
                files.append("payloads.json")
        return files

    @classmethod
    def load(cls, path: str | os.PathLike) -> Index:
        """Read an index written by :meth:`save`, checking every file first.

        Raises
        ------
        ValueError
            A missing or unreadable manifest, an unknown format version, or a
            file that is missing, truncated or edited (its size or SHA-256
            differs from the manifest): the message names the file.
        """
        root = Path(path)
        manifest_path = root / _MANIFEST
        if not manifest_path.is_file():
            raise ValueError(f"{manifest_path} not found: {root} is not a saved dmlkeras index.")
        try:
            manifest = json.loads(manifest_path.read_text())
            files = manifest["files"]
            fmt, version = manifest["format"], manifest["format_version"]
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{manifest_path} is not a valid index manifest ({err}).") from None
        if fmt != FORMAT or not isinstance(version, int) or version > FORMAT_VERSION:
            raise ValueError(
                f"{manifest_path}: format {fmt!r} version {version!r} is not readable by this dmlkeras "
                f"(reads {FORMAT!r} up to version {FORMAT_VERSION})."
            )
        for name, meta in files.items():
            file = root / name
            if not file.is_file():
                raise ValueError(f"{file} is missing (listed in {manifest_path}).")
            size = file.stat().st_size
            if size != meta["bytes"]:
                raise ValueError(f"{file} has {size} bytes, the manifest says {meta['bytes']}: truncated or edited.")
            if _sha256(file) != meta["sha256"]:
                raise ValueError(f"{file} does not match its SHA-256 in the manifest: the file was edited or corrupted.")
        index = cls(
            metric=manifest["metric"],
            backend=manifest["backend"],
            factory=manifest["factory"],
            ef_search=manifest.get("ef_search"),
            nprobe=manifest.get("nprobe"),
        )
        if "vectors.npy" in files:
            vectors = np.load(root / "vectors.npy", allow_pickle=False)
            index._chunks = [vectors]
        else:
            faiss = _import_faiss()
            index._faiss = faiss.deserialize_index(np.fromfile(root / "index.faiss", dtype=np.uint8))
            ps = faiss.ParameterSpace()
            if index.ef_search is not None:
                ps.set_index_parameter(index._faiss, "efSearch", index.ef_search)
            if index.nprobe is not None:
                ps.set_index_parameter(index._faiss, "nprobe", index.nprobe)
        if "labels.npy" in files:
            index._labels = [np.load(root / "labels.npy", allow_pickle=False)]
        if "payloads.npy" in files:
            index._payloads, index._payload_kind = [np.load(root / "payloads.npy", allow_pickle=False)], "array"
        elif "payloads.json" in files:
            index._payloads, index._payload_kind = [json.loads((root / "payloads.json").read_text())], "list"
        index._size = int(manifest["size"])
        index._dim = int(manifest["dim"])
        return index


# ---------------------------------------------------------------- Matcher
VOTES = ("nearest", "majority")


class Matcher:
    """Open-set identification: the label of a query, or "unknown".

    A query is matched to the labelled items of ``index`` within
    ``threshold`` of it (``distance <= threshold``, in the index's metric;
    calibrate it with :func:`dmlkeras.evaluation.calibrate` on validation
    pairs, e.g. for a target false accept rate):

    * ``vote="nearest"``: the label of the nearest item if it is within the
      threshold, else ``unknown_label``.
    * ``vote="majority"``: the most frequent label among the ``k`` nearest
      items within the threshold (ties: the label met first, i.e. the one
      with the nearest item), ``unknown_label`` when none is within it.

    Parameters
    ----------
    index : Index
        An index with labels.
    threshold : float
        Largest accepted distance.
    unknown_label : default -1
        Returned for queries that match nothing.
    vote : {"nearest", "majority"}, default "nearest"
    k : int, optional
        Neighbours that vote (``"majority"``; default 5, capped at the index
        size). Must be 1 (the default) with ``"nearest"``.

    Examples
    --------
    >>> import numpy as np
    >>> gallery = Index().add(np.array([[0.0], [1.0], [1.2], [5.0]]), labels=np.array([0, 1, 1, 2]))
    >>> Matcher(gallery, threshold=0.5).match(np.array([[0.1], [0.9], [3.0]]))
    array([ 0,  1, -1])
    >>> Matcher(gallery, threshold=1.5, vote="majority", k=3).match(np.array([[0.4]]))
    array([1])
    """

    def __init__(
        self,
        index: Index,
        threshold: float,
        unknown_label: Any = -1,
        vote: str = "nearest",
        k: int | None = None,
    ) -> None:
        if not isinstance(index, Index):
            raise ValueError(f"index must be a dmlkeras.index.Index; got {type(index).__name__}.")
        if index._labels is None:
            raise ValueError("The index has no labels: build it with index.add(embeddings, labels=...).")
        if vote not in VOTES:
            raise ValueError(f"vote must be one of {VOTES}; got {vote!r}.")
        if vote == "nearest":
            k = 1 if k is None else check_int(k, "k")
            if k != 1:
                raise ValueError(f"vote='nearest' uses one neighbour; got k={k} (use vote='majority').")
        else:
            k = 5 if k is None else check_int(k, "k")
        self.index = index
        self.threshold = check_float(threshold, "threshold")
        self.unknown_label = unknown_label
        self.vote = vote
        self.k = k

    def match(self, queries: ArrayLike) -> np.ndarray:
        """Labels of the queries (``unknown_label`` for no match).

        Parameters
        ----------
        queries : array-like of shape (q, d)

        Returns
        -------
        ndarray of shape (q,)
            Of the labels' dtype when ``unknown_label`` fits it, else object.
        """
        k = min(self.k, len(self.index))
        found = self.index.search(queries, k)
        within = found.distances <= self.threshold
        labels = found.labels
        n_q = labels.shape[0]
        if self.vote == "nearest":
            pick = np.zeros(n_q, dtype=np.int64)
        else:
            same = (labels[:, :, None] == labels[:, None, :]) & within[:, None, :] & within[:, :, None]
            votes = same.sum(axis=2)
            # Most votes first, then the nearest position.
            pick = np.argmax(votes * (k + 1) - np.arange(k)[None, :], axis=1)
        matched = within[np.arange(n_q), pick]
        try:
            dtype = np.result_type(labels.dtype, np.asarray(self.unknown_label).dtype)
        except TypeError:
            dtype = np.dtype(object)
        if labels.dtype.kind in "iub" and np.asarray(self.unknown_label).dtype.kind not in "iub":
            dtype = np.dtype(object)
        out = np.empty(n_q, dtype=dtype)
        out[:] = self.unknown_label
        out[matched] = labels[np.arange(n_q), pick][matched]
        return out
