"""Reports for people: the same content as HTML (one self-contained, printable page) and XML.

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

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from lxml import etree
from lxml.builder import E

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

def to_xml(reports: Iterable[PeopleReport]) -> bytes:
    root = etree.Element(f"{{{NAMESPACE}}}report", nsmap={None: NAMESPACE}, version="1")
    for people in reports:
        report = people.report
        node = etree.SubElement(root, f"{{{NAMESPACE}}}file", name=report.file, status=report.status,
                                transactions=str(report.transactions), claims=str(report.claims),
                                lines=str(report.lines), findings=str(len(report.findings)),
                                errors=str(len(report.errors)), dollars_at_risk=_money(people.dollars_at_risk),
                                rewritten="true" if people.fixed else "false")
        summary = etree.SubElement(node, f"{{{NAMESPACE}}}summary")
        for rule, severity, count in people.by_rule():
            etree.SubElement(summary, f"{{{NAMESPACE}}}rule", id=rule, severity=severity, count=str(count))
        for finding in report.findings:
            item = etree.SubElement(node, f"{{{NAMESPACE}}}finding", rule=finding.rule, severity=finding.severity,
                                    action=finding.action, applied="true" if finding.applied else "false",
                                    claim=finding.claim, code=finding.code, segment=str(finding.segment))
            if finding.line is not None:
                item.set("line", str(finding.line))
            if finding.date is not None:
                item.set("date", finding.date.isoformat())
            if finding.replacement:
                item.set("replacement", finding.replacement)
            etree.SubElement(item, f"{{{NAMESPACE}}}message").text = finding.message
        for error in report.errors:
            item = etree.SubElement(node, f"{{{NAMESPACE}}}error", code=error.code)
            if error.segment is not None:
                item.set("segment", str(error.segment))
            if error.offset is not None:
                item.set("offset", str(error.offset))
            item.text = error.message
        for day in people.days:
            group = etree.SubElement(node, f"{{{NAMESPACE}}}patient-day", patient=str(day.patient),
                                     date=day.date.isoformat(), other_lines=str(day.others))
            for line in day.lines:
                item = etree.SubElement(group, f"{{{NAMESPACE}}}line", segment=str(line.segment), claim=line.claim_id,
                                        code=line.code, units=_units(line.units), charge=_money(line.charge))
                if line.lx is not None:
                    item.set("lx", str(line.lx))
                if line.modifiers:
                    item.set("modifiers", " ".join(line.modifiers))
        for change in people.changes:
            item = etree.SubElement(node, f"{{{NAMESPACE}}}change", claim=change.claim, segment=str(change.segment))
            etree.SubElement(item, f"{{{NAMESPACE}}}before").text = change.before
            if change.after is not None:
                etree.SubElement(item, f"{{{NAMESPACE}}}after").text = change.after
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


# -- HTML -----------------------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #111; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #999; }
h3 { font-size: 1em; margin-top: 1.2em; }
table { border-collapse: collapse; margin: .5em 0 1em; }
th, td { border: 1px solid #bbb; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #eee; } td.num { text-align: right; } td { white-space: nowrap; }
td:last-child { white-space: normal; }
.error { color: #a00; font-weight: 600; } .warning { color: #a60; } .info { color: #333; }
.applied { color: #070; } code, pre { font-family: ui-monospace, monospace; }
@media print { body { margin: 0; } h2 { page-break-before: always; } a { color: inherit; } }
"""


def _table(headers: list[str], rows: Sequence[Sequence[object]]) -> etree._Element:
    head = E.tr(*[E.th(h) for h in headers])
    body = []
    for row in rows:
        cells = []
        for value in row:
            if isinstance(value, etree._Element):  # noqa: SLF001 - lxml's public element type
                cells.append(E.td(value))
            elif isinstance(value, (int, Decimal)) and not isinstance(value, bool):
                cells.append(E.td(str(value), {"class": "num"}))
            else:
                cells.append(E.td("" if value is None else str(value)))
        body.append(E.tr(*cells))
    return E.table(E.thead(head), E.tbody(*body))


def to_html(reports: Iterable[PeopleReport], *, title: str = "edi837 report") -> bytes:
    reports = list(reports)
    sections = []
    total_findings = sum(len(p.report.findings) for p in reports)
    totals = _table(
        ["files", "claims", "service lines", "findings", "X12 errors", "dollars at risk"],
        [[len(reports), sum(p.report.claims for p in reports), sum(p.report.lines for p in reports), total_findings,
          sum(len(p.report.errors) for p in reports), _money(sum((p.dollars_at_risk for p in reports), Decimal(0)))]],
    )
    for people in reports:
        report = people.report
        findings_by_segment: dict[int, list] = defaultdict(list)
        for finding in report.findings:
            findings_by_segment[finding.segment].append(finding)
        parts = [
            E.h2(f"{report.file}: {report.status}"),
            _table(["transactions", "claims", "service lines", "findings", "errors", "dollars at risk"],
                   [[report.transactions, report.claims, report.lines, len(report.findings), len(report.errors),
                     _money(people.dollars_at_risk)]]),
        ]
        if report.findings:
            parts += [E.h3("Findings by rule"),
                      _table(["rule", "severity", "findings"],
                             [[rule, E.span(severity, {"class": severity}), count] for rule, severity, count in people.by_rule()])]
            parts += [E.h3("Findings"), _table(
                ["rule", "severity", "action", "claim", "line", "code", "date", "replacement", "segment", "message"],
                [[f.rule, E.span(f.severity, {"class": f.severity}),
                  E.span(f.action + (" (applied)" if f.applied else ""), {"class": "applied" if f.applied else ""}),
                  f.claim, f.line, f.code, f.date.isoformat() if f.date else "", f.replacement or "", f.segment, f.message]
                 for f in report.findings])]
        if report.errors:
            parts += [E.h3("X12 errors"), _table(["code", "segment", "offset", "message"],
                                                 [[e.code, e.segment, e.offset, e.message] for e in report.errors])]
        if people.days:
            parts.append(E.h3("Patient-days with findings"))
            for day in people.days:
                rows = []
                for line in day.lines:
                    notes = "; ".join(f"{f.rule} {f.action}" for f in findings_by_segment.get(line.segment, []))
                    rows.append([line.claim_id, line.lx, line.code, " ".join(line.modifiers), _units(line.units),
                                 _money(line.charge), line.place or "", notes])
                parts += [E.p(E.strong(f"Patient {day.patient}, {day.date.isoformat()}"),
                              f" ({day.others} other line(s) not shown)" if day.others else ""),
                          _table(["claim", "line", "code", "modifiers", "units", "charge", "place", "findings"], rows)]
        if people.changes:
            parts.append(E.h3("Changes made by fix"))
            by_claim: dict[str, list[Change]] = defaultdict(list)
            for change in people.changes:
                by_claim[change.claim].append(change)
            for claim, changes in by_claim.items():
                parts += [E.p(E.strong(f"Claim {claim}")),
                          _table(["segment", "before", "after"],
                                 [[c.segment, E.code(c.before), E.code(c.after) if c.after is not None else "(dropped)"]
                                  for c in changes])]
        sections.append(E.section(*parts))
    document = E.html(
        E.head(E.meta(charset="utf-8"), E.title(title), E.style(STYLE)),
        E.body(E.h1(title), E.p("Claims are named by their claim number (CLM01); patients by a number in file order."),
               totals, *sections),
    )
    return b"<!DOCTYPE html>\n" + etree.tostring(document, method="html", encoding="utf-8", pretty_print=True)
