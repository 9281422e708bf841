"""Write golden reference values from tensorflow-addons and tensorflow-similarity.

The dmlkeras tests compare our losses against these files, produced by the
*real* reference implementations on fixed random float32 batches.

Run it with the legacy interpreter (TF 2.15; see tools/README.md to rebuild it)
from the repository root::

    /work/legacy/bin/python tools/make_golden.py

It writes ``tests/golden/tfa_*.npz`` and ``tests/golden/tfsim_*.npz``.  The run
is deterministic: the same values come out every time, and the files are
written with fixed zip timestamps so that they are byte-identical as well.

Every file holds a ``meta`` entry (0-d string array of JSON) and, for case
``i``, ``case{i}_params`` (0-d JSON string of the constructor kwargs in the
reference library's names), the inputs (``case{i}_labels`` and
``case{i}_embeddings`` or the loss-specific inputs), ``case{i}_loss`` (float64
0-d, the reduced loss) and, where the library exposes it,
``case{i}_per_sample`` (float64, unreduced values).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import warnings
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator, Sequence

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # must be set before TensorFlow loads

import numpy as np  # noqa: E402

GENERATOR = "tools/make_golden.py"
OUT_DIR = Path(__file__).resolve().parent.parent / "tests" / "golden"


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null (nmslib prints from C on import)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


with _stderr_silenced(), warnings.catch_warnings():
    warnings.simplefilter("ignore")  # TFA's end-of-life UserWarning
    import tensorflow as tf
    import tensorflow_addons as tfa
    import tensorflow_similarity as tfsim

tf.get_logger().setLevel("ERROR")  # tf.function retracing warnings
tf.config.threading.set_inter_op_parallelism_threads(1)
tf.config.threading.set_intra_op_parallelism_threads(1)

Case = dict[str, np.ndarray]

# In-batch layouts: (members per class, embedding dim).  Every class has at
# least two members and there are at least two classes, so every anchor has a
# positive and a negative.  Batches 2 and 5 have uneven class sizes.
BATCH_LAYOUTS: list[tuple[list[int], int]] = [
    ([2] * 4, 4),  # 0: n=8,  P=4 x K=2
    ([4] * 4, 8),  # 1: n=16, P=4 x K=4
    ([2, 3, 5, 6], 4),  # 2: n=16, uneven
    ([4] * 8, 16),  # 3: n=32, P=8 x K=4
    ([8] * 6, 8),  # 4: n=48, P=6 x K=8
    ([2, 2, 3, 5, 9, 11], 16),  # 5: n=32, uneven
]


def versions(*distributions: str) -> dict[str, str]:
    """Installed versions of the given distributions, plus TensorFlow's."""
    found = {"tensorflow": tf.__version__}
    found.update({name: metadata.version(name) for name in distributions})
    return found


def make_labels(class_sizes: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """Shuffled int32 labels; class ids are distinct random integers in [0, 100)."""
    ids = rng.choice(100, size=len(class_sizes), replace=False)
    return rng.permutation(np.repeat(ids, class_sizes)).astype(np.int32)


def make_batch(index: int, normalise: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Labels (n,) int32 and N(0, 1) embeddings (n, d) float32 of BATCH_LAYOUTS[index].

    With ``normalise`` the embeddings are L2-normalised rows (still float32).
    """
    class_sizes, dim = BATCH_LAYOUTS[index]
    rng = np.random.default_rng(1000 + index)
    labels = make_labels(class_sizes, rng)
    embeddings = rng.standard_normal((len(labels), dim)).astype(np.float32)
    if normalise:
        embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    return labels, embeddings


def two_batches(combo: int) -> list[int]:
    """The two (different) BATCH_LAYOUTS indices used for parameter combination ``combo``."""
    return [combo % len(BATCH_LAYOUTS), (combo + 3) % len(BATCH_LAYOUTS)]


def scalar(value: Any) -> np.ndarray:
    """A reduced loss as a float64 0-d array."""
    return np.asarray(value, dtype=np.float64).reshape(())


def json_array(obj: dict[str, Any]) -> np.ndarray:
    """A JSON object as a 0-d numpy string array."""
    return np.array(json.dumps(obj, sort_keys=True))


def write_npz(name: str, meta: dict[str, Any], cases: list[Case]) -> None:
    """Write ``tests/golden/<name>.npz`` (deflated, fixed zip timestamps).

    The result is an ordinary ``.npz``: ``np.load`` reads it without pickle.
    """
    arrays = {"meta": json_array({**meta, "generator": GENERATOR, "cases": len(cases)})}
    for i, case in enumerate(cases):
        arrays.update({f"case{i}_{key}": value for key, value in case.items()})
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(OUT_DIR / f"{name}.npz", "w") as archive:
        for key, value in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asanyarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            archive.writestr(info, buffer.getvalue(), compress_type=zipfile.ZIP_DEFLATED)


def embedding_case(params: dict[str, Any], labels: np.ndarray, embeddings: np.ndarray,
                   loss: Any, per_sample: Any = None) -> Case:
    """A case whose inputs are (labels, embeddings)."""
    case = {"params": json_array(params), "labels": labels, "embeddings": embeddings,
            "loss": scalar(loss)}
    if per_sample is not None:
        case["per_sample"] = np.asarray(per_sample, dtype=np.float64).reshape(-1)
    return case


def tfa_contrastive() -> list[Case]:
    """ContrastiveLoss on (binary y_true, non-negative distance y_pred) pairs."""
    cases = []
    for index, (n, margin) in enumerate([(8, 1.0), (32, 1.0), (16, 0.5), (48, 0.5)]):
        rng = np.random.default_rng(2000 + index)
        y_true = rng.permutation(np.arange(n) % 2).astype(np.int32)
        y_pred = rng.uniform(0.0, 2.0 * margin, n).astype(np.float32)
        for pair_label in (0, 1):  # a zero distance for a dissimilar and a similar pair
            y_pred[np.flatnonzero(y_true == pair_label)[0]] = 0.0
        per_sample = tfa.losses.contrastive_loss(y_true, y_pred, margin=margin)
        loss = tfa.losses.ContrastiveLoss(margin=margin)(y_true, y_pred)
        cases.append({"params": json_array({"margin": margin}), "y_true": y_true,
                      "y_pred": y_pred, "loss": scalar(loss),
                      "per_sample": np.asarray(per_sample, dtype=np.float64)})
    return cases


def tfa_triplet_semihard() -> list[Case]:
    """TripletSemiHardLoss for each distance metric and margin, two batches each."""
    combos = [{"margin": margin, "distance_metric": metric}
              for metric in ("L2", "squared-L2", "angular") for margin in (1.0, 0.2)]
    cases = []
    for combo, params in enumerate(combos):
        for index in two_batches(combo):
            labels, embeddings = make_batch(index)
            loss = tfa.losses.TripletSemiHardLoss(**params)(labels, embeddings)
            cases.append(embedding_case(params, labels, embeddings, loss))
    return cases


def tfa_triplet_hard() -> list[Case]:
    """TripletHardLoss for soft in {False, True} x metric x margin, two batches each."""
    combos = [{"margin": margin, "soft": soft, "distance_metric": metric}
              for soft in (False, True) for metric in ("L2", "squared-L2", "angular")
              for margin in (1.0, 0.2)]
    cases = []
    for combo, params in enumerate(combos):
        for index in two_batches(combo):
            labels, embeddings = make_batch(index)
            loss = tfa.losses.TripletHardLoss(**params)(labels, embeddings)
            cases.append(embedding_case(params, labels, embeddings, loss))
    return cases


def tfa_npairs() -> list[Case]:
    """NpairsLoss on y_pred = anchors @ positives^T.

    Cases 0-3 have one (anchor, positive) pair per class, as the loss expects.
    Case 4 repeats classes (class sizes 1, 2, 3, 2, 1, 3 rows), which exercises
    the row normalisation of the label matrix.
    """
    layouts: list[tuple[list[int], int]] = [
        ([1] * 4, 4), ([1] * 8, 8), ([1] * 16, 16), ([1] * 32, 8), ([1, 2, 3, 2, 1, 3], 8)]
    cases = []
    for index, (class_sizes, dim) in enumerate(layouts):
        rng = np.random.default_rng(3000 + index)
        labels = make_labels(class_sizes, rng)
        anchors = rng.standard_normal((len(labels), dim)).astype(np.float32)
        positives = rng.standard_normal((len(labels), dim)).astype(np.float32)
        similarity = tf.matmul(anchors, positives, transpose_b=True)
        loss = tfa.losses.NpairsLoss()(labels, similarity)
        cases.append({"params": json_array({}), "labels": labels, "anchors": anchors,
                      "positives": positives, "loss": scalar(loss)})
    return cases


def tfa_lifted() -> list[Case]:
    """LiftedStructLoss for margins 1.0 and 0.5, three batches each."""
    cases = []
    for margin, batches in ((1.0, [0, 2, 4]), (0.5, [1, 3, 5])):
        for index in batches:
            labels, embeddings = make_batch(index)
            loss = tfa.losses.LiftedStructLoss(margin=margin)(labels, embeddings)
            cases.append(embedding_case({"margin": margin}, labels, embeddings, loss))
    return cases


def tfsim_cases(loss_class: type, runs: list[tuple[dict[str, Any], int]]) -> list[Case]:
    """Run a tensorflow-similarity loss on L2-normalised batches.

    ``runs`` pairs constructor kwargs with a BATCH_LAYOUTS index.  ``per_sample``
    is the unreduced per-anchor output of the same loss object (``loss.call``);
    the reduced value is Keras' mean of it over all anchors.
    """
    cases = []
    for params, index in runs:
        labels, embeddings = make_batch(index, normalise=True)
        loss_obj = loss_class(**params)
        cases.append(embedding_case(params, labels, embeddings, loss_obj(labels, embeddings),
                                    loss_obj.call(labels, embeddings)))
    return cases


def tfsim_multisimilarity() -> list[Case]:
    """MultiSimilarityLoss: the suggested parameters and a second set with center != 1."""
    suggested = {"distance": "cosine", "alpha": 2.0, "beta": 50.0, "epsilon": 0.1,
                 "lmda": 0.5, "center": 1.0}
    other = {"distance": "cosine", "alpha": 1.0, "beta": 20.0, "epsilon": 0.3,
             "lmda": 0.3, "center": 0.9}
    runs = [(suggested, index) for index in (0, 2, 3)] + [(other, index) for index in (1, 4, 5)]
    return tfsim_cases(tfsim.losses.MultiSimilarityLoss, runs)


def tfsim_circle() -> list[Case]:
    """CircleLoss (cosine distance) for gamma in {256, 80} x margin in {0.25, 0.4}."""
    combos = [{"distance": "cosine", "gamma": gamma, "margin": margin}
              for gamma in (256.0, 80.0) for margin in (0.25, 0.4)]
    runs = [(params, index) for combo, params in enumerate(combos) for index in two_batches(combo)]
    return tfsim_cases(tfsim.losses.CircleLoss, runs)


# Two-view batches (samples n, embedding dim d) of the self-supervised losses.
VIEW_LAYOUTS: list[tuple[int, int]] = [(4, 4), (8, 8), (16, 4), (32, 16)]


def make_views(index: int, seed: int, scale: float = 1.0) -> np.ndarray:
    """Two correlated views (n, 2, d) float32 of VIEW_LAYOUTS[index]: a shared N(0, 1) part plus noise."""
    n, dim = VIEW_LAYOUTS[index]
    rng = np.random.default_rng(seed + index)
    shared = rng.standard_normal((n, 1, dim))
    return (scale * (shared + 0.5 * rng.standard_normal((n, 2, dim)))).astype(np.float32)


def views_case(params: dict[str, Any], views: np.ndarray, loss: Any, per_sample: Any = None) -> Case:
    """A case whose input is ``views`` (n, k, d)."""
    case = {"params": json_array(params), "views": views, "loss": scalar(loss)}
    if per_sample is not None:
        case["per_sample"] = np.asarray(per_sample, dtype=np.float64).reshape(-1)
    return case


def tfsim_view_cases(loss_class: type, runs: list[dict[str, Any]], seed: int,
                     scale: float = 1.0) -> list[Case]:
    """``loss(views[:, 0], views[:, 1])`` (reduced) and ``loss.call`` (unreduced), one run per layout."""
    cases = []
    for index, params in enumerate(runs):
        views = make_views(index, seed, scale)
        loss_obj = loss_class(**params)
        za, zb = tf.constant(views[:, 0]), tf.constant(views[:, 1])
        reduced = np.mean(loss_obj(za, zb))  # VicReg's default reduction is NONE
        cases.append(views_case(params, views, reduced, loss_obj.call(za, zb)))
    return cases


def tfsim_simclr() -> list[Case]:
    """SimCLRLoss(temperature): per sample the sum of both directions' cross-entropies."""
    runs = [{"temperature": t} for t in (0.05, 0.1, 0.5, 0.2)]
    return tfsim_view_cases(tfsim.losses.SimCLRLoss, runs, seed=7000)


def tfsim_barlow() -> list[Case]:
    """Barlow(lambda_, margin): the paper's lambda_ and a larger one."""
    runs = [{"lambda_": lam, "margin": 1e-12} for lam in (5e-3, 0.1, 5e-3, 0.1)]
    return tfsim_view_cases(tfsim.losses.Barlow, runs, seed=9000)


def tfsim_vicreg() -> list[Case]:
    """VicReg on views of scale 1 (cases 0-3) and 3 (4-7, every std above 1).

    tfsim's default reduction is NONE: ``loss`` is the mean of the per-sample values.
    """
    runs = [{"lambda_": 25.0, "mu": 25.0, "nu": 1.0, "std_const": 1e-4},
            {"lambda_": 5.0, "mu": 10.0, "nu": 2.0, "std_const": 1e-3}] * 2
    return [case for scale in (1.0, 3.0)
            for case in tfsim_view_cases(tfsim.losses.VicReg, runs, seed=8000, scale=scale)]


def tfsim_simsiam() -> list[Case]:
    """SimSiamLoss as ContrastiveModel uses it: ``loss(sg(z1), p2) + loss(sg(z2), p1)``.

    ``views`` (n, 4, d) holds z1, z2, p1, p2; ``per_sample`` the sum of the two per-sample
    outputs of ``loss.call`` and ``loss`` the sum of the two reduced values.
    """
    cases = []
    for index, margin in enumerate((0.001, 0.0, 0.001, 0.0)):
        params = {"projection_type": "negative_cosine_sim", "margin": margin}
        two = make_views(index, seed=9500)
        outputs = np.concatenate([two, make_views(index, seed=9600)], axis=1)
        z1, z2, p1, p2 = (tf.constant(outputs[:, k]) for k in range(4))
        loss_obj = tfsim.losses.SimSiamLoss(**params)
        loss = loss_obj(z1, p2) + loss_obj(z2, p1)
        per_sample = loss_obj.call(z1, p2) + loss_obj.call(z2, p1)
        cases.append(views_case(params, outputs, loss, per_sample))
    return cases


def main() -> None:
    """Generate every tfa_* and tfsim_* golden file."""
    tfa_meta = {"library": "tensorflow-addons",
                "versions": versions("tensorflow-addons", "keras", "numpy")}
    tfsim_meta = {"library": "tensorflow-similarity",
                  "versions": versions("tensorflow-similarity", "keras", "numpy")}
    write_npz("tfa_contrastive", {**tfa_meta, "loss": "ContrastiveLoss"}, tfa_contrastive())
    write_npz("tfa_triplet_semihard", {**tfa_meta, "loss": "TripletSemiHardLoss"},
              tfa_triplet_semihard())
    write_npz("tfa_triplet_hard", {**tfa_meta, "loss": "TripletHardLoss"}, tfa_triplet_hard())
    write_npz("tfa_npairs", {**tfa_meta, "loss": "NpairsLoss"}, tfa_npairs())
    write_npz("tfa_lifted", {**tfa_meta, "loss": "LiftedStructLoss"}, tfa_lifted())
    write_npz("tfsim_multisimilarity", {**tfsim_meta, "loss": "MultiSimilarityLoss"},
              tfsim_multisimilarity())
    write_npz("tfsim_circle", {**tfsim_meta, "loss": "CircleLoss"}, tfsim_circle())
    write_npz("tfsim_simclr", {**tfsim_meta, "loss": "SimCLRLoss"}, tfsim_simclr())
    write_npz("tfsim_barlow", {**tfsim_meta, "loss": "Barlow"}, tfsim_barlow())
    write_npz("tfsim_vicreg", {**tfsim_meta, "loss": "VicReg"}, tfsim_vicreg())
    write_npz("tfsim_simsiam", {**tfsim_meta, "loss": "SimSiamLoss"}, tfsim_simsiam())


if __name__ == "__main__":
    main()
