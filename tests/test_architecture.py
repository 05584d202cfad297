"""The core opens no file, socket or database and reads no clock or environment."""

from __future__ import annotations

import ast
from pathlib import Path

import edi

CORE = ["x12", "claims", "ig", "rules", "report", "rewrite.py", "pipeline.py", "synthetic.py", "errors.py"]
FORBIDDEN = {"os", "pathlib", "socket", "sqlite3", "psycopg", "time", "subprocess", "shutil", "tempfile", "io"}


def core_files() -> list[Path]:
    root = Path(edi.__file__).parent
    files = []
    for name in CORE:
        path = root / name
        files += sorted(path.rglob("*.py")) if path.is_dir() else ([path] if path.exists() else [])
    return files


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_core_imports_no_io_modules() -> None:
    files = core_files()
    assert len(files) >= 10
    offenders = {str(p.name): sorted(imported_modules(p) & FORBIDDEN) for p in files}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_core_never_calls_open() -> None:
    for path in core_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in ("open", "input", "print"), f"{path.name} calls {node.func.id}"


# Modules that import nothing of edi837 when loaded (errors.py reads the code registry inside a
# function, when a hint is asked for): any layer may use them.
LEAVES = ("edi.errors", "edi.records")


def test_x12_layer_imports_nothing_else_of_edi837() -> None:
    root = Path(edi.__file__).parent / "x12"
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("edi."):
                assert node.module.startswith(("edi.x12", *LEAVES)), f"{path.name} imports {node.module}"


def test_the_leaves_import_nothing_of_edi837() -> None:
    for module in LEAVES:
        path = Path(edi.__file__).parent / (module.removeprefix("edi.") + ".py")
        imported = [node.module for node in ast.parse(path.read_text()).body
                    if isinstance(node, ast.ImportFrom) and node.module]
        assert not [name for name in imported if name == "edi" or name.startswith("edi.")], module


def test_code_passes_the_linter() -> None:
    """ruff (pinned in the test extra, rules in pyproject.toml) over the code, tests and tools."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "edi", "tests", "bin"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout[-4000:]


def imported_names(path: Path) -> set[str]:
    """Every module a file imports, in full (``edi.adapters.files``), relative imports resolved."""
    names = set()
    package = ".".join(path.relative_to(Path(edi.__file__).parent.parent).with_suffix("").parts[:-1])
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module if node.level == 0 else ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], node.module])
            names.add(base)
    return names


def test_core_imports_no_adapter() -> None:
    """The core (x12, claims, rules, report, rewrite, pipeline) never reaches out to a front end."""
    offenders = {p.name: sorted(n for n in imported_names(p) if n == "edi.adapters" or n.startswith("edi.adapters."))
                 for p in core_files()}
    assert {k: v for k, v in offenders.items() if v} == {}
    assert "edi.adapters" in imported_names(Path(edi.__file__).parent / "adapters" / "jobs.py")  # the check sees them


def test_pyx12_is_imported_by_its_adapter_only() -> None:
    """pyx12 stays behind edi/adapters/ig.py; everything else sees edi837's own findings."""
    root = Path(edi.__file__).parent
    importers = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.py")
                       if any(n == "pyx12" or n.startswith("pyx12.") for n in imported_names(p)))
    assert importers == ["adapters/ig.py"]


def test_package_passes_the_type_checker() -> None:
    """mypy (pinned in the test extra) over the whole package: core and front ends."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    result = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", "edi"],
                            cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-4000:]
