"""One function per job over an already opened input, shared by every front end.

The pipeline reads no file itself: it takes an iterable of byte chunks (a file read in blocks,
an HTTP body, a spooled temp file) and returns values. Front ends open, write and map errors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

from edi.claims.model import Claim
from edi.claims.walker import ClaimWalker
from edi.errors import (
    EXIT_DATA,
    EXIT_FINDINGS,
    EXIT_NO_INPUT,
    EXIT_OK,
    ErrorEntry,
    X12SyntaxError,
    entry_from_error,
)
from edi.report.model import FileReport
from edi.rules.engine import RuleEngine
from edi.x12.reader import DEFAULT_MAX_ELEMENTS, DEFAULT_MAX_SEGMENT_LENGTH, Reader

CHUNK_SIZE = 1 << 16


class Limits(NamedTuple):
    """Bounds on hostile input (see ``edi.x12.reader``)."""

    max_segment_length: int = DEFAULT_MAX_SEGMENT_LENGTH
    max_elements: int = DEFAULT_MAX_ELEMENTS


DEFAULT_LIMITS = Limits()
ClaimSink = Callable[[Claim], None]


def scan(
    chunks: Iterable[bytes],
    *,
    name: str,
    on_claim: ClaimSink | None = None,
    limits: Limits = DEFAULT_LIMITS,
    on_progress: Callable[[int], None] | None = None,
    digest: bool = True,
) -> FileReport:
    """Pass 1: read every segment, walk the claims, hand each to ``on_claim``; no rules.

    ``digest=False`` skips the SHA-256 of the input (about 2% of a run) when nobody needs the
    file's hash, e.g. a ``validate`` whose logs are off.
    """
    reader = Reader(max_segment_length=limits.max_segment_length, max_elements=limits.max_elements)
    walker = ClaimWalker()
    if digest:
        import hashlib  # only when a hash is wanted: its OpenSSL start-up is 2 ms

        hasher = hashlib.sha256()
    else:
        hasher = None
    size = 0
    fatal: X12SyntaxError | None = None
    sink = on_claim or (lambda _claim: None)
    try:
        for chunk in chunks:
            if hasher is not None:
                hasher.update(chunk)
            size += len(chunk)
            reader.feed(chunk)
            for batch in reader.batches():
                for claim in walker.walk_batch(batch):
                    sink(claim)
            if on_progress is not None:
                on_progress(size)
        reader.end()
        while batches := reader.batches():  # until empty: an error held back is raised then
            for batch in batches:
                for claim in walker.walk_batch(batch):
                    sink(claim)
    except X12SyntaxError as error:
        fatal = error
    for claim in walker.finish():
        sink(claim)
    # Claim-level errors are found when the claim closes: order them by position.
    errors = sorted(walker.errors, key=_position)
    if fatal is not None:
        errors.append(entry_from_error(fatal))
    return FileReport(
        file=name,
        transactions=walker.transactions,
        claims=walker.claims,
        lines=walker.lines,
        errors=tuple(errors),
        notes=tuple(walker.notes),
        segments=reader.segment_count,
        input_bytes=size,
        spans=tuple(walker.envelope.spans),
        headers=tuple(walker.envelope.headers),
        longest_segment=reader.longest_segment,
        fatal=fatal is not None,
        sha256=hasher.hexdigest() if hasher is not None else "",
    )


def _position(entry: ErrorEntry) -> int:
    return entry.segment if entry.segment is not None else 0


def validate(
    chunks: Iterable[bytes],
    *,
    name: str,
    engine: RuleEngine | None = None,
    limits: Limits = DEFAULT_LIMITS,
    on_progress: Callable[[int], None] | None = None,
    digest: bool = True,
) -> FileReport:
    """The ``validate`` job: one pass of structure checks and indexing, then the pump rules.

    Findings are reported for the claims that could be read even when the file has errors.
    """
    report = scan(chunks, name=name, on_claim=engine.index.add if engine else None, limits=limits,
                  on_progress=on_progress, digest=digest)
    if engine is None:
        return report
    findings = engine.findings()
    return report._replace(findings=findings, locators=engine.locators_for(findings))


def exit_code(report: FileReport) -> int:
    """The process exit code a report stands for (``pump-rules.md``)."""
    if report.unreadable:
        return EXIT_NO_INPUT
    if report.errors:
        return EXIT_DATA
    if any(not finding.applied for finding in report.findings):
        return EXIT_FINDINGS
    return EXIT_OK
