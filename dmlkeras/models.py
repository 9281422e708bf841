"""Embedding towers and the Siamese, triplet and quadruplet models around them.

An *embedding model* (a "tower") maps one input to one vector ``(n, d)``.
The tuple models feed several inputs through that same tower, so every
branch shares one set of weights:

* :func:`build_siamese_model` -- ``[x1, x2]`` to pair distances ``(n,)``, for
  :class:`dmlkeras.losses.ContrastiveLoss`;
* :func:`build_triplet_model` -- ``[anchor, positive, negative]`` to stacked
  embeddings ``(n, 3, d)``, for :class:`dmlkeras.losses.TripletMarginLoss`;
* :func:`build_quadruplet_model` -- ``[anchor, positive, negative1,
  negative2]`` to ``(n, 4, d)``.

After training, :func:`get_embedding_model` recovers the tower, which is what
you keep to embed, index and search. Towers: :func:`build_embedding_model`
for images and vectors, :func:`build_text_encoder` for text.

Every custom layer here is registered with Keras (package ``"dmlkeras"``):
a model saved to ``.keras`` reloads with ``keras.saving.load_model(path)``
and no ``custom_objects``, once :mod:`dmlkeras.models` has been imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from dmlkeras import distances

__all__ = [
    "L2Normalize",
    "MaskedGlobalPooling1D",
    "PairDistance",
    "PositionEmbedding",
    "Stack",
    "build_embedding_model",
    "build_quadruplet_model",
    "build_siamese_model",
    "build_text_encoder",
    "build_triplet_model",
    "get_embedding_model",
]

Tensor = Any

BACKBONES = ("cnn", "mlp")
TEXT_ENCODERS = ("cnn", "transformer")
POOLINGS = ("mean", "max")

_CNN_FILTERS = (16, 32, 64)
_MLP_UNITS = (256, 128)
_ATTENTION_HEADS = 2


@keras.saving.register_keras_serializable(package="dmlkeras")
class L2Normalize(keras.layers.Layer):
    """Scale each embedding to unit L2 norm.

    All-zero rows stay zero instead of becoming NaN (see
    :func:`dmlkeras.distances.l2_normalize`).

    Parameters
    ----------
    axis : int, default -1
        Axis along which to normalise.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> keras.ops.convert_to_numpy(L2Normalize()(np.array([[3.0, 4.0]], "float32")))
    array([[0.6, 0.8]], dtype=float32)
    """

    def __init__(self, axis: int = -1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axis = axis

    def call(self, inputs: Tensor) -> Tensor:
        return distances.l2_normalize(inputs, axis=self.axis)

    def get_config(self) -> dict:
        return {**super().get_config(), "axis": self.axis}


@keras.saving.register_keras_serializable(package="dmlkeras")
class PairDistance(keras.layers.Layer):
    """Distance between the two embeddings of each pair: ``[(n, d), (n, d)]`` to ``(n,)``.

    Parameters
    ----------
    metric : str, default "euclidean"
        Any metric of :mod:`dmlkeras.distances`.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> first, second = np.zeros((1, 2), "float32"), np.array([[3.0, 4.0]], "float32")
    >>> keras.ops.convert_to_numpy(PairDistance()([first, second]))
    array([5.], dtype=float32)
    """

    def __init__(self, metric: str = "euclidean", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metric = distances.resolve_metric(metric)

    def call(self, inputs: Sequence[Tensor]) -> Tensor:
        if len(inputs) != 2:
            raise ValueError(
                f"PairDistance expects a list of 2 embedding tensors of shape (n, d); got {len(inputs)}."
            )
        first, second = inputs
        return distances.paired_distances(first, second, metric=self.metric)

    def get_config(self) -> dict:
        return {**super().get_config(), "metric": self.metric}


@keras.saving.register_keras_serializable(package="dmlkeras")
class Stack(keras.layers.Layer):
    """Stack same-shaped tensors along a new axis: ``k`` tensors ``(n, d)`` to ``(n, k, d)``.

    Parameters
    ----------
    axis : int, default 1
        Position of the new axis in the output.

    Examples
    --------
    >>> import numpy as np
    >>> tuple(Stack()([np.zeros((5, 2)), np.ones((5, 2)), np.ones((5, 2))]).shape)
    (5, 3, 2)
    """

    def __init__(self, axis: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axis = axis

    def call(self, inputs: Sequence[Tensor]) -> Tensor:
        return ops.stack(inputs, axis=self.axis)

    def get_config(self) -> dict:
        return {**super().get_config(), "axis": self.axis}


@keras.saving.register_keras_serializable(package="dmlkeras")
class PositionEmbedding(keras.layers.Layer):
    """Add a learned vector per position to a sequence ``(n, steps, features)``.

    The number of steps is fixed by the first input the layer sees.

    Examples
    --------
    >>> import numpy as np
    >>> tuple(PositionEmbedding()(np.zeros((2, 5, 8), "float32")).shape)
    (2, 5, 8)
    """

    def build(self, input_shape: tuple) -> None:
        if len(input_shape) != 3 or input_shape[1] is None or input_shape[2] is None:
            raise ValueError(
                "PositionEmbedding expects inputs of shape (n, steps, features) with known "
                f"steps and features; got {tuple(input_shape)}."
            )
        self.positions = self.add_weight(
            shape=tuple(input_shape[1:]), initializer="glorot_uniform", name="positions"
        )

    def call(self, inputs: Tensor) -> Tensor:
        return inputs + ops.cast(self.positions, inputs.dtype)


@keras.saving.register_keras_serializable(package="dmlkeras")
class MaskedGlobalPooling1D(keras.layers.Layer):
    """Mean or max over the unmasked steps of a sequence: ``(n, steps, features)`` to ``(n, features)``.

    A sequence with no unmasked step (an empty text) pools to zeros.

    Parameters
    ----------
    pooling : {"mean", "max"}, default "mean"

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> steps = np.array([[[1.0], [3.0], [100.0]]], "float32")  # the last step is padding
    >>> mask = np.array([[True, True, False]])
    >>> keras.ops.convert_to_numpy(MaskedGlobalPooling1D("mean")(steps, mask=mask))
    array([[2.]], dtype=float32)
    >>> keras.ops.convert_to_numpy(MaskedGlobalPooling1D("max")(steps, mask=mask))
    array([[3.]], dtype=float32)
    """

    def __init__(self, pooling: str = "mean", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}; got {pooling!r}.")
        self.pooling = pooling

    def call(self, inputs: Tensor, mask: Tensor | None = None) -> Tensor:
        if mask is None:
            return ops.mean(inputs, axis=1) if self.pooling == "mean" else ops.max(inputs, axis=1)
        keep = ops.expand_dims(ops.cast(mask, "bool"), axis=-1)
        if self.pooling == "mean":
            weights = ops.cast(keep, inputs.dtype)
            return ops.sum(inputs * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)
        largest = ops.max(ops.where(keep, inputs, float("-inf")), axis=1)
        return ops.where(ops.any(keep, axis=1), largest, 0.0)

    def compute_mask(self, inputs: Tensor, mask: Tensor | None = None) -> None:
        # The steps axis is pooled away, and the mask with it.
        return None

    def get_config(self) -> dict:
        return {**super().get_config(), "pooling": self.pooling}


def _check_positive_int(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")


def _as_augmentation(augmentation: Any) -> keras.layers.Layer:
    if isinstance(augmentation, keras.layers.Layer):
        return augmentation
    if isinstance(augmentation, Sequence) and all(isinstance(layer, keras.layers.Layer) for layer in augmentation):
        return keras.Sequential(list(augmentation), name="augmentation")
    raise ValueError(
        "augmentation must be a Keras layer (e.g. a keras.Sequential) or a list of Keras "
        f"preprocessing layers; got {augmentation!r}."
    )


def _cnn_features(images: Tensor, batchnorm_momentum: float) -> Tensor:
    """Conv blocks (Conv2D, BatchNorm, ReLU, 2x2 max-pool), then global average pooling."""
    x = images
    for filters in _CNN_FILTERS:
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization(momentum=batchnorm_momentum)(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D()(x)
    return keras.layers.GlobalAveragePooling2D()(x)


def _mlp_features(vectors: Tensor) -> Tensor:
    x = vectors
    for units in _MLP_UNITS:
        x = keras.layers.Dense(units, activation="relu")(x)
    return x


def _pool_to_vector(features: Tensor) -> Tensor:
    """Global-average-pool a 1-D or 2-D feature map, flatten anything else, to ``(n, features)``."""
    rank = len(features.shape)
    if rank == 3:
        return keras.layers.GlobalAveragePooling1D()(features)
    if rank == 4:
        return keras.layers.GlobalAveragePooling2D()(features)
    if rank > 4:
        return keras.layers.Flatten()(features)
    return features


def build_embedding_model(
    input_shape: Sequence[int],
    embedding_dim: int = 64,
    backbone: str | keras.Model = "cnn",
    l2_normalize: bool = True,
    dropout: float = 0.0,
    augmentation: keras.layers.Layer | Sequence[keras.layers.Layer] | None = None,
    batchnorm_momentum: float = 0.99,
    name: str = "embedding",
) -> keras.Model:
    """Build a functional model from one input to its embedding ``(n, embedding_dim)``.

    Parameters
    ----------
    input_shape : sequence of int
        Shape of one sample, without the batch axis. ``"cnn"`` takes images
        ``(height, width)`` (grayscale; a channel axis is added),
        ``(height, width, 1)`` or ``(height, width, 3)``, at least 8x8.
        ``"mlp"`` takes vectors ``(features,)``; other shapes are flattened.
    embedding_dim : int, default 64
        Size of the embeddings.
    backbone : {"cnn", "mlp"} or keras.Model, default "cnn"
        ``"cnn"``: three blocks of Conv2D (16, 32, 64 filters), batch
        normalisation, ReLU and 2x2 max-pooling, then global average pooling;
        sized for 28x28 to 64x64 images and fast on a CPU. ``"mlp"``: Dense
        layers of 256 and 128 units with ReLU. A ``keras.Model`` (for example
        ``keras.applications.MobileNetV3Small(include_top=False, ...)``) is
        used as the trunk; a 3-D or 4-D output is global-average-pooled, a
        larger one flattened.
    l2_normalize : bool, default True
        End with an :class:`L2Normalize` layer, so that every embedding has
        unit norm (advised for cosine distances and margin losses).
    dropout : float, default 0.0
        Dropout rate before the final projection.
    augmentation : keras layer or list of keras layers, optional
        Applied first (after the channel axis is added), e.g.
        ``[keras.layers.RandomFlip("horizontal"),
        keras.layers.RandomTranslation(0.1, 0.1)]``. Keras' random
        augmentation layers only act during training.
    batchnorm_momentum : float, default 0.99
        Momentum of the moving averages of the ``"cnn"`` backbone's
        BatchNormalization layers (Keras' default). Inference uses these
        averages; after a short run (a few hundred steps) 0.99 still holds a
        large share of their initial values (0.99^200 = 13 %), so ``predict``
        embeds differently from what the loss trained. Use 0.9 for short runs.
    name : str, default "embedding"
        Name of the model.

    Returns
    -------
    keras.Model
        One input of shape ``(None, *input_shape)``, one output of shape
        ``(None, embedding_dim)``.

    Raises
    ------
    ValueError
        On an unknown ``backbone``, an ``input_shape`` the backbone does not
        take, or a bad ``embedding_dim``, ``dropout``, ``augmentation`` or
        ``batchnorm_momentum``.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> model = build_embedding_model((28, 28), embedding_dim=16)
    >>> embeddings = model.predict(np.random.rand(4, 28, 28).astype("float32"), verbose=0)
    >>> embeddings.shape
    (4, 16)
    >>> np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    True

    For a short training run, faster BatchNorm moving averages:

    >>> short = build_embedding_model((28, 28), batchnorm_momentum=0.9)
    >>> [layer.momentum for layer in short.layers if isinstance(layer, keras.layers.BatchNormalization)]
    [0.9, 0.9, 0.9]

    With your own trunk:

    >>> trunk = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(8, 3)])
    >>> build_embedding_model((32, 32, 3), embedding_dim=16, backbone=trunk).output_shape
    (None, 16)
    """
    input_shape = tuple(input_shape)
    if not input_shape or not all(isinstance(size, int) and size >= 1 for size in input_shape):
        raise ValueError(f"input_shape must be a tuple of positive integers; got {input_shape!r}.")
    _check_positive_int(embedding_dim, "embedding_dim")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1); got {dropout!r}.")
    if isinstance(batchnorm_momentum, bool) or not 0.0 <= batchnorm_momentum < 1.0:
        raise ValueError(f"batchnorm_momentum must be in [0, 1); got {batchnorm_momentum!r}.")
    if not (isinstance(backbone, keras.Model) or backbone in BACKBONES):
        raise ValueError(f"backbone must be one of {BACKBONES} or a keras.Model; got {backbone!r}.")
    if backbone == "cnn" and (len(input_shape) not in (2, 3) or min(input_shape[:2]) < 8):
        raise ValueError(
            "backbone='cnn' expects images of shape (height, width) or (height, width, channels), "
            f"at least 8x8; got input_shape={input_shape}."
        )

    inputs = keras.Input(shape=input_shape, name="inputs")
    x = inputs
    if backbone == "cnn" and len(input_shape) == 2:
        x = keras.layers.Reshape((*input_shape, 1))(x)
    if augmentation is not None:
        x = _as_augmentation(augmentation)(x)
    if backbone == "cnn":
        x = _cnn_features(x, batchnorm_momentum)
    elif backbone == "mlp":
        if len(input_shape) > 1:
            x = keras.layers.Flatten()(x)
        x = _mlp_features(x)
    else:
        x = _pool_to_vector(backbone(x))
    if dropout > 0.0:
        x = keras.layers.Dropout(dropout)(x)
    x = keras.layers.Dense(embedding_dim, name="projection")(x)
    if l2_normalize:
        x = L2Normalize(name="l2_normalize")(x)
    return keras.Model(inputs, x, name=name)


def _check_tower(embedding_model: Any) -> None:
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


def _tower_inputs(embedding_model: keras.Model, names: Sequence[str]) -> list[Tensor]:
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
    >>> tower = build_embedding_model((8,), embedding_dim=4, backbone="mlp")
    >>> siamese = build_siamese_model(tower)
    >>> siamese.compile(optimizer="adam", loss=ContrastiveLoss(margin=1.0))
    >>> x1, x2 = np.random.rand(6, 8), np.random.rand(6, 8)
    >>> siamese.predict([x1, x2], verbose=0).shape
    (6,)
    >>> get_embedding_model(siamese) is tower
    True
    """
    _check_tower(embedding_model)
    metric = distances.resolve_metric(metric)
    inputs = _tower_inputs(embedding_model, ("left", "right"))
    embeddings = [embedding_model(x) for x in inputs]
    pair_distances = PairDistance(metric, name="distance")(embeddings)
    return keras.Model(inputs, pair_distances, name=name)


def _build_tuple_model(embedding_model: keras.Model, names: Sequence[str], name: str) -> keras.Model:
    _check_tower(embedding_model)
    inputs = _tower_inputs(embedding_model, names)
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


def build_text_encoder(
    vocabulary_size: int = 20000,
    sequence_length: int = 64,
    embedding_dim: int = 128,
    pooling: str = "mean",
    encoder: str = "cnn",
    l2_normalize: bool = True,
    texts: Sequence[str] | None = None,
    name: str = "text_encoder",
) -> tuple[keras.layers.TextVectorization, keras.Model]:
    """Build a text vectorizer and an encoder from its token ids to embeddings.

    Parameters
    ----------
    vocabulary_size : int, default 20000
        Most tokens kept by the vectorizer, padding and out-of-vocabulary
        included; also the size of the token embedding table.
    sequence_length : int, default 64
        Texts are cut or padded (with token 0) to this many tokens.
    embedding_dim : int, default 128
        Width of the token embeddings, of the encoder and of the output.
    pooling : {"mean", "max"}, default "mean"
        How token features become one vector; padding is left out.
    encoder : {"cnn", "transformer"}, default "cnn"
        ``"cnn"``: one Conv1D (kernel 5, ReLU). ``"transformer"``: a learned
        position embedding and one transformer block (2-head self-attention
        that ignores padding, a feed-forward layer, residual connections and
        layer normalisation).
    l2_normalize : bool, default True
        End with an :class:`L2Normalize` layer.
    texts : sequence of str, optional
        Corpus to build the vocabulary from (``vectorizer.adapt(texts)``).
        Without it, call ``vectorizer.adapt`` yourself before use.
    name : str, default "text_encoder"
        Name of the encoder; the vectorizer is named ``name + "_vectorizer"``.

    Returns
    -------
    vectorizer : keras.layers.TextVectorization
        Strings ``(n,)`` or ``(n, 1)`` to token ids ``(n, sequence_length)``.
    encoder : keras.Model
        Token ids ``(n, sequence_length)`` to embeddings ``(n, embedding_dim)``.

    Raises
    ------
    ValueError
        On an unknown ``pooling`` or ``encoder``, or a size that is not a
        positive integer.

    Notes
    -----
    Why two objects: ``TextVectorization`` runs on TensorFlow. Inside a model
    it works on the TensorFlow backend only; JAX cannot hold strings, so a
    model with string inputs fails there even when run eagerly. The encoder
    takes token ids and runs on every backend; vectorize the text first,
    either eagerly (``vectorizer(texts)``) or in a ``tf.data`` pipeline
    (``dataset.map(lambda text, label: (vectorizer(text), label))``).
    Token id 0 is padding and is masked out of attention and pooling.

    The encoder is an embedding tower like any other: pass it to
    :func:`build_siamese_model` or :func:`build_triplet_model` and train on
    vectorized texts. On the TensorFlow backend only, you can also join the
    two into one model on raw strings, which saves with its vocabulary::

        text_model = keras.Sequential(
            [keras.Input(shape=(), dtype="string"), vectorizer, encoder]
        )

    Examples
    --------
    >>> import numpy as np
    >>> texts = ["a small cat", "a big dog", "the cat sat", "dogs bark"]
    >>> vectorizer, encoder = build_text_encoder(
    ...     vocabulary_size=100, sequence_length=8, embedding_dim=16, texts=texts
    ... )
    >>> token_ids = vectorizer(np.array(texts))
    >>> tuple(token_ids.shape)
    (4, 8)
    >>> encoder.predict(token_ids, verbose=0).shape
    (4, 16)
    """
    for value, label in (
        (vocabulary_size, "vocabulary_size"),
        (sequence_length, "sequence_length"),
        (embedding_dim, "embedding_dim"),
    ):
        _check_positive_int(value, label)
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}; got {pooling!r}.")
    if encoder not in TEXT_ENCODERS:
        raise ValueError(f"encoder must be one of {TEXT_ENCODERS}; got {encoder!r}.")

    vectorizer = keras.layers.TextVectorization(
        max_tokens=vocabulary_size, output_sequence_length=sequence_length, name=f"{name}_vectorizer"
    )
    if texts is not None:
        vectorizer.adapt(texts)

    token_ids = keras.Input(shape=(sequence_length,), dtype="int32", name="token_ids")
    not_padding = ops.not_equal(token_ids, 0)
    x = keras.layers.Embedding(vocabulary_size, embedding_dim, name="token_embedding")(token_ids)
    if encoder == "cnn":
        x = keras.layers.Conv1D(embedding_dim, 5, padding="same", activation="relu")(x)
    else:
        x = PositionEmbedding(name="position_embedding")(x)
        attention = keras.layers.MultiHeadAttention(_ATTENTION_HEADS, key_dim=embedding_dim)(
            x, x, attention_mask=ops.expand_dims(not_padding, axis=1)
        )
        x = keras.layers.LayerNormalization()(keras.layers.Add()([x, attention]))
        feed_forward = keras.layers.Dense(2 * embedding_dim, activation="relu")(x)
        feed_forward = keras.layers.Dense(embedding_dim)(feed_forward)
        x = keras.layers.LayerNormalization()(keras.layers.Add()([x, feed_forward]))
    x = MaskedGlobalPooling1D(pooling, name="pooling")(x, mask=not_padding)
    x = keras.layers.Dense(embedding_dim, name="projection")(x)
    if l2_normalize:
        x = L2Normalize(name="l2_normalize")(x)
    return vectorizer, keras.Model(token_ids, x, name=name)
