"""Tests of dmlkeras.text: text layers, IDF weights and the three text encoders."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from dmlkeras.losses import ContrastiveLoss
from dmlkeras.models import build_siamese_model, get_embedding_model
from dmlkeras import text
from dmlkeras.models.layers import L2Normalize
from dmlkeras.text import MaskedGlobalPooling1D, WeightedBagOfWords, build_text_encoder, idf_weights
from tests.backend_utils import to_numpy, value_and_grad

TEXTS = ["a small cat sat", "the big dog ran", "a cat and a dog", "dogs bark", "", "cats sleep all day"]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def predict(model: keras.Model, x) -> np.ndarray:
    return model.predict(x, verbose=0)


def norms(embeddings: np.ndarray) -> np.ndarray:
    return np.linalg.norm(embeddings, axis=-1)


def reload(model: keras.Model, tmp_path) -> keras.Model:
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    return keras.saving.load_model(path)


def test_models_still_exports_the_text_names():
    from dmlkeras import models, text

    for name in ("build_text_encoder", "WeightedBagOfWords", "idf_weights", "MaskedGlobalPooling1D", "PositionEmbedding"):
        assert getattr(models, name) is getattr(text, name)
        assert name in dir(models) and name in models.__all__
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        models.nothing  # noqa: B018


# Text encoder


@pytest.mark.parametrize("encoder, pooling", [("cnn", "mean"), ("transformer", "max"), ("bag", "mean")])
def test_text_encoder_embeds_strings(encoder, pooling):
    vectorizer, model = build_text_encoder(
        vocabulary_size=50, sequence_length=8, embedding_dim=8, encoder=encoder, pooling=pooling, texts=TEXTS
    )
    token_ids = vectorizer(np.array(TEXTS))
    np.testing.assert_array_equal(to_numpy(vectorizer(np.array(TEXTS)[:, None])), to_numpy(token_ids))
    assert tuple(token_ids.shape) == (len(TEXTS), 8)
    embeddings = predict(model, token_ids)
    assert embeddings.shape == (len(TEXTS), 8)
    assert np.all(np.isfinite(embeddings))
    non_empty = [i for i, text in enumerate(TEXTS) if text]
    np.testing.assert_allclose(norms(embeddings[non_empty]), 1.0, atol=1e-5)


def test_transformer_encoder_ignores_padding():
    vectorizer, model = build_text_encoder(
        vocabulary_size=50, sequence_length=8, embedding_dim=8, encoder="transformer", texts=TEXTS
    )
    token_ids = vectorizer(np.array(TEXTS))
    before = predict(model, token_ids)
    table = model.get_layer("token_embedding").embeddings
    table.assign(keras.ops.scatter_update(table, [[0]], 100.0 * keras.ops.ones((1, 8))))
    np.testing.assert_allclose(predict(model, token_ids), before, atol=1e-5)


def test_text_encoder_adapts_later_and_skips_normalisation():
    vectorizer, model = build_text_encoder(vocabulary_size=30, sequence_length=6, embedding_dim=4, l2_normalize=False)
    assert not any(isinstance(layer, L2Normalize) for layer in model.layers)
    vectorizer.adapt(TEXTS)
    assert predict(model, vectorizer(np.array(TEXTS))).shape == (len(TEXTS), 4)


@pytest.mark.parametrize("encoder", ["cnn", "transformer", "bag"])
def test_text_encoder_trains_and_reloads_as_a_siamese_tower(encoder, tmp_path):
    vectorizer, tower = build_text_encoder(
        vocabulary_size=50, sequence_length=8, embedding_dim=8, encoder=encoder, texts=TEXTS
    )
    siamese = build_siamese_model(tower)
    siamese.compile(optimizer="adam", loss=ContrastiveLoss())
    left, right = vectorizer(np.array(TEXTS)), vectorizer(np.array(TEXTS[::-1]))
    same = np.array([1, 0, 1, 0, 1, 0], "float32")
    before = siamese.evaluate([left, right], same, verbose=0)
    siamese.fit([left, right], same, epochs=10, verbose=0)
    assert siamese.evaluate([left, right], same, verbose=0) < before
    reloaded = reload(siamese, tmp_path)
    np.testing.assert_allclose(predict(reloaded, [left, right]), predict(siamese, [left, right]), atol=1e-5)
    assert get_embedding_model(reloaded).name == tower.name


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="TextVectorization runs inside a model on TensorFlow only"
)
def test_string_tower_on_tensorflow_reloads_with_its_vocabulary(tmp_path):
    vectorizer, encoder = build_text_encoder(vocabulary_size=50, sequence_length=8, embedding_dim=8, texts=TEXTS)
    text_model = keras.Sequential([keras.Input(shape=(), dtype="string"), vectorizer, encoder])
    siamese = build_siamese_model(text_model)
    left, right = np.array(TEXTS, dtype=object), np.array(TEXTS[::-1], dtype=object)
    distances = siamese.predict([left, right], verbose=0)
    assert distances.shape == (len(TEXTS),)
    reloaded = reload(siamese, tmp_path)
    np.testing.assert_allclose(reloaded.predict([left, right], verbose=0), distances, atol=1e-5)
    assert get_embedding_model(reloaded).layers[0].get_vocabulary() == vectorizer.get_vocabulary()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"pooling": "sum"}, "pooling must be one of"),
        ({"encoder": "lstm"}, "encoder must be one of"),
        ({"vocabulary_size": 0}, "vocabulary_size must be an integer >= 1"),
        ({"sequence_length": 2.5}, "sequence_length must be an integer >= 1"),
        ({"encoder": "bag"}, "needs texts to count document frequencies"),
        ({"encoder": "bag", "token_weights": "bm25", "texts": TEXTS}, "token_weights must be"),
        ({"encoder": "bag", "vocabulary_size": 50, "token_weights": np.ones(49), "texts": TEXTS}, r"shape \(vocabulary_size,\)"),
    ],
)
def test_build_text_encoder_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_text_encoder(**kwargs)


def numpy_bag_of_words(token_ids: np.ndarray, table: np.ndarray, weights: np.ndarray, sublinear_tf: bool) -> np.ndarray:
    """sum over distinct non-padding tokens t of tf(t) * weights[t] * table[t], one text at a time."""
    out = np.zeros((len(token_ids), table.shape[1]))
    for i, row in enumerate(token_ids):
        tokens, counts = np.unique(row[row != 0], return_counts=True)
        tf = 1 + np.log(counts) if sublinear_tf else counts
        out[i] = ((tf * weights[tokens])[:, None] * table[tokens]).sum(axis=0)
    return out


@pytest.mark.parametrize("sublinear_tf", [False, True])
def test_weighted_bag_of_words_matches_numpy(rng, sublinear_tf):
    token_ids = np.array([[3, 5, 3, 3, 0, 0], [1, 2, 2, 4, 6, 7], [0, 0, 0, 0, 0, 0], [7, 7, 7, 7, 7, 7]])
    weights = rng.random(8).astype("float32")
    layer = WeightedBagOfWords(8, 5, token_weights=weights, sublinear_tf=sublinear_tf)
    out = to_numpy(layer(token_ids))
    table = to_numpy(layer.embeddings)
    np.testing.assert_allclose(out, numpy_bag_of_words(token_ids, table, weights, sublinear_tf), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[2], 0.0)  # an all-padding text
    np.testing.assert_array_equal(to_numpy(layer.token_weights), weights)
    assert [w.name for w in layer.trainable_weights] == ["embeddings"]


def test_weighted_bag_of_words_ignores_padding_and_defaults_to_a_scaled_random_projection():
    keras.utils.set_random_seed(0)
    layer = WeightedBagOfWords(300, 256)
    token_ids = np.array([[4, 9, 0, 0], [4, 9, 0, 0]])
    before = to_numpy(layer(token_ids))
    layer.embeddings.assign(keras.ops.scatter_update(layer.embeddings, [[0]], 100.0 * keras.ops.ones((1, 256))))
    layer.token_weights.assign(keras.ops.scatter_update(layer.token_weights, [[0]], [7.0]))
    np.testing.assert_allclose(to_numpy(layer(token_ids)), before, atol=1e-6)
    np.testing.assert_allclose(to_numpy(layer.token_weights)[1:], 1.0)  # default weights: all ones
    assert abs(to_numpy(layer.embeddings)[1:].std() - 256**-0.5) < 0.002


def test_idf_weights_follow_the_smoothed_formula():
    documents = np.array([[2, 3, 3, 0], [2, 4, 0, 0], [1, 2, 5, 5]])
    n = 3
    document_frequency = np.array([0, 1, 3, 1, 1, 1, 0])  # padding's own count is irrelevant: weight 0
    expected = np.log((1 + n) / (1 + document_frequency)) + 1
    expected[0] = 0
    np.testing.assert_allclose(idf_weights(documents, 7), expected, rtol=1e-6)


def test_idf_weights_equal_scikit_learn_on_the_vectorizer_tokens():
    text = pytest.importorskip("sklearn.feature_extraction.text")
    vectorizer, _ = build_text_encoder(vocabulary_size=50, sequence_length=8, embedding_dim=4, texts=TEXTS)
    weights = idf_weights(vectorizer(np.array(TEXTS)), 50)
    vocabulary = vectorizer.get_vocabulary()
    reference = text.TfidfVectorizer(vocabulary=vocabulary[2:], token_pattern=r"\S+").fit(TEXTS)
    np.testing.assert_allclose(weights[2 : len(vocabulary)], reference.idf_, rtol=1e-5)


@pytest.mark.parametrize(
    "args, message",
    [
        ((np.zeros((0, 3), "int32"), 5), "non-empty integer array"),
        ((np.zeros(3, "int32"), 5), r"shape \(n, steps\)"),
        ((np.array([[0.5, 1.0]]), 5), "integer array"),
        ((np.array([[1, 5]]), 5), r"lie in \[0, vocabulary_size\)"),
        ((np.array([[1, 2]]), 0), "vocabulary_size must be an integer >= 1"),
    ],
)
def test_idf_weights_rejects_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        idf_weights(*args)


def test_weighted_bag_of_words_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"shape \(vocabulary_size,\) = \(4,\)"):
        WeightedBagOfWords(4, 2, token_weights=np.ones(3))
    with pytest.raises(ValueError, match="must be finite"):
        WeightedBagOfWords(4, 2, token_weights=[1.0, np.nan, 1.0, 1.0])
    with pytest.raises(ValueError, match="output_dim must be an integer >= 1"):
        WeightedBagOfWords(4, 0)
    with pytest.raises(ValueError, match=r"token ids of shape \(n, steps\)"):
        WeightedBagOfWords(4, 2)(np.zeros((2, 3, 1), "int32"))


def test_untrained_bag_encoder_cosine_approximates_tfidf_cosine():
    keras.utils.set_random_seed(0)
    vectorizer, encoder = build_text_encoder(
        vocabulary_size=50, sequence_length=8, embedding_dim=4096, encoder="bag", texts=TEXTS
    )
    token_ids = to_numpy(vectorizer(np.array(TEXTS)))
    weights = to_numpy(encoder.get_layer("bag_of_words").token_weights)
    np.testing.assert_allclose(weights, idf_weights(token_ids, 50))
    tfidf = numpy_bag_of_words(token_ids, np.eye(50), weights, sublinear_tf=True)
    tfidf /= np.maximum(norms(tfidf)[:, None], 1e-12)
    embeddings = predict(encoder, token_ids)
    np.testing.assert_allclose(embeddings @ embeddings.T, tfidf @ tfidf.T, atol=0.06)


def test_bag_encoder_with_uniform_or_given_weights_reloads_them(tmp_path):
    _, uniform = build_text_encoder(
        vocabulary_size=50, sequence_length=8, embedding_dim=8, encoder="bag", token_weights="uniform"
    )
    np.testing.assert_array_equal(to_numpy(uniform.get_layer("bag_of_words").token_weights), 1.0)
    weights = np.linspace(0.0, 2.0, 50, dtype="float32")
    _, given = build_text_encoder(
        vocabulary_size=50, sequence_length=8, embedding_dim=8, encoder="bag", token_weights=weights,
        sublinear_tf=False, l2_normalize=False,
    )
    reloaded = reload(given, tmp_path)
    layer = reloaded.get_layer("bag_of_words")
    np.testing.assert_array_equal(to_numpy(layer.token_weights), weights)
    assert layer.sublinear_tf is False
    token_ids = np.array([[3, 3, 9, 0, 0, 0, 0, 0]])
    np.testing.assert_allclose(predict(reloaded, token_ids), predict(given, token_ids), atol=1e-6)


# Layers


def test_masked_pooling_of_an_empty_sequence_is_zero_with_finite_gradients():
    steps = np.arange(12, dtype="float32").reshape(2, 3, 2)
    mask = np.array([[True, False, True], [False, False, False]])
    for pooling, first in [("mean", [2.0, 3.0]), ("max", [4.0, 5.0])]:
        pooled = to_numpy(MaskedGlobalPooling1D(pooling)(steps, mask=mask))
        np.testing.assert_allclose(pooled, [first, [0.0, 0.0]])
        _, grad = value_and_grad(lambda x: keras.ops.sum(MaskedGlobalPooling1D(pooling)(x, mask=mask)), steps)
        assert np.all(np.isfinite(grad))
        np.testing.assert_allclose(grad[1], 0.0)
    with pytest.raises(ValueError, match="pooling must be one of"):
        MaskedGlobalPooling1D("sum")


# Normalisation like the vectorizer, and overlap


def test_normalize_texts_gives_the_tokens_the_vectorizer_sees():
    texts = ["A man is playing a Guitar.", "a man, is playing  a guitar!", "It's 9,415.82 (#39;)", "   ", "?!"]
    vectorizer, _ = build_text_encoder(vocabulary_size=100, sequence_length=12, embedding_dim=4, texts=texts)
    vocabulary = np.array(vectorizer.get_vocabulary())
    ids = to_numpy(vectorizer(np.array(texts)))
    seen = [" ".join(vocabulary[row[row > 0]]) for row in ids]
    assert text.normalize_texts(texts, vectorizer) == seen == text.normalize_texts(texts)
    assert seen[:3] == ["a man is playing a guitar", "a man is playing a guitar", "its 941582 39"]
    assert seen[3:] == ["", ""]


def test_normalize_texts_follows_the_vectorizer_settings():
    lower_only = keras.layers.TextVectorization(standardize="lower")
    assert text.normalize_texts(["A Dog, RUNS."], lower_only) == ["a dog, runs."]
    assert text.normalize_texts(["A Dog, RUNS."], keras.layers.TextVectorization(standardize=None)) == ["A Dog, RUNS."]
    assert text.normalize_texts([]) == []


def test_overlap_mask_finds_texts_equal_after_normalisation():
    held_out = ["A girl is playing the guitar.", "Stocks fall", "..."]
    texts = ["a girl is playing the guitar", "A GIRL IS PLAYING THE GUITAR!!", "A girl is playing guitar.",
             "stocks  fall", "stocks fall today", "", "!"]
    np.testing.assert_array_equal(
        text.overlap_mask(texts, held_out), [True, True, False, True, False, False, False]
    )
    lower_only = keras.layers.TextVectorization(standardize="lower")
    np.testing.assert_array_equal(text.overlap_mask(texts[:2], held_out, lower_only), [False, False])
    assert text.overlap_mask([], held_out).shape == (0,)


@pytest.mark.parametrize(
    "args, message",
    [
        (("a dog",), "not a single string"),
        ((["a dog", 3],), "only strings"),
        ((["a dog"], "layer"), "TextVectorization"),
    ],
)
def test_normalize_texts_rejects_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        text.normalize_texts(*args)


def test_overlap_mask_rejects_bad_arguments():
    with pytest.raises(ValueError, match="against must hold only strings"):
        text.overlap_mask(["a dog"], [None])
