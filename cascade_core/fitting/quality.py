"""Fitting the quality estimators (`cascade_core.estimators.quality`) on labelled replay logs.

Why cross-fitting: logs rarely hold more than a few hundred labelled queries per task, so no
row may be spent on a holdout. Every row is used to fit, and every row also gets an
out-of-fold (OOF) estimate from regressions fitted on the other folds (`CrossFit`): the
uncertainty Σ and every budget parameter are fitted on those, so nothing downstream sees an
estimate made by a regression that was fitted on the same row.

What each (m, R) regression is, chosen by K-fold cross-validated log loss among:

* the *floor*: a monotone (Platt) calibration of model m's own raw signal when m ran, with
  per-task intercepts; when m did not run, its per-task base rate. Pooling tasks with task
  intercepts shares the signal's slope across tasks;
* the *full* feature set of state R (prompt length, task, every run model's signals and
  their agreement), kept only where it predicts better out of fold than the floor,
* the full set with per-task slopes of every run model's primary signal (the spec's
  ``task_slopes``), likewise,

each at the L2 penalty (`L2_GRID`) with the lowest CV loss. So no estimator is worse out of
sample than its model's own calibrated signal, by the measure that matters for a probability.

Uncertainty (`oof_covariances`): the strategies treat the final estimate as a normal around
the current one. Its covariance in state R is measured on the OOF rows as
Cov(q(all models) - q(R)), what running everything would move the estimates by, and then
scaled by the one factor c_R in [0, 1] at which the normal model's predicted gain of running
everything, E[max] - (what R answers now), equals the gain measured on the same rows by
answering with the best estimate after all models ran. A Gaussian E[max] over bounded,
selected estimates is optimistic; the scale makes it honest where it is measured, and is 0
where more models do not pay on average. In the state "all models ran" Σ is 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from cascade_core.estimates import Uncertainty
from cascade_core.estimators.features import FeatureSpec
from cascade_core.estimators.logistic import LogisticModel, fit_logistic
from cascade_core.estimators.quality import (
    MAX_FITTED_MODELS,
    CrossFit,
    EstimatorChoice,
    LogisticQualityEstimator,
    StateKey,
    all_states,
)
from cascade_core.expected_max import DEFAULT_SAMPLES, error_samples
from cascade_core.fitting.features import spec_for_dataset, table_from_dataset
from cascade_core.replay import ReplayDataset, concat_datasets
from cascade_core.replay.simulate import StagedEstimates

N_FOLDS = 5
# Penalties on standardised features, from nearly free to strongly shrunk; CV picks one per
# (model, state). Four values a decade apart span what a few hundred rows can support.
L2_GRID: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0)
# Probabilities are clipped this far from 0 and 1 when scoring log loss.
_EPS = 1e-6


def cv_folds(tasks: Sequence[str], n_folds: int, seed: int) -> np.ndarray:
    """A fold id per row, balanced within each task (seeded), so every fold sees every task."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(tasks, dtype=object)
    fold = np.empty(len(labels), dtype=int)
    for task in dict.fromkeys(tasks):
        rows = np.flatnonzero(labels == task)
        fold[rng.permutation(rows)] = np.arange(rows.size) % n_folds
    return fold


def log_loss(target: np.ndarray, p: np.ndarray) -> float:
    """Mean binary cross-entropy; graded targets in [0, 1] are fine."""
    p = np.clip(p, _EPS, 1 - _EPS)
    return float(-np.mean(target * np.log(p) + (1 - target) * np.log1p(-p)))


def staged_estimates(
    estimator: LogisticQualityEstimator,
    dataset: ReplayDataset,
    cost: np.ndarray | None = None,
    embeddings: np.ndarray | None = None,
) -> StagedEstimates:
    """Staged estimates for a replay; costs default to the logged cost (what replay pays)."""
    data = dataset.select_models(estimator.spec.model_names)
    table = table_from_dataset(estimator.spec, data, embeddings)
    return _staged(
        estimator,
        lambda state: estimator.quality(table, state),
        data.cost if cost is None else cost,
    )


def crossfit_staged(
    estimator: LogisticQualityEstimator, cost: np.ndarray, rows: np.ndarray | None = None
) -> StagedEstimates:
    """Staged OOF estimates of the fitting rows ``rows`` (default: all, in fitting order),
    the estimates budgets are fitted on; ``cost`` (len(rows), k) is what strategies see."""
    if estimator.crossfit is None:
        raise ValueError("this estimator was loaded, not fitted: it has no OOF estimates")
    oof = estimator.crossfit.quality
    picked = np.arange(estimator.crossfit.n_rows) if rows is None else np.asarray(rows)
    return _staged(estimator, lambda state: oof[state][picked], cost)


def _staged(
    estimator: LogisticQualityEstimator,
    quality_of: Callable[[StateKey], np.ndarray],
    cost: np.ndarray,
) -> StagedEstimates:
    def state(ran: frozenset[int]) -> tuple[np.ndarray, Uncertainty]:
        key = tuple(sorted(ran))
        return quality_of(key), estimator.uncertainty(key)

    return StagedEstimates(np.asarray(cost, float), state)


def fit_quality_estimator(
    fit_data: ReplayDataset,
    holdout: ReplayDataset | None = None,
    *,
    spec: FeatureSpec | None = None,
    fit_embeddings: np.ndarray | None = None,
    holdout_embeddings: np.ndarray | None = None,
    n_folds: int = N_FOLDS,
    seed: int = 0,
) -> LogisticQualityEstimator:
    """Cross-fit every (model, state) regression and Σ on all labelled rows.

    ``holdout`` (optional) is appended to ``fit_data``: both are labelled training rows, and
    cross-fitting uses each of them for fitting and, out of fold, for Σ and budgets. The OOF
    estimates (`CrossFit`) follow that row order.
    """
    data, embeddings = _all_rows(fit_data, holdout, fit_embeddings, holdout_embeddings)
    spec = spec or spec_for_dataset(data, 0 if embeddings is None else embeddings.shape[1])
    if spec.n_models > MAX_FITTED_MODELS:
        raise ValueError(
            f"{spec.n_models} models need {spec.n_models * 2**spec.n_models} regressions; "
            f"select at most {MAX_FITTED_MODELS} models (bench --models) or use --noise"
        )
    data = data.select_models(spec.model_names)
    table = table_from_dataset(spec, data, embeddings)
    n, k = data.n_queries, spec.n_models
    folds = cv_folds(data.tasks, max(2, min(n_folds, n)), seed)
    models: dict[StateKey, list[LogisticModel]] = {}
    oof: dict[StateKey, np.ndarray] = {}
    choices: dict[tuple[int, StateKey], EstimatorChoice] = {}
    for state in all_states(k):
        x = table.state_matrix(state)
        names = spec.state_names(state)
        oof[state] = np.empty((n, k))
        models[state] = []
        for m in range(k):
            model, predicted, choice = _fit_one(
                x, data.quality[:, m], candidate_columns(spec, names, m, state), folds
            )
            models[state].append(model)
            oof[state][:, m] = predicted
            choices[(m, state)] = choice
    covariances, scales = oof_covariances(oof, data.quality)
    return LogisticQualityEstimator(
        spec=spec,
        models=models,
        covariances=covariances,
        crossfit=CrossFit(oof, data.quality.copy(), choices, scales),
    )


def _all_rows(
    fit_data: ReplayDataset,
    holdout: ReplayDataset | None,
    fit_embeddings: np.ndarray | None,
    holdout_embeddings: np.ndarray | None,
) -> tuple[ReplayDataset, np.ndarray | None]:
    if holdout is None or holdout.n_queries == 0:
        return fit_data, fit_embeddings
    data = concat_datasets([fit_data, holdout], name=fit_data.name).select_models(
        fit_data.model_names
    )
    if fit_embeddings is None or holdout_embeddings is None:
        return data, None
    return data, np.concatenate([fit_embeddings, holdout_embeddings], axis=0)


def floor_columns(spec: FeatureSpec, names: Sequence[str], m: int, state: StateKey) -> list[int]:
    """Columns of the floor regression for model m in state R: the task indicators, and
    model m's own primary signal when it ran."""
    wanted = {f"task={t}" for t in spec.tasks}
    primary = spec.primary_signal
    if m in state and primary is not None:
        wanted.add(f"{spec.model_names[m]}:{primary}")
    return [i for i, name in enumerate(names) if name in wanted]


def candidate_columns(
    spec: FeatureSpec, names: Sequence[str], m: int, state: StateKey
) -> dict[str, list[int]]:
    """The feature sets CV chooses among for model m in state R (module doc), floor first;
    a set equal to an earlier one is left out."""
    slopes = set(spec.task_slope_names(state))
    every = list(range(len(names)))
    sets = {
        "floor": floor_columns(spec, names, m, state),
        "full": [i for i in every if names[i] not in slopes],
        "full_task_slopes": every,
    }
    unique: dict[str, list[int]] = {}
    for label, columns in sets.items():
        if columns not in unique.values():
            unique[label] = columns
    return unique


def _fit_one(
    x: np.ndarray, y: np.ndarray, sets: dict[str, list[int]], folds: np.ndarray
) -> tuple[LogisticModel, np.ndarray, EstimatorChoice]:
    """The (model, state) regression chosen by CV log loss among ``sets`` (the first is the
    floor: another set is kept only where it is strictly better), refitted on all rows, with
    its OOF predictions."""
    results = []  # (loss, features, l2, columns, oof)
    for label, cols in sets.items():
        for l2 in L2_GRID:
            predicted = out_of_fold(x[:, cols], y, folds, l2)
            results.append((log_loss(y, predicted), label, l2, cols, predicted))
    floor = next(iter(sets))
    floor_best = min((r for r in results if r[1] == floor), key=lambda r: r[0])
    best = min(results, key=lambda r: r[0])
    if best[1] != floor and not best[0] < floor_best[0]:
        best = floor_best
    loss, label, l2, cols, predicted = best
    model = _embed(fit_logistic(x[:, cols], y, l2=l2), cols, x.shape[1])
    return model, predicted, EstimatorChoice(label, l2, loss, floor_best[0])


def out_of_fold(x: np.ndarray, y: np.ndarray, folds: np.ndarray, l2: float) -> np.ndarray:
    """Each row's probability from the logistic regression fitted on the other folds."""
    predicted = np.empty(y.shape[0])
    for f in np.unique(folds):
        test = folds == f
        predicted[test] = fit_logistic(x[~test], y[~test], l2=l2).predict(x[test])
    return predicted


def _embed(model: LogisticModel, cols: list[int], width: int) -> LogisticModel:
    """A regression on some columns as one on all ``width`` columns (zero weight elsewhere),
    so every state's models keep the profile's one column layout."""
    mean, scale, coef = np.zeros(width), np.ones(width), np.zeros(width)
    mean[cols], scale[cols], coef[cols] = model.mean, model.scale, model.coef
    return LogisticModel(mean=mean, scale=scale, coef=coef, intercept=model.intercept)


def oof_covariances(
    oof: dict[StateKey, np.ndarray], target: np.ndarray, n_samples: int = DEFAULT_SAMPLES
) -> tuple[dict[StateKey, np.ndarray], dict[StateKey, float]]:
    """Σ_R per state from OOF estimates, with the measured scale c_R (module doc)."""
    k = target.shape[1]
    final = oof[tuple(range(k))]
    covariances: dict[StateKey, np.ndarray] = {}
    scales: dict[StateKey, float] = {}
    for state, now in oof.items():
        if len(state) == k or now.shape[0] < 2:
            covariances[state], scales[state] = np.zeros((k, k)), 0.0
            continue
        cov = np.atleast_2d(np.cov(final - now, rowvar=False))
        cov = (cov + cov.T) / 2  # exact symmetry for the PSD check
        scale = honest_scale(now, final, target, cov, state, n_samples)
        covariances[state], scales[state] = cov * scale**2, scale
    return covariances, scales


def honest_scale(
    now: np.ndarray,
    final: np.ndarray,
    target: np.ndarray,
    cov: np.ndarray,
    state: StateKey,
    n_samples: int = DEFAULT_SAMPLES,
    steps: int = 30,
) -> float:
    """The c in [0, 1] at which N(now, c^2 cov) predicts the measured gain of running every
    model over answering in state R (module doc); 0 when that gain is <= 0."""
    rows = np.arange(now.shape[0])
    ran = list(state)

    def answer_now(values: np.ndarray) -> np.ndarray:
        return values[..., ran].max(axis=-1) if ran else values.max(axis=-1)

    pick_now = np.array(ran)[now[:, ran].argmax(axis=1)] if ran else now.argmax(axis=1)
    measured = float(target[rows, final.argmax(axis=1)].mean() - target[rows, pick_now].mean())
    if measured <= 0:
        return 0.0
    noise = error_samples(Uncertainty.from_covariance(cov), n_samples)

    def predicted(c: float) -> float:
        samples = now[:, None, :] + c * noise[None, :, :]
        base = answer_now(samples).mean(axis=1) if ran else now.max(axis=1)
        return float((samples.max(axis=2).mean(axis=1) - base).mean())

    if predicted(1.0) <= measured:
        return 1.0
    low, high = 0.0, 1.0
    for _ in range(steps):
        middle = (low + high) / 2
        low, high = (middle, high) if predicted(middle) < measured else (low, middle)
    return (low + high) / 2
