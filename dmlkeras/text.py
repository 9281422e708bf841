"""Text towers: layers for token sequences, IDF weights, and :func:`build_text_encoder`.

:func:`build_text_encoder` returns a ``TextVectorization`` and an encoder
from token ids to embeddings, one of three:

* ``"cnn"`` -- token embeddings, one Conv1D, masked pooling, a projection;
* ``"transformer"`` -- token and position embeddings
  (:class:`PositionEmbedding`), one transformer block that ignores padding,
  masked pooling (:class:`MaskedGlobalPooling1D`), a projection;
* ``"bag"`` -- :class:`WeightedBagOfWords`, a trainable projection of the
  TF-IDF bag of words weighted by :func:`idf_weights` (S2Net).

:func:`normalize_texts` shows a text as the vectorizer sees it (standardised
and split into tokens), and :func:`overlap_mask` uses it to find training
texts that equal a dev or test text after that normalisation (a leak).

The encoder is an embedding tower like any other: pass it to
:func:`dmlkeras.models.build_siamese_model` or
:func:`dmlkeras.models.build_triplet_model`. Every layer here is registered
with Keras (package ``"dmlkeras"``); these names are also importable from
:mod:`dmlkeras.models`, where they lived before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from dmlkeras._validation import check_int
from dmlkeras.models.layers import L2Normalize

__all__ = [
    "POOLINGS",
    "TEXT_ENCODERS",
    "MaskedGlobalPooling1D",
    "PositionEmbedding",
    "WeightedBagOfWords",
    "build_text_encoder",
    "idf_weights",
    "normalize_texts",
    "overlap_mask",
]

Tensor = Any

TEXT_ENCODERS = ("cnn", "transformer", "bag")
POOLINGS = ("mean", "max")
_ATTENTION_HEADS = 2


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
        check_int(vocabulary_size, "vocabulary_size")
        check_int(output_dim, "output_dim")
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
    check_int(vocabulary_size, "vocabulary_size")
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


def normalize_texts(
    texts: Sequence[str], vectorizer: keras.layers.TextVectorization | None = None
) -> list[str]:
    """Each text as a ``TextVectorization`` sees it: standardised, split, tokens joined by one space.

    The work is done by Keras itself: a fresh ``TextVectorization`` with the
    ``standardize``, ``split`` and ``encoding`` of ``vectorizer`` is adapted
    on ``texts`` (so every token is in its vocabulary) and its token ids are
    read back as words. With the default split on whitespace (tokens hold
    no space), two texts normalise to the same string exactly when
    ``vectorizer`` would turn them into the same tokens (before it cuts them
    to ``output_sequence_length`` and maps rare words to out-of-vocabulary).

    Parameters
    ----------
    texts : sequence of str
        The texts.
    vectorizer : keras.layers.TextVectorization, optional
        Whose normalisation to apply; by default the one
        :func:`build_text_encoder` builds (Keras' defaults: lower-casing,
        punctuation stripping, splitting on whitespace).

    Returns
    -------
    list of str
        One normalised string per text; ``""`` for a text without tokens.

    Raises
    ------
    ValueError
        If ``texts`` is a single string or holds something that is not a
        string, or ``vectorizer`` is not a ``TextVectorization``.

    Examples
    --------
    >>> normalize_texts(["A man is playing a guitar.", "a man is  playing a guitar", "?!"])
    ['a man is playing a guitar', 'a man is playing a guitar', '']
    """
    texts = _check_texts(texts, "texts")
    if vectorizer is None:
        vectorizer = keras.layers.TextVectorization()
    if not isinstance(vectorizer, keras.layers.TextVectorization):
        raise ValueError(f"vectorizer must be a keras.layers.TextVectorization; got {type(vectorizer).__name__}.")
    if not texts:
        return []
    config = vectorizer.get_config()
    tokenizer = keras.layers.TextVectorization(
        standardize=config["standardize"], split=config["split"], encoding=config["encoding"]
    )
    # "token" joins the vocabulary only so that texts without any token still get one (Keras needs it).
    tokenizer.adapt(np.asarray([*texts, "token"], dtype=object))
    words = np.asarray(tokenizer.get_vocabulary(), dtype=object)
    # A chunk at a time to bound memory; each chunk is padded (with 0) to its own longest text.
    token_ids = [keras.ops.convert_to_numpy(tokenizer(np.asarray(texts[i : i + 8192], dtype=object)))
                 for i in range(0, len(texts), 8192)]
    return [" ".join(words[row[row > 0]]) for chunk in token_ids for row in chunk]


def overlap_mask(
    texts: Sequence[str], against: Sequence[str], vectorizer: keras.layers.TextVectorization | None = None
) -> np.ndarray:
    """Which of ``texts`` equal one of ``against`` after the vectorizer's normalisation.

    Use it to keep evaluation texts out of training data: a training text
    that differs from a test text only in case, punctuation or spacing
    gives the model the same tokens, so it is the same text to the model.

    Parameters
    ----------
    texts : sequence of str
        The texts to check, e.g. one column of training pairs.
    against : sequence of str
        The texts to keep out, e.g. every sentence of the dev and test pairs.
    vectorizer : keras.layers.TextVectorization, optional
        Whose normalisation to apply (see :func:`normalize_texts`); by
        default that of :func:`build_text_encoder`.

    Returns
    -------
    numpy.ndarray of bool, shape (len(texts),)
        True where the normalised text is a normalised text of ``against``.
        Texts with no token (empty after normalisation) never match.

    Raises
    ------
    ValueError
        As :func:`normalize_texts`.

    Examples
    --------
    >>> overlap_mask(["A dog runs.", "A cat sleeps", "..."], ["a dog  runs", "?"])
    array([ True, False, False])
    """
    texts = _check_texts(texts, "texts")
    against = _check_texts(against, "against")
    normalized = normalize_texts(texts + against, vectorizer)
    kept_out = set(normalized[len(texts):]) - {""}
    return np.array([text in kept_out for text in normalized[: len(texts)]], dtype=bool)


def _check_texts(texts: Any, label: str) -> list[str]:
    """``texts`` as a list of str; a single string or a non-string item is a ValueError."""
    if isinstance(texts, (str, bytes)):
        raise ValueError(f"{label} must be a sequence of strings, not a single string; got {texts!r}.")
    texts = list(texts)
    wrong = [text for text in texts if not isinstance(text, str)]
    if wrong:
        raise ValueError(f"{label} must hold only strings; got {type(wrong[0]).__name__} {wrong[0]!r}.")
    return texts


def _vectorize_in_chunks(
    vectorizer: keras.layers.TextVectorization, texts: Sequence[str], chunk: int = 8192
) -> np.ndarray:
    """Token ids of many texts, vectorized a chunk at a time to bound memory."""
    texts = np.asarray(list(texts), dtype=object)
    return np.concatenate(
        [keras.ops.convert_to_numpy(vectorizer(texts[i : i + chunk])) for i in range(0, max(len(texts), 1), chunk)]
    )


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
        check_int(value, label)
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}; got {pooling!r}.")
    if encoder not in TEXT_ENCODERS:
        raise ValueError(f"encoder must be one of {TEXT_ENCODERS}; got {encoder!r}.")
    if encoder == "bag":
        _check_token_weights(token_weights, texts)

    vectorizer = keras.layers.TextVectorization(
        max_tokens=vocabulary_size, output_sequence_length=sequence_length, name=f"{name}_vectorizer"
    )
    if texts is not None:
        vectorizer.adapt(texts)

    token_ids = keras.Input(shape=(sequence_length,), dtype="int32", name="token_ids")
    if encoder == "bag":
        weights = _bag_token_weights(token_weights, vectorizer, texts, vocabulary_size)
        x = WeightedBagOfWords(
            vocabulary_size, embedding_dim, token_weights=weights, sublinear_tf=sublinear_tf, name="bag_of_words"
        )(token_ids)
    else:
        sequence_encoder = _conv1d_features if encoder == "cnn" else _transformer_features
        x = _pooled_sequence_encoder(token_ids, sequence_encoder, vocabulary_size, embedding_dim, pooling)
    if l2_normalize:
        x = L2Normalize(name="l2_normalize")(x)
    return vectorizer, keras.Model(token_ids, x, name=name)


def _check_token_weights(token_weights: Any, texts: Sequence[str] | None) -> None:
    if not isinstance(token_weights, str):
        return
    if token_weights not in ("idf", "uniform"):
        raise ValueError(f'token_weights must be "idf", "uniform" or an array; got {token_weights!r}.')
    if token_weights == "idf" and texts is None:
        raise ValueError(
            'encoder="bag" with token_weights="idf" needs texts to count document frequencies; '
            'pass texts, your own token_weights array, or token_weights="uniform".'
        )


def _bag_token_weights(
    token_weights: Any,
    vectorizer: keras.layers.TextVectorization,
    texts: Sequence[str] | None,
    vocabulary_size: int,
) -> Any:
    """The fixed token weights of the bag encoder: IDF of ``texts``, ``None`` (uniform) or the given array."""
    if not isinstance(token_weights, str):
        return token_weights
    if token_weights == "uniform":
        return None
    return idf_weights(_vectorize_in_chunks(vectorizer, texts), vocabulary_size)


def _conv1d_features(x: Tensor, not_padding: Tensor, embedding_dim: int) -> Tensor:
    """One Conv1D (kernel 5, ReLU) over the token embeddings."""
    return keras.layers.Conv1D(embedding_dim, 5, padding="same", activation="relu")(x)


def _transformer_features(x: Tensor, not_padding: Tensor, embedding_dim: int) -> Tensor:
    """Position embedding, then one transformer block whose attention ignores padding."""
    x = PositionEmbedding(name="position_embedding")(x)
    attention = keras.layers.MultiHeadAttention(_ATTENTION_HEADS, key_dim=embedding_dim)(
        x, x, attention_mask=ops.expand_dims(not_padding, axis=1)
    )
    x = keras.layers.LayerNormalization()(keras.layers.Add()([x, attention]))
    feed_forward = keras.layers.Dense(2 * embedding_dim, activation="relu")(x)
    feed_forward = keras.layers.Dense(embedding_dim)(feed_forward)
    return keras.layers.LayerNormalization()(keras.layers.Add()([x, feed_forward]))


def _pooled_sequence_encoder(
    token_ids: Tensor, features: Any, vocabulary_size: int, embedding_dim: int, pooling: str
) -> Tensor:
    """Token embeddings, ``features`` of the sequence, masked pooling and a Dense projection."""
    not_padding = ops.not_equal(token_ids, 0)
    x = keras.layers.Embedding(vocabulary_size, embedding_dim, name="token_embedding")(token_ids)
    x = features(x, not_padding, embedding_dim)
    x = MaskedGlobalPooling1D(pooling, name="pooling")(x, mask=not_padding)
    return keras.layers.Dense(embedding_dim, name="projection")(x)
