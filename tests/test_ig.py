"""``validate --ig`` and acknowledgments: pyx12 behind one adapter, deterministic 999 and TA1."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import edi
from edi.adapters.ig import pyx12_validate
from tests.conftest import ROOT, require_corpus, run_cli

GOOD = (ROOT / "fixtures" / "rules" / "PMP001" / "good.x12").read_bytes()


def run_ig(tmp_path: Path, data: bytes, *extra: str):
    source = tmp_path / "in.x12"
    source.write_bytes(data)
    ack = tmp_path / "ack.x12"
    result = run_cli("validate", "--ig", "--ack", str(ack), "--format", "json", *extra, str(source))
    report = json.loads(result.stdout) if result.stdout else None
    return result, report, ack.read_bytes() if ack.exists() else None


def segments(ack: bytes) -> list[str]:
    return [line.rstrip("~") for line in ack.decode().splitlines()]


def assert_pyx12_accepts(ack: bytes) -> None:
    ok, errors = pyx12_validate(ack)
    assert ok and errors == [], errors


def test_clean_file_gives_an_accepting_999(tmp_path: Path) -> None:
    result, report, ack = run_ig(tmp_path, GOOD)
    assert result.returncode == 0 and report["errors"] == []
    lines = segments(ack)
    assert lines[2] == "ST*999*0001*005010X231A1"
    assert "IK5*A" in lines and "AK9*A*1*1*1" in lines
    assert lines[-1] == "IEA*1*000000001" and lines[1].split("*")[6] == "1"  # control numbers from the input
    assert_pyx12_accepts(ack)


def test_wrong_se01_is_exit_65_with_position_and_a_rejecting_999(tmp_path: Path) -> None:
    data = GOOD.replace(b"\nSE*", b"\nSE*1", 1)
    result, report, ack = run_ig(tmp_path, data)
    assert result.returncode == 65
    (ig,) = [e for e in report["errors"] if e["code"].startswith("IG_")]
    assert ig["code"] == "IG_IK5_4" and data[ig["offset"] :].startswith(b"SE*")
    assert ig["segment"] == data[: ig["offset"]].count(b"~") + 1
    lines = segments(ack)
    assert "IK5*R*4" in lines and "AK9*R*1*1*0" in lines
    assert_pyx12_accepts(ack)


def test_element_error_reaches_ik4_but_its_value_stays_out_of_the_report(tmp_path: Path) -> None:
    data = GOOD.replace(b"SV1*HC:96416*400.00", b"SV1*HC:96416*4Q7Z", 1)
    result, report, ack = run_ig(tmp_path, data, "--log-level", "debug")
    assert result.returncode == 65
    codes = {e["code"]: e for e in report["errors"]}
    assert "IG_IK4_6" in codes and "loop 2400" in codes["IG_IK4_6"]["message"]
    assert data[codes["IG_IK4_6"]["offset"] :].startswith(b"SV1*")
    assert b"4Q7Z" not in result.stdout and b"4Q7Z" not in result.stderr
    lines = segments(ack)
    assert any(line.startswith("IK3*SV1*") and line.endswith("*8") for line in lines)
    assert "IK4*2*782*6*4Q7Z" in lines  # the copy goes to the submitter only
    assert_pyx12_accepts(ack)


def test_same_input_same_acknowledgment(tmp_path: Path) -> None:
    data = GOOD.replace(b"\nSE*", b"\nSE*1", 1)
    first = run_ig(tmp_path, data)[2]
    second = run_ig(tmp_path, data)[2]
    assert first == second
    configured = run_ig(tmp_path, data, "--ack-control", "4242")[2]
    assert segments(configured)[-1] == "IEA*1*000004242" and "*000004242*" in segments(configured)[0]


@pytest.mark.parametrize(("mutate", "note"), [
    (lambda d: d[: d.rindex(b"GE*")], "023"),
    (lambda d: d.replace(b"IEA*1*000000001", b"IEA*1*000000007"), "001"),
    (lambda d: d.replace(b"IEA*1*", b"IEA*2*"), "021"),
])
def test_envelope_failures_give_a_ta1(tmp_path: Path, mutate, note: str) -> None:
    result, _report, ack = run_ig(tmp_path, mutate(GOOD))
    assert result.returncode == 65
    lines = segments(ack)
    assert lines[1] == f"TA1*000000001*261101*1200*R*{note}" and lines[2] == "IEA*0*000000001"
    assert_pyx12_accepts(ack)


def test_x222a2_and_non_ascii_input_run(tmp_path: Path) -> None:
    a2 = GOOD.replace(b"005010X222A1", b"005010X222A2")
    result, report, _ = run_ig(tmp_path, a2)
    assert result.returncode == 0, report
    assert "IG_VERSION_MAPPED" in {n["code"] for n in report["notes"]}
    latin = GOOD.replace(b"EXAMPLE", b"EXAMPL\xc9")
    result, report, _ = run_ig(tmp_path, latin)
    assert result.returncode in (0, 65) and b"Traceback" not in result.stderr


def test_what_pyx12_would_stop_on_is_caught_first(tmp_path: Path) -> None:
    stray = GOOD.replace(b"~\nBHT", b"~~\nBHT", 1)
    result, report, _ = run_ig(tmp_path, stray, "--ig-engine", "pyx12")
    codes = {e["code"] for e in report["errors"]}
    assert result.returncode == 65 and {"EMPTY_SEGMENT", "IG_INCOMPLETE"} <= codes
    huge = GOOD.replace(b"NTE*", b"NTE*").replace(b"HI*ABK:C184", b"HI*ABK:C184" + b"X" * 9000, 1)
    result, report, _ = run_ig(tmp_path, huge, "--ig-engine", "pyx12")
    assert result.returncode == 65 and "IG_SEGMENT_TOO_LONG" in {e["code"] for e in report["errors"]}


def test_the_own_engine_reads_what_pyx12_stops_on(tmp_path: Path) -> None:
    """A stray ``~~`` is an unrecognized (empty) segment at its place; a 9 KB HI is checked."""
    stray = GOOD.replace(b"~\nBHT", b"~~\nBHT", 1)
    result, report, ack = run_ig(tmp_path, stray)
    (empty,) = [e for e in report["errors"] if e["code"] == "IG_IK3_1"]
    assert result.returncode == 65 and empty["segment"] == 4 and "IG_INCOMPLETE" not in str(report)
    assert_pyx12_accepts(ack)
    huge = GOOD.replace(b"HI*ABK:C184", b"HI*ABK:C184" + b"X" * 9000, 1)
    result, report, ack = run_ig(tmp_path, huge)
    assert result.returncode == 65 and "IG_IK4_5" in {e["code"] for e in report["errors"]}
    assert_pyx12_accepts(ack)


def test_without_ig_no_pyx12_runs(tmp_path: Path) -> None:
    source = tmp_path / "in.x12"
    source.write_bytes(GOOD.replace(b"SV1*HC:96416*400.00", b"SV1*HC:96416*4Q7Z", 1))
    report = json.loads(run_cli("validate", "--format", "json", str(source)).stdout)
    assert not any(e["code"].startswith("IG_") for e in report["errors"])


def test_public_corpus_with_ig_gives_no_traceback(tmp_path: Path) -> None:
    corpus = require_corpus()
    result = run_cli("validate", "--ig", "--format", "json", *[str(f.path) for f in corpus], timeout=600)
    assert b"Traceback" not in result.stderr and result.returncode in (0, 1, 65)
    reports = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(reports) == len(corpus)


def test_only_the_adapter_imports_pyx12() -> None:
    root = Path(edi.__file__).parent
    importers = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            if any(name.split(".")[0] == "pyx12" for name in names):
                importers.add(path.relative_to(root).as_posix())
    assert importers == {"adapters/ig.py"}
