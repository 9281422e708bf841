"""models.build_face_tower: the LFW notebooks' face CNN."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import dmlkeras
from dmlkeras import heads
from dmlkeras.models import build_face_tower, build_head_model


@pytest.fixture
def faces() -> np.ndarray:
    return np.random.default_rng(0).random((6, 37, 28, 1), dtype=np.float32)


def test_face_tower_shapes_norms_and_layers(faces: np.ndarray) -> None:
    tower = build_face_tower((37, 28, 1), embedding_dim=24)
    assert dmlkeras.build_face_tower is build_face_tower
    emb = tower.predict(faces, verbose=0)
    assert emb.shape == (6, 24)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    trunk = tower.get_layer("trunk")
    assert len(trunk.output.shape) == 2 and trunk.output.shape[1] == 2 * 1 * 128  # flattened 37x28 / 16
    convs = [layer for layer in trunk.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [32, 32, 32, 64, 64, 128, 128]
    fast = build_face_tower((37, 28, 1), batchnorm_momentum=0.9).get_layer("trunk")
    momenta = [layer.momentum for layer in fast.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert momenta == [0.9] * 7
    raw = build_face_tower((37, 28, 1), embedding_dim=24, l2_normalize=False).predict(faces, verbose=0)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0, atol=1e-3)


def test_augmentation_acts_only_in_training(faces: np.ndarray) -> None:
    keras.utils.set_random_seed(1)
    tower = build_face_tower((37, 28, 1), embedding_dim=8, dropout=0.0)
    plain = build_face_tower((37, 28, 1), embedding_dim=8, dropout=0.0, augment=False)
    assert tower.get_layer("augmentation") is not None
    assert all(layer.name != "augmentation" for layer in plain.layers)
    first, second = (keras.ops.convert_to_numpy(tower(faces, training=False)) for _ in range(2))
    np.testing.assert_allclose(first, second, atol=0)
    a, b = (keras.ops.convert_to_numpy(tower(faces, training=True)) for _ in range(2))
    assert np.abs(a - b).max() > 1e-3  # fresh flips / shifts each call


def test_face_tower_trains_under_an_arcface_head() -> None:
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 16)
    patterns = rng.random((4, 32, 32, 1), dtype=np.float32)
    x = np.clip(patterns[y] + 0.1 * rng.normal(size=(64, 32, 32, 1)), 0, 1).astype("float32")
    tower = build_face_tower((32, 32, 1), embedding_dim=16, augment=False)
    model = build_head_model(tower, heads.ArcFace(num_classes=4, scale=16.0, margin=0.2))
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit([x, y], epochs=6, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.7 * history.history["loss"][0]


@pytest.mark.parametrize("shape", [(37, 28), (12, 40, 1), (37.0, 28, 1)])
def test_face_tower_rejects_bad_shapes(shape) -> None:
    with pytest.raises(ValueError, match=r"input_shape must be \(height, width, channels\)"):
        build_face_tower(shape)
    with pytest.raises(ValueError, match="batchnorm_momentum"):
        build_face_tower((37, 28, 1), batchnorm_momentum=1.0)
