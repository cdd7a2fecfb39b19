"""Batch input and dev-set lines: ids unique by construction, bad bytes confined to their line.

The jobs run in process against the FAKE server (`fake_batch_server`), which counts what
reached the provider.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cascade_core.calibrate.devset import load_dev_set
from cascade_core.engine import RouterConfig
from cascade_core.errors import InvalidInputError
from cascade_core.jobs.runner import read_rows, run_batch_job
from cascade_core.jsonl import row_request
from tests.fake_batch_server import SMALL, FakeChatServer, answer_for


def _run(server: FakeChatServer, source: Path, out: Path):
    return run_batch_job(RouterConfig.from_dict(server.config()), source, out, progress=False)


def _out(path: Path) -> dict[str, dict]:
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) == text.count("\n"), "a naive line splitter would cut a row"
    records = [json.loads(line) for line in text.split("\n")[:-1]]
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)), "an id was written twice"
    return {r["id"]: r for r in records}


# -- ids ------------------------------------------------------------------------------------


def test_duplicate_id_names_both_lines(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": "a", "prompt": "x"}\n\n{"id": "b", "prompt": "y"}\n{"id": "a"}\n')
    with pytest.raises(InvalidInputError) as refused:
        list(read_rows(source))
    message = str(refused.value)
    assert message.startswith(f"{source}:4: duplicate id 'a'") and f"{source}:1" in message


def test_integer_and_string_ids_are_one_id(tmp_path: Path) -> None:
    """OUT stores ids as strings, so 7 and "7" would be one row there: refused as a pair."""
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": 7, "prompt": "x"}\n{"id": "7", "prompt": "y"}\n')
    with pytest.raises(InvalidInputError, match=r"in.jsonl:2: duplicate id '7', also on .*:1;"):
        list(read_rows(source))


def test_fallback_id_of_a_malformed_line_cannot_take_a_real_rows_id(tmp_path: Path) -> None:
    """Line 2 is malformed (its fallback id is line-2), and a later row gives id "line-2":
    without the reserved form, that row would silently never run."""
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"id": "r1", "prompt": "one"}\n{not json\n{"id": "line-2", "prompt": "two"}\n'
    )
    out = tmp_path / "out.jsonl"
    with FakeChatServer() as server:
        with pytest.raises(InvalidInputError, match=r"in.jsonl:3: id 'line-2' is reserved"):
            _run(server, source, out)
        assert server.calls == {}  # refused before any call
        assert out.read_bytes() == b""
        # Renamed, every row runs: none is shadowed by the malformed line's fallback id.
        source.write_text(source.read_text().replace('"line-2"', '"r2"'))
        summary = _run(server, source, out)
    assert summary.total == 3 and summary.written == 3
    records = _out(out)
    assert set(records) == {"r1", "line-2", "r2"}
    assert records["r2"]["ok"] and records["r2"]["content"] == answer_for(SMALL, "two")
    assert not records["line-2"]["ok"] and "invalid JSON" in records["line-2"]["error"]


@pytest.mark.parametrize(
    ("id_json", "why"),
    [
        ("true", "not a boolean"),
        ("1.5", "not a number written with a fraction"),
        ('{"a": 1}', "not an object"),
        ("[1]", "not an array"),
        ('""', "id is empty"),
        ('"line-17"', "reserved"),
    ],
)
def test_unusable_ids_are_refused_naming_the_line(tmp_path: Path, id_json: str, why: str) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(f'{{"prompt": "x"}}\n{{"id": {id_json}, "prompt": "y"}}\n')
    with pytest.raises(InvalidInputError, match=rf"in.jsonl:2: .*{why}"):
        list(read_rows(source))


def test_rows_without_ids_and_lookalike_ids_keep_their_own(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"prompt": "a"}\n{"id": null, "prompt": "b"}\n{"id": "line-02x", "prompt": "c"}\n'
        '{"id": 3, "prompt": "d"}\n{"id": "Line-9", "prompt": "e"}\n'
    )
    assert [row.id for row in read_rows(source)] == ["line-1", "line-2", "line-02x", "3", "Line-9"]


# -- bytes ----------------------------------------------------------------------------------


def test_non_utf8_line_is_one_error_row_and_the_job_finishes(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(
        b'{"id": "a", "prompt": "first"}\n'
        b'\xff\xfe{"id": "b", "prompt": "caf\xe9"}\n'
        b'{"id": "c", "prompt": "caf\xc3\xa9 \xe2\x80\xa8 third"}\n'  # UTF-8, with U+2028
    )
    out = tmp_path / "out.jsonl"
    with FakeChatServer() as server:
        summary = _run(server, source, out)
        assert summary.total == 3 and summary.written == 3 and summary.errors == 1
        records = _out(out)
        assert set(records) == {"a", "line-2", "c"}
        bad = records["line-2"]
        assert bad["ok"] is False
        assert bad["error"] == (
            f"{source}:2: not UTF-8 (byte 0xff at byte 1 of the line); save the file as UTF-8"
        )
        assert records["c"]["content"] == answer_for(SMALL, "café \u2028 third")
        calls = dict(server.calls)
        again = _run(server, source, out)
        assert again.written == 0 and again.skipped == 3 and server.calls == calls
    assert len(_out(out)) == 3


def test_lone_surrogate_text_keeps_out_valid_utf8(tmp_path: Path) -> None:
    r"""JSON may escape a lone surrogate ("\ud800"), which UTF-8 cannot hold."""
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": "s\\ud800", "prompt": "x"}\n{"id": "t", "prompt": "y"}\n')
    out = tmp_path / "out.jsonl"
    with FakeChatServer() as server:
        assert _run(server, source, out).written == 2
        out.read_bytes().decode("utf-8")  # strict: raises if OUT is not UTF-8
        assert set(_out(out)) == {"s\ud800", "t"}
        assert _run(server, source, out).written == 0  # and the id is recognised as done


def test_byte_order_mark_and_crlf_are_read(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'\xef\xbb\xbf{"id": "a", "prompt": "x"}\r\n{"id": "b", "prompt": "y"}\r\n')
    rows = list(read_rows(source))
    assert [(row.id, row.problem) for row in rows] == [("a", None), ("b", None)]


def test_missing_input_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"batch input .*nope.jsonl: cannot read"):
        list(read_rows(tmp_path / "nope.jsonl"))


def test_out_with_a_non_utf8_line_in_the_middle_is_refused_untouched(tmp_path: Path) -> None:
    from cascade_core.jobs.journal import Journal

    out = tmp_path / "out.jsonl"
    out.write_bytes(b'{"id": "a"}\n{"id": "\xff"}\n{"id": "b"}\n')
    before = out.read_bytes()
    with pytest.raises(InvalidInputError, match=r"out.jsonl:2: not a valid JSON line"):
        Journal(out)
    assert out.read_bytes() == before


# -- the dev set (calibrate refuses bad rows instead of recording them) --------------------------


def test_dev_set_non_utf8_line_is_one_error_naming_the_line(tmp_path: Path) -> None:
    dev = tmp_path / "dev.jsonl"
    dev.write_bytes(b'{"id": "a", "prompt": "x"}\n{"id": "b", "prompt": "caf\xe9"}\n')
    with pytest.raises(InvalidInputError) as refused:
        load_dev_set(dev)
    assert str(refused.value).startswith(f"{dev}:2: not UTF-8 (byte 0xe9 at byte 27 ")


def test_dev_set_ids_follow_the_same_rules(tmp_path: Path) -> None:
    dev = tmp_path / "dev.jsonl"
    dev.write_text('{"prompt": "x"}\n{"id": "line-1", "prompt": "y"}\n')
    with pytest.raises(InvalidInputError, match=r"dev.jsonl:2: id 'line-1' is reserved"):
        load_dev_set(dev)
    dev.write_text('{"id": "q", "prompt": "x"}\n{"id": "q", "prompt": "y"}\n')
    with pytest.raises(InvalidInputError, match=rf"dev.jsonl:2: duplicate id 'q', also on {dev}:1"):
        load_dev_set(dev)


def test_dev_set_keeps_a_row_with_u2028_whole(tmp_path: Path) -> None:
    """`str.splitlines` would cut this row in two at the U+2028 inside its prompt."""
    dev = tmp_path / "dev.jsonl"
    dev.write_text('{"id": "a", "prompt": "x\u2028y", "reference": "z"}\n', encoding="utf-8")
    (row,) = load_dev_set(dev)
    assert row.messages == [{"role": "user", "content": "x\u2028y"}]


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ('"params": "max_tokens=3"', "params must be an object"),
        ('"grader": ["exact"]', "grader must be a string"),
        ('"grader": "nope:missing"', r"dev.jsonl:1: grader 'nope:missing': cannot import"),
    ],
)
def test_dev_set_field_errors_name_the_line(tmp_path: Path, fields: str, match: str) -> None:
    dev = tmp_path / "dev.jsonl"
    dev.write_text(f'{{"prompt": "x", {fields}}}\n')
    with pytest.raises(InvalidInputError, match=match):
        load_dev_set(dev)


# -- a row's request: one reading for batch and calibrate -----------------------------------

BAD_SHAPES = [
    ('{"id": "r", "prompt": "x", "params": "max_tokens=3"}', "params must be an object"),
    ('{"id": "r", "prompt": "x", "params": []}', "params must be an object"),
    ('{"id": "r", "prompt": "x", "params": false}', "params must be an object"),
    ('{"id": "r", "prompt": ""}', "give 'messages' (a list) or 'prompt' (a string)"),
    ('{"id": "r", "prompt": 7}', "give 'messages' (a list) or 'prompt' (a string)"),
    ('{"id": "r", "reference": "x"}', "give 'messages' (a list) or 'prompt' (a string)"),
]


@pytest.mark.parametrize(("line", "reason"), BAD_SHAPES)
def test_batch_and_dev_set_refuse_a_bad_request_row_for_the_same_reason(
    tmp_path: Path, line: str, reason: str
) -> None:
    """calibrate refuses the row naming its line; batch records it as an error row with the
    same reason and calls no model for it."""
    source = tmp_path / "rows.jsonl"
    source.write_text(line + "\n" + '{"id": "ok", "prompt": "fine"}\n')
    with pytest.raises(InvalidInputError) as refused:
        load_dev_set(source)
    assert str(refused.value).startswith(f"{source}:1: {reason}")
    out = tmp_path / "out.jsonl"
    with FakeChatServer() as server:
        summary = _run(server, source, out)
        assert (summary.written, summary.errors) == (2, 1)
        records = _out(out)
        assert records["r"]["ok"] is False
        assert records["r"]["error"].startswith(f"InvalidInputError: row r: {reason}")
        assert records["ok"]["ok"] is True
        assert server.prompt_calls == {(SMALL, "fine"): 1}


def test_null_params_are_no_params_in_both(tmp_path: Path) -> None:
    source = tmp_path / "rows.jsonl"
    source.write_text('{"id": "r", "prompt": "x", "params": null}\n')
    (row,) = load_dev_set(source)
    assert row.messages == [{"role": "user", "content": "x"}]
    with FakeChatServer() as server:
        assert _run(server, source, tmp_path / "out.jsonl").errors == 0


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_records = st.dictionaries(
    st.sampled_from(["messages", "prompt", "params", "id", "reference", "task"]), _json
)


@given(_records)
@settings(max_examples=300, deadline=None)
def test_row_request_reads_any_object_or_refuses_it_in_one_line(record: dict) -> None:
    """Whatever a JSON object holds: a (messages, params) pair or one InvalidInputError that
    names the row; the params are a copy, so building the request never edits the row."""
    before = json.dumps(record, sort_keys=True)
    try:
        messages, params = row_request(record, "rows.jsonl:3")
    except InvalidInputError as error:
        assert str(error).startswith("rows.jsonl:3: ") and "\n" not in str(error)
        return
    assert isinstance(params, dict)
    if "messages" in record:
        assert messages is record["messages"]
    else:
        assert messages == [{"role": "user", "content": record["prompt"]}]
    params["max_tokens"] = 1
    assert json.dumps(record, sort_keys=True) == before
