"""Proxy heads: learned class vectors (proxies) that the embeddings are compared with.

:class:`ProxyAnchorLoss` (Kim et al., CVPR 2020), :class:`ProxyNCA`
(Movshovitz-Attias et al., ICCV 2017) and :class:`SoftTriple` (Qian et al.,
ICCV 2019, several centres per class), with their functional forms.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
from keras import ops

from dmlkeras._validation import check_float, check_int
from dmlkeras.distances import Cosine, CosineSimilarity, Distance, cosine_similarity_matrix, l2_normalize
from dmlkeras.distances import get as get_distance
from dmlkeras.distances import serialize as serialize_distance
from dmlkeras.heads.base import (
    LossHead,
    Tensor,
    check_head_inputs,
    check_scale,
    check_unit_margin,
    class_cross_entropy,
    class_mask,
    nan_if,
    per_class_cosines,
)
from dmlkeras.reducers import masked_logsumexp


def proxy_anchor_loss(
    labels: Tensor,
    embeddings: Tensor,
    proxies: Tensor,
    margin: float = 0.1,
    alpha: float = 32.0,
) -> Tensor:
    """Proxy-anchor loss (Kim et al., CVPR 2020) for given proxies.

    With ``s_ic`` the cosine similarity of embedding ``i`` and proxy ``c``
    (cosine by definition: the loss has no ``distance=``):

    ``1/|C+| sum_{c in C+} log(1 + sum_{i: y_i = c} exp(-alpha (s_ic - margin)))
    + 1/C sum_c log(1 + sum_{i: y_i != c} exp(alpha (s_ic + margin)))``,

    ``C+`` the classes present in the batch, ``C`` the number of proxies: the
    values of pytorch-metric-learning's ``ProxyAnchorLoss``.

    Parameters
    ----------
    labels : int tensor of shape (n,) or (n, 1), values in ``[0, num_classes)``
    embeddings : tensor of shape (n, d)
    proxies : tensor of shape (num_classes, d)
    margin : float, default 0.1
        In ``[0, 1]``.
    alpha : float, default 32.0
        ``> 0``.

    Returns
    -------
    scalar tensor

    Examples
    --------
    >>> import numpy as np
    >>> p = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    >>> round(float(proxy_anchor_loss(np.array([0, 1]), p, p, margin=0.1, alpha=2.0)), 4)
    0.9511
    """
    margin = check_unit_margin(margin)
    alpha = check_float(alpha, "alpha", minimum=0.0, strict=True)
    labels, embeddings, proxies, invalid = check_head_inputs(labels, embeddings, proxies, "proxies")
    num_classes = proxies.shape[0]
    similarities = cosine_similarity_matrix(embeddings, proxies)  # (n, C)
    own = class_mask(labels, num_classes)
    positive = masked_logsumexp(-alpha * (similarities - margin), own, axis=0, add_one=True)
    negative = masked_logsumexp(alpha * (similarities + margin), ops.logical_not(own), axis=0, add_one=True)
    present = ops.sum(ops.cast(ops.any(own, axis=0), positive.dtype))
    loss = ops.sum(positive) / ops.maximum(present, 1.0) + ops.sum(negative) / float(num_classes)
    return nan_if(invalid, loss)


def _nca_settings(softmax_scale: float, distance: Any, normalize: bool) -> tuple[float, Distance, bool]:
    """ProxyNCA's checked ``(softmax_scale, distance, normalize)``."""
    if not isinstance(normalize, bool):
        raise ValueError(f"normalize must be True or False; got {normalize!r}.")
    distance = get_distance("squared_euclidean" if distance is None else distance)
    return check_scale(softmax_scale, "softmax_scale"), distance, normalize


def _soft_triple_settings(scale: float, gamma: float, margin: float) -> tuple[float, float, float]:
    """SoftTriple's checked ``(scale, gamma, margin)``."""
    return check_scale(scale), check_scale(gamma, "gamma"), check_float(margin, "margin", minimum=0.0)


def proxy_nca_loss(
    labels: Tensor,
    embeddings: Tensor,
    proxies: Tensor,
    softmax_scale: float = 1.0,
    distance: Distance | str | Callable | None = "squared_euclidean",
    normalize: bool = True,
) -> Tensor:
    """ProxyNCA loss (Movshovitz-Attias et al., ICCV 2017): a softmax over the (negated) distances to the proxies.

    Per sample ``-log softmax_c(softmax_scale * s(x_i, p_c))[y_i]`` with
    ``s`` the similarity of ``distance`` (a distance ``D`` enters as
    ``-D``), on L2-normalised embeddings and proxies by default, and the
    batch mean: pytorch-metric-learning's ``ProxyNCALoss`` (its default
    ``LpDistance(power=2)`` normalises, so the default here is the squared
    Euclidean distance of unit vectors, ``2 - 2 cos``). Like
    pytorch-metric-learning (and ProxyNCA++), the own proxy is in the
    denominator; the paper's original form leaves it out. Computed in log
    space: where pytorch-metric-learning's probability underflows to 0 (a
    huge ``softmax_scale``) and it drops the sample, the sample's large
    finite loss counts here.

    Parameters
    ----------
    labels : int tensor of shape (n,) or (n, 1), values in ``[0, num_classes)``
    embeddings : tensor of shape (n, d)
    proxies : tensor of shape (num_classes, d)
    softmax_scale : float, default 1.0
        ``> 0``: the inverse temperature (pytorch-metric-learning's ``softmax_scale``).
    distance : Distance, str or callable, default "squared_euclidean"
        Any :mod:`dmlkeras.distances` object or name.
    normalize : bool, default True
        L2-normalise the embeddings and the proxies first (pytorch-metric-learning's
        ``normalize_embeddings``).

    Returns
    -------
    scalar tensor

    Examples
    --------
    >>> import numpy as np
    >>> p = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    >>> round(float(proxy_nca_loss(np.array([0, 1]), p, p)), 4)  # -log(e^0 / (e^0 + e^-2))
    0.1269
    """
    softmax_scale, distance, normalize = _nca_settings(softmax_scale, distance, normalize)
    labels, embeddings, proxies, invalid = check_head_inputs(labels, embeddings, proxies, "proxies")
    # A cosine normalises itself: normalising twice would square l2_normalize's gradient gain at a zero row.
    if normalize and not isinstance(distance, (Cosine, CosineSimilarity)):
        embeddings, proxies = l2_normalize(embeddings), l2_normalize(proxies)
    logits = softmax_scale * distance.similarity_matrix(embeddings, proxies)
    own = class_mask(labels, proxies.shape[0])
    return nan_if(invalid, ops.mean(class_cross_entropy(logits, own)))


def soft_triple_loss(
    labels: Tensor,
    embeddings: Tensor,
    centers: Tensor,
    scale: float = 20.0,
    gamma: float = 0.1,
    margin: float = 0.01,
) -> Tensor:
    """SoftTriple loss (Qian et al., ICCV 2019): a softmax over classes that each own several centres.

    With ``s_ick`` the cosine of embedding ``i`` and centre ``k`` of class
    ``c``, the similarity to a class is the soft maximum
    ``S_ic = sum_k softmax_k(s_ick / gamma) s_ick``, and the loss is the
    batch mean of ``-log softmax_c(scale * (S_ic - margin [c = y_i]))[y_i]``:
    pytorch-metric-learning's ``SoftTripleLoss`` (``la`` there is ``scale``
    here, the paper's lambda; ``gamma`` and ``margin`` (the paper's delta)
    are the same). Its ``fc (d, num_classes * K)`` column ``c * K + k`` is
    ``centers[c, k]`` here. The paper's optional regulariser that merges
    close centres (tau) is not included, as in pytorch-metric-learning's
    default. Cosine by definition: no ``distance=``.

    Parameters
    ----------
    labels : int tensor of shape (n,) or (n, 1), values in ``[0, num_classes)``
    embeddings : tensor of shape (n, d)
    centers : tensor of shape (num_classes, K, d)
        ``K`` centres per class (normalised inside).
    scale : float, default 20.0
        ``> 0`` (lambda).
    gamma : float, default 0.1
        ``> 0``: the temperature of the soft maximum over a class's centres.
    margin : float, default 0.01
        ``>= 0`` (delta), subtracted from the own class's similarity.

    Returns
    -------
    scalar tensor

    Examples
    --------
    >>> import numpy as np
    >>> c = np.array([[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]], "float32")  # 2 classes x 2 centres
    >>> round(float(soft_triple_loss(np.array([0, 1]), c[:, 0], c, scale=2.0, margin=0.0)), 4)  # log(1 + e^-2)
    0.1269
    """
    scale, gamma, margin = _soft_triple_settings(scale, gamma, margin)
    labels, embeddings, centers, invalid = check_head_inputs(labels, embeddings, centers, "centers", per_class=True)
    similarities = per_class_cosines(embeddings, centers)  # (n, C, K)
    if centers.shape[1] == 1:  # one centre per class: the soft maximum is the similarity itself
        class_similarities = similarities[:, :, 0]
    else:
        class_similarities = ops.sum(ops.softmax(similarities / gamma, axis=2) * similarities, axis=2)  # (n, C)
    own = class_mask(labels, centers.shape[0])
    logits = scale * (class_similarities - margin * ops.cast(own, class_similarities.dtype))
    return nan_if(invalid, ops.mean(class_cross_entropy(logits, own)))


@keras.saving.register_keras_serializable(package="dmlkeras")
class ProxyAnchorLoss(LossHead):
    """Proxy-anchor loss head (Kim et al., CVPR 2020) with trainable proxies.

    Adds ``loss_weight * proxy_anchor_loss(labels, embeddings, proxies,
    margin, alpha)`` (see :func:`proxy_anchor_loss`; pytorch-metric-learning's
    values for the same proxies). Cosine similarity by definition: no
    ``distance=``.

    Parameters
    ----------
    num_classes : int
        ``>= 1``.
    margin : float, default 0.1
        In ``[0, 1]``.
    alpha : float, default 32.0
        ``> 0``.
    loss_weight : float, default 1.0
    initializer : default "he_normal"
        Initial proxies (pytorch-metric-learning uses Kaiming normal). The
        paper trains the proxies with a 100x larger learning rate than the
        tower; with one optimiser, raise ``loss_weight`` or use a per-variable
        learning rate if they move too slowly.

    Examples
    --------
    >>> import numpy as np
    >>> head = ProxyAnchorLoss(num_classes=2, margin=0.1, alpha=2.0)
    >>> p = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    >>> _ = head([np.array([0, 1]), p])
    >>> head.set_weights([p])
    >>> _ = head([np.array([0, 1]), p])
    >>> round(float(head.losses[0]), 4)
    0.9511
    """

    weight_name = "proxies"
    weight_attribute = "proxies"
    default_initializer = "he_normal"

    def __init__(
        self,
        num_classes: int,
        margin: float = 0.1,
        alpha: float = 32.0,
        loss_weight: float = 1.0,
        initializer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_classes, loss_weight=loss_weight, initializer=initializer, **kwargs)
        self.margin = check_unit_margin(margin)
        self.alpha = check_float(alpha, "alpha", minimum=0.0, strict=True)

    def head_loss(self, labels: Tensor, embeddings: Tensor, training: bool | None) -> Tensor:
        return proxy_anchor_loss(labels, embeddings, self.proxies, self.margin, self.alpha)

    def get_config(self) -> dict:
        return {**super().get_config(), "margin": self.margin, "alpha": self.alpha}


@keras.saving.register_keras_serializable(package="dmlkeras")
class ProxyNCA(LossHead):
    """ProxyNCA head (Movshovitz-Attias et al., ICCV 2017) with trainable proxies.

    Adds ``loss_weight * proxy_nca_loss(labels, embeddings, proxies,
    softmax_scale, distance, normalize)`` (pytorch-metric-learning's
    ``ProxyNCALoss`` values for the same proxies).

    Parameters
    ----------
    num_classes : int
        ``>= 1``.
    softmax_scale : float, default 1.0
        ``> 0``. On unit vectors the squared distances lie in ``[0, 4]``, so
        the default softmax is soft; ProxyNCA++ uses a scale of about 9
        (temperature 1/9) and reports it trains much better.
    distance : Distance, str or callable, default "squared_euclidean"
    normalize : bool, default True
        L2-normalise the embeddings and the proxies before the distance.
    loss_weight : float, default 1.0
    initializer : default "random_normal"

    Examples
    --------
    >>> import numpy as np
    >>> head = ProxyNCA(num_classes=2)
    >>> p = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    >>> _ = head([np.array([0, 1]), p])
    >>> head.set_weights([p])
    >>> _ = head([np.array([0, 1]), p])
    >>> round(float(head.losses[0]), 4)
    0.1269
    """

    weight_name = "proxies"
    weight_attribute = "proxies"
    default_initializer = "random_normal"

    def __init__(
        self,
        num_classes: int,
        softmax_scale: float = 1.0,
        distance: Distance | str | Callable | dict | None = "squared_euclidean",
        normalize: bool = True,
        loss_weight: float = 1.0,
        initializer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_classes, loss_weight=loss_weight, initializer=initializer, **kwargs)
        self.softmax_scale, self.distance, self.normalize = _nca_settings(softmax_scale, distance, normalize)

    def head_loss(self, labels: Tensor, embeddings: Tensor, training: bool | None) -> Tensor:
        return proxy_nca_loss(labels, embeddings, self.proxies, self.softmax_scale, self.distance, self.normalize)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "softmax_scale": self.softmax_scale,
            "distance": serialize_distance(self.distance),
            "normalize": self.normalize,
        }


@keras.saving.register_keras_serializable(package="dmlkeras")
class SoftTriple(LossHead):
    """SoftTriple head (Qian et al., ICCV 2019): ``centers_per_class`` trainable centres per class.

    Adds ``loss_weight * soft_triple_loss(labels, embeddings, centers,
    scale, gamma, margin)``. The ``"centers"`` variable (``head.centers``)
    has shape ``(num_classes, centers_per_class, embedding_dim)``. Cosine by
    definition: no ``distance=``.

    Parameters
    ----------
    num_classes : int
        ``>= 1``.
    centers_per_class : int, default 10
        ``K >= 1`` (the paper's and pytorch-metric-learning's default 10;
        ``K = 1`` is a normalised softmax with a margin).
    scale : float, default 20.0
        ``> 0`` (lambda; pytorch-metric-learning's ``la``).
    gamma : float, default 0.1
        ``> 0``.
    margin : float, default 0.01
        ``>= 0`` (delta).
    loss_weight : float, default 1.0
    initializer : default "glorot_uniform"
        Initial centres (distinct, or a class's centres never separate).

    Examples
    --------
    >>> import numpy as np
    >>> head = SoftTriple(num_classes=2, centers_per_class=2, scale=2.0, margin=0.0)
    >>> x = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    >>> _ = head([np.array([0, 1]), x])
    >>> tuple(head.centers.shape)
    (2, 2, 2)
    >>> head.set_weights([np.array([[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]], "float32")])
    >>> _ = head([np.array([0, 1]), x])
    >>> round(float(head.losses[0]), 4)
    0.1269
    """

    weight_name = "centers"
    weight_attribute = "centers"

    def __init__(
        self,
        num_classes: int,
        centers_per_class: int = 10,
        scale: float = 20.0,
        gamma: float = 0.1,
        margin: float = 0.01,
        loss_weight: float = 1.0,
        initializer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_classes, loss_weight=loss_weight, initializer=initializer, **kwargs)
        self.centers_per_class = check_int(centers_per_class, "centers_per_class", minimum=1)
        self.scale, self.gamma, self.margin = _soft_triple_settings(scale, gamma, margin)

    def weight_shape(self, embedding_dim: int) -> tuple[int, ...]:
        return (self.num_classes, self.centers_per_class, embedding_dim)

    def head_loss(self, labels: Tensor, embeddings: Tensor, training: bool | None) -> Tensor:
        return soft_triple_loss(labels, embeddings, self.centers, self.scale, self.gamma, self.margin)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "centers_per_class": self.centers_per_class,
            "scale": self.scale,
            "gamma": self.gamma,
            "margin": self.margin,
        }
