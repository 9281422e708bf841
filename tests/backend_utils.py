"""Backend-agnostic helpers for the tests: gradients and conversions.

The library is written with ``keras.ops`` only; the tests run on the
TensorFlow and the JAX backend (``KERAS_BACKEND``), and these helpers hide
the one thing ``keras.ops`` does not offer: taking a gradient.
"""

from __future__ import annotations

from typing import Callable

import keras
import numpy as np


def to_numpy(x) -> np.ndarray:
    """A tensor of any backend as a NumPy array."""
    return np.asarray(keras.ops.convert_to_numpy(x))


def value_and_grad(fn: Callable, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``fn(x)`` (a scalar) and its gradient with respect to ``x``, as NumPy."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        variable = tf.Variable(x)
        with tf.GradientTape() as tape:
            value = fn(variable)
        grad = tape.gradient(value, variable)
        grad = np.zeros_like(x) if grad is None else grad.numpy()
        return np.asarray(value.numpy()), np.asarray(grad)
    if backend == "jax":
        import jax

        value, grad = jax.value_and_grad(lambda v: fn(v))(x)
        return np.asarray(value), np.asarray(grad)
    raise RuntimeError(f"Tests support the tensorflow and jax backends, not {backend!r}.")
