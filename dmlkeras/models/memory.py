"""Cross-batch memory (Wang et al., "Cross-Batch Memory for Embedding Learning", CVPR 2020).

:class:`CrossBatchMemory` is a ``keras.Model`` around an embedding tower: it
keeps a queue of the last ``memory_size`` embeddings and labels in
non-trainable variables and mines every training batch against itself plus
that queue, with any in-batch loss of :mod:`dmlkeras.losses` (through their
``ref_labels`` / ``ref_embeddings`` / ``self_index`` / ``ref_mask`` protocol).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from dmlkeras._validation import check_int
from dmlkeras.losses import InBatchLoss
from dmlkeras.losses import get as get_loss

Tensor = Any

__all__ = ["CrossBatchMemory"]


@keras.saving.register_keras_serializable(package="dmlkeras")
class CrossBatchMemory(keras.Model):
    """A tower trained with an in-batch loss against a memory of earlier batches.

    ``predict`` (and calling the model) is the tower's; ``fit`` mines each batch
    against a reference of ``memory_size`` rows: the current batch (with its
    gradient) and the ``memory_size - batch_size`` most recent embeddings of earlier
    steps (constants: no gradient flows into the memory), with their labels.

    Parameters
    ----------
    tower : keras.Model
        The embedding model, ``x -> (n, d)``.
    loss : InBatchLoss or str
        Any in-batch loss of :mod:`dmlkeras.losses` (or a registered name of
        :func:`dmlkeras.losses.get`). Its labels are class ids ``(n,)`` or ``(n, 1)``.
    memory_size : int
        Number of rows of the memory, at least the batch size; 0 trains with the plain loss.
    warmup_steps : int, default 0
        Training steps during which the memory is filled but not mined (the paper
        starts using it once the embeddings have stabilised).

    Notes
    -----
    **Why a model, not a loss.** The JAX trainer threads a model's non-trainable
    variables through ``jit`` and ``grad`` (its ``stateless_compute_loss`` captures
    the assignments made in ``compute_loss``); a ``keras.losses.Loss`` is not part of
    that state, so a queue held by a loss would never change under JAX. The memory
    therefore lives in the model (non-trainable variables, saved with it), and
    ``compute_loss`` is overridden: ``model.compile(optimizer)`` without ``loss=``.

    **Enqueue order (the paper's; pytorch-metric-learning issue #24).** The current
    batch is enqueued *before* the loss is computed: the reference is the memory
    after this step's enqueue, so each batch sees its own pairs as well as the
    memory's (enqueueing afterwards, the bug of that issue, drops the in-batch pairs).
    A query's own slot is its ``self_index`` (never its own positive); the batch's
    slots hold the live embeddings, so in-batch pairs get their gradient at both ends,
    the memory's slots are ``stop_gradient`` constants. One loss is computed (the
    paper adds a separate in-batch term; here in-batch pairs are part of the same
    mean). Empty slots and, during warm-up, all earlier slots are masked
    (``ref_mask``): neither positives nor negatives.

    A slot's embedding and label are written in the same step from the same batch
    row. Evaluation (``training=False``) reads the memory and does not update it.
    With ``memory_size=0`` the loss is exactly ``loss(y, tower(x))``.

    Cost: the loss holds ``(n, memory_size)`` matrices instead of ``(n, n)``;
    combine with the loss's ``block_size=`` for large memories (docs/scaling.md).

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> from dmlkeras.losses import TripletLoss
    >>> tower = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> model = CrossBatchMemory(tower, TripletLoss(margin=0.2), memory_size=16)
    >>> model.compile(keras.optimizers.SGD(0.01))
    >>> x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    >>> y = np.repeat(np.arange(8), 4)
    >>> history = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    >>> int(keras.ops.convert_to_numpy(model.memory_filled))
    16
    >>> model.predict(x[:2], verbose=0).shape
    (2, 3)
    """

    def __init__(self, tower: keras.Model, loss: Any, memory_size: int, warmup_steps: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(loss, str):
            loss = get_loss(loss)
        if not isinstance(loss, InBatchLoss):
            raise ValueError(f"loss must be a dmlkeras in-batch loss (InBatchLoss) or a registered name; got {loss!r}.")
        if loss.label_format not in ("auto", "ids"):
            raise ValueError(
                f"CrossBatchMemory stores class ids: the loss's label_format must be 'auto' or 'ids'; "
                f"got {loss.label_format!r}."
            )
        self.tower = tower
        self.memory_loss = loss
        self.memory_size = check_int(memory_size, "memory_size", minimum=0)
        self.warmup_steps = check_int(warmup_steps, "warmup_steps", minimum=0)

    def build(self, input_shape: Any) -> None:
        if not self.tower.built:
            self.tower.build(input_shape)
        if self.memory_size:
            dim = self.tower.compute_output_shape(input_shape)[-1]
            size = self.memory_size

            def state(name, shape, dtype):
                return self.add_weight(shape=shape, dtype=dtype, initializer="zeros", trainable=False, name=name)

            self.memory_embeddings = state("memory_embeddings", (size, dim), "float32")
            self.memory_labels = state("memory_labels", (size,), "int32")
            self.memory_pointer = state("memory_pointer", (), "int32")  # the next slot written
            self.memory_filled = state("memory_filled", (), "int32")  # slots [0, filled) hold rows
            self.memory_steps = state("memory_steps", (), "int32")  # training steps seen
        self.built = True

    def call(self, inputs: Tensor, training: bool | None = None) -> Tensor:
        return self.tower(inputs, training=training)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return self.tower.compute_output_shape(input_shape)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if self.memory_size == 0:
            loss = self.memory_loss(y, y_pred, sample_weight=sample_weight)
        else:
            loss = self._memory_loss(y, y_pred, sample_weight, training)
        for extra in self.losses:  # regularisers and add_loss terms, as Keras' own compute_loss
            loss = loss + ops.cast(ops.sum(extra), loss.dtype)
        return loss

    def _memory_loss(self, y, y_pred, sample_weight, training):
        size = self.memory_size
        labels = ops.convert_to_tensor(y)
        if len(labels.shape) == 2 and labels.shape[-1] == 1:
            labels = ops.reshape(labels, (-1,))
        if len(labels.shape) != 1:
            raise ValueError(
                f"CrossBatchMemory needs class ids of shape (batch_size,) or (batch_size, 1); got shape {tuple(labels.shape)}."
            )
        if y_pred.shape[0] is not None and y_pred.shape[0] > size:
            raise ValueError(
                f"memory_size ({size}) must be at least the batch size ({y_pred.shape[0]}): the memory holds the batch."
            )
        labels = ops.cast(labels, "int32")
        embeddings = ops.cast(y_pred, "float32")
        n = ops.shape(embeddings)[0]
        pointer = ops.convert_to_tensor(self.memory_pointer)
        slots = ops.arange(size, dtype="int32")
        # Slot j is written by batch row (j - pointer) mod size when that is < n: the batch
        # goes to slots pointer, pointer + 1, ... (wrapping around), its embedding and label together.
        row = ops.mod(slots - pointer, size)
        written = row < n
        row = ops.minimum(row, n - 1)
        reference = ops.where(
            ops.expand_dims(written, 1),
            ops.take(embeddings, row, axis=0),
            ops.stop_gradient(ops.convert_to_tensor(self.memory_embeddings)),
        )
        reference_labels = ops.where(written, ops.take(labels, row), ops.convert_to_tensor(self.memory_labels))
        earlier = ops.logical_and(slots < self.memory_filled, self.memory_steps >= self.warmup_steps)
        self_index = ops.mod(pointer + ops.arange(n, dtype="int32"), size)
        loss = self.memory_loss(
            labels,
            embeddings,
            sample_weight=sample_weight,
            ref_labels=reference_labels,
            ref_embeddings=reference,
            self_index=self_index,
            ref_mask=ops.logical_or(written, earlier),
        )
        if training:
            self.memory_embeddings.assign(ops.stop_gradient(reference))
            self.memory_labels.assign(reference_labels)
            self.memory_pointer.assign(ops.mod(pointer + n, size))
            self.memory_filled.assign(ops.minimum(self.memory_filled + n, size))
            self.memory_steps.assign(self.memory_steps + 1)
        return loss

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "tower": keras.saving.serialize_keras_object(self.tower),
            "loss": keras.saving.serialize_keras_object(self.memory_loss),
            "memory_size": self.memory_size,
            "warmup_steps": self.warmup_steps,
        }

    @classmethod
    def from_config(cls, config: dict) -> "CrossBatchMemory":
        config = dict(config)
        config["tower"] = keras.saving.deserialize_keras_object(config["tower"])
        config["loss"] = keras.saving.deserialize_keras_object(config["loss"])
        return cls(**config)
