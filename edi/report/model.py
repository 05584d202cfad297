"""The per-file report: the JSON contract of ``pump-rules.md`` plus ``notes``.

``notes`` (transactions passed over, version variants read with the X222A1 table) is the one key
edi837 adds to the contract: consumers that read the named keys are unaffected.
"""

from __future__ import annotations

from edi.claims.model import ClaimLocator
from edi.errors import ErrorEntry
from edi.records import Record
from edi.rules.findings import Finding
from edi.x12.envelope import EnvelopeHeader, TransactionSpan


class FileReport(Record):
    file: str
    transactions: int = 0
    claims: int = 0
    lines: int = 0
    findings: tuple[Finding, ...] = ()
    errors: tuple[ErrorEntry, ...] = ()
    notes: tuple[ErrorEntry, ...] = ()
    segments: int = 0
    input_bytes: int = 0
    sha256: str = ""
    unreadable: bool = False
    spans: tuple[TransactionSpan, ...] = ()  # each transaction set: what the rewriter recounts
    fatal: bool = False  # reading stopped early: the file cannot be rewritten
    headers: tuple[EnvelopeHeader, ...] = ()  # ISA/GS/ST elements, for acks
    longest_segment: int = 0
    # Where the claims with a drop_line or replace_code finding stand: what the rewrite edits.
    locators: tuple[ClaimLocator, ...] = ()
    # ``fix --hold``: how many claims were held for a person (None: not split). The JSON then
    # carries ``held_claims`` and a ``held`` mark on every finding.
    held_claims: int | None = None

    @property
    def status(self) -> str:
        if self.errors:
            return "error"
        return "findings" if self.findings else "clean"

    def with_findings(self, findings: tuple[Finding, ...]) -> FileReport:
        return self._replace(findings=findings)

    def as_record(self) -> dict[str, object]:
        hold = self.held_claims is not None
        record: dict[str, object] = {
            "file": self.file,
            "status": self.status,
            "transactions": self.transactions,
            "claims": self.claims,
            "lines": self.lines,
            "findings": [finding.as_record(hold=hold) for finding in self.findings],
            "errors": [error.as_record() for error in self.errors],
            "notes": [note.as_record() for note in self.notes],
        }
        if hold:
            record["held_claims"] = self.held_claims
        return record

    def to_json(self) -> str:
        import json  # only for the JSON format: keeps start-up short

        return json.dumps(self.as_record(), separators=(", ", ": "))
