"""Quality-vs-cost curves as a PNG: one panel per dataset, one line per strategy; with a
latency weight, each dataset's quality-vs-latency panel beside its quality-vs-cost one."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cascade_core.bench.evaluate import SplitResult

# Fixed colours so a strategy looks the same in every panel and every run.
_STYLE = {
    "routing": ("tab:blue", "-"),
    "threshold_cascade": ("tab:orange", "-"),
    "optimal_cascade": ("tab:green", "-"),
    "cascade_routing": ("tab:red", "-"),
    "linear": ("0.45", "--"),
}
# Axis scale and label: USD is drawn in µUSD, seconds as they are.
_USD = (1e6, "mean cost per query (µUSD)")
_SECONDS = (1.0, "mean latency per query (s, every model a query ran)")


def _panel(
    ax: Any,
    title: str,
    curves: dict[str, tuple[list[float], list[float]]],
    metrics: dict[str, dict[str, Any]],
    single_models: dict[str, tuple[float, float]],
    axis: tuple[float, str],
) -> None:
    scale, label = axis
    for name, (xs, ys) in curves.items():
        color, style = _STYLE.get(name, ("black", "-"))
        ax.plot(
            [x * scale for x in xs],
            ys,
            style,
            color=color,
            lw=1.8,
            marker="." if name != "linear" else None,
            label=f"{name} ({metrics[name]['auc']:.1f})",
        )
    xs = [c * scale for c, _ in single_models.values()]
    ys = [q for _, q in single_models.values()]
    ax.scatter(xs, ys, color="black", s=18, zorder=5, label="single models")
    oracle = metrics["oracle"]
    ax.scatter(
        [oracle["cost"] * scale],
        [oracle["quality"]],
        marker="*",
        s=90,
        color="gold",
        edgecolor="black",
        zorder=6,
        label="oracle",
    )
    ax.set_title(title)
    ax.set_xlabel(label)
    ax.set_ylabel("mean quality")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")


def save_plot(results: Sequence[SplitResult], path: str | Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("--plot needs matplotlib: pip install 'cascade-router[bench]'") from exc
    panels = []
    for r in results:
        weight = "" if r.latency_weight is None else f", W={r.latency_weight:g} USD/s"
        title = f"{r.name} (n={r.n_test}{weight})"
        panels.append((title, r.curves, r.metrics, r.single_models, _USD))
        if r.latency is not None:
            latency = r.latency
            panels.append((title, latency.curves, latency.metrics, latency.single_models, _SECONDS))
    n = len(panels)
    cols = 2 if any(r.latency is not None for r in results) else min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.0 * rows), squeeze=False)
    for ax, panel in zip(axes.ravel(), panels, strict=False):
        _panel(ax, *panel)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
