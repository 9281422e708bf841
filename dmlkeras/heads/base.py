"""The base of every loss head: input checks, the label order, and :class:`LossHead`.

A head is a layer holding a ``(num_classes, embedding_dim)`` weight (or
``(num_classes, sub_centers, embedding_dim)`` for the heads with several
vectors per class) that adds its loss in ``call``; see :mod:`dmlkeras.heads`.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import ops

from dmlkeras._validation import as_float32, check_float, check_int, class_label_tensor
from dmlkeras.distances import cosine_similarity_matrix
from dmlkeras.mining import same_label_mask
from dmlkeras.reducers import masked_logsumexp

Tensor = Any

ORDER_HINT = "the functional forms take (labels, embeddings, weights), like the losses' (y_true, y_pred)"


# ---------------------------------------------------------------------------
# Argument checks
# ---------------------------------------------------------------------------

def check_head_inputs(
    labels: Tensor, embeddings: Tensor, weights: Tensor, name: str, per_class: bool = False
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """Validate ``labels (n,)``, ``embeddings (n, d)`` and ``weights (num_classes, d)``.

    With ``per_class=True`` the weights hold several vectors per class:
    ``(num_classes, vectors_per_class, d)``.

    Returns int32 labels, float32 embeddings and weights, and the traced
    "a label is invalid" flag of :func:`dmlkeras._validation.class_label_tensor`
    (``None`` when the labels were checked eagerly).
    """
    embeddings = as_float32(embeddings)
    weights = as_float32(weights)
    # Not converted here: class_label_tensor checks the values before any cast.
    label_shape = tuple(labels.shape) if hasattr(labels, "shape") else np.shape(labels)
    if len(embeddings.shape) != 2:
        raise ValueError(
            f"embeddings must have shape (batch_size, embedding_dim); got shape {tuple(embeddings.shape)} "
            f"({ORDER_HINT})."
        )
    if len(label_shape) == 2 and label_shape[-1] == 1:
        label_shape = label_shape[:1]
    if len(label_shape) != 1 or (
        label_shape[0] is not None and embeddings.shape[0] is not None and label_shape[0] != embeddings.shape[0]
    ):
        raise ValueError(
            f"labels must be integer class ids of shape (batch_size,) = ({embeddings.shape[0]},); "
            f"got shape {tuple(label_shape)} ({ORDER_HINT})."
        )
    rank = 3 if per_class else 2
    if (
        len(weights.shape) != rank
        or any(size is None for size in weights.shape[:-1])
        or (weights.shape[-1] is not None and embeddings.shape[1] is not None and weights.shape[-1] != embeddings.shape[1])
    ):
        expected = "num_classes, vectors_per_class, " if per_class else "num_classes, "
        raise ValueError(
            f"{name} must have shape ({expected}embedding_dim) = ({expected}{embeddings.shape[1]}) "
            f"with a known {expected.rstrip(', ').replace(', ', ' and ')}; got shape {tuple(weights.shape)}."
        )
    labels, invalid = class_label_tensor(labels, int(weights.shape[0]))
    return labels, embeddings, weights, invalid


def nan_if(invalid: Tensor | None, loss: Tensor) -> Tensor:
    """``loss``, or NaN when the (traced) labels held an invalid id."""
    if invalid is None:
        return loss
    return ops.where(invalid, ops.full_like(loss, math.nan), loss)


def check_scale(scale: float, name: str = "scale") -> float:
    """A finite ``> 0`` float (a logit scale, or a temperature)."""
    return check_float(scale, name, minimum=0.0, strict=True)


def check_unit_margin(margin: float) -> float:
    """A finite margin in ``[0, 1]``."""
    return check_float(margin, "margin", minimum=0.0, maximum=1.0)


def class_mask(labels: Tensor, num_classes: int) -> Tensor:
    """Bool ``(n, num_classes)``: column ``labels[i]`` of row ``i`` (a one-hot mask)."""
    return same_label_mask(labels, ops.arange(num_classes, dtype="int32"))


def class_cross_entropy(logits: Tensor, own: Tensor) -> Tensor:
    """Per-sample softmax cross-entropy ``logsumexp_c(logits_ic) - logits_{i, y_i}``: shape ``(n,)``.

    ``own`` is the bool one-hot ``(n, num_classes)`` of :func:`class_mask`.
    """
    target = ops.sum(ops.where(own, logits, ops.zeros_like(logits)), axis=1)
    return masked_logsumexp(logits, ops.ones_like(own), axis=1) - target


def per_class_cosines(embeddings: Tensor, weights: Tensor) -> Tensor:
    """Cosine of every embedding with every vector of ``weights (C, k, d)``: shape ``(n, C, k)``."""
    num_classes, per_class, dim = weights.shape
    flat = ops.reshape(weights, (num_classes * per_class, dim))
    return ops.reshape(cosine_similarity_matrix(embeddings, flat), (-1, num_classes, per_class))


# ---------------------------------------------------------------------------
# The layer
# ---------------------------------------------------------------------------


def _is_label_shape(shape: tuple) -> bool:
    return len(shape) == 1 or (len(shape) == 2 and shape[-1] == 1)


def _is_embedding_shape(shape: tuple) -> bool:
    return len(shape) == 2 and shape[-1] != 1


def _label_index(shapes: list[tuple], dtypes: list[str] | None = None) -> int:
    """Which of a head's two inputs holds the labels: 0 (``[labels, embeddings]``) or 1 (the old order).

    An integer (or boolean) input is the labels when the other is float;
    otherwise the shapes decide (labels ``(n,)`` / ``(n, 1)``, embeddings
    ``(n, d)``, ``d > 1``).
    """
    if dtypes is not None:
        integer = ["float" not in dtype for dtype in dtypes]
        if integer[0] != integer[1]:
            return 0 if integer[0] else 1
    if _is_label_shape(shapes[0]) and _is_embedding_shape(shapes[1]):
        return 0
    if _is_label_shape(shapes[1]) and _is_embedding_shape(shapes[0]):
        return 1
    described = " and ".join(
        f"{tuple(shape)}" + (f" {dtype}" if dtypes else "") for shape, dtype in zip(shapes, dtypes or ["", ""])
    )
    raise ValueError(
        "A loss head takes [labels, embeddings]: integer labels of shape (batch_size,) or (batch_size, 1) and "
        "float embeddings of shape (batch_size, embedding_dim) (the old order [embeddings, labels] is "
        f"recognised too); cannot tell which input is which from {described}."
    )


class LossHead(keras.layers.Layer):
    """A layer that holds one ``(num_classes, embedding_dim)`` weight and adds a loss.

    Subclasses set ``weight_name`` / ``weight_attribute`` /
    ``default_initializer`` and implement :meth:`head_loss`.
    """

    weight_name = "weights"
    weight_attribute = "class_weights"
    default_initializer = "glorot_uniform"

    def __init__(
        self,
        num_classes: int,
        loss_weight: float = 1.0,
        initializer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_classes = check_int(num_classes, "num_classes", minimum=1)
        self.loss_weight = check_float(loss_weight, "loss_weight", minimum=0.0)
        self.initializer = keras.initializers.get(initializer or self.default_initializer)

    @staticmethod
    def _check_pair(inputs: Any, what: str) -> None:
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError(
                "A loss head takes [labels, embeddings]: labels of shape (batch_size,) or (batch_size, 1) and "
                f"embeddings of shape (batch_size, embedding_dim); got {what}."
            )

    @classmethod
    def _embedding_shape(cls, input_shape: Any) -> tuple:
        cls._check_pair(input_shape, f"input shape {input_shape}")
        if not all(isinstance(shape, (list, tuple)) for shape in input_shape):
            cls._check_pair(None, f"input shape {input_shape}")
        shapes = [tuple(shape) for shape in input_shape]
        embedding_shape = shapes[1 - _label_index(shapes)]
        if embedding_shape[-1] is None:
            raise ValueError(
                "embeddings must have shape (batch_size, embedding_dim) with a known embedding_dim; "
                f"got shape {embedding_shape}."
            )
        return embedding_shape

    def build(self, input_shape: Any) -> None:
        embedding_dim = self._embedding_shape(input_shape)[-1]
        variable = self.add_weight(
            name=self.weight_name,
            shape=self.weight_shape(embedding_dim),
            initializer=self.initializer,
            trainable=self._weight_trainable(),
        )
        setattr(self, self.weight_attribute, variable)

    def weight_shape(self, embedding_dim: int) -> tuple[int, ...]:
        """The shape of the head's weight: ``(num_classes, embedding_dim)``."""
        return (self.num_classes, embedding_dim)

    def _weight_trainable(self) -> bool:
        return True

    def call(self, inputs: Any, training: bool | None = None) -> Tensor:
        self._check_pair(inputs, "a single tensor" if not isinstance(inputs, (list, tuple)) else f"{len(inputs)} inputs")
        tensors = [ops.convert_to_tensor(x) for x in inputs]
        shapes = [tuple(x.shape) for x in tensors]
        dtypes = [keras.backend.standardize_dtype(x.dtype) for x in tensors]
        index = _label_index(shapes, dtypes)
        labels, embeddings = inputs[index], inputs[1 - index]
        self.add_loss(self.loss_weight * self.head_loss(labels, embeddings, training))
        return embeddings

    def head_loss(self, labels: Tensor, embeddings: Tensor, training: bool | None) -> Tensor:
        """The scalar loss of a batch (before ``loss_weight``)."""
        raise NotImplementedError

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return self._embedding_shape(input_shape)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "loss_weight": self.loss_weight,
            "initializer": keras.initializers.serialize(self.initializer),
        }

