"""The history store: events of earlier files, in SQLite (default) or PostgreSQL.

What is stored, per line passed on whose code a rule looks back for (the ``history_codes`` of
the rule kinds: PMP004's and PMP011's initiations and refills, PMP012's primaries): an
HMAC-SHA256 of the patient's identity, an HMAC of the billing provider (2010AA NPI, else REF*EI),
an HMAC of the claim (the provider and CLM01), the date of service, the procedure code and the
SHA-256 of the file. No name, member ID, birth date, NPI, tax ID or claim number is stored in
clear; the HMAC secret comes from ``EDI837_HISTORY_KEY`` or from a key file created with mode 0600
beside a SQLite store (``<db>.key``) on first use.

Per provider patient (pump-rules v2): a lookup returns the events of one patient billed by one
provider; another provider's events never count.

A claim is the billing provider's CLM01 (the patient control number is the provider's own, so it
is unique among one provider's claims, not across providers); the patient is left out of the
claim key so that a replacement correcting the patient's name still replaces the claim it
replaces. Recording a file first removes the events of each of its claims, then inserts the
file's: an original sent again or a replacement (CLM05-3 ``7``) replaces them, a void (``8``,
which has no events of its own) removes them, and the same file run twice leaves no duplicates.
A claim of the file with no line of a looked-back code still supersedes (a replacement that
removes the initiation removes its event). The rules ignore history events of claims that are
in the file being checked, voids included. Writes happen in one transaction per file.

Events recorded before schema version 3 have no provider: migration 3 gives them
``UNKNOWN_PROVIDER`` (an empty value, never an HMAC) and they count for every provider of their
patient; they keep their old claim key (patient and CLM01), and a claim of a later file with
that patient and CLM01 (any provider) replaces or voids them. Why they match rather than being
left out: a store has been one installation's, fed that practice's own files, so those events
are almost always the same provider's; left out, every patient in mid-cycle at the upgrade would
get a PMP011 "refill without an initiation" for up to 30 days, and every initiation within six
days of one before the upgrade would escape PMP004. The rules that read the history only flag
(none drops or recodes), and the lookbacks are 30 days at most, so the leniency lasts one
lookback and can never change a claim. The migration runs in the opening transaction (all of it
or nothing), counts the events before and after (they must be equal; ``history.migrated`` logs
the count), and a store already at version 3 migrates nothing.

SQLite: WAL journal, ``busy_timeout``, ``BEGIN IMMEDIATE`` for writes (one writer at a time),
safe for several processes on one host. PostgreSQL (psycopg 3): safe for several hosts; a row
per claim (provider, claim) in ``pump_claim`` is locked (``INSERT ... ON CONFLICT DO UPDATE``)
before its events are replaced, so two writers of one claim serialise. Both carry a
``schema_version`` table and apply forward migrations on open. An unreachable or locked store raises
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
from collections.abc import Callable, Iterable
from datetime import date

from edi.adapters.databases import is_postgres, open_sqlite, sqlite_path
from edi.adapters.files import fsync_folder
from edi.adapters.logs import get_logger
from edi.errors import EdiError, HistoryKeyError, HistoryStoreError, TemporaryFailure, UsageError
from edi.records import Record
from edi.rules.kinds import EventToRecord, FileClaim, HistoryEvent

KEY_ENV = "EDI837_HISTORY_KEY"
URL_ENV = "EDI837_HISTORY"
MIN_KEY_BYTES = 32
# The fingerprint is an HMAC of this label under the key: it recognises the key without
# revealing it, and it can never equal a patient or claim hash (those have other prefixes).
FINGERPRINT_LABEL = b"edi837 history key fingerprint v1"
SQLITE_CORRUPT, SQLITE_NOTADB = 11, 26  # primary result codes: the file is not a usable database
POSTGRES_SCHEMA_BROKEN = frozenset({"XX001", "XX002", "42P01", "42703"})  # corrupt data/index, missing table/column

# The provider of the events recorded before stores knew it (schema version 2 and older). An
# HMAC is never empty, so this can equal no provider's hash. Such events count for every
# provider of their patient: see the module docstring for why.
UNKNOWN_PROVIDER = b""

log = get_logger()


class HistoryWrite(Record):
    """One file's record, hashed: what a store writes in one transaction."""

    claims: dict[tuple[bytes, bytes], bytes]  # (provider, claim) HMACs -> the claim's patient HMAC
    events: list[tuple[bytes, bytes, bytes, str, str]]  # patient, provider, claim HMACs, ISO date, code
    unattributed: set[tuple[bytes, bytes]]  # (patient, schema-2 claim) HMACs: events recorded without a provider


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
        # patient HMAC -> (date, code, claim HMAC, provider HMAC) of the prefetched patients
        self._cache: dict[bytes, list[tuple[date, str, bytes, bytes]]] = {}
        self._hashes: dict[str, bytes] = {}  # patient key -> its HMAC, for the prefetched patients
        self._providers: dict[str, bytes] = {}  # billing provider -> its HMAC
        self._superseded: set[bytes] = set()  # claim HMACs of the file's claims (see ``prefetch``)
        # Whether the store holds events recorded without a provider (made before schema version
        # 3). Read once on open: no new ones are ever written, so a store without them stays so.
        self._unattributed_events = False
        self.key_adopted = False  # true when this open recorded the fingerprint of an older store
        self.migrated_events: int | None = None  # events moved forward by this open's migration

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

    # hmac.digest: the one-shot C HMAC, several times faster than hmac.new(...).digest() (a file
    # hashes each of its claims and patients); the same values.
    def patient_hash(self, patient_key: str) -> bytes:
        return hmac.digest(self._secret, b"patient\x00" + patient_key.upper().encode("utf-8"), "sha256")

    def provider_hash(self, provider: str) -> bytes:
        known = self._providers.get(provider)
        if known is None:
            known = self._providers[provider] = hmac.digest(
                self._secret, b"provider\x00" + provider.upper().encode("utf-8"), "sha256")
        return known

    def claim_hash(self, provider: str, claim_id: str) -> bytes:
        """A claim is its billing provider's CLM01 (the provider's patient control number)."""
        return hmac.digest(self._secret, b"provider claim\x00" + provider.upper().encode("utf-8") + b"\x00"
                           + claim_id.encode("utf-8"), "sha256")

    def unattributed_claim_hash(self, patient_key: str, claim_id: str) -> bytes:
        """The claim key of schema version 2 and older (patient and CLM01): the claim of the events
        recorded without a provider. Its label differs from ``claim_hash``'s, so never equal."""
        return hmac.digest(self._secret, b"claim\x00" + patient_key.upper().encode("utf-8") + b"\x00"
                           + claim_id.encode("utf-8"), "sha256")

    # -- what the rules call ---------------------------------------------------------------
    def prefetch(self, patient_keys: Iterable[str], claims: Iterable[FileClaim] = ()) -> None:
        """Load the events of these patients in a few queries (the rules then read memory), and
        leave the events of the file's ``claims`` out of every lookup from now on."""
        self._hashes = {key: self.patient_hash(key) for key in patient_keys}
        self._cache = {h: [] for h in self._hashes.values()}
        for patient, service_date, code, claim_hash, provider in self._select(list(self._cache)):
            self._cache[patient].append((service_date, code, claim_hash, provider))
        self._superseded = set()
        for claim in claims:
            self._superseded.add(self.claim_hash(claim.provider, claim.claim_id))
            if self._unattributed_events:
                self._superseded.add(self.unattributed_claim_hash(claim.patient_key, claim.claim_id))

    def events(self, patient_key: str, provider: str, since: date, until: date) -> list[HistoryEvent]:
        """The provider patient's events since..until; events recorded without a provider (before
        schema version 3) count for every provider of the patient."""
        patient = self._hashes.get(patient_key) or self.patient_hash(patient_key)
        rows = self._cache.get(patient)
        if rows is None:
            rows = [(d, c, k, p) for _, d, c, k, p in self._select([patient])]
        if not rows:
            return []
        superseded, counted = self._superseded, {self.provider_hash(provider), UNKNOWN_PROVIDER}
        return [HistoryEvent(d, code, claim.hex()) for d, code, claim, by in rows
                if by in counted and since <= d <= until and claim not in superseded]

    # -- what front ends call --------------------------------------------------------------
    def record(self, file_hash: str, events: Iterable[EventToRecord], claims: Iterable[FileClaim] = ()) -> int:
        """In one transaction: the events recorded earlier for the file's claims (``claims``, voids
        among them, and the claims of ``events``) are removed, then ``events`` are inserted. So an
        original sent again or a replacement (frequency 7) replaces its claim's events, and a void
        (frequency 8) removes them. Returns the number of events inserted."""
        write = HistoryWrite({}, [], set())
        patients: dict[str, bytes] = {}
        claim_keys: dict[tuple[str, str, str], tuple[bytes, bytes, bytes]] = {}
        for claim in claims:
            claim_keys[claim] = self._claim_of(write, patients, *claim)
        for event in events:
            key = (event.patient_key, event.provider, event.claim_id)
            found = claim_keys.get(key)
            if found is None:
                found = claim_keys[key] = self._claim_of(write, patients, *key)
            write.events.append((*found, event.service_date.isoformat(), event.code))
        self._write(file_hash, write)
        # What was prefetched for checking the file is stale now: later lookups read the store.
        self._cache, self._hashes, self._superseded = {}, {}, set()
        return len(write.events)

    def _claim_of(self, write: HistoryWrite, patients: dict[str, bytes], patient_key: str, provider: str,
                  claim_id: str) -> tuple[bytes, bytes, bytes]:
        """(patient, provider, claim) HMACs of one claim, entered in ``write``."""
        patient = patients.get(patient_key)
        if patient is None:
            patient = patients[patient_key] = self.patient_hash(patient_key)
        provider_hash, claim = self.provider_hash(provider), self.claim_hash(provider, claim_id)
        write.claims.setdefault((provider_hash, claim), patient)
        if self._unattributed_events:
            write.unattributed.add((patient, self.unattributed_claim_hash(patient_key, claim_id)))
        return patient, provider_hash, claim

    def _migrated(self, version: int, before: int, after: int, latest: int) -> None:
        """Check and log a migration of existing events (inside its transaction: a count that
        changed rolls it back). ``before``/``after``: the events counted around it."""
        if after != before:
            raise HistoryStoreError(f"the schema migration from version {version} would leave {after} of {before} "
                                    "events; nothing was changed", code="HISTORY_CORRUPT")
        self.migrated_events = after
        log.info("history.migrated", history=self.kind, from_version=version, to_version=latest, events=after)

    def _select(self, patients: list[bytes]) -> list[tuple[bytes, date, str, bytes, bytes]]:
        raise NotImplementedError

    def _write(self, file_hash: str, write: HistoryWrite) -> None:
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
    # 3: the billing provider's HMAC (issue 16: evaluation per provider patient-day). Existing
    # events get UNKNOWN_PROVIDER and keep their claim key; (patient, claim) stays indexed for them.
    [
        "ALTER TABLE pump_event ADD COLUMN provider BLOB NOT NULL DEFAULT X''",
        "CREATE INDEX pump_event_provider_claim ON pump_event (provider, claim)",
    ],
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
                latest = len(SQLITE_MIGRATIONS)
                if version > latest:
                    raise _unknown_version(version, latest)
                before = db.execute("SELECT count(*) FROM pump_event").fetchone()[0] if 0 < version < latest else 0
                for number, statements in enumerate(SQLITE_MIGRATIONS, start=1):
                    if number > version:
                        for statement in statements:
                            db.execute(statement)
                        db.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
                if 0 < version < latest:
                    self._migrated(version, before, db.execute("SELECT count(*) FROM pump_event").fetchone()[0], latest)
                self._unattributed_events = db.execute(
                    "SELECT 1 FROM pump_event WHERE provider = ? LIMIT 1", (UNKNOWN_PROVIDER,)).fetchone() is not None
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

    def _select(self, patients: list[bytes]) -> list[tuple[bytes, date, str, bytes, bytes]]:
        rows: list[tuple[bytes, date, str, bytes, bytes]] = []
        try:
            for start in range(0, len(patients), 500):
                chunk = patients[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for patient, day, code, claim, provider in self._db.execute(
                    f"SELECT patient, service_date, code, claim, provider FROM pump_event WHERE patient IN ({marks})",
                    chunk,
                ):
                    rows.append((patient, date.fromisoformat(day), code, claim, provider))
        except sqlite3.Error as error:
            raise _store_error(error) from None
        return rows

    def _write(self, file_hash: str, write: HistoryWrite) -> None:
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("DELETE FROM pump_event WHERE provider = ? AND claim = ?", list(write.claims))
                db.executemany("DELETE FROM pump_event WHERE provider = X'' AND patient = ? AND claim = ?",
                               sorted(write.unattributed))
                db.executemany(
                    "INSERT INTO pump_event (patient, provider, claim, service_date, code, file_hash)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    [(*event, file_hash) for event in write.events],
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
    # 3: the billing provider's HMAC (see SQLITE_MIGRATIONS); a claim row is (provider, claim)
    # now. The existing rows' claim keys include their patient, so they stay unique.
    [
        "ALTER TABLE pump_event ADD COLUMN provider BYTEA NOT NULL DEFAULT ''::bytea",
        "ALTER TABLE pump_event ALTER COLUMN provider DROP DEFAULT",
        "CREATE INDEX pump_event_provider_claim ON pump_event (provider, claim)",
        "ALTER TABLE pump_claim ADD COLUMN provider BYTEA NOT NULL DEFAULT ''::bytea",
        "ALTER TABLE pump_claim ALTER COLUMN provider DROP DEFAULT",
        "ALTER TABLE pump_claim DROP CONSTRAINT pump_claim_pkey",
        "ALTER TABLE pump_claim ADD PRIMARY KEY (provider, claim)",
    ],
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
            latest = len(POSTGRES_MIGRATIONS)
            if version > latest:
                raise _unknown_version(version, latest)
            before = self._count_events() if 0 < version < latest else 0
            for number, statements in enumerate(POSTGRES_MIGRATIONS, start=1):
                if number > version:
                    for statement in statements:
                        self._db.execute(statement)
                    self._db.execute("INSERT INTO schema_version (version) VALUES (%s)", (number,))
            if 0 < version < latest:
                self._migrated(version, before, self._count_events(), latest)
            self._unattributed_events = self._db.execute(
                "SELECT 1 FROM pump_event WHERE provider = %s LIMIT 1", (UNKNOWN_PROVIDER,)).fetchone() is not None
            stored = self._db.execute("SELECT fingerprint FROM history_key").fetchone()
            has_events = self._db.execute("SELECT 1 FROM pump_event LIMIT 1").fetchone() is not None
            record = self._settle_key(stored[0] if stored else None, has_events, secret, KEY_ENV, None)
            if record is not None:
                self._db.execute("INSERT INTO history_key (fingerprint) VALUES (%s)", (record,))

    def _count_events(self) -> int:
        row = self._db.execute("SELECT count(*) FROM pump_event").fetchone()
        return row[0] if row else 0

    @property
    def schema_version(self) -> int:
        with self._db.transaction():
            row = self._db.execute("SELECT max(version) FROM schema_version").fetchone()
            return (row[0] if row else None) or 0

    def _select(self, patients: list[bytes]) -> list[tuple[bytes, date, str, bytes, bytes]]:
        try:
            with self._db.transaction():
                rows = self._db.execute(
                    "SELECT patient, service_date, code, claim, provider FROM pump_event WHERE patient = ANY(%s)",
                    (patients,),
                ).fetchall()
        except self._psycopg.Error as error:
            raise _store_error(error) from None
        return [(bytes(p), d, code, bytes(c), bytes(by)) for p, d, code, c, by in rows]

    def _write(self, file_hash: str, write: HistoryWrite) -> None:
        try:
            with self._db.transaction(), self._db.cursor() as cursor:
                claims = sorted(write.claims)  # a fixed lock order: no deadlock between two writers
                # The claim rows are locked first: two writers of one claim serialise here, so the
                # events they delete and insert below never interleave.
                cursor.executemany(
                    "INSERT INTO pump_claim (patient, provider, claim, file_hash) VALUES (%s, %s, %s, %s)"
                    " ON CONFLICT (provider, claim) DO UPDATE SET file_hash = EXCLUDED.file_hash,"
                    " patient = EXCLUDED.patient",
                    [(write.claims[key], *key, file_hash) for key in claims],
                )
                cursor.executemany("DELETE FROM pump_event WHERE provider = %s AND claim = %s", claims)
                cursor.executemany(
                    "DELETE FROM pump_event WHERE provider = ''::bytea AND patient = %s AND claim = %s",
                    sorted(write.unattributed))
                cursor.executemany(
                    "INSERT INTO pump_event (patient, provider, claim, service_date, code, file_hash)"
                    " VALUES (%s, %s, %s, %s, %s, %s)",
                    [(patient, provider, claim, date.fromisoformat(day), code, file_hash)
                     for patient, provider, claim, day, code in write.events],
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
                    " WHERE e.provider = c.provider AND e.claim = c.claim)")
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
