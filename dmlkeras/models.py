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
for images and vectors, :func:`build_text_encoder` for text (a 1-D CNN, a
transformer block, or :class:`WeightedBagOfWords`, a trainable projection of
the TF-IDF bag of words weighted by :func:`idf_weights`).

Every custom layer here is registered with Keras (package ``"dmlkeras"``):
a model saved to ``.keras`` reloads with ``keras.saving.load_model(path)``
and no ``custom_objects``, once :mod:`dmlkeras.models` has been imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from dmlkeras import distances

__all__ = [
    "L2Normalize",
    "MaskedGlobalPooling1D",
    "PairDistance",
    "PositionEmbedding",
    "Stack",
    "WeightedBagOfWords",
    "build_embedding_model",
    "build_quadruplet_model",
    "build_siamese_model",
    "build_text_encoder",
    "build_triplet_model",
    "get_embedding_model",
    "idf_weights",
]

Tensor = Any

BACKBONES = ("cnn", "mlp")
TEXT_ENCODERS = ("cnn", "transformer", "bag")
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


@keras.saving.register_keras_serializable(package="dmlkeras")
class WeightedBagOfWords(keras.layers.Layer):
    """Weighted sum of token embeddings: token ids ``(n, steps)`` to ``(n, output_dim)``.

    A text with token ids ``t_1 .. t_steps`` (0 is padding and is left out)
    becomes ``sum_t tf(t) * w[t] * E[t]`` over its distinct tokens ``t``,
    where ``tf(t)`` is the count of ``t`` in the text (``1 + log(count)``
    with ``sublinear_tf=True``), ``w`` a fixed weight per token (for instance
    :func:`idf_weights`) and ``E`` a trainable ``(vocabulary_size,
    output_dim)`` table. That is ``x @ E`` for the TF-IDF vector ``x`` of the
    text: a learned linear projection of the weighted bag of words, the
    encoder of S2Net (Yih et al., *Learning Discriminative Projections for
    Text Similarity Measures*, CoNLL 2011) and of Supervised Semantic Indexing
    (Bai et al., CIKM 2009).

    ``E`` starts as a Gaussian random projection (``stddev =
    1 / sqrt(output_dim)``), which preserves inner products approximately
    (Johnson-Lindenstrauss): before any training the cosine of two outputs
    approximates the TF-IDF cosine of the two texts, the closer the larger
    ``output_dim``; training moves it from there.

    Parameters
    ----------
    vocabulary_size : int
        Number of token ids (rows of ``E``); ids must lie in
        ``[0, vocabulary_size)``.
    output_dim : int
        Width of the output.
    token_weights : array-like of shape (vocabulary_size,), optional
        Fixed (non-trainable) weight of each token; all ones when omitted.
        They are a layer weight, so they are saved and reloaded with the
        model's weights, not with its config.
    sublinear_tf : bool, default False
        Count a token repeated ``c`` times as ``1 + log(c)`` instead of ``c``
        (scikit-learn's ``TfidfVectorizer(sublinear_tf=True)``).
    embeddings_initializer : initializer, optional
        Initializer of ``E``; by default
        ``RandomNormal(stddev=1 / sqrt(output_dim))``.

    Raises
    ------
    ValueError
        On a size that is not a positive integer, ``token_weights`` of the
        wrong shape or with non-finite values, or inputs that are not
        ``(n, steps)``.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> token_ids = np.array([[2, 3, 3, 0]])   # token 3 twice, then padding
    >>> layer = WeightedBagOfWords(4, 4, token_weights=[0.0, 1.0, 2.0, 0.5],
    ...                            embeddings_initializer="identity")   # E[t] = one-hot(t)
    >>> keras.ops.convert_to_numpy(layer(token_ids))   # 2 * E[2] + 2 * 0.5 * E[3]
    array([[0., 0., 2., 1.]], dtype=float32)
    >>> layer = WeightedBagOfWords(4, 4, token_weights=[0.0, 1.0, 2.0, 0.5], sublinear_tf=True,
    ...                            embeddings_initializer="identity")
    >>> np.round(keras.ops.convert_to_numpy(layer(token_ids)), 3)   # (1 + ln 2) * 0.5 for token 3
    array([[0.   , 0.   , 2.   , 0.847]], dtype=float32)
    """

    def __init__(
        self,
        vocabulary_size: int,
        output_dim: int,
        token_weights: Any = None,
        sublinear_tf: bool = False,
        embeddings_initializer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        _check_positive_int(vocabulary_size, "vocabulary_size")
        _check_positive_int(output_dim, "output_dim")
        if token_weights is not None:
            token_weights = np.asarray(token_weights, dtype="float32")
            if token_weights.shape != (vocabulary_size,):
                raise ValueError(
                    f"token_weights must have shape (vocabulary_size,) = ({vocabulary_size},); "
                    f"got {token_weights.shape}."
                )
            if not np.all(np.isfinite(token_weights)):
                raise ValueError("token_weights must be finite.")
        self.vocabulary_size = vocabulary_size
        self.output_dim = output_dim
        self.sublinear_tf = bool(sublinear_tf)
        self._initial_token_weights = token_weights
        if embeddings_initializer is None:
            embeddings_initializer = keras.initializers.RandomNormal(stddev=output_dim**-0.5)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)

    def build(self, input_shape: tuple) -> None:
        if len(input_shape) != 2:
            raise ValueError(
                f"WeightedBagOfWords expects token ids of shape (n, steps); got {tuple(input_shape)}."
            )
        self.embeddings = self.add_weight(
            shape=(self.vocabulary_size, self.output_dim), initializer=self.embeddings_initializer, name="embeddings"
        )
        self.token_weights = self.add_weight(
            shape=(self.vocabulary_size,), initializer="ones", trainable=False, name="token_weights"
        )
        if self._initial_token_weights is not None:
            self.token_weights.assign(self._initial_token_weights)

    def call(self, inputs: Tensor) -> Tensor:
        token_ids = ops.cast(inputs, "int32")
        weights = ops.take(self.token_weights, token_ids) * ops.cast(ops.not_equal(token_ids, 0), self.compute_dtype)
        if self.sublinear_tf:
            # counts[i, s]: how often the token at step s occurs in text i (at least once: itself).
            same = ops.equal(ops.expand_dims(token_ids, 2), ops.expand_dims(token_ids, 1))
            counts = ops.sum(ops.cast(same, self.compute_dtype), axis=-1)
            weights = weights * (1.0 + ops.log(counts)) / counts
        vectors = ops.take(self.embeddings, token_ids, axis=0)
        return ops.einsum("ns,nsd->nd", weights, vectors)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], self.output_dim)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "vocabulary_size": self.vocabulary_size,
            "output_dim": self.output_dim,
            "sublinear_tf": self.sublinear_tf,
            "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
        }


def idf_weights(token_ids: Any, vocabulary_size: int) -> np.ndarray:
    """Smoothed inverse document frequency of every token id, for :class:`WeightedBagOfWords`.

    ``idf(t) = ln((1 + n) / (1 + df(t))) + 1`` for ``n`` documents, ``df(t)``
    of which contain token ``t``: the formula of scikit-learn's
    ``TfidfVectorizer`` (``smooth_idf=True``). A token that never occurs gets
    the largest weight, ``ln(1 + n) + 1``. Token 0 is padding and gets 0. The
    out-of-vocabulary token (id 1 for a ``TextVectorization``) is counted
    like any other token.

    Parameters
    ----------
    token_ids : array-like of int, shape (n, steps)
        The documents as token ids, e.g. ``vectorizer(texts)``.
    vocabulary_size : int
        Length of the output; every id must be below it.

    Returns
    -------
    numpy.ndarray of float32, shape (vocabulary_size,)

    Raises
    ------
    ValueError
        If ``token_ids`` is not a non-empty 2-D array of ids in
        ``[0, vocabulary_size)``, or ``vocabulary_size`` is not a positive
        integer.

    Examples
    --------
    >>> import numpy as np
    >>> documents = np.array([[2, 3, 3], [2, 4, 0]])   # token 2 in both, 3 and 4 in one
    >>> np.round(idf_weights(documents, 5), 3)
    array([0.   , 2.099, 1.   , 1.405, 1.405], dtype=float32)
    """
    _check_positive_int(vocabulary_size, "vocabulary_size")
    token_ids = np.asarray(keras.ops.convert_to_numpy(token_ids))
    if token_ids.ndim != 2 or token_ids.shape[0] == 0 or not np.issubdtype(token_ids.dtype, np.integer):
        raise ValueError(
            f"token_ids must be a non-empty integer array of shape (n, steps); got {token_ids.dtype} {token_ids.shape}."
        )
    if token_ids.size and (token_ids.min() < 0 or token_ids.max() >= vocabulary_size):
        raise ValueError(
            f"token_ids must lie in [0, vocabulary_size) = [0, {vocabulary_size}); "
            f"got ids from {token_ids.min()} to {token_ids.max()}."
        )
    ordered = np.sort(token_ids, axis=1)
    first = np.ones_like(ordered, dtype=bool)
    first[:, 1:] = ordered[:, 1:] != ordered[:, :-1]   # each distinct id once per document
    document_frequency = np.bincount(ordered[first], minlength=vocabulary_size)
    weights = np.log((1.0 + len(token_ids)) / (1.0 + document_frequency)) + 1.0
    weights[0] = 0.0
    return weights.astype("float32")


def _vectorize_in_chunks(
    vectorizer: keras.layers.TextVectorization, texts: Sequence[str], chunk: int = 8192
) -> np.ndarray:
    """Token ids of many texts, vectorized a chunk at a time to bound memory."""
    texts = np.asarray(list(texts), dtype=object)
    return np.concatenate(
        [keras.ops.convert_to_numpy(vectorizer(texts[i : i + chunk])) for i in range(0, max(len(texts), 1), chunk)]
    )


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
    backend = keras.backend.backend()
    if embedding_model.inputs[0].dtype == "string" and backend != "tensorflow":
        raise ValueError(
            "embedding_model takes strings, which only the TensorFlow backend can hold inside a model; "
            f"KERAS_BACKEND is {backend!r}. Vectorize the texts first (vectorizer(texts), or a tf.data map) "
            "and pass the encoder on token ids, or use KERAS_BACKEND=tensorflow."
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
    token_weights: str | Any = "idf",
    sublinear_tf: bool = True,
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
        How token features become one vector; padding is left out. Not used
        by ``encoder="bag"``.
    encoder : {"cnn", "transformer", "bag"}, default "cnn"
        ``"cnn"``: one Conv1D (kernel 5, ReLU). ``"transformer"``: a learned
        position embedding and one transformer block (2-head self-attention
        that ignores padding, a feed-forward layer, residual connections and
        layer normalisation). Both are followed by pooling and a Dense
        projection. ``"bag"``: a :class:`WeightedBagOfWords`, the TF-IDF
        vector of the text times a trainable ``(vocabulary_size,
        embedding_dim)`` matrix that starts as a random projection, so the
        untrained encoder already approximates TF-IDF cosine (S2Net, Yih et
        al., CoNLL 2011); word order is ignored.
    l2_normalize : bool, default True
        End with an :class:`L2Normalize` layer.
    texts : sequence of str, optional
        Corpus to build the vocabulary from (``vectorizer.adapt(texts)``),
        and the token weights of ``encoder="bag"``. Without it, call
        ``vectorizer.adapt`` yourself before use.
    token_weights : "idf", "uniform" or array-like of shape (vocabulary_size,), default "idf"
        Fixed weight of each token id for ``encoder="bag"`` (ignored by the
        other encoders): ``"idf"`` computes :func:`idf_weights` of ``texts``
        (which it then requires), ``"uniform"`` weighs every token 1 (a plain
        bag of words), an array gives your own.
    sublinear_tf : bool, default True
        For ``encoder="bag"``: count a token repeated ``c`` times in a text
        as ``1 + log(c)``, like ``TfidfVectorizer(sublinear_tf=True)``.
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
        On an unknown ``pooling``, ``encoder`` or ``token_weights``, a size
        that is not a positive integer, or ``token_weights="idf"`` for
        ``encoder="bag"`` without ``texts``.

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

    The bag-of-words encoder, IDF-weighted; before training its cosines
    approximate the TF-IDF cosines of the texts:

    >>> vectorizer, bag = build_text_encoder(
    ...     vocabulary_size=100, sequence_length=8, embedding_dim=16, encoder="bag", texts=texts
    ... )
    >>> tuple(bag.get_layer("bag_of_words").token_weights.shape)
    (100,)
    >>> bag.predict(vectorizer(np.array(texts)), verbose=0).shape
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
    if encoder == "bag" and isinstance(token_weights, str):
        if token_weights not in ("idf", "uniform"):
            raise ValueError(f'token_weights must be "idf", "uniform" or an array; got {token_weights!r}.')
        if token_weights == "idf" and texts is None:
            raise ValueError(
                'encoder="bag" with token_weights="idf" needs texts to count document frequencies; '
                'pass texts, your own token_weights array, or token_weights="uniform".'
            )

    vectorizer = keras.layers.TextVectorization(
        max_tokens=vocabulary_size, output_sequence_length=sequence_length, name=f"{name}_vectorizer"
    )
    if texts is not None:
        vectorizer.adapt(texts)

    token_ids = keras.Input(shape=(sequence_length,), dtype="int32", name="token_ids")
    if encoder == "bag":
        if isinstance(token_weights, str):
            weights = (
                idf_weights(_vectorize_in_chunks(vectorizer, texts), vocabulary_size)
                if token_weights == "idf"
                else None
            )
        else:
            weights = token_weights
        x = WeightedBagOfWords(
            vocabulary_size, embedding_dim, token_weights=weights, sublinear_tf=sublinear_tf, name="bag_of_words"
        )(token_ids)
        if l2_normalize:
            x = L2Normalize(name="l2_normalize")(x)
        return vectorizer, keras.Model(token_ids, x, name=name)
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
