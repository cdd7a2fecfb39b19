"""Train-only cross-validation of the bench design on replay logs (never reads a test file).

The pooled train split is cut into K folds (balanced per task). For each fold, the other
folds play "train" and the fold plays "test": one estimator is cross-fitted on the pooled
train part and every split (each task, pooled) is scored with `evaluate_split`, exactly as
`cascade-router bench` does on the real test split. AUCs are averaged over folds.

``--sigma`` compares ways of measuring Σ on the same fits: ``measured`` (the package's: OOF
covariance times the honest scale c_R), ``unscaled`` (the OOF covariance, c_R = 1) and
``zero`` (max of means).

``--models a,b`` runs the same on a sub-ladder of the logged models (how the design holds on
ladders it was not built on: two or three models, a cheap drafter or none).

``--noise LEVEL`` scores the paper's noisy-oracle estimates instead (data without a logged
signal, e.g. the RouterBench subset): each split is evaluated as `cascade-router bench
--noise LEVEL` does, its calibrations fitted on the fold's training part.

Usage: python benchmarks/quality_cv.py [PATH] [--folds 5] [--sigma measured,zero,unscaled]
       python benchmarks/quality_cv.py --models llama3.2-3b,llama3.1-70b
       python benchmarks/quality_cv.py ../shared/data/routerbench_subset --folds 3 --noise low
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from cascade_core.bench.data import BenchSplit, load_bench_data
from cascade_core.bench.evaluate import evaluate_split
from cascade_core.estimators import LogisticQualityEstimator
from cascade_core.fitting import NOISE_LEVELS, fit_quality_estimator
from cascade_core.fitting.quality import cv_folds

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "cascade_logs"


def with_sigma(estimator: LogisticQualityEstimator, mode: str) -> LogisticQualityEstimator:
    """The same regressions with Σ measured another way (see the module doc)."""
    if mode == "measured":
        return estimator
    assert estimator.crossfit is not None
    oof, k = estimator.crossfit.quality, estimator.n_models
    final = oof[tuple(range(k))]
    covariances = {}
    for state, now in oof.items():
        if mode == "zero" or len(state) == k:
            covariances[state] = np.zeros((k, k))
        else:
            cov = np.atleast_2d(np.cov(final - now, rowvar=False))
            covariances[state] = (cov + cov.T) / 2
    return replace(estimator, covariances=covariances, _uncertainty={})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("path", nargs="?", default=str(DEFAULT))
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--sigma", default="measured")
    ap.add_argument("--noise", choices=sorted(NOISE_LEVELS), default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--models", default=None, help="comma-separated sub-ladder")
    args = ap.parse_args()
    if args.noise and args.sigma != "measured":
        ap.error("--sigma compares the fitted estimators' Σ; --noise has none to vary")
    data = load_bench_data(args.path)
    pooled = data.pooled
    assert pooled is not None, "needs several tasks (a pooled split)"
    if args.models:
        pooled = replace(pooled, train=pooled.train.select_models(args.models.split(",")))
    fold = cv_folds(pooled.train.tasks, args.folds, args.seed + 1000)
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    start = time.perf_counter()
    for f in range(args.folds):
        inside, outside = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
        if args.noise:
            variants: dict[str, LogisticQualityEstimator | None] = {f"noise={args.noise}": None}
        else:
            fitted = fit_quality_estimator(pooled.train.subset(inside), seed=args.seed)
            variants = {mode: with_sigma(fitted, mode) for mode in args.sigma.split(",")}
        for mode, estimator in variants.items():
            for split in data.splits:
                rows = data.pooled_rows[split.name]
                part_in = np.flatnonzero(np.isin(inside, rows))
                held = pooled.train.subset(np.intersect1d(outside, rows))
                train = pooled.train.subset(inside[part_in])
                cv_split = BenchSplit(split.name, train.sorted_by_cost(), held)
                result = evaluate_split(
                    cv_split,
                    noise=args.noise,
                    n_boot=0,
                    seed=args.seed,
                    shared=None if estimator is None else (estimator, part_in),
                )
                aucs = {name: round(float(m["auc"]), 3) for name, m in result.metrics.items()}
                results.setdefault(mode, {}).setdefault(split.name, []).append(aucs)
        print(f"fold {f} done {time.perf_counter() - start:.0f} s", flush=True)
    summary = {
        mode: {
            split: {
                # a baseline can be missing from a fold (no dominated model there): its mean
                # is over the folds that have it
                name: round(float(np.mean([r[name] for r in runs if name in r])), 2)
                for name in dict.fromkeys(n for r in runs for n in r)
            }
            for split, runs in per_split.items()
        }
        for mode, per_split in results.items()
    }
    for mode, per_split in summary.items():
        for split, aucs in per_split.items():
            print(mode, split, " ".join(f"{n}={v}" for n, v in aucs.items()))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "folds": results}, indent=1))


if __name__ == "__main__":
    main()
