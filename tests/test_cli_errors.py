"""Bad input through the REAL `cascade-router` console script: one line, exit 2, no traceback.

Each case runs the installed entry point as a subprocess (what a user types), so the test
covers the entry point, Typer's wiring and the error handler together. For every bad-input
class of issue 12 point 5, stderr must be exactly one line that starts with ``error:`` and
names the file (and, where there is one, the line or field); stdout holds no traceback; the
exit code is 2. With ``--debug`` the same command prints the traceback first.

The grader cases calibrate against the FAKE chat server of `fake_batch_server`.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import pytest
import typer
import yaml
from typer.testing import CliRunner

from cascade_core.cli.errors import DEBUG_ENV, ErrorReportingGroup
from cascade_core.errors import InvalidInputError
from tests.fake_batch_server import FakeChatServer

CLI = shutil.which("cascade-router") or str(Path(sys.executable).parent / "cascade-router")
# A value shaped like nothing `redact` knows, so only the environment scan can catch it.
SECRET = "zq9Xsecretvalue7Hh2Lm4"

GRADERS = """
def raises(answer, reference, row):
    raise ZeroDivisionError("grader bug")


def says_yes(answer, reference, row):
    return "yes"
"""


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stdout: str
    stderr: str


def start_cli(args: list[str], cwd: Path, *, debug: bool = False) -> subprocess.Popen:
    env = {
        **os.environ,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "PYTHONPATH": str(cwd),  # the grader module of the grader cases
        "H3B_TEST_API_KEY": SECRET,
    }
    env.pop(DEBUG_ENV, None)
    command = [CLI, "--debug", *args] if debug else [CLI, *args]
    return subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(process: subprocess.Popen) -> Outcome:
    stdout, stderr = process.communicate(timeout=600)
    return Outcome(process.returncode, stdout, stderr)


def run_cli(args: list[str], cwd: Path, *, debug: bool = False) -> Outcome:
    return finish(start_cli(args, cwd, debug=debug))


def replay_record(i: int) -> dict:
    return {
        "id": f"r{i}",
        "prompt": f"question {i}",
        "task": "t",
        "models": {
            "small": {"correct": i % 3 != 0, "cost_usd": 1e-6, "logprobs": [-0.1 * i, -0.2]},
            "big": {"correct": i % 5 != 0, "cost_usd": 1e-5, "logprobs": [-0.05, -0.01 * i]},
        },
    }


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def good_config(tmp: Path, server: FakeChatServer | None = None) -> Path:
    api_base = server.api_base if server else "http://127.0.0.1:9/v1"  # port 9: discard
    config = {
        "models": [
            {
                "name": name,
                "model": f"openai/{name}",
                "api_base": api_base,
                "input_cost_per_token": price,
                "output_cost_per_token": price,
                "supports_logprobs": True,
                "prior_quality": prior,
            }
            for name, price, prior in (("small", 1e-7, 0.7), ("big", 1e-6, 0.8))
        ],
        "num_retries": 0,
        "timeout_s": 10,
        "budget": {"lambda": 5000.0},
    }
    path = tmp / "good.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def good_replay(tmp: Path) -> Path:
    return write_jsonl(tmp / "good.jsonl", [replay_record(i) for i in range(24)])


def dev_set(tmp: Path) -> Path:
    rows = [{"id": f"d{i}", "prompt": f"task {i} SUREOK", "reference": "-"} for i in range(3)]
    return write_jsonl(tmp / "dev.jsonl", rows)


@dataclass(frozen=True)
class Case:
    """A bad-input command: ``build(tmp, server)`` writes its files and returns the args;
    ``names`` are strings the error line must contain (file, line, field, row)."""

    build: Callable[[Path, FakeChatServer], list[str]]
    names: tuple[str, ...]
    needs_server: bool = False


def _yaml_syntax(tmp: Path, server: FakeChatServer) -> list[str]:
    (tmp / "broken.yaml").write_text("models:\n  - name: a\n    model: [unclosed\n")
    return ["calibrate", "--config", "broken.yaml", "-o", "p.json", "--replay", "good.jsonl"]


def _json_syntax(tmp: Path, server: FakeChatServer) -> list[str]:
    (tmp / "broken.json").write_text('{"models": [{"name": "a",}]}\n')
    return ["calibrate", "--config", "broken.json", "-o", "p.json", "--replay", "good.jsonl"]


def _config_not_utf8(tmp: Path, server: FakeChatServer) -> list[str]:
    text = good_config(tmp).read_bytes()
    (tmp / "latin1.yaml").write_bytes(b"# caf\xe9 prices\n" + text)
    return ["calibrate", "--config", "latin1.yaml", "-o", "p.json", "--replay", "good.jsonl"]


def _config_missing(tmp: Path, server: FakeChatServer) -> list[str]:
    return ["calibrate", "--config", "nowhere.yaml", "-o", "p.json", "--replay", "good.jsonl"]


def _profile_not_utf8(tmp: Path, server: FakeChatServer) -> list[str]:
    (tmp / "latin1.json").write_bytes(b'{"version": 1, "note": "caf\xe9"}\n')
    return ["bench", "good.jsonl", "--profile", "latin1.json", "--bootstrap", "20"]


def _profile_wrong_shape(tmp: Path, server: FakeChatServer) -> list[str]:
    """A real fitted profile with one coefficient vector cut short."""
    from cascade_core.calibrate import run_calibration
    from cascade_core.engine import RouterConfig

    run_calibration(
        RouterConfig.from_file(good_config(tmp)),
        tmp / "fitted.json",
        replay=good_replay(tmp),
        progress=False,
    )
    profile = json.loads((tmp / "fitted.json").read_text())
    coef = profile["states"][1]["models"][0]["coef"]
    assert len(coef) > 3
    profile["states"][1]["models"][0]["coef"] = coef[:3]
    (tmp / "shape.json").write_text(json.dumps(profile))
    return ["bench", "good.jsonl", "--profile", "shape.json", "--bootstrap", "20"]


def _input_missing(tmp: Path, server: FakeChatServer) -> list[str]:
    good_config(tmp)
    return ["batch", "absent.jsonl", "out.jsonl", "--config", "good.yaml", "--no-progress"]


def _dev_set_not_utf8(tmp: Path, server: FakeChatServer) -> list[str]:
    good_config(tmp)
    (tmp / "dev.jsonl").write_bytes(b'{"prompt": "a", "reference": "b"}\n{"prompt": "caf\xe9"}\n')
    return ["calibrate", "--config", "good.yaml", "--data", "dev.jsonl", "-o", "p.json"]


def _replay_bad_field(tmp: Path, server: FakeChatServer) -> list[str]:
    good_config(tmp)
    records = [replay_record(i) for i in range(4)]
    records[1]["models"]["big"]["cost_usd"] = "cheap"
    write_jsonl(tmp / "bad.jsonl", records)
    return ["calibrate", "--config", "good.yaml", "--replay", "bad.jsonl", "-o", "p.json"]


def _grader(function: str) -> Callable[[Path, FakeChatServer], list[str]]:
    def build(tmp: Path, server: FakeChatServer) -> list[str]:
        good_config(tmp, server)
        dev_set(tmp)
        (tmp / "h3b_graders.py").write_text(GRADERS)
        return [
            "calibrate",
            "--config",
            "good.yaml",
            "--data",
            "dev.jsonl",
            "-o",
            "p.json",
            "--grader",
            f"h3b_graders:{function}",
            "--no-progress",
        ]

    return build


def _bench_bad_replay(tmp: Path, server: FakeChatServer) -> list[str]:
    records = [replay_record(i) for i in range(6)]
    records[4]["models"]["small"]["correct"] = "maybe"
    write_jsonl(tmp / "bad.jsonl", records)
    return ["bench", "bad.jsonl"]


def _bench_truncated_gzip(tmp: Path, server: FakeChatServer) -> list[str]:
    text = "".join(json.dumps(replay_record(i)) + "\n" for i in range(3000)).encode()
    data = gzip.compress(text)
    (tmp / "cut.jsonl.gz").write_bytes(data[: len(data) // 2])
    return ["bench", "cut.jsonl.gz"]


def _batch_bad_config(tmp: Path, server: FakeChatServer) -> list[str]:
    config = yaml.safe_load(good_config(tmp).read_text())
    config["models"][1]["input_cost_per_token"] = "cheap"
    (tmp / "bad.yaml").write_text(yaml.safe_dump(config))
    write_jsonl(tmp / "in.jsonl", [{"id": "a", "prompt": "hi"}])
    return ["batch", "in.jsonl", "out.jsonl", "--config", "bad.yaml", "--no-progress"]


def _secret_in_replay(tmp: Path, server: FakeChatServer) -> list[str]:
    records = [replay_record(i) for i in range(4)]
    records[2]["models"]["small"]["cost_usd"] = SECRET  # a key pasted where a number belongs
    write_jsonl(tmp / "leaky.jsonl", records)
    return ["bench", "leaky.jsonl"]


CASES: dict[str, Case] = {
    "yaml-syntax-error": Case(_yaml_syntax, ("broken.yaml:4",)),
    "json-syntax-error": Case(_json_syntax, ("broken.json:1",)),
    "config-not-utf8": Case(_config_not_utf8, ("latin1.yaml:1",)),
    "config-missing": Case(_config_missing, ("nowhere.yaml",)),
    "profile-not-utf8": Case(_profile_not_utf8, ("latin1.json",)),
    "profile-wrong-shape": Case(_profile_wrong_shape, ("shape.json", "states", "coef")),
    "input-missing": Case(_input_missing, ("absent.jsonl",)),
    "dev-set-not-utf8": Case(_dev_set_not_utf8, ("dev.jsonl:2",)),
    "replay-bad-field": Case(_replay_bad_field, ("bad.jsonl:2", "models.big.cost_usd")),
    "grader-raises": Case(_grader("raises"), ("h3b_graders:raises", "d0"), True),
    "grader-says-yes": Case(_grader("says_yes"), ("h3b_graders:says_yes", "d0", "'yes'"), True),
    "bench-bad-replay": Case(_bench_bad_replay, ("bad.jsonl:5", "models.small.correct")),
    "bench-truncated-gzip": Case(_bench_truncated_gzip, ("cut.jsonl.gz:", "truncated")),
    "batch-bad-config": Case(_batch_bad_config, ("bad.yaml", "input_cost_per_token")),
    "key-in-replay": Case(_secret_in_replay, ("leaky.jsonl:3", "models.small.cost_usd")),
}


@pytest.fixture(scope="module")
def server():
    with FakeChatServer() as fake:
        yield fake


@pytest.mark.slow  # real processes, each loading LiteLLM
@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_and_exit_2(
    name: str, tmp_path: Path, server: FakeChatServer
) -> None:
    """The command without and with --debug, side by side (each start loads LiteLLM), each in
    its own copy of the files (calibrate locks its cache)."""
    case = CASES[name]
    here, there = tmp_path / "plain", tmp_path / "debug"
    here.mkdir()
    good_replay(here)
    args = case.build(here, server)
    shutil.copytree(here, there)
    plain_process, debug_process = start_cli(args, here), start_cli(args, there, debug=True)
    plain, debug = finish(plain_process), finish(debug_process)

    assert plain.returncode == 2, plain.stderr
    lines = plain.stderr.splitlines()
    assert len(lines) == 1, plain.stderr
    line = lines[0]
    assert line.startswith("error: ") and "Traceback" not in line
    for expected in case.names:
        assert expected in line, f"{expected!r} not in {line!r}"

    assert debug.returncode == 2, debug.stderr
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.splitlines()[-1] == line  # the same line, after the traceback
    for outcome in (plain, debug):
        assert "Traceback" not in outcome.stdout
        assert SECRET not in outcome.stderr + outcome.stdout


@pytest.mark.slow  # real processes, each loading LiteLLM
def test_debug_from_the_environment(tmp_path: Path) -> None:
    good_replay(tmp_path)
    args = _bench_bad_replay(tmp_path, None)  # type: ignore[arg-type]
    env = {**os.environ, DEBUG_ENV: "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    result = subprocess.run(
        [CLI, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert "ReplayFormatError" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: ")


@pytest.mark.slow  # real processes, each loading LiteLLM
def test_usage_errors_keep_typer_behaviour(tmp_path: Path) -> None:
    result = run_cli(["bench", "x.jsonl", "--no-such-option"], tmp_path)
    assert result.returncode == 2
    assert "No such option" in result.stderr and "Traceback" not in result.stderr


# -- the handler itself, on commands registered later and nested groups (in-process) --------


def _later_app() -> typer.Typer:
    """An app built like `cascade_core.cli.app.app`, with commands it does not have."""
    app = typer.Typer(cls=ErrorReportingGroup, pretty_exceptions_enable=False)

    @app.callback()
    def options(debug: bool = typer.Option(False, "--debug", envvar=DEBUG_ENV)) -> None:
        pass

    sub = typer.Typer()
    app.add_typer(sub, name="nested")

    @sub.command("bad-input")
    def bad_input() -> None:
        raise InvalidInputError("thing.yaml:3: field 'x': not a number\nsecond line")

    @sub.command("missing")
    def missing() -> None:
        open("does-not-exist.json")  # noqa: SIM115 - the OSError is the point

    @app.command("bug")
    def bug() -> None:
        raise TypeError("unsupported operand")

    @app.command("offline")
    def offline() -> None:
        raise ConnectionRefusedError(111, "Connection refused")

    @app.command("broken-import")
    def broken_import() -> None:
        from cascade_core.errors import NoSuchName  # type: ignore[attr-defined] # noqa: F401

    @app.command("missing-extra")
    def missing_extra() -> None:
        import h3b_package_that_is_not_installed  # type: ignore[import-not-found] # noqa: F401

    return app


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (["nested", "bad-input"], 2, "error: thing.yaml:3: field 'x': not a number; second line"),
        (["nested", "missing"], 2, "error: does-not-exist.json: no such file or directory"),
        (["bug"], 1, "error: internal error, a bug in cascade-router: TypeError"),
        (["offline"], 1, "error: ConnectionRefusedError: [Errno 111] Connection refused"),
        (["broken-import"], 1, "error: internal error, a bug in cascade-router: ImportError"),
        (
            ["missing-extra"],
            1,
            "error: No module named 'h3b_package_that_is_not_installed'; install it",
        ),
    ],
)
def test_every_command_goes_through_the_handler(args: list[str], code: int, expected: str) -> None:
    result = CliRunner().invoke(_later_app(), args)
    assert result.exit_code == code
    assert result.stderr.splitlines() == [result.stderr.splitlines()[0]]
    assert result.stderr.startswith(expected), result.stderr
    debug = CliRunner().invoke(_later_app(), ["--debug", *args])
    assert debug.exit_code == code
    assert "Traceback (most recent call last)" in debug.stderr


def test_missing_file_names_its_option(tmp_path: Path) -> None:
    """An OSError whose file was given on the command line names that option."""
    app = typer.Typer(cls=ErrorReportingGroup, pretty_exceptions_enable=False)

    @app.callback()
    def options() -> None:
        pass

    @app.command("read")
    def read(config: Annotated[Path, typer.Option()]) -> None:
        config.read_text()

    result = CliRunner().invoke(app, ["read", "--config", str(tmp_path / "gone.yaml")])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: --config {tmp_path / 'gone.yaml'}: no such file")
