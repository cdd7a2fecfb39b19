"""The import-linter contracts in pyproject.toml can fail: each test copies the packages,
injects one import that breaks the architecture, and runs the real `lint-imports` on the copy.

`scripts/test.sh` runs `lint-imports` on the tree itself; these tests prove that a green
run means something (a contract that names a missing module, or ignores too much, would let
these imports through).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("cascade_core", "langchain_cascade", "llamaindex_cascade")
LINT = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}  # the copy, ahead of the editable install
    return subprocess.run(
        [LINT, "--no-cache"], cwd=tree, env=env, capture_output=True, text=True, timeout=300
    )


def _inject(tree: Path, module: str, statement: str) -> None:
    path = tree / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = tree / module.replace(".", "/") / "__init__.py"
    path.write_text(path.read_text() + f"\n{statement}  # injected by the test\n")


def test_the_copied_tree_keeps_every_contract(tree: Path) -> None:
    done = _lint(tree)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "statement", "broken"),
    [
        (
            "cascade_core.engine.trace",
            "import cascade_core.calibrate.export",
            "cascade_core.engine is not allowed to import cascade_core.calibrate",
        ),
        (
            "cascade_core.engine.config",
            "import cascade_core.replay.loaders",
            "cascade_core.engine is not allowed to import cascade_core.replay",
        ),
        (
            "cascade_core.strategies.routing",
            "import cascade_core.engine",
            "cascade_core.strategies is not allowed to import cascade_core.engine",
        ),
        (
            "cascade_core.gateway.serve",
            "import cascade_core.local.server",
            "cascade_core.gateway is not allowed to import cascade_core.local",
        ),
        (
            "cascade_core.learned.routers",
            "import cascade_core.bench.report",
            "cascade_core.learned is not allowed to import cascade_core.bench",
        ),
        (
            "cascade_core.signals.access",
            "import langchain_core",
            "cascade_core is not allowed to import langchain_core",
        ),
        (
            "cascade_core.jobs.journal",
            "import cascade_core.calibrate.devset",
            "cascade_core.jobs is not allowed to import cascade_core.calibrate",
        ),
    ],
)
def test_an_import_against_the_architecture_breaks_a_contract(
    tree: Path, module: str, statement: str, broken: str
) -> None:
    _inject(tree, module, statement)
    done = _lint(tree)
    assert done.returncode == 1, done.stdout + done.stderr
    assert broken in " ".join(done.stdout.split()), done.stdout


def test_a_cycle_between_sibling_modules_breaks_the_acyclic_contract(tree: Path) -> None:
    """Two modules of one package importing each other: no layer contract sees it."""
    _inject(tree, "cascade_core.engine.trace", "import cascade_core.engine.redaction")
    _inject(tree, "cascade_core.engine.redaction", "import cascade_core.engine.trace")
    done = _lint(tree)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "No cycles are allowed in cascade_core.engine" in done.stdout
