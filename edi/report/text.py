"""Text report for people: one line per error or finding, then a summary per file."""

from __future__ import annotations

from edi.report.model import FileReport
from edi.rules.book import RuleSpec

DOC_HEADINGS = (("what", "What it checks"), ("why", "Why payers deny it"), ("example", "Example"),
                ("instead", "What to bill instead"), ("evidence", "Evidence"))


def render_rule_doc(spec: RuleSpec) -> str:
    """One rule's documentation, the same shape for every rule (ruff-style)."""
    out = [f"{spec.id}: {spec.title}", "",
           (f"Severity: {spec.severity}. Action: Medicare {spec.actions['medicare']}, "
            f"Medicaid {spec.actions['medicaid']}, other payers {spec.actions['other']}."),
           f"Kind: {spec.kind}."]
    for key, heading in DOC_HEADINGS:
        out += ["", f"## {heading}", spec.docs[key]]
    return "\n".join(out) + "\n"


def render_text(report: FileReport) -> str:
    out = []
    name = report.file
    for error in report.errors:
        where = error.segment if error.segment is not None else "-"
        out.append(f"{name}:{where}: {error.code} {error.message}")
    for finding in report.findings:
        date = finding.date.isoformat() if finding.date else "-"
        applied = " (applied)" if finding.applied else ""
        replacement = f" -> {finding.replacement}" if finding.replacement else ""
        out.append(
            f"{name}:{finding.segment}: {finding.rule} [{finding.severity}] {finding.action}{applied} "
            f"claim {finding.claim} line {finding.line} code {finding.code}{replacement} date {date}: {finding.message}"
        )
    for note in report.notes:
        where = note.segment if note.segment is not None else "-"
        out.append(f"{name}:{where}: note {note.code} {note.message}")
    out.append(
        f"{name}: {report.status}: {report.transactions} transaction(s), {report.claims} claim(s), "
        f"{report.lines} line(s), {len(report.findings)} finding(s), {len(report.errors)} error(s)"
    )
    return "\n".join(out) + "\n"
