"""Export a trained embedding tower for serving, with its index beside it.

The tower becomes a TensorFlow SavedModel through Keras' own
``model.export(path, format="tf_saved_model")``: a standalone artifact (no
dmlkeras, no custom-layer code needed to load it) whose ``serve`` endpoint
gives the outputs of ``tower.predict``. It loads in TF Serving, in
``tf.saved_model.load``, or here with :func:`load_saved_model`.

Backends: export works on the TensorFlow backend and on JAX (Keras converts
the JAX function with ``jax2tf``; TensorFlow must be installed, as it is in
the dmlkeras environment). TFLite conversion of the exported SavedModel
(:func:`convert_to_tflite`, ``tf.lite.TFLiteConverter``) works from both.
Keras' own ``format="litert"`` needs the TensorFlow (or PyTorch) backend,
which is why the conversion here starts from the SavedModel instead.

This module is the one place in dmlkeras that calls TensorFlow directly
(``tf.saved_model``, ``tf.lite``): serving formats are TensorFlow's.

A *bundle* (:func:`save_bundle` / :func:`load_bundle`) is one directory
holding both halves of a search service::

    bundle/
        bundle.json      format version, embedding size, what is inside
        saved_model/     the tower (model.export)
        model.tflite     optional
        index/           dmlkeras.index.Index.save (checksummed)

Examples
--------
>>> import numpy as np, keras, tempfile
>>> from dmlkeras.index import Index
>>> tower = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, kernel_initializer="ones")])
>>> gallery = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]], dtype="float32")
>>> index = Index().add(tower.predict(gallery, verbose=0), labels=np.array(["a", "b"]))
>>> with tempfile.TemporaryDirectory() as tmp:
...     _ = save_bundle(tower, index, tmp + "/bundle")
...     bundle = load_bundle(tmp + "/bundle")
...     bundle.search(np.array([[0.9, 1.0, 1.0]], dtype="float32"), k=1).labels
array([['b']], dtype='<U1')
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
from numpy.typing import ArrayLike

from dmlkeras.index import Index, Neighbors

__all__ = [
    "export_saved_model",
    "load_saved_model",
    "convert_to_tflite",
    "load_tflite",
    "save_bundle",
    "load_bundle",
    "Bundle",
    "EXPORT_BACKENDS",
]

EXPORT_BACKENDS = ("tensorflow", "jax")
BUNDLE_FORMAT = "dmlkeras.bundle"
BUNDLE_VERSION = 1


def _tf() -> Any:
    try:
        import tensorflow as tf  # noqa: PLC0415
    except ImportError as err:  # pragma: no cover - tensorflow is a dependency
        raise ImportError("Serving formats need TensorFlow: pip install tensorflow-cpu.") from err
    return tf


def _check_backend() -> None:
    backend = keras.backend.backend()
    if backend not in EXPORT_BACKENDS:
        raise ValueError(
            f"SavedModel export works with the Keras backends {EXPORT_BACKENDS}; this one is {backend!r}."
        )


def _fresh_dir(path: str | os.PathLike, overwrite: bool) -> Path:
    target = Path(path)
    if target.exists():
        if not overwrite and (not target.is_dir() or any(target.iterdir())):
            raise ValueError(f"{target} exists and is not empty; pass overwrite=True to replace it.")
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def export_saved_model(tower: keras.Model, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Export ``tower`` as a TensorFlow SavedModel (``model.export``).

    Parameters
    ----------
    tower : keras.Model
        A built model (inputs known) mapping inputs to embeddings.
    path : str or path-like
        Directory to create.
    overwrite : bool, default False

    Returns
    -------
    pathlib.Path
        ``path``. Its ``serve`` endpoint takes a batch of inputs and returns
        the embeddings of ``tower.predict``.

    Raises
    ------
    ValueError
        On a backend other than TensorFlow or JAX, an unbuilt model, or an
        existing non-empty ``path``.
    """
    _check_backend()
    if not isinstance(tower, keras.Model) or not tower.built:
        raise ValueError("tower must be a built keras.Model (call it once or give it an Input).")
    target = _fresh_dir(path, overwrite)
    tower.export(str(target), format="tf_saved_model", verbose=False)
    return target


def load_saved_model(path: str | os.PathLike) -> Callable[[ArrayLike], np.ndarray]:
    """Load an exported tower as a function from a NumPy batch to NumPy embeddings.

    Works whatever the Keras backend (it uses ``tf.saved_model.load``).

    Parameters
    ----------
    path : str or path-like
        A directory written by :func:`export_saved_model` (or
        ``model.export``).

    Returns
    -------
    callable
        ``embed(x) -> ndarray``.
    """
    tf = _tf()
    if not (Path(path) / "saved_model.pb").is_file():
        raise ValueError(f"{path} is not a SavedModel directory (no saved_model.pb).")
    artifact = tf.saved_model.load(str(path))

    def embed(x: ArrayLike) -> np.ndarray:
        out = artifact.serve(tf.constant(np.asarray(x, dtype=np.float32)))
        return np.asarray(out)

    embed.artifact = artifact  # type: ignore[attr-defined]
    return embed


def convert_to_tflite(saved_model_dir: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Convert an exported SavedModel to a TFLite flat buffer.

    Plain float32 conversion (no quantisation), so the outputs match the
    SavedModel's to float rounding.

    Parameters
    ----------
    saved_model_dir : str or path-like
        From :func:`export_saved_model`.
    path : str or path-like
        The ``.tflite`` file to write.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    tf = _tf()
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(converter.convert())
    return target


def load_tflite(path: str | os.PathLike) -> Callable[[ArrayLike], np.ndarray]:
    """Load a ``.tflite`` tower as a function from a NumPy batch to embeddings.

    Uses the LiteRT interpreter (``ai_edge_litert``) when installed, else
    ``tf.lite.Interpreter`` (deprecated by TensorFlow, still shipped in
    2.21). The input is resized to each batch.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415
    except ImportError:
        Interpreter = None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
        if Interpreter is None:
            Interpreter = _tf().lite.Interpreter
        interpreter = Interpreter(model_path=str(path))
    (inp,) = interpreter.get_input_details()
    (out,) = interpreter.get_output_details()

    def embed(x: ArrayLike) -> np.ndarray:
        batch = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
        interpreter.resize_tensor_input(inp["index"], batch.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(inp["index"], batch)
        interpreter.invoke()
        return np.array(interpreter.get_tensor(out["index"]))

    return embed


@dataclass
class Bundle:
    """A loaded serving bundle: the tower and the index (see :func:`load_bundle`).

    Attributes
    ----------
    embed : callable
        ``embed(x) -> ndarray``: the exported tower.
    index : Index
        The gallery.
    metadata : dict
        The content of ``bundle.json``.
    """

    embed: Callable[[ArrayLike], np.ndarray]
    index: Index
    metadata: dict[str, Any] = field(default_factory=dict)

    def search(self, inputs: ArrayLike, k: int = 1) -> Neighbors:
        """Embed raw ``inputs`` with the tower and search the index."""
        return self.index.search(self.embed(inputs), k)


def save_bundle(
    tower: keras.Model,
    index: Index,
    path: str | os.PathLike,
    tflite: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write the tower (SavedModel, optionally TFLite) and its index in one directory.

    Parameters
    ----------
    tower : keras.Model
        Maps inputs to the embeddings the index holds.
    index : Index
        Non-empty; its dimension must be the tower's output size.
    path : str or path-like
        Directory to create (written beside, then renamed into place).
    tflite : bool, default False
        Also write ``model.tflite``.
    overwrite : bool, default False

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    if not isinstance(index, Index) or len(index) == 0:
        raise ValueError("index must be a non-empty dmlkeras.index.Index.")
    out_dim = tower.output_shape[-1] if tower.built else None
    if out_dim != index.dim:
        raise ValueError(f"The tower outputs {out_dim}-d embeddings but the index holds {index.dim}-d vectors.")
    target = _fresh_dir(path, overwrite)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        export_saved_model(tower, tmp / "saved_model", overwrite=True)
        index.save(tmp / "index")
        if tflite:
            convert_to_tflite(tmp / "saved_model", tmp / "model.tflite")
        metadata = {
            "format": BUNDLE_FORMAT,
            "format_version": BUNDLE_VERSION,
            "keras_backend": keras.backend.backend(),
            "keras_version": keras.__version__,
            "embedding_dim": int(index.dim),
            "input_shape": [None if s is None else int(s) for s in tower.input_shape[1:]],
            "metric": index.metric,
            "model": "saved_model",
            "tflite": "model.tflite" if tflite else None,
            "index": "index",
        }
        (tmp / "bundle.json").write_text(json.dumps(metadata, indent=2) + "\n")
        if target.exists():
            target.rmdir()
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def load_bundle(path: str | os.PathLike, use_tflite: bool = False) -> Bundle:
    """Load a bundle written by :func:`save_bundle`.

    The index is checked against its manifest (see :meth:`Index.load`).

    Parameters
    ----------
    path : str or path-like
    use_tflite : bool, default False
        Embed with ``model.tflite`` instead of the SavedModel.

    Returns
    -------
    Bundle
    """
    root = Path(path)
    meta_path = root / "bundle.json"
    if not meta_path.is_file():
        raise ValueError(f"{meta_path} not found: {root} is not a dmlkeras bundle.")
    try:
        metadata = json.loads(meta_path.read_text())
        fmt, version = metadata["format"], metadata["format_version"]
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{meta_path} is not a valid bundle description ({err}).") from None
    if fmt != BUNDLE_FORMAT or not isinstance(version, int) or version > BUNDLE_VERSION:
        raise ValueError(f"{meta_path}: format {fmt!r} version {version!r} is not readable by this dmlkeras.")
    if use_tflite:
        if not metadata.get("tflite"):
            raise ValueError(f"{root} has no TFLite model (save it with save_bundle(..., tflite=True)).")
        embed = load_tflite(root / metadata["tflite"])
    else:
        embed = load_saved_model(root / metadata["model"])
    index = Index.load(root / metadata["index"])
    return Bundle(embed=embed, index=index, metadata=metadata)
