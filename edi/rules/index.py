"""Pass 1's index: the service lines the rules need, per provider patient-day.

Lines of one patient, date of service and billing provider are gathered across every claim of
the file (a same-day conflict can span claims far apart); correct-coding edits apply to one
provider, so another practice's lines for the same patient never trigger or suppress an edit.
The patient is ``PatientIdentity.patient_key`` (the key the history store hashes too), the
provider ``Claim.billing_provider`` (2010AA NPI, else REF*EI). Memory bound: a packed 41-byte record per service line (full detail for
lines whose procedure code appears in the rule book, ``relevant_codes``: the pump, chemotherapy,
flush, equipment and deleted codes; only the date for the others), the claim ID of each claim and
the key of each patient. Nothing is kept of segments or of claims beyond their ID and position.
``bin/bench`` measures it (peak RSS at 5k and 50k claims).
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Container, Iterator
from datetime import date
from decimal import Decimal
from functools import partial
from operator import itemgetter
from typing import NamedTuple

from edi.claims.model import Claim, LocatorStore, ServiceLine, fields_getter
from edi.rules.codes import membership

MEDICARE = "medicare"
MEDICAID = "medicaid"
OTHER = "other"


Day = date  # ``date`` is a field of LineRecord: inside the class the name is the field


class LineRecord(NamedTuple):
    """What the rules know of one service line."""

    segment: int  # SV1 segment number: the line's identity and file order
    claim_id: str
    claim_segment: int
    claim_lines: int  # number of lines on the claim
    lx: int | None
    code: str
    modifiers: tuple[str, ...]
    units: Decimal
    place: str | None  # SV105, else CLM05-1
    date: date
    scope: str  # MEDICARE, MEDICAID or OTHER (the payer scopes of pump-rules v2)
    charge: Decimal | None
    span_end: Day | None  # the last day of an RD8 range of several days (a span line), else None
    adjudicated_elsewhere: bool  # the claim carries another payer's adjudication (2320 AMT*D, 2430 SVD)

    @property
    def is_span(self) -> bool:
        return self.span_end is not None


_make_record = partial(tuple.__new__, LineRecord)
# What ``add`` reads of each service line, named, fetched in one C call per line: the loop runs
# once per line of the file, and attribute loads cost ~15% more there (measured).
_date_and_code = fields_getter(ServiceLine, "service_date", "procedure_code", "service_date_end")
_indexed_fields = fields_getter(ServiceLine, "segment", "lx", "modifiers", "units", "place_of_service", "charge")
_ONE = Decimal(1)
_segment_of = itemgetter(0)  # LineRecord.segment
# Between the patient key and the provider in a group key: the patient key's own separator is
# \x1f, and X12 text cannot hold either (control characters are not in its character sets).
_PROVIDER_SEPARATOR = "\x1e"


def group_key(patient_key: str, provider: str) -> str:
    """The index's key of one patient's lines billed by one provider."""
    return f"{patient_key}{_PROVIDER_SEPARATOR}{provider}"


def patient_of(group: str) -> str:
    """The patient key of a group key (what the history store is asked about)."""
    return group.partition(_PROVIDER_SEPARATOR)[0]


def provider_of(group: str) -> str:
    """The billing provider of a group key (the history store keeps events per provider)."""
    return group.partition(_PROVIDER_SEPARATOR)[2]


class PatientDay:
    """A patient's lines of one date: in file order, since claims arrive in file order."""

    __slots__ = ("codes", "lines", "others", "repeated")

    def __init__(self) -> None:
        self.lines: list[LineRecord] = []
        self.others = 0  # lines with codes no rule looks at
        self.codes: set[str] = set()  # the codes of ``lines``: lets a rule skip the day at once
        self.repeated = False  # some code on two lines, or a line with more than one unit


# One line of one patient, packed: SV1 segment, claim number (index into the claim tables),
# date ordinal, LX01 (0 = none), then ids into the value tables: code, modifiers, units, place,
# charge; the ordinal of a span line's last day (0: a single day); flags: 1 = Medicare scope,
# 2 = a line no rule looks at (only its date counts), 4 = the claim carries another payer's
# adjudication, 8 = Medicaid scope.
# Every id is 4 bytes: a valid file can hold more than 65,535 distinct values of SV104 units
# (R 1/15) or of modifier combinations, and 2-byte ids made such a file exit 70 (struct.error).
# The 8 bytes more per relevant line cost ~1 MB at 50k claims (``bin/bench``).
RECORD = struct.Struct("<IIIIIIIIIIB")
MEDICARE_FLAG, OTHER_FLAG, ADJUDICATED_FLAG, MEDICAID_FLAG = 1, 2, 4, 8
_CLAIM_NUMBER = struct.Struct(f"<4xI{RECORD.size - 8}x")  # a record's claim number alone (the rest skipped)


_UNUSED = object()  # id 0 of every table: a real value's id is never 0, so ``get(v) or id(v)`` works


class _Table:
    """Distinct values and their small ids (codes, modifiers, units, places, charges)."""

    __slots__ = ("ids", "values")

    def __init__(self) -> None:
        self.ids: dict[object, int] = {_UNUSED: 0}
        self.values: list[object] = [_UNUSED]

    def id(self, value: object) -> int:
        number = self.ids.get(value)
        if number is None:
            number = self.ids[value] = len(self.values)
            self.values.append(value)
        return number


class PatientDayIndex:
    """Keeps, per patient, the relevant lines of the file, packed; groups them by date on demand.

    Storage per patient is one ``bytearray`` of 41-byte records (``RECORD``): a record per
    pump-relevant line and a dated placeholder per other line (PMP006 counts them); repeated
    values (codes, units, charges, dates) are ids into shared tables, and claim IDs live once per
    claim. Days and ``LineRecord`` values are built only while a patient is evaluated
    (``days_of``). Memory: about 41 bytes per line, a claim ID per claim and a key string per
    patient, ~0.2 KB per claim of an oncology file; ``bin/bench`` measures the peak RSS at 5k
    and 50k claims.
    """

    def __init__(self, relevant_codes: Container[str], medicare_filing: Container[str],
                 editable_codes: Container[str] = frozenset(), *,
                 medicaid_filing: Container[str] = frozenset()) -> None:
        # Code sets may hold prefixes and ranges (``CodeSet``): the per-line loop asks a memo
        # (``membership``: one dict subscription per line), never the ranges themselves.
        self._relevant = membership(relevant_codes)
        self._medicare = medicare_filing
        self._medicaid = medicaid_filing
        self._editable = membership(editable_codes)
        # The locators of the claims with a line some rule may drop or recode (editable codes),
        # by CLM segment number: what a rewrite needs of them, and nothing of the others.
        self.locators = LocatorStore()
        # Group key (``group_key``): the patient key and the billing provider in one string
        # (one object per group rather than a tuple).
        self.patients: dict[str, bytearray] = {}
        self.claim_ids: list[str] = []
        self.claim_segments = array("I")
        self.claim_lines = array("I")
        # Per indexed claim, its group's number in file order (the reports' "patient N"), and
        # per group its number: where a claim's patient and payer stand, at 4 bytes a claim.
        self.claim_groups = array("I")
        self.group_numbers: dict[str, int] = {}
        self.codes = _Table()
        self.modifiers = _Table()
        self.units = _Table()
        self.places = _Table()
        self.charges = _Table()
        self._ordinals: dict[date, int] = {}
        self._dates: dict[int, date] = {}
        self.lines_indexed = 0
        self.lines_counted = 0
        self.lines_without_date = 0
        # (patient key, billing provider, CLM01) of the void claims (CLM05-3 8)
        self.voids: list[tuple[str, str, str]] = []

    def add(self, claim: Claim) -> None:
        if claim.is_void:
            # A void is excluded from every rule and never changed; it is kept by name only, for
            # the history store to clear what was recorded for its CLM01 (issue 16 item 5).
            self.voids.append((claim.patient.patient_key(), claim.billing_provider, claim.claim_id))
            return
        key = group_key(claim.patient.patient_key(), claim.billing_provider)
        buffer = self.patients.get(key)
        if buffer is None:
            buffer = self.patients[key] = bytearray()
            self.group_numbers[key] = len(self.group_numbers)
        lines = claim.lines
        self.claim_groups.append(self.group_numbers[key])
        claim_number = len(self.claim_ids)
        self.claim_ids.append(claim.claim_id)
        self.claim_segments.append(claim.segment)
        self.claim_lines.append(len(lines))
        filing = claim.filing_indicator
        scope = MEDICARE_FLAG if filing in self._medicare else MEDICAID_FLAG if filing in self._medicaid else 0
        if claim.adjudicated_elsewhere:
            scope |= ADJUDICATED_FLAG
        claim_place = claim.place_of_service
        relevant = self._relevant
        ordinals = self._ordinals
        pack = RECORD.pack
        codes, modifiers, units_table, places, charges = self.codes, self.modifiers, self.units, self.places, self.charges
        # dict.get first: a method call per value would cost more than the packing itself.
        code_ids, modifier_ids, unit_ids, place_ids, charge_ids = (
            codes.ids.get, modifiers.ids.get, units_table.ids.get, places.ids.get, charges.ids.get)
        indexed = 0
        editable = False
        for line in lines:
            service_date, code, last_day = _date_and_code(line)
            if service_date is None:
                self.lines_without_date += 1
                continue
            ordinal = ordinals.get(service_date)
            if ordinal is None:
                ordinal = ordinals[service_date] = service_date.toordinal()
                self._dates[ordinal] = service_date
            if relevant[code]:
                segment, lx, line_modifiers, units, place, charge = _indexed_fields(line)
                if units is None:
                    units = _ONE
                place = place or claim_place
                # An RD8 range whose two dates are equal is a single day.
                span_end = last_day.toordinal() if last_day is not None and last_day > service_date else 0
                if span_end:
                    self._dates.setdefault(span_end, last_day)
                buffer += pack(
                    segment, claim_number, ordinal, lx or 0,
                    code_ids(code) or codes.id(code), modifier_ids(line_modifiers) or modifiers.id(line_modifiers),
                    unit_ids(units) or units_table.id(units), place_ids(place) or places.id(place),
                    charge_ids(charge) or charges.id(charge), span_end, scope,
                )
                indexed += 1
                if self._editable[code]:
                    editable = True
            else:
                buffer += pack(0, claim_number, ordinal, 0, 0, 0, 0, 0, 0, 0, OTHER_FLAG)
        self.lines_indexed += indexed
        self.lines_counted += len(lines) - indexed
        if editable:
            self.locators.add(claim)

    def __iter__(self) -> Iterator[tuple[str, bytearray]]:
        """(group key, packed lines) per patient and billing provider."""
        return iter(self.patients.items())

    def patient_keys(self) -> list[str]:
        """The distinct patients of the file (a patient seen by two providers is in two groups)."""
        return list(dict.fromkeys(map(patient_of, self.patients)))

    def claims_of(self, buffer: bytearray, left_out: frozenset[int] = frozenset()) -> set[str]:
        """The CLM01 of every claim with a dated line in the group, pump line or not (the claims
        whose earlier history the file supersedes), but those whose CLM segment is ``left_out``."""
        claim_ids, claim_segments = self.claim_ids, self.claim_segments
        return {claim_ids[claim] for (claim,) in set(_CLAIM_NUMBER.iter_unpack(buffer))
                if claim_segments[claim] not in left_out}

    def records(self, buffer: bytearray) -> Iterator[LineRecord]:
        """The group's relevant lines as ``LineRecord`` values, each once (a span line stands on
        several days)."""
        seen: set[int] = set()
        for day in self.days_of(buffer).values():
            for line in day.lines:
                if line.segment not in seen:
                    seen.add(line.segment)
                    yield line

    def days_of(self, buffer: bytearray) -> dict[date, PatientDay]:
        """A group's lines by date of service, in file order within each day.

        A span line (an RD8 range of several days) stands on its first day and on every other
        day of its range on which the group has a line: the presence rules see it there; a day
        with nothing else cannot hold a pair, so days are not made up for it."""
        days: dict[date, PatientDay] = {}
        spans: list[LineRecord] = []
        dates, claim_ids, claim_segments, claim_lines = self._dates, self.claim_ids, self.claim_segments, self.claim_lines
        codes, modifiers, units, places, charges = (
            self.codes.values, self.modifiers.values, self.units.values, self.places.values, self.charges.values)
        for segment, claim, ordinal, lx, code, mods, unit, place, charge, span_end, flags in RECORD.iter_unpack(buffer):
            day_date = dates[ordinal]
            day = days.get(day_date)
            if day is None:
                day = days[day_date] = PatientDay()
            if flags & OTHER_FLAG:
                day.others += 1
                continue
            code_text = codes[code]
            amount = units[unit]
            if code_text in day.codes or amount > 1:
                day.repeated = True
            day.codes.add(code_text)
            scope = MEDICARE if flags & MEDICARE_FLAG else MEDICAID if flags & MEDICAID_FLAG else OTHER
            record = _make_record((
                segment, claim_ids[claim], claim_segments[claim], claim_lines[claim], lx or None, code_text,
                modifiers[mods], amount, places[place], day_date, scope,
                charges[charge], dates[span_end] if span_end else None, bool(flags & ADJUDICATED_FLAG),
            ))
            day.lines.append(record)
            if span_end:
                spans.append(record)
        for record in spans:
            assert record.span_end is not None  # spans holds span lines only
            for day_date, day in days.items():
                if record.date < day_date <= record.span_end:
                    if record.code in day.codes:
                        day.repeated = True
                    day.codes.add(record.code)
                    day.lines.append(record)
        if spans:  # file order within each day
            for day in days.values():
                day.lines.sort(key=_segment_of)
        return days

    @property
    def patient_days(self) -> int:
        return sum(len(self.days_of(buffer)) for buffer in self.patients.values())
