"""Models around a tower: Siamese, triplet, quadruplet and head models, and :func:`get_embedding_model`.

An *embedding model* (a "tower") maps one input to one vector ``(n, d)``.
The models built here feed several inputs through that same tower, so every
branch shares one set of weights:

* :func:`build_siamese_model` -- ``[x1, x2]`` to pair distances ``(n,)``, for
  :class:`dmlkeras.losses.ContrastiveLoss`;
* :func:`build_triplet_model` -- ``[anchor, positive, negative]`` to stacked
  embeddings ``(n, 3, d)``, for :class:`dmlkeras.losses.TripletMarginLoss`;
* :func:`build_quadruplet_model` -- ``[anchor, positive, negative1,
  negative2]`` to ``(n, 4, d)``;
* :func:`build_head_model` -- ``[x, labels]`` through the tower and a loss
  head of :mod:`dmlkeras.heads`, which adds the training loss.

After training, :func:`get_embedding_model` recovers the tower, which is what
you keep to embed, index and search.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from dmlkeras import distances
from dmlkeras.models.layers import PairDistance, Stack

__all__ = [
    "build_head_model",
    "build_quadruplet_model",
    "build_siamese_model",
    "build_triplet_model",
    "check_tower",
    "get_embedding_model",
    "tower_inputs",
]

Tensor = Any


def check_tower(embedding_model: Any) -> None:
    """Refuse (``ValueError``) anything but a one-input Keras model with ``(n, d)`` outputs."""
    if not isinstance(embedding_model, keras.Model):
        raise ValueError(f"embedding_model must be a keras.Model; got {type(embedding_model).__name__}.")
    if len(embedding_model.inputs) != 1 or len(embedding_model.outputs) != 1:
        raise ValueError(
            "embedding_model must have one input and one output; got "
            f"{len(embedding_model.inputs)} inputs and {len(embedding_model.outputs)} outputs."
        )
    if len(embedding_model.outputs[0].shape) != 2:
        raise ValueError(
            "embedding_model must output embeddings of shape (n, d); got "
            f"{tuple(embedding_model.outputs[0].shape)}."
        )
    backend = keras.backend.backend()
    if embedding_model.inputs[0].dtype == "string" and backend != "tensorflow":
        raise ValueError(
            "embedding_model takes strings, which only the TensorFlow backend can hold inside a model; "
            f"KERAS_BACKEND is {backend!r}. Vectorize the texts first (vectorizer(texts), or a tf.data map) "
            "and pass the encoder on token ids, or use KERAS_BACKEND=tensorflow."
        )


def tower_inputs(embedding_model: keras.Model, names: Sequence[str]) -> list[Tensor]:
    """One new input per name, shaped and typed like the tower's input."""
    spec = embedding_model.inputs[0]
    return [keras.Input(shape=spec.shape[1:], dtype=spec.dtype, name=name) for name in names]


def build_siamese_model(
    embedding_model: keras.Model, metric: str = "euclidean", name: str = "siamese"
) -> keras.Model:
    """Build a Siamese model: inputs ``[x1, x2]``, output their distances ``(n,)``.

    Both inputs go through ``embedding_model`` itself (one set of weights,
    not a copy), then :class:`PairDistance`. Train it with
    :class:`dmlkeras.losses.ContrastiveLoss` on pairs labelled 1 (similar)
    or 0 (dissimilar), e.g. from :func:`dmlkeras.data.make_pairs`.

    Parameters
    ----------
    embedding_model : keras.Model
        The tower: one input, one output of shape ``(n, d)``.
    metric : str, default "euclidean"
        Any metric of :mod:`dmlkeras.distances`.
    name : str, default "siamese"
        Name of the model.

    Returns
    -------
    keras.Model
        Inputs ``[left, right]``, each shaped like the tower's input.

    Raises
    ------
    ValueError
        If ``embedding_model`` is not a one-input model with ``(n, d)``
        outputs, or ``metric`` is unknown.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> from dmlkeras.losses import ContrastiveLoss
    >>> from dmlkeras.models import build_embedding_model
    >>> tower = build_embedding_model((8,), embedding_dim=4, backbone="mlp")
    >>> siamese = build_siamese_model(tower)
    >>> siamese.compile(optimizer="adam", loss=ContrastiveLoss(margin=1.0))
    >>> x1, x2 = np.random.rand(6, 8), np.random.rand(6, 8)
    >>> siamese.predict([x1, x2], verbose=0).shape
    (6,)
    >>> get_embedding_model(siamese) is tower
    True
    """
    check_tower(embedding_model)
    metric = distances.resolve_metric(metric)
    inputs = tower_inputs(embedding_model, ("left", "right"))
    embeddings = [embedding_model(x) for x in inputs]
    pair_distances = PairDistance(metric, name="distance")(embeddings)
    return keras.Model(inputs, pair_distances, name=name)


def _build_tuple_model(embedding_model: keras.Model, names: Sequence[str], name: str) -> keras.Model:
    check_tower(embedding_model)
    inputs = tower_inputs(embedding_model, names)
    embeddings = [embedding_model(x) for x in inputs]
    return keras.Model(inputs, Stack(axis=1, name="embeddings")(embeddings), name=name)


def build_triplet_model(embedding_model: keras.Model, name: str = "triplet") -> keras.Model:
    """Build a triplet model: ``[anchor, positive, negative]`` to embeddings ``(n, 3, d)``.

    The three inputs share ``embedding_model``; its outputs are stacked in
    input order. Train it with :class:`dmlkeras.losses.TripletMarginLoss`
    (``y_true`` is ignored: pass zeros), e.g. on
    :func:`dmlkeras.data.make_triplets`.

    Parameters
    ----------
    embedding_model : keras.Model
        The tower: one input, one output of shape ``(n, d)``.
    name : str, default "triplet"
        Name of the model.

    Returns
    -------
    keras.Model

    Raises
    ------
    ValueError
        If ``embedding_model`` is not a one-input model with ``(n, d)`` outputs.

    Examples
    --------
    >>> import numpy as np
    >>> from dmlkeras.losses import TripletMarginLoss
    >>> from dmlkeras.models import build_embedding_model
    >>> tower = build_embedding_model((8,), embedding_dim=4, backbone="mlp")
    >>> triplet = build_triplet_model(tower)
    >>> triplet.compile(optimizer="adam", loss=TripletMarginLoss(margin=0.2))
    >>> anchor, positive, negative = (np.random.rand(6, 8) for _ in range(3))
    >>> triplet.predict([anchor, positive, negative], verbose=0).shape
    (6, 3, 4)
    """
    return _build_tuple_model(embedding_model, ("anchor", "positive", "negative"), name)


def build_quadruplet_model(embedding_model: keras.Model, name: str = "quadruplet") -> keras.Model:
    """Build a quadruplet model: ``[anchor, positive, negative1, negative2]`` to ``(n, 4, d)``.

    The four inputs share ``embedding_model``; its outputs are stacked in
    input order, as :func:`dmlkeras.data.make_quadruplets` orders them (Chen
    et al., 2017: ``negative2`` is from a third class).

    Parameters
    ----------
    embedding_model : keras.Model
        The tower: one input, one output of shape ``(n, d)``.
    name : str, default "quadruplet"
        Name of the model.

    Returns
    -------
    keras.Model

    Raises
    ------
    ValueError
        If ``embedding_model`` is not a one-input model with ``(n, d)`` outputs.

    Examples
    --------
    >>> from dmlkeras.models import build_embedding_model
    >>> tower = build_embedding_model((8,), embedding_dim=4, backbone="mlp")
    >>> build_quadruplet_model(tower).output_shape
    (None, 4, 4)
    """
    return _build_tuple_model(embedding_model, ("anchor", "positive", "negative1", "negative2"), name)


def get_embedding_model(model: keras.Model) -> keras.Model:
    """Return the embedding tower of a Siamese, triplet or quadruplet model.

    A model with several inputs must hold exactly one nested ``keras.Model``
    among its layers: the tower that its inputs share. This also holds after
    ``save`` and ``load_model``. A model with one input is already an
    embedding model and is returned as is.

    Parameters
    ----------
    model : keras.Model

    Returns
    -------
    keras.Model

    Raises
    ------
    ValueError
        If ``model`` is not a ``keras.Model``, or has several inputs and not
        exactly one nested model.

    Examples
    --------
    >>> from dmlkeras.models import build_embedding_model
    >>> tower = build_embedding_model((8,), embedding_dim=4, backbone="mlp")
    >>> get_embedding_model(build_triplet_model(tower)) is tower
    True
    >>> get_embedding_model(tower) is tower
    True
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"model must be a keras.Model; got {type(model).__name__}.")
    if len(model.inputs) == 1:
        return model
    towers = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if len(towers) != 1:
        found = ", ".join(repr(tower.name) for tower in towers) or "none"
        raise ValueError(
            f"Expected one nested embedding model shared by the {len(model.inputs)} inputs of "
            f"{model.name!r}; found {len(towers)} ({found})."
        )
    return towers[0]


def build_head_model(
    embedding_model: keras.Model,
    head: keras.layers.Layer,
    input_name: str = "inputs",
    label_name: str = "label",
    name: str = "head_model",
) -> keras.Model:
    """Build the training model of a loss head: ``[x, labels]`` to the embeddings ``(n, d)``.

    ``x`` goes through ``embedding_model`` (the tower itself, not a copy),
    then ``head([embeddings, labels])``: a layer of :mod:`dmlkeras.heads`
    (:class:`~dmlkeras.heads.ArcFace`, :class:`~dmlkeras.heads.ProxyAnchorLoss`,
    ...) that owns the class vectors and adds its loss. Compile the result
    with no loss and fit it on ``[x, y]`` (or a dataset yielding them) with
    no targets; afterwards use the tower alone, or
    :func:`get_embedding_model` of this model.

    Parameters
    ----------
    embedding_model : keras.Model
        The tower: one input, one output of shape ``(n, d)``.
    head : keras.layers.Layer
        A layer called on ``[embeddings, labels]`` that returns the
        embeddings and adds a loss.
    input_name, label_name : str, default "inputs", "label"
        Names of the two inputs (the keys of a dict of inputs).
    name : str, default "head_model"
        Name of the model.

    Returns
    -------
    keras.Model
        Inputs ``[x, labels]``: ``x`` shaped and typed like the tower's
        input, integer labels of shape ``(n,)``.

    Raises
    ------
    ValueError
        If ``embedding_model`` is not a one-input model with ``(n, d)``
        outputs, or ``head`` is not a Keras layer.

    Examples
    --------
    >>> import numpy as np
    >>> from dmlkeras.heads import ProxyAnchorLoss
    >>> from dmlkeras.models import build_embedding_model
    >>> tower = build_embedding_model((8,), embedding_dim=4, backbone="mlp")
    >>> model = build_head_model(tower, ProxyAnchorLoss(num_classes=3))
    >>> model.compile(optimizer="adam")   # no loss: the head adds it
    >>> x, y = np.random.rand(12, 8).astype("float32"), np.arange(12) % 3
    >>> history = model.fit([x, y], epochs=1, batch_size=6, verbose=0)
    >>> get_embedding_model(model) is tower
    True
    """
    check_tower(embedding_model)
    if not isinstance(head, keras.layers.Layer):
        raise ValueError(
            f"head must be a Keras layer called on [embeddings, labels] (e.g. dmlkeras.heads.ArcFace); "
            f"got {type(head).__name__}."
        )
    (inputs,) = tower_inputs(embedding_model, (input_name,))
    labels = keras.Input(shape=(), dtype="int32", name=label_name)
    embeddings = head([embedding_model(inputs), labels])
    return keras.Model([inputs, labels], embeddings, name=name)
