"""Similarity-weighted in-batch losses on cosine similarity: multi-similarity, circle, supervised contrastive.

All three L2-normalise the embeddings inside (through
:mod:`dmlkeras.distances`), so they can follow any tower; an extra
``UnitNormalization`` layer changes nothing. Each is also offered as a plain
function of ``(labels, embeddings)``.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from dmlkeras.distances import (
    cosine_similarity_matrix,
    l2_normalize,
    pairwise_distances,
)
from dmlkeras.losses.base import InBatchLoss, check_labels_and_embeddings
from dmlkeras.mining import multi_similarity_pairs, negative_mask, positive_mask
from dmlkeras.reducers import masked_logsumexp, masked_mean

Tensor = Any

CIRCLE_VARIANTS = ("paper", "tensorflow-similarity")
_CIRCLE_ALIASES = {"keras": "paper", "tfsim": "tensorflow-similarity"}


def _cosine_similarities(embeddings: Tensor) -> Tensor:
    """``1 - cosine distance``: the cosine similarity, clipped at 1 like tensorflow-similarity's distance."""
    return 1.0 - pairwise_distances(embeddings, metric="cosine")


def multi_similarity_loss(
    labels: Tensor,
    embeddings: Tensor,
    alpha: float = 2.0,
    beta: float = 50.0,
    base: float = 0.5,
    epsilon: float = 0.1,
) -> Tensor:
    """Multi-similarity loss of a labelled batch (Wang et al., CVPR 2019).

    Per anchor ``a``, with cosine similarities ``s`` and the pairs mined by
    :func:`dmlkeras.mining.multi_similarity_pairs` (``P'``, ``N'``):

    ``l_a = 1/alpha log(1 + sum_{P'} exp(-alpha (s_ap - base))) + 1/beta log(1 + sum_{N'} exp(beta (s_an - base)))``

    if both ``P'`` and ``N'`` are non-empty, else 0; the loss is the mean of
    ``l_a`` over *all* ``n`` anchors.

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
    labels, embeddings = check_labels_and_embeddings(labels, embeddings)
    return ops.mean(_multi_similarity_per_anchor(labels, embeddings, alpha, beta, base, epsilon))


def _multi_similarity_per_anchor(
    labels: Tensor, embeddings: Tensor, alpha: float, beta: float, base: float, epsilon: float
) -> Tensor:
    similarities = _cosine_similarities(embeddings)
    positives, negatives = multi_similarity_pairs(similarities, labels, epsilon)
    valid = ops.logical_and(ops.any(positives, axis=1), ops.any(negatives, axis=1))
    positive_term = masked_logsumexp(-alpha * (similarities - base), positives, axis=1, add_one=True) / alpha
    negative_term = masked_logsumexp(beta * (similarities - base), negatives, axis=1, add_one=True) / beta
    per_anchor = positive_term + negative_term
    return ops.where(valid, per_anchor, ops.zeros_like(per_anchor))


def circle_loss(
    labels: Tensor,
    embeddings: Tensor,
    margin: float = 0.25,
    gamma: float = 256.0,
    variant: str = "paper",
) -> Tensor:
    """Circle loss of a labelled batch (Sun et al., CVPR 2020); see :class:`CircleLoss`.

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
    labels, embeddings = check_labels_and_embeddings(labels, embeddings)
    variant = _circle_variant(variant)
    normalised = l2_normalize(embeddings)
    if variant == "paper":
        # keras.losses.circle: softplus(LSE_p + LSE_n) per anchor; Keras' Circle
        # then averages over the anchors whose loss is positive (its mask).
        per_anchor = keras.losses.circle(labels, normalised, gamma=gamma, margin=margin)
        return masked_mean(per_anchor, per_anchor > 0)
    similarities = _cosine_similarities(normalised)
    positives = positive_mask(labels)
    negatives = negative_mask(labels)
    positive_logits = -gamma * ops.relu(1.0 + margin - similarities) * (similarities - (1.0 - margin))
    negative_logits = gamma * ops.relu(similarities + margin) * (similarities - margin)
    per_anchor = masked_logsumexp(positive_logits, positives, axis=1, add_one=True) + masked_logsumexp(
        negative_logits, negatives, axis=1, add_one=True
    )
    valid = ops.logical_and(ops.any(positives, axis=1), ops.any(negatives, axis=1))
    return ops.mean(ops.where(valid, per_anchor, ops.zeros_like(per_anchor)))


def _circle_variant(variant: str) -> str:
    name = _CIRCLE_ALIASES.get(variant, variant)
    if name not in CIRCLE_VARIANTS:
        raise ValueError(
            f"variant must be one of {CIRCLE_VARIANTS} (aliases: {sorted(_CIRCLE_ALIASES)}); got {variant!r}."
        )
    return name


def supervised_contrastive_loss(labels: Tensor, embeddings: Tensor, temperature: float = 0.1) -> Tensor:
    """Supervised contrastive loss of a labelled batch (Khosla et al., NeurIPS 2020), L_out form.

    With ``z_ij = cos(x_i, x_j) / temperature``, ``A(i)`` every other sample
    and ``P(i)`` the positives of ``i``:
    ``l_i = -1/|P(i)| sum_{p in P(i)} (z_ip - log sum_{j in A(i)} exp z_ij)``;
    the loss is the mean of ``l_i`` over the anchors with a positive (0 when
    none has one).

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
    labels, embeddings = check_labels_and_embeddings(labels, embeddings)
    logits = cosine_similarity_matrix(embeddings) / temperature
    positives = positive_mask(labels)
    others = ops.logical_not(ops.cast(ops.eye(ops.shape(logits)[0]), "bool"))
    log_normaliser = masked_logsumexp(logits, others, axis=1, keepdims=True)
    has_other = ops.any(others, axis=1, keepdims=True)
    log_normaliser = ops.where(has_other, log_normaliser, ops.zeros_like(log_normaliser))
    log_probabilities = ops.where(positives, logits - log_normaliser, ops.zeros_like(logits))
    positive_count = ops.sum(ops.cast(positives, logits.dtype), axis=1)
    per_anchor = -ops.sum(log_probabilities, axis=1) / ops.maximum(positive_count, 1.0)
    return masked_mean(per_anchor, positive_count > 0)


@keras.saving.register_keras_serializable(package="dmlkeras")
class MultiSimilarityLoss(InBatchLoss):
    """Multi-similarity loss (Wang et al., CVPR 2019) with its pair mining.

    Cosine similarities (the embeddings are L2-normalised inside); pairs are
    mined as in the paper (:func:`dmlkeras.mining.multi_similarity_pairs`)
    and weighted by the soft maxima of :func:`multi_similarity_loss`. Per
    anchor losses are averaged over *all* anchors, an anchor without a mined
    positive or negative counting 0.

    Parameters
    ----------
    alpha : float, default 2.0
        Scale of the positive pairs.
    beta : float, default 50.0
        Scale of the negative pairs.
    base : float, default 0.5
        The similarity margin ``lambda``.
    epsilon : float, default 0.1
        Mining slack.

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

    def __init__(
        self,
        alpha: float = 2.0,
        beta: float = 50.0,
        base: float = 0.5,
        epsilon: float = 0.1,
        name: str = "multi_similarity_loss",
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.base = float(base)
        self.epsilon = float(epsilon)

    def compute(self, labels: Tensor, embeddings: Tensor) -> Tensor:
        return ops.mean(
            _multi_similarity_per_anchor(labels, embeddings, self.alpha, self.beta, self.base, self.epsilon)
        )

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
        positive (those with a positive and a negative). Built on Keras'
        own ``keras.losses.circle`` (which computes ``l_a``) with Keras'
        ``Circle`` reduction, so the value is that of
        ``keras.losses.Circle(gamma, margin)`` on L2-normalised embeddings.
    ``variant="tensorflow-similarity"`` (alias ``"tfsim"``)
        tensorflow-similarity's ``CircleLoss(distance="cosine")``:
        ``l_a = log(1 + sum_p exp z_p) + log(1 + sum_n exp z_n)`` (a *sum* of
        two soft-plus terms, not the paper's product inside one log; the two
        agree only when both sums are large), 0 for anchors without a
        positive or a negative, and averaged over *all* anchors.

    Parameters
    ----------
    margin : float, default 0.25
        Relaxation ``m``.
    gamma : float, default 256.0
        Scale.
    variant : {"paper", "tensorflow-similarity"}, default "paper"

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

    def __init__(
        self,
        margin: float = 0.25,
        gamma: float = 256.0,
        variant: str = "paper",
        name: str = "circle_loss",
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.margin = float(margin)
        self.gamma = float(gamma)
        self.variant = _circle_variant(variant)

    def compute(self, labels: Tensor, embeddings: Tensor) -> Tensor:
        return circle_loss(labels, embeddings, self.margin, self.gamma, self.variant)

    def get_config(self) -> dict:
        return {**super().get_config(), "margin": self.margin, "gamma": self.gamma, "variant": self.variant}


@keras.saving.register_keras_serializable(package="dmlkeras")
class SupervisedContrastiveLoss(InBatchLoss):
    """Supervised contrastive loss (Khosla et al., NeurIPS 2020), the L_out form.

    Per anchor, minus the mean over its positives of the log-softmax of
    ``cosine similarity / temperature`` over all other samples; averaged over
    the anchors that have a positive (:func:`supervised_contrastive_loss`).
    With two augmented views per sample and the sample id as label this is
    NT-Xent / InfoNCE (SimCLR).

    Parameters
    ----------
    temperature : float, default 0.1

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

    def __init__(self, temperature: float = 0.1, name: str = "supervised_contrastive_loss", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        if temperature <= 0:
            raise ValueError(f"temperature must be positive; got {temperature}.")
        self.temperature = float(temperature)

    def compute(self, labels: Tensor, embeddings: Tensor) -> Tensor:
        return supervised_contrastive_loss(labels, embeddings, self.temperature)

    def get_config(self) -> dict:
        return {**super().get_config(), "temperature": self.temperature}
