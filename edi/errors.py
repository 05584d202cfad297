"""The one error root of edi837 and its few families.

Every error carries a stable ``code`` (a public contract, never reused), the 1-based segment
number and the byte offset where they are known, what was expected, and a hint for front ends
(process exit code). Messages never contain element values: claim files are PHI.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 64
EXIT_DATA = 65
EXIT_NO_INPUT = 66
EXIT_INTERNAL = 70
EXIT_CANT_WRITE = 74
EXIT_TEMPFAIL = 75


class EdiError(Exception):
    """Root of every error edi837 raises on purpose."""

    code = "EDI000"
    exit_code = EXIT_INTERNAL

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        segment: int | None = None,
        offset: int | None = None,
        expected: str | None = None,
    ) -> None:
        if code is not None:
            self.code = code
        self.message = message
        self.segment = segment
        self.offset = offset
        self.expected = expected
        super().__init__(self.describe())

    def describe(self) -> str:
        where = []
        if self.segment is not None:
            where.append(f"segment {self.segment}")
        if self.offset is not None:
            where.append(f"byte {self.offset}")
        text = f"{self.code}: {self.message}"
        if self.expected:
            text += f" (expected {self.expected})"
        if where:
            text += f" at {', '.join(where)}"
        return text

    def as_record(self) -> dict[str, object]:
        """The error as an entry of the report's ``errors`` list."""
        message = self.message if not self.expected else f"{self.message} (expected {self.expected})"
        return {"code": self.code, "segment": self.segment, "offset": self.offset, "message": message}


class X12SyntaxError(EdiError, ValueError):
    """The bytes are not a readable X12 interchange (delimiters, encoding, limits, truncation)."""

    code = "X12000"
    exit_code = EXIT_DATA


class RulesError(EdiError, ValueError):
    """A file under ``rules/`` is malformed; names the file, the key and the problem."""

    code = "RUL000"
    exit_code = EXIT_USAGE


class UsageError(EdiError, ValueError):
    """The command or its configuration is wrong (exit 64)."""

    code = "USAGE"
    exit_code = EXIT_USAGE


class InputError(EdiError, OSError):
    """The input is missing or unreadable."""

    code = "IO001"
    exit_code = EXIT_NO_INPUT


class OutputError(EdiError, OSError):
    """The output could not be written; the input is untouched."""

    code = "IO002"
    exit_code = EXIT_CANT_WRITE


class TemporaryFailure(EdiError, OSError):
    """A dependency (history store, ledger) is unreachable: retry later."""

    code = "TMP001"
    exit_code = EXIT_TEMPFAIL


class HistoryKeyError(UsageError):
    """The history key is unusable or is not the key the store was first opened with (exit 64).

    Codes: ``HISTORY_KEY_MISSING`` (no key where one is required), ``HISTORY_KEY_TOO_SHORT``
    (under 32 bytes, an empty key file included), ``HISTORY_KEY_MISMATCH`` (the store's recorded
    key fingerprint differs: every lookup would miss, so PMP004 and PMP011 would go quiet).
    """

    code = "HISTORY_KEY_MISMATCH"


class HistoryStoreError(EdiError, OSError):
    """The history store is unusable until an operator acts; retrying will not help (exit 74).

    Codes: ``HISTORY_CORRUPT`` (not a SQLite database, malformed pages, a folder, tables that do
    not match the schema), ``HISTORY_SCHEMA_UNKNOWN`` (a schema version newer than this edi837,
    or a database of something else). Exit 74 (EX_IOERR) because the store cannot be read as
    one: not 75, which tells schedulers to retry, and not 65, which blames the claim file.
    """

    code = "HISTORY_CORRUPT"
    exit_code = EXIT_CANT_WRITE


class ErrorEntry:
    """A problem in the data that does not stop processing: one entry of the report's ``errors``.

    A plain slotted class (not a dataclass) because the envelope checks build them on hot paths.
    """

    __slots__ = ("code", "message", "offset", "segment")

    def __init__(self, code: str, segment: int | None, offset: int | None, message: str) -> None:
        self.code = code
        self.segment = segment
        self.offset = offset
        self.message = message

    def as_record(self) -> dict[str, object]:
        return {"code": self.code, "segment": self.segment, "offset": self.offset, "message": self.message}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ErrorEntry) and self.as_record() == other.as_record()

    def __hash__(self) -> int:
        return hash((self.code, self.segment, self.offset))

    def __repr__(self) -> str:
        return f"ErrorEntry({self.code}, segment={self.segment}, offset={self.offset})"


def entry_from_error(error: EdiError) -> ErrorEntry:
    record = error.as_record()
    return ErrorEntry(error.code, error.segment, error.offset, str(record["message"]))
