"""dmlkeras.serving: the exported tower gives tower.predict's outputs, in
SavedModel and TFLite form, and a bundle serves the same neighbours as the
in-memory tower + index. TensorFlow and JAX backends (skipped elsewhere)."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from dmlkeras import serving
from dmlkeras.index import Index

pytestmark = pytest.mark.skipif(
    keras.backend.backend() not in serving.EXPORT_BACKENDS,
    reason=f"SavedModel export needs one of the Keras backends {serving.EXPORT_BACKENDS}",
)


def small_tower(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6, 6, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(8)(x)
    outputs = keras.layers.UnitNormalization()(x)
    return keras.Model(inputs, outputs)


def images(n, seed=1):
    return np.random.default_rng(seed).random((n, 6, 6, 1)).astype("float32")


def test_saved_model_outputs_equal_predict(tmp_path):
    tower = small_tower()
    x = images(13)
    path = serving.export_saved_model(tower, tmp_path / "tower")
    assert (path / "saved_model.pb").is_file()
    embed = serving.load_saved_model(path)
    np.testing.assert_allclose(embed(x), tower.predict(x, verbose=0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(embed(x[:1]), tower.predict(x[:1], verbose=0), rtol=1e-6, atol=1e-6)  # any batch size
    with pytest.raises(ValueError, match="exists and is not empty"):
        serving.export_saved_model(tower, path)
    with pytest.raises(ValueError, match="not a SavedModel"):
        serving.load_saved_model(tmp_path)


def test_tflite_outputs_equal_predict(tmp_path):
    tower = small_tower(2)
    x = images(9)
    saved = serving.export_saved_model(tower, tmp_path / "tower")
    flat = serving.convert_to_tflite(saved, tmp_path / "tower.tflite")
    assert flat.stat().st_size > 0
    embed = serving.load_tflite(flat)
    np.testing.assert_allclose(embed(x), tower.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(embed(x[:2]), tower.predict(x[:2], verbose=0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("use_tflite", [False, True])
def test_bundle_serves_the_same_neighbours(tmp_path, use_tflite):
    tower = small_tower(3)
    gallery = images(40, seed=4)
    labels = np.arange(40) % 7
    index = Index(metric="cosine").add(tower.predict(gallery, verbose=0), labels=labels,
                                       payloads=[f"img{i}.png" for i in range(40)])
    path = serving.save_bundle(tower, index, tmp_path / "bundle", tflite=True)
    meta = json.loads((path / "bundle.json").read_text())
    assert meta["embedding_dim"] == 8 and meta["metric"] == "cosine" and meta["input_shape"] == [6, 6, 1]
    bundle = serving.load_bundle(path, use_tflite=use_tflite)
    probes = images(6, seed=5)
    expected = index.search(tower.predict(probes, verbose=0), k=3)
    got = bundle.search(probes, k=3)
    np.testing.assert_array_equal(got.indices, expected.indices)
    np.testing.assert_array_equal(got.labels, expected.labels)
    assert got.payloads == expected.payloads
    np.testing.assert_allclose(got.distances, expected.distances, atol=1e-5)


def test_bundle_errors(tmp_path):
    tower = small_tower()
    with pytest.raises(ValueError, match="non-empty"):
        serving.save_bundle(tower, Index(), tmp_path / "a")
    wrong = Index().add(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="outputs 8-d embeddings but the index holds 5-d"):
        serving.save_bundle(tower, wrong, tmp_path / "b")
    index = Index().add(tower.predict(images(4), verbose=0))
    path = serving.save_bundle(tower, index, tmp_path / "c")
    with pytest.raises(ValueError, match="no TFLite model"):
        serving.load_bundle(path, use_tflite=True)
    vectors = path / "index" / "vectors.npy"
    vectors.write_bytes(vectors.read_bytes()[:-4])
    with pytest.raises(ValueError, match="vectors.npy has"):
        serving.load_bundle(path)
    with pytest.raises(ValueError, match="bundle.json not found"):
        serving.load_bundle(tmp_path)
