"""Rendering bench results: the readable table and one JSON object per run."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from cascade_core.bench.evaluate import AxisResult, SplitResult
from cascade_core.replay.metrics import json_safe


def _strategies_json(
    metrics: dict[str, dict[str, object]], curves: dict[str, tuple[list[float], list[float]]]
) -> dict[str, dict[str, Any]]:
    strategies = {}
    for name, metric in metrics.items():
        entry = {key: json_safe(value) for key, value in metric.items()}
        if name in curves:
            xs, ys = curves[name]
            entry["points"] = [[x, y] for x, y in zip(xs, ys, strict=True)]
        strategies[name] = entry
    return strategies


def _axis_json(axis: AxisResult) -> dict[str, Any]:
    return {
        "unit": axis.unit,
        "single_models": {
            m: {"latency_s": t, "quality": q} for m, (t, q) in axis.single_models.items()
        },
        "strategies": _strategies_json(axis.metrics, axis.curves),
    }


def to_json(results: Sequence[SplitResult], seconds: float, settings: dict[str, Any]) -> dict:
    """``{"datasets": [{"name", "n_test", "strategies": {...}}], "seconds": t}`` plus detail.

    Each strategy entry has ``auc`` and ``ci`` (95% bootstrap) as the schema requires, and
    also ``apgr``, ``cpt50``/``cpt80`` (percent of the cheapest-to-dearest cost range),
    ``cost95_share`` (cost at 95% of the best model's quality, percent of that model's cost)
    and its curve ``points`` [[cost, quality], ...]; "linear", "oracle" and the per-step
    threshold baselines sit beside the strategies. ``ladder`` and ``dominated`` name the
    models the strategies ran and those dominated on train; ``diagnostics`` holds log loss,
    Brier and ECE per (model, state) on test.

    With ``--latency-weight`` there is one entry per (weight, split), weights in the order
    given; each says its ``latency_weight`` (USD per second) and has a ``latency`` object of
    the same shape as the cost axis (``strategies`` with ``auc``, ``ci``, ``apgr``, CPTs,
    ``cost95_share`` and ``points`` [[seconds, quality], ...], ``single_models`` with
    ``latency_s``), in seconds waited per query. ``strategies`` stays on the USD axis.
    """
    datasets = []
    for r in results:
        entry: dict[str, Any] = {}
        if r.latency_weight is not None:
            entry["latency_weight"] = r.latency_weight
        if r.latency is not None:
            entry["latency"] = _axis_json(r.latency)
        datasets.append(
            {
                "name": r.name,
                "n_test": r.n_test,
                "n_train_fit": r.n_train_fit,
                "n_calibration": r.n_calibration,
                "estimator": r.estimator,
                "n_budgets": len(r.budgets),
                "single_models": {
                    m: {"cost": c, "quality": q} for m, (c, q) in r.single_models.items()
                },
                "strategies": _strategies_json(r.metrics, r.curves),
                "ladder": r.ladder,
                "dominated": r.dominated,
                "diagnostics": json_safe(r.diagnostics),
                "notes": r.notes,
                **entry,
            }
        )
    return {"datasets": datasets, "seconds": seconds, "settings": settings}


def _fmt(value: object, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _metric_rows(metrics: dict[str, dict[str, object]], unit: str, at95: str) -> list[str]:
    lines = [
        f"{'strategy':<30} {'AUC':>6}  {'95% CI':<15} {'APGR':>6} {'CPT50%':>7} {'CPT80%':>7}"
        f" {at95:>8}"
    ]
    for name, m in metrics.items():
        lo, hi = m["ci"]  # type: ignore[misc]
        if name == "oracle":
            extra = f"  (cost {m['cost']:.3g} {unit}, quality {m['quality']:.3f})"
            lines.append(
                f"{name:<30} {m['auc']:>6.2f}  [{_fmt(lo, 2):>6}, {_fmt(hi, 2):>6}]{extra}"
            )
            continue
        lines.append(
            f"{name:<30} {m['auc']:>6.2f}  [{_fmt(lo, 2):>6}, {_fmt(hi, 2):>6}]"
            f" {_fmt(m.get('apgr'), 3):>6} {_fmt(m.get('cpt50')):>7} {_fmt(m.get('cpt80')):>7}"
            f" {_fmt(m.get('cost95_share')):>8}"
        )
    return lines


def format_table(results: Sequence[SplitResult], seconds: float) -> str:
    """One block per dataset: AUC with its 95% CI, APGR and CPT per strategy; with a latency
    weight, a second block of the same metrics on the latency axis."""
    lines: list[str] = []
    for r in results:
        weight = "" if r.latency_weight is None else f"; latency weight {r.latency_weight:g} USD/s"
        lines.append(
            f"{r.name}  (test {r.n_test}, fit {r.n_train_fit}, calibration {r.n_calibration};"
            f" {r.estimator}; {len(r.budgets)} budgets{weight})"
        )
        lines.append(
            f"ladder: {', '.join(r.ladder)}; dominated on train: {', '.join(r.dominated) or 'none'}"
        )
        lines.extend(_metric_rows(r.metrics, "USD", "cost@95%"))
        if r.latency is not None:
            lines.append("quality vs latency (seconds waited per query):")
            lines.extend(_metric_rows(r.latency.metrics, "s", "time@95%"))
        for note in r.notes:
            lines.append(f"note: {note}")
        lines.append("")
    lines.append(
        "AUC: area under quality-vs-cost over [cheapest, dearest model cost], x100 (DESIGN.md)."
    )
    if any(r.latency is not None for r in results):
        lines.append(
            "Latency AUC: the same over [fastest, slowest model's mean latency]; a cascade"
            " waits for every model it ran."
        )
    lines.append("CPT: cost to recover 50%/80% of the weak-to-strong gap, % of that cost range.")
    lines.append("cost@95%: cost to reach 95% of the best model's quality, % of that model's cost.")
    lines.append(f"total {seconds:.1f} s")
    return "\n".join(lines)
