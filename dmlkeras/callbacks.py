"""Keras callbacks that watch metric-learning training for silent failures.

:class:`CollapseMonitor` reads the diagnostics of :mod:`dmlkeras.metrics`
from the epoch logs and warns, with a :class:`CollapseWarning`, when they
show the embedding collapsing to nearly one point, and, with a
:class:`NonFiniteWarning`, when the loss, the diagnostics or the weights hold
NaN or Inf (a different failure, with different remedies).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import keras
from keras import ops

__all__ = ["CollapseMonitor", "CollapseWarning", "NonFiniteWarning"]

REMEDIES = (
    "Usual remedies: (1) class-balanced P x K batches (dmlkeras.data.ClassBalancedBatches), so every "
    "anchor has positives and negatives; (2) semi-hard instead of hard mining at the start "
    "(TripletLoss(mining='semi-hard')), moving to hard mining once the loss falls; (3) a lower learning "
    "rate (e.g. Adam at 1e-4 instead of 1e-3); (4) L2-normalised embeddings "
    "(keras.layers.UnitNormalization or dmlkeras.models.L2Normalize) with a margin suited to their scale "
    "(0.1 to 0.5 for euclidean distances on the unit sphere)."
)


NONFINITE_REMEDIES = (
    "Usual remedies: (1) a lower learning rate (e.g. Adam at 1e-4 instead of 1e-3), or gradient "
    "clipping (optimizer clipnorm=1.0); (2) under mixed precision, a dynamic loss scale "
    "(keras.optimizers.LossScaleOptimizer, which compile uses for the 'mixed_float16' policy) and a "
    "float32 output layer (dtype='float32') for the embedding; (3) the input data: look for NaN or Inf "
    "in it (np.isfinite(x).all()) and for unscaled values. keras.callbacks.TerminateOnNaN stops "
    "training at the first NaN loss."
)

# The log keys the monitor reads (without the prefix); each must be finite.
_LOG_KEYS = (
    "loss",
    "distance_gap",
    "mean_positive_distance",
    "mean_negative_distance",
    "active_triplet_fraction",
    "embedding_norm_mean",
    "embedding_norm_std",
)


class CollapseWarning(UserWarning):
    """Warned by :class:`CollapseMonitor` when the embedding seems to have collapsed."""


class NonFiniteWarning(UserWarning):
    """Warned by :class:`CollapseMonitor` when the loss, a diagnostic or a weight is NaN or Inf.

    Not a collapse: a NaN model cannot be judged for collapse, and its
    remedies differ (learning rate, loss scale, input data).
    """


class CollapseMonitor(keras.callbacks.Callback):
    """Warn (and optionally stop) when the embeddings collapse to nearly one point.

    The classic silent failure of metric learning: every embedding ends up
    at nearly the same place, all distances are nearly equal, the triplet
    loss sits at the margin, and nothing is learned. At the end of every
    epoch the monitor looks for two signs of it in the logs:

    * *no distance gap*: ``|distance_gap| <= min_gap * mean distance``,
      where the mean distance is the average of the mean positive-pair and
      mean negative-pair distances (an embedding whose distances are all 0
      qualifies);
    * *saturated loss*: ``active_triplet_fraction >= min_active`` and the
      loss within ``min_gap * margin`` of the loss of a collapsed embedding
      (the margin; ``log(2)`` for a soft-margin loss).

    An epoch showing either counts; after ``patience`` such epochs in a row
    the monitor warns once per ``fit``, in plain words, with the usual
    remedies, and sets ``model.stop_training`` when ``stop=True``.

    NaN is told from collapse: before looking for those signs, the monitor
    checks that the loss, the diagnostics it reads
    (``distance_gap``, ``mean_positive_distance``, ``mean_negative_distance``,
    ``active_triplet_fraction``, ``embedding_norm_mean``,
    ``embedding_norm_std``) and, with ``check_weights=True``, every weight of
    the model are finite. The first epoch where one is not, it warns at once
    (no patience) with a :class:`NonFiniteWarning` naming what is NaN or Inf
    and the remedies for NaN (learning rate, mixed-precision loss scale,
    input data), never a :class:`CollapseWarning`, and stops training when
    ``stop=True``. A NaN epoch does not count towards a collapse.

    Parameters
    ----------
    patience : int, default 2
        Consecutive collapsed-looking epochs before warning.
    min_gap : float, default 0.05
        Relative tolerance: the distance gap counts as none below
        ``min_gap`` times the mean distance, and the loss counts as "at the
        margin" within ``min_gap`` times the margin.
    min_active : float, default 0.95
        Active-triplet fraction from which the loss counts as saturated.
    margin : float, optional
        The loss of a collapsed embedding, i.e. the margin of the triplet
        loss. By default it is read from the compiled loss (e.g.
        :class:`dmlkeras.losses.TripletLoss`): its ``margin`` attribute, or
        ``log(2)`` when it has ``soft=True``. The saturated-loss sign is not
        checked when neither gives a value.
    stop : bool, default False
        Stop training when warning.
    monitor_prefix : str, default ""
        Prefix of the log keys: ``""`` for the training metrics, ``"val_"``
        for the validation ones.
    check_weights : bool, default True
        Also check every weight of the model for NaN / Inf at the end of
        each epoch (one reduction per weight, on the device).

    Attributes
    ----------
    collapse_epoch : int or None
        The (0-based) epoch at which the monitor warned of a collapse during
        the last ``fit``, or None.
    nonfinite_epoch : int or None
        The (0-based) epoch at which the monitor found NaN or Inf during the
        last ``fit``, or None.

    Notes
    -----
    The monitor reads the log keys of the metrics of :mod:`dmlkeras.metrics`
    under their default names, so compile them with those names. The
    distance-gap sign needs two of ``distance_gap``,
    ``mean_positive_distance`` and ``mean_negative_distance`` (i.e. two of
    :class:`~dmlkeras.metrics.DistanceGap`,
    :class:`~dmlkeras.metrics.MeanPositiveDistance`,
    :class:`~dmlkeras.metrics.MeanNegativeDistance`); the saturated-loss
    sign needs ``active_triplet_fraction``
    (:class:`~dmlkeras.metrics.ActiveTripletFraction`, with the loss's
    margin and mining), ``loss`` and a margin. When neither sign can be
    read, the monitor warns once (a plain ``UserWarning``) saying what to
    add to ``compile(metrics=...)``. Epochs are judged on the epoch
    averages that Keras logs; an epoch whose batches held no pair at all
    (every batch a single sample) logs distances of 0 and so looks
    collapsed too.

    Examples
    --------
    A model whose output is constant has collapsed from the start:

    >>> import warnings
    >>> import numpy as np
    >>> import keras
    >>> from dmlkeras.losses import TripletLoss
    >>> from dmlkeras.metrics import ActiveTripletFraction, MeanNegativeDistance, MeanPositiveDistance
    >>> x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    >>> y = np.arange(32) % 4
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, kernel_initializer="zeros")])
    >>> model.compile(optimizer="adam", loss=TripletLoss(mining="hard"),
    ...               metrics=[ActiveTripletFraction(mining="hard"), MeanPositiveDistance(), MeanNegativeDistance()])
    >>> monitor = CollapseMonitor(patience=2, stop=True)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     history = model.fit(x, y, batch_size=16, epochs=5, verbose=0, callbacks=[monitor])
    >>> len(history.history["loss"]), monitor.collapse_epoch
    (2, 1)
    >>> [w.category.__name__ for w in caught if issubclass(w.category, CollapseWarning)]
    ['CollapseWarning']
    """

    def __init__(
        self,
        patience: int = 2,
        min_gap: float = 0.05,
        min_active: float = 0.95,
        margin: float | None = None,
        stop: bool = False,
        monitor_prefix: str = "",
        check_weights: bool = True,
    ) -> None:
        super().__init__()
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be a positive int; got {patience!r}.")
        if not min_gap >= 0:
            raise ValueError(f"min_gap must be >= 0; got {min_gap!r}.")
        if not 0 <= min_active <= 1:
            raise ValueError(f"min_active must be in [0, 1]; got {min_active!r}.")
        if margin is not None and not margin > 0:
            raise ValueError(f"margin must be > 0 or None; got {margin!r}.")
        self.patience = patience
        self.min_gap = float(min_gap)
        self.min_active = float(min_active)
        self.margin = None if margin is None else float(margin)
        self.stop = bool(stop)
        self.monitor_prefix = monitor_prefix
        self.check_weights = bool(check_weights)
        self.collapse_epoch: int | None = None
        self.nonfinite_epoch: int | None = None
        self._streak = 0
        self._missing_warned = False

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        self.collapse_epoch = None
        self.nonfinite_epoch = None
        self._streak = 0
        self._missing_warned = False

    def _nonfinite_logs(self, logs: Mapping[str, Any]) -> list[str]:
        """``"key=value"`` for each monitored log value that is NaN or Inf."""
        found = []
        for key in _LOG_KEYS:
            value = self._get(logs, key)
            if value is not None and not math.isfinite(value):
                found.append(f"{self.monitor_prefix + key}={value}")
        return found

    def _nonfinite_weights(self) -> list[str]:
        """Paths of the model's weights that hold a NaN or an Inf."""
        if not self.check_weights or self.model is None:
            return []
        return [
            getattr(w, "path", w.name) for w in self.model.weights if not bool(ops.all(ops.isfinite(w)))
        ]

    def _warn_nonfinite(self, epoch: int, logs: Mapping[str, Any]) -> bool:
        """Warn (once per fit) and return True when a log value or a weight is NaN / Inf."""
        bad_logs = self._nonfinite_logs(logs)
        bad_weights = self._nonfinite_weights()
        if not bad_logs and not bad_weights:
            return False
        if self.nonfinite_epoch is not None:
            return True
        self.nonfinite_epoch = epoch
        parts = []
        if bad_logs:
            parts.append("the epoch logs hold " + ", ".join(bad_logs))
        if bad_weights:
            shown = ", ".join(bad_weights[:5]) + (f" and {len(bad_weights) - 5} more" if len(bad_weights) > 5 else "")
            parts.append(f"{len(bad_weights)} weight(s) hold NaN or Inf ({shown})")
        action = " Training stopped (stop=True)." if self.stop else ""
        warnings.warn(
            f"NaN or Inf in training (epoch {epoch + 1}): " + "; and ".join(parts) + ". This is not a "
            "collapse: the model has diverged or received non-finite input, and its distances and loss "
            "mean nothing until that is fixed. " + NONFINITE_REMEDIES + action,
            NonFiniteWarning,
            stacklevel=3,
        )
        if self.stop:
            self.model.stop_training = True
        return True

    def _get(self, logs: Mapping[str, Any], key: str) -> float | None:
        value = logs.get(self.monitor_prefix + key)
        return None if value is None else float(value)

    def _gap_sign(self, logs: Mapping[str, Any]) -> str | None:
        """Why the gap looks collapsed; ``""`` when it does not, None when the logs lack it."""
        gap = self._get(logs, "distance_gap")
        positive = self._get(logs, "mean_positive_distance")
        negative = self._get(logs, "mean_negative_distance")
        if positive is not None and negative is not None:
            gap = negative - positive if gap is None else gap
            scale = (positive + negative) / 2
        elif gap is not None and positive is not None:
            scale = positive + gap / 2
        elif gap is not None and negative is not None:
            scale = negative - gap / 2
        else:
            return None
        if abs(gap) > self.min_gap * scale:
            return ""
        if scale == 0:
            return "every distance between embeddings is 0"
        return (
            f"the distance gap (mean negative-pair minus mean positive-pair distance) is {gap:.4g}, "
            f"within {self.min_gap:.0%} of the mean distance {scale:.4g}"
        )

    def _collapsed_loss(self) -> float | None:
        """The loss of a collapsed embedding: the margin, or log(2) for a soft margin."""
        if self.margin is not None:
            return self.margin
        loss = getattr(self.model, "loss", None)
        return math.log(2.0) if getattr(loss, "soft", False) else getattr(loss, "margin", None)

    def _saturation_sign(self, logs: Mapping[str, Any]) -> str | None:
        """Why the loss looks saturated; ``""`` when it does not, None when the logs lack it."""
        active = self._get(logs, "active_triplet_fraction")
        loss = self._get(logs, "loss")
        collapsed_loss = self._collapsed_loss()
        if active is None or loss is None or collapsed_loss is None:
            return None
        if active < self.min_active or abs(loss - collapsed_loss) > self.min_gap * collapsed_loss:
            return ""
        return (
            f"{active:.1%} of the triplets are active and the loss ({loss:.4g}) sits at the value of a "
            f"collapsed embedding ({collapsed_loss:.4g})"
        )

    def _warn_missing(self) -> None:
        self._missing_warned = True
        prefix = self.monitor_prefix
        warnings.warn(
            "CollapseMonitor cannot check for collapse: the epoch logs have neither two of "
            f"'{prefix}distance_gap', '{prefix}mean_positive_distance', '{prefix}mean_negative_distance' "
            f"nor '{prefix}active_triplet_fraction' with '{prefix}loss' and a known margin. Add the metrics "
            "to compile, keeping their default names, e.g. model.compile(..., metrics=["
            "dmlkeras.metrics.MeanPositiveDistance(), dmlkeras.metrics.MeanNegativeDistance(), "
            "dmlkeras.metrics.ActiveTripletFraction(margin=..., mining=...)]) (the last one with the loss's "
            "margin and mining; pass CollapseMonitor(margin=...) if the loss has no 'margin' attribute)"
            + (", and validation_data to fit for the 'val_' keys." if prefix == "val_" else "."),
            UserWarning,
            stacklevel=2,
        )

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        logs = logs or {}
        if self._warn_nonfinite(epoch, logs):
            self._streak = 0
            return
        signs = [self._gap_sign(logs), self._saturation_sign(logs)]
        if all(sign is None for sign in signs):
            if not self._missing_warned:
                self._warn_missing()
            return
        reasons = [sign for sign in signs if sign]
        self._streak = self._streak + 1 if reasons else 0
        if self._streak < self.patience or self.collapse_epoch is not None:
            return
        self.collapse_epoch = epoch
        action = " Training stopped (stop=True)." if self.stop else ""
        warnings.warn(
            f"The embedding seems to have collapsed (epoch {epoch + 1}, {self._streak} epochs in a row): "
            + "; and ".join(reasons)
            + ". All embeddings sit at nearly the same point, so every distance is nearly the same, the "
            "loss stays at the margin and the model learns nothing about the classes. "
            + REMEDIES
            + action,
            CollapseWarning,
            stacklevel=2,
        )
        if self.stop:
            self.model.stop_training = True


# ------------------------------------------------------------ evaluation
# (Moved here from dmlkeras.evaluation, which takes arrays and never calls a
# model; imported here so that this section is a pure append.)
from collections.abc import Sequence  # noqa: E402

import numpy as np  # noqa: E402
from numpy.typing import ArrayLike  # noqa: E402

from dmlkeras._validation import check_int  # noqa: E402
from dmlkeras.evaluation import retrieval_metrics  # noqa: E402

__all__ += ["RetrievalEvaluation"]


class RetrievalEvaluation(keras.callbacks.Callback):
    """Keras callback logging retrieval metrics of a validation set.

    Every ``every`` epochs (and at the last epoch) it embeds ``x`` with
    ``self.model.predict(x)`` and writes ``precision_at_1``, ``map_at_r``,
    ``r_precision`` and ``recall_at_{k}`` of
    :func:`dmlkeras.evaluation.retrieval_metrics`
    (leave-one-out on ``x``, or ``x`` as queries against ``gallery``) into
    the epoch ``logs`` with ``prefix``, so they show in
    ``history.history``, progress bars and ``keras.callbacks.CSVLogger``
    (list this callback before CSVLogger / EarlyStopping /
    ModelCheckpoint so they see the values). Epochs that are skipped log NaN,
    so every key has one value per epoch.

    Parameters
    ----------
    x : array-like
        Model inputs of the validation queries.
    y : array-like of shape (n,)
        Their labels.
    every : int, default 1
        Evaluate every ``every`` epochs.
    k : int or sequence of int, default (1,)
        Cut-offs of ``recall_at_k``.
    metric : {"euclidean", "cosine"}, default "euclidean"
    prefix : str, default "val_"
    gallery : tuple (x_gallery, y_gallery), optional
        Inputs and labels of a separate gallery.
    batch_size : int, optional
        Passed to ``model.predict``.
    backend : {"numpy", "faiss"}, default "numpy"
    embedding_model : keras.Model, optional
        The model that embeds ``x`` (the tower); default the model being
        trained, which must then have one input. Give the tower when
        training a classifier on top of it or a head model
        (:func:`dmlkeras.models.build_head_model`).

    Attributes
    ----------
    results : list of dict
        ``(epoch, metrics)`` of each evaluation.

    Examples
    --------
    >>> import keras
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(20, 4)).astype("float32")
    >>> y = np.arange(20) % 2
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> cb = RetrievalEvaluation(x, y, k=(1, 5))
    >>> h = model.fit(x, np.zeros((20, 3)), epochs=2, verbose=0, callbacks=[cb])
    >>> sorted(name for name in h.history if name.startswith("val_"))
    ['val_map_at_r', 'val_precision_at_1', 'val_r_precision', 'val_recall_at_1', 'val_recall_at_5']
    """

    def __init__(
        self,
        x: Any,
        y: ArrayLike,
        every: int = 1,
        k: int | Sequence[int] = (1,),
        metric: str = "euclidean",
        prefix: str = "val_",
        gallery: tuple[Any, ArrayLike] | None = None,
        batch_size: int | None = None,
        backend: str = "numpy",
        embedding_model: keras.Model | None = None,
    ) -> None:
        super().__init__()
        if gallery is not None and (not isinstance(gallery, (tuple, list)) or len(gallery) != 2):
            raise ValueError("gallery must be a tuple (x_gallery, y_gallery).")
        self.x = x
        self.y = np.asarray(y)
        self.every = check_int(every, "every")
        self.k = tuple(sorted({check_int(v, "k") for v in ((k,) if isinstance(k, (int, np.integer)) else k)}))
        self.metric = metric
        self.prefix = prefix
        self.gallery = gallery
        self.batch_size = batch_size
        self.backend = backend
        self.embedding_model = embedding_model
        self.results: list[tuple[int, dict[str, float]]] = []

    def _names(self) -> list[str]:
        return ["precision_at_1", "map_at_r", "r_precision"] + [f"recall_at_{kk}" for kk in self.k]

    def _embed(self, x: Any) -> np.ndarray:
        model = self.embedding_model if self.embedding_model is not None else self.model
        # A subclassed model (e.g. models.CrossBatchMemory, whose predict is its tower's) has no
        # symbolic inputs: only a functional model with several inputs (a head model) is refused.
        inputs = getattr(model, "inputs", None) or []
        if self.embedding_model is None and len(inputs) > 1:
            raise ValueError(
                f"The model has {len(inputs)} inputs: pass its tower as embedding_model= "
                "(dmlkeras.models.get_embedding_model(model))."
            )
        emb = np.asarray(model.predict(x, batch_size=self.batch_size, verbose=0))
        return emb.reshape(emb.shape[0], -1)

    def evaluate(self) -> dict[str, float]:
        """Embed the data with the current model and return the metrics."""
        emb = self._embed(self.x)
        if self.gallery is None:
            m = retrieval_metrics(emb, self.y, k=self.k, metric=self.metric, clustering=False, backend=self.backend)
        else:
            m = retrieval_metrics(
                emb, self.y, self._embed(self.gallery[0]), np.asarray(self.gallery[1]),
                k=self.k, metric=self.metric, clustering=False, backend=self.backend,
            )
        return {name: float(m[name]) for name in self._names()}

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        last = (self.params or {}).get("epochs")
        if (epoch + 1) % self.every == 0 or (last is not None and epoch + 1 == last):
            values = self.evaluate()
            self.results.append((epoch, values))
        else:
            values = {name: float("nan") for name in self._names()}
        if logs is not None:
            for name, value in values.items():
                logs[self.prefix + name] = value


# ------------------------------------------------------------ probes of unlabelled training
from dmlkeras.evaluation import knn_accuracy, linear_probe_accuracy  # noqa: E402

__all__ += ["ProbeEvaluation"]


class ProbeEvaluation(RetrievalEvaluation):
    """Keras callback logging k-NN and linear-probe accuracy of the frozen embedding, per epoch.

    For training without labels (:func:`dmlkeras.models.build_ssl_model`):
    every ``every`` epochs (and at the last) it embeds a labelled training set
    and a test set with ``embedding_model`` (the tower; default the model being
    trained, which must then have one input) and logs, with ``prefix``,
    ``knn_accuracy`` (:func:`dmlkeras.evaluation.knn_accuracy`, test against
    train) and ``linear_probe_{p}pct`` for each label fraction
    (:func:`dmlkeras.evaluation.linear_probe_accuracy`, e.g.
    ``linear_probe_1pct``). The labels are read by the probes only, never by
    training. Skipped epochs log NaN, as in :class:`RetrievalEvaluation`.

    Parameters
    ----------
    x, y : array-like
        Test inputs and their labels.
    train : tuple (x_train, y_train)
        Labelled training inputs (the k-NN gallery and the probe's training set).
    embedding_model : keras.Model, optional
        The tower (``get_embedding_model(model)``); default ``self.model``.
    every : int, default 1
    k : int, default 1
        Neighbours of the k-NN classifier.
    metric : {"euclidean", "cosine", "dot"}, default "cosine"
    label_fractions : sequence of float, default (1.0,)
        Fractions of the training labels for the linear probe, each in (0, 1].
    C : float, default 1.0
        The probe's inverse regularisation.
    prefix : str, default "val_"
    batch_size : int, optional
        Passed to ``predict``.

    Attributes
    ----------
    results : list of (epoch, dict)

    Examples
    --------
    >>> import keras
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.arange(40) % 2
    >>> x = (rng.normal(size=(40, 4)) + 2.0 * y[:, None]).astype("float32")
    >>> tower = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> tower.compile(optimizer="sgd", loss="mse")
    >>> probe = ProbeEvaluation(x[20:], y[20:], train=(x[:20], y[:20]), label_fractions=(0.5, 1.0))
    >>> h = tower.fit(x, np.zeros((40, 3)), epochs=1, verbose=0, callbacks=[probe])
    >>> sorted(name for name in h.history if name.startswith("val_"))
    ['val_knn_accuracy', 'val_linear_probe_100pct', 'val_linear_probe_50pct']
    """

    def __init__(
        self,
        x: Any,
        y: ArrayLike,
        train: tuple[Any, ArrayLike],
        embedding_model: keras.Model | None = None,
        every: int = 1,
        k: int = 1,
        metric: str = "cosine",
        label_fractions: Sequence[float] = (1.0,),
        C: float = 1.0,
        prefix: str = "val_",
        batch_size: int | None = None,
    ) -> None:
        if not isinstance(train, (tuple, list)) or len(train) != 2:
            raise ValueError("train must be a tuple (x_train, y_train) of labelled inputs.")
        super().__init__(
            x, y, every=every, metric=metric, prefix=prefix, gallery=tuple(train), batch_size=batch_size,
            embedding_model=embedding_model,
        )
        self.k_neighbours = check_int(k, "k")
        self.label_fractions = tuple(float(f) for f in label_fractions)
        if not self.label_fractions or any(not 0.0 < f <= 1.0 for f in self.label_fractions):
            raise ValueError(f"label_fractions must be fractions in (0, 1]; got {label_fractions!r}.")
        self.C = C

    def _names(self) -> list[str]:
        return ["knn_accuracy"] + [f"linear_probe_{100 * f:g}pct" for f in self.label_fractions]


    def evaluate(self) -> dict[str, float]:
        """Embed both sets with the current weights and return the probes' accuracies."""
        train_x, train_y = self.gallery
        train_emb, test_emb = self._embed(train_x), self._embed(self.x)
        values = {"knn_accuracy": knn_accuracy(train_emb, train_y, test_emb, self.y, k=self.k_neighbours, metric=self.metric)}
        for name, fraction in zip(self._names()[1:], self.label_fractions):
            values[name] = linear_probe_accuracy(train_emb, train_y, test_emb, self.y, label_fraction=fraction, C=self.C)
        return values


# ------------------------------------------------------------ verification of validation pairs
from dmlkeras.distances import paired_distances  # noqa: E402
from dmlkeras.evaluation import verification_metrics  # noqa: E402

__all__ += ["VerificationEvaluation"]


class VerificationEvaluation(RetrievalEvaluation):
    """Keras callback logging verification metrics of validation pairs, per epoch.

    Every ``every`` epochs (and at the last) it embeds the validation inputs
    ``x`` once with ``embedding_model`` (the tower; default the model being
    trained, which must then have one input), takes the distance of each
    pair of rows in ``pairs`` and logs, with ``prefix``, ``roc_auc``,
    ``eer``, ``tar_at_far_0.01`` and ``accuracy`` (at the best threshold of
    these pairs) of :func:`dmlkeras.evaluation.verification_metrics`. List it
    before ``keras.callbacks.EarlyStopping(monitor="val_roc_auc", mode="max",
    restore_best_weights=True)`` to keep the epoch that verifies the
    validation pairs best. Skipped epochs log NaN, as in
    :class:`RetrievalEvaluation`.

    Parameters
    ----------
    x : array-like
        Inputs of the validation items (each embedded once).
    pairs : array-like of int, shape (n_pairs, 2)
        Row numbers into ``x`` of the two items of each pair
        (:func:`dmlkeras.data.make_pair_indices` draws them).
    is_same : array-like of shape (n_pairs,)
        Boolean (or 0/1): True when the pair shows the same identity.
    metric : {"cosine", "euclidean", ...}, default "cosine"
        Passed to :func:`dmlkeras.distances.paired_distances`.
    every : int, default 1
    prefix : str, default "val_"
    batch_size : int, optional
        Passed to ``predict``.
    embedding_model : keras.Model, optional
        The model that embeds ``x`` (the tower of a classifier or head model).

    Attributes
    ----------
    results : list of (epoch, dict)

    Raises
    ------
    ValueError
        If ``pairs`` is not ``(n_pairs, 2)`` row numbers into ``x``, or
        ``is_same`` does not hold one flag per pair with both classes.

    Examples
    --------
    >>> import keras
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(20, 4)).astype("float32")
    >>> pairs = np.array([[0, 1], [2, 3], [4, 5], [6, 7]])
    >>> tower = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> tower.compile(optimizer="sgd", loss="mse")
    >>> cb = VerificationEvaluation(x, pairs, [True, False, True, False])
    >>> h = tower.fit(x, np.zeros((20, 3)), epochs=2, verbose=0, callbacks=[cb])
    >>> sorted(name for name in h.history if name.startswith("val_"))
    ['val_accuracy', 'val_eer', 'val_roc_auc', 'val_tar_at_far_0.01']
    """

    def __init__(
        self,
        x: Any,
        pairs: ArrayLike,
        is_same: ArrayLike,
        metric: str = "cosine",
        every: int = 1,
        prefix: str = "val_",
        batch_size: int | None = None,
        embedding_model: keras.Model | None = None,
    ) -> None:
        rows = np.asarray(pairs)
        n = len(x)
        if rows.ndim != 2 or rows.shape[1] != 2 or not np.issubdtype(rows.dtype, np.integer):
            raise ValueError(f"pairs must be integer row numbers of shape (n_pairs, 2); got shape {rows.shape}.")
        if rows.size == 0 or rows.min() < 0 or rows.max() >= n:
            raise ValueError(f"pairs must hold row numbers in [0, {n}) (the rows of x); got values outside.")
        same = np.asarray(is_same)
        if same.shape != (len(rows),) or not np.isin(same, (0, 1)).all() or same.all() or not same.any():
            raise ValueError(
                f"is_same must hold one boolean per pair, shape ({len(rows)},), with both same and different pairs."
            )
        super().__init__(x, same.astype(bool), every=every, metric=metric, prefix=prefix, batch_size=batch_size,
                         embedding_model=embedding_model)
        self.pairs = rows

    def _names(self) -> list[str]:
        return ["roc_auc", "eer", "tar_at_far_0.01", "accuracy"]

    def evaluate(self) -> dict[str, float]:
        """Embed ``x`` with the current weights and return the metrics of the pairs."""
        emb = self._embed(self.x)
        d = ops.convert_to_numpy(paired_distances(emb[self.pairs[:, 0]], emb[self.pairs[:, 1]], metric=self.metric))
        m = verification_metrics(d, self.y)
        return {name: float(m[name]) for name in self._names()}
