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
from edi.errors import TemporaryFailure
from edi.rules.kinds import EventToRecord
from tests.conftest import ROOT, run_cli
from tests.helpers import HEADER, claim, subscriber, x12

PG_ADMIN = os.environ.get("EDI837_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
KEY = {"EDI837_HISTORY_KEY": "test-secret-not-for-production"}
LAST, MEMBER, BIRTH = "HISTORYLASTNAMEQ", "HISTMEMBERQ77", "19470203"


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
    if request.param == "sqlite":
        return str(tmp_path / "history.sqlite")
    url = request.getfixturevalue("postgres_url")
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:  # a clean store for each test
        db.execute("DROP TABLE IF EXISTS pump_event, pump_claim, schema_version")
    return url


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
    events = store.events("00431\x1fHISTMEMBERQ77\x1fHISTORYLASTNAMEQ\x1fJO\x1f19470203",
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
    assert [(e.date, e.code) for e in store.events(key, date(2026, 1, 1), date(2026, 12, 31))] == [
        (date(2026, 11, 2), "96416")]
    store.close()


def test_schema_version_and_forward_migration(history_url: str) -> None:
    first = open_history(history_url, env=KEY)
    assert first.schema_version == 1
    first.close()
    again = open_history(history_url, env=KEY)  # opening again migrates nothing, loses nothing
    assert again.schema_version == 1
    again.record("f" * 64, [EventToRecord("k", "c", date(2026, 1, 1), "96416")])
    again.close()


def test_prune_older_than(tmp_path: Path, history_url: str) -> None:
    store = open_history(history_url, env=KEY)
    store.record("f" * 64, [EventToRecord("k", "old", date(2001, 1, 1), "96416"),
                            EventToRecord("k", "new", date.today(), "96416")])
    store.close()
    result = cli("history", "prune", "--older-than", "30", "--history", history_url)
    assert result.returncode == 0 and result.stdout.startswith(b"1 event(s)")
    store = open_history(history_url, env=KEY)
    store.prefetch(["k"])
    assert [e.date for e in store.events("k", date(2000, 1, 1), date(2100, 1, 1))] == [date.today()]
    store.close()


def test_two_processes_recording_at_once_lose_nothing(tmp_path: Path, history_url: str) -> None:
    script = (
        "import sys, datetime\n"
        "from edi.adapters.history import open_history\n"
        "from edi.rules.kinds import EventToRecord\n"
        "store = open_history(sys.argv[1], env={'EDI837_HISTORY_KEY': 'test-secret-not-for-production'})\n"
        "for n in range(40):\n"
        "    store.record('h' * 64, [EventToRecord(f'patient-{sys.argv[2]}-{n % 7}', f'claim-{sys.argv[2]}-{n}',"
        " datetime.date(2026, 11, 1 + n % 20), '96416') for _ in range(1)] +"
        " [EventToRecord('shared', f'claim-{sys.argv[2]}-{n}', datetime.date(2026, 11, 2), '96521')])\n"
        "store.close()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    workers = [subprocess.Popen([sys.executable, "-c", script, history_url, str(n)], env=env) for n in range(2)]
    assert [worker.wait(timeout=120) for worker in workers] == [0, 0]
    store = open_history(history_url, env=KEY)
    keys = [f"patient-{w}-{p}" for w in range(2) for p in range(7)] + ["shared"]
    store.prefetch(keys)
    total = sum(len(store.events(key, date(2026, 1, 1), date(2026, 12, 31))) for key in keys)
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
