"""Pair regression: learn graded similarity (STS scores) rather than same / different.

The pair losses of :mod:`dmlkeras.losses.pairs` take binary labels. Semantic
textual similarity data (STS Benchmark, SICK) grades each pair instead, e.g.
from 0 (unrelated) to 5 (equivalent); :class:`CosineSimilarityLoss` regresses
the cosine similarity of the two embeddings onto that grade.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from dmlkeras.losses.pairs import as_pair_vector, pair_distances

Tensor = Any

__all__ = ["CosineSimilarityLoss"]


@keras.saving.register_keras_serializable(package="dmlkeras")
class CosineSimilarityLoss(keras.losses.Loss):
    """Mean squared error between pair cosine similarities and graded targets.

    Per pair ``(cos(u, v) - y)**2``, averaged over the pairs: the
    ``CosineSimilarityLoss`` of Sentence-BERT (Reimers & Gurevych, EMNLP
    2019), which fine-tunes a Siamese encoder on STS Benchmark with the gold
    score divided by 5 as the target.

    Parameters
    ----------
    name : str, default "cosine_similarity_loss"
    **kwargs
        Passed to :class:`keras.losses.Loss` (e.g. ``reduction``).

    Notes
    -----
    ``y_true`` is ``(n,)`` or ``(n, 1)``: the target cosine similarity of
    each pair, in ``[-1, 1]``; rescale graded scores first (STS-B: ``score /
    5``; SICK relatedness: ``(score - 1) / 4``).

    ``y_pred`` takes either of two layouts, told apart by their rank:

    * ``(n,)`` or ``(n, 1)``: cosine **distances** ``1 - cos(u, v)``, what
      :func:`dmlkeras.models.build_siamese_model` outputs with
      ``metric="cosine"`` (the loss uses ``cos = 1 - y_pred``). Do not pass
      the output of a Siamese model built with another metric: it would be
      read as a cosine distance all the same.
    * ``(n, 2, d)``: stacked embeddings ``[u, v]`` of each pair, e.g.
      ``keras.Model([left, right], Stack()([tower(left), tower(right)]))``
      with :class:`dmlkeras.models.Stack`. The cosine is computed here with
      :func:`dmlkeras.distances.paired_distances` (``metric="cosine"``), so
      the tower need not L2-normalise, and an all-zero embedding has cosine
      0 with anything (finite loss and gradient).

    Half-precision inputs are computed in float32.

    Examples
    --------
    >>> import numpy as np
    >>> loss = CosineSimilarityLoss()
    >>> cosine_distances = np.array([0.0, 1.0])  # cosines 1 and 0
    >>> float(loss(np.array([0.5, 0.25]), cosine_distances))  # (0.25 + 0.0625) / 2
    0.15625
    >>> pairs = np.array([[[1.0, 0.0], [2.0, 0.0]], [[1.0, 0.0], [0.0, 3.0]]])  # cosines 1 and 0
    >>> float(loss(np.array([0.5, 0.25]), pairs))
    0.15625
    """

    def __init__(self, name: str = "cosine_similarity_loss", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        cosine_distances = pair_distances(y_pred, "cosine", what="cosine distances")
        targets = as_pair_vector(y_true, "y_true (target cosine similarities)")
        n_targets, n_pairs = targets.shape[0], cosine_distances.shape[0]
        if n_targets is not None and n_pairs is not None and n_targets != n_pairs:
            raise ValueError(f"y_true has {n_targets} targets but y_pred has {n_pairs} pairs.")
        return ops.square(1.0 - cosine_distances - targets)
