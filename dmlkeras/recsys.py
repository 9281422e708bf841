"""Recommendation as metric learning: Collaborative Metric Learning and its baselines.

Collaborative Metric Learning (CML; Hsieh et al., "Collaborative Metric
Learning", WWW 2017) puts users and items in one euclidean space, where a
user sits close to the items they like. Recommending is then a
nearest-neighbour search (:class:`dmlkeras.index.NearestNeighbors`), and the
triangle inequality propagates what is learned: two users who like the same
item are pulled together, and so are two items liked by the same user.

This module has four parts:

* **Models** (``keras.ops`` only: TensorFlow and JAX backends).
  :func:`build_cml_model` -- user and item embeddings kept in the unit ball
  (:class:`UnitBallConstraint`), trained on ``(user, positive item, sampled
  negative items)`` with the CML hinge loss, its rank-based (WARP-like)
  weight and the covariance regulariser (:class:`CMLLoss`), plus optional
  item features through a small tower (:class:`ItemFeatureLoss`).
  :func:`build_mf_model` -- the dot-product matrix-factorisation baseline
  on the same inputs (BPR or sampled-softmax loss, :class:`MFLoss`).
  :func:`user_embeddings`, :func:`item_embeddings` and :func:`score_matrix`
  read a trained model.
* **Data**: :func:`leave_one_out_split` (the NCF protocol of He et al.,
  2017: each user's latest interaction is held out) and
  :class:`InteractionTriplets`, a :class:`keras.utils.PyDataset` that draws
  fresh negatives every epoch, never one of the user's known positives.
* **Evaluation**: :func:`sampled_ranking_eval` scores any recommender the
  same way -- a model of this module, a score matrix, or a callable
  ``(user_ids, item_ids) -> scores`` -- with HR@10 and NDCG@10 against 100
  sampled negatives and recall@20 over the full ranking of unseen items;
  :func:`most_popular_scores` is the popularity baseline.
* **Serving**: :func:`recommend` returns each user's top-k unseen items
  through :class:`dmlkeras.index.NearestNeighbors` (dot-product models go
  through the exact inner-product-to-euclidean reduction of Bachrach et al.,
  2014).

Models take a dict ``{"user": (n,) int, "items": (n, 1 + num_negatives)
int}`` whose first item column is the positive and the others the sampled
negatives -- exactly what :class:`InteractionTriplets` yields. Their losses
are added by layers (``add_loss``), so ``model.fit(dataset)`` needs no
``y``. The builders return compiled models, and every custom layer and
constraint is registered (package ``"dmlkeras"``): ``keras.saving.load_model``
needs no ``custom_objects``.

User and item ids are contiguous integers ``0 .. num_users - 1`` and
``0 .. num_items - 1``; :func:`leave_one_out_split` maps raw ids to them and
keeps the mapping.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import pandas as pd
import scipy.sparse as sp
from keras import ops
from keras.utils import PyDataset
from numpy.typing import ArrayLike

from dmlkeras import distances
from dmlkeras.evaluation import ranking_metrics, sampled_ranking_metrics
from dmlkeras.index import NearestNeighbors

__all__ = [
    "CMLLoss",
    "InteractionTriplets",
    "ItemFeatureLoss",
    "LeaveOneOutSplit",
    "MFLoss",
    "UnitBallConstraint",
    "bpr_loss",
    "build_cml_model",
    "build_mf_model",
    "cml_loss",
    "covariance_loss",
    "item_embeddings",
    "leave_one_out_split",
    "most_popular_scores",
    "recommend",
    "sample_eval_negatives",
    "sampled_ranking_eval",
    "sampled_softmax_loss",
    "score_matrix",
    "user_embeddings",
]

Tensor = Any

USER_EMBEDDING = "user_embedding"
ITEM_EMBEDDING = "item_embedding"
ITEM_BIAS = "item_bias"
CML_METRICS = ("euclidean", "squared_euclidean")
MF_LOSSES = ("bpr", "softmax")


# ---------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------
def _check_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def _check_float(value: Any, name: str, minimum: float = 0.0, strict: bool = False) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number; got {value!r}.") from None
    bad = (out <= minimum) if strict else (out < minimum)
    if not math.isfinite(out) or bad:
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {minimum}; got {value!r}.")
    return out


def _check_seed(seed: Any) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}.")
    return int(seed)


def _as_interactions(interactions: Any, num_users: int | None = None, num_items: int | None = None) -> np.ndarray:
    """``(n, 2)`` int64 array of (user, item) indices, validated."""
    if isinstance(interactions, LeaveOneOutSplit):
        return interactions.train
    arr = np.asarray(interactions)
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] == 0:
        raise ValueError(
            f"interactions must be a non-empty (n, 2) array of (user, item) indices; got shape {arr.shape}."
        )
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"interactions must hold integer indices; got dtype {arr.dtype}.")
    arr = arr.astype(np.int64)
    if arr.min() < 0:
        raise ValueError("interactions must hold non-negative user and item indices.")
    if num_users is not None and arr[:, 0].max() >= num_users:
        raise ValueError(f"user index {arr[:, 0].max()} out of range for num_users={num_users}.")
    if num_items is not None and arr[:, 1].max() >= num_items:
        raise ValueError(f"item index {arr[:, 1].max()} out of range for num_items={num_items}.")
    return arr


# ---------------------------------------------------------------------------
# losses (pure functions of tensors)
# ---------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------
# layers and constraints
# ---------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="dmlkeras")
class UnitBallConstraint(keras.constraints.Constraint):
    """Project each row back into the ball of radius ``max_norm``.

    ``w <- w * min(1, max_norm / ||w||)`` row by row: rows inside the ball
    are left alone (unlike :func:`dmlkeras.distances.l2_normalize`, which
    puts every row on the sphere). CML clips its embeddings this way after
    every update, so that the hinge cannot be satisfied by spreading points
    ever further apart.

    Parameters
    ----------
    max_norm : float, default 1.0
    axis : int, default -1
        Axis holding the vector components (the embedding dimension).

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> w = np.array([[3.0, 4.0], [0.3, 0.4]], "float32")
    >>> keras.ops.convert_to_numpy(UnitBallConstraint()(w))
    array([[0.6, 0.8],
           [0.3, 0.4]], dtype=float32)
    """

    def __init__(self, max_norm: float = 1.0, axis: int = -1) -> None:
        self.max_norm = _check_float(max_norm, "max_norm", strict=True)
        self.axis = int(axis)

    def __call__(self, w: Tensor) -> Tensor:
        w = ops.convert_to_tensor(w)
        norms = ops.sqrt(ops.sum(ops.square(w), axis=self.axis, keepdims=True))
        scale = ops.minimum(1.0, self.max_norm / ops.maximum(norms, 1e-12))
        return w * ops.cast(scale, w.dtype)

    def get_config(self) -> dict:
        return {"max_norm": self.max_norm, "axis": self.axis}


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
        self.margin = _check_float(margin, "margin")
        self.num_items = None if num_items is None else _check_int(num_items, "num_items")
        self.covariance_weight = _check_float(covariance_weight, "covariance_weight")
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
        self.l2 = _check_float(l2, "l2")

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
        self.num_items = _check_int(num_items, "num_items")
        self.num_features = _check_int(num_features, "num_features")
        self.hidden_units = _check_int(hidden_units, "hidden_units")
        self.dropout = _check_float(dropout, "dropout")
        if self.dropout >= 1:
            raise ValueError(f"dropout must be in [0, 1); got {dropout!r}.")
        self.weight = _check_float(weight, "weight")
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


# ---------------------------------------------------------------------------
# model builders
# ---------------------------------------------------------------------------
def _inputs(num_negatives: int) -> tuple[Tensor, Tensor]:
    user = keras.Input(shape=(), dtype="int32", name="user")
    items = keras.Input(shape=(1 + num_negatives,), dtype="int32", name="items")
    return user, items


def build_cml_model(
    num_users: int,
    num_items: int,
    embedding_dim: int = 64,
    margin: float = 0.5,
    num_negatives: int = 10,
    rank_weight: bool = True,
    covariance_weight: float = 1.0,
    max_norm: float = 1.0,
    item_features: ArrayLike | None = None,
    feature_weight: float = 1.0,
    feature_hidden_units: int = 128,
    feature_dropout: float = 0.0,
    learning_rate: float = 1e-3,
    metric: str = "squared_euclidean",
    name: str = "cml",
) -> keras.Model:
    """Collaborative Metric Learning (Hsieh et al., WWW 2017), compiled and ready to fit.

    Users and items are rows of two ``embedding_dim``-dimensional tables
    (layers ``"user_embedding"`` and ``"item_embedding"``) in one euclidean
    space, both kept in the ball of radius ``max_norm`` by
    :class:`UnitBallConstraint`. The model takes ``{"user": (n,), "items":
    (n, 1 + num_negatives)}`` (positive item first, as
    :class:`InteractionTriplets` yields), returns the distances ``(n, 1 +
    num_negatives)`` and adds the loss (:class:`CMLLoss`)::

        mean_rows w * [margin + d(u, pos)^2 - min_k d(u, neg_k)^2]_+
            + covariance_weight * covariance_loss(batch vectors)
            (+ feature_weight * mean ||f(x_j) - v_j||^2 with item features)

    with ``w = log(num_items * impostors / num_negatives + 1)`` when
    ``rank_weight`` (see :func:`cml_loss`).

    Parameters
    ----------
    num_users, num_items : int
    embedding_dim : int, default 64
    margin : float, default 0.5
        Hinge margin, on squared distances (which lie in ``[0, 4 max_norm^2]``).
    num_negatives : int, default 10
        Negatives per (user, positive) row; must match the data.
    rank_weight : bool, default True
        The WARP-like rank weight; ``False`` for the plain hinge.
    covariance_weight : float, default 1.0
        Weight of the covariance regulariser; 0 disables it.
    max_norm : float, default 1.0
        Radius of the ball the embeddings are kept in.
    item_features : array-like of shape (num_items, num_features), optional
        E.g. MovieLens genres: adds the item tower :class:`ItemFeatureLoss`.
    feature_weight, feature_hidden_units, feature_dropout
        Its loss weight, hidden width and dropout.
    learning_rate : float, default 1e-3
        Adam's learning rate.
    metric : {"squared_euclidean", "euclidean"}, default "squared_euclidean"
        Distance in the hinge (rankings are the same for both).
    name : str, default "cml"

    Returns
    -------
    keras.Model
        Compiled with Adam; read it with :func:`user_embeddings`,
        :func:`item_embeddings`, :func:`score_matrix`, :func:`recommend`.

    Raises
    ------
    ValueError
        On non-positive sizes, negative weights or a feature table of the wrong shape.

    Examples
    --------
    >>> model = build_cml_model(num_users=5, num_items=7, embedding_dim=4, num_negatives=3)
    >>> user_embeddings(model).shape, item_embeddings(model).shape
    ((5, 4), (7, 4))
    >>> bool((np.linalg.norm(item_embeddings(model), axis=1) <= 1.0 + 1e-6).all())
    True
    """
    num_users = _check_int(num_users, "num_users")
    num_items = _check_int(num_items, "num_items")
    embedding_dim = _check_int(embedding_dim, "embedding_dim")
    num_negatives = _check_int(num_negatives, "num_negatives")
    max_norm = _check_float(max_norm, "max_norm", strict=True)
    learning_rate = _check_float(learning_rate, "learning_rate", strict=True)
    feature_weight = _check_float(feature_weight, "feature_weight")
    user, items = _inputs(num_negatives)
    # Initialised inside the ball (std 1/sqrt(d) per component: norm ~ 1), as in the reference code.
    # (One initializer instance per table: a shared unseeded instance may repeat its draws.)
    stddev = max_norm / math.sqrt(embedding_dim)
    constraint = UnitBallConstraint(max_norm)
    user_table = keras.layers.Embedding(
        num_users,
        embedding_dim,
        embeddings_initializer=keras.initializers.RandomNormal(stddev=stddev),
        embeddings_constraint=constraint,
        name=USER_EMBEDDING,
    )
    item_table = keras.layers.Embedding(
        num_items,
        embedding_dim,
        embeddings_initializer=keras.initializers.RandomNormal(stddev=stddev),
        embeddings_constraint=constraint,
        name=ITEM_EMBEDDING,
    )
    user_vectors = user_table(user)
    item_vectors = item_table(items)
    # The constraint acts after each update; project the initial tables too.
    for table in (user_table, item_table):
        table.embeddings.assign(constraint(table.embeddings))
    if item_features is not None:
        feats = np.asarray(item_features, dtype="float32")
        if feats.ndim != 2 or feats.shape[0] != num_items:
            raise ValueError(f"item_features must have shape ({num_items}, num_features); got {feats.shape}.")
        tower = ItemFeatureLoss(
            num_items,
            feats.shape[1],
            hidden_units=feature_hidden_units,
            dropout=feature_dropout,
            weight=feature_weight,
            name="item_features",
        )
        item_vectors = tower([items, item_vectors])
        tower.set_features(feats)
    dist = CMLLoss(
        margin=margin,
        num_items=num_items if rank_weight else None,
        covariance_weight=covariance_weight,
        metric=metric,
        name="cml_loss",
    )([user_vectors, item_vectors])
    model = keras.Model({"user": user, "items": items}, dist, name=name)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    return model


def build_mf_model(
    num_users: int,
    num_items: int,
    embedding_dim: int = 64,
    num_negatives: int = 10,
    loss: str = "bpr",
    l2: float = 1e-4,
    learning_rate: float = 1e-3,
    name: str = "mf",
) -> keras.Model:
    """Dot-product matrix factorisation on the same inputs as CML, compiled.

    ``score(u, i) = p_u . q_i + b_i`` (layers ``"user_embedding"``,
    ``"item_embedding"``, ``"item_bias"``), trained on ``{"user", "items"}``
    batches (positive first) with :class:`MFLoss`: the pairwise BPR loss
    (Rendle et al., 2009) averaged over the sampled negatives, or the sampled
    softmax cross-entropy of the positive against them, plus an L2 penalty
    on the rows of the batch. The baseline CML is compared against: the same
    data, sampler and optimiser, only the geometry (inner product vs
    distance in a ball) and the loss differ.

    Parameters
    ----------
    num_users, num_items : int
    embedding_dim : int, default 64
    num_negatives : int, default 10
    loss : {"bpr", "softmax"}, default "bpr"
    l2 : float, default 1e-4
    learning_rate : float, default 1e-3
    name : str, default "mf"

    Returns
    -------
    keras.Model
        Outputs the scores ``(n, 1 + num_negatives)``; compiled with Adam.

    Examples
    --------
    >>> model = build_mf_model(num_users=5, num_items=7, embedding_dim=4, num_negatives=2)
    >>> score_matrix(model).shape
    (5, 7)
    """
    num_users = _check_int(num_users, "num_users")
    num_items = _check_int(num_items, "num_items")
    embedding_dim = _check_int(embedding_dim, "embedding_dim")
    num_negatives = _check_int(num_negatives, "num_negatives")
    learning_rate = _check_float(learning_rate, "learning_rate", strict=True)
    user, items = _inputs(num_negatives)
    user_vectors = keras.layers.Embedding(
        num_users,
        embedding_dim,
        embeddings_initializer=keras.initializers.RandomNormal(stddev=0.1),
        name=USER_EMBEDDING,
    )(user)
    item_vectors = keras.layers.Embedding(
        num_items,
        embedding_dim,
        embeddings_initializer=keras.initializers.RandomNormal(stddev=0.1),
        name=ITEM_EMBEDDING,
    )(items)
    biases = keras.layers.Embedding(num_items, 1, embeddings_initializer="zeros", name=ITEM_BIAS)(items)
    scores = MFLoss(loss=loss, l2=l2, name="mf_loss")([user_vectors, item_vectors, biases])
    model = keras.Model({"user": user, "items": items}, scores, name=name)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    return model


def _table(model: Any, name: str) -> np.ndarray:
    if not isinstance(model, keras.Model):
        raise ValueError(f"Expected a keras.Model from build_cml_model or build_mf_model; got {type(model).__name__}.")
    try:
        layer = model.get_layer(name)
    except ValueError:
        raise ValueError(
            f"Model {model.name!r} has no layer {name!r}: build it with build_cml_model or build_mf_model."
        ) from None
    return np.asarray(ops.convert_to_numpy(layer.embeddings))


def user_embeddings(model: keras.Model) -> np.ndarray:
    """The user embedding matrix ``(num_users, embedding_dim)`` of a CML or MF model.

    Examples
    --------
    >>> user_embeddings(build_cml_model(3, 4, embedding_dim=2)).shape
    (3, 2)
    """
    return _table(model, USER_EMBEDDING)


def item_embeddings(model: keras.Model) -> np.ndarray:
    """The item embedding matrix ``(num_items, embedding_dim)`` of a CML or MF model.

    Examples
    --------
    >>> item_embeddings(build_cml_model(3, 4, embedding_dim=2)).shape
    (4, 2)
    """
    return _table(model, ITEM_EMBEDDING)


def _model_kind(model: keras.Model) -> str:
    for layer in model.layers:
        if isinstance(layer, CMLLoss):
            return "distance"
        if isinstance(layer, MFLoss):
            return "dot"
    raise ValueError(f"Model {model.name!r} is neither a CML nor an MF model of dmlkeras.recsys.")


def _item_bias(model: keras.Model) -> np.ndarray:
    return _table(model, ITEM_BIAS)[:, 0]


def score_matrix(model: keras.Model, user_ids: ArrayLike | None = None) -> np.ndarray:
    """Scores of every item for some users (higher = better), from a trained model.

    CML: minus the euclidean distance between user and item. MF: ``p_u .
    q_i + b_i``.

    Parameters
    ----------
    model : keras.Model
        From :func:`build_cml_model` or :func:`build_mf_model`.
    user_ids : array-like of shape (q,), optional
        Default: all users.

    Returns
    -------
    ndarray of shape (q, num_items), float32

    Examples
    --------
    >>> model = build_cml_model(4, 6, embedding_dim=3)
    >>> s = score_matrix(model, [0, 2])
    >>> s.shape, bool((s <= 0).all())
    ((2, 6), True)
    """
    kind = _model_kind(model)
    users = user_embeddings(model)
    if user_ids is not None:
        users = users[_check_user_ids(user_ids, users.shape[0])]
    items = item_embeddings(model)
    if kind == "distance":
        return -np.asarray(ops.convert_to_numpy(distances.pairwise_distances(users, items)), dtype=np.float32)
    return (users @ items.T + _item_bias(model)[None, :]).astype(np.float32)


def _check_user_ids(user_ids: ArrayLike, num_users: int) -> np.ndarray:
    ids = np.asarray(user_ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"user_ids must be a 1-D integer array; got {ids.dtype} array of shape {ids.shape}.")
    if ids.size and (ids.min() < 0 or ids.max() >= num_users):
        raise ValueError(f"user_ids must be in [0, {num_users - 1}].")
    return ids.astype(np.int64)


# ---------------------------------------------------------------------------
# data: split and sampler
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class LeaveOneOutSplit:
    """A leave-one-out split of implicit feedback (see :func:`leave_one_out_split`).

    Attributes
    ----------
    train : ndarray of shape (n_train, 2), int64
        Training interactions ``(user, item)`` as contiguous indices.
    train_timestamps : ndarray of shape (n_train,), int64
    test_items : ndarray of shape (num_users,), int64
        Each user's held-out item; ``-1`` for users with a single interaction.
    test_timestamps : ndarray of shape (num_users,), int64
    user_ids, item_ids : ndarray
        The raw id of each user / item index (``raw = item_ids[index]``).
    """

    train: np.ndarray
    train_timestamps: np.ndarray
    test_items: np.ndarray
    test_timestamps: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray

    @property
    def num_users(self) -> int:
        """Number of users (the contiguous index range)."""
        return int(self.user_ids.size)

    @property
    def num_items(self) -> int:
        """Number of items (the contiguous index range)."""
        return int(self.item_ids.size)

    @property
    def test_users(self) -> np.ndarray:
        """Users with a held-out item, ascending."""
        return np.flatnonzero(self.test_items >= 0)

    def train_matrix(self) -> sp.csr_matrix:
        """Binary user-item matrix of the training interactions, ``(num_users, num_items)`` float32 CSR."""
        data = np.ones(len(self.train), dtype=np.float32)
        m = sp.csr_matrix((data, (self.train[:, 0], self.train[:, 1])), shape=(self.num_users, self.num_items))
        m.sum_duplicates()
        m.data[:] = 1.0
        return m

    def seen_items(self) -> list[np.ndarray]:
        """Per user, the sorted training items."""
        m = self.train_matrix()
        return [m.indices[m.indptr[u] : m.indptr[u + 1]].astype(np.int64) for u in range(self.num_users)]

    def train_frame(self) -> pd.DataFrame:
        """The training interactions with raw ids: ``[user_id, item_id, timestamp]``.

        ``leave_one_out_split(split.train_frame())`` holds out each user's
        second-latest interaction: a validation split for tuning that never
        looks at the test items.
        """
        return pd.DataFrame(
            {
                "user_id": self.user_ids[self.train[:, 0]],
                "item_id": self.item_ids[self.train[:, 1]],
                "timestamp": self.train_timestamps,
            }
        )


def leave_one_out_split(
    ratings: pd.DataFrame,
    user_col: str = "user_id",
    item_col: str = "item_id",
    time_col: str = "timestamp",
    rating_col: str = "rating",
    min_rating: float | None = None,
) -> LeaveOneOutSplit:
    """Hold out each user's latest interaction (the NCF protocol of He et al., 2017).

    Ratings become implicit feedback: every (user, item) pair that was rated
    counts as a positive, whatever its value (or only ratings ``>=
    min_rating``); repeated pairs keep their latest timestamp. Each user's
    latest interaction is the test item; equal timestamps are broken by the
    order of the rows (the later row is the later interaction). Users with a
    single interaction keep it for training and have no test item (``-1``).
    Raw user and item ids are mapped to contiguous indices in sorted order.

    Parameters
    ----------
    ratings : pandas.DataFrame
        One row per interaction.
    user_col, item_col, time_col, rating_col : str
        Column names (``rating_col`` only used with ``min_rating``).
    min_rating : float, optional
        Keep only ratings ``>= min_rating`` as positives.

    Returns
    -------
    LeaveOneOutSplit

    Raises
    ------
    ValueError
        Missing columns, no rows left, or missing values.

    Examples
    --------
    >>> import pandas as pd
    >>> ratings = pd.DataFrame({"user_id": [7, 7, 7, 9, 9], "item_id": [1, 2, 3, 2, 1],
    ...                         "rating": [5, 3, 4, 1, 2], "timestamp": [10, 30, 20, 5, 6]})
    >>> split = leave_one_out_split(ratings)
    >>> split.test_items, split.item_ids[split.test_items]  # user 7 -> item 2, user 9 -> item 1
    (array([1, 0]), array([2, 1]))
    >>> split.train.tolist()
    [[0, 0], [0, 2], [1, 1]]
    """
    if not isinstance(ratings, pd.DataFrame):
        raise ValueError(f"ratings must be a pandas DataFrame; got {type(ratings).__name__}.")
    needed = [user_col, item_col, time_col] + ([rating_col] if min_rating is not None else [])
    missing = [c for c in needed if c not in ratings.columns]
    if missing:
        raise ValueError(f"ratings lacks the column(s) {missing}; it has {list(ratings.columns)}.")
    frame = ratings[needed].reset_index(drop=True)
    if frame.isna().any().any():
        raise ValueError("ratings has missing values in the user, item, timestamp or rating columns.")
    if min_rating is not None:
        frame = frame[frame[rating_col] >= float(min_rating)]
    if frame.empty:
        raise ValueError("No interaction left (empty ratings, or min_rating too high).")
    user_ids, users = np.unique(frame[user_col].to_numpy(), return_inverse=True)
    item_ids, items = np.unique(frame[item_col].to_numpy(), return_inverse=True)
    times = frame[time_col].to_numpy().astype(np.int64)
    order = np.lexsort((np.arange(len(frame)), times, users))  # per user, chronological; row order breaks ties
    users, items, times = users[order].astype(np.int64), items[order].astype(np.int64), times[order]
    # Implicit feedback: a pair seen twice keeps its latest occurrence.
    key = users * item_ids.size + items
    last = np.ones(len(key), dtype=bool)
    _, first_from_end = np.unique(key[::-1], return_index=True)
    last[:] = False
    last[len(key) - 1 - first_from_end] = True
    users, items, times = users[last], items[last], times[last]
    # Rows are still grouped by user in chronological order: each user's final row is the test item.
    counts = np.bincount(users, minlength=user_ids.size)
    ends = np.cumsum(counts) - 1
    held = ends[counts >= 2]
    test_items = np.full(user_ids.size, -1, dtype=np.int64)
    test_times = np.full(user_ids.size, -1, dtype=np.int64)
    test_items[users[held]] = items[held]
    test_times[users[held]] = times[held]
    keep = np.ones(len(users), dtype=bool)
    keep[held] = False
    return LeaveOneOutSplit(
        train=np.stack([users[keep], items[keep]], axis=1),
        train_timestamps=times[keep],
        test_items=test_items,
        test_timestamps=test_times,
        user_ids=user_ids,
        item_ids=item_ids,
    )


class _PositiveSet:
    """Membership test for (user, item) pairs through sorted keys."""

    def __init__(self, users: np.ndarray, items: np.ndarray, num_items: int) -> None:
        self.num_items = num_items
        self.keys = np.unique(users.astype(np.int64) * num_items + items.astype(np.int64))

    def contains(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        keys = users.astype(np.int64) * self.num_items + items.astype(np.int64)
        pos = np.searchsorted(self.keys, keys)
        pos = np.minimum(pos, self.keys.size - 1)
        return self.keys[pos] == keys

    def sample_negatives(self, users: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """``(len(users), n)`` uniform items, none a positive of its user (with replacement)."""
        out = rng.integers(0, self.num_items, size=(users.size, n))
        rows = np.repeat(users, n).reshape(users.size, n)
        bad = self.contains(rows, out)
        while bad.any():
            out[bad] = rng.integers(0, self.num_items, size=int(bad.sum()))
            bad[bad] = self.contains(rows[bad], out[bad])
        return out


class InteractionTriplets(PyDataset):
    """``PyDataset`` of ``(user, positive item, sampled negatives)`` batches for CML and MF.

    Each epoch visits every training interaction once, in a fresh random
    order, and draws ``num_negatives`` items per interaction uniformly among
    the items the user has **not** interacted with (rejection sampling: a
    known positive is never yielded as a negative). Batch ``index`` of epoch
    ``epoch`` is a pure function of ``(seed, epoch, index)``, whichever order
    or thread asks for it; :meth:`on_epoch_end` (called by ``fit``)
    advances :attr:`epoch`.

    Parameters
    ----------
    interactions : array-like of shape (n, 2) or LeaveOneOutSplit
        ``(user, item)`` index pairs (a split: its ``train``).
    num_items : int
        Catalogue size; negatives are drawn from ``0 .. num_items - 1``.
    num_negatives : int, default 10
    batch_size : int, default 256
    seed : int, default 0
    shuffle : bool, default True
        Reshuffle the interactions every epoch.
    **kwargs
        ``workers``, ``use_multiprocessing``, ``max_queue_size`` of :class:`keras.utils.PyDataset`.

    Yields
    ------
    tuple
        ``({"user": (b,) int32, "items": (b, 1 + num_negatives) int32},)``:
        inputs only (the models add their own loss); column 0 of ``items``
        is the positive.

    Raises
    ------
    ValueError
        Bad shapes, indices out of range, or a user who already has every
        item (no negative to draw).

    Examples
    --------
    >>> ds = InteractionTriplets([[0, 0], [0, 1], [1, 2]], num_items=4, num_negatives=2, batch_size=2)
    >>> len(ds)
    2
    >>> (x,) = ds[0]
    >>> x["user"].shape, x["items"].shape
    ((2,), (2, 3))
    """

    def __init__(
        self,
        interactions: Any,
        num_items: int,
        num_negatives: int = 10,
        batch_size: int = 256,
        seed: int = 0,
        shuffle: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_items = _check_int(num_items, "num_items")
        self.pairs = _as_interactions(interactions, num_items=self.num_items)
        self.num_negatives = _check_int(num_negatives, "num_negatives")
        self.batch_size = _check_int(batch_size, "batch_size")
        self.seed = _check_seed(seed)
        self.shuffle = bool(shuffle)
        self.epoch = 0
        self._positives = _PositiveSet(self.pairs[:, 0], self.pairs[:, 1], self.num_items)
        per_user = np.bincount(self._positives.keys // self.num_items)
        if per_user.max() >= self.num_items:
            raise ValueError("A user has interacted with every item: there is no negative to sample for them.")
        self._lock = threading.Lock()
        self._order: np.ndarray | None = None
        self._order_epoch: int | None = None

    def __len__(self) -> int:
        return math.ceil(len(self.pairs) / self.batch_size)

    def _rng(self, *key: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=key))

    def _epoch_order(self, epoch: int) -> np.ndarray:
        with self._lock:
            if self._order_epoch != epoch:
                n = len(self.pairs)
                self._order = self._rng(0, epoch).permutation(n) if self.shuffle else np.arange(n)
                self._order_epoch = epoch
            return self._order

    def __getitem__(self, index: int) -> tuple[dict[str, np.ndarray]]:
        n = len(self)
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"batch index must be an integer; got {index!r}.")
        if not -n <= index < n:
            raise IndexError(f"batch index {index} out of range for {n} batches.")
        index = int(index) % n
        epoch = int(self.epoch)
        rows = self._epoch_order(epoch)[index * self.batch_size : (index + 1) * self.batch_size]
        users, positives = self.pairs[rows, 0], self.pairs[rows, 1]
        negatives = self._positives.sample_negatives(users, self.num_negatives, self._rng(1, epoch, index))
        items = np.concatenate([positives[:, None], negatives], axis=1)
        return ({"user": users.astype(np.int32), "items": items.astype(np.int32)},)

    def on_epoch_end(self) -> None:
        """Advance :attr:`epoch`, so the next epoch draws a new order and new negatives."""
        self.epoch += 1

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_lock", None)
        state["_order"] = None
        state["_order_epoch"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


# ---------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------
def _check_split(split: Any) -> LeaveOneOutSplit:
    if not isinstance(split, LeaveOneOutSplit):
        raise ValueError(f"split must be a LeaveOneOutSplit (from leave_one_out_split); got {type(split).__name__}.")
    if split.test_users.size == 0:
        raise ValueError("The split has no held-out item (every user has a single interaction).")
    return split


def sample_eval_negatives(split: LeaveOneOutSplit, num_negatives: int = 100, seed: int = 0) -> np.ndarray:
    """For each test user, ``num_negatives`` distinct items they never interacted with.

    Neither training nor held-out items are drawn. Deterministic in
    ``seed``, so every model is evaluated on the same candidates.

    Returns
    -------
    ndarray of shape (len(split.test_users), num_negatives), int64
        Row ``r`` belongs to user ``split.test_users[r]``.

    Raises
    ------
    ValueError
        If a user has fewer than ``num_negatives`` unseen items.

    Examples
    --------
    >>> import pandas as pd
    >>> split = leave_one_out_split(pd.DataFrame({"user_id": [0, 0], "item_id": [0, 1], "timestamp": [1, 2]}))
    >>> split = LeaveOneOutSplit(split.train, split.train_timestamps, split.test_items, split.test_timestamps,
    ...                          split.user_ids, np.arange(5))  # pretend 5 items
    >>> sorted(sample_eval_negatives(split, num_negatives=3)[0].tolist())
    [2, 3, 4]
    """
    split = _check_split(split)
    num_negatives = _check_int(num_negatives, "num_negatives")
    seed = _check_seed(seed)
    users = split.test_users
    seen = split.train_matrix().tolil()
    rng = np.random.default_rng(seed)
    out = np.empty((users.size, num_negatives), dtype=np.int64)
    allowed = np.ones(split.num_items, dtype=bool)
    for r, u in enumerate(users):
        allowed[:] = True
        allowed[seen.rows[u]] = False
        allowed[split.test_items[u]] = False
        candidates = np.flatnonzero(allowed)
        if candidates.size < num_negatives:
            raise ValueError(
                f"User {u} has only {candidates.size} unseen items; cannot sample num_negatives={num_negatives}."
            )
        out[r] = rng.choice(candidates, size=num_negatives, replace=False)
    return out


def _score_rows(model_or_scorer: Any, num_users: int, num_items: int) -> Callable[[np.ndarray], np.ndarray]:
    """A function users (q,) -> scores (q, num_items) for any supported scorer."""
    if isinstance(model_or_scorer, keras.Model):
        matrix = score_matrix(model_or_scorer)
        if matrix.shape != (num_users, num_items):
            raise ValueError(
                f"The model scores {matrix.shape} user-item pairs; the split has ({num_users}, {num_items})."
            )
        return lambda users: matrix[users].astype(np.float64)
    if callable(model_or_scorer):
        items = np.arange(num_items)

        def rows(users: np.ndarray) -> np.ndarray:
            u = np.repeat(users, num_items)
            i = np.tile(items, users.size)
            s = np.asarray(keras.ops.convert_to_numpy(model_or_scorer(u, i)), dtype=np.float64)
            if s.size != u.size:
                raise ValueError(f"The scorer returned {s.size} scores for {u.size} (user, item) pairs.")
            return s.reshape(users.size, num_items)

        return rows
    matrix = np.asarray(model_or_scorer, dtype=np.float64)
    if matrix.shape != (num_users, num_items):
        raise ValueError(
            "model_or_scorer must be a model of dmlkeras.recsys, a callable (user_ids, item_ids) -> scores "
            f"or a ({num_users}, {num_items}) score matrix; got an array of shape {matrix.shape}."
        )
    return lambda users: matrix[users]


def sampled_ranking_eval(
    model_or_scorer: Any,
    split: LeaveOneOutSplit,
    num_negatives: int = 100,
    k: int = 10,
    seed: int = 0,
    full_k: int = 20,
) -> dict[str, float]:
    """Evaluate any recommender on a leave-one-out split, the same way for all.

    Two protocols, over the users with a held-out item:

    * **Sampled** (He et al., 2017): the held-out item is ranked against
      ``num_negatives`` items the user never interacted with
      (:func:`sample_eval_negatives`, same ``seed`` = same candidates for
      every model); HR@k and NDCG@k by
      :func:`dmlkeras.evaluation.sampled_ranking_metrics` (ties count
      against the held-out item).
    * **Full ranking**: the held-out item is ranked among *all* items the
      user has not trained on (training items get score ``-inf``);
      recall@``full_k`` by :func:`dmlkeras.evaluation.ranking_metrics` (with
      one held-out item, recall = hit rate). Stricter: sampled metrics are
      known to flatter models (Krichene & Rendle, 2020).

    Parameters
    ----------
    model_or_scorer : keras.Model, ndarray or callable
        A model of this module; a score matrix ``(num_users, num_items)``;
        or a callable ``(user_ids, item_ids) -> scores`` on two equal-length
        1-D arrays. Higher = better.
    split : LeaveOneOutSplit
    num_negatives : int, default 100
    k : int, default 10
    seed : int, default 0
    full_k : int, default 20

    Returns
    -------
    dict
        ``hit_rate_at_{k}``, ``ndcg_at_{k}``, ``mrr`` (sampled),
        ``recall_at_{full_k}`` (full ranking) and ``n_users``.

    Raises
    ------
    ValueError
        On a scorer of the wrong shape or a split without test items.

    Examples
    --------
    >>> import pandas as pd
    >>> ratings = pd.DataFrame({"user_id": [0, 0, 1, 1], "item_id": [0, 1, 0, 2], "timestamp": [1, 2, 1, 2]})
    >>> split = leave_one_out_split(ratings)  # test items: user 0 -> 1, user 1 -> 2
    >>> oracle = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    >>> m = sampled_ranking_eval(oracle, split, num_negatives=1, k=1, full_k=1)
    >>> m["hit_rate_at_1"], m["recall_at_1"]
    (1.0, 1.0)
    >>> m = sampled_ranking_eval(lambda u, i: -i, split, num_negatives=1, k=1, full_k=1)  # prefers low ids
    >>> m["hit_rate_at_1"], m["recall_at_1"]  # user 0 (item 1) is hit, user 1 (item 2) is not
    (0.5, 0.5)
    """
    split = _check_split(split)
    k = _check_int(k, "k")
    full_k = _check_int(full_k, "full_k")
    rows_fn = _score_rows(model_or_scorer, split.num_users, split.num_items)
    negatives = sample_eval_negatives(split, num_negatives, seed)
    users = split.test_users
    held = split.test_items[users]
    seen = split.train_matrix()
    pos_scores = np.empty(users.size)
    neg_scores = np.empty(negatives.shape)
    full_totals = 0.0
    chunk = max(1, (1 << 21) // split.num_items)
    for start in range(0, users.size, chunk):
        u = users[start : start + chunk]
        s = rows_fn(u)
        if np.isnan(s).any():
            raise ValueError("The scorer returned NaN scores.")
        r = np.arange(u.size)
        pos_scores[start : start + u.size] = s[r, held[start : start + u.size]]
        neg_scores[start : start + u.size] = np.take_along_axis(s, negatives[start : start + u.size], axis=1)
        s = s.copy()
        block = seen[u]
        s[np.repeat(r, np.diff(block.indptr)), block.indices] = -np.inf
        full = ranking_metrics(s, held[start : start + u.size, None], k=min(full_k, split.num_items))
        full_totals += full["recall_at_k"] * u.size
    sampled = sampled_ranking_metrics(pos_scores, neg_scores, k=k)
    return {
        f"hit_rate_at_{k}": sampled["hit_rate_at_k"],
        f"ndcg_at_{k}": sampled["ndcg_at_k"],
        "mrr": sampled["mrr"],
        f"recall_at_{full_k}": full_totals / users.size,
        "n_users": int(users.size),
    }


def most_popular_scores(split: LeaveOneOutSplit) -> np.ndarray:
    """The most-popular baseline: every user scores an item by its number of training interactions.

    Returns
    -------
    ndarray of shape (num_users, num_items), float32

    Examples
    --------
    >>> import pandas as pd
    >>> ratings = pd.DataFrame({"user_id": [0, 0, 1, 1, 2], "item_id": [5, 6, 5, 7, 5], "timestamp": [1, 2, 1, 2, 1]})
    >>> most_popular_scores(leave_one_out_split(ratings))[0]
    array([3., 0., 0.], dtype=float32)
    """
    split = _check_split(split)
    counts = np.bincount(split.train[:, 1], minlength=split.num_items).astype(np.float32)
    return np.tile(counts, (split.num_users, 1))


# ---------------------------------------------------------------------------
# serving
# ---------------------------------------------------------------------------
def _seen_lists(seen: Any, num_users: int, num_items: int) -> Callable[[int], np.ndarray]:
    if isinstance(seen, LeaveOneOutSplit):
        seen = seen.train_matrix()
    if sp.issparse(seen):
        m = sp.csr_matrix(seen)
        if m.shape != (num_users, num_items):
            raise ValueError(f"seen must have shape ({num_users}, {num_items}); got {m.shape}.")
        return lambda u: m.indices[m.indptr[u] : m.indptr[u + 1]]
    if isinstance(seen, Mapping):
        return lambda u: np.asarray(seen.get(u, ()), dtype=np.int64)
    if isinstance(seen, (Sequence, np.ndarray)):
        if len(seen) != num_users:
            raise ValueError(f"seen must hold one array of items per user ({num_users}); got {len(seen)}.")
        return lambda u: np.asarray(seen[u], dtype=np.int64)
    raise ValueError(
        "seen must be a LeaveOneOutSplit, a sparse (num_users, num_items) matrix, a sequence of per-user "
        f"item arrays or a dict user -> items; got {type(seen).__name__}."
    )


def recommend(
    model: keras.Model,
    user_ids: ArrayLike,
    k: int = 10,
    exclude_seen: bool = True,
    seen: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` items of some users, by nearest-neighbour search.

    CML: the items nearest to the user in euclidean distance
    (:class:`dmlkeras.index.NearestNeighbors` over :func:`item_embeddings`).
    MF: the largest ``p_u . q_i + b_i``, found with the same euclidean index
    after the exact inner-product-to-distance reduction (Bachrach et al.,
    2014): items ``[q_i, b_i, sqrt(M^2 - ||(q_i, b_i)||^2)]`` and queries
    ``[p_u, 1, 0]``.

    Parameters
    ----------
    model : keras.Model
        From :func:`build_cml_model` or :func:`build_mf_model`.
    user_ids : array-like of shape (q,)
    k : int, default 10
    exclude_seen : bool, default True
        Never recommend an item in ``seen`` for that user.
    seen : LeaveOneOutSplit, sparse matrix, sequence or dict, optional
        The user's known items (a split: its training items). Required when
        ``exclude_seen``.

    Returns
    -------
    items : ndarray of shape (q, k), int64
        Recommended item indices, best first.
    scores : ndarray of shape (q, k), float32
        Their scores (higher = better): minus the distance for CML, the dot
        product plus bias for MF.

    Raises
    ------
    ValueError
        Bad ids, ``k`` larger than the number of unseen items, or
        ``exclude_seen`` without ``seen``.

    Examples
    --------
    >>> model = build_cml_model(2, 5, embedding_dim=2)
    >>> _ = model.get_layer("user_embedding").embeddings.assign(np.array([[0.0, 0.0], [0.5, 0.5]], "float32"))
    >>> items_xy = np.array([[0.1, 0], [0.2, 0], [0.3, 0], [0.4, 0], [0.9, 0]], "float32")
    >>> _ = model.get_layer("item_embedding").embeddings.assign(items_xy)
    >>> items, scores = recommend(model, [0], k=2, seen=[[0], []])
    >>> items
    array([[1, 2]])
    >>> np.round(scores, 2)
    array([[-0.2, -0.3]], dtype=float32)
    """
    kind = _model_kind(model)
    users_all = user_embeddings(model)
    items_all = item_embeddings(model)
    num_users, num_items = users_all.shape[0], items_all.shape[0]
    ids = _check_user_ids(user_ids, num_users)
    k = _check_int(k, "k")
    seen_of = None
    if exclude_seen:
        if seen is None:
            raise ValueError("exclude_seen=True needs seen= (e.g. the LeaveOneOutSplit used for training).")
        seen_of = _seen_lists(seen, num_users, num_items)
    queries = users_all[ids].astype(np.float32)
    gallery = items_all.astype(np.float32)
    if kind == "dot":
        bias = _item_bias(model).astype(np.float32)
        gallery = np.concatenate([gallery, bias[:, None]], axis=1)
        norms2 = np.sum(gallery.astype(np.float64) ** 2, axis=1)
        extra = np.sqrt(np.maximum(norms2.max() - norms2, 0.0)).astype(np.float32)
        gallery = np.concatenate([gallery, extra[:, None]], axis=1)
        queries = np.concatenate(
            [queries, np.ones((ids.size, 1), np.float32), np.zeros((ids.size, 1), np.float32)], axis=1
        )
    exclusions = [seen_of(int(u)) if seen_of is not None else np.empty(0, np.int64) for u in ids]
    max_excluded = max((len(e) for e in exclusions), default=0)
    for u, e in zip(ids, exclusions):
        if num_items - len(np.unique(e)) < k:
            raise ValueError(f"k={k} is larger than the {num_items - len(np.unique(e))} unseen items of user {u}.")
    search_k = min(num_items, k + max_excluded)
    index = NearestNeighbors(metric="euclidean").fit(gallery)
    out_items = np.empty((ids.size, k), dtype=np.int64)
    out_scores = np.empty((ids.size, k), dtype=np.float32)
    if ids.size == 0:
        return out_items, out_scores
    dist, idx = index.search(queries, k=search_k)
    for r, e in enumerate(exclusions):
        keep = ~np.isin(idx[r], e)
        chosen = idx[r][keep][:k]
        out_items[r] = chosen
        if kind == "distance":
            out_scores[r] = -dist[r][keep][:k]
        else:
            out_scores[r] = queries[r, :-1] @ gallery[chosen, :-1].T
    return out_items, out_scores
