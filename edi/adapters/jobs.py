"""File-level jobs shared by the front ends (CLI, watcher, gateway): check a file, fix a file.

Each opens its input by path (a spooled temp file for streams), runs the pipeline and writes
through ``files.atomic_output``; errors stay typed (``EdiError``) for the caller to map to an
exit code, an HTTP status or a watcher outcome.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

from edi.adapters import files
from edi.adapters.faults import checkpoint
from edi.errors import ErrorEntry, InputError, TemporaryFailure
from edi.pipeline import DEFAULT_LIMITS, Limits, validate
from edi.report.model import FileReport
from edi.rules.book import RuleBook
from edi.rules.engine import RuleEngine

if TYPE_CHECKING:
    from edi.rewrite import RewriteResult


class JobOptions(NamedTuple):
    book: RuleBook
    limits: Limits = DEFAULT_LIMITS
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    history: Any = None  # a HistoryStore, or None


Source = str | Callable[[], Iterator[bytes]]  # a path, or something that reads the input again


def chunks_of(source: Source) -> Iterator[bytes]:
    return files.read_chunks(source) if isinstance(source, str) else source()


def check(source: Source, options: JobOptions, *, name: str | None = None, digest: bool = True,
          on_progress: Callable[[int], None] | None = None) -> tuple[FileReport, RuleEngine]:
    """Pass 1 over a file: the report (findings, errors) and the engine that made it.

    An input that cannot be read gives an ``unreadable`` report, not an exception."""
    engine = RuleEngine(options.book, select=options.select, ignore=options.ignore, history=options.history)
    label = name or (source if isinstance(source, str) else "-")
    try:
        report = validate(chunks_of(source), name=label, limits=options.limits, engine=engine, digest=digest,
                          on_progress=on_progress)
        checkpoint("check.after_pass1", data=lambda: repr(list(engine.index.patients)[:3]).encode())
    except InputError as error:
        report = FileReport(file=label, errors=(ErrorEntry(error.code, None, None, error.message),),
                            unreadable=True)
    return report, engine


def _hashing(chunks: Iterable[bytes], digest: Any) -> Iterator[bytes]:
    for chunk in chunks:
        digest.update(chunk)
        yield chunk


def write_fixed(source: Source, target: str | Any, report: FileReport, engine: RuleEngine, options: JobOptions,
                *, record: bool = True, before_record: Callable[[], None] | None = None,
                ) -> tuple[FileReport, RewriteResult]:
    """Pass 2: the corrected file written atomically to ``target``; the report marked applied.

    Call only for a report without errors. Records the pump events passed on when a history
    store is configured and ``record`` is true. ``before_record`` runs once the output is
    written and before anything is recorded or renamed into place: raising there (the watcher's
    "the input changed meanwhile") leaves neither.
    """
    # Imported here: ``validate`` runs ``check`` alone, and its start-up is part of every run.
    import hashlib

    from edi.rewrite import mark_applied, plan_edits, rewrite

    plan = plan_edits(report)
    limits = options.limits
    writer = files.atomic_output(target) if isinstance(target, str) else _plain(target)
    with writer as handle:
        digest = hashlib.sha256()
        output, result = rewrite(_hashing(chunks_of(source), digest), plan,
                                 max_segment_length=limits.max_segment_length, max_elements=limits.max_elements)
        for piece in output:
            handle.write(piece)
        if digest.hexdigest() != report.sha256:
            raise TemporaryFailure("the input changed while it was being fixed; nothing was written",
                                   code="INPUT_CHANGED")
        if before_record is not None:
            before_record()
        if options.history is not None and record:
            # Recorded before the output is renamed into place: a store that fails leaves no
            # output, so a retry does both. What is recorded is what is passed on: dropped lines
            # are gone, replaced codes count as the new code.
            checkpoint("history.before_record", history=options.history)
            options.history.record(report.sha256, engine.events_to_record(
                frozenset(result.dropped), {n: plan.replace[n] for n in result.replaced}))
        checkpoint("fix.before_rename")
    checkpoint("fix.after_rename")
    report = mark_applied(report, result)
    return report, result


def pass_on(mode: str, source: Source, target: str | Any, report: FileReport, engine: RuleEngine,
            options: JobOptions, *, before_record: Callable[[], None] | None = None) -> FileReport:
    """What a front end sends on, written to ``target``: the fixed file (``rewrite``) or the input
    unchanged (``annotate``, recorded in the history as it is). Call only for a report without errors.

    In both modes the history is written before the output is renamed into place: a store that
    fails leaves no output, so the input ends in one place only and a retry does both."""
    if mode == "rewrite":
        report, _ = write_fixed(source, target, report, engine, options, before_record=before_record)
        return report
    writer = files.atomic_output(target) if isinstance(target, str) else _plain(target)
    with writer as handle:
        for chunk in chunks_of(source):
            handle.write(chunk)
        if before_record is not None:
            before_record()
        record_passed_on(report, engine, options)
    return report


def record_passed_on(report: FileReport, engine: RuleEngine, options: JobOptions) -> None:
    """Annotate mode passes the file on unchanged: its pump events go to the history as they are."""
    if options.history is not None:
        checkpoint("history.before_record", history=options.history)
        options.history.record(report.sha256, engine.events_to_record())


@contextlib.contextmanager
def _plain(handle: Any) -> Iterator[Any]:
    """A caller-owned writable (an HTTP response buffer): no atomic rename to do."""
    yield handle
