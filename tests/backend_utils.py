"""Backend-agnostic helpers for the tests: gradients and conversions.

The library is written with ``keras.ops`` only; the tests run on the
TensorFlow, the JAX and the PyTorch backend (``KERAS_BACKEND``), and these
helpers hide the one thing ``keras.ops`` does not offer: taking a gradient.
"""

from __future__ import annotations

from typing import Callable

import keras
import numpy as np

BACKENDS = ("tensorflow", "jax", "torch")


def to_numpy(x) -> np.ndarray:
    """A tensor of any backend as a NumPy array (a torch tensor is detached first)."""
    return np.asarray(keras.ops.convert_to_numpy(x))


def value_and_grad(fn: Callable, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``fn(x)`` (a scalar) and its gradient with respect to ``x``, as NumPy.

    A gradient that does not reach ``x`` (``fn`` ignores it) is returned as zeros
    on every backend.
    """
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
    if backend == "torch":
        import torch

        leaf = keras.ops.convert_to_tensor(x).detach().clone().requires_grad_(True)
        value = fn(leaf)
        (grad,) = torch.autograd.grad(value, leaf, allow_unused=True)
        grad = np.zeros_like(x) if grad is None else _torch_to_numpy(grad)
        return _torch_to_numpy(value), grad
    raise RuntimeError(f"Tests support the backends {BACKENDS}, not {backend!r}.")


def _torch_to_numpy(tensor) -> np.ndarray:
    """A torch tensor as NumPy; bfloat16 (which NumPy lacks) as float32."""
    import torch

    tensor = tensor.detach().cpu()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.to(torch.float32)
    return np.asarray(tensor.numpy())
