"""Reducers: how per-pair or per-anchor loss values become one number.

Kept apart from the losses (as in pytorch-metric-learning) so that every
loss states its reduction by name and degenerate batches behave the same way
everywhere: when nothing contributes, the result is 0 with a zero gradient,
never NaN.
"""

from __future__ import annotations

from typing import Any

from keras import ops

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
