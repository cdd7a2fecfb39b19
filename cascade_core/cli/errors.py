"""How the `cascade-router` command reports a failure: one line on stderr, never a traceback.

Why one place: a sub-command that catches its own short list of exception types lets the
rest through (a YAML syntax error, a non-UTF-8 file, a replay format error, a grader that
raised) as a raw traceback of hundreds of lines. `ErrorReportingGroup` is the `click` group
class of the whole app, so every sub-command, nested groups (`local ...`) and any command
registered later run inside one handler:

* bad input (`InvalidInputError` and its family, such as `ReplayFormatError`; an OSError that
  names a file; a file that is not UTF-8; YAML/JSON syntax errors that escaped their reader)
  prints ``error: <one line naming the file, line or field and the fix>`` and exits 2;
* the environment (an OSError without a file, such as a refused connection; an optional
  package that is not installed) prints ``error: ...`` and exits 1;
* anything else is a bug in cascade-router: one line saying so, exit 1.

``--debug`` (a global option, before the sub-command) or ``CASCADE_ROUTER_DEBUG=1`` also
prints the traceback (chained causes included) before the line. Typer's own usage errors
(unknown option, bad value: `typer.TyperException`s, as Typer bundles its own click) keep
their exit code 2 and their format. Every printed text goes
through the key redactor: a message may quote a provider error that echoed a key.
"""

from __future__ import annotations

import json
import os
import re
import sys
import traceback
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from cascade_core.errors import CascadeError, InvalidInputError

__all__ = [
    "DEBUG_ENV",
    "EXIT_FAILURE",
    "EXIT_USER_ERROR",
    "ErrorReportingGroup",
    "describe",
    "one_line",
]

DEBUG_ENV = "CASCADE_ROUTER_DEBUG"
EXIT_USER_ERROR = 2
EXIT_FAILURE = 1
_ARGV_KEY = "cascade_router.argv"
# Values of variables named like credentials are scrubbed from everything printed, on top of
# the key shapes `redact` knows: the CLI cannot know which variables a config will name.
_SECRET_NAME = re.compile(r"(?:API_?KEY|_KEY|TOKEN|SECRET|PASSWORD)$", re.IGNORECASE)


def one_line(text: str) -> str:
    """``text`` on one line: its non-blank lines stripped and joined with "; "."""
    return "; ".join(part.strip() for part in str(text).splitlines() if part.strip())


def scrub(text: str) -> str:
    """``text`` without API keys (configured variables' values and key-shaped strings)."""
    # Imported here: the engine package loads LiteLLM (seconds), which `version` and
    # `--help` do not need.
    from cascade_core.engine.redaction import redact, secrets_from_env

    names = [name for name in os.environ if _SECRET_NAME.search(name)]
    secrets = [value for value in secrets_from_env(names) if len(value) >= 8]
    return redact(text, secrets)


def _option_for(filename: str, argv: list[str]) -> str | None:
    """The command-line option (``--config``) whose value is ``filename``, if one is."""
    try:
        target = Path(filename).resolve()
    except (OSError, ValueError, RuntimeError):
        return None

    def same(value: str) -> bool:
        try:
            return value == filename or Path(value).resolve() == target
        except (OSError, ValueError, RuntimeError):
            return False

    for i, token in enumerate(argv):
        if token.startswith("--") and "=" in token:
            option, _, value = token.partition("=")
            if same(value):
                return option
        elif i > 0 and argv[i - 1].startswith("-") and same(token):
            return argv[i - 1]
    return None


def _yaml_error() -> type[Exception] | None:
    try:
        import yaml
    except ImportError:  # pragma: no cover - pyyaml is a dependency
        return None
    return yaml.YAMLError


def describe(error: BaseException, argv: list[str] | None = None) -> tuple[int, str]:
    """(exit code, one-line message without the ``error:`` prefix) for ``error``."""
    argv = argv or []
    yaml_error = _yaml_error()
    if isinstance(error, InvalidInputError):
        return EXIT_USER_ERROR, str(error)
    if isinstance(error, UnicodeDecodeError):
        return EXIT_USER_ERROR, (
            f"a file is not UTF-8 text ({error.reason} at byte {error.start + 1}); save it as UTF-8"
        )
    if isinstance(error, json.JSONDecodeError):
        return EXIT_USER_ERROR, (
            f"invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}; fix the file"
        )
    if yaml_error is not None and isinstance(error, yaml_error):
        mark = getattr(error, "problem_mark", None)
        where = "" if mark is None else f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(error, "problem", None) or str(error)
        return EXIT_USER_ERROR, f"invalid YAML{where}: {problem}; fix the file"
    if isinstance(error, OSError) and error.filename is not None:
        filename = os.fsdecode(error.filename)
        reason = (error.strerror or str(error)).rstrip(".")
        option = _option_for(filename, argv)
        given = f"{option} {filename}" if option else filename
        return EXIT_USER_ERROR, f"{given}: {reason[:1].lower()}{reason[1:]}; check the path"
    if isinstance(error, OSError):
        return EXIT_FAILURE, f"{type(error).__name__}: {error}"
    if isinstance(error, CascadeError):  # a request no model could answer: not a bug
        return EXIT_FAILURE, str(error)
    if _missing_package(error):
        says_how = re.search(r"\binstall\b", str(error))  # e.g. "...: pip install pandas"
        fix = "" if says_how else "; install it (or the extra that provides it)"
        return EXIT_FAILURE, f"{error}{fix}"
    return EXIT_FAILURE, (
        f"internal error, a bug in cascade-router: {type(error).__name__}: {error}; please "
        f"report it with the traceback that --debug (or {DEBUG_ENV}=1) prints"
    )


_OUR_PACKAGES = ("cascade_core", "langchain_cascade", "llamaindex_cascade")


def _missing_package(error: BaseException) -> bool:
    """An optional package that is not installed (or installed in an incompatible version),
    as opposed to a broken import inside our own packages, which is a bug."""
    if not isinstance(error, ImportError):
        return False
    return error.name is None or error.name.partition(".")[0] not in _OUR_PACKAGES


def _debug_requested(ctx: typer.Context) -> bool:
    if ctx.params.get("debug"):
        return True
    return os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def report(error: BaseException, *, debug: bool, argv: list[str] | None = None) -> int:
    """Print ``error`` as the CLI does (traceback first with ``debug``); return the exit code."""
    code, message = describe(error, argv)
    if debug:
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        sys.stderr.write(scrub(text))
    typer.echo(f"error: {scrub(one_line(message))}", err=True)
    return code


class ErrorReportingGroup(TyperGroup):
    """The app's group: runs every sub-command inside `report` (see the module doc)."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        ctx.meta[_ARGV_KEY] = list(args)  # to name the option behind a missing file
        return super().parse_args(ctx, args)

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # usage errors (Typer's click exceptions) and deliberate exits stay as they are
        except BrokenPipeError:
            # The reader went away (`cascade-router ... | head`): not an error of ours. Point
            # stdout at /dev/null so the interpreter's final flush does not complain again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(141) from None
        except Exception as error:
            code = report(error, debug=_debug_requested(ctx), argv=ctx.meta.get(_ARGV_KEY))
            raise typer.Exit(code) from None
