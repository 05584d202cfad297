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
from edi.rules.book import RuleBook, RuleSpec, history_codes_in
from edi.rules.codes import EMPTY, CodeSet
from edi.rules.findings import Finding
from edi.rules.index import LineRecord, PatientDayIndex, patient_of, provider_of
from edi.rules.kinds import KINDS, EventToRecord, FileClaim, Hit, PatientView, PumpHistory
from edi.rules.ncc import ADD_ON, CodingTables, check_spec, is_active, table_kind
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
        tables: CodingTables | None = None,
    ) -> None:
        select, ignore = tuple(select), tuple(ignore)
        unknown = unknown_prefixes((s.id for s in book.rules), select + ignore)
        if unknown:
            raise UsageError(f"no rule ID starts with {', '.join(unknown)}; `edi837 rules` lists them",
                             code="UNKNOWN_RULE_PREFIX")
        self.book = book
        self._distinct_modifiers = book.code_sets.get("distinct_modifiers", EMPTY)
        for spec in book.rules:
            if table_kind(spec) is not None:
                check_spec(spec)
        # A table-driven rule (NCC) without its tables is inactive (`edi837 rules` says so).
        self.specs: tuple[RuleSpec, ...] = tuple(s for s in book.rules if is_selected(s.id, select, ignore)
                                                 and is_active(s, tables))
        self.history = history
        self._looks_back = history is not None and self._uses_history()  # a selected rule reads the history
        self.tables = tables if any(table_kind(s) is not None for s in self.specs) else None
        # With tables, every code they name is a code some rule looks at: the index keeps its lines.
        self._relevant = (book.relevant_codes if self.tables is None
                          else CodeSet.union(book.relevant_codes, CodeSet(self.tables.codes())))
        self.index = PatientDayIndex(self._relevant, book.medicare_filing, self._editable_codes(),
                                     medicaid_filing=book.medicaid_filing)

    def add(self, claim: Claim) -> None:
        self.index.add(claim)

    def _editable_codes(self) -> CodeSet:
        """The codes of the lines a selected rule may drop or recode (its trigger codes: every
        kind reports on lines of those); a rule that only flags edits nothing."""
        codes: list[CodeSet] = []
        for spec in self.specs:
            kind = KINDS[spec.kind]
            if set(spec.actions.values()) != {"flag"}:
                trigger = kind.trigger_codes(spec, self.book) if kind.trigger_codes is not None else None
                codes.append(self._relevant if trigger is None else trigger)
        return CodeSet.union(EMPTY, *codes)

    def locators_for(self, findings: Iterable[Finding]) -> tuple[ClaimLocator, ...]:
        """The locators of the claims a rewrite would edit for these findings, in file order."""
        claims = {f.claim_segment for f in findings if f.action in ("drop_line", "replace_code")}
        kept = set(self.index.locators)
        # Every kind reports on lines of its trigger codes, whose claims the index keeps; a kind
        # that broke that promise would see its edits left unapplied (reported, not applied).
        return tuple(self.index.locators.get(segment) for segment in sorted(claims & kept))

    # -- the history store's plumbing (issue 16 item 5) ----------------------------------------
    def _uses_history(self) -> bool:
        """A selected rule looks back across files: a kind that declares history codes, or NCC003
        (a primary billed on the same day in an earlier file counts)."""
        return any(KINDS[spec.kind].history_codes or table_kind(spec) == ADD_ON for spec in self.specs)

    def history_codes(self) -> CodeSet:
        """The codes whose lines the history store keeps (what PMP004, PMP011 and PMP012 look
        back for, and NCC003's primaries when its table is loaded)."""
        codes = [history_codes_in(spec.params[name]) for spec in self.book.rules
                 for name in KINDS[spec.kind].history_codes]
        if self.tables is not None and any(table_kind(spec) == ADD_ON for spec in self.specs):
            codes.append(CodeSet(self.tables.add_on_primaries()))  # a primary billed in an earlier file
        return CodeSet.union(EMPTY, *codes)

    def events_to_record(self, dropped: frozenset[int] = frozenset(),
                         replaced: dict[int, str] | None = None,
                         held: frozenset[int] = frozenset()) -> Iterator[EventToRecord]:
        """The pump events of the file as passed on: dropped lines and held claims (CLM segment
        numbers) left out, replaced codes new."""
        codes = self.history_codes()
        replaced = replaced or {}
        for group, buffer in self.index:
            patient, provider = patient_of(group), provider_of(group)
            for entry in self.index.records(buffer):
                if entry.segment in dropped or entry.claim_segment in held:
                    continue
                code = replaced.get(entry.segment, entry.code)
                if code in codes:
                    yield EventToRecord(patient, provider, entry.claim_id, entry.date, code)

    def file_claims(self, held: frozenset[int] = frozenset()) -> Iterator[FileClaim]:
        """Every claim of the file, voids included: the history store replaces (or, for a void,
        removes) what earlier runs recorded for each, and lookups leave those events out. Held
        claims (CLM segment numbers) are not passed on: what was recorded for them stays."""
        for group, buffer in self.index:
            patient, provider = patient_of(group), provider_of(group)
            for claim_id in self.index.claims_of(buffer, held):
                yield FileClaim(patient, provider, claim_id)
        for patient, provider, claim_id in self.index.voids:
            yield FileClaim(patient, provider, claim_id)

    def _lookback(self) -> int:
        days = [0]
        for spec in self.specs:
            parameter = KINDS[spec.kind].lookback_days
            if parameter is not None:
                days.append(spec.params[parameter])
        return max(days)

    def _view(self, group: str, days: dict) -> PatientView:
        key = patient_of(group)
        history = []
        if self.history is not None and days and self._looks_back:
            since = min(days) - timedelta(days=self._lookback())
            # Per provider patient: another provider's events never count. The file's own claims
            # (and its voids) were handed to ``prefetch``: their earlier events are left out.
            history = self.history.events(key, provider_of(group), since, max(days))
        return PatientView(key=key, days=days, history=history, has_history_store=self.history is not None,
                           tables=self.tables)
    # -- end of the history plumbing ------------------------------------------------------------

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
        # A patient is evaluated only by the rules its codes can set off, and patients with the
        # same codes (most of them, in a practice's file) share the answer.
        # Trigger code sets may hold prefixes and ranges (not enumerable): each distinct set of
        # a patient's codes is matched against them once.
        always: list[int] = []
        triggered: list[tuple[int, CodeSet]] = []
        for position, spec in enumerate(self.specs):
            kind = KINDS[spec.kind]
            trigger = kind.trigger_codes(spec, self.book) if kind.trigger_codes is not None else None
            if trigger is None:
                always.append(position)
            else:
                triggered.append((position, trigger))
        plans: dict[frozenset[str], tuple[tuple[RuleSpec, Any], ...]] = {}
        kinds = [KINDS[spec.kind].evaluate for spec in self.specs]
        book = self.book
        if self.history is not None and self._looks_back:
            self.history.prefetch(self.index.patient_keys(), self.file_claims())
        if self.tables is not None:  # the edits among the file's codes, in one go
            self.tables.prefetch(frozenset(code for code in self.index.codes.values if isinstance(code, str)))
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
                positions.update(p for p, trigger in triggered if not trigger.isdisjoint(signature))
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
