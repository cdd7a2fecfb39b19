"""Property tests (hypothesis) of the batch-input reader and of the output journal's recovery.

Any file gives either rows with unique ids, one per non-blank line, or exactly one
InvalidInputError naming a line that really has an id problem; never another exception.
The checks are against the bytes written, not against the reader's own helpers.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cascade_core.errors import InvalidInputError
from cascade_core.jobs.journal import Journal
from cascade_core.jobs.runner import read_rows

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
# A small pool, so duplicates and lookalikes of the fallback form are frequent.
ids = (
    st.sampled_from(["a", "b", "7", "line-1", "line-2", "line-3", "line-03", "", " a"])
    | st.integers(-3, 9)
    | json_values
)


@st.composite
def object_line(draw: st.DrawFn) -> bytes:
    record: dict = {"prompt": draw(st.text(max_size=6))}
    if draw(st.booleans()):
        record["id"] = draw(ids)
    text = json.dumps(record, ensure_ascii=draw(st.booleans()), allow_nan=True)
    return text.encode("utf-8", "surrogatepass")  # lone surrogates become non-UTF-8 bytes


lines = st.one_of(
    object_line(),
    object_line(),
    json_values.map(lambda v: json.dumps(v).encode()),  # objects and non-objects
    st.text(max_size=12).map(lambda t: t.encode("utf-8", "surrogatepass")),  # mostly not JSON
    st.binary(max_size=12),  # anything, newlines and invalid UTF-8 included
    object_line().map(lambda b: b"\xff" + b),
    st.sampled_from([b"", b"   ", b"\t\r", b"[" * 3000 + b"]" * 3000, b"1" * 5000]),
)


def physical_lines(data: bytes) -> list[bytes]:
    """The file's lines as the JSON Lines format defines them (split on LF only)."""
    parts = data.split(b"\n")
    if data.endswith(b"\n"):
        parts.pop()
    if parts and parts[0].startswith(b"\xef\xbb\xbf"):
        parts[0] = parts[0][3:]
    return parts


def as_object(raw: bytes) -> dict | None:
    try:
        value = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


@SETTINGS
@given(st.lists(lines, max_size=12), st.booleans())
def test_reader_gives_unique_ids_or_one_error_naming_a_line(
    chunks: list[bytes], trailing_newline: bool
) -> None:
    data = b"\n".join(chunks) + (b"\n" if trailing_newline else b"")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "in.jsonl"
        path.write_bytes(data)
        physical = physical_lines(data)
        non_blank = [n for n, raw in enumerate(physical, start=1) if raw.strip()]
        try:
            rows = list(read_rows(path))
        except InvalidInputError as error:
            event("refused")
            match = re.match(rf"{re.escape(str(path))}:(\d+): (.*)", str(error))
            assert match, str(error)
            number = int(match.group(1))
            assert number in non_blank
            assert "\n" not in str(error)
            record = as_object(physical[number - 1])
            assert record is not None and record.get("id") is not None  # an id problem
            also = re.search(rf"also on {re.escape(str(path))}:(\d+);", match.group(2))
            if also:  # a duplicate: the other line is an earlier object with the same id
                first = int(also.group(1))
                other = as_object(physical[first - 1])
                assert first < number and other is not None and other.get("id") is not None
                assert str(other["id"]) == str(record["id"])
            return
    event(f"read; problem rows: {min(sum(r.problem is not None for r in rows), 3)}")
    assert len(rows) == len(non_blank)
    assert len({row.id for row in rows}) == len(rows)
    for number, row in zip(non_blank, rows, strict=True):
        record = as_object(physical[number - 1])
        assert row.record == record
        if record is None:
            assert row.id == f"line-{number}"
            assert row.problem is not None and row.problem.startswith(f"{path}:{number}: ")
        else:
            assert row.problem is None
            given_id = record.get("id")
            assert row.id == (f"line-{number}" if given_id is None else str(given_id))
            if isinstance(given_id, str):
                assert not re.fullmatch(r"line-\d+", given_id)


out_lines = st.one_of(
    st.dictionaries(st.sampled_from(["id", "ok"]), json_values).map(
        lambda v: json.dumps(v).encode() + b"\n"
    ),
    st.binary(max_size=10),
    st.binary(max_size=10).map(lambda b: b + b"\n"),
)


@SETTINGS
@given(st.lists(out_lines, max_size=8))
def test_journal_recovery_keeps_a_prefix_or_refuses_untouched(chunks: list[bytes]) -> None:
    """Recovery only ever cuts the tail; a bad line before the last refuses, changing nothing."""
    data = b"".join(chunks)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "out.jsonl"
        path.write_bytes(data)
        try:
            journal = Journal(path, fsync=False)
        except InvalidInputError as error:
            event("refused")
            assert re.match(rf"{re.escape(str(path))}:\d+: not a valid JSON line", str(error))
            assert path.read_bytes() == data
            return
        with journal:
            kept = path.read_bytes()
            event("cut a tail" if kept != data else "kept all")
            assert data.startswith(kept) and journal.truncated_bytes == len(data) - len(kept)
            assert kept == b"" or kept.endswith(b"\n")
            expected = set()
            for line in kept.split(b"\n")[:-1]:
                record = json.loads(line.decode("utf-8"))  # every kept line parses
                if isinstance(record, dict) and "id" in record:
                    expected.add(str(record["id"]))
            assert journal.done == expected
            assert journal.append({"id": "new", "ok": True}) is ("new" not in expected)
        assert path.read_bytes().startswith(kept)
