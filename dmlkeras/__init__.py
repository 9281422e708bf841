"""dmlkeras: deep metric learning for Keras 3.

Layers, each building on the ones before (see ``docs/architecture.md``;
``tests/test_architecture.py`` checks them): _validation -> distances ->
mining, reducers -> losses / heads -> models, text, data, datasets ->
index, evaluation, viz, metrics, callbacks -> recsys, cli and notebooks.

Importing ``dmlkeras`` registers every custom loss, layer and metric with
Keras, so saved ``.keras`` models load without ``custom_objects``.
"""

from dmlkeras import (
    callbacks,
    data,
    datasets,
    distances,
    distributed,
    evaluation,
    heads,
    index,
    losses,
    metrics,
    mining,
    models,
    recsys,
    reducers,
    text,
    viz,
)
from dmlkeras.callbacks import CollapseMonitor, CollapseWarning, ProbeEvaluation, RetrievalEvaluation, VerificationEvaluation
from dmlkeras.data import (
    ClassBalancedBatches,
    PairsDataset,
    TripletsDataset,
    TwoViews,
    make_pair_indices,
    make_pairs,
    make_quadruplet_indices,
    make_quadruplets,
    make_triplet_indices,
    make_triplets,
)
from dmlkeras.distances import (
    cosine_similarity_matrix,
    l2_normalize,
    paired_distances,
    pairwise_distances,
)
from dmlkeras.evaluation import (
    correlation_metrics,
    kfold_verification_accuracy,
    knn_accuracy,
    linear_probe_accuracy,
    ranking_metrics,
    retrieval_metrics,
    sampled_ranking_metrics,
    verification_metrics,
)
from dmlkeras.heads import (
    ArcFace,
    CenterLoss,
    CosFace,
    NormalizedSoftmax,
    ProxyAnchorLoss,
    ProxyNCA,
    SoftTriple,
    SubCenterArcFace,
    TripletCenterLoss,
)
from dmlkeras.index import NearestNeighbors
from dmlkeras.metrics import (
    ActiveTripletFraction,
    DistanceGap,
    EmbeddingNormMean,
    EmbeddingNormStd,
    MeanNegativeDistance,
    MeanPositiveDistance,
)
from dmlkeras.models import (
    CrossBatchMemory,
    build_embedding_model,
    build_face_tower,
    build_head_model,
    build_quadruplet_model,
    build_siamese_model,
    build_ssl_model,
    build_triplet_model,
    get_embedding_model,
)
from dmlkeras.text import build_text_encoder

__version__ = "0.1.0"
