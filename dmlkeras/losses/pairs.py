"""Pair losses: contrastive on explicit pairs and on every pair of a batch."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from dmlkeras.distances import as_float32, pairwise_distances, resolve_metric
from dmlkeras.losses.base import InBatchLoss
from dmlkeras.mining import negative_mask, positive_mask
from dmlkeras.reducers import nonzero_mean

Tensor = Any


def _as_vector(x: Tensor, name: str) -> Tensor:
    x = as_float32(x)
    if len(x.shape) == 2 and x.shape[-1] == 1:
        x = ops.reshape(x, (-1,))
    if len(x.shape) != 1:
        raise ValueError(f"{name} must have shape (n,) or (n, 1); got shape {tuple(x.shape)}.")
    return x


@keras.saving.register_keras_serializable(package="dmlkeras")
class ContrastiveLoss(keras.losses.Loss):
    """Contrastive loss on explicit pairs (Hadsell, Chopra & LeCun, 2006).

    Per pair ``y * d**2 + (1 - y) * max(margin - d, 0)**2``, averaged over the
    pairs: the same values as tensorflow-addons' ``ContrastiveLoss``.

    Parameters
    ----------
    margin : float, default 1.0
        Dissimilar pairs closer than this are penalised.

    Notes
    -----
    ``y_true`` is ``(n,)`` with 1 for similar and 0 for dissimilar pairs;
    ``y_pred`` is ``(n,)`` pair distances, e.g. the output of
    :func:`dmlkeras.models.build_siamese_model`.

    Examples
    --------
    >>> import numpy as np
    >>> loss = ContrastiveLoss(margin=1.0)
    >>> float(loss(np.array([1.0, 0.0]), np.array([0.5, 0.25])))  # (0.25 + 0.5625) / 2
    0.40625
    """

    def __init__(self, margin: float = 1.0, name: str = "contrastive_loss", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.margin = float(margin)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        distances = _as_vector(y_pred, "y_pred (pair distances)")
        similar = _as_vector(y_true, "y_true (1 = similar, 0 = dissimilar)")
        if similar.shape[0] is not None and distances.shape[0] is not None and similar.shape[0] != distances.shape[0]:
            raise ValueError(
                f"y_true has {similar.shape[0]} pair labels but y_pred has {distances.shape[0]} distances."
            )
        return similar * ops.square(distances) + (1.0 - similar) * ops.square(
            ops.relu(self.margin - distances)
        )

    def get_config(self) -> dict:
        return {**super().get_config(), "margin": self.margin}


@keras.saving.register_keras_serializable(package="dmlkeras")
class BatchContrastiveLoss(InBatchLoss):
    """Contrastive loss over every pair of a labelled batch.

    Positive pairs cost ``max(d - pos_margin, 0)**2``, negative pairs
    ``max(neg_margin - d, 0)**2``; the result is the mean over the pairs whose
    cost is positive (0 when none is).

    Parameters
    ----------
    pos_margin : float, default 0.0
        Positives closer than this cost nothing.
    neg_margin : float, default 1.0
        Negatives farther than this cost nothing.
    metric : str, default "euclidean"
        See :mod:`dmlkeras.distances`.

    Examples
    --------
    >>> import numpy as np
    >>> loss = BatchContrastiveLoss(neg_margin=1.0)
    >>> float(loss(np.array([0, 0, 1]), np.array([[0.0, 0.0], [0.5, 0.0], [0.0, 0.0]])))
    0.5
    """

    def __init__(
        self,
        pos_margin: float = 0.0,
        neg_margin: float = 1.0,
        metric: str = "euclidean",
        name: str = "batch_contrastive_loss",
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.pos_margin = float(pos_margin)
        self.neg_margin = float(neg_margin)
        self.metric = resolve_metric(metric)

    def compute(self, labels: Tensor, embeddings: Tensor) -> Tensor:
        distances = pairwise_distances(embeddings, metric=self.metric)
        positives = positive_mask(labels)
        negatives = negative_mask(labels)
        costs = ops.where(
            positives,
            ops.square(ops.relu(distances - self.pos_margin)),
            ops.square(ops.relu(self.neg_margin - distances)),
        )
        return nonzero_mean(costs, ops.logical_or(positives, negatives))

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "pos_margin": self.pos_margin,
            "neg_margin": self.neg_margin,
            "metric": self.metric,
        }
