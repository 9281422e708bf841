"""Pair losses: contrastive on explicit pairs and on every pair of a batch."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from dmlkeras import distances as distances_module
from dmlkeras._validation import as_float32, check_float
from dmlkeras.distances import paired_distances
from dmlkeras.losses.base import InBatchLoss, get_distance
from dmlkeras.mining import Miner, chosen_pairs
from dmlkeras.reducers import element_terms

Tensor = Any


def as_pair_vector(x: Tensor, name: str) -> Tensor:
    """One float value per pair: ``(n,)`` or ``(n, 1)`` as ``(n,)``, else ``ValueError``."""
    x = as_float32(x)
    if len(x.shape) == 2 and x.shape[-1] == 1:
        x = ops.reshape(x, (-1,))
    if len(x.shape) != 1:
        raise ValueError(f"{name} must have shape (n,) or (n, 1); got shape {tuple(x.shape)}.")
    return x


def pair_distances(y_pred: Tensor, distance: Any, what: str = "pair distances") -> Tensor:
    """The ``(n,)`` pair distances of a pair loss's ``y_pred``.

    ``y_pred`` is pair distances ``(n,)`` / ``(n, 1)``, used as they are, or stacked
    ``[left, right]`` embeddings ``(n, 2, d)``, compared with ``distance``
    (:func:`dmlkeras.distances.paired_distances`). ``what`` names the values in errors.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> pairs = np.array([[[0.0, 0.0], [3.0, 4.0]]], "float32")
    >>> keras.ops.convert_to_numpy(pair_distances(pairs, "euclidean"))
    array([5.], dtype=float32)
    """
    y_pred = as_float32(y_pred)
    if len(y_pred.shape) == 3:
        if y_pred.shape[1] != 2:
            raise ValueError(
                f"y_pred must be {what} (batch_size,) or stacked [left, right] embeddings "
                f"(batch_size, 2, embedding_dim); got shape {tuple(y_pred.shape)}."
            )
        return paired_distances(y_pred[:, 0], y_pred[:, 1], distance)
    return as_pair_vector(y_pred, f"y_pred ({what}, or stacked pair embeddings (n, 2, d))")


@keras.saving.register_keras_serializable(package="dmlkeras")
class ContrastiveLoss(keras.losses.Loss):
    """Contrastive loss on explicit pairs (Hadsell, Chopra & LeCun, 2006).

    Per pair ``y * d**2 + (1 - y) * max(margin - d, 0)**2``, averaged over the
    pairs: the same values as tensorflow-addons' ``ContrastiveLoss``.

    Parameters
    ----------
    margin : float, default 1.0
        Dissimilar pairs closer than this are penalised.
    distance : str, callable or Distance, default "euclidean"
        How stacked pair embeddings are compared (as the in-batch losses'
        ``distance=``; a similarity is used as its distance). Pair distances given
        directly are used as they are.

    Notes
    -----
    ``y_true`` is ``(n,)`` with 1 for similar and 0 for dissimilar pairs;
    ``y_pred`` is ``(n,)`` pair distances, e.g. the output of
    :func:`dmlkeras.models.build_siamese_model`, or ``(n, 2, d)`` stacked
    ``[left, right]`` embeddings, compared with ``distance``.

    Examples
    --------
    >>> import numpy as np
    >>> loss = ContrastiveLoss(margin=1.0)
    >>> float(loss(np.array([1.0, 0.0]), np.array([0.5, 0.25])))  # (0.25 + 0.5625) / 2
    0.40625
    """

    def __init__(
        self, margin: float = 1.0, name: str = "contrastive_loss", distance: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.margin = check_float(margin, "margin", minimum=0.0)
        self.distance = get_distance(distance)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        distances = pair_distances(y_pred, self.distance)
        similar = as_pair_vector(y_true, "y_true (1 = similar, 0 = dissimilar)")
        if similar.shape[0] is not None and distances.shape[0] is not None and similar.shape[0] != distances.shape[0]:
            raise ValueError(
                f"y_true has {similar.shape[0]} pair labels but y_pred has {distances.shape[0]} distances."
            )
        return similar * ops.square(distances) + (1.0 - similar) * ops.square(
            ops.relu(self.margin - distances)
        )

    def get_config(self) -> dict:
        return {**super().get_config(), "margin": self.margin, "distance": distances_module.serialize(self.distance)}


@keras.saving.register_keras_serializable(package="dmlkeras")
class BatchContrastiveLoss(InBatchLoss):
    """Contrastive loss over every pair of a labelled batch (or of the batch against a reference).

    Positive pairs cost ``max(d - pos_margin, 0)**2``, negative pairs
    ``max(neg_margin - d, 0)**2``; the result is the mean over the pairs whose
    cost is positive (0 when none is).

    Parameters
    ----------
    pos_margin : float, default 0.0
        Positives closer than this cost nothing (non-negative).
    neg_margin : float, default 1.0
        Negatives farther than this cost nothing (non-negative).
    distance : str, callable or Distance, default "euclidean"
        See :mod:`dmlkeras.distances` (``metric=`` is the older name).
    miner : Miner, optional
        Only the pairs a :mod:`dmlkeras.mining` miner chose (triplet miners: the pairs of
        their triplets), negative costs weighted by its negative weights.
    reducer : str or Reducer, default "nonzero_mean"
    label_format : see :class:`~dmlkeras.losses.InBatchLoss`

    Examples
    --------
    >>> import numpy as np
    >>> loss = BatchContrastiveLoss(neg_margin=1.0)
    >>> float(loss(np.array([0, 0, 1]), np.array([[0.0, 0.0], [0.5, 0.0], [0.0, 0.0]])))
    0.5
    """

    default_reducer = "nonzero_mean"

    def __init__(
        self,
        pos_margin: float = 0.0,
        neg_margin: float = 1.0,
        distance: Any = None,
        miner: Miner | None = None,
        reducer: Any = None,
        label_format: str = "auto",
        name: str = "batch_contrastive_loss",
        metric: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            distance=distance, miner=miner, reducer=reducer, label_format=label_format, name=name, metric=metric, **kwargs
        )
        self.pos_margin = check_float(pos_margin, "pos_margin", minimum=0.0)
        self.neg_margin = check_float(neg_margin, "neg_margin", minimum=0.0)

    def terms(self, relation, query, reference):
        distances = self.distance.distance_matrix(query, reference)
        positives, negatives, weights = chosen_pairs(relation, self.mine(distances, relation, query))
        costs = ops.where(
            positives,
            ops.square(ops.relu(distances - self.pos_margin)),
            ops.square(ops.relu(self.neg_margin - distances)),
        )
        if weights is not None:
            weights = ops.where(negatives, weights, ops.ones_like(weights))
        return [element_terms(costs, ops.logical_or(positives, negatives), weights)]

    def get_config(self) -> dict:
        return {**super().get_config(), "pos_margin": self.pos_margin, "neg_margin": self.neg_margin}
