"""Triplet losses: on explicit triplets and mined inside a labelled batch."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from dmlkeras._validation import as_float32, check_float
from dmlkeras import distances as distances_module
from dmlkeras.distances import paired_distances
from dmlkeras.losses.base import InBatchLoss, get_distance
from dmlkeras.mining import (
    MINING,
    Miner,
    SemiHardMiner,
    active_triplet_counts,
    chosen_pairs,
    mined_triplets,
    semihard_triplets,
    triplet_negative_distances,
)
from dmlkeras.reducers import Terms, element_terms

Tensor = Any


def _hinge(difference: Tensor, margin: float, soft: bool) -> Tensor:
    """``max(d_ap - d_an + margin, 0)``, or ``softplus(d_ap - d_an)`` when soft."""
    return ops.softplus(difference) if soft else ops.relu(difference + margin)


@keras.saving.register_keras_serializable(package="dmlkeras")
class TripletMarginLoss(keras.losses.Loss):
    """Triplet loss on explicit (anchor, positive, negative) triplets.

    Per triplet ``max(d(a, p) - d(a, n) + margin, 0)``, or with ``soft=True``
    ``softplus(d(a, p) - d(a, n))``; averaged over the triplets.

    Parameters
    ----------
    margin : float, default 1.0
    distance : str, callable or Distance, default "euclidean"
        As the in-batch losses' ``distance=`` (:mod:`dmlkeras.distances`); a similarity
        is used as its distance (e.g. ``1 - cos``). ``metric=`` is the older name.
    soft : bool, default False
        Use the soft-margin form (Hermans et al., 2017).

    Notes
    -----
    ``y_pred`` is ``(n, 3, d)``: the stacked ``[anchor, positive, negative]``
    embeddings that :func:`dmlkeras.models.build_triplet_model` outputs.
    ``y_true`` is ignored (pass zeros).

    Examples
    --------
    >>> import numpy as np
    >>> triplet = np.array([[[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]]])  # d_ap = 1, d_an = 3
    >>> float(TripletMarginLoss(margin=2.5)(np.zeros(1), triplet))
    0.5
    """

    def __init__(
        self,
        margin: float = 1.0,
        metric: Any = None,
        soft: bool = False,
        name: str = "triplet_margin_loss",
        distance: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.margin = check_float(margin, "margin", minimum=0.0)
        self.distance = get_distance(distance, metric)
        self.soft = bool(soft)

    @property
    def metric(self) -> str:
        """The distance's name (the older ``metric`` attribute)."""
        return self.distance.name

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        y_pred = as_float32(y_pred)
        if len(y_pred.shape) != 3 or y_pred.shape[1] != 3:
            raise ValueError(
                "y_pred must be stacked [anchor, positive, negative] embeddings of shape "
                f"(batch_size, 3, embedding_dim); got shape {tuple(y_pred.shape)}."
            )
        anchor, positive, negative = y_pred[:, 0], y_pred[:, 1], y_pred[:, 2]
        difference = paired_distances(anchor, positive, self.distance) - paired_distances(
            anchor, negative, self.distance
        )
        return _hinge(difference, self.margin, self.soft)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "margin": self.margin,
            "distance": distances_module.serialize(self.distance),
            "soft": self.soft,
        }


@keras.saving.register_keras_serializable(package="dmlkeras")
class TripletLoss(InBatchLoss):
    """Triplet loss with triplets mined inside a labelled batch (or against a reference).

    Parameters
    ----------
    margin : float, default 1.0
        Non-negative.
    mining : {"semi-hard", "hard", "all"}, default "semi-hard"
        The short form of the mining (used when no ``miner`` is given).
        ``"semi-hard"`` (Schroff et al., FaceNet 2015): for every
        anchor-positive pair, the closest negative farther than the positive,
        or the farthest negative when there is none; mean over the pairs.
        ``"hard"`` (batch-hard, Hermans et al. 2017): per anchor, the hardest
        positive against the hardest negative; mean over the anchors.
        ``"all"`` (batch-all): mean over the valid triplets whose loss is
        positive.
    distance : str, callable or Distance, default "euclidean"
        See :mod:`dmlkeras.distances` (tensorflow-addons' ``"L2"``,
        ``"squared-L2"`` and ``"angular"`` are accepted; ``metric=`` is the older name).
    soft : bool, default False
        Soft margin ``softplus(d_ap - d_an)`` instead of the hinge (not with
        ``mining="all"`` or a pair miner, which would need every triplet).
    miner : Miner, optional
        Any :mod:`dmlkeras.mining` miner: one that picks a negative per positive pair
        (:class:`~dmlkeras.mining.SemiHardMiner`) gives those triplets; any other gives
        every triplet of its chosen positive and negative pairs (weighted by its negative
        weights). Default reducer then: the mean over the triplets.
    reducer : str or Reducer, optional
        Default ``"nonzero_mean"`` for ``mining="all"``, else ``"mean"``.
    label_format : see :class:`~dmlkeras.losses.InBatchLoss`

    Notes
    -----
    Anchors with no positive or no negative in the batch are left out of the
    mean, and a batch with no valid anchor gives 0 with a zero gradient.
    tensorflow-addons differs there: its ``TripletSemiHardLoss`` counts an
    anchor without negatives against the row minimum, its
    ``TripletHardLoss`` counts an anchor without positives with ``d_ap = 0``,
    and a single-sample batch gives NaN. Where every anchor has a positive
    and a negative (P x K batches with K >= 2) the values are the same.

    Memory is O(n m): no (n, m, m) tensor is built (see
    :mod:`dmlkeras.mining`); semi-hard and batch-all mining take O(n m K)
    time for K samples per class.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.5], [0.0, 2.0]])
    >>> y = np.array([0, 0, 1, 1])
    >>> round(float(TripletLoss(margin=1.0, mining="hard")(y, x)), 4)
    1.2205
    """

    def __init__(
        self,
        margin: float = 1.0,
        mining: str = "semi-hard",
        distance: Any = None,
        soft: bool = False,
        miner: Miner | None = None,
        reducer: Any = None,
        label_format: str = "auto",
        name: str = "triplet_loss",
        metric: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            distance=distance, miner=miner, reducer=reducer, label_format=label_format, name=name, metric=metric, **kwargs
        )
        if mining not in MINING:
            raise ValueError(f"mining must be one of {MINING}; got {mining!r}.")
        if soft and (mining == "all" if self.miner is None else not isinstance(self.miner, SemiHardMiner)):
            raise ValueError(
                "soft=True is not available with mining='all' or a pair miner: the soft margin has no "
                "closed form over all triplets; use mining='hard' or 'semi-hard' (or a SemiHardMiner)."
            )
        self.margin = check_float(margin, "margin", minimum=0.0)
        self.mining = mining
        self.soft = bool(soft)
        self.default_reducer = "nonzero_mean" if (mining == "all" and self.miner is None) else "mean"

    def terms(self, relation, query, reference):
        distances = self.distance.distance_matrix(query, reference)
        mined = self.mine(distances, relation, query)
        if mined is None and self.mining != "all":
            if self.mining == "semi-hard":
                positive, negative, valid = semihard_triplets(distances, relation)
            else:
                positive, negative, valid = mined_triplets(distances, relation, self.mining)
            return [element_terms(_hinge(positive - negative, self.margin, self.soft), valid)]
        if mined is not None and mined.triplet_negative is not None:
            negative = triplet_negative_distances(distances, mined, relation)
            return [element_terms(_hinge(distances - negative, self.margin, self.soft), mined.positives)]
        positives, negatives, weights = chosen_pairs(relation, mined)
        if weights is None and mined is not None:
            weights = ops.cast(negatives, distances.dtype)
        negative_count = ops.sum(ops.cast(negatives, distances.dtype) if weights is None else weights, axis=1)
        per_positive, per_negative = active_triplet_counts(
            distances, relation, self.margin, positives=None if mined is None else positives, negative_weights=weights
        )
        # sum of per_positive (d + margin) - per_negative d, with one (n, m) product (and its gradient).
        total = ops.sum((per_positive - per_negative) * distances, axis=1) + self.margin * ops.sum(per_positive, axis=1)
        count = ops.sum(ops.cast(positives, distances.dtype), axis=1) * negative_count
        return [Terms(total, count, ops.sum(per_positive, axis=1))]

    def get_config(self) -> dict:
        return {**super().get_config(), "margin": self.margin, "mining": self.mining, "soft": self.soft}


@keras.saving.register_keras_serializable(package="dmlkeras")
class TripletSemiHardLoss(TripletLoss):
    """:class:`TripletLoss` with semi-hard mining and tensorflow-addons' signature.

    A drop-in for ``tfa.losses.TripletSemiHardLoss(margin=1.0, distance_metric="L2")``.

    Examples
    --------
    >>> import numpy as np
    >>> loss = TripletSemiHardLoss(margin=1.0, distance_metric="angular")
    >>> loss.metric
    'cosine'
    """

    def __init__(
        self,
        margin: float = 1.0,
        distance_metric: str = "L2",
        name: str = "triplet_semihard_loss",
        **kwargs: Any,
    ) -> None:
        super().__init__(margin=margin, mining="semi-hard", distance=distance_metric, name=name, **kwargs)
        self.distance_metric = distance_metric

    def get_config(self) -> dict:
        config = {**keras.losses.Loss.get_config(self), **self.block_config()}
        return {**config, "margin": self.margin, "distance_metric": self.distance_metric}


@keras.saving.register_keras_serializable(package="dmlkeras")
class TripletHardLoss(TripletLoss):
    """:class:`TripletLoss` with batch-hard mining and tensorflow-addons' signature.

    A drop-in for ``tfa.losses.TripletHardLoss(margin=1.0, soft=False, distance_metric="L2")``.

    Examples
    --------
    >>> TripletHardLoss(soft=True).mining
    'hard'
    """

    def __init__(
        self,
        margin: float = 1.0,
        soft: bool = False,
        distance_metric: str = "L2",
        name: str = "triplet_hard_loss",
        **kwargs: Any,
    ) -> None:
        super().__init__(margin=margin, mining="hard", distance=distance_metric, soft=soft, name=name, **kwargs)
        self.distance_metric = distance_metric

    def get_config(self) -> dict:
        config = {**keras.losses.Loss.get_config(self), **self.block_config()}
        return {**config, "margin": self.margin, "soft": self.soft, "distance_metric": self.distance_metric}
