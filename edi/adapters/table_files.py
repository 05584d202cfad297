"""Reading the CMS correct-coding files: PTP pairs, MUE limits and add-on code edits.

Formats (what the CMS and Medicaid NCCI pages publish; README "CMS tables" cites the sources):
tab-delimited text (``.txt``), CSV (``.csv``), Excel 2007+ (``.xlsx``, read with openpyxl), and
``.zip`` archives of any of them (the quarterly files come zipped, in several parts). Each file
has a few title and copyright lines above its column names: the header row is found by its
column names (a header split over two or three lines, as in the PTP text files, is joined), and
the kind of table by which columns it has:

- PTP: ``Column 1``, ``Column 2``, ``Effective Date``, ``Deletion Date`` (``*`` = none),
  ``Modifier`` (0 not allowed, 1 allowed, 9 not applicable); ``*=in existence prior to 1996``
  and ``PTP Edit Rationale`` are read past.
- MUE: ``HCPCS/CPT Code``, ``... MUE Values``, ``MUE Adjudication Indicator`` (text such as
  ``2 Date of Service Edit: Policy``: its first digit is the MAI); ``MUE Rationale`` read past.
- Add-on code edits: ``Add-On Code``, ``Primary Code``, ``AOC Edit Type``, ``AOC Edit Eff Dt``,
  ``AOC Edit Del Dt`` and, when present, ``Primary Code Del Dt`` and ``AOC Del Dt`` (an edit
  ends at the first of its deletion dates); primary ``CCCCC`` (contractor-defined) is skipped.

Dates may be ``YYYYMMDD``, ``YYYYDDD`` (Julian, as some add-on files give them), ``MM/DD/YYYY``,
``YYYY-MM-DD`` or an Excel date cell. Anything else is refused with the file, the line and the
problem (``TableFileError``, exit 64): no row is guessed at.

Which source (Medicare or Medicaid) and which quarter a file holds is read from its name and
title lines (``2026Q1``, ``q1-2026``, ``Eff_01-01-2026``, Medicare's ``v320r0``: version 32.0
is 2026Q1, as version 30.0 was January 2024), unless the command line gives them.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import os
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from edi.errors import UsageError
from edi.records import Record
from edi.rules.ncc import ADD_ON, MUE, PTP

TABLE_EXTENSIONS = (".txt", ".csv", ".xlsx")
HEADER_SEARCH_ROWS = 40  # title and copyright lines above the column names
NO_DATE = 99991231  # "no deletion date": compares after every real date
_CODE = re.compile(r"[0-9A-Z]{5}\Z")
_CONTRACTOR_DEFINED = "CCCCC"


class TableFileError(UsageError):
    """A table file that is not one of the CMS layouts, or a row that cannot be read (exit 64)."""

    code = "TABLE_FILE_INVALID"


class PtpRow(Record):
    column1: str
    column2: str
    effective: int  # YYYYMMDD
    deletion: int  # YYYYMMDD, NO_DATE for none
    modifier: str


class MueRow(Record):
    code: str
    units: Decimal
    mai: int


class AddOnRow(Record):
    add_on: str
    primary: str
    edit_type: int
    effective: int
    deletion: int


class TableFile(Record):
    """One table read whole: its kind, its rows, and what says where it came from."""

    name: str  # the file, or ``archive.zip!member``
    kind: str  # PTP, MUE or ADD_ON
    rows: Iterator[Any]  # parsed lazily, once
    sha256: str
    title: str  # the lines above the header, joined (to tell the source and quarter)


def _fail(name: str, line: int | None, problem: str) -> TableFileError:
    where = f"{name}:{line}" if line is not None else name
    return TableFileError(f"{where}: {problem}")


def read_table_files(path: str) -> tuple[list[TableFile], list[str]]:
    """The tables in ``path`` (a table file or a zip of them), and the zip members skipped."""
    lower = path.lower()
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise _fail(path, None, f"cannot be read ({error.strerror})") from None
    if lower.endswith(".zip"):
        return _read_zip(path, data)
    if not lower.endswith(TABLE_EXTENSIONS):
        raise _fail(path, None, "not a CMS table file: expected .txt, .csv, .xlsx or .zip")
    return [read_table(path, data)], []


def _read_zip(path: str, data: bytes) -> tuple[list[TableFile], list[str]]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [info for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError) as error:
        raise _fail(path, None, f"not a readable zip archive ({error})") from None
    tables: list[TableFile] = []
    skipped: list[str] = []
    chosen: dict[str, zipfile.ZipInfo] = {}
    for info in members:
        stem, extension = os.path.splitext(info.filename)
        if extension.lower() not in TABLE_EXTENSIONS:
            skipped.append(info.filename)  # the PDF read-me and licence notes that come with the tables
            continue
        # A part published both as text and as Excel is read once (text: faster, and the same rows).
        earlier = chosen.get(stem.lower())
        if earlier is None or _preference(info.filename) < _preference(earlier.filename):
            if earlier is not None:
                skipped.append(earlier.filename)
            chosen[stem.lower()] = info
        else:
            skipped.append(info.filename)
    for info in sorted(chosen.values(), key=lambda item: item.filename):
        name = f"{path}!{info.filename}"
        try:
            content = archive.read(info)
        except (zipfile.BadZipFile, OSError, RuntimeError) as error:
            raise _fail(name, None, f"cannot be extracted ({error})") from None
        try:
            tables.append(read_table(name, content))
        except _NoHeader:
            skipped.append(info.filename)  # a text note beside the tables, not a table
    if not tables:
        raise _fail(path, None, "no PTP, MUE or add-on table in the archive")
    return tables, skipped


def _preference(name: str) -> int:
    return TABLE_EXTENSIONS.index(os.path.splitext(name)[1].lower())


class _NoHeader(TableFileError):
    """No header row of a known table among the first lines."""


def read_table(name: str, data: bytes) -> TableFile:
    """One table file: its header read now, its rows parsed lazily (``TableFile.rows`` is read
    once, by the import, in batches: a 1.5-million-row table never sits in memory as rows).
    ``name`` says which file in errors."""
    rows = _xlsx_rows(name, data) if name.lower().endswith(".xlsx") else _text_rows(data)
    top = list(itertools.islice(rows, HEADER_SEARCH_ROWS))
    kind, columns, first_data, title = _find_header(name, top)
    return TableFile(name=name, kind=kind, rows=_parsed(name, kind, columns, first_data, itertools.chain(top, rows)),
                     sha256=hashlib.sha256(data).hexdigest(), title=title)


def _parsed(name: str, kind: str, columns: dict[str, int], first_data: int,
            rows: Iterator[tuple[int, list[Any]]]) -> Iterator[Any]:
    parse: Callable[[str, int, list[Any], dict[str, int]], Any] = {
        PTP: _ptp_row, MUE: _mue_row, ADD_ON: _add_on_row}[kind]
    seen: dict[str, int] = {}
    count = 0
    wrapped_header = True  # lines right under the header with an empty first cell continue its names
    for number, cells in rows:
        if number < first_data or not any(_text(cell) for cell in cells):
            continue
        if wrapped_header and not _text(cells[0]):
            continue
        wrapped_header = False
        row = parse(name, number, cells, columns)
        if row is None:
            continue
        if kind == MUE:  # one value per code: a second one is a broken file, not a choice to make
            if row.code in seen:
                raise _fail(name, number, f"{row.code} appears twice (first on line {seen[row.code]})")
            seen[row.code] = number
        count += 1
        yield row
    if not count:
        raise _fail(name, first_data, "no rows under the header")


def _text_rows(data: bytes) -> Iterator[tuple[int, list[Any]]]:
    # CMS text is ASCII; Latin-1 reads any byte, so an odd character in a rationale never stops a
    # file. Line by line from the bytes: a decoded copy of a 60 MB table would double the memory.
    lines = (line.rstrip(b"\r\n").decode("latin-1") for line in io.BytesIO(data))
    tabbed = b"\t" in b"\n".join(data.split(b"\n", HEADER_SEARCH_ROWS)[:HEADER_SEARCH_ROWS])
    if tabbed:
        for number, line in enumerate(lines, start=1):
            yield number, line.split("\t")
    else:
        yield from enumerate(csv.reader(lines), start=1)


def _xlsx_rows(name: str, data: bytes) -> Iterator[tuple[int, list[Any]]]:
    import openpyxl  # type: ignore[import-untyped]  # only for Excel files: its import costs start-up time

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as error:  # noqa: BLE001 - openpyxl raises many kinds for a broken file
        raise _fail(name, None, f"not a readable Excel workbook ({type(error).__name__})") from None
    try:
        sheet = book.worksheets[0]
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            yield number, list(values)
    finally:
        book.close()


def _text(cell: Any) -> str:
    return "" if cell is None else str(cell).strip()


def _normal(cell: Any) -> str:
    return re.sub(r"[^a-z0-9*=]", "", _text(cell).lower())


# Column roles per kind: a header cell's normalised text (letters, digits, * and = only) -> role.
def _ptp_role(text: str) -> str | None:
    if text.startswith(("column1", "col1")):
        return "column1"
    if text.startswith(("column2", "col2")):
        return "column2"
    if "1996" in text:
        return None
    if text.startswith("effective"):
        return "effective"
    if text.startswith("deletion"):
        return "deletion"
    if text.startswith("modifier"):
        return "modifier"
    return None


def _mue_role(text: str) -> str | None:
    if "adjudicationindicator" in text or text == "mai":
        return "mai"
    if "rationale" in text:
        return None
    if "muevalue" in text:
        return "units"
    if text.startswith(("hcpcs", "cpt", "hcpcscpt")):
        return "code"
    return None


def _add_on_role(text: str) -> str | None:
    roles = {"addoncode": "add_on", "primarycode": "primary"}
    if text in roles:
        return roles[text]
    if text.startswith("aocedittype"):
        return "type"
    if text.startswith("aoceditef"):
        return "effective"
    if text.startswith("aoceditdel"):
        return "deletion"
    if text.startswith("primarycodedel"):
        return "primary_deletion"
    if text.startswith(("aocdel", "addoncodedel")):
        return "add_on_deletion"
    return None


_LAYOUTS = (
    (PTP, _ptp_role, frozenset({"column1", "column2", "effective", "deletion", "modifier"})),
    (MUE, _mue_role, frozenset({"code", "units", "mai"})),
    (ADD_ON, _add_on_role, frozenset({"add_on", "primary", "type", "effective", "deletion"})),
)


def _roles(cells: list[Any], role_of: Any) -> dict[str, int]:
    found: dict[str, int] = {}
    for position, cell in enumerate(cells):
        role = role_of(_normal(cell))
        if role is not None and role not in found:
            found[role] = position
    return found


def _find_header(name: str, rows: list[tuple[int, list[Any]]]) -> tuple[str, dict[str, int], int, str]:
    """(kind, role -> column, first data line, title text) of the first header among the top lines.

    A header may be split over up to three lines (``Effective`` / ``Date``): the cells of a line
    and the next ones are joined column by column until every required column is named."""
    top = rows[:HEADER_SEARCH_ROWS]
    for index, (_number, cells) in enumerate(top):
        for kind, role_of, required in _LAYOUTS:
            joined = [_text(cell) for cell in cells]
            for extra in range(3):
                if extra:
                    if index + extra >= len(top):
                        break
                    more = top[index + extra][1]
                    joined = [f"{joined[i] if i < len(joined) else ''} {_text(more[i]) if i < len(more) else ''}".strip()
                              for i in range(max(len(joined), len(more)))]
                roles = _roles(joined, role_of)
                if required <= set(roles):
                    title = " ".join(" ".join(_text(cell) for cell in row) for _, row in top[:index])
                    return kind, roles, top[index + extra][0] + 1, title
                if len(set(roles)) < 2:
                    break
    raise _NoHeader(f"{name}: no header row with the columns of a PTP, MUE or add-on table in the first "
                    f"{HEADER_SEARCH_ROWS} lines")


def _cell(cells: list[Any], position: int | None) -> Any:
    if position is None or position >= len(cells):
        return None
    return cells[position]


def _code(name: str, line: int, value: Any, column: str) -> str:
    if type(value) is str and len(value) == 5 and _CODE.match(value):
        return value
    text = _text(value).upper()
    if not _CODE.match(text):
        raise _fail(name, line, f"{column}: {text[:12]!r} is not a 5-character HCPCS/CPT code")
    return text


_DATES: dict[str, int] = {}  # date texts already read: a table repeats a few hundred dates a million times


def _date(name: str, line: int, value: Any, column: str, *, required: bool) -> int:
    if type(value) is str:
        known = _DATES.get(value)
        if known is not None:
            return known
        if len(_DATES) < 100_000 and value.strip() not in ("", "*"):
            _DATES[value] = _read_date(name, line, value, column, required=required)
            return _DATES[value]
    return _read_date(name, line, value, column, required=required)


def _read_date(name: str, line: int, value: Any, column: str, *, required: bool) -> int:
    if isinstance(value, datetime):
        return value.year * 10000 + value.month * 100 + value.day
    if isinstance(value, date):
        return value.year * 10000 + value.month * 100 + value.day
    text = _text(value)
    if isinstance(value, float) and value.is_integer():
        text = str(int(value))
    if text in ("", "*"):
        if required:
            raise _fail(name, line, f"{column}: missing date")
        return NO_DATE
    try:
        if re.fullmatch(r"\d{8}", text):
            parsed = date(int(text[:4]), int(text[4:6]), int(text[6:]))
        elif re.fullmatch(r"\d{7}", text):  # Julian YYYYDDD
            parsed = date.fromordinal(date(int(text[:4]), 1, 1).toordinal() + int(text[4:]) - 1)
            if parsed.year != int(text[:4]):
                raise ValueError(text)
        elif match := re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{4})", text):
            parsed = date(int(match[3]), int(match[1]), int(match[2]))
        elif re.fullmatch(r"\d{4}-\d{2}-\d{2}( 00:00:00)?", text):
            parsed = date.fromisoformat(text[:10])
        else:
            raise ValueError(text)
    except ValueError:
        raise _fail(name, line, f"{column}: {text[:12]!r} is not a date (YYYYMMDD, YYYYDDD, MM/DD/YYYY)") from None
    return parsed.year * 10000 + parsed.month * 100 + parsed.day


def _ptp_row(name: str, line: int, cells: list[Any], columns: dict[str, int]) -> PtpRow:
    modifier = _text(_cell(cells, columns["modifier"]))
    modifier = modifier.removesuffix(".0")
    if modifier not in ("0", "1", "9"):
        raise _fail(name, line, f"modifier indicator: {modifier[:12]!r} is not 0, 1 or 9")
    effective = _date(name, line, _cell(cells, columns["effective"]), "effective date", required=True)
    deletion = _date(name, line, _cell(cells, columns["deletion"]), "deletion date", required=False)
    return PtpRow(_code(name, line, _cell(cells, columns["column1"]), "column 1"),
                  _code(name, line, _cell(cells, columns["column2"]), "column 2"), effective, deletion, modifier)


def _mue_row(name: str, line: int, cells: list[Any], columns: dict[str, int]) -> MueRow:
    code = _code(name, line, _cell(cells, columns["code"]), "HCPCS/CPT code")
    raw = _text(_cell(cells, columns["units"]))
    try:
        units = Decimal(raw)
    except InvalidOperation:
        units = Decimal(-1)
    if units < 0 or units != units.to_integral():
        raise _fail(name, line, f"MUE value: {raw[:12]!r} is not a whole number of units")
    indicator = _text(_cell(cells, columns["mai"]))
    if indicator[:1] not in ("1", "2", "3"):
        raise _fail(name, line, f"MUE adjudication indicator: {indicator[:24]!r} does not start with 1, 2 or 3")
    return MueRow(code, units.quantize(Decimal(1)), int(indicator[0]))


def _add_on_row(name: str, line: int, cells: list[Any], columns: dict[str, int]) -> AddOnRow | None:
    add_on = _code(name, line, _cell(cells, columns["add_on"]), "add-on code")
    primary_text = _text(_cell(cells, columns["primary"])).upper()
    kind_text = _text(_cell(cells, columns["type"]))
    kind_text = kind_text.removesuffix(".0")
    if kind_text not in ("1", "2", "3"):
        raise _fail(name, line, f"AOC edit type: {kind_text[:12]!r} is not 1, 2 or 3")
    if primary_text in ("", _CONTRACTOR_DEFINED):
        if kind_text == "1":
            raise _fail(name, line, "primary code: a type 1 edit must list its primary code")
        return None  # the contractor defines the primaries: nothing to check against
    primary = _code(name, line, primary_text, "primary code")
    effective = _date(name, line, _cell(cells, columns["effective"]), "AOC edit effective date", required=True)
    deletions = [_date(name, line, _cell(cells, columns.get(role)), label, required=False)
                 for role, label in (("deletion", "AOC edit deletion date"),
                                     ("primary_deletion", "primary code deletion date"),
                                     ("add_on_deletion", "add-on code deletion date"))]
    return AddOnRow(add_on, primary, int(kind_text), effective, min(deletions))


# -- source and quarter, from the file name and title lines ----------------------------------
_QUARTER_PATTERNS = (
    (re.compile(r"(20\d\d)[\s_-]*q([1-4])", re.IGNORECASE), lambda m: (int(m[1]), int(m[2]))),
    (re.compile(r"q([1-4])[\s_-]*(20\d\d)", re.IGNORECASE), lambda m: (int(m[2]), int(m[1]))),
    (re.compile(r"(\d{1,2})[-_/](\d{1,2})[-_/](20\d\d)"), lambda m: (int(m[3]), (int(m[1]) - 1) // 3 + 1)),
    # Medicare PTP parts (ccipra-v320r0-f1): NCCI version 30.0 took effect in January 2024.
    (re.compile(r"v(\d\d)(\d)r\d", re.IGNORECASE), lambda m: (1994 + int(m[1]), int(m[2]) + 1)),
)
QUARTER_FORMAT = re.compile(r"(20\d\d)Q([1-4])\Z")


def quarter_start(version: str) -> date:
    """The first day of a quarter written ``2026Q1``."""
    match = QUARTER_FORMAT.match(version)
    if match is None:
        raise UsageError(f"quarter {version!r}: write it like 2026Q1", code="TABLE_VERSION_UNKNOWN")
    return date(int(match[1]), 3 * int(match[2]) - 2, 1)


def guess_quarter(texts: Iterable[str]) -> str | None:
    for text in texts:
        for pattern, read in _QUARTER_PATTERNS:
            match = pattern.search(text)
            if match is not None:
                year, quarter = read(match)
                if 1 <= quarter <= 4 and 1996 <= year <= 2099:
                    return f"{year}Q{quarter}"
    return None


def guess_source(texts: Iterable[str]) -> str | None:
    for text in texts:
        lower = os.path.basename(text).lower() if "!" not in text else text.lower()
        if "medicaid" in lower or re.search(r"(^|[^a-z])mcd([^a-z]|$)", lower):
            return "medicaid"
        if "medicare" in lower or re.search(r"(^|[^a-z])mcr([^a-z]|$)", lower) or "ccipra" in lower:
            return "medicare"
    return None


def describe(table: TableFile) -> Iterator[str]:
    """What a table's source and quarter are guessed from: its name first, then its title lines."""
    yield table.name
    yield table.title
