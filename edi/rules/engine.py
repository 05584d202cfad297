"""The rules engine: index the claims of pass 1, then evaluate the selected rules.

Findings are deterministic: same input, same findings, in the same order (by the line's
segment number, then rule ID). Actions are resolved here, once, for annotate and rewrite alike:
the payer scope of the line's claim picks the rule's action, and a ``drop_line`` that would
leave a claim without lines is turned into a ``flag`` on the claim's first such line ("an 837P
claim needs at least one line": pump-rules.md).

How the rules are evaluated (issue 16: the rules' share of ``validate``). A patient whose days
stand alone (no RD8 span line) is evaluated a day at a time (``_DayByDay``): each day is keyed
by what the rules read of its lines, and the DAY kinds (``edi.rules.kinds.DAY``) run once per
distinct key in the file, their verdict reused for every day with that key; DATED_DAY kinds run
on the days holding their trigger codes, PATIENT kinds on the whole patient when enough days
hold them. A patient with a span line is evaluated as before, every rule its codes can set off
over all its days. Lines (``LineRecord``) are built only for the days a rule must look at and
for the lines reported. The findings are the same, byte for byte (JSON reports of the sample,
both public corpora, s20000, s50000, random files with spans, modifiers, voids, history and
CMS tables, before and after).

Measured (instructions, ``valgrind --tool=callgrind``, 5,000 claims of the bench generator,
findings minus pass 1 with the index: ``/work/bench-files/s5000.x12``): findings 366 M -> 141 M.
CPU at 20k (``/work/bench-files/phases.py /work/bench-files/s20000.x12 5``, best of 5, before
and after run in turn on a loaded 2-core machine): findings 0.30-0.33 s -> 0.11 s. Of what is
left, about a third is grouping the packed records by day (``PatientDayIndex.days_by_ordinal``),
a fifth building the findings (``finding``), and PMP004 over the patients with two initiation
days in its window.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import date, timedelta
from itertools import pairwise
from typing import Any

from edi.claims.model import Claim, ClaimLocator
from edi.errors import UsageError
from edi.records import Record
from edi.rules.book import SCOPES, RuleBook, RuleSpec, history_codes_in
from edi.rules.codes import EMPTY, CodeSet
from edi.rules.findings import Finding
from edi.rules.index import LineRecord, PatientDay, PatientDayIndex, patient_of, provider_of
from edi.rules.kinds import (
    DATED_DAY,
    DAY,
    KINDS,
    EventToRecord,
    FileClaim,
    HistoryEvent,
    Hit,
    Kind,
    PatientView,
    PumpHistory,
)
from edi.rules.ncc import ADD_ON, CodingTables, check_spec, is_active, table_kind
from edi.rules.selection import is_selected, unknown_prefixes

ONLY_LINE_NOTE = " (not dropped: it is the claim's last remaining line; review the claim)"


class _Fields(dict):
    def __missing__(self, key: str) -> str:
        return "?"


def _format(template: str, values: dict[str, Any]) -> str:
    return template.format_map(_Fields({k: v for k, v in values.items() if v is not None}))


def check_selection(book: RuleBook, select: Iterable[str] = (), ignore: Iterable[str] = ()) -> None:
    """What an engine refuses before any file is read, without building one (front ends call
    it at start-up): a --select/--ignore prefix that names no rule, a table rule's parameters."""
    unknown = unknown_prefixes((s.id for s in book.rules), (*select, *ignore))
    if unknown:
        raise UsageError(f"no rule ID starts with {', '.join(unknown)}; `edi837 rules` lists them",
                         code="UNKNOWN_RULE_PREFIX")
    for spec in book.rules:
        if table_kind(spec) is not None:
            check_spec(spec)


class RuleEngine:
    def __init__(
        self,
        book: RuleBook,
        *,
        select: Iterable[str] = (),
        ignore: Iterable[str] = (),
        history: PumpHistory | None = None,
        tables: CodingTables | None = None,
        locators: bool = True,
    ) -> None:
        """``locators=False``: keep no claim locators (a report that nothing will rewrite, such as
        ``validate``'s: ~13% of the index's work at 5k claims)."""
        select, ignore = tuple(select), tuple(ignore)
        check_selection(book, select, ignore)
        self.book = book
        self._distinct_modifiers = book.code_sets.get("distinct_modifiers", EMPTY)
        # A table-driven rule (NCC) without its tables is inactive (`edi837 rules` says so).
        self.specs: tuple[RuleSpec, ...] = tuple(s for s in book.rules if is_selected(s.id, select, ignore)
                                                 and is_active(s, tables))
        self.history = history
        self.looks_back = history is not None and self._uses_history()  # a selected rule reads the history
        self.tables = tables if any(table_kind(s) is not None for s in self.specs) else None
        # With tables, every code they name is a code some rule looks at: the index keeps its lines.
        self._relevant = (book.relevant_codes if self.tables is None
                          else CodeSet.union(book.relevant_codes, CodeSet(self.tables.codes())))
        self.index = PatientDayIndex(self._relevant, book.medicare_filing, self._editable_codes() if locators else {},
                                     medicaid_filing=book.medicaid_filing)

    def add(self, claim: Claim) -> None:
        self.index.add(claim)

    def _editable_codes(self) -> dict[str, CodeSet]:
        """Per payer scope, the codes of the lines a selected rule may drop or recode there (its
        trigger codes: every kind reports on lines of those); a rule that only flags in a scope
        edits nothing in it (PMP002 and PMP006 drop lines of Medicare claims only)."""
        codes: dict[str, list[CodeSet]] = {scope: [] for scope in SCOPES}
        for spec in self.specs:
            kind = KINDS[spec.kind]
            trigger = kind.trigger_codes(spec, self.book) if kind.trigger_codes is not None else None
            for scope in SCOPES:
                if spec.action_for(scope) != "flag":
                    codes[scope].append(self._relevant if trigger is None else trigger)
        return {scope: CodeSet.union(EMPTY, *sets) for scope, sets in codes.items()}

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
        history = self.history_around(group, min(days), max(days)) if days else []
        return PatientView(key=patient_of(group), days=days, history=history,
                           has_history_store=self.history is not None, tables=self.tables)

    def history_around(self, group: str, first: date, last: date) -> list[HistoryEvent]:
        """The group's history events around its days ``first``..``last`` (none without a store,
        or when no selected rule looks back)."""
        if self.history is None or not self.looks_back:
            return []
        # Per provider patient: another provider's events never count. The file's own claims
        # (and its voids) were handed to ``prefetch``: their earlier events are left out.
        return self.history.events(patient_of(group), provider_of(group), first - timedelta(days=self._lookback()), last)
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

    def finding(self, spec: RuleSpec, hit: Hit) -> Finding:
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
        has_store = self.history is not None
        # A rule that cannot fire in this run (PMP011 without a history store) is left out.
        rules = [_Rule(spec, kind, None if kind.trigger_codes is None else kind.trigger_codes(spec, self.book))
                 for spec, kind in ((spec, KINDS[spec.kind]) for spec in self.specs)
                 if kind.applies is None or kind.applies(spec, has_store)]
        if self.history is not None and self.looks_back:
            self.history.prefetch(self.index.patient_keys(), self.file_claims())
        if self.tables is not None:  # the edits among the file's codes, in one go
            self.tables.prefetch(self.index.codes())
        days = _DayByDay(self, rules)
        for key, entries in self.index:
            by_ordinal = self.index.days_by_ordinal(entries)
            if by_ordinal is None:  # a span line stands on several days: the whole patient at once
                self._evaluate_patient(key, entries, rules, found, claim_sizes)
            else:
                days.evaluate(key, by_ordinal, found, claim_sizes)
        # A span line stands on several days and may set a rule off on each: reported once.
        unique: dict[tuple[str, int], Finding] = {}
        for finding in found:
            unique.setdefault((finding.rule, finding.segment), finding)
        found = list(unique.values())
        found = _keep_one_line_per_claim(found, claim_sizes)
        found.sort(key=lambda f: (f.segment, f.rule, f.message))
        return tuple(found)

    def _evaluate_patient(self, key: str, entries: bytearray, rules: list[_Rule],
                          found: list[Finding], claim_sizes: dict[int, int]) -> None:
        """Every rule its codes can set off, over all the group's days (a group with a span line:
        what a day holds depends on the other days)."""
        days = self.index.days_of(entries)
        codes: set[str] = set()
        for day in days.values():
            codes |= day.codes
        plan = [rule for rule in rules if rule.trigger is None or not rule.trigger.isdisjoint(codes)]
        if not plan:
            return
        view = self._view(key, days)
        for rule in plan:
            for hit in rule.kind.evaluate(rule.spec, self.book, view):
                self.report(rule.spec, hit, found, claim_sizes)

    def report(self, spec: RuleSpec, hit: Hit, found: list[Finding], claim_sizes: dict[int, int]) -> None:
        """Add the hit's finding to ``found`` and note its claim's line count (a drop must not
        empty a claim: ``_keep_one_line_per_claim``)."""
        found.append(self.finding(spec, hit))
        claim_sizes[hit.line.claim_segment] = hit.line.claim_lines


class _Rule(Record):
    spec: RuleSpec
    kind: Kind
    trigger: CodeSet | None  # the codes without which it cannot fire (None: it may on any day)


# What a kind's hit on a day is worth for every day with the same lines: the rule (its index),
# where the line stands among the day's records, the replacement, the message's values, the action.
_DayHit = tuple[int, int, str | None, dict[str, Any], str | None]
_VERDICTS_KEPT = 1 << 14  # distinct days remembered: the memo of one file stays bounded


class _Verdict(Record):
    """What the rules make of a day's lines, whatever its date and patient."""

    hits: tuple[_DayHit, ...]  # of the DAY rules, the patient having no history events
    dated: tuple[int, ...]  # the DATED_DAY rules whose trigger codes the day holds
    recheck: tuple[int, ...]  # the DAY rules with history codes whose trigger codes the day holds
    patient: tuple[int, ...]  # the PATIENT rules whose trigger codes the day holds


_NOTHING = _Verdict((), (), (), ())  # no rule has anything to do on the day: most days of a file


class _DayByDay:
    """Evaluates a group whose days stand alone (no span line) a day at a time, a DAY rule once
    per distinct day: a day is keyed by what the rules read of its lines, in file order
    (``LineShape.facts``), and what the DAY rules found on the first day of a key holds for
    every day of that key (their hits follow from those facts alone: ``edi.rules.kinds.DAY``).
    A DATED_DAY rule is evaluated on the days holding its trigger codes, one day at a time; a
    PATIENT rule over all the group's days, when enough days hold its trigger codes. A day's
    lines are built (``LineRecord``) only for those evaluations and for the lines reported.

    Decisions (20k claims, ``/work/bench-files/phases.py``): in a practice's file most
    patient-days repeat a few visit types, and no rule fires on most of them: the findings
    phase went from building every day of every patient and running every rule on it to a
    tuple and a dict lookup per day. Which rules were evaluated on a span-free group never
    changes the findings: a line stands on one day, so (rule, line) is found once whatever the
    order, and the engine sorts the findings.
    """

    def __init__(self, engine: RuleEngine, rules: list[_Rule]) -> None:
        self.engine, self.index, self.rules = engine, engine.index, rules
        self.verdicts: dict[tuple[int, ...], _Verdict] = {}
        self.has_store = engine.history is not None
        self.looks_back = engine.looks_back
        # PATIENT rules without trigger codes run on every group, as the engine runs them.
        self.always = tuple(number for number, rule in enumerate(rules)
                            if rule.kind.reach not in (DAY, DATED_DAY) and rule.trigger is None)

    def _verdict(self, group: str, day_date: date, records: list[tuple[int, ...]], day: PatientDay) -> _Verdict:
        hits: list[_DayHit] = []
        dated: list[int] = []
        recheck: list[int] = []
        patient: list[int] = []
        position = {}
        lines = iter(day.lines)
        for number, record in enumerate(records):
            if record[4]:  # a line the rules read (its record's shape), in order with day.lines
                position[id(next(lines))] = number
        view = PatientView(key=patient_of(group), days={day_date: day}, history=[],
                           has_history_store=self.has_store, tables=self.engine.tables)
        for number, rule in enumerate(self.rules):
            if rule.trigger is not None and rule.trigger.isdisjoint(day.codes):
                continue
            reach = rule.kind.reach
            if reach == DAY:
                hits.extend((number, position[id(hit.line)], hit.replacement, hit.values, hit.action)
                            for hit in rule.kind.evaluate(rule.spec, self.engine.book, view))
                if rule.kind.history_codes:
                    recheck.append(number)
            elif reach == DATED_DAY:
                dated.append(number)
            else:
                patient.append(number)
        if not (hits or dated or recheck or patient):
            return _NOTHING
        return _Verdict(tuple(hits), tuple(dated), tuple(recheck), tuple(patient))

    def evaluate(self, group: str, by_ordinal: dict[int, tuple[list[int], list[tuple[int, ...]]]],
                 found: list[Finding], claim_sizes: dict[int, int]) -> None:
        engine, index, rules, verdicts = self.engine, self.index, self.rules, self.verdicts
        built: dict[int, PatientDay] = {}  # the days whose lines were built, by date ordinal
        history: list[HistoryEvent] | None = None if self.looks_back else []  # fetched when first needed
        patient_dates: dict[int, list[int]] = {}  # per PATIENT rule, the ordinals of its days
        for ordinal, (facts, records) in by_ordinal.items():
            key = tuple(facts)
            verdict = verdicts.get(key)
            if verdict is None:
                day = built[ordinal] = index.day_of(records)
                verdict = self._verdict(group, index.date_of(ordinal), records, day)
                if len(verdicts) >= _VERDICTS_KEPT:
                    verdicts.clear()
                verdicts[key] = verdict
            if verdict is _NOTHING:
                continue
            recheck = verdict.recheck
            if recheck:
                if history is None:
                    history = self._history(group, by_ordinal)
                if not history:
                    recheck = ()
            for number, position, replacement, values, action in verdict.hits:
                if number not in recheck:
                    engine.report(rules[number].spec, Hit(index.line(records[position]), replacement, values, action),
                                  found, claim_sizes)
            if verdict.dated or recheck:
                if history is None:
                    history = self._history(group, by_ordinal)
                day = built.get(ordinal) or built.setdefault(ordinal, index.day_of(records))
                view = PatientView(key=patient_of(group), days={index.date_of(ordinal): day}, history=history,
                                   has_history_store=self.has_store, tables=engine.tables)
                self._run((*verdict.dated, *recheck), view, found, claim_sizes)
            for number in verdict.patient:
                patient_dates.setdefault(number, []).append(ordinal)
        for number in self.always:
            patient_dates.setdefault(number, [])
        if not patient_dates:
            return
        if history is None:
            history = self._history(group, by_ordinal)
        plan = sorted(number for number, ordinals in patient_dates.items() if self._may_fire(number, ordinals, history))
        if plan:
            days = {index.date_of(ordinal): built.get(ordinal) or index.day_of(records)
                    for ordinal, (_, records) in by_ordinal.items()}
            view = PatientView(key=patient_of(group), days=days, history=history,
                               has_history_store=self.has_store, tables=engine.tables)
            self._run(plan, view, found, claim_sizes)

    def _history(self, group: str, by_ordinal: dict[int, Any]) -> list[HistoryEvent]:
        """The group's history events around its first and last day (fetched once per group)."""
        if not by_ordinal:
            return []
        return self.engine.history_around(group, self.index.date_of(min(by_ordinal)),
                                          self.index.date_of(max(by_ordinal)))

    def _may_fire(self, number: int, ordinals: list[int], history: list[HistoryEvent]) -> bool:
        """Whether a PATIENT rule may fire on a group whose days with its trigger codes are
        ``ordinals``: with ``fewest_dates`` of them and of the history's dates, and with
        ``dates_within`` two of them that many days apart at most."""
        rule = self.rules[number]
        if number in self.always:
            return True
        kind = rule.kind
        if len(ordinals) + len(history) < kind.fewest_dates:
            return False
        if kind.dates_within is None:
            return True
        window = rule.spec.params[kind.dates_within]
        dates = sorted({*ordinals, *(event.date.toordinal() for event in history)})
        return any(later - earlier <= window for earlier, later in pairwise(dates))

    def _run(self, numbers: Iterable[int], view: PatientView, found: list[Finding], claim_sizes: dict[int, int]) -> None:
        book, engine = self.engine.book, self.engine
        for number in numbers:
            spec = self.rules[number].spec
            for hit in self.rules[number].kind.evaluate(spec, book, view):
                engine.report(spec, hit, found, claim_sizes)


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
