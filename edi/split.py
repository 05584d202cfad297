"""The held-claim split: one 837P stream in, two out (claims passed on, claims held for a person).

``fix --hold`` runs this over the corrected file as pass 2 writes it (no third read of the
input). Which claims are held was decided in pass 1 (``held_claims``: a claim with an
error-severity finding that the rewrite does not apply); the splitter is told their CLM
segment numbers *in the corrected file* (``output_numbers`` shifts them past the dropped loops).

Each output is a valid 837P of its own:

* the envelope is the input's: ISA, GS, ST and their control numbers are copied; GE01, IEA01
  and SE01 are recounted for what the output holds; a transaction set or functional group that
  would hold no claim is left out of that output;
* a claim (CLM up to the next HL, CLM or SE) is copied byte for byte, and so is the context it
  needs above it (the transaction header, the 2000A/2000B/2000C loops of its HL chain), each
  written once per transaction set of that output, before its first claim;
* HL01 and HL02 are renumbered 1..n per transaction set of each output (the guide and pyx12
  require HL01 to count the HL segments in order); nothing else of a context segment changes.

A transaction set with no claim (nothing to hold) goes to the forward output whole. An HL loop
with no claim under it, in a transaction set that has claims, is in neither output (the guide
does not allow one; the walker reports it as an X12 error and the file is refused before this
runs). Memory: the current transaction header and HL chain, and the current segment.

The delimiters are read from the first ISA; a file whose later interchanges change them is
split with the first one's (the reader refuses such files before this runs).
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable

from edi.records import Record
from edi.report.model import FileReport
from edi.rules.findings import Finding

FORWARD, HELD = 0, 1
_WHITESPACE = b" \t\r\n\x0b\x0c"
_ISA_LENGTH = 106  # ISA is fixed length: its 106th byte is the segment terminator
SEVERITY_RANK = {"error": 2, "warning": 1, "info": 0}


def held_claims(findings: Iterable[Finding], applied: frozenset[int] | set[int], *,
                severity: str = "error") -> frozenset[int]:
    """CLM segment numbers (input) of the claims to hold: a finding of ``severity`` or worse
    that the rewrite does not apply (``applied``: the SV1 numbers it drops or recodes)."""
    least = SEVERITY_RANK[severity]
    return frozenset(f.claim_segment for f in findings
                     if SEVERITY_RANK.get(f.severity, 0) >= least and not _applies(f, applied))


def _applies(finding: Finding, applied: frozenset[int] | set[int]) -> bool:
    return finding.action in ("drop_line", "replace_code") and finding.segment in applied


def output_numbers(held: Iterable[int], drops: Iterable[tuple[int, int]]) -> frozenset[int]:
    """The held CLM numbers in the corrected file: ``drops`` (first segment, segments) are the
    loops left out; a claim moves up by the segments dropped before it."""
    ordered = sorted(drops)
    starts = [first for first, _ in ordered]
    before = [0]
    for _, count in ordered:
        before.append(before[-1] + count)
    return frozenset(number - before[bisect_left(starts, number)] for number in held)


def mark_held(report: FileReport, held: frozenset[int]) -> FileReport:
    """The report with ``held`` on the findings of held claims and the held-claim count."""
    findings = tuple(f._replace(held=f.claim_segment in held) for f in report.findings)
    return report._replace(findings=findings, held_claims=len(held))


def _marks(terminator: bytes, separator: bytes) -> re.Pattern[bytes]:
    """Where a segment that opens or closes something starts: a terminator, whitespace, the tag."""
    tags = b"I(?:SA|EA)|G[SE]|S[TE]|HL|CLM"  # ISA IEA GS GE ST SE HL CLM, by first letter
    return re.compile(re.escape(terminator) + b"[ \\t\\r\\n\\x0b\\x0c]*(?:" + tags + b")" + re.escape(separator))


class _Block:
    """One HL loop's context segments (HL up to its first claim or child), and where it went."""

    __slots__ = ("hl", "level", "parent", "pieces", "renumbered")

    def __init__(self, hl: bytes, parent: bytes, piece: bytes) -> None:
        self.hl, self.parent = hl, parent
        self.pieces = [piece]
        self.level = 0
        self.renumbered: list[bytes | None] = [None, None]  # the HL01 given in each output


class _Output:
    """What one output has open and counted."""

    __slots__ = ("claims", "groups", "gs_open", "hl_count", "hl_numbers", "isa_open", "parts", "segments",
                 "st_open", "started", "transactions")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.isa_open = self.gs_open = self.st_open = self.started = False
        self.groups = self.transactions = self.segments = self.hl_count = self.claims = 0
        self.hl_numbers: dict[bytes, bytes] = {}

    def take(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        return out


class SplitCounts(Record):
    forward_claims: int
    held_claims: int


class Splitter:
    """Corrected-file chunks in, (forward, held) chunks out (no I/O of its own)."""

    def __init__(self, held: frozenset[int]) -> None:
        self.held = held
        self.outputs = (_Output(), _Output())
        self._buffer = b""
        self._head = b""  # the input's start, until the ISA's delimiters are known
        self._marks: re.Pattern[bytes] | None = None
        self._terminator = b""
        self._separator = b""
        self._number = 0  # segment number in the corrected file (ISA = 1)
        self._isa = self._gs = b""
        self._header: list[bytes] = []
        self._chain: list[_Block] = []
        self._unclaimed: list[_Block] | None = []  # every block of a transaction set with no claim yet
        self._claim_to: int | None = None

    @property
    def counts(self) -> SplitCounts:
        return SplitCounts(self.outputs[FORWARD].claims, self.outputs[HELD].claims)

    def feed(self, chunk: bytes) -> tuple[bytes, bytes]:
        if not self._terminator:
            self._head += chunk
            start = len(self._head) - len(self._head.lstrip(_WHITESPACE))
            if len(self._head) - start < _ISA_LENGTH:
                return b"", b""
            self._separator = self._head[start + 3 : start + 4]
            self._terminator = self._head[start + _ISA_LENGTH - 1 : start + _ISA_LENGTH]
            self._marks = _marks(self._terminator, self._separator)
            chunk, self._head = self._terminator + self._head, b""  # the buffer starts at a terminator
        buffer = self._buffer + chunk if self._buffer else chunk
        terminator = self._terminator
        end = buffer.rfind(terminator) + 1  # complete segments end here
        if end <= 1:
            self._buffer = buffer
            return b"", b""
        # Only the segments that open or close something are looked at one by one (``_marks``);
        # the segments between them (most of a claim) travel as one piece of bytes.
        position = 1
        marks = self._marks
        assert marks is not None  # set with the terminator
        for mark in marks.finditer(buffer, 0, end):
            start = mark.start() + 1
            if start > position:
                self._ordinary(buffer[position:start])
            segment_end = buffer.index(terminator, start) + 1
            self._segment(buffer[start:segment_end])
            position = segment_end
        if end > position:
            self._ordinary(buffer[position:end])
        self._buffer = buffer[end - 1 :]
        return self.outputs[FORWARD].take(), self.outputs[HELD].take()

    def end(self) -> tuple[bytes, bytes]:
        """The rest: whatever follows the last terminator (a final line break) ends each output
        that holds anything."""
        rest, self._buffer = self._buffer[1:], b""
        forward, held = self.outputs
        return (forward.take() + (rest if forward.started else b""),
                held.take() + (rest if held.started else b""))

    # -- segments ---------------------------------------------------------------------------
    def _ordinary(self, pieces: bytes) -> None:
        """Segments that neither open nor close a loop or envelope: they go where they stand."""
        count = pieces.count(self._terminator)
        self._number += count
        if self._claim_to is not None:
            self._emit(self._claim_to, pieces, count)
        elif self._chain:
            self._chain[-1].pieces.append(pieces)
        else:
            self._header.append(pieces)

    def _segment(self, piece: bytes) -> None:
        self._number += 1
        body = piece.lstrip(_WHITESPACE)
        tag = body[: body.find(self._separator)]
        if tag == b"CLM":
            self._claim(piece)
        elif tag == b"HL":
            self._hl(piece, body)
        elif tag == b"SE":
            self._end_transaction(piece)
        elif tag == b"ST":
            self._header = [piece]
            self._chain = []
            self._unclaimed = []
            self._claim_to = None
            for output in self.outputs:
                output.st_open = False
                output.segments = output.hl_count = 0
                output.hl_numbers = {}
        elif tag == b"GS":
            self._gs = piece
            for output in self.outputs:
                output.gs_open, output.transactions = False, 0
        elif tag == b"GE":
            self._close(piece, "gs_open", "transactions")
        elif tag == b"ISA":
            self._isa = piece
            for output in self.outputs:
                output.isa_open, output.groups = False, 0
        elif tag == b"IEA":
            self._close(piece, "isa_open", "groups")

    def _hl(self, piece: bytes, body: bytes) -> None:
        elements = body[:-1].split(self._separator)
        hl = elements[1] if len(elements) > 1 else b""
        parent = elements[2] if len(elements) > 2 else b""
        chain = self._chain
        while chain and chain[-1].hl != parent:
            chain.pop()
        block = _Block(hl, parent, piece)
        chain.append(block)
        if self._unclaimed is not None:
            self._unclaimed.append(block)
        self._claim_to = None

    def _claim(self, piece: bytes) -> None:
        target = HELD if self._number in self.held else FORWARD
        self._open(target)
        for block in self._chain:
            self._write_block(target, block)
        self._unclaimed = None
        self._claim_to = target
        self.outputs[target].claims += 1
        self._emit(target, piece)

    def _end_transaction(self, piece: bytes) -> None:
        if self._unclaimed is not None:  # no claim in it: passed on whole
            self._open(FORWARD)
            for block in self._unclaimed:
                self._write_block(FORWARD, block)
        for output in self.outputs:
            if output.st_open:
                output.segments += 1
                output.parts.append(self._recount(piece, output.segments))
                output.transactions += 1
                output.st_open = False
        self._claim_to = None

    def _close(self, piece: bytes, flag: str, counter: str) -> None:
        """GE or IEA for each output that opened the group or interchange, its count recomputed."""
        for output in self.outputs:
            if getattr(output, flag):
                output.parts.append(self._recount(piece, getattr(output, counter)))
                setattr(output, flag, False)
                if flag == "gs_open":
                    output.groups += 1

    def _open(self, target: int) -> None:
        output = self.outputs[target]
        if not output.isa_open:
            output.parts.append(self._isa)
            output.isa_open = output.started = True
        if not output.gs_open:
            output.parts.append(self._gs)
            output.gs_open = True
        if not output.st_open:
            output.st_open = True
            for piece in self._header:
                self._emit(target, piece, piece.count(self._terminator))

    def _write_block(self, target: int, block: _Block) -> None:
        if block.renumbered[target] is not None:
            return
        output = self.outputs[target]
        output.hl_count += 1
        number = str(output.hl_count).encode()
        block.renumbered[target] = number
        output.hl_numbers[block.hl] = number
        first = block.pieces[0]
        self._emit(target, self._renumber_hl(first, number, output.hl_numbers.get(block.parent, b"")))
        for piece in block.pieces[1:]:
            self._emit(target, piece, piece.count(self._terminator))

    def _emit(self, target: int, piece: bytes, count: int = 1) -> None:
        """``piece`` (``count`` segments) to an output."""
        output = self.outputs[target]
        output.segments += count
        output.parts.append(piece)

    def _renumber_hl(self, piece: bytes, number: bytes, parent: bytes) -> bytes:
        stripped = piece.lstrip(_WHITESPACE)
        prefix = piece[: len(piece) - len(stripped)]
        elements = stripped[:-1].split(self._separator)
        elements[1] = number
        if len(elements) > 2:
            elements[2] = parent
        return prefix + self._separator.join(elements) + stripped[-1:]

    def _recount(self, piece: bytes, count: int) -> bytes:
        """SE01, GE01 or IEA01 set to ``count``; the control number and the bytes around kept."""
        stripped = piece.lstrip(_WHITESPACE)
        prefix = piece[: len(piece) - len(stripped)]
        elements = stripped[:-1].split(self._separator)
        if len(elements) > 1:
            elements[1] = str(count).encode()
        return prefix + self._separator.join(elements) + stripped[-1:]


def hold_bytes(data: bytes, book: object, *, severity: str = "error") -> tuple[bytes, bytes, FileReport]:
    """``fix --hold`` over an in-memory input (tests, examples): (forward, held, report).

    A file with X12 errors is neither fixed nor split: (input, b"", report)."""
    from edi.pipeline import fix, validate
    from edi.rules.engine import RuleEngine

    report = validate([data], name="-", engine=RuleEngine(book))  # type: ignore[arg-type]
    if report.errors:
        return data, b"", report
    forward: list[bytes] = []
    held: list[bytes] = []
    fixed = fix([data], report, forward.append, hold=held.append, hold_severity=severity)
    return b"".join(forward), b"".join(held), fixed.report
