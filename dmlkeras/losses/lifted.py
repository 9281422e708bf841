"""Lifted structured loss (Song et al., CVPR 2016), smooth form."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from dmlkeras._validation import check_float
from dmlkeras.losses.base import InBatchLoss
from dmlkeras.mining import Miner, chosen_pairs
from dmlkeras.reducers import element_terms, masked_logsumexp

Tensor = Any


def _lifted_terms(distances, positives, negatives, weights, margin: float, square: bool):
    """Per-query terms of the lifted loss: ``0.5 max(J_ij, 0)^2`` for every positive pair."""
    logits = margin - distances
    if weights is not None:  # log sum_k w_k exp(.) : the weights enter as log-weights
        logits = logits + ops.log(ops.where(negatives, weights, ops.ones_like(weights)))
    row_terms = masked_logsumexp(logits, negatives, axis=1)  # (n,), -inf without negatives
    has_row = ops.any(negatives, axis=1)
    if square:  # the reference is the batch: the other end's terms are its row's
        column_terms, has_column = row_terms, has_row
    else:  # a reference row's negatives among the queries
        column_terms = masked_logsumexp(logits, negatives, axis=0)
        has_column = ops.any(negatives, axis=0)
    shape = ops.shape(distances)
    left = ops.expand_dims(ops.where(has_row, row_terms, ops.zeros_like(row_terms)), 1)
    right = ops.expand_dims(ops.where(has_column, column_terms, ops.zeros_like(column_terms)), 0)
    pair_has = ops.stack(
        [
            ops.broadcast_to(ops.expand_dims(has_row, 1), shape),
            ops.broadcast_to(ops.expand_dims(has_column, 0), shape),
        ],
        axis=-1,
    )
    pair_terms = ops.stack([ops.broadcast_to(left, shape), ops.broadcast_to(right, shape)], axis=-1)
    combined = masked_logsumexp(pair_terms, pair_has, axis=-1)  # logaddexp(L_i, L_j)
    valid = ops.logical_and(positives, ops.any(pair_has, axis=-1))
    safe_combined = ops.where(valid, combined, ops.zeros_like(combined))
    hinge = ops.square(ops.relu(safe_combined + distances))
    return element_terms(0.5 * hinge, valid)


def lifted_structure_loss(
    labels: Tensor,
    embeddings: Tensor,
    margin: float = 1.0,
    metric: Any = None,
    distance: Any = None,
    ref_labels: Tensor | None = None,
    ref_embeddings: Tensor | None = None,
    self_index: Tensor | None = None,
) -> Tensor:
    """The smooth lifted structured loss of a labelled batch.

    For every positive pair ``(i, j)``:
    ``J_ij = log( sum_{k in N(i)} exp(margin - D_ik) + sum_{l in N(j)} exp(margin - D_jl) ) + D_ij``,
    and the loss is ``1 / (2 |P|) * sum_{(i, j) in P} max(J_ij, 0)^2`` over the
    unordered positive pairs ``P`` (Song et al., eq. 4). Computed in O(n^2)
    as ``J_ij = logaddexp(L_i, L_j) + D_ij`` with
    ``L_i = logsumexp_{k in N(i)}(margin - D_ik)``.

    Parameters
    ----------
    labels : tensor of shape (n,)
    embeddings : tensor of shape (n, d)
    margin : float, default 1.0
    metric : str, optional
        The older name of ``distance``.
    distance : str, callable or Distance, optional
        As the class's ``distance=`` (default "euclidean", the non-squared distance of tensorflow-addons).
    ref_labels, ref_embeddings, self_index : optional
        A reference set and, per query, its own row there (see
        :meth:`dmlkeras.losses.InBatchLoss.__call__`); by default the batch itself.

    Returns
    -------
    scalar tensor

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[0.0], [1.0], [3.0]], "float32")
    >>> round(float(lifted_structure_loss(np.array([0, 0, 1]), x)), 4)
    0.0491
    """
    loss = LiftedStructureLoss(margin=margin, distance=distance, metric=metric)
    return loss(labels, embeddings, ref_labels=ref_labels, ref_embeddings=ref_embeddings, self_index=self_index)


@keras.saving.register_keras_serializable(package="dmlkeras")
class LiftedStructureLoss(InBatchLoss):
    """Lifted structured loss (Song et al., CVPR 2016), smooth form.

    Every positive pair is pushed together while the hardest negatives of
    *both* its ends (a soft maximum over all of them) are pushed beyond the
    margin: see :func:`lifted_structure_loss` for the formula. The values
    are those of tensorflow-addons' ``LiftedStructLoss(margin)``.

    Parameters
    ----------
    margin : float, default 1.0
        Non-negative.
    distance : str, callable or Distance, default "euclidean"
        See :mod:`dmlkeras.distances` (``metric=`` is the older name).
    miner : Miner, optional
        Only the miner's positive pairs and negatives (its negative weights enter the
        soft maximum as log-weights).
    reducer : str or Reducer, default "mean"
    label_format : see :class:`~dmlkeras.losses.InBatchLoss`

    Notes
    -----
    The mean is over *all* positive pairs, as in tensorflow-addons. A batch
    without positive pairs, or with one class only (no negatives), gives 0
    with a zero gradient, where tensorflow-addons gives NaN. Against a
    reference, the second end ``j`` of a pair is a reference row, and its
    negatives ``N(j)`` are the queries of another class.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[0.0], [1.0], [3.0]], "float32")
    >>> round(float(LiftedStructureLoss(margin=1.0)(np.array([0, 0, 1]), x)), 4)
    0.0491
    """

    blockable = False  # a pair's second end takes its negatives among the queries

    def __init__(
        self,
        margin: float = 1.0,
        distance: Any = None,
        miner: Miner | None = None,
        reducer: Any = None,
        label_format: str = "auto",
        name: str = "lifted_structure_loss",
        metric: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            distance=distance, miner=miner, reducer=reducer, label_format=label_format, name=name, metric=metric, **kwargs
        )
        self.margin = check_float(margin, "margin", minimum=0.0)

    def terms(self, relation, query, reference):
        distances = self.distance.distance_matrix(query, reference)
        positives, negatives, weights = chosen_pairs(relation, self.mine(distances, relation, query))
        return [_lifted_terms(distances, positives, negatives, weights, self.margin, square=reference is None)]

    def get_config(self) -> dict:
        return {**super().get_config(), "margin": self.margin}
