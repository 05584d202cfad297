"""The history store across files: real SQLite files and a real PostgreSQL server."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from datetime import date
from pathlib import Path

import pytest

from edi.adapters.history import open_history
from edi.errors import HistoryStoreError, TemporaryFailure
from edi.rules.kinds import EventToRecord
from tests.conftest import ROOT, run_cli
from tests.helpers import HEADER, claim, frequency, sqlite_or_clean_postgres, subscriber, x12

PG_ADMIN = os.environ.get("EDI837_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
KEY = {"EDI837_HISTORY_KEY": "test-secret-not-for-production-0123456789"}
LAST, MEMBER, BIRTH = "HISTORYLASTNAMEQ", "HISTMEMBERQ77", "19470203"
CLINIC = "XX:1234567893"  # the billing provider of tests.helpers.HEADER (Claim.billing_provider)


def patient_file(*claims: list[str]) -> bytes:
    return x12(*HEADER, *subscriber(last=LAST, member=MEMBER, birth=BIRTH), *[s for c in claims for s in c])


CLAIM_ID = "CLAIMQZX4417"
EARLIER = patient_file(claim(CLAIM_ID, ("96416", "1", "20261102"), ("J9190", "20", "20261102")))
LATER = patient_file(claim("B1", ("96416", "1", "20261104"), ("J9190", "20", "20261104")))
REFILL = patient_file(claim("R1", ("96521", "1", "20261120")))


def postgres_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return True
    except Exception:  # noqa: BLE001 - any failure means "not here"
        return False


@pytest.fixture(scope="module")
def postgres_url():
    if not postgres_available():
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required under CI=true ({PG_ADMIN})")
        pytest.skip("no PostgreSQL server on 127.0.0.1:5432")
    import psycopg

    name = f"edi837_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def history_url(request, tmp_path: Path) -> str:
    return sqlite_or_clean_postgres(request, tmp_path, "history.sqlite",
                                    "pump_event, pump_claim, schema_version, history_key")


def cli(*args: str, stdin: bytes | None = None):
    return run_cli(*args, stdin=stdin, env=KEY)


def rules_in(result) -> list[str]:
    return [f["rule"] for f in json.loads(result.stdout)["findings"]]


def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_second_initiation_after_an_earlier_file(tmp_path: Path, history_url: str) -> None:
    earlier, later = write(tmp_path, "a.x12", EARLIER), write(tmp_path, "b.x12", LATER)
    assert "PMP004" not in rules_in(cli("validate", "--format", "json", "--history", history_url, later))
    fixed = cli("fix", earlier, "-o", str(tmp_path / "a.out"), "--history", history_url)
    assert fixed.returncode == 0, fixed.stderr
    result = cli("validate", "--format", "json", "--history", history_url, later)
    (finding,) = [f for f in json.loads(result.stdout)["findings"] if f["rule"] == "PMP004"]
    assert finding["claim"] == "B1" and "2 day(s) after the one on 2026-11-02" in finding["message"]


def test_rerunning_a_file_never_reports_against_itself(tmp_path: Path, history_url: str) -> None:
    later = write(tmp_path, "b.x12", LATER)
    for _ in range(3):
        result = cli("validate", "--format", "json", "--history", history_url, "--record", later)
        assert result.returncode == 0, result.stdout
    store = open_history(history_url, env=KEY)
    store.prefetch(["00431\x1fHISTMEMBERQ77\x1fHISTORYLASTNAMEQ\x1fJO\x1f19470203"])
    events = store.events("00431\x1fHISTMEMBERQ77\x1fHISTORYLASTNAMEQ\x1fJO\x1f19470203", CLINIC,
                          date(2026, 1, 1), date(2026, 12, 31))
    assert [(e.date, e.code) for e in events] == [(date(2026, 11, 4), "96416")]  # once, not three times
    store.close()


def test_pmp011_with_history(tmp_path: Path, history_url: str) -> None:
    refill = write(tmp_path, "r.x12", REFILL)
    assert rules_in(cli("validate", "--format", "json", "--history", history_url, refill)) == ["PMP011"]
    assert "PMP011" not in rules_in(cli("validate", "--format", "json", refill))  # no store, no PMP011
    started = write(tmp_path, "s.x12", patient_file(claim("S1", ("96416", "1", "20261101"))))
    cli("validate", "--history", history_url, "--record", started)
    assert rules_in(cli("validate", "--format", "json", "--history", history_url, refill)) == []


def test_fix_records_what_it_passes_on(tmp_path: Path, history_url: str) -> None:
    """A dropped refill is not recorded; a replaced code is recorded as the new code."""
    data = patient_file(claim("F1", ("96414", "1", "20261102"), ("96521", "1", "20261102")))
    cli("fix", write(tmp_path, "f.x12", data), "-o", str(tmp_path / "f.out"), "--history", history_url)
    store = open_history(history_url, env=KEY)
    key = "00431\x1fHISTMEMBERQ77\x1fHISTORYLASTNAMEQ\x1fJO\x1f19470203"
    store.prefetch([key])
    assert [(e.date, e.code) for e in store.events(key, CLINIC, date(2026, 1, 1), date(2026, 12, 31))] == [
        (date(2026, 11, 2), "96416")]
    store.close()


def test_schema_version_and_forward_migration(history_url: str) -> None:
    first = open_history(history_url, env=KEY)
    assert first.schema_version == 3
    first.close()
    again = open_history(history_url, env=KEY)  # opening again migrates nothing, loses nothing
    assert again.schema_version == 3
    again.record("f" * 64, [EventToRecord("k", CLINIC, "c", date(2026, 1, 1), "96416")])
    assert [e.code for e in again.events("k", CLINIC, date(2026, 1, 1), date(2026, 1, 1))] == ["96416"]  # no prefetch
    again.close()


def test_prune_older_than(tmp_path: Path, history_url: str) -> None:
    store = open_history(history_url, env=KEY)
    store.record("f" * 64, [EventToRecord("k", CLINIC, "old", date(2001, 1, 1), "96416"),
                            EventToRecord("k", CLINIC, "new", date.today(), "96416")])
    store.close()
    result = cli("history", "prune", "--older-than", "30", "--history", history_url)
    assert result.returncode == 0 and result.stdout.startswith(b"1 event(s)")
    store = open_history(history_url, env=KEY)
    store.prefetch(["k"])
    assert [e.date for e in store.events("k", CLINIC, date(2000, 1, 1), date(2100, 1, 1))] == [date.today()]
    store.close()


def test_two_processes_recording_at_once_lose_nothing(tmp_path: Path, history_url: str) -> None:
    script = (
        "import sys, datetime\n"
        "from edi.adapters.history import open_history\n"
        "from edi.rules.kinds import EventToRecord\n"
        "store = open_history(sys.argv[1], env={'EDI837_HISTORY_KEY': 'test-secret-not-for-production-0123456789'})\n"
        "for n in range(40):\n"
        "    store.record('h' * 64, [EventToRecord(f'patient-{sys.argv[2]}-{n % 7}', 'XX:1', f'claim-{sys.argv[2]}-{n}',"
        " datetime.date(2026, 11, 1 + n % 20), '96416') for _ in range(1)] +"
        " [EventToRecord('shared', 'XX:1', f'claim-{sys.argv[2]}-{n}', datetime.date(2026, 11, 2), '96521')])\n"
        "store.close()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    workers = [subprocess.Popen([sys.executable, "-c", script, history_url, str(n)], env=env) for n in range(2)]
    assert [worker.wait(timeout=120) for worker in workers] == [0, 0]
    store = open_history(history_url, env=KEY)
    keys = [f"patient-{w}-{p}" for w in range(2) for p in range(7)] + ["shared"]
    store.prefetch(keys)
    total = sum(len(store.events(key, "XX:1", date(2026, 1, 1), date(2026, 12, 31))) for key in keys)
    assert total == 2 * 40 * 2
    store.close()


def test_stored_data_holds_no_names_or_ids(tmp_path: Path, history_url: str) -> None:
    fixed = cli("fix", write(tmp_path, "a.x12", EARLIER), "-o", str(tmp_path / "a.out"), "--history", history_url)
    assert fixed.returncode == 0
    secrets_ = (LAST, MEMBER, BIRTH, CLAIM_ID)
    if history_url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(history_url) as db:
            rows = [row for table in ("pump_event", "pump_claim") for row in db.execute(f"SELECT * FROM {table}")]
        dump = repr(rows)
        assert rows
    else:
        dump = "".join(Path(p).read_bytes().decode("latin-1") for p in Path(history_url).parent.glob("history.sqlite*"))
        assert "96416" in dump
    for secret in secrets_:  # claim numbers are hashed too
        assert secret not in dump


def test_sqlite_key_file_is_private_and_reused(tmp_path: Path) -> None:
    url = str(tmp_path / "h.sqlite")
    result = run_cli("validate", "--history", url, "--record", write(tmp_path, "a.x12", EARLIER))
    assert result.returncode == 0
    key = tmp_path / "h.sqlite.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_bytes()) == 64
    assert stat.S_IMODE((tmp_path / "h.sqlite").stat().st_mode) == 0o600
    secret = key.read_bytes()
    run_cli("validate", "--history", url, write(tmp_path, "b.x12", LATER))
    assert key.read_bytes() == secret
    later = run_cli("validate", "--format", "json", "--history", url, str(tmp_path / "b.x12"))
    assert "PMP004" in rules_in(later)


def test_postgres_needs_a_shared_key(postgres_url: str, tmp_path: Path) -> None:
    result = run_cli("validate", "--history", postgres_url, write(tmp_path, "a.x12", EARLIER),
                     env={"EDI837_HISTORY_KEY": ""})
    assert result.returncode == 64 and b"EDI837_HISTORY_KEY" in result.stderr


def test_environment_variable_names_the_store(tmp_path: Path) -> None:
    url = str(tmp_path / "env.sqlite")
    result = run_cli("validate", "--record", write(tmp_path, "a.x12", EARLIER), env={**KEY, "EDI837_HISTORY": url})
    assert result.returncode == 0 and Path(url).exists()


@pytest.mark.parametrize("url", [
    "postgresql://postgres@127.0.0.1:1/nothing",
    "/nonexistent-folder-for-edi837/history.sqlite",
])
def test_unreachable_store_is_exit_75(tmp_path: Path, url: str) -> None:
    path = write(tmp_path, "a.x12", EARLIER)
    for command in (["validate", "--history", url, path], ["fix", path, "-o", str(tmp_path / "o.x12"), "--history", url]):
        result = cli(*command)
        assert result.returncode == 75, (command, result.stderr)
        assert b"history store unavailable" in result.stderr or b"history folder" in result.stderr
    assert not (tmp_path / "o.x12").exists()


def test_unreachable_store_raises_temporary_failure() -> None:
    with pytest.raises(TemporaryFailure) as caught:
        open_history("postgresql://postgres@127.0.0.1:1/nothing", env=KEY)
    assert caught.value.exit_code == 75


# -- the key is checked, never trusted (issue 13, item 5) ------------------------------------

OTHER_KEY = {"EDI837_HISTORY_KEY": "another-secret-of-more-than-32-bytes-xyz"}
PATIENT = "00431\x1fHISTMEMBERQ77\x1fHISTORYLASTNAMEQ\x1fJO\x1f19470203"


def recorded_codes(url: str, env: dict[str, str] | None = None) -> list[str]:
    store = open_history(url, env=env if env is not None else KEY)
    try:
        store.prefetch([PATIENT])
        return [e.code for e in store.events(PATIENT, CLINIC, date(2026, 1, 1), date(2026, 12, 31))]
    finally:
        store.close()


def test_concurrent_creators_of_a_store_agree_on_one_key(tmp_path: Path) -> None:
    """Four processes opening a new SQLite store at once all hash with the key file's key."""
    url = str(tmp_path / "h.sqlite")
    script = (
        "import sys, time\n"
        "from edi.adapters.history import open_history\n"
        "while time.time() < float(sys.argv[2]): pass\n"
        "store = open_history(sys.argv[1], env={})\n"
        "print(store.patient_hash('probe').hex())\n"
        "store.close()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "EDI837_HISTORY_KEY"} | {"PYTHONPATH": str(ROOT)}
    start = str(__import__("time").time() + 1.5)  # after every interpreter has started
    workers = [subprocess.Popen([sys.executable, "-c", script, url, start], env=env, stdout=subprocess.PIPE)
               for _ in range(4)]
    hashes = {worker.communicate(timeout=60)[0].strip() for worker in workers}
    assert [w.returncode for w in workers] == [0] * 4
    key = (tmp_path / "h.sqlite.key").read_bytes()
    import hashlib
    import hmac

    expected = hmac.new(key, b"patient\x00PROBE", hashlib.sha256).hexdigest().encode()
    assert len(key) == 64 and hashes == {expected}
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_threads_opening_a_new_store_together_agree_on_one_key(tmp_path: Path) -> None:
    """The same race inside one process, many times: no opener ever reads an empty key file."""
    import threading

    for round_ in range(20):
        url = str(tmp_path / f"h{round_}.sqlite")
        barrier = threading.Barrier(6)
        hashes: list[bytes] = []

        def open_store(url: str = url, barrier: threading.Barrier = barrier, hashes: list[bytes] = hashes) -> None:
            barrier.wait()
            store = open_history(url, env={})
            hashes.append(store.patient_hash("probe"))
            store.close()

        threads = [threading.Thread(target=open_store) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(hashes) == 6 and len(set(hashes)) == 1, round_


@pytest.mark.parametrize("key", ["", "too-short-31-bytes-key-12345678"])
def test_a_short_environment_key_is_refused(tmp_path: Path, key: str) -> None:
    result = run_cli("validate", "--history", str(tmp_path / "h.sqlite"), write(tmp_path, "a.x12", EARLIER),
                     env={"EDI837_HISTORY_KEY": key})
    assert result.returncode == 64 and b"HISTORY_KEY_TOO_SHORT" in result.stderr, result.stderr
    assert not (tmp_path / "h.sqlite").exists()


def test_an_empty_key_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "h.sqlite.key").write_bytes(b"\n")
    result = run_cli("validate", "--history", str(tmp_path / "h.sqlite"), write(tmp_path, "a.x12", EARLIER))
    assert result.returncode == 64 and b"HISTORY_KEY_TOO_SHORT" in result.stderr, result.stderr
    assert (tmp_path / "h.sqlite.key").read_bytes() == b"\n"  # left for the operator to see


def test_a_changed_key_is_refused_not_a_silent_clean_run(tmp_path: Path, history_url: str) -> None:
    assert cli("fix", write(tmp_path, "a.x12", EARLIER), "-o", str(tmp_path / "a.out"),
               "--history", history_url).returncode == 0
    later = write(tmp_path, "b.x12", LATER)
    result = run_cli("validate", "--format", "json", "--history", history_url, later, env=OTHER_KEY)
    assert result.returncode == 64, result.stdout
    assert b"HISTORY_KEY_MISMATCH" in result.stderr and result.stdout == b""
    assert OTHER_KEY["EDI837_HISTORY_KEY"].encode() not in result.stderr
    assert "PMP004" in rules_in(cli("validate", "--format", "json", "--history", history_url, later))


def test_a_deleted_key_file_or_a_switch_to_the_environment_is_refused(tmp_path: Path) -> None:
    url, key_file = str(tmp_path / "h.sqlite"), tmp_path / "h.sqlite.key"
    assert run_cli("validate", "--record", "--history", url, write(tmp_path, "a.x12", EARLIER)).returncode == 0
    later = write(tmp_path, "b.x12", LATER)
    switched = run_cli("validate", "--history", url, later, env=KEY)
    assert switched.returncode == 64 and b"HISTORY_KEY_MISMATCH" in switched.stderr
    original = key_file.read_bytes()
    key_file.unlink()
    deleted = run_cli("validate", "--history", url, later)
    assert deleted.returncode == 64 and b"HISTORY_KEY_MISSING" in deleted.stderr
    assert not key_file.exists()  # no new key made for a store that has events
    key_file.write_bytes(original)
    assert "PMP004" in rules_in(run_cli("validate", "--format", "json", "--history", url, later))


def test_a_store_made_before_fingerprints_adopts_the_first_key(tmp_path: Path, history_url: str) -> None:
    old_store(history_url, 1, [(PATIENT, CLAIM_ID, date(2026, 11, 2), "96416")])  # schema 1: no fingerprint
    store = open_history(history_url, env=KEY)
    assert store.schema_version == 3 and store.key_adopted and store.migrated_events == 1
    store.close()
    assert recorded_codes(history_url) == ["96416"]  # the events recorded before the upgrade still match
    result = run_cli("validate", "--history", history_url, write(tmp_path, "b.x12", LATER), env=OTHER_KEY)
    assert result.returncode == 64 and b"HISTORY_KEY_MISMATCH" in result.stderr


# -- a corrupt or foreign store is the operator's to fix, not "retry later" (issue 13, item 6) ---


def sqlite_store_with_events(path: Path, count: int = 3000) -> None:
    store = open_history(str(path), env=KEY)
    store.record("f" * 64, [EventToRecord(PATIENT if n == 0 else f"p{n}", CLINIC, f"c{n}", date(2026, 11, 1), "96416")
                            for n in range(count)])
    store.close()


def garbage(path: Path) -> None:
    path.write_bytes(os.urandom(8192))


def truncated(path: Path) -> None:
    sqlite_store_with_events(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def corrupt_pages(path: Path) -> None:
    sqlite_store_with_events(path)
    data = bytearray(path.read_bytes())
    data[4096 * 2 :] = b"\xa5" * (len(data) - 4096 * 2)  # every page after the schema's
    path.write_bytes(bytes(data))


def folder(path: Path) -> None:
    path.mkdir()


def newer_schema(path: Path) -> None:
    open_history(str(path), env=KEY).close()
    import sqlite3

    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO schema_version (version) VALUES (99)")


def foreign_database(path: Path) -> None:
    import sqlite3

    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE inputs (sha256 TEXT PRIMARY KEY)")


@pytest.mark.parametrize(("damage", "code"), [
    (garbage, b"HISTORY_CORRUPT"), (truncated, b"HISTORY_CORRUPT"), (corrupt_pages, b"HISTORY_CORRUPT"),
    (folder, b"HISTORY_CORRUPT"), (newer_schema, b"HISTORY_SCHEMA_UNKNOWN"), (foreign_database, b"HISTORY_SCHEMA_UNKNOWN"),
])
def test_a_corrupt_or_foreign_sqlite_store_is_a_permanent_error(tmp_path: Path, damage, code: bytes) -> None:
    store = tmp_path / "h.sqlite"
    damage(store)
    before = sorted(p.name for p in tmp_path.iterdir())
    source = write(tmp_path, "a.x12", EARLIER)
    for command in (["validate", "--history", str(store), source],
                    ["fix", source, "-o", str(tmp_path / "o.x12"), "--history", str(store)]):
        result = cli(*command)
        assert result.returncode == 74, (command, result.stderr)
        assert code in result.stderr and b"Traceback" not in result.stderr
    assert not (tmp_path / "o.x12").exists() and Path(source).read_bytes() == EARLIER
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*before, "a.x12"])
    if damage is foreign_database:  # never adds its tables to someone else's database
        import sqlite3

        with sqlite3.connect(store) as db:
            assert [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["inputs"]


def test_a_newer_postgres_schema_is_a_permanent_error(tmp_path: Path, postgres_url: str) -> None:
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute("DROP TABLE IF EXISTS pump_event, pump_claim, schema_version, history_key")
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        db.execute("INSERT INTO schema_version VALUES (99)")
    try:
        result = cli("validate", "--history", postgres_url, write(tmp_path, "a.x12", EARLIER))
        assert result.returncode == 74 and b"HISTORY_SCHEMA_UNKNOWN" in result.stderr, result.stderr
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as db:
            db.execute("DROP TABLE IF EXISTS schema_version")


def test_a_locked_store_stays_a_temporary_failure(tmp_path: Path) -> None:
    """A store another process holds locked is "retry later" (75), not corrupt."""
    import sqlite3

    from edi.adapters.history import _store_error

    path = tmp_path / "h.sqlite"
    open_history(str(path), env=KEY).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        waiter = sqlite3.connect(path, timeout=0, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError) as locked:
            waiter.execute("BEGIN IMMEDIATE")
        waiter.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    error = _store_error(locked.value)
    assert isinstance(error, TemporaryFailure) and error.exit_code == 75 and error.code == "HISTORY_UNAVAILABLE"


def test_gateway_answers_a_store_broken_mid_run_with_500_not_422(tmp_path: Path) -> None:
    """A corrupt store is the server's problem: never an answer that blames the client's file."""
    from tests.test_gateway import BAD as GATEWAY_FILE
    from tests.test_gateway import Server

    history = tmp_path / "history.sqlite"
    running = Server(tmp_path, "--history", str(history))
    try:
        assert running.post(GATEWAY_FILE).status_code == 200
        for path in tmp_path.glob("history.sqlite-*"):
            path.unlink()
        history.write_bytes(os.urandom(8192))
        response = running.post(GATEWAY_FILE)
        assert response.status_code == 500 and "HISTORY_CORRUPT" in response.json()["title"]
    finally:
        running.stop()


# -- per provider patient, voids and replacements, schema 3 (issue 16, item 5) -----------------
# The stores as edi837 made them before providers (schema versions 1 and 2): their DDL and their
# hashing, frozen here as they were, so that the migration is tested on a store the old code made.

OLD_DDL = {
    "sqlite": [
        ("CREATE TABLE pump_event (patient BLOB NOT NULL, claim BLOB NOT NULL, service_date TEXT NOT NULL,"
         " code TEXT NOT NULL, file_hash TEXT NOT NULL)"),
        "CREATE INDEX pump_event_patient ON pump_event (patient, service_date)",
        "CREATE INDEX pump_event_claim ON pump_event (patient, claim)",
    ],
    "postgres": [
        ("CREATE TABLE pump_claim (patient BYTEA NOT NULL, claim BYTEA NOT NULL, file_hash TEXT NOT NULL,"
         " PRIMARY KEY (patient, claim))"),
        ("CREATE TABLE pump_event (patient BYTEA NOT NULL, claim BYTEA NOT NULL, service_date DATE NOT NULL,"
         " code TEXT NOT NULL, file_hash TEXT NOT NULL)"),
        "CREATE INDEX pump_event_patient ON pump_event (patient, service_date)",
        "CREATE INDEX pump_event_claim ON pump_event (patient, claim)",
    ],
}
OLD_FINGERPRINT_DDL = "CREATE TABLE history_key (fingerprint TEXT NOT NULL)"
OTHER_CLINIC = "XX:1999999984"


def old_hash(label: bytes, *parts: str) -> bytes:
    import hashlib
    import hmac

    return hmac.new(KEY["EDI837_HISTORY_KEY"].encode(), label + b"\x00".join(p.encode() for p in parts),
                    hashlib.sha256).digest()


def old_store(url: str, version: int, events: list[tuple[str, str, date, str]]) -> None:
    """A store of schema ``version`` (1 or 2) holding ``events`` (patient key, CLM01, date, code),
    hashed as schema 2 did: HMAC(patient key) and HMAC(patient key, CLM01), no provider."""
    postgres = url.startswith("postgresql://")
    rows = [(old_hash(b"patient\x00", patient.upper()), old_hash(b"claim\x00", patient.upper(), claim),
             day if postgres else day.isoformat(), code, "a" * 64) for patient, claim, day, code in events]
    statements = [*OLD_DDL["postgres" if postgres else "sqlite"], "CREATE TABLE schema_version (version INTEGER NOT NULL)"]
    if version == 2:
        statements.append(OLD_FINGERPRINT_DDL)
    if postgres:
        import psycopg

        with psycopg.connect(url) as db:  # one transaction
            db.execute("DROP TABLE IF EXISTS pump_event, pump_claim, schema_version, history_key")
            for statement in statements:
                db.execute(statement)
            db.cursor().executemany("INSERT INTO schema_version VALUES (%s)", [(n,) for n in range(1, version + 1)])
            db.cursor().executemany("INSERT INTO pump_claim VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                                    [(row[0], row[1], row[4]) for row in rows])
            db.cursor().executemany("INSERT INTO pump_event VALUES (%s, %s, %s, %s, %s)", rows)
            if version == 2:
                db.execute("INSERT INTO history_key VALUES (%s)", (old_hash(b"edi837 history key fingerprint v1").hex(),))
    else:
        import sqlite3

        with sqlite3.connect(url) as db:
            for statement in statements:
                db.execute(statement)
            db.executemany("INSERT INTO schema_version VALUES (?)", [(n,) for n in range(1, version + 1)])
            db.executemany("INSERT INTO pump_event VALUES (?, ?, ?, ?, ?)", rows)
            if version == 2:
                db.execute("INSERT INTO history_key VALUES (?)", (old_hash(b"edi837 history key fingerprint v1").hex(),))
        db.close()


def stored_rows(url: str) -> list[tuple]:
    """Every event row as stored (patient, claim, provider HMACs, date, code), sorted."""
    query = "SELECT patient, claim, provider, service_date, code FROM pump_event"
    if url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(url) as db:
            rows = [(bytes(p), bytes(c), bytes(by), d.isoformat(), code) for p, c, by, d, code in db.execute(query)]
    else:
        import sqlite3

        db = sqlite3.connect(url)
        rows = list(db.execute(query))
        db.close()
    return sorted(rows)


def provider_file(npi: str, *claims: list[str]) -> bytes:
    """The test patient's claims billed by the clinic with this NPI."""
    header = [line.replace("XX*1234567893", f"XX*{npi}") for line in HEADER]
    return x12(*header, *subscriber(last=LAST, member=MEMBER, birth=BIRTH), *[s for c in claims for s in c])


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def any_store(request, tmp_path: Path):
    """The reference in-memory history and the two durable stores: one behaviour."""
    if request.param == "memory":
        from edi.rules.history import MemoryHistory

        yield MemoryHistory()
        return
    url = sqlite_or_clean_postgres(request, tmp_path, "history.sqlite",
                                   "pump_event, pump_claim, schema_version, history_key")
    store = open_history(url, env=KEY)
    yield store
    store.close()


def checked(store, data: bytes, *, record: bool = False) -> list[str]:
    """The rules found in ``data`` with the store as history; then, if asked, the file recorded
    as the front ends record it (its events and its claims)."""
    from edi.adapters.rules_files import load_rule_book
    from edi.pipeline import validate
    from edi.rules.engine import RuleEngine

    engine = RuleEngine(load_rule_book(None), history=store)
    report = validate([data], name="test", engine=engine)
    assert not report.errors
    if record:
        store.record("f" * 64, engine.events_to_record(), engine.file_claims())
    return [f.rule for f in report.findings]


def initiation(claim_id: str, day: str, *, code: str = "96416") -> list[str]:
    return claim(claim_id, (code, "1", day), ("J9190", "20", day))


def test_another_providers_initiation_neither_triggers_pmp004_nor_satisfies_pmp011(any_store) -> None:
    checked(any_store, provider_file("1234567893", initiation("A1", "20261102")), record=True)
    # The same patient's initiation two days later at another practice: not a repeat of ours ...
    assert "PMP004" not in checked(any_store, provider_file("1999999984", initiation("B1", "20261104")))
    assert "PMP004" in checked(any_store, provider_file("1234567893", initiation("B1", "20261104")))
    # ... and our initiation does not explain another practice's refill.
    assert "PMP011" in checked(any_store, provider_file("1999999984", claim("R1", ("96521", "1", "20261120"))))
    assert "PMP011" not in checked(any_store, provider_file("1234567893", claim("R1", ("96521", "1", "20261120"))))


def test_a_void_in_a_later_file_clears_the_claims_events(any_store) -> None:
    checked(any_store, provider_file("1234567893", initiation("A1", "20261102")), record=True)
    later = provider_file("1234567893", initiation("B1", "20261104"))
    assert "PMP004" in checked(any_store, later)
    # The void in the file being checked already leaves the voided claim's events out ...
    void = frequency(initiation("A1", "20261102"), "8")
    assert "PMP004" not in checked(any_store, provider_file("1234567893", void, initiation("B1", "20261104")))
    # ... another provider's void of a claim with the same CLM01 is another claim ...
    checked(any_store, provider_file("1999999984", void), record=True)
    assert "PMP004" in checked(any_store, later)
    # ... and once the void is recorded, the claim's events are gone for every later file.
    assert checked(any_store, provider_file("1234567893", void), record=True) == []
    assert "PMP004" not in checked(any_store, later)
    assert any_store.events(PATIENT, CLINIC, date(2026, 1, 1), date(2026, 12, 31)) == []


def test_a_replacement_replaces_the_claims_events(any_store) -> None:
    checked(any_store, provider_file("1234567893", initiation("A1", "20261102")), record=True)
    later = provider_file("1234567893", initiation("B1", "20261104"))
    # The replacement corrects the date of service: 2026-10-20, fifteen days before.
    replacement = frequency(initiation("A1", "20261020"), "7")
    checked(any_store, provider_file("1234567893", replacement), record=True)
    assert [(e.date, e.code) for e in any_store.events(PATIENT, CLINIC, date(2026, 1, 1), date(2026, 12, 31))] == [
        (date(2026, 10, 20), "96416")]
    assert "PMP004" not in checked(any_store, later)
    # A replacement without the initiation removes it; an original sent again puts it back.
    checked(any_store, provider_file("1234567893", frequency(claim("A1", ("J9190", "20", "20261102")), "7")),
            record=True)
    assert any_store.events(PATIENT, CLINIC, date(2026, 1, 1), date(2026, 12, 31)) == []
    checked(any_store, provider_file("1234567893", initiation("A1", "20261102")), record=True)
    assert "PMP004" in checked(any_store, later)


def test_a_void_across_files_through_the_command_line(tmp_path: Path, history_url: str) -> None:
    """The front ends record the file's claims too: `validate --record` of a void clears."""
    later = write(tmp_path, "b.x12", LATER)
    assert cli("validate", "--record", "--history", history_url, write(tmp_path, "a.x12", EARLIER)).returncode == 0
    assert "PMP004" in rules_in(cli("validate", "--format", "json", "--history", history_url, later))
    void = patient_file(frequency(claim(CLAIM_ID, ("96416", "1", "20261102"), ("J9190", "20", "20261102")), "8"))
    assert cli("fix", write(tmp_path, "v.x12", void), "-o", str(tmp_path / "v.out"),
               "--history", history_url).returncode == 0
    assert "PMP004" not in rules_in(cli("validate", "--format", "json", "--history", history_url, later))
    assert recorded_codes(history_url) == []


def test_the_provider_is_stored_as_a_keyed_hash(tmp_path: Path, history_url: str) -> None:
    assert cli("validate", "--record", "--history", history_url, write(tmp_path, "a.x12", EARLIER)).returncode == 0
    (row,) = stored_rows(history_url)
    store = open_history(history_url, env=KEY)
    assert row[2] == store.provider_hash(CLINIC) and row[1] == store.claim_hash(CLINIC, CLAIM_ID)
    store.close()
    assert len(row[2]) == 32 and b"1234567893" not in b"".join(row[:3])


@pytest.mark.parametrize("version", [1, 2])
def test_migration_to_schema_3_keeps_and_counts_every_event(history_url: str, version: int) -> None:
    """A store the old code made (its DDL and hashing): every event moved forward, counted, still
    found for the patient whatever the provider; a second open migrates nothing."""
    events = [(PATIENT if n % 50 == 0 else f"p{n % 97}", f"c{n}", date(2026, 11, 1 + n % 28), "96416")
              for n in range(1000)]
    old_store(history_url, version, events)
    store = open_history(history_url, env=KEY)
    assert (store.schema_version, store.migrated_events) == (3, 1000)
    rows = stored_rows(history_url)
    assert len(rows) == 1000 and {row[2] for row in rows} == {b""}
    expected = sorted((old_hash(b"patient\x00", p.upper()), old_hash(b"claim\x00", p.upper(), c), b"", d.isoformat(), code)
                      for p, c, d, code in events)
    assert rows == expected  # nothing lost, nothing changed but the provider
    store.prefetch([PATIENT])
    mine = [e for e in events if e[0] == PATIENT]
    for provider in (CLINIC, OTHER_CLINIC):  # recorded without a provider: they count for each
        assert len(store.events(PATIENT, provider, date(2026, 1, 1), date(2026, 12, 31))) == len(mine) == 20
    store.close()
    again = open_history(history_url, env=KEY)
    assert (again.schema_version, again.migrated_events) == (3, None) and stored_rows(history_url) == rows
    again.close()


def test_events_recorded_before_providers_are_superseded_by_patient_and_claim(history_url: str) -> None:
    """Migrated events keep their old claim key: a later file's claim with the same patient and
    CLM01 (from any provider: the old events do not say which) replaces or voids them, and lookups
    leave them out while that file is checked."""
    old_store(history_url, 2, [(PATIENT, "A1", date(2026, 11, 2), "96416"), (PATIENT, "A2", date(2026, 11, 3), "96416"),
                               ("another patient", "A1", date(2026, 11, 2), "96416")])
    store = open_history(history_url, env=KEY)
    try:
        later = provider_file("1234567893", initiation("B1", "20261104"))
        assert "PMP004" in checked(store, later)  # an event without a provider counts for ours ...
        assert "PMP004" in checked(store, provider_file("1999999984", initiation("B1", "20261104")))  # ... and theirs
        # A1 sent again with a corrected date, and a void of A2 in the file being checked:
        resent = provider_file("1234567893", initiation("A1", "20261020"), frequency(initiation("A2", "20261103"), "8"),
                               initiation("B1", "20261104"))
        assert "PMP004" not in checked(store, resent)
        checked(store, provider_file("1234567893", initiation("A1", "20261020"), frequency(initiation("A2", "20261103"), "8")),
                record=True)
        assert [(e.date, e.code) for e in store.events(PATIENT, CLINIC, date(2026, 1, 1), date(2026, 12, 31))] == [
            (date(2026, 10, 20), "96416")]
        assert store.events(PATIENT, OTHER_CLINIC, date(2026, 1, 1), date(2026, 12, 31)) == []
        assert "PMP004" not in checked(store, later)
        # Another patient's claim with the same CLM01 is another claim: still there, unattributed.
        assert [row[2] for row in stored_rows(history_url)].count(b"") == 1
    finally:
        store.close()


def break_migration(url: str) -> None:
    """A table named as migration 3's index: its CREATE INDEX fails after the ALTER TABLE ran."""
    if url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(url) as db:
            db.execute("CREATE TABLE pump_event_provider_claim (x int)")
    else:
        import sqlite3

        db = sqlite3.connect(url)
        db.execute("CREATE TABLE pump_event_provider_claim (x)")
        db.commit()
        db.close()


def test_a_failed_migration_changes_nothing(history_url: str) -> None:
    """Migration 3 runs in one transaction: failing at its last statement leaves schema 2 and
    every event as they were, and the store migrates once the obstacle is gone."""
    old_store(history_url, 2, [(f"p{n}", f"c{n}", date(2026, 11, 2), "96416") for n in range(50)])
    break_migration(history_url)
    with pytest.raises((TemporaryFailure, HistoryStoreError)):
        open_history(history_url, env=KEY)
    if history_url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(history_url) as db:
            columns = [r[0] for r in db.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'pump_event'")]
            versions = [r[0] for r in db.execute("SELECT version FROM schema_version")]
            count = db.execute("SELECT count(*) FROM pump_event").fetchone()
            db.execute("DROP TABLE pump_event_provider_claim")
            db.commit()
    else:
        import sqlite3

        db = sqlite3.connect(history_url)
        columns = [r[1] for r in db.execute("PRAGMA table_info(pump_event)")]
        versions = [r[0] for r in db.execute("SELECT version FROM schema_version")]
        count = db.execute("SELECT count(*) FROM pump_event").fetchone()
        db.execute("DROP TABLE pump_event_provider_claim")
        db.commit()
        db.close()
    assert "provider" not in columns and sorted(versions) == [1, 2] and count == (50,)
    store = open_history(history_url, env=KEY)
    assert (store.schema_version, store.migrated_events) == (3, 50)
    store.close()


WRITER = (
    "import sys, time, datetime\n"
    "from edi.adapters.history import open_history\n"
    "from edi.rules.kinds import EventToRecord, FileClaim\n"
    "url, worker, start = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])\n"
    "while time.time() < start: pass\n"
    "store = open_history(url, env={'EDI837_HISTORY_KEY': 'test-secret-not-for-production-0123456789'})\n"
    "code = ('96416', '96425')[worker]\n"
    "for n in range(30):\n"
    "    claim = f'same-{n % 10}'\n"
    "    store.record('h' * 64, [EventToRecord('shared claims', 'XX:1', claim, datetime.date(2026, 11, day), code)"
    " for day in (1, 2)], [FileClaim('shared claims', 'XX:1', claim)])\n"
    "print(store.migrated_events)\n"
    "store.close()\n"
)


def test_concurrent_writers_migrate_once_and_replace_claims_whole(history_url: str) -> None:
    """Two processes open a schema-2 store at the same moment and then replace the same ten claims
    thirty times each: the store migrates once with every old event, and every claim ends with
    the two events of one writer (a replace is never torn or doubled)."""
    old_store(history_url, 2, [(f"p{n}", f"c{n}", date(2026, 11, 2), "96416") for n in range(200)])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = str(__import__("time").time() + 1.5)  # after both interpreters have started
    workers = [subprocess.Popen([sys.executable, "-c", WRITER, history_url, str(n), start], env=env,
                                stdout=subprocess.PIPE) for n in range(2)]
    migrated = sorted(worker.communicate(timeout=120)[0].strip() for worker in workers)
    assert [worker.returncode for worker in workers] == [0, 0]
    assert migrated == [b"200", b"None"]  # one of them migrated, counting every event
    rows = stored_rows(history_url)
    assert sum(1 for row in rows if row[2] == b"") == 200
    store = open_history(history_url, env=KEY)
    by_claim: dict[str, list[tuple[date, str]]] = {}
    for event in store.events("shared claims", "XX:1", date(2026, 1, 1), date(2026, 12, 31)):
        by_claim.setdefault(event.claim_id, []).append((event.date, event.code))
    store.close()
    assert len(by_claim) == 10
    for events in by_claim.values():
        assert len(events) == 2 and len({code for _, code in events}) == 1 and {d.day for d, _ in events} == {1, 2}


def primary_on_the_day(spec, book, patient):
    """A stand-in for PMP012's kind: an add-on line without a primary on its provider patient-day,
    in the file or the history."""
    from edi.rules.kinds import Hit

    addons, primaries = spec.params["addons"], spec.params["primaries"]
    earlier = {event.date for event in patient.history if event.code in primaries}
    for day, record in patient.days.items():
        if record.codes.isdisjoint(primaries) and day not in earlier:
            yield from (Hit(line, None, {"code": line.code}) for line in record.lines if line.code in addons)


def test_the_codes_recorded_follow_the_kinds_history_codes(monkeypatch, any_store) -> None:
    """A kind that declares the codes it looks back for (as PMP012 declares its primaries) has
    their lines recorded and looked up per provider patient-day, with no change to the store."""
    from edi.adapters.rules_files import load_rule_book
    from edi.pipeline import validate
    from edi.rules import kinds
    from edi.rules.book import RuleSpec
    from edi.rules.engine import RuleEngine

    monkeypatch.setitem(kinds.KINDS, "primary_on_the_day", kinds.Kind(
        name="primary_on_the_day", evaluate=primary_on_the_day, parameters={"addons": "codes", "primaries": "codes"},
        trigger_codes=lambda spec, book: spec.params["addons"], history_codes=("primaries",),
        message_fields=frozenset({"code"})))
    spec = RuleSpec("PMP099", "add-on without its primary", "primary_on_the_day", "error",
                    {"medicare": "flag", "other": "flag"}, "{code} without its primary",
                    {"addons": frozenset({"96415"}), "primaries": frozenset({"96413"})}, {})
    base = load_rule_book(None)
    book = base._replace(rules=(*base.rules, spec))

    def run(data: bytes, *, record: bool = False) -> list[str]:
        engine = RuleEngine(book, select=("PMP099",), history=any_store)
        report = validate([data], name="test", engine=engine)
        if record:
            assert "96413" in engine.history_codes()
            any_store.record("f" * 64, engine.events_to_record(), engine.file_claims())
        return [f.rule for f in report.findings]

    morning = provider_file("1234567893", claim("M1", ("96413", "1", "20261102")))
    afternoon = provider_file("1234567893", claim("N1", ("96415", "2", "20261102")))
    assert run(afternoon) == ["PMP099"]
    assert run(morning, record=True) == []
    assert run(afternoon) == []  # the primary was sent in the morning's file
    assert run(provider_file("1999999984", claim("N1", ("96415", "2", "20261102")))) == ["PMP099"]  # not theirs
    assert run(provider_file("1234567893", claim("N1", ("96415", "2", "20261103")))) == ["PMP099"]  # another day


def test_a_code_map_parameter_records_what_it_maps_to() -> None:
    """PMP012 gives its primaries as add-on -> primaries: the primaries are what is recorded
    and looked back for, never the add-on codes themselves."""
    from edi.adapters.rules_files import load_rule_book
    from edi.rules.engine import RuleEngine

    base = load_rule_book(None)
    pmp012 = next(spec for spec in base.rules if spec.id == "PMP012")
    primaries_of = pmp012.params["primaries"]
    recorded = RuleEngine(base._replace(rules=(pmp012,))).history_codes()
    every_primary = set().union(*(primaries_of[add_on].exact for add_on in primaries_of))
    assert {"96413", "96409", "96365", "96360"} <= every_primary
    assert all(code in recorded for code in every_primary)
    assert not any(code in recorded for code in set(primaries_of) - every_primary)  # add-on only
