"""PHI canary: names, member IDs and birth dates never reach logs, reports or error messages."""

from __future__ import annotations

from datetime import date

import pytest

from edi.synthetic import LineSpec, Patient, Visit, render
from tests.conftest import run_cli

CANARY_LAST = "QZXCANARYLASTQZX"
CANARY_FIRST = "QZXCANARYFIRSTQZX"
CANARY_MEMBER = "QZXMEMBER998877QZX"
CANARY_BIRTH = date(1931, 7, 29)
CANARY_STRINGS = (CANARY_LAST, CANARY_FIRST, CANARY_MEMBER, "19310729", "1931-07-29")

PATIENT = Patient(last_name=CANARY_LAST, first_name=CANARY_FIRST, member_id=CANARY_MEMBER,
                  birth_date=CANARY_BIRTH, sex="F", payer=0)
DEPENDENT = Patient(last_name=CANARY_LAST, first_name=CANARY_FIRST, member_id=CANARY_MEMBER,
                    birth_date=CANARY_BIRTH, sex="F", payer=1,
                    dependent_of=(CANARY_LAST, CANARY_FIRST, CANARY_BIRTH))


def canary_file() -> bytes:
    visits = [
        Visit(patient=PATIENT, service_date=date(2026, 11, 2), claim_id="CAN1",
              lines=(LineSpec(code="96416"), LineSpec(code="96521"), LineSpec(code="96414"))),
        Visit(patient=DEPENDENT, service_date=date(2026, 11, 2), claim_id="CAN2",
              lines=(LineSpec(code="96413"), LineSpec(code="96523"))),
    ]
    return b"".join(render(visits))


def broken_variants(data: bytes) -> dict[str, bytes]:
    """Inputs that go wrong in different places, all carrying the canary strings."""
    return {
        "good": data,
        "bad se count": data.replace(b"\nSE*", b"\nSE*1", 1),
        "truncated": data[: len(data) * 2 // 3],
        "bad number": data.replace(b"SV1*HC:96416*400.00", b"SV1*HC:96416*" + CANARY_MEMBER.encode(), 1),
        "bad date": data.replace(b"DTP*472*D8*20261102", b"DTP*472*D8*" + CANARY_LAST.encode()[:8], 1),
        "bad segment id": data.replace(b"N3*", b"n3*" + CANARY_LAST.encode() + b"*", 1),
        "huge segment": data.replace(b"NM1*IL*1*", b"NM1*IL*1*" + CANARY_LAST.encode() * 5000, 1),
        "not x12": CANARY_LAST.encode() + b"\n" + CANARY_MEMBER.encode(),
        "starts at ST": data[data.index(b"ST*837") :],
    }


def assert_no_canary(*outputs: bytes) -> None:
    for output in outputs:
        for canary in CANARY_STRINGS:
            assert canary.encode() not in output, f"canary {canary} leaked"


def test_canary_file_really_carries_the_strings() -> None:
    data = canary_file()
    for canary in (CANARY_LAST, CANARY_FIRST, CANARY_MEMBER, "19310729"):
        assert canary.encode() in data


VARIANTS = list(broken_variants(canary_file()).keys())


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_validate_never_shows_phi(tmp_path, name: str, fmt: str) -> None:
    data = broken_variants(canary_file())[name]
    path = tmp_path / "canary.x12"
    path.write_bytes(data)
    result = run_cli("validate", "--log-level", "debug", "--format", fmt, "--max-segment-length", "4096", str(path))
    assert result.returncode in (0, 1, 65), result.stderr
    assert b"Traceback" not in result.stderr
    assert_no_canary(result.stdout, result.stderr)


def test_rules_and_standard_input_never_show_phi() -> None:
    result = run_cli("validate", "--log-level", "debug", "--format", "json", "-", stdin=canary_file())
    assert result.returncode == 1
    assert_no_canary(result.stdout, result.stderr)


def test_unreadable_input_error_never_shows_the_file_name_in_logs(tmp_path) -> None:
    secret = tmp_path / f"{CANARY_LAST}.x12"
    result = run_cli("validate", "--log-level", "debug", str(secret))
    assert result.returncode == 66
    # The report names the path the user gave (the contract); the log line must not.
    assert_no_canary(result.stderr)


@pytest.mark.parametrize("name", VARIANTS)
def test_fix_never_shows_phi(tmp_path, name: str) -> None:
    data = broken_variants(canary_file())[name]
    source = tmp_path / "canary.x12"
    source.write_bytes(data)
    report = tmp_path / "report.json"
    result = run_cli("fix", str(source), "-o", str(tmp_path / "out.x12"), "--diff", "--report", str(report),
                     "--log-level", "debug", "--max-segment-length", "4096",
                     "--history", str(tmp_path / "h.sqlite"))
    assert result.returncode in (0, 1, 65), result.stderr
    assert b"Traceback" not in result.stderr
    assert_no_canary(result.stdout, result.stderr, report.read_bytes() if report.exists() else b"")
    for stored in tmp_path.glob("h.sqlite*"):
        assert_no_canary(stored.read_bytes())


@pytest.mark.parametrize("name", VARIANTS)
def test_implementation_guide_check_never_logs_phi(tmp_path, name: str) -> None:
    """--ig: pyx12's messages quote values; none reaches stdout, stderr or the report."""
    data = broken_variants(canary_file())[name]
    source = tmp_path / "canary.x12"
    source.write_bytes(data)
    result = run_cli("validate", "--ig", "--ack", str(tmp_path / "ack.x12"), "--log-level", "debug",
                     "--format", "json", "--max-segment-length", "4096", str(source))
    assert result.returncode in (0, 1, 65), result.stderr
    assert b"Traceback" not in result.stderr
    assert_no_canary(result.stdout, result.stderr)


@pytest.mark.parametrize("name", VARIANTS)
def test_filter_never_shows_phi_outside_the_file(name: str) -> None:
    """filter writes the claim file to stdout (that is its job) and nothing of it to stderr."""
    data = broken_variants(canary_file())[name]
    result = run_cli("filter", "--log-level", "debug", "--max-segment-length", "4096", stdin=data)
    assert result.returncode in (0, 1, 65), result.stderr
    assert b"Traceback" not in result.stderr
    assert_no_canary(result.stderr)
