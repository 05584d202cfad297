"""Pass 1's index: the service lines the rules need, per patient and date of service.

Lines of one patient-day are gathered across every claim of the file (a same-day conflict can
span claims far apart). Memory bound: one ``LineRecord`` (about 0.3 KB with its tuple and
fields) per service line whose procedure code appears in the rule book (``relevant_codes``:
the pump, chemotherapy, flush, equipment and deleted codes), plus one counter per patient-day
for all other lines, plus the patient keys. Nothing is kept of lines the rules never look at,
of segments, or of claims beyond their ID. For an oncology file that is O(pump-relevant lines);
``bin/bench`` measures it (peak RSS at 5k and 50k claims).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from functools import partial
from decimal import Decimal
from typing import NamedTuple

from edi.claims.model import Claim

MEDICARE = "medicare"
OTHER = "other"


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
    scope: str  # MEDICARE or OTHER
    charge: Decimal | None


_make_record = partial(tuple.__new__, LineRecord)
_ONE = Decimal(1)


class PatientDay:
    """A patient's lines of one date: in file order, since claims arrive in file order."""

    __slots__ = ("lines", "others", "codes", "repeated")

    def __init__(self) -> None:
        self.lines: list[LineRecord] = []
        self.others = 0  # lines with codes no rule looks at
        self.codes: set[str] = set()  # the codes of ``lines``: lets a rule skip the day at once
        self.repeated = False  # some code on two lines, or a line with more than one unit


class PatientDayIndex:
    """Keeps, per patient, the relevant lines of the file; groups them by date on demand.

    Storage per patient is one flat list: a ``LineRecord`` per relevant line and the bare
    ``date`` of every other line (PMP006 counts them). Days are built only while a patient is
    evaluated (``days_of``), so the index holds no per-day objects: about 0.4 KB per claim in
    an oncology file (a record of ~170 bytes per relevant line, the claim ID, and the patient's
    key, a ~0.2 KB string per patient), measured by ``bin/bench`` as peak RSS at 5k and 50k.
    """

    def __init__(self, relevant_codes: frozenset[str], medicare_filing: frozenset[str]) -> None:
        self._relevant = relevant_codes
        self._medicare = medicare_filing
        # Patient key: the identity's fields joined into one string (one object per patient
        # rather than a tuple of five), compared exactly as sent.
        self.patients: dict[str, list] = {}
        self.lines_indexed = 0
        self.lines_counted = 0
        self.lines_without_date = 0

    def add(self, claim: Claim) -> None:
        # Fields are read by position (``Claim`` and ``ServiceLine`` are tuples): this runs
        # once per line of the file.
        claim_id, _, claim_place, _, filing, _, patient, _, lines, claim_segment = claim[:10]
        key = "\x1f".join(patient[:5]) + ("\x1fD" if patient[5] else "")
        entries = self.patients.get(key)
        if entries is None:
            entries = self.patients[key] = []
        scope = MEDICARE if filing in self._medicare else OTHER
        count = len(lines)
        relevant = self._relevant
        append = entries.append
        indexed = 0
        for line in lines:
            service_date = line[7]
            if service_date is None:
                self.lines_without_date += 1
            elif line[2] in relevant:
                units = line[5]
                append(_make_record((
                    line[9], claim_id, claim_segment, count, line[0], line[2], line[3],
                    _ONE if units is None else units, line[6] or claim_place, service_date, scope, line[4],
                )))
                indexed += 1
            else:
                append(service_date)
        self.lines_indexed += indexed
        self.lines_counted += count - indexed

    def __iter__(self) -> Iterator[tuple[str, list]]:
        return iter(self.patients.items())

    @staticmethod
    def days_of(entries: list) -> dict[date, PatientDay]:
        """A patient's lines grouped by date of service, in file order within each day."""
        days: dict[date, PatientDay] = {}
        for entry in entries:
            if entry.__class__ is date:
                day = days.get(entry)
                if day is None:
                    day = days[entry] = PatientDay()
                day.others += 1
                continue
            day = days.get(entry[9])
            if day is None:
                day = days[entry[9]] = PatientDay()
            code = entry[5]
            if code in day.codes or entry[7] > 1:
                day.repeated = True
            day.codes.add(code)
            day.lines.append(entry)
        return days

    @property
    def patient_days(self) -> int:
        return sum(len(self.days_of(entries)) for entries in self.patients.values())
