"""``edi837 tables import``: every file's header first, then all rows in one transaction.

The headers are read (and the source and quarter of each file settled) before anything is
written; the rows then stream into the store in batches inside one transaction, so a bad row in
the last file, a full disk or a lost connection rolls the whole command back and leaves the
tables imported earlier exactly as they were.
"""

from __future__ import annotations

from edi.adapters.table_files import (
    TableFile,
    describe,
    guess_quarter,
    guess_source,
    quarter_start,
    read_table_files,
)
from edi.adapters.tables import Imported, open_tables
from edi.errors import UsageError


def import_files(paths: list[str], url: str, *, source: str | None = None, quarter: str | None = None) -> list[Imported]:
    """Import the tables in ``paths`` (files or zips) into the store at ``url``."""
    if quarter is not None:
        quarter_start(quarter)  # refuses a malformed --quarter before any file is read
    planned: list[tuple[TableFile, str, str]] = []
    for path in paths:
        tables, _skipped = read_table_files(path)
        for table in tables:
            texts = [path, *describe(table)]
            table_source = source or guess_source(texts)
            if table_source is None:
                raise UsageError(f"{table.name}: cannot tell whether it is a Medicare or a Medicaid table; "
                                 "give --source", code="TABLE_VERSION_UNKNOWN")
            version = quarter or guess_quarter(texts)
            if version is None:
                raise UsageError(f"{table.name}: cannot tell which quarter it is for; give --quarter (e.g. 2026Q1)",
                                 code="TABLE_VERSION_UNKNOWN")
            planned.append((table, table_source, version))
    store = open_tables(url, create=True)
    try:
        return store.import_tables(planned)
    finally:
        store.close()
