"""`bench --latency-weight`: latency priced into the fit, and a quality-vs-latency curve.

The synthetic logs make latency and cost disagree: the cheapest model is the slowest and the
dearest the fastest, so pricing time must move the fitted policies from the slow cheap model
to the fast expensive one, and a zero weight must change nothing at all.
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cascade_core.cli.app import app
from cascade_core.errors import InvalidInputError
from cascade_core.replay import ReplayDataset, ReplayFormatError, concat_datasets, load_replay

STRATEGIES = ("routing", "threshold_cascade", "optimal_cascade", "cascade_routing")
# name: (accuracy, USD per call, median seconds per call)
LADDER = {
    "cheap_slow": (0.55, 1e-5, 2.0),
    "mid": (0.7, 5e-5, 0.8),
    "dear_fast": (0.9, 2e-4, 0.25),
}
LARGE_WEIGHT = 1.0  # USD per second: seconds dwarf every price here


def write_logs(
    path: Path, n: int, seed: int, task: str, *, latency: bool = True, drop: tuple = ()
) -> None:
    """Generic replay JSONL whose confidences track correctness; ``drop`` = (line index,
    model) cells written without latency_ms."""
    rng = np.random.default_rng(seed)
    with gzip.open(path, "wt") as fh:
        for i in range(n):
            models = {}
            for name, (skill, price, seconds) in LADDER.items():
                correct = bool(rng.random() < skill)
                conf = np.log(np.clip((0.8 if correct else 0.4) + rng.normal(0, 0.1), 1e-3, 1))
                entry: dict[str, Any] = {
                    "correct": correct,
                    "cost_usd": price,
                    "confidence_logprob": float(conf),
                    "answer": "A" if correct else str(rng.choice(["B", "C"])),
                }
                if latency and (i, name) not in drop:
                    entry["latency_ms"] = float(1000 * seconds * rng.lognormal(0.0, 0.1))
                models[name] = entry
            record = {"id": f"{task}-{i}", "task": task, "prompt": "q" * i, "models": models}
            fh.write(json.dumps(record) + "\n")


def write_split_logs(directory: Path, **kwargs: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for seed, task in enumerate(("alpha", "beta")):
        write_logs(directory / f"{task}_train.jsonl.gz", 80, 10 * seed + 1, task, **kwargs)
        write_logs(directory / f"{task}_test.jsonl.gz", 60, 10 * seed + 2, task, **kwargs)
    return directory


def bench_json(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["bench", *args, "--json", "--bootstrap", "40"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_zero_weight_reproduces_the_plain_bench_exactly(tmp_path: Path) -> None:
    logs = str(write_split_logs(tmp_path))
    plain = bench_json(logs)
    zero = bench_json(logs, "--latency-weight", "0")
    assert [d["name"] for d in zero["datasets"]] == ["alpha", "beta", "pooled"]
    for before, after in zip(plain["datasets"], zero["datasets"], strict=True):
        assert after["latency_weight"] == 0.0
        for key in ("strategies", "single_models", "ladder", "dominated", "diagnostics"):
            assert after[key] == before[key], key
        assert {"linear", "oracle", "per_step_threshold", *STRATEGIES} <= set(
            after["latency"]["strategies"]
        )


def _mean_latency(path: Path, model: str) -> float:
    with gzip.open(path, "rt") as fh:
        rows = [json.loads(line)["models"][model]["latency_ms"] for line in fh]
    return float(np.mean(rows)) / 1000.0


def test_latency_axis_reads_the_logged_seconds(tmp_path: Path) -> None:
    """Single models on the latency axis are the test files' mean latency_ms in seconds, and
    every curve lies between the fastest model alone and all models run one after another."""
    logs = write_split_logs(tmp_path)
    report = bench_json(str(logs), "--latency-weight", "0")
    alpha = next(d for d in report["datasets"] if d["name"] == "alpha")
    singles = alpha["latency"]["single_models"]
    for model in LADDER:
        expected = _mean_latency(logs / "alpha_test.jsonl.gz", model)
        assert singles[model]["latency_s"] == pytest.approx(expected, rel=1e-12)
    fastest = min(s["latency_s"] for s in singles.values())
    every_model = sum(s["latency_s"] for s in singles.values())
    for name, entry in alpha["latency"]["strategies"].items():
        if name == "oracle":
            assert fastest <= entry["cost"] <= max(s["latency_s"] for s in singles.values())
            continue
        for seconds, _ in entry["points"]:
            assert fastest - 1e-9 <= seconds <= every_model + 1e-9, name


def test_large_weight_moves_the_choice_to_the_fast_model(tmp_path: Path) -> None:
    logs = str(write_split_logs(tmp_path))
    report = bench_json(logs, "--latency-weight", f"0,{LARGE_WEIGHT}")
    assert [d["latency_weight"] for d in report["datasets"]] == [0.0] * 3 + [LARGE_WEIGHT] * 3
    by_weight = {
        (d["latency_weight"], d["name"]): d for d in report["datasets"] if d["name"] == "pooled"
    }
    today, priced = by_weight[(0.0, "pooled")], by_weight[(LARGE_WEIGHT, "pooled")]
    slow = today["latency"]["single_models"]["cheap_slow"]["latency_s"]
    fast = today["latency"]["single_models"]["dear_fast"]["latency_s"]
    fast_usd = today["single_models"]["dear_fast"]["cost"]
    # Priced, the fast model is the cheapest and the most accurate: first, the rest dominated.
    assert priced["ladder"][0] == "dear_fast"
    assert set(priced["dominated"]) == {"cheap_slow", "mid"}
    for name in (*STRATEGIES, "per_step_threshold"):
        before = today["latency"]["strategies"][name]["points"]
        after = priced["latency"]["strategies"][name]["points"]
        # Points are in budget order. The cheapest budget buys the slow cheap model at W = 0,
        # only the fast one priced; every priced query starts with the fast model.
        assert before[0][0] > 0.5 * slow, name
        assert after[0][0] == pytest.approx(fast, rel=1e-9), name
        assert min(after)[0] == pytest.approx(fast, rel=1e-9), name
        assert priced["strategies"][name]["points"][0][0] == pytest.approx(fast_usd), name
        assert today["strategies"][name]["points"][0][0] < 0.2 * fast_usd, name
    # What pricing time buys and costs: quality per second up, quality per dollar down.
    for name in ("optimal_cascade", "cascade_routing", "per_step_threshold"):
        latency_auc = [d["latency"]["strategies"][name]["auc"] for d in (today, priced)]
        usd_auc = [d["strategies"][name]["auc"] for d in (today, priced)]
        assert latency_auc[1] > latency_auc[0] + 10, name
        assert usd_auc[1] < usd_auc[0] - 10, name


def test_table_and_plot_carry_the_latency_curve(tmp_path: Path) -> None:
    logs = write_split_logs(tmp_path / "logs")
    plot = tmp_path / "curves.png"
    args = ["bench", str(logs), "--bootstrap", "20", "--latency-weight", "0.001"]
    result = CliRunner().invoke(app, [*args, "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    assert result.stdout.count("quality vs latency") == 3
    assert "latency weight 0.001 USD/s" in result.stdout
    from PIL import Image

    with Image.open(plot) as image:  # 3 datasets x (cost, latency) panels: 2 columns, 3 rows
        width, height = image.size
    assert width / height == pytest.approx((2 * 5.2) / (3 * 4.0), rel=0.02)


def _one_line_refusal(args: list[str]) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def test_logs_without_latency_refuse_the_weight_in_one_line(tmp_path: Path) -> None:
    logs = write_split_logs(tmp_path, latency=False)
    line = _one_line_refusal(["bench", str(logs), "--latency-weight", "0.001"])
    assert "--latency-weight" in line and "logs no latency_ms" in line and "alpha" in line


def test_one_missing_latency_cell_is_named(tmp_path: Path) -> None:
    logs = write_split_logs(tmp_path, drop=((7, "mid"),))
    line = _one_line_refusal(["bench", str(logs), "--latency-weight", "0"])
    assert "'alpha-7'" in line and "'mid'" in line and "latency_ms" in line


@pytest.mark.parametrize("weight", ["-0.1", "abc", "nan", "inf", ",", "1e999"])
def test_bad_weights_are_refused_in_one_line(tmp_path: Path, weight: str) -> None:
    logs = write_split_logs(tmp_path)
    line = _one_line_refusal(["bench", str(logs), "--latency-weight", weight])
    assert "--latency-weight" in line


def test_the_learned_bench_refuses_a_latency_weight(tmp_path: Path) -> None:
    logs = write_split_logs(tmp_path)
    args = ["bench", str(logs), "--learned", "sw", "--latency-weight", "0"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "--latency-weight" in result.output


# -- latency_ms in the loader ---------------------------------------------------------------

LATENCY_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.text(max_size=8),
    st.booleans(),
    st.none(),
    st.lists(st.floats(allow_nan=False), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _expected_seconds(value: Any) -> float | None:
    """What the loader must keep for ``value``: seconds, NaN for null, None when invalid."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    if not math.isfinite(number) or number < 0:
        return None
    return number / 1000.0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=LATENCY_VALUES, line=st.integers(min_value=0, max_value=2))
def test_latency_ms_is_kept_or_refused_with_file_line_and_field(
    tmp_path_factory: pytest.TempPathFactory, value: Any, line: int
) -> None:
    path = tmp_path_factory.mktemp("latency") / "logs.jsonl"
    records = []
    for i in range(3):
        models = {
            "a": {"correct": True, "cost_usd": 1e-5, "latency_ms": 100.0},
            "b": {"correct": False, "cost_usd": 2e-5, "latency_ms": 300.0},
        }
        if i == line:
            models["b"]["latency_ms"] = value
        records.append(json.dumps({"id": f"q{i}", "models": models}))
    path.write_text("\n".join(records) + "\n")
    expected = _expected_seconds(value)
    if expected is None:
        with pytest.raises(ReplayFormatError) as caught:
            load_replay(path)
        message = str(caught.value)
        assert isinstance(caught.value, InvalidInputError)
        assert "\n" not in message
        assert message.startswith(f"{path}:{line + 1}: field 'models.b.latency_ms': ")
        return
    data = load_replay(path)
    assert data.latency_s is not None
    seconds = data.latency_s[line, data.model_index("b")]
    if math.isnan(expected):
        assert math.isnan(seconds)
    else:
        assert seconds == expected
    assert data.latency_s[line, data.model_index("a")] == 0.1


def _dataset(latency: np.ndarray, name: str = "d") -> ReplayDataset:
    n = latency.shape[0]
    return ReplayDataset(
        name=name,
        model_names=["a", "b"],
        query_ids=[f"{name}{i}" for i in range(n)],
        prompts=[""] * n,
        tasks=["t"] * n,
        quality=np.zeros((n, 2)),
        cost=np.tile([1.0, 2.0], (n, 1)),
        latency_s=latency,
    )


@pytest.mark.parametrize("bad", [-0.5, math.inf, -math.inf])
def test_dataset_refuses_a_bad_latency_naming_query_and_model(bad: float) -> None:
    latency = np.array([[0.1, 0.2], [0.3, bad]])
    with pytest.raises(InvalidInputError, match=r"latency_s .* query 'd1', model 'b'"):
        _dataset(latency)


def test_latency_follows_slicing_and_pooling() -> None:
    first = _dataset(np.array([[0.1, 0.2], [0.3, 0.4]]), "x")
    second = _dataset(np.array([[0.5, 0.6]]), "y")
    assert first.subset([1]).latency_s.tolist() == [[0.3, 0.4]]
    assert first.select_models(["b", "a"]).latency_s.tolist() == [[0.2, 0.1], [0.4, 0.3]]
    pooled = concat_datasets([first, second])
    assert pooled.latency_s.tolist() == [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]
    without = ReplayDataset(
        name="z",
        model_names=["a", "b"],
        query_ids=["z0"],
        prompts=[""],
        tasks=["t"],
        quality=np.zeros((1, 2)),
        cost=np.ones((1, 2)),
    )
    assert concat_datasets([first, without]).latency_s is None  # partly missing: dropped
