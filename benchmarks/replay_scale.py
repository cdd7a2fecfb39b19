"""Peak memory and time of the replay at RouterBench's full size: 11 models x 36,000 queries.

Each of the bench's four strategies (its settings: `bench_candidates`, so cascade routing
with supermodels capped at 3 models on 11 models) runs the bench's budget sweep on generated
RouterBench-like data (tests/synthetic_routerbench.py): estimates from the paper's noisy
oracle at the "low" level (`fit_noisy_oracle`, fitted on half the training part), 20 evenly
spaced budgets between the cheapest and the dearest model's mean cost, each fitted on the other half
(`fit_best_to_budgets`) and replayed on the test part; the test AUC is reported. Every run is a
fresh child process, so its peak RSS and CPU time are its own: the kernel's ``ru_maxrss``,
``ru_utime`` and ``ru_stime`` from ``wait4`` (and the child's own VmHWM as a cross-check);
the load average before and after says how shared the machine was.

The baseline is measured in the same run: on a smaller size that it can hold, each strategy
runs both with the unchunked context (tests/replay_reference.py: every state's full
(queries x samples x models) tensor kept, as the replay was first written) and with
`BatchContext`, and their curves and AUCs are compared for exact equality.

    python benchmarks/replay_scale.py --json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Evenly spaced budgets, the workload the README's scale figures were measured with; time and
# memory grow linearly with the count.
SCALE_BUDGETS = 20

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

STRATEGIES = ("routing", "threshold_cascade", "optimal_cascade", "cascade_routing")
TARGET_RSS_GB = 4.0
TARGET_MINUTES = 10.0
NOISE = "low"


def run_one(strategy: str, n_test: int, n_train: int, unchunked: bool, seed: int) -> dict:
    """One child's work: the bench's sweep of one strategy, timed (data generation apart)."""
    from cascade_core.bench.evaluate import bench_candidates, sweep
    from cascade_core.budget import budget_grid
    from cascade_core.expected_max import DEFAULT_SAMPLES
    from cascade_core.fitting import fit_noisy_oracle
    from cascade_core.replay import auc, auc_range
    from cascade_core.replay.simulate import BatchContext
    from tests.replay_reference import UnchunkedContext
    from tests.synthetic_routerbench import routerbench_like

    start = time.perf_counter()
    train = routerbench_like(n_train, seed, "train")
    test = routerbench_like(n_test, seed + 1, "test").select_models(train.model_names)
    fit, calib = train.split(0.5, seed=seed)
    oracle = fit_noisy_oracle(fit, NOISE, seed=seed)
    staged_calib, staged_test = oracle.staged(calib, seed + 1), oracle.staged(test, seed + 2)
    budgets = [float(b) for b in budget_grid(calib.cost, SCALE_BUDGETS)]
    context = UnchunkedContext if unchunked else BatchContext
    calib_context, test_context = context(staged_calib), context(staged_test)
    setup = time.perf_counter() - start

    start = time.perf_counter()
    candidates = bench_candidates(strategy, test.n_models)
    curve = sweep(candidates, calib_context, calib, test_context, test, budgets)
    seconds = time.perf_counter() - start

    states = staged_calib.n_states + staged_test.n_states
    per_state = DEFAULT_SAMPLES * test.n_models * 8
    return {
        "seconds": seconds,
        "setup_seconds": setup,
        "auc": auc(curve.costs, curve.qualities, *auc_range(test)),
        "costs": curve.costs.tolist(),
        "qualities": curve.qualities.tolist(),
        "states_visited": states,
        "cache_mb": sum(
            getattr(c, "sample_bytes" if unchunked else "cache_bytes")
            for c in (calib_context, test_context)
        )
        / 2**20,
        # What the unchunked context would hold: one (queries x samples x models) tensor per
        # visited state. Computed, not measured.
        "unchunked_tensors_gb": (
            staged_calib.n_states * calib.n_queries + staged_test.n_states * test.n_queries
        )
        * per_state
        / 2**30,
        "vmhwm_mb": _vmhwm_mb(),
    }


def _vmhwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def in_child(strategy: str, n_test: int, n_train: int, unchunked: bool, seed: int, timeout):
    """Run `run_one` in a fresh interpreter; add its peak RSS as the kernel accounts it."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        args = [sys.executable, __file__, "--child", strategy, str(n_test), str(n_train)]
        args += [str(int(unchunked)), str(seed), str(out)]
        process = subprocess.Popen(args, cwd=ROOT)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                process.kill()
                _, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.2)
        process.returncode = os.waitstatus_to_exitcode(status)
        result = json.loads(out.read_text()) if out.exists() else {}
    result["peak_rss_mb"] = usage.ru_maxrss / 1024  # kilobytes on Linux
    # CPU time is what the child itself used: on a shared machine wall seconds also count
    # everyone else's work, CPU seconds do not.
    result["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    result["exit_code"] = process.returncode
    if process.returncode:
        result["error"] = "timed out" if time.monotonic() > deadline else "child failed"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--queries", type=int, default=36_000, help="test queries replayed")
    parser.add_argument(
        "--train", type=int, default=36_000, help="training queries: half fit, half calibrate"
    )
    parser.add_argument("--baseline-queries", type=int, default=1_000, help="test and train")
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per child")
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        strategy, n_test, n_train, unchunked, seed, out = args.child
        result = run_one(strategy, int(n_test), int(n_train), unchunked == "1", int(seed))
        Path(out).write_text(json.dumps(result))
        return

    load_at_start = os.getloadavg()[0]
    full = {
        s: in_child(s, args.queries, args.train, False, args.seed, args.timeout)
        for s in args.strategies
    }
    n_base = args.baseline_queries
    baseline = {}
    for s in args.strategies:
        old = in_child(s, n_base, n_base, True, args.seed, args.timeout)
        new = in_child(s, n_base, n_base, False, args.seed, args.timeout)
        baseline[s] = {
            "unchunked": _summary(old),
            "chunked": _summary(new),
            "curves_identical": old.get("costs") == new.get("costs")
            and old.get("qualities") == new.get("qualities"),
            "auc_identical": old.get("auc") == new.get("auc"),
        }
    total_minutes = (
        sum(r.get("seconds", float("inf")) + r.get("setup_seconds", 0.0) for r in full.values())
        / 60
    )
    peak_gb = max(r["peak_rss_mb"] for r in full.values()) / 1024
    report = {
        "models": 11,
        "queries": {
            "test": args.queries,
            "fit": args.train // 2,
            "calibration": args.train - args.train // 2,
        },
        "noise": NOISE,
        "cpus": os.cpu_count(),
        "load_average_1min_at_start": load_at_start,
        "load_average_1min_at_end": os.getloadavg()[0],
        "strategies": {s: _summary(r) for s, r in full.items()},
        "baseline": {"queries": {"test": n_base, "train": n_base}, "strategies": baseline},
        "total_minutes": total_minutes,
        "max_peak_rss_gb": peak_gb,
        "targets": {"peak_rss_gb": TARGET_RSS_GB, "minutes": TARGET_MINUTES},
        "meets_targets": peak_gb <= TARGET_RSS_GB
        and total_minutes <= TARGET_MINUTES
        and all(not r.get("exit_code") for r in full.values())
        and all(b["auc_identical"] and b["curves_identical"] for b in baseline.values()),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"11 models, {args.queries} test queries, {args.train} training queries")
    for s, r in report["strategies"].items():
        print(
            f"  {s:18s} peak RSS {r['peak_rss_mb']:8.0f} MB  sweep {r['seconds']:7.1f} s"
            f"  (child CPU {r['cpu_seconds']:7.1f} s)  AUC {r['auc']:.3f}"
        )
    print(f"baseline ({n_base} queries): unchunked vs chunked")
    for s, b in baseline.items():
        print(
            f"  {s:18s} {b['unchunked']['peak_rss_mb']:8.0f} MB vs"
            f" {b['chunked']['peak_rss_mb']:6.0f} MB, {b['unchunked']['seconds']:6.1f} s vs"
            f" {b['chunked']['seconds']:6.1f} s, AUC identical: {b['auc_identical']}"
        )
    print(
        f"meets targets (<= {TARGET_RSS_GB} GB, <= {TARGET_MINUTES} min): {report['meets_targets']}"
    )


def _summary(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in ("costs", "qualities")}


if __name__ == "__main__":
    main()
