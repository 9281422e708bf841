"""Self-supervised training models around a tower: :func:`build_ssl_model`.

The model takes two views ``[view1, view2]``, sends both through the tower
(one set of weights) and the method's heads (shared by the two views), and
stacks what the method's loss (:func:`dmlkeras.losses.get_ssl`) reads:

* ``"simclr"``: projector MLP (Dense-ReLU-Dense), ``(n, 2, projection_dim)``
  for :class:`~dmlkeras.losses.NTXentLoss`;
* ``"barlow-twins"`` and ``"vicreg"``: expander (two Dense-BatchNorm-ReLU
  blocks, then Dense), ``(n, 2, projection_dim)``;
* ``"simsiam"``: projector (Dense-BN-ReLU, Dense-BN) and predictor
  (Dense-BN-ReLU bottleneck, Dense), ``(n, 4, projection_dim)``: ``z1, z2,
  p1, p2``; :class:`~dmlkeras.losses.SimSiamLoss` stops the gradient of
  ``z``.

The heads are plain Keras layers, so the model saves and loads without
``custom_objects``, and :func:`dmlkeras.models.get_embedding_model` returns
the tower, which is what is kept after training (the heads are dropped, as
in the papers).
"""

from __future__ import annotations

from typing import Any

import keras

from dmlkeras._validation import check_int
from dmlkeras.losses.ssl import check_ssl_method
from dmlkeras.models.layers import Stack
from dmlkeras.models.tuples import check_tower, tower_inputs

__all__ = ["build_ssl_model"]

Tensor = Any


def _block(units: int, name: str, batchnorm: bool, relu: bool) -> list:
    layers = [keras.layers.Dense(units, use_bias=not batchnorm, name=f"{name}_dense")]
    if batchnorm:
        layers.append(keras.layers.BatchNormalization(name=f"{name}_bn"))
    if relu:
        layers.append(keras.layers.ReLU(name=f"{name}_relu"))
    return layers


def _heads(method: str, projection_dim: int, hidden_dim: int, predictor_dim: int) -> tuple[list, list]:
    """The projector (or expander) layers and, for SimSiam, the predictor layers."""
    if method == "simclr":
        return _block(hidden_dim, "projector_1", False, True) + _block(projection_dim, "projector_2", False, False), []
    if method in ("barlow-twins", "vicreg"):
        expander = _block(hidden_dim, "expander_1", True, True) + _block(hidden_dim, "expander_2", True, True)
        return expander + _block(projection_dim, "expander_3", False, False), []
    projector = _block(hidden_dim, "projector_1", True, True) + _block(projection_dim, "projector_2", True, False)
    predictor = _block(predictor_dim, "predictor_1", True, True) + _block(projection_dim, "predictor_2", False, False)
    return projector, predictor


def _apply(layers: list, x: Tensor) -> Tensor:
    for layer in layers:
        x = layer(x)
    return x


def build_ssl_model(
    embedding_model: keras.Model,
    method: str,
    projection_dim: int = 128,
    hidden_dim: int = 512,
    predictor_dim: int | None = None,
    name: str | None = None,
) -> keras.Model:
    """The self-supervised training model of ``method`` around a tower: ``[view1, view2]`` to stacked outputs.

    Three lines train a tower without labels::

        model = build_ssl_model(tower, "simclr")
        model.compile(optimizer="adam", loss=dmlkeras.losses.get_ssl("simclr"))
        model.fit(dmlkeras.data.TwoViews(x, augment, batch_size=256), epochs=20)

    Parameters
    ----------
    embedding_model : keras.Model
        The tower: one input, one output of shape ``(n, d)``.
    method : {"simclr", "barlow-twins", "vicreg", "simsiam"}
        See the module docstring for the heads of each.
    projection_dim : int, default 128
        Width of the heads' output (the space the loss sees).
    hidden_dim : int, default 512
        Width of the heads' hidden layers.
    predictor_dim : int, optional
        SimSiam's predictor bottleneck; default ``projection_dim // 4`` (the paper's ratio).
    name : str, optional
        Default ``"<method>"``.

    Returns
    -------
    keras.Model
        Inputs ``[view1, view2]`` shaped like the tower's input; output
        ``(n, 2, projection_dim)`` (``(n, 4, projection_dim)`` for SimSiam).

    Raises
    ------
    ValueError
        For an unknown method, a tower that is not a one-input model with
        ``(n, d)`` outputs, or non-positive sizes.

    Examples
    --------
    >>> import numpy as np
    >>> from dmlkeras.losses import get_ssl
    >>> from dmlkeras.models import build_embedding_model, get_embedding_model
    >>> tower = build_embedding_model((8,), embedding_dim=4, backbone="mlp")
    >>> model = build_ssl_model(tower, "simsiam", projection_dim=16, hidden_dim=32)
    >>> model.output_shape
    (None, 4, 16)
    >>> model.compile(optimizer="adam", loss=get_ssl("simsiam"))
    >>> x1, x2 = np.random.rand(6, 8), np.random.rand(6, 8)
    >>> history = model.fit([x1, x2], np.zeros(6), epochs=1, verbose=0)
    >>> get_embedding_model(model) is tower
    True
    """
    check_ssl_method(method)
    check_tower(embedding_model)
    projection_dim = check_int(projection_dim, "projection_dim")
    hidden_dim = check_int(hidden_dim, "hidden_dim")
    predictor_dim = check_int(max(projection_dim // 4, 1) if predictor_dim is None else predictor_dim, "predictor_dim")
    projector, predictor = _heads(method, projection_dim, hidden_dim, predictor_dim)
    inputs = tower_inputs(embedding_model, ("view1", "view2"))
    projections = [_apply(projector, embedding_model(view)) for view in inputs]
    outputs = projections + [_apply(predictor, z) for z in projections] if predictor else projections
    stacked = Stack(axis=1, name="views")(outputs)
    return keras.Model(inputs, stacked, name=name or method.replace("-", "_"))
