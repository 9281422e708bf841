"""Recommendation as metric learning: Collaborative Metric Learning and its baselines.

Collaborative Metric Learning (CML; Hsieh et al., "Collaborative Metric
Learning", WWW 2017) puts users and items in one euclidean space, where a
user sits close to the items they like. Recommending is then a
nearest-neighbour search (:class:`dmlkeras.index.NearestNeighbors`), and the
triangle inequality propagates what is learned: two users who like the same
item are pulled together, and so are two items liked by the same user.

The package has five modules:

* **Losses** (:mod:`~dmlkeras.recsys.losses`, ``keras.ops`` only: every
  backend): :func:`cml_loss`, :func:`covariance_loss`, :func:`bpr_loss`,
  :func:`sampled_softmax_loss` and the layers that add them.
* **Models** (:mod:`~dmlkeras.recsys.models`).
  :func:`build_cml_model` -- user and item embeddings kept in the unit ball
  (:class:`UnitBallConstraint`), trained on ``(user, positive item, sampled
  negative items)`` with the CML hinge loss, its rank-based (WARP-like)
  weight and the covariance regulariser (:class:`CMLLoss`), plus optional
  item features through a small tower (:class:`ItemFeatureLoss`).
  :func:`build_mf_model` -- the dot-product matrix-factorisation baseline
  on the same inputs (BPR or sampled-softmax loss, :class:`MFLoss`).
  :func:`user_embeddings`, :func:`item_embeddings` and :func:`score_matrix`
  read a trained model.
* **Data** (:mod:`~dmlkeras.recsys.data`): :func:`leave_one_out_split` (the NCF protocol of He et al.,
  2017: each user's latest interaction is held out) and
  :class:`InteractionTriplets`, a :class:`dmlkeras.data.EpochSeededDataset` that draws
  fresh negatives every epoch, never one of the user's known positives.
* **Evaluation** (:mod:`~dmlkeras.recsys.evaluation`): :func:`sampled_ranking_eval` scores any recommender the
  same way -- a model of this module, a score matrix, or a callable
  ``(user_ids, item_ids) -> scores`` -- with HR@10 and NDCG@10 against 100
  sampled negatives and recall@20 over the full ranking of unseen items;
  :func:`ranking_eval_per_user` gives the same metrics per user (for
  bootstrap intervals), :class:`RankingEvaluation` logs them on a validation
  split after every epoch (for ``EarlyStopping`` and tuning);
  :func:`most_popular_scores` is the popularity baseline.
* **Serving** (:mod:`~dmlkeras.recsys.serving`): :func:`recommend` returns each user's top-k unseen items
  through :class:`dmlkeras.index.NearestNeighbors` (dot-product models go
  through the exact inner-product-to-euclidean reduction of Bachrach et al.,
  2014).

Models take a dict ``{"user": (n,) int, "items": (n, 1 + num_negatives)
int}`` whose first item column is the positive and the others the sampled
negatives -- exactly what :class:`InteractionTriplets` yields. Their losses
are added by layers (``add_loss``), so ``model.fit(dataset)`` needs no
``y``. The builders return compiled models (``compile=False``: uncompiled,
like every other builder of dmlkeras), and every custom layer and
constraint is registered (package ``"dmlkeras"``): ``keras.saving.load_model``
needs no ``custom_objects``.

User and item ids are contiguous integers ``0 .. num_users - 1`` and
``0 .. num_items - 1``; :func:`leave_one_out_split` maps raw ids to them and
keeps the mapping.
"""


from dmlkeras.recsys.data import InteractionTriplets, LeaveOneOutSplit, leave_one_out_split
from dmlkeras.recsys.evaluation import (
    RankingEvaluation,
    most_popular_scores,
    ranking_eval_per_user,
    sample_eval_negatives,
    sampled_ranking_eval,
)
from dmlkeras.recsys.losses import (  # noqa: F401  (the constants: attributes of the former module)
    CML_METRICS,
    MF_LOSSES,
    CMLLoss,
    ItemFeatureLoss,
    MFLoss,
    bpr_loss,
    cml_loss,
    covariance_loss,
    sampled_softmax_loss,
)
from dmlkeras.recsys.models import (  # noqa: F401  (the constants: attributes of the former module)
    ITEM_BIAS,
    ITEM_EMBEDDING,
    USER_EMBEDDING,
    UnitBallConstraint,
    build_cml_model,
    build_mf_model,
    item_bias,
    item_embeddings,
    model_kind,
    score_matrix,
    user_embeddings,
)
from dmlkeras.recsys.serving import recommend

__all__ = [
    "CMLLoss",
    "InteractionTriplets",
    "ItemFeatureLoss",
    "LeaveOneOutSplit",
    "MFLoss",
    "RankingEvaluation",
    "UnitBallConstraint",
    "bpr_loss",
    "build_cml_model",
    "build_mf_model",
    "cml_loss",
    "covariance_loss",
    "item_bias",
    "item_embeddings",
    "leave_one_out_split",
    "model_kind",
    "most_popular_scores",
    "ranking_eval_per_user",
    "recommend",
    "sample_eval_negatives",
    "sampled_ranking_eval",
    "sampled_softmax_loss",
    "score_matrix",
    "user_embeddings",
]
