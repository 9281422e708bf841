"""Training diagnostics for in-batch metric learning, as Keras metrics.

A metric-learning model can fail silently: with batch-hard mining on random
batches every embedding may collapse to nearly one point, and the triplet
loss then sits at the margin while nothing is learned. These metrics make
the geometry of the embedding visible during ``fit``:

* :class:`ActiveTripletFraction` - share of triplets whose loss is positive
  (``active_triplet_fraction``);
* :class:`MeanPositiveDistance`, :class:`MeanNegativeDistance` and
  :class:`DistanceGap` - how far apart same-class and different-class
  embeddings are (``mean_positive_distance``, ``mean_negative_distance``,
  ``distance_gap``);
* :class:`EmbeddingNormMean`, :class:`EmbeddingNormStd` - the mean and the
  standard deviation of the embedding L2 norms (``embedding_norm_mean``,
  ``embedding_norm_std``).

They are used like any Keras metric, in ``model.compile(metrics=[...])`` of a
model trained with an in-batch loss (``y_true``: integer class labels of
shape ``(n,)`` or ``(n, 1)``, of any integer or float dtype; ``y_pred``:
embeddings ``(n, d)``). Each accumulates over the epoch and is reset by
Keras at the start of every epoch (or by :meth:`reset_state`). State
variables hold *sums and counts*, so every pair, triplet or sample counts
once, whichever batch it came from: a batch weighs as much as the number of
items it contributes, and a batch with nothing to count (a single sample, a
single class, no positive pair) adds nothing. The result of a metric that
has counted nothing yet is 0, never NaN. ``sample_weight`` is not supported
(list them in ``metrics=``, not ``weighted_metrics=``).

:class:`dmlkeras.callbacks.CollapseMonitor` reads these values from the
epoch logs and warns when they show a collapse. :class:`OnViews` applies them
to the views ``(n, v, d)`` of a self-supervised model (docs/ssl.md).

Pairs and triplets are taken from :mod:`dmlkeras.mining` and distances from
:mod:`dmlkeras.distances`, so "positive", "hard", "semi-hard" and "active"
mean here exactly what they mean in the losses. Counts are held in float32:
exact up to 2**24 items per epoch, and accurate to float32 rounding beyond.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from dmlkeras._validation import check_labels_and_embeddings
from dmlkeras.distances import pairwise_distances, resolve_metric
from dmlkeras.mining import (
    MINING,
    active_triplet_counts,
    mined_triplets,
    negative_mask,
    positive_mask,
)

__all__ = [
    "ActiveTripletFraction",
    "DistanceGap",
    "EmbeddingNormMean",
    "EmbeddingNormStd",
    "MeanNegativeDistance",
    "MeanPositiveDistance",
    "OnViews",
]

Tensor = Any


class _InBatchMetric(keras.metrics.Metric):
    """Base of the metrics on (labels, embeddings) batches: checks the inputs."""

    def update_state(self, y_true: Tensor, y_pred: Tensor, sample_weight: Tensor | None = None) -> None:
        """Accumulate one batch: ``y_true`` labels ``(n,)`` or ``(n, 1)``, ``y_pred`` embeddings ``(n, d)``.

        Raises
        ------
        ValueError
            On a ``sample_weight`` (not supported) or malformed inputs.
        """
        if sample_weight is not None:
            raise ValueError(
                f"{type(self).__name__} does not support sample_weight: pass it in "
                "compile(metrics=[...]), not weighted_metrics=[...]."
            )
        labels, embeddings = check_labels_and_embeddings(y_true, y_pred)
        self.accumulate(labels, embeddings)

    def accumulate(self, labels: Tensor, embeddings: Tensor) -> None:
        """Add the statistics of a validated batch to the state variables."""
        raise NotImplementedError


class _Ratio(_InBatchMetric):
    """A pooled ratio ``total / count`` over the epoch (0 while ``count`` is 0)."""

    def __init__(self, name: str, dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable(shape=(), initializer="zeros", dtype=self.dtype, name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", dtype=self.dtype, name="count")

    def batch_total_and_count(self, labels: Tensor, embeddings: Tensor) -> tuple[Tensor, Tensor]:
        """Return the batch's ``(sum of values, number of items)``."""
        raise NotImplementedError

    def accumulate(self, labels: Tensor, embeddings: Tensor) -> None:
        total, count = self.batch_total_and_count(labels, embeddings)
        self.total.assign_add(ops.cast(total, self.dtype))
        self.count.assign_add(ops.cast(count, self.dtype))

    def result(self) -> Tensor:
        return ops.divide_no_nan(self.total, self.count)


def _masked_sum_and_count(values: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """``(sum of values where mask, number of true entries)``."""
    total = ops.sum(ops.where(mask, values, ops.zeros_like(values)))
    return total, ops.sum(ops.cast(mask, values.dtype))


@keras.saving.register_keras_serializable(package="dmlkeras")
class ActiveTripletFraction(_Ratio):
    """Share of triplets whose triplet loss is positive (``d_ap - d_an + margin > 0``).

    Near 1 with a loss near the margin, it is the signature of a collapsed
    embedding; falling towards 0, the batches have become easy.

    Parameters
    ----------
    margin : float, default 1.0
        The margin of the triplet loss being monitored.
    mining : {"all", "semi-hard", "hard"}, default "all"
        Which triplets are counted, as :class:`dmlkeras.losses.TripletLoss`
        mines them. ``"all"``: every valid triplet ``(a, p, n)`` of the batch
        (from :func:`dmlkeras.mining.active_triplet_counts`); the epoch value
        weighs batches by their number of valid triplets. ``"semi-hard"``:
        every anchor-positive pair with its semi-hard negative; weighted by
        the number of such pairs. ``"hard"``: every anchor with a positive and
        a negative, with its hardest positive and hardest negative; weighted
        by the number of such anchors.
    metric : str, default "euclidean"
        See :mod:`dmlkeras.distances`.
    name : str, default "active_triplet_fraction"
        The log key.
    dtype : str, optional
        Dtype of the state variables (the float type of Keras by default).

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> x = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.5], [0.0, 2.0]], "float32")
    >>> y = np.array([0, 0, 1, 1])
    >>> m = ActiveTripletFraction(margin=1.0, mining="all")
    >>> m.update_state(y, x)
    >>> float(m.result())  # 6 of the 8 valid triplets are active
    0.75
    """

    def __init__(
        self,
        margin: float = 1.0,
        mining: str = "all",
        metric: str = "euclidean",
        name: str = "active_triplet_fraction",
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, dtype=dtype)
        if mining not in MINING:
            raise ValueError(f"mining must be one of {MINING}; got {mining!r}.")
        self.margin = float(margin)
        self.mining = mining
        self.metric = resolve_metric(metric)

    def batch_total_and_count(self, labels: Tensor, embeddings: Tensor) -> tuple[Tensor, Tensor]:
        distances = ops.stop_gradient(pairwise_distances(embeddings, metric=self.metric))
        if self.mining != "all":
            positive, negative, valid = mined_triplets(distances, labels, self.mining)
            return _masked_sum_and_count(ops.cast(negative < positive + self.margin, distances.dtype), valid)
        per_positive, _ = active_triplet_counts(distances, labels, self.margin)
        positives = ops.cast(positive_mask(labels), distances.dtype)
        negatives = ops.cast(negative_mask(labels), distances.dtype)
        valid_triplets = ops.sum(ops.sum(positives, axis=1) * ops.sum(negatives, axis=1))
        return ops.sum(per_positive), valid_triplets

    def get_config(self) -> dict:
        return {**super().get_config(), "margin": self.margin, "mining": self.mining, "metric": self.metric}


class _PairDistanceMetric(_Ratio):
    """Mean distance over the pairs that ``pair_mask`` selects, pooled over the epoch."""

    def __init__(self, metric: str, name: str, dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)
        self.metric = resolve_metric(metric)

    def pair_mask(self, labels: Tensor) -> Tensor:
        """Boolean ``(n, n)`` mask of the pairs averaged."""
        raise NotImplementedError

    def batch_total_and_count(self, labels: Tensor, embeddings: Tensor) -> tuple[Tensor, Tensor]:
        distances = ops.stop_gradient(pairwise_distances(embeddings, metric=self.metric))
        return _masked_sum_and_count(distances, self.pair_mask(labels))

    def get_config(self) -> dict:
        return {**super().get_config(), "metric": self.metric}


@keras.saving.register_keras_serializable(package="dmlkeras")
class MeanPositiveDistance(_PairDistanceMetric):
    """Mean distance between embeddings of the same class (positive pairs).

    The mean is over every positive pair of the epoch (ordered pairs: each
    unordered pair counts twice, which leaves the mean unchanged), so a batch
    weighs as much as its number of positive pairs.

    Parameters
    ----------
    metric : str, default "euclidean"
        See :mod:`dmlkeras.distances`.
    name : str, default "mean_positive_distance"
    dtype : str, optional

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> m = MeanPositiveDistance()
    >>> m.update_state(np.array([0, 0, 1]), np.array([[0.0, 0.0], [3.0, 4.0], [9.0, 9.0]], "float32"))
    >>> float(m.result())
    5.0
    """

    def __init__(self, metric: str = "euclidean", name: str = "mean_positive_distance", dtype: Any = None) -> None:
        super().__init__(metric=metric, name=name, dtype=dtype)

    def pair_mask(self, labels: Tensor) -> Tensor:
        return positive_mask(labels)


@keras.saving.register_keras_serializable(package="dmlkeras")
class MeanNegativeDistance(_PairDistanceMetric):
    """Mean distance between embeddings of different classes (negative pairs).

    Pooled over every negative pair of the epoch, as
    :class:`MeanPositiveDistance`.

    Parameters
    ----------
    metric : str, default "euclidean"
        See :mod:`dmlkeras.distances`.
    name : str, default "mean_negative_distance"
    dtype : str, optional

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> m = MeanNegativeDistance()
    >>> m.update_state(np.array([0, 0, 1]), np.array([[0.0, 0.0], [0.0, 2.0], [3.0, 4.0]], "float32"))
    >>> round(float(m.result()), 4)  # (5 + 3.6056) / 2
    4.3028
    """

    def __init__(self, metric: str = "euclidean", name: str = "mean_negative_distance", dtype: Any = None) -> None:
        super().__init__(metric=metric, name=name, dtype=dtype)

    def pair_mask(self, labels: Tensor) -> Tensor:
        return negative_mask(labels)


@keras.saving.register_keras_serializable(package="dmlkeras")
class DistanceGap(_InBatchMetric):
    """Mean negative-pair distance minus mean positive-pair distance.

    Exactly ``MeanNegativeDistance - MeanPositiveDistance`` over the epoch:
    both means are pooled over all the pairs seen (a batch weighs as much as
    its number of positive, resp. negative, pairs). Large and positive when
    classes are separated; near 0 (relative to the distances themselves)
    when the embedding carries no class information, e.g. after a collapse.
    It is 0 while either kind of pair has not been seen.

    Parameters
    ----------
    metric : str, default "euclidean"
        See :mod:`dmlkeras.distances`.
    name : str, default "distance_gap"
    dtype : str, optional

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> x = np.array([[0.0, 0.0], [0.0, 1.0], [4.0, 0.0], [4.0, 1.0]], "float32")
    >>> m = DistanceGap()
    >>> m.update_state(np.array([0, 0, 1, 1]), x)
    >>> round(float(m.result()), 4)  # (4 + 4.1231) / 2 - 1
    3.0616
    """

    def __init__(self, metric: str = "euclidean", name: str = "distance_gap", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)
        self.metric = resolve_metric(metric)
        self.positive_total = self.add_variable(shape=(), initializer="zeros", dtype=self.dtype, name="positive_total")
        self.positive_count = self.add_variable(shape=(), initializer="zeros", dtype=self.dtype, name="positive_count")
        self.negative_total = self.add_variable(shape=(), initializer="zeros", dtype=self.dtype, name="negative_total")
        self.negative_count = self.add_variable(shape=(), initializer="zeros", dtype=self.dtype, name="negative_count")

    def accumulate(self, labels: Tensor, embeddings: Tensor) -> None:
        distances = ops.stop_gradient(pairwise_distances(embeddings, metric=self.metric))
        for (total, count), mask in (
            ((self.positive_total, self.positive_count), positive_mask(labels)),
            ((self.negative_total, self.negative_count), negative_mask(labels)),
        ):
            batch_total, batch_count = _masked_sum_and_count(distances, mask)
            total.assign_add(ops.cast(batch_total, self.dtype))
            count.assign_add(ops.cast(batch_count, self.dtype))

    def result(self) -> Tensor:
        both_seen = ops.logical_and(self.positive_count > 0, self.negative_count > 0)
        gap = ops.divide_no_nan(self.negative_total, self.negative_count) - ops.divide_no_nan(
            self.positive_total, self.positive_count
        )
        return ops.where(both_seen, gap, ops.zeros_like(gap))

    def get_config(self) -> dict:
        return {**super().get_config(), "metric": self.metric}


def _norms(embeddings: Tensor) -> Tensor:
    """L2 norm of every row, outside the gradient."""
    return ops.norm(ops.stop_gradient(embeddings), axis=-1)


@keras.saving.register_keras_serializable(package="dmlkeras")
class EmbeddingNormMean(_Ratio):
    """Mean L2 norm of the embeddings, over every sample of the epoch.

    Norms shrinking towards 0 while the loss stays at the margin is the
    other face of a collapse; with L2-normalised embeddings it is 1.

    Parameters
    ----------
    name : str, default "embedding_norm_mean"
    dtype : str, optional

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> m = EmbeddingNormMean()
    >>> m.update_state(np.array([0, 1]), np.array([[3.0, 4.0], [0.0, 1.0]], "float32"))
    >>> float(m.result())
    3.0
    """

    def __init__(self, name: str = "embedding_norm_mean", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)

    def batch_total_and_count(self, labels: Tensor, embeddings: Tensor) -> tuple[Tensor, Tensor]:
        norms = _norms(embeddings)
        return ops.sum(norms), ops.cast(ops.shape(norms)[0], norms.dtype)


@keras.saving.register_keras_serializable(package="dmlkeras")
class EmbeddingNormStd(_InBatchMetric):
    """Standard deviation of the embedding L2 norms, over every sample of the epoch.

    The population standard deviation (``ddof=0``) of all the norms seen
    since the last reset, merged batch by batch with Chan et al.'s parallel
    formula (count, mean and centred sum of squares as state), which stays
    accurate when the spread is tiny next to the mean (normalised
    embeddings give 0, not rounding noise). A Keras metric reports one
    value, hence two classes for the norm statistics: compile both
    :class:`EmbeddingNormMean` and this one.

    Parameters
    ----------
    name : str, default "embedding_norm_std"
    dtype : str, optional

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> m = EmbeddingNormStd()
    >>> m.update_state(np.array([0, 1]), np.array([[3.0, 4.0], [0.0, 1.0]], "float32"))
    >>> float(m.result())  # norms 5 and 1
    2.0
    """

    def __init__(self, name: str = "embedding_norm_std", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)
        self.count = self.add_variable(shape=(), initializer="zeros", dtype=self.dtype, name="count")
        self.mean = self.add_variable(shape=(), initializer="zeros", dtype=self.dtype, name="mean")
        self.m2 = self.add_variable(shape=(), initializer="zeros", dtype=self.dtype, name="m2")

    def accumulate(self, labels: Tensor, embeddings: Tensor) -> None:
        norms = ops.cast(_norms(embeddings), self.dtype)
        batch_count = ops.cast(ops.shape(norms)[0], self.dtype)
        batch_mean = ops.divide_no_nan(ops.sum(norms), batch_count)
        batch_m2 = ops.sum(ops.square(norms - batch_mean))
        previous_count = ops.convert_to_tensor(self.count)
        count = previous_count + batch_count
        delta = batch_mean - self.mean
        mean = self.mean + ops.divide_no_nan(delta * batch_count, count)
        m2 = self.m2 + batch_m2 + ops.divide_no_nan(ops.square(delta) * previous_count * batch_count, count)
        self.count.assign(count)
        self.mean.assign(mean)
        self.m2.assign(m2)

    def result(self) -> Tensor:
        return ops.sqrt(ops.divide_no_nan(self.m2, self.count))


@keras.saving.register_keras_serializable(package="dmlkeras")
class OnViews(keras.metrics.Metric):
    """A diagnostic of this module on the views ``(n, v, d)`` of a self-supervised model.

    The ``n * v`` rows are labelled by sample, so a sample's views are its
    positives and the other samples its negatives: ``OnViews(DistanceGap())``
    is the mean distance between samples minus the mean distance between
    views, which falls to 0 when the embedding collapses. The result keeps the
    wrapped metric's name (``distance_gap``, ...), which
    :class:`dmlkeras.callbacks.CollapseMonitor` reads. ``y_true`` is ignored.

    Parameters
    ----------
    metric : a metric of this module (or its serialised config)

    Examples
    --------
    >>> import numpy as np
    >>> views = np.array([[[0.0, 0.0], [0.0, 1.0]], [[3.0, 0.0], [3.0, 1.0]]], "float32")
    >>> gap = OnViews(DistanceGap())
    >>> gap.update_state(np.zeros(2), views)
    >>> gap.name, round(float(gap.result()), 4)
    ('distance_gap', 2.0811)
    """

    def __init__(self, metric: Any, name: str | None = None, dtype: Any = None) -> None:
        if isinstance(metric, dict):
            metric = keras.saving.deserialize_keras_object(metric)
        if not isinstance(metric, _InBatchMetric):
            raise ValueError(f"OnViews wraps a metric of dmlkeras.metrics (e.g. DistanceGap()); got {metric!r}.")
        super().__init__(name=name or metric.name, dtype=dtype or metric.dtype)
        self.metric = metric

    def update_state(self, y_true: Tensor, y_pred: Tensor, sample_weight: Tensor | None = None) -> None:
        """Accumulate one batch of views ``(n, v, d)``."""
        if len(ops.shape(y_pred)) != 3:
            raise ValueError(
                f"OnViews expects y_pred of views (batch_size, v, embedding_dim); got shape {tuple(ops.shape(y_pred))}."
            )
        n, views, dim = ops.shape(y_pred)
        self.metric.update_state(ops.repeat(ops.arange(n), views), ops.reshape(y_pred, (-1, dim)), sample_weight)

    def result(self) -> Tensor:
        return self.metric.result()

    def reset_state(self) -> None:
        self.metric.reset_state()

    def get_config(self) -> dict:
        return {"metric": keras.saving.serialize_keras_object(self.metric), "name": self.name, "dtype": self.dtype}
