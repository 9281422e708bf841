"""Multi-class N-pair loss (Sohn, NeurIPS 2016): in a labelled batch and on (anchor, positive) tuples.

Two forms, one formula. Sohn's loss for an anchor ``a``, a positive ``p`` and
the anchor's negatives ``n`` is, with dot-product similarities ``s``,

.. math:: \\log\\Big(1 + \\sum_n \\exp(s_{an} - s_{ap})\\Big).

``NPairsTupleLoss`` / :func:`npairs_loss`
    The paper's (and tensorflow-addons') batch: ``N`` anchors and ``N``
    positives, row ``i`` of both of class ``labels[i]``; the similarity
    matrix is ``anchors @ positives^T`` and the negatives of anchor ``i`` are
    the *positives* of the other classes. It is the softmax cross-entropy of
    each row of that matrix against its own positive, and reproduces
    ``tfa.losses.NpairsLoss()(labels, anchors @ positives^T)`` exactly, also
    when classes repeat (the target is then spread evenly over the
    same-class columns, as tfa does).
``NPairsLoss``
    The in-batch form for an ordinary labelled batch ``(n, d)`` with any
    class layout: every positive pair ``(a, p)`` of the batch against all of
    the anchor's negatives in the batch, averaged over the positive pairs.
    Fed the concatenation ``[anchors; positives]`` it is *not* tfa's value:
    anchors then also meet other anchors, positives act as anchors, and
    self-similarities are left out. Use the tuple form for tfa parity.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from dmlkeras import distances as distances_module
from dmlkeras._validation import as_float32, check_float
from dmlkeras.losses.base import InBatchLoss, get_distance
from dmlkeras.mining import Miner, chosen_pairs, same_label_mask
from dmlkeras.reducers import Terms, element_terms, masked_logsumexp

Tensor = Any


def _l2_penalty(*embeddings: Tensor) -> Tensor:
    """``0.25 * sum_k mean_i ||e_k[i]||^2``: tf.contrib's N-pairs regulariser."""
    return 0.25 * sum(ops.mean(ops.sum(ops.square(e), axis=-1)) for e in embeddings)


def npairs_loss(
    labels: Tensor, anchors: Tensor, positives: Tensor, l2_reg: float = 0.0, distance: Any = None
) -> Tensor:
    """N-pair loss of explicit (anchor, positive) rows, tensorflow-addons' form.

    With ``S = anchors @ positives^T`` and the target
    ``T_ij = [labels_i == labels_j] / #{j : labels_j == labels_i}``:
    ``mean_i ( -sum_j T_ij log_softmax(S_i)_j ) + l2_reg * 0.25 * (mean ||a||^2 + mean ||p||^2)``.
    With one row per class this is ``mean_i log(1 + sum_{j != i} exp(S_ij - S_ii))``.

    Parameters
    ----------
    labels : tensor of shape (n,)
        Class of row ``i`` of ``anchors`` and ``positives``.
    anchors, positives : tensors of shape (n, d)
    l2_reg : float, default 0.0
        Weight of the embedding L2 penalty of tf.contrib's ``npairs_loss``
        (``reg_lambda``, 0.002 there); tensorflow-addons has none, so keep 0
        for parity with it.
    distance : str, callable or Distance, default "dot_product"
        Its similarity matrix between anchors and positives is used (Sohn's and
        tensorflow-addons' dot product by default; e.g. ``"cosine_similarity"``).
        The positives are the reference of the anchors already, so there is no
        ``ref_embeddings``: for a batch against a memory use :class:`NPairsLoss`.

    Returns
    -------
    scalar tensor

    Raises
    ------
    ValueError
        If ``anchors`` and ``positives`` are not both ``(n, d)`` or ``labels``
        is not ``(n,)``.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    >>> round(float(npairs_loss(np.array([0, 1]), a, a)), 4)  # log(1 + e^-1)
    0.3133
    """
    anchors = as_float32(anchors)
    positives = as_float32(positives)
    labels = ops.convert_to_tensor(labels)
    if len(labels.shape) == 2 and labels.shape[-1] == 1:
        labels = ops.reshape(labels, (-1,))
    if len(anchors.shape) != 2 or tuple(anchors.shape) != tuple(positives.shape):
        raise ValueError(
            "anchors and positives must both have shape (batch_size, embedding_dim); "
            f"got {tuple(anchors.shape)} and {tuple(positives.shape)}."
        )
    if len(labels.shape) != 1 or (
        labels.shape[0] is not None and anchors.shape[0] is not None and labels.shape[0] != anchors.shape[0]
    ):
        raise ValueError(
            f"labels must have shape (batch_size,) = ({anchors.shape[0]},); got {tuple(labels.shape)}."
        )
    similarities = get_distance(distance, default="dot_product").similarity_matrix(anchors, positives)
    same = same_label_mask(labels)
    target = ops.cast(same, similarities.dtype)
    target = target / ops.sum(target, axis=1, keepdims=True)
    log_normaliser = masked_logsumexp(similarities, ops.ones_like(same), axis=1)
    cross_entropy = log_normaliser - ops.sum(target * similarities, axis=1)
    loss = ops.mean(cross_entropy)
    if l2_reg:
        loss = loss + l2_reg * _l2_penalty(anchors, positives)
    return loss


@keras.saving.register_keras_serializable(package="dmlkeras")
class NPairsTupleLoss(keras.losses.Loss):
    """N-pair loss on stacked (anchor, positive) embeddings; tensorflow-addons' values.

    The loss of :func:`npairs_loss` for ``y_pred[:, 0]`` (anchors) and
    ``y_pred[:, 1]`` (positives), one row per class as Sohn builds the batch.
    ``tfa.losses.NpairsLoss()(labels, anchors @ positives.T)`` equals
    ``NPairsTupleLoss()(labels, np.stack([anchors, positives], axis=1))``.

    Parameters
    ----------
    l2_reg : float, default 0.0
        See :func:`npairs_loss`.
    distance : str, callable or Distance, default "dot_product"
        See :func:`npairs_loss`.

    Notes
    -----
    ``y_true`` is the class labels ``(n,)``; ``y_pred`` is ``(n, 2, d)``.
    The value is one number for the batch (every row is a softmax over all
    positives), so ``sample_weight`` does not apply per row.

    Examples
    --------
    >>> import numpy as np
    >>> pairs = np.array([[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]], "float32")
    >>> round(float(NPairsTupleLoss()(np.array([0, 1]), pairs)), 4)
    0.3133
    """

    def __init__(
        self, l2_reg: float = 0.0, name: str = "npairs_tuple_loss", distance: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.l2_reg = check_float(l2_reg, "l2_reg", minimum=0.0)
        self.distance = get_distance(distance, default="dot_product")

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        y_pred = as_float32(y_pred)
        if len(y_pred.shape) != 3 or y_pred.shape[1] != 2:
            raise ValueError(
                "y_pred must be stacked [anchor, positive] embeddings of shape "
                f"(batch_size, 2, embedding_dim); got shape {tuple(y_pred.shape)}."
            )
        return npairs_loss(y_true, y_pred[:, 0], y_pred[:, 1], self.l2_reg, distance=self.distance)

    def get_config(self) -> dict:
        return {**super().get_config(), "l2_reg": self.l2_reg, "distance": distances_module.serialize(self.distance)}


@keras.saving.register_keras_serializable(package="dmlkeras")
class NPairsLoss(InBatchLoss):
    """Multi-class N-pair loss over every positive pair of a labelled batch (or against a reference).

    For each positive pair ``(a, p)`` (same label, ``a != p``), with
    dot-product similarities ``s = x x^T``:
    ``log(1 + sum_{n : labels_n != labels_a} exp(s_an - s_ap))``, computed as
    ``softplus(logsumexp_n(s_an) - s_ap)`` in O(n^2). The loss is the mean
    over the positive pairs, plus ``l2_reg * 0.5 * mean_i ||x_i||^2`` (which
    is tf.contrib's ``0.25 * reg_lambda * (mean ||a||^2 + mean ||p||^2)``
    when the batch is half anchors, half positives).

    Parameters
    ----------
    l2_reg : float, default 0.0
        Weight of the embedding L2 penalty (non-negative). Sohn's similarities are
        unnormalised dot products, so without it (or an L2-normalising layer)
        the embeddings can grow without bound.
    distance : str, callable or Distance, default "dot_product"
        Any distance: the loss uses its similarity matrix (larger = closer, see
        :mod:`dmlkeras.distances`), e.g. ``"cosine_similarity"``.
    miner : Miner, optional
        Only the miner's positive pairs and negatives (negative weights enter as log-weights).
    reducer : str or Reducer, default "mean"
    label_format : see :class:`~dmlkeras.losses.InBatchLoss`

    Notes
    -----
    A pair whose anchor has no negative costs 0; a batch without positive
    pairs gives 0 (plus the penalty). For tensorflow-addons' ``NpairsLoss``
    values use :class:`NPairsTupleLoss` (see the module docstring for how the
    two forms differ).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], "float32")
    >>> round(float(NPairsLoss()(np.array([0, 0, 1]), x)), 4)  # log(1 + e^-1)
    0.3133
    """

    default_distance = "dot_product"

    def __init__(
        self,
        l2_reg: float = 0.0,
        distance: Any = None,
        miner: Miner | None = None,
        reducer: Any = None,
        label_format: str = "auto",
        name: str = "npairs_loss",
        **kwargs: Any,
    ) -> None:
        super().__init__(distance=distance, miner=miner, reducer=reducer, label_format=label_format, name=name, **kwargs)
        self.l2_reg = check_float(l2_reg, "l2_reg", minimum=0.0)

    def terms(self, relation, query, reference):
        similarities = self.distance.similarity_matrix(query, reference)
        mined = None if self.miner is None else self.mine(self.distance.distance_matrix(query, reference), relation, query)
        positives, negatives, weights = chosen_pairs(relation, mined)
        logits = similarities
        if weights is not None:
            logits = logits + ops.log(ops.where(negatives, weights, ops.ones_like(weights)))
        negative_terms = masked_logsumexp(logits, negatives, axis=1, keepdims=True)
        terms = [element_terms(ops.softplus(negative_terms - similarities), positives)]
        if self.l2_reg:
            penalty = self.l2_reg * 0.5 * ops.sum(ops.square(query), axis=-1)
            every = ops.ones_like(penalty)
            terms.append(Terms(penalty, every, every))
        return terms

    def get_config(self) -> dict:
        return {**super().get_config(), "l2_reg": self.l2_reg}
