"""Collaborative Metric Learning and matrix factorisation models, and readers of a trained model.

:func:`build_cml_model` (user and item tables in one euclidean space, kept in
the ball of :class:`UnitBallConstraint`), :func:`build_mf_model` (the
dot-product baseline); :func:`user_embeddings`, :func:`item_embeddings`,
:func:`item_bias`, :func:`model_kind` and :func:`score_matrix` read them.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import ops
from numpy.typing import ArrayLike

from dmlkeras import distances
from dmlkeras._validation import check_float, check_int, index_vector
from dmlkeras.recsys.losses import CMLLoss, ItemFeatureLoss, MFLoss

__all__ = [
    "ITEM_BIAS",
    "ITEM_EMBEDDING",
    "USER_EMBEDDING",
    "UnitBallConstraint",
    "build_cml_model",
    "build_mf_model",
    "item_bias",
    "item_embeddings",
    "model_kind",
    "score_matrix",
    "user_embeddings",
]

Tensor = Any

#: Names of the layers that hold the user and item tables (and the MF item biases).
USER_EMBEDDING = "user_embedding"
ITEM_EMBEDDING = "item_embedding"
ITEM_BIAS = "item_bias"


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
        self.max_norm = check_float(max_norm, "max_norm", minimum=0.0, strict=True)
        self.axis = int(axis)

    def __call__(self, w: Tensor) -> Tensor:
        w = ops.convert_to_tensor(w)
        norms = ops.sqrt(ops.sum(ops.square(w), axis=self.axis, keepdims=True))
        scale = ops.minimum(1.0, self.max_norm / ops.maximum(norms, 1e-12))
        return w * ops.cast(scale, w.dtype)

    def get_config(self) -> dict:
        return {"max_norm": self.max_norm, "axis": self.axis}


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
    compile: bool = True,
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
        Adam's learning rate (with ``compile=True``).
    metric : {"squared_euclidean", "euclidean"}, default "squared_euclidean"
        Distance in the hinge (rankings are the same for both).
    name : str, default "cml"
    compile : bool, default True
        Compile with ``Adam(learning_rate)`` and no loss (the model adds its
        own). ``False`` returns the model uncompiled, as every other builder
        of dmlkeras does: compile it yourself, with no ``loss``. The default
        stays ``True`` so that existing code (notebook 06) keeps working.

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
    num_users = check_int(num_users, "num_users")
    num_items = check_int(num_items, "num_items")
    embedding_dim = check_int(embedding_dim, "embedding_dim")
    num_negatives = check_int(num_negatives, "num_negatives")
    max_norm = check_float(max_norm, "max_norm", minimum=0.0, strict=True)
    learning_rate = check_float(learning_rate, "learning_rate", minimum=0.0, strict=True)
    feature_weight = check_float(feature_weight, "feature_weight", minimum=0.0)
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
    if compile:
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
    compile: bool = True,
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
    compile : bool, default True
        Compile with ``Adam(learning_rate)`` and no loss (the model adds its
        own). ``False`` returns the model uncompiled, as every other builder
        of dmlkeras does: compile it yourself, with no ``loss``. The default
        stays ``True`` so that existing code (notebook 06) keeps working.

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
    num_users = check_int(num_users, "num_users")
    num_items = check_int(num_items, "num_items")
    embedding_dim = check_int(embedding_dim, "embedding_dim")
    num_negatives = check_int(num_negatives, "num_negatives")
    learning_rate = check_float(learning_rate, "learning_rate", minimum=0.0, strict=True)
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
    if compile:
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


def model_kind(model: keras.Model) -> str:
    for layer in model.layers:
        if isinstance(layer, CMLLoss):
            return "distance"
        if isinstance(layer, MFLoss):
            return "dot"
    raise ValueError(f"Model {model.name!r} is neither a CML nor an MF model of dmlkeras.recsys.")


def item_bias(model: keras.Model) -> np.ndarray:
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
    kind = model_kind(model)
    users = user_embeddings(model)
    if user_ids is not None:
        users = users[index_vector(user_ids, users.shape[0], "user_ids")]
    items = item_embeddings(model)
    if kind == "distance":
        return -np.asarray(ops.convert_to_numpy(distances.pairwise_distances(users, items)), dtype=np.float32)
    return (users @ items.T + item_bias(model)[None, :]).astype(np.float32)
