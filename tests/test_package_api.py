"""`cascade_core`'s public names: lazy, complete, typed, and cheap to import.

The import checks run in fresh interpreters: in this process other tests have long since
loaded the engine, so `sys.modules` here proves nothing.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import json
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

import cascade_core

ROOT = Path(__file__).resolve().parent.parent
INIT = ROOT / "cascade_core" / "__init__.py"
HEAVY = ("litellm", "numpy", "scipy", "pydantic", "cascade_core.engine", "cascade_core.strategies")


def _fresh(code: str) -> str:
    """stdout of ``code`` run by a new interpreter in the repository root."""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _loaded_after(statement: str) -> list[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    return json.loads(_fresh(code))


def test_import_cascade_core_loads_no_heavy_package() -> None:
    loaded = _loaded_after("import cascade_core")
    heavy = [m for m in loaded if m.partition(".")[0] in HEAVY or m.startswith(HEAVY)]
    assert heavy == []
    assert [m for m in loaded if m.startswith("cascade_core.")] == []


def test_version_alone_loads_no_heavy_package() -> None:
    loaded = _loaded_after("import cascade_core; cascade_core.__version__")
    assert not [m for m in loaded if m.startswith(HEAVY)]


def test_an_export_loads_only_its_own_stack() -> None:
    """The strategies need SciPy, not LiteLLM; the errors need neither."""
    strategies = _loaded_after("from cascade_core import CascadeRouting")
    assert "scipy" in strategies and "litellm" not in strategies
    assert "cascade_core.engine" not in strategies
    errors = _loaded_after("from cascade_core import InvalidInputError")
    assert not [m for m in errors if m.startswith(HEAVY)]


def test_every_export_is_the_object_its_home_module_defines() -> None:
    exports = cascade_core._EXPORTS
    assert set(cascade_core.__all__) == {"__version__", *exports}
    for name, home in exports.items():
        assert getattr(cascade_core, name) is getattr(importlib.import_module(home), name), name
    assert set(cascade_core.__all__) <= set(dir(cascade_core))


def test_type_checking_imports_name_exactly_the_exports() -> None:
    """Type checkers read the TYPE_CHECKING block, the runtime reads `_EXPORTS`: one list."""
    tree = ast.parse(INIT.read_text())
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"
    )
    declared = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom)
        for alias in node.names:
            assert alias.asname == alias.name, f"{alias.name}: re-export it as itself"
            declared[alias.name] = node.module
    assert declared == cascade_core._EXPORTS


def test_no_export_is_named_like_a_submodule() -> None:
    """Importing a submodule sets the package attribute of its name to the module, so an
    export of that name would turn into a module depending on import order."""
    submodules = {info.name for info in pkgutil.iter_modules(cascade_core.__path__)}
    assert not submodules & set(cascade_core._EXPORTS)


def test_an_export_stays_itself_after_its_submodules_are_imported() -> None:
    code = (
        "import cascade_core.strategies.routing, cascade_core.estimates\n"
        "from cascade_core import Routing, Uncertainty\n"
        "print(Routing.__module__, Uncertainty.__module__)"
    )
    assert _fresh(code).split() == ["cascade_core.strategies.routing", "cascade_core.estimates"]


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'CascadeEngin'"):
        _ = cascade_core.CascadeEngin  # type: ignore[attr-defined]
    assert not hasattr(cascade_core, "local_models")
    with pytest.raises(ImportError):
        exec("from cascade_core import not_a_name", {})


def test_version_is_the_installed_distributions_and_pyprojects() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == cascade_core.DISTRIBUTION
    assert cascade_core.__version__ == importlib.metadata.version(project["name"])
    assert cascade_core.__version__ == project["version"]


def test_the_library_never_loads_the_cli_or_the_local_server_tooling() -> None:
    """At run time too (import-linter sees only static imports): the engine, the gateway and
    both adapters, imported together, load neither `cascade_core.cli` nor `cascade_core.local`."""
    loaded = _loaded_after(
        "import cascade_core.engine, cascade_core.gateway, langchain_cascade, llamaindex_cascade"
    )
    assert "cascade_core.engine" in loaded
    assert [m for m in loaded if m.startswith(("cascade_core.cli", "cascade_core.local"))] == []
    assert "llama_cpp" not in loaded


# Extras whose members are commands (pytest, ruff, lint-imports), not imports, or other extras.
NOT_IMPORTED_EXTRAS = {"dev", "all"}
SOURCE_DIRS = ("cascade_core", "langchain_cascade", "llamaindex_cascade", "tests", "examples")


def _import_names_by_distribution() -> dict[str, set[str]]:
    names: dict[str, set[str]] = {}
    for top, distributions in importlib.metadata.packages_distributions().items():
        for distribution in distributions:
            names.setdefault(_canonical(distribution), set()).add(top)
    return names


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_optional_dependency_is_imported_somewhere() -> None:
    """An extra that installs what no code imports is dead weight in every user's install
    (scikit-learn sat in `bench` that way). An import, or the module's name quoted for
    `find_spec`/`import_module`, counts as a use."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    sources = "\n".join(
        path.read_text(errors="replace")
        for folder in SOURCE_DIRS
        for path in sorted((ROOT / folder).rglob("*.py"))
    )
    installed = _import_names_by_distribution()
    unused, missing = [], []
    for extra, requirements in extras.items():
        if extra in NOT_IMPORTED_EXTRAS:
            continue
        for requirement in requirements:
            name = _canonical(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement).group())
            tops = {top for top in installed.get(name, ()) if not top.startswith("_")}
            if not tops:
                missing.append(f"{extra}: {name}")
                continue
            used = any(
                re.search(rf"^\s*(?:import|from)\s+{top}\b|[\"']{top}[\"'.]", sources, re.M)
                for top in tops
            )
            if not used:
                unused.append(f"{extra}: {name} (imports as {', '.join(sorted(tops))})")
    assert unused == [], f"extras list packages nothing imports: {unused}"
    if missing:
        pytest.skip(f"not installed, so not checked: {', '.join(missing)}")
