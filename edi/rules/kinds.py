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
from typing import TYPE_CHECKING, Any, Protocol

from edi.records import Record
from edi.rules.codes import EMPTY, CodeMap, CodeSet
from edi.rules.index import LineRecord, PatientDay
from edi.rules.ncc import kinds as table_kinds

if TYPE_CHECKING:  # the book imports KINDS to check rules/ against them
    from edi.rules.book import RuleBook, RuleSpec
    from edi.rules.ncc import CodingTables

_ZERO = Decimal(0)


class HistoryEvent(Record):
    """A line sent in an earlier file (from the history store): an initiation, a refill or a
    primary code that a kind looks back for (its ``history_codes``)."""

    date: date
    code: str
    claim_id: str


class EventToRecord(Record):
    """An event of the file being passed on, for the history store to keep."""

    patient_key: str  # as the rules index builds it (PHI: the store hashes it)
    provider: str  # the claim's billing provider (``Claim.billing_provider``; the store hashes it)
    claim_id: str
    service_date: date
    code: str


class FileClaim(Record):
    """A claim of the file (voids included): what it supersedes in the history store.

    A claim is its billing provider's CLM01: the events recorded for that claim by earlier runs
    are replaced by the file's (an original sent again, a replacement, frequency 7) or removed
    (a void, frequency 8), and lookups leave them out."""

    patient_key: str
    provider: str
    claim_id: str


class PumpHistory(Protocol):
    """What the rules need of a history store (``edi.adapters.history`` implements it)."""

    def prefetch(self, patient_keys: list[str], claims: Iterable[FileClaim] = ()) -> None:
        """Load what ``events`` will be asked for, in bulk; ``claims`` are the file's claims,
        whose recorded events ``events`` leaves out from then on: the file being checked
        supersedes what earlier runs recorded for its own claims, and its voids clear them."""
        ...

    def events(self, patient_key: str, provider: str, since: date, until: date) -> list[HistoryEvent]:
        """Events of the provider patient (key as ``PatientDayIndex`` builds it) dated
        since..until. Another provider's events never count; events recorded before stores knew
        the provider (schema version 2 and older) count for every provider of the patient."""
        ...


class Hit(Record):
    line: LineRecord
    replacement: str | None
    values: dict[str, Any]
    action: str | None = None  # overrides the spec's action (crosswalk rows carry their own)


class PatientView(Record):
    """One patient's days of this file (for one billing provider), and the history events around them."""

    key: str
    days: dict[date, PatientDay]
    history: list[HistoryEvent]
    has_history_store: bool
    tables: CodingTables | None = None  # the imported CMS tables (edi.rules.ncc), when any

    def lines_with(self, codes: CodeSet) -> list[LineRecord]:
        """The patient's lines with one of the codes, in file order, each once (a span line
        stands on several days)."""
        found = {line.segment: line for day in self.days.values() if not codes.isdisjoint(day.codes)
                 for line in day.lines if line.code in codes}
        return [found[segment] for segment in sorted(found)]


def _units(value: Decimal) -> str:
    return format(value.normalize(), "f") if value == value.to_integral() else str(value)


def _distinct(line: LineRecord, modifiers: CodeSet) -> bool:
    """The line carries a distinct-procedure modifier (59, XE, XS, XP, XU): a separate encounter."""
    return bool(line.modifiers) and not modifiers.isdisjoint(line.modifiers)


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
                advice = (f"consider {suggestion}" if suggestion else "no current code is certain: a person decides")
                advice += f" ({row.note})" if row.note else ""
                # One suggested code goes into `replacement`; a choice of several stays in the message.
                replacement = row.suggestion[0] if len(row.suggestion) == 1 else None
                yield Hit(line, replacement, {"code": line.code, "effective": row.effective.isoformat(),
                                              "advice": advice, "replacement": replacement}, row.action)


def same_day_conflict(spec: RuleSpec, book: RuleBook, patient: PatientView) -> Iterator[Hit]:
    """PMP002/PMP003/PMP009: each ``report_on`` line on a day that also has a ``with`` line;
    optionally a second pair (``and_report_on`` with ``and_with``: PMP002 pairs each pump's
    refill with its own initiation: 96521 with any initiation, 96522 with 96425 only).

    A line carrying a ``skip_modifiers`` modifier (the distinct-procedure modifiers) is a
    separate encounter: it neither is reported nor makes another line reported. The conflicting
    line may be on any claim of the provider patient-day; the first one in file order is named.
    """
    skip = spec.params["skip_modifiers"]
    pairs = ((spec.params["report_on"], spec.params["with"]), (spec.params["and_report_on"], spec.params["and_with"]))
    for day in patient.days.values():
        codes = day.codes
        for report_on, conflicting in pairs:
            if report_on.isdisjoint(codes) or conflicting.isdisjoint(codes):
                continue
            others = [line for line in day.lines if line.code in conflicting and not _distinct(line, skip)]
            for line in day.lines:
                if line.code not in report_on or _distinct(line, skip):
                    continue
                other = next((o for o in others if o is not line), None)
                if other is not None:
                    yield Hit(line, None, {"code": line.code, "other": other.code})


def repeat_within_window(spec: RuleSpec, book: RuleBook, patient: PatientView) -> Iterator[Hit]:
    """PMP004: an initiation 1..N days after an earlier initiation (file or history).

    Decision: the earlier initiation must be on an earlier date; two on one day are PMP008's
    (more than one unit per day). Every initiation with an earlier one in its window is
    reported, as the catalogue says "a second ... after an earlier one". The suggestion follows
    the route of the reported line (v2): an intra-arterial initiation (96425) fills an implanted
    pump, so its refill is 96522; any other is a portable pump's, 96521.
    """
    codes, window = spec.params["codes"], spec.params["same_cycle_days"]
    initiations = patient.lines_with(codes)
    history = [e.date for e in patient.history if e.code in codes]
    if len(initiations) + len(history) < 2:
        return
    dates = sorted({line.date for line in initiations} | set(history))
    intra_arterial = spec.params["intra_arterial"]
    one_day, span = timedelta(days=1), timedelta(days=window)
    for line in initiations:
        earlier = [d for d in dates if one_day <= line.date - d <= span]
        if earlier:
            last = max(earlier)
            suggestion = (spec.params["suggest_intra_arterial"] if line.code in intra_arterial
                          else spec.params["suggest_portable"])
            yield Hit(line, suggestion, {"code": line.code, "days": (line.date - last).days,
                                         "earlier": last.isoformat(), "replacement": suggestion})


def office_infusion_on_pump_day(spec: RuleSpec, book: RuleBook, patient: PatientView) -> Iterator[Hit]:
    """PMP005: 96413 + 7 or more units of 96415, or 96413/96415 with pump equipment or supplies,
    and no initiation that day. Reported on the first 96413 line, else the first 96415 line.
    The suggestion depends on the payer scope: Medicare's office-supplied pump initiation is
    G0498 (since 2016), everyone else's 96416."""
    first_hour, additional = spec.params["first_hour"], spec.params["additional_hour"]
    evidence, initiation = spec.params["pump_evidence"], spec.params["initiation"]
    for day in patient.days.values():
        codes = day.codes
        if (first_hour.isdisjoint(codes) and additional.isdisjoint(codes)) or not initiation.isdisjoint(codes):
            continue
        if evidence.isdisjoint(codes) and (first_hour.isdisjoint(codes) or additional.isdisjoint(codes)):
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
        suggest = spec.params["suggest_medicare"] if target.scope == "medicare" else spec.params["suggest_other"]
        yield Hit(target, suggest, {"code": target.code, "reason": reason, "replacement": suggest})


def sole_service(spec: RuleSpec, book: RuleBook, patient: PatientView) -> Iterator[Hit]:
    """PMP006: a flush line on a day with another physician-fee-schedule service of the same
    provider: any line outside the set and outside ``not_counted`` (laboratory, drugs,
    supplies and equipment are not fee-schedule services and leave the flush payable)."""
    codes, not_counted = spec.params["code_set"], spec.params["not_counted"]
    for day in patient.days.values():
        if codes.isdisjoint(day.codes):
            continue
        others = day.others + sum(1 for line in day.lines if line.code not in codes and line.code not in not_counted)
        if others:
            for line in day.lines:
                if line.code in codes:
                    yield Hit(line, None, {"code": line.code, "others": others})


def place_of_service(spec: RuleSpec, book: RuleBook, patient: PatientView) -> Iterator[Hit]:
    """PMP007: the line's place of service (SV105, else CLM05-1) is a facility."""
    codes, places = spec.params["code_sets"], spec.params["places"]
    for day in patient.days.values():
        if codes.isdisjoint(day.codes):
            continue
        for line in day.lines:
            if line.code in codes and line.place in places:
                yield Hit(line, None, {"code": line.code, "place": line.place})


def units_per_day(spec: RuleSpec, book: RuleBook, patient: PatientView) -> Iterator[Hit]:
    """PMP008: per code and day, the line where the running total first passes the limit and
    every later line of that code that day (file order). Not counted: a span line (RD8 over
    several days: "5 units" over five days is one a day) and a line with a ``skip_modifiers``
    modifier (a separate encounter)."""
    codes, limit, skip = spec.params["codes"], spec.params["limit"], spec.params["skip_modifiers"]
    for day in patient.days.values():
        if (limit >= 1 and not day.repeated) or codes.isdisjoint(day.codes):
            continue  # every code once, one unit each: no total can pass a limit of one or more
        counted = [line for line in day.lines if line.code in codes and not line.is_span and not _distinct(line, skip)]
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


def initial_service_hierarchy(spec: RuleSpec, book: RuleBook, patient: PatientView) -> Iterator[Hit]:
    """PMP010: more than one initial code on a day: the first line of the highest-ranked code
    (``ranking``: chemotherapy before therapeutic before hydration, infusion before push) is
    the initial service whatever the file order; every other is reported with its
    ``subsequent`` code. Lines with a ``skip_modifiers`` modifier are left out (v2)."""
    ranking, subsequent, skip = spec.params["ranking"], spec.params["subsequent"], spec.params["skip_modifiers"]
    rank = {code: position for position, code in enumerate(ranking)}
    for day in patient.days.values():
        if len(day.lines) < 2:
            continue
        if not day.repeated and sum(1 for code in day.codes if code in rank) < 2:
            continue  # one initial code on one line
        lines = [line for line in day.lines if line.code in rank and not _distinct(line, skip)]
        if len(lines) < 2:
            continue
        initial = min(lines, key=lambda line: (rank[line.code], line.segment))
        for line in lines:
            if line is initial:
                continue
            code = subsequent.first(line.code)
            advice = (f"report it as {code}" if code else "report its sequential or concurrent code")
            yield Hit(line, code, {"code": line.code, "other": initial.code, "advice": advice, "replacement": code})


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
        if codes.isdisjoint(record.codes):
            continue
        if any(timedelta(0) <= day - start <= span for start in starts):
            continue
        for line in record.lines:
            if line.code in codes:
                yield Hit(line, None, {"code": line.code, "days": lookback})


def add_on_without_primary(spec: RuleSpec, book: RuleBook, patient: PatientView) -> Iterator[Hit]:
    """PMP012: an add-on code (a key of ``primaries``) with none of its primary codes on the
    provider patient-day, in the file or in the history (the primary may have gone in an
    earlier file). A span add-on is satisfied by a primary on any day it stands on."""
    table: CodeMap = spec.params["primaries"]
    add_ons = table.keys_set
    primaries_on: dict[date, set[str]] = {}
    for event in patient.history:
        if event.code in table.values_set:
            primaries_on.setdefault(event.date, set()).add(event.code)
    satisfied: dict[int, bool] = {}
    lines: dict[int, LineRecord] = {}
    for day_date, day in patient.days.items():
        if add_ons.isdisjoint(day.codes):
            continue
        earlier = primaries_on.get(day_date, ())
        for line in day.lines:
            if line.code not in add_ons:
                continue
            needed = table[line.code]
            found = not needed.isdisjoint(day.codes) or not needed.isdisjoint(earlier)
            lines[line.segment] = line
            satisfied[line.segment] = satisfied.get(line.segment, False) or found
    for segment in sorted(lines):
        if not satisfied[segment]:
            line = lines[segment]
            yield Hit(line, None, {"code": line.code, "primaries": " or ".join(table[line.code].describe().split(", "))})


Evaluate = Callable[["RuleSpec", "RuleBook", PatientView], Iterator[Hit]]
TriggerCodes = Callable[["RuleSpec", "RuleBook"], "CodeSet | None"]
# A parameter's type: "codes" (a code set name or a list of set names and entries: procedure
# codes, prefixes J*, ranges 80047-89398), "values" (the same, of other values: places,
# modifiers), "ranked" (codes in rank order: a set's entries as listed), "code_map" (a map of
# codesets.toml or an inline table: code -> codes), or int, bool, str.
ParameterType = type | str
CODE_TYPES = ("codes", "ranked", "code_map")  # the parameter types naming procedure codes


def _params(*names: str) -> TriggerCodes:
    """Trigger codes: the union of these code parameters of the rule."""
    def codes(spec: RuleSpec, book: RuleBook) -> CodeSet:
        return CodeSet.union(EMPTY, *(spec.params[name] for name in names))

    return codes


def _ranked(name: str) -> TriggerCodes:
    def codes(spec: RuleSpec, book: RuleBook) -> CodeSet:
        return CodeSet(spec.params[name])

    return codes


def _add_ons(name: str) -> TriggerCodes:
    def codes(spec: RuleSpec, book: RuleBook) -> CodeSet:
        return spec.params[name].keys_set

    return codes


def _crosswalk_codes(spec: RuleSpec, book: RuleBook) -> CodeSet:
    return CodeSet(book.crosswalk)


def _with_history_when(name: str) -> Callable[[RuleSpec, bool], bool]:
    """The rule runs without a history store unless its parameter ``name`` is true."""
    def applies(spec: RuleSpec, has_history_store: bool) -> bool:
        return has_history_store or not spec.params[name]

    return applies


# How much of a patient a kind's hits on one day depend on (the engine evaluates each kind on as
# little as it may, ``edi.rules.engine``):
DAY = "day"  # that day's lines alone: their codes, modifiers, units, places and payer scopes, and
# the count of the day's other lines (and, for a kind with ``history_codes``, the history events
# of that date). Neither the date nor where the lines stand in the file counts, but their order.
DATED_DAY = "dated_day"  # that day's lines and its date (effective dates, the tables in force)
PATIENT = "patient"  # several days of the patient


class Kind(Record):
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
    # Code parameters it looks back for in earlier files (a code_map: the codes it maps to,
    # e.g. PMP012's primaries of its add-on codes).
    history_codes: tuple[str, ...] = ()
    lookback_days: str | None = None  # the parameter giving how far back it looks
    message_fields: frozenset[str] = frozenset()  # the placeholders its hits fill
    reach: str = PATIENT  # DAY, DATED_DAY or PATIENT; PATIENT is always right, and the slowest
    # Whether the rule can fire at all in a run, given whether a history store is attached
    # (None: it can); a rule that cannot is not evaluated.
    applies: Callable[[RuleSpec, bool], bool] | None = None
    # A PATIENT kind: the fewest dates (of the days with its trigger codes, and of the history
    # events) on which it can fire; with fewer the patient is not evaluated.
    fewest_dates: int = 1
    # ... and the parameter giving the most days between two of those dates (None: any).
    dates_within: str | None = None

    def code_parameters(self) -> tuple[str, ...]:
        """The parameters naming procedure codes (the index keeps lines of these codes)."""
        return tuple(name for name, kind in self.parameters.items() if kind in CODE_TYPES)


_NO_MODIFIERS = MappingProxyType({"skip_modifiers": EMPTY})
_KIND_LIST = (
    Kind(name="crosswalk", evaluate=crosswalk, parameters={}, trigger_codes=_crosswalk_codes,
         message_fields=frozenset({"code", "effective", "advice", "replacement"}), reach=DATED_DAY),
    Kind(name="same_day_conflict", evaluate=same_day_conflict,
         parameters={"report_on": "codes", "with": "codes", "and_report_on": "codes", "and_with": "codes",
                     "skip_modifiers": "values"},
         defaults={"and_report_on": EMPTY, "and_with": EMPTY, "skip_modifiers": EMPTY},
         trigger_codes=_params("report_on", "and_report_on"), message_fields=frozenset({"code", "other"}), reach=DAY),
    Kind(name="repeat_within_window", evaluate=repeat_within_window,
         parameters={"codes": "codes", "same_cycle_days": int, "intra_arterial": "codes",
                     "suggest_intra_arterial": str, "suggest_portable": str},
         trigger_codes=_params("codes"), history_codes=("codes",), lookback_days="same_cycle_days",
         message_fields=frozenset({"code", "days", "earlier", "replacement"}),
         fewest_dates=2, dates_within="same_cycle_days"),  # an initiation after an earlier one in the window
    Kind(name="office_infusion_on_pump_day", evaluate=office_infusion_on_pump_day,
         parameters={"first_hour": "codes", "additional_hour": "codes", "long_infusion_units": int,
                     "pump_evidence": "codes", "initiation": "codes", "suggest_medicare": str, "suggest_other": str},
         trigger_codes=_params("first_hour", "additional_hour"),
         message_fields=frozenset({"code", "reason", "replacement"}), reach=DAY),
    Kind(name="sole_service", evaluate=sole_service, parameters={"code_set": "codes", "not_counted": "codes"},
         defaults={"not_counted": EMPTY}, trigger_codes=_params("code_set"),
         message_fields=frozenset({"code", "others"}), reach=DAY),
    Kind(name="place_of_service", evaluate=place_of_service, parameters={"code_sets": "codes", "places": "values"},
         trigger_codes=_params("code_sets"), message_fields=frozenset({"code", "place"}), reach=DAY),
    Kind(name="units_per_day", evaluate=units_per_day,
         parameters={"codes": "codes", "limit": int, "skip_modifiers": "values"}, defaults=_NO_MODIFIERS,
         trigger_codes=_params("codes"), message_fields=frozenset({"code", "units", "limit"}), reach=DAY),
    Kind(name="initial_service_hierarchy", evaluate=initial_service_hierarchy,
         parameters={"ranking": "ranked", "subsequent": "code_map", "skip_modifiers": "values"},
         defaults=_NO_MODIFIERS, trigger_codes=_ranked("ranking"),
         message_fields=frozenset({"code", "other", "advice", "replacement"}), reach=DAY),
    Kind(name="evidence_without_code", evaluate=evidence_without_code,
         parameters={"codes": "codes", "needs": "codes", "refill_lookback_days": int, "requires_history": bool},
         defaults={"requires_history": False}, trigger_codes=_params("codes"), history_codes=("codes", "needs"),
         lookback_days="refill_lookback_days", message_fields=frozenset({"code", "days"}),
         applies=_with_history_when("requires_history")),
    Kind(name="add_on_without_primary", evaluate=add_on_without_primary, parameters={"primaries": "code_map"},
         trigger_codes=_add_ons("primaries"), history_codes=("primaries",),
         message_fields=frozenset({"code", "primaries"}), reach=DAY),
)


def _by_name(kinds: Iterable[Kind]) -> dict[str, Kind]:
    """One record per name: two kinds of one name (the PMP and the table-driven modules each add
    theirs) would silently leave one of them unreachable."""
    table: dict[str, Kind] = {}
    for kind in kinds:
        if kind.name in table:
            raise ValueError(f"two rule kinds are named {kind.name!r}")
        table[kind.name] = kind
    return table


KINDS: dict[str, Kind] = _by_name((*_KIND_LIST, *table_kinds()))
