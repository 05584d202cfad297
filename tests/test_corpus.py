"""Every public fixture: no traceback, a JSON report, the right exit code and claim count."""

from __future__ import annotations

import json

import pytest

from edi.errors import X12SyntaxError
from edi.x12 import read_all, write_all
from tests.conftest import CORPUS, require_corpus, run_cli


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
        if fixture.role == "P-ok":
            assert report["errors"] == [], fixture.name
            assert report["claims"] == fixture.claims, fixture.name


@pytest.mark.parametrize("fixture", [f for f in CORPUS if f.role == "P-ok"], ids=lambda f: f.name)
def test_clean_public_file_exit_code(fixture) -> None:
    result = run_cli("validate", "--format", "json", str(fixture.path))
    assert result.returncode in (0, 1), result.stdout
    assert json.loads(result.stdout)["claims"] == fixture.claims
