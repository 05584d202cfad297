"""Issue 14: an attacker's and an operator's mistakes against the watcher, each reproduced.

Real files, real processes, real SIGKILL and SIGSTOP: a test stops the watcher at a named point
(``EDI837_WATCH_STOP_AT``), changes the folder as a partner or an attacker would at that moment,
and lets it go on.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.helpers import sqlite_or_clean_postgres
from tests.test_history import postgres_url  # noqa: F401 - the PostgreSQL database fixture
from tests.test_watcher import drop, names, once, reason, sha_id, start_watch, synthetic, watch


def wait_stopped(process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Until the watcher has stopped itself (SIGSTOP at its test point)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else b""
        state = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "T":
            return
        time.sleep(0.02)
    raise AssertionError("the watcher never reached its stop point")


def finish(process: subprocess.Popen[bytes], timeout: float = 120) -> bytes:
    _, stderr = process.communicate(timeout=timeout)
    assert process.returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr, stderr.decode()
    return stderr


# -- 1. a quarantined file can be sent again ---------------------------------------------------

def test_a_resend_after_quarantine_is_processed(tmp_path: Path) -> None:
    """A full disk quarantines the upload; the partner's resend of the same bytes is processed,
    not archived as a duplicate of a file that never went out."""
    once(tmp_path)
    data = synthetic(10, claims=400)
    drop(tmp_path, "big.x12", data)

    def limit_writes() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (150_000, 150_000))

    once(tmp_path, "--max-attempts", "1", preexec=limit_writes)
    assert reason(tmp_path, "big.x12")["reason"] == "QUARANTINED"
    drop(tmp_path, "big-resent.x12", data)
    once(tmp_path)
    file_id = sha_id(data)
    assert names(tmp_path, "outbound") == [f"{file_id}.report.json", f"{file_id}.x12"]
    assert names(tmp_path, "archive") == [f"{file_id}__big-resent.x12"]
    assert names(tmp_path, "work") == names(tmp_path, "inbound") == []


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_url(request, tmp_path: Path) -> str:
    return sqlite_or_clean_postgres(request, tmp_path, "ledger.sqlite", "inputs")


def test_the_ledger_takes_quarantined_and_rejected_content_again(ledger_url: str) -> None:
    """Only done is final: quarantined or rejected content is claimed again with fresh attempts."""
    from edi.adapters.ledger import open_ledger

    ledger = open_ledger(ledger_url)
    try:
        assert ledger.claim("q" * 64, "w1", 60, "S", "1") is not None
        assert ledger.failed_attempt("q" * 64) == 1
        ledger.finish("q" * 64, "quarantined", "EFBIG")
        again = ledger.claim("q" * 64, "w2", 60, "S", "1")
        assert again is not None and (again.status, again.attempts, again.owner) == ("processing", 0, "w2")
        assert ledger.claim("q" * 64, "w3", 60, "S", "1") is None  # w2's lease is live
        ledger.finish("r" * 64, "rejected", "SE01_COUNT")
        assert ledger.claim("r" * 64, "w1", 60, "S", "2") is not None
        ledger.finish("q" * 64, "done", "PROCESSED")
        assert ledger.claim("q" * 64, "w1", 60, "S", "1") is None
    finally:
        ledger.close()


# -- 2. a stalled upload of a multi-interchange file -------------------------------------------

def test_a_stalled_upload_with_an_open_handle_is_not_processed_in_part(tmp_path: Path) -> None:
    """Interchange 1 is complete and stable, the uploader's handle is still open, then it appends
    interchange 2: both are processed together, and archive/ holds exactly that."""
    first, second = synthetic(501, claims=3), synthetic(502, claims=3)
    (tmp_path / "inbound").mkdir()
    watcher = start_watch(tmp_path, "--stable-for", "0.3", "--scan-interval", "0.05", "--max-scans", "80")
    with open(tmp_path / "inbound" / "multi.x12", "wb") as upload:
        upload.write(first)
        upload.flush()
        time.sleep(2.0)  # longer than stable_for: the stall
        upload.write(second)
    finish(watcher)
    whole = first + second
    assert names(tmp_path, "archive") == [f"{sha_id(whole)}__multi.x12"]
    assert (tmp_path / "archive" / f"{sha_id(whole)}__multi.x12").read_bytes() == whole
    assert [n for n in names(tmp_path, "outbound") if n.endswith(".x12")] == [f"{sha_id(whole)}.x12"]
    assert names(tmp_path, "work") == names(tmp_path, "rejected") == []


def test_a_stalled_sftp_upload_is_processed_whole(tmp_path: Path) -> None:
    """The same over real SFTP: the client writes interchange 1, stalls with its handle open for
    longer than --stable-for, then writes interchange 2 and closes."""
    import asyncio

    from tests.test_watcher import SftpServer, upload

    first, second = synthetic(517, claims=4), synthetic(518, claims=2)
    assert len(second) <= len(first)  # two writes: interchange 1, then interchange 2
    (tmp_path / "inbound").mkdir()
    server = SftpServer(tmp_path / "inbound")
    try:
        watcher = start_watch(tmp_path, "--stable-for", "0.3", "--scan-interval", "0.05", "--max-scans", "100")
        asyncio.run(upload(server.port, "stall.x12", first + second, chunk=len(first), pause=2.0))
        finish(watcher)
    finally:
        server.close()
    whole = first + second
    assert names(tmp_path, "archive") == [f"{sha_id(whole)}__stall.x12"]
    assert (tmp_path / "archive" / f"{sha_id(whole)}__stall.x12").read_bytes() == whole
    assert [n for n in names(tmp_path, "outbound") if n.endswith(".x12")] == [f"{sha_id(whole)}.x12"]


def test_an_append_while_the_watcher_works_is_noticed_and_redriven(tmp_path: Path) -> None:
    """Claimed with interchange 1; interchange 2 arrives while the file is being checked: nothing
    goes out for the part, the whole is processed once it is stable again."""
    first, second = synthetic(503, claims=3), synthetic(504, claims=3)
    drop(tmp_path, "grow.x12", first)
    watcher = start_watch(tmp_path, "--mode", "annotate", "--stable-for", "0.3", "--scan-interval", "0.05",
                          "--max-scans", "80", env={"EDI837_WATCH_STOP_AT": "after_pass1:1"})
    wait_stopped(watcher)
    (claimed,) = (tmp_path / "work").iterdir()
    with open(claimed, "ab") as late:
        late.write(second)
    watcher.send_signal(signal.SIGCONT)
    finish(watcher)
    whole = first + second
    outputs = [n for n in names(tmp_path, "outbound") if n.endswith(".x12")]
    assert outputs == [f"{sha_id(whole)}.x12"]
    assert (tmp_path / "outbound" / outputs[0]).read_bytes() == whole
    assert names(tmp_path, "archive") == [f"{sha_id(whole)}__grow.x12"]
    assert names(tmp_path, "work") == []


# -- 4. history before delivery ---------------------------------------------------------------

@pytest.mark.parametrize("mode", ["annotate", "rewrite"])
def test_a_failing_history_write_delivers_nothing(tmp_path: Path, mode: str) -> None:
    """The history store fails while the output is written: no output under a final name, so the
    input ends in rejected/ (quarantined) only, never in both."""
    data = synthetic(505, claims=4)
    drop(tmp_path, "h.x12", data)
    once(tmp_path, "--mode", mode, "--max-attempts", "1",
         env={"EDI837_FAULT": "disconnect:history.before_record"})
    assert reason(tmp_path, "h.x12")["reason"] == "QUARANTINED"
    assert names(tmp_path, "outbound") == [] and names(tmp_path, "archive") == []


def test_a_file_already_delivered_is_never_quarantined(tmp_path: Path) -> None:
    """archive/ refuses new names (immutable, as a read-only or broken mount would) after the output
    went out: the file waits in work/ instead of ending in both outbound/ and rejected/, and is
    archived once archive/ works again."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed")
    once(tmp_path)
    data = synthetic(519, claims=3)
    drop(tmp_path, "late.x12", data)
    if subprocess.run(["chattr", "+i", str(tmp_path / "archive")], check=False).returncode != 0:
        pytest.skip("this filesystem has no immutable attribute")
    try:
        once(tmp_path, "--max-attempts", "1")
        once(tmp_path, "--max-attempts", "1")
    finally:
        subprocess.run(["chattr", "-i", str(tmp_path / "archive")], check=True)
    assert names(tmp_path, "rejected") == [] and len(names(tmp_path, "work")) == 1
    assert names(tmp_path, "outbound") == [f"{sha_id(data)}.report.json", f"{sha_id(data)}.x12"]
    once(tmp_path)
    assert names(tmp_path, "archive") == [f"{sha_id(data)}__late.x12"] and names(tmp_path, "work") == []


# -- 5. a symlink swapped in during the completeness check -------------------------------------

def test_a_symlink_swapped_in_after_the_look_is_never_followed(tmp_path: Path) -> None:
    """A symlink put in place of a checked upload just before it is opened: the outside file is
    neither processed nor made 0600; the link itself is rejected."""
    outside = tmp_path.parent / f"{tmp_path.name}-outside.x12"
    secret = synthetic(506, claims=3)
    outside.write_bytes(secret)
    outside.chmod(0o644)
    try:
        root = tmp_path / "root"
        drop(root, "swap.x12", synthetic(507, claims=3))
        watcher = start_watch(root, "--stable-for", "0", "--scan-interval", "0.05", "--max-scans", "20",
                              env={"EDI837_WATCH_STOP_AT": "before_open:1"})
        wait_stopped(watcher)
        (root / "inbound" / "swap.x12").unlink()
        (root / "inbound" / "swap.x12").symlink_to(outside)
        watcher.send_signal(signal.SIGCONT)
        finish(watcher)
        assert stat.S_IMODE(outside.stat().st_mode) == 0o644 and outside.read_bytes() == secret
        assert f"{sha_id(secret)}.x12" not in names(root, "outbound")
        assert reason(root, "swap.x12")["reason"] == "SYMLINK"
        assert names(root, "work") == names(root, "archive") == []
    finally:
        outside.unlink()


# -- 6. a hard link into inbound/ -------------------------------------------------------------

def test_a_hard_link_is_rejected_without_touching_the_file(tmp_path: Path) -> None:
    """A hard link into inbound/ of a file outside ROOT: rejected as HARD_LINK, the file keeps its
    mode, content and mtime."""
    outside = tmp_path / "elsewhere.x12"
    data = synthetic(508, claims=3)
    outside.write_bytes(data)
    outside.chmod(0o644)
    before = outside.stat()
    root = tmp_path / "root"
    (root / "inbound").mkdir(parents=True)
    os.link(outside, root / "inbound" / "linked.x12")
    once(root)
    after = outside.stat()
    assert stat.S_IMODE(after.st_mode) == 0o644 and outside.read_bytes() == data
    assert (after.st_mtime_ns, after.st_size) == (before.st_mtime_ns, before.st_size)
    assert reason(root, "linked.x12")["reason"] == "HARD_LINK"
    assert names(root, "outbound") == names(root, "archive") == names(root, "work") == []


# -- 7. rejected originals are private --------------------------------------------------------

def test_rejected_originals_are_private(tmp_path: Path) -> None:
    """Rejected without processing (too large, cut, not X12, a FIFO, a folder): kept owner-only,
    not with the partner's 0644/0755."""
    data = synthetic(509, claims=3)
    for name, content in {"big.x12": synthetic(510, claims=40), "cut.x12": data[:300], "notes.txt": b"hello"}.items():
        drop(tmp_path, name, content).chmod(0o644)
    os.mkfifo(tmp_path / "inbound" / "pipe.x12", 0o644)
    (tmp_path / "inbound" / "folder.x12").mkdir(mode=0o755)
    once(tmp_path, "--max-bytes", "5000", "--incomplete-grace", "0")
    codes = {name: reason(tmp_path, name)["reason"] for name in ("big.x12", "cut.x12", "notes.txt", "pipe.x12",
                                                                   "folder.x12")}
    assert codes == {"big.x12": "TOO_LARGE", "cut.x12": "PREMATURE_EOF", "notes.txt": "NOT_X12",
                     "pipe.x12": "NOT_REGULAR_FILE", "folder.x12": "NOT_REGULAR_FILE"}
    for path in (tmp_path / "rejected").iterdir():
        assert stat.S_IMODE(path.lstat().st_mode) & 0o077 == 0, (path.name, oct(path.lstat().st_mode))


# -- 8. file names are never a reason to stop -------------------------------------------------

def test_long_and_bad_names_never_stop_the_watcher(tmp_path: Path) -> None:
    """242-, 234- and 255-byte names are processed under shortened names, a name with a newline is
    rejected as BAD_NAME, and the watcher exits 0 on this start and the next."""
    inputs = {"a" * 242 + ".x12": synthetic(511, claims=2), "b" * 230 + ".x12": synthetic(512, claims=2),
              "c" * 251 + ".x12": synthetic(513, claims=2), "plain.x12": synthetic(514, claims=2)}
    for name, data in inputs.items():
        drop(tmp_path, name, data)
    drop(tmp_path, "new\nline.x12", synthetic(515, claims=2))
    for _ in range(2):  # the second start must not die on what the first left
        result = once(tmp_path, "--log-level", "debug")
        assert result.returncode == 0, result.stderr.decode()
        assert b"aaaaaaaa" not in result.stderr and b"plain" not in result.stderr  # names are never logged
    outputs = [n for n in names(tmp_path, "outbound") if n.endswith(".x12")]
    assert sorted(outputs) == sorted(f"{sha_id(d)}.x12" for d in inputs.values())
    archived = names(tmp_path, "archive")
    assert len(archived) == 4 and all(len(os.fsencode(n)) < 200 for n in archived)
    for name, data in inputs.items():
        if len(name) > 150:  # shortened: its start, a hash of the whole name, its suffix
            (kept,) = [a for a in archived if a.startswith(f"{sha_id(data)}__")]
            assert kept.endswith(f"~{hashlib.sha256(name.encode()).hexdigest()[:16]}.x12") and name[:50] in kept
    assert f"{sha_id(inputs['plain.x12'])}__plain.x12" in archived
    assert reason(tmp_path, "bad-name")["reason"] == "BAD_NAME"
    assert names(tmp_path, "work") == names(tmp_path, "inbound") == []


# -- 9. a second watcher leaves the first one's temp files alone ------------------------------

def test_a_second_watcher_removes_only_temps_of_dead_processes(tmp_path: Path) -> None:
    """A second watcher starting on a running ROOT removes temps of dead processes only; the first
    keeps running and exits 0."""
    first = start_watch(tmp_path, "--stable-for", "0", "--scan-interval", "0.05", "--max-scans", "60")
    deadline = time.monotonic() + 30
    while not (tmp_path / "state" / "metrics.json").exists():
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.05)
    dead_pid = subprocess.Popen(["true"])  # a pid that no longer runs
    dead_pid.wait()
    live = tmp_path / "outbound" / f".abc.x12.{first.pid}.k2j4h5g6.tmp"
    stale = tmp_path / "outbound" / f".abc.x12.{dead_pid.pid}.a1b2c3d4.tmp"
    reused = tmp_path / "state" / f".metrics.json.{first.pid}.q9w8e7r6.tmp"  # written before that pid's process began
    for path in (live, stale, reused):
        path.write_bytes(b"partial")
    os.utime(reused, (time.time() - 3600, time.time() - 3600))
    once(tmp_path)
    assert live.exists() and not stale.exists() and not reused.exists()
    finish(first)
    live.unlink()


def test_with_a_shared_ledger_a_young_temp_of_an_unknown_pid_is_kept(tmp_path: Path, postgres_url: str) -> None:  # noqa: F811
    """Watchers on several hosts share the folder: a pid that is not running here may be writing
    there, so only a temp older than a lease is stale."""
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute("DROP TABLE IF EXISTS inputs")
    dead = subprocess.Popen(["true"])
    dead.wait()
    once(tmp_path, "--ledger", postgres_url)
    young = tmp_path / "outbound" / f".x.x12.{dead.pid}.aaaa1111.tmp"
    old = tmp_path / "outbound" / f".y.x12.{dead.pid}.bbbb2222.tmp"
    for path in (young, old):
        path.write_bytes(b"partial")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    once(tmp_path, "--ledger", postgres_url)
    assert young.exists() and not old.exists()


# -- 10. two watchers, the same content under two names ---------------------------------------

def test_the_watcher_that_lost_the_lease_hands_its_file_back(tmp_path: Path) -> None:
    """The same content under two names: the watcher that finds the other holding the lease hands
    its file back on exit; it ends archived as a duplicate, nothing stays in work/."""
    data = synthetic(516, claims=3)
    drop(tmp_path, "a.x12", data)
    first = start_watch(tmp_path, "--stable-for", "0", "--scan-interval", "0.05", "--max-scans", "100",
                        env={"EDI837_WATCH_STOP_AT": "after_lease:1"})
    wait_stopped(first)
    drop(tmp_path, "b.x12", data)
    second = once(tmp_path)
    assert second.returncode == 0
    first.send_signal(signal.SIGCONT)
    finish(first)
    file_id = sha_id(data)
    assert names(tmp_path, "work") == names(tmp_path, "inbound") == []
    assert names(tmp_path, "archive") == sorted([f"{file_id}__a.x12", f"{file_id}__dup__b.x12"])
    assert names(tmp_path, "outbound") == [f"{file_id}.report.json", f"{file_id}.x12"]


# -- 11. a crash in the reject or archive path ------------------------------------------------

@pytest.mark.parametrize("point", ["after_link", "reject_midway"])
def test_a_crash_between_the_steps_of_a_move_completes_each_once(tmp_path: Path, point: str) -> None:
    """SIGKILL between the steps of an archive or reject move, again and again: every reject has its
    reason, no input is twice in rejected/ or archive/."""
    inputs = {f"g{n}.x12": synthetic(520 + n, claims=2) for n in range(4)}
    inputs.update({f"bad{n}.x12": synthetic(530 + n, claims=2).replace(b"\nSE*", b"\nSE*1", 1) for n in range(6)})
    inputs["copy.x12"] = inputs["g0.x12"]
    for name, data in inputs.items():
        drop(tmp_path, name, data)
    kills = 0
    for count in (1, 2, 3, 1, 2, 1):
        result = watch(tmp_path, "--once", "--stable-for", "0", env={"EDI837_WATCH_CRASH_AT": f"{point}:{count}"})
        kills += result.returncode == -signal.SIGKILL
    assert kills >= 3
    once(tmp_path)
    rejected = [p.name for p in (tmp_path / "rejected").iterdir() if not p.name.endswith(".reason.json")]
    reasons = [p.name for p in (tmp_path / "rejected").iterdir() if p.name.endswith(".reason.json")]
    assert sorted(r + ".reason.json" for r in rejected) == sorted(reasons)
    assert sorted(r.split("__", 1)[1] for r in rejected) == [f"bad{n}.x12" for n in range(6)]
    archived = names(tmp_path, "archive")
    assert sorted(a.split("__")[-1] for a in archived) == ["copy.x12", "g0.x12", "g1.x12", "g2.x12", "g3.x12"]
    assert sum("__dup__" in a for a in archived) == 1
    assert names(tmp_path, "work") == names(tmp_path, "inbound") == []


def test_two_watchers_rejecting_one_file_keep_its_reason(tmp_path: Path) -> None:
    """The watcher that loses the race to move a reject never takes the winner's reason away."""
    drop(tmp_path, "notes.txt", b"not an interchange")
    slow = start_watch(tmp_path, "--stable-for", "0", "--scan-interval", "0.05", "--max-scans", "5",
                       env={"EDI837_WATCH_STOP_AT": "reject_midway:1"})
    wait_stopped(slow)  # its reason is written, the file not yet moved
    once(tmp_path)  # the other watcher rejects the same file
    slow.send_signal(signal.SIGCONT)
    finish(slow)
    (rejected,) = [p for p in (tmp_path / "rejected").iterdir() if not p.name.endswith(".reason.json")]
    assert json.loads(Path(f"{rejected}.reason.json").read_text())["reason"] == "NOT_X12"
    assert len(list((tmp_path / "rejected").iterdir())) == 2


def test_a_dead_watchers_pid_taken_by_another_process_does_not_make_its_file_a_duplicate(tmp_path: Path) -> None:
    """Killed between the ledger and the archive move; before the restart its pid went to another
    process (pids wrap in minutes on a busy host): the file is still archived as the original."""
    import socket
    import sqlite3

    data = synthetic(541, claims=2)
    drop(tmp_path, "a.x12", data)
    killed = watch(tmp_path, "--once", "--stable-for", "0", env={"EDI837_WATCH_CRASH_AT": "after_ledger:1"})
    assert killed.returncode == -signal.SIGKILL
    (work,) = names(tmp_path, "work")
    claim = work.split("__", 1)[0]
    with sqlite3.connect(tmp_path / "state" / "ledger.sqlite") as db:  # this test's live pid, another start time
        db.execute("UPDATE inputs SET owner = ?", (f"{socket.gethostname()}:{os.getpid()}:1:feed/{claim}",))
    once(tmp_path)
    assert names(tmp_path, "archive") == [f"{sha_id(data)}__a.x12"] and names(tmp_path, "work") == []


# -- 13. operator friction --------------------------------------------------------------------

def test_status_shows_the_running_counters_and_never_creates_a_root(tmp_path: Path) -> None:
    """--status shows the counters the watcher wrote; on a mistyped ROOT it fails and creates nothing."""
    drop(tmp_path, "s.x12", synthetic(540, claims=2))
    drop(tmp_path, "n.txt", b"not x12")
    once(tmp_path)
    status = json.loads(watch(tmp_path, "--status").stdout)
    assert status["counters"].get("processed") == 1 and status["counters"].get("rejected_not_x12") == 1
    typo = tmp_path / "typo"
    result = watch(typo, "--status")
    assert result.returncode != 0 and not typo.exists()


def test_inbound_is_writable_by_the_partner_group(tmp_path: Path) -> None:
    """inbound/ is created writable by the group (the partner's SFTP user), nothing for others."""
    once(tmp_path / "root")
    inbound = (tmp_path / "root" / "inbound").stat()
    assert stat.S_IMODE(inbound.st_mode) & 0o070 == 0o070 and stat.S_IMODE(inbound.st_mode) & 0o007 == 0
    for folder in ("work", "outbound", "rejected", "archive", "state"):
        assert stat.S_IMODE((tmp_path / "root" / folder).stat().st_mode) == 0o700


def test_the_systemd_unit_is_a_template_that_verifies(tmp_path: Path) -> None:
    """The unit ships as the template edi837-watch@.service and passes systemd-analyze verify."""
    unit = ROOT / "bin" / "edi837-watch@.service"
    assert unit.exists() and not (ROOT / "bin" / "edi837-watch.service").exists()
    text = unit.read_text()
    assert "ExecStatus" not in text and "EnvironmentFile=" in text
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed: the unit's syntax is checked where it is")
    # verify also checks that ExecStart's program exists: point it at this environment's edi837.
    program = Path(sys.executable).parent / "edi837"
    local = tmp_path / "edi837-watch@.service"
    local.write_text(text.replace("/opt/edi837/.venv/bin/edi837", str(program if program.exists() else sys.executable)))
    instance = tmp_path / "edi837-watch@partner-a.service"
    instance.symlink_to(local)
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(instance)], capture_output=True,
                            text=True, timeout=60, check=False)
    # An unknown key is only a warning (exit 0): any line about this unit is a failure.
    problems = [line for line in (result.stdout + result.stderr).splitlines() if "edi837-watch" in line]
    assert result.returncode == 0 and not problems, result.stdout + result.stderr


def test_every_reject_reason_is_registered_and_documented() -> None:
    """Reject reasons are public codes: each one the watcher writes is in REJECT_REASONS, and the
    README's watcher section lists every one of them."""
    import re

    from edi.adapters import watcher

    source = (ROOT / "edi" / "adapters" / "watcher.py").read_text()
    # every literal code passed to a reject: _reject_inbound(..., "CODE"...) / _reject_work(..., "CODE"...)
    passed = set(re.findall(r'_reject_(?:inbound|work|work_entry)\([^)]*?"([A-Z_]+)"', source, re.DOTALL))
    assert {"HARD_LINK", "BAD_NAME", "SYMLINK", "QUARANTINED"} <= passed <= set(watcher.REJECT_REASONS)
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### `edi837 watch ROOT`", 1)[1].split("\n### ", 1)[0]
    for code in watcher.REJECT_REASONS:
        assert f"| {code} |" in section, code
