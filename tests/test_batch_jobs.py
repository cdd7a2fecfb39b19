"""`cascade-router batch`: atomic appends, resume after SIGKILL, per-row errors, and Ray.

The kill test runs the real CLI in a subprocess against a FAKE OpenAI-compatible server
(`fake_batch_server`), kills it with SIGKILL at several points mid-run, tears the last line
by hand as a crashed machine would, reruns to completion and checks OUT row by row.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from cascade_core.engine import RouterConfig
from cascade_core.errors import InvalidInputError
from cascade_core.jobs.journal import Journal
from cascade_core.jobs.runner import run_batch_job
from tests.fake_batch_server import SMALL, FakeChatServer, answer_for

CLI = Path(sys.executable).with_name("cascade-router")


def write_input(path: Path, n: int) -> dict[str, str]:
    """n rows; every 5th unsure (escalates), every 17th fails; returns id -> prompt."""
    prompts = {}
    with path.open("w") as handle:
        for i in range(n):
            prompt = f"question {i}"
            if i % 5 == 0:
                prompt += " UNSURE"
            if i % 17 == 3:
                prompt += " FAIL"
            prompts[f"r{i}"] = prompt
            handle.write(json.dumps({"id": f"r{i}", "prompt": prompt}) + "\n")
    return prompts


def check_output(path: Path, prompts: dict[str, str]) -> list[dict]:
    """Every input id exactly once, each with the answer its prompt must get."""
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"", "OUT must end with a complete line"
    records = [json.loads(line) for line in lines[:-1]]
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)), "an id was written twice"
    assert set(ids) == set(prompts), "an input row is missing from OUT"
    for record in records:
        prompt = prompts[record["id"]]
        if "FAIL" in prompt:
            assert record["ok"] is False and "failed" in record["error"].lower()
            continue
        assert record["ok"] is True, record
        expected_model = "big" if "UNSURE" in prompt else SMALL
        assert record["model"] == expected_model, record
        assert record["content"] == answer_for(expected_model, prompt)
        assert record["escalated"] is ("UNSURE" in prompt)
        assert record["cost_usd"] > 0
    return records


# -- the journal ----------------------------------------------------------------------


def test_journal_truncates_torn_tail_and_skips_done(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(b'{"id": "a", "ok": true}\n{"id": "b", "ok": true}\n{"id": "c", "o')
    with Journal(out) as journal:
        assert journal.done == {"a", "b"}
        assert journal.truncated_bytes == len(b'{"id": "c", "o')
        assert journal.append({"id": "c", "ok": True}) is True
        assert journal.append({"id": "a", "ok": True}) is False  # never twice
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == ["a", "b", "c"]


def test_journal_refuses_corruption_in_the_middle(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(b'{"id": "a"}\nnot json\n{"id": "b"}\n')
    with pytest.raises(InvalidInputError, match=":2:"):
        Journal(out)
    assert out.read_bytes().endswith(b'{"id": "b"}\n')  # nothing was cut


def test_duplicate_input_ids_are_refused_naming_both_lines(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": 1, "prompt": "a"}\n{"id": 1, "prompt": "b"}\n')
    with FakeChatServer() as server:
        with pytest.raises(
            InvalidInputError, match=rf"in.jsonl:2: duplicate id '1', also on {source}:1"
        ):
            run_batch_job(
                RouterConfig.from_dict(server.config()),
                source,
                tmp_path / "out.jsonl",
                progress=False,
            )
        assert server.calls == {}  # refused before any call


# -- in process: per-row errors and bad rows ----------------------------------------


def test_batch_records_bad_rows_and_failures(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    prompts = write_input(source, 12)
    with source.open("a") as handle:
        handle.write("this is not json\n")
        handle.write(json.dumps({"id": "no-messages"}) + "\n")
    out = tmp_path / "out.jsonl"
    with FakeChatServer() as server:
        summary = run_batch_job(
            RouterConfig.from_dict(server.config()), source, out, concurrency=4, progress=False
        )
    assert summary.total == 14 and summary.written == 14
    records = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert records["line-13"]["ok"] is False and "invalid JSON" in records["line-13"]["error"]
    assert records["no-messages"]["ok"] is False and "prompt" in records["no-messages"]["error"]
    check_output_subset = {k: v for k, v in records.items() if k in prompts}
    assert len(check_output_subset) == 12
    assert summary.errors == 2 + sum("FAIL" in p for p in prompts.values())


# -- kill -9 and resume, with the real CLI in a subprocess -----------------------------


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_leaves_each_row_exactly_once(tmp_path: Path) -> None:
    n_rows = 90
    source = tmp_path / "in.jsonl"
    prompts = write_input(source, n_rows)
    out = tmp_path / "out.jsonl"
    with FakeChatServer() as server:
        config = tmp_path / "ladder.yaml"
        # Answers are held while a run is killed: the timeout only guards against a hang.
        config.write_text(yaml.safe_dump({**server.config(), "timeout_s": 300}))
        command = [
            str(CLI), "batch", "--config", str(config), str(source), str(out),
            "--concurrency", "6", "--no-progress",
        ]  # fmt: skip
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        for threshold in (5, 25, 50):
            # Enough answers for `threshold` lines (a row takes at most two calls, and six
            # rows in flight may each hold one), then the server holds the rest: the run is
            # killed mid-job however fast or slow the machine is.
            server.hold(after=2 * (threshold - _lines(out)) + 12)
            process = subprocess.Popen(
                command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            deadline = time.monotonic() + 300  # a hang guard, not a measurement
            while _lines(out) < threshold:
                assert process.poll() is None, process.stderr.read().decode()
                assert time.monotonic() < deadline, "the job made no progress"
                time.sleep(0.01)
            process.send_signal(signal.SIGKILL)
            process.wait()
            assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()
            process.stderr.close()
            partial = _lines(out)
            assert threshold <= partial < n_rows
        server.release()
        # A crash of the whole machine mid-write leaves a torn line: append one by hand.
        with out.open("ab") as handle:
            handle.write(b'{"id": "r1", "ok": true, "content": "tor')
        calls_before = dict(server.calls)
        final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert final.returncode == 0, final.stderr
        summary = json.loads(final.stdout.splitlines()[-1])
        assert summary["truncated_bytes"] > 0
        assert summary["skipped"] == partial and summary["written"] == n_rows - partial
        # Rows already in OUT were not sent again: the last run only called for the rest.
        new_small = server.calls.get(SMALL, 0) - calls_before.get(SMALL, 0)
        assert new_small <= n_rows - partial + 6  # at most the rows in flight at the kill
    check_output(out, prompts)
    # A rerun of a finished job does nothing.
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert json.loads(again.stdout.splitlines()[-1])["written"] == 0
    check_output(out, prompts)


# -- Ray Data ------------------------------------------------------------------------


@pytest.mark.slow
def test_ray_path_resumes_and_matches_local(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    from cascade_core.jobs.ray_runner import run_batch_job_ray

    source = tmp_path / "in.jsonl"
    prompts = write_input(source, 40)
    out = tmp_path / "out.jsonl"
    # A previous run got through two rows and died mid-line.
    with FakeChatServer() as server:
        config = RouterConfig.from_dict(server.config())
        first_two = tmp_path / "first.jsonl"
        first_two.write_text("".join(source.read_text().splitlines(keepends=True)[:2]))
        run_batch_job(config, first_two, out, progress=False)
        with out.open("ab") as handle:
            handle.write(b'{"id": "r7", "o')
        try:
            summary = run_batch_job_ray(
                config, source, out, num_cpus=2, batch_size=4, concurrency=4, progress=False
            )
        finally:
            ray.shutdown()
    assert summary.skipped == 2 and summary.written == 38 and summary.truncated_bytes > 0
    assert summary.escalation_rate > 0
    check_output(out, prompts)
