"""One function per job over an already opened input, shared by every front end.

The pipeline reads no file itself: it takes an iterable of byte chunks (a file read in blocks,
an HTTP body, a spooled temp file) and returns values. Front ends open, write and map errors.

What a front end does with a file ends in one ``Outcome`` (``Accepted``, ``Refused``, ``Retry``;
made by ``edi.adapters.jobs.process``), which carries its own exit code and HTTP status: the
rule "X12 errors: refuse; a temporary failure: retry; else pass on" is written once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from edi.claims.model import Claim
from edi.claims.walker import ClaimWalker
from edi.errors import (
    EXIT_DATA,
    EXIT_FINDINGS,
    EXIT_NO_INPUT,
    EXIT_OK,
    ErrorEntry,
    TemporaryFailure,
    X12SyntaxError,
    entry_from_error,
)
from edi.records import Record
from edi.report.model import FileReport
from edi.rules.engine import RuleEngine
from edi.x12.reader import DEFAULT_MAX_ELEMENTS, DEFAULT_MAX_SEGMENT_LENGTH, Reader

if TYPE_CHECKING:  # imported where used: ``validate`` never rewrites, and start-up is measured
    from edi.rewrite import RewriteResult

CHUNK_SIZE = 1 << 16


class Limits(Record):
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


class Fixed(Record):
    """What pass 2 made of a file."""

    report: FileReport  # ``applied: true`` on what was applied (``line``/``segment`` stay the input's)
    result: RewriteResult  # the lines dropped and recoded, the changed segments (``--diff``)
    new_codes: dict[int, str]  # SV1 segment number -> the code put in (what the history records)


def fix(chunks: Iterable[bytes], report: FileReport, write: Callable[[bytes], object], *,
        limits: Limits = DEFAULT_LIMITS, hold: Callable[[bytes], object] | None = None,
        hold_severity: str = "error") -> Fixed:
    """Pass 2 of ``fix``: the corrected file, chunk by chunk, to ``write``.

    With ``hold``, the claims that still carry a finding of ``hold_severity`` or worse that the
    rewrite does not apply go to ``hold`` instead, each output a valid 837P of its own
    (``edi.split``); the report marks their findings ``held`` and counts them.

    Call only for a report without errors, over the same input as pass 1 (``chunks`` reads it
    again). Raises ``TemporaryFailure`` (``INPUT_CHANGED``) when the bytes read now are not the
    ones pass 1 checked: what was written must then not be passed on."""
    import hashlib  # only when fixing: ``validate`` start-up does not pay for it

    from edi.rewrite import DropLoop, mark_applied, plan_edits, rewrite

    plan = plan_edits(report)
    digest = hashlib.sha256()
    output, result = rewrite(_hashing(chunks, digest), plan, max_segment_length=limits.max_segment_length,
                             max_elements=limits.max_elements)
    held: frozenset[int] = frozenset()
    if hold is None:
        for piece in output:
            write(piece)
    else:
        from edi.split import Splitter, held_claims, output_numbers

        held = held_claims(report.findings, plan.dropped | plan.replaced, severity=hold_severity)
        drops = [(e.line.first_segment, e.line.last_segment - e.line.first_segment + 1)
                 for e in plan.edits if isinstance(e, DropLoop)]
        splitter = Splitter(output_numbers(held, drops))
        for piece in output:
            _write_split(splitter.feed(piece), write, hold)
        _write_split(splitter.end(), write, hold)
    if digest.hexdigest() != report.sha256:
        raise TemporaryFailure("the input changed while it was being fixed; nothing was written",
                               code="INPUT_CHANGED")
    fixed = mark_applied(report, result)
    if hold is not None:
        from edi.split import mark_held

        fixed = mark_held(fixed, held)
    return Fixed(fixed, result, {number: plan.replace[number] for number in result.replaced})


def _write_split(pieces: tuple[bytes, bytes], write: Callable[[bytes], object],
                 hold: Callable[[bytes], object]) -> None:
    forward, held = pieces
    if forward:
        write(forward)
    if held:
        hold(held)


def _hashing(chunks: Iterable[bytes], digest: Any) -> Iterable[bytes]:
    for chunk in chunks:
        digest.update(chunk)
        yield chunk


# -- outcomes: what became of a file, for every front end to translate ------------------------
HTTP_OK = 200
HTTP_UNPROCESSABLE = 422


class Accepted(Record):
    """The file was passed on: the corrected file (``rewrite``) or the input as it came
    (``annotate``) was written, and its pump events recorded when there is a history."""

    report: FileReport
    engine: RuleEngine  # the rule index, for the report for people
    result: RewriteResult | None = None  # what ``rewrite`` changed; None in ``annotate``

    @property
    def exit_code(self) -> int:  # 0, or 1 when flags are left for review
        return exit_code(self.report)

    @property
    def http_status(self) -> int:
        return HTTP_OK


class Refused(Record):
    """Not passed on: the file has X12 errors or could not be read (nothing was written)."""

    report: FileReport

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(error.code for error in self.report.errors)

    @property
    def exit_code(self) -> int:  # 65, or 66 for an input that could not be read
        return exit_code(self.report)

    @property
    def http_status(self) -> int:
        return HTTP_UNPROCESSABLE


class Retry(Record):
    """Not passed on for now: a temporary failure (a store down, the input changed meanwhile);
    the same file may succeed later. Nothing was passed on."""

    error: TemporaryFailure

    @property
    def code(self) -> str:
        return self.error.code

    @property
    def exit_code(self) -> int:
        return self.error.exit_code

    @property
    def http_status(self) -> int:
        return self.error.http_status


Outcome = Accepted | Refused | Retry
