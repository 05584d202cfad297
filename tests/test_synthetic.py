"""The synthetic generator: deterministic, readable by edi837, and valid for pyx12."""

from __future__ import annotations

from edi.adapters.ig import pyx12_validate
from edi.synthetic import generate
from tests.helpers import walk


def pyx12_errors(data: bytes) -> list:
    """The real pyx12 4.0.0 validator (the oracle): its errors, empty when valid."""
    ok, errors = pyx12_validate(data)
    return errors if (errors or not ok) else []


def test_same_seed_same_bytes() -> None:
    assert b"".join(generate(40, seed=5)) == b"".join(generate(40, seed=5))
    assert b"".join(generate(40, seed=5)) != b"".join(generate(40, seed=6))


def test_generated_file_reads_cleanly_with_the_claims_asked_for() -> None:
    data = b"".join(generate(120, seed=2))
    claims, walker = walk(data)
    assert len(claims) == 120 and walker.errors == []
    assert {c.filing_indicator for c in claims} >= {"MB", "CI"}
    assert any(c.patient.is_dependent for c in claims)
    codes = {line.procedure_code for c in claims for line in c.lines}
    assert {"96416", "96521", "96523", "96413"} <= codes


def test_pyx12_accepts_a_generated_file() -> None:
    assert pyx12_errors(b"".join(generate(60, seed=11))) == []


def test_pyx12_oracle_can_fail() -> None:
    """The oracle is not vacuous: a wrong SE01 makes pyx12 report an error."""
    data = b"".join(generate(5, seed=11))
    assert pyx12_errors(data.replace(b"\nSE*", b"\nSE*9", 1)) != []
