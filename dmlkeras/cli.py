"""The ``dmlkeras`` command: train, evaluate and embed from the shell.

``dmlkeras train`` trains an embedding with class-balanced P x K batches and
an in-batch loss, then writes into ``--out``:

* ``model.keras``: the embedding model (reloads without custom objects);
* ``metrics.json``: retrieval metrics on the held-out split;
* ``history.csv``: loss and diagnostics per epoch;
* ``tsne.png``: a t-SNE map of the held-out embeddings;
* ``projector/``: TensorBoard Embedding Projector files.

``dmlkeras evaluate`` recomputes the metrics of a saved model and
``dmlkeras embed`` writes its embeddings to ``.npz``. Bad arguments give a
one-line error on stderr and exit code 2, as argparse does: unknown names,
non-positive or non-finite numbers, a P x K batch the training split cannot
fill, an output path that cannot be written, a model file that does not
load, a model with several inputs (a Siamese or triplet model: save its
tower, :func:`dmlkeras.models.get_embedding_model`) or one whose input shape
does not match the data set. ``embed --output X`` writes ``X`` when it ends
in ``.npz``, ``X.npz`` otherwise, and ``X/embeddings.npz`` when ``X`` is an
existing folder; it prints the path it wrote.

Examples
--------
.. code-block:: shell

    dmlkeras train --dataset digits --loss triplet-semihard --epochs 30 --out runs/digits
    dmlkeras evaluate --model runs/digits/model.keras --dataset digits
    dmlkeras embed --model runs/digits/model.keras --dataset digits --output emb.npz
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

DATASETS = ("digits", "mnist", "lfw")


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit with code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def _integer_at_least(minimum: int, what: str) -> Callable[[str], int]:
    """An argparse ``type`` for integers ``>= minimum``, named ``what`` in its errors."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {value}")
        return value

    return convert


_positive_int = _integer_at_least(1, "positive")
_non_negative_int = _integer_at_least(0, "non-negative")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a finite positive number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a finite positive number, got {value}")
    return value


def load_split(dataset: str, seed: int = 0, quick: bool = False) -> dict[str, np.ndarray]:
    """Train / held-out split used by the command for one data set.

    ``digits``: a stratified 70 / 30 split of scikit-learn's 8x8 digits.
    ``mnist``: the official train / test split (``quick`` keeps 6,000 / 2,000).
    ``lfw``: people with at least 10 images; 30 % of the *identities* are
    held out, so retrieval is measured on unseen people.

    Returns
    -------
    dict
        ``x_train``, ``y_train``, ``x_test``, ``y_test`` (images float32 in [0, 1]).

    Examples
    --------
    >>> split = load_split("digits")
    >>> split["x_train"].shape, split["x_test"].shape
    ((1257, 8, 8), (540, 8, 8))
    """
    from sklearn.model_selection import train_test_split

    from dmlkeras import datasets

    if dataset == "digits":
        x, y = datasets.load_digits()
        x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, stratify=y, random_state=seed)
    elif dataset == "mnist":
        (x_train, y_train), (x_test, y_test) = datasets.load_mnist()
        if quick:
            x_train, y_train, x_test, y_test = x_train[:6000], y_train[:6000], x_test[:2000], y_test[:2000]
        x_train, x_test = x_train.astype("float32") / 255.0, x_test.astype("float32") / 255.0
    elif dataset == "lfw":
        people = datasets.load_lfw_people(min_faces_per_person=10, resize=0.4)
        identities = np.random.default_rng(seed).permutation(len(people.target_names))
        held_out = np.isin(people.target, identities[: int(0.3 * len(identities))])
        x_train, y_train = people.images[~held_out], people.target[~held_out]
        x_test, y_test = people.images[held_out], people.target[held_out]
    else:
        raise ValueError(f"dataset must be one of {DATASETS}; got {dataset!r}.")
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


class CommandError(Exception):
    """A problem with the command's arguments, reported as one line with exit code 2."""


def _split(args: argparse.Namespace) -> dict[str, np.ndarray]:
    """:func:`load_split` for the command: a missing, corrupt or malformed data set is a one-line error."""
    from dmlkeras.datasets import DatasetIntegrityError, DatasetNotFoundError

    try:
        return load_split(args.dataset, seed=args.seed, quick=args.quick)
    except (DatasetNotFoundError, DatasetIntegrityError, ValueError) as error:
        text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
        raise CommandError(f"cannot load --dataset {args.dataset}: {text}") from None


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise CommandError(f"cannot write to --out {str(out)!r}: {error.strerror}") from None


def _check_batches(y_train: np.ndarray, classes_per_batch: int, samples_per_class: int) -> None:
    """Refuse a P x K batch that the training split cannot fill."""
    n_classes = len(np.unique(y_train))
    if classes_per_batch > n_classes:
        raise CommandError(
            f"--classes-per-batch {classes_per_batch} exceeds the {n_classes} classes of the training split; "
            f"use at most {n_classes}"
        )
    batch = classes_per_batch * samples_per_class
    if batch > len(y_train):
        raise CommandError(
            f"a P x K batch of {classes_per_batch} x {samples_per_class} = {batch} samples exceeds the "
            f"{len(y_train)} training samples; lower --classes-per-batch or --samples-per-class"
        )


def _diagnostic_metrics(loss) -> list:
    """Training diagnostics logged beside the loss (see dmlkeras.metrics)."""
    from dmlkeras import metrics

    margin = getattr(loss, "margin", 0.2)
    return [metrics.DistanceGap(), metrics.ActiveTripletFraction(margin=margin, mining="all")]


def train(args: argparse.Namespace) -> dict[str, float]:
    """Run ``dmlkeras train`` and return the held-out metrics."""
    out = Path(args.out)
    _check_writable(out)
    import keras

    from dmlkeras.callbacks import CollapseMonitor
    from dmlkeras.data import ClassBalancedBatches
    from dmlkeras import RetrievalEvaluation  # (its module moves from evaluation to callbacks)
    from dmlkeras.evaluation import retrieval_metrics
    from dmlkeras.models import build_embedding_model
    from dmlkeras.viz import export_projector, plot_embeddings

    keras.utils.set_random_seed(args.seed)
    split = _split(args)
    x_train, y_train, x_test, y_test = split["x_train"], split["y_train"], split["x_test"], split["y_test"]
    _check_batches(y_train, args.classes_per_batch, args.samples_per_class)
    model = build_embedding_model(x_train.shape[1:], embedding_dim=args.embedding_dim, backbone="cnn")
    from dmlkeras import losses

    loss = losses.get(args.loss)
    model.compile(optimizer=keras.optimizers.Adam(args.learning_rate), loss=loss, metrics=_diagnostic_metrics(loss))
    batches = ClassBalancedBatches(
        x_train, y_train, classes_per_batch=args.classes_per_batch, samples_per_class=args.samples_per_class, seed=args.seed
    )
    start = time.perf_counter()
    model.fit(
        batches,
        epochs=args.epochs,
        verbose=2 if args.quiet else "auto",
        callbacks=[
            RetrievalEvaluation(x_test, y_test),
            CollapseMonitor(),
            keras.callbacks.CSVLogger(str(out / "history.csv")),
        ],
    )
    seconds = time.perf_counter() - start
    model.save(out / "model.keras")
    embeddings = model.predict(x_test, verbose=0)
    metrics = retrieval_metrics(embeddings, y_test)
    metrics.update(dataset=args.dataset, loss=args.loss, epochs=args.epochs, train_seconds=round(seconds, 1))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    import matplotlib.pyplot as plt

    ax = plot_embeddings(embeddings, y_test, method="tsne", seed=args.seed)
    ax.set_title(f"{args.dataset} held-out embeddings ({args.loss})")
    ax.figure.savefig(out / "tsne.png", dpi=120, bbox_inches="tight")
    plt.close(ax.figure)
    export_projector(embeddings, y_test, out / "projector", images=x_test)
    return metrics


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def _load_model(path: str):
    """Load a ``.keras`` file; any failure is a one-line :class:`CommandError`."""
    import keras

    import dmlkeras  # noqa: F401  (registers the custom objects the file may name)

    if not Path(path).is_file():
        raise CommandError(f"no model file at {path!r}")
    try:
        return keras.saving.load_model(path)
    except Exception as error:  # a corrupt or foreign file: Keras raises many kinds
        raise CommandError(
            f"cannot load {path!r} as a Keras model ({_first_line(error)[:200]}); "
            "expected a .keras file written by model.save"
        ) from None


def _check_model_input(model, path: str, x: np.ndarray, dataset: str) -> None:
    """Refuse a multi-input model or one whose input shape does not match ``x``."""
    if len(model.inputs) != 1:
        names = ", ".join(repr(t.name) for t in model.inputs)
        raise CommandError(
            f"{path!r} has {len(model.inputs)} inputs ({names}); evaluate and embed need a one-input "
            "embedding model: save dmlkeras.models.get_embedding_model(model) and pass that"
        )
    expected = tuple(model.inputs[0].shape[1:])
    found = tuple(x.shape[1:])
    if len(expected) != len(found) or any(e is not None and e != f for e, f in zip(expected, found)):
        shown = "(n, " + ", ".join("?" if e is None else str(e) for e in expected) + ")"
        raise CommandError(
            f"{path!r} expects inputs of shape {shown} but --dataset {dataset} has shape (n, "
            + ", ".join(map(str, found))
            + ")"
        )


def _predict(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """Held-out embeddings and labels of the saved model ``args.model``."""
    model = _load_model(args.model)
    split = _split(args)
    _check_model_input(model, args.model, split["x_test"], args.dataset)
    return model.predict(split["x_test"], verbose=0), split["y_test"]


def evaluate(args: argparse.Namespace) -> dict[str, float]:
    """Run ``dmlkeras evaluate``: retrieval metrics of a saved model on the held-out split."""
    from dmlkeras.evaluation import retrieval_metrics

    return retrieval_metrics(*_predict(args))


def output_path(text: str) -> Path:
    """The file ``embed --output text`` writes.

    ``text`` itself when it ends in ``.npz``, ``text + ".npz"`` otherwise (as
    :func:`numpy.savez` does), and ``embeddings.npz`` inside ``text`` when it
    is an existing folder.

    Examples
    --------
    >>> output_path("runs/emb").name, output_path("runs/emb.npz").name
    ('emb.npz', 'emb.npz')
    """
    path = Path(text)
    if path.is_dir():
        return path / "embeddings.npz"
    return path if path.name.endswith(".npz") else path.with_name(path.name + ".npz")


def _check_output(path: Path) -> None:
    if path.is_dir():
        raise CommandError(f"cannot write --output {str(path)!r}: it is a folder")
    parent = path.parent
    if not parent.is_dir():
        raise CommandError(f"cannot write --output {str(path)!r}: no folder {str(parent)!r}")
    probe = parent / f".{path.name}.write-test"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise CommandError(f"cannot write --output {str(path)!r}: {error.strerror}") from None


def embed(args: argparse.Namespace) -> Path:
    """Run ``dmlkeras embed``: write the held-out embeddings and labels to ``.npz``; return its path."""
    output = output_path(args.output)
    _check_output(output)
    embeddings, labels = _predict(args)
    partial = output.with_name(f".{output.name}.part")
    try:
        with open(partial, "wb") as file:
            np.savez(file, embeddings=embeddings, labels=labels)
        os.replace(partial, output)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise CommandError(f"cannot write --output {str(output)!r}: {error.strerror}") from None
    return output


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``dmlkeras`` command.

    Examples
    --------
    >>> args = build_parser().parse_args(["train", "--loss", "triplet-hard", "--epochs", "3"])
    >>> args.dataset, args.loss, args.epochs
    ('digits', 'triplet-hard', 3)
    """
    parser = _Parser(prog="dmlkeras", description="Deep metric learning for Keras.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    from dmlkeras import losses

    available = list(losses.names())

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--dataset", choices=DATASETS, default="digits", help="data set (default: digits, built in)")
        sub.add_argument("--seed", type=_non_negative_int, default=0, help="random seed (default: 0)")
        sub.add_argument("--quick", action="store_true", help="smaller data for a fast check")

    train_cmd = commands.add_parser("train", help="train an embedding with an in-batch loss")
    common(train_cmd)
    train_cmd.add_argument("--loss", choices=available, default="triplet-semihard", help="in-batch loss: " + ", ".join(available))
    train_cmd.add_argument("--epochs", type=_positive_int, default=30, help="training epochs (default: 30)")
    train_cmd.add_argument("--out", default="runs/latest", help="output folder (default: runs/latest)")
    train_cmd.add_argument("--embedding-dim", type=_positive_int, default=64)
    train_cmd.add_argument("--classes-per-batch", type=_positive_int, default=10, help="P of the P x K batches")
    train_cmd.add_argument("--samples-per-class", type=_positive_int, default=8, help="K of the P x K batches")
    train_cmd.add_argument("--learning-rate", type=_positive_float, default=1e-3)
    train_cmd.add_argument("--quiet", action="store_true", help="one line per epoch instead of progress bars")

    evaluate_cmd = commands.add_parser("evaluate", help="retrieval metrics of a saved model")
    common(evaluate_cmd)
    evaluate_cmd.add_argument("--model", required=True, help="path to model.keras")

    embed_cmd = commands.add_parser("embed", help="write embeddings of the held-out split to .npz")
    common(embed_cmd)
    embed_cmd.add_argument("--model", required=True, help="path to model.keras")
    embed_cmd.add_argument(
        "--output",
        required=True,
        help="the .npz to write ('.npz' is appended when missing; an existing folder gets embeddings.npz)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``dmlkeras`` / ``python -m dmlkeras``; returns the exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except CommandError as error:
        print(f"dmlkeras: error: {error}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.command == "train":
        metrics = train(args)
        print(json.dumps({k: metrics[k] for k in ("precision_at_1", "map_at_r", "train_seconds")}))
        print(f"wrote {args.out}/model.keras, metrics.json, history.csv, tsne.png, projector/")
    elif args.command == "evaluate":
        print(json.dumps(evaluate(args), indent=2))
    else:
        print(f"wrote {embed(args)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
