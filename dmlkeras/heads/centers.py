"""Centre heads: one learned centre per class, pulled to (and pushed between) the embeddings.

:class:`CenterLoss` (Wen et al., ECCV 2016) and :class:`TripletCenterLoss`
(He et al., CVPR 2018), with their functional forms :func:`center_loss`,
:func:`center_update` and :func:`triplet_center_loss`. Both take
``distance=`` (see :mod:`dmlkeras.distances`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
from keras import ops

from dmlkeras._validation import check_float
from dmlkeras.distances import Distance, DotProduct
from dmlkeras.distances import get as get_distance
from dmlkeras.distances import serialize as serialize_distance
from dmlkeras.heads.base import LossHead, Tensor, check_head_inputs, class_mask, nan_if
from dmlkeras.reducers import masked_mean

CENTER_UPDATES = ("moving", "gradient")


def _check_center_alpha(alpha: float) -> float:
    alpha = check_float(alpha, "alpha (the centre update rate)", minimum=0.0, maximum=1.0)
    if alpha == 0.0:
        raise ValueError("alpha (the centre update rate) must be in (0, 1]; got 0.0 (the centres would never move).")
    return alpha


def _center_distance(distance: Any, metric: Any = None) -> Distance:
    """The distance of a centre loss: ``distance=``, or the first version's ``metric=``."""
    if metric is not None:
        if distance is not None:
            raise ValueError("Pass distance= or its old name metric=, not both.")
        distance = metric
    return get_distance("squared_euclidean" if distance is None else distance)


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
    labels, embeddings, centers, invalid = check_head_inputs(labels, embeddings, centers, "centers")
    # A one-hot matmul rather than a gather: dense gradients for the centres.
    own = ops.matmul(ops.cast(class_mask(labels, centers.shape[0]), centers.dtype), centers)
    per_sample = distance.to_distance(distance.paired(embeddings, own))
    return nan_if(invalid, 0.5 * ops.mean(per_sample))


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
    labels, embeddings, centers, invalid = check_head_inputs(labels, embeddings, centers, "centers")
    embeddings = ops.stop_gradient(embeddings)
    members = ops.cast(ops.transpose(class_mask(labels, centers.shape[0])), centers.dtype)  # (C, n)
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
    labels, embeddings, centers, invalid = check_head_inputs(labels, embeddings, centers, "centers")
    distances = distance.distance_matrix(embeddings, centers)
    own = class_mask(labels, centers.shape[0])
    others = ops.logical_not(own)
    positive = ops.sum(ops.where(own, distances, ops.zeros_like(distances)), axis=1)
    filler = ops.stop_gradient(ops.max(distances)) + ops.zeros_like(distances)
    negative = ops.min(ops.where(others, distances, filler), axis=1)
    return nan_if(invalid, masked_mean(ops.relu(positive + margin - negative), ops.any(others, axis=1)))


@keras.saving.register_keras_serializable(package="dmlkeras")
class CenterLoss(LossHead):
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
class TripletCenterLoss(LossHead):
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


