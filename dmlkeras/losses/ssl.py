"""Self-supervised losses: two augmented views of each sample, no labels.

* :class:`NTXentLoss` (SimCLR, Chen et al., ICML 2020): the other view is the
  positive, every other sample of the batch a negative. An in-batch loss of
  the core protocol (docs/losses.md): ``y_pred`` ``(n, v, d)`` (``v >= 2``
  views of each sample; ``y_true`` ignored), or embeddings ``(N, d)`` with
  sample ids (or any labels) as ``y_true``, which also takes a reference.
* :class:`BarlowTwinsLoss` (Zbontar et al., ICML 2021), :class:`VICRegLoss`
  (Bardes, Ponce & LeCun, ICLR 2022): statistics of the two views' batches,
  ``y_pred`` ``(n, 2, d)``.
* :class:`SimSiamLoss` (Chen & He, CVPR 2021): ``y_pred`` ``(n, 4, d)``, the
  projections of both views then their predictions, with the stop-gradient
  on the projections inside the loss.

``y_true`` is ignored by the three view losses and by NT-Xent's ``(n, v, d)``
form (:class:`dmlkeras.data.TwoViews` yields zeros);
:func:`dmlkeras.models.build_ssl_model` builds the models whose outputs these
are. :func:`ssl_names` / :func:`get_ssl` are the registry of the methods
(kept apart from :func:`dmlkeras.losses.get`, whose losses train on labelled
P x K batches). docs/ssl.md has the formulas.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from dmlkeras import distances
from dmlkeras._validation import as_float32, check_float
from dmlkeras.losses.similarity import SupervisedContrastiveLoss, log_weighted, mined_pairs
from dmlkeras.mining import chosen_pairs
from dmlkeras.reducers import element_terms, masked_logsumexp

Tensor = Any

__all__ = ["BarlowTwinsLoss", "NTXentLoss", "SimSiamLoss", "VICRegLoss", "ViewLoss", "check_ssl_method", "get_ssl", "ssl_names", "views_of"]


def views_of(y_pred: Tensor, count: int | None = None, minimum_batch: int = 1) -> Tensor:
    """``y_pred`` as float32 views ``(n, v, d)``, checked (``count``: the number of views required).

    Raises
    ------
    ValueError
        Naming the expected shape, when ``y_pred`` is not ``(n, v, d)`` with ``v == count``
        (``v >= 2`` without ``count``) or has fewer than ``minimum_batch`` rows.

    Examples
    --------
    >>> import numpy as np
    >>> tuple(views_of(np.zeros((3, 2, 4)), count=2).shape)
    (3, 2, 4)
    >>> views_of(np.zeros((3, 4)), count=2)
    Traceback (most recent call last):
    ...
    ValueError: y_pred must be the views' embeddings of shape (batch_size, 2, embedding_dim); got shape (3, 4).
    """
    y_pred = as_float32(y_pred)
    expected = "v" if count is None else str(count)
    shape = tuple(y_pred.shape)
    wrong_views = len(shape) == 3 and (shape[1] < 2 if count is None else shape[1] != count)
    if len(shape) != 3 or wrong_views:
        raise ValueError(
            f"y_pred must be the views' embeddings of shape (batch_size, {expected}, embedding_dim)"
            f"{' with v >= 2' if count is None else ''}; got shape {shape}."
        )
    if shape[0] is not None and shape[0] < minimum_batch:
        raise ValueError(
            f"y_pred has {shape[0]} samples; this loss needs at least {minimum_batch} "
            f"(shape (batch_size >= {minimum_batch}, {expected}, embedding_dim))."
        )
    return y_pred


# ----------------------------------------------------------------------------- NT-Xent


@keras.saving.register_keras_serializable(package="dmlkeras")
class NTXentLoss(SupervisedContrastiveLoss):
    """NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR (Chen et al., ICML 2020).

    For every positive pair ``(a, p)``, with ``z = similarity / temperature``
    (cosine by default), ``l_ap = -log(exp(z_ap) / (exp(z_ap) + sum_{k in N(a)} exp(z_ak)))``:
    the positive against the negatives only (not against the other positives,
    unlike :class:`~dmlkeras.losses.SupervisedContrastiveLoss`; with two views
    the two are equal). The loss is the mean over positive pairs.

    Two input forms:

    * ``y_pred`` ``(n, v, d)``: ``v >= 2`` views of each of ``n`` samples (what
      :func:`dmlkeras.models.build_ssl_model` outputs for ``"simclr"``);
      ``y_true`` is ignored, the positives of a view are the sample's other
      views and every view of another sample is a negative. Per-sample values
      (``reduction="none"``) are ``(n,)``, the mean over the sample's views;
      ``sample_weight`` is ``(n,)``.
    * ``y_pred`` ``(N, d)`` with labels ``y_true`` ``(N,)`` (sample ids for
      SimCLR, or classes): the in-batch protocol of docs/losses.md, with
      ``ref_labels`` / ``ref_embeddings`` / ``self_index``, ``miner=`` and
      ``reducer=``.

    Parameters
    ----------
    temperature : float, default 0.1
        Positive. (pytorch-metric-learning's default is 0.07, tensorflow-similarity's 0.05.)
    distance : str, callable or Distance, default "cosine"
        Its similarity matrix is used.
    miner : Miner, optional
        The pairs to use (negative weights enter the sum as log-weights).
    reducer : str or Reducer, default "mean"
        Over positive pairs.
    label_format : see :class:`~dmlkeras.losses.InBatchLoss`

    Notes
    -----
    A variant of :class:`~dmlkeras.losses.SupervisedContrastiveLoss` (its
    subclass: same parameters, other denominator). Equals
    pytorch-metric-learning's ``NTXentLoss(temperature)`` on any labels,
    and half tensorflow-similarity's ``SimCLRLoss``, which adds the losses of
    the two directions (tests/golden). A batch without positive pairs gives 0.

    Examples
    --------
    >>> import numpy as np
    >>> views = np.array([[[1.0, 0.0], [1.0, 0.1]], [[0.0, 1.0], [0.1, 1.0]]], "float32")
    >>> round(float(NTXentLoss(temperature=1.0)(None, views)), 4)
    0.5978
    """

    def __init__(self, temperature: float = 0.1, name: str = "nt_xent_loss", **kwargs: Any) -> None:
        super().__init__(temperature=temperature, name=name, **kwargs)

    def terms(self, relation, query, reference):
        logits = self.distance.similarity_matrix(query, reference) / self.temperature
        positives, negatives, weights = chosen_pairs(relation, mined_pairs(self, relation, query, reference))
        log_negatives = masked_logsumexp(log_weighted(logits, negatives, weights), negatives, axis=1, keepdims=True)
        # -log(e^z / (e^z + e^L)) = softplus(L - z); L = -inf (no negatives) gives 0.
        costs = ops.softplus(log_negatives - logits)
        return [element_terms(costs, positives)]

    @staticmethod
    def _flat_views(y_pred: Tensor) -> tuple[Tensor, Tensor, int]:
        views = views_of(y_pred)
        count, dim = views.shape[1], views.shape[2]
        ids = ops.repeat(ops.arange(ops.shape(views)[0]), count)
        return ids, ops.reshape(views, (-1, dim)), count

    @staticmethod
    def _per_sample(values: Tensor, count: int) -> Tensor:
        return ops.mean(ops.reshape(values, (-1, count)), axis=1)

    def __call__(
        self, y_true, y_pred, sample_weight=None, ref_labels=None, ref_embeddings=None, self_index=None, ref_mask=None
    ):
        if len(ops.shape(y_pred)) != 3:
            return super().__call__(y_true, y_pred, sample_weight, ref_labels, ref_embeddings, self_index, ref_mask)
        if any(x is not None for x in (ref_labels, ref_embeddings, self_index, ref_mask)):
            raise ValueError(
                "A reference (ref_labels / ref_embeddings / self_index / ref_mask) needs the (N, embedding_dim) form with "
                "sample ids as y_true; got y_pred of views (batch_size, v, embedding_dim)."
            )
        ids, flat, count = self._flat_views(y_pred)
        if self.reduction in (None, "none"):
            return self._per_sample(super().call(ids, flat), count)
        weights = None
        if sample_weight is not None:
            weights = ops.repeat(ops.reshape(as_float32(sample_weight), (-1,)), count)
        value = super().__call__(ids, flat, sample_weight=weights)
        return value / count if self.reduction == "sum" else value

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        """Per-query values: ``(N,)`` for embeddings ``(N, d)``, ``(n,)`` for views ``(n, v, d)``."""
        if len(ops.shape(y_pred)) != 3:
            return super().call(y_true, y_pred)
        ids, flat, count = self._flat_views(y_pred)
        return self._per_sample(super().call(ids, flat), count)


# ----------------------------------------------------------------------------- view statistics


class ViewLoss(keras.losses.Loss):
    """Base of the losses of views ``(n, k, d)``: ``y_true`` is ignored (``None`` allowed).

    ``batch_statistic`` losses (one value for the whole batch) refuse
    ``sample_weight`` with ``ValueError``.
    """

    batch_statistic = False

    def __call__(self, y_true: Tensor, y_pred: Tensor, sample_weight: Tensor | None = None) -> Tensor:
        if self.batch_statistic and sample_weight is not None:
            raise ValueError(
                f"{type(self).__name__} is a statistic of the whole batch: it takes no sample_weight; got one."
            )
        if y_true is None:
            y_true = ops.zeros((ops.shape(y_pred)[0],))
        return super().__call__(y_true, y_pred, sample_weight)


def _batch_variance(x: Tensor, unbiased: bool) -> tuple[Tensor, Tensor]:
    """Columns of ``x`` centred, and their variance (``unbiased``: over ``n - 1``)."""
    centred = x - ops.mean(x, axis=0, keepdims=True)
    n = ops.cast(ops.shape(x)[0], x.dtype)
    divisor = ops.maximum(n - 1.0, 1.0) if unbiased else n
    return centred, ops.sum(ops.square(centred), axis=0) / divisor


@keras.saving.register_keras_serializable(package="dmlkeras")
class BarlowTwinsLoss(ViewLoss):
    """Barlow Twins (Zbontar et al., ICML 2021): the views' cross-correlation matrix pushed to the identity.

    ``y_pred`` ``(n, 2, d)``: the two views' embeddings (``y_true`` ignored).
    Each view's batch is standardised per dimension (mean 0, variance 1, the
    variance over ``n`` plus ``epsilon``), ``C = z_a^T z_b / n`` ``(d, d)`` and
    ``loss = sum_i (1 - C_ii)^2 + lambda_ * sum_{i != j} C_ij^2``, one value for
    the batch.

    Parameters
    ----------
    lambda_ : float, default 5e-3
        Weight of the redundancy (off-diagonal) term, >= 0 (the paper's).
    epsilon : float, default 1e-5
        Added to each variance (as the paper's BatchNorm does), so a constant
        dimension gives finite values and gradients; >= 0.

    Notes
    -----
    Equals tensorflow-similarity's ``Barlow`` (without its ``margin`` of
    1e-12) with ``epsilon=0``, where a constant dimension is standardised to 0
    as tensorflow-similarity's ``divide_no_nan`` does. ``call`` and
    ``reduction="none"`` give the scalar; ``sample_weight`` is refused
    (``ValueError``). Needs ``n >= 2``.

    Examples
    --------
    >>> import numpy as np
    >>> same = np.repeat(np.random.default_rng(0).normal(size=(8, 1, 3)), 2, axis=1)
    >>> round(float(BarlowTwinsLoss(lambda_=0.0)(None, same)), 3)   # identical views: diagonal 1
    0.0
    """

    batch_statistic = True

    def __init__(self, lambda_: float = 5e-3, epsilon: float = 1e-5, name: str = "barlow_twins_loss", **kwargs: Any):
        super().__init__(name=name, **kwargs)
        self.lambda_ = check_float(lambda_, "lambda_", minimum=0.0)
        self.epsilon = check_float(epsilon, "epsilon", minimum=0.0)

    def _standardised(self, x: Tensor) -> Tensor:
        centred, variance = _batch_variance(x, unbiased=False)
        std = ops.sqrt(variance + self.epsilon) if self.epsilon > 0 else ops.sqrt(variance)
        positive = ops.logical_not(std <= 0)  # NaN stays NaN
        return ops.where(positive, centred / ops.where(positive, std, ops.ones_like(std)), ops.zeros_like(centred))

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        views = views_of(y_pred, count=2, minimum_batch=2)
        za, zb = self._standardised(views[:, 0]), self._standardised(views[:, 1])
        n = ops.cast(ops.shape(za)[0], za.dtype)
        c = ops.matmul(ops.transpose(za), zb) / n
        diagonal = ops.diagonal(c)
        on_diagonal = ops.sum(ops.square(1.0 - diagonal))
        off_diagonal = ops.sum(ops.square(c)) - ops.sum(ops.square(diagonal))
        return on_diagonal + self.lambda_ * off_diagonal

    def get_config(self) -> dict:
        return {**super().get_config(), "lambda_": self.lambda_, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="dmlkeras")
class VICRegLoss(ViewLoss):
    """VICReg (Bardes, Ponce & LeCun, ICLR 2022): invariance, variance and covariance of two views.

    ``y_pred`` ``(n, 2, d)``: the two views' embeddings ``Z``, ``Z'`` (``y_true`` ignored).
    ``loss = sim * s(Z, Z') + var * (v(Z) + v(Z')) / 2 + cov * (c(Z) + c(Z'))`` with
    ``s`` the mean squared difference (over samples and dimensions),
    ``v(Z) = mean_j relu(1 - sqrt(Var(Z_j) + epsilon))`` (unbiased variance) and
    ``c(Z) = sum_{i != j} Cov(Z)_ij^2 / d`` (covariance over ``n - 1``).

    Parameters
    ----------
    sim, var, cov : float, default 25, 25, 1
        Weights of the invariance, variance and covariance terms (the paper's
        lambda, mu, nu), >= 0.
    epsilon : float, default 1e-4
        Added to each variance before the square root, > 0.

    Notes
    -----
    Equals pytorch-metric-learning's ``VICRegLoss(invariance_lambda=sim,
    variance_mu=var, covariance_v=cov, eps=epsilon)`` and the authors' code.
    tensorflow-similarity's ``VicReg`` takes the variance over ``n`` (not
    ``n - 1``) in the variance term; the two agree wherever every standard
    deviation is >= 1 (tests/golden). Per-sample values (``reduction="none"``)
    are ``(n,)``: each sample's invariance term plus the batch's variance and
    covariance terms, so their mean is the loss and ``sample_weight`` weighs
    the invariance terms (the batch statistics count every sample). Needs ``n >= 2``.

    Examples
    --------
    >>> import numpy as np
    >>> views = np.random.default_rng(0).normal(size=(64, 2, 4)).astype("float32")
    >>> loss = VICRegLoss()(None, views)
    >>> bool(float(loss) > 0)
    True
    """

    def __init__(
        self,
        sim: float = 25.0,
        var: float = 25.0,
        cov: float = 1.0,
        epsilon: float = 1e-4,
        name: str = "vicreg_loss",
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.sim = check_float(sim, "sim", minimum=0.0)
        self.var = check_float(var, "var", minimum=0.0)
        self.cov = check_float(cov, "cov", minimum=0.0)
        self.epsilon = check_float(epsilon, "epsilon", minimum=0.0, strict=True)

    def _variance_and_covariance(self, z: Tensor) -> tuple[Tensor, Tensor]:
        centred, variance = _batch_variance(z, unbiased=True)
        variance_term = ops.mean(ops.relu(1.0 - ops.sqrt(variance + self.epsilon)))
        n = ops.cast(ops.shape(z)[0], z.dtype)
        covariance = ops.matmul(ops.transpose(centred), centred) / ops.maximum(n - 1.0, 1.0)
        off_diagonal = ops.sum(ops.square(covariance)) - ops.sum(ops.square(ops.diagonal(covariance)))
        return variance_term, off_diagonal / ops.cast(ops.shape(z)[1], z.dtype)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        views = views_of(y_pred, count=2, minimum_batch=2)
        za, zb = views[:, 0], views[:, 1]
        invariance = ops.mean(ops.square(za - zb), axis=1)
        variance_a, covariance_a = self._variance_and_covariance(za)
        variance_b, covariance_b = self._variance_and_covariance(zb)
        batch_terms = self.var * (variance_a + variance_b) / 2.0 + self.cov * (covariance_a + covariance_b)
        return self.sim * invariance + batch_terms

    def get_config(self) -> dict:
        return {**super().get_config(), "sim": self.sim, "var": self.var, "cov": self.cov, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="dmlkeras")
class SimSiamLoss(ViewLoss):
    """SimSiam (Chen & He, CVPR 2021): each view's prediction against the other view's projection.

    ``y_pred`` ``(n, 4, d)``: the projections ``z1``, ``z2`` of the two views,
    then their predictions ``p1``, ``p2`` (the output of
    ``build_ssl_model(tower, "simsiam")``; ``y_true`` ignored). Per sample,
    ``l = -(cos(p1, sg(z2)) + cos(p2, sg(z1))) / 2``, where ``sg`` stops the
    gradient: the projections are targets, which is what keeps SimSiam from
    collapsing. Values lie in ``[-1, 1]``; -1 is perfect agreement.

    Notes
    -----
    Equals the sum of tensorflow-similarity's ``SimSiamLoss()(sg(z1), p2)`` and
    ``(sg(z2), p1)`` (what its ``ContrastiveModel`` adds) less twice its
    ``margin`` (tests/golden). An all-zero vector has cosine 0 with everything.

    Examples
    --------
    >>> import numpy as np
    >>> z = np.random.default_rng(0).normal(size=(5, 1, 3)).astype("float32")
    >>> outputs = np.concatenate([z, z, z, z], axis=1)   # predictions equal to the projections
    >>> round(float(SimSiamLoss()(None, outputs)), 4)
    -1.0
    """

    def __init__(self, name: str = "simsiam_loss", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        outputs = views_of(y_pred, count=4)
        z1, z2 = ops.stop_gradient(outputs[:, 0]), ops.stop_gradient(outputs[:, 1])
        p1, p2 = outputs[:, 2], outputs[:, 3]
        cosine = distances.CosineSimilarity()
        return -(cosine.paired(p1, z2) + cosine.paired(p2, z1)) / 2.0


# ----------------------------------------------------------------------------- the methods

# method -> (loss class, recommended settings); build_ssl_model builds the matching heads.
_SSL_REGISTRY: dict = {
    "simclr": (NTXentLoss, {"temperature": 0.1}),
    "barlow-twins": (BarlowTwinsLoss, {}),
    "vicreg": (VICRegLoss, {}),
    "simsiam": (SimSiamLoss, {}),
}


def ssl_names() -> tuple:
    """The self-supervised methods, in a stable order (:func:`get_ssl`, ``build_ssl_model``).

    Examples
    --------
    >>> ssl_names()
    ('simclr', 'barlow-twins', 'vicreg', 'simsiam')
    """
    return tuple(_SSL_REGISTRY)


def check_ssl_method(method: str) -> str:
    """``method`` if it is one of :func:`ssl_names`, else ``ValueError`` listing them.

    Examples
    --------
    >>> check_ssl_method("vicreg")
    'vicreg'
    """
    if method not in _SSL_REGISTRY:
        raise ValueError(f"Unknown self-supervised method {method!r}. Methods: {', '.join(_SSL_REGISTRY)}.")
    return method


def get_ssl(method: str, **overrides: Any) -> keras.losses.Loss:
    """A new loss of a self-supervised method, with its recommended settings (``overrides`` win).

    Raises
    ------
    ValueError
        On an unknown method; the message lists :func:`ssl_names`.

    Examples
    --------
    >>> get_ssl("simclr").temperature
    0.1
    >>> get_ssl("vicreg", cov=2.0).cov
    2.0
    """
    cls, settings = _SSL_REGISTRY[check_ssl_method(method)]
    return cls(**{**settings, **overrides})
