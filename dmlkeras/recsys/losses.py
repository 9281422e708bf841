"""The losses of :mod:`dmlkeras.recsys`: pure functions of tensors, and the layers that add them.

:func:`cml_loss` (the CML hinge with its rank weight), :func:`covariance_loss`,
:func:`bpr_loss`, :func:`sampled_softmax_loss`; :class:`CMLLoss`,
:class:`MFLoss` and :class:`ItemFeatureLoss` are layers that compute the
user-item distances or scores of a batch and add these losses with
``add_loss`` (``keras.ops`` only: every backend).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops
from numpy.typing import ArrayLike

from dmlkeras import distances
from dmlkeras._validation import check_float, check_int

__all__ = [
    "CML_METRICS",
    "MF_LOSSES",
    "CMLLoss",
    "ItemFeatureLoss",
    "MFLoss",
    "bpr_loss",
    "cml_loss",
    "covariance_loss",
    "sampled_softmax_loss",
]

Tensor = Any

CML_METRICS = ("euclidean", "squared_euclidean")
MF_LOSSES = ("bpr", "softmax")


def cml_loss(
    distances_: Tensor,
    margin: float = 0.5,
    num_items: int | None = None,
) -> Tensor:
    """CML hinge loss with its rank-based (WARP-like) weight, per (user, positive) row.

    Row ``r`` holds the distance from a user to its positive item (column 0)
    and to ``N`` sampled negatives (columns 1..N). As in the reference
    implementation of Hsieh et al. (2017), the hinge is taken on the closest
    sampled negative::

        loss_r = w_r * max(0, margin + d_pos - min_k d_neg_k)

    and ``w_r = log(J * M / N + 1)`` estimates the positive's rank from the
    number ``M`` of *impostors* among the ``N`` negatives (negatives with
    ``margin + d_pos - d_neg > 0``) and the catalogue size ``J = num_items``
    (Weston et al., 2010). ``num_items=None`` disables the weight
    (``w_r = 1``). The weight is a count: no gradient flows through it.

    Parameters
    ----------
    distances_ : tensor of shape (n, 1 + N)
        User-to-item distances (usually squared euclidean), positive first.
    margin : float, default 0.5
    num_items : int, optional
        Catalogue size ``J`` for the rank estimate.

    Returns
    -------
    tensor of shape (n,)
        The weighted hinge of each row.

    Raises
    ------
    ValueError
        If ``distances_`` is not 2-D with at least 2 columns.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> d = np.array([[0.2, 1.0, 0.5], [0.2, 2.0, 3.0]], "float32")
    >>> np.round(keras.ops.convert_to_numpy(cml_loss(d, margin=0.5)), 3)  # hinge on the closest negative
    array([0.2, 0. ], dtype=float32)
    >>> w = np.log(100 * 1 / 2 + 1)  # one impostor of two negatives, 100 items
    >>> round(float(keras.ops.convert_to_numpy(cml_loss(d, margin=0.5, num_items=100))[0] / w), 3)
    0.2
    """
    d = ops.convert_to_tensor(distances_)
    if len(d.shape) != 2 or (d.shape[1] is not None and d.shape[1] < 2):
        raise ValueError(
            f"distances must have shape (n, 1 + num_negatives) with num_negatives >= 1; got {tuple(d.shape)}."
        )
    if keras.backend.standardize_dtype(d.dtype) not in ("float32", "float64"):
        d = ops.cast(d, "float32")
    positive = d[:, :1]
    negatives = d[:, 1:]
    hinge = ops.relu(margin + positive[:, 0] - ops.min(negatives, axis=1))
    if num_items is None:
        return hinge
    violations = ops.cast(margin + positive - negatives > 0, d.dtype)
    rank = ops.floor(float(num_items) * ops.mean(violations, axis=1))
    weight = ops.stop_gradient(ops.log(rank + 1.0))
    return weight * hinge


def covariance_loss(embeddings: Tensor) -> Tensor:
    """Covariance regulariser of CML: squared off-diagonal covariance.

    ``C = X_c^T X_c / n`` with ``X_c`` the centred rows; the loss is
    ``||C||_F^2 - ||diag(C)||^2`` (Cogswell et al., 2016, "DeCov"). It
    decorrelates the embedding dimensions, so the space is used fully.

    Parameters
    ----------
    embeddings : tensor of shape (n, d)

    Returns
    -------
    scalar tensor

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> x = np.array([[1.0, 1.0], [-1.0, -1.0]], "float32")  # perfectly correlated dims
    >>> float(keras.ops.convert_to_numpy(covariance_loss(x)))  # C = [[1, 1], [1, 1]]
    2.0
    >>> float(keras.ops.convert_to_numpy(covariance_loss(np.array([[1.0, 0.0], [-1.0, 0.0]], "float32"))))
    0.0
    """
    x = ops.convert_to_tensor(embeddings)
    if len(x.shape) != 2:
        raise ValueError(f"embeddings must have shape (n, d); got {tuple(x.shape)}.")
    if keras.backend.standardize_dtype(x.dtype) not in ("float32", "float64"):
        x = ops.cast(x, "float32")
    centred = x - ops.mean(x, axis=0, keepdims=True)
    n = ops.cast(ops.shape(x)[0], x.dtype)
    cov = ops.matmul(ops.transpose(centred), centred) / n
    return ops.sum(ops.square(cov)) - ops.sum(ops.square(ops.diagonal(cov)))


def bpr_loss(scores: Tensor) -> Tensor:
    """Bayesian personalised ranking loss (Rendle et al., 2009), per row.

    ``mean_k softplus(s_neg_k - s_pos) = mean_k -log sigmoid(s_pos - s_neg_k)``.

    Parameters
    ----------
    scores : tensor of shape (n, 1 + N)
        Scores (higher = better), positive first.

    Returns
    -------
    tensor of shape (n,)

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> np.round(keras.ops.convert_to_numpy(bpr_loss(np.array([[0.0, 0.0], [10.0, -10.0]], "float32"))), 4)
    array([0.6931, 0.    ], dtype=float32)
    """
    s = ops.convert_to_tensor(scores)
    if len(s.shape) != 2 or (s.shape[1] is not None and s.shape[1] < 2):
        raise ValueError(
            f"scores must have shape (n, 1 + num_negatives) with num_negatives >= 1; got {tuple(s.shape)}."
        )
    return ops.mean(ops.softplus(s[:, 1:] - s[:, :1]), axis=1)


def sampled_softmax_loss(scores: Tensor) -> Tensor:
    """Sampled softmax cross-entropy: the positive against its sampled negatives, per row.

    ``-log(exp(s_pos) / sum_j exp(s_j))`` over the ``1 + N`` columns.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> np.round(keras.ops.convert_to_numpy(sampled_softmax_loss(np.zeros((1, 4), "float32"))), 4)  # log(4)
    array([1.3863], dtype=float32)
    """
    s = ops.convert_to_tensor(scores)
    if len(s.shape) != 2 or (s.shape[1] is not None and s.shape[1] < 2):
        raise ValueError(
            f"scores must have shape (n, 1 + num_negatives) with num_negatives >= 1; got {tuple(s.shape)}."
        )
    return ops.logsumexp(s, axis=1) - s[:, 0]


def _check_pair_shapes(input_shape: Any, name: str) -> tuple[tuple, tuple]:
    if (
        not isinstance(input_shape, (list, tuple))
        or len(input_shape) < 2
        or not isinstance(input_shape[0], (list, tuple))
    ):
        raise ValueError(
            f"{name} takes [user_vectors (n, d), item_vectors (n, 1 + num_negatives, d), ...]; "
            f"got input shape {input_shape}."
        )
    user_shape, item_shape = tuple(input_shape[0]), tuple(input_shape[1])
    if len(user_shape) != 2 or len(item_shape) != 3 or user_shape[-1] != item_shape[-1]:
        raise ValueError(
            f"{name}: user vectors must be (n, d) and item vectors (n, 1 + num_negatives, d) with the same d; "
            f"got {user_shape} and {item_shape}."
        )
    return user_shape, item_shape


def _user_item_distances(users: Tensor, items: Tensor, metric: str) -> Tensor:
    """Distances (n, m) from each user (n, d) to its m items (n, m, d), via dmlkeras.distances."""
    m = items.shape[1]
    d = items.shape[2]
    repeated = ops.reshape(ops.repeat(ops.expand_dims(users, 1), m, axis=1), (-1, d))
    flat = ops.reshape(items, (-1, d))
    return ops.reshape(distances.paired_distances(repeated, flat, metric=metric), (-1, m))


@keras.saving.register_keras_serializable(package="dmlkeras")
class CMLLoss(keras.layers.Layer):
    """Distances from users to their items, adding the CML loss of the batch.

    Takes ``[user_vectors (n, d), item_vectors (n, 1 + N, d)]`` (positive
    item first), returns the distances ``(n, 1 + N)`` and adds
    ``mean(cml_loss(distances, margin, num_items)) + covariance_weight *
    covariance_loss(all vectors of the batch)``.

    Parameters
    ----------
    margin : float, default 0.5
    num_items : int, optional
        Catalogue size for the rank weight of :func:`cml_loss` (``None``:
        unweighted hinge).
    covariance_weight : float, default 0.0
        Weight of :func:`covariance_loss` over the batch's user and item vectors.
    metric : {"squared_euclidean", "euclidean"}, default "squared_euclidean"
        The paper's hinge is on squared distances.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> layer = CMLLoss(margin=0.5)
    >>> users = np.zeros((1, 2), "float32")
    >>> items = np.array([[[0.6, 0.0], [0.0, 0.5]]], "float32")
    >>> np.round(keras.ops.convert_to_numpy(layer([users, items])), 2)
    array([[0.36, 0.25]], dtype=float32)
    """

    def __init__(
        self,
        margin: float = 0.5,
        num_items: int | None = None,
        covariance_weight: float = 0.0,
        metric: str = "squared_euclidean",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.margin = check_float(margin, "margin", minimum=0.0)
        self.num_items = None if num_items is None else check_int(num_items, "num_items")
        self.covariance_weight = check_float(covariance_weight, "covariance_weight", minimum=0.0)
        metric = distances.resolve_metric(metric)
        if metric not in CML_METRICS:
            raise ValueError(f"metric must be one of {CML_METRICS}; got {metric!r}.")
        self.metric = metric

    def build(self, input_shape: Any) -> None:
        _check_pair_shapes(input_shape, "CMLLoss")

    def call(self, inputs: Sequence[Tensor]) -> Tensor:
        users, items = inputs[0], inputs[1]
        dist = _user_item_distances(users, items, self.metric)
        loss = ops.mean(cml_loss(dist, self.margin, self.num_items))
        if self.covariance_weight > 0:
            everything = ops.concatenate([users, ops.reshape(items, (-1, items.shape[-1]))], axis=0)
            loss = loss + self.covariance_weight * covariance_loss(everything)
        self.add_loss(loss)
        return dist

    def compute_output_shape(self, input_shape: Any) -> tuple:
        user_shape, item_shape = _check_pair_shapes(input_shape, "CMLLoss")
        return (user_shape[0], item_shape[1])

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "margin": self.margin,
            "num_items": self.num_items,
            "covariance_weight": self.covariance_weight,
            "metric": self.metric,
        }


@keras.saving.register_keras_serializable(package="dmlkeras")
class MFLoss(keras.layers.Layer):
    """Dot-product scores of users and their items, adding a ranking loss.

    Takes ``[user_vectors (n, d), item_vectors (n, 1 + N, d), item_biases
    (n, 1 + N, 1)]`` (positive first), returns the scores ``u . v + b``
    ``(n, 1 + N)`` and adds ``mean(loss(scores)) + l2 * mean(||u||^2 +
    sum_j ||v_j||^2 + b_j^2)`` (the L2 penalty only on the rows of the batch,
    as in BPR-MF).

    Parameters
    ----------
    loss : {"bpr", "softmax"}, default "bpr"
        :func:`bpr_loss` or :func:`sampled_softmax_loss`.
    l2 : float, default 0.0

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> users = np.array([[1.0, 2.0]], "float32")
    >>> items = np.array([[[1.0, 1.0], [0.0, -1.0]]], "float32")
    >>> keras.ops.convert_to_numpy(MFLoss()([users, items, np.ones((1, 2, 1), "float32")]))
    array([[ 4., -1.]], dtype=float32)
    """

    def __init__(self, loss: str = "bpr", l2: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if loss not in MF_LOSSES:
            raise ValueError(f"loss must be one of {MF_LOSSES}; got {loss!r}.")
        self.loss = loss
        self.l2 = check_float(l2, "l2", minimum=0.0)

    def build(self, input_shape: Any) -> None:
        _check_pair_shapes(input_shape, "MFLoss")

    def call(self, inputs: Sequence[Tensor]) -> Tensor:
        if len(inputs) != 3:
            raise ValueError("MFLoss takes [user_vectors, item_vectors, item_biases].")
        users, items, biases = inputs
        scores = ops.sum(ops.expand_dims(users, 1) * items, axis=-1) + biases[..., 0]
        per_row = bpr_loss(scores) if self.loss == "bpr" else sampled_softmax_loss(scores)
        loss = ops.mean(per_row)
        if self.l2 > 0:
            norms = (
                ops.sum(ops.square(users), axis=-1)
                + ops.sum(ops.square(items), axis=(1, 2))
                + ops.sum(ops.square(biases), axis=(1, 2))
            )
            loss = loss + self.l2 * ops.mean(norms)
        self.add_loss(loss)
        return scores

    def compute_output_shape(self, input_shape: Any) -> tuple:
        user_shape, item_shape = _check_pair_shapes(input_shape, "MFLoss")
        return (user_shape[0], item_shape[1])

    def get_config(self) -> dict:
        return {**super().get_config(), "loss": self.loss, "l2": self.l2}


@keras.saving.register_keras_serializable(package="dmlkeras")
class ItemFeatureLoss(keras.layers.Layer):
    """Item tower of CML: pull each item's vector towards a projection of its features.

    Holds the item feature table (``num_items x num_features``, a
    non-trainable weight saved with the model) and a small MLP ``f``. Takes
    ``[item_ids (n, m), item_vectors (n, m, d)]``, returns ``item_vectors``
    unchanged and adds ``weight * mean ||f(x_j) - v_j||^2`` (Hsieh et al.,
    2017, Sec. 3.4): items with similar features (e.g. genres) are drawn
    together, which helps items with few interactions.

    Parameters
    ----------
    num_items, num_features : int
    hidden_units : int, default 128
    dropout : float, default 0.0
    weight : float, default 1.0

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> layer = ItemFeatureLoss(num_items=3, num_features=2)
    >>> layer.set_features(np.eye(3, 2, dtype="float32"))
    >>> out = layer([np.array([[0, 2]]), np.zeros((1, 2, 4), "float32")])
    >>> tuple(out.shape)
    (1, 2, 4)
    """

    def __init__(
        self,
        num_items: int,
        num_features: int,
        hidden_units: int = 128,
        dropout: float = 0.0,
        weight: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_items = check_int(num_items, "num_items")
        self.num_features = check_int(num_features, "num_features")
        self.hidden_units = check_int(hidden_units, "hidden_units")
        self.dropout = check_float(dropout, "dropout", minimum=0.0)
        if self.dropout >= 1:
            raise ValueError(f"dropout must be in [0, 1); got {dropout!r}.")
        self.weight = check_float(weight, "weight", minimum=0.0)
        self.hidden = keras.layers.Dense(self.hidden_units, activation="relu", name="hidden")
        self.drop = keras.layers.Dropout(self.dropout)
        self.features = self.add_weight(
            name="features", shape=(self.num_items, self.num_features), initializer="zeros", trainable=False
        )
        self.projection: keras.layers.Dense | None = None

    def build(self, input_shape: Any) -> None:
        ids_shape, vector_shape = tuple(input_shape[0]), tuple(input_shape[1])
        if len(ids_shape) != 2 or len(vector_shape) != 3:
            raise ValueError(
                f"ItemFeatureLoss takes [item_ids (n, m), item_vectors (n, m, d)]; got {ids_shape} and {vector_shape}."
            )
        self.hidden.build((None, self.num_features))
        self.projection = keras.layers.Dense(vector_shape[-1], name="projection")
        self.projection.build((None, self.hidden_units))

    def set_features(self, features: ArrayLike) -> None:
        """Copy the item feature table ``(num_items, num_features)`` into the layer."""
        x = np.asarray(features, dtype="float32")
        if x.shape != (self.num_items, self.num_features) or not np.all(np.isfinite(x)):
            raise ValueError(
                f"features must be a finite ({self.num_items}, {self.num_features}) array; got shape {x.shape}."
            )
        self.features.assign(x)

    def project(self, features: Tensor, training: bool | None = None) -> Tensor:
        """``f(x)``: item features ``(..., num_features)`` to the embedding space."""
        return self.projection(self.drop(self.hidden(features), training=training))

    def call(self, inputs: Sequence[Tensor], training: bool | None = None) -> Tensor:
        ids, vectors = inputs
        if self.projection is None:  # called eagerly without build
            self.build([tuple(ids.shape), tuple(vectors.shape)])
        feats = ops.take(self.features, ops.cast(ids, "int32"), axis=0)
        projected = self.project(feats, training=training)
        self.add_loss(self.weight * ops.mean(ops.sum(ops.square(projected - vectors), axis=-1)))
        return vectors

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return tuple(input_shape[1])

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "num_items": self.num_items,
            "num_features": self.num_features,
            "hidden_units": self.hidden_units,
            "dropout": self.dropout,
            "weight": self.weight,
        }


