"""The error-code registry: every emitted code registered and documented, none ever removed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from edi import codes, errors
from edi.adapters import watcher
from tests.conftest import ROOT
from tests.emitted_codes import emitted

GOLDEN = ROOT / "tests" / "golden" / "error-codes.txt"
# Codes built by an f-string, as the source's template with {} for each placeholder, and what
# each can become: the envelope trailers (edi/x12/envelope.py) and pyx12's codes (edi/adapters/ig.py).
TEMPLATES = {
    "{}01_COUNT": ["SE01_COUNT", "GE01_COUNT", "IEA01_COUNT"],
    "{}02_CONTROL": ["SE02_CONTROL", "GE02_CONTROL", "IEA02_CONTROL"],
    "{}_{}": ["IG_IK3_8", "IG_IK4_6", "IG_IK5_5", "IG_AK9_4", "IG_TA1_024", "IG_TA1_ENGINE"],
    # edi.adapters.ig_own: one f-string per 999 level, the X12 code after the prefix.
    "IG_TA1_{}": ["IG_TA1_014"], "IG_AK9_{}": ["IG_AK9_5"], "IG_IK5_{}": ["IG_IK5_4"],
    "IG_IK3_{}": ["IG_IK3_3"], "IG_IK4_{}": ["IG_IK4_7"],
}


def emitted_codes() -> dict[str, str]:
    """code -> where it is first emitted (path:line), templates expanded."""
    found: dict[str, str] = {}
    for item in emitted():
        for code in TEMPLATES.get(item.code, [item.code]):
            found.setdefault(code, f"{item.path}:{item.line}")
    return found


def golden() -> set[str]:
    lines = GOLDEN.read_text(encoding="utf-8").splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def test_the_source_scan_finds_codes_of_every_kind_of_emitter() -> None:
    """The scan is what the registry test relies on: it must see each way a code is emitted."""
    found = emitted_codes()
    for code, place in {"EDI000": "edi/errors.py", "BAD_DELIMITER": "edi/x12/reader.py",
                        "UTF16": "edi/x12/reader.py", "MISSING_IEA": "edi/x12/envelope.py",
                        "SE01_COUNT": "edi/x12/envelope.py", "HL_DUPLICATE_ID": "edi/claims/walker.py",
                        "HISTORY_UNAVAILABLE": "edi/adapters/history.py", "HARD_LINK": "edi/adapters/watcher.py",
                        "IG_NOT_RUN": "edi/adapters/ig_check.py", "INPUT_CHANGED": "edi/adapters/",
                        "RULES_INVALID": "edi/rules/book.py"}.items():
        assert found.get(code, "").startswith(place), code
    assert not [code for code in found if "{}" in code], "a new f-string code: add it to TEMPLATES"


def test_every_emitted_code_is_registered() -> None:
    unregistered = {code: where for code, where in emitted_codes().items() if codes.lookup(code) is None}
    assert unregistered == {}, "register these in edi/codes.py"


def test_every_registered_code_is_emitted_somewhere() -> None:
    """The registry lists what edi837 emits, not wishes (the golden list keeps retired codes)."""
    found = emitted_codes()
    emitted_names = set(found) | {codes.lookup(code).name for code in found if codes.lookup(code)}
    assert [c.name for c in codes.CODES if c.name not in emitted_names] == []


def test_each_code_is_registered_once_with_a_family_and_a_one_line_doc() -> None:
    names = [code.name for code in codes.CODES]
    assert len(names) == len(set(names))
    for code in codes.CODES:
        assert code.family and code.doc and "\n" not in code.doc and "|" not in code.doc, code.name
        assert code.exit_code in (None, 64, 65, 66, 70, 74, 75), code.name
        assert code.http_status in (None, 422, 500, 503), code.name


def test_no_registered_code_ever_disappears() -> None:
    """Codes are a public contract: the golden list holds every code ever registered, and each
    must still be registered (a retired code stays, documented as such)."""
    registered = {code.shown for code in codes.CODES}
    assert golden() - registered == set(), "a code was removed from edi/codes.py"
    assert registered - golden() == set(), "add the new code to tests/golden/error-codes.txt"


def test_every_registered_code_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert codes.table() in readme, "regenerate with bin/make-error-codes"
    for code in codes.CODES:
        assert f"| `{code.shown}` |" in readme, code.name


def test_the_readme_script_agrees() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "bin" / "make-error-codes"), "--check"],
                            capture_output=True, timeout=60, check=False)
    assert result.returncode == 0


def test_watcher_reject_reasons_are_registered() -> None:
    assert [reason for reason in watcher.REJECT_REASONS if codes.lookup(reason) is None] == []


@pytest.mark.parametrize("cls", [errors.EdiError, errors.X12SyntaxError, errors.RulesError, errors.UsageError,
                                 errors.InputError, errors.OutputError, errors.TemporaryFailure,
                                 errors.HistoryKeyError, errors.HistoryStoreError])
def test_an_error_class_hints_are_its_default_codes_entry(cls: type[errors.EdiError]) -> None:
    entry = codes.lookup(cls.code)
    assert entry is not None
    assert cls.exit_code == entry.exit_code == cls("x").exit_code
    assert cls.http_status == entry.http_status == cls("x").http_status


def test_the_exit_codes_and_http_statuses_of_the_classes_are_unchanged() -> None:
    """What the front ends answered before the registry: exit codes per class, and the gateway's
    422 for a file it cannot read, 500 for a broken history, 503 for a retry."""
    assert {cls.__name__: cls.exit_code for cls in (
        errors.EdiError, errors.X12SyntaxError, errors.RulesError, errors.UsageError, errors.InputError,
        errors.OutputError, errors.TemporaryFailure, errors.HistoryKeyError, errors.HistoryStoreError)} == {
        "EdiError": 70, "X12SyntaxError": 65, "RulesError": 64, "UsageError": 64, "InputError": 66,
        "OutputError": 74, "TemporaryFailure": 75, "HistoryKeyError": 64, "HistoryStoreError": 74}
    assert errors.X12SyntaxError("x", code="NOT_X12").http_status == 422
    assert errors.HistoryStoreError("x", code="HISTORY_SCHEMA_UNKNOWN").http_status == 500
    assert errors.UsageError("x", code="HISTORY_URL").http_status == 500
    assert errors.TemporaryFailure("x", code="HISTORY_UNAVAILABLE").http_status == 503


def test_a_code_raised_with_a_class_has_that_class_hints() -> None:
    """``Cls(..., code="X")``: X's registered exit code and HTTP status are the class's, so the
    registry never contradicts the family an error is caught by."""
    import ast

    classes = {cls.__name__: cls for cls in (errors.EdiError, errors.X12SyntaxError, errors.RulesError,
                                             errors.UsageError, errors.InputError, errors.OutputError,
                                             errors.TemporaryFailure, errors.HistoryKeyError,
                                             errors.HistoryStoreError, watcher.InputChanged)}
    checked = 0
    for path in sorted((ROOT / "edi").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in classes):
                continue
            for keyword in node.keywords:
                if keyword.arg == "code" and isinstance(keyword.value, ast.Constant):
                    cls = classes[node.func.id]
                    entry = codes.lookup(keyword.value.value)
                    assert entry is not None
                    assert (entry.exit_code, entry.http_status) == (cls.exit_code, cls.http_status), \
                        f"{path.name}:{node.lineno} {keyword.value.value}"
                    checked += 1
    assert checked >= 15


def test_variable_codes_are_found_by_their_prefix_only_with_a_suffix() -> None:
    assert codes.lookup("IG_IK4_6").name == "IG_IK4_"
    assert codes.lookup("IG_IK4_") is None
    assert codes.lookup("NOT_A_CODE") is None


def test_the_scan_reads_codes_in_source_the_code_generates(tmp_path) -> None:
    """A walker may compile handlers from source text: codes in that text count as emitted."""
    package = tmp_path / "generated"
    package.mkdir()
    (package / "handlers.py").write_text(
        'TEMPLATE = "    errors.append(ErrorEntry(\'LINE_WITHOUT_SV1\', raw[0], None, NO_SERVICE))"\n'
        'OTHER = "not a code: ErrorEntry(code)"\n')
    assert [item.code for item in emitted(package)] == ["LINE_WITHOUT_SV1"]
