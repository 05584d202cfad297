"""The pump-coding rules PMP001-PMP012, as catalogued in pump-rules.md (version 2)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from edi.adapters.rules_files import load_rule_book
from edi.errors import RulesError, UsageError
from edi.rules.book import DOC_FIELDS
from edi.rules.codes import CodeSet
from edi.rules.engine import RuleEngine
from edi.rules.history import MemoryHistory
from edi.rules.kinds import HistoryEvent
from edi.rules.selection import is_selected, unknown_prefixes
from tests.conftest import ROOT, require_corpus, run_cli
from tests.helpers import (
    HEADER,
    claim,
    dependent,
    findings,
    frequency,
    secondary,
    span,
    subscriber,
    x12,
)
from tests.test_corpus import UNREADABLE_PROCEDURE_CODES

BOOK = load_rule_book()
RULE_IDS = [spec.id for spec in BOOK.rules if spec.id.startswith("PMP")]  # NCC: tests/test_tables.py
EXAMPLES = ROOT / "fixtures" / "rules"
D1, D2, D3 = "20261102", "20261103", "20261104"


def rules_of(data: bytes, **options) -> list[str]:
    return [f.rule for f in findings(data, **options)]


def one_patient(*claims: list[str], filing: str = "MB") -> bytes:
    return x12(*HEADER, *subscriber(filing=filing), *[segment for c in claims for segment in c])


# -- the catalogue is complete, documented and exemplified ------------------------------------

def test_catalogue_rule_ids_are_all_there() -> None:
    assert RULE_IDS == [f"PMP{n:03d}" for n in range(1, 13)]


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_every_rule_documents_itself_and_has_examples(rule_id: str) -> None:
    spec = BOOK.rule(rule_id)
    assert all(spec.docs[field].strip() for field in DOC_FIELDS)
    for name in ("bad", "good", "fixed"):
        assert (EXAMPLES / rule_id / f"{name}.x12").is_file(), f"{rule_id} lacks {name}.x12"


def test_no_example_folder_without_a_rule() -> None:
    assert sorted(p.name for p in EXAMPLES.iterdir()) == RULE_IDS


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_rule_examples(rule_id: str) -> None:
    """bad sets the rule off, good and fixed do not; no file has X12 errors."""
    history = MemoryHistory() if BOOK.rule(rule_id).params.get("requires_history") else None
    for name, expected in (("bad", True), ("good", False), ("fixed", False)):
        data = (EXAMPLES / rule_id / f"{name}.x12").read_bytes()
        found = rules_of(data, history=history)
        assert (rule_id in found) is expected, f"{rule_id}/{name}: {found}"


def exemption_examples() -> list[tuple[str, str]]:
    return sorted((folder.name, path.name) for folder in EXAMPLES.iterdir() for path in folder.iterdir()
                  if path.name.startswith(("good-", "unchanged-")))


def test_the_v2_exemptions_have_examples() -> None:
    """A modifier, another provider, a span, a void and a secondary (COB) claim each have one."""
    names = {name for _, name in exemption_examples()}
    assert {"good-modifier.x12", "good-provider.x12", "good-span.x12", "good-void.x12", "unchanged-cob.x12",
            "unchanged-span.x12"} <= names


@pytest.mark.parametrize(("rule_id", "name"), exemption_examples())
def test_exemption_examples(rule_id: str, name: str) -> None:
    """good-*: the exemption holds, the rule stays quiet; unchanged-*: the rule fires on a line that
    is not rewritable, as a flag, and fix leaves the file as it is (the file's bad twin fires)."""
    from edi.rewrite import fix_bytes

    data = (EXAMPLES / rule_id / name).read_bytes()
    history = MemoryHistory() if BOOK.rule(rule_id).params.get("requires_history") else None
    found = [f for f in findings(data, history=history) if f.rule == rule_id]
    if name.startswith("good-"):
        assert found == []
    else:
        assert found and {f.action for f in found} == {"flag"} and "review it" in found[0].message
        assert fix_bytes(data, BOOK) == data
    assert rule_id in rules_of((EXAMPLES / rule_id / "bad.x12").read_bytes(), history=history)


def test_example_files_are_up_to_date() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "bin" / "make-rule-examples"), "--check"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_rules_command_lists_and_explains() -> None:
    listing = run_cli("rules").stdout.decode()
    assert [line.split()[0] for line in listing.splitlines() if line.startswith("PMP")] == RULE_IDS
    one = run_cli("rules", "pmp002")
    text = one.stdout.decode()
    assert one.returncode == 0 and text.startswith("PMP002: ")
    for heading in ("What it checks", "Why payers deny it", "Example", "What to bill instead", "Evidence"):
        assert f"## {heading}" in text
    assert run_cli("rules", "PMP999").returncode == 64


# -- each rule, positive and negative ---------------------------------------------------------

def test_pmp001_deleted_codes_from_2006() -> None:
    data = one_patient(claim("C1", ("96414", "1", D1), ("96410", "1", D1), ("96530", "1", D1), ("G0359", "1", D1)))
    found = {f.code: f for f in findings(data) if f.rule == "PMP001"}
    assert (found["96414"].action, found["96414"].replacement) == ("replace_code", "96416")
    assert (found["96410"].action, found["96410"].replacement) == ("replace_code", "96413")
    assert (found["96530"].action, found["96530"].replacement) == ("flag", None)
    assert (found["G0359"].action, found["G0359"].replacement) == ("flag", "96413")
    assert "96522 or 96523" in found["96530"].message


def test_pmp001_not_before_2006() -> None:
    data = one_patient(claim("C1", ("96414", "1", "20051231"), ("96520", "1", "20051231")))
    assert "PMP001" not in rules_of(data)
    assert "PMP001" in rules_of(data.replace(b"20051231", b"20060101"))


def test_pmp002_refill_on_initiation_day_across_claims_medicare_drops() -> None:
    data = one_patient(claim("C1", ("96416", "1", D1), ("J9190", "20", D1)), claim("C2", ("99213", "1", D1), ("96521", "1", D1)))
    (finding,) = [f for f in findings(data) if f.rule == "PMP002"]
    assert (finding.claim, finding.line, finding.code, finding.action, finding.severity) == ("C2", 2, "96521", "drop_line", "error")
    assert finding.date == date(2026, 11, 2)
    assert data[: data.index(b"SV1*HC:96521")].count(b"~") + 1 == finding.segment


def test_pmp002_commercial_payer_flags() -> None:
    data = one_patient(claim("C1", ("96416", "1", D1), ("96521", "1", D1)), filing="CI")
    (finding,) = [f for f in findings(data) if f.rule == "PMP002"]
    assert finding.action == "flag"


def test_pmp002_other_day_or_other_patient_is_fine() -> None:
    other_day = one_patient(claim("C1", ("96416", "1", D1)), claim("C2", ("96521", "1", D2)))
    assert "PMP002" not in rules_of(other_day)
    two_patients = x12(*HEADER, *subscriber(2, member="A1", last="ONE"), *claim("C1", ("96416", "1", D1)),
                       *subscriber(3, member="B2", last="TWO"), *claim("C2", ("96521", "1", D1)))
    assert "PMP002" not in rules_of(two_patients)


def test_subscriber_and_dependent_sharing_the_member_id_are_two_patients() -> None:
    data = x12(*HEADER, *subscriber(2, member="SHARED", children=True), *dependent(3, 2),
               *claim("KID", ("96416", "1", D1)), *subscriber(4, member="SHARED"), *claim("MOM", ("96521", "1", D1)))
    assert "PMP002" not in rules_of(data)
    same = x12(*HEADER, *subscriber(2, member="SHARED", children=True), *dependent(3, 2),
               *claim("KID1", ("96416", "1", D1)), *subscriber(4, member="SHARED", children=True), *dependent(5, 4),
               *claim("KID2", ("96521", "1", D1)))
    assert "PMP002" in rules_of(same)


def test_pmp003_portable_refill_with_chemo_administration_is_a_warning_flag() -> None:
    data = one_patient(claim("C1", ("96413", "1", D1), ("96521", "1", D1)))
    (finding,) = [f for f in findings(data) if f.rule == "PMP003"]
    assert (finding.code, finding.action, finding.severity) == ("96521", "flag", "warning")
    assert "PMP003" not in rules_of(one_patient(claim("C1", ("96413", "1", D1)), claim("C2", ("96521", "1", D2))))


def test_pmp004_second_initiation_within_six_days() -> None:
    data = one_patient(claim("C1", ("96416", "1", D1)), claim("C2", ("96416", "1", "20261108")))
    (finding,) = [f for f in findings(data) if f.rule == "PMP004"]
    assert (finding.claim, finding.replacement, finding.severity) == ("C2", "96521", "warning")
    assert "6 day(s) after" in finding.message
    assert "PMP004" not in rules_of(one_patient(claim("C1", ("96416", "1", D1)), claim("C2", ("96416", "1", "20261109"))))


def test_pmp004_with_history_of_an_earlier_file_and_not_against_itself() -> None:
    data = one_patient(claim("C2", ("96416", "1", D3)))
    key = "00431\x1fM1\x1fDOE\x1fJO\x1f19500101"
    earlier = MemoryHistory([(key, HistoryEvent(date(2026, 11, 2), "96416", "OLD1"))])
    assert "PMP004" in rules_of(data, history=earlier)
    own = MemoryHistory([(key, HistoryEvent(date(2026, 11, 4), "96416", "C2")),
                         (key, HistoryEvent(date(2026, 11, 2), "96416", "C2"))])
    assert "PMP004" not in rules_of(data, history=own)


def test_pmp005_long_infusion_or_pump_items_without_initiation() -> None:
    long_day = one_patient(claim("C1", ("96413", "1", D1), ("96415", "7", D1)))
    (finding,) = [f for f in findings(long_day) if f.rule == "PMP005"]
    assert (finding.code, finding.replacement) == ("96413", "G0498")  # Medicare: the office-supplied pump
    (commercial,) = [f for f in findings(one_patient(claim("C1", ("96413", "1", D1), ("96415", "7", D1)), filing="CI"))
                     if f.rule == "PMP005"]
    assert commercial.replacement == "96416"
    six = one_patient(claim("C1", ("96413", "1", D1), ("96415", "6", D1)))
    assert "PMP005" not in rules_of(six)
    with_pump = one_patient(claim("C1", ("96415", "2", D1), ("A4222", "1", D1)))
    (finding,) = [f for f in findings(with_pump) if f.rule == "PMP005"]
    assert finding.code == "96415"
    initiated = one_patient(claim("C1", ("96413", "1", D1), ("96415", "7", D1), ("96416", "1", D1)))
    assert "PMP005" not in rules_of(initiated)


def test_pmp006_flush_with_other_services() -> None:
    data = one_patient(claim("C1", ("96523", "1", D1), ("99213", "1", D1)))
    (finding,) = [f for f in findings(data) if f.rule == "PMP006"]
    assert (finding.code, finding.action) == ("96523", "drop_line")
    assert "PMP006" not in rules_of(one_patient(claim("C1", ("96523", "1", D1))))


def test_drop_on_a_claims_only_line_is_a_flag() -> None:
    data = one_patient(claim("C1", ("96413", "1", D1)), claim("C2", ("96523", "1", D1)))
    (finding,) = [f for f in findings(data) if f.rule == "PMP006"]
    assert finding.action == "flag" and "last remaining line" in finding.message


def test_pmp007_facility_place_on_line_or_claim() -> None:
    on_line = one_patient(claim("C1", ("96416", "1", D1, "22")))
    on_claim = one_patient(claim("C1", ("96521", "1", D1), pos="21"))
    office_line = one_patient(claim("C1", ("96416", "1", D1, "11"), pos="22"))
    assert [f.code for f in findings(on_line) if f.rule == "PMP007"] == ["96416"]
    assert [f.code for f in findings(on_claim) if f.rule == "PMP007"] == ["96521"]
    assert "PMP007" not in rules_of(office_line)


def test_pmp008_units_per_day_reported_where_the_total_passes_one() -> None:
    data = one_patient(claim("C1", ("96413", "1", D1)), claim("C2", ("96413", "1", D1)), claim("C3", ("96413", "1", D1)))
    hits = [f.claim for f in findings(data) if f.rule == "PMP008"]
    assert hits == ["C2", "C3"]
    assert [f.claim for f in findings(one_patient(claim("C1", ("96523", "3", D1)))) if f.rule == "PMP008"] == ["C1"]
    assert "PMP008" not in rules_of(one_patient(claim("C1", ("96415", "3", D1))))


def test_pmp009_equipment_on_initiation_day() -> None:
    data = one_patient(claim("C1", ("96416", "1", D1), ("E0781", "1", D1)))
    assert [f.code for f in findings(data) if f.rule == "PMP009"] == ["E0781"]
    assert "PMP009" not in rules_of(one_patient(claim("C1", ("E0781", "1", D1))))


@pytest.mark.parametrize("modifier", ["59", "XE", "XS", "XP", "XU"])
def test_pmp010_distinct_modifiers_clear_the_second_initial_code(modifier: str) -> None:
    assert "PMP010" not in rules_of(one_patient(claim("C1", ("96365", "1", D1), (f"96413:{modifier}", "1", D1))))


def test_pmp010_second_initial_code_without_modifier() -> None:
    data = one_patient(claim("C1", ("96365:25", "1", D1), ("96413", "1", D1)))
    (finding,) = [f for f in findings(data) if f.rule == "PMP010"]
    assert (finding.code, finding.line, finding.replacement) == ("96365", 1, "96367")


def test_pmp011_only_with_a_history_store() -> None:
    data = one_patient(claim("C1", ("96521", "1", D1)))
    assert "PMP011" not in rules_of(data)
    assert "PMP011" in rules_of(data, history=MemoryHistory())
    started = one_patient(claim("C0", ("96416", "1", "20261005")), claim("C1", ("96521", "1", D1)))
    assert "PMP011" not in rules_of(started, history=MemoryHistory())


# -- the report and its determinism -----------------------------------------------------------

def test_exact_finding_record() -> None:
    data = one_patient(claim("PCN9", ("96416", "1", D1), ("96521", "1", D1)))
    record = next(f.as_record() for f in findings(data) if f.rule == "PMP002")
    assert record == {
        "rule": "PMP002", "severity": "error", "action": "drop_line", "applied": False, "claim": "PCN9",
        "line": 2, "code": "96521", "date": "2026-11-02", "replacement": None,
        "segment": data[: data.index(b"SV1*HC:96521")].count(b"~") + 1,
        "message": "pump refill 96521 on the same day as pump initiation 96416 of the same pump: the fill at initiation is part of the initiation",
    }


def test_same_input_same_report(synthetic_file) -> None:
    first = run_cli("validate", "--format", "json", str(synthetic_file))
    second = run_cli("validate", "--format", "json", str(synthetic_file))
    assert first.stdout == second.stdout
    report = json.loads(first.stdout)
    segments = [(f["segment"], f["rule"]) for f in report["findings"]]
    assert segments == sorted(segments) and report["findings"]
    assert first.returncode == 1


def test_clean_public_files_have_no_findings() -> None:
    """No pump or chemotherapy code is in either public corpus, so every clean 837P has no finding."""
    clean = [f for f in require_corpus() if f.role == "P-ok"]
    assert len(clean) == 13 + 19
    result = run_cli("validate", "--format", "json", *[str(f.path) for f in clean])
    reports = [json.loads(line) for line in result.stdout.splitlines()]
    assert {r["file"]: r["findings"] for r in reports} == {str(f.path): [] for f in clean}
    # MedicaidExample.txt carries the placeholder qualifier XX in SV101-1: its codes cannot be
    # read (BAD_PROCEDURE_QUALIFIER, exit 65; tests/test_corpus.py names such files).
    assert result.returncode == (65 if any(f.name in UNREADABLE_PROCEDURE_CODES for f in clean) else 0)


# -- the provider patient-day (pump-rules v2; issue 16 item 1) --------------------------------

def provider(hl: int, *, npi: str | None = "1234567893", tax_id: str = "123456789") -> list[str]:
    """A 2000A billing provider loop: with an NPI (NM108 XX), or with only a tax ID (REF*EI)."""
    name = f"NM1*85*2*CLINIC{hl}*****XX*{npi}" if npi else f"NM1*85*2*CLINIC{hl}"
    return [f"HL*{hl}**20*1", name, "N3*1 MAIN", "N4*TOWN*IL*62701", f"REF*EI*{tax_id}"]


def under(parent: int, lines: list[str]) -> list[str]:
    """A subscriber loop moved under another 2000A (the helper's HL02 is 1)."""
    return [line.replace("*1*22*", f"*{parent}*22*", 1) if line.startswith("HL*") else line for line in lines]


def two_providers(first: list[str], second: list[str], *, second_npi: str | None = "1999999984",
                  second_tax_id: str = "987654321", first_npi: str | None = "1234567893",
                  first_tax_id: str = "123456789", last: tuple[str, str] = ("DOE", "DOE")) -> bytes:
    """One patient (same payer, member ID, birth date) seen by two billing providers."""
    return x12(*HEADER[:4], *provider(1, npi=first_npi, tax_id=first_tax_id), *subscriber(2, last=last[0]), *first,
               *provider(3, npi=second_npi, tax_id=second_tax_id), *under(3, subscriber(4, last=last[1])), *second)


def test_another_providers_line_neither_triggers_nor_suppresses() -> None:
    """v1: patient-day across providers; another practice's line dropped a flush (PMP006)."""
    data = two_providers(claim("A1", ("96523", "1", D1), ("96416", "1", D2)), claim("B1", ("99213", "1", D1)))
    assert "PMP006" not in rules_of(data)  # the flush is alone on its provider's day
    same_provider = two_providers(claim("A1", ("96523", "1", D1), ("96416", "1", D2)), claim("B1", ("99213", "1", D1)),
                                  second_npi="1234567893")
    assert "PMP006" in rules_of(same_provider)


def test_pmp002_pairs_lines_of_one_provider_only() -> None:
    apart = two_providers(claim("A1", ("96416", "1", D1)), claim("B1", ("96521", "1", D1)))
    assert "PMP002" not in rules_of(apart)
    together = two_providers(claim("A1", ("96416", "1", D1)), claim("B1", ("96521", "1", D1)), second_npi="1234567893")
    assert "PMP002" in rules_of(together)


def test_without_an_npi_the_billing_provider_is_its_tax_id() -> None:
    same_tax_id = two_providers(claim("A1", ("96416", "1", D1)), claim("B1", ("96521", "1", D1)),
                                first_npi=None, second_npi=None, second_tax_id="123456789")
    assert "PMP002" in rules_of(same_tax_id)
    other_tax_id = two_providers(claim("A1", ("96416", "1", D1)), claim("B1", ("96521", "1", D1)),
                                 first_npi=None, second_npi=None)
    assert "PMP002" not in rules_of(other_tax_id)


def test_a_later_ref_of_the_billing_provider_loop_keeps_its_tax_id() -> None:
    from tests.helpers import walk

    data = x12(*HEADER[:4], "HL*1**20*1", "NM1*85*2*CLINIC", "N3*1 MAIN", "N4*TOWN*IL*62701", "REF*EI*111111111",
               "REF*0B*LICENSE", *subscriber(2), *claim("A1", ("96416", "1", D1)),
               "HL*3**20*1", "NM1*85*2*OTHER", "N3*1 MAIN", "N4*TOWN*IL*62701", "REF*SY*222222222",
               *under(3, subscriber(4)), *claim("B1", ("96416", "1", D1)))
    first, second = walk(data)[0]
    assert (first.billing_provider, second.billing_provider) == ("EI:111111111", "")
    (npi,), _ = walk(x12(*HEADER, *subscriber(), *claim("C1", ("96416", "1", D1))))
    assert npi.billing_provider == "XX:1234567893"


@pytest.mark.parametrize("variant", ["Doe", "doe", " DOE", "DoE "])
def test_case_variants_of_a_name_are_one_patient(variant: str) -> None:
    data = two_providers(claim("A1", ("96416", "1", D1)), claim("A2", ("96521", "1", D1)),
                         second_npi="1234567893", last=("DOE", variant))
    assert "PMP002" in rules_of(data)
    other_name = two_providers(claim("A1", ("96416", "1", D1)), claim("A2", ("96521", "1", D1)),
                               second_npi="1234567893", last=("DOE", "ROE"))
    assert "PMP002" not in rules_of(other_name)


def test_one_patient_key_serves_the_index_and_the_history() -> None:
    """Events recorded from a file that spells the name 'Doe' are the history of 'DOE'."""
    from edi.pipeline import validate

    earlier = x12(*HEADER, *subscriber(last="Doe", first="jo"), *claim("C1", ("96416", "1", D1)))
    engine = RuleEngine(BOOK)
    validate([earlier], name="earlier", engine=engine)
    history = MemoryHistory()
    history.record("earlier", engine.events_to_record(), engine.file_claims())
    assert history.patient_keys() == {"00431\x1fM1\x1fDOE\x1fJO\x1f19500101"}
    later = one_patient(claim("C2", ("96416", "1", D3)))
    assert "PMP004" in rules_of(later, history=history)
    assert "PMP004" not in rules_of(later, history=MemoryHistory())


# -- claim facts: frequency, other-payer adjudication, spans (issue 16 item 2) -----------------

def test_the_walker_reads_the_claim_facts_the_rules_need() -> None:
    from tests.helpers import walk

    data = x12(*HEADER, *subscriber(), *frequency(claim("O", ("96416:XS", "1", D1)), "1"),
               *frequency(claim("R", ("96416", "1", D1)), "7"), *frequency(claim("V", ("96416", "1", D1)), "8"),
               *secondary(claim("S1", ("96416", "1", D1))), *secondary(claim("S2", ("96416", "1", D1)), amounts=False),
               *secondary(claim("S3", ("96416", "1", D1)), line_adjudication=False),
               *span(claim("P", ("96413", "5", D1)), D1, "20261106"))
    claims = {c.claim_id: c for c in walk(data)[0]}
    assert [claims[i].frequency_code for i in "ORV"] == ["1", "7", "8"]
    assert [claims[i].is_void for i in "ORV"] == [False, False, True]
    assert claims["O"].lines[0].modifiers == ("XS",)
    assert [(claims[i].other_payer_paid, claims[i].line_adjudicated) for i in ("S1", "S2", "S3", "O")] == [
        (True, True), (False, True), (True, False), (False, False)]
    assert claims["S2"].adjudicated_elsewhere and not claims["O"].adjudicated_elsewhere
    assert claims["S1"].billing_provider == "XX:1234567893"  # the 2330 NM1s are not the billing provider
    assert claims["S1"].patient.subscriber_id == "M1"  # nor the subscriber
    line = claims["P"].lines[0]
    assert (line.service_date, line.service_date_end) == (date(2026, 11, 2), date(2026, 11, 6))


def test_a_void_claim_is_excluded_from_every_rule() -> None:
    """v1: a void's initiation dropped the real claim's refill, and the void's own lines dropped."""
    void_beside = one_patient(frequency(claim("V1", ("96416", "1", D1), ("96521", "1", D1)), "8"),
                              claim("C2", ("96521", "1", D1), ("99213", "1", D1)))
    assert rules_of(void_beside) == []
    original = one_patient(frequency(claim("V1", ("96416", "1", D1), ("96521", "1", D1)), "1"),
                           claim("C2", ("96521", "1", D1), ("99213", "1", D1)))
    assert rules_of(original).count("PMP002") == 2
    replacement = one_patient(frequency(claim("R1", ("96416", "1", D1), ("96521", "1", D1)), "7"))
    assert "PMP002" in rules_of(replacement)  # replacements are checked like originals


def test_void_claims_are_kept_by_name_for_the_history() -> None:
    from edi.pipeline import validate

    engine = RuleEngine(BOOK)
    validate([one_patient(frequency(claim("V1", ("96416", "1", D1)), "8"))], name="v", engine=engine)
    assert engine.index.voids == [("00431\x1fM1\x1fDOE\x1fJO\x1f19500101", "XX:1234567893", "V1")]
    assert list(engine.events_to_record()) == []


def test_a_span_line_is_not_units_of_one_day() -> None:
    """v1: a five-day RD8 96413 line read as "5 units today" (PMP008)."""
    five_days = one_patient(span(claim("C1", ("96413", "5", D1)), D1, "20261106"))
    assert "PMP008" not in rules_of(five_days)
    one_day = one_patient(span(claim("C1", ("96413", "5", D1)), D1, D1))  # RD8 of one day is a day
    assert "PMP008" in rules_of(one_day)


def test_a_span_line_is_present_on_every_day_of_its_range() -> None:
    spanning = one_patient(span(claim("C1", ("96416", "1", D1)), D1, "20261106"), claim("C2", ("96521", "1", D3)))
    (finding,) = [f for f in findings(spanning) if f.rule == "PMP002"]
    assert finding.claim == "C2"
    after = one_patient(span(claim("C1", ("96416", "1", D1)), D1, D2), claim("C2", ("96521", "1", D3)))
    assert "PMP002" not in rules_of(after)


def test_a_span_line_that_sets_a_rule_off_on_several_days_is_reported_once() -> None:
    data = one_patient(claim("C1", ("96416", "1", D1), ("99213", "1", D1)), claim("C2", ("96416", "1", D2)),
                       span(claim("C3", ("96521", "1", D1)), D1, D3))
    assert [(f.rule, f.claim) for f in findings(data) if f.rule == "PMP002"] == [("PMP002", "C3")]


# -- selection and data-driven change ---------------------------------------------------------

@pytest.mark.parametrize(("rule_id", "select", "ignore", "expected"), [
    ("PMP002", [], [], True),
    ("PMP002", ["PMP00"], [], True),
    ("PMP011", ["PMP00"], [], False),
    ("PMP002", [], ["PMP002"], False),
    ("PMP001", ["PMP"], ["PMP00"], False),
    ("PMP001", ["PMP", "PMP001"], ["PMP00"], True),
    ("PMP001", ["PMP001"], ["PMP001"], False),
])
def test_longest_prefix_wins(rule_id: str, select: list[str], ignore: list[str], expected: bool) -> None:
    assert is_selected(rule_id, select, ignore) is expected


def test_select_and_ignore_on_the_command_line() -> None:
    path = EXAMPLES / "PMP002" / "bad.x12"
    everything = json.loads(run_cli("validate", "--format", "json", str(path)).stdout)
    assert {f["rule"] for f in everything["findings"]} == {"PMP002"}
    ignored = run_cli("validate", "--format", "json", "--ignore", "PMP002", str(path))
    assert json.loads(ignored.stdout)["findings"] == [] and ignored.returncode == 0
    selected = run_cli("validate", "--format", "json", "--select", "PMP00", "--ignore", "PMP002", "--select", "PMP002", str(path))
    assert json.loads(selected.stdout)["findings"] == []


def test_a_prefix_that_names_no_rule_is_reported() -> None:
    assert unknown_prefixes(RULE_IDS, ["PMP", "PMP03", "PMP011", "PMP03", "X"]) == ["PMP03", "X"]
    assert unknown_prefixes(RULE_IDS, ["P", "PMP0", "PMP011"]) == []


@pytest.mark.parametrize("option", [{"select": ("PMP03",)}, {"ignore": ("PMP002", "PMP2")}])
def test_the_engine_refuses_an_unknown_prefix(option: dict[str, tuple[str, ...]]) -> None:
    with pytest.raises(UsageError, match="PMP0?[23]") as raised:
        RuleEngine(BOOK, **option)
    assert raised.value.code == "UNKNOWN_RULE_PREFIX" and raised.value.exit_code == 64


@pytest.mark.parametrize("command", ["validate", "fix"])
@pytest.mark.parametrize("option", [["--select", "PMP03"], ["--select", "PMP00,pmp3"], ["--ignore", "PMP0022"]])
def test_an_unknown_prefix_is_a_usage_error(command: str, option: list[str], tmp_path: Path) -> None:
    """Before: `--select PMP03` selected nothing and every file passed clean (exit 0)."""
    path = EXAMPLES / "PMP002" / "bad.x12"
    extra = ["-o", str(tmp_path / "out.x12")] if command == "fix" else []
    result = run_cli(command, *option, str(path), *extra)
    assert result.returncode == 64, result.stderr
    assert b"UNKNOWN_RULE_PREFIX" in result.stderr and result.stdout == b""
    assert not (tmp_path / "out.x12").exists()
    known = run_cli(command, "--select", "pmp00", str(path), *extra)  # prefixes are case-insensitive
    assert known.returncode == (1 if command == "validate" else 0)  # fix applied PMP002's drop
    assert b"1 finding(s)" in known.stdout


def test_serve_refuses_an_unknown_prefix_at_start_up() -> None:
    result = run_cli("serve", "--select", "PMP03", "--port", "0", env={"EDI837_API_TOKEN": "t" * 32}, timeout=60)
    assert result.returncode == 64 and b"UNKNOWN_RULE_PREFIX" in result.stderr


# -- the index stores any value a valid file can hold -----------------------------------------

def test_more_than_65535_distinct_unit_values_are_indexed(tmp_path: Path) -> None:
    """Before: 2-byte value ids; a file with more than 65,535 distinct SV104 values exited 70
    (struct.error). E0779 is an indexed code no rule reports here (no initiation that day), so
    the 66,000 lines give no finding; the last claim's 96413 lines (ids above 65,535) must still
    read back their own units: 3 on one line is PMP008's, one line of 1 unit is not."""
    claims, lines_per_claim = [], 50
    for number in range(66_000 // lines_per_claim):
        body = []
        for index in range(lines_per_claim):
            units = f"{number * lines_per_claim + index + 1}.5"
            body += [f"LX*{index + 1}", f"SV1*HC:E0779*1*UN*{units}***1", f"DTP*472*D8*{D1}"]
        claims.append([f"CLM*E{number}*{lines_per_claim}***11:B:1*Y*A*Y*Y", "HI*ABK:C184", *body])
    claims.append(claim("LAST", ("96413", "3", D2), ("96523", "1", D3)))
    path = tmp_path / "units.x12"
    path.write_bytes(one_patient(*claims))
    result = run_cli("validate", "--format", "json", str(path), timeout=300)
    report = json.loads(result.stdout)
    assert result.returncode == 1, result.stderr
    assert report["errors"] == [] and report["lines"] == 66_002
    assert [(f["rule"], f["code"]) for f in report["findings"]] == [("PMP008", "96413")]


def copy_rules(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", folder)
    return folder


def test_rules_change_by_editing_the_data_alone(tmp_path: Path) -> None:
    """A coder makes commercial payers drop the refill and moves the cycle to 1 day."""
    folder = copy_rules(tmp_path)
    text = (folder / "rules.toml").read_text()
    old = 'actions = { medicare = "drop_line", "medicaid,other" = "flag" }\nmessage = "pump refill'
    assert old in text
    text = text.replace(old, 'actions = { "medicare,other" = "drop_line", medicaid = "flag" }\nmessage = "pump refill')
    text = text.replace("same_cycle_days = 6", "same_cycle_days = 1")
    (folder / "rules.toml").write_text(text)
    commercial = one_patient(claim("C1", ("96416", "1", D1), ("96521", "1", D1)), filing="CI")
    assert [f.action for f in findings(commercial, rules_dir=str(folder)) if f.rule == "PMP002"] == ["drop_line"]
    medicaid = one_patient(claim("C1", ("96416", "1", D1), ("96521", "1", D1)), filing="MC")
    assert [f.action for f in findings(medicaid, rules_dir=str(folder)) if f.rule == "PMP002"] == ["flag"]
    five_days = one_patient(claim("C1", ("96416", "1", D1)), claim("C2", ("96416", "1", "20261107")))
    assert "PMP004" in rules_of(five_days)
    assert "PMP004" not in rules_of(five_days, rules_dir=str(folder))
    result = run_cli("validate", "--rules", str(folder), "--format", "json", str(EXAMPLES / "PMP004" / "bad.x12"))
    assert json.loads(result.stdout)["findings"] == []


def test_code_sets_change_by_editing_the_data_alone(tmp_path: Path) -> None:
    folder = copy_rules(tmp_path)
    sets = (folder / "codesets.toml").read_text().replace('port_flush = ["96523"]', 'port_flush = ["96523", "99999"]')
    (folder / "codesets.toml").write_text(sets)
    data = one_patient(claim("C1", ("99999", "1", D1), ("96413", "1", D1)))
    assert "PMP006" not in rules_of(data)
    assert "PMP006" in rules_of(data, rules_dir=str(folder))


@pytest.mark.parametrize(("file", "old", "new", "key"), [
    ("rules.toml", 'kind = "sole_service"', 'kind = "nonsense"', "PMP006.kind"),
    ("rules.toml", 'code_set = "port_flush"', 'code_set = "no_such_set"', "PMP006.params.code_set"),
    ("rules.toml", 'severity = "info"', 'severity = "fatal"', "PMP011.severity"),
    ("rules.toml", 'id = "PMP009"', 'id = "PMP008"', "PMP008.id"),
    ("rules.toml", "same_cycle_days = 6", 'same_cycle_days = "seven"', "PMP004.params.same_cycle_days"),
    ("rules.toml", 'actions = { "medicare,medicaid,other" = "flag" }', 'actions = { medicare = "flag", other = "flag" }',
     "PMP003.actions"),
    ("rules.toml", 'actions = { "medicare,medicaid,other" = "flag" }', 'actions = { "medicare,medicaid,others" = "flag" }',
     "PMP003.actions.medicare,medicaid,others"),
    ("codesets.toml", 'not_a_pfs_service = ["80047-89398"', 'not_a_pfs_service = ["89398-80047"', "sets.not_a_pfs_service"),
    ("codesets.toml", '"36415", "J*"', '"36415", "J*9"', "sets.not_a_pfs_service"),
    ("codesets.toml", 'medicaid_filing = ["MC"]', "", "sets.medicaid_filing"),
    ("crosswalk.toml", 'suggestion = ["96360-96379"]', 'suggestion = ["96360-96378"]', "row[31].suggestion"),
    ("rules.toml", 'message = "{code} totals', 'message = "{patient} totals', "PMP008.message"),
    ("crosswalk.toml", 'replacement = "96416"', "", "row[2].replacement"),
    ("crosswalk.toml", "effective = 2006-01-01", 'effective = "soon"', "row[0].effective"),
    ("codesets.toml", "medicare_filing", "medicare_filling", "sets.medicare_filing"),
    ("codesets.toml", "schema = 1", "schema = 2", "schema"),
])
def test_bad_rule_data_is_refused_with_file_and_key(tmp_path: Path, file: str, old: str, new: str, key: str) -> None:
    folder = copy_rules(tmp_path)
    text = (folder / file).read_text()
    assert old in text
    (folder / file).write_text(text.replace(old, new, 1))
    with pytest.raises(RulesError) as caught:
        load_rule_book(str(folder))
    assert f"{file}: {key}" in str(caught.value)
    result = run_cli("validate", "--rules", str(folder), str(EXAMPLES / "PMP001" / "good.x12"))
    assert result.returncode == 64 and file.encode() in result.stderr


def test_missing_docs_are_refused(tmp_path: Path) -> None:
    folder = copy_rules(tmp_path)
    text = (folder / "rules.toml").read_text()
    evidence = 'evidence = "CMS MLN SE1609; HCPCS G0498 descriptor."'
    start = text.index(evidence)
    (folder / "rules.toml").write_text(text[:start] + text[start + len(evidence):])
    with pytest.raises(RulesError, match=r"rules.toml: PMP009.docs.evidence"):
        load_rule_book(str(folder))



# -- one Kind record per rule kind --------------------------------------------------------------

def test_a_placeholder_the_kind_does_not_fill_is_refused(tmp_path: Path) -> None:
    """Message fields are per kind: PMP008 (units_per_day) names no {other} line."""
    folder = copy_rules(tmp_path)
    text = (folder / "rules.toml").read_text()
    (folder / "rules.toml").write_text(text.replace('message = "{code} totals', 'message = "{other} {code} totals', 1))
    with pytest.raises(RulesError, match=r"rules.toml: PMP008.message: unknown placeholder \{other\}"):
        load_rule_book(str(folder))


def test_a_new_kind_is_one_record_plus_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kind registered in KINDS alone is checked by the book, triggered and run by the engine."""
    from edi.rules import kinds

    def same_code_twice(spec, book, patient):
        for day in patient.days.values():
            if not day.repeated:
                continue
            seen: set[str] = set()
            for line in day.lines:
                if line.code in spec.params["codes"] and line.code in seen:
                    yield kinds.Hit(line, None, {"code": line.code})
                seen.add(line.code)

    new_kind = kinds.Kind(name="same_code_twice", evaluate=same_code_twice, parameters={"codes": "codes"},
                          trigger_codes=lambda spec, book: spec.params["codes"], message_fields=frozenset({"code"}))
    monkeypatch.setitem(kinds.KINDS, "same_code_twice", new_kind)
    folder = copy_rules(tmp_path)
    row = ('\n[[rule]]\nid = "PMP099"\ntitle = "The same flush twice"\nkind = "same_code_twice"\nseverity = "warning"\n'
           'actions = { "medicare,medicaid,other" = "flag" }\nmessage = "{code} twice on one day"\n'
           'params = { codes = ["96523"] }\n'
           'docs = { what = "w", why = "w", example = "e", instead = "i", evidence = "e" }\n')
    (folder / "rules.toml").write_text((folder / "rules.toml").read_text() + row)
    book = load_rule_book(str(folder))
    assert book.rule("PMP099").params == {"codes": CodeSet(["96523"])}
    data = one_patient(claim("C1", ("96523", "1", D1), ("96523", "1", D1), ("96413", "1", D1)))
    found = [f for f in findings(data, rules_dir=str(folder)) if f.rule == "PMP099"]
    assert [(f.code, f.message) for f in found] == [("96523", "96523 twice on one day")]
    monkeypatch.delitem(kinds.KINDS, "same_code_twice")
    with pytest.raises(RulesError, match="PMP099.kind: unknown kind 'same_code_twice'"):
        load_rule_book(str(folder))


def test_history_codes_come_from_the_kinds_that_look_back() -> None:
    """The history store keeps what PMP004 and PMP011 look back for (initiations, refills) and
    the primaries of PMP012's add-on codes, which its Kind declares like the others."""
    engine = RuleEngine(BOOK)
    kept = engine.history_codes()
    for code in ("96416", "96425", "G0498", "96521", "96413", "96409", "96365", "96369", "96374", "96360", "96422"):
        assert code in kept, code
    for code in ("96417", "96522", "99213", "J9190", "E0779"):  # add-ons, implantable refills, others
        assert code not in kept, code
