"""The worklist for a billing office: HTML (one printable page) and CSV (one row per finding).

What a biller acts on, in billing words rather than X12 ones: the claims to review first
(most dollars left at risk first), each with the patient's position in the file (never a
name), the payer, the date, the lines involved, the rule's title, what to bill instead and why
(the rule's own documentation, ``rules/rules.toml``, read through the rule book), and the
dollars at stake; totals by rule and by payer; what ``fix`` applied against what is left for a
person, with dollars for each; a bar chart of findings and dollars by rule (inline SVG: no
script, prints as it shows). A file with X12 errors is said to be what it is: the
clearinghouse will reject it as it stands.

Dollars at stake: the charge of a line with an error-severity finding (payers deny those);
a warning puts no dollars at stake (it asks a person to look). A line counts once in a total
even when several rules hit it.

Memory: both formats are written as a stream of text pieces (no document tree); what is held
is the file's findings (already in the report) and one small record per claim with findings.
The HTML shows the first ``HTML_CLAIMS`` claims of the worklist and says that the CSV has the
rest: a page of 30,000 claims is not read by anyone, and its size is what made the old report
cost half a gigabyte.

Patients are never named: "patient N" numbers the patient (with their billing provider) in file
order, as the XML report does; claims are named by CLM01. Output is deterministic (no clock).
"""

from __future__ import annotations

import csv
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from html import escape

from edi.records import Record
from edi.report.model import FileReport
from edi.rules.book import RuleSpec
from edi.rules.findings import Finding
from edi.rules.index import PatientDayIndex, patient_of

HTML_CLAIMS = 200
ZERO = Decimal(0)
X12_MEANING = ("The clearinghouse will reject this file as it stands: it breaks the X12 format. "
               "edi837 did not change it. Correct what is listed below in the billing system, "
               "export the file again and run edi837 on the new file.")


class ClaimContext:
    """Where a claim's patient and payer stand, from the rules index (CLM segment -> both)."""

    def __init__(self, index: PatientDayIndex) -> None:
        self._segments = index.claim_segments
        self._groups = index.claim_groups
        self._keys = list(index.group_numbers)

    def __call__(self, claim_segment: int) -> tuple[int | None, str]:
        """(patient number from 1, payer ID); (None, "") for a claim the index does not hold."""
        position = bisect_right(self._segments, claim_segment) - 1
        if position < 0 or self._segments[position] != claim_segment:
            return None, ""
        group = self._groups[position]
        return group + 1, patient_of(self._keys[group]).split("\x1f", 1)[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class WorklistFile:
    report: FileReport
    context: Callable[[int], tuple[int | None, str]]
    rules: Mapping[str, RuleSpec]
    fixed: bool = False


class Row(Record):
    """One finding as a biller reads it."""

    file: str
    claim: str
    patient: int | None
    payer: str
    date: str
    line: int | None
    code: str
    charge: Decimal | None
    rule: str
    title: str
    severity: str
    status: str  # "applied by fix", "held for review", "to review", "to review (warning)"
    what_to_do: str
    instead: str
    why: str
    stake: Decimal | None
    message: str


def _status(finding: Finding) -> str:
    if finding.applied:
        return "applied by fix"
    if finding.held:
        return "held for review"
    return "to review" if finding.severity == "error" else "to review (warning)"


def _what_to_do(finding: Finding) -> str:
    if finding.applied and finding.action == "drop_line":
        return f"fix removed line {finding.line} ({finding.code})"
    if finding.applied and finding.action == "replace_code":
        return f"fix recoded line {finding.line}: {finding.code} to {finding.replacement}"
    if finding.action == "drop_line":
        return f"remove line {finding.line} ({finding.code})"
    if finding.action == "replace_code" or finding.replacement:
        return f"bill {finding.replacement} instead of {finding.code} on line {finding.line}"
    return f"review line {finding.line} ({finding.code})"


def _stake(finding: Finding) -> Decimal | None:
    return finding.charge if finding.severity == "error" else None


def _row(file: WorklistFile, finding: Finding) -> Row:
    spec = file.rules.get(finding.rule)
    patient, payer = file.context(finding.claim_segment)
    return Row(file=file.report.file, claim=finding.claim, patient=patient, payer=payer,
               date=finding.date.isoformat() if finding.date else "", line=finding.line, code=finding.code,
               charge=finding.charge, rule=finding.rule, title=spec.title if spec else finding.rule,
               severity=finding.severity, status=_status(finding), what_to_do=_what_to_do(finding),
               instead=spec.docs.get("instead", "") if spec else "", why=spec.docs.get("why", "") if spec else "",
               stake=_stake(finding), message=finding.message)


def review_order(findings: Sequence[Finding]) -> list[list[Finding]]:
    """Findings grouped by claim, the claims with the most dollars left at risk first, then
    those with anything left for review, then those ``fix`` settled; file order within each."""
    by_claim: dict[int, list[Finding]] = defaultdict(list)
    for finding in findings:
        by_claim[finding.claim_segment].append(finding)

    def key(claim: int) -> tuple[int, Decimal, int]:
        left = [f for f in by_claim[claim] if not f.applied]
        dollars = _distinct_dollars(left)
        return (0 if dollars else 1 if left else 2, -dollars, claim)

    return [by_claim[claim] for claim in sorted(by_claim, key=key)]


def _distinct_dollars(findings: Iterable[Finding]) -> Decimal:
    charged = {f.segment: f.charge for f in findings if f.severity == "error" and f.charge is not None}
    return sum(charged.values(), ZERO)


class Totals(Record):
    findings: int
    at_risk: Decimal
    applied: Decimal
    left: Decimal


def totals(findings: Iterable[Finding]) -> Totals:
    items = list(findings)
    return Totals(len(items), _distinct_dollars(items), _distinct_dollars(f for f in items if f.applied),
                  _distinct_dollars(f for f in items if not f.applied))


def totals_by(findings: Sequence[Finding], key: Callable[[Finding], str]) -> list[tuple[str, Totals]]:
    groups: dict[str, list[Finding]] = defaultdict(list)
    for finding in findings:
        groups[key(finding)].append(finding)
    return sorted(((name, totals(items)) for name, items in groups.items()), key=lambda kv: (-kv[1].at_risk, kv[0]))


# -- CSV --------------------------------------------------------------------------------------

CSV_COLUMNS = ("file", "claim", "patient", "payer", "date of service", "line", "code", "charge", "rule",
               "rule title", "severity", "status", "what to do", "what to bill instead", "why",
               "dollars at stake", "message")
_FORMULA_STARTS = ("=", "+", "@", "\t", "\r")


def _cell(value: object) -> str:
    """A CSV cell; text a spreadsheet would run as a formula is quoted with a leading ``'``."""
    if value is None:
        return ""
    text = f"{value:.2f}" if isinstance(value, Decimal) else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def rows(files: Iterable[WorklistFile]) -> Iterator[Row]:
    """Every finding of every file, in review order."""
    for file in files:
        for group in review_order(file.report.findings):
            for finding in group:
                yield _row(file, finding)


class _Collected(list[str]):
    """What ``csv.writer`` writes to: its lines, taken a batch at a time (no I/O module in the core)."""

    def write(self, text: str) -> None:
        self.append(text)

    def take(self) -> str:
        text = "".join(self)
        self.clear()
        return text


def csv_pieces(files: Iterable[WorklistFile]) -> Iterator[str]:
    """The CSV, a piece per 500 rows (RFC 4180, CRLF line ends, a header row)."""
    lines = _Collected()
    writer = csv.writer(lines, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for count, row in enumerate(rows(files), start=1):
        writer.writerow([_cell(value) for value in row])
        if count % 500 == 0:
            yield lines.take()
    yield lines.take()


# -- HTML -------------------------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #111; max-width: 70em; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #999; }
h3 { font-size: 1em; margin: 1.2em 0 .3em; }
table { border-collapse: collapse; margin: .5em 0 1em; }
th, td { border: 1px solid #bbb; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #eee; } td.num { text-align: right; white-space: nowrap; }
.error { color: #a00; font-weight: 600; } .warning { color: #a60; }
.applied { color: #070; } .held { color: #a00; }
.reject { border: 2px solid #a00; padding: .5em 1em; background: #fee; }
.claim { break-inside: avoid; page-break-inside: avoid; }
.why { color: #333; font-size: .9em; }
@media print { body { margin: 0; } a { color: inherit; } }
"""


def _money(value: Decimal | None) -> str:
    return "" if value is None else f"${value:,.2f}"


def _td(value: object, *, number: bool = False) -> str:
    text = _money(value) if isinstance(value, Decimal) else "" if value is None else str(value)
    return f'<td class="num">{escape(text)}</td>' if number else f"<td>{escape(text)}</td>"


def _table(headers: Sequence[str], body: Iterable[Sequence[tuple[object, bool]]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    rows = ("<tr>" + "".join(_td(value, number=number) for value, number in cells) + "</tr>" for cells in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _totals_table(label: str, named: list[tuple[str, Totals]], titles: Mapping[str, str] | None = None) -> str:
    headers = [label, *(["rule title"] if titles is not None else []), "findings", "dollars at risk",
               "applied by fix", "left for review"]
    body = [[(name, False), *([(titles.get(name, ""), False)] if titles is not None else []), (t.findings, True),
             (t.at_risk, True), (t.applied, True), (t.left, True)] for name, t in named]
    return _table(headers, body)


def bar_chart(named: list[tuple[str, Totals]]) -> str:
    """Findings and dollars at risk by rule, as horizontal bars (inline SVG, no script)."""
    if not named:
        return ""
    row_height, label_width, bar_width = 34, 80, 300
    most_findings = max(t.findings for _, t in named) or 1
    most_dollars = max((t.at_risk for _, t in named), default=ZERO) or Decimal(1)
    height = row_height * len(named) + 30
    width = label_width + 2 * (bar_width + 90)
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" id="chart" role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">'),
             "<title>Findings and dollars at risk by rule</title>",
             f'<text x="{label_width}" y="14" font-weight="bold">findings</text>',
             f'<text x="{label_width + bar_width + 90}" y="14" font-weight="bold">dollars at risk</text>']
    for index, (rule, t) in enumerate(named):
        y = 24 + index * row_height
        count_length = max(1, round(bar_width * t.findings / most_findings))
        dollar_length = round(bar_width * float(t.at_risk / most_dollars))
        dollars_x = label_width + bar_width + 90
        parts += [
            f'<text x="0" y="{y + 14}">{escape(rule)}</text>',
            f'<rect class="bar-findings" x="{label_width}" y="{y}" width="{count_length}" height="20" fill="#4a6fa5"/>',
            f'<text x="{label_width + count_length + 4}" y="{y + 14}">{t.findings}</text>',
            f'<rect class="bar-dollars" x="{dollars_x}" y="{y}" width="{dollar_length}" height="20" fill="#b5523b"/>',
            f'<text x="{dollars_x + dollar_length + 4}" y="{y + 14}">{escape(_money(t.at_risk))}</text>',
        ]
    parts.append("</svg>")
    return "".join(parts)


def _claim_section(file: WorklistFile, findings: list[Finding]) -> str:
    first = _row(file, findings[0])
    held = any(f.held for f in findings)
    left = _distinct_dollars(f for f in findings if not f.applied)
    patient = f"patient {first.patient}" if first.patient is not None else "patient not indexed"
    head = (f'<section class="claim"><h3>Claim {escape(first.claim)}: {escape(patient)}, payer '
            f'{escape(first.payer or "?")}, {escape(first.date)}'
            f'{" (held for review)" if held else ""}</h3>')
    body = []
    for finding in findings:
        row = _row(file, finding)
        css = "applied" if finding.applied else "held" if finding.held else finding.severity
        body.append(
            f'<tr><td class="num">{escape(str(row.line or ""))}</td><td>{escape(row.code)}</td>'
            f'<td class="num">{escape(_money(row.charge))}</td>'
            f'<td><strong>{escape(row.title)}</strong> ({escape(row.rule)}, <span class="{finding.severity}">'
            f'{escape(row.severity)}</span>)</td>'
            f'<td><span class="{css}">{escape(row.status)}</span>: {escape(row.what_to_do)}</td>'
            f'<td>{escape(row.instead)}<div class="why">Why: {escape(row.why)}</div></td>'
            f'<td class="num">{escape(_money(row.stake))}</td></tr>')
    table = ("<table><thead><tr><th>line</th><th>code</th><th>charge</th><th>rule</th><th>status</th>"
             "<th>what to bill instead, and why</th><th>dollars at stake</th></tr></thead><tbody>"
             + "".join(body) + "</tbody></table>")
    footer = f"<p>Left at risk on this claim: {escape(_money(left))}</p>" if left else ""
    return head + table + footer + "</section>"


def _file_pieces(file: WorklistFile, *, claims_shown: int) -> Iterator[str]:
    report = file.report
    yield f"<h2>{escape(report.file)}</h2>"
    if report.errors:
        yield (f'<div class="reject" id="x12-errors"><p><strong>{len(report.errors)} X12 error(s).</strong> '
               f"{escape(X12_MEANING)}</p>")
        yield _table(["error", "segment", "what is wrong"],
                     [[(e.code, False), (e.segment, True), (e.message, False)] for e in report.errors])
        yield "</div>"
    overall = totals(report.findings)
    groups = review_order(report.findings)
    left_claims = sum(1 for group in groups if any(not f.applied for f in group))
    summary = [("claims in the file", report.claims), ("service lines", report.lines),
               ("claims to review", left_claims), ("findings", overall.findings),
               ("dollars at risk found", _money(overall.at_risk)),
               ("applied by fix" if file.fixed else "fix would apply", _money(overall.applied)),
               ("left for a person to review", _money(overall.left))]
    if report.held_claims is not None:
        summary.append(("claims held (not sent on)", report.held_claims))
    yield '<table class="summary" id="summary"><tbody>'
    for label, value in summary:
        yield f'<tr><th>{escape(label)}</th><td class="num">{escape(str(value))}</td></tr>'
    yield "</tbody></table>"
    if not report.findings:
        yield "<p>No pump-coding findings in this file.</p>" if not report.errors else ""
        return
    by_rule = totals_by(report.findings, lambda f: f.rule)
    titles = {rule: spec.title for rule, spec in file.rules.items()}
    yield "<h3>Findings and dollars at risk by rule</h3>"
    yield bar_chart(by_rule)
    yield _totals_table("rule", by_rule, titles)
    yield "<h3>Dollars at risk by payer</h3>"
    yield _totals_table("payer", totals_by(report.findings, lambda f: file.context(f.claim_segment)[1] or "?"))
    yield '<h3 id="worklist">Claims to review first</h3>'
    if len(groups) > claims_shown:
        yield (f'<p class="more">This page shows the first {claims_shown} of the {len(groups)} claims with '
               "findings, the most dollars at risk first. Every finding of every claim is in the CSV "
               "worklist (<code>--format csv</code>), one finding per row.</p>")
    for group in groups[:claims_shown]:
        yield _claim_section(file, group)


def html_pieces(files: Iterable[WorklistFile], *, title: str = "edi837 worklist",
                claims_shown: int = HTML_CLAIMS) -> Iterator[str]:
    """The worklist page, piece by piece."""
    yield ('<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
           f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>")
    yield f"<h1>{escape(title)}</h1>"
    yield ("<p>Claims are named by their claim number (CLM01), patients by their position in the file "
           "(patient 1 is the first patient in it), never by name. Dollars at risk are the charges of "
           "the lines a payer would deny.</p>")
    for file in files:
        yield from _file_pieces(file, claims_shown=claims_shown)
    yield "</body></html>\n"
