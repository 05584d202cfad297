"""File-level jobs shared by the front ends (CLI, watcher, gateway): check a file, fix a file.

Each opens its input by path (a spooled temp file for streams), runs the pipeline and writes
through ``files.atomic_output``. ``process`` is what every front end that passes files on
calls (``fix``, ``filter``, ``serve``, ``watch``): it returns an ``Outcome`` (accepted,
refused, retry) that each maps to an exit code, an HTTP status or a watcher folder; other
errors stay typed (``EdiError``, with its exit code and HTTP status hints).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from edi.adapters import files
from edi.adapters.faults import checkpoint
from edi.errors import ErrorEntry, InputError, TemporaryFailure
from edi.pipeline import DEFAULT_LIMITS, Accepted, Limits, Outcome, Refused, Retry, fix, validate
from edi.records import Record
from edi.report.model import FileReport
from edi.rules.book import RuleBook
from edi.rules.engine import RuleEngine

if TYPE_CHECKING:
    from edi.rewrite import RewriteResult


class JobOptions(Record):
    book: RuleBook
    limits: Limits = DEFAULT_LIMITS
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    history: Any = None  # a HistoryStore, or None
    tables: Any = None  # the CMS tables lookup (edi.adapters.tables.TablesLookup), or None
    hold_severity: str = "error"  # with a hold output: hold claims with findings this severe


Source = str | Callable[[], Iterator[bytes]]  # a path, or something that reads the input again


def chunks_of(source: Source) -> Iterator[bytes]:
    return files.read_chunks(source) if isinstance(source, str) else source()


def check(source: Source, options: JobOptions, *, name: str | None = None, digest: bool = True,
          on_progress: Callable[[int], None] | None = None,
          rewritable: bool = True) -> tuple[FileReport, RuleEngine]:
    """Pass 1 over a file: the report (findings, errors) and the engine that made it.

    ``rewritable=False`` when no pass 2 follows (``validate``): the report then carries no
    locators. An input that cannot be read gives an ``unreadable`` report, not an exception."""
    engine = RuleEngine(options.book, select=options.select, ignore=options.ignore, history=options.history,
                        tables=options.tables, locators=rewritable)
    label = name or (source if isinstance(source, str) else "-")
    try:
        report = validate(chunks_of(source), name=label, limits=options.limits, engine=engine, digest=digest,
                          on_progress=on_progress)
        checkpoint("check.after_pass1", data=lambda: repr(list(engine.index.patients)[:3]).encode())
    except InputError as error:
        report = FileReport(file=label, errors=(ErrorEntry(error.code, None, None, error.message),),
                            unreadable=True)
    return report, engine


def write_fixed(source: Source, target: str | Any, report: FileReport, engine: RuleEngine, options: JobOptions,
                *, record: bool = True, before_record: Callable[[], None] | None = None,
                hold: Any = None) -> tuple[FileReport, RewriteResult]:
    """Pass 2: the corrected file written atomically to ``target``; the report marked applied.

    Call only for a report without errors. Records the pump events passed on when a history
    store is configured and ``record`` is true. ``hold`` (a writable): the held-claim split
    (``options.hold_severity``); only what is passed on is recorded. ``before_record`` runs once the output is
    written and before anything is recorded or renamed into place: raising there (the watcher's
    "the input changed meanwhile") leaves neither.
    """
    with _writer(target) as handle:
        fixed = fix(chunks_of(source), report, handle.write, limits=options.limits,
                    hold=None if hold is None else hold.write, hold_severity=options.hold_severity)
        if before_record is not None:
            before_record()
        if options.history is not None and record:
            # Recorded before the output is renamed into place: a store that fails leaves no
            # output, so a retry does both. What is recorded is what is passed on: dropped lines
            # are gone, replaced codes count as the new code.
            checkpoint("history.before_record", history=options.history)
            held = _held_segments(fixed.report)  # not passed on: neither recorded nor superseding
            options.history.record(report.sha256, engine.events_to_record(
                frozenset(fixed.result.dropped), fixed.new_codes, held=held), engine.file_claims(held))
    return fixed.report, fixed.result


def pass_on(mode: str, source: Source, target: str | Any, report: FileReport, engine: RuleEngine,
            options: JobOptions, *, before_record: Callable[[], None] | None = None) -> FileReport:
    """What a front end sends on, written to ``target``: the fixed file (``rewrite``) or the input
    unchanged (``annotate``, recorded in the history as it is). Call only for a report without errors.

    In both modes the history is written before the output is renamed into place: a store that
    fails leaves no output, so the input ends in one place only and a retry does both."""
    report, _ = _pass_on(mode, source, target, report, engine, options, before_record=before_record)
    return report


def _pass_on(mode: str, source: Source, target: str | Any, report: FileReport, engine: RuleEngine,
             options: JobOptions, *, before_record: Callable[[], None] | None = None, hold: Any = None,
             ) -> tuple[FileReport, RewriteResult | None]:
    if mode == "rewrite":
        return write_fixed(source, target, report, engine, options, before_record=before_record, hold=hold)
    with _writer(target) as handle:
        for chunk in chunks_of(source):
            handle.write(chunk)
        if before_record is not None:
            before_record()
        record_passed_on(report, engine, options)
    return report, None


def process(source: Source, options: JobOptions, *, mode: str, output: str | Any, name: str | None = None,
            check_input: Callable[[FileReport], None] | None = None,
            before_record: Callable[[FileReport], None] | None = None,
            before_publish: Callable[[FileReport], None] | None = None, hold: Any = None,
            on_progress: Callable[[int], None] | None = None) -> Outcome:
    """Check a file and pass it on, as every front end does: X12 errors (or an unreadable input)
    are ``Refused``, a temporary failure is ``Retry``, anything else is passed on, ``Accepted``.

    ``output``: a path (written atomically, ``-`` standard output) or a caller's writable; it is
    opened only for a file that is passed on. The hooks, for the watcher: ``check_input`` after
    pass 1 (before anything is decided), ``before_record`` once the output is written (before the
    history is), ``before_publish`` with the final report just before the output is renamed into
    place. Any of them may raise ``TemporaryFailure`` for a ``Retry``; other errors propagate.
    ``hold`` (a caller's writable, ``rewrite`` mode): where the held claims go (``edi.split``)."""
    try:
        report, engine = check(source, options, name=name, on_progress=on_progress)
        if check_input is not None:
            check_input(report)
        if report.errors or report.unreadable:
            return Refused(report)
        checked = report
        with _writer(output) as handle:
            report, result = _pass_on(mode, source, handle, report, engine, options, hold=hold,
                                      before_record=None if before_record is None else lambda: before_record(checked))
            if before_publish is not None:
                before_publish(report)
    except TemporaryFailure as error:
        return Retry(error)
    return Accepted(report, engine, result)


def _held_segments(report: FileReport) -> frozenset[int]:
    return frozenset(f.claim_segment for f in report.findings if f.held)


def record_passed_on(report: FileReport, engine: RuleEngine, options: JobOptions) -> None:
    """Annotate mode passes the file on unchanged: its pump events go to the history as they are."""
    if options.history is not None:
        checkpoint("history.before_record", history=options.history)
        options.history.record(report.sha256, engine.events_to_record(), engine.file_claims())


@contextlib.contextmanager
def _writer(target: str | Any) -> Iterator[Any]:
    """A path is written atomically (with the fault points around its rename); a caller-owned
    writable (an HTTP response buffer, the output ``process`` opened) is used as it is."""
    if not isinstance(target, str):
        yield target
        return
    with files.atomic_output(target) as handle:
        yield handle
        checkpoint("fix.before_rename")
    checkpoint("fix.after_rename")
