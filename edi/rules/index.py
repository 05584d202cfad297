"""Pass 1's index: the service lines the rules need, per provider patient-day.

Lines of one patient, date of service and billing provider are gathered across every claim of
the file (a same-day conflict can span claims far apart); correct-coding edits apply to one
provider, so another practice's lines for the same patient never trigger or suppress an edit.
The patient is ``PatientIdentity.patient_key`` (the key the history store hashes too), the
provider ``Claim.billing_provider`` (2010AA NPI, else REF*EI). Memory bound: a packed 24-byte
record per dated service line (for lines whose procedure code appears in the rule book,
``relevant_codes``, the id of the line's shape; only the date for the others), each distinct
line shape once, the claim ID of each claim and the key of each patient. Nothing is kept of
segments or of claims beyond their ID and position. ``bin/bench`` measures it (peak RSS at 5k
and 50k claims).

Decisions (issue 16, the rules' share of ``validate``). Instructions of ``add`` alone over the
5,000 walked claims of ``/work/bench-files/s5000.x12`` (``valgrind --tool=callgrind``): 221 M
before, 157 M after; of those 157 M, ~37 M are the patient key and billing provider strings and
~20 M ``LocatorStore.add`` (``edi.claims``), which ``validate`` never reads.

- A line's values other than its place in the file (code, modifiers, units, place, charge, and
  its claim's payer scope) are one ``LineShape``, kept once per distinct shape and named in
  the record by one id: a line costs one dict subscription of its SV1 values (``_ShapeIds``,
  new shapes made in ``__missing__``), where it cost a code-set lookup, five value-table
  lookups and an editable-code lookup. A practice's file holds about a hundred shapes.
  Records shrank from 41 to 24 bytes (peak RSS of ``validate`` at 50k claims: 42 -> 39 MB).
- Locators are kept for the claims with a line a selected rule may drop or recode *in the
  claim's payer scope* (PMP002 and PMP006 drop lines of Medicare claims only, and flag the
  others): 3,160 claims of 20,000 where it was 6,828.
- Tried and left out: mapping a claim's lines with C loops (``zip``/``map`` over the lines,
  ``b"".join(map(pack, ...))``) cost 30% more than the loop at two or three lines a claim; a
  cache of the group key by the patient's identity tuple saved nothing (hashing the walker's
  new strings costs what building the key does).
- ``add`` reads a claim's void mark, billing provider and other-payer adjudication from its
  fields (``VOID_FREQUENCY``, ``billing_provider_of``), not through the ``Claim`` properties:
  on Python 3.11 a property costs a C-level call into the interpreter, ~450 instructions each
  here; the whole ``validate`` of s5000: 1,096.8 M -> 1,090.0 M instructions (-0.6%).
- ``days_by_ordinal`` gives the engine each day's records and the ids of what the rules read of
  them (``LineShape.facts``) without building a ``LineRecord``: the engine builds the lines of
  the days a rule has to look at only (``edi.rules.engine``).
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Container, Iterator, Mapping
from datetime import date
from decimal import Decimal
from functools import partial
from operator import itemgetter
from types import MappingProxyType

from edi.claims.model import (
    VOID_FREQUENCY,
    Claim,
    LocatorStore,
    ServiceLine,
    billing_provider_of,
    fields_getter,
)
from edi.records import Record
from edi.rules.codes import membership

MEDICARE = "medicare"
MEDICAID = "medicaid"
OTHER = "other"


Day = date  # ``date`` is a field of LineRecord: inside the class the name is the field


class LineRecord(Record):
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
_line_fields = fields_getter(ServiceLine, "segment", "service_date", "service_date_end", "lx")
_claim_fields = fields_getter(Claim, "claim_id", "segment", "lines", "filing_indicator", "place_of_service",
                              "frequency_code", "patient", "billing_npi", "billing_tax_id", "other_payer_paid",
                              "line_adjudicated")
# The SV1 values of a line that make its shape: the key of one dict lookup per relevant line.
_shape_values = fields_getter(ServiceLine, "procedure_code", "modifiers", "charge", "units", "place_of_service")
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


class LineShape(Record):
    """What a service line says, but where it stands: its SV1 values (the claim's place of
    service standing in for a missing SV105, one unit for a missing SV104) and its claim's payer
    scope. A file holds few distinct shapes; each is kept once."""

    code: str
    modifiers: tuple[str, ...]
    units: Decimal
    place: str | None
    scope: str
    charge: Decimal | None
    facts: int  # id of (code, modifiers, units, place, scope): all a rule reads of a line but its date
    editable: bool  # a selected rule may drop or recode a line of this code


# One dated line of one patient, packed: SV1 segment, claim number (index into the claim
# tables), date ordinal, LX01 (0 = none), shape id (0 = a line no rule looks at: only its date
# counts), the ordinal of a span line's last day (0: a single day).
# Every id is 4 bytes: a valid file can hold more than 65,535 distinct values of SV104 units
# (R 1/15) or of modifier combinations, and 2-byte ids made such a file exit 70 (struct.error).
RECORD = struct.Struct("<IIIIII")
_CLAIM_NUMBER = struct.Struct(f"<4xI{RECORD.size - 8}x")  # a record's claim number alone (the rest skipped)
OTHER_LINE = 0  # the shape id, and the facts id, of a line no rule looks at
_NO_SHAPE = LineShape("", (), _ONE, None, OTHER, None, OTHER_LINE, editable=False)


_SHAPES_OF_OTHER_LINES = 1 << 12  # per claim place and scope: past this, a line no rule reads is looked up anew


class _Shapes:
    """The distinct line shapes of a file, by id (0: a line no rule reads), and their facts."""

    __slots__ = ("editable", "facts", "facts_of", "relevant", "shapes", "writable")

    def __init__(self, relevant: Mapping[object, bool], writable: Mapping[str, Mapping[object, bool]]) -> None:
        self.relevant = relevant
        self.writable = writable  # per payer scope: code -> a selected rule may drop or recode its line
        self.shapes: list[LineShape] = [_NO_SHAPE]
        self.facts: dict[tuple[object, ...], int] = {}
        self.facts_of = array("I", [OTHER_LINE])  # per shape id, its facts id
        self.editable: set[int] = set()  # the shape ids of lines a selected rule may drop or recode


class _ShapeIds(dict[tuple[object, ...], int]):
    """The SV1 values of a line (``_shape_values``) to its shape id, for the claims of one
    filing indicator (payer scope) and place of service; a new shape is made on first sight
    (``__missing__``, so that ``add`` maps a claim's lines in one C loop). The values of lines
    no rule reads map to 0, up to ``_SHAPES_OF_OTHER_LINES`` of them (memory stays bounded on a
    file of ever new charges: past it such a line costs a code lookup)."""

    __slots__ = ("_place", "_scope", "_shapes")

    def __init__(self, shapes: _Shapes, place: str | None, scope: str) -> None:
        super().__init__()
        self._shapes, self._place, self._scope = shapes, place, scope

    def __missing__(self, values: tuple[object, ...]) -> int:
        registry = self._shapes
        code, modifiers, charge, units, place = values
        if not registry.relevant[code]:
            if len(self) < _SHAPES_OF_OTHER_LINES:
                self[values] = OTHER_LINE
            return OTHER_LINE
        units = _ONE if units is None else units
        place = place or self._place
        facts_key = (code, modifiers, units, place, self._scope)
        facts = registry.facts.get(facts_key)
        if facts is None:
            facts = registry.facts[facts_key] = len(registry.facts) + 1  # 0 is OTHER_LINE
        number = self[values] = len(registry.shapes)
        editable = self._scope in registry.writable and registry.writable[self._scope][code]
        registry.shapes.append(LineShape(code, modifiers, units, place, self._scope, charge, facts,  # type: ignore[arg-type]
                                         editable=editable))
        registry.facts_of.append(facts)
        if editable:
            registry.editable.add(number)
        return number


class _Ordinals(dict[date, int]):
    """Date -> its ordinal, registering each date once in ``dates`` (ordinal -> date)."""

    __slots__ = ("_dates",)

    def __init__(self, dates: dict[int, date]) -> None:
        super().__init__()
        self._dates = dates

    def __missing__(self, day: date) -> int:
        ordinal = self[day] = day.toordinal()
        self._dates[ordinal] = day
        return ordinal


class PatientDayIndex:
    """Keeps, per patient, the relevant lines of the file, packed; groups them by date on demand.

    Storage per patient is one ``bytearray`` of 24-byte records (``RECORD``): a record per
    pump-relevant line and a dated placeholder per other line (PMP006 counts them); the values
    of a line are the id of its ``LineShape``, and claim IDs live once per claim. Days and
    ``LineRecord`` values are built only while a patient is evaluated (``days_of``). Memory:
    about 24 bytes per line, a claim ID per claim and a key string per patient, ~0.2 KB per
    claim of an oncology file; ``bin/bench`` measures the peak RSS at 5k and 50k claims.
    """

    def __init__(self, relevant_codes: Container[str], medicare_filing: Container[str],
                 editable_codes: Mapping[str, Container[str]] = MappingProxyType({}), *,
                 medicaid_filing: Container[str] = frozenset()) -> None:
        # Code sets may hold prefixes and ranges (``CodeSet``): a new shape asks a memo
        # (``membership``), never the ranges themselves.
        self._medicare = medicare_filing
        self._medicaid = medicaid_filing
        # The locators of the claims with a line some rule may drop or recode (editable codes),
        # by CLM segment number: what a rewrite needs of them, and nothing of the others.
        self.locators = LocatorStore()
        # Group key (``group_key``): the patient key and the billing provider in one string
        # (one object per group rather than a tuple).
        self.patients: dict[str, bytearray] = {}
        self.claim_ids: list[str] = []
        self.claim_segments = array("I")
        self.claim_lines = array("I")
        self.claim_adjudicated = bytearray()  # 1: the claim carries another payer's adjudication
        # Per indexed claim, its group's number in file order (the reports' "patient N"), and
        # per group its number: where a claim's patient and payer stand, at 4 bytes a claim.
        self.claim_groups = array("I")
        self.group_numbers: dict[str, int] = {}
        self._shapes = _Shapes(membership(relevant_codes),
                               {scope: membership(codes) for scope, codes in editable_codes.items()})
        self.shapes = self._shapes.shapes
        self.facts_of = self._shapes.facts_of
        # Per claim filing indicator and place of service: the SV1 values of a line to its shape id.
        self._shape_ids: dict[tuple[str | None, str | None], _ShapeIds] = {}
        self._dates: dict[int, date] = {}
        self._ordinals = _Ordinals(self._dates)
        self.lines_without_date = 0
        # (patient key, billing provider, CLM01) of the void claims (CLM05-3 8)
        self.voids: list[tuple[str, str, str]] = []

    def add(self, claim: Claim) -> None:
        # The claim's ``is_void``, ``billing_provider`` and ``adjudicated_elsewhere`` from its
        # fields: the properties cost ~1,000 instructions each on Python 3.11 (measured).
        (claim_id, segment, lines, filing, claim_place, frequency, patient, npi, tax_id, other_payer_paid,
         line_adjudicated) = _claim_fields(claim)
        if frequency == VOID_FREQUENCY:
            # A void is excluded from every rule and never changed; it is kept by name only, for
            # the history store to clear what was recorded for its CLM01 (issue 16 item 5).
            self.voids.append((patient.patient_key(), billing_provider_of(npi, tax_id), claim_id))
            return
        key = group_key(patient.patient_key(), billing_provider_of(npi, tax_id))
        buffer = self.patients.get(key)
        if buffer is None:
            buffer = self.patients[key] = bytearray()
            self.group_numbers[key] = len(self.group_numbers)
        self.claim_groups.append(self.group_numbers[key])
        claim_number = len(self.claim_ids)
        self.claim_ids.append(claim_id)
        self.claim_segments.append(segment)
        self.claim_lines.append(len(lines))
        self.claim_adjudicated.append(other_payer_paid or line_adjudicated)
        shape_ids = self._shape_ids.get((filing, claim_place))
        if shape_ids is None:
            scope = MEDICARE if filing in self._medicare else MEDICAID if filing in self._medicaid else OTHER
            shape_ids = self._shape_ids[filing, claim_place] = _ShapeIds(self._shapes, claim_place, scope)
        ordinals = self._ordinals
        pack = RECORD.pack
        editable = False
        editable_shapes = self._shapes.editable
        for line in lines:
            segment, service_date, last_day, lx = _line_fields(line)
            if service_date is None:
                self.lines_without_date += 1
                continue
            shape = shape_ids[_shape_values(line)]
            # An RD8 range whose two dates are equal is a single day; a line no rule reads
            # counts on its first day only.
            span_end = ordinals[last_day] if last_day is not None and last_day > service_date and shape else 0
            buffer += pack(segment, claim_number, ordinals[service_date], lx or 0, shape, span_end)
            if shape in editable_shapes:
                editable = True
        if editable:
            self.locators.add(claim)

    def __iter__(self) -> Iterator[tuple[str, bytearray]]:
        """(group key, packed lines) per patient and billing provider."""
        return iter(self.patients.items())

    def patient_keys(self) -> list[str]:
        """The distinct patients of the file (a patient seen by two providers is in two groups)."""
        return list(dict.fromkeys(map(patient_of, self.patients)))

    def codes(self) -> frozenset[str]:
        """The codes of the file's relevant lines."""
        return frozenset(shape.code for shape in self.shapes[1:])

    def date_of(self, ordinal: int) -> date:
        return self._dates[ordinal]

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

    def line(self, record: tuple[int, ...]) -> LineRecord:
        """The ``LineRecord`` of one unpacked relevant record."""
        segment, claim, ordinal, lx, shape_id, span_end = record
        shape = self.shapes[shape_id]
        dates = self._dates
        return _make_record((
            segment, self.claim_ids[claim], self.claim_segments[claim], self.claim_lines[claim], lx or None,
            shape.code, shape.modifiers, shape.units, shape.place, dates[ordinal], shape.scope, shape.charge,
            dates[span_end] if span_end else None, bool(self.claim_adjudicated[claim]),
        ))

    def day_of(self, records: list[tuple[int, ...]]) -> PatientDay:
        """The ``PatientDay`` of one date's unpacked records (``days_by_ordinal``): a span line
        stands on its own day only here (``days_of`` adds it to the others)."""
        day = PatientDay()
        lines, codes, make = day.lines, day.codes, self.line
        for record in records:
            if record[4] == OTHER_LINE:
                day.others += 1
                continue
            line = make(record)
            if line.code in codes or line.units > 1:
                day.repeated = True
            codes.add(line.code)
            lines.append(line)
        return day

    def days_by_ordinal(self, buffer: bytearray) -> dict[int, tuple[list[int], list[tuple[int, ...]]]] | None:
        """A group's records by date ordinal, in file order: the facts id of each (``LineShape``;
        ``OTHER_LINE`` for a line no rule reads) and the unpacked records. None when a line of
        the group spans several days (it stands on other days than its own: ``days_of``)."""
        days: dict[int, tuple[list[int], list[tuple[int, ...]]]] = {}
        facts_of = self.facts_of
        for record in RECORD.iter_unpack(buffer):
            if record[5]:
                return None
            day = days.get(record[2])
            if day is None:
                days[record[2]] = ([facts_of[record[4]]], [record])
            else:
                day[0].append(facts_of[record[4]])
                day[1].append(record)
        return days

    def days_of(self, buffer: bytearray) -> dict[date, PatientDay]:
        """A group's lines by date of service, in file order within each day.

        A span line (an RD8 range of several days) stands on its first day and on every other
        day of its range on which the group has a line: the presence rules see it there; a day
        with nothing else cannot hold a pair, so days are not made up for it."""
        by_ordinal: dict[int, list[tuple[int, ...]]] = {}
        for record in RECORD.iter_unpack(buffer):
            by_ordinal.setdefault(record[2], []).append(record)
        days = {self._dates[ordinal]: self.day_of(records) for ordinal, records in by_ordinal.items()}
        spans = [line for day in days.values() for line in day.lines if line.span_end is not None]
        for line in spans:
            assert line.span_end is not None  # spans holds span lines only
            for day_date, day in days.items():
                if line.date < day_date <= line.span_end:
                    if line.code in day.codes:
                        day.repeated = True
                    day.codes.add(line.code)
                    day.lines.append(line)
        if spans:  # file order within each day
            for day in days.values():
                day.lines.sort(key=_segment_of)
        return days

    @property
    def patient_days(self) -> int:
        return sum(len(self.days_of(buffer)) for buffer in self.patients.values())
