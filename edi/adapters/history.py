"""The history store: pump events of earlier files, in SQLite (default) or PostgreSQL.

What is stored, per pump-family line passed on (the codes PMP004 and PMP011 look back for):
an HMAC-SHA256 of the patient's identity, an HMAC of the claim ID (CLM01), the date of service,
the procedure code and the SHA-256 of the file. No name, member ID, birth date or claim number
is stored in clear; the HMAC secret comes from ``EDI837_HISTORY_KEY`` or from a key file created
with mode 0600 beside a SQLite store (``<db>.key``) on first use.

Re-processing a claim replaces its events (delete by patient and claim, then insert), so the
same file run twice leaves no duplicates, and the rules ignore history events of claims that
are in the file being checked. Writes happen in one transaction per file.

SQLite: WAL journal, ``busy_timeout``, ``BEGIN IMMEDIATE`` for writes (one writer at a time),
safe for several processes on one host. PostgreSQL (psycopg 3): safe for several hosts; a row
per (patient, claim) in ``pump_claim`` is locked (``INSERT ... ON CONFLICT DO UPDATE``) before
its events are replaced, so two writers of one claim serialise. Both carry a ``schema_version``
table and apply forward migrations on open. An unreachable or unusable store raises
``TemporaryFailure`` (exit 75, HTTP 503): edi837 never runs silently without its history.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sqlite3
from collections import defaultdict
from collections.abc import Iterable
from datetime import date

from edi.adapters.databases import is_postgres, open_sqlite, sqlite_path
from edi.errors import TemporaryFailure, UsageError
from edi.rules.kinds import EventToRecord, HistoryEvent

KEY_ENV = "EDI837_HISTORY_KEY"
URL_ENV = "EDI837_HISTORY"
def load_secret(url: str, env: dict[str, str] | None = None) -> bytes:
    """The HMAC secret: ``EDI837_HISTORY_KEY``, else ``<sqlite file>.key`` (created 0600)."""
    environment = os.environ if env is None else env
    value = environment.get(KEY_ENV)
    if value:
        return value.encode("utf-8")
    if is_postgres(url):
        raise UsageError(f"a PostgreSQL history needs {KEY_ENV}: every host must hash patients alike",
                         code="HISTORY_KEY_MISSING")
    path = sqlite_path(url) + ".key"
    try:
        with open(path, "rb") as handle:
            return handle.read().strip()
    except FileNotFoundError:
        pass
    except OSError as error:
        raise TemporaryFailure(f"history key file unreadable ({error.strerror})", code="HISTORY_UNAVAILABLE") from None
    secret = secrets.token_hex(32).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        with open(path, "rb") as handle:
            return handle.read().strip()
    except OSError as error:
        raise TemporaryFailure(f"cannot create the history key file ({error.strerror})",
                               code="HISTORY_UNAVAILABLE") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(secret)
        handle.flush()
        os.fsync(handle.fileno())
    return secret


def _unavailable(error: Exception) -> TemporaryFailure:
    """A database error as the failure callers map to exit 75 / HTTP 503 (the type name only: no data)."""
    return TemporaryFailure(f"history store unavailable ({type(error).__name__})", code="HISTORY_UNAVAILABLE")


class HistoryStore:
    """Common part: hashing, the in-memory cache the rules read, the event filter."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._cache: dict[bytes, list[tuple[date, str, bytes]]] = {}
        self._hashes: dict[str, bytes] = {}  # patient key -> its HMAC, for the prefetched patients

    def patient_hash(self, patient_key: str) -> bytes:
        return hmac.new(self._secret, b"patient\x00" + patient_key.upper().encode("utf-8"), hashlib.sha256).digest()

    def claim_hash(self, patient_key: str, claim_id: str) -> bytes:
        return hmac.new(self._secret, b"claim\x00" + patient_key.upper().encode("utf-8") + b"\x00"
                        + claim_id.encode("utf-8"), hashlib.sha256).digest()

    # -- what the rules call ---------------------------------------------------------------
    def prefetch(self, patient_keys: Iterable[str]) -> None:
        """Load the events of these patients in a few queries (the rules then read memory)."""
        self._hashes = {key: self.patient_hash(key) for key in patient_keys}
        self._cache = {h: [] for h in self._hashes.values()}
        for patient, service_date, code, claim in self._select(list(self._cache)):
            self._cache[patient].append((service_date, code, claim))


    def events(self, patient_key: str, since: date, until: date,
               exclude_claims: Iterable[str] = ()) -> list[HistoryEvent]:
        patient = self._hashes.get(patient_key) or self.patient_hash(patient_key)
        rows = self._cache.get(patient)
        if rows is None:
            rows = [(d, c, k) for _, d, c, k in self._select([patient])]
        if not rows:
            return []
        excluded = {self.claim_hash(patient_key, claim) for claim in exclude_claims}
        return [HistoryEvent(d, code, claim.hex()) for d, code, claim in rows
                if since <= d <= until and claim not in excluded]

    # -- what front ends call --------------------------------------------------------------
    def record(self, file_hash: str, events: Iterable[EventToRecord]) -> int:
        """Replace the events of every claim in ``events`` with these, in one transaction."""
        by_claim: dict[tuple[bytes, bytes], list[tuple[str, str]]] = defaultdict(list)
        for event in events:
            patient = self.patient_hash(event.patient_key)
            claim = self.claim_hash(event.patient_key, event.claim_id)
            by_claim[(patient, claim)].append((event.service_date.isoformat(), event.code))
        self._write(file_hash, by_claim)
        return sum(len(rows) for rows in by_claim.values())

    def _select(self, patients: list[bytes]) -> list[tuple[bytes, date, str, bytes]]:
        raise NotImplementedError

    def _write(self, file_hash: str, by_claim: dict[tuple[bytes, bytes], list[tuple[str, str]]]) -> None:
        raise NotImplementedError

    def prune(self, before: date) -> int:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


SQLITE_MIGRATIONS: list[list[str]] = [
    [
        ("CREATE TABLE pump_event (patient BLOB NOT NULL, claim BLOB NOT NULL, service_date TEXT NOT NULL,"
         " code TEXT NOT NULL, file_hash TEXT NOT NULL)"),
        "CREATE INDEX pump_event_patient ON pump_event (patient, service_date)",
        "CREATE INDEX pump_event_claim ON pump_event (patient, claim)",
    ],
]


class SQLiteHistory(HistoryStore):
    def __init__(self, path: str, secret: bytes) -> None:
        super().__init__(secret)
        self.path = path
        try:
            folder = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(folder):
                raise TemporaryFailure("the history folder does not exist", code="HISTORY_UNAVAILABLE")
            self._db = open_sqlite(path)
            self._migrate()
        except sqlite3.Error as error:
            raise _unavailable(error) from None

    def _migrate(self) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = db.execute("SELECT max(version) FROM schema_version").fetchone()
            version = row[0] or 0
            for number, statements in enumerate(SQLITE_MIGRATIONS, start=1):
                if number > version:
                    for statement in statements:
                        db.execute(statement)
                    db.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    @property
    def schema_version(self) -> int:
        return self._db.execute("SELECT max(version) FROM schema_version").fetchone()[0]

    def _select(self, patients: list[bytes]) -> list[tuple[bytes, date, str, bytes]]:
        rows: list[tuple[bytes, date, str, bytes]] = []
        try:
            for start in range(0, len(patients), 500):
                chunk = patients[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for patient, day, code, claim in self._db.execute(
                    f"SELECT patient, service_date, code, claim FROM pump_event WHERE patient IN ({marks})", chunk
                ):
                    rows.append((patient, date.fromisoformat(day), code, claim))
        except sqlite3.Error as error:
            raise _unavailable(error) from None
        return rows

    def _write(self, file_hash: str, by_claim: dict[tuple[bytes, bytes], list[tuple[str, str]]]) -> None:
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("DELETE FROM pump_event WHERE patient = ? AND claim = ?", list(by_claim))
                db.executemany(
                    "INSERT INTO pump_event (patient, claim, service_date, code, file_hash) VALUES (?, ?, ?, ?, ?)",
                    [(patient, claim, day, code, file_hash)
                     for (patient, claim), rows in by_claim.items() for day, code in rows],
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except sqlite3.Error as error:
            raise _unavailable(error) from None

    def prune(self, before: date) -> int:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            cursor = self._db.execute("DELETE FROM pump_event WHERE service_date < ?", (before.isoformat(),))
            self._db.execute("COMMIT")
            return cursor.rowcount
        except sqlite3.Error as error:
            raise _unavailable(error) from None

    def close(self) -> None:
        self._db.close()


POSTGRES_MIGRATIONS: list[list[str]] = [
    [
        ("CREATE TABLE pump_claim (patient BYTEA NOT NULL, claim BYTEA NOT NULL, file_hash TEXT NOT NULL,"
         " PRIMARY KEY (patient, claim))"),
        ("CREATE TABLE pump_event (patient BYTEA NOT NULL, claim BYTEA NOT NULL, service_date DATE NOT NULL,"
         " code TEXT NOT NULL, file_hash TEXT NOT NULL)"),
        "CREATE INDEX pump_event_patient ON pump_event (patient, service_date)",
        "CREATE INDEX pump_event_claim ON pump_event (patient, claim)",
    ],
]


class PostgresHistory(HistoryStore):
    def __init__(self, url: str, secret: bytes) -> None:
        super().__init__(secret)
        try:
            import psycopg
        except ImportError:  # pragma: no cover - a dependency of edi837
            raise UsageError("psycopg is not installed", code="HISTORY_DRIVER_MISSING") from None
        self._psycopg = psycopg
        try:
            self._db = psycopg.connect(url, connect_timeout=5, autocommit=False)
            self._migrate()
        except psycopg.Error as error:
            raise _unavailable(error) from None

    def _migrate(self) -> None:
        with self._db.transaction():
            # One migrator at a time across hosts.
            self._db.execute("SELECT pg_advisory_xact_lock(837001)")
            self._db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            version = self._db.execute("SELECT max(version) FROM schema_version").fetchone()[0] or 0
            for number, statements in enumerate(POSTGRES_MIGRATIONS, start=1):
                if number > version:
                    for statement in statements:
                        self._db.execute(statement)
                    self._db.execute("INSERT INTO schema_version (version) VALUES (%s)", (number,))

    @property
    def schema_version(self) -> int:
        with self._db.transaction():
            return self._db.execute("SELECT max(version) FROM schema_version").fetchone()[0]

    def _select(self, patients: list[bytes]) -> list[tuple[bytes, date, str, bytes]]:
        try:
            with self._db.transaction():
                rows = self._db.execute(
                    "SELECT patient, service_date, code, claim FROM pump_event WHERE patient = ANY(%s)", (patients,)
                ).fetchall()
        except self._psycopg.Error as error:
            raise _unavailable(error) from None
        return [(bytes(p), d, code, bytes(c)) for p, d, code, c in rows]

    def _write(self, file_hash: str, by_claim: dict[tuple[bytes, bytes], list[tuple[str, str]]]) -> None:
        try:
            with self._db.transaction(), self._db.cursor() as cursor:
                claims = sorted(by_claim)  # a fixed lock order: no deadlock between two writers
                cursor.executemany(
                    "INSERT INTO pump_claim (patient, claim, file_hash) VALUES (%s, %s, %s)"
                    " ON CONFLICT (patient, claim) DO UPDATE SET file_hash = EXCLUDED.file_hash",
                    [(patient, claim, file_hash) for patient, claim in claims],
                )
                cursor.executemany("DELETE FROM pump_event WHERE patient = %s AND claim = %s", claims)
                cursor.executemany(
                    "INSERT INTO pump_event (patient, claim, service_date, code, file_hash) VALUES (%s, %s, %s, %s, %s)",
                    [(patient, claim, date.fromisoformat(day), code, file_hash)
                     for patient, claim in claims for day, code in by_claim[(patient, claim)]],
                )
        except self._psycopg.Error as error:
            raise _unavailable(error) from None

    def prune(self, before: date) -> int:
        try:
            with self._db.transaction():
                cursor = self._db.execute("DELETE FROM pump_event WHERE service_date < %s", (before,))
                count = cursor.rowcount
                self._db.execute(
                    "DELETE FROM pump_claim c WHERE NOT EXISTS (SELECT 1 FROM pump_event e"
                    " WHERE e.patient = c.patient AND e.claim = c.claim)")
                return count
        except self._psycopg.Error as error:
            raise _unavailable(error) from None

    def close(self) -> None:
        self._db.close()


def open_history(url: str, env: dict[str, str] | None = None) -> HistoryStore:
    """A SQLite path (or ``sqlite:///path``) or a ``postgresql://`` URL."""
    if not url:
        raise UsageError("empty history URL", code="HISTORY_URL")
    secret = load_secret(url, env)
    if is_postgres(url):
        return PostgresHistory(url, secret)
    return SQLiteHistory(sqlite_path(url), secret)
