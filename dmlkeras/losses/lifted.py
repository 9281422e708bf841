"""Lifted structured loss (Song et al., CVPR 2016), smooth form."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from dmlkeras.distances import pairwise_distances, resolve_metric
from dmlkeras.losses.base import InBatchLoss
from dmlkeras.mining import negative_mask, positive_mask
from dmlkeras.reducers import masked_logsumexp, masked_mean

Tensor = Any


def lifted_structure_loss(
    labels: Tensor, embeddings: Tensor, margin: float = 1.0, metric: str = "euclidean"
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
    metric : str, default "euclidean"
        See :mod:`dmlkeras.distances`; tensorflow-addons uses the
        (non-squared) Euclidean distance.

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
    distances = pairwise_distances(embeddings, metric=metric)
    negatives = negative_mask(labels)
    row_terms = masked_logsumexp(margin - distances, negatives, axis=1)  # (n,), -inf without negatives
    has_negative = ops.any(negatives, axis=1)
    safe_terms = ops.where(has_negative, row_terms, ops.zeros_like(row_terms))
    left = ops.expand_dims(safe_terms, 1)
    right = ops.expand_dims(safe_terms, 0)
    pair_has = ops.stack(
        [
            ops.broadcast_to(ops.expand_dims(has_negative, 1), ops.shape(distances)),
            ops.broadcast_to(ops.expand_dims(has_negative, 0), ops.shape(distances)),
        ],
        axis=-1,
    )
    pair_terms = ops.stack(
        [ops.broadcast_to(left, ops.shape(distances)), ops.broadcast_to(right, ops.shape(distances))],
        axis=-1,
    )
    combined = masked_logsumexp(pair_terms, pair_has, axis=-1)  # logaddexp(L_i, L_j)
    valid = ops.logical_and(positive_mask(labels), ops.any(pair_has, axis=-1))
    safe_combined = ops.where(valid, combined, ops.zeros_like(combined))
    hinge = ops.square(ops.relu(safe_combined + distances))
    return 0.5 * masked_mean(hinge, valid)


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
    metric : str, default "euclidean"
        See :mod:`dmlkeras.distances`.

    Notes
    -----
    The mean is over *all* positive pairs, as in tensorflow-addons. A batch
    without positive pairs, or with one class only (no negatives), gives 0
    with a zero gradient, where tensorflow-addons gives NaN.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[0.0], [1.0], [3.0]], "float32")
    >>> round(float(LiftedStructureLoss(margin=1.0)(np.array([0, 0, 1]), x)), 4)
    0.0491
    """

    def __init__(
        self, margin: float = 1.0, metric: str = "euclidean", name: str = "lifted_structure_loss", **kwargs: Any
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.margin = float(margin)
        self.metric = resolve_metric(metric)

    def compute(self, labels: Tensor, embeddings: Tensor) -> Tensor:
        return lifted_structure_loss(labels, embeddings, self.margin, self.metric)

    def get_config(self) -> dict:
        return {**super().get_config(), "margin": self.margin, "metric": self.metric}
