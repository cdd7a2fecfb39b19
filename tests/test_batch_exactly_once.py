"""One writer per batch OUT and per calibrate response cache, with real processes.

The process tests run the real `cascade-router` console script against the FAKE server
(`fake_batch_server`), which can hold every answer until the test releases it: the run that
got the lock therefore cannot finish before the other one has tried, however fast or slow
the machine is, and the server counts every request as a provider would bill it.
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

from cascade_core.calibrate.cache import ResponseCache
from cascade_core.errors import InvalidInputError
from cascade_core.file_lock import FileInUseError
from cascade_core.jobs.journal import Journal
from tests.fake_batch_server import SMALL, FakeChatServer
from tests.test_batch_jobs import check_output, write_input
from tests.test_calibrate import GRADER, write_dev_set

ROOT = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).with_name("cascade-router")
ENV = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": str(ROOT)}
HANG_GUARD_S = 300  # only stops a hung test; no assertion depends on how long anything takes


# -- in one process -------------------------------------------------------------------------


def test_second_journal_on_one_out_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    with Journal(out) as journal:
        journal.append({"id": "a", "ok": True})
        with pytest.raises(FileInUseError, match=rf"pid {os.getpid()}\b") as refused:
            Journal(out)
        assert isinstance(refused.value, InvalidInputError)
        message = str(refused.value)
        assert message.startswith(f"{out}: another process") and "\n" not in message
        assert journal.append({"id": "b", "ok": True})  # the holder is unaffected
    with Journal(out) as again:
        assert again.done == {"a", "b"}


def test_refused_journal_leaves_the_file_untouched(tmp_path: Path) -> None:
    """The second writer must not even cut a torn tail: that is the holder's to finish."""
    out = tmp_path / "out.jsonl"
    with Journal(out) as journal:
        journal.append({"id": "a", "ok": True})
        with out.open("ab") as handle:  # bytes the holder is in the middle of writing
            handle.write(b'{"id": "b", "o')
        before = out.read_bytes()
        with pytest.raises(FileInUseError):
            Journal(out)
        assert out.read_bytes() == before


def test_second_response_cache_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    with ResponseCache(path) as cache:
        cache.put("k", SMALL, {"messages": []}, {"content": "x"})
        with pytest.raises(FileInUseError, match="response cache") as refused:
            ResponseCache(path)
        assert str(refused.value).startswith(f"{path}: another process (pid {os.getpid()})")
    with ResponseCache(path) as cache:
        assert cache.get("k") == {"content": "x"} and len(cache) == 1


def test_a_file_that_is_not_a_cache_is_one_input_error(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    path.write_bytes(b"this is not a SQLite database, it is a text file\n" * 40)
    with pytest.raises(InvalidInputError, match=r"cache.sqlite: not a usable response cache"):
        ResponseCache(path)
    with ResponseCache(tmp_path / "fresh.sqlite"):  # the failed open released its lock too
        pass


def test_ray_path_is_refused_before_ray_starts(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    from cascade_core.engine import RouterConfig
    from cascade_core.jobs.ray_runner import run_batch_job_ray

    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(source, 3)
    with FakeChatServer() as server, Journal(out):
        with pytest.raises(FileInUseError, match=rf"pid {os.getpid()}\b"):
            run_batch_job_ray(RouterConfig.from_dict(server.config()), source, out)
        assert not ray.is_initialized() and server.calls == {}


_HOLDER = """
import sys, time
from cascade_core.jobs.journal import Journal
journal = Journal(sys.argv[1])
print("locked", flush=True)
time.sleep(3600)
"""


def test_sigkill_of_the_holder_releases_the_lock(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(out)], env=ENV, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        with pytest.raises(FileInUseError, match=rf"pid {holder.pid}\b"):
            Journal(out)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        holder.stdout.close()
    with Journal(out) as journal:  # no stale lock: the kernel dropped it with the process
        assert journal.append({"id": "a", "ok": True})


# -- real CLI processes ---------------------------------------------------------------------


def _config(tmp_path: Path, server: FakeChatServer) -> Path:
    data = server.config()
    data["timeout_s"] = HANG_GUARD_S  # answers are held until the test releases them
    path = tmp_path / "ladder.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _batch_command(config: Path, source: Path, out: Path) -> list[str]:
    return [
        str(CLI), "batch", "--config", str(config), str(source), str(out),
        "--concurrency", "4", "--no-progress",
    ]  # fmt: skip


def _start(command: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command, env=ENV, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_until(condition, processes: list[subprocess.Popen[str]]) -> None:
    deadline = time.monotonic() + HANG_GUARD_S
    while not condition():
        for process in processes:
            if process.poll() is not None:
                raise AssertionError(f"exited early: {process.communicate()}")
        assert time.monotonic() < deadline, "hung"
        time.sleep(0.02)


def _first_to_exit(
    processes: list[subprocess.Popen[str]], server: FakeChatServer, one_run: int
) -> subprocess.Popen[str]:
    """The first process to exit, while the held server never sees more requests than one
    run keeps in flight (``one_run``): more would be a second writer paying for the same
    rows, which is the failure itself, so it fails at once instead of hanging."""
    deadline = time.monotonic() + HANG_GUARD_S
    while True:
        assert server.requests() <= one_run, "a second process is calling the models"
        for process in processes:
            if process.poll() is not None:
                return process
        assert time.monotonic() < deadline, "no process exited"
        time.sleep(0.02)


def _refusal_line(result: subprocess.Popen[str] | subprocess.CompletedProcess[str]) -> str:
    """The one stderr line of a refused run (exit 2, nothing on stdout)."""
    if isinstance(result, subprocess.Popen):
        stdout, stderr = result.communicate(timeout=HANG_GUARD_S)
    else:
        stdout, stderr = result.stdout, result.stderr
    assert result.returncode == 2, stderr
    assert stdout == ""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def _stop(processes: list[subprocess.Popen[str]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.communicate()


def _assert_paid_once(server: FakeChatServer, prompts: dict[str, str]) -> None:
    """Every row called the small model once, and the big one once when it escalated
    (unsure) or the small one failed; nothing else reached the provider."""
    expected = {}
    for prompt in prompts.values():
        expected[SMALL, prompt] = 1
        if "UNSURE" in prompt or "FAIL" in prompt:
            expected["big", prompt] = 1
    assert dict(server.prompt_calls) == expected


@pytest.mark.slow
def test_two_batch_processes_on_one_out_run_every_row_once(tmp_path: Path) -> None:
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    prompts = write_input(source, 24)
    with FakeChatServer() as server:
        command = _batch_command(_config(tmp_path, server), source, out)
        server.hold()
        processes = [_start(command), _start(command)]
        try:
            loser = _first_to_exit(processes, server, one_run=4)
            (winner,) = (p for p in processes if p is not loser)
            line = _refusal_line(loser)
            assert line.startswith(f"error: {out}: another process (pid {winner.pid}) is using")
            assert winner.poll() is None  # the holder, still held at the server
            server.release()
            stdout, stderr = winner.communicate(timeout=HANG_GUARD_S)
        finally:
            _stop(processes)
        assert winner.returncode == 0, stderr
        assert json.loads(stdout.splitlines()[-1])["written"] == len(prompts)
    check_output(out, prompts)
    _assert_paid_once(server, prompts)


@pytest.mark.slow
def test_rerun_after_the_holder_is_sigkilled_completes_exactly_once(tmp_path: Path) -> None:
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    prompts = write_input(source, 24)
    with FakeChatServer() as server:
        command = _batch_command(_config(tmp_path, server), source, out)
        server.hold()
        holder = _start(command)
        started = [holder]
        try:
            _wait_until(lambda: server.requests() >= 4, [holder])  # 4 rows in flight
            contender = _start(command)
            started.append(contender)
            assert _first_to_exit([holder, contender], server, one_run=4) is contender
            assert f"(pid {holder.pid})" in _refusal_line(contender)
            holder.send_signal(signal.SIGKILL)
            holder.wait()
        finally:
            _stop(started)
        assert out.read_bytes() == b""  # it died before any answer came back
        in_flight = set(server.prompt_calls)
        server.release()
        rerun = subprocess.run(
            command, env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=HANG_GUARD_S
        )
        assert rerun.returncode == 0, rerun.stderr
        assert json.loads(rerun.stdout.splitlines()[-1])["written"] == len(prompts)
        again = subprocess.run(
            command, env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=HANG_GUARD_S
        )
        assert json.loads(again.stdout.splitlines()[-1])["written"] == 0
    check_output(out, prompts)
    # Only the calls in flight at the kill were paid twice (the documented cost of a kill).
    paid_twice = {key for key, count in server.prompt_calls.items() if count == 2}
    assert paid_twice == in_flight and max(server.prompt_calls.values()) == 2


@pytest.mark.slow
def test_second_calibrate_on_one_cache_is_refused(tmp_path: Path) -> None:
    dev = tmp_path / "dev.jsonl"
    prompts = write_dev_set(dev, 8)
    cache = tmp_path / "responses.sqlite"
    with FakeChatServer() as server:
        config = _config(tmp_path, server)

        def command(output: str) -> list[str]:
            return [
                str(CLI), "calibrate", "--config", str(config), "--data", str(dev),
                "-o", str(tmp_path / output), "--cache", str(cache), "--grader", GRADER,
                "--concurrency", "2", "--no-progress",
            ]  # fmt: skip

        server.hold()
        first = _start(command("first.json"))
        started = [first]
        try:
            _wait_until(lambda: server.requests() >= 2, [first])
            second = _start(command("second.json"))
            started.append(second)
            assert _first_to_exit([first, second], server, one_run=2) is second
            line = _refusal_line(second)
            assert line.startswith(f"error: {cache}: another process (pid {first.pid})")
            assert "response cache" in line
            server.release()
            stdout, stderr = first.communicate(timeout=HANG_GUARD_S)
        finally:
            _stop(started)
        assert first.returncode == 0, stderr
        assert json.loads(stdout)["new_calls"] == 2 * len(prompts)
    assert not (tmp_path / "second.json").exists()
    # The refused run asked for nothing: each prompt reached each model once.
    assert sorted(server.prompt_calls.values()) == [1] * (2 * len(prompts))
