"""The rewriter as it was before locators (pass 2 walked the claims a second way): the oracle
that ``test_rewrite_by_locator.py`` compares the locator rewriter against, byte for byte.

Kept verbatim from edi837 before issue 15 but for the imports; not used by edi837 itself.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from edi.report.model import FileReport
from edi.rewrite import format_amount
from edi.x12.reader import Reader
from edi.x12.segment import SegmentBatch

CLAIM_END_TAGS = (b"CLM", b"HL", b"SE", b"GE", b"IEA", b"ISA", b"GS", b"ST")


@dataclass(frozen=True, slots=True, kw_only=True)
class EditPlan:
    """What pass 1 decided: SV1 segment numbers to drop, codes to put in, claims touched."""

    drop: frozenset[int]
    replace: dict[int, str]
    claims: tuple[int, ...]  # CLM segment numbers of the claims with an edit, ascending
    spans: tuple[tuple[int, int], ...]  # (ST, SE) of each transaction set


@dataclass(slots=True)
class Change:
    """One changed segment, for ``--diff``: old body, new body (None when dropped)."""

    number: int
    old: bytes
    new: bytes | None


@dataclass(slots=True)
class RewriteResult:
    dropped: set[int] = field(default_factory=set)  # SV1 numbers of the lines left out
    replaced: set[int] = field(default_factory=set)  # SV1 numbers whose code was replaced
    changes: list[Change] = field(default_factory=list)
    claims_changed: int = 0


class _Line:
    __slots__ = ("bodies", "end", "lx_body", "lx_number", "lx_offset", "sv1_body", "sv1_number", "sv1_offset")

    def __init__(self, number: int, offset: int, body: bytes) -> None:
        self.lx_number, self.lx_offset, self.lx_body = number, offset, body
        self.sv1_number = 0
        self.sv1_offset = 0
        self.sv1_body = b""
        self.bodies: list[tuple[int, bytes]] = [(number, body)]  # the 2400 loop, for --diff
        self.end = 0


class _Claim:
    __slots__ = ("body", "current", "lines", "number", "offset")

    def __init__(self, number: int, offset: int, body: bytes) -> None:
        self.number, self.offset, self.body = number, offset, body
        self.lines: list[_Line] = []
        self.current: _Line | None = None


class Rewriter:
    """Pass 2: input chunks in, output chunks out (no I/O of its own)."""

    def __init__(self, plan: EditPlan, *, max_segment_length: int, max_elements: int) -> None:
        self.plan = plan
        self.result = RewriteResult()
        self._reader = Reader(max_segment_length=max_segment_length, max_elements=max_elements)
        self._pending = bytearray()
        self._pending_start = 0
        self._edits: list[tuple[int, int, bytes]] = []  # sorted when flushed
        self._claims = plan.claims
        self._claim: _Claim | None = None
        self._element = b"*"
        self._component = b":"
        self._span_starts = [st for st, _ in plan.spans]
        self._dropped_in: dict[int, int] = {}  # ST number -> segments dropped in that set
        self._se_numbers = {se: st for st, se in plan.spans}

    # -- driving ---------------------------------------------------------------------------
    def feed(self, chunk: bytes) -> bytes:
        self._pending += chunk
        self._reader.feed(chunk)
        for batch in self._reader.batches():
            self._process(batch)
        return self._flush(self._safe_offset())

    def end(self) -> bytes:
        self._reader.end()
        while batches := self._reader.batches():
            for batch in batches:
                self._process(batch)
        if self._claim is not None:
            self._close_claim(self._reader.consumed)
        return self._flush(self._pending_start + len(self._pending))

    def _safe_offset(self) -> int:
        if self._claim is not None:
            return self._claim.offset
        return self._reader.consumed

    def _flush(self, upto: int) -> bytes:
        """Input bytes before ``upto``, with the edits that lie there applied."""
        out = []
        position = self._pending_start
        pending = self._pending
        ready = [edit for edit in self._edits if edit[0] < upto]
        if ready:
            self._edits = [edit for edit in self._edits if edit[0] >= upto]
            for start, end, replacement in sorted(ready):
                out.append(pending[position - self._pending_start : start - self._pending_start])
                out.append(replacement)
                position = end
        if upto > position:
            out.append(pending[position - self._pending_start : upto - self._pending_start])
            position = upto
        del pending[: position - self._pending_start]
        self._pending_start = position
        return b"".join(out)

    # -- pass 2 ----------------------------------------------------------------------------
    def _process(self, batch: SegmentBatch) -> None:
        bodies, offsets, first = batch.bodies, batch.offsets, batch.first_number
        if not bodies:
            return
        if bodies[0].startswith(b"ISA"):
            self._element = bodies[0][3:4]
            self._component = bodies[0][-1:]
        last = first + len(bodies) - 1
        index = 0 if self._claim is not None else None
        position = bisect_right(self._claims, first - 1)
        while True:
            if index is None:
                if position >= len(self._claims) or self._claims[position] > last:
                    break
                index = self._claims[position] - first
                position += 1
                self._claim = _Claim(first + index, offsets[index], bodies[index])
                index += 1
            index = self._walk_claim(bodies, offsets, first, index)
            if index is None or index >= len(bodies):
                break
            index = None
        for se, st in self._se_numbers.items():
            if first <= se <= last and self._dropped_in.get(st):
                self._recount(bodies[se - first], offsets[se - first], se, st)

    def _walk_claim(self, bodies: list[bytes], offsets: list[int], first: int, index: int) -> int | None:
        """Follow the open claim from ``index``; the index after it ends, or len(bodies)."""
        claim = self._claim
        assert claim is not None
        element = self._element
        lx_key, sv1_key = b"LX" + element, b"SV1" + element
        while index < len(bodies):
            body = bodies[index]
            tag = body.partition(element)[0]
            if tag in CLAIM_END_TAGS:
                self._close_claim(offsets[index])
                return index
            if body.startswith(lx_key):
                if claim.current is not None:
                    claim.current.end = offsets[index]
                claim.current = _Line(first + index, offsets[index], body)
                claim.lines.append(claim.current)
            elif claim.current is not None:
                claim.current.bodies.append((first + index, body))
                if body.startswith(sv1_key) and not claim.current.sv1_number:
                    claim.current.sv1_number = first + index
                    claim.current.sv1_offset = offsets[index]
                    claim.current.sv1_body = body
            index += 1
        return len(bodies)

    def _close_claim(self, end_offset: int) -> None:
        claim = self._claim
        assert claim is not None
        self._claim = None
        if claim.current is not None:
            claim.current.end = end_offset
        element, component = self._element, self._component
        drop, replace_codes = self.plan.drop, self.plan.replace
        kept = [line for line in claim.lines if line.sv1_number not in drop]
        if not kept:  # never empty a claim (the engine flags instead; this is the safety net)
            kept = claim.lines[:1]
        dropped = [line for line in claim.lines if line not in kept]
        edits: list[tuple[int, int, bytes]] = []
        changes: list[Change] = []
        if dropped:
            total = Decimal(0)
            for line in kept:
                charge = line.sv1_body.split(element)[2:3]
                try:
                    total += Decimal(charge[0].decode("latin-1")) if charge and charge[0] else 0
                except InvalidOperation:
                    pass
            fields = claim.body.split(element)
            if len(fields) > 2:
                start = claim.offset + len(fields[0]) + len(fields[1]) + 2
                new_amount = format_amount(total, fields[2])
                if new_amount != fields[2]:
                    edits.append((start, start + len(fields[2]), new_amount))
                    fields[2] = new_amount
                    changes.append(Change(claim.number, claim.body, element.join(fields)))
        number = 0
        for line in claim.lines:
            if line in dropped:
                edits.append((line.lx_offset, line.end, b""))
                changes.extend(Change(number_, body, None) for number_, body in line.bodies)
                self.result.dropped.add(line.sv1_number)
                st = self._transaction_of(line.lx_number)
                self._dropped_in[st] = self._dropped_in.get(st, 0) + len(line.bodies)
                continue
            number += 1
            old_number = line.lx_body[len(b"LX") + 1 :]
            if dropped and old_number != str(number).encode():
                new_body = b"LX" + element + str(number).encode()
                edits.append((line.lx_offset, line.lx_offset + len(line.lx_body), new_body))
                changes.append(Change(line.lx_number, line.lx_body, new_body))
            code = replace_codes.get(line.sv1_number)
            if code is not None:
                elements = line.sv1_body.split(element)
                composite = elements[1].split(component)
                if len(composite) > 1:
                    composite[1] = code.encode("latin-1")
                    elements[1] = component.join(composite)
                    new_body = element.join(elements)
                    edits.append((line.sv1_offset, line.sv1_offset + len(line.sv1_body), new_body))
                    changes.append(Change(line.sv1_number, line.sv1_body, new_body))
                    self.result.replaced.add(line.sv1_number)
        if edits:
            self.result.claims_changed += 1
        self._edits.extend(edits)
        self.result.changes.extend(changes)

    def _transaction_of(self, number: int) -> int:
        position = bisect_right(self._span_starts, number) - 1
        return self._span_starts[position] if position >= 0 else 0

    def _recount(self, body: bytes, offset: int, se: int, st: int) -> None:
        element = self._element
        fields = body.split(element)
        if len(fields) < 2:
            return
        count = str(se - st + 1 - self._dropped_in[st]).encode()
        start = offset + len(fields[0]) + 1
        self._edits.append((start, start + len(fields[1]), count))
        self.result.changes.append(Change(se, body, element.join([fields[0], count, *fields[2:]])))


def rewrite(chunks: Iterable[bytes], plan: EditPlan, *, max_segment_length: int,
            max_elements: int) -> tuple[Iterator[bytes], RewriteResult]:
    """Pass 2 as a generator of output chunks, and the result it fills as it goes."""
    rewriter = Rewriter(plan, max_segment_length=max_segment_length, max_elements=max_elements)

    def run() -> Iterator[bytes]:
        for chunk in chunks:
            out = rewriter.feed(chunk)
            if out:
                yield out
        out = rewriter.end()
        if out:
            yield out

    return run(), rewriter.result


def legacy_plan(report: FileReport) -> EditPlan:
    drop = {f.segment for f in report.findings if f.action == "drop_line"}
    replace_codes = {f.segment: f.replacement for f in report.findings
                     if f.action == "replace_code" and f.replacement and f.segment not in drop}
    claims = sorted({f.claim_segment for f in report.findings
                     if f.segment in drop or f.segment in replace_codes})
    spans = tuple((span.st, span.se) for span in report.spans)
    return EditPlan(drop=frozenset(drop), replace=replace_codes, claims=tuple(claims), spans=spans)


def legacy_fix_bytes(data: bytes, report: FileReport) -> bytes:
    """Pass 2 of the old rewriter over ``data`` with the findings of ``report``."""
    if report.errors:
        return data
    output, _ = rewrite([data], legacy_plan(report), max_segment_length=65_536, max_elements=1_024)
    return b"".join(output)
