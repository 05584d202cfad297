"""Every error code edi837's source emits, found by reading the source (AST), not by running it.

A code is emitted where a string literal is passed as one:

* ``SomeError(..., code="X")`` for an ``EdiError`` subclass, and ``code = "X"`` in such a class;
* the first argument of ``ErrorEntry("X", ...)``, of the reader's ``_syntax_error("X", ...)``, of
  the walker's and the envelope checker's ``_error("X", ...)``;
* the reason of the watcher's ``_reject_inbound`` / ``_reject_work`` / ``_reject_work_entry``;
* ``ErrorEntry('X', ...)`` inside a string literal: source code the walker generates and compiles;
* a code built by an f-string (``f"{tag}01_COUNT"``, ``f"{prefix}_{self.code}"``) is returned
  as its template (``{}01_COUNT``) for the test to expand.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import edi
from edi import errors

EDI = Path(edi.__file__).parent
# Functions whose first positional argument is an error code.
CODE_FIRST = {"ErrorEntry", "_syntax_error", "_error"}
# The watcher's rejects: the reason is the fourth positional argument (after path/work, name or
# identity, info or claim) or the second for ``_reject_work_entry``.
REASON_AT = {"_reject_inbound": 3, "_reject_work": 3, "_reject_work_entry": 1}


GENERATED = re.compile(r"""ErrorEntry\(\s*['"]([A-Z][A-Z0-9_]+)['"]""")


class Emitted(NamedTuple):
    code: str  # the literal, or an f-string's template with {} for each placeholder
    path: str
    line: int


def _error_class_names() -> set[str]:
    names = set()
    pending = [errors.EdiError]
    while pending:
        cls = pending.pop()
        names.add(cls.__name__)
        pending += cls.__subclasses__()
    return names


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _literals(node: ast.expr | None) -> list[str]:
    """The codes an expression can be: a literal, both arms of ``a if c else b``, a template."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _literals(node.body) + _literals(node.orelse)
    if isinstance(node, ast.JoinedStr):
        return ["".join(part.value if isinstance(part, ast.Constant) else "{}" for part in node.values)]
    return []


def _import_every_module() -> None:
    import importlib
    import pkgutil

    for module in pkgutil.walk_packages(edi.__path__, "edi."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)


def _subclasses_edi_error(node: ast.ClassDef, classes: set[str]) -> bool:
    return any(_name(base) in classes for base in node.bases)


def emitted(root: Path = EDI) -> Iterator[Emitted]:
    # Importing every module lets __subclasses__ see each EdiError subclass, whatever the tests
    # that ran before in this process imported (modules are imported lazily, where used).
    _import_every_module()

    classes = _error_class_names()
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        relative = str(path.relative_to(root.parent))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and (node.name == "EdiError" or _subclasses_edi_error(node, classes)):
                for statement in node.body:
                    if (isinstance(statement, ast.Assign) and len(statement.targets) == 1
                            and _name(statement.targets[0]) == "code"):
                        for code in _literals(statement.value):
                            yield Emitted(code, relative, statement.lineno)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and "ErrorEntry(" in node.value:
                for code in GENERATED.findall(node.value):
                    yield Emitted(code, relative, node.lineno)
            if not isinstance(node, ast.Call):
                continue
            called = _name(node.func)
            found: list[ast.expr | None] = []
            if called in classes:
                found += [keyword.value for keyword in node.keywords if keyword.arg == "code"]
            if called in CODE_FIRST and node.args:
                found.append(node.args[0])
            if called in REASON_AT and len(node.args) > REASON_AT[called]:
                found.append(node.args[REASON_AT[called]])
            for value in found:
                for code in _literals(value):
                    yield Emitted(code, relative, node.lineno)
