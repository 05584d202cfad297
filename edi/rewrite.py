"""Rewrite mode: apply the findings' ``drop_line`` and ``replace_code`` actions to the file.

Two passes over the input, no more: pass 1 is ``validate`` (findings known only once every
claim was read: a same-day conflict can span claims far apart); it keeps, beside the findings,
the locators of the claims to edit (``ClaimLocator``: the claim's and each 2400 loop's byte
ranges, the CLM02, LX01 and SV101-2 positions) and of every transaction set (SE01). From them
``plan_edits`` works out the edits, as values:

* ``DropLoop``: a dropped line's 2400 loop, from LX up to the segment that follows the loop;
* ``ReplaceCode``: SV101-2 of a line, modifiers, units and charge untouched;
* ``Recount``: what the drops change, each written anew in place: the following LX01 of the
  claim renumbered 1..n, CLM02 of a claim that lost lines (the sum of its remaining SV102, with
  the input's number of decimal places, or as few as the sum needs), SE01 of every transaction
  set that lost segments.

Pass 2 (``rewrite``) copies the input to the output applying the edits by byte range: it does
not read segments or follow loops again, so only what an edit names changes and everything
else, delimiters, line breaks and indentation included, is copied byte for byte. Memory: the
input bytes from the next edit's start to its end (a claim's loop at most), plus the plan.

A dropped line wins over a replacement on the same line; a claim never loses its last line (the
engine has already turned that drop into a flag; the plan keeps the first line as a safety net).
Files with X12 errors are not rewritten (the front end refuses them: "never a silent rewrite
of a malformed file").
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal

from edi.claims.model import ClaimLocator, LineLocator
from edi.records import Record
from edi.report.model import FileReport
from edi.rules.book import RuleBook
from edi.rules.findings import Finding
from edi.x12.envelope import TransactionSpan

_WHITESPACE = b" \t\r\n\x0b\x0c"  # what the reader takes as a segment's prefix


class DropLoop(Record):
    """Leave out a 2400 loop: ``line``'s bytes from its LX to the segment after the loop."""

    line: LineLocator


class ReplaceCode(Record):
    """Put ``code`` in SV101-2 of ``line``."""

    line: LineLocator
    code: str


class Recount(Record):
    """Write ``value`` over bytes ``start..end`` of segment ``segment`` (LX01, CLM02, SE01),
    whose body stands at ``body_start..body_end``."""

    segment: int
    body_start: int
    body_end: int
    start: int
    end: int
    value: bytes


Edit = DropLoop | ReplaceCode | Recount


class EditPlan(Record):
    """What pass 1 decided, by locator: the edits in file order, and what they do."""

    drop: frozenset[int]  # SV1 segment numbers of the lines to drop
    replace: dict[int, str]  # SV1 segment number -> code to put in
    claims: tuple[int, ...]  # CLM segment numbers of the claims with an edit, ascending
    spans: tuple[TransactionSpan, ...]  # each transaction set, for the SE01 recount
    edits: tuple[Edit, ...] = ()
    dropped: frozenset[int] = frozenset()  # the lines the edits leave out
    replaced: frozenset[int] = frozenset()  # the lines whose code they replace
    claims_changed: int = 0


class Change(Record):
    """One changed segment, for ``--diff``: old body, new body (None when dropped)."""

    number: int
    old: bytes
    new: bytes | None


class RewriteResult:
    """What pass 2 did (filled while its output is read)."""

    __slots__ = ("changes", "claims_changed", "dropped", "replaced")

    def __init__(self) -> None:
        self.dropped: set[int] = set()  # SV1 numbers of the lines left out
        self.replaced: set[int] = set()  # SV1 numbers whose code was replaced
        self.changes: list[Change] = []
        self.claims_changed = 0


def plan_edits(report: FileReport) -> EditPlan:
    """The edits the findings of ``report`` call for, placed by its locators."""
    drop = {f.segment for f in report.findings if f.action == "drop_line"}
    replace_codes = {f.segment: f.replacement for f in report.findings
                     if f.action == "replace_code" and f.replacement and f.segment not in drop}
    claims = sorted({f.claim_segment for f in report.findings
                     if f.segment in drop or f.segment in replace_codes})
    edits: list[Edit] = []
    dropped: set[int] = set()
    replaced: set[int] = set()
    changed = 0
    dropped_in: dict[int, int] = {}  # ST number -> segments dropped in that transaction set
    for claim in report.locators:
        claim_edits = _claim_edits(claim, drop, replace_codes)
        if claim_edits:
            changed += 1
        for edit in claim_edits:
            if isinstance(edit, DropLoop):
                dropped.add(edit.line.segment)
                count = edit.line.last_segment - edit.line.first_segment + 1
                dropped_in[claim.transaction_segment] = dropped_in.get(claim.transaction_segment, 0) + count
            elif isinstance(edit, ReplaceCode):
                replaced.add(edit.line.segment)
        edits += claim_edits
    for span in report.spans:
        if dropped_in.get(span.st) and span.se01_start >= 0:
            segments = str(span.se - span.st + 1 - dropped_in[span.st]).encode()
            edits.append(Recount(span.se, span.se_offset, span.se_end, span.se01_start, span.se01_end, segments))
    edits.sort(key=_start)
    return EditPlan(drop=frozenset(drop), replace=replace_codes, claims=tuple(claims), spans=report.spans,
                    edits=tuple(edits), dropped=frozenset(dropped), replaced=frozenset(replaced),
                    claims_changed=changed)


def _claim_edits(claim: ClaimLocator, drop: set[int], replace_codes: dict[int, str]) -> list[Edit]:
    kept = [line for line in claim.lines if line.segment not in drop]
    if not kept:  # never empty a claim (the engine flags instead; this is the safety net)
        kept = list(claim.lines[:1])
    edits: list[Edit] = []
    any_dropped = len(kept) < len(claim.lines)
    if any_dropped and claim.total_charge_at is not None:
        total = sum((line.charge for line in kept if line.charge is not None), Decimal(0))
        new_amount = format_amount(total, claim.total_charge_text)
        if new_amount != claim.total_charge_text:
            start, end = claim.total_charge_at
            edits.append(Recount(claim.segment, claim.offset, claim.body_end, claim.offset + start,
                                 claim.offset + end, new_amount))
    number = 0
    for line in claim.lines:
        if line not in kept:
            edits.append(DropLoop(line))
            continue
        number += 1
        lx01_start = line.lx_offset + len(b"LX*")
        # LX01 is rewritten unless it already reads ``number`` exactly (no leading zeros).
        if any_dropped and not (line.lx == number and line.lx_end - lx01_start == len(str(number))):
            edits.append(Recount(line.first_segment, line.lx_offset, line.lx_end, lx01_start, line.lx_end,
                                 str(number).encode()))
        code = replace_codes.get(line.segment)
        if code is not None and line.procedure_code_at is not None:
            edits.append(ReplaceCode(line, code))
    return edits


def _start(edit: Edit) -> int:
    if isinstance(edit, Recount):
        return edit.start
    return edit.line.lx_offset if isinstance(edit, DropLoop) else edit.line.service_offset


def mark_applied(report: FileReport, result: RewriteResult) -> FileReport:
    """The report with ``applied: true`` on what the rewrite did (``line``/``segment`` stay the input's)."""
    def applied(finding: Finding) -> Finding:
        if finding.action == "drop_line" and finding.segment in result.dropped:
            return finding._replace(applied=True)
        if finding.action == "replace_code" and finding.segment in result.replaced:
            return finding._replace(applied=True)
        return finding

    return report.with_findings(tuple(applied(f) for f in report.findings))


def format_amount(total: Decimal, original: bytes) -> bytes:
    """``total`` with the original amount's number of decimal places when it fits exactly."""
    text = original.decode("latin-1").strip()
    places = len(text) - text.index(".") - 1 if "." in text else 0
    quantum = Decimal(1).scaleb(-places)
    if total == total.quantize(quantum):
        return f"{total.quantize(quantum):f}".encode("ascii")
    return f"{total.normalize():f}".encode("ascii")


class _Splice(Record):
    """An edit as pass 2 applies it: bytes ``start..end`` become ``replacement``; the bytes of
    ``seen_start..seen_end`` (the segment or loop it changes) make its ``Change`` records."""

    seen_start: int
    seen_end: int
    start: int
    end: int
    replacement: bytes
    edit: Edit


def _splice(edit: Edit) -> _Splice:
    if isinstance(edit, DropLoop):
        line = edit.line
        return _Splice(line.lx_offset, line.end_offset, line.lx_offset, line.end_offset, b"", edit)
    if isinstance(edit, ReplaceCode):
        line = edit.line
        assert line.procedure_code_at is not None
        start, end = line.procedure_code_at
        return _Splice(line.service_offset, line.service_end, line.service_offset + start, line.service_offset + end,
                       edit.code.encode("latin-1"), edit)
    return _Splice(edit.body_start, edit.body_end, edit.start, edit.end, edit.value, edit)


class Rewriter:
    """Pass 2: input chunks in, output chunks out, the plan's edits applied (no I/O of its own)."""

    def __init__(self, plan: EditPlan) -> None:
        self.plan = plan
        self.result = RewriteResult()
        self.result.claims_changed = plan.claims_changed
        self._splices = [_splice(edit) for edit in plan.edits]
        self._next = 0  # the next splice to apply
        self._pending = bytearray()  # input bytes from ``_pending_start`` not yet written
        self._pending_start = 0

    def feed(self, chunk: bytes) -> bytes:
        self._pending += chunk
        return self._apply(final=False)

    def end(self) -> bytes:
        return self._apply(final=True)

    def _apply(self, *, final: bool) -> bytes:
        pending, base = self._pending, self._pending_start
        available = base + len(pending)
        out: list[bytes | bytearray] = []
        position = base
        splices = self._splices
        while self._next < len(splices):
            splice = splices[self._next]
            if splice.seen_end > available and not final:
                break
            out.append(pending[position - base : splice.start - base])
            out.append(splice.replacement)
            self._record(splice, bytes(pending[splice.seen_start - base : splice.seen_end - base]))
            position = splice.end
            self._next += 1
        # What lies before the next splice is final; the splice's own bytes wait for the rest.
        upto = available if self._next >= len(splices) else min(available, splices[self._next].seen_start)
        if upto > position:
            out.append(pending[position - base : upto - base])
            position = upto
        del pending[: position - base]
        self._pending_start = position
        return b"".join(out)

    def _record(self, splice: _Splice, seen: bytes) -> None:
        edit, result = splice.edit, self.result
        if isinstance(edit, DropLoop):
            result.dropped.add(edit.line.segment)
            # The loop's bytes: each segment's body, ended by the terminator that follows the LX.
            terminator = seen[edit.line.lx_end - edit.line.lx_offset : edit.line.lx_end - edit.line.lx_offset + 1]
            pieces = seen.split(terminator) if terminator else [seen]
            bodies = [piece.lstrip(_WHITESPACE) for piece in pieces]
            count = edit.line.last_segment - edit.line.first_segment + 1
            result.changes.extend(Change(edit.line.first_segment + index, body, None)
                                  for index, body in enumerate(bodies[:count]))
            return
        if isinstance(edit, ReplaceCode):
            result.replaced.add(edit.line.segment)
            number = edit.line.segment
        else:
            number = edit.segment
        start, end = splice.start - splice.seen_start, splice.end - splice.seen_start
        result.changes.append(Change(number, seen, seen[:start] + splice.replacement + seen[end:]))


def rewrite(chunks: Iterable[bytes], plan: EditPlan, *, max_segment_length: int = 0,
            max_elements: int = 0) -> tuple[Iterator[bytes], RewriteResult]:
    """Pass 2 as a generator of output chunks, and the result it fills as it goes.

    The limits are pass 1's (this pass reads no segment); they stay in the signature for the
    front ends that pass them."""
    del max_segment_length, max_elements  # pass 1's bounds: this pass reads no segment
    rewriter = Rewriter(plan)

    def run() -> Iterator[bytes]:
        for chunk in chunks:
            out = rewriter.feed(chunk)
            if out:
                yield out
        out = rewriter.end()
        if out:
            yield out

    return run(), rewriter.result


def fix_bytes(data: bytes, book: RuleBook, *, select: Iterable[str] = (), ignore: Iterable[str] = ()) -> bytes:
    """Both passes over an in-memory input (tests, examples): the rewritten bytes."""
    from edi.pipeline import Limits, validate
    from edi.rules.engine import RuleEngine

    limits = Limits()
    report = validate([data], name="-", engine=RuleEngine(book, select=select, ignore=ignore), limits=limits)
    if report.errors:
        return data
    output, _ = rewrite([data], plan_edits(report))
    return b"".join(output)
