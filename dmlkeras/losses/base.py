"""Input checks and the base class shared by every in-batch loss."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from dmlkeras.distances import as_float32

Tensor = Any


def check_labels_and_embeddings(y_true: Tensor, y_pred: Tensor) -> tuple[Tensor, Tensor]:
    """Validate in-batch loss inputs and return ``(labels (n,), embeddings (n, d))``.

    Raises
    ------
    ValueError
        If ``y_pred`` is not ``(batch_size, embedding_dim)``, ``y_true`` is not
        ``(batch_size,)`` or ``(batch_size, 1)`` integer labels, or their batch
        sizes differ.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> labels, emb = check_labels_and_embeddings(np.array([[0], [1]]), np.zeros((2, 3)))
    >>> tuple(labels.shape), tuple(emb.shape)
    ((2,), (2, 3))
    """
    y_pred = as_float32(y_pred)
    if len(y_pred.shape) != 2:
        raise ValueError(
            "y_pred must be embeddings of shape (batch_size, embedding_dim); "
            f"got shape {tuple(y_pred.shape)}."
        )
    y_true = ops.convert_to_tensor(y_true)
    if len(y_true.shape) == 2 and y_true.shape[-1] == 1:
        y_true = ops.reshape(y_true, (-1,))
    if len(y_true.shape) != 1:
        raise ValueError(
            "y_true must be integer class labels of shape (batch_size,) or (batch_size, 1); "
            f"got shape {tuple(y_true.shape)}."
        )
    n_labels, n_embeddings = y_true.shape[0], y_pred.shape[0]
    if n_labels is not None and n_embeddings is not None and n_labels != n_embeddings:
        raise ValueError(
            f"y_true has {n_labels} labels but y_pred has {n_embeddings} embeddings; "
            "expected one label per embedding."
        )
    return y_true, y_pred


class InBatchLoss(keras.losses.Loss):
    """Base class of the losses that mine pairs or triplets inside a batch.

    ``y_true`` holds integer class labels ``(n,)`` and ``y_pred`` embeddings
    ``(n, d)``. Subclasses implement :meth:`compute` on validated float32
    inputs and return a scalar; inputs in float16 or bfloat16 are computed in
    float32.

    Examples
    --------
    A custom loss: mean distance between positives.

    >>> import numpy as np
    >>> import keras
    >>> from dmlkeras.distances import pairwise_distances
    >>> from dmlkeras.mining import positive_mask
    >>> from dmlkeras.reducers import masked_mean
    >>> class MeanPositiveDistance(InBatchLoss):
    ...     def compute(self, labels, embeddings):
    ...         d = pairwise_distances(embeddings)
    ...         return masked_mean(d, positive_mask(labels))
    >>> float(MeanPositiveDistance()(np.array([0, 0]), np.array([[0.0, 0.0], [3.0, 4.0]])))
    5.0
    """

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        labels, embeddings = check_labels_and_embeddings(y_true, y_pred)
        return self.compute(labels, embeddings)

    def compute(self, labels: Tensor, embeddings: Tensor) -> Tensor:
        """Return the scalar loss of a validated batch."""
        raise NotImplementedError
