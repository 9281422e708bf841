"""Pairwise and paired distances, written with ``keras.ops`` only.

Every distance in dmlkeras is computed here, so that losses, miners and
metrics agree on what "distance" means and none re-implements one.

Supported metrics (``metric=``):

``"euclidean"``
    :math:`\\lVert a - b \\rVert_2`. Its gradient is finite (zero) where the
    distance is 0 (identical rows, the diagonal): no NaN from ``sqrt(0)``.
``"squared_euclidean"``
    :math:`\\lVert a - b \\rVert_2^2`.
``"cosine"``
    :math:`1 - \\cos(a, b)`, in ``[0, 2]``. Rows are L2-normalised with a
    small epsilon, so an all-zero row is defined (cosine 0, distance 1).
``"manhattan"``
    :math:`\\lVert a - b \\rVert_1`. The pairwise form broadcasts to
    ``(n, m, d)``: fine for batches, costly for large ``n * m * d``.

The tensorflow-addons names ``"L2"``, ``"squared-L2"`` and ``"angular"`` are
accepted as aliases of ``"euclidean"``, ``"squared_euclidean"`` and
``"cosine"``.

Half-precision inputs (float16, bfloat16) are computed in float32.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

METRICS = ("euclidean", "squared_euclidean", "cosine", "manhattan")
_ALIASES = {
    "l2": "euclidean",
    "squared-l2": "squared_euclidean",
    "squared_l2": "squared_euclidean",
    "angular": "cosine",
    "l1": "manhattan",
}
_EPSILON = 1e-12

Tensor = Any


def resolve_metric(metric: str) -> str:
    """Return the canonical name of a distance metric.

    Parameters
    ----------
    metric : str
        One of ``"euclidean"``, ``"squared_euclidean"``, ``"cosine"``,
        ``"manhattan"``, or a tensorflow-addons alias (``"L2"``,
        ``"squared-L2"``, ``"angular"``).

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


def as_float32(x: Tensor) -> Tensor:
    """Cast half-precision (float16, bfloat16) or integer input to float32.

    float32 and float64 pass through unchanged. Every distance and loss of
    dmlkeras computes in at least float32.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> keras.backend.standardize_dtype(as_float32(np.ones(2, "float16")).dtype)
    'float32'
    """
    x = ops.convert_to_tensor(x)
    if keras.backend.standardize_dtype(x.dtype) not in ("float32", "float64"):
        x = ops.cast(x, "float32")
    return x


def _as_float(x: Tensor, name: str) -> Tensor:
    x = as_float32(x)
    if len(x.shape) != 2:
        raise ValueError(f"{name} must have shape (n, d); got shape {tuple(x.shape)}.")
    return x


def l2_normalize(x: Tensor, axis: int = -1) -> Tensor:
    """Scale rows to unit L2 norm, safely for all-zero rows.

    Parameters
    ----------
    x : tensor
        Input of any shape.
    axis : int, default -1
        Axis along which to normalise.

    Returns
    -------
    tensor
        ``x / max(||x||, 1e-6)``, with finite gradients everywhere.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> np.round(keras.ops.convert_to_numpy(l2_normalize(np.array([[3.0, 4.0]], "float32"))), 2)
    array([[0.6, 0.8]], dtype=float32)
    """
    x = as_float32(x)
    squared_norm = ops.sum(ops.square(x), axis=axis, keepdims=True)
    return x * ops.rsqrt(ops.maximum(squared_norm, _EPSILON))


def safe_sqrt(x: Tensor) -> Tensor:
    """Square root whose gradient is 0 (not infinite) at 0.

    Examples
    --------
    >>> import keras
    >>> keras.ops.convert_to_numpy(safe_sqrt(keras.ops.array([0.0, 4.0])))
    array([0., 2.], dtype=float32)
    """
    positive = x > 0
    return ops.where(positive, ops.sqrt(ops.where(positive, x, ops.ones_like(x))), ops.zeros_like(x))


def pairwise_distances(a: Tensor, b: Tensor | None = None, metric: str = "euclidean") -> Tensor:
    """Distances between every row of ``a`` and every row of ``b``.

    Parameters
    ----------
    a : tensor of shape (n, d)
        First set of embeddings.
    b : tensor of shape (m, d), optional
        Second set. When omitted, distances within ``a`` are returned and
        the diagonal is exactly 0.
    metric : str, default "euclidean"
        See the module docstring.

    Returns
    -------
    tensor of shape (n, m)
        Non-negative distances (float32 for float32 or half inputs).

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
    metric = resolve_metric(metric)
    same = b is None
    a = _as_float(a, "a")
    b = a if same else _as_float(b, "b")
    if a.shape[-1] is not None and b.shape[-1] is not None and a.shape[-1] != b.shape[-1]:
        raise ValueError(
            f"a and b must have the same embedding size d; got {a.shape[-1]} and {b.shape[-1]}."
        )
    if metric == "manhattan":
        distances = ops.sum(ops.abs(ops.expand_dims(a, 1) - ops.expand_dims(b, 0)), axis=-1)
    elif metric == "cosine":
        similarity = ops.matmul(l2_normalize(a), ops.transpose(l2_normalize(b)))
        distances = ops.maximum(1.0 - similarity, 0.0)
    else:
        squared = (
            ops.sum(ops.square(a), axis=1, keepdims=True)
            + ops.transpose(ops.sum(ops.square(b), axis=1, keepdims=True))
            - 2.0 * ops.matmul(a, ops.transpose(b))
        )
        distances = ops.maximum(squared, 0.0)
    if same:
        distances = distances * (1.0 - ops.eye(ops.shape(a)[0], dtype=distances.dtype))
    if metric == "euclidean":
        distances = safe_sqrt(distances)
    return distances


def paired_distances(a: Tensor, b: Tensor, metric: str = "euclidean") -> Tensor:
    """Distance between ``a[i]`` and ``b[i]`` for every row ``i``.

    Parameters
    ----------
    a, b : tensors of shape (n, d)
        Paired embeddings.
    metric : str, default "euclidean"
        See the module docstring.

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
    metric = resolve_metric(metric)
    a = _as_float(a, "a")
    b = _as_float(b, "b")
    if a.shape[-1] is not None and b.shape[-1] is not None and a.shape[-1] != b.shape[-1]:
        raise ValueError(
            f"a and b must have the same embedding size d; got {a.shape[-1]} and {b.shape[-1]}."
        )
    if metric == "cosine":
        return ops.maximum(1.0 - ops.sum(l2_normalize(a) * l2_normalize(b), axis=-1), 0.0)
    if metric == "manhattan":
        return ops.sum(ops.abs(a - b), axis=-1)
    squared = ops.sum(ops.square(a - b), axis=-1)
    return safe_sqrt(squared) if metric == "euclidean" else squared


def cosine_similarity_matrix(a: Tensor, b: Tensor | None = None) -> Tensor:
    """Cosine similarities between rows, in ``[-1, 1]`` (``1 - cosine distance``).

    The similarity-based losses (multi-similarity, circle, supervised
    contrastive, proxy heads) use this rather than a distance.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> np.round(keras.ops.convert_to_numpy(cosine_similarity_matrix(np.array([[1.0, 0.0], [0.0, 2.0]], "float32"))), 3)
    array([[1., 0.],
           [0., 1.]], dtype=float32)
    """
    a = l2_normalize(_as_float(a, "a"))
    b = a if b is None else l2_normalize(_as_float(b, "b"))
    return ops.matmul(a, ops.transpose(b))
