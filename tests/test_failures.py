"""Failure injection: killed processes, lost databases, full disks, bugs that raise. Nothing is
lost, nothing is half-written under a final name, and no patient data is shown."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from edi.adapters.faults import checkpoint
from edi.adapters.history import open_history
from edi.adapters.rules_files import load_rule_book
from edi.rewrite import fix_bytes
from tests.conftest import ROOT
from tests.test_history import postgres_url  # noqa: F401 - the PostgreSQL database fixture
from tests.test_phi import CANARY_STRINGS, canary_file

BAD = (ROOT / "fixtures" / "rules" / "PMP002" / "bad.x12").read_bytes()
FIXED = fix_bytes(BAD, load_rule_book())
KEY = "failure-test-key-of-thirty-two-bytes-or-more"


def edi(*args: str, fault: str | None = None, preexec=None, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EDI837_HISTORY_KEY": KEY, "EDI837_LOG_LEVEL": "debug"}
    if fault:
        env["EDI837_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "edi", *args], capture_output=True, env=env, cwd=ROOT,
                          timeout=120, check=False, preexec_fn=preexec, input=stdin)


def no_phi(*outputs: bytes) -> None:
    for output in outputs:
        for canary in CANARY_STRINGS:
            assert canary.encode() not in output


def temps(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")]


def test_sigkill_before_the_rename_leaves_the_input_whole(tmp_path: Path) -> None:
    source = tmp_path / "claims.x12"
    source.write_bytes(BAD)
    killed = edi("fix", str(source), "--in-place", fault="kill:fix.before_rename")
    assert killed.returncode == -signal.SIGKILL
    assert source.read_bytes() == BAD and len(temps(tmp_path)) == 1
    again = edi("fix", str(source), "--in-place")
    assert again.returncode == 0 and source.read_bytes() == FIXED
    assert temps(tmp_path) == []  # the dead process's temp file is cleaned up


def test_sigkill_after_the_rename_leaves_the_whole_output(tmp_path: Path) -> None:
    source = tmp_path / "claims.x12"
    source.write_bytes(BAD)
    killed = edi("fix", str(source), "--in-place", fault="kill:fix.after_rename")
    assert killed.returncode == -signal.SIGKILL
    assert source.read_bytes() == FIXED and temps(tmp_path) == []
    assert edi("fix", str(source), "--in-place").returncode == 0 and source.read_bytes() == FIXED


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_database_lost_mid_run_records_nothing_and_writes_nothing(tmp_path: Path, backend: str, request) -> None:
    url = str(tmp_path / "h.sqlite") if backend == "sqlite" else request.getfixturevalue("postgres_url")
    if backend == "postgres":
        import psycopg

        with psycopg.connect(url, autocommit=True) as db:
            db.execute("DROP TABLE IF EXISTS pump_event, pump_claim, schema_version, history_key")
    source = tmp_path / "claims.x12"
    source.write_bytes(BAD)
    out = tmp_path / "out.x12"
    result = edi("fix", str(source), "-o", str(out), "--history", url, fault="disconnect:history.before_record")
    assert result.returncode == 75, result.stderr
    assert not out.exists() and source.read_bytes() == BAD and temps(tmp_path) == []
    store = open_history(url, env={"EDI837_HISTORY_KEY": KEY})
    key = "00431\x1f1EG4TE5MK72\x1fEXAMPLE\x1fPAT\x1f19500314"
    store.prefetch([key])
    assert store.events(key, "XX:1234567893", __import__("datetime").date(2000, 1, 1), __import__("datetime").date(2100, 1, 1)) == []
    store.close()
    assert edi("fix", str(source), "-o", str(out), "--history", url).returncode == 0 and out.read_bytes() == FIXED


def test_file_size_limit_while_writing(tmp_path: Path) -> None:
    from edi.synthetic import generate

    data = b"".join(generate(300, seed=4))
    source = tmp_path / "claims.x12"
    source.write_bytes(data)

    def limit(size: int) -> Callable[[], None]:
        def apply() -> None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
        return apply

    out = tmp_path / "out.x12"
    result = edi("fix", str(source), "-o", str(out), preexec=limit(50_000))
    assert result.returncode == 74 and not out.exists() and temps(tmp_path) == []
    assert source.read_bytes() == data
    report = tmp_path / "report.json"
    result = edi("validate", "--format", "json", "--output", str(report), str(source), preexec=limit(2_000))
    assert result.returncode == 74 and not report.exists() and temps(tmp_path) == []


def test_an_injected_bug_quotes_the_data_it_was_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """The raise fault must carry PHI, or the test below would prove nothing."""
    monkeypatch.setenv("EDI837_FAULT", "raise:check.after_pass1")
    with pytest.raises(RuntimeError, match="CANARYLAST"):
        checkpoint("check.after_pass1", data=lambda: b"('CANARYLAST',)")
    checkpoint("fix.before_rename", data=lambda: b"never called")  # other points: no fault


def test_a_bug_that_raises_shows_no_data(tmp_path: Path) -> None:
    """An unexpected exception whose message quotes patient data (as pyx12's do)."""
    source = tmp_path / "canary.x12"
    source.write_bytes(canary_file())
    fault = "raise:check.after_pass1"
    for args in (["validate", str(source)], ["validate", "--format", "json", str(source)],
                 ["fix", str(source), "-o", str(tmp_path / "out.x12")]):
        result = edi(*args, fault=fault)
        assert result.returncode == 70, (args, result.stderr)
        assert b"internal error (RuntimeError)" in result.stderr and b"Traceback" not in result.stderr
        no_phi(result.stdout, result.stderr)
    filtered = edi("filter", fault=fault, stdin=canary_file())
    assert filtered.returncode == 70 and filtered.stdout == b""
    no_phi(filtered.stdout, filtered.stderr)
    assert not (tmp_path / "out.x12").exists()


def test_a_bug_in_the_watcher_quarantines_the_file_and_shows_no_data(tmp_path: Path) -> None:
    (tmp_path / "inbound").mkdir()
    (tmp_path / "inbound" / "c.x12").write_bytes(canary_file())
    runs = [edi("watch", str(tmp_path), "--once", "--stable-for", "0", "--max-attempts", "2",
                fault="raise:check.after_pass1") for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0]
    (reason,) = (tmp_path / "rejected").glob("*.reason.json")
    assert json.loads(reason.read_text())["reason"] == "QUARANTINED"
    for run in runs:
        no_phi(run.stdout, run.stderr)
    no_phi(reason.read_bytes())


def test_gateway_database_lost_mid_request_is_503_and_a_bug_is_500(tmp_path: Path) -> None:
    from tests.test_gateway import Server

    history = tmp_path / "history.sqlite"
    lost = Server(tmp_path, "--history", str(history), env={"EDI837_FAULT": "disconnect:history.before_record"})
    try:
        response = lost.post(BAD, params="?mode=rewrite")
        assert response.status_code == 503 and response.headers["retry-after"]
    finally:
        lost.stop()
    buggy = Server(tmp_path, env={"EDI837_FAULT": "raise:check.after_pass1"})
    try:
        response = buggy.post(canary_file())
        assert response.status_code == 500 and response.json()["title"] == "internal error"
        assert httpx.get(f"{buggy.url}/healthz").status_code == 200
        no_phi(response.content, buggy.log.read_bytes())
    finally:
        buggy.stop()


def files_held_open_under(pid: int, folder: Path) -> list[str]:
    held = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        # the spool: named (edi837-stdin-*) or unnamed ("... (deleted)"); not tempfile's own
        # probe of the folder, which it removes by itself
        if target.startswith(str(folder) + os.sep) and ("edi837-stdin-" in target or target.endswith("(deleted)")):
            held.append(target)
    return held


@pytest.mark.parametrize("command", [["fix", "-", "-o", "OUT"], ["filter"], ["validate", "--ig", "-"]])
def test_sigterm_while_spooling_standard_input_leaves_no_spool(tmp_path: Path, command: list[str]) -> None:
    """Standard input is PHI: a SIGTERM while it is being spooled leaves nothing of it on disk."""
    import time

    spool_folder, out_folder = tmp_path / "tmp", tmp_path / "out"
    spool_folder.mkdir()
    out_folder.mkdir()
    args = [str(out_folder / "fixed.x12") if arg == "OUT" else arg for arg in command]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(spool_folder)}
    process = subprocess.Popen([sys.executable, "-m", "edi", *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=env, cwd=ROOT)
    try:
        process.stdin.write(canary_file()[:2000])  # part of a file: the spool is open, waiting for more
        process.stdin.flush()
        deadline = time.monotonic() + 30
        while not files_held_open_under(process.pid, spool_folder):
            assert time.monotonic() < deadline and process.poll() is None, "the spool never appeared"
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 128 + signal.SIGTERM  # handled: every cleanup on the way out ran
    assert list(spool_folder.iterdir()) == [] and list(out_folder.iterdir()) == []
    no_phi(out, err)


def test_a_full_disk_while_spooling_standard_input_is_exit_74(tmp_path: Path) -> None:
    from edi.synthetic import generate

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (10_000, 10_000))

    result = edi("filter", stdin=b"".join(generate(100, seed=4)), preexec=limit)
    assert result.returncode == 74 and result.stdout == b"" and b"cannot spool standard input" in result.stderr
