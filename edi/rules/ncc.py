"""The CMS correct-coding table kinds: NCC001 (PTP pairs), NCC002 (MUE limits), NCC003 (add-on edits).

Unlike the pump kinds (``edi.rules.kinds``), these are driven by tables a practice imports
(``edi837 tables import``; the CPT codes in them are under an AMA licence, so edi837 ships none).
The core does no I/O: the engine is handed a ``CodingTables`` object (``edi.adapters.tables``
implements it over SQLite or PostgreSQL), asks it once per file for the edits that touch the
file's codes (``prefetch``), and the kinds below look edits up in memory by date of service.

Decisions where the catalogue (pump-rules.md, "The CMS correct-coding tables") is silent:
- Payer scope to table source: the rule's ``medicare_tables``, ``medicaid_tables`` and
  ``other_tables`` parameters name the source whose tables a line of that scope is checked
  against (``medicare``, ``medicaid`` or ``none``). Defaults: Medicare tables for ``medicare``,
  Medicaid tables for ``medicaid``, none for ``other`` (a coder maps ``other`` in ``rules/``).
- NCC001: reported on every column-2 line of an active pair on the provider patient-day. With
  indicator 1 the pair is silent when either line carries one of the rule's ``modifiers``
  (default: the distinct-procedure modifiers); with indicator 0 it always fires and takes the
  rule's action (``drop_line`` for Medicare and Medicaid: the engine turns it into ``flag`` on a
  line that is not rewritable); with indicator 1 and no modifier it is a ``flag`` (a modifier may
  be missing, a person decides); indicator 9 means the edit does not apply. A column-2 line in
  two pairs of one day is reported once (the engine keeps one finding per rule and line: the pair
  whose column 1 code sorts first).
- NCC002: span lines (RD8 over several days) are not counted, as for every units rule of the
  catalogue. MAI 1: each line over the limit. MAI 2 and 3: the day's total per code over the
  limit, reported on the line where the running total first passes it and every later line of
  that code (PMP008's reporting).
- NCC003: type 1 and type 3 edits only (type 2 lists no primaries). An add-on line is reported
  when no primary listed for it (active on that date) is on the provider patient-day, in the file
  or, with a history store, in an earlier file on the same date (the store keeps the lines of
  every imported primary code; it keys events by patient, not yet by provider: issue 16 item 5).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from edi.errors import RulesError
from edi.records import Record
from edi.rules.index import LineRecord

if TYPE_CHECKING:
    from edi.rules.book import RuleBook, RuleSpec
    from edi.rules.kinds import Hit, PatientView

PTP, MUE, ADD_ON = "ptp", "mue", "aoc"
TABLE_KINDS = (PTP, MUE, ADD_ON)
SOURCES = ("medicare", "medicaid")
NO_TABLES = "none"
_ZERO = Decimal(0)


class PtpEdit(Record):
    """One procedure-to-procedure pair in force on a date: column 2 is not paid beside column 1."""

    column1: str
    column2: str
    modifier_indicator: str  # "0" never with a modifier, "1" a modifier may allow it, "9" not applicable
    version: str  # the quarter of the table it came from, e.g. "2026Q1"


class MueLimit(Record):
    """The most units of a code on one line (MAI 1) or one date of service (MAI 2, 3)."""

    code: str
    units: Decimal
    mai: int
    version: str


class AddOnEdit(Record):
    """An add-on code and the primary codes it needs on the same day (types 1 and 3)."""

    add_on: str
    primaries: frozenset[str]
    edit_type: int
    version: str


class CodingTables(Protocol):
    """What the NCC kinds need of the imported tables (``edi.adapters.tables`` implements it).

    ``source`` is ``medicare`` or ``medicaid``. Lookups are by date of service: the version in
    force is the latest imported quarter that starts on or before the date (else the earliest),
    and within it an edit applies when effective <= date < deletion."""

    def loaded(self) -> frozenset[tuple[str, str]]:
        """(source, kind) of every table that is imported."""
        ...

    def codes(self) -> frozenset[str]:
        """Every code some imported table names (the rules index keeps lines of these)."""
        ...

    def prefetch(self, codes: frozenset[str]) -> None:
        """Load the edits among ``codes`` (the file's codes), in bulk, before the lookups."""
        ...

    def pairs(self, source: str, codes: frozenset[str] | set[str], day: date) -> list[PtpEdit]:
        """The PTP edits in force on ``day`` whose two codes are both in ``codes``."""
        ...

    def mue(self, source: str, code: str, day: date) -> MueLimit | None: ...

    def add_on(self, source: str, code: str, day: date) -> AddOnEdit | None: ...

    def add_on_primaries(self) -> frozenset[str]:
        """Every primary code of an imported add-on table: what the history store keeps, so that
        a primary billed in an earlier file counts on its day (NCC003 across files)."""
        ...


def _source(spec: RuleSpec, scope: str) -> str:
    return spec.params[f"{scope}_tables"]


def check_spec(spec: RuleSpec) -> None:
    """Refuse a table-source parameter that names no source (``rules/`` is data a coder edits)."""
    for scope in ("medicare", "medicaid", "other"):
        value = spec.params[f"{scope}_tables"]
        if value not in (*SOURCES, NO_TABLES):
            raise RulesError(f"rules: {spec.id}.params.{scope}_tables: must be medicare, medicaid or none",
                             code="RULES_INVALID")


def table_kind(spec: RuleSpec) -> str | None:
    """The table kind a rule needs (None: the rule is not table-driven)."""
    return _TABLE_OF_KIND.get(spec.kind)


def is_active(spec: RuleSpec, tables: CodingTables | None) -> bool:
    """A table-driven rule runs only when a table of its kind is loaded for a source it uses."""
    needed = table_kind(spec)
    if needed is None:
        return True
    if tables is None:
        return False
    sources = {_source(spec, scope) for scope in ("medicare", "medicaid", "other")} - {NO_TABLES}
    return any((source, needed) in tables.loaded() for source in sources)


def _day_source(spec: RuleSpec, line: LineRecord) -> str:
    return _source(spec, line.scope) if line.scope in ("medicare", "medicaid") else _source(spec, "other")


def ptp_pairs(spec: RuleSpec, book: RuleBook, patient: PatientView) -> Iterator[Hit]:
    """NCC001: both codes of a PTP pair in force on one provider patient-day."""
    from edi.rules.kinds import Hit

    tables = patient.tables
    if tables is None:
        return
    modifiers = spec.params["modifiers"]
    for day_date, day in patient.days.items():
        if len(day.codes) < 2:
            continue
        by_source: dict[str, list[LineRecord]] = {}
        for line in day.lines:
            source = _day_source(spec, line)
            if source != NO_TABLES:
                by_source.setdefault(source, []).append(line)
        for source, lines in by_source.items():
            codes = {line.code for line in lines}
            if len(codes) < 2:
                continue
            for edit in tables.pairs(source, codes, day_date):
                if edit.modifier_indicator == "9":
                    continue
                firsts = [line for line in lines if line.code == edit.column1]
                for line in lines:
                    if line.code != edit.column2:
                        continue
                    if edit.modifier_indicator == "1":
                        if any(not modifiers.isdisjoint(other.modifiers) for other in (line, *firsts)):
                            continue  # a modifier says the services were distinct
                        action: str | None = "flag"
                    else:
                        action = None  # indicator 0: the rule's action for the payer scope
                    yield Hit(line, None, {"code": line.code, "other": edit.column1,
                                           "indicator": edit.modifier_indicator, "source": _title(source),
                                           "version": edit.version}, action)


def units_over_mue(spec: RuleSpec, book: RuleBook, patient: PatientView) -> Iterator[Hit]:
    """NCC002: units over the MUE, per line (MAI 1) or per provider patient-day (MAI 2, 3)."""
    from edi.rules.kinds import Hit

    tables = patient.tables
    if tables is None:
        return
    for day_date, day in patient.days.items():
        running: dict[tuple[str, str], Decimal] = {}
        totals: dict[tuple[str, str], Decimal] = {}
        counted: list[tuple[LineRecord, str, MueLimit]] = []
        for line in day.lines:
            source = _day_source(spec, line)
            if source == NO_TABLES or line.is_span or line.date != day_date:
                continue  # a span line's units belong to several days: not counted
            limit = tables.mue(source, line.code, day_date)
            if limit is None:
                continue
            counted.append((line, source, limit))
            key = (source, line.code)
            totals[key] = totals.get(key, _ZERO) + line.units
        for line, source, limit in counted:
            key = (source, line.code)
            previous = running.get(key, _ZERO)
            running[key] = previous + line.units
            if limit.mai == 1:
                over, units = line.units > limit.units, line.units
            else:
                over, units = totals[key] > limit.units and running[key] > limit.units, totals[key]
            if over:
                yield Hit(line, None, {"code": line.code, "units": _units(units), "limit": _units(limit.units),
                                       "mai": limit.mai, "per": "line" if limit.mai == 1 else "day",
                                       "source": _title(source), "version": limit.version})


def add_on_without_primary(spec: RuleSpec, book: RuleBook, patient: PatientView) -> Iterator[Hit]:
    """NCC003: an add-on code with none of its listed primary codes on the provider patient-day."""
    from edi.rules.kinds import Hit

    tables = patient.tables
    if tables is None:
        return
    for day_date, day in patient.days.items():
        for line in day.lines:
            source = _day_source(spec, line)
            if source == NO_TABLES:
                continue
            edit = tables.add_on(source, line.code, day_date)
            if edit is None or edit.edit_type not in (1, 3) or not edit.primaries:
                continue
            if edit.primaries.isdisjoint(day.codes) and not any(
                    event.date == day_date and event.code in edit.primaries for event in patient.history):
                listed = ", ".join(sorted(edit.primaries)[:5]) + (" ..." if len(edit.primaries) > 5 else "")
                yield Hit(line, None, {"code": line.code, "primaries": listed, "type": edit.edit_type,
                                       "source": _title(source), "version": edit.version})


def _title(source: str) -> str:
    return source.capitalize()


def _units(value: Decimal) -> str:
    return format(value.normalize(), "f") if value == value.to_integral() else str(value)


_TABLE_OF_KIND = {"ptp_pair": PTP, "units_over_mue": MUE, "add_on_edit_without_primary": ADD_ON}
_SCOPE_PARAMETERS = {"medicare_tables": str, "medicaid_tables": str, "other_tables": str}
_SCOPE_DEFAULTS = {"medicare_tables": "medicare", "medicaid_tables": "medicaid", "other_tables": NO_TABLES}


def kinds() -> tuple:
    """The ``Kind`` records of the table-driven kinds, for ``edi.rules.kinds.KINDS``."""
    from types import MappingProxyType

    from edi.rules.kinds import DATED_DAY, Kind

    return (
        Kind(name="ptp_pair", evaluate=ptp_pairs,
             parameters={**_SCOPE_PARAMETERS, "modifiers": "values"},
             defaults=MappingProxyType(_SCOPE_DEFAULTS),
             message_fields=frozenset({"code", "other", "indicator", "source", "version"}), reach=DATED_DAY),
        Kind(name="units_over_mue", evaluate=units_over_mue, parameters=_SCOPE_PARAMETERS,
             defaults=MappingProxyType(_SCOPE_DEFAULTS),
             message_fields=frozenset({"code", "units", "limit", "mai", "per", "source", "version"}),
             reach=DATED_DAY),
        Kind(name="add_on_edit_without_primary", evaluate=add_on_without_primary, parameters=_SCOPE_PARAMETERS,
             defaults=MappingProxyType(_SCOPE_DEFAULTS),
             message_fields=frozenset({"code", "primaries", "type", "source", "version"}),
             reach=DATED_DAY),
    )
