"""Distances and similarities between embeddings, as objects, written with ``keras.ops`` only.

Every distance in dmlkeras is computed here, so that losses, miners, heads
and metrics agree on what "distance" means and none re-implements one.

==========================  ==========================  =============  ==============================================
object                      name (``distances.get``)    orientation    value
==========================  ==========================  =============  ==============================================
``Euclidean()``             ``"euclidean"``, ``"L2"``   distance       :math:`\\lVert a - b \\rVert_2`
``Euclidean(squared=True)`` ``"squared_euclidean"``     distance       :math:`\\lVert a - b \\rVert_2^2`
``Cosine()``                ``"cosine"``, ``"angular"`` distance       :math:`1 - \\cos(a, b)`, in ``[0, 2]``
``CosineSimilarity()``      ``"cosine_similarity"``     similarity     :math:`\\cos(a, b)`, in ``[-1, 1]``
``Manhattan()``             ``"manhattan"``, ``"l1"``   distance       :math:`\\lVert a - b \\rVert_1`
``DotProduct()``            ``"dot"``, ``"dot_product"`` similarity    :math:`a \\cdot b`
``LpDistance(p)``           (construct it)              distance       :math:`\\lVert a - b \\rVert_p`, ``1 <= p <= inf``
==========================  ==========================  =============  ==============================================

Every object has ``pairwise(query, reference=None)`` (``(n, d) x (m, d) ->
(n, m)`` in its own orientation; without a reference, within ``query`` with
an exactly-0 diagonal for the distances), ``paired(a, b)`` (``(n,)``),
``distance_matrix`` (always smaller = closer) and ``similarity_matrix``
(always larger = closer), and ``is_similarity``. :func:`get` turns a name, a
callable ``f(a, b=None) -> (n, m)`` distance matrix (tensorflow-addons'
``distance_metric``) or an object into an object; :func:`serialize` /
:func:`deserialize` round-trip them through Keras' serialisation.

Numerical promises, for every object:

- Half-precision input (float16, bfloat16) is computed in float32.
- Safe at 0: the gradient is finite (0) where a distance is 0 (identical
  rows, the diagonal), and at an all-zero row for the cosine.
- Accurate for close rows with large norms: the Euclidean matrices centre
  the rows (subtract the mean of the query and reference rows) before the
  Gram expansion ``|a|^2 + |b|^2 - 2 a.b``, so their error depends on how
  far the rows are from their mean, not on their norm.
- NaN in, NaN out: a row with a NaN or an Inf gives NaN in its row and
  column of a pairwise matrix (its entry of a paired vector); no NaN becomes
  0, and the other entries stay finite (in such a batch the Euclidean
  matrix is computed without centring).

``Manhattan`` and ``LpDistance`` broadcast to ``(n, m, d)`` in ``pairwise``:
fine for batches (1024 x 1024 x 128 floats is 512 MB), costly for large
``n * m * d``.

The functions of the first version (:func:`pairwise_distances`,
:func:`paired_distances`, :func:`cosine_similarity_matrix`,
:func:`resolve_metric`, :func:`l2_normalize`, :func:`safe_sqrt`,
:func:`as_float32`) are thin wrappers over the objects and keep working.

Examples
--------
>>> import numpy as np
>>> import keras
>>> x = np.array([[0.0, 0.0], [3.0, 4.0]], "float32")
>>> d = get("L2")
>>> d
Euclidean(squared=False)
>>> keras.ops.convert_to_numpy(d.pairwise(x))
array([[0., 5.],
       [5., 0.]], dtype=float32)
>>> keras.ops.convert_to_numpy(CosineSimilarity().similarity_matrix(x, x[1:]))  # larger = closer
array([[0.],
       [1.]], dtype=float32)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import keras
from keras import ops

from dmlkeras._validation import as_float32, check_float

Tensor = Any

METRICS = ("euclidean", "squared_euclidean", "cosine", "manhattan")
"""The names :func:`resolve_metric` (the first version's ``metric=``) accepts."""

_ALIASES = {
    "l2": "euclidean",
    "squared-l2": "squared_euclidean",
    "squared_l2": "squared_euclidean",
    "angular": "cosine",
    "l1": "manhattan",
}
_NORM_FLOOR = 1e-6
_GRADIENT_NORM_FLOOR = 1e-3
# The smallest normal float32: a positive floor that no flush-to-zero mode turns into 0.
_TINY = 2.0**-126

__all__ = [
    "METRICS",
    "DISTANCES",
    "Distance",
    "Euclidean",
    "Cosine",
    "CosineSimilarity",
    "Manhattan",
    "DotProduct",
    "LpDistance",
    "get",
    "serialize",
    "deserialize",
    "pairwise_distances",
    "paired_distances",
    "cosine_similarity_matrix",
    "resolve_metric",
    "l2_normalize",
    "safe_sqrt",
    "as_float32",
]


# ---------------------------------------------------------------------------
# Elementary safe operations
# ---------------------------------------------------------------------------


def safe_sqrt(x: Tensor) -> Tensor:
    """Square root whose gradient is 0 (not infinite) at 0; NaN stays NaN.

    Negative input (rounding below 0) gives 0.

    Examples
    --------
    >>> import keras
    >>> keras.ops.convert_to_numpy(safe_sqrt(keras.ops.array([0.0, 4.0, float("nan")])))
    array([ 0.,  2., nan], dtype=float32)
    """
    x = ops.convert_to_tensor(x)
    positive = x > 0
    root = ops.sqrt(ops.where(positive, x, ops.ones_like(x)))
    return ops.where(positive, root, x - x)  # x - x: 0 for finite x <= 0, NaN for NaN


def _clamp_at_zero(x: Tensor) -> Tensor:
    """``max(x, 0)``; NaN stays NaN (``maximum`` propagates NaN on TensorFlow and JAX, tested)."""
    return ops.maximum(x, 0.0)


def l2_normalize(x: Tensor, axis: int = -1) -> Tensor:
    """Scale rows to unit L2 norm, with a bounded gradient at (near-)zero rows.

    Parameters
    ----------
    x : tensor
        Input of any shape (half precision is computed in float32).
    axis : int, default -1
        Axis along which to normalise.

    Returns
    -------
    tensor
        ``x / max(||x||, 1e-6)``: unit rows, an all-zero row stays 0, NaN
        stays NaN. The gradient is that of ``x / max(||x||, 1e-3)``: exact
        for rows of norm ``>= 1e-3``, and below that its gain is capped at
        1e3 (the true gain ``1 / ||x||`` is unbounded; a cap of 1e6 made
        every float16 gradient at a zero row overflow 65504). So the
        gradient is finite in every dtype, in float16 as long as the
        upstream gradient on the unit row stays below 65.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> np.round(keras.ops.convert_to_numpy(l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]], "float32"))), 2)
    array([[0.6, 0.8],
           [0. , 0. ]], dtype=float32)
    """
    x = as_float32(x)
    squared_norm = ops.sum(ops.square(x), axis=axis, keepdims=True)
    # Differentiated: the version with the larger floor; its value is corrected to the smaller floor's
    # without a gradient (the correction is exactly 0 for rows of norm >= _GRADIENT_NORM_FLOOR).
    bounded = x * ops.rsqrt(ops.maximum(squared_norm, _GRADIENT_NORM_FLOOR**2))
    exact = x * ops.rsqrt(ops.maximum(squared_norm, _NORM_FLOOR**2))
    return bounded + ops.stop_gradient(exact - bounded)


def _as_matrix(x: Tensor, name: str) -> Tensor:
    x = as_float32(x)
    if len(x.shape) != 2:
        raise ValueError(f"{name} must have shape (n, d); got shape {tuple(x.shape)}.")
    return x


def _check_sizes(a: Tensor, b: Tensor, first: str, second: str) -> None:
    if a.shape[-1] is not None and b.shape[-1] is not None and a.shape[-1] != b.shape[-1]:
        raise ValueError(
            f"{first} and {second} must have the same embedding size d; got {a.shape[-1]} and {b.shape[-1]}."
        )


def _finite_rows(x: Tensor) -> Tensor:
    """Bool ``(n, 1)``: the rows without NaN or Inf."""
    return ops.all(ops.isfinite(x), axis=-1, keepdims=True)


def _nan_rows(x: Tensor) -> Tensor:
    """``x`` with every row that holds a NaN or an Inf replaced by NaN.

    Done on the ``(n, d)`` input (not the ``(n, m)`` output, which is
    costlier): every distance then propagates NaN to that row's entries.
    """
    return ops.where(_finite_rows(x), x, ops.full_like(x, math.nan))


def _zero_diagonal(values: Tensor) -> Tensor:
    """Exactly 0 on the diagonal (a product, so a NaN diagonal entry stays NaN)."""
    return values * (1.0 - ops.eye(ops.shape(values)[0], dtype=values.dtype))


# ---------------------------------------------------------------------------
# Distance objects
# ---------------------------------------------------------------------------


class Distance:
    """Base class: a distance (smaller = closer) or a similarity (larger = closer).

    Subclasses set ``name`` and ``is_similarity`` and implement
    :meth:`_pairwise` (which zeroes the diagonal of a distance when
    ``same``) and :meth:`_paired` on validated float32 (or float64)
    ``(n, d)`` inputs. Both must give NaN for a row that holds a NaN or an
    Inf (:func:`_nan_rows` does it for any computation that propagates NaN;
    the Euclidean and cosine objects get it more cheaply from their row
    norms). The base class validates and casts.

    Attributes
    ----------
    name : str
        The canonical name (``"euclidean"``, ``"cosine"``, ...).
    is_similarity : bool
        True when larger values mean closer (:class:`CosineSimilarity`,
        :class:`DotProduct`).
    """

    name = "distance"
    is_similarity = False

    # -- what subclasses implement ------------------------------------------

    def _pairwise(self, query: Tensor, reference: Tensor, same: bool) -> Tensor:
        raise NotImplementedError

    def _paired(self, a: Tensor, b: Tensor) -> Tensor:
        raise NotImplementedError

    # -- public API ---------------------------------------------------------

    def pairwise(self, query: Tensor, reference: Tensor | None = None) -> Tensor:
        """Values between every query row and every reference row, in this object's orientation.

        Parameters
        ----------
        query : tensor of shape (n, d)
        reference : tensor of shape (m, d), optional
            When omitted, the values within ``query`` (``m = n``); the
            diagonal of a distance is then exactly 0.

        Returns
        -------
        tensor of shape (n, m)
            float32 for float32 or half-precision input.

        Raises
        ------
        ValueError
            If an input is not 2-D or the embedding sizes differ.
        """
        same = reference is None
        query = _as_matrix(query, "query")
        reference = query if same else _as_matrix(reference, "reference")
        _check_sizes(query, reference, "query", "reference")
        return self._pairwise(query, reference, same)

    __call__ = pairwise

    def paired(self, a: Tensor, b: Tensor) -> Tensor:
        """The value between ``a[i]`` and ``b[i]`` for every row ``i``: shape ``(n,)``."""
        a = _as_matrix(a, "a")
        b = _as_matrix(b, "b")
        _check_sizes(a, b, "a", "b")
        if a.shape[0] is not None and b.shape[0] is not None and a.shape[0] != b.shape[0]:
            raise ValueError(
                f"a and b must have the same shape (n, d) to be paired row by row; got shapes "
                f"{tuple(a.shape)} and {tuple(b.shape)}."
            )
        return self._paired(a, b)

    def to_distance(self, values: Tensor) -> Tensor:
        """Values of this object's orientation as distances (smaller = closer)."""
        return -values if self.is_similarity else values

    def to_similarity(self, values: Tensor) -> Tensor:
        """Values of this object's orientation as similarities (larger = closer)."""
        return values if self.is_similarity else -values

    def distance_matrix(self, query: Tensor, reference: Tensor | None = None) -> Tensor:
        """:meth:`pairwise` as a distance: smaller = closer (a similarity ``s`` becomes ``-s``)."""
        return self.to_distance(self.pairwise(query, reference))

    def similarity_matrix(self, query: Tensor, reference: Tensor | None = None) -> Tensor:
        """:meth:`pairwise` as a similarity: larger = closer (a distance ``d`` becomes ``-d``)."""
        return self.to_similarity(self.pairwise(query, reference))

    # -- serialisation ------------------------------------------------------

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict) -> "Distance":
        return cls(**config)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(sorted(self.get_config().items()))))

    def __repr__(self) -> str:
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({arguments})"


def _centred(query: Tensor, reference: Tensor, same: bool) -> tuple[Tensor, Tensor]:
    """Subtract the mean of the query and reference rows (a constant: no gradient).

    Distances are translation invariant; centring makes the Gram expansion's
    cancellation error scale with the spread of the rows, not their norm.
    When a row holds a NaN or an Inf the mean is not finite and is not
    subtracted (that batch's other entries are then computed uncentred).
    """
    total = ops.sum(query, axis=0, keepdims=True)
    count = query.shape[0] if query.shape[0] is not None else ops.shape(query)[0]
    if not same:
        total = total + ops.sum(reference, axis=0, keepdims=True)
        count = count + (reference.shape[0] if reference.shape[0] is not None else ops.shape(reference)[0])
    mean = total / ops.maximum(ops.cast(count, total.dtype), 1.0)
    mean = ops.stop_gradient(ops.where(ops.isfinite(mean), mean, ops.zeros_like(mean)))
    query = query - mean
    return query, (query if same else reference - mean)


def _nan_unless_finite(values: Tensor) -> Tensor:
    """NaN where ``values`` is not finite (an Inf from an Inf row becomes NaN)."""
    return ops.where(ops.isfinite(values), values, ops.full_like(values, math.nan))


def _squared_euclidean(query: Tensor, reference: Tensor, same: bool) -> tuple[Tensor, Tensor, Tensor]:
    """``(centred query, centred reference, squared distances)`` of :meth:`Euclidean.pairwise`."""
    query, reference = _centred(query, reference, same)
    # A row with a NaN or an Inf has a non-finite norm: NaN there puts NaN in its row and column.
    query_norms = _nan_unless_finite(ops.sum(ops.square(query), axis=1, keepdims=True))
    reference_norms = (
        query_norms if same else _nan_unless_finite(ops.sum(ops.square(reference), axis=1, keepdims=True))
    )
    # -2 folded into the (n, d) query rather than the (n, m) product: one (n, m) pass less.
    squared = (query_norms + ops.transpose(reference_norms)) + ops.matmul(-2.0 * query, ops.transpose(reference))
    if same:  # exactly 0 before the square root (whose gradient there is then 0)
        squared = _zero_diagonal(squared)
    return query, reference, squared


def _written_out_gradients() -> bool:
    """Whether the pairwise Euclidean matrix carries its gradient written out (the torch backend).

    Torch differentiates eagerly: every ``(n, m)`` operation of the forward pass
    is a kernel call with its own backward call, and the matmul's backward is
    two more matmuls. Written out, the gradient is one ``(n, m)`` weight matrix
    and one matmul per input (see :func:`_euclidean_with_gradient`). JAX and
    TensorFlow compile the plain expression, whose fused gradient is as cheap.
    Both give the same values, and the same gradients up to float32 rounding
    (``tests/test_distances.py`` compares them).
    """
    return keras.backend.backend() == "torch"


def _euclidean_with_gradient(query: Tensor, reference: Tensor, same: bool, squared: bool) -> Tensor:
    """:meth:`Euclidean.pairwise` with its gradient written out (:func:`_written_out_gradients`).

    With ``s_ij = |q_i - r_j|^2`` (of the centred rows: the mean is a
    constant) and ``w_ij`` the upstream gradient times ``d value / d s``
    (``1``, or ``1 / (2 value)`` for the distance; 0 where ``s <= 0``, as
    the clamp, :func:`safe_sqrt` and the zeroed diagonal give), the
    gradients are ``2 (rowsum(w) q - w r)`` for the query and
    ``2 (colsum(w) r - w^T q)`` for the reference. ``w`` is computed without
    a select (slow on torch's CPU): ``value / max(s, tiny)`` is ``1 / sqrt(s)``
    (or ``s / s = 1``) where ``s > 0`` and ``0 / tiny = 0`` elsewhere.
    """
    scale = 1.0 if not squared else 2.0  # 2 x (1 / (2 value)) for the distance: the 1/2 moves here

    def forward(x, y):
        q, r, s = _squared_euclidean(x, y, same)
        clamped = _clamp_at_zero(s)
        values = clamped if squared else ops.sqrt(clamped)
        return values, q, r, s

    def weights(values, s, upstream):
        return upstream * (values / ops.maximum(s, _TINY))

    if same:

        @ops.custom_gradient
        def within(x):
            values, q, _, s = forward(x, x)

            def gradient(*args, upstream=None):  # TensorFlow passes upstream positionally
                w = weights(values, s, args[0] if upstream is None else upstream)
                rows = ops.sum(w, axis=1, keepdims=True) + ops.expand_dims(ops.sum(w, axis=0), 1)
                # w^T q as a transposed product: adding w to its transposed view is slow on torch.
                return scale * (rows * q - ops.matmul(w, q) - ops.matmul(ops.transpose(w), q))

            return values, gradient

        return within(query)

    @ops.custom_gradient
    def between(x, y):
        values, q, r, s = forward(x, y)

        def gradient(*args, upstream=None):
            w = weights(values, s, args[0] if upstream is None else upstream)
            grad_query = scale * (ops.sum(w, axis=1, keepdims=True) * q - ops.matmul(w, r))
            grad_reference = scale * (ops.expand_dims(ops.sum(w, axis=0), 1) * r - ops.matmul(ops.transpose(w), q))
            return grad_query, grad_reference

        return values, gradient

    return between(query, reference)


@keras.saving.register_keras_serializable(package="dmlkeras")
class Euclidean(Distance):
    """Euclidean distance ``||a - b||`` (``squared=True``: ``||a - b||^2``).

    The pairwise matrix centres the rows, then expands ``|a|^2 + |b|^2 -
    2 a.b`` (one matmul). Its absolute error on a squared distance is about
    ``1e-7 * s^2``, with ``s`` the largest distance of a row from the mean
    of the rows: relative to the distance itself, float32 precision whenever
    the rows are not spread much wider than their distances (close rows at
    any norm, e.g. near-duplicates at norm 1e4, are accurate).
    :meth:`paired` subtracts directly and is accurate everywhere.

    Parameters
    ----------
    squared : bool, default False

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> x = np.array([[1000.0, 0.0], [1000.001, 0.0]], "float32")
    >>> float(x[1, 0] - x[0, 0])  # the float32 rows' true distance
    0.0009765625
    >>> float(keras.ops.convert_to_numpy(Euclidean().pairwise(x))[0, 1])  # without centring: 0.0
    0.0009765625
    """

    is_similarity = False

    def __init__(self, squared: bool = False) -> None:
        if not isinstance(squared, bool):
            raise ValueError(f"squared must be True or False; got {squared!r}.")
        self.squared = squared

    @property
    def name(self) -> str:  # type: ignore[override]
        return "squared_euclidean" if self.squared else "euclidean"

    def _pairwise(self, query: Tensor, reference: Tensor, same: bool) -> Tensor:
        if _written_out_gradients():
            return _euclidean_with_gradient(query, reference, same, self.squared)
        _, _, squared = _squared_euclidean(query, reference, same)
        if self.squared:
            return _clamp_at_zero(squared)
        return safe_sqrt(squared)  # 0 for the rounding below 0

    def _paired(self, a: Tensor, b: Tensor) -> Tensor:
        # Not finite iff a row holds a NaN or an Inf (or the distance overflows float32).
        squared = _nan_unless_finite(ops.sum(ops.square(a - b), axis=-1))
        return squared if self.squared else safe_sqrt(squared)

    def get_config(self) -> dict:
        return {"squared": self.squared}


@keras.saving.register_keras_serializable(package="dmlkeras")
class CosineSimilarity(Distance):
    """Cosine similarity ``cos(a, b)``, in ``[-1, 1]`` (a similarity: larger = closer).

    Rows are normalised by :func:`l2_normalize`, so an all-zero row has
    similarity 0 with everything (itself included) and a finite gradient.
    Within one set the diagonal is each row's computed self-similarity
    (1 to float32 precision, 0 for a zero row), not overwritten.
    ``distance_matrix`` is :class:`Cosine`'s ``1 - cos``.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> x = np.array([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]], "float32")
    >>> keras.ops.convert_to_numpy(CosineSimilarity().pairwise(x)[0])
    array([ 1.,  0., -1.], dtype=float32)
    """

    name = "cosine_similarity"
    is_similarity = True

    def _pairwise(self, query: Tensor, reference: Tensor, same: bool) -> Tensor:
        query = l2_normalize(query)
        reference = query if same else l2_normalize(reference)
        return ops.matmul(query, ops.transpose(reference))

    def _paired(self, a: Tensor, b: Tensor) -> Tensor:
        return ops.sum(l2_normalize(a) * l2_normalize(b), axis=-1)

    def distance_matrix(self, query: Tensor, reference: Tensor | None = None) -> Tensor:
        return Cosine().pairwise(query, reference)

    def to_distance(self, values: Tensor) -> Tensor:
        return _clamp_at_zero(1.0 - values)


@keras.saving.register_keras_serializable(package="dmlkeras")
class Cosine(Distance):
    """Cosine distance ``1 - cos(a, b)``, in ``[0, 2]`` (a distance).

    An all-zero row is at distance 1 from everything else (0 from itself in
    ``pairwise(x)``), with a finite gradient. ``similarity_matrix`` is the
    cosine similarity computed directly (``1 - d`` before the clamp at 0).

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> x = np.array([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]], "float32")
    >>> keras.ops.convert_to_numpy(Cosine().pairwise(x)[0])
    array([0., 1., 2.], dtype=float32)
    """

    name = "cosine"
    is_similarity = False

    def _pairwise(self, query: Tensor, reference: Tensor, same: bool) -> Tensor:
        values = _clamp_at_zero(1.0 - CosineSimilarity()._pairwise(query, reference, same))
        return _zero_diagonal(values) if same else values

    def _paired(self, a: Tensor, b: Tensor) -> Tensor:
        return _clamp_at_zero(1.0 - CosineSimilarity()._paired(a, b))

    def similarity_matrix(self, query: Tensor, reference: Tensor | None = None) -> Tensor:
        return CosineSimilarity().pairwise(query, reference)

    def to_similarity(self, values: Tensor) -> Tensor:
        return 1.0 - values


@keras.saving.register_keras_serializable(package="dmlkeras")
class DotProduct(Distance):
    """Dot product ``a . b`` (a similarity: larger = closer); ``distance_matrix`` is ``-a . b``.

    The N-pairs loss's similarity. Not normalised: use
    :class:`CosineSimilarity` for unit rows.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> keras.ops.convert_to_numpy(DotProduct().paired(np.array([[1.0, 2.0]], "float32"), np.array([[3.0, 4.0]], "float32")))
    array([11.], dtype=float32)
    """

    name = "dot_product"
    is_similarity = True

    def _pairwise(self, query: Tensor, reference: Tensor, same: bool) -> Tensor:
        query = _nan_rows(query)
        return ops.matmul(query, ops.transpose(query if same else _nan_rows(reference)))

    def _paired(self, a: Tensor, b: Tensor) -> Tensor:
        return ops.sum(_nan_rows(a) * _nan_rows(b), axis=-1)


@keras.saving.register_keras_serializable(package="dmlkeras")
class Manhattan(Distance):
    """Manhattan (L1) distance ``sum |a - b|``.

    ``pairwise`` broadcasts to ``(n, m, d)``: memory ``4 n m d`` bytes.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> keras.ops.convert_to_numpy(Manhattan().pairwise(np.array([[0.0, 0.0], [3.0, -4.0]], "float32")))
    array([[0., 7.],
           [7., 0.]], dtype=float32)
    """

    name = "manhattan"
    is_similarity = False

    def _pairwise(self, query: Tensor, reference: Tensor, same: bool) -> Tensor:
        query = _nan_rows(query)
        reference = query if same else _nan_rows(reference)
        return ops.sum(ops.abs(ops.expand_dims(query, 1) - ops.expand_dims(reference, 0)), axis=-1)

    def _paired(self, a: Tensor, b: Tensor) -> Tensor:
        return ops.sum(ops.abs(_nan_rows(a) - _nan_rows(b)), axis=-1)


def _lp_norm(differences: Tensor, p: float) -> Tensor:
    """``(sum |v|^p)^(1/p)`` over the last axis, scaled by the largest ``|v|`` (no overflow, finite gradient at 0)."""
    magnitudes = ops.abs(differences)
    largest = ops.max(magnitudes, axis=-1)
    if math.isinf(p):
        return largest
    if p == 1.0:
        return ops.sum(magnitudes, axis=-1)
    if p == 2.0:
        return safe_sqrt(ops.sum(ops.square(differences), axis=-1))
    positive = largest > 0
    scale = ops.expand_dims(ops.where(positive, largest, ops.ones_like(largest)), -1)
    total = ops.sum(ops.power(magnitudes / scale, p), axis=-1)  # >= 1 where positive
    root = ops.power(ops.where(positive, total, ops.ones_like(total)), 1.0 / p)
    return ops.where(positive, largest * root, largest * 0.0)


@keras.saving.register_keras_serializable(package="dmlkeras")
class LpDistance(Distance):
    """Minkowski distance ``(sum |a - b|^p)^(1/p)`` for ``1 <= p <= inf``.

    ``p=1`` is :class:`Manhattan`, ``p=2`` the Euclidean distance (computed
    by subtraction, so exact but ``(n, m, d)`` in memory), ``p=inf`` the
    Chebyshev distance ``max |a - b|``. ``pairwise`` broadcasts to
    ``(n, m, d)``. The sum is scaled by the largest coordinate difference,
    so large ``p`` does not overflow.

    Parameters
    ----------
    p : float, default 2.0
        In ``[1, inf]`` (below 1 it is not a norm and its gradient at 0 is
        infinite).

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> x = np.array([[0.0, 0.0], [3.0, -4.0]], "float32")
    >>> [round(float(keras.ops.convert_to_numpy(LpDistance(p).pairwise(x))[0, 1]), 4) for p in (1, 2, 3, float("inf"))]
    [7.0, 5.0, 4.4979, 4.0]
    """

    name = "lp"
    is_similarity = False

    def __init__(self, p: float = 2.0) -> None:
        try:
            infinite = float(p) == math.inf
        except (TypeError, ValueError):
            infinite = False
        self.p = math.inf if infinite else check_float(p, "p", minimum=1.0)

    def _pairwise(self, query: Tensor, reference: Tensor, same: bool) -> Tensor:
        query = _nan_rows(query)
        reference = query if same else _nan_rows(reference)
        return _lp_norm(ops.expand_dims(query, 1) - ops.expand_dims(reference, 0), self.p)

    def _paired(self, a: Tensor, b: Tensor) -> Tensor:
        return _lp_norm(_nan_rows(a) - _nan_rows(b), self.p)

    def get_config(self) -> dict:
        return {"p": self.p}


@keras.saving.register_keras_serializable(package="dmlkeras")
class CallableDistance(Distance):
    """A callable ``f(a, b=None) -> (n, m)`` distance matrix as a :class:`Distance`.

    The form of tensorflow-addons' ``distance_metric`` callables (which take
    one argument: :meth:`pairwise` calls ``f(query)`` when there is no
    reference). :meth:`paired` is the diagonal of ``f(a, b)``. The output
    is treated as a distance (smaller = closer); the diagonal within one set
    is set to 0. Serialisable when ``f`` is (a registered function).

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> chebyshev = get(lambda a, b=None: keras.ops.max(keras.ops.abs(a[:, None] - (a if b is None else b)[None]), axis=-1))
    >>> keras.ops.convert_to_numpy(chebyshev.pairwise(np.array([[0.0, 0.0], [3.0, -4.0]], "float32")))
    array([[0., 4.],
           [4., 0.]], dtype=float32)
    """

    is_similarity = False

    def __init__(self, function: Callable) -> None:
        if isinstance(function, dict):
            function = keras.saving.deserialize_keras_object(function)
        if not callable(function):
            raise ValueError(f"function must be a callable f(a, b=None) -> (n, m) distances; got {function!r}.")
        self.function = function

    @property
    def name(self) -> str:  # type: ignore[override]
        return getattr(self.function, "__name__", "custom")

    def _pairwise(self, query: Tensor, reference: Tensor, same: bool) -> Tensor:
        query = _nan_rows(query)
        if same:
            return _zero_diagonal(as_float32(self.function(query)))
        return as_float32(self.function(query, _nan_rows(reference)))

    def _paired(self, a: Tensor, b: Tensor) -> Tensor:
        return ops.diagonal(as_float32(self.function(_nan_rows(a), _nan_rows(b))))

    def get_config(self) -> dict:
        return {"function": keras.saving.serialize_keras_object(self.function)}

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.function is other.function

    def __hash__(self) -> int:
        return hash(("CallableDistance", id(self.function)))

    def __repr__(self) -> str:
        return f"CallableDistance({self.name})"


_BY_NAME: dict[str, Callable[[], Distance]] = {
    "euclidean": Euclidean,
    "squared_euclidean": lambda: Euclidean(squared=True),
    "cosine": Cosine,
    "cosine_similarity": CosineSimilarity,
    "manhattan": Manhattan,
    "dot_product": DotProduct,
}
DISTANCES = tuple(_BY_NAME)
"""The canonical names :func:`get` accepts (plus the aliases in its docstring)."""
_GET_ALIASES = {**_ALIASES, "dot": "dot_product", "cosine-similarity": "cosine_similarity"}


def get(identifier: str | Callable | Distance | dict) -> Distance:
    """A :class:`Distance` from a name, a callable, a config or a :class:`Distance`.

    Parameters
    ----------
    identifier : str, callable, dict or Distance
        A name (case-insensitive): ``"euclidean"``, ``"squared_euclidean"``,
        ``"cosine"``, ``"cosine_similarity"``, ``"manhattan"``,
        ``"dot_product"``, or an alias: ``"dot"``, and tensorflow-addons'
        ``"L2"``, ``"squared-L2"``, ``"angular"``, ``"l1"``. A callable
        ``f(a, b=None) -> (n, m)`` distance matrix (wrapped as
        :class:`CallableDistance`). A dict from :func:`serialize`. A
        :class:`Distance` is returned as is.

    Raises
    ------
    ValueError
        On an unknown name (the message lists the valid ones) or another type.

    Examples
    --------
    >>> get("angular")
    Cosine()
    >>> get("squared-L2").name
    'squared_euclidean'
    >>> get(Manhattan())
    Manhattan()
    """
    if isinstance(identifier, Distance):
        return identifier
    if isinstance(identifier, str):
        key = identifier.lower()
        key = _GET_ALIASES.get(key, key)
        if key not in _BY_NAME:
            raise ValueError(
                f"Unknown distance {identifier!r}. Valid names: {', '.join(DISTANCES)} "
                f"(aliases: {', '.join(sorted(_GET_ALIASES))}); or pass a Distance object or a callable."
            )
        return _BY_NAME[key]()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if callable(identifier):
        return CallableDistance(identifier)
    raise ValueError(
        f"A distance must be a name ({', '.join(DISTANCES)}), a Distance object or a callable "
        f"f(a, b=None) -> (n, m); got {identifier!r}."
    )


def serialize(distance: Distance) -> dict:
    """A Keras config of a :class:`Distance` (for a ``get_config``).

    Examples
    --------
    >>> deserialize(serialize(Euclidean(squared=True)))
    Euclidean(squared=True)
    """
    return keras.saving.serialize_keras_object(get(distance))


def deserialize(config: dict | str) -> Distance:
    """The :class:`Distance` of a :func:`serialize` config (or a name, through :func:`get`)."""
    if isinstance(config, str):
        return get(config)
    distance = keras.saving.deserialize_keras_object(config)
    if not isinstance(distance, Distance):
        raise ValueError(f"The config does not describe a Distance: {config!r}.")
    return distance


# ---------------------------------------------------------------------------
# The first version's functions (thin wrappers over the objects)
# ---------------------------------------------------------------------------


def resolve_metric(metric: str) -> str:
    """Return the canonical name of a distance metric (the first version's ``metric=``).

    Parameters
    ----------
    metric : str
        One of ``"euclidean"``, ``"squared_euclidean"``, ``"cosine"``,
        ``"manhattan"``, or a tensorflow-addons alias (``"L2"``,
        ``"squared-L2"``, ``"angular"``). :func:`get` accepts more.

    Returns
    -------
    str
        The canonical name.

    Raises
    ------
    ValueError
        If the name is unknown; the message lists the valid names.

    Examples
    --------
    >>> resolve_metric("angular")
    'cosine'
    """
    if not isinstance(metric, str):
        raise ValueError(f"metric must be a string, one of {METRICS}; got {metric!r}.")
    name = metric.lower()
    name = _ALIASES.get(name, name)
    if name not in METRICS:
        raise ValueError(
            f"Unknown metric {metric!r}. Valid metrics: {', '.join(METRICS)} "
            f"(aliases: {', '.join(sorted(_ALIASES))})."
        )
    return name


def _metric_object(metric: Any) -> Distance:
    """A string through :func:`resolve_metric` (its error message), anything else through :func:`get`."""
    return get(resolve_metric(metric) if isinstance(metric, str) else metric)


def pairwise_distances(a: Tensor, b: Tensor | None = None, metric: Any = "euclidean") -> Tensor:
    """Distances between every row of ``a`` and every row of ``b`` (smaller = closer).

    ``get(metric).distance_matrix(a, b)``.

    Parameters
    ----------
    a : tensor of shape (n, d)
        First set of embeddings.
    b : tensor of shape (m, d), optional
        Second set. When omitted, distances within ``a`` are returned and
        the diagonal is exactly 0.
    metric : str, Distance or callable, default "euclidean"
        A name of :data:`METRICS` (or an alias), or anything :func:`get` takes.

    Returns
    -------
    tensor of shape (n, m)
        Distances (float32 for float32 or half inputs).

    Raises
    ------
    ValueError
        On an unknown metric, inputs that are not 2-D, or mismatched ``d``.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> x = np.array([[0.0, 0.0], [3.0, 4.0]], "float32")
    >>> keras.ops.convert_to_numpy(pairwise_distances(x))
    array([[0., 5.],
           [5., 0.]], dtype=float32)
    """
    distance = _metric_object(metric)
    a = _as_matrix(a, "a")
    if b is not None:
        b = _as_matrix(b, "b")
        _check_sizes(a, b, "a", "b")
    return distance.distance_matrix(a, b)


def paired_distances(a: Tensor, b: Tensor, metric: Any = "euclidean") -> Tensor:
    """Distance between ``a[i]`` and ``b[i]`` for every row ``i``.

    ``get(metric).paired(a, b)`` as a distance.

    Parameters
    ----------
    a, b : tensors of shape (n, d)
        Paired embeddings.
    metric : str, Distance or callable, default "euclidean"
        See :func:`pairwise_distances`.

    Returns
    -------
    tensor of shape (n,)

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> keras.ops.convert_to_numpy(paired_distances(np.zeros((1, 2), "float32"), np.array([[3.0, 4.0]], "float32")))
    array([5.], dtype=float32)
    """
    distance = _metric_object(metric)
    return distance.to_distance(distance.paired(a, b))


def cosine_similarity_matrix(a: Tensor, b: Tensor | None = None) -> Tensor:
    """Cosine similarities between rows, in ``[-1, 1]``: ``CosineSimilarity().pairwise(a, b)``.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> np.round(keras.ops.convert_to_numpy(cosine_similarity_matrix(np.array([[1.0, 0.0], [0.0, 2.0]], "float32"))), 3)
    array([[1., 0.],
           [0., 1.]], dtype=float32)
    """
    return CosineSimilarity().pairwise(a, b)
