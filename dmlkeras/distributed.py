"""Mining across devices: each replica's anchors against the global batch (docs/scaling.md).

Under data parallelism the global batch is split along its first axis, one
slice per device. What an in-batch loss sees then depends on the backend:

* **JAX**, ``keras.distribution.DataParallel``: Keras compiles one program
  over the global batch, sharded across the devices; the loss is a function of
  the whole batch (XLA inserts the collectives), so mining is global already
  and equal to one device (``tests/test_distributed.py`` checks it on 4 and 8
  virtual devices). :func:`cross_replica` is the identity there.
* **TensorFlow**, ``tf.distribute.MirroredStrategy``: Keras runs the train
  step once per replica on its slice and sums the replicas' gradients, so a
  loss alone mines each slice separately and misses the other replicas'
  negatives. :func:`cross_replica` all-gathers the embeddings, labels and
  sample weights, mines the local anchors against the global batch (the
  local rows are a slice of the reference: ``self_index``), gathers the
  per-query :class:`~dmlkeras.reducers.Terms` and reduces them as one
  device would. The value on every replica is the global loss.
* **torch** (one process) and TensorFlow without a strategy (or with one
  replica): the identity. torch DDP is not supported.

Exact gradients on TensorFlow. ``ReplicaContext.all_gather`` is
differentiable: its backward pass sums the replicas' gradients of the
gathered tensor (an all-reduce) and hands each replica its own rows. So the
gradient of an embedding reaches its replica once from every replica's loss,
both where it is an anchor and where it is another anchor's positive or
negative. Each replica's loss is the global value ``L``; Keras sums the
replicas' gradients, and a Keras loss divides itself by the number of
replicas ``R`` (``keras.losses.Loss`` does it in its reduction, which
``InBatchLoss.__call__`` does not go through), so the wrapper returns
``L / R``: the summed gradient is that of ``L``, with no double counting, and
the loss Keras reports (it multiplies by ``R`` again and averages the
replicas) is ``L``.

Cost per replica: an ``(n, N)`` distance matrix for ``n`` local anchors and a
global batch of ``N`` (one device: ``(N, N)``). ``LiftedStructureLoss`` and
losses written with ``compute()`` only read every query of the batch at once
(a lifted pair takes the negatives of both its ends among the queries): there
every replica computes the whole ``(N, N)`` loss, exact too.
"""

from __future__ import annotations

from typing import Any

import keras

from dmlkeras._validation import as_float32, check_embeddings
from dmlkeras.losses import InBatchLoss, LiftedStructureLoss
from dmlkeras.losses import get as get_loss
from dmlkeras.mining import label_relation
from dmlkeras.reducers import Terms

Tensor = Any

__all__ = ["CrossReplicaLoss", "cross_replica", "replica_context"]

#: Keras reductions whose value is the reducer's (a mean over the valid elements).
_MEANS = ("sum_over_batch_size", "mean", "mean_with_sample_weight")

#: Losses whose terms read every query of the batch: each replica computes the whole batch.
WHOLE_BATCH_LOSSES = (LiftedStructureLoss,)


def replica_context():
    """The TensorFlow replica context of a step with more than one replica, else ``None``.

    ``None`` on JAX and torch, outside ``strategy.run`` and under a one-replica
    strategy: then there is nothing to gather.

    Examples
    --------
    >>> replica_context() is None  # no tf.distribute strategy here
    True
    """
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    if tf.distribute.in_cross_replica_context():
        return None
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context


@keras.saving.register_keras_serializable(package="dmlkeras")
class CrossReplicaLoss(keras.losses.Loss):
    """An in-batch loss whose anchors are mined against the global batch of every replica.

    Build it with :func:`cross_replica`. On TensorFlow under a
    ``tf.distribute`` strategy with several replicas, each replica gathers
    the embeddings and labels of all replicas and mines its own anchors
    against them; the value, and the gradients Keras sums over the replicas,
    are those of the wrapped loss on the global batch on one device (see
    the module docstring). Everywhere else it is the wrapped loss.

    Parameters
    ----------
    loss : InBatchLoss or str
        The loss, or a registered name (:func:`dmlkeras.losses.get`). Its
        ``reduction`` must be a mean (the default) or ``"sum"``.
    name : str, optional
        Default ``"cross_replica_<loss name>"``.

    Raises
    ------
    ValueError
        When ``loss`` is not an in-batch loss, its reduction is ``"none"``,
        or it reads a precomputed relation (``label_format="relation"``: an
        ``(n, n)`` relation cannot be gathered into an ``(n, N)`` one).

    Examples
    --------
    >>> import numpy as np
    >>> from dmlkeras.losses import TripletLoss
    >>> loss = cross_replica(TripletLoss(mining="hard"))
    >>> y, x = np.array([0, 0, 1, 1]), np.array([[0.0, 0.0], [0.0, 1.0], [3.0, 0.0], [3.0, 1.0]], "float32")
    >>> float(loss(y, x)) == float(TripletLoss(mining="hard")(y, x))  # one device: the loss itself
    True
    """

    def __init__(self, loss: InBatchLoss | str | dict, name: str | None = None, **kwargs: Any) -> None:
        if isinstance(loss, str):
            loss = get_loss(loss)
        elif isinstance(loss, dict):
            loss = keras.saving.deserialize_keras_object(loss)
        if not isinstance(loss, InBatchLoss):
            raise ValueError(
                "cross_replica wraps an in-batch loss (a dmlkeras.losses.InBatchLoss, e.g. TripletLoss) "
                f"or its registered name; got {loss!r}."
            )
        if loss.reduction not in _MEANS + ("sum",):
            raise ValueError(
                f"cross_replica needs a loss with reduction in {_MEANS + ('sum',)} (one number per step); "
                f"got reduction={loss.reduction!r}."
            )
        if loss.label_format == "relation":
            raise ValueError(
                "cross_replica cannot gather a precomputed relation (label_format='relation'); "
                "pass class ids (batch_size,) or multi-hot labels (batch_size, num_labels)."
            )
        kwargs.pop("reduction", None)  # the wrapped loss's reduction is the one that counts
        super().__init__(name=name or f"cross_replica_{loss.name}", **kwargs)
        self.loss = loss

    def __call__(self, y_true: Tensor, y_pred: Tensor, sample_weight: Tensor | None = None) -> Tensor:
        """The wrapped loss over the global batch (this replica's share of it under a strategy)."""
        context = replica_context()
        if context is None:
            return self.loss(y_true, y_pred, sample_weight=sample_weight)
        with keras.name_scope(self.name):
            return _global_loss(self.loss, context, y_true, y_pred, sample_weight)

    def get_config(self) -> dict:
        return {"name": self.name, "loss": keras.saving.serialize_keras_object(self.loss)}

    @classmethod
    def from_config(cls, config: dict) -> "CrossReplicaLoss":
        return cls(**config)


def cross_replica(loss: InBatchLoss | str) -> CrossReplicaLoss:
    """Mine ``loss`` across replicas: ``model.compile(optimizer, loss=cross_replica(loss))``.

    Use it inside ``strategy.scope()`` of a ``tf.distribute.MirroredStrategy``
    (or any strategy with a replica context); it is the identity on JAX,
    where ``keras.distribution.DataParallel`` already gives the loss the
    global batch, on torch, and on one device. See :class:`CrossReplicaLoss`.

    Examples
    --------
    >>> cross_replica("triplet-semihard").loss.name
    'triplet_loss'
    """
    return CrossReplicaLoss(loss)


def _global_loss(loss: InBatchLoss, context, y_true, y_pred, sample_weight) -> Tensor:
    """``L / R`` on this replica, ``L`` the loss of the gathered global batch."""
    import tensorflow as tf

    query = check_embeddings(y_pred)
    labels = tf.convert_to_tensor(y_true)
    local_size = tf.shape(query)[:1]
    # Differentiable: the backward pass sums the replicas' gradients and keeps this replica's rows.
    reference = context.all_gather(query, axis=0)
    ref_labels = context.all_gather(labels, axis=0)
    weights = None
    if sample_weight is not None:
        weights = tf.broadcast_to(tf.reshape(as_float32(sample_weight), [-1]), local_size)
        ref_weights = context.all_gather(weights, axis=0)
    replicas = context.num_replicas_in_sync
    if isinstance(loss, WHOLE_BATCH_LOSSES) or type(loss).terms is InBatchLoss.terms:
        value = loss(ref_labels, reference, sample_weight=None if weights is None else ref_weights)
        return value / replicas if loss.reduction == "sum" else value  # a mean is already divided by R
    sizes = context.all_gather(local_size, axis=0)
    offset = tf.reduce_sum(sizes[: context.replica_id_in_sync_group])
    self_index = offset + tf.range(local_size[0])
    relation = label_relation(labels, ref_labels, self_index=self_index, label_format=loss.label_format)
    terms = [Terms(*context.all_gather(list(term), axis=0)) for term in loss.terms(relation, query, reference)]
    # The global batch's terms (the gather is differentiable too), reduced as the loss reduces its own.
    value = loss.reduce_terms(terms, None if weights is None else ref_weights, relation, reference, None)
    return value / replicas
