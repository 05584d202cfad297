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
table and apply forward migrations on open. An unreachable or locked store raises
``TemporaryFailure`` (exit 75, HTTP 503): edi837 never runs silently without its history. A
corrupt store or one of an unknown schema version raises ``HistoryStoreError`` (exit 74): a
retry cannot help, an operator must act.

The key is checked, never trusted: it must have at least 32 bytes, a new key file is published
atomically (concurrent creators agree on one key), and the store keeps a fingerprint of the key
that made it (schema version 2) and refuses any other key with ``HISTORY_KEY_MISMATCH`` (exit
64). A wrong key would otherwise hash every patient differently, every lookup would miss, and
PMP004 and PMP011 would go quiet on a run that looks clean.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import os
import secrets
import sqlite3
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import date

from edi.adapters.databases import is_postgres, open_sqlite, sqlite_path
from edi.adapters.files import fsync_folder
from edi.adapters.logs import get_logger
from edi.errors import EdiError, HistoryKeyError, HistoryStoreError, TemporaryFailure, UsageError
from edi.rules.kinds import EventToRecord, HistoryEvent

KEY_ENV = "EDI837_HISTORY_KEY"
URL_ENV = "EDI837_HISTORY"
MIN_KEY_BYTES = 32
# The fingerprint is an HMAC of this label under the key: it recognises the key without
# revealing it, and it can never equal a patient or claim hash (those have other prefixes).
FINGERPRINT_LABEL = b"edi837 history key fingerprint v1"
SQLITE_CORRUPT, SQLITE_NOTADB = 11, 26  # primary result codes: the file is not a usable database
POSTGRES_SCHEMA_BROKEN = frozenset({"XX001", "XX002", "42P01", "42703"})  # corrupt data/index, missing table/column

log = get_logger()


def key_fingerprint(secret: bytes) -> str:
    return hmac.new(secret, FINGERPRINT_LABEL, hashlib.sha256).hexdigest()


def key_file_path(url: str) -> str:
    return sqlite_path(url) + ".key"


def _long_enough(secret: bytes, origin: str) -> bytes:
    if len(secret) < MIN_KEY_BYTES:
        raise HistoryKeyError(f"the history key from {origin} has {len(secret)} byte(s); at least {MIN_KEY_BYTES} are "
                              "required", code="HISTORY_KEY_TOO_SHORT")
    return secret


def environment_secret(url: str, env: dict[str, str] | None = None) -> bytes | None:
    """The HMAC secret from ``EDI837_HISTORY_KEY``; None means a SQLite store's key file.

    A variable that is set but empty is a mistake (an unset shell variable), not "no key"."""
    environment = os.environ if env is None else env
    value = environment.get(KEY_ENV)
    if value is not None:
        return _long_enough(value.encode("utf-8"), KEY_ENV)
    if is_postgres(url):
        raise HistoryKeyError(f"a PostgreSQL history needs {KEY_ENV}: every host must hash patients alike",
                              code="HISTORY_KEY_MISSING")
    return None


def read_key_file(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            secret = handle.read().strip()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise TemporaryFailure(f"history key file unreadable ({error.strerror})", code="HISTORY_UNAVAILABLE") from None
    return _long_enough(secret, "the key file")


def create_key_file(path: str) -> bytes:
    """A new random key, published whole: written and fsynced under a temp name, then hard-linked
    to ``path``. The link fails if another process published first, and then its key is used, so
    concurrent creators agree and no reader ever sees an empty or partial key file."""
    folder = os.path.dirname(os.path.abspath(path))
    secret = secrets.token_hex(32).encode()
    try:
        fd, temp = tempfile.mkstemp(prefix=".edi837-key.", suffix=".tmp", dir=folder)
    except OSError as error:
        raise TemporaryFailure(f"cannot create the history key file ({error.strerror})",
                               code="HISTORY_UNAVAILABLE") from None
    try:
        with os.fdopen(fd, "wb") as handle:  # mkstemp made it 0600
            handle.write(secret)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temp, path)
        except FileExistsError:
            existing = read_key_file(path)
            if existing is None:  # published and deleted again in between: nothing sane to use
                raise TemporaryFailure("the history key file vanished while it was created",
                                       code="HISTORY_UNAVAILABLE") from None
            return existing
        fsync_folder(folder)
        return secret
    except OSError as error:
        raise TemporaryFailure(f"cannot create the history key file ({error.strerror})",
                               code="HISTORY_UNAVAILABLE") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp)


def _store_error(error: Exception) -> EdiError:
    """A database error as a typed failure (its type name only: messages may quote data).

    A file that is not a database or has malformed pages, and PostgreSQL tables that are corrupt
    or missing, are permanent (HISTORY_CORRUPT, exit 74: an operator must restore the store);
    everything else (unreachable, locked, busy, disk full) is worth a retry (exit 75)."""
    sqlite_code = getattr(error, "sqlite_errorcode", None)
    broken = (sqlite_code is not None and sqlite_code & 0xFF in (SQLITE_CORRUPT, SQLITE_NOTADB)) or (
        getattr(error, "sqlstate", None) in POSTGRES_SCHEMA_BROKEN)
    if broken:
        return HistoryStoreError(f"the history store is corrupt or not an edi837 history database "
                                 f"({type(error).__name__}); restore it from a backup or point --history elsewhere",
                                 code="HISTORY_CORRUPT")
    return TemporaryFailure(f"history store unavailable ({type(error).__name__})", code="HISTORY_UNAVAILABLE")


def _unknown_version(version: int, known: int) -> HistoryStoreError:
    return HistoryStoreError(f"the history store has schema version {version}; this edi837 knows up to {known} "
                             "(a newer edi837 made it: upgrade, or point --history at another store)",
                             code="HISTORY_SCHEMA_UNKNOWN")


def _mismatch(origin: str) -> HistoryKeyError:
    return HistoryKeyError(f"the history key ({origin}) is not the key this store was first opened with, so no "
                           "earlier event would match: restore the original key (the same EDI837_HISTORY_KEY, or the "
                           "same key file, whichever made the store)", code="HISTORY_KEY_MISMATCH")


class HistoryStore:
    """Common part: hashing, the in-memory cache the rules read, the event filter, the key check."""

    kind = "history"

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._cache: dict[bytes, list[tuple[date, str, bytes]]] = {}
        self._hashes: dict[str, bytes] = {}  # patient key -> its HMAC, for the prefetched patients
        self.key_adopted = False  # true when this open recorded the fingerprint of an older store

    def _settle_key(self, stored: str | None, has_events: bool, secret: bytes | None, origin: str,
                    new_key: Callable[[], bytes] | None) -> str | None:
        """Check the key against the store's fingerprint, inside the migration's transaction.

        Returns the fingerprint to record (None when one is recorded and matches). A store made
        before fingerprints (events, no fingerprint) adopts the key that opens it first: there
        is no way to tell a right key from a wrong one then, and refusing would strand every
        existing store. A key file is only ever made for a store that holds nothing yet."""
        if secret is None:
            if stored is not None or has_events or new_key is None:
                raise HistoryKeyError(f"this history store was made with a key (it has a key fingerprint or events) "
                                      f"but its key file is missing; restore the key file or set {KEY_ENV} to the "
                                      "key that made it", code="HISTORY_KEY_MISSING")
            secret = new_key()
        self._secret = secret
        fingerprint = key_fingerprint(secret)
        if stored is None:
            if has_events:
                self.key_adopted = True
                log.warning("history.key_adopted", history=self.kind)
            return fingerprint
        if not hmac.compare_digest(stored, fingerprint):
            raise _mismatch(origin)
        return None

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
    # 2: the key's fingerprint, so a changed or lost key is refused instead of missing every event.
    ["CREATE TABLE history_key (fingerprint TEXT NOT NULL)"],
]


class SQLiteHistory(HistoryStore):
    kind = "sqlite"

    def __init__(self, path: str, secret: bytes | None, *, key_file: str | None = None) -> None:
        """``secret`` None: the key is in ``key_file``, read (or, for an empty store, made) while
        the store is locked, so concurrent openers of a new store see the one key made."""
        super().__init__(b"")
        self.path = path
        if os.path.isdir(path):
            raise HistoryStoreError("the history store path is a folder, not a SQLite file", code="HISTORY_CORRUPT")
        try:
            folder = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(folder):
                raise TemporaryFailure("the history folder does not exist", code="HISTORY_UNAVAILABLE")
            self._db = open_sqlite(path)
        except sqlite3.Error as error:
            raise _store_error(error) from None
        try:
            self._migrate(secret, key_file)
        except BaseException:
            self._db.close()
            raise

    def _migrate(self, secret: bytes | None, key_file: str | None) -> None:
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                if tables and "schema_version" not in tables:
                    # Someone else's database (a ledger, an application's): never add tables to it.
                    raise HistoryStoreError("the history path is a SQLite database of something else (no "
                                            "schema_version table)", code="HISTORY_SCHEMA_UNKNOWN")
                db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                version = db.execute("SELECT max(version) FROM schema_version").fetchone()[0] or 0
                if version > len(SQLITE_MIGRATIONS):
                    raise _unknown_version(version, len(SQLITE_MIGRATIONS))
                for number, statements in enumerate(SQLITE_MIGRATIONS, start=1):
                    if number > version:
                        for statement in statements:
                            db.execute(statement)
                        db.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
                stored = db.execute("SELECT fingerprint FROM history_key").fetchone()
                has_events = db.execute("SELECT 1 FROM pump_event LIMIT 1").fetchone() is not None
                origin = KEY_ENV if secret is not None else "key file"
                new_key = None
                if secret is None and key_file is not None:
                    secret = read_key_file(key_file)
                    new_key = functools.partial(create_key_file, key_file)
                record = self._settle_key(stored[0] if stored else None, has_events, secret, origin, new_key)
                if record is not None:
                    db.execute("INSERT INTO history_key (fingerprint) VALUES (?)", (record,))
                db.execute("COMMIT")
            except BaseException:
                # SQLite may have rolled back already (a corrupt page, a full disk): the original
                # error is the one to classify, not "no transaction is active".
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as error:
            raise _store_error(error) from None

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
            raise _store_error(error) from None
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
                with contextlib.suppress(sqlite3.Error):  # see _migrate
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as error:
            raise _store_error(error) from None

    def prune(self, before: date) -> int:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            cursor = self._db.execute("DELETE FROM pump_event WHERE service_date < ?", (before.isoformat(),))
            self._db.execute("COMMIT")
            return cursor.rowcount
        except sqlite3.Error as error:
            raise _store_error(error) from None

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
    # 2: the key's fingerprint (see SQLITE_MIGRATIONS).
    ["CREATE TABLE history_key (fingerprint TEXT NOT NULL)"],
]


class PostgresHistory(HistoryStore):
    kind = "postgres"

    def __init__(self, url: str, secret: bytes) -> None:
        super().__init__(secret)
        try:
            import psycopg
        except ImportError:  # pragma: no cover - a dependency of edi837
            raise UsageError("psycopg is not installed", code="HISTORY_DRIVER_MISSING") from None
        self._psycopg = psycopg
        try:
            self._db = psycopg.connect(url, connect_timeout=5, autocommit=False)
        except psycopg.Error as error:
            raise _store_error(error) from None
        try:
            self._migrate(secret)
        except psycopg.Error as error:
            self._db.close()
            raise _store_error(error) from None
        except BaseException:
            self._db.close()
            raise

    def _migrate(self, secret: bytes) -> None:
        # The database may hold other applications' tables (the watcher's ledger among them):
        # only edi837's schema_version says what belongs to the history store.
        with self._db.transaction():
            # One migrator at a time across hosts.
            self._db.execute("SELECT pg_advisory_xact_lock(837001)")
            self._db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = self._db.execute("SELECT max(version) FROM schema_version").fetchone()
            version = (row[0] if row else None) or 0  # max() of no rows is one NULL row
            if version > len(POSTGRES_MIGRATIONS):
                raise _unknown_version(version, len(POSTGRES_MIGRATIONS))
            for number, statements in enumerate(POSTGRES_MIGRATIONS, start=1):
                if number > version:
                    for statement in statements:
                        self._db.execute(statement)
                    self._db.execute("INSERT INTO schema_version (version) VALUES (%s)", (number,))
            stored = self._db.execute("SELECT fingerprint FROM history_key").fetchone()
            has_events = self._db.execute("SELECT 1 FROM pump_event LIMIT 1").fetchone() is not None
            record = self._settle_key(stored[0] if stored else None, has_events, secret, KEY_ENV, None)
            if record is not None:
                self._db.execute("INSERT INTO history_key (fingerprint) VALUES (%s)", (record,))

    @property
    def schema_version(self) -> int:
        with self._db.transaction():
            row = self._db.execute("SELECT max(version) FROM schema_version").fetchone()
            return (row[0] if row else None) or 0

    def _select(self, patients: list[bytes]) -> list[tuple[bytes, date, str, bytes]]:
        try:
            with self._db.transaction():
                rows = self._db.execute(
                    "SELECT patient, service_date, code, claim FROM pump_event WHERE patient = ANY(%s)", (patients,)
                ).fetchall()
        except self._psycopg.Error as error:
            raise _store_error(error) from None
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
            raise _store_error(error) from None

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
            raise _store_error(error) from None

    def close(self) -> None:
        self._db.close()


def open_history(url: str, env: dict[str, str] | None = None) -> HistoryStore:
    """A SQLite path (or ``sqlite:///path``) or a ``postgresql://`` URL, its key checked.

    Raises ``HistoryKeyError`` (exit 64) for a missing, short or mismatching key,
    ``HistoryStoreError`` (exit 74) for a corrupt or unknown store, ``TemporaryFailure`` (exit
    75) for one that is unreachable or locked."""
    if not url:
        raise UsageError("empty history URL", code="HISTORY_URL")
    secret = environment_secret(url, env)
    if is_postgres(url) and secret is not None:  # environment_secret refuses PostgreSQL without one
        return PostgresHistory(url, secret)
    return SQLiteHistory(sqlite_path(url), secret, key_file=None if secret is not None else key_file_path(url))
