"""Issue 21, "nothing silent": a table of bad inputs across the public API, and
a bounded grid of degenerate batches over every loss and head.

* The bad-input table: every entry must raise ``ValueError`` (or the error
  its docstring documents) with a message naming the expected shape, range
  or name (``match=``).
* The grid: losses x heads x batch kinds (single sample, one class,
  all-distinct, identical, zero, 1e-8 and 1e4-norm embeddings, P x K) x
  dtypes (float32, float16, bfloat16) on the current backend (the Makefile
  runs this file on TensorFlow and on JAX), eager and compiled; it counts
  NaN / Inf in the values and in the gradients and fails on any.
* NaN in -> NaN out: a NaN or Inf among the embeddings gives a non-finite
  loss (so ``keras.callbacks.TerminateOnNaN`` and the loss-scale optimizer
  see it), never a plausible number.

docs/reliability.md says what is promised per input class and which test
checks it.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from keras import ops

from dmlkeras import data, distances, evaluation, heads, losses, mining, models
from dmlkeras.index import NearestNeighbors

BACKEND = keras.backend.backend()
RNG = np.random.default_rng(0)
EMB = RNG.normal(size=(4, 3)).astype("float32")
W3 = RNG.normal(size=(3, 3)).astype("float32")
BAD_LABELS = np.array([0, 1, 5, -1])


def _tower():
    return models.build_embedding_model((4,), embedding_dim=2, backbone="mlp")


def _head_layer_call(head):
    return head([EMB, BAD_LABELS])


# The third argument of each head function (keywords work whatever the argument order).
HEAD_WEIGHT = {
    "center_loss": "centers",
    "center_update": "centers",
    "triplet_center_loss": "centers",
    "proxy_anchor_loss": "proxies",
    "arcface_loss": "weights",
    "cosface_loss": "weights",
}


def _head(fn, embeddings, labels, weights, **kwargs):
    return fn(embeddings=embeddings, labels=labels, **{HEAD_WEIGHT[fn.__name__]: weights}, **kwargs)


# ---------------------------------------------------------------- the bad-input table
# (id, thunk, expected exception, regex the message must match)
BAD_INPUTS = [
    # -- losses: constructors
    ("TripletLoss(margin=-1)", lambda: losses.TripletLoss(margin=-1.0), ValueError, "margin"),
    ("TripletLoss(margin=nan)", lambda: losses.TripletLoss(margin=float("nan")), ValueError, "margin"),
    ("TripletLoss(mining='x')", lambda: losses.TripletLoss(mining="x"), ValueError, "mining must be one of"),
    ("TripletLoss(metric='x')", lambda: losses.TripletLoss(metric="x"), ValueError, "metric"),
    ("ContrastiveLoss(margin=-1)", lambda: losses.ContrastiveLoss(margin=-1.0), ValueError, "margin"),
    ("BatchContrastiveLoss(neg_margin=inf)", lambda: losses.BatchContrastiveLoss(neg_margin=math.inf), ValueError, "neg_margin"),
    ("MultiSimilarityLoss(alpha=0)", lambda: losses.MultiSimilarityLoss(alpha=0.0), ValueError, "alpha"),
    ("MultiSimilarityLoss(beta=-1)", lambda: losses.MultiSimilarityLoss(beta=-1.0), ValueError, "beta"),
    ("CircleLoss(gamma=0)", lambda: losses.CircleLoss(gamma=0.0), ValueError, "gamma"),
    ("SupervisedContrastiveLoss(temperature=nan)",
     lambda: losses.SupervisedContrastiveLoss(temperature=float("nan")), ValueError, "temperature"),
    ("SupervisedContrastiveLoss(temperature=0)",
     lambda: losses.SupervisedContrastiveLoss(temperature=0.0), ValueError, "temperature"),
    ("NPairsLoss(l2_reg=-1)", lambda: losses.NPairsLoss(l2_reg=-1.0), ValueError, "l2_reg"),
    ("LiftedStructureLoss(margin=-1)", lambda: losses.LiftedStructureLoss(margin=-1.0), ValueError, "margin"),
    ("QuadrupletLoss(margin_pos=-1)", lambda: losses.QuadrupletLoss(margin_pos=-1.0), ValueError, "margin_pos"),
    # -- losses: calls
    ("TripletLoss on 3-D y_pred", lambda: losses.TripletLoss()(np.zeros(4), np.zeros((4, 2, 3))),
     ValueError, r"y_pred must be embeddings of shape \(batch_size, embedding_dim\)"),
    ("TripletLoss on 5 labels for 4 embeddings", lambda: losses.TripletLoss()(np.zeros(5), EMB),
     ValueError, "one label per embedding"),
    ("TripletLoss on 3-D labels", lambda: losses.TripletLoss()(np.zeros((4, 2, 2)), EMB),
     ValueError, r"y_true must be (integer )?class labels (of shape )?\(batch_size,\)"),
    ("TripletLoss on an empty batch", lambda: losses.TripletLoss()(np.zeros(0, "int32"), np.zeros((0, 3), "float32")),
     ValueError, r"(?i)empty|at least one"),
    ("SupervisedContrastiveLoss on an empty batch",
     lambda: losses.SupervisedContrastiveLoss()(np.zeros(0, "int32"), np.zeros((0, 3), "float32")),
     ValueError, r"(?i)empty|at least one"),
    ("ContrastiveLoss on mismatched pairs", lambda: losses.ContrastiveLoss()(np.zeros(3), np.zeros(4)),
     ValueError, "y_true"),
    ("TripletMarginLoss on (n, 2, d)", lambda: losses.TripletMarginLoss()(np.zeros(4), np.zeros((4, 2, 3))),
     ValueError, r"\(batch_size, 3, embedding_dim\)"),
    # -- heads: functions, labels outside [0, num_classes)
    *[
        (f"{fn.__name__} with labels outside [0, 3)", (lambda fn=fn: _head(fn, EMB, BAD_LABELS, W3)), ValueError, "num_classes")
        for fn in (heads.center_loss, heads.triplet_center_loss, heads.proxy_anchor_loss, heads.arcface_loss,
                   heads.cosface_loss)
    ],
    ("arcface_loss with non-integral float labels",
     lambda: _head(heads.arcface_loss, EMB, np.array([0.0, 1.5, 2.0, 1.0]), W3), ValueError, r"non-integral|integer"),
    ("center_update with labels outside [0, 3)", lambda: _head(heads.center_update, EMB, BAD_LABELS, W3), ValueError, "num_classes"),
    ("arcface_loss with 1-D embeddings", lambda: _head(heads.arcface_loss, np.zeros(4), np.zeros(4), W3),
     ValueError, r"embeddings must have shape \(batch_size, embedding_dim\)"),
    ("arcface_loss with weights of another d", lambda: _head(heads.arcface_loss, EMB, np.zeros(4, "int32"), np.zeros((3, 5))),
     ValueError, r"\(num_classes, embedding_dim\)"),
    # -- heads: layers
    *[
        (f"{cls.__name__} layer with labels outside [0, 3)", (lambda cls=cls: _head_layer_call(cls(num_classes=3))),
         ValueError, "num_classes")
        for cls in (heads.CenterLoss, heads.TripletCenterLoss, heads.ProxyAnchorLoss, heads.ArcFace, heads.CosFace)
    ],
    ("ArcFace(num_classes=0)", lambda: heads.ArcFace(num_classes=0), ValueError, "num_classes"),
    ("ArcFace(scale=0)", lambda: heads.ArcFace(num_classes=3, scale=0.0), ValueError, "scale"),
    ("ArcFace(margin=nan)", lambda: heads.ArcFace(num_classes=3, margin=float("nan")), ValueError, "margin"),
    ("CosFace(margin=-0.1)", lambda: heads.CosFace(num_classes=3, margin=-0.1), ValueError, "margin"),
    ("ProxyAnchorLoss(alpha=0)", lambda: heads.ProxyAnchorLoss(num_classes=3, alpha=0.0), ValueError, "alpha"),
    ("CenterLoss(alpha=2)", lambda: heads.CenterLoss(num_classes=3, alpha=2.0), ValueError, "alpha"),
    ("TripletCenterLoss(margin=-1)", lambda: heads.TripletCenterLoss(num_classes=3, margin=-1.0), ValueError, "margin"),
    ("ArcFace on a single tensor", lambda: heads.ArcFace(num_classes=3)(EMB), ValueError,
     r"\[(labels, embeddings|embeddings, labels)\]"),
    # -- distances
    ("pairwise_distances(metric='x')", lambda: distances.pairwise_distances(EMB, metric="x"), ValueError, "metric"),
    ("pairwise_distances on 1-D input", lambda: distances.pairwise_distances(np.zeros(3)), ValueError, r"\(n, d\)"),
    ("pairwise_distances with different d", lambda: distances.pairwise_distances(EMB, np.zeros((2, 5))),
     ValueError, "same embedding size d"),
    ("paired_distances with different n", lambda: distances.paired_distances(EMB, np.zeros((2, 3))),
     ValueError, "shape"),
    # -- miners
    ("mined_triplets(mining='x')",
     lambda: mining.mined_triplets(distances.pairwise_distances(EMB), np.array([0, 0, 1, 1]), "x"),
     ValueError, "mining"),
    # -- evaluation
    ("retrieval_metrics with 3 labels for 4 embeddings", lambda: evaluation.retrieval_metrics(EMB, [0, 1, 0], k=1),
     ValueError, "4"),
    ("retrieval_metrics(k=0)", lambda: evaluation.retrieval_metrics(EMB, [0, 1, 0, 1], k=0), ValueError, r"\bk\b"),
    ("retrieval_metrics(k=2.5)", lambda: evaluation.retrieval_metrics(EMB, [0, 1, 0, 1], k=2.5), ValueError, r"\bk\b"),
    ("retrieval_metrics on NaN embeddings",
     lambda: evaluation.retrieval_metrics(np.full((4, 3), np.nan), [0, 1, 0, 1], k=1), ValueError, "NaN"),
    ("retrieval_metrics(metric='x')", lambda: evaluation.retrieval_metrics(EMB, [0, 1, 0, 1], k=1, metric="x"),
     ValueError, "metric"),
    ("verification_metrics with mismatched lengths",
     lambda: evaluation.verification_metrics(np.zeros(4), np.zeros(3)), ValueError, "is_same|length|shape|4"),
    # -- index
    ("NearestNeighbors(metric='x')", lambda: NearestNeighbors(metric="x"), ValueError, "metric must be one of"),
    ("NearestNeighbors.search before add",
     lambda: NearestNeighbors().search(EMB, k=1), ValueError, "(?i)empty|add|fit"),
    # -- data
    ("ClassBalancedBatches(classes_per_batch=1)",
     lambda: data.ClassBalancedBatches(EMB, [0, 0, 1, 1], classes_per_batch=1, samples_per_class=2),
     ValueError, "classes_per_batch"),
    ("ClassBalancedBatches(classes_per_batch=3) on 2 classes",
     lambda: data.ClassBalancedBatches(EMB, [0, 0, 1, 1], classes_per_batch=3, samples_per_class=2),
     ValueError, "classes_per_batch=3"),
    ("ClassBalancedBatches with 3 labels for 4 samples",
     lambda: data.ClassBalancedBatches(EMB, [0, 0, 1], classes_per_batch=2, samples_per_class=2),
     ValueError, "3|4"),
    ("make_pairs(n_pairs=0)", lambda: data.make_pairs(EMB, [0, 0, 1, 1], n_pairs=0), ValueError, "n_pairs"),
    ("make_pairs(positive_fraction=2)",
     lambda: data.make_pairs(EMB, [0, 0, 1, 1], n_pairs=4, positive_fraction=2.0), ValueError, "positive_fraction"),
    ("make_pairs(seed=-1)", lambda: data.make_pairs(EMB, [0, 0, 1, 1], n_pairs=4, seed=-1), ValueError, "seed"),
    # -- models
    ("build_embedding_model(embedding_dim=0)", lambda: models.build_embedding_model((4,), embedding_dim=0),
     ValueError, "embedding_dim"),
    ("build_embedding_model(backbone='x')", lambda: models.build_embedding_model((4,), backbone="x"),
     ValueError, "backbone"),
    ("build_siamese_model(metric='x')", lambda: models.build_siamese_model(_tower(), metric="x"), ValueError, "metric"),
    ("get_embedding_model('not a model')", lambda: models.get_embedding_model("not a model"),
     ValueError, "keras.Model"),
]


def _datasets_entries():
    from dmlkeras import datasets

    return [
        ("load_lfw_pairs(subset='x')", lambda: datasets.load_lfw_pairs(subset="x", download=False),
         ValueError, "subset must be one of"),
        ("lfw_pair_people(subset='x')", lambda: datasets.lfw_pair_people(subset="x", download=False),
         ValueError, "subset must be one of"),
    ]


def _cli_entries():
    from dmlkeras.cli import main

    def exit_code(argv):
        try:
            return main(argv)
        except SystemExit as exit_info:
            return exit_info.code

    def refused(argv):
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            code = exit_code([*argv, "--out", folder])
        if code == 2:
            raise SystemExit(2)

    return [
        (f"dmlkeras {' '.join(argv)}", (lambda argv=argv: refused(argv)), SystemExit, "2")
        for argv in (
            ["train", "--learning-rate", "inf"],
            ["train", "--epochs", "0"],
            ["train", "--classes-per-batch", "11"],
        )
    ]


ALL_BAD_INPUTS = BAD_INPUTS + _datasets_entries() + _cli_entries()


def _case(entry):
    """An entry as a pytest.param with its description as id (keeping the marks of a pytest.param entry)."""
    if hasattr(entry, "marks"):  # already a pytest.param
        return pytest.param(*entry.values[1:], id=entry.values[0], marks=entry.marks)
    return pytest.param(*entry[1:], id=entry[0])


@pytest.mark.parametrize("thunk, error, match", [_case(e) for e in ALL_BAD_INPUTS])
def test_bad_input_raises_a_clear_error(thunk, error, match):
    with pytest.raises(error, match=match):
        thunk()


def test_label_ids_above_2_to_the_24_stay_distinct():
    # float32 (Keras' cast of y_true) merges 2**24 and 2**24 + 1: exact integer handling or a clear refusal.
    emb = np.array([[0.0, 0.0], [0.0, 1.0], [3.0, 0.0], [3.0, 1.0]], "float32")
    small = np.array([0, 0, 1, 1])
    big = small + 2**24
    big[2:] += 1
    reference = float(losses.TripletLoss(margin=1.0, mining="hard")(small, emb))
    try:
        value = float(losses.TripletLoss(margin=1.0, mining="hard")(big, emb))
    except ValueError as error:
        assert "2**24" in str(error) or str(2**24) in str(error)
    else:
        assert value == pytest.approx(reference)


# ---------------------------------------------------------------- the degenerate-batch grid
D = 8


def _batch(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(labels, float64 embeddings) of one batch kind."""
    rng = np.random.default_rng(BATCH_KINDS.index(kind))
    pk = np.repeat(np.arange(4), 3)
    if kind == "single":
        return np.array([0]), rng.normal(size=(1, D))
    if kind == "one_class":
        return np.zeros(6, "int64"), rng.normal(size=(6, D))
    if kind == "all_distinct":
        return np.arange(6), rng.normal(size=(6, D))
    if kind == "identical":
        return pk, np.repeat(rng.normal(size=(1, D)), len(pk), axis=0)
    if kind == "zero":
        return pk, np.zeros((len(pk), D))
    if kind == "tiny":
        return pk, 1e-8 * rng.normal(size=(len(pk), D))
    if kind == "large_norm":
        # Near-duplicates far from the origin: norms ~1e4, distances ~1.
        return pk, 1e4 * rng.normal(size=(1, D)) / math.sqrt(D) + rng.normal(size=(len(pk), D))
    if kind == "pk":
        return pk, rng.normal(size=(len(pk), D))
    raise ValueError(kind)


BATCH_KINDS = ("single", "one_class", "all_distinct", "identical", "zero", "tiny", "large_norm", "pk")
DTYPES = ("float32", "float16", "bfloat16")
NUM_CLASSES = 6

LOSSES = {
    "triplet-semihard": lambda: losses.TripletLoss(margin=0.5, mining="semi-hard"),
    "triplet-hard": lambda: losses.TripletLoss(margin=0.2, mining="hard"),
    "triplet-all": lambda: losses.TripletLoss(margin=0.2, mining="all"),
    "triplet-soft": lambda: losses.TripletLoss(mining="hard", soft=True),
    "triplet-cosine": lambda: losses.TripletLoss(margin=0.2, mining="semi-hard", metric="cosine"),
    "batch-contrastive": lambda: losses.BatchContrastiveLoss(),
    "multi-similarity": lambda: losses.MultiSimilarityLoss(),
    "circle": lambda: losses.CircleLoss(),
    "supcon": lambda: losses.SupervisedContrastiveLoss(),
    "n-pairs": lambda: losses.NPairsLoss(l2_reg=0.01),
    "lifted-structure": lambda: losses.LiftedStructureLoss(),
    "quadruplet": lambda: losses.QuadrupletLoss(),
}
HEADS = {
    "center": lambda e, y, w: _head(heads.center_loss, e, y, w),
    "triplet-center": lambda e, y, w: _head(heads.triplet_center_loss, e, y, w),
    "proxy-anchor": lambda e, y, w: _head(heads.proxy_anchor_loss, e, y, w),
    "arcface": lambda e, y, w: _head(heads.arcface_loss, e, y, w),
    "cosface": lambda e, y, w: _head(heads.cosface_loss, e, y, w),
}
FUNCTIONS = sorted(LOSSES) + sorted(HEADS)


def _objective(name: str):
    """``f(labels, embeddings, class_weights) -> scalar`` for a loss (weights unused) or a head."""
    if name in LOSSES:
        loss = LOSSES[name]()
        return lambda y, e, w: loss(y, e) + 0.0 * ops.sum(w)
    head = HEADS[name]
    return lambda y, e, w: head(e, y, w)


def _gradient_function(fn, compiled: bool):
    """``(labels, e, w) -> (value, d/de, d/dw)``; compiled once, so same-shape batches share a trace."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        def step(y, e, w):
            with tf.GradientTape() as tape:
                tape.watch([e, w])
                value = fn(y, e, w)
            ge, gw = tape.gradient(value, [e, w])
            return value, tf.zeros_like(e) if ge is None else ge, tf.zeros_like(w) if gw is None else gw

        step_fn = tf.function(step, jit_compile=False, reduce_retracing=True) if compiled else step
        return lambda y, e, w: step_fn(tf.constant(y), tf.constant(e), tf.constant(w))
    if BACKEND == "jax":
        import jax

        grad = jax.value_and_grad(fn, argnums=(1, 2))
        grad = jax.jit(grad) if compiled else grad

        def call(y, e, w):
            value, (ge, gw) = grad(y, e, w)
            return value, ge, gw

        return call
    pytest.skip(f"the grid runs on tensorflow and jax, not {BACKEND}")


def _as_dtype(x: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":
        return ops.convert_to_numpy(ops.cast(ops.convert_to_tensor(x.astype("float32")), dtype))
    return x.astype(dtype)


def _nonfinite(name: str, dtypes, compiled: bool) -> list[str]:
    """Descriptions of every NaN / Inf in the values and gradients of ``name`` over the grid."""
    step = _gradient_function(_objective(name), compiled)
    w = np.random.default_rng(1).normal(size=(NUM_CLASSES, D)).astype("float32")
    problems = []
    for kind in BATCH_KINDS:
        labels, emb = _batch(kind)
        for dtype in dtypes:
            outputs = step(labels.astype("int32"), _as_dtype(emb, dtype), w)
            for what, array in zip(("value", "d/d embeddings", "d/d class weights"), outputs):
                bad = int(np.sum(~np.isfinite(np.asarray(ops.convert_to_numpy(ops.cast(array, "float32"))))))
                if bad:
                    mode = " compiled" if compiled else ""
                    problems.append(f"{name} on {kind} {dtype}{mode}: {bad} non-finite in {what}")
    return problems


@pytest.mark.skipif(
    BACKEND == "jax",
    reason="on JAX, eager jax.grad dispatches (and compiles) every primitive per shape and dtype, ~10x slower; "
    "Keras' fit always jits there, and the compiled grid below covers every dtype",
)
@pytest.mark.parametrize("name", FUNCTIONS)
def test_grid_is_finite_in_values_and_gradients(name):
    """Every loss and head, on every batch kind, in every dtype, eager: no NaN, no Inf."""
    problems = _nonfinite(name, DTYPES, compiled=False)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_grid_is_finite_when_compiled(name):
    """The same grid under tf.function / jax.jit, the code path of ``fit``."""
    problems = _nonfinite(name, DTYPES, compiled=True)
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- NaN in -> NaN out
def _poisoned(kind: str) -> np.ndarray:
    emb = np.random.default_rng(2).normal(size=(12, D)).astype("float32")
    if kind == "all_nan":
        emb[:] = np.nan
    elif kind == "one_nan_row":
        emb[5] = np.nan
    elif kind == "one_nan_entry":
        emb[7, 3] = np.nan
    elif kind == "one_inf_entry":
        emb[2, 0] = np.inf
    return emb


POISON = ("all_nan", "one_nan_row", "one_nan_entry", "one_inf_entry")


@pytest.mark.parametrize("kind", POISON)
@pytest.mark.parametrize("name", FUNCTIONS)
def test_nan_in_gives_nan_out(name, kind):
    labels = ops.convert_to_tensor(np.repeat(np.arange(4), 3).astype("int32"))
    w = np.random.default_rng(1).normal(size=(NUM_CLASSES, D)).astype("float32")
    value = float(ops.convert_to_numpy(_objective(name)(labels, ops.convert_to_tensor(_poisoned(kind)), w)))
    assert not math.isfinite(value), f"{name} on {kind} embeddings returned {value}"


@pytest.mark.parametrize("metric", ["euclidean", "squared_euclidean", "cosine", "manhattan"])
def test_nan_in_gives_nan_out_for_distances(metric):
    emb = _poisoned("one_nan_entry")
    d = ops.convert_to_numpy(distances.pairwise_distances(emb, metric=metric))
    assert np.all(np.isnan(d[7, np.arange(12) != 7])) and np.all(np.isnan(d[np.arange(12) != 7, 7]))
    others = np.ix_(np.arange(12) != 7, np.arange(12) != 7)
    assert np.all(np.isfinite(d[others]))
    p = ops.convert_to_numpy(distances.paired_distances(emb, emb[::-1], metric=metric))
    assert np.isnan(p[7]) and np.isnan(p[4]) and np.sum(np.isnan(p)) == 2


def test_nan_in_gives_nan_out_for_l2_normalize():
    out = ops.convert_to_numpy(distances.l2_normalize(_poisoned("one_nan_entry")))
    assert np.all(np.isnan(out[7])) and np.all(np.isfinite(np.delete(out, 7, axis=0)))


# ---------------------------------------------------------------- the first troubleshooting entry
def test_loading_a_saved_model_needs_import_dmlkeras_first(tmp_path):
    """docs/reliability.md, troubleshooting 1: without ``import dmlkeras`` Keras fails; with it, no custom_objects."""
    import os
    import subprocess
    import sys

    path = tmp_path / "tower.keras"
    tower = models.build_embedding_model((4,), embedding_dim=2, backbone="mlp")
    tower.compile(loss=losses.TripletLoss())
    tower.save(path)
    script = (
        "import keras, sys\n"
        "try:\n"
        f"    keras.saving.load_model({str(path)!r})\n"
        "    print('loaded without dmlkeras')\n"
        "except Exception as error:\n"
        "    print('failed without dmlkeras:', type(error).__name__, len(str(error)))\n"
        "import dmlkeras\n"
        f"model = keras.saving.load_model({str(path)!r})\n"
        "print('loaded with dmlkeras:', type(model.loss).__name__)\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": BACKEND}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "failed without dmlkeras" in result.stdout and "loaded with dmlkeras: TripletLoss" in result.stdout


@pytest.mark.parametrize("name", sorted(HEADS))
def test_head_labels_out_of_range_give_nan_when_compiled(name):
    """Compiled, a value check cannot raise: the documented promise is a NaN loss (heads' module docstring)."""
    step = _gradient_function(_objective(name), compiled=True)
    labels, emb = _batch("pk")
    w = np.random.default_rng(1).normal(size=(NUM_CLASSES, D)).astype("float32")
    good = np.asarray(ops.convert_to_numpy(step(labels.astype("int32"), emb.astype("float32"), w)[0]))
    assert np.isfinite(good)
    for bad in (NUM_CLASSES, -1):
        labels_bad = labels.astype("int32").copy()
        labels_bad[4] = bad
        value = np.asarray(ops.convert_to_numpy(step(labels_bad, emb.astype("float32"), w)[0]))
        assert np.isnan(value), f"{name} with label {bad} compiled gave {value}"
