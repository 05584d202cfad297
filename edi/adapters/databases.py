"""Where the history store and the watcher's ledger agree on their databases.

A URL names either PostgreSQL (``postgresql://`` / ``postgres://``) or a SQLite file (a path, or
``sqlite:///path``). SQLite files are opened the same way for both: autocommit mode (callers
write ``BEGIN IMMEDIATE`` themselves, one writer at a time), a WAL journal so readers never wait,
``synchronous = FULL`` so a committed outcome survives a power cut, a 30 s busy timeout for the
other processes' writes, and a new file readable by its owner only.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where a file is opened: ``validate`` asks only for the URL helpers
    import sqlite3

BUSY_TIMEOUT_MS = 30_000
TABLES_URL_ENV = "EDI837_TABLES"
TABLES_DEFAULT_NAME = "tables.sqlite"
SQLITE_BUSY, SQLITE_LOCKED = 5, 6  # primary result codes


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def open_sqlite(path: str) -> sqlite3.Connection:
    """Raises ``sqlite3.Error`` for the caller to turn into its own typed failure."""
    import sqlite3

    existed = os.path.exists(path)
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    if not existed:
        os.chmod(path, 0o600)
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    _switch_to_wal(db)
    db.execute("PRAGMA synchronous = FULL")
    return db


def _switch_to_wal(db: sqlite3.Connection) -> None:
    """``journal_mode = WAL`` needs a moment alone with a new file, and SQLite answers "locked"
    at once (no busy handler) when several processes create the file together: wait and retry,
    within the same busy timeout as any other lock."""
    import sqlite3

    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode & 0xFF not in (SQLITE_BUSY, SQLITE_LOCKED) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def tables_url(explicit: str | None, history_url: str | None, env: dict[str, str] | None = None) -> str | None:
    """Where the CMS tables store is: --tables, else $EDI837_TABLES, else beside the history store;
    None: no tables. Here, not in ``edi.adapters.tables``: every ``validate`` asks it at start-up."""
    environment = os.environ if env is None else env
    url = explicit or environment.get(TABLES_URL_ENV)
    if url:
        return url
    if not history_url:
        return None
    if is_postgres(history_url):
        return history_url
    return os.path.join(os.path.dirname(os.path.abspath(sqlite_path(history_url))), TABLES_DEFAULT_NAME)
