"""The tables store: the imported CMS correct-coding tables, in SQLite (default) or PostgreSQL.

Where: ``--tables URL``, else ``$EDI837_TABLES``, else beside the history store (a SQLite history
``DIR/history.sqlite`` -> ``DIR/tables.sqlite``; a PostgreSQL history -> the same database, in
tables of its own). The URL rules are the history store's (``edi.adapters.databases``): a path or
``sqlite:///path`` is a SQLite file (WAL, ``BEGIN IMMEDIATE`` for writes, 0600 when new), a
``postgresql://`` URL a PostgreSQL database for several hosts.

What is stored: one ``ncc_import`` row per imported file (source, kind, quarter, the quarter's
first day, file name, SHA-256, row count, time), and its rows in ``ncc_ptp``, ``ncc_mue`` or
``ncc_aoc``; ``ncc_code`` holds every code some table names (the rules index keeps the lines of
those). An import is one transaction over all the files of one command: a file that fails leaves
the tables as they were. The same file (same source, kind and hash) imported again is skipped.

Lookups (``TablesLookup``, the ``CodingTables`` of ``edi.rules.ncc``): the version in force on a
date of service is, per source and kind, the latest imported quarter starting on or before it
(else the earliest one: its rows carry their own effective dates); within it an edit applies when
effective <= date < deletion. ``prefetch`` loads, once per claim file, only the edits among the
file's codes (an indexed ``IN`` query on the primary key), so a 1.5-million-row PTP table costs a
claim file a few milliseconds, not a load of the table: README "Performance" has the figures.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from edi.adapters.databases import is_postgres, open_sqlite, sqlite_path, tables_url
from edi.errors import EdiError, TemporaryFailure, UsageError
from edi.records import Record
from edi.rules.ncc import ADD_ON, MUE, PTP, AddOnEdit, MueLimit, PtpEdit

if TYPE_CHECKING:  # the file reader (csv, zipfile, hashlib) is imported by an import only:
    # the gateway and the tables commands import this module; ``validate`` needs only ``tables_url``.
    from edi.adapters.table_files import TableFile

SCHEMA_VERSION = 1
BATCH_ROWS = 20_000  # rows read and written at a time by an import
IN_CHUNK = 500  # codes per IN (...) query: well under SQLite's and PostgreSQL's parameter limits
SQLITE_CORRUPT, SQLITE_NOTADB = 11, 26
POSTGRES_SCHEMA_BROKEN = frozenset({"XX001", "XX002", "42P01", "42703"})

_SQLITE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS ncc_schema (version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS ncc_import (id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL,
       kind TEXT NOT NULL, version TEXT NOT NULL, quarter_start INTEGER NOT NULL, file_name TEXT NOT NULL,
       file_hash TEXT NOT NULL, row_count INTEGER NOT NULL, imported_at TEXT NOT NULL,
       UNIQUE (source, kind, file_hash))""",
    # The primary keys are the lookup indexes: WITHOUT ROWID keeps one B-tree per table, not two.
    """CREATE TABLE IF NOT EXISTS ncc_ptp (column1 TEXT NOT NULL, column2 TEXT NOT NULL, import_id INTEGER NOT NULL,
       effective INTEGER NOT NULL, deletion INTEGER NOT NULL, modifier TEXT NOT NULL,
       PRIMARY KEY (column1, column2, import_id, effective)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS ncc_mue (code TEXT NOT NULL, import_id INTEGER NOT NULL, units TEXT NOT NULL,
       mai INTEGER NOT NULL, PRIMARY KEY (code, import_id)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS ncc_aoc (add_on TEXT NOT NULL, primary_code TEXT NOT NULL,
       import_id INTEGER NOT NULL, edit_type INTEGER NOT NULL, effective INTEGER NOT NULL, deletion INTEGER NOT NULL,
       PRIMARY KEY (add_on, primary_code, import_id, effective)) WITHOUT ROWID""",
    "CREATE TABLE IF NOT EXISTS ncc_code (code TEXT PRIMARY KEY) WITHOUT ROWID",
)
_POSTGRES_SCHEMA = tuple(
    statement.replace(" WITHOUT ROWID", "").replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY")
    for statement in _SQLITE_SCHEMA
)


class TablesStoreError(EdiError, OSError):
    """The tables store is corrupt or of an unknown schema: an operator must act (exit 74)."""

    code = "TABLES_CORRUPT"


class ImportRecord(Record):
    id: int
    source: str
    kind: str
    version: str
    quarter_start: int
    file_name: str
    file_hash: str
    rows: int
    imported_at: str


class Imported(Record):
    """What became of one file of an import."""

    name: str
    kind: str
    source: str
    version: str
    rows: int
    already_loaded: bool


def _store_error(error: BaseException) -> EdiError:
    sqlite_code = getattr(error, "sqlite_errorcode", None)
    broken = (sqlite_code is not None and sqlite_code & 0xFF in (SQLITE_CORRUPT, SQLITE_NOTADB)) or (
        getattr(error, "sqlstate", None) in POSTGRES_SCHEMA_BROKEN)
    if broken:
        return TablesStoreError(f"the tables store is corrupt or not an edi837 tables database "
                                f"({type(error).__name__}); import the tables again into a new store")
    return TemporaryFailure(f"tables store unavailable ({type(error).__name__})", code="TABLES_UNAVAILABLE")


class TablesStore:
    """One connection to the tables store; ``open_tables`` makes it."""

    def __init__(self, url: str, *, create: bool) -> None:
        self.url = url
        self.postgres = is_postgres(url)
        self._errors: tuple[type[BaseException], ...]
        if self.postgres:
            try:
                import psycopg
            except ImportError:
                raise UsageError("psycopg is not installed", code="HISTORY_DRIVER_MISSING") from None
            self._errors = (psycopg.Error,)
            try:
                self._db: Any = psycopg.connect(url, connect_timeout=5, autocommit=True)
            except psycopg.Error as error:
                raise _store_error(error) from None
        else:
            path = sqlite_path(url)
            if not create and not os.path.exists(path):
                raise UsageError(f"no tables store at {path}: run `edi837 tables import` first",
                                 code="TABLES_NOT_FOUND")
            import sqlite3  # here: opening a store is the only use

            self._errors = (sqlite3.Error,)
            try:
                self._db = open_sqlite(path)
            except sqlite3.Error as error:
                raise _store_error(error) from None
        try:
            self._migrate()
        except BaseException:
            self.close()
            raise

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.postgres else statement

    def _execute(self, statement: str, parameters: Iterable[Any] = ()) -> Any:
        return self._db.execute(self._sql(statement), tuple(parameters))

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        db = self._db
        try:
            if self.postgres:
                db.execute("BEGIN")
                db.execute("SELECT pg_advisory_xact_lock(837017)")  # one importer at a time across hosts
            else:
                db.execute("BEGIN IMMEDIATE")
            try:
                yield
                db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(*self._errors):
                    db.execute("ROLLBACK")
                raise
        except self._errors as error:
            raise _store_error(error) from None

    def _migrate(self) -> None:
        with self._transaction():
            for statement in _POSTGRES_SCHEMA if self.postgres else _SQLITE_SCHEMA:
                self._execute(statement)
            version = self._execute("SELECT max(version) FROM ncc_schema").fetchone()[0] or 0
            if version > SCHEMA_VERSION:
                raise TablesStoreError(f"tables store schema version {version} is newer than this edi837's "
                                       f"({SCHEMA_VERSION})", code="TABLES_SCHEMA_UNKNOWN")
            if version < SCHEMA_VERSION:
                self._execute("INSERT INTO ncc_schema (version) VALUES (?)", (SCHEMA_VERSION,))

    # -- import ---------------------------------------------------------------------------
    def import_tables(self, tables: list[tuple[TableFile, str, str]]) -> list[Imported]:
        """Store each (table, source, version) in one transaction: all of them, or none (a bad
        row found while the rows stream in rolls back what was written before it)."""
        from edi.adapters.table_files import quarter_start

        done: list[Imported] = []
        with self._transaction():
            for table, source, version in tables:
                start = quarter_start(version)
                existing = self._execute("SELECT id, row_count FROM ncc_import WHERE source = ? AND kind = ? "
                                         "AND file_hash = ?", (source, table.kind, table.sha256)).fetchone()
                if existing is not None:
                    done.append(Imported(table.name, table.kind, source, version, existing[1], already_loaded=True))
                    continue
                import_id = self._insert_import(table, source, version, start.year * 10000 + start.month * 100 + 1)
                count = self._insert_rows(table, import_id)
                self._execute("UPDATE ncc_import SET row_count = ? WHERE id = ?", (count, import_id))
                done.append(Imported(table.name, table.kind, source, version, count, already_loaded=False))
        return done

    def _insert_import(self, table: TableFile, source: str, version: str, start: int) -> int:
        values = (source, table.kind, version, start, os.path.basename(table.name), table.sha256, 0,
                  datetime.now(UTC).isoformat(timespec="seconds"))
        statement = ("INSERT INTO ncc_import (source, kind, version, quarter_start, file_name, file_hash, row_count, "
                     "imported_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id")
        return int(self._execute(statement, values).fetchone()[0])

    def _insert_rows(self, table: TableFile, import_id: int) -> int:
        """The table's rows, read and written in batches; returns how many."""
        if table.kind == PTP:
            statement = "INSERT INTO ncc_ptp VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"

            def values(r: Any) -> tuple[Any, ...]:
                return (r.column1, r.column2, import_id, r.effective, r.deletion, r.modifier)

            def codes_of(r: Any) -> tuple[str, ...]:
                return (r.column1, r.column2)
        elif table.kind == MUE:
            statement = "INSERT INTO ncc_mue VALUES (?, ?, ?, ?)"

            def values(r: Any) -> tuple[Any, ...]:
                return (r.code, import_id, str(r.units), r.mai)

            def codes_of(r: Any) -> tuple[str, ...]:
                return (r.code,)
        else:
            statement = "INSERT INTO ncc_aoc VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"

            def values(r: Any) -> tuple[Any, ...]:
                return (r.add_on, r.primary, import_id, r.edit_type, r.effective, r.deletion)

            def codes_of(r: Any) -> tuple[str, ...]:
                return (r.add_on, r.primary)
        codes: set[str] = set()
        count = 0
        rows = iter(table.rows)
        while batch := list(itertools.islice(rows, BATCH_ROWS)):
            count += len(batch)
            for row in batch:
                codes.update(codes_of(row))
            self._insert_many(statement, [values(row) for row in batch])
        self._insert_many("INSERT INTO ncc_code VALUES (?) ON CONFLICT DO NOTHING", [(code,) for code in sorted(codes)])
        return count

    def _insert_many(self, statement: str, rows: list[tuple[Any, ...]]) -> None:
        if self.postgres:
            with self._db.cursor() as cursor:
                cursor.executemany(self._sql(statement), rows)
        else:
            self._db.executemany(statement, rows)

    # -- reading --------------------------------------------------------------------------
    def imports(self) -> list[ImportRecord]:
        try:
            rows = self._execute("SELECT id, source, kind, version, quarter_start, file_name, file_hash, row_count, "
                                 "imported_at FROM ncc_import ORDER BY source, kind, quarter_start, id").fetchall()
        except self._errors as error:
            raise _store_error(error) from None
        return [ImportRecord(*row) for row in rows]

    def lookup(self) -> TablesLookup:
        return TablesLookup(self)

    def _select(self, statement: str, codes: list[str]) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        try:
            for start in range(0, len(codes), IN_CHUNK):
                chunk = codes[start:start + IN_CHUNK]
                marks = ", ".join("?" * len(chunk))
                rows += self._execute(statement.format(marks=marks), chunk).fetchall()
        except self._errors as error:
            raise _store_error(error) from None
        return rows

    def all_codes(self) -> frozenset[str]:
        try:
            return frozenset(row[0] for row in self._execute("SELECT code FROM ncc_code").fetchall())
        except self._errors as error:
            raise _store_error(error) from None

    def primary_codes(self) -> frozenset[str]:
        try:
            return frozenset(row[0] for row in self._execute("SELECT DISTINCT primary_code FROM ncc_aoc").fetchall())
        except self._errors as error:
            raise _store_error(error) from None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._db.close()


def open_tables(url: str, *, create: bool = False) -> TablesStore:
    """A SQLite path (or ``sqlite:///path``) or a ``postgresql://`` URL. ``create``: make a new
    SQLite file (``tables import``); otherwise a missing file is refused (TABLES_NOT_FOUND)."""
    if not url:
        raise UsageError("empty tables URL", code="USAGE")
    return TablesStore(url, create=create)


class _Version(Record):
    start: int
    label: str
    ids: frozenset[int]


def _day(value: date) -> int:
    return value.year * 10000 + value.month * 100 + value.day


class TablesLookup:
    """The ``CodingTables`` of the rules: the edits among one file's codes, in memory."""

    def __init__(self, store: TablesStore) -> None:
        self._store = store
        grouped: dict[tuple[str, str, str], tuple[int, set[int]]] = {}
        for record in store.imports():
            key = (record.source, record.kind, record.version)
            start, ids = grouped.get(key, (record.quarter_start, set()))
            ids.add(record.id)
            grouped[key] = (min(start, record.quarter_start), ids)
        self._versions: dict[tuple[str, str], list[_Version]] = defaultdict(list)
        for (source, kind, label), (start, ids) in grouped.items():
            self._versions[(source, kind)].append(_Version(start, label, frozenset(ids)))
        for versions in self._versions.values():
            versions.sort()
        self._loaded = frozenset(self._versions)
        self._codes: frozenset[str] | None = None
        self._ptp: dict[str, list[tuple[str, int, int, int, str]]] = {}
        self._mue: dict[str, list[tuple[int, Decimal, int]]] = {}
        self._aoc: dict[str, list[tuple[str, int, int, int, int]]] = {}
        self._in_force: dict[tuple[str, str, date], _Version | None] = {}

    def loaded(self) -> frozenset[tuple[str, str]]:
        return self._loaded

    def close(self) -> None:
        self._store.close()

    def add_on_primaries(self) -> frozenset[str]:
        return self._store.primary_codes()

    def codes(self) -> frozenset[str]:
        if self._codes is None:
            self._codes = self._store.all_codes()
        return self._codes

    def prefetch(self, codes: frozenset[str]) -> None:
        wanted = sorted(codes & self.codes())
        self._ptp, self._mue, self._aoc = {}, {}, {}
        if not wanted:
            return
        present = set(wanted)
        if any(kind == PTP for _, kind in self._loaded):
            statement = ("SELECT column1, column2, import_id, effective, deletion, modifier FROM ncc_ptp "
                         "WHERE column1 IN ({marks})")
            for column1, column2, import_id, effective, deletion, modifier in self._store._select(statement, wanted):
                if column2 in present:  # a pair matters only when both codes are in the file
                    self._ptp.setdefault(column1, []).append((column2, import_id, effective, deletion, modifier))
        if any(kind == MUE for _, kind in self._loaded):
            for code, import_id, units, mai in self._store._select(
                    "SELECT code, import_id, units, mai FROM ncc_mue WHERE code IN ({marks})", wanted):
                self._mue.setdefault(code, []).append((import_id, Decimal(units), mai))
        if any(kind == ADD_ON for _, kind in self._loaded):
            statement = ("SELECT add_on, primary_code, import_id, edit_type, effective, deletion FROM ncc_aoc "
                         "WHERE add_on IN ({marks})")
            for add_on, primary, import_id, edit_type, effective, deletion in self._store._select(statement, wanted):
                self._aoc.setdefault(add_on, []).append((primary, import_id, edit_type, effective, deletion))

    def _version(self, source: str, kind: str, day: date) -> _Version | None:
        key = (source, kind, day)
        if key in self._in_force:
            return self._in_force[key]
        versions = self._versions.get((source, kind), [])
        number = _day(day)
        chosen = None
        for version in versions:  # sorted by start: the last one starting on or before the day
            if version.start <= number:
                chosen = version
        if chosen is None and versions:
            chosen = versions[0]
        self._in_force[key] = chosen
        return chosen

    def pairs(self, source: str, codes: frozenset[str] | set[str], day: date) -> list[PtpEdit]:
        version = self._version(source, PTP, day)
        if version is None:
            return []
        number = _day(day)
        found: dict[tuple[str, str], PtpEdit] = {}
        for column1 in codes:
            for column2, import_id, effective, deletion, modifier in self._ptp.get(column1, ()):
                if import_id in version.ids and column2 in codes and effective <= number < deletion:
                    found.setdefault((column1, column2), PtpEdit(column1, column2, modifier, version.label))
        return [found[key] for key in sorted(found)]

    def mue(self, source: str, code: str, day: date) -> MueLimit | None:
        version = self._version(source, MUE, day)
        if version is None:
            return None
        for import_id, units, mai in self._mue.get(code, ()):
            if import_id in version.ids:
                return MueLimit(code, units, mai, version.label)
        return None

    def add_on(self, source: str, code: str, day: date) -> AddOnEdit | None:
        version = self._version(source, ADD_ON, day)
        if version is None:
            return None
        number = _day(day)
        rows = [(primary, edit_type) for primary, import_id, edit_type, effective, deletion in self._aoc.get(code, ())
                if import_id in version.ids and effective <= number < deletion]
        if not rows:
            return None
        # One add-on may carry rows of several types over time; the narrowest in force decides.
        edit_type = min(kind for _, kind in rows)
        return AddOnEdit(code, frozenset(primary for primary, _ in rows), edit_type, version.label)


__all__ = ["ImportRecord", "Imported", "TablesLookup", "TablesStore", "open_tables", "tables_url"]
