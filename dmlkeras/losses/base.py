"""The protocol every in-batch loss follows, and the base class that implements it.

An in-batch loss reads ``y_true`` labels (class ids, multi-hot labels or a
precomputed relation: :func:`dmlkeras.mining.label_relation`) and
``y_pred`` embeddings ``(n, d)``, optionally against a *reference*
(``ref_labels``, ``ref_embeddings`` of ``m`` rows and ``self_index``); it
asks its distance (``distance=``, :mod:`dmlkeras.distances`) for the
``(n, m)`` matrix, its miner (``miner=``, :mod:`dmlkeras.mining`) for the
pairs or triplets, and hands per-query :class:`~dmlkeras.reducers.Terms`
to its reducer (``reducer=``, :mod:`dmlkeras.reducers`), which applies
``sample_weight`` per query. ``loss.call(y_true, y_pred)`` (and
``reduction="none"``) gives the per-query values with a Keras mask of the
queries that count. See docs/losses.md for the table.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from dmlkeras import distances as distances_module
from dmlkeras import reducers as reducers_module
from dmlkeras._validation import as_float32, check_embeddings, check_labels_and_embeddings
from dmlkeras.mining import LABEL_FORMATS, Miner, Relation, get_miner, label_relation

Tensor = Any

__all__ = ["InBatchLoss", "check_labels_and_embeddings", "get_distance"]


def get_distance(distance: Any = None, metric: Any = None, default: str = "euclidean"):
    """The distance object of a loss from ``distance=`` or the older ``metric=`` / ``distance_metric=``.

    Raises
    ------
    ValueError
        When both are given, or the distance is unknown.

    Examples
    --------
    >>> get_distance(metric="angular").name
    'cosine'
    """
    if distance is not None and metric is not None:
        raise ValueError(f"Pass distance= or metric=, not both; got distance={distance!r}, metric={metric!r}.")
    chosen = distance if distance is not None else (metric if metric is not None else default)
    if isinstance(chosen, dict):
        return distances_module.deserialize(chosen)
    try:
        return distances_module.get(chosen)
    except ValueError as error:
        if distance is None and metric is not None:  # the older keyword: say so
            raise ValueError(f"Unknown metric {metric!r} (metric= is read as distance=): {error}") from None
        raise


def _nan_guard(x: Tensor) -> Tensor:
    """0 when every entry of ``x`` is finite, NaN otherwise (its gradient is 0 at finite entries).

    The masked reductions of the losses drop invalid entries, and with them a NaN; adding
    this makes a NaN or Inf embedding give a NaN loss, so Keras' ``TerminateOnNaN`` fires.
    """
    return 0.0 * ops.sum(ops.where(ops.isfinite(x), ops.zeros_like(x), x))


def _set_mask(values: Tensor, mask: Tensor) -> Tensor:
    """Attach a Keras mask to per-query values, as ``keras.losses.circle`` does."""
    from keras.src.backend import set_keras_mask  # Keras has no public name for it

    set_keras_mask(values, mask)
    return values


class InBatchLoss(keras.losses.Loss):
    """Base class of the losses that mine pairs or triplets inside a batch (or against a reference).

    Parameters
    ----------
    distance : str, callable or Distance, optional
        See :func:`dmlkeras.distances.get`. Each loss has its paper's default.
    miner : Miner, optional
        A :mod:`dmlkeras.mining` miner that chooses the pairs or triplets (default: the
        loss's own mining).
    reducer : str or Reducer, optional
        ``"mean"``, ``"nonzero_mean"``, ``"sum"`` or a :mod:`dmlkeras.reducers` object
        (default: the loss's own, which gives its published value).
    label_format : {"auto", "ids", "multi_hot", "relation"}, default "auto"
        How ``y_true`` is read (:func:`dmlkeras.mining.label_relation`).
    reduction : str, default "sum_over_batch_size"
        Keras' reduction: any mean (``"sum_over_batch_size"``, ``"mean"``,
        ``"mean_with_sample_weight"``) is the reducer's value, ``"sum"`` the sum of the
        per-query values, ``None`` / ``"none"`` the per-query values (with a Keras mask).

    Notes
    -----
    ``y_true`` is not cast to float32 (unlike ``keras.losses.Loss``), so integer class
    ids are compared exactly. ``sample_weight`` ``(n,)`` weighs each query's elements in
    both the sum and the count of the reducer: a weight of 0 removes a query exactly.
    A NaN or Inf embedding gives a NaN loss. Inputs in float16 or bfloat16 are computed
    in float32.

    Subclasses implement :meth:`terms`. (Subclasses written for older versions, which
    implement ``compute(labels, embeddings)`` returning a scalar, keep working.)

    Examples
    --------
    A custom loss: mean distance between positives.

    >>> import numpy as np
    >>> import keras
    >>> from dmlkeras.reducers import element_terms
    >>> class MeanPositiveDistance(InBatchLoss):
    ...     def terms(self, relation, query, reference):
    ...         d = self.distance.distance_matrix(query, reference)
    ...         return [element_terms(d, relation.positives)]
    >>> float(MeanPositiveDistance()(np.array([0, 0]), np.array([[0.0, 0.0], [3.0, 4.0]])))
    5.0
    """

    default_distance = "euclidean"
    default_reducer = "mean"

    def __init__(
        self,
        distance: Any = None,
        miner: Miner | None = None,
        reducer: Any = None,
        label_format: str = "auto",
        name: str | None = None,
        metric: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.distance = get_distance(distance, metric, self.default_distance)
        self.miner = get_miner(miner)
        if self.miner is not None and not isinstance(self.miner, Miner):
            raise ValueError(f"miner must be a dmlkeras.mining miner object; got {miner!r}.")
        self._reducer_arg = None if reducer is None else reducers_module.get(reducer)
        if label_format not in LABEL_FORMATS:
            raise ValueError(f"label_format must be one of {LABEL_FORMATS}; got {label_format!r}.")
        self.label_format = label_format

    @property
    def metric(self) -> str:
        """The distance's name (the older ``metric`` attribute)."""
        return self.distance.name

    @property
    def reducer(self) -> reducers_module.Reducer:
        """The reducer in use: the one passed, or the loss's own."""
        return self._reducer_arg if self._reducer_arg is not None else reducers_module.get(self.default_reducer)

    # ------------------------------------------------------------------ the protocol

    def terms(self, relation: Relation, query: Tensor, reference: Tensor | None) -> list:
        """Per-query :class:`~dmlkeras.reducers.Terms` of a validated batch.

        ``relation`` is ``(n, m)``; ``reference`` is ``None`` when it is the query batch.
        The loss is the sum over the returned terms of ``reducer.reduce(term)``.
        """
        raise NotImplementedError

    def compute(self, labels: Tensor, embeddings: Tensor) -> Tensor:
        """The scalar loss of a validated batch (no reference, no weights)."""
        relation = label_relation(labels, label_format=self.label_format)
        return self._reduce(self.terms(relation, embeddings, None), None, relation, embeddings, None, "mean")

    def mine(self, distances: Tensor, relation: Relation, query: Tensor):
        """The miner's :class:`~dmlkeras.mining.Mined` (``None`` without a miner)."""
        if self.miner is None:
            return None
        return self.miner(distances, relation, embedding_dim=query.shape[-1])

    def _inputs(self, y_true, y_pred, ref_labels, ref_embeddings, self_index):
        if type(self).terms is InBatchLoss.terms:  # an older subclass: compute() only
            if ref_embeddings is not None:
                raise ValueError(f"{type(self).__name__} implements compute() only: it takes no reference.")
            labels, embeddings = check_labels_and_embeddings(y_true, y_pred)
            return None, labels, embeddings, None
        query = check_embeddings(y_pred)
        if (ref_labels is None) != (ref_embeddings is None) and self.label_format != "relation":
            raise ValueError("Pass ref_labels and ref_embeddings together (or neither).")
        if ref_embeddings is None and self_index is not None:
            raise ValueError("self_index names rows of a reference: pass ref_embeddings (and ref_labels) with it.")
        reference = None if ref_embeddings is None else check_embeddings(ref_embeddings, "ref_embeddings")
        if reference is not None and query.shape[-1] is not None and reference.shape[-1] != query.shape[-1]:
            raise ValueError(
                f"ref_embeddings must have the embedding size of y_pred ({query.shape[-1]}); "
                f"got shape {tuple(reference.shape)}."
            )
        y_true = ops.convert_to_tensor(y_true)
        if y_true.shape[0] is not None and query.shape[0] is not None and y_true.shape[0] != query.shape[0]:
            raise ValueError(
                f"y_true has {y_true.shape[0]} labels but y_pred has {query.shape[0]} embeddings; "
                "expected one label per embedding."
            )
        if self.label_format in ("auto", "ids") and len(y_true.shape) > 2:
            raise ValueError(
                "y_true must be class labels (batch_size,) or (batch_size, 1), multi-hot labels "
                f"(batch_size, num_labels) or a relation (label_format='relation'); got shape {tuple(y_true.shape)}."
            )
        relation = label_relation(
            y_true,
            ref_labels,
            self_index=self_index,
            label_format=self.label_format,
            reference_size=None if reference is None else reference.shape[0],
        )
        if reference is not None and relation.positives.shape[1] not in (None, reference.shape[0]):
            raise ValueError(
                f"The relation has {relation.positives.shape[1]} reference columns but ref_embeddings "
                f"has {reference.shape[0]} rows."
            )
        return relation, y_true, query, reference

    def _weights(self, sample_weight: Tensor | None, query: Tensor) -> Tensor | None:
        if sample_weight is None:
            return None
        weights = as_float32(sample_weight)
        if len(weights.shape) == 2 and weights.shape[-1] == 1:
            weights = ops.reshape(weights, (-1,))
        if len(weights.shape) == 0:
            return ops.broadcast_to(weights, (ops.shape(query)[0],))
        if len(weights.shape) != 1 or (
            weights.shape[0] is not None and query.shape[0] is not None and weights.shape[0] != query.shape[0]
        ):
            raise ValueError(
                f"sample_weight must have shape (batch_size,) = ({query.shape[0]},); got {tuple(weights.shape)}."
            )
        return weights

    def _reduce(self, terms, weights, relation, query, reference, reduction="auto") -> Tensor:
        reducer = self.reducer
        reduction = self.reduction if reduction == "auto" else reduction
        if reduction in (None, "none", "sum"):
            values = sum(reducer.per_query(t) for t in terms)
            values = values + _nan_guard(query) * ops.ones_like(values)
            if reference is not None:
                values = values + _nan_guard(reference)
            counted = [reducer.count(t) for t in terms]
            mask = ops.ones_like(values, dtype="bool")
            if all(c is not None for c in counted):
                mask = sum(ops.cast(c > 0, "int32") for c in counted) > 0
            if relation is not None and relation.labels_ok is not None:
                values = ops.where(relation.labels_ok, values, float("nan"))
            if reduction == "sum":
                return ops.sum(values if weights is None else values * weights)
            return _set_mask(values, mask)
        loss = sum(reducer.reduce(t, weights) for t in terms)
        loss = loss + _nan_guard(query)
        if reference is not None:
            loss = loss + _nan_guard(reference)
        if relation is not None and relation.labels_ok is not None:
            loss = ops.where(relation.labels_ok, loss, float("nan"))
        return loss

    def __call__(
        self,
        y_true: Tensor,
        y_pred: Tensor,
        sample_weight: Tensor | None = None,
        ref_labels: Tensor | None = None,
        ref_embeddings: Tensor | None = None,
        self_index: Tensor | None = None,
    ) -> Tensor:
        """The loss of a batch, optionally against a reference set.

        Parameters
        ----------
        y_true : labels of the queries (see :func:`dmlkeras.mining.label_relation`)
        y_pred : tensor of shape (n, d)
        sample_weight : tensor of shape (n,), optional
            One weight per query.
        ref_labels, ref_embeddings : tensors of ``m`` rows, optional
            The reference (e.g. a memory); by default the batch itself. With
            ``label_format="relation"``, ``y_true`` is the ``(n, m)`` relation and
            ``ref_labels`` is ``None``.
        self_index : int tensor of shape (n,), optional
            With a reference: the reference row that is each query (-1: none; default none).
        """
        with keras.name_scope(self.name):
            relation, labels, query, reference = self._inputs(y_true, y_pred, ref_labels, ref_embeddings, self_index)
            if relation is None:
                value = self.compute(labels, query)
                return value if sample_weight is None else value * ops.mean(as_float32(sample_weight))
            weights = self._weights(sample_weight, query)
            return self._reduce(self.terms(relation, query, reference), weights, relation, query, reference)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        """Per-query values with a Keras mask of the queries that count (``reduction="none"``)."""
        relation, _, query, reference = self._inputs(y_true, y_pred, None, None, None)
        return self._reduce(self.terms(relation, query, reference), None, relation, query, reference, "none")

    def get_config(self) -> dict:
        config = {**super().get_config(), "distance": distances_module.serialize(self.distance)}
        if self.miner is not None:
            config["miner"] = keras.saving.serialize_keras_object(self.miner)
        if self._reducer_arg is not None:
            config["reducer"] = keras.saving.serialize_keras_object(self._reducer_arg)
        if self.label_format != "auto":
            config["label_format"] = self.label_format
        return config

    @classmethod
    def from_config(cls, config: dict) -> "InBatchLoss":
        config = dict(config)
        for key in ("miner", "reducer"):
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
