"""Metric-learning losses, all ``keras.losses.Loss`` subclasses.

Tuple losses take explicit pairs or triplets (what a Siamese or triplet
model outputs); in-batch losses take integer labels ``(n,)`` as ``y_true``
and embeddings ``(n, d)`` as ``y_pred`` and mine the batch themselves.
Every loss is registered for Keras serialisation, so a model compiled with
one saves to ``.keras`` and loads without ``custom_objects``.
"""

from dmlkeras.losses.base import InBatchLoss
from dmlkeras.losses.pairs import BatchContrastiveLoss, ContrastiveLoss
from dmlkeras.losses.triplets import (
    TripletHardLoss,
    TripletLoss,
    TripletMarginLoss,
    TripletSemiHardLoss,
)

__all__ = [
    "BatchContrastiveLoss",
    "ContrastiveLoss",
    "InBatchLoss",
    "TripletHardLoss",
    "TripletLoss",
    "TripletMarginLoss",
    "TripletSemiHardLoss",
]
