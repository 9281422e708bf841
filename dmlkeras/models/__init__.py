"""Embedding towers and the Siamese, triplet, quadruplet and head models around them.

* :mod:`dmlkeras.models.layers` -- :class:`L2Normalize` (Keras'
  ``UnitNormalization``, safe at zero), :class:`PairDistance`, :class:`Stack`;
* :mod:`dmlkeras.models.towers` -- :func:`build_embedding_model` for images
  and vectors, :func:`build_face_tower` (the LFW notebooks' face CNN);
* :mod:`dmlkeras.models.tuples` -- :func:`build_siamese_model`,
  :func:`build_triplet_model`, :func:`build_quadruplet_model`,
  :func:`build_head_model` (a tower plus a loss head of :mod:`dmlkeras.heads`)
  and :func:`get_embedding_model`, which recovers the tower after training;
* :mod:`dmlkeras.models.ssl` -- :func:`build_ssl_model`, the two-view models
  of self-supervised training (SimCLR, Barlow Twins, VICReg, SimSiam).
* :mod:`dmlkeras.models.memory` -- :class:`CrossBatchMemory`, a tower trained
  against a memory of earlier batches (cross-batch memory).

Text towers live in :mod:`dmlkeras.text`; their names
(:func:`build_text_encoder`, :class:`WeightedBagOfWords`, :func:`idf_weights`,
...) are also importable from here, where they lived before. Every custom
layer is registered with Keras (package ``"dmlkeras"``): a model saved to
``.keras`` reloads with ``keras.saving.load_model(path)`` and no
``custom_objects``, once :mod:`dmlkeras` has been imported.
"""

from __future__ import annotations

import importlib
from typing import Any

from dmlkeras.models.layers import L2Normalize, PairDistance, Stack
from dmlkeras.models.memory import CrossBatchMemory
from dmlkeras.models.ssl import build_ssl_model
from dmlkeras.models.towers import BACKBONES, build_embedding_model, build_face_tower
from dmlkeras.models.tuples import (
    build_head_model,
    build_quadruplet_model,
    build_siamese_model,
    build_triplet_model,
    get_embedding_model,
)

# dmlkeras.text builds on dmlkeras.models.layers, so it is imported on first
# use (PEP 562) rather than here, which would make the two import each other.
_TEXT_NAMES = (
    "MaskedGlobalPooling1D",
    "POOLINGS",
    "PositionEmbedding",
    "TEXT_ENCODERS",
    "WeightedBagOfWords",
    "build_text_encoder",
    "idf_weights",
)

__all__ = [
    "BACKBONES",
    "CrossBatchMemory",
    "L2Normalize",
    "MaskedGlobalPooling1D",
    "PairDistance",
    "PositionEmbedding",
    "Stack",
    "WeightedBagOfWords",
    "build_embedding_model",
    "build_face_tower",
    "build_head_model",
    "build_quadruplet_model",
    "build_siamese_model",
    "build_ssl_model",
    "build_text_encoder",
    "build_triplet_model",
    "get_embedding_model",
    "idf_weights",
]


def __getattr__(name: str) -> Any:
    if name in _TEXT_NAMES:
        return getattr(importlib.import_module("dmlkeras.text"), name)
    raise AttributeError(f"module 'dmlkeras.models' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_TEXT_NAMES})
