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


class PatientDay:
    __slots__ = ("lines", "others")

    def __init__(self) -> None:
        self.lines: list[LineRecord] = []
        self.others = 0  # lines with codes no rule looks at


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
        days = self.patients.get(claim.patient.key)
        if days is None:
            days = self.patients[claim.patient.key] = {}
        scope = MEDICARE if claim.filing_indicator in self._medicare else OTHER
        count = len(claim.lines)
        relevant = self._relevant
        for line in claim.lines:
            service_date = line.service_date
            if service_date is None:
                self.lines_without_date += 1
                continue
            day = days.get(service_date)
            if day is None:
                day = days[service_date] = PatientDay()
            code = line.procedure_code
            if code in relevant:
                day.lines.append(LineRecord(
                    line.segment, claim.claim_id, claim.segment, count, line.lx, code, line.modifiers,
                    line.units if line.units is not None else Decimal(1),
                    line.place_of_service or claim.place_of_service, service_date, scope, line.charge,
                ))
                self.lines_indexed += 1
            else:
                day.others += 1
                self.lines_counted += 1

    def __iter__(self) -> Iterator[tuple[tuple[str, ...], dict[date, PatientDay]]]:
        return iter(self.patients.items())

    @property
    def patient_days(self) -> int:
        return sum(len(days) for days in self.patients.values())
