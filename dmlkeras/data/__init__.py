"""NumPy batch builders for deep metric learning.

This module turns a labelled data set ``(x, y)`` into the tuples and batches
that metric-learning models consume:

* :func:`make_pairs` / :func:`make_pair_indices` -- positive/negative pairs
  for siamese (contrastive) models;
* :func:`make_triplets` / :func:`make_triplet_indices` -- (anchor, positive,
  negative) triplets;
* :func:`make_quadruplets` / :func:`make_quadruplet_indices` -- (anchor,
  positive, negative1, negative2) quadruplets (Chen et al., 2017);
* :class:`ClassBalancedBatches` -- a :class:`keras.utils.PyDataset` of
  "P x K" batches (P classes, K samples each) for in-batch losses
  (batch-hard triplet, multi-similarity, supervised contrastive, ...);
* :class:`TupleDataset` -- a ``PyDataset`` that builds fresh pairs,
  triplets or quadruplets every epoch instead of materialising them;
  :class:`PairsDataset`, :class:`TripletsDataset` and
  :class:`QuadrupletsDataset` are its three kinds under their own names.

Modules: :mod:`~dmlkeras.data.base` (:class:`EpochSeededDataset`, the
epoch-seeded ``PyDataset`` that every dataset here and
:class:`dmlkeras.recsys.InteractionTriplets` build on),
:mod:`~dmlkeras.data.sampling` (sampling by class),
:mod:`~dmlkeras.data.tuples`, :mod:`~dmlkeras.data.batches` and
:mod:`~dmlkeras.data.views` (:class:`TwoViews`: augmented views of unlabelled
data for self-supervised training).

Everything is plain NumPy, so the datasets work with every Keras backend
(TensorFlow, JAX, PyTorch).  ``x`` may be one array, a tuple/list of arrays
(multi-input models) or a dict of arrays; ``y`` holds integer class labels of
shape ``(n_samples,)``.

Reproducibility
---------------
All randomness goes through :func:`numpy.random.default_rng`.  The
``make_*`` functions are pure functions of their arguments and ``seed``.  The
datasets derive every batch from ``(seed, epoch, index)`` only: the batch
returned by ``dataset[i]`` does not depend on which batches were requested
before, or in which order, or from which thread/process.  That keeps
training reproducible when Keras shuffles the batch order or fetches batches
with several ``workers``.  The ``epoch`` attribute is advanced by
``on_epoch_end`` (which ``model.fit`` calls) and can be set by hand, e.g. to
resume training.  (Keras' ``fit`` also calls ``on_epoch_end`` once after
peeking at a batch to build the model, so its first training epoch may use
``epoch == 1``; that is still a fixed function of the seed.)
"""

from dmlkeras.data.base import EpochSeededDataset, Inputs
from dmlkeras.data.batches import ClassBalancedBatches
from dmlkeras.data.tuples import (
    SeedLike,
    PairsDataset,
    QuadrupletsDataset,
    TripletsDataset,
    TupleDataset,
    make_pair_indices,
    make_pairs,
    make_quadruplet_indices,
    make_quadruplets,
    make_triplet_indices,
    make_triplets,
)
from dmlkeras.data.views import KerasAugmentation, TwoViews

__all__ = [
    "make_pair_indices",
    "make_pairs",
    "make_triplet_indices",
    "make_triplets",
    "make_quadruplet_indices",
    "make_quadruplets",
    "ClassBalancedBatches",
    "EpochSeededDataset",
    "PairsDataset",
    "QuadrupletsDataset",
    "TripletsDataset",
    "TupleDataset",
    "KerasAugmentation",
    "TwoViews",
]
