"""Every public fixture: no traceback, a JSON report, the right exit code and claim count."""

from __future__ import annotations

import json

import pytest

from edi.errors import X12SyntaxError
from edi.x12 import read_all, write_all
from tests.conftest import CORPUS, require_corpus, run_cli

# Files whose SV101-1 is not a procedure code qualifier (HC, ER, IV, WK): their procedure codes
# cannot be read, so they are X12 errors (BAD_PROCEDURE_QUALIFIER, issue 16 item 8). Before, the
# lines read as no pump line and the files passed clean whatever codes they carried.
UNREADABLE_PROCEDURE_CODES = {
    # ISA16 declares ':' but SV101 is written with '>' (PROVENANCE.md says so too)
    "fixtures-public-2/lfh-x12/demo.cob.2ndary.example4.837": "SV1*HC>98940 under ISA16 ':'",
    "fixtures-public-2/lfh-x12/demo.example12.837": "SV1*HC>99284 under ISA16 ':'",
    "fixtures-public-2/lfh-x12/demo.example9.837": "SV1*HC>00142>QK>QS>P1 under ISA16 ':'",
    "fixtures-public/LinuxForHealth-x12/demo.example11.837": "SV1*HC>E0570>RR under ISA16 ':' (already P-bad)",
    # de-identified by its authors with the placeholder qualifier XX (SV1*XX>99999)
    "fixtures-public/Inteligenz-X12Parser/MedicaidExample.txt": "placeholder qualifier XX",
    "fixtures-public/Inteligenz-X12Parser/MissingEntityCode.txt": "placeholder qualifier XX (already P-bad)",
}


def test_corpus_is_complete() -> None:
    """The two PROVENANCE.md files list 59 and 78 files and every one of them is on disk."""
    corpus = require_corpus()
    sizes = {name: sum(1 for f in corpus if f.corpus == name) for name in {f.corpus for f in corpus}}
    assert sizes == {"fixtures-public": 59, "fixtures-public-2": 78}
    assert sum(1 for f in corpus if f.role == "P-ok") == 13 + 19
    assert all(f.path.is_file() for f in corpus)


@pytest.mark.parametrize("fixture", CORPUS, ids=[f.name for f in CORPUS])
def test_accepted_files_round_trip_byte_identical(fixture) -> None:
    data = fixture.path.read_bytes()
    try:
        segments, reader = read_all(data)
    except X12SyntaxError as error:
        assert fixture.role in ("P-bad", "REJ"), f"refused a {fixture.role} file: {error.code}"
        return
    assert write_all(segments, reader.trailer) == data


def test_every_fixture_gives_one_json_report_and_a_contract_exit_code() -> None:
    corpus = require_corpus()
    result = run_cli("validate", "--format", "json", *[str(f.path) for f in corpus])
    assert b"Traceback" not in result.stderr
    reports = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [r["file"] for r in reports] == [str(f.path) for f in corpus]
    assert result.returncode in (0, 1, 65)
    by_role = {f.role for f in corpus}
    assert by_role == {"P-ok", "P-ok*", "P-bad", "REJ"}
    for fixture, report in zip(corpus, reports, strict=True):
        assert report["status"] in ("clean", "findings", "error")
        assert set(report) >= {"file", "status", "transactions", "claims", "lines", "findings", "errors"}
        qualifier_errors = [e for e in report["errors"] if e["code"] == "BAD_PROCEDURE_QUALIFIER"]
        assert bool(qualifier_errors) == (fixture.name in UNREADABLE_PROCEDURE_CODES), fixture.name
        if fixture.role == "P-ok" and fixture.name not in UNREADABLE_PROCEDURE_CODES:
            assert report["errors"] == [], fixture.name
        if fixture.role == "P-ok":
            assert report["claims"] == fixture.claims, fixture.name


@pytest.mark.parametrize("fixture", [f for f in CORPUS if f.role == "P-ok"], ids=lambda f: f.name)
def test_clean_public_file_exit_code(fixture) -> None:
    result = run_cli("validate", "--format", "json", str(fixture.path))
    report = json.loads(result.stdout)
    assert report["claims"] == fixture.claims
    if fixture.name in UNREADABLE_PROCEDURE_CODES:
        assert result.returncode == 65
        assert {e["code"] for e in report["errors"]} == {"BAD_PROCEDURE_QUALIFIER"}
    else:
        assert result.returncode in (0, 1), result.stdout


@pytest.mark.parametrize("name", sorted(UNREADABLE_PROCEDURE_CODES))
def test_files_with_another_component_separator_are_errors_with_their_position(name: str) -> None:
    fixture = next(f for f in require_corpus() if f.name == name)
    report = json.loads(run_cli("validate", "--format", "json", str(fixture.path)).stdout)
    errors = [e for e in report["errors"] if e["code"] == "BAD_PROCEDURE_QUALIFIER"]
    data = fixture.path.read_bytes()
    for error in errors:
        assert data[error["offset"]:].startswith(b"SV1"), name
        assert error["message"].startswith("SV101-1 is not a procedure code qualifier (ER, HC, IV, WK)")
        if ">" in UNREADABLE_PROCEDURE_CODES[name]:
            assert "another character than ISA16 declares" in error["message"]
