"""The XML report for people (the HTML and CSV worklist is ``edi.report.worklist``).

What a billing office needs to act on a file: a summary (claims, lines, findings by rule and
severity, dollars at risk = the charges of the lines a payer would deny, i.e. lines with an
error-severity finding), then per patient-day with findings the service lines (code, modifiers,
units, charge) and their findings, and for ``fix`` the segments changed in each claim.

Patients are never named: a patient-day is "patient N" (numbered in file order) and a date;
claims are named by CLM01 only. No names, member IDs or birth dates reach either format.
Both are built with lxml; the XML has a schema (``report.xsd``) the tests validate against.
Output is deterministic (no clock), so the bundled sample has golden files.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from lxml import etree

from edi.report.model import FileReport
from edi.rules.index import LineRecord, PatientDayIndex

NAMESPACE = "urn:edi837:report:1"


@dataclass(frozen=True, slots=True, kw_only=True)
class PatientDayView:
    patient: int  # a sequence number, never the identity
    date: date
    lines: tuple[LineRecord, ...]
    others: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    claim: str
    segment: int
    before: str
    after: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class PeopleReport:
    report: FileReport
    days: tuple[PatientDayView, ...] = ()
    changes: tuple[Change, ...] = ()
    fixed: bool = False

    @property
    def dollars_at_risk(self) -> Decimal:
        """Charges of the distinct lines with an error-severity finding (what payers deny)."""
        charged: dict[int, Decimal] = {}
        for finding in self.report.findings:
            if finding.severity == "error" and finding.charge is not None:
                charged[finding.segment] = finding.charge
        return sum(charged.values(), Decimal(0))

    def by_rule(self) -> list[tuple[str, str, int]]:
        counts = Counter((f.rule, f.severity) for f in self.report.findings)
        return [(rule, severity, count) for (rule, severity), count in sorted(counts.items())]


def patient_days(index: PatientDayIndex, findings_segments: set[int]) -> tuple[PatientDayView, ...]:
    """The patient-days that hold a finding, from the rules index (patients numbered in order)."""
    views = []
    for number, buffer in enumerate(index.patients.values(), start=1):
        days = index.days_of(buffer)
        for day, record in sorted(days.items()):
            if any(line.segment in findings_segments for line in record.lines):
                views.append(PatientDayView(patient=number, date=day, lines=tuple(record.lines), others=record.others))
    return tuple(views)


def _money(value: Decimal | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _units(value: Decimal) -> str:
    return format(value.normalize(), "f")


# -- XML ------------------------------------------------------------------------------------

class _Sink:
    """What ``etree.xmlfile`` writes to: the caller's ``write``."""

    def __init__(self, write: Callable[[bytes], object]) -> None:
        self.write = write


def to_xml(reports: Iterable[PeopleReport]) -> bytes:
    """The whole XML document (small reports, tests); ``write_xml`` streams it."""
    pieces: list[bytes] = []
    write_xml(pieces.append, reports)
    return b"".join(pieces)


def write_xml(write: Callable[[bytes], object], reports: Iterable[PeopleReport]) -> None:
    """The XML report, element by element to ``write`` (``etree.xmlfile``: no tree of the whole
    document, so a 100k-claim report stays small in memory)."""
    with etree.xmlfile(_Sink(write), encoding="UTF-8") as document:
        document.write_declaration()
        with document.element(f"{{{NAMESPACE}}}report", nsmap={None: NAMESPACE}, version="1"):
            document.write("\n")
            for people in reports:
                _write_file(document, people)


def _element(tag: str, **attributes: str) -> etree._Element:
    return etree.Element(f"{{{NAMESPACE}}}{tag}", nsmap={None: NAMESPACE}, **attributes)


def _sub(parent: etree._Element, tag: str, **attributes: str) -> etree._Element:
    return etree.SubElement(parent, f"{{{NAMESPACE}}}{tag}", **attributes)


def _write_file(document: Any, people: PeopleReport) -> None:
    report = people.report
    with document.element(f"{{{NAMESPACE}}}file", name=report.file, status=report.status,
                          transactions=str(report.transactions), claims=str(report.claims),
                          lines=str(report.lines), findings=str(len(report.findings)),
                          errors=str(len(report.errors)), dollars_at_risk=_money(people.dollars_at_risk),
                          rewritten="true" if people.fixed else "false"):
        document.write("\n")
        summary = _element("summary")
        for rule, severity, count in people.by_rule():
            _sub(summary, "rule", id=rule, severity=severity, count=str(count))
        document.write(summary, pretty_print=True)
        for finding in report.findings:
            item = _element("finding", rule=finding.rule, severity=finding.severity, action=finding.action,
                            applied="true" if finding.applied else "false", claim=finding.claim, code=finding.code,
                            segment=str(finding.segment))
            if finding.line is not None:
                item.set("line", str(finding.line))
            if finding.date is not None:
                item.set("date", finding.date.isoformat())
            if finding.replacement:
                item.set("replacement", finding.replacement)
            _sub(item, "message").text = finding.message
            document.write(item, pretty_print=True)
        for error in report.errors:
            item = _element("error", code=error.code)
            if error.segment is not None:
                item.set("segment", str(error.segment))
            if error.offset is not None:
                item.set("offset", str(error.offset))
            item.text = error.message
            document.write(item, pretty_print=True)
        for day in people.days:
            group = _element("patient-day", patient=str(day.patient), date=day.date.isoformat(),
                             other_lines=str(day.others))
            for line in day.lines:
                item = _sub(group, "line", segment=str(line.segment), claim=line.claim_id, code=line.code,
                            units=_units(line.units), charge=_money(line.charge))
                if line.lx is not None:
                    item.set("lx", str(line.lx))
                if line.modifiers:
                    item.set("modifiers", " ".join(line.modifiers))
            document.write(group, pretty_print=True)
        for change in people.changes:
            item = _element("change", claim=change.claim, segment=str(change.segment))
            _sub(item, "before").text = change.before
            if change.after is not None:
                _sub(item, "after").text = change.after
            document.write(item, pretty_print=True)
    document.write("\n")
