"""The bench command: JSON schema on a tiny generated dataset, acceptance on the real logs."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from cascade_core.cli.app import app
from tests.conftest import DATA, needs_data

STRATEGIES = ("routing", "threshold_cascade", "optimal_cascade", "cascade_routing")


def write_logs(path, n: int, seed: int, task: str) -> None:
    """Generic replay JSONL: three models whose confidence tracks correctness."""
    rng = np.random.default_rng(seed)
    skill = {"small": 0.5, "medium": 0.7, "large": 0.9}
    price = {"small": 1e-5, "medium": 5e-5, "large": 2e-4}
    with gzip.open(path, "wt") as fh:
        for i in range(n):
            models = {}
            for name, s in skill.items():
                correct = bool(rng.random() < s)
                conf = np.log(np.clip((0.8 if correct else 0.4) + rng.normal(0, 0.1), 1e-3, 1))
                models[name] = {
                    "correct": correct,
                    "cost_usd": price[name],
                    "confidence_logprob": float(conf),
                    "answer": "A" if correct else rng.choice(["B", "C"]),
                }
            fh.write(
                json.dumps({"id": f"{task}-{i}", "task": task, "prompt": "q" * i, "models": models})
                + "\n"
            )


def test_bench_json_schema(tmp_path):
    for task in ("alpha", "beta"):
        write_logs(tmp_path / f"{task}_train.jsonl.gz", 80, 1, task)
        write_logs(tmp_path / f"{task}_test.jsonl.gz", 60, 2, task)
    plot = tmp_path / "curves.png"
    result = CliRunner().invoke(
        app, ["bench", str(tmp_path), "--json", "--bootstrap", "50", "--plot", str(plot)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) >= {"datasets", "seconds"}
    assert [d["name"] for d in report["datasets"]] == ["alpha", "beta", "pooled"]
    for dataset in report["datasets"]:
        assert dataset["n_test"] == (120 if dataset["name"] == "pooled" else 60)
        names = set(dataset["strategies"])
        assert names >= {*STRATEGIES, "linear", "oracle", "per_step_threshold"}
        assert names - {*STRATEGIES, "linear", "oracle"} <= {
            "per_step_threshold",
            "per_step_threshold_undominated",
        }
        for name, entry in dataset["strategies"].items():
            lo, hi = entry["ci"]
            assert lo <= entry["auc"] <= hi
            if name != "oracle":
                assert {"apgr", "cpt50", "cpt80", "cost95_share"} <= set(entry)
        assert len(dataset["strategies"]["cascade_routing"]["points"]) >= 20
        assert dataset["ladder"] and set(dataset["dominated"]) <= {"small", "medium", "large"}
        # One estimator cross-fitted on the pooled train serves every split.
        assert dataset["n_train_fit"] == 160
        diagnostics = dataset["diagnostics"]
        assert {d["model"] for d in diagnostics} == {"small", "medium", "large"}
        for d in diagnostics:
            assert 0 <= d["brier"] <= 1 and 0 <= d["ece"] <= 1 and d["log_loss"] > 0
            assert d["features"] in ("floor", "full", "full_task_slopes") and d["cv_log_loss"] > 0
    assert plot.stat().st_size > 0


def test_bench_table_and_bad_noise(tmp_path):
    write_logs(tmp_path / "one_train.jsonl.gz", 60, 1, "one")
    write_logs(tmp_path / "one_test.jsonl.gz", 40, 2, "one")
    runner = CliRunner()
    result = runner.invoke(app, ["bench", str(tmp_path), "--bootstrap", "20", "--noise", "low"])
    assert result.exit_code == 0, result.output
    assert "cascade_routing" in result.stdout and "noisy ground truth (low)" in result.stdout
    bad = runner.invoke(app, ["bench", str(tmp_path), "--noise", "extreme"])
    assert bad.exit_code != 0


@needs_data
@pytest.mark.slow
def test_acceptance_on_cascade_logs():
    from cascade_core.bench import run_bench

    results, _, _ = run_bench(DATA / "cascade_logs", n_boot=200)
    by_name = {r.name: r.metrics for r in results}
    assert set(by_name) == {"mmlu", "medmcqa", "triviaqa", "truthfulqa", "pooled"}
    for name, metrics in by_name.items():
        ours = metrics["cascade_routing"]
        for other in ("routing", "threshold_cascade", "optimal_cascade"):
            if name == "pooled":
                assert ours["auc"] > metrics[other]["auc"], (name, other)
            else:  # within the bootstrap interval per task
                assert ours["ci"][1] >= metrics[other]["auc"], (name, other)


@needs_data
@pytest.mark.slow
def test_acceptance_on_routerbench_low_noise():
    from cascade_core.bench import run_bench

    results, _, _ = run_bench(DATA / "routerbench_subset", noise="low", n_boot=200)
    pooled = next(r.metrics for r in results if r.name == "pooled")
    assert pooled["cascade_routing"]["auc"] > pooled["routing"]["auc"]
    assert pooled["cascade_routing"]["auc"] > pooled["threshold_cascade"]["auc"]
