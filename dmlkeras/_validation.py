"""The one place for the checks that several modules share.

Scalars (positive integers, bounded floats, fractions, seeds), label vectors
(NumPy, for data, evaluation and applications; tensors, for losses and
heads) and float casts. Every module may import this one; it imports nothing
of dmlkeras. Each check raises ``ValueError`` with a message that names the
argument and the expected type, range or shape.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import ops

Tensor = Any


def check_int(value: Any, name: str, minimum: int = 1) -> int:
    """Return ``value`` as an ``int`` if it is an integer ``>= minimum``.

    Booleans and integral floats are refused (``True`` is not a batch size).

    Examples
    --------
    >>> check_int(3, "k")
    3
    >>> check_int(0, "k")
    Traceback (most recent call last):
    ...
    ValueError: k must be an integer >= 1; got 0.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def check_float(
    value: Any,
    name: str,
    minimum: float | None = None,
    maximum: float | None = None,
    strict: bool = False,
) -> float:
    """Return ``value`` as a finite ``float`` inside ``[minimum, maximum]``.

    Parameters
    ----------
    value : number
    name : str
        Named in the error message.
    minimum, maximum : float, optional
        Bounds (``None``: unbounded on that side).
    strict : bool, default False
        Make the bounds exclusive (``minimum < value < maximum``).

    Examples
    --------
    >>> check_float(0.5, "margin", minimum=0.0)
    0.5
    >>> check_float(float("nan"), "temperature", minimum=0.0, strict=True)
    Traceback (most recent call last):
    ...
    ValueError: temperature must be a finite number > 0.0; got nan.
    """
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number; got {value!r}.") from None
    low = minimum is not None and (out <= minimum if strict else out < minimum)
    high = maximum is not None and (out >= maximum if strict else out > maximum)
    if not math.isfinite(out) or low or high:
        bounds = []
        if minimum is not None:
            bounds.append(f"{'>' if strict else '>='} {minimum}")
        if maximum is not None:
            bounds.append(f"{'<' if strict else '<='} {maximum}")
        where = (" " + " and ".join(bounds)) if bounds else ""
        raise ValueError(f"{name} must be a finite number{where}; got {value!r}.")
    return out


def check_fraction(value: Any, name: str) -> float:
    """A finite number in ``[0, 1]``.

    Examples
    --------
    >>> check_fraction(0.25, "validation_split")
    0.25
    """
    return check_float(value, name, minimum=0.0, maximum=1.0)


def check_seed(seed: Any) -> int:
    """A non-negative integer seed; ``None`` draws one from the OS, once.

    Generators and ``RandomState`` objects are refused: dmlkeras datasets
    and splits are functions of ``(seed, epoch, index)``, which needs an
    integer.

    Examples
    --------
    >>> check_seed(7)
    7
    >>> isinstance(check_seed(None), int)
    True
    """
    if seed is None:
        return int(np.random.SeedSequence().entropy % (2**63))
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(
            f"seed must be a non-negative integer (or None for a random seed drawn once); got {seed!r}."
        )
    return int(seed)


def label_vector(labels: Any, name: str = "labels", allow_empty: bool = False) -> np.ndarray:
    """Integer class labels of shape ``(n,)`` or ``(n, 1)`` as an ``(n,)`` NumPy array.

    Booleans become 0/1 and integral floats become ``int64``; any other
    float, a NaN, or another shape is an error (one-hot labels: use
    ``y.argmax(axis=1)``).

    Examples
    --------
    >>> label_vector([[1], [0], [1]])
    array([1, 0, 1])
    >>> label_vector([0.5, 1.0])
    Traceback (most recent call last):
    ...
    ValueError: labels must hold integer class labels; got non-integral floats (dtype float64).
    """
    y = np.asarray(labels)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(
            f"{name} must hold integer class labels with shape (n_samples,) or (n_samples, 1); "
            f"got shape {y.shape}. (One-hot labels: use `y.argmax(axis=1)`.)"
        )
    if y.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name} is empty; expected at least one labelled sample.")
    if y.dtype == np.bool_:
        return y.astype(np.int64)
    if np.issubdtype(y.dtype, np.integer):
        return y
    if np.issubdtype(y.dtype, np.floating):
        if np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            return y.astype(np.int64)
        raise ValueError(f"{name} must hold integer class labels; got non-integral floats (dtype {y.dtype}).")
    raise ValueError(f"{name} must hold integer class labels; got dtype {y.dtype}.")


def as_float32(x: Tensor) -> Tensor:
    """Cast half-precision (float16, bfloat16) or integer input to float32.

    float32 and float64 pass through unchanged. Every distance and loss of
    dmlkeras computes in at least float32.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> keras.backend.standardize_dtype(as_float32(np.ones(2, "float16")).dtype)
    'float32'
    """
    x = ops.convert_to_tensor(x)
    if keras.backend.standardize_dtype(x.dtype) not in ("float32", "float64"):
        x = ops.cast(x, "float32")
    return x


def column_to_vector(x: Tensor, name: str) -> Tensor:
    """A tensor of shape ``(n,)`` or ``(n, 1)`` as ``(n,)``; any other shape is an error.

    Examples
    --------
    >>> import numpy as np
    >>> tuple(column_to_vector(np.zeros((3, 1)), "y_true").shape)
    (3,)
    """
    x = ops.convert_to_tensor(x)
    if len(x.shape) == 2 and x.shape[-1] == 1:
        x = ops.reshape(x, (-1,))
    if len(x.shape) != 1:
        raise ValueError(f"{name} must have shape (n,) or (n, 1); got shape {tuple(x.shape)}.")
    return x


def check_embeddings(y_pred: Tensor, name: str = "y_pred") -> Tensor:
    """Embeddings of shape ``(n, d)`` with ``n >= 1``, as float32 (or float64).

    Examples
    --------
    >>> import numpy as np
    >>> check_embeddings(np.zeros((0, 3)))
    Traceback (most recent call last):
    ...
    ValueError: y_pred is an empty batch (shape (0, 3)); expected at least one embedding.
    """
    y_pred = as_float32(y_pred)
    if len(y_pred.shape) != 2:
        raise ValueError(
            f"{name} must be embeddings of shape (batch_size, embedding_dim); got shape {tuple(y_pred.shape)}."
        )
    if y_pred.shape[0] == 0:
        raise ValueError(
            f"{name} is an empty batch (shape {tuple(y_pred.shape)}); expected at least one embedding."
        )
    return y_pred


def check_labels_and_embeddings(y_true: Tensor, y_pred: Tensor) -> tuple[Tensor, Tensor]:
    """Validate in-batch inputs and return ``(labels (n,), embeddings (n, d))``.

    ``y_true`` keeps its dtype (integer ids stay exact).

    Raises
    ------
    ValueError
        If ``y_pred`` is not ``(batch_size, embedding_dim)`` or is empty, ``y_true`` is
        not ``(batch_size,)`` or ``(batch_size, 1)`` labels, or their batch sizes differ.

    Examples
    --------
    >>> import numpy as np
    >>> labels, emb = check_labels_and_embeddings(np.array([[0], [1]]), np.zeros((2, 3)))
    >>> tuple(labels.shape), tuple(emb.shape)
    ((2,), (2, 3))
    """
    y_pred = check_embeddings(y_pred)
    y_true = ops.convert_to_tensor(y_true)
    if len(y_true.shape) == 2 and y_true.shape[-1] == 1:
        y_true = ops.reshape(y_true, (-1,))
    if len(y_true.shape) != 1:
        raise ValueError(
            "y_true must be integer class labels of shape (batch_size,) or (batch_size, 1); "
            f"got shape {tuple(y_true.shape)}."
        )
    check_batch_sizes(y_true, y_pred)
    return y_true, y_pred


def check_batch_sizes(y_true: Tensor, y_pred: Tensor, what: str = "labels") -> None:
    """Raise ``ValueError`` unless ``y_true`` has one row per row of ``y_pred`` (when both are known)."""
    n_labels, n_embeddings = y_true.shape[0], y_pred.shape[0]
    if n_labels is not None and n_embeddings is not None and n_labels != n_embeddings:
        raise ValueError(
            f"y_true has {n_labels} {what} but y_pred has {n_embeddings} embeddings; "
            "expected one per embedding."
        )


def concrete_value(x: Any) -> np.ndarray | None:
    """The values of ``x`` as NumPy when they are known (eager), ``None`` while tracing.

    Inside ``tf.function``, ``jax.jit`` or a Keras symbolic call the values
    do not exist yet; checks on values then need another form (a NaN).

    Examples
    --------
    >>> concrete_value([1, 2]).tolist()
    [1, 2]
    """
    try:
        return np.asarray(ops.convert_to_numpy(x))
    except (RuntimeError, TypeError, ValueError):  # a TF graph tensor, a JAX tracer, a KerasTensor
        return None


def class_label_tensor(labels: Tensor, num_classes: int, name: str = "labels") -> tuple[Tensor, Tensor | None]:
    """Class ids in ``[0, num_classes)`` of shape ``(n,)`` or ``(n, 1)`` as an int32 ``(n,)`` tensor.

    Integer and boolean labels, and floats that are integral, are accepted.
    When the values are known (eager), a negative, too large, non-integral
    or NaN label raises ``ValueError`` naming ``num_classes``, and the
    second output is ``None``. While tracing (compiled training) no error
    can be raised from ``keras.ops``: the second output is then a boolean
    scalar tensor, True when the batch holds such a label, for the caller to
    turn its loss into NaN.

    Examples
    --------
    >>> ids, invalid = class_label_tensor([[0], [2]], num_classes=3)
    >>> ops.convert_to_numpy(ids).tolist(), invalid
    ([0, 2], None)
    >>> class_label_tensor([0, 3], num_classes=3)
    Traceback (most recent call last):
    ...
    ValueError: labels must be class ids in [0, num_classes) = [0, 3); got 3 (at index 1).
    """
    values = concrete_value(labels)  # before the cast: JAX (no x64) would wrap int64 ids into int32
    labels = column_to_vector(labels, name)
    dtype = keras.backend.standardize_dtype(labels.dtype if values is None else values.dtype)
    is_float = "float" in dtype
    if not (is_float or "int" in dtype or dtype == "bool"):
        raise ValueError(f"{name} must hold integer class ids; got dtype {dtype}.")
    if values is not None:
        values = values.reshape(-1)
        values = values.astype(np.float64) if is_float else values.astype(np.int64)
        bad = ~np.isfinite(values) | (values < 0) | (values >= num_classes)
        if is_float:
            bad |= np.isfinite(values) & (values != np.round(values))
        if np.any(bad):
            index = int(np.argmax(bad))
            value = values[index].item()
            kind = "non-integral " if is_float and math.isfinite(value) and value != round(value) else ""
            raise ValueError(
                f"{name} must be class ids in [0, num_classes) = [0, {num_classes}); "
                f"got {kind}{value!r} (at index {index})."
            )
        return ops.cast(labels, "int32"), None
    if is_float:
        invalid = ops.logical_or(ops.not_equal(labels, ops.floor(labels)), ops.logical_not(ops.isfinite(labels)))
        invalid = ops.logical_or(invalid, ops.logical_or(labels < 0, labels >= num_classes))
    elif dtype == "bool":
        invalid = ops.zeros_like(labels, dtype="bool") if num_classes >= 2 else labels
    else:
        invalid = ops.logical_or(labels < 0, labels >= num_classes)
    return ops.cast(labels, "int32"), ops.any(invalid)


def index_vector(values: Any, size: int, name: str) -> np.ndarray:
    """A 1-D integer array of indices in ``[0, size)`` as ``int64`` (e.g. user ids).

    Examples
    --------
    >>> index_vector([0, 2], 3, "user_ids")
    array([0, 2])
    >>> index_vector([3], 3, "user_ids")
    Traceback (most recent call last):
    ...
    ValueError: user_ids must be in [0, 2].
    """
    ids = np.asarray(values)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"{name} must be a 1-D integer array; got {ids.dtype} array of shape {ids.shape}.")
    if ids.size and (ids.min() < 0 or ids.max() >= size):
        raise ValueError(f"{name} must be in [0, {size - 1}].")
    return ids.astype(np.int64)


def embedding_array(x: Any, name: str = "embeddings") -> np.ndarray:
    """A finite numeric NumPy array of shape ``(n, d)`` with ``n, d >= 1``.

    Integer input passes unchanged (callers cast); booleans, objects, NaN
    and infinities are refused.

    Examples
    --------
    >>> embedding_array([[0.0, 1.0]]).shape
    (1, 2)
    >>> embedding_array([0.0, 1.0], "queries")
    Traceback (most recent call last):
    ...
    ValueError: queries must be a 2-D array of shape (n, d); got shape (2,).
    """
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of shape (n, d); got shape {arr.shape}.")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must have at least one row and one column; got shape {arr.shape}.")
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name} must be numeric (float or int); got dtype {arr.dtype}.")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return arr


def float_vector(x: Any, name: str) -> np.ndarray:
    """A non-empty, finite 1-D float64 NumPy array.

    Examples
    --------
    >>> float_vector([1, 2], "distances")
    array([1., 2.])
    """
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of shape (n_pairs,); got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return arr


def check_pairs(distances: Any, is_same: Any) -> tuple[np.ndarray, np.ndarray]:
    """Pair distances (finite, 1-D float64) and their boolean ``is_same`` flags.

    ``is_same`` may be boolean or 0/1 and must have the shape of
    ``distances``.

    Examples
    --------
    >>> check_pairs([0.5, 0.1], [1, 0])
    (array([0.5, 0.1]), array([ True, False]))
    """
    d = float_vector(distances, "distances")
    s = np.asarray(is_same)
    if s.shape != d.shape:
        raise ValueError(f"is_same must have shape {d.shape} like distances; got shape {s.shape}.")
    if s.dtype != np.bool_:
        if not np.isin(s, (0, 1)).all():
            raise ValueError("is_same must be boolean (or 0/1): True for pairs of the same identity.")
        s = s.astype(bool)
    return d, s
