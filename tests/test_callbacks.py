"""CollapseMonitor: its rule on hand-written epoch logs, then on a model made
to collapse (must warn, and stop with stop=True) and on one that learns
(must not warn)."""

import math
import warnings

import keras
import numpy as np
import pytest

from dmlkeras.callbacks import CollapseMonitor, CollapseWarning, NonFiniteWarning
from dmlkeras.losses import TripletLoss
from dmlkeras.metrics import (
    ActiveTripletFraction,
    DistanceGap,
    MeanNegativeDistance,
    MeanPositiveDistance,
)

COLLAPSED = {"loss": 1.0, "active_triplet_fraction": 1.0, "mean_positive_distance": 0.0, "mean_negative_distance": 0.0}
HEALTHY = {"loss": 0.3, "active_triplet_fraction": 0.4, "mean_positive_distance": 0.5, "mean_negative_distance": 1.5}


def _model(loss=None):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss=loss or TripletLoss(margin=1.0, mining="hard"))
    return model


def _run(monitor, epoch_logs, loss=None):
    """Feed ``epoch_logs`` to ``monitor`` as one fit; return the warnings raised."""
    monitor.set_model(_model(loss))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        monitor.on_train_begin()
        for epoch, logs in enumerate(epoch_logs):
            monitor.on_epoch_end(epoch, dict(logs))
    return caught


def _collapse_warnings(caught):
    return [w for w in caught if issubclass(w.category, CollapseWarning)]


# ---------------------------------------------------------------- the rule, on hand-written logs
def test_warns_once_after_patience_epochs_and_names_the_remedies():
    monitor = CollapseMonitor(patience=3)
    caught = _run(monitor, [COLLAPSED] * 6)
    (warning,) = _collapse_warnings(caught)
    assert len(caught) == 1
    assert monitor.collapse_epoch == 2
    text = str(warning.message)
    for remedy in ("P x K", "semi-hard", "learning rate", "normalised", "margin"):
        assert remedy in text
    assert "epoch 3" in text
    assert not monitor.model.stop_training


def test_a_healthy_epoch_resets_the_count():
    monitor = CollapseMonitor(patience=2)
    caught = _run(monitor, [COLLAPSED, HEALTHY, COLLAPSED, HEALTHY, COLLAPSED])
    assert not caught and monitor.collapse_epoch is None
    assert len(_collapse_warnings(_run(monitor, [HEALTHY, COLLAPSED, COLLAPSED]))) == 1


def test_stop_sets_stop_training():
    monitor = CollapseMonitor(patience=2, stop=True)
    _run(monitor, [COLLAPSED, COLLAPSED])
    assert monitor.model.stop_training


def test_distance_gap_sign_alone():
    # Distances far from 0 but equal for both kinds of pair: no class structure.
    flat = {"mean_positive_distance": 2.0, "mean_negative_distance": 2.05}
    assert len(_collapse_warnings(_run(CollapseMonitor(patience=2, min_gap=0.05), [flat] * 2))) == 1
    assert not _run(CollapseMonitor(patience=2, min_gap=0.01), [flat] * 2)
    # Any two of the three distance keys give the gap and the mean distance.
    for keys in (("distance_gap", "mean_positive_distance"), ("distance_gap", "mean_negative_distance")):
        logs = {"distance_gap": 0.05, "mean_positive_distance": 2.0, "mean_negative_distance": 2.05}
        logs = {k: logs[k] for k in keys}
        assert len(_collapse_warnings(_run(CollapseMonitor(patience=2), [logs] * 2))) == 1
        logs["distance_gap"] = 0.5
        assert not _run(CollapseMonitor(patience=2), [logs] * 2)


def test_saturated_loss_sign_alone():
    at_margin = {"loss": 1.01, "active_triplet_fraction": 0.99}
    assert len(_collapse_warnings(_run(CollapseMonitor(patience=2), [at_margin] * 2))) == 1
    # Hard mining keeps most triplets active while a model learns: not a collapse.
    learning = {"loss": 0.6, "active_triplet_fraction": 0.99}
    assert not _run(CollapseMonitor(patience=2), [learning] * 3)
    few_active = {"loss": 1.0, "active_triplet_fraction": 0.5}
    assert not _run(CollapseMonitor(patience=2), [few_active] * 3)


def test_margin_comes_from_the_loss_or_the_argument():
    logs = {"loss": 0.2, "active_triplet_fraction": 1.0}
    loss = TripletLoss(margin=0.2)
    assert len(_collapse_warnings(_run(CollapseMonitor(patience=2), [logs] * 2, loss=loss))) == 1
    assert not _run(CollapseMonitor(patience=2, margin=1.0), [logs] * 2, loss=loss)
    soft = {"loss": math.log(2.0), "active_triplet_fraction": 1.0}
    caught = _run(CollapseMonitor(patience=2), [soft] * 2, loss=TripletLoss(mining="hard", soft=True))
    assert len(_collapse_warnings(caught)) == 1


def test_missing_metrics_warn_once_with_what_to_add():
    caught = _run(CollapseMonitor(), [{"loss": 1.0}] * 3)
    assert len(caught) == 1 and caught[0].category is UserWarning
    text = str(caught[0].message)
    assert "MeanPositiveDistance" in text and "ActiveTripletFraction" in text
    # A loss without a margin: the active fraction alone cannot be judged.
    no_margin = {"loss": 1.0, "active_triplet_fraction": 1.0}
    assert len(_run(CollapseMonitor(), [no_margin] * 3, loss="mse")) == 1
    assert len(_collapse_warnings(_run(CollapseMonitor(margin=1.0), [no_margin] * 3, loss="mse"))) == 1


def test_monitor_prefix_reads_validation_keys():
    val_collapsed = {"val_" + key: value for key, value in COLLAPSED.items()}
    logs = {**HEALTHY, **val_collapsed}
    assert len(_collapse_warnings(_run(CollapseMonitor(monitor_prefix="val_"), [logs] * 2))) == 1
    assert not _run(CollapseMonitor(), [logs] * 2)
    caught = _run(CollapseMonitor(monitor_prefix="val_"), [HEALTHY] * 2)
    assert len(caught) == 1 and "validation_data" in str(caught[0].message)


def test_bad_arguments_raise():
    for kwargs in ({"patience": 0}, {"patience": 1.5}, {"min_gap": -0.1}, {"min_active": 2.0}, {"margin": 0.0}):
        with pytest.raises(ValueError):
            CollapseMonitor(**kwargs)


# ---------------------------------------------------------------- NaN is not a collapse (issue 21)
def _nonfinite_warnings(caught):
    return [w for w in caught if issubclass(w.category, NonFiniteWarning)]


@pytest.mark.parametrize(
    "bad",
    [
        {"loss": float("nan")},
        {"loss": float("inf")},
        {"mean_positive_distance": float("nan")},
        {"embedding_norm_mean": float("nan")},
        {"embedding_norm_std": float("inf")},
    ],
)
def test_nonfinite_logs_are_reported_as_nan_not_collapse(bad):
    # Collapsed-looking distances and loss, but a NaN / Inf among them: NaN wins, at once.
    monitor = CollapseMonitor(patience=2, stop=True)
    caught = _run(monitor, [{**COLLAPSED, **bad}] * 3)
    assert not _collapse_warnings(caught) and monitor.collapse_epoch is None
    (warning,) = _nonfinite_warnings(caught)
    assert len(caught) == 1 and monitor.nonfinite_epoch == 0 and monitor.model.stop_training
    text = str(warning.message)
    key = next(iter(bad))
    assert f"{key}={bad[key]}" in text and "not a collapse" in text
    for remedy in ("learning rate", "loss scale", "mixed precision", "input data", "TerminateOnNaN"):
        assert remedy in text
    assert "P x K" not in text and "semi-hard" not in text


def test_a_nan_epoch_does_not_count_towards_a_collapse():
    nan = {**COLLAPSED, "loss": float("nan")}
    monitor = CollapseMonitor(patience=2)
    caught = _run(monitor, [COLLAPSED, nan, COLLAPSED])
    assert len(_nonfinite_warnings(caught)) == 1 and not _collapse_warnings(caught)
    assert monitor.nonfinite_epoch == 1 and monitor.collapse_epoch is None
    # Finite again, collapsed for `patience` epochs: that is a collapse.
    caught = _run(monitor, [nan, COLLAPSED, COLLAPSED])
    assert len(_nonfinite_warnings(caught)) == 1 and len(_collapse_warnings(caught)) == 1


def test_nan_weight_is_reported_even_when_the_logs_look_finite():
    monitor = CollapseMonitor(patience=2)
    model = _model()
    kernel = model.layers[0].kernel
    kernel.assign(np.full(kernel.shape, np.nan, "float32"))
    monitor.set_model(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        monitor.on_train_begin()
        for epoch in range(3):
            monitor.on_epoch_end(epoch, dict(COLLAPSED))
    (warning,) = caught
    assert warning.category is NonFiniteWarning and "1 weight(s) hold NaN or Inf" in str(warning.message)
    assert kernel.path in str(warning.message)
    quiet = CollapseMonitor(patience=2, check_weights=False)
    assert len(_collapse_warnings(_run(quiet, [COLLAPSED] * 2))) == 1


def test_fit_of_a_nan_model_warns_nan_not_collapse():
    # Every embedding NaN: the safe distances used to turn it into 0, which looked like a collapse.
    x, y = _blobs()
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(4, kernel_initializer=keras.initializers.Constant(float("nan")))]
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=TripletLoss(margin=1.0, mining="hard"), metrics=_metrics())
    monitor = CollapseMonitor(patience=2, stop=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(x, y, batch_size=32, epochs=4, verbose=0, callbacks=[monitor])
    assert not _collapse_warnings(caught) and len(_nonfinite_warnings(caught)) == 1
    assert monitor.nonfinite_epoch == 0 and len(history.history["loss"]) == 1


def test_fit_on_input_with_a_nan_row_warns_nan():
    # One NaN sample: whatever the loss shows, the update makes weights NaN.
    x, y = _blobs()
    x[3, 2] = np.nan
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(4, kernel_initializer=keras.initializers.GlorotUniform(0))]
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=TripletLoss(margin=1.0, mining="semi-hard"), metrics=_metrics())
    monitor = CollapseMonitor(patience=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[monitor])
    (warning,) = _nonfinite_warnings(caught)
    assert not _collapse_warnings(caught) and monitor.nonfinite_epoch == 0
    assert "input data" in str(warning.message)


# ---------------------------------------------------------------- real training
def _metrics():
    return [
        ActiveTripletFraction(margin=1.0, mining="hard"),
        DistanceGap(),
        MeanPositiveDistance(),
        MeanNegativeDistance(),
    ]


def _blobs(seed=0, n_per_class=16, classes=4, d=8):
    rng = np.random.default_rng(seed)
    centres = 4.0 * rng.normal(size=(classes, d))
    y = np.repeat(np.arange(classes), n_per_class)
    x = (centres[y] + rng.normal(size=(len(y), d))).astype("float32")
    order = rng.permutation(len(y))
    return x[order], y[order]


def _collapsed_model():
    # Zero kernel and bias: every embedding is the origin, every distance 0,
    # and the (safe) euclidean distance has a zero gradient there: it stays so.
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, kernel_initializer="zeros")])
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss=TripletLoss(margin=1.0, mining="hard"), metrics=_metrics()
    )
    return model


@pytest.mark.parametrize("stop", [False, True])
def test_collapsed_model_warns_and_stops(stop):
    x, y = _blobs()
    model = _collapsed_model()
    monitor = CollapseMonitor(patience=2, stop=stop)
    with pytest.warns(CollapseWarning, match="every distance between embeddings is 0") as caught:
        history = model.fit(x, y, batch_size=32, epochs=4, verbose=0, callbacks=[monitor])
    assert len(_collapse_warnings(caught)) == 1
    assert monitor.collapse_epoch == 1
    assert history.history["loss"][-1] == pytest.approx(1.0)
    assert history.history["active_triplet_fraction"][-1] == pytest.approx(1.0)
    assert history.history["distance_gap"][-1] == pytest.approx(0.0)
    assert len(history.history["loss"]) == (2 if stop else 4)


def test_learning_model_does_not_warn():
    x, y = _blobs(seed=1)
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(4, kernel_initializer=keras.initializers.GlorotUniform(0))]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2), loss=TripletLoss(margin=1.0, mining="semi-hard"), metrics=_metrics()
    )
    monitor = CollapseMonitor(patience=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(x, y, batch_size=32, epochs=4, verbose=0, callbacks=[monitor])
    assert not [w for w in caught if issubclass(w.category, UserWarning)]
    assert monitor.collapse_epoch is None
    gaps = history.history["distance_gap"]
    assert min(gaps) > 0.5 * history.history["mean_positive_distance"][0]


def test_fit_without_the_metrics_warns_what_to_add():
    x, y = _blobs()
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    model.compile(optimizer="adam", loss=TripletLoss())
    with pytest.warns(UserWarning, match="MeanPositiveDistance") as caught:
        model.fit(x, y, batch_size=32, epochs=3, verbose=0, callbacks=[CollapseMonitor()])
    assert len([w for w in caught if "CollapseMonitor cannot" in str(w.message)]) == 1


# ------------------------------------------------- RetrievalEvaluation
# (moved here from tests/test_evaluation.py with the callback)
import csv  # noqa: E402

from dmlkeras.callbacks import RetrievalEvaluation  # noqa: E402
from dmlkeras.evaluation import retrieval_metrics  # noqa: E402


def test_retrieval_evaluation_callback(tmp_path):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 8)
    x = (rng.normal(size=(32, 6)) + 2 * np.eye(6)[y]).astype("float32")
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    model.compile(optimizer="sgd", loss="mse")
    cb = RetrievalEvaluation(x, y, k=(1, 3), metric="cosine")
    log_path = tmp_path / "log.csv"
    history = model.fit(
        x, np.zeros((32, 3)), epochs=2, batch_size=16, verbose=0,
        callbacks=[cb, keras.callbacks.CSVLogger(str(log_path))],
    )
    names = ["val_precision_at_1", "val_map_at_r", "val_r_precision", "val_recall_at_1", "val_recall_at_3"]
    for name in names:
        assert len(history.history[name]) == 2
    expected = retrieval_metrics(model.predict(x, verbose=0), y, k=(1, 3), metric="cosine", clustering=False)
    assert history.history["val_map_at_r"][-1] == pytest.approx(expected["map_at_r"])
    assert history.history["val_recall_at_3"][-1] == pytest.approx(expected["recall_at_3"])
    assert len(cb.results) == 2
    with open(log_path) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and float(rows[1]["val_map_at_r"]) == pytest.approx(expected["map_at_r"])


def test_retrieval_evaluation_every_and_gallery():
    rng = np.random.default_rng(1)
    y = np.tile(np.arange(3), 6)
    x = rng.normal(size=(18, 4)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    cb = RetrievalEvaluation(x[:6], y[:6], every=2, prefix="test_", gallery=(x[6:], y[6:]))
    history = model.fit(x, np.zeros((18, 2)), epochs=3, verbose=0, callbacks=[cb])
    values = history.history["test_precision_at_1"]
    # epoch 1 skipped (NaN), epoch 2 evaluated, epoch 3 is the last one
    assert math.isnan(values[0]) and not math.isnan(values[1]) and not math.isnan(values[2])
    assert [epoch for epoch, _ in cb.results] == [1, 2]
    expected = retrieval_metrics(
        model.predict(x[:6], verbose=0), y[:6], model.predict(x[6:], verbose=0), y[6:], k=1, clustering=False
    )
    assert values[2] == pytest.approx(expected["precision_at_1"])
    with pytest.raises(ValueError, match="every"):
        RetrievalEvaluation(x, y, every=0)
    with pytest.raises(ValueError, match="gallery"):
        RetrievalEvaluation(x, y, gallery=x)


def test_retrieval_evaluation_of_the_tower_under_a_classifier():
    """embedding_model=: a softmax classifier trains, the callback scores its tower (not the class scores)."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(4), 10)
    x = (rng.normal(size=(40, 6)) + 3 * np.eye(6)[y]).astype("float32")
    tower = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5)])
    classifier = keras.Sequential([tower, keras.layers.Dense(4, activation="softmax")])
    classifier.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    cb = RetrievalEvaluation(x[:8], y[:8], gallery=(x[8:], y[8:]), embedding_model=tower, k=(1, 2))
    history = classifier.fit(x, y, epochs=2, verbose=0, callbacks=[cb])
    expected = retrieval_metrics(tower.predict(x[:8], verbose=0), y[:8], tower.predict(x[8:], verbose=0), y[8:],
                                 k=(1, 2), clustering=False)
    assert history.history["val_map_at_r"][-1] == pytest.approx(expected["map_at_r"])
    scores = retrieval_metrics(classifier.predict(x[:8], verbose=0), y[:8], classifier.predict(x[8:], verbose=0),
                               y[8:], k=(1, 2), clustering=False)
    assert scores["map_at_r"] != pytest.approx(expected["map_at_r"])  # the default would have scored these
    a, b = keras.Input((6,)), keras.Input((1,))
    two_inputs = keras.Model([a, b], keras.layers.Dense(2)(keras.layers.Concatenate()([a, b])))
    cb2 = RetrievalEvaluation([x, y[:, None]], y)
    cb2.set_model(two_inputs)
    with pytest.raises(ValueError, match="embedding_model="):
        cb2.evaluate()


# ------------------------------------------------- VerificationEvaluation
from dmlkeras.callbacks import VerificationEvaluation  # noqa: E402
from dmlkeras.evaluation import verification_metrics  # noqa: E402


def test_verification_evaluation_logs_the_pairs_metrics_and_keeps_the_best_epoch():
    """Cosine distances by hand, verification_metrics on them; EarlyStopping restores the best epoch."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(6), 6)
    x = (rng.normal(size=(36, 6)) + 2 * np.eye(6)[y]).astype("float32")
    pairs = np.array([[i, i + 1] for i in range(0, 36, 2)] + [[i, i + 6] for i in range(0, 30, 3)])  # same, different
    same = y[pairs[:, 0]] == y[pairs[:, 1]]
    assert same.any() and not same.all()
    tower = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4)])
    classifier = keras.Sequential([tower, keras.layers.Dense(6, activation="softmax")])
    classifier.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    cb = VerificationEvaluation(x, pairs, same, embedding_model=tower)
    stop = keras.callbacks.EarlyStopping(monitor="val_roc_auc", mode="max", patience=10, restore_best_weights=True)
    history = classifier.fit(x, y, epochs=4, verbose=0, callbacks=[cb, stop]).history
    assert [e for e, _ in cb.results] == [0, 1, 2, 3]
    emb = tower.predict(x, verbose=0)
    a, b = emb[pairs[:, 0]], emb[pairs[:, 1]]
    cosine = 1 - np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    expected = verification_metrics(cosine, same)
    best = int(np.argmax(history["val_roc_auc"]))
    # the restored weights are those of the best epoch: their metrics are the best epoch's log
    assert history["val_roc_auc"][best] == pytest.approx(expected["roc_auc"], abs=1e-6)
    assert history["val_accuracy"][best] == pytest.approx(expected["accuracy"], abs=1e-6)
    assert history["val_eer"][best] == pytest.approx(expected["eer"], abs=1e-6)


def test_verification_evaluation_checks_its_pairs():
    x = np.zeros((4, 2), "float32")
    with pytest.raises(ValueError, match=r"\(n_pairs, 2\)"):
        VerificationEvaluation(x, [0, 1], [True])
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        VerificationEvaluation(x, [[0, 4], [1, 2]], [True, False])
    with pytest.raises(ValueError, match="both"):
        VerificationEvaluation(x, [[0, 1], [1, 2]], [True, True])
    with pytest.raises(ValueError, match="one boolean per pair"):
        VerificationEvaluation(x, [[0, 1], [1, 2]], [True, False, True])
