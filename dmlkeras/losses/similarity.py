"""Similarity-weighted in-batch losses: multi-similarity, circle, supervised contrastive.

All three work on the similarity matrix of their distance (larger = closer,
:mod:`dmlkeras.distances`), by default the cosine similarity of the papers,
which L2-normalises the embeddings inside, so they can follow any tower; an
extra ``UnitNormalization`` layer changes nothing. Multi-similarity and
supervised contrastive accept any distance; circle loss needs a bounded
similarity (cosine). Each is also offered as a plain function of
``(labels, embeddings)``.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from dmlkeras._validation import check_float
from dmlkeras.losses.base import InBatchLoss
from dmlkeras.mining import Miner, chosen_pairs, multi_similarity_pairs
from dmlkeras.reducers import element_terms, masked_logsumexp

Tensor = Any

CIRCLE_VARIANTS = ("paper", "tensorflow-similarity")
_CIRCLE_ALIASES = {"keras": "paper", "tfsim": "tensorflow-similarity"}


def log_weighted(logits, negatives, weights):
    """``logits + log(w)`` on the negatives: the weights of a miner inside a log-sum-exp."""
    if weights is None:
        return logits
    return logits + ops.log(ops.where(negatives, weights, ops.ones_like(weights)))


def _multi_similarity_terms(similarities, positives, negatives, weights, alpha, beta, base):
    """Per-anchor multi-similarity values; every anchor is an element (0 without mined pairs)."""
    valid = ops.logical_and(ops.any(positives, axis=1), ops.any(negatives, axis=1))
    positive_term = masked_logsumexp(-alpha * (similarities - base), positives, axis=1, add_one=True) / alpha
    negative_logits = log_weighted(beta * (similarities - base), negatives, weights)
    negative_term = masked_logsumexp(negative_logits, negatives, axis=1, add_one=True) / beta
    per_anchor = positive_term + negative_term
    per_anchor = ops.where(valid, per_anchor, ops.zeros_like(per_anchor))
    return element_terms(per_anchor, ops.ones_like(valid))


def multi_similarity_loss(
    labels: Tensor,
    embeddings: Tensor,
    alpha: float = 2.0,
    beta: float = 50.0,
    base: float = 0.5,
    epsilon: float = 0.1,
    distance: Any = None,
    ref_labels: Tensor | None = None,
    ref_embeddings: Tensor | None = None,
    self_index: Tensor | None = None,
) -> Tensor:
    """Multi-similarity loss of a labelled batch (Wang et al., CVPR 2019).

    Per anchor ``a``, with cosine similarities ``s`` and the pairs mined by
    :func:`dmlkeras.mining.multi_similarity_pairs` (``P'``, ``N'``):

    ``l_a = 1/alpha log(1 + sum_{P'} exp(-alpha (s_ap - base))) + 1/beta log(1 + sum_{N'} exp(beta (s_an - base)))``

    if both ``P'`` and ``N'`` are non-empty, else 0; the loss is the mean of
    ``l_a`` over *all* ``n`` anchors. The value of :class:`MultiSimilarityLoss`.

    Parameters
    ----------
    labels, embeddings : the batch, as ``y_true`` and ``y_pred`` of the class
    alpha, beta, base, epsilon : float
        See :class:`MultiSimilarityLoss`.
    distance : str, callable or Distance, optional
        As the class's ``distance=`` (default "cosine").
    ref_labels, ref_embeddings, self_index : optional
        A reference set and, per query, its own row there (see
        :meth:`dmlkeras.losses.InBatchLoss.__call__`); by default the batch itself.

    Returns
    -------
    scalar tensor

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0, 0.0], [0.6, 0.8], [0.8, 0.6], [0.0, 1.0]], "float32")
    >>> round(float(multi_similarity_loss(np.array([0, 0, 1, 1]), x)), 4)
    0.6791
    """
    loss = MultiSimilarityLoss(alpha=alpha, beta=beta, base=base, epsilon=epsilon, distance=distance)
    return loss(labels, embeddings, ref_labels=ref_labels, ref_embeddings=ref_embeddings, self_index=self_index)


def _circle_logits(similarities, margin, gamma):
    positive_logits = -gamma * ops.relu(1.0 + margin - similarities) * (similarities - (1.0 - margin))
    negative_logits = gamma * ops.relu(similarities + margin) * (similarities - margin)
    return positive_logits, negative_logits


def circle_loss(
    labels: Tensor,
    embeddings: Tensor,
    margin: float = 0.25,
    gamma: float = 256.0,
    variant: str = "paper",
    distance: Any = None,
    ref_labels: Tensor | None = None,
    ref_embeddings: Tensor | None = None,
    self_index: Tensor | None = None,
) -> Tensor:
    """Circle loss of a labelled batch (Sun et al., CVPR 2020): the value of :class:`CircleLoss`.

    Parameters
    ----------
    labels, embeddings : the batch, as ``y_true`` and ``y_pred`` of the class
    margin, gamma, variant :
        See :class:`CircleLoss`.
    distance : str, callable or Distance, optional
        As the class's ``distance=`` (default "cosine"; circle needs a cosine similarity).
    ref_labels, ref_embeddings, self_index : optional
        A reference set and, per query, its own row there (see
        :meth:`dmlkeras.losses.InBatchLoss.__call__`); by default the batch itself.

    Returns
    -------
    scalar tensor

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0, 0.0], [0.6, 0.8], [0.8, 0.6], [0.0, 1.0]], "float32")
    >>> round(float(circle_loss(np.array([0, 0, 1, 1]), x, margin=0.25, gamma=32)), 4)
    26.1057
    """
    loss = CircleLoss(margin=margin, gamma=gamma, variant=variant, distance=distance)
    return loss(labels, embeddings, ref_labels=ref_labels, ref_embeddings=ref_embeddings, self_index=self_index)


def _circle_variant(variant: str) -> str:
    name = _CIRCLE_ALIASES.get(variant, variant)
    if name not in CIRCLE_VARIANTS:
        raise ValueError(
            f"variant must be one of {CIRCLE_VARIANTS} (aliases: {sorted(_CIRCLE_ALIASES)}); got {variant!r}."
        )
    return name


def supervised_contrastive_loss(
    labels: Tensor,
    embeddings: Tensor,
    temperature: float = 0.1,
    distance: Any = None,
    ref_labels: Tensor | None = None,
    ref_embeddings: Tensor | None = None,
    self_index: Tensor | None = None,
) -> Tensor:
    """Supervised contrastive loss of a labelled batch (Khosla et al., NeurIPS 2020), L_out form.

    With ``z_ij = cos(x_i, x_j) / temperature``, ``A(i)`` every other sample
    and ``P(i)`` the positives of ``i``:
    ``l_i = -1/|P(i)| sum_{p in P(i)} (z_ip - log sum_{j in A(i)} exp z_ij)``;
    the loss is the mean of ``l_i`` over the anchors with a positive (0 when
    none has one). The value of :class:`SupervisedContrastiveLoss`.

    Parameters
    ----------
    labels, embeddings : the batch, as ``y_true`` and ``y_pred`` of the class
    temperature : float, default 0.1
    distance : str, callable or Distance, optional
        As the class's ``distance=`` (default "cosine").
    ref_labels, ref_embeddings, self_index : optional
        A reference set and, per query, its own row there (see
        :meth:`dmlkeras.losses.InBatchLoss.__call__`); by default the batch itself.

    Returns
    -------
    scalar tensor

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], "float32")
    >>> round(float(supervised_contrastive_loss(np.array([0, 0, 1, 1]), x, temperature=1.0)), 4)
    0.5514
    """
    loss = SupervisedContrastiveLoss(temperature=temperature, distance=distance)
    return loss(labels, embeddings, ref_labels=ref_labels, ref_embeddings=ref_embeddings, self_index=self_index)


def mined_pairs(loss, relation, query, reference):
    """The loss's miner's choice, on its distance matrix (``None`` without a miner)."""
    if loss.miner is None:
        return None
    return loss.mine(loss.distance.distance_matrix(query, reference), relation, query)


@keras.saving.register_keras_serializable(package="dmlkeras")
class MultiSimilarityLoss(InBatchLoss):
    """Multi-similarity loss (Wang et al., CVPR 2019) with its pair mining.

    Similarities of ``distance`` (cosine by default: the embeddings are
    L2-normalised inside); pairs are mined as in the paper
    (:func:`dmlkeras.mining.multi_similarity_pairs`) and weighted by the soft
    maxima of :func:`multi_similarity_loss`. Per anchor losses are averaged
    over *all* anchors, an anchor without a mined positive or negative
    counting 0.

    Parameters
    ----------
    alpha : float, default 2.0
        Scale of the positive pairs (positive).
    beta : float, default 50.0
        Scale of the negative pairs (positive).
    base : float, default 0.5
        The similarity margin ``lambda``.
    epsilon : float, default 0.1
        Mining slack (non-negative).
    distance : str, callable or Distance, default "cosine"
        Any distance; its similarity matrix is used (``alpha``, ``beta``, ``base`` and
        ``epsilon`` are in its units).
    miner : Miner, optional
        Replaces the paper's mining (it then sees the distance matrix).
    reducer : str or Reducer, default "mean"
    label_format : see :class:`~dmlkeras.losses.InBatchLoss`

    Notes
    -----
    Equals tensorflow-similarity's ``MultiSimilarityLoss(distance="cosine",
    alpha, beta, epsilon, lmda=base, center=1.0)`` on L2-normalised
    embeddings (tensorflow-similarity does not normalise). Its ``lmda`` and
    ``center`` only enter as ``lmda - center``, so ``center=c`` is
    ``base = lmda + 1 - c`` here.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0, 0.0], [0.6, 0.8], [0.8, 0.6], [0.0, 1.0]], "float32")
    >>> round(float(MultiSimilarityLoss()(np.array([0, 0, 1, 1]), x)), 4)
    0.6791
    """

    default_distance = "cosine"

    def __init__(
        self,
        alpha: float = 2.0,
        beta: float = 50.0,
        base: float = 0.5,
        epsilon: float = 0.1,
        distance: Any = None,
        miner: Miner | None = None,
        reducer: Any = None,
        label_format: str = "auto",
        name: str = "multi_similarity_loss",
        **kwargs: Any,
    ) -> None:
        super().__init__(distance=distance, miner=miner, reducer=reducer, label_format=label_format, name=name, **kwargs)
        self.alpha = check_float(alpha, "alpha", minimum=0.0, strict=True)
        self.beta = check_float(beta, "beta", minimum=0.0, strict=True)
        self.base = check_float(base, "base")
        self.epsilon = check_float(epsilon, "epsilon", minimum=0.0)

    def terms(self, relation, query, reference):
        similarities = self.distance.similarity_matrix(query, reference)
        mined = mined_pairs(self, relation, query, reference)
        if mined is None:
            positives, negatives = multi_similarity_pairs(similarities, relation, self.epsilon)
            weights = None
        else:
            positives, negatives, weights = chosen_pairs(relation, mined)
        return [_multi_similarity_terms(similarities, positives, negatives, weights, self.alpha, self.beta, self.base)]

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "alpha": self.alpha,
            "beta": self.beta,
            "base": self.base,
            "epsilon": self.epsilon,
        }


@keras.saving.register_keras_serializable(package="dmlkeras")
class CircleLoss(InBatchLoss):
    """Circle loss (Sun et al., CVPR 2020) on cosine similarity.

    With ``m = margin``, self-paced weights ``a_p = [1 + m - s_p]_+`` and
    ``a_n = [s_n + m]_+`` and the margins ``Delta_p = 1 - m``,
    ``Delta_n = m``, the logits of an anchor's positive and negative pairs are
    ``z_p = -gamma a_p (s_p - Delta_p)`` and ``z_n = gamma a_n (s_n - Delta_n)``.

    ``variant="paper"`` (default)
        ``l_a = log(1 + sum_n exp z_n * sum_p exp z_p) = softplus(LSE_p + LSE_n)``
        (eq. 6 of the paper), averaged over the anchors whose loss is
        positive (those with a positive and a negative): the value of
        Keras' own ``keras.losses.Circle(gamma, margin)`` on L2-normalised
        embeddings (its per-anchor values and mask).
    ``variant="tensorflow-similarity"`` (alias ``"tfsim"``)
        tensorflow-similarity's ``CircleLoss(distance="cosine")``:
        ``l_a = log(1 + sum_p exp z_p) + log(1 + sum_n exp z_n)`` (a *sum* of
        two soft-plus terms, not the paper's product inside one log; the two
        agree only when both sums are large), 0 for anchors without a
        positive or a negative, and averaged over *all* anchors.

    Parameters
    ----------
    margin : float, default 0.25
        Relaxation ``m`` (non-negative).
    gamma : float, default 256.0
        Scale (positive).
    variant : {"paper", "tensorflow-similarity"}, default "paper"
    distance : {"cosine", "cosine_similarity"} or a Distance of those, default "cosine"
        The margins and weights assume a similarity in ``[-1, 1]``: other distances
        are refused.
    miner : Miner, optional
        Only the miner's pairs (negative weights enter as log-weights).
    reducer : str or Reducer, optional
        Default ``"nonzero_mean"`` (paper) or ``"mean"`` (tensorflow-similarity).
    label_format : see :class:`~dmlkeras.losses.InBatchLoss`

    Notes
    -----
    The embeddings are L2-normalised inside (neither Keras nor
    tensorflow-similarity normalise). As in both references the weights
    ``a_p``, ``a_n`` are not gradient-stopped (the paper's code detaches
    them): values are the same, gradients differ. At ``gamma=256`` the logits
    reach a few hundred, and float32 rounding of ``s`` is amplified ~256x:
    expect relative agreement with float64 references of about 1e-5.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0, 0.0], [0.6, 0.8], [0.8, 0.6], [0.0, 1.0]], "float32")
    >>> round(float(CircleLoss(margin=0.25, gamma=32)(np.array([0, 0, 1, 1]), x)), 4)
    26.1057
    """

    default_distance = "cosine"

    def __init__(
        self,
        margin: float = 0.25,
        gamma: float = 256.0,
        variant: str = "paper",
        distance: Any = None,
        miner: Miner | None = None,
        reducer: Any = None,
        label_format: str = "auto",
        name: str = "circle_loss",
        **kwargs: Any,
    ) -> None:
        super().__init__(distance=distance, miner=miner, reducer=reducer, label_format=label_format, name=name, **kwargs)
        if self.distance.name not in ("cosine", "cosine_similarity"):
            raise ValueError(
                "CircleLoss needs a similarity in [-1, 1] (its margins and weights assume one): "
                f"distance must be 'cosine' or 'cosine_similarity'; got {self.distance.name!r}."
            )
        self.margin = check_float(margin, "margin", minimum=0.0)
        self.gamma = check_float(gamma, "gamma", minimum=0.0, strict=True)
        self.variant = _circle_variant(variant)
        self.default_reducer = "nonzero_mean" if self.variant == "paper" else "mean"

    def terms(self, relation, query, reference):
        similarities = self.distance.similarity_matrix(query, reference)
        positives, negatives, weights = chosen_pairs(relation, mined_pairs(self, relation, query, reference))
        positive_logits, negative_logits = _circle_logits(similarities, self.margin, self.gamma)
        negative_logits = log_weighted(negative_logits, negatives, weights)
        if self.variant == "paper":
            per_anchor = ops.softplus(
                masked_logsumexp(positive_logits, positives, axis=1) + masked_logsumexp(negative_logits, negatives, axis=1)
            )
            return [element_terms(per_anchor, ops.ones_like(per_anchor, dtype="bool"))]
        per_anchor = masked_logsumexp(positive_logits, positives, axis=1, add_one=True) + masked_logsumexp(
            negative_logits, negatives, axis=1, add_one=True
        )
        valid = ops.logical_and(ops.any(positives, axis=1), ops.any(negatives, axis=1))
        per_anchor = ops.where(valid, per_anchor, ops.zeros_like(per_anchor))
        return [element_terms(per_anchor, ops.ones_like(valid))]

    def get_config(self) -> dict:
        return {**super().get_config(), "margin": self.margin, "gamma": self.gamma, "variant": self.variant}


@keras.saving.register_keras_serializable(package="dmlkeras")
class SupervisedContrastiveLoss(InBatchLoss):
    """Supervised contrastive loss (Khosla et al., NeurIPS 2020), the L_out form.

    Per anchor, minus the mean over its positives of the log-softmax of
    ``similarity / temperature`` over all other samples; averaged over
    the anchors that have a positive (:func:`supervised_contrastive_loss`).
    With two augmented views per sample and the sample id as label this is
    NT-Xent / InfoNCE (SimCLR).

    Parameters
    ----------
    temperature : float, default 0.1
        Positive.
    distance : str, callable or Distance, default "cosine"
        Any distance; its similarity matrix is used.
    miner : Miner, optional
        The softmax then runs over the miner's positive and negative pairs only
        (negative weights enter as log-weights).
    reducer : str or Reducer, default "mean"
    label_format : see :class:`~dmlkeras.losses.InBatchLoss`

    Notes
    -----
    Matches pytorch-metric-learning's ``SupConLoss(temperature)`` (whose
    ``AvgNonZeroReducer`` averages the anchors with a positive) wherever the
    batch has a negative pair. On a batch with a single class
    pytorch-metric-learning returns 0; this returns the formula's value
    (``log(n - 1)`` for identical embeddings), which is finite and still
    pulls the positives together.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], "float32")
    >>> round(float(SupervisedContrastiveLoss(temperature=1.0)(np.array([0, 0, 1, 1]), x)), 4)
    0.5514
    """

    default_distance = "cosine"

    def __init__(
        self,
        temperature: float = 0.1,
        distance: Any = None,
        miner: Miner | None = None,
        reducer: Any = None,
        label_format: str = "auto",
        name: str = "supervised_contrastive_loss",
        **kwargs: Any,
    ) -> None:
        super().__init__(distance=distance, miner=miner, reducer=reducer, label_format=label_format, name=name, **kwargs)
        self.temperature = check_float(temperature, "temperature", minimum=0.0, strict=True)

    def terms(self, relation, query, reference):
        logits = self.distance.similarity_matrix(query, reference) / self.temperature
        positives, negatives, weights = chosen_pairs(relation, mined_pairs(self, relation, query, reference))
        others = ops.logical_or(positives, negatives)  # every row but self (or the miner's pairs)
        log_normaliser = masked_logsumexp(log_weighted(logits, negatives, weights), others, axis=1, keepdims=True)
        has_other = ops.any(others, axis=1, keepdims=True)
        log_normaliser = ops.where(has_other, log_normaliser, ops.zeros_like(log_normaliser))
        log_probabilities = ops.where(positives, logits - log_normaliser, ops.zeros_like(logits))
        positive_count = ops.sum(ops.cast(positives, logits.dtype), axis=1)
        per_anchor = -ops.sum(log_probabilities, axis=1) / ops.maximum(positive_count, 1.0)
        return [element_terms(per_anchor, positive_count > 0)]

    def get_config(self) -> dict:
        return {**super().get_config(), "temperature": self.temperature}
