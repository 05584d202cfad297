"""The rule kinds: how a kind of rule is evaluated over one patient's days, and all else about it.

Each kind is one ``Kind`` record in ``KINDS`` (at the end of this module): its parameters, the
codes that trigger it, the codes it looks back for across files, its message fields and its
evaluate function ``(spec, book, patient) -> hits``. The rule book checks ``rules/`` against
it, the engine picks patients and history by it: adding a kind is a function and a record
here, plus its rows in ``rules/``. The data (through ``RuleSpec.params``) says which codes,
windows and suggestions. A ``Hit`` names the line the
finding is reported on, an optional replacement code, and the message's fields (codes, dates
and counts only: never patient data). Decisions where the catalogue is silent are written at
each kind. A day's lines are in file order (claims arrive in file order), and each day carries
the set of its codes so that a kind skips a day that cannot match with one set operation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import date, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from edi.rules.index import LineRecord, PatientDay
from edi.rules.ncc import kinds as table_kinds

if TYPE_CHECKING:  # the book imports KINDS to check rules/ against them
    from edi.rules.book import RuleBook, RuleSpec
    from edi.rules.ncc import CodingTables

_ZERO = Decimal(0)


class HistoryEvent(NamedTuple):
    """A pump-family line sent in an earlier file (from the history store)."""

    date: date
    code: str
    claim_id: str


class EventToRecord(NamedTuple):
    """A pump event of the file being passed on, for the history store to keep."""

    patient_key: str  # as the rules index builds it (PHI: the store hashes it)
    claim_id: str
    service_date: date
    code: str


class PumpHistory(Protocol):
    """What the rules need of a history store (``edi.adapters.history`` implements it)."""

    def prefetch(self, patient_keys: list[str]) -> None:
        """Load what ``events`` will be asked for, in bulk (may do nothing)."""
        ...

    def events(self, patient_key: str, since: date, until: date, exclude_claims: Iterable[str] = ()) -> list[HistoryEvent]:
        """Events of the patient (key as ``PatientDayIndex`` builds it) dated since..until,
        without those of ``exclude_claims``: the file being checked supersedes what earlier
        runs recorded for its own claims."""
        ...


class Hit(NamedTuple):
    line: LineRecord
    replacement: str | None
    values: dict[str, Any]
    action: str | None = None  # overrides the spec's action (crosswalk rows carry their own)


class PatientView(NamedTuple):
    """One patient's days of this file, and the history events around them."""

    key: str
    days: dict[date, PatientDay]
    history: list[HistoryEvent]
    has_history_store: bool
    tables: CodingTables | None = None  # the imported CMS tables (edi.rules.ncc), when any

    def lines_with(self, codes: frozenset[str]) -> list[LineRecord]:
        """The patient's lines with one of the codes, in file order."""
        found = [line for day in self.days.values() if not codes.isdisjoint(day.codes)
                 for line in day.lines if line.code in codes]
        found.sort(key=_segment)
        return found


def _segment(line: LineRecord) -> int:
    return line.segment


def _units(value: Decimal) -> str:
    return format(value.normalize(), "f") if value == value.to_integral() else str(value)


def crosswalk(spec: RuleSpec, book: RuleBook, patient: PatientView) -> Iterator[Hit]:
    """PMP001: a deleted code on or after its row's effective date (before it, the code was valid)."""
    rows = book.crosswalk
    for day in patient.days.values():
        if day.codes.isdisjoint(rows):
            continue
        for line in day.lines:
            row = rows.get(line.code)
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
        codes = day.codes
        if codes.isdisjoint(report_on) or codes.isdisjoint(conflicting):
            continue
        first_other = next(line for line in day.lines if line.code in conflicting)
        for line in day.lines:
            if line.code in report_on and line is not first_other:
                yield Hit(line, None, {"code": line.code, "other": first_other.code})


def repeat_within_window(spec: RuleSpec, book: RuleBook, patient: PatientView) -> Iterator[Hit]:
    """PMP004: an initiation 1..N days after an earlier initiation (file or history).

    Decision: the earlier initiation must be on an earlier date; two on one day are PMP008's
    (more than one unit per day). Every initiation with an earlier one in its window is
    reported, as the catalogue says "a second ... after an earlier one".
    """
    codes, window = spec.params["codes"], spec.params["same_cycle_days"]
    history = [e.date for e in patient.history if e.code in codes]
    starts = [day for day, record in patient.days.items() if not codes.isdisjoint(record.codes)]
    if len(starts) + len(history) < 2:
        return
    dates = sorted(set(starts) | set(history))
    implantable = spec.params["implantable"]
    shows_implantable = any(not implantable.isdisjoint(day.codes) for day in patient.days.values()) or any(
        e.code in implantable for e in patient.history)
    suggestion = spec.params["suggest_implantable"] if shows_implantable else spec.params["suggest_portable"]
    one_day, span = timedelta(days=1), timedelta(days=window)
    for line in patient.lines_with(codes):
        earlier = [d for d in dates if one_day <= line.date - d <= span]
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
        codes = day.codes
        if (codes.isdisjoint(first_hour) and codes.isdisjoint(additional)) or not codes.isdisjoint(initiation):
            continue
        if codes.isdisjoint(evidence) and (codes.isdisjoint(first_hour) or codes.isdisjoint(additional)):
            continue  # neither pump items nor 96413 with 96415: no case to make
        firsts = [line for line in day.lines if line.code in first_hour]
        extras = [line for line in day.lines if line.code in additional]
        # A span line's units belong to several days: not counted (pump-rules v2).
        extra_units = sum((line.units for line in extras if not line.is_span), _ZERO)
        long_infusion = bool(firsts) and extra_units >= spec.params["long_infusion_units"]
        pump_items = [line for line in day.lines if line.code in evidence]
        if not (long_infusion or pump_items):
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
        if day.codes.isdisjoint(codes):
            continue
        others = day.others + sum(1 for line in day.lines if line.code not in codes)
        if others:
            for line in day.lines:
                if line.code in codes:
                    yield Hit(line, None, {"code": line.code, "others": others})


def place_of_service(spec: RuleSpec, book: RuleBook, patient: PatientView) -> Iterator[Hit]:
    """PMP007: the line's place of service (SV105, else CLM05-1) is a facility."""
    codes, places = spec.params["code_sets"], spec.params["places"]
    for day in patient.days.values():
        if day.codes.isdisjoint(codes):
            continue
        for line in day.lines:
            if line.code in codes and line.place in places:
                yield Hit(line, None, {"code": line.code, "place": line.place})


def units_per_day(spec: RuleSpec, book: RuleBook, patient: PatientView) -> Iterator[Hit]:
    """PMP008: per code and day, the line where the running total first passes the limit and
    every later line of that code that day (file order). A span line (RD8 over several days) is
    not counted: its units belong to several days ("5 units" over five days is one a day)."""
    codes, limit = spec.params["codes"], spec.params["limit"]
    for day in patient.days.values():
        if (limit >= 1 and not day.repeated) or day.codes.isdisjoint(codes):
            continue  # every code once, one unit each: no total can pass a limit of one or more
        counted = [line for line in day.lines if line.code in codes and not line.is_span]
        if len(counted) == 1 and counted[0].units <= limit:
            continue
        totals: dict[str, Decimal] = {}
        for line in counted:
            totals[line.code] = totals.get(line.code, _ZERO) + line.units
        if all(total <= limit for total in totals.values()):
            continue
        running: dict[str, Decimal] = {}
        for line in counted:
            code = line.code
            if code in totals and totals[code] > limit:
                previous = running.get(code, _ZERO)
                running[code] = previous + line.units
                if previous > limit or running[code] > limit:
                    yield Hit(line, None, {"code": code, "units": _units(totals[code]), "limit": limit})


def repeat_without_modifier(spec: RuleSpec, book: RuleBook, patient: PatientView) -> Iterator[Hit]:
    """PMP010: second and later initial codes of a day without a distinct modifier.

    The first in file order is the initial one, whatever its modifiers."""
    codes, modifiers = spec.params["codes"], spec.params["modifiers"]
    for day in patient.days.values():
        if len(day.lines) < 2 or day.codes.isdisjoint(codes):
            continue
        if not day.repeated and len(codes.intersection(day.codes)) < 2:
            continue  # one initial code on one line
        lines = [line for line in day.lines if line.code in codes]
        for line in lines[1:]:
            if modifiers.isdisjoint(line.modifiers):
                yield Hit(line, None, {"code": line.code, "other": lines[0].code})


def evidence_without_code(spec: RuleSpec, book: RuleBook, patient: PatientView) -> Iterator[Hit]:
    """PMP011: a refill with no initiation 0..N days before it, in the file or the history.

    Only with a history store: one file alone rarely holds a whole cycle."""
    if spec.params["requires_history"] and not patient.has_history_store:
        return
    codes, needs, lookback = spec.params["codes"], spec.params["needs"], spec.params["refill_lookback_days"]
    starts = [day for day, record in patient.days.items() if not needs.isdisjoint(record.codes)]
    starts += [event.date for event in patient.history if event.code in needs]
    span = timedelta(days=lookback)
    for day, record in patient.days.items():
        if record.codes.isdisjoint(codes):
            continue
        if any(timedelta(0) <= day - start <= span for start in starts):
            continue
        for line in record.lines:
            if line.code in codes:
                yield Hit(line, None, {"code": line.code, "days": lookback})


Evaluate = Callable[["RuleSpec", "RuleBook", PatientView], Iterator[Hit]]
TriggerCodes = Callable[["RuleSpec", "RuleBook"], "frozenset[str] | None"]
# A parameter's type: "codes" (a code set name or a list of set names and codes: procedure
# codes), "values" (the same, of other values: places, modifiers), or int, bool, str.
ParameterType = type | str


def _params(*names: str) -> TriggerCodes:
    """Trigger codes: the union of these code parameters of the rule."""
    def codes(spec: RuleSpec, book: RuleBook) -> frozenset[str]:
        return frozenset().union(*(spec.params[name] for name in names))

    return codes


def _crosswalk_codes(spec: RuleSpec, book: RuleBook) -> frozenset[str]:
    return frozenset(book.crosswalk)


class Kind(NamedTuple):
    """Everything edi837 knows about one rule kind; ``rules.toml`` names it in ``kind``.

    A ``NamedTuple`` rather than a frozen dataclass: ``dataclasses`` would add its import to
    every run's start-up (measured ~10 ms with ``inspect``). Build it with keywords."""

    name: str
    evaluate: Evaluate
    parameters: Mapping[str, ParameterType]  # every parameter the rule rows must give ...
    defaults: Mapping[str, Any] = MappingProxyType({})  # ... but these, which may be left out
    # The codes without which it cannot fire, which are also the codes of the lines it reports
    # on (a rewrite keeps the locators of those lines); None: it always runs, on any line.
    trigger_codes: TriggerCodes | None = None
    history_codes: tuple[str, ...] = ()  # code parameters it looks back for in earlier files
    lookback_days: str | None = None  # the parameter giving how far back it looks
    message_fields: frozenset[str] = frozenset()  # the placeholders its hits fill

    def code_parameters(self) -> tuple[str, ...]:
        """The parameters naming procedure codes (the index keeps lines of these codes)."""
        return tuple(name for name, kind in self.parameters.items() if kind == "codes")


_KIND_LIST = (
    Kind(name="crosswalk", evaluate=crosswalk, parameters={}, trigger_codes=_crosswalk_codes,
         message_fields=frozenset({"code", "effective", "advice", "replacement"})),
    Kind(name="same_day_conflict", evaluate=same_day_conflict,
         parameters={"report_on": "codes", "with": "codes"}, trigger_codes=_params("report_on"),
         message_fields=frozenset({"code", "other"})),
    Kind(name="repeat_within_window", evaluate=repeat_within_window,
         parameters={"codes": "codes", "same_cycle_days": int, "implantable": "codes",
                     "suggest_implantable": str, "suggest_portable": str},
         trigger_codes=_params("codes"), history_codes=("codes", "implantable"), lookback_days="same_cycle_days",
         message_fields=frozenset({"code", "days", "earlier", "replacement"})),
    Kind(name="office_infusion_on_pump_day", evaluate=office_infusion_on_pump_day,
         parameters={"first_hour": "codes", "additional_hour": "codes", "long_infusion_units": int,
                     "pump_evidence": "codes", "initiation": "codes", "suggest": str},
         trigger_codes=_params("first_hour", "additional_hour"),
         message_fields=frozenset({"code", "reason", "replacement"})),
    Kind(name="sole_service", evaluate=sole_service, parameters={"code_set": "codes"},
         trigger_codes=_params("code_set"), message_fields=frozenset({"code", "others"})),
    Kind(name="place_of_service", evaluate=place_of_service, parameters={"code_sets": "codes", "places": "values"},
         trigger_codes=_params("code_sets"), message_fields=frozenset({"code", "place"})),
    Kind(name="units_per_day", evaluate=units_per_day, parameters={"codes": "codes", "limit": int},
         trigger_codes=_params("codes"), message_fields=frozenset({"code", "units", "limit"})),
    Kind(name="repeat_without_modifier", evaluate=repeat_without_modifier,
         parameters={"codes": "codes", "modifiers": "values"}, trigger_codes=_params("codes"),
         message_fields=frozenset({"code", "other"})),
    Kind(name="evidence_without_code", evaluate=evidence_without_code,
         parameters={"codes": "codes", "needs": "codes", "refill_lookback_days": int, "requires_history": bool},
         defaults={"requires_history": False}, trigger_codes=_params("codes"), history_codes=("codes", "needs"),
         lookback_days="refill_lookback_days", message_fields=frozenset({"code", "days"})),
)
KINDS: dict[str, Kind] = {kind.name: kind for kind in (*_KIND_LIST, *table_kinds())}
