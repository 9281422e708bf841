"""Self-supervised training: TwoViews, build_ssl_model, fit per method, save / load, the probes.

Runs on every backend (Makefile BACKEND_TESTS).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from dmlkeras import losses
from dmlkeras.callbacks import ProbeEvaluation
from dmlkeras.data import KerasAugmentation, TwoViews
from dmlkeras.evaluation import knn_accuracy, label_subset, linear_probe_accuracy
from dmlkeras.models import build_ssl_model, get_embedding_model


def _images(n=64, seed=0):
    """Two classes of 8 x 8 images: a bright square top-left or bottom-right, plus noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = 0.1 * rng.random((n, 8, 8, 1))
    for i, label in enumerate(y):
        r, c = (1, 1) if label == 0 else (4, 4)
        x[i, r : r + 3, c : c + 3, 0] += 1.0
    return x.astype("float32"), y


def _augment():
    return keras.Sequential(
        [keras.layers.RandomTranslation(0.15, 0.15, fill_mode="constant"), keras.layers.RandomContrast(0.3)]
    )


def _tower(dim=8):
    inputs = keras.Input((8, 8, 1))
    hidden = keras.layers.Dense(32, activation="relu")(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, keras.layers.Dense(dim)(hidden), name="tower")


# ----------------------------------------------------------------------------- TwoViews


def test_views_differ_and_are_a_function_of_seed_epoch_and_index():
    x, _ = _images()
    ds = TwoViews(x, _augment(), batch_size=16, seed=3)
    (a, b), targets = ds[1]
    assert a.shape == b.shape == (16, 8, 8, 1) and targets.shape == (16,)
    assert not np.allclose(a, b)
    again = TwoViews(x, _augment(), batch_size=16, seed=3)
    again[0]  # another order of requests changes nothing
    (a2, b2), _ = again[1]
    np.testing.assert_array_equal(a, a2)
    np.testing.assert_array_equal(b, b2)
    (other, _), _ = TwoViews(x, _augment(), batch_size=16, seed=4)[1]
    assert not np.allclose(a, other)
    ds.on_epoch_end()
    (a3, _), _ = ds[1]
    assert not np.allclose(a, a3)  # a new epoch: new order and new augmentations


def test_views_cover_the_data_once_per_epoch_without_augmentation():
    x = np.arange(20, dtype="float32").reshape(20, 1)
    ds = TwoViews(x, None, batch_size=6, seed=0)
    assert len(ds) == 3  # the last 2 samples are dropped
    seen = np.concatenate([ds[i][0][0][:, 0] for i in range(len(ds))])
    assert len(np.unique(seen)) == 18
    (a, b), _ = ds[0]
    np.testing.assert_array_equal(a, b)  # no augmentation: identical views
    keep = TwoViews(x, None, batch_size=6, drop_remainder=False, shuffle=False, views=3)
    assert len(keep) == 4 and len(keep[3][0]) == 3
    np.testing.assert_array_equal(keep[3][0][2][:, 0], [18.0, 19.0])


def test_views_check_their_arguments():
    x, _ = _images(n=8)
    with pytest.raises(ValueError, match="fewer than one batch"):
        TwoViews(x, None, batch_size=16)
    with pytest.raises(ValueError, match="views"):
        TwoViews(x, None, batch_size=4, views=1)
    with pytest.raises(ValueError, match="cannot be seeded"):
        TwoViews(x, keras.layers.GaussianNoise(0.1), batch_size=4)


def test_keras_augmentation_is_seeded_by_the_generator_and_keeps_deterministic_layers():
    x, _ = _images(n=4)
    augment = KerasAugmentation([keras.layers.Rescaling(2.0), keras.layers.RandomFlip("horizontal")])
    first = augment(x, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(first, augment(x, rng=np.random.default_rng(1)))
    flipped_or_not = [np.allclose(f, 2 * x[i]) or np.allclose(f, 2 * x[i][:, ::-1]) for i, f in enumerate(first)]
    assert all(flipped_or_not)


def test_a_callable_with_rng_is_used_as_is():
    x = np.zeros((8, 3), "float32")
    ds = TwoViews(x, lambda batch, rng: batch + rng.normal(size=batch.shape), batch_size=4, seed=0)
    (a, b), _ = ds[0]
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(a, TwoViews(x, lambda batch, rng: batch + rng.normal(size=batch.shape),
                                             batch_size=4, seed=0)[0][0][0])


# ----------------------------------------------------------------------------- build_ssl_model and fit

OUTPUT_VIEWS = {"simclr": 2, "barlow-twins": 2, "vicreg": 2, "simsiam": 4}


@pytest.mark.parametrize("method", losses.ssl_names())
def test_fit_lowers_the_loss_and_the_model_saves_and_loads(method, tmp_path):
    keras.utils.set_random_seed(0)
    x, _ = _images(n=64)
    tower = _tower()
    model = build_ssl_model(tower, method, projection_dim=16, hidden_dim=32)
    assert model.output_shape == (None, OUTPUT_VIEWS[method], 16)
    assert get_embedding_model(model) is tower
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=losses.get_ssl(method))
    history = model.fit(TwoViews(x, _augment(), batch_size=32, seed=0), epochs=8, verbose=0)
    curve = history.history["loss"]
    assert np.all(np.isfinite(curve))
    assert np.mean(curve[-2:]) < curve[0] - 0.05 * abs(curve[0]), (method, curve)
    path = tmp_path / f"{method}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # no custom_objects
    views = [x[:8], x[8:16]]
    np.testing.assert_allclose(loaded.predict(views, verbose=0), model.predict(views, verbose=0), rtol=1e-5, atol=1e-5)
    assert type(loaded.loss) is type(model.loss)


def test_build_ssl_model_checks_its_arguments():
    with pytest.raises(ValueError, match="simclr"):
        build_ssl_model(_tower(), "byol")
    with pytest.raises(ValueError, match="projection_dim"):
        build_ssl_model(_tower(), "vicreg", projection_dim=0)
    with pytest.raises(ValueError, match="keras.Model"):
        build_ssl_model("tower", "simclr")


# ----------------------------------------------------------------------------- probes


def _loop_knn(train, y_train, test, y_test, k):
    correct = 0
    for q, truth in zip(test, y_test):
        d = [1.0 - np.dot(q, g) / (np.linalg.norm(q) * np.linalg.norm(g)) for g in train]
        order = sorted(range(len(train)), key=lambda i: (d[i], i))[:k]
        votes = {}
        for i in order:
            votes[y_train[i]] = votes.get(y_train[i], 0) + 1
        best = max(votes.values())
        predicted = next(y_train[i] for i in order if votes[y_train[i]] == best)
        correct += predicted == truth
    return correct / len(y_test)


@pytest.mark.parametrize("k", [1, 3, 6])
def test_knn_accuracy_matches_a_loop(k):
    rng = np.random.default_rng(k)
    train, test = rng.normal(size=(30, 4)), rng.normal(size=(15, 4))
    y_train, y_test = rng.integers(0, 3, 30), rng.integers(0, 3, 15)
    assert knn_accuracy(train, y_train, test, y_test, k=k) == pytest.approx(_loop_knn(train, y_train, test, y_test, k))
    with pytest.raises(ValueError, match="at most"):
        knn_accuracy(train, y_train, test, y_test, k=31)


def test_label_subset_is_stratified_and_seeded():
    y = np.repeat([0, 1, 2], [50, 30, 20])
    rows = label_subset(y, 0.1, seed=1)
    assert np.bincount(y[rows]).tolist() == [5, 3, 2]
    np.testing.assert_array_equal(rows, label_subset(y, 0.1, seed=1))
    assert not np.array_equal(rows, label_subset(y, 0.1, seed=2))
    with pytest.raises(ValueError, match="fraction"):
        label_subset(y, 1.5)


def test_linear_probe_separates_a_linear_problem_and_not_noise():
    rng = np.random.default_rng(0)
    y = np.arange(200) % 4
    signal = rng.normal(size=(200, 6)) + 3.0 * np.eye(6)[y]
    assert linear_probe_accuracy(signal[:100], y[:100], signal[100:], y[100:]) > 0.9
    assert linear_probe_accuracy(signal[:100], y[:100], signal[100:], y[100:], label_fraction=0.04) > 0.5
    noise = rng.normal(size=(200, 6))
    assert linear_probe_accuracy(noise[:100], y[:100], noise[100:], y[100:]) < 0.5
    with pytest.raises(ValueError, match="two classes"):
        linear_probe_accuracy(signal[:100], np.zeros(100, int), signal[100:], y[100:])


def test_probe_callback_logs_per_epoch_and_needs_the_tower_for_a_two_view_model():
    keras.utils.set_random_seed(0)
    x, y = _images(n=64)
    tower = _tower()
    model = build_ssl_model(tower, "simclr", projection_dim=16, hidden_dim=32)
    model.compile(optimizer="adam", loss=losses.get_ssl("simclr"))
    probe = ProbeEvaluation(x[32:], y[32:], train=(x[:32], y[:32]), embedding_model=tower, label_fractions=(0.25, 1.0))
    history = model.fit(TwoViews(x, _augment(), batch_size=32), epochs=2, verbose=0, callbacks=[probe])
    for name in ("val_knn_accuracy", "val_linear_probe_25pct", "val_linear_probe_100pct"):
        assert len(history.history[name]) == 2 and all(0.0 <= v <= 1.0 for v in history.history[name])
    emb_train, emb_test = tower.predict(x[:32], verbose=0), tower.predict(x[32:], verbose=0)
    assert probe.results[-1][1]["knn_accuracy"] == knn_accuracy(emb_train, y[:32], emb_test, y[32:])
    with pytest.raises(ValueError, match="embedding_model"):
        model.fit(TwoViews(x, None, batch_size=32), epochs=1, verbose=0,
                  callbacks=[ProbeEvaluation(x[32:], y[32:], train=(x[:32], y[:32]))])


def test_collapse_monitor_reads_the_view_diagnostics_of_a_collapsed_ssl_model():
    from dmlkeras.callbacks import CollapseMonitor, CollapseWarning
    from dmlkeras.metrics import DistanceGap, MeanNegativeDistance, MeanPositiveDistance, OnViews

    keras.utils.set_random_seed(0)
    x, _ = _images(n=64)

    def fit(tower):
        model = build_ssl_model(tower, "vicreg", projection_dim=16, hidden_dim=32)
        model.compile(optimizer="adam", loss=losses.get_ssl("vicreg"),
                      metrics=[OnViews(m) for m in (DistanceGap(), MeanPositiveDistance(), MeanNegativeDistance())])
        monitor = CollapseMonitor(patience=2)
        history = model.fit(TwoViews(x, _augment(), batch_size=32), epochs=3, verbose=0, callbacks=[monitor])
        return history.history, monitor, model

    collapsed = _tower()
    collapsed.layers[-1].set_weights([np.zeros((32, 8)), np.zeros(8)])  # every embedding is 0
    collapsed.layers[-1].trainable = False
    with pytest.warns(CollapseWarning):
        logs, monitor, _ = fit(collapsed)
    assert logs["distance_gap"][-1] == 0.0 and monitor.collapse_epoch is not None
    logs, monitor, model = fit(_tower())
    assert logs["distance_gap"][-1] > 0.0 and logs["mean_negative_distance"][-1] > logs["mean_positive_distance"][-1]
    assert monitor.collapse_epoch is None
    views = model.predict([x[:16], x[16:32]], verbose=0)
    gap = OnViews(DistanceGap())
    gap.update_state(None, views)
    flat, ids = views.reshape(-1, views.shape[-1]), np.repeat(np.arange(16), 2)
    plain = DistanceGap()
    plain.update_state(ids, flat)
    assert float(gap.result()) == pytest.approx(float(plain.result()), rel=1e-6)
    again = keras.metrics.deserialize(keras.metrics.serialize(gap))
    assert again.name == "distance_gap" and isinstance(again.metric, DistanceGap)
    with pytest.raises(ValueError, match="views"):
        gap.update_state(None, flat)


def _loop_effective_rank(x):
    """exp(entropy) of the normalised singular values, through the eigenvalues of the scatter matrix."""
    n, d = len(x), len(x[0])
    mean = [sum(row[j] for row in x) / n for j in range(d)]
    scatter = np.array([[sum((row[i] - mean[i]) * (row[j] - mean[j]) for row in x) for j in range(d)] for i in range(d)])
    singular = [np.sqrt(max(e, 0.0)) for e in np.linalg.eigvalsh(scatter)]
    total = sum(singular)
    entropy = -sum(s / total * np.log(s / total) for s in singular if s / total > 1e-15)
    return float(np.exp(entropy))


def test_effective_rank_matches_a_loop_and_tells_collapse():
    from dmlkeras.evaluation import effective_rank

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5)) * np.array([3.0, 1.0, 1.0, 0.3, 0.01])
    assert effective_rank(x) == pytest.approx(_loop_effective_rank(x.tolist()), rel=1e-9)
    assert 3.0 < effective_rank(x) < 5.0
    assert effective_rank(rng.normal(size=(4000, 6))) == pytest.approx(6.0, abs=0.05)
    plane = rng.normal(size=(300, 2)) @ rng.normal(size=(2, 16))  # 16-d embeddings in a plane
    assert 1.0 < effective_rank(plane) <= 2.0 + 1e-9
    assert effective_rank(plane + 5.0) == pytest.approx(effective_rank(plane))  # centred: a shift changes nothing
    assert effective_rank(np.full((8, 3), 0.7)) == 0.0  # complete collapse
    with pytest.raises(ValueError, match="NaN"):
        effective_rank(np.array([[0.0, np.nan], [1.0, 2.0]]))
    with pytest.raises(ValueError, match="at least 2 rows"):
        effective_rank(np.ones((1, 3)))
