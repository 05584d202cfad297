"""Where the history store and the watcher's ledger agree on their databases.

A URL names either PostgreSQL (``postgresql://`` / ``postgres://``) or a SQLite file (a path, or
``sqlite:///path``). SQLite files are opened the same way for both: autocommit mode (callers
write ``BEGIN IMMEDIATE`` themselves, one writer at a time), a WAL journal so readers never wait,
``synchronous = FULL`` so a committed outcome survives a power cut, a 30 s busy timeout for the
other processes' writes, and a new file readable by its owner only.
"""

from __future__ import annotations

import os
import sqlite3

BUSY_TIMEOUT_MS = 30_000


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def open_sqlite(path: str) -> sqlite3.Connection:
    """Raises ``sqlite3.Error`` for the caller to turn into its own typed failure."""
    existed = os.path.exists(path)
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    if not existed:
        os.chmod(path, 0o600)
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    return db
