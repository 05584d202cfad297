"""The engine's day-at-a-time evaluation (``edi.rules.engine._DayByDay``) finds what evaluating
every rule over each whole patient finds, and the index's caches change nothing but speed.

The whole-patient path is the engine's own for a patient with a span line; forcing it for every
patient (``days_by_ordinal`` answering None) gives the reference findings.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal

import pytest

from edi.adapters.rules_files import load_rule_book
from edi.pipeline import validate
from edi.rules import engine as engine_module
from edi.rules import index as index_module
from edi.rules.engine import RuleEngine
from edi.rules.findings import Finding
from edi.rules.history import MemoryHistory
from edi.rules.index import PatientDayIndex
from edi.synthetic import PRICES, LineSpec, Visit, make_patients, render
from tests.helpers import HEADER, claim, subscriber, x12

BOOK = load_rule_book()
# Codes of every rule's sets and a few no rule reads, drawn at random onto crowded patient-days.
CODES = sorted({*PRICES, "96360", "96361", "96367", "96368", "96369", "96374", "96375", "96422", "96423",
                "G0498", "96425", "E0779", "A4221", "K0552", "36415", "85025", "99215", "96440", "J9000"})
MODIFIERS = [(), (), (), ("25",), ("59",), ("XE",), ("JW",), ("59", "25")]
PLACES = [None, None, None, "11", "22", "19"]


def crowded_visits(claims: int, seed: int) -> Iterator[Visit]:
    """Few patients, few days: many lines per patient-day, with spans, modifiers, places, a
    second billing provider, replacements and voids, secondary claims."""
    rng = random.Random(seed)
    patients = make_patients(rng, max(1, claims // 6))
    start = date(2026, 1, 1) if seed % 2 else date(2005, 6, 1)  # before and after the crosswalk's dates
    for number in range(claims):
        day = start + timedelta(days=rng.randrange(20))
        lines = tuple(LineSpec(code=rng.choice(CODES), units=rng.choice([1, 1, 1, 2, 3, 7]),
                               modifiers=rng.choice(MODIFIERS), place_of_service=rng.choice(PLACES),
                               charge=rng.choice([None, None, Decimal("12.34")]))
                      for _ in range(rng.choice([1, 1, 2, 3, 4, 6])))
        span_end = day + timedelta(days=rng.randrange(1, 4)) if rng.random() < 0.05 else None
        yield Visit(patient=rng.choice(patients), service_date=day, lines=lines, claim_id=f"R{seed:03d}{number:07d}",
                    place_of_service=rng.choice(["11", "11", "22"]), provider=rng.choice([0, 0, 0, 1]),
                    frequency=rng.choice(["1"] * 12 + ["7", "8"]), span_end=span_end,
                    other_payer_paid=rng.random() < 0.05)


def crowded_file(claims: int, seed: int) -> bytes:
    return b"".join(render(crowded_visits(claims, seed), control=seed))


def findings_of(data: bytes, *, history: MemoryHistory | None = None) -> tuple[Finding, ...]:
    return validate([data], name="-", engine=RuleEngine(BOOK, history=history)).findings


def whole_patient(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PatientDayIndex, "days_by_ordinal", lambda _index, _buffer: None)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_day_by_day_finds_what_the_whole_patient_finds(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    data = crowded_file(400, seed)
    day_by_day = findings_of(data)
    assert {finding.rule for finding in day_by_day} >= {"PMP002", "PMP006", "PMP007", "PMP008", "PMP012"}
    whole_patient(monkeypatch)
    assert findings_of(data) == day_by_day


def test_day_by_day_with_a_history_finds_what_the_whole_patient_finds(monkeypatch: pytest.MonkeyPatch) -> None:
    """With history events, the DAY rules that look back (PMP012) are evaluated on the day again,
    and PMP004/PMP011 see the earlier file."""
    visits = list(crowded_visits(600, 3))  # one practice's patients, in two files
    earlier, data = b"".join(render(visits[:300], control=1)), b"".join(render(visits[300:], control=2))
    engine = RuleEngine(BOOK, history=MemoryHistory())
    validate([earlier], name="-", engine=engine)
    events = list(engine.events_to_record())
    assert events

    def history() -> MemoryHistory:
        store = MemoryHistory()
        store.record("earlier", events, engine.file_claims())
        return store

    day_by_day = findings_of(data, history=history())
    assert {"PMP004", "PMP011"} <= {finding.rule for finding in day_by_day}
    whole_patient(monkeypatch)
    assert findings_of(data, history=history()) == day_by_day


def test_a_small_memo_of_days_changes_no_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    """The verdicts per distinct day are bounded (``_VERDICTS_KEPT``): forgetting them only
    costs their evaluation again."""
    data = crowded_file(300, 2)
    expected = findings_of(data)
    monkeypatch.setattr(engine_module, "_VERDICTS_KEPT", 2)
    assert findings_of(data) == expected


def test_a_small_memo_of_shapes_of_other_lines_changes_no_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SV1 values of lines no rule reads are remembered up to a bound, then looked up anew;
    the shapes of the lines the rules read are always kept (their ids are in the records)."""
    data = crowded_file(300, 4)
    expected = findings_of(data)
    monkeypatch.setattr(index_module, "_SHAPES_OF_OTHER_LINES", 1)
    engine = RuleEngine(BOOK)
    assert validate([data], name="-", engine=engine).findings == expected
    shapes = engine.index._shape_ids.values()  # the bound is what is tested
    assert all(sum(1 for shape in table.values() if shape == 0) <= 1 for table in shapes)


@pytest.mark.parametrize(("filing", "kept"), [("MB", 1), ("CI", 0), ("MC", 0)])
def test_locators_are_kept_where_a_rule_may_edit_in_the_claims_payer_scope(filing: str, kept: int) -> None:
    """PMP002 drops a refill beside its initiation for Medicare only and flags it for the other
    scopes: a non-Medicare claim has nothing a rewrite may edit, so no locator is kept."""
    d1 = "20261102"
    data = x12(*HEADER, *subscriber(filing=filing), *claim("C1", ("96416", "1", d1), ("96521", "1", d1)))
    engine = RuleEngine(BOOK)
    report = validate([data], name="-", engine=engine)
    assert [finding.rule for finding in report.findings] == ["PMP002"]
    assert report.findings[0].action == ("drop_line" if filing == "MB" else "flag")
    assert len(engine.index.locators) == kept
    assert len(report.locators) == kept


def test_an_engine_for_a_report_only_keeps_no_locators_and_finds_the_same() -> None:
    """``validate`` asks for no locators (nothing rewrites its report); its findings and actions
    are those of an engine that keeps them."""
    data = crowded_file(300, 3)
    keeping, report_only = RuleEngine(BOOK), RuleEngine(BOOK, locators=False)
    kept = validate([data], name="-", engine=keeping)
    bare = validate([data], name="-", engine=report_only)
    assert kept.findings == bare.findings and any(f.action == "drop_line" for f in kept.findings)
    assert len(keeping.index.locators) > 0 and len(report_only.index.locators) == 0 and bare.locators == ()
