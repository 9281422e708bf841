"""Margin softmax heads: a (scaled, cosine) softmax classifier over class weights, with a margin.

:class:`ArcFace` (Deng et al., CVPR 2019), :class:`CosFace` (Wang et al.,
CVPR 2018), :class:`NormalizedSoftmax` (the margin-free case, Zhai & Wu,
BMVC 2019) and :class:`SubCenterArcFace` (Deng et al., ECCV 2020, several
sub-centres per class), with their functional forms. Cosine by definition:
no ``distance=``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import keras
from keras import ops

from dmlkeras._validation import check_float, check_int
from dmlkeras.distances import cosine_similarity_matrix, safe_sqrt
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


def _check_arcface_margin(margin: float) -> float:
    try:
        return check_float(margin, "margin", minimum=0.0, maximum=math.pi / 2)
    except ValueError as error:
        raise ValueError(
            f"{error} ArcFace's margin is in radians, in [0, pi/2] "
            "(pytorch-metric-learning's degrees: margin=numpy.radians(28.6))."
        ) from None


def _margin_softmax(cosines: Tensor, own: Tensor, scale: float, target_fn: Callable) -> Tensor:
    """Per-sample cross-entropy of ``scale * cos`` with the target logit replaced by ``target_fn(cos_target)``."""
    cosines = ops.clip(cosines, -1.0, 1.0)  # (n, C)
    target = ops.sum(ops.where(own, cosines, ops.zeros_like(cosines)), axis=1, keepdims=True)
    logits = scale * ops.where(own, target_fn(target) + ops.zeros_like(cosines), cosines)
    return class_cross_entropy(logits, own)


def _margin_softmax_loss(labels: Tensor, embeddings: Tensor, weights: Tensor, scale: float, target_fn: Callable) -> Tensor:
    """The batch mean of :func:`_margin_softmax` over one weight vector per class."""
    labels, embeddings, weights, invalid = check_head_inputs(labels, embeddings, weights, "weights")
    cosines = cosine_similarity_matrix(embeddings, weights)
    own = class_mask(labels, weights.shape[0])
    return nan_if(invalid, ops.mean(_margin_softmax(cosines, own, scale, target_fn)))


def _arcface_target(margin: float) -> Callable[[Tensor], Tensor]:
    """ArcFace's target logit ``cos(theta + margin)``, or ``cos(theta) - margin sin(margin)`` past ``pi - margin``."""
    cos_m, sin_m = math.cos(margin), math.sin(margin)
    threshold = math.cos(math.pi - margin)

    def target_fn(cosine: Tensor) -> Tensor:
        sine = safe_sqrt(1.0 - ops.square(cosine))
        return ops.where(cosine >= threshold, cosine * cos_m - sine * sin_m, cosine - margin * sin_m)

    return target_fn


def arcface_loss(
    labels: Tensor,
    embeddings: Tensor,
    weights: Tensor,
    scale: float = 64.0,
    margin: float = 0.5,
) -> Tensor:
    """Additive angular margin softmax loss (ArcFace, Deng et al., CVPR 2019).

    The target logit ``cos(theta)`` becomes ``cos(theta + margin)`` (margin in
    radians) while ``theta <= pi - margin``, else ``cos(theta) - margin *
    sin(margin)`` (keeps it decreasing in ``theta``, as InsightFace and
    pytorch-metric-learning do); every logit is multiplied by ``scale``; the
    loss is the mean softmax cross-entropy. ``cos(theta + m)`` is evaluated as
    ``cos(theta) cos(m) - sin(theta) sin(m)`` so the gradient stays finite
    at ``cos(theta) = +-1`` (no ``arccos``). Cosine by definition (an
    angle): no ``distance=``.

    Parameters
    ----------
    labels : int tensor of shape (n,) or (n, 1), values in ``[0, num_classes)``
    embeddings : tensor of shape (n, d)
    weights : tensor of shape (num_classes, d)
        Class weights (normalised inside).
    scale : float, default 64.0
        ``> 0``.
    margin : float, default 0.5
        Radians, in ``[0, pi/2]`` (pytorch-metric-learning's ``ArcFaceLoss``
        takes degrees: ``margin=28.6`` there is ``numpy.radians(28.6)`` here).

    Returns
    -------
    scalar tensor

    Examples
    --------
    >>> import numpy as np
    >>> w = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    >>> round(float(arcface_loss(np.array([0, 1]), w, w, scale=4.0, margin=0.5)), 4)
    0.0294
    """
    scale = check_scale(scale)
    margin = _check_arcface_margin(margin)
    return _margin_softmax_loss(labels, embeddings, weights, scale, _arcface_target(margin))


def cosface_loss(
    labels: Tensor,
    embeddings: Tensor,
    weights: Tensor,
    scale: float = 64.0,
    margin: float = 0.35,
) -> Tensor:
    """Additive cosine margin softmax loss (CosFace / AM-Softmax, Wang et al., CVPR 2018).

    The target logit ``cos(theta)`` becomes ``cos(theta) - margin``; every
    logit is multiplied by ``scale``; the loss is the mean softmax
    cross-entropy (pytorch-metric-learning's ``CosFaceLoss``). Cosine by
    definition: no ``distance=``.

    Parameters
    ----------
    labels : int tensor of shape (n,) or (n, 1), values in ``[0, num_classes)``
    embeddings : tensor of shape (n, d)
    weights : tensor of shape (num_classes, d)
        Class weights (normalised inside).
    scale : float, default 64.0
        ``> 0``.
    margin : float, default 0.35
        In ``[0, 1]``.

    Returns
    -------
    scalar tensor

    Examples
    --------
    >>> import numpy as np
    >>> w = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    >>> round(float(cosface_loss(np.array([0, 1]), w, w, scale=4.0, margin=0.35)), 4)
    0.0716
    """
    scale = check_scale(scale)
    margin = check_unit_margin(margin)
    return _margin_softmax_loss(labels, embeddings, weights, scale, lambda cosine: cosine - margin)


def normalized_softmax_loss(
    labels: Tensor,
    embeddings: Tensor,
    weights: Tensor,
    temperature: float = 0.05,
) -> Tensor:
    """Normalized softmax loss (Zhai & Wu, BMVC 2019): softmax cross-entropy of ``cos / temperature``.

    Embeddings and class weights are L2-normalised, the logits are their
    cosines divided by ``temperature``, and the loss is the batch mean of
    the cross-entropy: pytorch-metric-learning's ``NormalizedSoftmaxLoss``
    (the default dot product of normalised vectors). It is
    :func:`cosface_loss` with ``margin=0`` and ``scale=1/temperature``.
    Cosine by definition: no ``distance=``.

    Parameters
    ----------
    labels : int tensor of shape (n,) or (n, 1), values in ``[0, num_classes)``
    embeddings : tensor of shape (n, d)
    weights : tensor of shape (num_classes, d)
        Class weights (normalised inside).
    temperature : float, default 0.05
        ``> 0``; pytorch-metric-learning's default.

    Returns
    -------
    scalar tensor

    Examples
    --------
    >>> import numpy as np
    >>> w = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    >>> round(float(normalized_softmax_loss(np.array([0, 1]), w, w, temperature=0.5)), 4)  # log(1 + e^-2)
    0.1269
    """
    temperature = check_scale(temperature, "temperature")
    return _margin_softmax_loss(labels, embeddings, weights, 1.0 / temperature, lambda cosine: cosine)


def _subcenter_cosines(labels: Tensor, embeddings: Tensor, weights: Tensor) -> tuple:
    """Checked inputs and the cosines ``(n, C, k)`` with every sub-centre: ``(labels, weights, invalid, cosines)``."""
    labels, embeddings, weights, invalid = check_head_inputs(labels, embeddings, weights, "weights", per_class=True)
    return labels, weights, invalid, per_class_cosines(embeddings, weights)


def subcenter_arcface_loss(
    labels: Tensor,
    embeddings: Tensor,
    weights: Tensor,
    scale: float = 64.0,
    margin: float = 0.5,
) -> Tensor:
    """Sub-center ArcFace loss (Deng et al., ECCV 2020): ArcFace on the closest of ``k`` sub-centres per class.

    Each class has ``k`` weight vectors; the cosine of an embedding with a
    class is its largest cosine with that class's sub-centres, and
    :func:`arcface_loss`'s margin softmax runs on those ``(n, num_classes)``
    cosines. A noisy sample can then sit at a non-dominant sub-centre
    instead of pulling the class's main one (:func:`subcenter_outliers`
    finds those samples). pytorch-metric-learning's ``SubCenterArcFaceLoss``,
    whose ``W (d, num_classes * k)`` column ``c * k + j`` is ``weights[c, j]``
    here. Cosine by definition: no ``distance=``.

    Parameters
    ----------
    labels : int tensor of shape (n,) or (n, 1), values in ``[0, num_classes)``
    embeddings : tensor of shape (n, d)
    weights : tensor of shape (num_classes, k, d)
        ``k`` sub-centres per class (normalised inside).
    scale : float, default 64.0
        ``> 0``.
    margin : float, default 0.5
        Radians, in ``[0, pi/2]`` (pytorch-metric-learning's default is 28.6
        degrees, ``numpy.radians(28.6)`` here).

    Returns
    -------
    scalar tensor

    Examples
    --------
    >>> import numpy as np
    >>> w = np.array([[[1.0, 0.0], [0.0, -1.0]], [[0.0, 1.0], [-1.0, 0.0]]], "float32")  # (2 classes, 2, 2)
    >>> x = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    >>> round(float(subcenter_arcface_loss(np.array([0, 1]), x, w, scale=4.0, margin=0.5)), 4)  # = ArcFace's
    0.0294
    """
    scale = check_scale(scale)
    margin = _check_arcface_margin(margin)
    labels, weights, invalid, cosines = _subcenter_cosines(labels, embeddings, weights)
    own = class_mask(labels, weights.shape[0])
    per_sample = _margin_softmax(ops.max(cosines, axis=2), own, scale, _arcface_target(margin))
    return nan_if(invalid, ops.mean(per_sample))


def subcenter_outliers(
    labels: Tensor,
    embeddings: Tensor,
    weights: Tensor,
    threshold: float = math.radians(75.0),
) -> tuple[Tensor, Tensor]:
    """The samples far from their class's dominant sub-centre, and the dominant sub-centres.

    pytorch-metric-learning's ``SubCenterArcFaceLoss.get_outliers``, with
    fixed shapes: for each class present in the batch, every member votes
    for its closest sub-centre (largest cosine); the sub-centre with the
    most votes (the first on ties) is the class's dominant one. A sample is
    an outlier when its angle to its class's dominant sub-centre exceeds
    ``threshold`` (a NaN embedding is an outlier too). Sub-center ArcFace's
    recipe for noisy labels: train, drop the outliers, retrain with ``k=1``
    starting from the dominant sub-centres. No gradient flows.

    Parameters
    ----------
    labels : int tensor of shape (n,) or (n, 1), values in ``[0, num_classes)``
    embeddings : tensor of shape (n, d)
    weights : tensor of shape (num_classes, k, d)
    threshold : float, default ``math.radians(75)``
        Radians, in ``[0, pi]`` (pytorch-metric-learning's ``threshold=75``
        is in degrees).

    Returns
    -------
    outliers : bool tensor of shape (n,)
        ``numpy.flatnonzero`` of it gives pytorch-metric-learning's indices.
        When compiled, a batch with an invalid label marks every sample.
    dominant_centers : tensor of shape (num_classes, d)
        Each class's dominant sub-centre (not normalised). A class absent
        from the batch gets its first sub-centre (pytorch-metric-learning
        leaves that column uninitialised).

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> w = np.array([[[1.0, 0.0], [0.0, 1.0]]], "float32")  # one class, two sub-centres
    >>> x = np.array([[1.0, 0.1], [1.0, -0.1], [0.1, 1.0]], "float32")
    >>> outliers, dominant = subcenter_outliers(np.zeros(3, "int32"), x, w)
    >>> keras.ops.convert_to_numpy(outliers).tolist()  # two votes for sub-centre 0; the third is ~84 degrees away
    [False, False, True]
    >>> keras.ops.convert_to_numpy(dominant).tolist()
    [[1.0, 0.0]]
    """
    try:
        threshold = check_float(threshold, "threshold", minimum=0.0, maximum=math.pi)
    except ValueError as error:
        raise ValueError(f"{error} The threshold is an angle in radians (degrees: math.radians(75)).") from None
    labels, weights, invalid, cosines = _subcenter_cosines(labels, embeddings, weights)
    weights, cosines = ops.stop_gradient(weights), ops.stop_gradient(cosines)
    num_classes, per_class = weights.shape[0], weights.shape[1]
    own = ops.cast(class_mask(labels, num_classes), cosines.dtype)  # (n, C)
    own_cosines = ops.sum(cosines * own[:, :, None], axis=1)  # (n, k): the cosines with the own class's sub-centres
    votes = ops.matmul(ops.transpose(own), ops.one_hot(ops.argmax(own_cosines, axis=1), per_class))  # (C, k)
    dominant = ops.one_hot(ops.argmax(votes, axis=1), per_class)  # (C, k)
    dominant_cosines = ops.sum(own_cosines * ops.matmul(own, dominant), axis=1)  # (n,)
    outliers = ops.logical_not(dominant_cosines >= math.cos(threshold))
    if invalid is not None:
        outliers = ops.logical_or(outliers, invalid)
    return outliers, ops.sum(weights * dominant[:, :, None], axis=1)


class _MarginSoftmaxHead(LossHead):
    """A head whose loss is a scaled margin softmax over the class weights.

    Subclasses set ``default_margin``, ``check_margin`` and ``margin_loss``,
    a function ``(labels, embeddings, weights, scale, margin) -> loss``.
    """

    default_margin: float
    check_margin: Callable[[float], float]
    margin_loss: Callable[..., Tensor]

    def __init__(
        self,
        num_classes: int,
        scale: float = 64.0,
        margin: float | None = None,
        loss_weight: float = 1.0,
        initializer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_classes, loss_weight=loss_weight, initializer=initializer, **kwargs)
        self.scale = check_scale(scale)
        self.margin = self.check_margin(self.default_margin if margin is None else margin)

    def head_loss(self, labels: Tensor, embeddings: Tensor, training: bool | None) -> Tensor:
        return self.margin_loss(labels, embeddings, self.class_weights, self.scale, self.margin)

    def get_config(self) -> dict:
        return {**super().get_config(), "scale": self.scale, "margin": self.margin}


@keras.saving.register_keras_serializable(package="dmlkeras")
class ArcFace(_MarginSoftmaxHead):
    """ArcFace head: additive angular margin softmax (Deng et al., CVPR 2019).

    Adds ``loss_weight * arcface_loss(labels, embeddings, class_weights,
    scale, margin)``. The class weights are the ``"weights"`` variable,
    reachable as ``head.class_weights`` (``Layer.weights`` is Keras' list of
    all variables). An angle, so cosine by definition: no ``distance=``.

    Parameters
    ----------
    num_classes : int
        ``>= 1``.
    scale : float, default 64.0
        ``> 0``.
    margin : float, default 0.5
        Radians, in ``[0, pi/2]``.
    loss_weight : float, default 1.0
    initializer : default "glorot_uniform"

    Examples
    --------
    >>> import numpy as np
    >>> head = ArcFace(num_classes=2, scale=4.0, margin=0.5)
    >>> w = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    >>> _ = head([np.array([0, 1]), w])
    >>> head.set_weights([w])
    >>> _ = head([np.array([0, 1]), w])
    >>> round(float(head.losses[0]), 4)
    0.0294
    """

    default_margin = 0.5
    check_margin = staticmethod(_check_arcface_margin)
    margin_loss = staticmethod(arcface_loss)


@keras.saving.register_keras_serializable(package="dmlkeras")
class CosFace(_MarginSoftmaxHead):
    """CosFace head: additive cosine margin softmax (Wang et al., CVPR 2018).

    Adds ``loss_weight * cosface_loss(labels, embeddings, class_weights,
    scale, margin)``; the class weights are the ``"weights"`` variable,
    ``head.class_weights``. Cosine by definition: no ``distance=``.

    Parameters
    ----------
    num_classes : int
        ``>= 1``.
    scale : float, default 64.0
        ``> 0``.
    margin : float, default 0.35
        In ``[0, 1]``.
    loss_weight : float, default 1.0
    initializer : default "glorot_uniform"

    Examples
    --------
    >>> import numpy as np
    >>> head = CosFace(num_classes=2, scale=4.0, margin=0.35)
    >>> w = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    >>> _ = head([np.array([0, 1]), w])
    >>> head.set_weights([w])
    >>> _ = head([np.array([0, 1]), w])
    >>> round(float(head.losses[0]), 4)
    0.0716
    """

    default_margin = 0.35
    check_margin = staticmethod(check_unit_margin)
    margin_loss = staticmethod(cosface_loss)


@keras.saving.register_keras_serializable(package="dmlkeras")
class NormalizedSoftmax(LossHead):
    """Normalized softmax head (Zhai & Wu, BMVC 2019): a cosine softmax classifier with a temperature.

    Adds ``loss_weight * normalized_softmax_loss(labels, embeddings,
    class_weights, temperature)``; the class weights are the ``"weights"``
    variable, ``head.class_weights``. Cosine by definition: no
    ``distance=``.

    Parameters
    ----------
    num_classes : int
        ``>= 1``.
    temperature : float, default 0.05
        ``> 0`` (pytorch-metric-learning's default; the logits are ``cos / temperature``).
    loss_weight : float, default 1.0
    initializer : default "glorot_uniform"

    Examples
    --------
    >>> import numpy as np
    >>> head = NormalizedSoftmax(num_classes=2, temperature=0.5)
    >>> w = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    >>> _ = head([np.array([0, 1]), w])
    >>> head.set_weights([w])
    >>> _ = head([np.array([0, 1]), w])
    >>> round(float(head.losses[0]), 4)
    0.1269
    """

    def __init__(
        self,
        num_classes: int,
        temperature: float = 0.05,
        loss_weight: float = 1.0,
        initializer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_classes, loss_weight=loss_weight, initializer=initializer, **kwargs)
        self.temperature = check_scale(temperature, "temperature")

    def head_loss(self, labels: Tensor, embeddings: Tensor, training: bool | None) -> Tensor:
        return normalized_softmax_loss(labels, embeddings, self.class_weights, self.temperature)

    def get_config(self) -> dict:
        return {**super().get_config(), "temperature": self.temperature}


@keras.saving.register_keras_serializable(package="dmlkeras")
class SubCenterArcFace(_MarginSoftmaxHead):
    """Sub-center ArcFace head (Deng et al., ECCV 2020): ArcFace with ``sub_centers`` weight vectors per class.

    Adds ``loss_weight * subcenter_arcface_loss(labels, embeddings,
    class_weights, scale, margin)``. The ``"weights"`` variable
    (``head.class_weights``) has shape ``(num_classes, sub_centers,
    embedding_dim)``. :meth:`get_outliers` finds the samples far from their
    class's dominant sub-centre (pytorch-metric-learning's ``get_outliers``).
    Cosine by definition: no ``distance=``.

    Parameters
    ----------
    num_classes : int
        ``>= 1``.
    sub_centers : int, default 3
        ``k >= 1`` (pytorch-metric-learning's and the paper's default 3;
        ``k = 1`` is :class:`ArcFace`).
    scale : float, default 64.0
        ``> 0``.
    margin : float, default 0.5
        Radians, in ``[0, pi/2]``.
    loss_weight : float, default 1.0
    initializer : default "glorot_uniform"

    Examples
    --------
    >>> import numpy as np
    >>> head = SubCenterArcFace(num_classes=2, sub_centers=2, scale=4.0, margin=0.5)
    >>> x = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    >>> _ = head([np.array([0, 1]), x])
    >>> tuple(head.class_weights.shape)
    (2, 2, 2)
    >>> head.set_weights([np.array([[[1.0, 0.0], [0.0, -1.0]], [[0.0, 1.0], [-1.0, 0.0]]], "float32")])
    >>> _ = head([np.array([0, 1]), x])
    >>> round(float(head.losses[0]), 4)
    0.0294
    >>> keras.ops.convert_to_numpy(head.get_outliers(np.array([0, 1]), x)[0]).tolist()
    [False, False]
    """

    default_margin = 0.5
    check_margin = staticmethod(_check_arcface_margin)
    margin_loss = staticmethod(subcenter_arcface_loss)

    def __init__(
        self,
        num_classes: int,
        sub_centers: int = 3,
        scale: float = 64.0,
        margin: float | None = None,
        loss_weight: float = 1.0,
        initializer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_classes, scale=scale, margin=margin, loss_weight=loss_weight, initializer=initializer,
                         **kwargs)
        self.sub_centers = check_int(sub_centers, "sub_centers", minimum=1)

    def weight_shape(self, embedding_dim: int) -> tuple[int, ...]:
        return (self.num_classes, self.sub_centers, embedding_dim)

    def get_outliers(
        self, labels: Tensor, embeddings: Tensor, threshold: float = math.radians(75.0)
    ) -> tuple[Tensor, Tensor]:
        """:func:`subcenter_outliers` with this head's sub-centres: ``(outliers (n,), dominant_centers (C, d))``."""
        return subcenter_outliers(labels, embeddings, self.class_weights, threshold)

    def get_config(self) -> dict:
        return {**super().get_config(), "sub_centers": self.sub_centers}
