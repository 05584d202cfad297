"""Envelope and structure checks of the walker: stable codes with segment and offset."""

from __future__ import annotations

import pytest

from tests.helpers import HEADER, claim, subscriber, walk, x12

GOOD = x12(*HEADER, *subscriber(), *claim("C1", ("96413", "1", "20261101")))


def codes(data: bytes) -> list[str]:
    return [error.code for error in walk(data)[1].errors]


def test_good_file_has_no_errors() -> None:
    claims, walker = walk(GOOD)
    assert walker.errors == []
    assert len(claims) == 1


CASES = [
    ("SE01_COUNT", lambda d: d.replace(b"SE*", b"SE*9", 1), "SE"),
    ("SE02_CONTROL", lambda d: d.replace(b"*0001~\nGE", b"*0002~\nGE"), "SE"),
    ("GE01_COUNT", lambda d: d.replace(b"GE*1*1", b"GE*2*1"), "GE"),
    ("GE02_CONTROL", lambda d: d.replace(b"GE*1*1", b"GE*1*7"), "GE"),
    ("IEA01_COUNT", lambda d: d.replace(b"IEA*1*", b"IEA*3*"), "IEA"),
    ("IEA02_CONTROL", lambda d: d.replace(b"IEA*1*000000001", b"IEA*1*000000002"), "IEA"),
    ("BAD_COUNT", lambda d: d.replace(b"GE*1*1", b"GE*X*1"), "GE"),
]


@pytest.mark.parametrize(("code", "mutate", "tag"), CASES, ids=[c[0] for c in CASES])
def test_envelope_error_points_at_its_segment(code: str, mutate, tag: str) -> None:
    data = mutate(GOOD)
    _, walker = walk(data)
    assert [e.code for e in walker.errors] == [code]
    error = walker.errors[0]
    assert data[error.offset :].startswith(tag.encode() + b"*")
    assert error.segment == data[: error.offset].count(b"~") + 1


def test_truncated_file_reports_every_open_envelope() -> None:
    cut = GOOD[: GOOD.index(b"SE*")]
    assert codes(cut) == ["MISSING_SE", "MISSING_GE", "MISSING_IEA"]


def test_isa_width_is_reported() -> None:
    data = GOOD.replace(b"RECEIVER       ", b"RECEIVER      ", 1)
    _, walker = walk(data)
    assert [(e.code, e.segment, e.offset) for e in walker.errors] == [("ISA_WIDTH", 1, 0)]


def test_hl_parent_and_duplicate_ids() -> None:
    body = [*HEADER, *subscriber(2), *claim("C1", ("96413", "1", "20261101")),
            *subscriber(2), *claim("C2", ("96413", "1", "20261101"))]
    body[body.index("HL*2*1*22*0", 10)] = "HL*2*9*22*0"
    assert codes(x12(*body)) == ["HL_DUPLICATE_ID", "HL_PARENT_UNKNOWN"]


def test_claim_without_lines() -> None:
    data = x12(*HEADER, *subscriber(), "CLM*C1*0***11:B:1*Y*A*Y*Y", "HI*ABK:C184")
    _claims, walker = walk(data)
    assert [e.code for e in walker.errors] == ["CLAIM_WITHOUT_LINES"]
    error = walker.errors[0]
    assert data[error.offset :].startswith(b"CLM*C1")
    assert error.segment == 3 + len(HEADER) + len(subscriber()) + 1


def test_empty_segment_and_bad_ids_are_reported_not_fatal() -> None:
    data = GOOD.replace(b"N3*1 WAY", b"~Nd4*1 WAY").replace(b"N4*TOWN*IL*62701~\nDMG", b"NM31*X~\nDMG")
    _, walker = walk(data)
    assert sorted(e.code for e in walker.errors) == ["BAD_SEGMENT_ID", "BAD_SEGMENT_ID", "EMPTY_SEGMENT", "SE01_COUNT"]


def test_bad_numbers_and_dates() -> None:
    data = GOOD.replace(b"SV1*HC:96413*100.00", b"SV1*HC:96413*LINE NOTE").replace(b"D8*20261101", b"D8*20261341")
    claims, walker = walk(data)
    assert [e.code for e in sorted(walker.errors, key=lambda e: e.segment)] == ["BAD_NUMBER", "BAD_DATE"]
    line = claims[0].lines[0]
    assert line.charge is None and line.service_date is None


def test_other_transactions_are_counted_and_passed_over() -> None:
    data = GOOD.replace(b"ST*837*0001*005010X222A1", b"ST*837*0001*005010X223A2")
    claims, walker = walk(data)
    assert claims == [] and walker.transactions == 0 and walker.other_transactions == 1
    assert walker.errors == []
    assert [n.code for n in walker.notes] == ["PASSED_OVER"]


def test_x222a2_is_read_with_a_note() -> None:
    data = GOOD.replace(b"005010X222A1", b"005010X222A2")
    claims, walker = walk(data)
    assert len(claims) == 1 and walker.errors == []
    assert [n.code for n in walker.notes] == ["VERSION_VARIANT"]
