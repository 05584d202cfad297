"""The rules engine: index the claims of pass 1, then evaluate the selected rules.

Findings are deterministic: same input, same findings, in the same order (by the line's
segment number, then rule ID). Actions are resolved here, once, for annotate and rewrite alike:
the payer scope of the line's claim picks the rule's action, and a ``drop_line`` that would
leave a claim without lines is turned into a ``flag`` on the claim's first such line ("an 837P
claim needs at least one line": pump-rules.md).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any

from edi.claims.model import Claim, ClaimLocator
from edi.errors import UsageError
from edi.rules.book import RuleBook, RuleSpec
from edi.rules.findings import Finding
from edi.rules.index import LineRecord, PatientDayIndex, patient_of
from edi.rules.kinds import KINDS, EventToRecord, Hit, PatientView, PumpHistory
from edi.rules.selection import is_selected, unknown_prefixes

ONLY_LINE_NOTE = " (not dropped: it is the claim's last remaining line; review the claim)"


class _Fields(dict):
    def __missing__(self, key: str) -> str:
        return "?"


def _format(template: str, values: dict[str, Any]) -> str:
    return template.format_map(_Fields({k: v for k, v in values.items() if v is not None}))


class RuleEngine:
    def __init__(
        self,
        book: RuleBook,
        *,
        select: Iterable[str] = (),
        ignore: Iterable[str] = (),
        history: PumpHistory | None = None,
    ) -> None:
        select, ignore = tuple(select), tuple(ignore)
        unknown = unknown_prefixes((s.id for s in book.rules), select + ignore)
        if unknown:
            raise UsageError(f"no rule ID starts with {', '.join(unknown)}; `edi837 rules` lists them",
                             code="UNKNOWN_RULE_PREFIX")
        self.book = book
        self._distinct_modifiers = book.code_sets.get("distinct_modifiers", frozenset())
        self.specs: tuple[RuleSpec, ...] = tuple(s for s in book.rules if is_selected(s.id, select, ignore))
        self.history = history
        self.index = PatientDayIndex(book.relevant_codes, book.medicare_filing, self._editable_codes())

    def add(self, claim: Claim) -> None:
        self.index.add(claim)

    def _editable_codes(self) -> frozenset[str]:
        """The codes of the lines a selected rule may drop or recode (its trigger codes: every
        kind reports on lines of those); a rule that only flags edits nothing."""
        codes: set[str] = set()
        for spec in self.specs:
            kind = KINDS[spec.kind]
            if set(spec.actions.values()) != {"flag"}:
                trigger = kind.trigger_codes(spec, self.book) if kind.trigger_codes is not None else None
                codes |= self.book.relevant_codes if trigger is None else trigger
        return frozenset(codes)

    def locators_for(self, findings: Iterable[Finding]) -> tuple[ClaimLocator, ...]:
        """The locators of the claims a rewrite would edit for these findings, in file order."""
        claims = {f.claim_segment for f in findings if f.action in ("drop_line", "replace_code")}
        kept = set(self.index.locators)
        # Every kind reports on lines of its trigger codes, whose claims the index keeps; a kind
        # that broke that promise would see its edits left unapplied (reported, not applied).
        return tuple(self.index.locators.get(segment) for segment in sorted(claims & kept))

    def _uses_history(self) -> bool:
        return any(KINDS[spec.kind].history_codes for spec in self.specs)

    def history_codes(self) -> frozenset[str]:
        """The codes whose lines the history store keeps (what PMP004 and PMP011 look back for)."""
        codes: set[str] = set()
        for spec in self.book.rules:
            for name in KINDS[spec.kind].history_codes:
                codes |= spec.params[name]
        return frozenset(codes)

    def events_to_record(self, dropped: frozenset[int] = frozenset(),
                         replaced: dict[int, str] | None = None,
                         held: frozenset[int] = frozenset()) -> Iterator[EventToRecord]:
        """The pump events of the file as passed on: dropped lines and held claims (CLM segment
        numbers) left out, replaced codes new."""
        codes = self.history_codes()
        replaced = replaced or {}
        for group, buffer in self.index:
            patient = patient_of(group)
            for entry in self.index.records(buffer):
                if entry.segment in dropped or entry.claim_segment in held:
                    continue
                code = replaced.get(entry.segment, entry.code)
                if code in codes:
                    yield EventToRecord(patient, entry.claim_id, entry.date, code)

    def _lookback(self) -> int:
        days = [0]
        for spec in self.specs:
            parameter = KINDS[spec.kind].lookback_days
            if parameter is not None:
                days.append(spec.params[parameter])
        return max(days)

    def _view(self, group: str, days: dict) -> PatientView:
        # The history store keeps events per patient, not yet per provider (issue 16 item 5):
        # a patient's earlier events count for each of the file's providers.
        key = patient_of(group)
        history = []
        if self.history is not None and days:
            own_claims = {line.claim_id for day in days.values() for line in day.lines}
            since = min(days) - timedelta(days=self._lookback())
            # The file's own claims supersede what earlier runs recorded for them.
            history = self.history.events(key, since, max(days), exclude_claims=own_claims)
        return PatientView(key=key, days=days, history=history, has_history_store=self.history is not None)

    def _not_rewritable(self, line: LineRecord) -> str | None:
        """Why a drop_line or replace_code on this line is no edit a coder would sign unread
        (pump-rules v2, "Rewritable line"); None when it is rewritable. Void claims never reach
        the rules."""
        if line.is_span:
            return "the line spans several days (RD8), so its day is uncertain"
        if line.adjudicated_elsewhere:
            return ("the claim carries another payer's adjudication (2320 AMT*D or 2430 SVD): changing a line "
                    "would unbalance its coordination-of-benefits amounts")
        distinct = self._distinct_modifiers.intersection(line.modifiers)
        if distinct:
            return f"the line carries the distinct-procedure modifier {min(distinct)}: it may be a separate encounter"
        return None

    def _finding(self, spec: RuleSpec, hit: Hit) -> Finding:
        line = hit.line
        action = hit.action or spec.action_for(line.scope)
        message = _format(spec.message, hit.values)
        if action in ("drop_line", "replace_code"):
            reason = self._not_rewritable(line)
            if reason is not None:
                message += f" (not {'dropped' if action == 'drop_line' else 'recoded'}: {reason}; review it)"
                action = "flag"
        return Finding(
            rule=spec.id, severity=spec.severity, action=action, claim=line.claim_id, line=line.lx,
            code=line.code, date=line.date, replacement=hit.replacement, segment=line.segment,
            message=message, claim_segment=line.claim_segment, charge=line.charge,
        )

    def findings(self) -> tuple[Finding, ...]:
        found: list[Finding] = []
        claim_sizes: dict[int, int] = {}
        # code -> the rules that code can set off: a patient is evaluated only by those, and
        # patients with the same codes (most of them, in a practice's file) share the answer.
        always: list[int] = []
        by_code: dict[str, list[int]] = defaultdict(list)
        for position, spec in enumerate(self.specs):
            kind = KINDS[spec.kind]
            trigger = kind.trigger_codes(spec, self.book) if kind.trigger_codes is not None else None
            if trigger is None:
                always.append(position)
            else:
                for code in trigger:
                    by_code[code].append(position)
        plans: dict[frozenset[str], tuple[tuple[RuleSpec, Any], ...]] = {}
        kinds = [KINDS[spec.kind].evaluate for spec in self.specs]
        book = self.book
        if self.history is not None and self._uses_history():
            self.history.prefetch(self.index.patient_keys())
        days_of = self.index.days_of
        for key, entries in self.index:
            days = days_of(entries)
            codes: set[str] = set()
            for day in days.values():
                codes |= day.codes
            signature = frozenset(codes)
            plan = plans.get(signature)
            if plan is None:
                positions = set(always)
                for code in signature:
                    positions.update(by_code.get(code, ()))
                plan = plans[signature] = tuple((self.specs[p], kinds[p]) for p in sorted(positions))
            if not plan:
                continue
            view = self._view(key, days)
            for spec, kind in plan:
                for hit in kind(spec, book, view):
                    found.append(self._finding(spec, hit))
                    claim_sizes[hit.line.claim_segment] = hit.line.claim_lines
        # A span line stands on several days and may set a rule off on each: reported once.
        unique: dict[tuple[str, int], Finding] = {}
        for finding in found:
            unique.setdefault((finding.rule, finding.segment), finding)
        found = list(unique.values())
        found = _keep_one_line_per_claim(found, claim_sizes)
        found.sort(key=lambda f: (f.segment, f.rule, f.message))
        return tuple(found)


def _keep_one_line_per_claim(found: list[Finding], claim_sizes: dict[int, int]) -> list[Finding]:
    """Where drops would empty a claim, keep its first line and flag it instead."""
    drops: dict[int, set[int]] = defaultdict(set)
    for finding in found:
        if finding.action == "drop_line":
            drops[finding.claim_segment].add(finding.segment)
    kept = {min(lines) for claim, lines in drops.items() if len(lines) >= claim_sizes[claim]}
    if not kept:
        return found
    out = []
    for finding in found:
        if finding.action == "drop_line" and finding.segment in kept:
            out.append(finding._replace(action="flag", message=finding.message + ONLY_LINE_NOTE))
        else:
            out.append(finding)
    return out
