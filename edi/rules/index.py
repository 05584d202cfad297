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
    """Groups relevant lines by patient key, then by date of service."""

    def __init__(self, relevant_codes: frozenset[str], medicare_filing: frozenset[str]) -> None:
        self._relevant = relevant_codes
        self._medicare = medicare_filing
        self.patients: dict[tuple[str, ...], dict[date, PatientDay]] = {}
        self.lines_indexed = 0
        self.lines_counted = 0
        self.lines_without_date = 0

    def add(self, claim: Claim) -> None:
        # The identity value itself is the key: a tuple of payer, subscriber ID, name, birth
        # date (and whether a dependent), compared exactly as sent. Fields are read by
        # position (``Claim`` and ``ServiceLine`` are tuples): this runs once per line.
        claim_id, _, claim_place, _, filing, _, patient, _, lines, claim_segment = claim[:10]
        days = self.patients.get(patient)
        if days is None:
            days = self.patients[patient] = {}
        scope = MEDICARE if filing in self._medicare else OTHER
        count = len(lines)
        relevant = self._relevant
        for line in lines:
            service_date = line[7]
            if service_date is None:
                self.lines_without_date += 1
                continue
            day = days.get(service_date)
            if day is None:
                day = days[service_date] = PatientDay()
            code = line[2]
            if code in relevant:
                units = line[5]
                if units is None:
                    units = _ONE
                day.lines.append(_make_record((
                    line[9], claim_id, claim_segment, count, line[0], code, line[3],
                    units, line[6] or claim_place, service_date, scope, line[4],
                )))
                if code in day.codes or units > 1:
                    day.repeated = True
                day.codes.add(code)
                self.lines_indexed += 1
            else:
                day.others += 1
                self.lines_counted += 1

    def __iter__(self) -> Iterator[tuple[tuple[str, ...], dict[date, PatientDay]]]:
        return iter(self.patients.items())

    @property
    def patient_days(self) -> int:
        return sum(len(days) for days in self.patients.values())
