"""Pump rules version 2: one test per row of the catalogue's "What changed from version 1" table,
in both directions (the exemption holds; the rule still fires without it), plus the code sets,
crosswalk rows, payer scopes and PMP012's add-on primaries. Rows covered in tests/test_rules.py
(provider patient-day, voids, spans) and tests/test_rewrite.py (secondary claims) are named
there; this module adds the rest and a file built the way real ones are.
"""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edi.adapters.ig import pyx12_validate
from edi.adapters.rules_files import load_rule_book
from edi.rewrite import fix_bytes
from edi.rules.codes import CodeSet, CodeSetError
from edi.rules.history import MemoryHistory
from edi.rules.kinds import HistoryEvent
from edi.synthetic import LineSpec, Patient, Visit, render
from tests.helpers import HEADER, claim, findings, secondary, span, subscriber, x12

BOOK = load_rule_book()
D1, D2 = "20261102", "20261103"
KEY = "00431\x1fM1\x1fDOE\x1fJO\x1f19500101"  # the patient of ``one_patient``


def one_patient(*claims: list[str], filing: str = "MB") -> bytes:
    return x12(*HEADER, *subscriber(filing=filing), *[segment for c in claims for segment in c])


def hits(data: bytes, rule: str, **options) -> list:
    return [f for f in findings(data, **options) if f.rule == rule]


# -- code sets: codes, prefixes, ranges ----------------------------------------------------------

def test_a_code_set_holds_codes_prefixes_and_ranges() -> None:
    codes = CodeSet.parse(["36415", "J*", "80047-89398", "g0498"])
    assert all(code in codes for code in ("36415", "J9190", "J1642", "80047", "85025", "89398", "G0498"))
    assert not any(code in codes for code in ("80046", "89399", "8504", "850251", "99213", "A4222", "", "96413"))
    assert codes.isdisjoint(["99213", "96413"]) and not codes.isdisjoint(["99213", "85025"])
    assert codes.intersection(["J9190", "99213", "85025"]) == {"J9190", "85025"}


@pytest.mark.parametrize("entry", ["89398-80047", "8004-89398", "J*9", "*", "80047-", "9641 6-96417"])
def test_a_malformed_entry_is_refused(entry: str) -> None:
    with pytest.raises(CodeSetError):
        CodeSet.parse([entry])


@given(ranges=st.lists(st.tuples(st.integers(10000, 99999), st.integers(0, 300)), max_size=6),
       probes=st.lists(st.integers(9990, 99999), max_size=40))
def test_range_membership_is_the_expanded_set(ranges: list[tuple[int, int]], probes: list[int]) -> None:
    """Overlapping and adjacent ranges merge; membership is what listing every code would give."""
    spans = [(low, min(low + width, 99999)) for low, width in ranges]
    codes = CodeSet.parse([f"{low}-{high}" for low, high in spans])
    expanded = {str(n) for low, high in spans for n in range(low, high + 1)}
    for probe in probes:
        assert (str(probe) in codes) is (str(probe) in expanded)


def test_a_big_range_is_held_as_its_bounds_and_remembered_per_code() -> None:
    """A million-code range is two bounds (no expansion); each code asked is answered once."""
    wide = CodeSet.parse(["000000-999999", "100000-200000"])
    assert wide.range_pairs() == [("000000", "999999")]  # overlapping ranges merge
    assert "123456" in wide and "12345" not in wide
    assert dict(wide.lookup) == {"123456": True, "12345": False}


# -- the crosswalk rows of version 2 ---------------------------------------------------------------

@pytest.mark.parametrize(("deleted", "suggestion", "effective"), [
    ("G0345", "96360", "20060101"), ("G0352", "96373", "20060101"), ("G0359", "96413", "20060101"),
    ("G0361", "96416", "20060101"), ("G0363", "96523", "20060101"),
    ("90780", "96365", "20060101"), ("90784", "96374", "20060101"),
    ("90760", "96360", "20090101"), ("90765", "96365", "20090101"), ("90779", "96379", "20090101"),
])
def test_crosswalk_rows_flag_from_their_date_with_the_suggestion(deleted: str, suggestion: str, effective: str) -> None:
    data = one_patient(claim("C1", (deleted, "1", effective)))
    (finding,) = hits(data, "PMP001")
    assert (finding.action, finding.replacement) == ("flag", suggestion)
    day_before = str(int(effective[:4]) - 1) + "1231"
    assert hits(one_patient(claim("C1", (deleted, "1", day_before))), "PMP001") == []


def test_the_crosswalk_covers_every_code_of_its_ranges() -> None:
    for number in range(345, 364):
        assert f"G0{number}" in BOOK.crosswalk
    for number in range(60, 85):
        assert f"907{number}" in BOOK.crosswalk


# -- payer scopes -------------------------------------------------------------------------------

@pytest.mark.parametrize(("filing", "action"), [("MB", "drop_line"), ("MC", "flag"), ("CI", "flag"), ("16", "flag")])
def test_payer_scopes_pick_the_action(filing: str, action: str) -> None:
    """medicare = MB, medicaid = MC, other = the rest (Medicare Advantage 16 included)."""
    data = one_patient(claim("C1", ("96416", "1", D1), ("96521", "1", D1)), filing=filing)
    assert [f.action for f in hits(data, "PMP002")] == [action]


def test_every_rule_gives_every_scope_an_action() -> None:
    for spec in BOOK.rules:
        assert set(spec.actions) == {"medicare", "medicaid", "other"}, spec.id


# -- "What changed from version 1": one test per row, both directions ------------------------------
# Row "patient-day across all providers": tests/test_rules.py::test_another_providers_line_neither_triggers_nor_suppresses
# Row "void claims evaluated": tests/test_rules.py::test_a_void_claim_is_excluded_from_every_rule
# Row "RD8 range read as its first day": tests/test_rules.py::test_a_span_line_is_not_units_of_one_day and
#   tests/test_rewrite.py::test_a_span_line_is_flagged_not_dropped

PAIRS = {  # rule: (the reported line, the line it is paired with)
    "PMP002": ("96521", "96416"),
    "PMP003": ("96521", "96413"),
    "PMP009": ("E0779", "96416"),
}


@pytest.mark.parametrize("modifier", ["59", "XE", "XS", "XP", "XU"])
@pytest.mark.parametrize("rule", sorted(PAIRS))
@pytest.mark.parametrize("on", ["reported", "paired"])
def test_a_distinct_modifier_on_either_line_suppresses_the_pair_rules(rule: str, modifier: str, on: str) -> None:
    reported, paired = PAIRS[rule]
    lines = [(f"{reported}:{modifier}" if on == "reported" else reported, "1", D1),
             (f"{paired}:{modifier}" if on == "paired" else paired, "1", D1)]
    assert hits(one_patient(claim("C1", *lines)), rule) == []
    plain = [(reported, "1", D1), (paired, "1", D1)]
    assert [f.code for f in hits(one_patient(claim("C1", *plain)), rule)] == [reported]
    not_distinct = [(f"{reported}:25", "1", D1), (paired, "1", D1)]  # 25 is no distinct-procedure modifier
    assert [f.code for f in hits(one_patient(claim("C1", *not_distinct)), rule)] == [reported]


def test_pmp008_and_pmp010_leave_out_lines_with_a_distinct_modifier() -> None:
    assert hits(one_patient(claim("C1", ("96413", "1", D1), ("96413:XS", "1", D1))), "PMP008") == []
    assert len(hits(one_patient(claim("C1", ("96413", "1", D1), ("96413", "1", D1))), "PMP008")) == 1
    assert hits(one_patient(claim("C1", ("96413", "1", D1), ("96365:59", "1", D1))), "PMP010") == []
    assert [f.code for f in hits(one_patient(claim("C1", ("96413", "1", D1), ("96365", "1", D1))), "PMP010")] == ["96365"]


def test_a_claim_with_another_payers_adjudication_is_never_rewritten() -> None:
    """v1: a dropped line unbalanced the 2320/2430 amounts of a secondary claim."""
    pair = (("96416", "1", D1), ("96521", "1", D1), ("J9190", "3", D1))
    for cob in (secondary(claim("S1", *pair)), secondary(claim("S1", *pair), amounts=False),
                secondary(claim("S1", *pair), line_adjudication=False)):
        (finding,) = hits(one_patient(cob), "PMP002")
        assert finding.action == "flag" and "coordination-of-benefits" in finding.message
        assert fix_bytes(one_patient(cob), BOOK) == one_patient(cob)
    (primary,) = hits(one_patient(claim("P1", *pair)), "PMP002")
    assert primary.action == "drop_line"


@pytest.mark.parametrize(("rule", "lines"), [
    ("PMP002", [("G0498", "1", D1), ("96521", "1", D1)]),
    ("PMP009", [("G0498", "1", D1), ("E0779", "1", D1)]),
    ("PMP008", [("G0498", "2", D1)]),
    ("PMP007", [("G0498", "1", D1, "22")]),
])
def test_g0498_is_an_initiation_everywhere(rule: str, lines: list[tuple[str, ...]]) -> None:
    """v1 did not know G0498: refills after it looked orphaned, E0779 beside it passed."""
    assert [f.rule for f in hits(one_patient(claim("C1", *lines)), rule)] == [rule]
    without = [("99213", *line[1:]) for line in lines]
    assert hits(one_patient(claim("C1", *without)), rule) == []


def test_g0498_counts_as_an_initiation_for_pmp004_pmp005_and_pmp011() -> None:
    cycle = one_patient(claim("C1", ("G0498", "1", D1)), claim("C2", ("G0498", "1", "20261105")))
    assert [f.claim for f in hits(cycle, "PMP004")] == ["C2"]
    long_day = [("96413", "1", D1), ("96415", "7", D1)]
    assert hits(one_patient(claim("C1", *long_day, ("G0498", "1", D1))), "PMP005") == []
    assert hits(one_patient(claim("C1", *long_day)), "PMP005") != []
    started = one_patient(claim("C0", ("G0498", "1", "20261020")), claim("C1", ("96521", "1", D1)))
    assert hits(started, "PMP011", history=MemoryHistory()) == []
    earlier_file = MemoryHistory([(KEY, HistoryEvent(date(2026, 10, 20), "G0498", "OLD"))])
    assert hits(one_patient(claim("C1", ("96521", "1", D1))), "PMP011", history=earlier_file) == []
    assert hits(one_patient(claim("C1", ("96521", "1", D1))), "PMP011", history=MemoryHistory()) != []


def test_pmp002_pairs_a_refill_with_the_initiation_of_the_same_pump_only() -> None:
    """v1: a 96522 hepatic pump refill beside a systemic 96416 was dropped."""
    assert hits(one_patient(claim("C1", ("96416", "1", D1), ("96522", "1", D1))), "PMP002") == []
    assert [f.code for f in hits(one_patient(claim("C1", ("96425", "1", D1), ("96522", "1", D1))), "PMP002")] == ["96522"]
    assert [f.code for f in hits(one_patient(claim("C1", ("96425", "1", D1), ("96521", "1", D1))), "PMP002")] == ["96521"]


def test_pmp003_flags_portable_refills_only() -> None:
    """v1 dropped it for Medicare, implanted pumps included; no current CMS source says so."""
    assert hits(one_patient(claim("C1", ("96413", "1", D1), ("96522", "1", D1))), "PMP003") == []
    (finding,) = hits(one_patient(claim("C1", ("96413", "1", D1), ("96521", "1", D1))), "PMP003")
    assert (finding.action, finding.severity) == ("flag", "warning")
    assert fix_bytes(one_patient(claim("C1", ("96413", "1", D1), ("96521", "1", D1))), BOOK) == one_patient(
        claim("C1", ("96413", "1", D1), ("96521", "1", D1)))


def test_pmp004_window_is_six_days_and_the_suggestion_follows_the_route() -> None:
    """v1: weekly 5-FU (day 7) was flagged, and 96522 was suggested if the patient ever had one."""
    weekly = one_patient(claim("C1", ("96416", "1", D1)), claim("C2", ("96416", "1", "20261109")))
    assert hits(weekly, "PMP004") == []
    day_six = one_patient(claim("C1", ("96416", "1", D1)), claim("C2", ("96416", "1", "20261108")))
    assert [f.replacement for f in hits(day_six, "PMP004")] == ["96521"]
    had_implant = one_patient(claim("C1", ("96416", "1", D1), ("96522", "1", "20261030")), claim("C2", ("96416", "1", "20261104")))
    assert [f.replacement for f in hits(had_implant, "PMP004")] == ["96521"]
    arterial = one_patient(claim("C1", ("96425", "1", D1)), claim("C2", ("96425", "1", "20261104")))
    assert [f.replacement for f in hits(arterial, "PMP004")] == ["96522"]


@pytest.mark.parametrize("other", ["85025", "36415", "J1642", "A4222", "E0781", "K0552", "L3000"])
def test_pmp006_counts_physician_fee_schedule_services_only(other: str) -> None:
    """v1: another line of any kind made the flush unpayable; labs, drugs and supplies do not."""
    assert hits(one_patient(claim("C1", ("96523", "1", D1), (other, "1", D1))), "PMP006") == []
    (finding,) = hits(one_patient(claim("C1", ("96523", "1", D1), (other, "1", D1), ("99213", "1", D1))), "PMP006")
    assert "1 other physician-fee-schedule" in finding.message


@pytest.mark.parametrize("code", ["96413", "96365", "96374", "96401", "96360", "96372", "96549"])
def test_pmp007_covers_every_drug_administration_code(code: str) -> None:
    """v1: 96413 in an outpatient hospital passed clean."""
    assert [f.code for f in hits(one_patient(claim("C1", (code, "1", D1, "22"))), "PMP007")] == [code]
    assert hits(one_patient(claim("C1", (code, "1", D1, "11"))), "PMP007") == []
    assert hits(one_patient(claim("C1", ("99213", "1", D1, "22"))), "PMP007") == []


@pytest.mark.parametrize(("first", "second", "reported", "suggested"), [
    ("96365", "96413", "96365", "96367"),  # hydration... therapeutic first in the file, chemotherapy initial
    ("96413", "96365", "96365", "96367"),
    ("96374", "96409", "96374", "96375"),
    ("96360", "96365", "96360", "96361"),
    ("96369", "96365", "96369", None),  # no subsequent_of row: reported, no replacement
])
def test_pmp010_the_hierarchy_decides_not_the_file_order(first: str, second: str, reported: str, suggested: str | None) -> None:
    """v1: the first in file order was the initial code, so 96365 before 96413 flagged the chemotherapy."""
    (finding,) = hits(one_patient(claim("C1", (first, "1", D1), (second, "1", D1))), "PMP010")
    assert (finding.code, finding.replacement) == (reported, suggested)
    assert hits(one_patient(claim("C1", (first, "1", D1)), claim("C2", (second, "1", D2))), "PMP010") == []


def test_pmp011_reports_portable_refills_only() -> None:
    """v1 reported 96522 too: implanted pumps are refilled for months."""
    assert hits(one_patient(claim("C1", ("96522", "1", D1))), "PMP011", history=MemoryHistory()) == []
    assert [f.code for f in hits(one_patient(claim("C1", ("96521", "1", D1))), "PMP011", history=MemoryHistory())] == ["96521"]


# -- PMP012: add-on without primary ----------------------------------------------------------------

ADD_ONS = {
    "96415": "96413", "96417": "96413", "96411": "96409", "96423": "96422", "96361": "96360", "96366": "96365",
    "96367": "96374", "96368": "96416", "96370": "96369", "96371": "96369", "96375": "96409",
}


@pytest.mark.parametrize(("add_on", "primary"), sorted(ADD_ONS.items()))
def test_pmp012_an_add_on_needs_its_primary_on_the_provider_patient_day(add_on: str, primary: str) -> None:
    (finding,) = hits(one_patient(claim("C1", (add_on, "1", D1))), "PMP012")
    assert (finding.code, finding.action, finding.severity) == (add_on, "flag", "error")
    assert primary in finding.message
    assert hits(one_patient(claim("C1", (primary, "1", D1)), claim("C2", (add_on, "1", D1))), "PMP012") == []
    assert hits(one_patient(claim("C1", (primary, "1", D2)), claim("C2", (add_on, "1", D1))), "PMP012") != []


def test_pmp012_takes_the_narrower_list_where_sources_disagree() -> None:
    """+96366 with 96413 (one secondary source) is not in the CPT reading (96365, 96367): reported."""
    assert hits(one_patient(claim("C1", ("96413", "1", D1), ("96366", "1", D1))), "PMP012") != []
    assert hits(one_patient(claim("C1", ("96365", "1", D1), ("96366", "1", D1))), "PMP012") == []


def test_pmp012_primary_in_an_earlier_file_counts_and_another_providers_does_not() -> None:
    add_on = one_patient(claim("C2", ("96415", "2", D1)))
    earlier = MemoryHistory([(KEY, HistoryEvent(date(2026, 11, 2), "96413", "OLD"))])
    assert hits(add_on, "PMP012", history=earlier) == []
    other_day = MemoryHistory([(KEY, HistoryEvent(date(2026, 11, 1), "96413", "OLD"))])
    assert hits(add_on, "PMP012", history=other_day) != []
    two_practices = x12(*HEADER[:4], "HL*1**20*1", "NM1*85*2*ONE*****XX*1234567893", "N3*1 MAIN", "N4*TOWN*IL*62701",
                        "REF*EI*123456789", *subscriber(2), *claim("A1", ("96413", "1", D1)),
                        "HL*3**20*1", "NM1*85*2*TWO*****XX*1999999984", "N3*1 MAIN", "N4*TOWN*IL*62701",
                        "REF*EI*987654321", *[s.replace("HL*4*1*22", "HL*4*3*22") for s in subscriber(4)],
                        *claim("B1", ("96415", "1", D1)))
    assert [f.claim for f in hits(two_practices, "PMP012")] == ["B1"]


def test_pmp012_a_span_add_on_is_satisfied_on_any_of_its_days() -> None:
    spanning = one_patient(span(claim("C1", ("96415", "3", D1)), D1, "20261104"), claim("C2", ("96413", "1", D2)))
    assert hits(spanning, "PMP012") == []
    alone = one_patient(span(claim("C1", ("96415", "3", D1)), D1, "20261104"))
    assert len(hits(alone, "PMP012")) == 1


# -- a file built the way real ones are ----------------------------------------------------------

MEDICARE = Patient(last_name="ALPHA", first_name="ANN", member_id="1EG4TE5MK72", birth_date=date(1950, 3, 14), sex="F", payer=0)
MEDICAID_CHILD = Patient(last_name="BETA", first_name="KID", member_id="MCD123456", birth_date=date(2012, 5, 1), sex="M",
                         payer=3, dependent_of=("BETA", "PARENT", date(1980, 1, 1)))
COMMERCIAL = Patient(last_name="GAMMA", first_name="GUS", member_id="CI998877", birth_date=date(1960, 7, 7), sex="M", payer=1)
DAY = date(2026, 11, 2)
L = LineSpec


def realistic_file() -> bytes:
    """Two practices, a Medicaid dependent, a commercial patient, a secondary claim (2320/2330/
    2430), an RD8 span, an original, a replacement and a void."""
    visits = [
        Visit(patient=MEDICARE, service_date=DAY, claim_id="A1", lines=(L(code="96416"), L(code="96521"), L(code="J9190", units=20))),
        Visit(patient=MEDICARE, service_date=DAY, claim_id="A2", lines=(L(code="96523"), L(code="85025"), L(code="99213"))),
        Visit(patient=MEDICARE, service_date=DAY, claim_id="B1", provider=1, lines=(L(code="96523"), L(code="J1642"))),
        Visit(patient=MEDICAID_CHILD, service_date=DAY, claim_id="M1", lines=(L(code="96416"), L(code="96521"), L(code="99213"))),
        Visit(patient=COMMERCIAL, service_date=DAY, claim_id="S1", other_payer_paid=True,
              lines=(L(code="G0498"), L(code="96521"), L(code="J9190", units=20))),
        Visit(patient=COMMERCIAL, service_date=date(2026, 11, 4), claim_id="P1", span_end=date(2026, 11, 8),
              lines=(L(code="96413", units=5), L(code="96521"))),
        Visit(patient=COMMERCIAL, service_date=date(2026, 11, 10), claim_id="R1", frequency="7",
              lines=(L(code="96414"), L(code="J9190", units=20))),
        Visit(patient=COMMERCIAL, service_date=date(2026, 11, 10), claim_id="V1", frequency="8",
              lines=(L(code="96416"), L(code="96521"))),
    ]
    return b"".join(render(visits))


def test_a_realistic_file_gets_exactly_the_v2_findings_and_fix_stays_valid() -> None:
    data = realistic_file()
    assert pyx12_validate(data) == (True, [])
    found = {(f.claim, f.rule, f.code, f.action) for f in findings(data)}
    assert found == {
        ("A1", "PMP002", "96521", "drop_line"),  # Medicare, one practice, one day: the fill is dropped
        ("A2", "PMP006", "96523", "drop_line"),  # 99213 by the same practice; 85025 alone would not count
        ("M1", "PMP002", "96521", "flag"),  # Medicaid scope flags
        ("S1", "PMP002", "96521", "flag"),  # a secondary claim is never rewritten
        ("P1", "PMP003", "96521", "flag"),  # span lines: present on their days, flagged, never rewritten
        ("R1", "PMP001", "96414", "replace_code"),  # a replacement claim is checked like an original
    }
    assert not any(f.claim in ("B1", "V1") for f in findings(data))  # another practice's flush; a void
    fixed = fix_bytes(data, BOOK)
    assert pyx12_validate(fixed) == (True, [])
    assert b"SV1*HC:96416" in fixed and fixed.count(b"SV1*HC:96523") == 1  # A2's flush dropped, B1's kept
    assert b"SV1*HC:96416" in fixed and b"SV1*HC:96414" not in fixed
    secondary_claim = data[data.index(b"CLM*S1"):data.index(b"CLM*P1")]
    assert secondary_claim in fixed  # byte for byte
    void = data[data.index(b"CLM*V1"):data.index(b"SE*")]
    assert void in fixed
