"""The offline evaluation harness behind `cascade-router bench` (see docs/bench.md)."""

from cascade_core.bench.data import BenchData, BenchSplit, load_bench_data
from cascade_core.bench.evaluate import (
    BASELINE,
    STRATEGY_NAMES,
    Curve,
    SplitResult,
    evaluate_split,
    make_bench_strategy,
    sweep,
)
from cascade_core.bench.report import format_table, to_json
from cascade_core.bench.run import run_bench

__all__ = [
    "BASELINE",
    "STRATEGY_NAMES",
    "BenchData",
    "BenchSplit",
    "Curve",
    "SplitResult",
    "evaluate_split",
    "format_table",
    "load_bench_data",
    "make_bench_strategy",
    "run_bench",
    "sweep",
    "to_json",
]
