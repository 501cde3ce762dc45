"""The layering rules, checked on the source (after restic's and dulwich's source tests)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "coursevault"

# package -> coursevault packages it must never import.  The tree model knows
# the store and nothing of Moodle, so a second door (a database) builds the
# same trees; diff and restore read trees through ``tree``, never through
# ``snapshot`` (ingest); history names and keeps snapshots without knowing
# how they were made.
_DOOR = {"moodledb", "structure", "definitions"}  # the database door (issue 21)
_ABOVE_STORAGE = {"store", "tree", "snapshot", "history", "restore", "diff", "cli", "api"}
FORBIDDEN = {
    "store": {"moodle2", "tree", "snapshot", "history", "restore", "diff", "cli", "api"} | _DOOR,
    "moodle2": {"store", "tree", "snapshot", "history", "restore", "diff", "cli", "api"} | _DOOR,
    "tree": {"moodle2", "snapshot", "history", "restore", "diff", "cli", "api"} | _DOOR,
    "history": {"moodle2", "tree", "snapshot", "restore", "diff", "cli", "api"} | _DOOR,
    # reading a site knows nothing of how backups are described or stored
    "moodledb": _ABOVE_STORAGE | {"moodle2", "structure", "definitions"},
    # the structure API runs definitions it is handed; it stores nothing
    "structure": _ABOVE_STORAGE | {"definitions"},
    "definitions": set(_ABOVE_STORAGE),
    "snapshot": {"restore", "diff", "cli", "api"},
    "diff": {"snapshot", "history", "restore", "cli", "api"} | _DOOR,
    # restore writes archives from trees, and (dbrestore) rows into a site
    # through the definitions read in reverse: the door, not ingest
    "restore": {"snapshot", "history", "diff", "cli", "api"},
}
# Packages whose every module docs/architecture.md names (store and cli are
# being reshaped by issue 19's other parts: add them when those land).
DOCUMENTED = (
    "moodle2", "tree", "history", "snapshot", "diff", "restore",
    "moodledb", "structure", "definitions",
)
ARCHITECTURE = SRC.parents[1] / "docs" / "architecture.md"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return {m.split(".")[1] for m in found if m.startswith("coursevault.") and m.count(".") >= 1}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layers_do_not_import_upwards(package: str) -> None:
    for path in (SRC / package).rglob("*.py"):
        bad = _imports(path) & FORBIDDEN[package]
        assert not bad, f"{path.relative_to(SRC)} imports {sorted(bad)}"


def _imported_modules(path: Path) -> set[str]:
    """Every coursevault module a file imports, in full (``from X import y``
    counts as X, and as X.y where that is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {m for m in found if m.startswith("coursevault")}


def test_the_cli_reaches_the_rest_only_through_the_api() -> None:
    """cli -> api only (plus its own modules and the error hierarchy): the
    rules users depend on live where a script can call them too."""
    allowed = ("api", "errors", "cli", "__version__")
    for path in (SRC / "cli").rglob("*.py"):
        bad = {
            m
            for m in _imported_modules(path)
            if m != "coursevault" and m.split(".")[1] not in allowed
        }
        assert not bad, f"{path.relative_to(SRC)} imports {sorted(bad)}"


def test_the_snapshot_layer_does_not_reach_into_the_catalog() -> None:
    """What writers remember goes through ``repo.stored_inputs``."""
    for path in [*(SRC / "snapshot").rglob("*.py"), *(SRC / "tree").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr == "catalog":
                raise AssertionError(f"{path.relative_to(SRC)}:{node.lineno} uses .catalog")


def test_every_package_has_its_rules() -> None:
    packages = {p.name for p in SRC.iterdir() if (p / "__init__.py").is_file()}
    assert packages - {"cli"} == set(FORBIDDEN), "a package without layering rules"


def test_the_architecture_names_every_package_and_module() -> None:
    text = ARCHITECTURE.read_text()
    diagram = text.split("```")[1]
    for package in sorted(set(FORBIDDEN) | {"cli", "api"}):
        assert package in diagram, f"docs/architecture.md's diagram lacks {package}"
    for package in DOCUMENTED:
        for path in sorted((SRC / package).glob("*.py")):
            if path.name != "__init__.py":
                assert f"`{path.name}`" in text, f"docs/architecture.md does not name {path}"


def test_tests_never_import_a_conftest() -> None:
    """pytest imports each folder's conftest.py as the module ``conftest``:
    importing from it finds whichever folder's came first.  Shared builders
    are fixtures (tests/conftest.py) or plain helpers (tests/helpers.py)."""
    tests = Path(__file__).resolve().parent
    for path in tests.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            assert "conftest" not in names, f"{path.relative_to(tests)} imports a conftest"


def test_only_the_cli_reads_the_environment() -> None:
    for path in SRC.rglob("*.py"):
        if path.parent.name == "cli":
            continue
        text = path.read_text()
        assert "os.environ" not in text and "getenv" not in text, (
            f"{path.relative_to(SRC)} reads the environment"
        )


def test_ruff_is_clean() -> None:
    root = SRC.parents[1]
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "src", "tests", "benchmarks"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean() -> None:
    root = SRC.parents[1]
    result = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=root, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
