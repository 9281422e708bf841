"""Quadruplet loss (Chen et al., CVPR 2017): on explicit quadruplets and mined in a batch.

The quadruplet loss adds to the triplet term a second term that pushes the
anchor-positive distance below the distance of a *negative pair* that does
not involve the anchor's class:

.. math::

    [d(a, p) - d(a, n_1) + m_1]_+ + [d(a, p) - d(n_1, n_2) + m_2]_+,

with ``labels(n1) != labels(n2)``, both different from the anchor's, and
``m1 > m2`` (``margin_pos`` and ``margin_neg`` here). Chen et al. use the
square of a learned metric; ``metric="squared_euclidean"`` is the closest
fixed-metric reading, ``"euclidean"`` (the default, as in
:mod:`dmlkeras.losses.triplets`) keeps the margins in distance units.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from dmlkeras._validation import as_float32, check_float
from dmlkeras import distances as distances_module
from dmlkeras.distances import paired_distances
from dmlkeras.losses.base import InBatchLoss, get_distance
from dmlkeras.mining import hardest_negative, hardest_negative_pair, hardest_positive
from dmlkeras.reducers import element_terms

Tensor = Any

MINING = ("hard",)


@keras.saving.register_keras_serializable(package="dmlkeras")
class QuadrupletMarginLoss(keras.losses.Loss):
    """Quadruplet loss on explicit (anchor, positive, negative1, negative2) quadruplets.

    Per quadruplet
    ``max(d(a, p) - d(a, n1) + margin_pos, 0) + max(d(a, p) - d(n1, n2) + margin_neg, 0)``,
    averaged over the quadruplets. ``n1`` and ``n2`` must be of two classes
    both different from the anchor's (what
    :func:`dmlkeras.models.build_quadruplet_model` is fed).

    Parameters
    ----------
    margin_pos : float, default 1.0
        Margin of the triplet term (``alpha_1`` in the paper).
    margin_neg : float, default 0.5
        Margin of the negative-pair term (``alpha_2``, smaller than ``alpha_1``).
    distance : str, callable or Distance, default "euclidean"
        As the in-batch losses' ``distance=`` (:mod:`dmlkeras.distances`); a similarity
        is used as its distance. ``metric=`` is the older name.

    Notes
    -----
    ``y_pred`` is ``(n, 4, d)``: the stacked ``[anchor, positive, negative1,
    negative2]`` embeddings. ``y_true`` is ignored (pass zeros).

    Examples
    --------
    >>> import numpy as np
    >>> q = np.array([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.5], [0.0, 2.0]]])  # d_ap=1, d_an1=1.5, d_n1n2=0.5
    >>> float(QuadrupletMarginLoss(margin_pos=1.0, margin_neg=0.5)(np.zeros(1), q))  # 0.5 + 1.0
    1.5
    """

    def __init__(
        self,
        margin_pos: float = 1.0,
        margin_neg: float = 0.5,
        metric: Any = None,
        name: str = "quadruplet_margin_loss",
        distance: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.margin_pos = check_float(margin_pos, "margin_pos", minimum=0.0)
        self.margin_neg = check_float(margin_neg, "margin_neg", minimum=0.0)
        self.distance = get_distance(distance, metric)

    @property
    def metric(self) -> str:
        """The distance's name (the older ``metric`` attribute)."""
        return self.distance.name

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        y_pred = as_float32(y_pred)
        if len(y_pred.shape) != 3 or y_pred.shape[1] != 4:
            raise ValueError(
                "y_pred must be stacked [anchor, positive, negative1, negative2] embeddings of shape "
                f"(batch_size, 4, embedding_dim); got shape {tuple(y_pred.shape)}."
            )
        anchor, positive, negative1, negative2 = y_pred[:, 0], y_pred[:, 1], y_pred[:, 2], y_pred[:, 3]
        positive_distance = paired_distances(anchor, positive, self.distance)
        triplet_term = ops.relu(positive_distance - paired_distances(anchor, negative1, self.distance) + self.margin_pos)
        pair_term = ops.relu(positive_distance - paired_distances(negative1, negative2, self.distance) + self.margin_neg)
        return triplet_term + pair_term

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "margin_pos": self.margin_pos,
            "margin_neg": self.margin_neg,
            "distance": distances_module.serialize(self.distance),
        }


@keras.saving.register_keras_serializable(package="dmlkeras")
class QuadrupletLoss(InBatchLoss):
    """Quadruplet loss with quadruplets mined inside a labelled batch.

    With ``mining="hard"`` (the paper's margin-based online hard negative
    mining, batch-hard style), per anchor ``a``: the hardest positive
    ``d_ap = max_p d(a, p)``, the hardest negative ``d_an = min_n d(a, n)``
    and the closest negative pair that shares no class with the anchor,
    ``d_lk = min d(l, k)`` over ``labels_l != labels_k``, both different from
    ``labels_a`` (:func:`dmlkeras.mining.hardest_negative_pair`). The loss is

    ``mean_a max(d_ap - d_an + margin_pos, 0) + mean_a max(d_ap - d_lk + margin_neg, 0)``,

    each mean over the anchors for which its term exists (a positive and a
    negative; a positive and such a pair, which needs three classes).

    Parameters
    ----------
    margin_pos : float, default 1.0
        Margin of the triplet term.
    margin_neg : float, default 0.5
        Margin of the negative-pair term.
    mining : {"hard"}, default "hard"
        Only batch-hard mining is offered: summing the second term over all
        quadruplets needs, per anchor class, the sorted distances of all
        negative pairs, which does not fit the O(n^2) memory rule.
    distance : str, callable or Distance, default "euclidean"
        See :mod:`dmlkeras.distances` (``metric=`` is the older name).
    reducer : str or Reducer, default "mean"
        Applied to each of the two terms.

    Notes
    -----
    No ``miner``: the quadruplets are mined here. Against a reference, the negative
    pair is a pair of reference rows. A batch where no anchor has a term (one class, all distinct labels, a
    single sample) gives 0 with a zero gradient. Memory is O(n^2).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[0.0], [1.0], [1.5], [4.0], [6.0]], "float32")
    >>> y = np.array([0, 0, 1, 2, 2])
    >>> round(float(QuadrupletLoss(margin_pos=1.0, margin_neg=0.5)(y, x)), 4)
    1.625
    """

    blockable = False  # with a reference, its negative pairs need the (m, m) reference distances

    def __init__(
        self,
        margin_pos: float = 1.0,
        margin_neg: float = 0.5,
        mining: str = "hard",
        distance: Any = None,
        reducer: Any = None,
        name: str = "quadruplet_loss",
        metric: Any = None,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("miner") is not None:
            raise ValueError(
                "QuadrupletLoss mines its own quadruplets (mining='hard'); it takes no miner."
            )
        kwargs.pop("miner", None)
        if kwargs.get("label_format", "auto") not in ("auto", "ids"):
            raise ValueError("QuadrupletLoss needs class ids: its negative pairs are pairs of two other classes.")
        super().__init__(distance=distance, reducer=reducer, name=name, metric=metric, **kwargs)
        if mining not in MINING:
            raise ValueError(f"mining must be one of {MINING}; got {mining!r}.")
        self.margin_pos = check_float(margin_pos, "margin_pos", minimum=0.0)
        self.margin_neg = check_float(margin_neg, "margin_neg", minimum=0.0)
        self.mining = mining

    def terms(self, relation, query, reference):
        if relation.ids is None:
            raise ValueError(
                "QuadrupletLoss needs class ids (n,): its negative pairs are pairs of two other classes."
            )
        distances = self.distance.distance_matrix(query, reference)
        positive, has_positive = hardest_positive(distances, relation)
        negative, has_negative = hardest_negative(distances, relation)
        if reference is None:
            pair, has_pair = hardest_negative_pair(distances, relation.ids)
        else:
            reference_distances = self.distance.distance_matrix(reference)
            pair, has_pair = hardest_negative_pair(reference_distances, relation.ref_ids, relation.ids)
        triplet_term = ops.relu(positive - negative + self.margin_pos)
        pair_term = ops.relu(positive - pair + self.margin_neg)
        return [
            element_terms(triplet_term, ops.logical_and(has_positive, has_negative)),
            element_terms(pair_term, ops.logical_and(has_positive, has_pair)),
        ]

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "margin_pos": self.margin_pos,
            "margin_neg": self.margin_neg,
            "mining": self.mining,
        }
