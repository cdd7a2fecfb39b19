"""Ex-ante scorers that learn from prompts: similarity-weighted ranking and matrix
factorization (RouteLLM, Ong et al. 2024, arXiv 2406.18665), for any number of models.

Every scorer maps prompts (and their embeddings) to one score per model, (n, k); a larger
score means the model is more likely to win/answer well. Scores feed two things:

* RouteLLM's two-model router: P(strong beats weak) = sigmoid(score_strong - score_weak),
  thresholded (`calibration`);
* cascade routing: the scores are ex-ante features of the calibrated quality estimator
  (`cascade_core.learned.estimator`), next to prompt length, task and post-hoc signals.

A user-supplied scorer (e.g. a fine-tuned classifier) plugs in through `ExAnteScorer`
(``fit`` + ``score``) or `CallableScorer` (a function of the prompts, nothing to fit).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
from scipy.special import expit

from cascade_core.learned.preferences import Comparisons, comparisons_from_quality


@runtime_checkable
class ExAnteScorer(Protocol):
    """What the learned estimator needs from a scorer."""

    name: str

    def fit(
        self,
        embeddings: np.ndarray,
        n_models: int,
        *,
        quality: np.ndarray | None = None,
        comparisons: Comparisons | None = None,
        prompts: Sequence[str] | None = None,
    ) -> ExAnteScorer: ...

    def score(self, embeddings: np.ndarray, prompts: Sequence[str] | None = None) -> np.ndarray: ...


@dataclass
class CallableScorer:
    """Wrap ``fn(prompts, embeddings) -> (n, k)`` (your own classifier) as a scorer; ``fit``
    does nothing (train it yourself, on training data only)."""

    fn: Callable[[Sequence[str] | None, np.ndarray], np.ndarray]
    name: str = "user"

    def fit(self, embeddings, n_models, *, quality=None, comparisons=None, prompts=None):
        return self

    def score(self, embeddings: np.ndarray, prompts: Sequence[str] | None = None) -> np.ndarray:
        return np.asarray(self.fn(prompts, embeddings), dtype=float)


def _training_comparisons(
    quality: np.ndarray | None, comparisons: Comparisons | None
) -> Comparisons:
    if comparisons is not None:
        return comparisons
    if quality is None:
        raise ValueError("fit needs per-model quality or pairwise comparisons")
    return comparisons_from_quality(quality)


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


# ------------------------------------------------------------------ similarity-weighted
@dataclass
class SWRanking:
    """Similarity-weighted Bradley-Terry ranking (RouteLLM's "SW ranking"), N models.

    For a query q, each training battle j on prompt p_j gets weight
    ``base ** (sim(q, p_j) / max_j sim(q, p_j))`` (RouteLLM: base 10, times a constant that
    the normalisation removes), and Bradley-Terry ratings r(q) (k,) are fitted by weighted,
    L2-penalised logistic regression of the outcomes on r_a - r_b (ties count half). The
    score of model m is r_m(q), centred. Newton's method runs for all queries at once.
    """

    base: float = 10.0
    l2: float = 1.0
    newton_steps: int = 8
    chunk: int = 256
    name: str = "sw_ranking"
    _emb: np.ndarray | None = field(default=None, repr=False)
    _comparisons: Comparisons | None = field(default=None, repr=False)
    _k: int = 0

    def fit(self, embeddings, n_models, *, quality=None, comparisons=None, prompts=None):
        self._emb = _normalise(embeddings)
        self._comparisons = _training_comparisons(quality, comparisons)
        self._k = n_models
        return self

    def score(self, embeddings: np.ndarray, prompts: Sequence[str] | None = None) -> np.ndarray:
        if self._emb is None or self._comparisons is None:
            raise RuntimeError("SWRanking.score before fit")
        c, k = self._comparisons, self._k
        x = np.zeros((len(c), k))
        x[np.arange(len(c)), c.a] = 1.0
        x[np.arange(len(c)), c.b] = -1.0
        outer = np.einsum("mi,mj->mij", x, x).reshape(len(c), k * k)
        queries = _normalise(embeddings)
        out = np.zeros((queries.shape[0], k))
        for start in range(0, queries.shape[0], self.chunk):
            sims = queries[start : start + self.chunk] @ self._emb.T  # (Q, n_train)
            top = np.maximum(sims.max(axis=1, keepdims=True), 1e-12)
            w = self.base ** (sims / top)[:, c.query] * c.weight  # (Q, M)
            w = w / w.mean(axis=1, keepdims=True)
            out[start : start + self.chunk] = self._bradley_terry(w, x, outer, c.outcome, k)
        return out - out.mean(axis=1, keepdims=True)

    def _bradley_terry(self, w, x, outer, y, k) -> np.ndarray:
        r = np.zeros((w.shape[0], k))
        eye = np.eye(k) * self.l2
        for _ in range(self.newton_steps):
            p = expit(r @ x.T)  # (Q, M)
            grad = (w * (p - y)) @ x + self.l2 * r
            hess = ((w * p * (1 - p)) @ outer).reshape(-1, k, k) + eye
            step = np.linalg.solve(hess, grad[:, :, None])[:, :, 0]
            r -= step
            if np.max(np.abs(step)) < 1e-6:
                break
        return r


# ------------------------------------------------------------------ matrix factorization
@dataclass
class MatrixFactorization:
    """A learned bilinear score (RouteLLM's "matrix factorization"), N models:
    ``s_m(q) = (e_q W) · v_m + b_m`` with prompt embedding e_q projected by W (D x dim) and a
    learned model embedding v_m (dim).

    Trained with Adam on the Bradley-Terry loss of the pairwise comparisons,
    P(a beats b) = sigmoid(s_a - s_b), plus (when per-model quality is given and
    ``pointwise`` > 0) the log-loss of P(correct_m) = sigmoid(s_m), and an L2 penalty.
    """

    dim: int = 32
    l2: float = 1e-3
    steps: int = 400
    learning_rate: float = 0.02
    pointwise: float = 1.0
    seed: int = 0
    name: str = "matrix_factorization"
    W: np.ndarray | None = field(default=None, repr=False)
    V: np.ndarray | None = field(default=None, repr=False)
    bias: np.ndarray | None = field(default=None, repr=False)

    def fit(self, embeddings, n_models, *, quality=None, comparisons=None, prompts=None):
        e = _normalise(embeddings)
        d = e.shape[1]
        c = _training_comparisons(quality, comparisons)
        rng = np.random.default_rng(self.seed)
        params = {
            "W": rng.normal(0, 1 / np.sqrt(d), (d, self.dim)),
            "V": rng.normal(0, 1 / np.sqrt(self.dim), (n_models, self.dim)),
            "b": np.zeros(n_models),
        }
        if quality is not None and self.pointwise > 0:
            base = np.clip(np.asarray(quality, float).mean(axis=0), 0.02, 0.98)
            params["b"] = np.log(base / (1 - base))
        m1 = {k: np.zeros_like(v) for k, v in params.items()}
        m2 = {k: np.zeros_like(v) for k, v in params.items()}
        total = max(len(c), 1) + (quality.size if quality is not None else 0)
        for t in range(1, self.steps + 1):
            z = e @ params["W"]  # (n, dim)
            s = z @ params["V"].T + params["b"]  # (n, k)
            ds = np.zeros_like(s)
            if len(c):
                p = expit(s[c.query, c.a] - s[c.query, c.b])
                g = c.weight * (p - c.outcome)
                np.add.at(ds, (c.query, c.a), g)
                np.add.at(ds, (c.query, c.b), -g)
            if quality is not None and self.pointwise > 0:
                ds += self.pointwise * (expit(s) - quality)
            ds /= total
            grads = {
                "W": e.T @ (ds @ params["V"]) + self.l2 * params["W"],
                "V": ds.T @ z + self.l2 * params["V"],
                "b": ds.sum(axis=0),
            }
            for key, grad in grads.items():
                m1[key] = 0.9 * m1[key] + 0.1 * grad
                m2[key] = 0.999 * m2[key] + 0.001 * grad**2
                step = m1[key] / (1 - 0.9**t) / (np.sqrt(m2[key] / (1 - 0.999**t)) + 1e-8)
                params[key] -= self.learning_rate * step
        self.W, self.V, self.bias = params["W"], params["V"], params["b"]
        return self

    def score(self, embeddings: np.ndarray, prompts: Sequence[str] | None = None) -> np.ndarray:
        if self.W is None or self.V is None or self.bias is None:
            raise RuntimeError("MatrixFactorization.score before fit")
        return (_normalise(embeddings) @ self.W) @ self.V.T + self.bias


SCORERS: dict[str, Callable[[], ExAnteScorer]] = {
    "sw": SWRanking,
    "mf": MatrixFactorization,
}


def make_scorer(name: str) -> ExAnteScorer:
    try:
        return SCORERS[name]()
    except KeyError:
        known = sorted(SCORERS)
        raise ValueError(f"unknown learned router {name!r}; choose from {known}") from None


def strong_win_probability(scores: np.ndarray, weak: int = 0, strong: int = -1) -> np.ndarray:
    """RouteLLM's router output for two models: P(strong beats weak) from the scores."""
    s = np.asarray(scores, dtype=float)
    return expit(s[:, strong] - s[:, weak])


def _pick(items: Sequence[str], mask: np.ndarray) -> list[str]:
    return [x for x, keep in zip(items, mask, strict=True) if keep]


def crossfit_scores(
    factory: Callable[[], ExAnteScorer],
    embeddings: np.ndarray,
    quality: np.ndarray,
    *,
    folds: int = 5,
    seed: int = 0,
    prompts: Sequence[str] | None = None,
) -> np.ndarray:
    """Out-of-fold scores on training rows: each fold scored by a scorer fitted on the
    others, so a downstream calibration never sees a score of a prompt it was fitted on.
    Rows with the same prompt embedding stay in one fold."""
    n, k = quality.shape
    keys = np.unique(np.round(embeddings, 5), axis=0, return_inverse=True)[1].ravel()
    rng = np.random.default_rng(seed)
    fold_of_key = rng.permutation(keys.max() + 1) % folds
    fold = fold_of_key[keys]
    out = np.zeros((n, k))
    for f in range(folds):
        test = fold == f
        if not test.any() or test.all():
            continue
        train_p = None if prompts is None else _pick(prompts, ~test)
        scorer = factory().fit(embeddings[~test], k, quality=quality[~test], prompts=train_p)
        test_p = None if prompts is None else _pick(prompts, test)
        out[test] = scorer.score(embeddings[test], test_p)
    return out
