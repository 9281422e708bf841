"""Reducers: how per-pair or per-anchor loss values become one number.

Kept apart from the losses (as in pytorch-metric-learning) so that every
loss states its reduction by name and degenerate batches behave the same way
everywhere: when nothing contributes, the result is 0 with a zero gradient,
never NaN.

An in-batch loss describes its values *per query* (anchor) as
:class:`Terms`: the sum of the query's element values (its pairs, triplets,
or itself), how many of its elements are valid, and how many are non-zero.
A reducer object turns terms and per-query ``sample_weight`` into the loss:

* :class:`MeanReducer` (``"mean"``): ``sum_a w_a total_a / sum_a w_a valid_a``,
  the mean over the valid elements;
* :class:`NonZeroMeanReducer` (``"nonzero_mean"``): the mean over the
  elements with a positive value (pytorch-metric-learning's AvgNonZero);
* :class:`SumReducer` (``"sum"``): ``sum_a w_a total_a``.

So a weight of 0 on a query removes its elements exactly, and a weight of 2
counts them twice (as if the query were in the batch twice, the reference
unchanged).

:func:`masked_logsumexp` is the softmax-style reduction shared by N-pairs,
lifted structure, multi-similarity, circle, supervised contrastive and the
proxy heads: it reduces a row of logits over a *subset* of its entries
without the two classic NaN traps (an ``exp`` overflow in a masked-out
entry, ``log(0)`` for an empty row).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import keras
from keras import ops

from dmlkeras._validation import as_float32

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
        # The largest selected entry adds exp(0) = 1, so an empty slice is the only one with total 0
        # (or whose entries are all -inf): no separate any() pass over the mask.
        empty = total < 0.5
        result = ops.where(
            empty,
            float("-inf"),
            ops.log(ops.where(empty, ops.ones_like(total), total)) + shift,
        )
    if not keepdims:
        result = ops.squeeze(result, axis=axis)
    return result


class Terms(NamedTuple):
    """A loss's values per query: ``(n,)`` tensors (see the module docstring).

    Attributes
    ----------
    total : float tensor (n,)
        Sum of the query's valid element values.
    valid : float tensor (n,)
        Number (or total weight) of its valid elements.
    nonzero : float tensor (n,)
        Number (or total weight) of its valid elements whose value is positive.
    """

    total: Tensor
    valid: Tensor
    nonzero: Tensor


def element_terms(values: Tensor, valid: Tensor, weights: Tensor | None = None) -> Terms:
    """:class:`Terms` of per-query ``(n,)`` or per-pair ``(n, m)`` element values.

    Parameters
    ----------
    values : float tensor of shape (n,) or (n, m)
    valid : bool tensor of the same shape
        Which elements exist (invalid ones count nowhere).
    weights : float tensor of the same shape, optional
        Element weights (e.g. a miner's); default 1.

    Examples
    --------
    >>> import numpy as np
    >>> t = element_terms(np.array([[1.0, 0.0], [2.0, 5.0]]), np.array([[True, True], [False, True]]))
    >>> [np.asarray(x).tolist() for x in t]
    [[1.0, 5.0], [2.0, 1.0], [1.0, 1.0]]
    """
    values = ops.convert_to_tensor(values)
    valid = ops.convert_to_tensor(valid)
    weight = ops.cast(valid, values.dtype)
    if weights is not None:
        weight = weight * ops.cast(weights, values.dtype)
    total = ops.where(valid, values, ops.zeros_like(values)) * (1.0 if weights is None else weight)
    nonzero = ops.where(values > 0, weight, ops.zeros_like(weight))
    if len(values.shape) == 2:
        return Terms(ops.sum(total, axis=1), ops.sum(weight, axis=1), ops.sum(nonzero, axis=1))
    return Terms(total, weight, nonzero)


def _safe_ratio(total: Tensor, count: Tensor) -> Tensor:
    """``total / count``, 0 where ``count`` is 0 (``total`` is then 0 too)."""
    return total / ops.where(count > 0, count, ops.ones_like(count))


class Reducer:
    """Base of the reducers: ``reduce(terms, weights) -> scalar`` (see the module docstring)."""

    count_field: str | None = "valid"

    def count(self, terms: Terms) -> Tensor | None:
        """The per-query element counts this reducer divides by (``None``: no division)."""
        return None if self.count_field is None else getattr(terms, self.count_field)

    def per_query(self, terms: Terms) -> Tensor:
        """Each query's own value: its total over its count (``reduction="none"``)."""
        count = self.count(terms)
        return terms.total if count is None else _safe_ratio(terms.total, count)

    def reduce(self, terms: Terms, weights: Tensor | None = None) -> Tensor:
        """The loss: weighted total over the weighted count."""
        total, count = terms.total, self.count(terms)
        if weights is not None:
            total = total * weights
            count = None if count is None else count * weights
        if count is None:
            return ops.sum(total)
        return _safe_ratio(ops.sum(total), ops.sum(count))

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict) -> "Reducer":
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@keras.saving.register_keras_serializable(package="dmlkeras")
class MeanReducer(Reducer):
    """Mean over the valid elements (pairs, triplets or queries) of the batch.

    Examples
    --------
    >>> import numpy as np
    >>> float(MeanReducer().reduce(element_terms(np.array([1.0, 0.0, 5.0]), np.array([True, True, False]))))
    0.5
    """

    count_field = "valid"


@keras.saving.register_keras_serializable(package="dmlkeras")
class NonZeroMeanReducer(Reducer):
    """Mean over the valid elements whose value is positive (pytorch-metric-learning's AvgNonZero).

    Examples
    --------
    >>> import numpy as np
    >>> float(NonZeroMeanReducer().reduce(element_terms(np.array([1.0, 0.0, 5.0]), np.array([True, True, False]))))
    1.0
    """

    count_field = "nonzero"


@keras.saving.register_keras_serializable(package="dmlkeras")
class SumReducer(Reducer):
    """Sum over the valid elements.

    Examples
    --------
    >>> import numpy as np
    >>> float(SumReducer().reduce(element_terms(np.array([1.0, 2.0, 5.0]), np.array([True, True, False]))))
    3.0
    """

    count_field = None


REDUCERS = {"mean": MeanReducer, "nonzero_mean": NonZeroMeanReducer, "sum": SumReducer}


def get(reducer: str | Reducer | dict | None, default: str = "mean") -> Reducer:
    """A reducer from a name in :data:`REDUCERS`, a Reducer, a serialised config, or ``None`` (``default``).

    Examples
    --------
    >>> get("sum")
    SumReducer()
    """
    if reducer is None:
        reducer = default
    if isinstance(reducer, Reducer):
        return reducer
    if isinstance(reducer, dict):
        return keras.saving.deserialize_keras_object(reducer)
    if isinstance(reducer, str) and reducer in REDUCERS:
        return REDUCERS[reducer]()
    raise ValueError(f"reducer must be a Reducer or one of {tuple(REDUCERS)}; got {reducer!r}.")
