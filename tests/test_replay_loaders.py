"""Replay dataset and loaders: hand-made files in tmp_path, plus checks on ../shared/data."""

from __future__ import annotations

import csv
import gzip
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cascade_core.errors import InvalidInputError
from cascade_core.replay import (
    ReplayDataset,
    ReplayDataWarning,
    ReplayFormatError,
    concat_datasets,
    load_cascade_log,
    load_cascade_logs,
    load_replay,
    load_replay_jsonl,
    load_routerbench_csv,
    load_routerbench_pickle,
)
from tests.conftest import DATA, needs_data


# ---------------------------------------------------------------------------- helpers
def _write_jsonl(path: Path, records: list[Any]) -> Path:
    text = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _record(i: int, **overrides: Any) -> dict[str, Any]:
    """Two models written expensive first, to check the loader orders cheapest first."""
    rec: dict[str, Any] = {
        "id": f"q{i}",
        "prompt": f"prompt {i}",
        "task": "math" if i % 2 else "trivia",
        "models": {
            "big": {
                "correct": True,
                "cost_usd": 0.01,
                "confidence_logprob": -0.1 * i,
                "answer": "A",
                "tokens_in": 10 + i,
                "tokens_out": 2,
                "latency_ms": 5.0,
            },
            "small": {
                "quality": 0.25 * i,
                "cost_usd": 0.001,
                "logprobs": [-0.5, -0.25],
                "answer": "B",
            },
        },
    }
    rec.update(overrides)
    return rec


def _records(n: int = 4) -> list[dict[str, Any]]:
    return [_record(i) for i in range(n)]


def _dataset(n: int = 6, tasks: list[str] | None = None) -> ReplayDataset:
    rng = np.random.default_rng(0)
    return ReplayDataset(
        name="d",
        model_names=["a", "b"],
        query_ids=[f"q{i}" for i in range(n)],
        prompts=[""] * n,
        tasks=tasks or ["x", "y"] * (n // 2),
        quality=rng.integers(0, 2, (n, 2)).astype(float),
        cost=np.tile([1.0, 2.0], (n, 1)),
        signals={"s": rng.normal(size=(n, 2))},
    )


# ---------------------------------------------------------------------------- dataset
class TestDataset:
    def test_validation_errors_are_clear(self) -> None:
        good = _dataset()
        kwargs = {f: getattr(good, f) for f in good.__dataclass_fields__}
        with pytest.raises(ValueError, match="cost has shape"):
            ReplayDataset(**{**kwargs, "cost": np.ones((6, 3))})
        with pytest.raises(ValueError, match="quality is not finite"):
            q = good.quality.copy()
            q[1, 0] = np.nan
            ReplayDataset(**{**kwargs, "quality": q})
        with pytest.raises(ValueError, match="negative cost"):
            ReplayDataset(**{**kwargs, "cost": -good.cost})
        with pytest.raises(ValueError, match=r"outside \[0, 1\].*'q2'"):
            q = good.quality.copy()
            q[2, 1] = 1.5
            ReplayDataset(**{**kwargs, "quality": q})
        with pytest.raises(ValueError, match="signals\\['s'\\] has shape"):
            ReplayDataset(**{**kwargs, "signals": {"s": np.zeros((5, 2))}})
        with pytest.raises(ValueError, match="tasks has 2 entries"):
            ReplayDataset(**{**kwargs, "tasks": ["x", "y"]})

    def test_subset_select_and_by_task(self) -> None:
        ds = _dataset()
        sub = ds.subset([4, 0, 0])
        assert sub.query_ids == ["q4", "q0", "q0"]
        np.testing.assert_array_equal(sub.signals["s"][1], ds.signals["s"][0])
        mask = np.array([True, False] * 3)
        assert ds.subset(mask).query_ids == ["q0", "q2", "q4"]
        only_b = ds.select_models(["b"])
        assert only_b.model_names == ["b"]
        np.testing.assert_array_equal(only_b.cost, ds.cost[:, [1]])
        with pytest.raises(KeyError, match="unknown model 'zz'") as unknown:
            ds.select_models(["zz"])
        assert isinstance(unknown.value, InvalidInputError)
        assert str(unknown.value) == "d: unknown model 'zz'; known: a, b"  # not KeyError's repr
        parts = ds.by_task()
        assert list(parts) == ["x", "y"]
        assert parts["y"].query_ids == ["q1", "q3", "q5"]
        assert parts["y"].name == "y"

    def test_split_is_stratified_disjoint_and_seeded(self) -> None:
        ds = _dataset(n=20)
        a, b = ds.split(0.5, seed=3)
        assert sorted(a.query_ids + b.query_ids) == sorted(ds.query_ids)
        assert a.tasks.count("x") == 5 and a.tasks.count("y") == 5
        assert ds.split(0.5, seed=3)[0].query_ids == a.query_ids
        first, _ = ds.split(0.3, seed=None, stratify=False)
        assert first.query_ids == ds.query_ids[:6]
        with pytest.raises(ValueError):
            ds.split(1.0)

    def test_concat_aligns_models_and_keeps_common_signals(self) -> None:
        a = _dataset()
        b = _dataset().select_models(["b", "a"])
        b = ReplayDataset(**{**{f: getattr(b, f) for f in b.__dataclass_fields__}, "signals": {}})
        pooled = concat_datasets([a, b])
        assert pooled.name == "pooled" and len(pooled) == 12
        assert pooled.model_names == ["a", "b"]
        np.testing.assert_array_equal(pooled.quality[6:], a.quality)
        assert pooled.signals == {}
        with pytest.raises(ValueError, match="cannot pool"):
            concat_datasets([a, a.select_models(["a"])])


# ---------------------------------------------------------------------------- generic JSONL
class TestGenericJsonl:
    def test_round_trip(self, tmp_path: Path) -> None:
        ds = load_replay_jsonl(_write_jsonl(tmp_path / "prod.jsonl", _records()))
        assert ds.name == "prod"
        assert ds.model_names == ["small", "big"]  # cheapest first
        assert ds.query_ids == ["q0", "q1", "q2", "q3"]
        assert ds.tasks == ["trivia", "math", "trivia", "math"]
        assert ds.prompts[2] == "prompt 2"
        np.testing.assert_allclose(ds.quality[:, 0], [0, 0.25, 0.5, 0.75])
        np.testing.assert_allclose(ds.quality[:, 1], 1.0)
        np.testing.assert_allclose(ds.cost, np.tile([0.001, 0.01], (4, 1)))
        conf = ds.signals["confidence_logprob"]
        np.testing.assert_allclose(conf[:, 0], -0.75)  # sum of the logged token logprobs
        np.testing.assert_allclose(conf[:, 1], [0, -0.1, -0.2, -0.3])
        assert ds.answers is not None and ds.answers[1, 0] == "B" and ds.answers[1, 1] == "A"
        assert ds.logprobs is not None and ds.logprobs[0, 1] is None
        np.testing.assert_allclose(ds.logprobs[0, 0], [-0.5, -0.25])
        assert ds.tokens_in is not None and np.isnan(ds.tokens_in[0, 0])
        assert ds.tokens_in[3, 1] == 13

    def test_gzip_and_dispatch(self, tmp_path: Path) -> None:
        path = _write_jsonl(tmp_path / "prod.jsonl.gz", _records())
        ds = load_replay(path)
        assert ds.name == "prod" and len(ds) == 4
        chosen = load_replay(path, models=["big"])
        assert chosen.model_names == ["big"]

    def test_optional_fields_absent(self, tmp_path: Path) -> None:
        rec = {"id": 1, "models": {"m": {"correct": False, "cost_usd": 0}}}
        ds = load_replay_jsonl(_write_jsonl(tmp_path / "min.jsonl", [rec]))
        assert ds.query_ids == ["1"] and ds.prompts == [""] and ds.tasks == [""]
        assert ds.signals == {} and ds.answers is None and ds.tokens_in is None

    @pytest.mark.parametrize(
        ("mutate", "field", "message"),
        [
            (lambda r: r["models"]["big"].pop("cost_usd"), "models.big.cost_usd", "missing"),
            (lambda r: r["models"]["big"].update(cost_usd=-1), "models.big.cost_usd", "outside"),
            (lambda r: r["models"]["big"].update(cost_usd="1"), "models.big.cost_usd", "number"),
            (lambda r: r["models"]["small"].update(quality=1.2), "models.small.quality", "outside"),
            (lambda r: r["models"]["big"].pop("correct"), "models.big.quality", "missing"),
            (lambda r: r["models"]["big"].update(correct="yes"), "models.big.correct", "true"),
            (
                lambda r: r["models"]["big"].update(quality=0.0),
                "models.big.quality",
                "disagrees",
            ),
            (lambda r: r["models"].pop("small"), "models.small", "missing"),
            (lambda r: r.pop("id"), "id", "missing"),
            (lambda r: r.update(id="q0"), "id", "duplicate id 'q0' (first on line 1)"),
            (lambda r: r.update(models=[]), "models", "non-empty object"),
            (lambda r: r.update(prompt=3), "prompt", "string"),
            (
                lambda r: r["models"]["small"].update(logprobs=[-1, "x"]),
                "models.small.logprobs[1]",
                "log-probability",
            ),
            (
                lambda r: r["models"]["small"].update(logprobs=[-1, float("nan")]),
                "models.small.logprobs[1]",
                "NaN",
            ),
            (
                lambda r: r["models"]["small"].update(logprobs=[float("inf")]),
                "models.small.logprobs[0]",
                "Infinity",
            ),
            (
                lambda r: r["models"]["small"].update(logprobs=[0.5]),
                "models.small.logprobs[0]",
                "0.5",
            ),
            (
                lambda r: r["models"]["small"].update(logprobs="-inf"),
                "models.small.logprobs",
                "list of numbers",
            ),
            (
                lambda r: r["models"]["big"].update(confidence_logprob=float("nan")),
                "models.big.confidence_logprob",
                "NaN",
            ),
            (
                lambda r: r["models"]["big"].update(confidence_logprob=2.0),
                "models.big.confidence_logprob",
                "<= 0",
            ),
            (
                lambda r: r["models"]["big"].update(confidence_logprob="-0.5"),
                "models.big.confidence_logprob",
                'got "-0.5"',
            ),
            (
                lambda r: r["models"]["big"].update(cost_usd=float("inf")),
                "models.big.cost_usd",
                "finite",
            ),
            (
                lambda r: r["models"]["big"].update(cost_usd=10**400),
                "models.big.cost_usd",
                "finite",
            ),
            (
                lambda r: r["models"].update(extra={"correct": True, "cost_usd": 0}),
                "models.extra",
                "not on the first line",
            ),
            (lambda r: r["models"]["big"].update(answer=5), "models.big.answer", "string"),
            (
                lambda r: r["models"]["small"].update(top_logprobs=[[-0.1]]),
                "models.small.top_logprobs",
                "1 entries for 2 token logprobs",
            ),
            (
                lambda r: r["models"]["big"].update(top_logprobs=[[-0.1]]),
                "models.big.top_logprobs",
                "without 'logprobs'",
            ),
            (
                lambda r: r["models"]["small"].update(top_logprobs=[[-0.1], [-0.2, 0.5]]),
                "models.small.top_logprobs[1][1]",
                "0.5",
            ),
            (
                lambda r: r["models"]["small"].update(top_logprobs=[[-0.1], -0.2]),
                "models.small.top_logprobs[1]",
                "list of numbers",
            ),
            (
                lambda r: r["models"]["small"].update(top_logprobs={"a": [-0.1]}),
                "models.small.top_logprobs",
                "one list of numbers per token",
            ),
        ],
    )
    def test_errors_name_file_line_and_field(
        self, tmp_path: Path, mutate: Any, field: str, message: str
    ) -> None:
        records = _records(3)
        mutate(records[1])
        path = _write_jsonl(tmp_path / "bad.jsonl", records)
        with pytest.raises(ReplayFormatError) as info:
            load_replay_jsonl(path)
        err = info.value
        assert (err.path, err.line, err.field) == (str(path), 2, field)
        assert str(err).startswith(f"{path}:2: field {field!r}: ")
        assert message in str(err)
        assert isinstance(err, InvalidInputError) and isinstance(err, ValueError)

    def test_minus_infinity_is_probability_zero(self, tmp_path: Path) -> None:
        """-inf (JSON -Infinity or the string "-inf") is accepted in both logprob fields."""
        records = _records(3)
        records[0]["models"]["big"]["confidence_logprob"] = float("-inf")  # -> -Infinity
        records[1]["models"]["big"]["confidence_logprob"] = "-inf"
        records[2]["models"]["small"]["logprobs"] = [-0.5, "-Infinity"]
        path = _write_jsonl(tmp_path / "inf.jsonl", records)
        assert "-Infinity" in path.read_text()
        ds = load_replay_jsonl(path)
        conf = ds.signals["confidence_logprob"]
        assert conf[0, 1] == -np.inf and conf[1, 1] == -np.inf
        assert conf[2, 0] == -np.inf  # the sum of logprobs with a -inf token
        assert ds.logprobs is not None and ds.logprobs[2, 0][1] == -np.inf
        assert np.isfinite(conf[2, 1]) and conf[0, 0] == -0.75

    def test_top_logprobs_are_carried_aligned_with_logprobs(self, tmp_path: Path) -> None:
        records = _records(3)
        records[0]["models"]["small"]["top_logprobs"] = [[-0.5, -1.5], None]
        records[1]["models"]["small"]["top_logprobs"] = [[], ["-inf", -0.25, -9.0]]
        ds = load_replay_jsonl(_write_jsonl(tmp_path / "top.jsonl", records))
        assert ds.top_logprobs is not None
        assert ds.top_logprobs[0, 0] == ((-0.5, -1.5), ())
        assert ds.top_logprobs[1, 0] == ((), (-np.inf, -0.25, -9.0))
        assert ds.top_logprobs[2, 0] is None and ds.top_logprobs[0, 1] is None
        # Slicing and pooling keep the cells with their logprobs.
        picked = ds.subset([1]).select_models(["small"])
        assert picked.top_logprobs is not None
        assert picked.top_logprobs[0, 0] == ds.top_logprobs[1, 0]
        pooled = concat_datasets([ds, ds])
        assert (
            pooled.top_logprobs is not None and pooled.top_logprobs[3, 0] == ds.top_logprobs[0, 0]
        )
        without = load_replay_jsonl(_write_jsonl(tmp_path / "none.jsonl", _records(3)))
        assert without.top_logprobs is None
        assert concat_datasets([ds, without]).top_logprobs is None  # never partly missing

    def test_misaligned_top_logprobs_are_refused_by_the_dataset(self) -> None:
        logprobs = np.empty((1, 1), dtype=object)
        logprobs[0, 0] = np.array([-0.1, -0.2])
        tops = np.empty((1, 1), dtype=object)
        tops[0, 0] = ((-0.1,),)
        with pytest.raises(InvalidInputError, match="1 entries for 2 token logprobs"):
            ReplayDataset(
                name="d",
                model_names=["m"],
                query_ids=["q"],
                prompts=[""],
                tasks=[""],
                quality=[[1.0]],
                cost=[[0.0]],
                logprobs=logprobs,
                top_logprobs=tops,
            )

    def test_invalid_json_and_empty_file(self, tmp_path: Path) -> None:
        path = _write_jsonl(tmp_path / "bad.jsonl", [_record(0), "{not json", _record(2)])
        with pytest.raises(ReplayFormatError, match=r"bad.jsonl:2: not valid JSON"):
            load_replay_jsonl(path)
        deep = _write_jsonl(tmp_path / "deep.jsonl", ["[" * 100_000 + "]" * 100_000])
        with pytest.raises(ReplayFormatError, match=r"deep.jsonl:1: not usable JSON"):
            load_replay_jsonl(deep)
        empty = tmp_path / "empty.jsonl"
        empty.write_text("\n")
        with pytest.raises(ReplayFormatError, match="no queries"):
            load_replay_jsonl(empty)

    def test_unsupported_extension(self, tmp_path: Path) -> None:
        with pytest.raises(ReplayFormatError, match=r"data\.parquet: unsupported replay file"):
            load_replay(tmp_path / "data.parquet")

    def test_non_utf8_line_names_its_line(self, tmp_path: Path) -> None:
        path = tmp_path / "latin1.jsonl"
        good = json.dumps(_record(0)).encode()
        bad = json.dumps(_record(1)).encode().replace(b"prompt 1", b"caf\xe9")  # Latin-1 é
        path.write_bytes(good + b"\n" + bad + b"\n")
        with pytest.raises(ReplayFormatError, match=r"latin1.jsonl:2: not UTF-8 text .*UTF-8"):
            load_replay_jsonl(path)

    def test_byte_order_mark_is_ignored(self, tmp_path: Path) -> None:
        path = tmp_path / "bom.jsonl"
        path.write_bytes(b"\xef\xbb\xbf" + json.dumps(_record(0)).encode() + b"\n")
        assert load_replay_jsonl(path).query_ids == ["q0"]

    def test_truncated_and_corrupt_gzip(self, tmp_path: Path) -> None:
        records = [_record(i % 4, id=f"q{i}", prompt=f"p{i}") for i in range(2000)]
        full = _write_jsonl(tmp_path / "full.jsonl.gz", records)
        assert len(load_replay(full)) == 2000
        data = full.read_bytes()
        cut = tmp_path / "cut.jsonl.gz"
        cut.write_bytes(data[: len(data) // 2])
        with pytest.raises(ReplayFormatError, match=r"cut.jsonl.gz:\d+: .*truncated or corrupt"):
            load_replay(cut)
        garbage = tmp_path / "garbage.jsonl.gz"
        garbage.write_bytes(b"this is not gzip")
        with pytest.raises(ReplayFormatError, match=r"garbage.jsonl.gz:1: .*truncated or corrupt"):
            load_replay(garbage)

    def test_missing_file_and_directory(self, tmp_path: Path) -> None:
        with pytest.raises(ReplayFormatError, match=r"nope.jsonl: cannot read \(No such file"):
            load_replay(tmp_path / "nope.jsonl")
        folder = tmp_path / "dir.jsonl"
        folder.mkdir()
        with pytest.raises(ReplayFormatError, match=r"dir.jsonl: cannot read \(Is a directory"):
            load_replay(folder)


# ---------------------------------------------------------------------------- cascade logs
class TestCascadeLogs:
    def test_load_split_per_task_and_pooled(self, tmp_path: Path) -> None:
        for task in ("mmlu", "gsm8k"):
            recs = [_record(i, task=task, id=f"{task}-{i}") for i in range(3)]
            _write_jsonl(tmp_path / f"{task}_llama_test.jsonl.gz", recs)
        _write_jsonl(tmp_path / "mmlu_llama_train.jsonl.gz", [_record(0)])
        per_task, pooled = load_cascade_logs(tmp_path, "test")
        assert list(per_task) == ["gsm8k", "mmlu"]
        assert per_task["mmlu"].name == "mmlu" and len(per_task["mmlu"]) == 3
        assert pooled.name == "pooled" and len(pooled) == 6
        assert "confidence_logprob" in pooled.signals
        with pytest.raises(FileNotFoundError) as missing:
            load_cascade_logs(tmp_path, "validation")
        assert missing.value.filename == str(tmp_path)

    def test_confidence_is_required(self, tmp_path: Path) -> None:
        recs = _records(2)
        del recs[1]["models"]["small"]["logprobs"]
        path = _write_jsonl(tmp_path / "x_llama_test.jsonl", recs)
        expected = r"x_llama_test\.jsonl:2: field 'models\.small\.confidence_logprob'"
        with pytest.raises(ReplayFormatError, match=expected):
            load_cascade_log(path)
        assert np.isnan(load_replay(path).signals["confidence_logprob"][1, 0])


# ---------------------------------------------------------------------------- RouterBench
RB_MODELS = ["gpt-4", "mistral-7b", "llama-70b"]


def _rb_rows() -> list[dict[str, Any]]:
    rows = []
    for i in range(4):
        row: dict[str, Any] = {
            "": i,
            "sample_id": f"arc.{i}",
            "prompt": repr([f"Question {i}?\nA) x\nB) y"]),
            "eval_name": "arc" if i < 3 else "mbpp",
        }
        for j, m in enumerate(RB_MODELS):
            row[m] = float((i + j) % 2)
            row[f"{m}|model_response"] = repr(["A"])
            row[f"{m}|total_cost"] = [0.01, 0.0001, 0.001][j] * (1 + i)
        row["oracle_model_to_route_to"] = "mistral-7b"
        rows.append(row)
    rows[2]["gpt-4"] = ""  # an empty score cell
    rows[3]["llama-70b|total_cost"] = ""  # an empty cost cell
    return rows


def _write_rb_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


class TestRouterBench:
    def test_csv_drops_rows_with_empty_cells_and_says_so(self, tmp_path: Path) -> None:
        path = _write_rb_csv(tmp_path / "rb.csv.gz", _rb_rows())
        with pytest.warns(ReplayDataWarning, match="dropped 2 of 4 rows"):
            ds = load_replay(path)
        assert ds.query_ids == ["arc.0", "arc.1"]
        assert ds.dropped_ids == ("arc.2", "arc.3")
        assert ds.model_names == ["mistral-7b", "llama-70b", "gpt-4"]  # cheapest first
        np.testing.assert_allclose(ds.quality[1], [0.0, 1.0, 1.0])
        np.testing.assert_allclose(ds.cost[0], [0.0001, 0.001, 0.01])
        assert ds.prompts[0] == "Question 0?\nA) x\nB) y"  # list literal unwrapped
        assert ds.answers is not None and ds.answers[0, 0] == "A"
        assert ds.tasks == ["arc", "arc"]

    def test_only_selected_models_decide_what_is_dropped(self, tmp_path: Path) -> None:
        path = _write_rb_csv(tmp_path / "rb.csv", _rb_rows())
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ds = load_routerbench_csv(path, models=["mistral-7b"])
        assert len(ds) == 4 and ds.dropped_ids == ()
        with pytest.warns(ReplayDataWarning, match="dropped 1 of 4"):
            assert len(load_routerbench_csv(path, models=["mistral-7b", "gpt-4"])) == 3

    def test_missing_raise_names_line_and_column(self, tmp_path: Path) -> None:
        # multi-line prompts: the reported line is where the record starts in the file
        path = _write_rb_csv(tmp_path / "rb.csv", _rb_rows())
        with pytest.raises(ReplayFormatError) as info:
            load_routerbench_csv(path, missing="raise")
        assert info.value.field == "gpt-4" and "empty cell" in str(info.value)
        lines = path.read_text().splitlines()
        assert lines[info.value.line - 1].startswith("2,arc.2,")

    def test_bad_cells_and_columns(self, tmp_path: Path) -> None:
        rows = _rb_rows()
        rows[1]["mistral-7b"] = "n/a"
        with pytest.raises(ReplayFormatError, match="field 'mistral-7b': expected a number"):
            load_routerbench_csv(_write_rb_csv(tmp_path / "a.csv", rows))
        rows = _rb_rows()
        rows[0]["llama-70b"] = 3.0
        with pytest.raises(ReplayFormatError, match="outside"):
            load_routerbench_csv(_write_rb_csv(tmp_path / "b.csv", rows))
        rows = [{k: v for k, v in r.items() if k != "gpt-4"} for r in _rb_rows()]
        with pytest.raises(ReplayFormatError, match="field 'gpt-4': column missing"):
            load_routerbench_csv(_write_rb_csv(tmp_path / "c.csv", rows))
        with pytest.raises(ReplayFormatError, match="field 'x': no columns for model 'x'"):
            load_routerbench_csv(_write_rb_csv(tmp_path / "d.csv", _rb_rows()), models=["x"])
        rows = _rb_rows()
        rows[0]["gpt-4|total_cost"] = "inf"
        with pytest.raises(ReplayFormatError, match=r"e.csv:2: field 'gpt-4\|total_cost'.*finite"):
            load_routerbench_csv(_write_rb_csv(tmp_path / "e.csv", rows))
        rows = _rb_rows()
        rows[1]["prompt"] = "x" * 200_000  # beyond the csv module's field limit
        with pytest.raises(ReplayFormatError, match=r"f.csv:3: not valid CSV \(field larger"):
            load_routerbench_csv(_write_rb_csv(tmp_path / "f.csv", rows))
        twice = tmp_path / "h.csv"
        twice.write_text("sample_id,m,m|total_cost,m\n1,1,0.1,0\n")
        with pytest.raises(ReplayFormatError, match="field 'm': column appears twice"):
            load_routerbench_csv(twice)

    def test_pickle_matches_csv(self, tmp_path: Path) -> None:
        pd = pytest.importorskip("pandas", reason="RouterBench pickles need pandas")
        rows = _rb_rows()
        frame = pd.DataFrame(rows).drop(columns=[""])
        frame.loc[2, "gpt-4"] = np.nan  # a pickle holds NaN where the CSV holds ""
        frame["gpt-4"] = frame["gpt-4"].astype(float)
        frame.loc[3, "llama-70b|total_cost"] = None
        frame["prompt"] = [[f"Question {i}?\nA) x\nB) y"] for i in range(4)]  # real lists
        path = tmp_path / "routerbench_0shot.pkl.gz"
        frame.to_pickle(path)
        with pytest.warns(ReplayDataWarning, match="dropped 2 of 4"):
            from_pickle = load_replay(path)
        with pytest.warns(ReplayDataWarning):
            from_csv = load_routerbench_csv(_write_rb_csv(tmp_path / "rb.csv", rows))
        assert from_pickle.query_ids == from_csv.query_ids
        assert from_pickle.model_names == from_csv.model_names
        np.testing.assert_allclose(from_pickle.quality, from_csv.quality)
        np.testing.assert_allclose(from_pickle.cost, from_csv.cost)
        assert from_pickle.prompts == from_csv.prompts
        with pytest.raises(ReplayFormatError, match=r"pkl\.gz: row 2: field 'gpt-4': empty cell"):
            load_routerbench_pickle(path, missing="raise")


# ---------------------------------------------------------------------------- real data
@needs_data
class TestSharedData:
    def test_cascade_logs_sizes_and_accuracies(self) -> None:
        assert DATA is not None
        per_task, pooled = load_cascade_logs(DATA / "cascade_logs", "test")
        sizes = {task: len(ds) for task, ds in per_task.items()}
        assert sizes == {"medmcqa": 1000, "mmlu": 1531, "triviaqa": 1000, "truthfulqa": 517}
        assert len(pooled) == sum(sizes.values())
        mmlu = per_task["mmlu"]
        chain = ["llama3.2-1b", "llama3.2-3b", "llama3.1-8b", "llama3.1-70b", "llama3.1-405b"]
        assert mmlu.model_names == chain
        acc = mmlu.select_models(chain).mean_quality()
        np.testing.assert_allclose(acc, [0.425, 0.572, 0.634, 0.815, 0.852], atol=5e-4)
        assert set(pooled.signals) == {"confidence_logprob"}
        assert np.all(np.isfinite(pooled.signals["confidence_logprob"]))
        assert np.all(np.diff(mmlu.mean_cost()) >= 0)

    def test_cascade_logs_train_split(self) -> None:
        assert DATA is not None
        per_task, _ = load_cascade_logs(DATA / "cascade_logs", "train")
        assert set(per_task) == {"gsm8k", "medmcqa", "mmlu", "triviaqa", "truthfulqa"}
        assert all(250 <= len(ds) <= 300 for ds in per_task.values())

    def test_routerbench_empty_cells_are_counted_and_dropped(self) -> None:
        assert DATA is not None
        folder = DATA / "routerbench_subset"
        expected = {  # (rows in file, rows dropped with all 11 models)
            "arc_challenge_train": (1039, 20),
            "arc_challenge_test": (445, 8),
            "mbpp_train": (299, 0),
            "mbpp_test": (128, 0),
            "winograde_train": (887, 0),
            "winograde_test": (380, 0),
        }
        empty_cells = 0
        for stem, (rows, dropped) in expected.items():
            path = folder / f"{stem}.csv.gz"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ReplayDataWarning)
                ds = load_replay(path)
            assert ds.n_models == 11
            assert (len(ds), len(ds.dropped_ids)) == (rows - dropped, dropped)
            with gzip.open(path, "rt", newline="", encoding="utf-8") as fh:
                for rec in csv.DictReader(fh):
                    empty_cells += sum(
                        rec[m] == "" or rec[m + "|total_cost"] == "" for m in ds.model_names
                    )
            assert ds.cost.min() > 0
        assert empty_cells == 154
