"""The finding: one rule hit on one service line (or claim), as the report contract names it."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from edi.records import Record


class Finding(Record):
    rule: str
    severity: str
    action: str
    claim: str
    line: int | None
    code: str
    date: date | None
    replacement: str | None
    segment: int
    message: str
    applied: bool = False
    # Not part of the JSON contract: what the rewriter and the people's reports need.
    claim_segment: int = 0
    charge: Decimal | None = None
    held: bool = False  # on a claim ``fix --hold`` held for a person (in the JSON in that mode only)

    def as_record(self, *, hold: bool = False) -> dict[str, object]:
        record: dict[str, object] = {
            "rule": self.rule,
            "severity": self.severity,
            "action": self.action,
            "applied": self.applied,
            "claim": self.claim,
            "line": self.line,
            "code": self.code,
            "date": self.date.isoformat() if self.date else None,
            "replacement": self.replacement,
            "segment": self.segment,
            "message": self.message,
        }
        if hold:
            record["held"] = self.held
        return record

    def __repr__(self) -> str:
        return f"Finding({self.rule}, segment={self.segment}, action={self.action})"
