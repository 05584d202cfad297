"""The watcher's ledger: which inputs were processed, by content hash and by (ISA06, ISA13).

SQLite in ``ROOT/state/ledger.sqlite`` by default (WAL, ``synchronous=FULL``, ``BEGIN IMMEDIATE``
for writes): one host, several watcher processes. A ``postgresql://`` URL for watchers on several
hosts sharing one folder: an input is claimed by a row with a lease
(``SELECT ... FOR UPDATE SKIP LOCKED``), so two hosts never process one file at once, and an
expired lease (a watcher that died) lets another host take the file over.

Row states: ``processing`` (leased), ``done`` (output written: final), ``rejected`` and
``quarantined`` (transient failures past the attempt limit): not final, a resend is processed. Nothing of the file's content is
stored: hashes, control numbers, counts and outcome codes.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from edi.adapters.databases import is_postgres, open_sqlite, sqlite_path
from edi.errors import TemporaryFailure

SCHEMA = [
    ("CREATE TABLE IF NOT EXISTS inputs (sha256 TEXT PRIMARY KEY, status TEXT NOT NULL, sender TEXT,"
     " control TEXT, attempts INTEGER NOT NULL DEFAULT 0, lease_until DOUBLE PRECISION NOT NULL DEFAULT 0,"
     " owner TEXT, outcome TEXT, updated DOUBLE PRECISION NOT NULL)"),
    "CREATE INDEX IF NOT EXISTS inputs_control ON inputs (sender, control)",
]


@dataclass(frozen=True, slots=True)
class Entry:
    sha256: str
    status: str
    sender: str | None
    control: str | None
    attempts: int
    lease_until: float
    owner: str | None
    outcome: str | None


class Ledger:
    """Common API; the clock is wall time (leases must mean the same on every host)."""

    def get(self, sha256: str) -> Entry | None:
        raise NotImplementedError

    def by_control(self, sender: str, control: str) -> list[Entry]:
        raise NotImplementedError

    def claim(self, sha256: str, owner: str, lease_seconds: float, sender: str | None, control: str | None,
              *, steal_from: str | None = None) -> Entry | None:
        """Take the input for processing; None when another owner holds a live lease or it is
        done. Rejected and quarantined inputs are taken again (a resend is processed).
        ``steal_from`` names an owner known to be dead (its lease is ignored)."""
        raise NotImplementedError

    def finish(self, sha256: str, status: str, outcome: str) -> None:
        raise NotImplementedError

    def failed_attempt(self, sha256: str) -> int:
        """Count a transient failure, release the lease; the number of attempts so far."""
        raise NotImplementedError

    def counts(self) -> dict[str, int]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


# Only ``done`` is final. Rejected and quarantined content is taken again when it comes back (a
# partner's resend after a full disk is processed): the row returns to ``processing`` with a fresh
# count of attempts.
_RECLAIM = "attempts = CASE WHEN status = 'processing' THEN attempts ELSE 0 END, status = 'processing',"


def _unavailable(error: Exception) -> TemporaryFailure:
    return TemporaryFailure(f"ledger unavailable ({type(error).__name__})", code="LEDGER_UNAVAILABLE")


class SQLiteLedger(Ledger):
    def __init__(self, path: str) -> None:
        try:
            self._db = open_sqlite(path)
            self._db.execute("BEGIN IMMEDIATE")
            for statement in SCHEMA:
                self._db.execute(statement.replace("DOUBLE PRECISION", "REAL"))
            self._db.execute("COMMIT")
        except sqlite3.Error as error:
            raise _unavailable(error) from None

    def _row(self, row: tuple | None) -> Entry | None:
        return Entry(*row) if row else None

    def get(self, sha256: str) -> Entry | None:
        try:
            return self._row(self._db.execute(
                "SELECT sha256, status, sender, control, attempts, lease_until, owner, outcome FROM inputs WHERE sha256 = ?",
                (sha256,)).fetchone())
        except sqlite3.Error as error:
            raise _unavailable(error) from None

    def by_control(self, sender: str, control: str) -> list[Entry]:
        try:
            rows = self._db.execute(
                "SELECT sha256, status, sender, control, attempts, lease_until, owner, outcome FROM inputs"
                " WHERE sender = ? AND control = ?", (sender, control)).fetchall()
        except sqlite3.Error as error:
            raise _unavailable(error) from None
        return [Entry(*row) for row in rows]

    def claim(self, sha256: str, owner: str, lease_seconds: float, sender: str | None, control: str | None,
              *, steal_from: str | None = None) -> Entry | None:
        now = time.time()
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._row(self._db.execute(
                    "SELECT sha256, status, sender, control, attempts, lease_until, owner, outcome FROM inputs WHERE sha256 = ?",
                    (sha256,)).fetchone())
                held = row is not None and row.owner not in (owner, steal_from) and row.lease_until > now
                if row is not None and (row.status == "done" or held):
                    self._db.execute("COMMIT")
                    return None
                if row is None:
                    self._db.execute(
                        "INSERT INTO inputs (sha256, status, sender, control, lease_until, owner, updated)"
                        " VALUES (?, 'processing', ?, ?, ?, ?, ?)", (sha256, sender, control, now + lease_seconds, owner, now))
                else:
                    self._db.execute(f"UPDATE inputs SET {_RECLAIM} lease_until = ?, owner = ?, updated = ? WHERE sha256 = ?",
                                     (now + lease_seconds, owner, now, sha256))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as error:
            raise _unavailable(error) from None
        return self.get(sha256)

    def finish(self, sha256: str, status: str, outcome: str) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO inputs (sha256, status, outcome, updated) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (sha256) DO UPDATE SET status = excluded.status, outcome = excluded.outcome,"
                " lease_until = 0, updated = excluded.updated", (sha256, status, outcome, time.time()))
            self._db.execute("COMMIT")
        except sqlite3.Error as error:
            raise _unavailable(error) from None

    def failed_attempt(self, sha256: str) -> int:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("UPDATE inputs SET attempts = attempts + 1, lease_until = 0, updated = ? WHERE sha256 = ?",
                             (time.time(), sha256))
            self._db.execute("COMMIT")
        except sqlite3.Error as error:
            raise _unavailable(error) from None
        entry = self.get(sha256)
        return entry.attempts if entry else 0

    def counts(self) -> dict[str, int]:
        try:
            rows = self._db.execute("SELECT status, count(*) FROM inputs GROUP BY status").fetchall()
        except sqlite3.Error as error:
            raise _unavailable(error) from None
        return dict(rows)

    def close(self) -> None:
        self._db.close()


class PostgresLedger(Ledger):
    def __init__(self, url: str) -> None:
        import psycopg

        self._psycopg = psycopg
        try:
            self._db = psycopg.connect(url, connect_timeout=5, autocommit=False)
            with self._db.transaction():
                self._db.execute("SELECT pg_advisory_xact_lock(837002)")
                for statement in SCHEMA:
                    self._db.execute(statement)
        except psycopg.Error as error:
            raise _unavailable(error) from None

    _COLUMNS = "sha256, status, sender, control, attempts, lease_until, owner, outcome"

    def _run(self, sql: str, args: tuple = (), fetch: str | None = None) -> Any:  # a row, rows or None
        try:
            with self._db.transaction():
                cursor = self._db.execute(sql, args)
                if fetch == "one":
                    return cursor.fetchone()
                if fetch == "all":
                    return cursor.fetchall()
                return None
        except self._psycopg.Error as error:
            raise _unavailable(error) from None

    def get(self, sha256: str) -> Entry | None:
        row = self._run(f"SELECT {self._COLUMNS} FROM inputs WHERE sha256 = %s", (sha256,), "one")
        return Entry(*row) if row else None

    def by_control(self, sender: str, control: str) -> list[Entry]:
        rows = self._run(f"SELECT {self._COLUMNS} FROM inputs WHERE sender = %s AND control = %s", (sender, control), "all")
        return [Entry(*row) for row in rows]

    def claim(self, sha256: str, owner: str, lease_seconds: float, sender: str | None, control: str | None,
              *, steal_from: str | None = None) -> Entry | None:
        now = time.time()
        try:
            with self._db.transaction():
                self._db.execute(
                    "INSERT INTO inputs (sha256, status, sender, control, lease_until, owner, updated)"
                    " VALUES (%s, 'processing', %s, %s, 0, NULL, %s) ON CONFLICT (sha256) DO NOTHING",
                    (sha256, sender, control, now))
                row = self._db.execute(
                    f"SELECT {self._COLUMNS} FROM inputs WHERE sha256 = %s FOR UPDATE SKIP LOCKED", (sha256,)).fetchone()
                if row is None:
                    return None  # another host holds the row right now
                entry = Entry(*row)
                if entry.status == "done" or (
                        entry.owner not in (None, owner, steal_from) and entry.lease_until > now):
                    return None
                self._db.execute(f"UPDATE inputs SET {_RECLAIM} lease_until = %s, owner = %s, updated = %s WHERE sha256 = %s",
                                 (now + lease_seconds, owner, now, sha256))
        except self._psycopg.Error as error:
            raise _unavailable(error) from None
        return self.get(sha256)

    def finish(self, sha256: str, status: str, outcome: str) -> None:
        self._run("INSERT INTO inputs (sha256, status, outcome, updated) VALUES (%s, %s, %s, %s)"
                  " ON CONFLICT (sha256) DO UPDATE SET status = EXCLUDED.status, outcome = EXCLUDED.outcome,"
                  " lease_until = 0, updated = EXCLUDED.updated", (sha256, status, outcome, time.time()))

    def failed_attempt(self, sha256: str) -> int:
        row = self._run("UPDATE inputs SET attempts = attempts + 1, lease_until = 0, updated = %s WHERE sha256 = %s"
                        " RETURNING attempts", (time.time(), sha256), "one")
        return row[0] if row else 0

    def counts(self) -> dict[str, int]:
        return dict(self._run("SELECT status, count(*) FROM inputs GROUP BY status", (), "all"))

    def close(self) -> None:
        self._db.close()


def open_ledger(url: str) -> Ledger:
    if is_postgres(url):
        return PostgresLedger(url)
    return SQLiteLedger(sqlite_path(url))
