"""Reducers: how per-pair or per-anchor loss values become one number.

Kept apart from the losses (as in pytorch-metric-learning) so that every
loss states its reduction by name and degenerate batches behave the same way
everywhere: when nothing contributes, the result is 0 with a zero gradient,
never NaN.

:func:`masked_logsumexp` is the softmax-style reduction shared by N-pairs,
lifted structure, multi-similarity, circle, supervised contrastive and the
proxy heads: it reduces a row of logits over a *subset* of its entries
without the two classic NaN traps (an ``exp`` overflow in a masked-out
entry, ``log(0)`` for an empty row).
"""

from __future__ import annotations

from typing import Any

from keras import ops

from dmlkeras.distances import as_float32

Tensor = Any


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` where ``mask`` is true; 0 when the mask is empty.

    Examples
    --------
    >>> import numpy as np
    >>> float(masked_mean(np.array([1.0, 2.0, 6.0]), np.array([True, False, True])))
    3.5
    >>> float(masked_mean(np.array([1.0]), np.array([False])))
    0.0
    """
    values = ops.convert_to_tensor(values)
    mask = ops.convert_to_tensor(mask)
    total = ops.sum(ops.where(mask, values, ops.zeros_like(values)))
    count = ops.sum(ops.cast(mask, values.dtype))
    return total / ops.maximum(count, 1.0)


def nonzero_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean over the masked entries whose value is positive (pml's AvgNonZero).

    Examples
    --------
    >>> import numpy as np
    >>> float(nonzero_mean(np.array([0.0, 2.0, 4.0]), np.array([True, True, True])))
    3.0
    """
    values = ops.convert_to_tensor(values)
    return masked_mean(values, ops.logical_and(ops.convert_to_tensor(mask), values > 0))


def masked_logsumexp(
    values: Tensor,
    mask: Tensor,
    axis: int = -1,
    keepdims: bool = False,
    add_one: bool = False,
) -> Tensor:
    """``log(sum_{mask} exp(values))`` along an axis, finite and safe to differentiate.

    Parameters
    ----------
    values : tensor
        Logits (float; half precision is computed in float32).
    mask : bool tensor, broadcastable to ``values``
        Which entries take part.
    axis : int, default -1
        The axis reduced.
    keepdims : bool, default False
        Keep the reduced axis with length 1.
    add_one : bool, default False
        Add ``exp(0) = 1`` inside the log: ``log(1 + sum_{mask} exp(values))``
        (``softplus`` of the log-sum-exp), the form of the multi-similarity,
        circle (tensorflow-similarity), lifted and proxy-anchor losses.

    Returns
    -------
    tensor
        The reduced values. A slice whose mask is empty gives ``-inf``
        (or ``0`` with ``add_one``), and the gradient with respect to
        ``values`` is 0 there: feed ``-inf`` only into functions that are
        finite at it (``softplus``, ``exp``) or select it away with
        ``ops.where``.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> x = np.array([[0.0, 1000.0, 2.0], [5.0, 6.0, 7.0]], "float32")
    >>> mask = np.array([[True, False, True], [False, False, False]])
    >>> np.round(keras.ops.convert_to_numpy(masked_logsumexp(x, mask)), 4)
    array([2.1269,   -inf], dtype=float32)
    >>> np.round(keras.ops.convert_to_numpy(masked_logsumexp(x, mask, add_one=True)), 4)
    array([2.2395, 0.    ], dtype=float32)
    """
    values = as_float32(values)
    mask = ops.logical_and(ops.convert_to_tensor(mask), ops.ones_like(values, dtype="bool"))
    zeros = ops.zeros_like(values)
    # Shift by the largest *selected* value (0 where none is), gradient stopped.
    shift = ops.max(ops.where(mask, values, float("-inf")), axis=axis, keepdims=True)
    if add_one:
        shift = ops.maximum(shift, 0.0)
    shift = ops.stop_gradient(ops.where(ops.isfinite(shift), shift, ops.zeros_like(shift)))
    # Masked-out entries are replaced *before* exp so that no inf reaches the graph.
    safe_values = ops.where(mask, values, shift + zeros)
    terms = ops.where(mask, ops.exp(safe_values - shift), zeros)
    total = ops.sum(terms, axis=axis, keepdims=True)
    if add_one:
        total = total + ops.exp(-shift)
        result = ops.log(total) + shift
    else:
        empty = ops.logical_not(ops.any(mask, axis=axis, keepdims=True))
        result = ops.where(
            empty,
            float("-inf"),
            ops.log(ops.where(empty, ops.ones_like(total), total)) + shift,
        )
    if not keepdims:
        result = ops.squeeze(result, axis=axis)
    return result
