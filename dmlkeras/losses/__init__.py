"""Metric-learning losses, all ``keras.losses.Loss`` subclasses.

Tuple losses take explicit pairs, triplets or quadruplets (what a Siamese,
triplet or quadruplet model outputs); in-batch losses take integer labels
``(n,)`` as ``y_true`` and embeddings ``(n, d)`` as ``y_pred`` and mine the
batch themselves. Every loss is registered for Keras serialisation, so a
model compiled with one saves to ``.keras`` and loads without
``custom_objects``. The table in ``docs/losses.md`` says which to use when.

:func:`get` and :func:`names` are the one registry of the in-batch losses
(kebab-case names with recommended settings), which the CLI, the
benchmarks and the notebooks use. The self-supervised losses of
:mod:`dmlkeras.losses.ssl` (two views, no labels) have their own,
:func:`get_ssl` and :func:`ssl_names` (docs/ssl.md).
"""

from typing import Any

from dmlkeras.losses.base import InBatchLoss, check_labels_and_embeddings
from dmlkeras.losses.lifted import LiftedStructureLoss, lifted_structure_loss
from dmlkeras.losses.npairs import NPairsLoss, NPairsTupleLoss, npairs_loss
from dmlkeras.losses.pairs import BatchContrastiveLoss, ContrastiveLoss
from dmlkeras.losses.quadruplet import QuadrupletLoss, QuadrupletMarginLoss
from dmlkeras.losses.regression import CosineSimilarityLoss
from dmlkeras.losses.ssl import BarlowTwinsLoss, NTXentLoss, SimSiamLoss, VICRegLoss, get_ssl, ssl_names
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
    "get",
    "get_ssl",
    "names",
    "ssl_names",
    "BarlowTwinsLoss",
    "BatchContrastiveLoss",
    "CircleLoss",
    "ContrastiveLoss",
    "CosineSimilarityLoss",
    "InBatchLoss",
    "LiftedStructureLoss",
    "MultiSimilarityLoss",
    "NPairsLoss",
    "NPairsTupleLoss",
    "NTXentLoss",
    "QuadrupletLoss",
    "QuadrupletMarginLoss",
    "SimSiamLoss",
    "SupervisedContrastiveLoss",
    "TripletHardLoss",
    "TripletLoss",
    "TripletMarginLoss",
    "TripletSemiHardLoss",
    "VICRegLoss",
    "check_labels_and_embeddings",
    "circle_loss",
    "lifted_structure_loss",
    "multi_similarity_loss",
    "npairs_loss",
    "supervised_contrastive_loss",
]


# name -> (class, recommended settings); the CLI's, the benchmarks' and the notebooks' list.
_REGISTRY: dict = {
    "triplet-semihard": (TripletLoss, {"margin": 0.5, "mining": "semi-hard"}),
    "triplet-hard": (TripletLoss, {"margin": 0.2, "mining": "hard"}),
    "triplet-all": (TripletLoss, {"margin": 0.2, "mining": "all"}),
    "batch-contrastive": (BatchContrastiveLoss, {"pos_margin": 0.0, "neg_margin": 1.0}),
    "multi-similarity": (MultiSimilarityLoss, {}),
    "circle": (CircleLoss, {}),
    "supcon": (SupervisedContrastiveLoss, {}),
    "n-pairs": (NPairsLoss, {}),
    "lifted-structure": (LiftedStructureLoss, {}),
    "quadruplet": (QuadrupletLoss, {}),
}


def names() -> tuple:
    """The registered in-batch loss names, in a stable order.

    Examples
    --------
    >>> names()[:3]
    ('triplet-semihard', 'triplet-hard', 'triplet-all')
    """
    return tuple(_REGISTRY)


def get(name: str, **overrides: Any) -> InBatchLoss:
    """A new in-batch loss by registered name, with its recommended settings (``overrides`` win).

    Raises
    ------
    ValueError
        On an unknown name; the message lists :func:`names`.

    Examples
    --------
    >>> get("triplet-hard").margin
    0.2
    >>> get("triplet-hard", margin=0.3).margin
    0.3
    """
    if name not in _REGISTRY:
        raise ValueError(f"Unknown loss {name!r}. Registered losses: {', '.join(_REGISTRY)}.")
    cls, settings = _REGISTRY[name]
    return cls(**{**settings, **overrides})
