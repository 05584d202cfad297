"""Rewrite mode: ``edi837 fix`` writes a corrected 837P that pyx12 still accepts."""

from __future__ import annotations

import json
import os
import stat
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from edi.adapters.ig import pyx12_validate
from edi.adapters.rules_files import load_rule_book
from edi.rewrite import fix_bytes, format_amount
from edi.synthetic import render
from edi.x12 import read_all
from tests.conftest import ROOT, require_corpus, run_cli
from tests.helpers import HEADER, claim, findings, frequency, secondary, span, subscriber, walk, x12
from tests.strategies import oncology_visits, styles

BOOK = load_rule_book()
EXAMPLES = ROOT / "fixtures" / "rules"
REWRITTEN = ["PMP001", "PMP002", "PMP006"]
D1 = "20261102"


def ig_error_keys(data: bytes) -> set:
    _, errors = pyx12_validate(data)
    return {error.key() for error in errors}


def no_new_ig_errors(before: bytes, after: bytes) -> None:
    new = ig_error_keys(after) - ig_error_keys(before)
    assert not new, f"the rewrite added implementation-guide errors: {sorted(new)}"


@pytest.mark.parametrize("rule_id", REWRITTEN)
def test_fix_of_bad_example_is_the_fixed_example(rule_id: str) -> None:
    bad = (EXAMPLES / rule_id / "bad.x12").read_bytes()
    fixed = (EXAMPLES / rule_id / "fixed.x12").read_bytes()
    assert fix_bytes(bad, BOOK) == fixed
    assert fixed != bad
    no_new_ig_errors(bad, fixed)
    assert pyx12_validate(fixed)[0] is True


def test_drop_renumbers_recounts_and_copies_the_rest() -> None:
    data = x12(*HEADER, *subscriber(), *claim("C1", ("96416", "1", D1), ("96521", "1", D1), ("J9190", "3", D1)))
    out = fix_bytes(data, BOOK)
    before, _ = read_all(data)
    after, _ = read_all(out)
    assert len(after) == len(before) - 3  # LX, SV1, DTP of the refill
    (clm,) = [s.body for s in after if s.tag == b"CLM"]
    assert clm.split(b"*")[2] == b"400.00"  # 100.00 + 300.00 left, decimal style kept
    assert [s.body for s in after if s.tag == b"LX"] == [b"LX*1", b"LX*2"]
    (se,) = [s.body for s in after if s.tag == b"SE"]
    st_index = [s.tag for s in after].index(b"ST")
    se_index = [s.tag for s in after].index(b"SE")
    assert se == f"SE*{se_index - st_index + 1}*0001".encode()
    untouched = [s.raw() for s in before if s.tag not in (b"CLM", b"LX", b"SV1", b"DTP", b"SE")]
    assert untouched == [s.raw() for s in after if s.tag not in (b"CLM", b"LX", b"SV1", b"DTP", b"SE")]


def test_replace_keeps_modifiers_units_and_charge() -> None:
    # GA and 76 are not distinct-procedure modifiers (a line with 59/X{EPSU} is not recoded:
    # tests/test_rules.py, pump-rules v2)
    data = x12(*HEADER, *subscriber(), *claim("C1", ("96414:GA:76", "1", D1)))
    out = fix_bytes(data, BOOK)
    assert out == data.replace(b"SV1*HC:96414:GA:76*", b"SV1*HC:96416:GA:76*")


def test_a_claims_last_line_is_never_dropped() -> None:
    data = x12(*HEADER, *subscriber(), *claim("C1", ("96416", "1", D1)), *claim("C2", ("96521", "1", D1)))
    assert fix_bytes(data, BOOK) == data
    (finding,) = [f for f in findings(data) if f.rule == "PMP002"]
    assert finding.action == "flag"


# -- rewritable lines (pump-rules v2; issue 16 item 3) ----------------------------------------

PAIR = (("96416", "1", D1), ("96521", "1", D1), ("J9190", "3", D1))  # PMP002: Medicare drops the refill


def pmp002(data: bytes):
    (finding,) = [f for f in findings(data) if f.rule == "PMP002"]
    return finding


def test_a_secondary_claim_is_never_rewritten_and_the_rewrite_adds_no_ig_error() -> None:
    """v1: a dropped line unbalanced the 2320/2430 amounts of a secondary claim."""
    primary = claim("P1", *PAIR)
    data = x12(*HEADER, *subscriber(2, member="A1"), *primary,
               *subscriber(3, member="B2"), *secondary(claim("S1", *PAIR)),
               *subscriber(4, member="C3"), *secondary(claim("S2", *PAIR), line_adjudication=False),
               *subscriber(5, member="D4"), *secondary(claim("S3", *PAIR), amounts=False))
    by_claim = {f.claim: f for f in findings(data) if f.rule == "PMP002"}
    assert by_claim["P1"].action == "drop_line"
    for claim_id in ("S1", "S2", "S3"):
        assert by_claim[claim_id].action == "flag"
        assert "another payer's adjudication" in by_claim[claim_id].message
    out = fix_bytes(data, BOOK)
    start = data.index(b"CLM*S1")
    assert out[out.index(b"CLM*S1"):out.index(b"SE*")] == data[start:data.index(b"SE*")]  # byte for byte
    assert out.count(b"SV1*HC:96521") == data.count(b"SV1*HC:96521") - 1  # the primary's refill only
    no_new_ig_errors(data, out)


def _with_secondary_claims() -> bytes:
    """The PMP002 bad example (a Medicare primary claim whose refill is dropped) with two more
    subscribers whose claims are Medicare-secondary: one with 2320 AMT*D, one with no AMT*D but a
    2430 SVD on its refill line; the 2320/2330 and 2430 loops where the guide puts them."""
    segments = (EXAMPLES / "PMP002" / "bad.x12").read_text().rstrip("\n").split("~\n")
    envelope, body = segments[:3], segments[3:-3]
    subscriber_and_claim = body[body.index("HL*2*1*22*0"):]
    extra: list[str] = []
    for number, paid in ((3, True), (4, False)):
        for segment in subscriber_and_claim:
            segment = (segment.replace("HL*2*1*22*0", f"HL*{number}*1*22*0").replace("SBR*P*18", "SBR*S*18")
                       .replace("1EG4TE5MK72", f"{number}EG4TE5MK7{number}").replace("EX1", f"EX{number}"))
            extra.append(segment)
            if segment.startswith("PRV*PE"):
                extra += ["SBR*P*18*******CI", "CAS*CO*45*60", *(["AMT*D*800"] if paid else []), "OI***Y***Y",
                          "NM1*IL*1*EXAMPLE*PAT****MI*OTHER77", "NM1*PR*2*FIRST PAYER*****PI*99999"]
            if segment == f"REF*6R*EX{number}L2" and not paid:
                extra += ["SVD*99999*200*HC:96521**1", "DTP*573*D8*20261120"]
    body = [*body, *extra]
    return ("~\n".join([*envelope, *body, f"SE*{len(body) + 2}*0001", "GE*1*1", "IEA*1*000000001"]) + "~\n").encode()


def test_pyx12_accepts_the_output_and_the_secondary_claims_come_out_unchanged() -> None:
    data = _with_secondary_claims()
    assert pyx12_validate(data) == (True, [])
    by_claim = {f.claim: f.action for f in findings(data) if f.rule == "PMP002"}
    assert by_claim == {"EX1": "drop_line", "EX3": "flag", "EX4": "flag"}
    out = fix_bytes(data, BOOK)
    assert pyx12_validate(out) == (True, [])
    assert b"CLM*EX1*650.00" in out  # the primary claim lost its refill
    start = data.index(b"HL*3*1*22*0")
    assert out[out.index(b"HL*3*1*22*0"):out.index(b"SE*")] == data[start:data.index(b"SE*")]


def test_a_span_line_is_flagged_not_dropped() -> None:
    spanning = x12(*HEADER, *subscriber(), *claim("C1", PAIR[0], PAIR[2]), *span(claim("C2", PAIR[1], PAIR[2]), D1, "20261104"))
    finding = pmp002(spanning)
    assert finding.action == "flag" and "spans several days" in finding.message
    assert fix_bytes(spanning, BOOK) == spanning
    one_day = x12(*HEADER, *subscriber(), *claim("C1", PAIR[0], PAIR[2]), *span(claim("C2", PAIR[1], PAIR[2]), D1, D1))
    assert pmp002(one_day).action == "drop_line" and fix_bytes(one_day, BOOK) != one_day


@pytest.mark.parametrize("modifier", ["59", "XE", "XS", "XP", "XU"])
def test_a_line_with_a_distinct_modifier_is_not_rewritten(modifier: str) -> None:
    recode = x12(*HEADER, *subscriber(), *claim("C1", (f"96414:{modifier}", "1", D1), ("J9190", "1", D1)))
    (finding,) = [f for f in findings(recode) if f.rule == "PMP001"]
    assert (finding.action, finding.replacement) == ("flag", "96416")
    assert f"modifier {modifier}" in finding.message and "not recoded" in finding.message
    assert fix_bytes(recode, BOOK) == recode
    plain = recode.replace(f"96414:{modifier}".encode(), b"96414")
    assert [f.action for f in findings(plain) if f.rule == "PMP001"] == ["replace_code"]


def test_a_void_claim_is_never_changed() -> None:
    void = x12(*HEADER, *subscriber(), *frequency(claim("V1", *PAIR), "8"))
    assert findings(void) == () and fix_bytes(void, BOOK) == void
    original = x12(*HEADER, *subscriber(), *frequency(claim("V1", *PAIR), "1"))
    assert fix_bytes(original, BOOK) != original


def test_untouched_files_come_out_identical(synthetic_file: Path) -> None:
    clean = x12(*HEADER, *subscriber(), *claim("C1", ("96413", "1", D1), ("96415", "2", D1)))
    assert fix_bytes(clean, BOOK) == clean
    other = clean.replace(b"005010X222A1", b"005010X223A2")
    assert fix_bytes(other, BOOK) == other


def test_public_clean_files_are_copied_byte_for_byte() -> None:
    for fixture in require_corpus():
        if fixture.role == "P-ok":
            data = fixture.path.read_bytes()
            assert fix_bytes(data, BOOK) == data, fixture.name


@pytest.mark.parametrize(("total", "original", "expected"), [
    (Decimal(650), b"860.00", b"650.00"),
    (Decimal(650), b"860", b"650"),
    (Decimal("649.5"), b"860", b"649.5"),
    (Decimal("12.25"), b"20.5", b"12.25"),
    (Decimal("12.20"), b"20.5", b"12.2"),
])
def test_amounts_keep_the_input_decimal_style(total: Decimal, original: bytes, expected: bytes) -> None:
    assert format_amount(total, original) == expected


def test_integer_style_claim_total_after_a_drop() -> None:
    data = x12(*HEADER, *subscriber(), "CLM*C1*300***11:B:1*Y*A*Y*Y", "HI*ABK:C184",
               "LX*1", "SV1*HC:96416*100*UN*1***1", "DTP*472*D8*20261102",
               "LX*2", "SV1*HC:96521*200*UN*1***1", "DTP*472*D8*20261102")
    out = fix_bytes(data, BOOK)
    assert b"CLM*C1*100***" in out and b"96521" not in out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(oncology_visits(max_visits=8), styles())
def test_fix_property(visits, style) -> None:
    """Random oncology files: pyx12-clean, nothing left to drop or replace, the rest untouched,
    CLM02 equal to the sum of the lines."""
    data = b"".join(render(visits, style=style))
    out = fix_bytes(data, BOOK)
    no_new_ig_errors(data, out)
    left = {f.action for f in findings(out)}
    assert not left & {"drop_line", "replace_code"}
    assert fix_bytes(out, BOOK) == out  # idempotent
    claims, walker = walk(out)
    assert walker.errors == []
    for item in claims:
        assert item.total_charge == sum((line.charge for line in item.lines), Decimal(0))
        assert [line.lx for line in item.lines] == list(range(1, len(item.lines) + 1))
    before, _ = read_all(data)
    after, _ = read_all(out)
    changed_tags = {b"CLM", b"LX", b"SV1", b"SE"}
    kept_before = [s for s in before if s.tag not in changed_tags]
    kept_after = [s for s in after if s.tag not in changed_tags]
    # Segments other than the recounted ones are the input's, in order, minus dropped loops.
    assert is_subsequence([s.raw() for s in kept_after], [s.raw() for s in kept_before])
    dropped = len(before) - len(after)
    assert len(kept_before) - len(kept_after) <= dropped


def is_subsequence(short: list[bytes], long: list[bytes]) -> bool:
    remaining = iter(long)
    return all(any(item == candidate for candidate in remaining) for item in short)


# -- the command ------------------------------------------------------------------------------

def test_fix_command_writes_output_report_and_diff(tmp_path: Path) -> None:
    source = tmp_path / "in.x12"
    source.write_bytes((EXAMPLES / "PMP002" / "bad.x12").read_bytes())
    out, report = tmp_path / "out.x12", tmp_path / "report.json"
    result = run_cli("fix", str(source), "-o", str(out), "--report", str(report), "--diff")
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == (EXAMPLES / "PMP002" / "fixed.x12").read_bytes()
    assert source.read_bytes() == (EXAMPLES / "PMP002" / "bad.x12").read_bytes()
    record = json.loads(report.read_text())
    (finding,) = record["findings"]
    assert finding["applied"] is True and finding["line"] == 2
    assert source.read_bytes()[: source.read_bytes().index(b"SV1*HC:96521")].count(b"~") + 1 == finding["segment"]
    text = result.stdout.decode()
    assert "- 32: SV1*HC:96521" in text and "+ 35: LX*2" in text
    for path in (out, report):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.x12", "out.x12", "report.json"]


def test_flags_left_for_review_exit_1(tmp_path: Path) -> None:
    source = EXAMPLES / "PMP004" / "bad.x12"
    result = run_cli("fix", str(source), "-o", str(tmp_path / "out.x12"))
    assert result.returncode == 1
    assert (tmp_path / "out.x12").read_bytes() == source.read_bytes()


def test_standard_input_to_standard_output() -> None:
    bad = (EXAMPLES / "PMP001" / "bad.x12").read_bytes()
    result = run_cli("fix", "-", "-o", "-", stdin=bad)
    assert result.returncode == 0
    assert result.stdout == (EXAMPLES / "PMP001" / "fixed.x12").read_bytes()
    assert b"PMP001" in result.stderr


def test_in_place_replaces_the_input_only_when_asked(tmp_path: Path) -> None:
    source = tmp_path / "in.x12"
    source.write_bytes((EXAMPLES / "PMP006" / "bad.x12").read_bytes())
    assert run_cli("fix", str(source), "-o", str(source)).returncode == 64
    assert run_cli("fix", str(source)).returncode == 64
    assert source.read_bytes() == (EXAMPLES / "PMP006" / "bad.x12").read_bytes()
    assert run_cli("fix", str(source), "--in-place").returncode == 0
    assert source.read_bytes() == (EXAMPLES / "PMP006" / "fixed.x12").read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["in.x12"]


def test_malformed_input_is_not_rewritten(tmp_path: Path) -> None:
    source = tmp_path / "in.x12"
    bad = (EXAMPLES / "PMP002" / "bad.x12").read_bytes().replace(b"SE*39", b"SE*38")
    source.write_bytes(bad)
    out = tmp_path / "out.x12"
    result = run_cli("fix", str(source), "-o", str(out), "--report", str(tmp_path / "r.json"))
    assert result.returncode == 65
    assert not out.exists() and source.read_bytes() == bad
    assert json.loads((tmp_path / "r.json").read_text())["errors"][0]["code"] == "SE01_COUNT"
    assert run_cli("fix", str(source), "--in-place").returncode == 65
    assert source.read_bytes() == bad


def test_missing_input_and_unwritable_output(tmp_path: Path) -> None:
    assert run_cli("fix", str(tmp_path / "absent.x12"), "-o", str(tmp_path / "o.x12")).returncode == 66
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result = run_cli("fix", str(EXAMPLES / "PMP002" / "bad.x12"), "-o", str(locked / "out.x12"))
        if os.geteuid() != 0:  # root writes anywhere; the check below is for everyone else
            assert result.returncode == 74
        assert [p.name for p in locked.iterdir()] in ([], ["out.x12"])
    finally:
        locked.chmod(0o700)
    result = run_cli("fix", str(EXAMPLES / "PMP002" / "bad.x12"), "-o", str(tmp_path / "no" / "such" / "dir.x12"))
    assert result.returncode == 74


def test_fix_keeps_pyx12_clean_on_the_sample(tmp_path: Path) -> None:
    source = ROOT / "fixtures" / "sample-oncology.x12"
    out = tmp_path / "out.x12"
    result = run_cli("fix", str(source), "-o", str(out))
    assert result.returncode == 1  # flags left for review
    assert out.read_bytes() != source.read_bytes()
    no_new_ig_errors(source.read_bytes(), out.read_bytes())
