"""The error-code registry: every code edi837 emits, once, with its family and front-end hints.

Codes are a public contract (reports, ``.reason.json`` files, problem titles, logs): never
reused, never renamed, never removed (``tests/golden/error-codes.txt`` keeps the list). A code's
``exit_code`` and ``http_status`` say what a front end answers when that code stops a job:
``EdiError.exit_code`` and ``EdiError.http_status`` read them from here. ``None`` means the code
never ends a process or a request by itself (a report note, a watcher reject reason).

The README's "Error codes" table is made from this list (``bin/make-error-codes``), and
``tests/test_codes.py`` checks that every code the source emits is registered here.

A NamedTuple, not a dataclass: this module is imported when an error's hint is read, and
``dataclasses`` costs start-up time the benchmark measures.
"""

from __future__ import annotations

from edi.errors import (
    EXIT_CANT_WRITE,
    EXIT_DATA,
    EXIT_INTERNAL,
    EXIT_NO_INPUT,
    EXIT_TEMPFAIL,
    EXIT_USAGE,
)
from edi.records import Record

UNPROCESSABLE = 422  # the client's file cannot be processed
SERVER_ERROR = 500  # the server's configuration or store is at fault, not the client's file
UNAVAILABLE = 503  # retry later (with Retry-After)


class Code(Record):
    name: str  # the code itself; for a family with a variable suffix, its prefix (``IG_IK3_``)
    family: str
    exit_code: int | None
    http_status: int | None
    doc: str  # one line: what it means
    variable: bool = False  # the code is ``name`` plus a suffix (pyx12's own codes)

    @property
    def shown(self) -> str:
        return f"{self.name}<code>" if self.variable else self.name


def _family(family: str, exit_code: int | None, http_status: int | None,
            *entries: tuple[str, str]) -> list[Code]:
    return [Code(name, family, exit_code, http_status, doc) for name, doc in entries]


def _variable(prefix: str, doc: str) -> Code:
    return Code(prefix, "ig", EXIT_DATA, UNPROCESSABLE, doc, variable=True)


CODES: tuple[Code, ...] = (
    *_family(
        "internal", EXIT_INTERNAL, SERVER_ERROR,
        ("EDI000", "an error edi837 raised without a more precise code"),
    ),
    *_family(
        "syntax", EXIT_DATA, UNPROCESSABLE,
        ("X12000", "the bytes are not a readable X12 interchange (no more precise code)"),
        ("NOT_X12", "empty, or does not begin with an ISA header (also a watcher reject reason)"),
        ("NO_ISA", "begins at GS or ST: no ISA declares the delimiters, and edi837 does not guess them"),
        ("UTF16", "the input is UTF-16 text, not X12 bytes"),
        ("BAD_ISA", "the ISA header is incomplete"),
        ("BAD_DELIMITER", "the ISA declares an unusable or reused separator or terminator"),
        ("SEGMENT_TOO_LONG", "a segment is longer than --max-segment-length"),
        ("TOO_MANY_ELEMENTS", "a segment has more elements than --max-elements"),
    ),
    *_family(
        "envelope", EXIT_DATA, UNPROCESSABLE,
        ("ISA_WIDTH", "the ISA header is not 106 characters (fixed-width fields)"),
        ("SE01_COUNT", "SE01 differs from the number of segments from ST to SE"),
        ("SE02_CONTROL", "SE02 differs from ST02"),
        ("GE01_COUNT", "GE01 differs from the number of ST in the group"),
        ("GE02_CONTROL", "GE02 differs from GS06"),
        ("IEA01_COUNT", "IEA01 differs from the number of GS in the interchange"),
        ("IEA02_CONTROL", "IEA02 differs from ISA13"),
        ("MISSING_SE", "a transaction set not closed by SE (truncated file)"),
        ("MISSING_GE", "a functional group not closed by GE (truncated file)"),
        ("MISSING_IEA", "an interchange not closed by IEA (premature end of file)"),
        ("UNEXPECTED", "an envelope segment where it cannot stand (SE outside ST, ...)"),
        ("BAD_COUNT", "an SE01, GE01 or IEA01 that is not a number"),
    ),
    *_family(
        "structure", EXIT_DATA, UNPROCESSABLE,
        ("HL_DUPLICATE_ID", "HL01 repeats an earlier HL ID of the transaction set"),
        ("HL_PARENT_UNKNOWN", "HL02 names no earlier HL of the transaction set"),
        ("CLAIM_WITHOUT_LINES", "a 2300 claim without a 2400 service line"),
        ("LINE_WITHOUT_SV1", "a 2400 service line without SV1"),
        ("BAD_NUMBER", "CLM02, SV102 or SV104 is not a decimal number"),
        ("BAD_DATE", "DTP03 service date is not a CCYYMMDD calendar date"),
        ("EMPTY_SEGMENT", "an empty segment (two terminators in a row)"),
        ("BAD_SEGMENT_ID", "a segment ID that is not 2-3 upper-case letters or digits"),
        ("OUTSIDE_LOOP", "CLM, LX or SV1 outside the loop it belongs to"),
        ("BAD_PROCEDURE_QUALIFIER", "SV101-1 is not a procedure code qualifier (HC, ER, IV, WK): often another component separator than ISA16"),
    ),
    *_family(
        "note", None, None,
        ("VERSION_VARIANT", "note: an 837P version variant read with the 005010X222A1 loop table"),
        ("PASSED_OVER", "note: a transaction set that is not an 837P 005010X222, counted and passed over"),
        ("IG_VERSION_MAPPED", "note: 005010X222 or X222A2 checked against the X222A1 guide"),
        ("IG_NOT_RUN", "note: the file could not be read to its end, so no implementation-guide check ran"),
        ("IG_ACK_NOT_WRITTEN", "note: no acknowledgment written (the input is one, or holds no 837P to acknowledge)"),
    ),
    _variable("IG_IK3_", "implementation guide: segment error (IK304 code)"),
    _variable("IG_IK4_", "implementation guide: element error (IK403 code)"),
    _variable("IG_IK5_", "implementation guide: transaction set error (IK502 code)"),
    _variable("IG_AK9_", "implementation guide: functional group error (AK905 code)"),
    _variable("IG_TA1_", "implementation guide: interchange error (TA1 note code; ENGINE: pyx12 failed)"),
    *_family(
        "ig", EXIT_DATA, UNPROCESSABLE,
        ("IG_INCOMPLETE", "pyx12 stopped before the end of the file (a stray ~~, a truncated file)"),
        ("IG_SEGMENT_TOO_LONG", "a segment over the 8 KB pyx12 reads: not checked against the guide"),
        ("IG_NOT_CHECKED", "a transaction set the implementation-guide check does not judge (a note when no 837P is in the file)"),
        ("IG_GS_ELEMENT", "a functional group header (GS) element breaks the guide (element and IK403 code in the message)"),
        ("ACK_NOT_POSSIBLE", "no ISA header: no acknowledgment can be addressed"),
    ),
    *_family(
        "rules", EXIT_USAGE, SERVER_ERROR,
        ("RUL000", "a rules/ file is malformed (no more precise code)"),
        ("RULES_INVALID", "a rules/ file has a bad key or value (file, key and problem in the message)"),
        ("RULES_MISSING", "the --rules folder or one of its files is missing or unreadable"),
    ),
    *_family(
        "usage", EXIT_USAGE, SERVER_ERROR,
        ("USAGE", "the command or its configuration is wrong"),
        ("UNKNOWN_RULE_PREFIX", "a --select or --ignore prefix that no rule ID starts with"),
        ("HISTORY_URL", "an empty history URL"),
        ("HISTORY_DRIVER_MISSING", "a postgresql:// history without psycopg installed"),
    ),
    *_family(
        "history key", EXIT_USAGE, SERVER_ERROR,
        ("HISTORY_KEY_MISSING", "no history key where one is required (PostgreSQL, or a store whose key file is gone)"),
        ("HISTORY_KEY_TOO_SHORT", "a history key under 32 bytes (an empty one included)"),
        ("HISTORY_KEY_MISMATCH", "not the key the history store was made with: every lookup would miss"),
    ),
    *_family(
        "history store", EXIT_CANT_WRITE, SERVER_ERROR,
        ("HISTORY_CORRUPT", "the history store is corrupt or not one: restore it or point --history elsewhere"),
        ("HISTORY_SCHEMA_UNKNOWN", "a history schema newer than this edi837, or a database of something else"),
    ),
    *_family(
        "tables", EXIT_USAGE, SERVER_ERROR,
        ("TABLE_FILE_INVALID", "a CMS table file is not a PTP, MUE or add-on layout, or a row cannot be read (file and line in the message)"),
        ("TABLE_VERSION_UNKNOWN", "a CMS table's source or quarter cannot be told from its name: give --source or --quarter"),
        ("TABLES_NOT_FOUND", "the named tables store does not exist: run `edi837 tables import` first"),
    ),
    *_family(
        "tables store", EXIT_CANT_WRITE, SERVER_ERROR,
        ("TABLES_CORRUPT", "the tables store is corrupt or not one: import the tables again into a new store"),
        ("TABLES_SCHEMA_UNKNOWN", "a tables store schema newer than this edi837"),
    ),
    *_family(
        "input", EXIT_NO_INPUT, UNPROCESSABLE,
        ("IO001", "the input is missing or unreadable (no more precise code)"),
        ("UNREADABLE", "the input cannot be opened or read, or is not a regular file (also a watcher reject reason)"),
    ),
    *_family(
        "output", EXIT_CANT_WRITE, SERVER_ERROR,
        ("IO002", "the output could not be written (no more precise code)"),
        ("UNWRITABLE", "an output or the spool of standard input could not be written; the input is untouched"),
    ),
    *_family(
        "temporary", EXIT_TEMPFAIL, UNAVAILABLE,
        ("TMP001", "a dependency is unreachable: retry later (no more precise code)"),
        ("HISTORY_UNAVAILABLE", "the history store is unreachable or locked, or its key file cannot be made"),
        ("LEDGER_UNAVAILABLE", "the watcher's ledger is unreachable or locked"),
        ("TABLES_UNAVAILABLE", "the tables store is unreachable or locked"),
        ("IDEMPOTENCY_STORE", "serve's Idempotency-Key store is unreachable"),
        ("INPUT_CHANGED", "the input changed while it was processed; nothing was written or sent"),
    ),
    *_family(
        "watcher", None, None,
        ("SYMLINK", "watcher: a symbolic link, moved itself and never followed"),
        ("HARD_LINK", "watcher: a file with more than one link, moved by name and not touched"),
        ("NOT_REGULAR_FILE", "watcher: a folder, FIFO, socket or device"),
        ("BAD_NAME", "watcher: the file name has control characters"),
        ("TOO_LARGE", "watcher: larger than --max-bytes"),
        ("PREMATURE_EOF", "watcher: no final IEA matching ISA13 and the GS count after --incomplete-grace"),
        ("CONTENT_ERROR", "watcher: the interchange has X12 errors (their codes in errors)"),
        ("DUPLICATE_CONTROL_NUMBER", "watcher: (ISA06, ISA13) of a finished interchange with other content"),
        ("DUPLICATE_CONTENT", "watcher: content already processed, with --duplicates reject"),
        ("QUARANTINED", "watcher: a temporary error on each of --max-attempts attempts"),
    ),
)

BY_NAME: dict[str, Code] = {code.name: code for code in CODES if not code.variable}
_VARIABLE: tuple[Code, ...] = tuple(code for code in CODES if code.variable)


def lookup(name: str) -> Code | None:
    """The registered code ``name`` (a variable family's code by its prefix), or None."""
    found = BY_NAME.get(name)
    if found is not None:
        return found
    for code in _VARIABLE:
        if name.startswith(code.name) and len(name) > len(code.name):
            return code
    return None


def table() -> str:
    """The README's "Error codes" table (``bin/make-error-codes`` writes it)."""
    rows = ["| code | family | exit | HTTP | meaning |", "|---|---|---|---|---|"]
    for code in CODES:
        exit_text = "-" if code.exit_code is None else str(code.exit_code)
        http_text = "-" if code.http_status is None else str(code.http_status)
        rows.append(f"| `{code.shown}` | {code.family} | {exit_text} | {http_text} | {code.doc} |")
    return "\n".join(rows) + "\n"
