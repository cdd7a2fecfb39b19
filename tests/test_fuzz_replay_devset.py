"""Property-based fuzzing of the replay and dev-set parsers (issue 12, "Tests").

Whatever the file holds (valid rows, rows with one field mutated to any JSON value, NaN and
infinities, wrong types, random bytes, truncated or corrupt gzip), a loader returns a valid
object or raises exactly one error of the `InvalidInputError` family whose message names the
file (and the line or field when there is one); never another exception. Valid replays are
also pushed through the feature builder: ``-inf`` logprobs (probability 0) must not turn
into NaN or infinite features.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cascade_core.calibrate.devset import DevRow, grade, load_dev_set
from cascade_core.errors import InvalidInputError
from cascade_core.fitting.features import spec_for_dataset, table_from_dataset
from cascade_core.replay import ReplayDataset, ReplayFormatError, load_replay
from cascade_core.replay.loaders import load_routerbench_csv
from tests import fuzz_graders

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MODELS = ("small", "big")


@contextmanager
def scratch() -> Iterator[Path]:
    """A fresh directory per example (function-scoped tmp_path cannot be used in @given)."""
    with tempfile.TemporaryDirectory(prefix="h3b-fuzz-") as name:
        yield Path(name)


# -- values -------------------------------------------------------------------------------

LOGPROBS = st.one_of(
    st.floats(max_value=0.0, allow_nan=False),
    st.just(-math.inf),
    st.sampled_from(["-inf", "-Infinity", "-INF"]),
)
ANY_JSON = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.just(10**400),  # beyond a float
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=12),
        st.sampled_from(["-inf", "nan", "inf", "1", "", "true"]),
    ),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


# Values aimed at the numeric fields: the edges where float conversion and range checks break.
EDGE_NUMBERS = st.sampled_from(
    [
        *(10**400, -(10**400), math.nan, math.inf, -math.inf, "-inf", "nan", "1", True, None),
        *(-1, 2, 1e-320, -0.0, 5e-5, [], {}, [-math.inf], [math.nan], [10**400]),
    ]
)
NUMERIC_FIELDS = ("quality", "correct", "cost_usd", "logprobs", "confidence_logprob", "tokens_in")


@st.composite
def model_entry(draw: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"cost_usd": draw(st.floats(0, 1e-2))}
    if draw(st.booleans()):
        entry["correct"] = draw(st.booleans())
    else:
        entry["quality"] = draw(st.floats(0, 1))
    if draw(st.booleans()):
        entry["logprobs"] = draw(st.lists(LOGPROBS, max_size=5))
    if draw(st.booleans()):
        entry["confidence_logprob"] = draw(LOGPROBS)
    if draw(st.booleans()):
        entry["answer"] = draw(st.text(max_size=8))
    if draw(st.booleans()):
        entry["tokens_in"] = draw(st.integers(0, 10_000))
    return entry


@st.composite
def replay_records(draw: Any) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 6))
    return [
        {
            "id": draw(st.sampled_from([f"q{i}", i])),
            "prompt": draw(st.text(max_size=10)),
            "task": draw(st.sampled_from(["a", "b", ""])),
            "models": {m: draw(model_entry()) for m in MODELS},
        }
        for i in range(n)
    ]


def _paths(record: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Every key path of a record (to mutate or delete one)."""
    out: list[tuple[Any, ...]] = []

    def walk(node: Any, prefix: tuple[Any, ...]) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                out.append((*prefix, key))
                walk(value, (*prefix, key))

    walk(record, ())
    return out


@st.composite
def mutated_records(draw: Any) -> list[Any]:
    records: list[Any] = draw(replay_records())
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(records) - 1))
        entries = records[i].get("models") if isinstance(records[i], dict) else None
        if isinstance(entries, dict) and draw(st.booleans()):
            entry = entries.get(draw(st.sampled_from(MODELS)))
            if isinstance(entry, dict):
                entry[draw(st.sampled_from(NUMERIC_FIELDS))] = draw(EDGE_NUMBERS)
            continue
        if not isinstance(records[i], dict) or not _paths(records[i]) or draw(st.booleans()):
            records[i] = draw(ANY_JSON)  # the whole line becomes some other JSON value
            continue
        path = draw(st.sampled_from(_paths(records[i])))
        parent = records[i]
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(ANY_JSON)
    return records


def encode(records: list[Any], damage: bytes | None = None) -> bytes:
    """JSON Lines as Python writes it (NaN/Infinity tokens included); ``damage`` replaces a
    slice of the bytes (random bytes inside a line)."""
    data = "".join(json.dumps(r) + "\n" for r in records).encode()
    if damage:
        cut = len(data) // 2
        data = data[:cut] + damage + data[cut + len(damage) :]
    return data


# -- checks -------------------------------------------------------------------------------


def check_dataset(ds: ReplayDataset) -> None:
    """What every consumer may rely on, plus finite features from the feature builder."""
    assert ds.n_queries >= 1 and ds.n_models >= 1
    assert len(set(ds.query_ids)) == ds.n_queries
    assert np.all((ds.quality >= 0) & (ds.quality <= 1))
    assert np.all(np.isfinite(ds.cost)) and np.all(ds.cost >= 0)
    for values in ds.signals.values():
        assert not np.any(values == np.inf)  # -inf (probability 0) and NaN (not logged) only
    if ds.logprobs is not None:
        for cell in ds.logprobs.ravel():
            assert cell is None or not np.any(np.isnan(cell) | (cell == np.inf))
    table = table_from_dataset(spec_for_dataset(ds), ds)
    assert not np.any(np.isinf(table.posthoc)), "a -inf logprob became an infinite feature"
    assert not np.any(np.isinf(table.ante))


def check_error(error: BaseException, path: Path) -> None:
    """One input error that names the file, and its line or field when it has them."""
    assert isinstance(error, InvalidInputError), f"{type(error).__name__}: {error}"
    message = str(error)
    assert "\n" not in message, message
    assert str(path) in message, message
    if isinstance(error, ReplayFormatError):
        if error.line is not None:
            assert f"{path}:{error.line}" in message
        if error.field is not None:
            assert repr(error.field) in message


def load_or_error(path: Path, **kwargs: Any) -> ReplayDataset | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ReplayDataWarning: rows with empty cells dropped
        try:
            return load_replay(path, **kwargs)
        except Exception as error:  # the property: only the input-error family
            check_error(error, path)
            return None


# -- generic replay JSONL -----------------------------------------------------------------


@FUZZ
@given(records=replay_records(), gz=st.booleans())
def test_valid_replays_load_and_give_finite_features(records: list[Any], gz: bool) -> None:
    with scratch() as tmp:
        path = tmp / ("r.jsonl.gz" if gz else "r.jsonl")
        data = encode(records)
        path.write_bytes(gzip.compress(data) if gz else data)
        ids = [str(r["id"]) for r in records]
        ds = load_or_error(path)
        if len(set(ids)) < len(ids):  # the generator may repeat an integer id
            assert ds is None
            return
        assert ds is not None
        check_dataset(ds)
        assert sorted(ds.query_ids) == sorted(ids)


@FUZZ
@given(records=mutated_records(), gz=st.booleans(), damage=st.none() | st.binary(max_size=8))
def test_mutated_replays_load_or_raise_one_input_error(
    records: list[Any], gz: bool, damage: bytes | None
) -> None:
    with scratch() as tmp:
        path = tmp / ("m.jsonl.gz" if gz else "m.jsonl")
        data = encode(records, damage)
        path.write_bytes(gzip.compress(data) if gz else data)
        ds = load_or_error(path)
        if ds is not None:
            check_dataset(ds)


@FUZZ
@given(
    data=st.binary(max_size=300) | st.builds(encode, replay_records()),
    suffix=st.sampled_from(["x.jsonl", "x.jsonl.gz", "x.csv", "x.csv.gz"]),
    keep=st.floats(0, 1),
)
def test_random_and_truncated_bytes(data: bytes, suffix: str, keep: float) -> None:
    """Random bytes under any replay name, and gzip streams cut anywhere."""
    with scratch() as tmp:
        path = tmp / suffix
        if suffix.endswith(".gz"):
            compressed = gzip.compress(data)
            data = compressed[: round(keep * len(compressed))]
        path.write_bytes(data)
        ds = load_or_error(path)
        if ds is not None:
            check_dataset(ds)


def test_minus_infinity_features_are_the_floor_not_nan(tmp_path: Path) -> None:
    """The concrete case behind the property: a replay of probability-0 answers."""
    records = [
        {
            "id": i,
            "models": {
                "small": {"correct": False, "cost_usd": 0.001, "logprobs": [-0.1, "-inf"]},
                "big": {"correct": True, "cost_usd": 0.01, "confidence_logprob": -math.inf},
            },
        }
        for i in range(3)
    ]
    path = tmp_path / "zero.jsonl"
    path.write_bytes(encode(records))
    ds = load_replay(path)
    assert np.all(ds.signals["confidence_logprob"] == -np.inf)
    check_dataset(ds)
    table = table_from_dataset(spec_for_dataset(ds), ds)
    assert np.all(np.isfinite(table.posthoc[:, 0, :4]))  # lp_sum, mean, min, median


# -- RouterBench CSV ----------------------------------------------------------------------

CELLS = st.one_of(
    st.sampled_from(["", "0", "1", "0.5", "nan", "inf", "-inf", "1e400", "-1", "2", " 0.3 "]),
    st.just("9" * 200_000),  # over the csv module's field limit, and beyond a float
    st.floats(0, 1).map(repr),
    st.text(max_size=6),
)


@st.composite
def routerbench_csv(draw: Any) -> str:
    models = draw(st.lists(st.sampled_from(["m1", "m2", "gpt|x", "m,3"]), min_size=1, max_size=3))
    header = ["sample_id", "prompt", "eval_name"]
    for m in models:
        header += [m, f"{m}|model_response", f"{m}|total_cost"]
    if draw(st.booleans()):
        header = draw(st.permutations(header))
    if draw(st.integers(0, 9)) == 0:
        header = header[:-1]  # a column missing
    rows = []
    for i in range(draw(st.integers(0, 5))):
        row = {
            "sample_id": draw(st.sampled_from([f"s{i}", "", "s0"])),
            "prompt": draw(st.sampled_from(["q", "['a', 'b']", "[1, 2", "x\ny", '"']) | CELLS),
            "eval_name": draw(st.sampled_from(["arc", ""])),
        }
        for m in models:
            row[m] = draw(CELLS)
            row[f"{m}|model_response"] = draw(st.text(max_size=5))
            row[f"{m}|total_cost"] = draw(CELLS)
        values = [row.get(col, "") for col in header]
        if draw(st.integers(0, 9)) == 0:
            values = values[:-1]  # a short record
        rows.append(values)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


@FUZZ
@given(text=routerbench_csv(), missing=st.sampled_from(["drop", "raise"]), gz=st.booleans())
def test_routerbench_csv_loads_or_raises_one_input_error(text: str, missing: str, gz: bool) -> None:
    with scratch() as tmp:
        path = tmp / ("rb.csv.gz" if gz else "rb.csv")
        data = text.encode()
        path.write_bytes(gzip.compress(data) if gz else data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = load_routerbench_csv(path, missing=missing)  # type: ignore[arg-type]
            except Exception as error:
                check_error(error, path)
                return
        assert ds.quality.shape == ds.cost.shape and np.all(np.isfinite(ds.cost))
        assert np.all((ds.quality >= 0) & (ds.quality <= 1))


# -- dev set ------------------------------------------------------------------------------

# Graders are imported by name: only names that are safe to import belong here (a random
# module name could be `antigravity`, which opens a web browser).
GRADER_NAMES = st.sampled_from(
    [
        "exact",
        "contains",
        "regex",
        "fuzzy",
        "",
        ":",
        "math:",
        "math:pi",
        "math:no_such_function",
        "h3b_no_such_module:grade",
        "tests.fuzz_graders:current_grader",
    ]
)
MESSAGES = st.one_of(
    st.lists(
        st.fixed_dictionaries(
            {"role": st.sampled_from(["user", "system", "assistant", 3])},
            optional={"content": st.text(max_size=8) | ANY_JSON},
        ),
        max_size=3,
    ),
    ANY_JSON,
)
PARAMS = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "max_tokens": st.one_of(st.integers(-5, 10**6), st.booleans(), st.floats()),
            "temperature": st.one_of(st.floats(), st.text(max_size=3)),
            "stop": st.one_of(st.text(max_size=3), st.lists(st.text(max_size=3), max_size=2)),
            "seed": ANY_JSON,
            "bogus": ANY_JSON,
        },
    ),
    ANY_JSON,
)


@st.composite
def dev_rows(draw: Any) -> dict[str, Any] | Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(ANY_JSON)
    row: dict[str, Any] = {}
    if draw(st.booleans()):
        row["messages"] = draw(MESSAGES)
    else:
        row["prompt"] = draw(st.text(max_size=8) | ANY_JSON)
    for key, value in (
        ("id", st.one_of(st.text(max_size=4), st.integers(0, 3), st.just("line-1"), ANY_JSON)),
        ("params", PARAMS),
        ("reference", ANY_JSON),
        ("grader", GRADER_NAMES | ANY_JSON),
        ("task", ANY_JSON),
    ):
        if draw(st.booleans()):
            row[key] = draw(value)
    return row


@FUZZ
@given(rows=st.lists(dev_rows(), max_size=5), damage=st.none() | st.binary(max_size=6))
def test_dev_set_loads_or_raises_one_input_error(rows: list[Any], damage: bytes | None) -> None:
    with scratch() as tmp:
        path = tmp / "dev.jsonl"
        path.write_bytes(encode(rows, damage))
        try:
            loaded = load_dev_set(path)
        except Exception as error:
            check_error(error, path)
            return
        assert loaded and all(isinstance(row, DevRow) for row in loaded)
        assert len({row.id for row in loaded}) == len(loaded)


# -- grader results -----------------------------------------------------------------------

GRADER_RESULTS = st.one_of(
    ANY_JSON,
    st.sampled_from(
        [
            np.float64("nan"),
            np.float32(0.5),
            np.bool_(True),
            np.int64(1),
            np.array([1.0]),
            np.array(0.5),
            Fraction(1, 3),
            complex(0.5, 0),
            float("inf"),
            object(),
        ]
    ),
)


@FUZZ
@given(result=GRADER_RESULTS)
def test_grade_gives_a_score_in_0_1_or_one_error_naming_grader_and_row(result: Any) -> None:
    fuzz_graders.returned[0] = result
    row = DevRow(id="row-7", messages=[{"role": "user", "content": "q"}], reference="r")
    name = "tests.fuzz_graders:current_grader"
    try:
        score = grade(row, "answer", name)
    except InvalidInputError as error:
        assert name in str(error) and "'row-7'" in str(error) and "\n" not in str(error)
        assert "bool or a number in [0, 1]" in str(error)
        return
    assert isinstance(score, float) and 0.0 <= score <= 1.0
    assert isinstance(result, (bool, np.bool_, int, float, Fraction, np.integer, np.floating))


def test_a_grader_that_raises_names_grader_and_row() -> None:
    row = DevRow(id="row-9", messages=[{"role": "user", "content": "q"}], reference="r")
    with pytest.raises(InvalidInputError) as info:
        grade(row, "answer", "tests.fuzz_graders:raising_grader")
    message = str(info.value)
    assert "raising_grader" in message and "KeyError" in message and "'row-9'" in message
    assert isinstance(info.value.__cause__, KeyError)  # --debug shows the grader's traceback
