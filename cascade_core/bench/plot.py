"""Quality-vs-cost curves as a PNG: one panel per dataset, one line per strategy."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from cascade_core.bench.evaluate import SplitResult

# Fixed colours so a strategy looks the same in every panel and every run.
_STYLE = {
    "routing": ("tab:blue", "-"),
    "threshold_cascade": ("tab:orange", "-"),
    "optimal_cascade": ("tab:green", "-"),
    "cascade_routing": ("tab:red", "-"),
    "linear": ("0.45", "--"),
}


def save_plot(results: Sequence[SplitResult], path: str | Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("--plot needs matplotlib: pip install 'cascade-router[bench]'") from exc
    n = len(results)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.0 * rows), squeeze=False)
    for ax, r in zip(axes.ravel(), results, strict=False):
        for name, (xs, ys) in r.curves.items():
            color, style = _STYLE.get(name, ("black", "-"))
            auc_value = r.metrics[name]["auc"]
            ax.plot(
                [x * 1e6 for x in xs],
                ys,
                style,
                color=color,
                lw=1.8,
                marker="." if name != "linear" else None,
                label=f"{name} ({auc_value:.1f})",
            )
        xs = [c * 1e6 for c, _ in r.single_models.values()]
        ys = [q for _, q in r.single_models.values()]
        ax.scatter(xs, ys, color="black", s=18, zorder=5, label="single models")
        oracle = r.metrics["oracle"]
        ax.scatter(
            [oracle["cost"] * 1e6],
            [oracle["quality"]],
            marker="*",
            s=90,
            color="gold",
            edgecolor="black",
            zorder=6,
            label="oracle",
        )
        ax.set_title(f"{r.name} (n={r.n_test})")
        ax.set_xlabel("mean cost per query (µUSD)")
        ax.set_ylabel("mean quality")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
