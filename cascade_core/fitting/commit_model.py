"""Fitting P(accept | prefix), the probability early commit trades on, from calibration drafts.

Each training draft is one (calibration row, drafting model) answer with token logprobs and
its label: whether the engine, judging the whole answer as the request's first draft,
accepted it (the label comes from the engine itself, `cascade_core.calibrate.commit`). Every
draft gives one sample per prefix length shorter than the answer (at k tokens of a k-token
answer the draft is over and is judged whole anyway), with the prefix's features
(`cascade_core.engine.early_commit.prefix_vector`).

A drafting model whose drafts (nearly) all had one outcome cannot be told apart by its
prefixes: with fewer than `MIN_DRAFTS_PER_OUTCOME` drafts of one outcome it gets a constant
probability, Laplace's rule of succession (accepted + 1) / (drafts + 2), the posterior mean
of the acceptance rate under a uniform prior. It is the calibrated estimate those drafts
support, and it is cautious where they are few: 48 of 48 accepted gives 0.98, 10 of 10 only
0.92 (below the default threshold 0.95). The report marks it ``"kind": "base_rate"``.

Otherwise, per drafting model, one logistic regression (the repository's own fitter, the same
L2-penalised log loss as scikit-learn's ``LogisticRegression`` with ``C = 1 / l2``), the
penalty chosen by cross-validated log loss. Folds group a draft's prefixes (they share one
label, so splitting them would leak it) and are stratified by that label. The diagnostics
are nested: each outer fold chooses its penalty on its own training rows only, so the
reported log loss, Brier score and calibration error are out of sample. They also replay
the commit rule itself on the out-of-fold probabilities: how many drafts would commit at the
configured threshold, how many of those the whole-draft judgement would have escalated, and,
on rows with a reference answer, what those commits cost in quality: per draft, the
correctness of the answer the cascade gives after judging the whole draft minus the
draft's, summed over the commits that changed the answer (``quality_cost``, in the dev set's
quality units per drafted request; negative when the commits kept better answers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cascade_core.engine.early_commit import (
    FEATURES,
    PREFIX_LENGTHS,
    PrefixModel,
    commits,
    prefix_vector,
)
from cascade_core.estimators.logistic import LogisticModel, fit_logistic
from cascade_core.fitting.diagnostics import scores
from cascade_core.fitting.quality import L2_GRID, N_FOLDS, log_loss, out_of_fold
from cascade_core.signals import features_from_logprobs

# A prefix regression needs this many drafts of each outcome (accepted, escalated): with
# fewer, neither the folds nor a slope can be trusted, and the base rate stands in.
MIN_DRAFTS_PER_OUTCOME = 2


@dataclass(frozen=True)
class Draft:
    """One calibration answer of a drafting model and the engine's verdict on it whole."""

    row: int
    model: str
    logprobs: Sequence[float]
    top_logprobs: Sequence[Sequence[float]] | None
    ex_ante_quality: float
    accepted: bool
    # Correctness of the answer the cascade gives when it judges this whole draft minus the
    # draft's own, on a row with a reference answer (None without one): what committing the
    # draft costs in quality. 0 when the draft is accepted.
    gain_if_judged: float | None = None


@dataclass(frozen=True)
class PrefixSamples:
    """One row per (draft, prefix length): the prefix's features and its draft's label."""

    features: np.ndarray  # (n, len(FEATURES))
    accepted: np.ndarray  # (n,) 0/1
    row: np.ndarray  # (n,) the calibration row: the CV group
    model: np.ndarray  # (n,) the drafting model's label
    length: np.ndarray  # (n,) prefix length k


def prefix_samples(
    drafts: Sequence[Draft], lengths: Sequence[int] = PREFIX_LENGTHS
) -> PrefixSamples:
    """The samples of ``drafts`` at each prefix length shorter than the answer."""
    features, accepted, rows, models, ks = [], [], [], [], []
    for draft in drafts:
        n = len(draft.logprobs)
        for k in lengths:
            if k >= n:
                break
            tops = None if draft.top_logprobs is None else list(draft.top_logprobs[:k])
            prefix = features_from_logprobs(list(draft.logprobs[:k]), tops, answer_parsed=True)
            features.append(prefix_vector(prefix, draft.ex_ante_quality))
            accepted.append(float(draft.accepted))
            rows.append(draft.row)
            models.append(draft.model)
            ks.append(k)
    return PrefixSamples(
        features=np.array(features, dtype=float).reshape(len(features), len(FEATURES)),
        accepted=np.array(accepted, dtype=float),
        row=np.array(rows, dtype=int),
        model=np.array(models, dtype=object),
        length=np.array(ks, dtype=int),
    )


@dataclass(frozen=True)
class CommitFit:
    """The prefix model to store in the profile and the report of its fit."""

    model: PrefixModel
    report: dict[str, Any]

    def section(self) -> dict[str, Any]:
        """The profile's ``early_commit`` section: the model and, for readers, its report."""
        return {**self.model.to_section(), "diagnostics": self.report}


def fit_prefix_model(
    drafts: Sequence[Draft],
    *,
    threshold: float,
    min_tokens: int,
    lengths: Sequence[int] = PREFIX_LENGTHS,
    n_folds: int = N_FOLDS,
    seed: int = 0,
) -> CommitFit:
    """One regression per drafting model with enough drafts of both outcomes; the report
    says for every model what was fitted, or why nothing was."""
    samples = prefix_samples(drafts, lengths)
    fitted: dict[str, LogisticModel] = {}
    report: dict[str, Any] = {
        "features": list(FEATURES),
        "prefix_lengths": list(lengths),
        "threshold": threshold,
        "min_tokens": min_tokens,
        "models": {},
    }
    labels = list(dict.fromkeys(d.model for d in drafts))
    for label in labels:
        mine = samples.model == label
        gains = {d.row: d.gain_if_judged for d in drafts if d.model == label}
        outcome = _fit_model(samples, mine, gains, threshold, min_tokens, lengths, n_folds, seed)
        if isinstance(outcome, str):
            report["models"][label] = {"fitted": False, "reason": outcome}
            continue
        model, entry = outcome
        fitted[label] = model
        report["models"][label] = entry
    return CommitFit(PrefixModel(tuple(lengths), fitted), report)


def _fit_model(
    samples: PrefixSamples,
    mine: np.ndarray,
    gains: dict[int, float | None],
    threshold: float,
    min_tokens: int,
    lengths: Sequence[int],
    n_folds: int,
    seed: int,
) -> tuple[LogisticModel, dict[str, Any]] | str:
    """The model's regression and report, or why it is not fitted."""
    x, y, rows, ks = (
        samples.features[mine],
        samples.accepted[mine],
        samples.row[mine],
        samples.length[mine],
    )
    verdict = {int(r): float(a) for r, a in zip(rows, y, strict=True)}
    accepted = sum(1 for a in verdict.values() if a == 1.0)
    escalated = len(verdict) - accepted
    if not verdict:
        return f"no draft has more than {min(lengths)} tokens"
    if min(accepted, escalated) < MIN_DRAFTS_PER_OUTCOME:
        return _base_rate(verdict, gains, accepted, escalated, threshold)
    folds = _row_folds(verdict, min(n_folds, accepted, escalated), seed)[rows]
    l2, _ = _choose_l2(x, y, folds)
    model = fit_logistic(x, y, l2=l2)
    oof = _nested_out_of_fold(x, y, rows, verdict, n_folds, seed)
    base = np.empty_like(y)
    for f in np.unique(folds):
        base[folds == f] = y[folds != f].mean()
    entry: dict[str, Any] = {
        "fitted": True,
        "kind": "prefix_regression",
        "drafts": len(verdict),
        "samples": int(y.size),
        "accept_rate": accepted / len(verdict),
        "l2": l2,
        "cv": _scores(y, oof),
        "base_rate_log_loss": log_loss(y, base),
        "by_length": {
            str(k): _scores(y[ks == k], oof[ks == k]) | {"samples": int((ks == k).sum())}
            for k in lengths
            if (ks == k).any()
        },
        "commit_rule": _replay_commits(oof, rows, ks, verdict, gains, threshold, min_tokens),
    }
    return model, entry


def _base_rate(
    verdict: dict[int, float],
    gains: dict[int, float | None],
    accepted: int,
    escalated: int,
    threshold: float,
) -> tuple[LogisticModel, dict[str, Any]]:
    """The constant model of the rule of succession (module doc), and its report."""
    drafts = len(verdict)
    p = (accepted + 1) / (drafts + 2)
    width = len(FEATURES)
    model = LogisticModel(
        mean=np.zeros(width),
        scale=np.ones(width),
        coef=np.zeros(width),
        intercept=float(np.log(p) - np.log1p(-p)),
    )
    committed = commits(p, threshold)
    return model, {
        "fitted": True,
        "kind": "base_rate",
        "reason": (
            f"{accepted} of {drafts} drafts accepted, {escalated} escalated: too few of one "
            f"outcome (< {MIN_DRAFTS_PER_OUTCOME}) for a prefix regression"
        ),
        "drafts": drafts,
        "accept_rate": accepted / drafts,
        "p_accept": p,
        "commit_rule": {
            "committed_share": 1.0 if committed else 0.0,
            "would_have_escalated_share": escalated / drafts if committed else None,
            "escalated_drafts_committed_share": (1.0 if committed else 0.0) if escalated else None,
            "mean_tokens_at_commit": None,
            **quality_cost(list(verdict) if committed else [], verdict, gains),
        },
    }


def _scores(target: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Log loss, Brier score and ECE as plain floats (the report is JSON)."""
    return {name: float(value) for name, value in scores(target, p).items()}


def _row_folds(verdict: dict[int, float], n_folds: int, seed: int) -> np.ndarray:
    """A fold id per calibration row (indexable by row number), balanced within each label,
    so every fold holds accepted and escalated drafts."""
    rng = np.random.default_rng(seed)
    fold = np.full(max(verdict) + 1, -1, dtype=int)
    for outcome in (0.0, 1.0):
        rows = np.array([r for r, a in verdict.items() if a == outcome], dtype=int)
        fold[rng.permutation(rows)] = np.arange(rows.size) % n_folds
    return fold


def _choose_l2(x: np.ndarray, y: np.ndarray, folds: np.ndarray) -> tuple[float, float]:
    """The penalty of `L2_GRID` with the lowest CV log loss (the stronger one on a tie)."""
    losses = [(log_loss(y, out_of_fold(x, y, folds, l2)), -l2) for l2 in L2_GRID]
    loss, neg = min(losses)
    return -neg, loss


def _nested_out_of_fold(
    x: np.ndarray,
    y: np.ndarray,
    rows: np.ndarray,
    verdict: dict[int, float],
    n_folds: int,
    seed: int,
) -> np.ndarray:
    """Out-of-fold probabilities where each outer fold picks its penalty by CV on its own
    training rows: no choice is made on the rows it is scored on."""
    accepted = sum(1 for a in verdict.values() if a == 1.0)
    outer = _row_folds(verdict, min(n_folds, accepted, len(verdict) - accepted), seed)[rows]
    predicted = np.empty(y.shape[0])
    for f in np.unique(outer):
        test = outer == f
        train_verdict = {r: a for r, a in verdict.items() if r in set(rows[~test].tolist())}
        train_accepted = sum(1 for a in train_verdict.values() if a == 1.0)
        inner_k = min(n_folds, train_accepted, len(train_verdict) - train_accepted)
        if inner_k >= 2:
            inner = _row_folds(train_verdict, inner_k, seed + 1)[rows[~test]]
            l2, _ = _choose_l2(x[~test], y[~test], inner)
        else:
            l2 = max(L2_GRID)  # too few rows to choose: the strongest shrinkage
        predicted[test] = fit_logistic(x[~test], y[~test], l2=l2).predict(x[test])
    return predicted


def _replay_commits(
    p: np.ndarray,
    rows: np.ndarray,
    ks: np.ndarray,
    verdict: dict[int, float],
    gains: dict[int, float | None],
    threshold: float,
    min_tokens: int,
) -> dict[str, Any]:
    """The commit rule on out-of-fold probabilities, as the engine applies it: each draft is
    looked at its prefix lengths from ``min_tokens`` on and commits at the first look whose
    probability reaches the threshold."""
    committed: dict[int, int] = {}
    for i in np.argsort(ks, kind="stable"):
        row, k = int(rows[i]), int(ks[i])
        if k >= min_tokens and row not in committed and commits(float(p[i]), threshold):
            committed[row] = k
    wrong = [r for r in committed if verdict[r] == 0.0]
    escalated = [r for r, a in verdict.items() if a == 0.0]
    return {
        "committed_share": len(committed) / len(verdict),
        # Of the committed drafts, those the whole-draft judgement would have escalated: the
        # commits that changed the answer.
        "would_have_escalated_share": (len(wrong) / len(committed)) if committed else None,
        # Of the drafts the cascade escalates, those committed anyway.
        "escalated_drafts_committed_share": (len(wrong) / len(escalated)) if escalated else None,
        "mean_tokens_at_commit": (float(np.mean(list(committed.values()))) if committed else None),
        **quality_cost(list(committed), verdict, gains),
    }


def quality_cost(
    committed: Sequence[int], verdict: dict[int, float], gains: dict[int, float | None]
) -> dict[str, Any]:
    """What the commits cost in quality per drafted request (module doc), on the drafts
    whose row has a reference answer; None when no row has one."""
    known = [r for r in verdict if gains.get(r) is not None]
    if not known:
        return {"quality_cost": None, "quality_cost_rows": 0}
    lost = [gains[r] for r in committed if verdict[r] == 0.0]
    return {
        "quality_cost": float(sum(g for g in lost if g is not None)) / len(known),
        "quality_cost_rows": len(known),
    }
