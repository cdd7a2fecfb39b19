"""Rendering bench results: the readable table and the one-object JSON of the issue's schema."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from cascade_core.bench.evaluate import SplitResult


def to_json(results: Sequence[SplitResult], seconds: float, settings: dict[str, Any]) -> dict:
    """``{"datasets": [{"name", "n_test", "strategies": {...}}], "seconds": t}`` plus detail.

    Each strategy entry has ``auc`` and ``ci`` (95% bootstrap) as the schema requires, and
    also ``apgr``, ``cpt50``/``cpt80`` (percent of the cheapest-to-dearest cost range) and its
    curve ``points`` [[cost, quality], ...]; "linear" and "oracle" sit beside the strategies.
    """
    datasets = []
    for r in results:
        strategies = {}
        for name, metric in r.metrics.items():
            entry = {key: _clean(value) for key, value in metric.items()}
            if name in r.curves:
                xs, ys = r.curves[name]
                entry["points"] = [[x, y] for x, y in zip(xs, ys, strict=True)]
            strategies[name] = entry
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
                "strategies": strategies,
                "notes": r.notes,
            }
        )
    return {"datasets": datasets, "seconds": seconds, "settings": settings}


def _clean(value: Any) -> Any:
    """NaN is not JSON: a metric that is undefined (e.g. CPT never reached) becomes null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _fmt(value: object, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def format_table(results: Sequence[SplitResult], seconds: float) -> str:
    """One block per dataset: AUC with its 95% CI, APGR and CPT per strategy."""
    lines: list[str] = []
    header = f"{'strategy':<19} {'AUC':>6}  {'95% CI':<15} {'APGR':>6} {'CPT50%':>7} {'CPT80%':>7}"
    for r in results:
        lines.append(
            f"{r.name}  (test {r.n_test}, fit {r.n_train_fit}, calibration {r.n_calibration};"
            f" {r.estimator}; {len(r.budgets)} budgets)"
        )
        lines.append(header)
        for name, m in r.metrics.items():
            lo, hi = m["ci"]  # type: ignore[misc]
            if name == "oracle":
                extra = f"  (cost {m['cost']:.3g} USD, quality {m['quality']:.3f})"
                lines.append(f"{name:<19} {m['auc']:>6.2f}  [{lo:6.2f}, {hi:6.2f}]{extra}")
                continue
            lines.append(
                f"{name:<19} {m['auc']:>6.2f}  [{lo:6.2f}, {hi:6.2f}] {_fmt(m.get('apgr'), 3):>6}"
                f" {_fmt(m.get('cpt50')):>7} {_fmt(m.get('cpt80')):>7}"
            )
        for note in r.notes:
            lines.append(f"note: {note}")
        lines.append("")
    lines.append(
        "AUC: area under quality-vs-cost over [cheapest, dearest model cost], x100 (DESIGN.md)."
    )
    lines.append("CPT: cost to recover 50%/80% of the weak-to-strong gap, % of that cost range.")
    lines.append(f"total {seconds:.1f} s")
    return "\n".join(lines)
