"""Tests of dmlkeras.models: towers, tuple models, saving, text encoders."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from dmlkeras.distances import paired_distances
from dmlkeras.heads import ArcFace, ProxyAnchorLoss
from dmlkeras.losses import ContrastiveLoss, TripletMarginLoss
from dmlkeras.models import (
    L2Normalize,
    PairDistance,
    build_embedding_model,
    build_head_model,
    build_quadruplet_model,
    build_siamese_model,
    build_triplet_model,
    get_embedding_model,
)
from tests.backend_utils import to_numpy, value_and_grad


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def mlp_tower(embedding_dim: int = 4, **kwargs) -> keras.Model:
    return build_embedding_model((6,), embedding_dim=embedding_dim, backbone="mlp", **kwargs)


def predict(model: keras.Model, x) -> np.ndarray:
    return model.predict(x, verbose=0)


def norms(embeddings: np.ndarray) -> np.ndarray:
    return np.linalg.norm(embeddings, axis=-1)


def assert_fit_lowers_the_loss(model: keras.Model, x, y, epochs: int = 10) -> None:
    """A few epochs on a fixed small set must lower its loss (evaluated in inference mode)."""
    before = model.evaluate(x, y, batch_size=16, verbose=0)
    model.fit(x, y, batch_size=16, epochs=epochs, verbose=0)
    after = model.evaluate(x, y, batch_size=16, verbose=0)
    assert np.isfinite(after) and after < before, (before, after)


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
        ({"input_shape": (6,), "backbone": "mlp", "embedding_dim": 0}, "embedding_dim must be an integer >= 1"),
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
    same = rng.integers(0, 2, 32).astype("float32")
    assert_fit_lowers_the_loss(siamese, [x1, x2], same)


def test_triplet_model_fits_with_triplet_margin_loss(rng):
    triplet = build_triplet_model(mlp_tower(embedding_dim=8, dropout=0.1))
    triplet.compile(optimizer="adam", loss=TripletMarginLoss(margin=0.2))
    inputs = [rng.random((32, 6), dtype="float32") for _ in range(3)]
    assert_fit_lowers_the_loss(triplet, inputs, np.zeros(32, "float32"))


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


# Head models


@pytest.mark.parametrize("head_class", [ProxyAnchorLoss, ArcFace])
def test_head_model_trains_the_tower_through_the_head(head_class, rng):
    keras.utils.set_random_seed(0)
    tower = mlp_tower(embedding_dim=8)
    head = head_class(num_classes=3, name="head")
    model = build_head_model(tower, head)
    assert [tuple(x.shape) for x in model.inputs] == [(None, 6), (None,)]
    assert [x.name for x in model.inputs] == ["inputs", "label"]
    x = rng.normal(size=(48, 6)).astype("float32")
    y = (np.arange(48) % 3).astype("int32")
    x += 2.0 * np.eye(6, dtype="float32")[y]  # separable classes
    np.testing.assert_allclose(predict(model, [x, y]), predict(tower, x), atol=1e-6)  # embeddings pass through
    model.compile(optimizer=keras.optimizers.Adam(1e-2))  # no loss: the head adds it
    before = model.evaluate([x, y], batch_size=16, verbose=0)
    model.fit([x, y], batch_size=16, epochs=10, verbose=0)
    after = model.evaluate([x, y], batch_size=16, verbose=0)
    assert after < before, (before, after)
    assert get_embedding_model(model) is tower
    assert {w.path for w in head.trainable_weights} <= {w.path for w in model.trainable_weights}


def test_head_model_reloads_and_rejects_bad_arguments(tmp_path, rng):
    model = build_head_model(mlp_tower(), ProxyAnchorLoss(num_classes=2), input_name="x", label_name="y", name="pa")
    x, y = rng.random((4, 6), dtype="float32"), np.array([0, 1, 0, 1], "int32")
    reloaded = reload(model, tmp_path)
    np.testing.assert_allclose(predict(reloaded, {"x": x, "y": y}), predict(model, [x, y]), atol=1e-6)
    with pytest.raises(ValueError, match="head must be a Keras layer"):
        build_head_model(mlp_tower(), ProxyAnchorLoss)
    with pytest.raises(ValueError, match="must be a keras.Model"):
        build_head_model("tower", ProxyAnchorLoss(num_classes=2))


# Layers


def test_l2_normalize_is_keras_unit_normalization_safe_at_zero():
    layer = L2Normalize(name="l2")
    assert isinstance(layer, keras.layers.UnitNormalization)
    assert keras.saving.get_registered_name(L2Normalize) == "dmlkeras>L2Normalize"
    x = np.array([[3.0, 4.0], [0.0, 0.0]], "float32")
    np.testing.assert_allclose(to_numpy(layer(x)), [[0.6, 0.8], [0.0, 0.0]], atol=1e-7)
    np.testing.assert_allclose(
        to_numpy(layer(x[:1])), to_numpy(keras.layers.UnitNormalization()(x[:1])), atol=1e-7
    )
    _, grad = value_and_grad(lambda v: keras.ops.sum(L2Normalize()(v)), x)
    assert np.all(np.isfinite(grad))
    assert L2Normalize.from_config(layer.get_config()).axis == -1
