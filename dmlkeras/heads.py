"""Loss heads: layers that own class centres, proxies or class weights and add their loss.

A Keras loss cannot own weights, so the losses that learn one vector per
class live in layers. A head takes ``[labels, embeddings]`` (the order of
the losses' ``(y_true, y_pred)``), holds a ``(num_classes, embedding_dim)``
weight (``"centers"``, ``"proxies"`` or ``"weights"``), adds its loss with
``self.add_loss`` and returns the embeddings unchanged. Train the model
built around it with no compiled loss; at inference use the tower alone,
which outputs the embeddings.

The first version's order ``[embeddings, labels]`` keeps working (models and
``.keras`` files built with it load and train unchanged): the head tells the
two apart by dtype (labels are integer, embeddings float) and, for float
labels, by shape (labels ``(n,)`` or ``(n, 1)``, embeddings ``(n, d)`` with
``d > 1``), and raises ``ValueError`` when neither decides.

================================  ==========  ==============================================
head                              weight      loss
================================  ==========  ==============================================
:class:`CenterLoss`               centers     Wen et al., ECCV 2016 (moving centre update)
:class:`TripletCenterLoss`        centers     He et al., CVPR 2018
:class:`ProxyAnchorLoss`          proxies     Kim et al., CVPR 2020
:class:`ArcFace`                  weights     Deng et al., CVPR 2019 (additive angular margin)
:class:`CosFace`                  weights     Wang et al., CVPR 2018 (additive cosine margin)
================================  ==========  ==============================================

The loss math is also exposed as plain functions of ``(labels, embeddings,
weights)`` (:func:`center_loss`, :func:`triplet_center_loss`,
:func:`proxy_anchor_loss`, :func:`arcface_loss`, :func:`cosface_loss`), and
a head's weight can be read or replaced with ``get_weights`` /
``set_weights`` (or through its ``centers`` / ``proxies`` /
``class_weights`` attribute). :class:`CenterLoss` and
:class:`TripletCenterLoss` take ``distance=`` (see :mod:`dmlkeras.distances`);
proxy-anchor, ArcFace and CosFace are cosine by definition.

Labels are checked: a negative, too large (``>= num_classes``) or
non-integral label raises ``ValueError`` naming ``num_classes`` whenever the
values are known (eager calls). In compiled training (``tf.function``,
``jax.jit``) values are unknown when the graph is built and ``keras.ops``
cannot raise, so a batch holding such a label gets a NaN loss instead (so
``keras.callbacks.TerminateOnNaN`` stops the run) and :class:`CenterLoss`
leaves its centres unchanged for that batch.

Examples
--------
Image and label in, embeddings out; the head's loss is the training loss.

>>> import numpy as np
>>> import keras
>>> images = keras.Input(shape=(8, 8, 1), name="image")
>>> labels = keras.Input(shape=(), dtype="int32", name="label")
>>> tower = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(4)], name="tower")
>>> embeddings = ProxyAnchorLoss(num_classes=3, name="head")([labels, tower(images)])
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
import numpy as np
from keras import ops

from dmlkeras._validation import as_float32, check_float, check_int, class_label_tensor
from dmlkeras.distances import (
    Distance,
    DotProduct,
    cosine_similarity_matrix,
    safe_sqrt,
)
from dmlkeras.distances import get as get_distance
from dmlkeras.distances import serialize as serialize_distance
from dmlkeras.mining import same_label_mask
from dmlkeras.reducers import masked_logsumexp, masked_mean

Tensor = Any

CENTER_UPDATES = ("moving", "gradient")

_ORDER_HINT = "the functional forms take (labels, embeddings, weights), like the losses' (y_true, y_pred)"


# ---------------------------------------------------------------------------
# Argument checks
# ---------------------------------------------------------------------------


def _check_inputs(
    labels: Tensor, embeddings: Tensor, weights: Tensor, name: str
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """Validate ``labels (n,)``, ``embeddings (n, d)`` and ``weights (num_classes, d)``.

    Returns int32 labels, float32 embeddings and weights, and the traced
    "a label is invalid" flag of :func:`dmlkeras._validation.class_label_tensor`
    (``None`` when the labels were checked eagerly).
    """
    embeddings = as_float32(embeddings)
    weights = as_float32(weights)
    # Not converted here: class_label_tensor checks the values before any cast.
    label_shape = tuple(labels.shape) if hasattr(labels, "shape") else np.shape(labels)
    if len(embeddings.shape) != 2:
        raise ValueError(
            f"embeddings must have shape (batch_size, embedding_dim); got shape {tuple(embeddings.shape)} "
            f"({_ORDER_HINT})."
        )
    if len(label_shape) == 2 and label_shape[-1] == 1:
        label_shape = label_shape[:1]
    if len(label_shape) != 1 or (
        label_shape[0] is not None and embeddings.shape[0] is not None and label_shape[0] != embeddings.shape[0]
    ):
        raise ValueError(
            f"labels must be integer class ids of shape (batch_size,) = ({embeddings.shape[0]},); "
            f"got shape {tuple(label_shape)} ({_ORDER_HINT})."
        )
    if (
        len(weights.shape) != 2
        or weights.shape[0] is None
        or (weights.shape[1] is not None and embeddings.shape[1] is not None and weights.shape[1] != embeddings.shape[1])
    ):
        raise ValueError(
            f"{name} must have shape (num_classes, embedding_dim) = (num_classes, {embeddings.shape[1]}) "
            f"with a known num_classes; got shape {tuple(weights.shape)}."
        )
    labels, invalid = class_label_tensor(labels, int(weights.shape[0]))
    return labels, embeddings, weights, invalid


def _nan_if(invalid: Tensor | None, loss: Tensor) -> Tensor:
    """``loss``, or NaN when the (traced) labels held an invalid id."""
    if invalid is None:
        return loss
    return ops.where(invalid, ops.full_like(loss, math.nan), loss)


def _check_center_alpha(alpha: float) -> float:
    alpha = check_float(alpha, "alpha (the centre update rate)", minimum=0.0, maximum=1.0)
    if alpha == 0.0:
        raise ValueError("alpha (the centre update rate) must be in (0, 1]; got 0.0 (the centres would never move).")
    return alpha


def _check_scale(scale: float) -> float:
    return check_float(scale, "scale", minimum=0.0, strict=True)


def _check_arcface_margin(margin: float) -> float:
    try:
        return check_float(margin, "margin", minimum=0.0, maximum=math.pi / 2)
    except ValueError as error:
        raise ValueError(
            f"{error} ArcFace's margin is in radians, in [0, pi/2] "
            "(pytorch-metric-learning's degrees: margin=numpy.radians(28.6))."
        ) from None


def _check_unit_margin(margin: float) -> float:
    return check_float(margin, "margin", minimum=0.0, maximum=1.0)


def _center_distance(distance: Any, metric: Any = None) -> Distance:
    """The distance of a centre loss: ``distance=``, or the first version's ``metric=``."""
    if metric is not None:
        if distance is not None:
            raise ValueError("Pass distance= or its old name metric=, not both.")
        distance = metric
    return get_distance("squared_euclidean" if distance is None else distance)


def _class_mask(labels: Tensor, num_classes: int) -> Tensor:
    """Bool ``(n, num_classes)``: column ``labels[i]`` of row ``i`` (a one-hot mask)."""
    return same_label_mask(labels, ops.arange(num_classes, dtype="int32"))


# ---------------------------------------------------------------------------
# Loss math
# ---------------------------------------------------------------------------


def center_loss(
    labels: Tensor,
    embeddings: Tensor,
    centers: Tensor,
    distance: Distance | str | Callable | None = "squared_euclidean",
) -> Tensor:
    """Center loss: ``1/2 * mean_i D(x_i, c_{labels_i})`` (Wen et al., eq. 2, batch mean).

    With the paper's ``D``, the squared Euclidean distance,
    ``1/2 * mean_i ||x_i - c_{labels_i}||^2``.

    Parameters
    ----------
    labels : int tensor of shape (n,) or (n, 1), values in ``[0, num_classes)``
    embeddings : tensor of shape (n, d)
    centers : tensor of shape (num_classes, d)
    distance : Distance, str or callable, default "squared_euclidean"
        Any :mod:`dmlkeras.distances` distance (a similarity is used through
        its ``distance_matrix`` form, e.g. ``1 - cos``); not
        :class:`~dmlkeras.distances.DotProduct`, whose ``-x.c`` is unbounded
        below.

    Returns
    -------
    scalar tensor

    Raises
    ------
    ValueError
        On bad shapes, or a label outside ``[0, num_classes)`` (eagerly; NaN
        when compiled, see the module docstring).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0, 0.0], [0.0, 2.0]], "float32")
    >>> float(center_loss(np.array([0, 1]), x, np.zeros((2, 2), "float32")))  # (1 + 4) / 2 / 2
    1.25
    """
    distance = _center_distance(distance)
    if isinstance(distance, DotProduct):
        raise ValueError("center_loss needs a distance bounded below; DotProduct's -x.c is not (use cosine).")
    labels, embeddings, centers, invalid = _check_inputs(labels, embeddings, centers, "centers")
    # A one-hot matmul rather than a gather: dense gradients for the centres.
    own = ops.matmul(ops.cast(_class_mask(labels, centers.shape[0]), centers.dtype), centers)
    per_sample = distance.to_distance(distance.paired(embeddings, own))
    return _nan_if(invalid, 0.5 * ops.mean(per_sample))


def center_update(labels: Tensor, embeddings: Tensor, centers: Tensor, alpha: float = 0.5) -> Tensor:
    """The paper's centre update: ``c_j - alpha * sum_{i: y_i = j} (c_j - x_i) / (1 + n_j)``.

    Parameters
    ----------
    labels : int tensor of shape (n,) or (n, 1), values in ``[0, num_classes)``
    embeddings : tensor of shape (n, d)
    centers : tensor of shape (num_classes, d)
    alpha : float, default 0.5
        Update rate, in ``(0, 1]``. Classes absent from the batch keep their centre.

    Returns
    -------
    tensor of shape (num_classes, d)
        The new centres (no gradient is meant to flow through them). An
        invalid label raises ``ValueError`` eagerly; when compiled, the
        centres are returned unchanged (no row is dropped silently: the
        matching loss is NaN).

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> new = center_update(np.array([0]), np.array([[2.0, 0.0]], "float32"), np.zeros((2, 2), "float32"), 1.0)
    >>> keras.ops.convert_to_numpy(new)  # moved half-way (n_j = 1, so 1 / (1 + 1))
    array([[1., 0.],
           [0., 0.]], dtype=float32)
    """
    alpha = _check_center_alpha(alpha)
    labels, embeddings, centers, invalid = _check_inputs(labels, embeddings, centers, "centers")
    embeddings = ops.stop_gradient(embeddings)
    members = ops.cast(ops.transpose(_class_mask(labels, centers.shape[0])), centers.dtype)  # (C, n)
    counts = ops.sum(members, axis=1, keepdims=True)
    delta = (counts * centers - ops.matmul(members, embeddings)) / (1.0 + counts)
    updated = centers - alpha * delta
    return updated if invalid is None else ops.where(invalid, centers, updated)


def triplet_center_loss(
    labels: Tensor,
    embeddings: Tensor,
    centers: Tensor,
    margin: float = 5.0,
    distance: Distance | str | Callable | None = None,
    metric: str | None = None,
) -> Tensor:
    """Triplet-center loss (He et al., CVPR 2018), averaged over the batch.

    Per sample ``max(D(x_i, c_{y_i}) + margin - min_{j != y_i} D(x_i, c_j), 0)``,
    with ``D`` the squared Euclidean distance of the paper by default.

    Parameters
    ----------
    labels : int tensor of shape (n,) or (n, 1), values in ``[0, num_classes)``
    embeddings : tensor of shape (n, d)
    centers : tensor of shape (num_classes, d)
    margin : float, default 5.0
        ``>= 0``.
    distance : Distance, str or callable, default "squared_euclidean"
        Any :mod:`dmlkeras.distances` object or name; a similarity is used
        as its ``distance_matrix`` (``1 - cos``, ``-x.c``).
    metric : str, optional
        The first version's name of ``distance`` (pass one or the other).

    Returns
    -------
    scalar tensor (0 when there is a single class)

    Examples
    --------
    >>> import numpy as np
    >>> c = np.array([[0.0, 0.0], [2.0, 0.0]], "float32")
    >>> float(triplet_center_loss(np.array([0]), np.array([[0.5, 0.0]], "float32"), c, margin=2.0))
    0.0
    >>> float(triplet_center_loss(np.array([0]), np.array([[1.5, 0.0]], "float32"), c, margin=2.0))
    4.0
    """
    margin = check_float(margin, "margin", minimum=0.0)
    distance = _center_distance(distance, metric)
    labels, embeddings, centers, invalid = _check_inputs(labels, embeddings, centers, "centers")
    distances = distance.distance_matrix(embeddings, centers)
    own = _class_mask(labels, centers.shape[0])
    others = ops.logical_not(own)
    positive = ops.sum(ops.where(own, distances, ops.zeros_like(distances)), axis=1)
    filler = ops.stop_gradient(ops.max(distances)) + ops.zeros_like(distances)
    negative = ops.min(ops.where(others, distances, filler), axis=1)
    return _nan_if(invalid, masked_mean(ops.relu(positive + margin - negative), ops.any(others, axis=1)))


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
    margin = _check_unit_margin(margin)
    alpha = check_float(alpha, "alpha", minimum=0.0, strict=True)
    labels, embeddings, proxies, invalid = _check_inputs(labels, embeddings, proxies, "proxies")
    num_classes = proxies.shape[0]
    similarities = cosine_similarity_matrix(embeddings, proxies)  # (n, C)
    own = _class_mask(labels, num_classes)
    positive = masked_logsumexp(-alpha * (similarities - margin), own, axis=0, add_one=True)
    negative = masked_logsumexp(alpha * (similarities + margin), ops.logical_not(own), axis=0, add_one=True)
    present = ops.sum(ops.cast(ops.any(own, axis=0), positive.dtype))
    loss = ops.sum(positive) / ops.maximum(present, 1.0) + ops.sum(negative) / float(num_classes)
    return _nan_if(invalid, loss)


def _margin_softmax_loss(labels: Tensor, embeddings: Tensor, weights: Tensor, scale: float, target_fn) -> Tensor:
    """Softmax cross-entropy of ``scale * cos`` with the target logit replaced by ``target_fn(cos_target)``."""
    labels, embeddings, weights, invalid = _check_inputs(labels, embeddings, weights, "weights")
    cosines = ops.clip(cosine_similarity_matrix(embeddings, weights), -1.0, 1.0)  # (n, C)
    own = _class_mask(labels, weights.shape[0])
    target = ops.sum(ops.where(own, cosines, ops.zeros_like(cosines)), axis=1, keepdims=True)
    logits = scale * ops.where(own, target_fn(target) + ops.zeros_like(cosines), cosines)
    target_logit = ops.sum(ops.where(own, logits, ops.zeros_like(logits)), axis=1)
    return _nan_if(invalid, ops.mean(masked_logsumexp(logits, ops.ones_like(own), axis=1) - target_logit))


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
    scale = _check_scale(scale)
    margin = _check_arcface_margin(margin)
    cos_m, sin_m = math.cos(margin), math.sin(margin)
    threshold = math.cos(math.pi - margin)

    def target_fn(cosine: Tensor) -> Tensor:
        sine = safe_sqrt(1.0 - ops.square(cosine))
        return ops.where(cosine >= threshold, cosine * cos_m - sine * sin_m, cosine - margin * sin_m)

    return _margin_softmax_loss(labels, embeddings, weights, scale, target_fn)


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
    scale = _check_scale(scale)
    margin = _check_unit_margin(margin)
    return _margin_softmax_loss(labels, embeddings, weights, scale, lambda cosine: cosine - margin)


# ---------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------


def _is_label_shape(shape: tuple) -> bool:
    return len(shape) == 1 or (len(shape) == 2 and shape[-1] == 1)


def _is_embedding_shape(shape: tuple) -> bool:
    return len(shape) == 2 and shape[-1] != 1


def _label_index(shapes: list[tuple], dtypes: list[str] | None = None) -> int:
    """Which of a head's two inputs holds the labels: 0 (``[labels, embeddings]``) or 1 (the old order).

    An integer (or boolean) input is the labels when the other is float;
    otherwise the shapes decide (labels ``(n,)`` / ``(n, 1)``, embeddings
    ``(n, d)``, ``d > 1``).
    """
    if dtypes is not None:
        integer = ["float" not in dtype for dtype in dtypes]
        if integer[0] != integer[1]:
            return 0 if integer[0] else 1
    if _is_label_shape(shapes[0]) and _is_embedding_shape(shapes[1]):
        return 0
    if _is_label_shape(shapes[1]) and _is_embedding_shape(shapes[0]):
        return 1
    described = " and ".join(
        f"{tuple(shape)}" + (f" {dtype}" if dtypes else "") for shape, dtype in zip(shapes, dtypes or ["", ""])
    )
    raise ValueError(
        "A loss head takes [labels, embeddings]: integer labels of shape (batch_size,) or (batch_size, 1) and "
        "float embeddings of shape (batch_size, embedding_dim) (the old order [embeddings, labels] is "
        f"recognised too); cannot tell which input is which from {described}."
    )


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
        self.num_classes = check_int(num_classes, "num_classes", minimum=1)
        self.loss_weight = check_float(loss_weight, "loss_weight", minimum=0.0)
        self.initializer = keras.initializers.get(initializer or self.default_initializer)

    @staticmethod
    def _check_pair(inputs: Any, what: str) -> None:
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError(
                "A loss head takes [labels, embeddings]: labels of shape (batch_size,) or (batch_size, 1) and "
                f"embeddings of shape (batch_size, embedding_dim); got {what}."
            )

    @classmethod
    def _embedding_shape(cls, input_shape: Any) -> tuple:
        cls._check_pair(input_shape, f"input shape {input_shape}")
        if not all(isinstance(shape, (list, tuple)) for shape in input_shape):
            cls._check_pair(None, f"input shape {input_shape}")
        shapes = [tuple(shape) for shape in input_shape]
        embedding_shape = shapes[1 - _label_index(shapes)]
        if embedding_shape[-1] is None:
            raise ValueError(
                "embeddings must have shape (batch_size, embedding_dim) with a known embedding_dim; "
                f"got shape {embedding_shape}."
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
        self._check_pair(inputs, "a single tensor" if not isinstance(inputs, (list, tuple)) else f"{len(inputs)} inputs")
        tensors = [ops.convert_to_tensor(x) for x in inputs]
        shapes = [tuple(x.shape) for x in tensors]
        dtypes = [keras.backend.standardize_dtype(x.dtype) for x in tensors]
        index = _label_index(shapes, dtypes)
        labels, embeddings = inputs[index], inputs[1 - index]
        self.add_loss(self.loss_weight * self.head_loss(labels, embeddings, training))
        return embeddings

    def head_loss(self, labels: Tensor, embeddings: Tensor, training: bool | None) -> Tensor:
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

    Adds ``loss_weight * center_loss(labels, embeddings, centers, distance)``,
    i.e. ``loss_weight / 2 * mean_i ||x_i - c_{y_i}||^2`` by default (the
    paper's ``lambda``-weighted ``L_C``, with a batch mean instead of a
    sum). Wen et al. train it jointly with a softmax loss: the centre loss
    alone lets the embeddings collapse.

    Parameters
    ----------
    num_classes : int
        ``>= 1``.
    alpha : float, default 0.5
        The paper's centre update rate (``update="moving"``), in ``(0, 1]``.
    update : {"moving", "gradient"}, default "moving"
        ``"moving"``: the paper's rule. The centres are a non-trainable
        weight, updated in every training call by :func:`center_update`
        (``c_j -= alpha * sum_{y_i = j}(c_j - x_i) / (1 + n_j)``, the
        Euclidean mean whatever ``distance``) after the loss is computed;
        the loss's gradient reaches the embeddings only. A batch with an
        invalid label leaves the centres unchanged (and, compiled, has a NaN
        loss; eagerly it raises). ``"gradient"``: the centres are trainable
        and the optimiser moves them (``alpha`` unused).
    loss_weight : float, default 1.0
        The paper's ``lambda``, ``>= 0``.
    initializer : default "zeros"
        Initial centres.
    distance : Distance, str or callable, default "squared_euclidean"
        See :func:`center_loss`.

    Examples
    --------
    >>> import numpy as np
    >>> head = CenterLoss(num_classes=2, alpha=1.0)
    >>> x = np.array([[2.0, 0.0], [0.0, 2.0]], "float32")
    >>> _ = head([np.array([0, 1]), x], training=True)
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
        distance: Distance | str | Callable | dict | None = "squared_euclidean",
        **kwargs: Any,
    ) -> None:
        super().__init__(num_classes, loss_weight=loss_weight, initializer=initializer, **kwargs)
        if update not in CENTER_UPDATES:
            raise ValueError(f"update must be one of {CENTER_UPDATES}; got {update!r}.")
        self.alpha = _check_center_alpha(alpha)
        self.update = update
        self.distance = _center_distance(distance)
        if isinstance(self.distance, DotProduct):
            raise ValueError("CenterLoss needs a distance bounded below; DotProduct's -x.c is not (use cosine).")

    def _weight_trainable(self) -> bool:
        return self.update == "gradient"

    def head_loss(self, labels: Tensor, embeddings: Tensor, training: bool | None) -> Tensor:
        loss = center_loss(labels, embeddings, self.centers, self.distance)
        if training and self.update == "moving":
            self.centers.assign(center_update(labels, embeddings, self.centers, self.alpha))
        return loss

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "alpha": self.alpha,
            "update": self.update,
            "distance": serialize_distance(self.distance),
        }


@keras.saving.register_keras_serializable(package="dmlkeras")
class TripletCenterLoss(_LossHead):
    """Triplet-center loss head (He et al., CVPR 2018) with trainable centres.

    Adds ``loss_weight * triplet_center_loss(labels, embeddings, centers,
    margin, distance)``: each embedding must be closer to its own centre
    than to the nearest other centre by ``margin``.

    Parameters
    ----------
    num_classes : int
        ``>= 1``.
    margin : float, default 5.0
        ``>= 0``.
    distance : Distance, str or callable, default "squared_euclidean"
        The paper's ``D`` is the squared Euclidean distance; any
        :mod:`dmlkeras.distances` object or name works.
    loss_weight : float, default 1.0
    initializer : default "random_normal"
        Initial centres (distinct, or the first steps have no direction).
    metric : str, optional
        The first version's name of ``distance`` (still accepted).

    Examples
    --------
    >>> import numpy as np
    >>> head = TripletCenterLoss(num_classes=2, margin=2.0)
    >>> x = np.array([[1.5, 0.0]], "float32")
    >>> _ = head([np.array([0]), x])
    >>> head.set_weights([np.array([[0.0, 0.0], [2.0, 0.0]], "float32")])
    >>> _ = head([np.array([0]), x])
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
        distance: Distance | str | Callable | dict | None = None,
        loss_weight: float = 1.0,
        initializer: Any = None,
        metric: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_classes, loss_weight=loss_weight, initializer=initializer, **kwargs)
        self.margin = check_float(margin, "margin", minimum=0.0)
        self.distance = _center_distance(distance, metric)

    def head_loss(self, labels: Tensor, embeddings: Tensor, training: bool | None) -> Tensor:
        return triplet_center_loss(labels, embeddings, self.centers, self.margin, self.distance)

    def get_config(self) -> dict:
        return {**super().get_config(), "margin": self.margin, "distance": serialize_distance(self.distance)}


@keras.saving.register_keras_serializable(package="dmlkeras")
class ProxyAnchorLoss(_LossHead):
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
        self.margin = _check_unit_margin(margin)
        self.alpha = check_float(alpha, "alpha", minimum=0.0, strict=True)

    def head_loss(self, labels: Tensor, embeddings: Tensor, training: bool | None) -> Tensor:
        return proxy_anchor_loss(labels, embeddings, self.proxies, self.margin, self.alpha)

    def get_config(self) -> dict:
        return {**super().get_config(), "margin": self.margin, "alpha": self.alpha}


class _MarginSoftmaxHead(_LossHead):
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
        self.scale = _check_scale(scale)
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
    check_margin = staticmethod(_check_unit_margin)
    margin_loss = staticmethod(cosface_loss)
