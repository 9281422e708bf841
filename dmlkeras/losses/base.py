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

``block_size=`` walks the queries in blocks of that many rows against the
whole reference and rematerialises each block in the backward pass
(``keras.remat``), so a loss holds ``(block_size, m)`` matrices instead of
``(n, m)`` ones; the blocks' per-query terms are concatenated before the
reducer (sums and counts, not means), so values and gradients are the
unblocked ones (docs/scaling.md).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops
from keras.src.losses.loss import scale_loss_for_distribution  # Keras' own; it has no public name

from dmlkeras import distances as distances_module
from dmlkeras import reducers as reducers_module
from dmlkeras._validation import as_float32, check_embeddings, check_int, check_labels_and_embeddings
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
    block_size : int, optional
        Compute the loss in blocks of this many queries against the whole reference,
        each block rematerialised in the backward pass: memory O(block_size x m)
        instead of O(n x m), the same values and gradients (to float rounding), about
        a third more time (one more forward pass per block). Default: one block.
        Losses whose per-query value depends on the other queries (``blockable =
        False``: lifted structure, quadruplet) refuse it with ``ValueError``.

    Notes
    -----
    ``y_true`` is not cast to float32 (unlike ``keras.losses.Loss``), so integer class
    ids are compared exactly. ``sample_weight`` ``(n,)`` weighs each query's elements in
    both the sum and the count of the reducer: a weight of 0 removes a query exactly.
    A NaN or Inf embedding gives a NaN loss. Inputs in float16 or bfloat16 are computed
    in float32.

    Subclasses implement :meth:`terms`. (Subclasses written for older versions, which
    implement ``compute(labels, embeddings)`` returning a scalar, keep working.) A
    subclass whose per-query terms depend on other queries than the query itself (not
    only on the reference) sets ``blockable = False``.

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

    The same loss in blocks of 4 queries (a batch of 10: blocks of 4, 4 and 2):

    >>> from dmlkeras.losses import TripletLoss
    >>> x = np.random.default_rng(0).normal(size=(10, 3)).astype("float32")
    >>> y = np.arange(10) % 3
    >>> bool(np.isclose(float(TripletLoss(block_size=4)(y, x)), float(TripletLoss()(y, x))))
    True
    """

    default_distance = "euclidean"
    default_reducer = "mean"
    #: Whether a query's terms depend only on that query and the reference (so that
    #: ``block_size=`` can split the queries into blocks).
    blockable = True

    def __init__(
        self,
        distance: Any = None,
        miner: Miner | None = None,
        reducer: Any = None,
        label_format: str = "auto",
        name: str | None = None,
        metric: Any = None,
        block_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.block_size = None if block_size is None else check_int(block_size, "block_size")
        if self.block_size is not None and not self.blockable:
            raise ValueError(
                f"{type(self).__name__} does not take block_size: a query's value depends on the other "
                "queries of the batch, not only on the reference, so the queries cannot be split into blocks."
            )
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
        return self.reduce_terms(self.terms(relation, embeddings, None), None, relation, embeddings, None, "mean")

    def mine(self, distances: Tensor, relation: Relation, query: Tensor):
        """The miner's :class:`~dmlkeras.mining.Mined` (``None`` without a miner)."""
        if self.miner is None:
            return None
        return self.miner(distances, relation, embedding_dim=query.shape[-1])

    def _inputs(self, y_true, y_pred, ref_labels, ref_embeddings, self_index, ref_mask=None):
        if type(self).terms is InBatchLoss.terms:  # an older subclass: compute() only
            if ref_embeddings is not None or self.block_size is not None:
                raise ValueError(f"{type(self).__name__} implements compute() only: it takes no reference or block_size.")
            labels, embeddings = check_labels_and_embeddings(y_true, y_pred)
            return None, labels, embeddings, None
        y_true, query, reference = self._checked(y_true, y_pred, ref_labels, ref_embeddings, self_index, ref_mask)
        return self._relation(y_true, ref_labels, self_index, reference, ref_mask), y_true, query, reference

    def _checked(self, y_true, y_pred, ref_labels, ref_embeddings, self_index, ref_mask):
        """Validated ``(y_true, query, reference)`` (``reference`` ``None``: the batch)."""
        query = check_embeddings(y_pred)
        if (ref_labels is None) != (ref_embeddings is None) and self.label_format != "relation":
            raise ValueError("Pass ref_labels and ref_embeddings together (or neither).")
        for given, what in ((self_index, "self_index"), (ref_mask, "ref_mask")):
            if ref_embeddings is None and given is not None:
                raise ValueError(f"{what} names rows of a reference: pass ref_embeddings (and ref_labels) with it.")
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
        return y_true, query, reference

    def _is_ids(self, y_true) -> bool:
        rank = len(y_true.shape)
        return self.label_format == "ids" or (
            self.label_format == "auto" and (rank == 1 or (rank == 2 and y_true.shape[-1] == 1))
        )

    def _relation(self, y_true, ref_labels, self_index, reference, ref_mask) -> Relation:
        """The :class:`~dmlkeras.mining.Relation` of the queries to the reference.

        ``ref_mask`` ``(m,)``: reference rows that exist; the others are neither positives
        nor negatives (class ids there are replaced by one below every id, so that the
        miners' per-class tables do not count them either).
        """
        if ref_mask is not None:
            ref_mask = ops.reshape(ops.cast(ops.convert_to_tensor(ref_mask), "bool"), (-1,))
            if reference.shape[0] is not None and ref_mask.shape[0] not in (None, reference.shape[0]):
                raise ValueError(
                    f"ref_mask must have one entry per reference row ({reference.shape[0]}); "
                    f"got shape {tuple(ref_mask.shape)}."
                )
            if ref_labels is not None and self._is_ids(y_true):
                ref_labels = ops.reshape(ops.convert_to_tensor(ref_labels), (-1,))
                below = ops.minimum(ops.min(y_true), ops.min(ref_labels)) - 1
                ref_labels = ops.where(ref_mask, ref_labels, ops.cast(below, ref_labels.dtype))
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
        if ref_mask is not None:
            keep = ops.expand_dims(ref_mask, 0)
            relation = Relation(
                ops.logical_and(relation.positives, keep),
                ops.logical_and(relation.negatives, keep),
                relation.ids,
                relation.ref_ids,
                relation.self_index,
                relation.labels_ok,
            )
        return relation

    def _blocked_terms(self, y_true, query, ref_labels, reference, self_index, ref_mask):
        """``(terms, labels_ok)`` of every query, computed ``block_size`` queries at a time.

        The queries are padded to whole blocks (copies of the last row, dropped afterwards)
        and mapped over with ``keras.ops.map``; each block runs under ``keras.remat``, so
        the backward pass recomputes a block's ``(block_size, m)`` matrices instead of
        keeping every block's. A block's relation is built inside it: no ``(n, m)`` mask
        exists either. Without a reference the batch is the reference, and query ``i``'s
        self is its row ``i``.
        """
        block = self.block_size
        n = ops.shape(query)[0]
        square = reference is None
        full = query if square else reference
        full_labels = ref_labels
        if square and self.label_format != "relation":  # a relation's rows already name the columns
            full_labels = y_true
        if square:
            self_index = ops.arange(n, dtype="int32")
        elif self_index is None:
            self_index = -ops.ones((n,), dtype="int32")
        else:
            self_index = ops.reshape(ops.cast(ops.convert_to_tensor(self_index), "int32"), (-1,))
        position = ops.arange(((n + block - 1) // block) * block, dtype="int32")
        real = position < n
        rows = ops.minimum(position, n - 1)

        def blocks(x):
            x = ops.take(x, rows, axis=0)
            return ops.reshape(x, (-1, block, *x.shape[1:]))

        # Every argument of a rematerialised block is numeric: TensorFlow's recompute_grad
        # differentiates with respect to each, and fails on booleans.
        def numeric(x):
            x = ops.convert_to_tensor(x)
            return ops.cast(x, "int32") if x.dtype == "bool" else x

        y_true = numeric(y_true)
        full_labels = None if full_labels is None else numeric(full_labels)
        ref_mask = None if ref_mask is None else ops.cast(ops.convert_to_tensor(ref_mask), "float32")
        extras = [x for x in (full_labels, ref_mask) if x is not None]

        def one_block(q, labels, own, keep, reference_rows, *given):
            given = list(given)
            block_ref_labels = given.pop(0) if full_labels is not None else None
            block_ref_mask = given.pop(0) if ref_mask is not None else None
            relation = self._relation(labels, block_ref_labels, own, reference_rows, block_ref_mask)
            flat = []
            for term in self.terms(relation, q, reference_rows):
                flat.extend(ops.where(keep > 0.5, value, ops.zeros_like(value)) for value in term)
            ok = ops.ones(()) if relation.labels_ok is None else ops.cast(relation.labels_ok, "float32")
            return (*flat, ok)

        rematerialised = keras.remat(one_block)
        own_blocks = ops.reshape(ops.where(real, ops.take(self_index, rows), -1), (-1, block))
        real_blocks = ops.reshape(ops.cast(real, "float32"), (-1, block))
        outputs = ops.map(
            lambda args: rematerialised(*args, full, *extras),
            (blocks(query), blocks(y_true), own_blocks, real_blocks),
        )
        values = [ops.reshape(x, (-1,))[:n] for x in outputs[:-1]]
        terms = [reducers_module.Terms(*values[i : i + 3]) for i in range(0, len(values), 3)]
        labels_ok = ops.min(outputs[-1]) > 0.5
        return terms, labels_ok

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

    def reduce_terms(self, terms, weights, relation, query, reference, reduction="auto") -> Tensor:
        """The loss of per-query ``terms``: the reducer's value (or Keras' ``reduction``).

        ``weights`` are per-query sample weights (or ``None``); a NaN or Inf in ``query``
        or ``reference`` gives NaN, and so do labels the relation marks invalid. Used by
        :meth:`__call__` and by wrappers that gather terms first
        (:func:`dmlkeras.distributed.cross_replica`).
        """
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
        ref_mask: Tensor | None = None,
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
        ref_mask : bool tensor of shape (m,), optional
            With a reference: the rows that exist (default all); the others are neither
            positives nor negatives of any query (the empty slots of a memory).
        """
        with keras.name_scope(self.name):
            value = self._loss(y_true, y_pred, sample_weight, ref_labels, ref_embeddings, self_index, ref_mask, "auto")
        if self.reduction in (None, "none", "sum"):
            return value
        # As keras.losses.Loss does: under tf.distribute, Keras sums the replicas' losses and
        # gradients, so a mean is divided by the number of replicas (a no-op elsewhere).
        return scale_loss_for_distribution(value)

    def _loss(self, y_true, y_pred, sample_weight, ref_labels, ref_embeddings, self_index, ref_mask, reduction):
        if type(self).terms is InBatchLoss.terms or self.block_size is None:
            relation, labels, query, reference = self._inputs(
                y_true, y_pred, ref_labels, ref_embeddings, self_index, ref_mask
            )
            if relation is None:
                value = self.compute(labels, query)
                return value if sample_weight is None else value * ops.mean(as_float32(sample_weight))
            terms = self.terms(relation, query, reference)
        else:
            y_true, query, reference = self._checked(y_true, y_pred, ref_labels, ref_embeddings, self_index, ref_mask)
            if query.shape[0] is not None and query.shape[0] <= self.block_size:  # one block: the plain loss
                relation = self._relation(y_true, ref_labels, self_index, reference, ref_mask)
                terms = self.terms(relation, query, reference)
            else:
                terms, labels_ok = self._blocked_terms(y_true, query, ref_labels, reference, self_index, ref_mask)
                relation = Relation(None, None, labels_ok=labels_ok)
        return self.reduce_terms(terms, self._weights(sample_weight, query), relation, query, reference, reduction)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        """Per-query values with a Keras mask of the queries that count (``reduction="none"``)."""
        return self._loss(y_true, y_pred, None, None, None, None, None, "none")

    def block_config(self) -> dict:
        """``{"block_size": ...}`` when the loss is blocked (part of :meth:`get_config`)."""
        return {} if self.block_size is None else {"block_size": self.block_size}

    def get_config(self) -> dict:
        config = {**super().get_config(), "distance": distances_module.serialize(self.distance)}
        if self.miner is not None:
            config["miner"] = keras.saving.serialize_keras_object(self.miner)
        if self._reducer_arg is not None:
            config["reducer"] = keras.saving.serialize_keras_object(self._reducer_arg)
        if self.label_format != "auto":
            config["label_format"] = self.label_format
        config.update(self.block_config())
        return config

    @classmethod
    def from_config(cls, config: dict) -> "InBatchLoss":
        config = dict(config)
        for key in ("miner", "reducer"):
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
