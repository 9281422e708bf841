"""Loss heads: layers that own class centres, proxies or class weights and add their loss.

A Keras loss cannot own weights, so the losses that learn one vector per
class live in layers. A head takes ``[embeddings, labels]``, holds a
``(num_classes, embedding_dim)`` weight (``"centers"``, ``"proxies"`` or
``"weights"``), adds its loss with ``self.add_loss`` and returns the
embeddings unchanged. Train the model built around it with no compiled loss;
at inference use the tower alone, which outputs the embeddings.

================================  ==========  ==============================================
head                              weight      loss
================================  ==========  ==============================================
:class:`CenterLoss`               centers     Wen et al., ECCV 2016 (moving centre update)
:class:`TripletCenterLoss`        centers     He et al., CVPR 2018
:class:`ProxyAnchorLoss`          proxies     Kim et al., CVPR 2020
:class:`ArcFace`                  weights     Deng et al., CVPR 2019 (additive angular margin)
:class:`CosFace`                  weights     Wang et al., CVPR 2018 (additive cosine margin)
================================  ==========  ==============================================

The loss math is also exposed as plain functions of
``(embeddings, labels, weights)`` (:func:`center_loss`,
:func:`triplet_center_loss`, :func:`proxy_anchor_loss`,
:func:`arcface_loss`, :func:`cosface_loss`), and a head's weight can be
read or replaced with ``get_weights`` / ``set_weights`` (or through its
``centers`` / ``proxies`` / ``class_weights`` attribute).

Examples
--------
Image and label in, embeddings out; the head's loss is the training loss.

>>> import numpy as np
>>> import keras
>>> images = keras.Input(shape=(8, 8, 1), name="image")
>>> labels = keras.Input(shape=(), dtype="int32", name="label")
>>> tower = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(4)], name="tower")
>>> embeddings = ProxyAnchorLoss(num_classes=3, name="head")([tower(images), labels])
>>> model = keras.Model([images, labels], embeddings)
>>> model.compile(optimizer="adam")  # no loss: the head adds it
>>> x = np.random.default_rng(0).normal(size=(12, 8, 8, 1)).astype("float32")
>>> y = np.arange(12) % 3
>>> history = model.fit(x=[x, y], y=None, batch_size=6, epochs=1, verbose=0)
>>> inference = tower  # embeddings only, no labels needed
>>> inference.predict(x, verbose=0).shape
(12, 4)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import keras
from keras import ops

from dmlkeras.distances import (
    as_float32,
    cosine_similarity_matrix,
    pairwise_distances,
    resolve_metric,
    safe_sqrt,
)
from dmlkeras.mining import same_label_mask
from dmlkeras.reducers import masked_logsumexp, masked_mean

Tensor = Any

CENTER_UPDATES = ("moving", "gradient")


# ---------------------------------------------------------------------------
# Loss math
# ---------------------------------------------------------------------------


def _check_inputs(embeddings: Tensor, labels: Tensor, weights: Tensor, name: str) -> tuple[Tensor, Tensor, Tensor]:
    """Validate ``embeddings (n, d)``, ``labels (n,)`` and ``weights (num_classes, d)``."""
    embeddings = as_float32(embeddings)
    weights = as_float32(weights)
    labels = ops.convert_to_tensor(labels)
    if len(embeddings.shape) != 2:
        raise ValueError(
            f"embeddings must have shape (batch_size, embedding_dim); got shape {tuple(embeddings.shape)}."
        )
    if len(labels.shape) == 2 and labels.shape[-1] == 1:
        labels = ops.reshape(labels, (-1,))
    if len(labels.shape) != 1 or (
        labels.shape[0] is not None and embeddings.shape[0] is not None and labels.shape[0] != embeddings.shape[0]
    ):
        raise ValueError(
            f"labels must be integer class ids of shape (batch_size,) = ({embeddings.shape[0]},); "
            f"got shape {tuple(labels.shape)}."
        )
    if len(weights.shape) != 2 or (
        weights.shape[1] is not None and embeddings.shape[1] is not None and weights.shape[1] != embeddings.shape[1]
    ):
        raise ValueError(
            f"{name} must have shape (num_classes, embedding_dim) = (num_classes, {embeddings.shape[1]}); "
            f"got shape {tuple(weights.shape)}."
        )
    return embeddings, ops.cast(labels, "int32"), weights


def _class_mask(labels: Tensor, num_classes: int) -> Tensor:
    """Bool ``(n, num_classes)``: column ``labels[i]`` of row ``i`` (a one-hot mask)."""
    return same_label_mask(labels, ops.arange(num_classes, dtype="int32"))


def center_loss(embeddings: Tensor, labels: Tensor, centers: Tensor) -> Tensor:
    """Center loss: ``1/2 * mean_i ||x_i - c_{labels_i}||^2`` (Wen et al., eq. 2, batch mean).

    Parameters
    ----------
    embeddings : tensor of shape (n, d)
    labels : int tensor of shape (n,), values in ``[0, num_classes)``
    centers : tensor of shape (num_classes, d)

    Returns
    -------
    scalar tensor

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0, 0.0], [0.0, 2.0]], "float32")
    >>> float(center_loss(x, np.array([0, 1]), np.zeros((2, 2), "float32")))  # (1 + 4) / 2 / 2
    1.25
    """
    embeddings, labels, centers = _check_inputs(embeddings, labels, centers, "centers")
    # A one-hot matmul rather than a gather: dense gradients for the centres.
    own = ops.matmul(ops.cast(_class_mask(labels, centers.shape[0]), centers.dtype), centers)
    return 0.5 * ops.mean(ops.sum(ops.square(embeddings - own), axis=-1))


def center_update(embeddings: Tensor, labels: Tensor, centers: Tensor, alpha: float = 0.5) -> Tensor:
    """The paper's centre update: ``c_j - alpha * sum_{i: y_i = j} (c_j - x_i) / (1 + n_j)``.

    Parameters
    ----------
    embeddings : tensor of shape (n, d)
    labels : int tensor of shape (n,)
    centers : tensor of shape (num_classes, d)
    alpha : float, default 0.5
        Update rate, in ``[0, 1]``. Classes absent from the batch keep their centre.

    Returns
    -------
    tensor of shape (num_classes, d)
        The new centres (no gradient is meant to flow through them).

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> new = center_update(np.array([[2.0, 0.0]], "float32"), np.array([0]), np.zeros((2, 2), "float32"), 1.0)
    >>> keras.ops.convert_to_numpy(new)  # moved half-way (n_j = 1, so 1 / (1 + 1))
    array([[1., 0.],
           [0., 0.]], dtype=float32)
    """
    embeddings, labels, centers = _check_inputs(embeddings, labels, centers, "centers")
    embeddings = ops.stop_gradient(embeddings)
    members = ops.cast(ops.transpose(_class_mask(labels, centers.shape[0])), centers.dtype)  # (C, n)
    counts = ops.sum(members, axis=1, keepdims=True)
    delta = (counts * centers - ops.matmul(members, embeddings)) / (1.0 + counts)
    return centers - alpha * delta


def triplet_center_loss(
    embeddings: Tensor,
    labels: Tensor,
    centers: Tensor,
    margin: float = 5.0,
    metric: str = "squared_euclidean",
) -> Tensor:
    """Triplet-center loss (He et al., CVPR 2018), averaged over the batch.

    Per sample ``max(D(x_i, c_{y_i}) + margin - min_{j != y_i} D(x_i, c_j), 0)``,
    with ``D`` the squared Euclidean distance of the paper by default.

    Parameters
    ----------
    embeddings : tensor of shape (n, d)
    labels : int tensor of shape (n,)
    centers : tensor of shape (num_classes, d)
    margin : float, default 5.0
    metric : str, default "squared_euclidean"
        See :mod:`dmlkeras.distances`.

    Returns
    -------
    scalar tensor (0 when there is a single class)

    Examples
    --------
    >>> import numpy as np
    >>> c = np.array([[0.0, 0.0], [2.0, 0.0]], "float32")
    >>> float(triplet_center_loss(np.array([[0.5, 0.0]], "float32"), np.array([0]), c, margin=2.0))
    0.0
    >>> float(triplet_center_loss(np.array([[1.5, 0.0]], "float32"), np.array([0]), c, margin=2.0))
    4.0
    """
    embeddings, labels, centers = _check_inputs(embeddings, labels, centers, "centers")
    distances = pairwise_distances(embeddings, centers, metric=resolve_metric(metric))
    own = _class_mask(labels, centers.shape[0])
    others = ops.logical_not(own)
    positive = ops.sum(ops.where(own, distances, ops.zeros_like(distances)), axis=1)
    filler = ops.stop_gradient(ops.max(distances)) + ops.zeros_like(distances)
    negative = ops.min(ops.where(others, distances, filler), axis=1)
    return masked_mean(ops.relu(positive + margin - negative), ops.any(others, axis=1))


def proxy_anchor_loss(
    embeddings: Tensor,
    labels: Tensor,
    proxies: Tensor,
    margin: float = 0.1,
    alpha: float = 32.0,
) -> Tensor:
    """Proxy-anchor loss (Kim et al., CVPR 2020) for given proxies.

    With ``s_ic`` the cosine similarity of embedding ``i`` and proxy ``c``:

    ``1/|C+| sum_{c in C+} log(1 + sum_{i: y_i = c} exp(-alpha (s_ic - margin)))
    + 1/C sum_c log(1 + sum_{i: y_i != c} exp(alpha (s_ic + margin)))``,

    ``C+`` the classes present in the batch, ``C`` the number of proxies: the
    values of pytorch-metric-learning's ``ProxyAnchorLoss``.

    Parameters
    ----------
    embeddings : tensor of shape (n, d)
    labels : int tensor of shape (n,), values in ``[0, num_classes)``
    proxies : tensor of shape (num_classes, d)
    margin : float, default 0.1
    alpha : float, default 32.0

    Returns
    -------
    scalar tensor

    Examples
    --------
    >>> import numpy as np
    >>> p = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    >>> round(float(proxy_anchor_loss(p, np.array([0, 1]), p, margin=0.1, alpha=2.0)), 4)
    0.9511
    """
    embeddings, labels, proxies = _check_inputs(embeddings, labels, proxies, "proxies")
    num_classes = proxies.shape[0]
    similarities = cosine_similarity_matrix(embeddings, proxies)  # (n, C)
    own = _class_mask(labels, num_classes)
    positive = masked_logsumexp(-alpha * (similarities - margin), own, axis=0, add_one=True)
    negative = masked_logsumexp(alpha * (similarities + margin), ops.logical_not(own), axis=0, add_one=True)
    present = ops.sum(ops.cast(ops.any(own, axis=0), positive.dtype))
    return ops.sum(positive) / ops.maximum(present, 1.0) + ops.sum(negative) / float(num_classes)


def _margin_softmax_loss(embeddings: Tensor, labels: Tensor, weights: Tensor, scale: float, target_fn) -> Tensor:
    """Softmax cross-entropy of ``scale * cos`` with the target logit replaced by ``target_fn(cos_target)``."""
    embeddings, labels, weights = _check_inputs(embeddings, labels, weights, "weights")
    cosines = ops.clip(cosine_similarity_matrix(embeddings, weights), -1.0, 1.0)  # (n, C)
    own = _class_mask(labels, weights.shape[0])
    target = ops.sum(ops.where(own, cosines, ops.zeros_like(cosines)), axis=1, keepdims=True)
    logits = scale * ops.where(own, target_fn(target) + ops.zeros_like(cosines), cosines)
    target_logit = ops.sum(ops.where(own, logits, ops.zeros_like(logits)), axis=1)
    return ops.mean(masked_logsumexp(logits, ops.ones_like(own), axis=1) - target_logit)


def arcface_loss(
    embeddings: Tensor,
    labels: Tensor,
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
    at ``cos(theta) = +-1`` (no ``arccos``).

    Parameters
    ----------
    embeddings : tensor of shape (n, d)
    labels : int tensor of shape (n,), values in ``[0, num_classes)``
    weights : tensor of shape (num_classes, d)
        Class weights (normalised inside).
    scale : float, default 64.0
    margin : float, default 0.5
        Radians (pytorch-metric-learning's ``ArcFaceLoss`` takes degrees:
        ``margin=28.6`` there is ``numpy.radians(28.6)`` here).

    Returns
    -------
    scalar tensor

    Examples
    --------
    >>> import numpy as np
    >>> w = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    >>> round(float(arcface_loss(w, np.array([0, 1]), w, scale=4.0, margin=0.5)), 4)
    0.0294
    """
    cos_m, sin_m = math.cos(margin), math.sin(margin)
    threshold = math.cos(math.pi - margin)

    def target_fn(cosine: Tensor) -> Tensor:
        sine = safe_sqrt(1.0 - ops.square(cosine))
        return ops.where(cosine >= threshold, cosine * cos_m - sine * sin_m, cosine - margin * sin_m)

    return _margin_softmax_loss(embeddings, labels, weights, scale, target_fn)


def cosface_loss(
    embeddings: Tensor,
    labels: Tensor,
    weights: Tensor,
    scale: float = 64.0,
    margin: float = 0.35,
) -> Tensor:
    """Additive cosine margin softmax loss (CosFace / AM-Softmax, Wang et al., CVPR 2018).

    The target logit ``cos(theta)`` becomes ``cos(theta) - margin``; every
    logit is multiplied by ``scale``; the loss is the mean softmax
    cross-entropy (pytorch-metric-learning's ``CosFaceLoss``).

    Parameters
    ----------
    embeddings : tensor of shape (n, d)
    labels : int tensor of shape (n,), values in ``[0, num_classes)``
    weights : tensor of shape (num_classes, d)
        Class weights (normalised inside).
    scale : float, default 64.0
    margin : float, default 0.35

    Returns
    -------
    scalar tensor

    Examples
    --------
    >>> import numpy as np
    >>> w = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    >>> round(float(cosface_loss(w, np.array([0, 1]), w, scale=4.0, margin=0.35)), 4)
    0.0716
    """
    return _margin_softmax_loss(embeddings, labels, weights, scale, lambda cosine: cosine - margin)


# ---------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------


class _LossHead(keras.layers.Layer):
    """A layer that holds one ``(num_classes, embedding_dim)`` weight and adds a loss.

    Subclasses set ``weight_name`` / ``weight_attribute`` /
    ``default_initializer`` and implement :meth:`head_loss`.
    """

    weight_name = "weights"
    weight_attribute = "class_weights"
    default_initializer = "glorot_uniform"

    def __init__(
        self,
        num_classes: int,
        loss_weight: float = 1.0,
        initializer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if int(num_classes) != num_classes or int(num_classes) < 1:
            raise ValueError(f"num_classes must be a positive integer; got {num_classes!r}.")
        self.num_classes = int(num_classes)
        self.loss_weight = float(loss_weight)
        self.initializer = keras.initializers.get(initializer or self.default_initializer)

    @staticmethod
    def _embedding_shape(input_shape: Any) -> tuple:
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2 or not isinstance(
            input_shape[0], (list, tuple)
        ):
            raise ValueError(
                "A loss head takes [embeddings, labels]: embeddings of shape (batch_size, embedding_dim) "
                f"and labels of shape (batch_size,) or (batch_size, 1); got input shape {input_shape}."
            )
        embedding_shape, label_shape = tuple(input_shape[0]), tuple(input_shape[1])
        if len(embedding_shape) != 2 or embedding_shape[-1] is None:
            raise ValueError(
                "embeddings must have shape (batch_size, embedding_dim) with a known embedding_dim; "
                f"got shape {embedding_shape}."
            )
        if not (len(label_shape) == 1 or (len(label_shape) == 2 and label_shape[-1] == 1)):
            raise ValueError(
                f"labels must have shape (batch_size,) or (batch_size, 1); got shape {label_shape}."
            )
        return embedding_shape

    def build(self, input_shape: Any) -> None:
        embedding_dim = self._embedding_shape(input_shape)[-1]
        variable = self.add_weight(
            name=self.weight_name,
            shape=(self.num_classes, embedding_dim),
            initializer=self.initializer,
            trainable=self._weight_trainable(),
        )
        setattr(self, self.weight_attribute, variable)

    def _weight_trainable(self) -> bool:
        return True

    def call(self, inputs: Any, training: bool | None = None) -> Tensor:
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError(
                "A loss head takes [embeddings, labels] (embeddings (batch_size, embedding_dim), "
                "labels (batch_size,)); got a single tensor."
            )
        embeddings, labels = inputs
        self.add_loss(self.loss_weight * self.head_loss(embeddings, labels, training))
        return embeddings

    def head_loss(self, embeddings: Tensor, labels: Tensor, training: bool | None) -> Tensor:
        """The scalar loss of a batch (before ``loss_weight``)."""
        raise NotImplementedError

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return self._embedding_shape(input_shape)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "loss_weight": self.loss_weight,
            "initializer": keras.initializers.serialize(self.initializer),
        }


@keras.saving.register_keras_serializable(package="dmlkeras")
class CenterLoss(_LossHead):
    """Center loss head (Wen et al., ECCV 2016): pull each embedding to its class centre.

    Adds ``loss_weight * center_loss(embeddings, labels, centers)``, i.e.
    ``loss_weight / 2 * mean_i ||x_i - c_{y_i}||^2`` (the paper's
    ``lambda``-weighted ``L_C``, with a batch mean instead of a sum). Wen et
    al. train it jointly with a softmax loss: the centre loss alone lets the
    embeddings collapse.

    Parameters
    ----------
    num_classes : int
    alpha : float, default 0.5
        The paper's centre update rate (``update="moving"``).
    update : {"moving", "gradient"}, default "moving"
        ``"moving"``: the paper's rule. The centres are a non-trainable
        weight, updated in every training call by :func:`center_update`
        (``c_j -= alpha * sum_{y_i = j}(c_j - x_i) / (1 + n_j)``) after the
        loss is computed; the loss's gradient reaches the embeddings only.
        ``"gradient"``: the centres are trainable and the optimiser moves
        them (``alpha`` unused).
    loss_weight : float, default 1.0
        The paper's ``lambda``.
    initializer : default "zeros"
        Initial centres.

    Examples
    --------
    >>> import numpy as np
    >>> head = CenterLoss(num_classes=2, alpha=1.0)
    >>> x = np.array([[2.0, 0.0], [0.0, 2.0]], "float32")
    >>> _ = head([x, np.array([0, 1])], training=True)
    >>> float(head.losses[0])  # centres were 0: (4 + 4) / 2 / 2
    2.0
    >>> head.centers.numpy().tolist()  # moved half-way to the batch
    [[1.0, 0.0], [0.0, 1.0]]
    """

    weight_name = "centers"
    weight_attribute = "centers"
    default_initializer = "zeros"

    def __init__(
        self,
        num_classes: int,
        alpha: float = 0.5,
        update: str = "moving",
        loss_weight: float = 1.0,
        initializer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_classes, loss_weight=loss_weight, initializer=initializer, **kwargs)
        if update not in CENTER_UPDATES:
            raise ValueError(f"update must be one of {CENTER_UPDATES}; got {update!r}.")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha (the centre update rate) must be in [0, 1]; got {alpha}.")
        self.alpha = float(alpha)
        self.update = update

    def _weight_trainable(self) -> bool:
        return self.update == "gradient"

    def head_loss(self, embeddings: Tensor, labels: Tensor, training: bool | None) -> Tensor:
        loss = center_loss(embeddings, labels, self.centers)
        if training and self.update == "moving":
            self.centers.assign(center_update(embeddings, labels, self.centers, self.alpha))
        return loss

    def get_config(self) -> dict:
        return {**super().get_config(), "alpha": self.alpha, "update": self.update}


@keras.saving.register_keras_serializable(package="dmlkeras")
class TripletCenterLoss(_LossHead):
    """Triplet-center loss head (He et al., CVPR 2018) with trainable centres.

    Adds ``loss_weight * triplet_center_loss(embeddings, labels, centers,
    margin, metric)``: each embedding must be closer to its own centre than
    to the nearest other centre by ``margin``.

    Parameters
    ----------
    num_classes : int
    margin : float, default 5.0
    metric : str, default "squared_euclidean"
        The paper's ``D`` is the squared Euclidean distance.
    loss_weight : float, default 1.0
    initializer : default "random_normal"
        Initial centres (distinct, or the first steps have no direction).

    Examples
    --------
    >>> import numpy as np
    >>> head = TripletCenterLoss(num_classes=2, margin=2.0)
    >>> x = np.array([[1.5, 0.0]], "float32")
    >>> _ = head([x, np.array([0])])
    >>> head.set_weights([np.array([[0.0, 0.0], [2.0, 0.0]], "float32")])
    >>> _ = head([x, np.array([0])])
    >>> float(head.losses[0])  # 2.25 + 2 - 0.25
    4.0
    """

    weight_name = "centers"
    weight_attribute = "centers"
    default_initializer = "random_normal"

    def __init__(
        self,
        num_classes: int,
        margin: float = 5.0,
        metric: str = "squared_euclidean",
        loss_weight: float = 1.0,
        initializer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_classes, loss_weight=loss_weight, initializer=initializer, **kwargs)
        self.margin = float(margin)
        self.metric = resolve_metric(metric)

    def head_loss(self, embeddings: Tensor, labels: Tensor, training: bool | None) -> Tensor:
        return triplet_center_loss(embeddings, labels, self.centers, self.margin, self.metric)

    def get_config(self) -> dict:
        return {**super().get_config(), "margin": self.margin, "metric": self.metric}


@keras.saving.register_keras_serializable(package="dmlkeras")
class ProxyAnchorLoss(_LossHead):
    """Proxy-anchor loss head (Kim et al., CVPR 2020) with trainable proxies.

    Adds ``loss_weight * proxy_anchor_loss(embeddings, labels, proxies,
    margin, alpha)`` (see :func:`proxy_anchor_loss`; pytorch-metric-learning's
    values for the same proxies).

    Parameters
    ----------
    num_classes : int
    margin : float, default 0.1
    alpha : float, default 32.0
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
    >>> _ = head([p, np.array([0, 1])])
    >>> head.set_weights([p])
    >>> _ = head([p, np.array([0, 1])])
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
        self.margin = float(margin)
        self.alpha = float(alpha)

    def head_loss(self, embeddings: Tensor, labels: Tensor, training: bool | None) -> Tensor:
        return proxy_anchor_loss(embeddings, labels, self.proxies, self.margin, self.alpha)

    def get_config(self) -> dict:
        return {**super().get_config(), "margin": self.margin, "alpha": self.alpha}


class _MarginSoftmaxHead(_LossHead):
    """A head whose loss is a scaled margin softmax over the class weights.

    Subclasses set ``default_margin`` and ``margin_loss``, a function
    ``(embeddings, labels, weights, scale, margin) -> loss``.
    """

    default_margin: float
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
        self.scale = float(scale)
        self.margin = float(self.default_margin if margin is None else margin)

    def head_loss(self, embeddings: Tensor, labels: Tensor, training: bool | None) -> Tensor:
        return self.margin_loss(embeddings, labels, self.class_weights, self.scale, self.margin)

    def get_config(self) -> dict:
        return {**super().get_config(), "scale": self.scale, "margin": self.margin}


@keras.saving.register_keras_serializable(package="dmlkeras")
class ArcFace(_MarginSoftmaxHead):
    """ArcFace head: additive angular margin softmax (Deng et al., CVPR 2019).

    Adds ``loss_weight * arcface_loss(embeddings, labels, class_weights,
    scale, margin)``. The class weights are the ``"weights"`` variable,
    reachable as ``head.class_weights`` (``Layer.weights`` is Keras' list of
    all variables).

    Parameters
    ----------
    num_classes : int
    scale : float, default 64.0
    margin : float, default 0.5
        Radians.
    loss_weight : float, default 1.0
    initializer : default "glorot_uniform"

    Examples
    --------
    >>> import numpy as np
    >>> head = ArcFace(num_classes=2, scale=4.0, margin=0.5)
    >>> w = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    >>> _ = head([w, np.array([0, 1])])
    >>> head.set_weights([w])
    >>> _ = head([w, np.array([0, 1])])
    >>> round(float(head.losses[0]), 4)
    0.0294
    """

    default_margin = 0.5
    margin_loss = staticmethod(arcface_loss)


@keras.saving.register_keras_serializable(package="dmlkeras")
class CosFace(_MarginSoftmaxHead):
    """CosFace head: additive cosine margin softmax (Wang et al., CVPR 2018).

    Adds ``loss_weight * cosface_loss(embeddings, labels, class_weights,
    scale, margin)``; the class weights are the ``"weights"`` variable,
    ``head.class_weights``.

    Parameters
    ----------
    num_classes : int
    scale : float, default 64.0
    margin : float, default 0.35
    loss_weight : float, default 1.0
    initializer : default "glorot_uniform"

    Examples
    --------
    >>> import numpy as np
    >>> head = CosFace(num_classes=2, scale=4.0, margin=0.35)
    >>> w = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    >>> _ = head([w, np.array([0, 1])])
    >>> head.set_weights([w])
    >>> _ = head([w, np.array([0, 1])])
    >>> round(float(head.losses[0]), 4)
    0.0716
    """

    default_margin = 0.35
    margin_loss = staticmethod(cosface_loss)
