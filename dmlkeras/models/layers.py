"""The layers of the tuple models: :class:`L2Normalize`, :class:`PairDistance` and :class:`Stack`.

Every layer is registered with Keras (package ``"dmlkeras"``), so saved
models reload with ``keras.saving.load_model(path)`` and no
``custom_objects``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from dmlkeras import distances

__all__ = ["L2Normalize", "PairDistance", "Stack"]

Tensor = Any


@keras.saving.register_keras_serializable(package="dmlkeras")
class L2Normalize(keras.layers.UnitNormalization):
    """Scale each embedding to unit L2 norm: ``keras.layers.UnitNormalization``, safe at zero.

    A thin registered subclass (name ``"dmlkeras>L2Normalize"``, kept so that
    saved models load): Keras' layer with the arithmetic of
    :func:`dmlkeras.distances.l2_normalize`, the one place where dmlkeras
    normalises, so that all-zero rows stay zero with finite gradients.

    Parameters
    ----------
    axis : int or list of int, default -1
        Axis along which to normalise.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> keras.ops.convert_to_numpy(L2Normalize()(np.array([[3.0, 4.0]], "float32")))
    array([[0.6, 0.8]], dtype=float32)
    >>> isinstance(L2Normalize(), keras.layers.UnitNormalization)
    True
    """

    def call(self, inputs: Tensor) -> Tensor:
        return distances.l2_normalize(inputs, axis=self.axis)


@keras.saving.register_keras_serializable(package="dmlkeras")
class PairDistance(keras.layers.Layer):
    """Distance between the two embeddings of each pair: ``[(n, d), (n, d)]`` to ``(n,)``.

    Parameters
    ----------
    metric : str, default "euclidean"
        Any metric of :mod:`dmlkeras.distances`.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> first, second = np.zeros((1, 2), "float32"), np.array([[3.0, 4.0]], "float32")
    >>> keras.ops.convert_to_numpy(PairDistance()([first, second]))
    array([5.], dtype=float32)
    """

    def __init__(self, metric: str = "euclidean", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metric = distances.resolve_metric(metric)

    def call(self, inputs: Sequence[Tensor]) -> Tensor:
        if len(inputs) != 2:
            raise ValueError(
                f"PairDistance expects a list of 2 embedding tensors of shape (n, d); got {len(inputs)}."
            )
        first, second = inputs
        return distances.paired_distances(first, second, metric=self.metric)

    def get_config(self) -> dict:
        return {**super().get_config(), "metric": self.metric}


@keras.saving.register_keras_serializable(package="dmlkeras")
class Stack(keras.layers.Layer):
    """Stack same-shaped tensors along a new axis: ``k`` tensors ``(n, d)`` to ``(n, k, d)``.

    Parameters
    ----------
    axis : int, default 1
        Position of the new axis in the output.

    Examples
    --------
    >>> import numpy as np
    >>> tuple(Stack()([np.zeros((5, 2)), np.ones((5, 2)), np.ones((5, 2))]).shape)
    (5, 3, 2)
    """

    def __init__(self, axis: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axis = axis

    def call(self, inputs: Sequence[Tensor]) -> Tensor:
        return ops.stack(inputs, axis=self.axis)

    def get_config(self) -> dict:
        return {**super().get_config(), "axis": self.axis}
