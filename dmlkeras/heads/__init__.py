"""Loss heads: layers that own class centres, proxies or class weights and add their loss.

A Keras loss cannot own weights, so the losses that learn one vector per
class (or several) live in layers. A head takes ``[labels, embeddings]`` (the order of
the losses' ``(y_true, y_pred)``), holds a ``(num_classes, embedding_dim)``
weight (``"centers"``, ``"proxies"`` or ``"weights"``; ``(num_classes, k,
embedding_dim)`` for :class:`SoftTriple` and :class:`SubCenterArcFace`,
which hold ``k`` vectors per class), adds its loss with
``self.add_loss`` and returns the embeddings unchanged. Train the model
built around it with no compiled loss; at inference use the tower alone,
which outputs the embeddings.

The first version's order ``[embeddings, labels]`` keeps working (models and
``.keras`` files built with it load and train unchanged): the head tells the
two apart by dtype (labels are integer, embeddings float) and, for float
labels, by shape (labels ``(n,)`` or ``(n, 1)``, embeddings ``(n, d)`` with
``d > 1``), and raises ``ValueError`` when neither decides.

========================================  ==========  ==========================================================
head (module)                             weight      loss
========================================  ==========  ==========================================================
:class:`CenterLoss` (centers)             centers     Wen et al., ECCV 2016 (moving centre update)
:class:`TripletCenterLoss` (centers)      centers     He et al., CVPR 2018
:class:`ProxyAnchorLoss` (proxies)        proxies     Kim et al., CVPR 2020
:class:`ProxyNCA` (proxies)               proxies     Movshovitz-Attias et al., ICCV 2017
:class:`SoftTriple` (proxies)             centers     Qian et al., ICCV 2019 (K centres per class)
:class:`ArcFace` (margins)                weights     Deng et al., CVPR 2019 (additive angular margin)
:class:`CosFace` (margins)                weights     Wang et al., CVPR 2018 (additive cosine margin)
:class:`NormalizedSoftmax` (margins)      weights     Zhai & Wu, BMVC 2019 (cosine softmax, temperature)
:class:`SubCenterArcFace` (margins)       weights     Deng et al., ECCV 2020 (k sub-centres per class)
========================================  ==========  ==========================================================

The modules: :mod:`dmlkeras.heads.base` (input checks and :class:`LossHead`,
the base class of every head), :mod:`~dmlkeras.heads.centers`,
:mod:`~dmlkeras.heads.proxies` and :mod:`~dmlkeras.heads.margins`. Import
the heads from ``dmlkeras.heads``.

The loss math is also exposed as plain functions of ``(labels, embeddings,
weights)`` (:func:`center_loss`, :func:`triplet_center_loss`,
:func:`proxy_anchor_loss`, :func:`proxy_nca_loss`, :func:`soft_triple_loss`,
:func:`arcface_loss`, :func:`cosface_loss`, :func:`normalized_softmax_loss`,
:func:`subcenter_arcface_loss`; :func:`subcenter_outliers` finds the noisy
samples of a sub-center ArcFace), and
a head's weight can be read or replaced with ``get_weights`` /
``set_weights`` (or through its ``centers`` / ``proxies`` /
``class_weights`` attribute). :class:`CenterLoss` and
:class:`TripletCenterLoss` and :class:`ProxyNCA` take ``distance=`` (see
:mod:`dmlkeras.distances`); the others are cosine by definition.

Labels are checked: a negative, too large (``>= num_classes``) or
non-integral label raises ``ValueError`` naming ``num_classes`` whenever the
values are known (eager calls). In compiled training (``tf.function``,
``jax.jit``) values are unknown when the graph is built and ``keras.ops``
cannot raise, so a batch holding such a label gets a NaN loss instead (so
``keras.callbacks.TerminateOnNaN`` stops the run) and :class:`CenterLoss`
leaves its centres unchanged for that batch.

Examples
--------
Image and label in, embeddings out; the head's loss is the training loss.

>>> import numpy as np
>>> import keras
>>> images = keras.Input(shape=(8, 8, 1), name="image")
>>> labels = keras.Input(shape=(), dtype="int32", name="label")
>>> tower = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(4)], name="tower")
>>> embeddings = ProxyAnchorLoss(num_classes=3, name="head")([labels, tower(images)])
>>> model = keras.Model([images, labels], embeddings)
>>> model.compile(optimizer="adam")  # no loss: the head adds it
>>> x = np.random.default_rng(0).normal(size=(12, 8, 8, 1)).astype("float32")
>>> y = np.arange(12) % 3
>>> history = model.fit(x=[x, y], y=None, batch_size=6, epochs=1, verbose=0)
>>> inference = tower  # embeddings only, no labels needed
>>> inference.predict(x, verbose=0).shape
(12, 4)
"""

from dmlkeras.heads.base import LossHead
from dmlkeras.heads.centers import (
    CENTER_UPDATES,
    CenterLoss,
    TripletCenterLoss,
    center_loss,
    center_update,
    triplet_center_loss,
)
from dmlkeras.heads.margins import (
    ArcFace,
    CosFace,
    NormalizedSoftmax,
    SubCenterArcFace,
    arcface_loss,
    cosface_loss,
    normalized_softmax_loss,
    subcenter_arcface_loss,
    subcenter_outliers,
)
from dmlkeras.heads.proxies import (
    ProxyAnchorLoss,
    ProxyNCA,
    SoftTriple,
    proxy_anchor_loss,
    proxy_nca_loss,
    soft_triple_loss,
)

__all__ = [
    "CENTER_UPDATES",
    "ArcFace",
    "CenterLoss",
    "CosFace",
    "LossHead",
    "NormalizedSoftmax",
    "ProxyAnchorLoss",
    "ProxyNCA",
    "SoftTriple",
    "SubCenterArcFace",
    "TripletCenterLoss",
    "arcface_loss",
    "center_loss",
    "center_update",
    "cosface_loss",
    "normalized_softmax_loss",
    "proxy_anchor_loss",
    "proxy_nca_loss",
    "soft_triple_loss",
    "subcenter_arcface_loss",
    "subcenter_outliers",
    "triplet_center_loss",
]
