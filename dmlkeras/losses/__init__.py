"""Metric-learning losses, all ``keras.losses.Loss`` subclasses.

Tuple losses take explicit pairs, triplets or quadruplets (what a Siamese,
triplet or quadruplet model outputs); in-batch losses take integer labels
``(n,)`` as ``y_true`` and embeddings ``(n, d)`` as ``y_pred`` and mine the
batch themselves. Every loss is registered for Keras serialisation, so a
model compiled with one saves to ``.keras`` and loads without
``custom_objects``. The table in ``docs/losses.md`` says which to use when.
"""

from dmlkeras.losses.base import InBatchLoss, check_labels_and_embeddings
from dmlkeras.losses.lifted import LiftedStructureLoss, lifted_structure_loss
from dmlkeras.losses.npairs import NPairsLoss, NPairsTupleLoss, npairs_loss
from dmlkeras.losses.pairs import BatchContrastiveLoss, ContrastiveLoss
from dmlkeras.losses.quadruplet import QuadrupletLoss, QuadrupletMarginLoss
from dmlkeras.losses.regression import CosineSimilarityLoss
from dmlkeras.losses.similarity import (
    CircleLoss,
    MultiSimilarityLoss,
    SupervisedContrastiveLoss,
    circle_loss,
    multi_similarity_loss,
    supervised_contrastive_loss,
)
from dmlkeras.losses.triplets import (
    TripletHardLoss,
    TripletLoss,
    TripletMarginLoss,
    TripletSemiHardLoss,
)

__all__ = [
    "BatchContrastiveLoss",
    "CircleLoss",
    "ContrastiveLoss",
    "CosineSimilarityLoss",
    "InBatchLoss",
    "LiftedStructureLoss",
    "MultiSimilarityLoss",
    "NPairsLoss",
    "NPairsTupleLoss",
    "QuadrupletLoss",
    "QuadrupletMarginLoss",
    "SupervisedContrastiveLoss",
    "TripletHardLoss",
    "TripletLoss",
    "TripletMarginLoss",
    "TripletSemiHardLoss",
    "check_labels_and_embeddings",
    "circle_loss",
    "lifted_structure_loss",
    "multi_similarity_loss",
    "npairs_loss",
    "supervised_contrastive_loss",
]
