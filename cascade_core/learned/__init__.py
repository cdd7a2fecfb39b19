"""Learned ex-ante quality estimators (RouteLLM-style routers) for any number of models.

* `embeddings`: prompt embeddings (MiniLM offline, or hashing), batched and cached on disk;
* `preferences`: pairwise comparisons from per-model scores or Chatbot Arena battles;
* `routers`: similarity-weighted Bradley-Terry ranking, matrix factorization, the user hook;
* `estimator`: router scores as features of the calibrated logistic quality estimator;
* `calibration`: RouteLLM's threshold for a target share of strong calls or a budget.

Their offline evaluation with RouteLLM's metrics is `cascade_core.bench.learned`
(docs/routellm.md); nothing here imports the bench.
"""

from cascade_core.learned.embeddings import (
    EmbeddingCache,
    HashingEmbedder,
    MiniLMEmbedder,
    embed_texts,
    get_embedder,
)
from cascade_core.learned.estimator import LearnedQualityEstimator, fit_learned_estimator
from cascade_core.learned.preferences import (
    Battles,
    Comparisons,
    battles_from_records,
    comparisons_from_quality,
    load_battles,
)
from cascade_core.learned.routers import (
    CallableScorer,
    ExAnteScorer,
    MatrixFactorization,
    SWRanking,
    crossfit_scores,
    make_scorer,
    strong_win_probability,
)
from cascade_core.learned.thresholds import (
    route,
    strong_share_for_budget,
    threshold_for_budget,
    threshold_for_share,
)

__all__ = [
    "Battles",
    "CallableScorer",
    "Comparisons",
    "EmbeddingCache",
    "ExAnteScorer",
    "HashingEmbedder",
    "LearnedQualityEstimator",
    "MatrixFactorization",
    "MiniLMEmbedder",
    "SWRanking",
    "battles_from_records",
    "comparisons_from_quality",
    "crossfit_scores",
    "embed_texts",
    "fit_learned_estimator",
    "get_embedder",
    "load_battles",
    "make_scorer",
    "route",
    "strong_share_for_budget",
    "strong_win_probability",
    "threshold_for_budget",
    "threshold_for_share",
]
