"""Tests of dmlkeras.models: towers, tuple models, saving, text encoders."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from dmlkeras.distances import paired_distances
from dmlkeras.losses import ContrastiveLoss, TripletMarginLoss
from dmlkeras.models import (
    L2Normalize,
    MaskedGlobalPooling1D,
    PairDistance,
    WeightedBagOfWords,
    build_embedding_model,
    build_quadruplet_model,
    build_siamese_model,
    build_text_encoder,
    build_triplet_model,
    get_embedding_model,
    idf_weights,
)
from tests.backend_utils import to_numpy, value_and_grad

TEXTS = ["a small cat sat", "the big dog ran", "a cat and a dog", "dogs bark", "", "cats sleep all day"]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def mlp_tower(embedding_dim: int = 4, **kwargs) -> keras.Model:
    return build_embedding_model((6,), embedding_dim=embedding_dim, backbone="mlp", **kwargs)


def predict(model: keras.Model, x) -> np.ndarray:
    return model.predict(x, verbose=0)


def norms(embeddings: np.ndarray) -> np.ndarray:
    return np.linalg.norm(embeddings, axis=-1)


def reload(model: keras.Model, tmp_path) -> keras.Model:
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    return keras.saving.load_model(path)


# Embedding towers


@pytest.mark.parametrize("input_shape", [(16, 16), (16, 16, 1), (16, 16, 3)])
def test_cnn_tower_outputs_unit_embeddings(input_shape, rng):
    model = build_embedding_model(input_shape, embedding_dim=8)
    embeddings = predict(model, rng.random((5, *input_shape), dtype="float32"))
    assert model.output_shape == (None, 8)
    assert embeddings.shape == (5, 8)
    np.testing.assert_allclose(norms(embeddings), 1.0, atol=1e-5)


def test_mlp_tower_flattens_and_can_skip_normalisation(rng):
    model = build_embedding_model((3, 4), embedding_dim=5, backbone="mlp", l2_normalize=False)
    embeddings = predict(model, rng.random((7, 3, 4), dtype="float32"))
    assert embeddings.shape == (7, 5)
    assert not any(isinstance(layer, L2Normalize) for layer in model.layers)
    assert not np.allclose(norms(embeddings), 1.0)


@pytest.mark.parametrize(
    "trunk",
    [
        keras.Sequential([keras.Input((12, 12, 3)), keras.layers.Conv2D(4, 3)], name="conv_trunk"),
        keras.Sequential([keras.Input((12, 12, 3)), keras.layers.Flatten(), keras.layers.Dense(9)], name="flat_trunk"),
    ],
    ids=["feature-map", "vector"],
)
def test_keras_model_backbone_is_the_trunk(trunk, rng):
    model = build_embedding_model((12, 12, 3), embedding_dim=6, backbone=trunk)
    embeddings = predict(model, rng.random((3, 12, 12, 3), dtype="float32"))
    assert embeddings.shape == (3, 6)
    np.testing.assert_allclose(norms(embeddings), 1.0, atol=1e-5)
    assert any(layer is trunk for layer in model.layers)
    trunk_weights = {id(w) for w in trunk.trainable_weights}
    assert trunk_weights <= {id(w) for w in model.trainable_weights}


def test_augmentation_and_dropout_only_act_in_training(rng):
    flip = keras.layers.RandomFlip("horizontal", seed=1)
    model = build_embedding_model((16, 16), embedding_dim=8, augmentation=[flip], dropout=0.5)
    x = rng.random((8, 16, 16), dtype="float32")
    assert model.get_layer("augmentation").layers == [flip]
    np.testing.assert_allclose(predict(model, x), predict(model, x))
    assert not np.allclose(to_numpy(model(x, training=True)), predict(model, x))


def test_augmentation_layer_is_used_as_is():
    augmentation = keras.Sequential([keras.layers.RandomTranslation(0.1, 0.1)], name="my_augmentation")
    model = build_embedding_model((16, 16, 3), embedding_dim=8, augmentation=augmentation)
    assert model.get_layer("my_augmentation") is augmentation


def test_batchnorm_momentum_sets_the_speed_of_the_moving_averages(rng):
    x = rng.random((8, 16, 16), dtype="float32")
    moved = {}
    for momentum in (0.99, 0.5):
        keras.utils.set_random_seed(0)
        model = build_embedding_model((16, 16), embedding_dim=4, batchnorm_momentum=momentum)
        batchnorm = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
        assert [layer.momentum for layer in batchnorm] == [momentum] * 3
        model(x, training=True)  # one update: moving_mean = (1 - momentum) * batch mean
        moved[momentum] = to_numpy(batchnorm[0].moving_mean)
    assert np.abs(moved[0.5]).max() > 0
    np.testing.assert_allclose(moved[0.5], moved[0.99] * 0.5 / 0.01, rtol=1e-3, atol=1e-7)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"input_shape": (16, 16), "backbone": "resnet"}, "backbone must be one of"),
        ({"input_shape": (16,), "backbone": "cnn"}, r"\(height, width\)"),
        ({"input_shape": (4, 4, 1), "backbone": "cnn"}, "at least 8x8"),
        ({"input_shape": (16, 0)}, "positive integers"),
        ({"input_shape": (6,), "backbone": "mlp", "embedding_dim": 0}, "embedding_dim must be a positive integer"),
        ({"input_shape": (6,), "backbone": "mlp", "dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"input_shape": (6,), "backbone": "mlp", "augmentation": "flip"}, "augmentation must be a Keras layer"),
        ({"input_shape": (16, 16), "batchnorm_momentum": 1.0}, r"batchnorm_momentum must be in \[0, 1\)"),
    ],
)
def test_build_embedding_model_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_embedding_model(**kwargs)


# Siamese, triplet and quadruplet models


def test_siamese_outputs_pair_distances_of_the_tower(rng):
    tower = mlp_tower()
    siamese = build_siamese_model(tower, metric="cosine")
    x1, x2 = rng.random((5, 6), dtype="float32"), rng.random((5, 6), dtype="float32")
    distances = predict(siamese, [x1, x2])
    assert siamese.output_shape == (None,)
    expected = to_numpy(paired_distances(predict(tower, x1), predict(tower, x2), metric="cosine"))
    np.testing.assert_allclose(distances, expected, atol=1e-5)
    np.testing.assert_allclose(predict(siamese, [x1, x1]), 0.0, atol=1e-5)


def test_siamese_branches_share_one_set_of_weights(rng):
    tower = mlp_tower()
    siamese = build_siamese_model(tower)
    assert len(siamese.trainable_weights) == len(tower.trainable_weights)
    assert all(a is b for a, b in zip(siamese.trainable_weights, tower.trainable_weights))

    before = [to_numpy(w) for w in tower.trainable_weights]
    siamese.compile(optimizer=keras.optimizers.SGD(0.5), loss=ContrastiveLoss())
    x1, x2 = rng.random((8, 6), dtype="float32"), rng.random((8, 6), dtype="float32")
    siamese.train_on_batch([x1, x2], np.array([1, 0] * 4, "float32"))

    assert any(not np.allclose(b, to_numpy(w)) for b, w in zip(before, tower.trainable_weights))
    # Both branches moved together: the Siamese output is still the distance
    # between the updated tower's embeddings, and a pair of equals is still 0.
    expected = to_numpy(paired_distances(predict(tower, x1), predict(tower, x2)))
    np.testing.assert_allclose(predict(siamese, [x1, x2]), expected, atol=1e-5)
    np.testing.assert_allclose(predict(siamese, [x1, x1]), 0.0, atol=1e-5)


@pytest.mark.parametrize("builder, size", [(build_triplet_model, 3), (build_quadruplet_model, 4)])
def test_tuple_models_stack_the_tower_embeddings(builder, size, rng):
    tower = mlp_tower()
    model = builder(tower)
    inputs = [rng.random((5, 6), dtype="float32") for _ in range(size)]
    stacked = predict(model, inputs)
    assert model.output_shape == (None, size, 4)
    for i, x in enumerate(inputs):
        np.testing.assert_allclose(stacked[:, i], predict(tower, x), atol=1e-6)
    assert len(model.trainable_weights) == len(tower.trainable_weights)


def test_siamese_fits_with_contrastive_loss(rng):
    siamese = build_siamese_model(mlp_tower(embedding_dim=8))
    siamese.compile(optimizer="adam", loss=ContrastiveLoss(margin=1.0))
    x1, x2 = rng.random((32, 6), dtype="float32"), rng.random((32, 6), dtype="float32")
    history = siamese.fit([x1, x2], rng.integers(0, 2, 32).astype("float32"), batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_triplet_model_fits_with_triplet_margin_loss(rng):
    triplet = build_triplet_model(mlp_tower(embedding_dim=8, dropout=0.1))
    triplet.compile(optimizer="adam", loss=TripletMarginLoss(margin=0.2))
    inputs = [rng.random((32, 6), dtype="float32") for _ in range(3)]
    history = triplet.fit(inputs, np.zeros(32, "float32"), batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_tuple_builders_reject_bad_towers():
    first, second = keras.Input((2,)), keras.Input((2,))
    two_inputs = keras.Model([first, second], keras.layers.Concatenate()([first, second]))
    sequence = keras.Input((3, 2))
    sequence_output = keras.Model(sequence, keras.layers.Dense(4)(sequence))
    with pytest.raises(ValueError, match="must be a keras.Model"):
        build_siamese_model(keras.layers.Dense(3))
    with pytest.raises(ValueError, match="one input and one output"):
        build_triplet_model(two_inputs)
    with pytest.raises(ValueError, match=r"shape \(n, d\)"):
        build_quadruplet_model(sequence_output)
    with pytest.raises(ValueError, match="Unknown metric"):
        build_siamese_model(mlp_tower(), metric="hamming")


def test_pair_distance_rejects_other_than_two_inputs():
    with pytest.raises(ValueError, match="list of 2 embedding tensors"):
        PairDistance()([np.zeros((2, 3))] * 3)


# get_embedding_model


@pytest.mark.parametrize("builder", [build_siamese_model, build_triplet_model, build_quadruplet_model])
def test_get_embedding_model_finds_the_shared_tower(builder):
    tower = mlp_tower()
    assert get_embedding_model(builder(tower)) is tower
    assert get_embedding_model(tower) is tower


def test_get_embedding_model_rejects_models_without_one_tower():
    first, second = keras.Input((2,)), keras.Input((2,))
    no_tower = keras.Model([first, second], keras.layers.Concatenate()([first, second]), name="no_tower")
    with pytest.raises(ValueError, match=r"found 0 \(none\)"):
        get_embedding_model(no_tower)
    a, b = mlp_tower(name="tower_a"), mlp_tower(name="tower_b")
    left, right = keras.Input((6,)), keras.Input((6,))
    two_towers = keras.Model([left, right], PairDistance()([a(left), b(right)]))
    with pytest.raises(ValueError, match="found 2"):
        get_embedding_model(two_towers)
    with pytest.raises(ValueError, match="must be a keras.Model"):
        get_embedding_model("siamese")


# Saving


def _cnn_tower():
    return build_embedding_model((16, 16), embedding_dim=8, augmentation=[keras.layers.RandomFlip()], dropout=0.2)


def _trunk_tower():
    trunk = keras.Sequential([keras.Input((12, 12, 3)), keras.layers.Conv2D(4, 3)], name="trunk")
    return build_embedding_model((12, 12, 3), embedding_dim=6, backbone=trunk)


@pytest.mark.parametrize(
    "make_tower, input_shape",
    [(_cnn_tower, (16, 16)), (_trunk_tower, (12, 12, 3)), (lambda: mlp_tower(l2_normalize=False), (6,))],
    ids=["cnn", "keras-model-backbone", "mlp"],
)
def test_embedding_model_reloads_without_custom_objects(make_tower, input_shape, tmp_path, rng):
    tower = make_tower()
    x = rng.random((4, *input_shape), dtype="float32")
    reloaded = reload(tower, tmp_path)
    np.testing.assert_allclose(predict(reloaded, x), predict(tower, x), atol=1e-6)
    assert get_embedding_model(reloaded) is reloaded


@pytest.mark.parametrize(
    "builder, size",
    [(build_siamese_model, 2), (build_triplet_model, 3), (build_quadruplet_model, 4)],
)
def test_tuple_models_reload_with_their_tower(builder, size, tmp_path, rng):
    tower = mlp_tower()
    model = builder(tower)
    inputs = [rng.random((4, 6), dtype="float32") for _ in range(size)]
    reloaded = reload(model, tmp_path)
    np.testing.assert_allclose(predict(reloaded, inputs), predict(model, inputs), atol=1e-6)
    reloaded_tower = get_embedding_model(reloaded)
    np.testing.assert_allclose(predict(reloaded_tower, inputs[0]), predict(tower, inputs[0]), atol=1e-6)
    assert len(reloaded.trainable_weights) == len(reloaded_tower.trainable_weights)


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
    loss = siamese.train_on_batch([left, right], np.array([1, 0, 1, 0, 1, 0], "float32"))
    assert np.isfinite(loss)
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
        ({"vocabulary_size": 0}, "vocabulary_size must be a positive integer"),
        ({"sequence_length": 2.5}, "sequence_length must be a positive integer"),
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
        ((np.array([[1, 2]]), 0), "vocabulary_size must be a positive integer"),
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
    with pytest.raises(ValueError, match="output_dim must be a positive integer"):
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
