"""The ``edi837`` command line: ``main(argv) -> exit code``; thin over ``edi.pipeline``.

argparse is enough here: the subcommands are few and flat, and it keeps start-up fast (the
benchmark times whole processes).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from edi import __version__
from edi.adapters import files, jobs, logs
from edi.adapters.progress import Progress
from edi.adapters.rules_files import load_rule_book
from edi.errors import EXIT_FINDINGS, EXIT_INTERNAL, EXIT_NO_INPUT, EXIT_OK, EXIT_USAGE, EdiError
from edi.pipeline import Limits, Refused, Retry, exit_code
from edi.report.model import FileReport
from edi.report.text import render_rule_doc, render_text
from edi.rules.engine import RuleEngine, check_selection

if TYPE_CHECKING:  # imported where used: the history and HTML modules cost start-up time
    from edi.adapters.history import HistoryStore
    from edi.report.people import PeopleReport


def _terminal_columns() -> int:
    """``shutil.get_terminal_size().columns`` without importing shutil (and with it bz2, lzma:
    ~4 ms of every run, spent because argparse makes a help formatter for each argument)."""
    with contextlib.suppress(ValueError):
        columns = int(os.environ.get("COLUMNS", "0"))
        if columns > 0:
            return columns
    try:
        columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        columns = 0
    return columns or 80


class _Formatter(argparse.HelpFormatter):
    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position,
                         _terminal_columns() - 2 if width is None else width)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:  # exit 64 (EX_USAGE), not argparse's 2
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        """Every option states its default in --help (and in the README's table, made from it)."""
        action = super().add_argument(*args, **kwargs)
        if action.option_strings and action.help is not argparse.SUPPRESS:
            action.help = _with_default(action)
        return action


def _with_default(action: argparse.Action) -> str | None:
    text = action.help or ""
    if "default" in text or action.required or action.dest in ("help", "version"):
        return action.help
    if action.nargs == 0:  # a flag
        return f"{text} (default: off)".strip()
    if action.default is None:  # not given, not used; help texts say so where None means more
        return f"{text} (default: none)".strip()
    return f"{text} (default: %(default)s)".strip()


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-level", choices=sorted(logs.LEVELS), default=None,
                        help="log level (default: $EDI837_LOG_LEVEL or warning); logs go to stderr")
    parser.add_argument("--max-segment-length", type=int, default=Limits().max_segment_length,
                        help="refuse a segment longer than this many bytes")
    parser.add_argument("--max-elements", type=int, default=Limits().max_elements,
                        help="refuse a segment with more elements than this")


def _ack_sender(text: str) -> object:
    """``QQ:ID``: an ISA05 qualifier and an ID of 1 to 15 characters without separators."""
    from edi.ig.acknowledge import QUALIFIERS, AckIdentity, clean

    qualifier, _, identifier = text.partition(":")
    if qualifier not in QUALIFIERS or not identifier or clean(identifier, 15) != identifier:
        raise argparse.ArgumentTypeError(f"expected QQ:ID with QQ one of {', '.join(sorted(QUALIFIERS))} "
                                         "and an ID of 1 to 15 letters, digits or spaces")
    return AckIdentity(qualifier=qualifier, sender=identifier)


def _control_number(text: str) -> int:
    """ISA13 and GS06 hold at most nine digits; 0 and negatives are not control numbers."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1 <= value <= 999_999_999:
        raise argparse.ArgumentTypeError(f"{value} is outside 1 to 999999999")
    return value


def _prefixes(values: list[str] | None) -> list[str]:
    return [p.strip().upper() for value in values or [] for p in value.split(",") if p.strip()]


def _add_history_options(parser: argparse.ArgumentParser, *, record_flag: bool) -> None:
    parser.add_argument("--history", metavar="URL", default=None,
                        help="history store: a SQLite file or a postgresql:// URL (default: $EDI837_HISTORY)")
    if record_flag:
        parser.add_argument("--record", action="store_true",
                            help="also record this file's pump events in the history store")


def _add_tables_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tables", metavar="URL", default=None,
                        help="CMS correct-coding tables store: a SQLite file or a postgresql:// URL (default: "
                             "$EDI837_TABLES, else tables.sqlite beside a SQLite history store, else the PostgreSQL "
                             "history database)")


def _add_rule_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rules", dest="rules_dir", default=None, metavar="DIR",
                        help="rule data folder (default: the rules shipped with edi837)")
    parser.add_argument("--select", action="append", metavar="PREFIXES",
                        help="rule-ID prefixes to run (comma-separated, repeatable; longest prefix wins; "
                             "default: every rule)")
    parser.add_argument("--ignore", action="append", metavar="PREFIXES",
                        help="rule-ID prefixes not to run (default: none)")


def _add_exit_zero(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--exit-zero", action="store_true",
                        help="exit 0 even when findings are reported (as ruff's --exit-zero); X12 errors and "
                             "failures keep their codes")


def _final_code(code: int, args: argparse.Namespace) -> int:
    return EXIT_OK if code == EXIT_FINDINGS and getattr(args, "exit_zero", False) else code


FORMATS = ("text", "json", "html", "csv", "xml")
DOCUMENT_FORMATS = ("html", "csv", "xml")  # one document for all the files, written at the end


def _validate_options(check: argparse.ArgumentParser) -> None:
    check.add_argument("paths", nargs="+", metavar="PATH", help="837P files; - for standard input")
    check.add_argument("--format", choices=FORMATS, default="text",
                       help="report format (html, csv: the worklist for a billing office)")
    check.add_argument("--output", "-o", default="-", help="write the report here (default: stdout)")
    _add_rule_options(check)
    _add_history_options(check, record_flag=True)
    _add_tables_option(check)
    check.add_argument("--ig", action="store_true",
                       help="also check the 005010X222A1 implementation guide (999 codes in the report)")
    check.add_argument("--ig-engine", choices=("own", "pyx12"), default="own",
                       help="implementation-guide engine: edi837's own, or pyx12 for a second opinion (slow)")
    check.add_argument("--ack", metavar="PATH",
                       help="write a 999 (or a TA1 for envelope failures); implies --ig (default: none)")
    check.add_argument("--ack-control", type=_control_number, metavar="N",
                       help="control number of the acknowledgment, 1 to 999999999 (default: the input's ISA13)")
    check.add_argument("--ack-sender", type=_ack_sender, metavar="QQ:ID",
                       help="the acknowledgment's sender: ISA05 qualifier and ISA06/GS02 ID, e.g. ZZ:EDI837 "
                            "(default: the input's receiver)")
    _add_exit_zero(check)
    _add_common(check)


def _fix_options(fix: argparse.ArgumentParser) -> None:
    fix.add_argument("input", metavar="IN", help="837P file; - for standard input")
    fix.add_argument("-o", "--output", metavar="OUT",
                     help="corrected file; - for standard output (no default: give -o or --in-place)")
    fix.add_argument("--in-place", action="store_true", help="replace IN itself (atomically)")
    fix.add_argument("--report", metavar="FILE",
                     help="write the JSON report (applied: true on what was applied) (default: none)")
    fix.add_argument("--hold", metavar="HELD",
                     help="write the claims left for a person (an unapplied finding of --hold-severity) to HELD, "
                          "a valid 837P of their own, and leave them out of OUT; a file is written only when it "
                          "holds a claim (default: none)")
    fix.add_argument("--hold-severity", choices=("error", "warning"), default="error",
                     help="with --hold: hold claims with an unapplied finding of this severity or worse")
    fix.add_argument("--diff", action="store_true", help="print the changed segments, old and new")
    fix.add_argument("--format", choices=FORMATS, default="text",
                     help="format of the report for people (stdout, or --report-output)")
    fix.add_argument("--report-output", metavar="PATH",
                     help="write the report for people here (default: stdout, stderr when OUT is -)")
    _add_rule_options(fix)
    _add_history_options(fix, record_flag=False)
    _add_tables_option(fix)
    _add_exit_zero(fix)
    _add_common(fix)


def _rules_options(rules: argparse.ArgumentParser) -> None:
    rules.add_argument("rule_id", nargs="?", metavar="ID")
    rules.add_argument("--rules", dest="rules_dir", default=None, metavar="DIR",
                       help="rule data folder (default: the rules shipped with edi837)")
    _add_history_options(rules, record_flag=False)
    _add_tables_option(rules)
    rules.add_argument("--log-level", choices=sorted(logs.LEVELS), default=None,
                       help="log level (default: $EDI837_LOG_LEVEL or warning)")


def _watch_options(watch: argparse.ArgumentParser) -> None:
    watch.add_argument("root", metavar="ROOT")
    watch.add_argument("--once", action="store_true", help="process what is ready now, then exit")
    watch.add_argument("--mode", choices=("annotate", "rewrite"), default="rewrite")
    watch.add_argument("--stable-for", type=float, default=5.0, metavar="SECONDS")
    watch.add_argument("--scan-interval", type=float, default=2.0, metavar="SECONDS")
    watch.add_argument("--max-bytes", type=int, default=200 * 1024 * 1024)
    watch.add_argument("--incomplete-grace", type=float, default=600.0, metavar="SECONDS",
                       help="reject a stable upload without its final IEA after this long")
    watch.add_argument("--max-attempts", type=int, default=5, help="quarantine after this many temporary failures")
    watch.add_argument("--duplicates", choices=("archive", "reject"), default="archive")
    watch.add_argument("--control-reuse", choices=("reject", "allow"), default="reject",
                       help="a reused (ISA06, ISA13) with other content")
    watch.add_argument("--ledger", metavar="URL", help="SQLite path or postgresql:// URL (default ROOT/state/ledger.sqlite)")
    watch.add_argument("--hold", action="store_true",
                       help="rewrite mode: put the claims left for a person in ROOT/held with their worklist "
                            "(HTML and CSV) instead of sending them on")
    watch.add_argument("--hold-severity", choices=("error", "warning"), default="error",
                       help="with --hold: hold claims with an unapplied finding of this severity or worse")
    watch.add_argument("--status", action="store_true", help="print the counters as JSON and exit")
    watch.add_argument("--acks", action="store_true",
                       help="write the 999 (or TA1) of every file to ROOT/acks/ (edi837's own implementation-guide check)")
    watch.add_argument("--ack-sender", type=_ack_sender, metavar="QQ:ID",
                       help="the acknowledgments' sender, e.g. ZZ:EDI837 (default: the input's receiver)")
    watch.add_argument("--max-scans", type=int, default=None, help=argparse.SUPPRESS)
    _add_rule_options(watch)
    _add_history_options(watch, record_flag=False)
    _add_tables_option(watch)
    _add_common(watch)


def _serve_options(serve: argparse.ArgumentParser) -> None:
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8837)
    serve.add_argument("--ack-sender", type=_ack_sender, metavar="QQ:ID",
                       help="the sender of ?ack=999 acknowledgments, e.g. ZZ:EDI837 (default: the input's receiver)")
    serve.add_argument("--max-bytes", type=int, default=50 * 1024 * 1024)
    serve.add_argument("--workers", type=int, default=1, help="server processes")
    serve.add_argument("--threads", type=int, default=2, help="processing threads per process")
    serve.add_argument("--time-limit", type=float, default=120.0, metavar="SECONDS",
                       help="processing time per request; past it the work stops and the client gets 503")
    serve.add_argument("--keep-alive-timeout", type=float, default=5.0, metavar="SECONDS",
                       help="close a connection idle this long between requests")
    serve.add_argument("--header-timeout", type=float, default=10.0, metavar="SECONDS",
                       help="close a connection whose request headers are not complete after this long")
    serve.add_argument("--body-timeout", type=float, default=120.0, metavar="SECONDS",
                       help="answer 408 when the body has not arrived after this long")
    serve.add_argument("--max-connections", type=int, default=1000, metavar="N",
                       help="open connections per process; one more gets 503 (kept below the descriptor limit)")
    serve.add_argument("--max-pending", type=int, default=64, metavar="N",
                       help="files being received or processed at once per process; one more gets 503")
    serve.add_argument("--state", metavar="URL",
                       help="Idempotency-Key store shared by the workers: a SQLite file or a postgresql:// URL "
                            "(default: a private file for this run)")
    serve.add_argument("--partners", metavar="FILE",
                       help='JSON {"name": {"token_sha256": "<hex>", "allowed": true}} (and/or $EDI837_API_TOKEN)')
    _add_rule_options(serve)
    _add_history_options(serve, record_flag=False)
    _add_tables_option(serve)
    _add_common(serve)


def _filter_options(filt: argparse.ArgumentParser) -> None:
    filt.add_argument("--mode", choices=("annotate", "rewrite"), default="rewrite",
                      help="rewrite: pass on the corrected file; annotate: pass the input on unchanged")
    filt.add_argument("--report", metavar="FILE", help="write the JSON report here (default: stderr)")
    _add_rule_options(filt)
    _add_history_options(filt, record_flag=False)
    _add_tables_option(filt)
    _add_exit_zero(filt)
    _add_common(filt)


def _history_options(history: argparse.ArgumentParser) -> None:
    history_commands = history.add_subparsers(dest="history_command", required=True, parser_class=_Parser)
    prune = history_commands.add_parser("prune", help="delete events older than DAYS days")
    prune.add_argument("--older-than", type=int, required=True, metavar="DAYS",
                       help="delete events with a date of service more than DAYS days ago (required)")
    _add_history_options(prune, record_flag=False)
    prune.add_argument("--log-level", choices=sorted(logs.LEVELS), default=None,
                       help="log level (default: $EDI837_LOG_LEVEL or warning)")


def _tables_options(tables: argparse.ArgumentParser) -> None:
    tables_commands = tables.add_subparsers(dest="tables_command", required=True, parser_class=_Parser)
    table_import = tables_commands.add_parser("import", help="import CMS PTP, MUE or add-on files (.txt, .csv, "
                                              ".xlsx, .zip) in one transaction")
    table_import.add_argument("table_files", nargs="+", metavar="FILE")
    table_import.add_argument("--source", choices=("medicare", "medicaid"), default=None,
                              help="whose tables these are (default: read from the file name or title lines)")
    table_import.add_argument("--quarter", metavar="YYYYQN", default=None,
                              help="the quarter the files are for, e.g. 2026Q1 (default: read from the file name "
                                   "or title lines)")
    for command in (table_import, tables_commands.add_parser("list", help="show the imported tables")):
        _add_history_options(command, record_flag=False)
        _add_tables_option(command)
        command.add_argument("--log-level", choices=sorted(logs.LEVELS), default=None,
                             help="log level (default: $EDI837_LOG_LEVEL or warning)")


def _synth_options(synth: argparse.ArgumentParser) -> None:
    synth.add_argument("--claims", type=int, default=100, help="number of claims")
    synth.add_argument("--seed", type=int, default=1, help="random seed: the same seed gives the same file")
    synth.add_argument("--rule-breaking-share", type=float, default=0.25,
                       help="share of claims that break a pump rule")
    synth.add_argument("--output", "-o", default="-", help="where to write (- is stdout)")
    synth.add_argument("--log-level", choices=sorted(logs.LEVELS), default=None,
                       help="log level (default: $EDI837_LOG_LEVEL or warning)")


# Per command: its --help line and what adds its arguments. Only the invoked command's
# arguments are built (``build_parser(only=...)``): building all of them cost ~25 ms a run.
_COMMAND_PARSERS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {
    "validate": ("check files and report (the files are not changed)", _validate_options),
    "fix": ("write a corrected copy: apply drop_line and replace_code", _fix_options),
    "rules": ("list the rules, or show one rule's documentation", _rules_options),
    "watch": ("process complete uploads in ROOT/inbound, each once", _watch_options),
    "serve": ("run the HTTP gateway hook", _serve_options),
    "filter": ("stdin to stdout for gateways that run programs", _filter_options),
    "history": ("maintain the history store", _history_options),
    "tables": ("import and list the CMS correct-coding tables (NCC001-NCC003)", _tables_options),
    "synth": ("write a synthetic oncology 837P file (no real data)", _synth_options),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or with ``only`` the arguments of that command alone (the
    others are listed by name and help line, so ``edi837 --help`` is unchanged)."""
    parser = _Parser(prog="edi837", description="Check chemotherapy pump coding in X12 837P files.")
    parser.add_argument("--version", action="version", version=f"edi837 {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, (help_text, add_options) in _COMMAND_PARSERS.items():
        command = commands.add_parser(name, help=help_text)
        if only is None or only == name:
            add_options(command)
    return parser


def command_named(argv: Sequence[str]) -> str | None:
    """The command ``argv`` invokes, when its first word is one (else None: the whole parser
    reads it, to print help or the error)."""
    return argv[0] if argv and argv[0] in _COMMAND_PARSERS else None


def _commands(parser: argparse.ArgumentParser, prefix: str = "") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """(name, parser) of every command, nested ones (``history prune``) included, in --help order."""
    nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not nested:
        yield prefix.strip(), parser
        return
    for name, command in nested[0].choices.items():
        yield from _commands(command, f"{prefix} {name}")


def options_reference() -> str:
    """The README's tables of options and their defaults, made from the parser (a test keeps the
    README equal to this, so a new option or a changed default shows up in both)."""
    out = []
    for name, parser in _commands(build_parser()):
        out += [f"`edi837 {name}`", "", "| option | meaning (default) |", "|---|---|"]
        formatter = parser._get_formatter()
        for action in parser._actions:
            if not action.option_strings or action.help is argparse.SUPPRESS or action.dest == "help":
                continue
            names = ", ".join(action.option_strings)
            if action.nargs != 0:
                names += " " + formatter._format_args(action, action.dest.upper())
            cells = (f"`{names}`", formatter._expand_help(action))
            out.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
        out.append("")
    return "\n".join(out)


def _limits(args: argparse.Namespace) -> Limits:
    return Limits(max_segment_length=args.max_segment_length, max_elements=args.max_elements)


def open_history_from(args: argparse.Namespace) -> HistoryStore | None:
    """The store named by --history or $EDI837_HISTORY; None when neither is given."""
    url = getattr(args, "history", None) or os.environ.get("EDI837_HISTORY")
    if not url:
        return None
    from edi.adapters.history import open_history

    return open_history(url)


def _log_report(log: object, report: FileReport, started: float, code: int) -> None:
    log.info(  # type: ignore[attr-defined]
        "file.validated", file_id=report.sha256[:12] or None, bytes=report.input_bytes, segments=report.segments,
        transactions=report.transactions, claims=report.claims, lines=report.lines,
        findings=len(report.findings), errors=len(report.errors), exit_code=code,
        codes=sorted({e.code for e in report.errors}), rules=sorted({f.rule for f in report.findings}),
        duration_ms=round((time.perf_counter() - started) * 1000, 1),
    )


def _refuse_clashing_outputs(command: str, inputs: dict[str, str | None], outputs: dict[str, str | None]) -> bool:
    """True (and a message) when an output names an input or another output: a claim file must never
    be replaced by a report, nor one output by another. ``-`` means standard input or output."""
    clash = files.first_clash(
        {label: files.file_identity(path, 0) for label, path in inputs.items() if path},
        {label: files.file_identity(path, 1) for label, path in outputs.items() if path})
    if clash is None:
        return False
    output, other = clash
    hint = "; use --in-place to replace the input" if (output, other) == ("-o", "IN") else ""
    sys.stderr.write(f"edi837 {command}: {output} and {other} name the same file; refusing to overwrite it{hint}\n")
    return True


def run_validate(args: argparse.Namespace) -> int:
    log = logs.get_logger()
    inputs = {f"PATH {number}" if len(args.paths) > 1 else "PATH": path
              for number, path in enumerate(args.paths, start=1)}
    if _refuse_clashing_outputs("validate", inputs, {"--output": args.output, "--ack": args.ack}):
        return EXIT_USAGE
    options = job_options(args)
    if args.record and options.history is None:
        sys.stderr.write("edi837 validate: --record needs --history or $EDI837_HISTORY\n")
        return EXIT_USAGE
    if args.ack and len(args.paths) != 1:
        sys.stderr.write("edi837 validate: --ack takes one input file\n")
        return EXIT_USAGE
    people: list[Any] = []  # the XML's PeopleReport or the worklist's WorklistFile per file
    worst = 0
    # Text and JSON reports are written file by file (nothing accumulates); HTML, CSV and XML
    # are one document, written at the end from the per-file summaries.
    with files.atomic_output(args.output) as out:
        for path in args.paths:
            report, engine = _validate_one(args, path, options, log)
            worst = max(worst, exit_code(report))
            if args.format == "xml":
                people.append(people_report(report, engine))
            elif args.format in ("html", "csv"):
                from edi.report.documents import worklist_file  # only for these formats: start-up

                people.append(worklist_file(report, engine))
            else:
                out.write((report.to_json() + "\n" if args.format == "json" else render_text(report)).encode("utf-8"))
            del engine  # the rule index is the largest thing alive: free it before the next file
            gc.collect()
        if args.format in DOCUMENT_FORMATS:
            from edi.report.documents import write_document

            write_document(out.write, args.format, people)
    return _final_code(worst, args)


def _validate_one(args: argparse.Namespace, path: str, options: jobs.JobOptions, log: object) -> tuple[FileReport, RuleEngine]:
    started = time.perf_counter()
    source: str | files.Spool = path
    if (args.ig or args.ack) and path == "-":
        source = files.Spool()  # read twice: by edi837, then by pyx12
    progress = Progress(files.input_size(source))
    try:
        try:
            report, engine = jobs.check(source, options, name=path, on_progress=progress,
                                        digest=True if args.record else logs.enabled(logs.INFO), rewritable=False)
        finally:
            progress.close()
        if args.ig or args.ack:
            from edi.adapters.ig_check import check_file

            report = check_file(source, report, limits=options.limits, ack_path=args.ack, ack_control=args.ack_control,
                                engine=args.ig_engine, identity=args.ack_sender)
    finally:
        if isinstance(source, files.Spool):
            source.close()
    if args.record and not report.errors and not report.unreadable:
        jobs.record_passed_on(report, engine, options)
    _log_report(log, report, started, exit_code(report))
    return report, engine


def people_report(report: FileReport, engine: RuleEngine, result: object | None = None) -> PeopleReport:
    """The report for people: patient-days with findings, and the changes of a fix."""
    from edi.report.people import Change, PeopleReport, patient_days

    segments = {f.segment for f in report.findings}
    days = patient_days(engine.index, segments) if segments else ()
    changes: tuple = ()
    if result is not None:
        claim_of = _claim_numbers(report, engine)
        changes = tuple(Change(claim=claim_of(c.number), segment=c.number, before=c.old.decode("latin-1"),
                               after=c.new.decode("latin-1") if c.new is not None else None)
                        for c in sorted(result.changes, key=lambda c: c.number))  # type: ignore[attr-defined]
    return PeopleReport(report=report, days=days, changes=changes, fixed=result is not None)


def _claim_numbers(report: FileReport, engine: RuleEngine) -> Callable[[int], str]:
    """segment number -> CLM01 of the claim it belongs to (from the indexed lines' claims)."""
    import bisect

    index = engine.index
    starts = dict(zip(index.claim_segments, index.claim_ids, strict=True))
    ordered = sorted(starts)

    def claim_of(number: int) -> str:
        position = bisect.bisect_right(ordered, number) - 1
        return starts[ordered[position]] if position >= 0 else "-"

    return claim_of


def run_synth(args: argparse.Namespace) -> int:
    from edi.synthetic import generate

    with files.atomic_output(args.output) as handle:
        for chunk in generate(args.claims, args.seed, rule_breaking_share=args.rule_breaking_share):
            handle.write(chunk)
    return 0


def _render_diff(changes: list) -> str:
    out = []
    for change in sorted(changes, key=lambda c: c.number):
        out.append(f"- {change.number}: {change.old.decode('latin-1')}")
        if change.new is not None:
            out.append(f"+ {change.number}: {change.new.decode('latin-1')}")
    return "\n".join(out) + ("\n" if out else "")


def run_fix(args: argparse.Namespace) -> int:
    if args.in_place == bool(args.output):
        sys.stderr.write("edi837 fix: give exactly one of -o OUT and --in-place\n")
        return EXIT_USAGE
    if args.in_place and args.input == "-":
        sys.stderr.write("edi837 fix: --in-place needs a file, not standard input\n")
        return EXIT_USAGE
    if _refuse_clashing_outputs("fix", {"IN": args.input}, {"-o": args.output, "--report": args.report,
                                                            "--report-output": args.report_output,
                                                            "--hold": args.hold}):
        return EXIT_USAGE
    if args.hold == "-":
        sys.stderr.write("edi837 fix: --hold needs a file, not standard output\n")
        return EXIT_USAGE
    if args.hold and args.in_place:
        # When every claim is held, OUT is not written: IN would keep the held claims, and they
        # would be sent on from there as well as held.
        sys.stderr.write("edi837 fix: --hold and --in-place do not go together; give -o OUT\n")
        return EXIT_USAGE
    log = logs.get_logger()
    started = time.perf_counter()
    options = job_options(args)
    source: str | files.Spool = files.Spool() if args.input == "-" else args.input  # fix reads IN twice
    target = args.input if args.in_place else args.output
    progress = Progress(files.input_size(source), label="checking")
    try:
        with contextlib.ExitStack() as outputs:
            output: str | files.OutputIfWritten = target
            held: files.OutputIfWritten | None = None
            if args.hold:  # each output only when it holds a claim (``edi.split``)
                held = outputs.enter_context(files.OutputIfWritten(args.hold))
                if target != "-":
                    output = outputs.enter_context(files.OutputIfWritten(target))
            try:
                outcome = jobs.process(source, options, mode="rewrite", output=output, name=args.input, hold=held,
                                       on_progress=progress)
            finally:
                progress.close()
    finally:
        if isinstance(source, files.Spool):
            source.close()
    if isinstance(outcome, Retry):
        raise outcome.error  # main() writes its line and exits 75, as for every error
    if isinstance(outcome, Refused):
        # Never a silent rewrite of a malformed file: report, write nothing, keep the input.
        report = outcome.report
        if args.report:
            files.write_atomically(args.report, (report.to_json() + "\n").encode())
        sys.stderr.write(render_text(report))
        sys.stderr.write(f"edi837 fix: {args.input}: not rewritten (the input has X12 errors)\n"
                         if not report.unreadable else "")
        log.info("file.not_fixed", exit_code=outcome.exit_code, errors=len(report.errors))
        return outcome.exit_code
    report, engine, result = outcome
    assert result is not None  # an accepted fix always carries its rewrite
    if args.report:
        files.write_atomically(args.report, (report.to_json() + "\n").encode())
    reader_stream = sys.stderr if target == "-" else sys.stdout
    if args.diff:
        reader_stream.write(_render_diff(result.changes))
    if args.format in DOCUMENT_FORMATS:  # streamed: a worklist of 100k claims is never whole in memory
        from edi.report.documents import worklist_file, write_document

        made = people_report(report, engine, result) if args.format == "xml" else worklist_file(report, engine, fixed=True)
        with contextlib.ExitStack() as stack:
            if args.report_output:
                write = stack.enter_context(files.atomic_output(args.report_output)).write
            else:
                write = reader_stream.buffer.write
            write_document(write, args.format, [made])
        reader_stream.flush()
    else:
        text = (render_text(report) if args.format == "text" else report.to_json() + "\n").encode()
        if args.report_output:
            files.write_atomically(args.report_output, text)
        else:
            reader_stream.buffer.write(text)
            reader_stream.flush()
    if report.held_claims is not None:
        sys.stderr.write(f"edi837 fix: {report.held_claims} of {report.claims} claim(s) held for review"
                         f"{' in ' + args.hold if report.held_claims else ''}\n")
    code = exit_code(report)
    log.info("file.fixed", file_id=report.sha256[:12], claims=report.claims, lines=report.lines,
             findings=len(report.findings), dropped=len(result.dropped), replaced=len(result.replaced),
             exit_code=code, duration_ms=round((time.perf_counter() - started) * 1000, 1))
    return _final_code(code, args)


def job_options(args: argparse.Namespace) -> jobs.JobOptions:
    book = load_rule_book(args.rules_dir)
    select, ignore = tuple(_prefixes(args.select)), tuple(_prefixes(args.ignore))
    check_selection(book, select, ignore)  # an unknown prefix is refused before any file is read
    return jobs.JobOptions(book=book, limits=_limits(args), select=select, ignore=ignore,
                           history=open_history_from(args), tables=open_tables_from(args),
                           hold_severity=getattr(args, "hold_severity", "error"))


def _tables_location(args: argparse.Namespace) -> tuple[str | None, bool]:
    """(URL, whether it was named: --tables or $EDI837_TABLES) of the tables store."""
    from edi.adapters.databases import TABLES_URL_ENV, tables_url

    named = bool(getattr(args, "tables", None) or os.environ.get(TABLES_URL_ENV))
    history = getattr(args, "history", None) or os.environ.get("EDI837_HISTORY")
    return tables_url(getattr(args, "tables", None), history), named


def open_tables_from(args: argparse.Namespace) -> Any:
    """The tables lookup for the rules; None when no store is named and none lies beside the
    history (the NCC rules are then inactive). A named SQLite store that does not exist is an
    error (TABLES_NOT_FOUND): a typo must not switch the rules off unseen."""
    url, named = _tables_location(args)
    if url is None:
        return None
    from edi.adapters.databases import is_postgres, sqlite_path
    from edi.adapters.tables import open_tables

    if not named and not is_postgres(url) and not os.path.exists(sqlite_path(url)):
        return None
    return open_tables(url).lookup()


def run_rules(args: argparse.Namespace) -> int:
    from edi.rules.ncc import is_active

    book = load_rule_book(args.rules_dir)
    if args.rule_id is None:
        tables = open_tables_from(args)
        out = []
        for spec in book.rules:
            state = "" if is_active(spec, tables) else "  (inactive: no table of its kind imported; `edi837 tables import`)"
            out.append(f"{spec.id}  {spec.severity:<7}  medicare={spec.actions['medicare']:<10} "
                       f"medicaid={spec.actions['medicaid']:<10} other={spec.actions['other']:<10} {spec.title}{state}")
        sys.stdout.write("\n".join(out) + "\n")
        return 0
    try:
        spec = book.rule(args.rule_id.upper())
    except KeyError:
        sys.stderr.write(f"edi837: no rule {args.rule_id}; `edi837 rules` lists them\n")
        return EXIT_USAGE
    sys.stdout.write(render_rule_doc(spec))
    return 0


def run_watch(args: argparse.Namespace) -> int:
    from edi.adapters.watcher import Watcher, WatchSettings, create_folders, read_status
    from edi.ig.acknowledge import AckIdentity

    if args.status:  # reads what a running watcher wrote; never creates a folder (a typo stays a typo)
        import json  # here: one-shot commands do not pay for its import

        status = read_status(args.root, args.ledger)
        if status is None:
            sys.stderr.write("edi837 watch: ROOT is not a watcher folder (no inbound/ and state/)\n")
            return EXIT_NO_INPUT
        sys.stdout.write(json.dumps(status, sort_keys=True) + "\n")
        return 0
    settings = WatchSettings(
        root=args.root, mode=args.mode, stable_for=args.stable_for, scan_interval=args.scan_interval,
        max_bytes=args.max_bytes, incomplete_grace=args.incomplete_grace, max_attempts=args.max_attempts,
        duplicates=args.duplicates, control_reuse=args.control_reuse, ledger_url=args.ledger, hold=args.hold,
        acks=(args.ack_sender or AckIdentity()) if args.acks or args.ack_sender else None,
    )
    if not args.history and not os.environ.get("EDI837_HISTORY"):
        # watch keeps a history by default, under its state folder
        args.history = os.path.join(args.root, "state", "history.sqlite")
        create_folders(args.root)
    watcher = Watcher(settings, job_options(args))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    watcher.run(once=args.once, max_scans=args.max_scans)
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from edi.adapters.gateway import serve

    if not os.environ.get("EDI837_API_TOKEN") and not args.partners:
        sys.stderr.write("edi837 serve: set EDI837_API_TOKEN or give --partners FILE (no anonymous access)\n")
        return EXIT_USAGE
    # refuse an unknown --select/--ignore prefix at start-up, not per request
    check_selection(load_rule_book(args.rules_dir), _prefixes(args.select), _prefixes(args.ignore))
    history = args.history or os.environ.get("EDI837_HISTORY")
    if history:
        store = open_history_from(args)  # refuse to start on a bad configuration, not per request
        if store is not None:
            store.close()
    tables = open_tables_from(args)  # the same: a named store that is missing stops the start
    if tables is not None:
        tables.close()
    return serve({
        "rules_dir": args.rules_dir, "select": _prefixes(args.select), "ignore": _prefixes(args.ignore),
        "history": history, "tables": _tables_location(args)[0] if tables is not None else None, "partners": args.partners, "log_level": args.log_level,
        "limits": {"max_segment_length": args.max_segment_length, "max_elements": args.max_elements},
        "settings": {"max_bytes": args.max_bytes, "workers": args.threads, "time_limit": args.time_limit,
                     "body_timeout": args.body_timeout, "max_pending": args.max_pending, "state": args.state or "",
                     "ack_sender": f"{args.ack_sender.qualifier}:{args.ack_sender.sender}" if args.ack_sender else ""},
        "connections": {"keep_alive_timeout": args.keep_alive_timeout, "header_timeout": args.header_timeout,
                        "max_connections": args.max_connections},
    }, host=args.host, port=args.port, workers=args.workers)


def run_filter(args: argparse.Namespace) -> int:
    """stdin -> stdout; the output on stdout only on success; the report as JSON on stderr."""
    if _refuse_clashing_outputs("filter", {"standard input": "-"}, {"standard output": "-", "--report": args.report}):
        return EXIT_USAGE
    options = job_options(args)
    output = io.BytesIO()
    with files.Spool() as source:
        outcome = jobs.process(source, options, mode=args.mode, output=output, name="-")
    if isinstance(outcome, Retry):
        raise outcome.error  # main() writes its line and exits 75; nothing on standard output
    if isinstance(outcome, Refused):
        return _emit_filter_report(outcome.report, args.report)
    sys.stdout.buffer.write(output.getvalue())
    sys.stdout.buffer.flush()
    return _final_code(_emit_filter_report(outcome.report, args.report), args)


def _emit_filter_report(report: FileReport, path: str | None) -> int:
    payload = report.to_json() + "\n"
    if path:
        files.write_atomically(path, payload.encode())
    else:
        sys.stderr.write(payload)
    return exit_code(report)


def run_history(args: argparse.Namespace) -> int:
    from datetime import date, timedelta

    history = open_history_from(args)
    if history is None:
        sys.stderr.write("edi837 history: give --history URL or set EDI837_HISTORY\n")
        return EXIT_USAGE
    removed = history.prune(date.today() - timedelta(days=args.older_than))
    logs.get_logger().info("history.pruned", count=removed)
    sys.stdout.write(f"{removed} event(s) older than {args.older_than} day(s) removed\n")
    return 0


def run_tables(args: argparse.Namespace) -> int:
    from edi.adapters.tables import open_tables

    url, _named = _tables_location(args)
    if url is None:
        sys.stderr.write("edi837 tables: give --tables URL, set EDI837_TABLES, or give a history store to put it beside\n")
        return EXIT_USAGE
    if args.tables_command == "list":
        store = open_tables(url)
        try:
            records = store.imports()
        finally:
            store.close()
        sys.stdout.write("source    kind  quarter  rows      file hash     imported             file\n")
        for record in records:
            sys.stdout.write(f"{record.source:<9} {record.kind:<5} {record.version:<8} {record.rows:<9} "
                             f"{record.file_hash[:12]}  {record.imported_at[:19]}  {record.file_name}\n")
        if not records:
            sys.stdout.write("(no tables imported: NCC001-NCC003 are inactive)\n")
        return 0
    from edi.adapters.table_import import import_files

    started = time.perf_counter()
    results = import_files(args.table_files, url, source=args.source, quarter=args.quarter)
    for result in results:
        state = "already loaded, skipped" if result.already_loaded else "imported"
        sys.stdout.write(f"{result.name}: {result.source} {result.kind} {result.version}: {result.rows} rows {state}\n")
    logs.get_logger().info("tables.imported", files=len(results), rows=sum(r.rows for r in results),
                           duration_ms=round((time.perf_counter() - started) * 1000, 1))
    return 0


COMMANDS = {"tables": run_tables, "validate": run_validate, "fix": run_fix, "synth": run_synth, "rules": run_rules, "history": run_history,
            "watch": run_watch, "serve": run_serve, "filter": run_filter}


LONG_RUNNING_COMMANDS = frozenset({"serve", "watch"})


def tune_gc(command: str | None) -> None:
    """The cyclic collector per command. A one-shot command runs without it: a run allocates
    millions of short-lived, acyclic values (segments, lines, decimals) that reference counting
    frees at once, the collector's passes over them cost a sixth of a run, and the process
    exits. ``serve`` and ``watch`` run for months: any cycle a library makes (an exception and
    its traceback, an event loop's callbacks) would pile up, so they keep the collector on;
    what was loaded at start-up is frozen out of its passes either way."""
    gc.freeze()
    if command in LONG_RUNNING_COMMANDS:
        gc.enable()
    else:
        gc.disable()


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    tune_gc(None)  # off while parsing: only the command knows whether it runs for long
    # Claim files are PHI: whatever this process creates (outputs, reports, databases with their
    # journals, temp files) is readable by its owner only.
    os.umask(0o077)
    # SIGTERM (a gateway's timeout, systemd stopping a job) unwinds like an exception, so every
    # cleanup on the way out runs: temp outputs are removed, transactions rolled back. `watch` and
    # `serve` install their own handlers.
    signal.signal(signal.SIGTERM, _terminate)
    words = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(only=command_named(words)).parse_args(words)
    tune_gc(args.command)
    logs.configure(getattr(args, "log_level", None))
    log = logs.get_logger()
    try:
        return COMMANDS[args.command](args)
    except EdiError as error:
        # The text line below is the message; the log line (info) is for who asks for logs. Both
        # at the default level showed every error twice.
        log.info("command.failed", error_code=error.code)
        sys.stderr.write(f"edi837: {error.describe()}\n")
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # noqa: BLE001 - the last line of defence: exit 70, no data in text
        log.info("command.crashed", error_type=type(error).__name__)
        sys.stderr.write(f"edi837: internal error ({type(error).__name__}); no data was changed\n")
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
