"""The rule kinds: how a kind of rule is evaluated over one patient's days.

Each kind is a function ``(spec, book, patient) -> hits``; the data in ``rules/`` (through
``RuleSpec.params``) says which codes, windows and suggestions. A ``Hit`` names the line the
finding is reported on, an optional replacement code, and the message's fields (codes, dates
and counts only: never patient data). Decisions where the catalogue is silent are written at
each kind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, NamedTuple, Protocol

from edi.rules.book import RuleBook, RuleSpec
from edi.rules.index import LineRecord, PatientDay


class HistoryEvent(NamedTuple):
    """A pump-family line sent in an earlier file (from the history store)."""

    date: date
    code: str
    claim_id: str


class PumpHistory(Protocol):
    """What the rules need of a history store (``edi.adapters.history`` implements it)."""

    def events(self, patient_key: tuple[str, ...], since: date, until: date) -> list[HistoryEvent]: ...


@dataclass(frozen=True, slots=True)
class Hit:
    line: LineRecord
    replacement: str | None
    values: dict[str, Any]
    action: str | None = None  # overrides the spec's action (crosswalk rows carry their own)


@dataclass(slots=True)
class PatientView:
    """One patient's days of this file, and the history events around them."""

    key: tuple[str, ...]
    days: dict[date, PatientDay]
    history: list[HistoryEvent]
    has_history_store: bool

    def ordered_lines(self) -> list[LineRecord]:
        return sorted((line for day in self.days.values() for line in day.lines), key=lambda r: r.segment)


def _units(value: Decimal) -> str:
    return format(value.normalize(), "f") if value == value.to_integral() else str(value)


def crosswalk(spec: RuleSpec, book: RuleBook, patient: PatientView) -> Iterator[Hit]:
    """PMP001: a deleted code on or after its row's effective date (before it, the code was valid)."""
    for day in patient.days.values():
        for line in day.lines:
            row = book.crosswalk.get(line.code)
            if row is None or line.date < row.effective:
                continue
            if row.action == "replace_code":
                advice = f"bill {row.replacement}"
                yield Hit(line, row.replacement, {"code": line.code, "effective": row.effective.isoformat(),
                                                  "advice": advice, "replacement": row.replacement}, row.action)
            else:
                suggestion = " or ".join(row.suggestion)
                advice = f"consider {suggestion}" + (f" ({row.note})" if row.note else "")
                # One suggested code goes into `replacement`; a choice of several stays in the message.
                replacement = row.suggestion[0] if len(row.suggestion) == 1 else None
                yield Hit(line, replacement, {"code": line.code, "effective": row.effective.isoformat(),
                                              "advice": advice, "replacement": replacement}, row.action)


def same_day_conflict(spec: RuleSpec, book: RuleBook, patient: PatientView) -> Iterator[Hit]:
    """PMP002/PMP003/PMP009: each ``report_on`` line on a day that also has a ``with`` line.

    The conflicting line may be on any claim of the patient-day; the first one in file order is
    named in the message.
    """
    report_on, conflicting = spec.params["report_on"], spec.params["with"]
    for day in patient.days.values():
        others = [line for line in day.lines if line.code in conflicting]
        if not others:
            continue
        first_other = min(others, key=lambda r: r.segment)
        for line in day.lines:
            if line.code in report_on and line.segment != first_other.segment:
                yield Hit(line, None, {"code": line.code, "other": first_other.code})


def repeat_within_window(spec: RuleSpec, book: RuleBook, patient: PatientView) -> Iterator[Hit]:
    """PMP004: an initiation 1..N days after an earlier initiation (file or history).

    Decision: the earlier initiation must be on an earlier date; two on one day are PMP008's
    (more than one unit per day). Every initiation with an earlier one in its window is
    reported, as the catalogue says "a second ... after an earlier one".
    """
    codes, window = spec.params["codes"], spec.params["same_cycle_days"]
    implantable = spec.params["implantable"]
    lines = [line for line in patient.ordered_lines() if line.code in codes]
    if not lines:
        return
    dates = sorted({line.date for line in lines} | {e.date for e in patient.history if e.code in codes})
    shows_implantable = any(line.code in implantable for line in patient.ordered_lines()) or any(
        e.code in implantable for e in patient.history)
    suggestion = spec.params["suggest_implantable"] if shows_implantable else spec.params["suggest_portable"]
    for line in lines:
        earlier = [d for d in dates if timedelta(days=1) <= line.date - d <= timedelta(days=window)]
        if earlier:
            last = max(earlier)
            yield Hit(line, suggestion, {"code": line.code, "days": (line.date - last).days,
                                         "earlier": last.isoformat(), "replacement": suggestion})


def office_infusion_on_pump_day(spec: RuleSpec, book: RuleBook, patient: PatientView) -> Iterator[Hit]:
    """PMP005: 96413 + 7 or more units of 96415, or 96413/96415 with pump equipment or supplies,
    and no initiation that day. Reported on the first 96413 line, else the first 96415 line."""
    first_hour, additional = spec.params["first_hour"], spec.params["additional_hour"]
    evidence, initiation = spec.params["pump_evidence"], spec.params["initiation"]
    for day in patient.days.values():
        lines = sorted(day.lines, key=lambda r: r.segment)
        if any(line.code in initiation for line in lines):
            continue
        firsts = [line for line in lines if line.code in first_hour]
        extras = [line for line in lines if line.code in additional]
        extra_units = sum((line.units for line in extras), Decimal(0))
        long_infusion = bool(firsts) and extra_units >= spec.params["long_infusion_units"]
        pump_items = [line for line in lines if line.code in evidence]
        with_pump = bool(firsts or extras) and bool(pump_items)
        if not (long_infusion or with_pump):
            continue
        target = firsts[0] if firsts else extras[0]
        reason = (f"{_units(extra_units)} additional hours" if long_infusion
                  else f"pump item {pump_items[0].code}")
        yield Hit(target, spec.params["suggest"], {"code": target.code, "reason": reason,
                                                   "replacement": spec.params["suggest"]})


def sole_service(spec: RuleSpec, book: RuleBook, patient: PatientView) -> Iterator[Hit]:
    """PMP006: a flush line on a day with any other service line (any code outside the set)."""
    codes = spec.params["code_set"]
    for day in patient.days.values():
        flushes = [line for line in day.lines if line.code in codes]
        if not flushes:
            continue
        others = day.others + sum(1 for line in day.lines if line.code not in codes)
        if others:
            for line in flushes:
                yield Hit(line, None, {"code": line.code, "others": others})


def place_of_service(spec: RuleSpec, book: RuleBook, patient: PatientView) -> Iterator[Hit]:
    """PMP007: the line's place of service (SV105, else CLM05-1) is a facility."""
    codes, places = spec.params["code_sets"], spec.params["places"]
    for day in patient.days.values():
        for line in day.lines:
            if line.code in codes and line.place in places:
                yield Hit(line, None, {"code": line.code, "place": line.place})


def units_per_day(spec: RuleSpec, book: RuleBook, patient: PatientView) -> Iterator[Hit]:
    """PMP008: per code and day, the line where the running total first passes the limit and
    every later line of that code that day (file order)."""
    codes, limit = spec.params["codes"], spec.params["limit"]
    for day in patient.days.values():
        for code in sorted(codes):
            lines = sorted((line for line in day.lines if line.code == code), key=lambda r: r.segment)
            if not lines:
                continue
            day_total = sum((line.units for line in lines), Decimal(0))
            if day_total <= limit:
                continue
            running = Decimal(0)
            passed = False
            for line in lines:
                running += line.units
                if passed or running > limit:
                    passed = True
                    yield Hit(line, None, {"code": code, "units": _units(day_total), "limit": limit})


def repeat_without_modifier(spec: RuleSpec, book: RuleBook, patient: PatientView) -> Iterator[Hit]:
    """PMP010: second and later initial codes of a day without a distinct modifier.

    The first in file order is the initial one, whatever its modifiers."""
    codes, modifiers = spec.params["codes"], spec.params["modifiers"]
    for day in patient.days.values():
        lines = sorted((line for line in day.lines if line.code in codes), key=lambda r: r.segment)
        for line in lines[1:]:
            if not modifiers.intersection(line.modifiers):
                yield Hit(line, None, {"code": line.code, "other": lines[0].code})


def evidence_without_code(spec: RuleSpec, book: RuleBook, patient: PatientView) -> Iterator[Hit]:
    """PMP011: a refill with no initiation 0..N days before it, in the file or the history.

    Only with a history store: one file alone rarely holds a whole cycle."""
    if spec.params["requires_history"] and not patient.has_history_store:
        return
    codes, needs, lookback = spec.params["codes"], spec.params["needs"], spec.params["refill_lookback_days"]
    starts = {line.date for day in patient.days.values() for line in day.lines if line.code in needs}
    starts |= {event.date for event in patient.history if event.code in needs}
    for day in patient.days.values():
        for line in day.lines:
            if line.code in codes and not any(
                timedelta(0) <= line.date - start <= timedelta(days=lookback) for start in starts
            ):
                yield Hit(line, None, {"code": line.code, "days": lookback})


KINDS: dict[str, Callable[[RuleSpec, RuleBook, PatientView], Iterator[Hit]]] = {
    "crosswalk": crosswalk,
    "same_day_conflict": same_day_conflict,
    "repeat_within_window": repeat_within_window,
    "office_infusion_on_pump_day": office_infusion_on_pump_day,
    "sole_service": sole_service,
    "place_of_service": place_of_service,
    "units_per_day": units_per_day,
    "repeat_without_modifier": repeat_without_modifier,
    "evidence_without_code": evidence_without_code,
}
