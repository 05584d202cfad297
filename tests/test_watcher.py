"""The drop-folder watcher, row by row of operations.md, with real SFTP uploads and real crashes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import resource
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edi.synthetic import generate
from tests.conftest import ROOT
from tests.test_history import postgres_url  # noqa: F401 - the PostgreSQL database fixture

KEY_ENV = {"EDI837_HISTORY_KEY": "watch-test-secret-of-at-least-32-bytes"}


def synthetic(seed: int, claims: int = 6) -> bytes:
    return b"".join(generate(claims, seed=seed))


def watch(root: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120,
          preexec=None) -> subprocess.CompletedProcess[bytes]:
    environment = {**os.environ, **KEY_ENV, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "edi", "watch", str(root), *args], capture_output=True,
                          env=environment, timeout=timeout, check=False, preexec_fn=preexec)


def start_watch(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    environment = {**os.environ, **KEY_ENV, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "edi", "watch", str(root), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment)


def once(root: Path, *args: str, **kwargs) -> subprocess.CompletedProcess[bytes]:
    result = watch(root, "--once", "--stable-for", "0", *args, **kwargs)
    assert b"Traceback" not in result.stderr, result.stderr.decode()
    return result


def names(root: Path, folder: str) -> list[str]:
    return sorted(p.name for p in (root / folder).iterdir()) if (root / folder).exists() else []


def drop(root: Path, name: str, data: bytes) -> Path:
    (root / "inbound").mkdir(parents=True, exist_ok=True)
    path = root / "inbound" / name
    path.write_bytes(data)
    return path


def reason(root: Path, name_part: str) -> dict:
    (path,) = [p for p in (root / "rejected").iterdir() if name_part in p.name and p.name.endswith(".reason.json")]
    return json.loads(path.read_text())


def sha_id(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:20]


def test_folders_are_created_private(tmp_path: Path) -> None:
    """The watcher's folders are its own; inbound/ is the partner group's to write (no one else's)."""
    once(tmp_path / "root")
    for folder in ("work", "outbound", "held", "rejected", "archive", "state"):
        assert stat.S_IMODE((tmp_path / "root" / folder).stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "root" / "inbound").stat().st_mode) == 0o2770
    assert stat.S_IMODE((tmp_path / "root").stat().st_mode) == 0o710


def test_temp_names_are_never_touched(tmp_path: Path) -> None:
    temp = ["a.x12.filepart", "b.part", "c.partial", "d.tmp", "e.writing", ".hidden.x12", "~lock.x12"]
    for name in temp:
        drop(tmp_path, name, synthetic(1))
    once(tmp_path)
    assert names(tmp_path, "inbound") == sorted(temp)
    assert names(tmp_path, "outbound") == names(tmp_path, "rejected") == names(tmp_path, "archive") == []


def test_a_file_not_yet_stable_waits(tmp_path: Path) -> None:
    data = synthetic(2)
    drop(tmp_path, "new.x12", data)
    result = watch(tmp_path, "--stable-for", "30", "--max-scans", "2", "--scan-interval", "0.1")
    assert result.returncode == 0 and names(tmp_path, "inbound") == ["new.x12"]
    once(tmp_path)
    assert names(tmp_path, "outbound") == [f"{sha_id(data)}.report.json", f"{sha_id(data)}.x12"]


def test_not_x12_is_rejected_at_once(tmp_path: Path) -> None:
    drop(tmp_path, "notes.txt", b"hello, this is not an interchange")
    drop(tmp_path, "empty.x12", b"")
    once(tmp_path)
    assert reason(tmp_path, "notes.txt")["reason"] == "NOT_X12"
    assert reason(tmp_path, "empty.x12")["reason"] == "NOT_X12"
    assert names(tmp_path, "inbound") == []


def test_incomplete_interchange_waits_then_is_rejected(tmp_path: Path) -> None:
    data = synthetic(3)
    drop(tmp_path, "cut.x12", data[: len(data) // 2])
    drop(tmp_path, "wrong-iea.x12", data.replace(b"IEA*1*000000003", b"IEA*1*000000009"))
    once(tmp_path, "--incomplete-grace", "3600")
    assert names(tmp_path, "inbound") == ["cut.x12", "wrong-iea.x12"]
    assert names(tmp_path, "outbound") == []
    once(tmp_path, "--incomplete-grace", "0")
    assert reason(tmp_path, "cut.x12")["reason"] == "PREMATURE_EOF"
    assert reason(tmp_path, "wrong-iea.x12")["reason"] == "PREMATURE_EOF"


def test_ready_file_is_processed_durably_and_archived(tmp_path: Path) -> None:
    from edi.adapters.rules_files import load_rule_book
    from edi.rewrite import fix_bytes

    data = synthetic(4, claims=30)
    drop(tmp_path, "daily.x12", data)
    once(tmp_path)
    file_id = sha_id(data)
    assert (tmp_path / "outbound" / f"{file_id}.x12").read_bytes() == fix_bytes(data, load_rule_book())
    report = json.loads((tmp_path / "outbound" / f"{file_id}.report.json").read_text())
    assert report["claims"] == 30 and report["file"] == file_id
    assert names(tmp_path, "archive") == [f"{file_id}__daily.x12"]
    assert (tmp_path / "archive" / f"{file_id}__daily.x12").read_bytes() == data
    assert names(tmp_path, "inbound") == names(tmp_path, "work") == []
    for folder in ("outbound", "archive", "state"):
        for path in (tmp_path / folder).iterdir():
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


def test_annotate_mode_passes_the_original_with_its_report(tmp_path: Path) -> None:
    data = (ROOT / "fixtures" / "rules" / "PMP002" / "bad.x12").read_bytes()
    drop(tmp_path, "a.x12", data)
    once(tmp_path, "--mode", "annotate")
    file_id = sha_id(data)
    assert (tmp_path / "outbound" / f"{file_id}.x12").read_bytes() == data
    report = json.loads((tmp_path / "outbound" / f"{file_id}.report.json").read_text())
    assert [(f["rule"], f["applied"]) for f in report["findings"]] == [("PMP002", False)]


def test_symlinks_and_special_files_are_rejected_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "secret.x12"
    outside.write_bytes(synthetic(5))
    (tmp_path / "inbound").mkdir()
    (tmp_path / "inbound" / "link.x12").symlink_to(outside)
    (tmp_path / "inbound" / "folder.x12").mkdir()
    os.mkfifo(tmp_path / "inbound" / "pipe.x12")
    once(tmp_path)
    assert reason(tmp_path, "link.x12")["reason"] == "SYMLINK"
    assert reason(tmp_path, "folder.x12")["reason"] == "NOT_REGULAR_FILE"
    assert reason(tmp_path, "pipe.x12")["reason"] == "NOT_REGULAR_FILE"
    assert outside.read_bytes() == synthetic(5) and names(tmp_path, "outbound") == []
    (link,) = [p for p in (tmp_path / "rejected").iterdir() if p.name.endswith("link.x12")]
    assert link.is_symlink()


def test_oversize_is_rejected(tmp_path: Path) -> None:
    drop(tmp_path, "big.x12", synthetic(6, claims=50))
    once(tmp_path, "--max-bytes", "1000")
    assert reason(tmp_path, "big.x12")["reason"] == "TOO_LARGE"


def test_unreadable_is_rejected(tmp_path: Path) -> None:
    """Root reads everything, so the watcher runs without the capabilities that let it
    (setpriv drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH) on a file only its owner may read."""
    import pwd

    nobody = pwd.getpwnam("nobody")
    secret = drop(tmp_path, "locked.x12", synthetic(7))
    secret.chmod(0o600)
    os.chown(secret, nobody.pw_uid, nobody.pw_gid)
    environment = {**os.environ, **KEY_ENV, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all",
         sys.executable, "-m", "edi", "watch", str(tmp_path), "--once", "--stable-for", "0"],
        capture_output=True, env=environment, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert reason(tmp_path, "locked.x12")["reason"] == "UNREADABLE"


def test_duplicate_content_is_processed_once(tmp_path: Path) -> None:
    data = synthetic(8)
    drop(tmp_path, "first.x12", data)
    drop(tmp_path, "second.x12", data)
    once(tmp_path)
    file_id = sha_id(data)
    assert names(tmp_path, "outbound") == [f"{file_id}.report.json", f"{file_id}.x12"]
    assert names(tmp_path, "archive") == [f"{file_id}__dup__second.x12", f"{file_id}__first.x12"]
    drop(tmp_path, "third.x12", data)
    once(tmp_path, "--duplicates", "reject")
    assert reason(tmp_path, "third.x12")["reason"] == "DUPLICATE_CONTENT"
    status = json.loads(watch(tmp_path, "--status").stdout)
    assert status["ledger"] == {"done": 1} and status["folders"]["outbound"] == 1


def test_reused_control_number_with_other_content(tmp_path: Path) -> None:
    data = synthetic(9)
    other = data.replace(b"SYNTHETIC WAY", b"SYNTHETIC AVE")
    drop(tmp_path, "a.x12", data)
    once(tmp_path)
    drop(tmp_path, "b.x12", other)
    once(tmp_path)
    assert reason(tmp_path, "b.x12")["reason"] == "DUPLICATE_CONTROL_NUMBER"
    drop(tmp_path, "c.x12", other.replace(b"SYNTHETIC AVE", b"SYNTHETIC RD"))
    once(tmp_path, "--control-reuse", "allow")
    assert len(names(tmp_path, "outbound")) == 4


def test_reused_control_number_gets_a_ta1_025_with_acks(tmp_path: Path) -> None:
    """The partner hears of the refusal as X12 says: a TA1 rejecting the interchange, note 025."""
    data = synthetic(9)
    other = data.replace(b"SYNTHETIC WAY", b"SYNTHETIC AVE")
    drop(tmp_path, "a.x12", data)
    once(tmp_path, "--acks")
    drop(tmp_path, "b.x12", other)
    once(tmp_path, "--acks")
    assert reason(tmp_path, "b.x12")["reason"] == "DUPLICATE_CONTROL_NUMBER"
    assert names(tmp_path, "acks") == sorted([f"{sha_id(data)}.999", f"{sha_id(other)}.ta1"])
    ta1 = (tmp_path / "acks" / f"{sha_id(other)}.ta1").read_bytes()
    isa = other.split(b"~", 1)[0].split(b"*")
    segments = ta1.decode("ascii").split("~\n")
    assert segments[0].startswith("ISA*") and segments[2] == "IEA*0*" + segments[0].split("*")[13]
    assert segments[1] == f"TA1*{isa[13].decode()}*{isa[9].decode()}*{isa[10].decode()}*R*025"
    assert ((tmp_path / "acks" / f"{sha_id(other)}.ta1").stat().st_mode & 0o077) == 0
    status = json.loads(watch(tmp_path, "--status").stdout)
    assert status["counters"]["acknowledged"] == 1  # the last run's: the TA1
    # Without --acks nothing is written for the refusal.
    drop(tmp_path, "c.x12", other.replace(b"SYNTHETIC AVE", b"SYNTHETIC RD"))
    once(tmp_path)
    assert reason(tmp_path, "c.x12")["reason"] == "DUPLICATE_CONTROL_NUMBER"
    assert len(names(tmp_path, "acks")) == 2


def test_content_error_goes_to_rejected_with_reasons_and_no_phi(tmp_path: Path) -> None:
    from tests.test_phi import CANARY_STRINGS, canary_file

    data = canary_file().replace(b"\nSE*", b"\nSE*1", 1)
    drop(tmp_path, "claims.x12", data)
    result = once(tmp_path, "--log-level", "debug")
    record = reason(tmp_path, "claims.x12")
    assert record["reason"] == "CONTENT_ERROR" and record["errors"][0]["code"] == "SE01_COUNT"
    assert data[record["errors"][0]["offset"] :].startswith(b"SE*")
    text = json.dumps(record).encode() + result.stdout + result.stderr
    for canary in CANARY_STRINGS:
        assert canary.encode() not in text
    assert b"claims.x12" not in result.stderr  # file names stay out of the logs
    (original,) = [p for p in (tmp_path / "rejected").iterdir() if p.name.endswith("__claims.x12")]
    assert original.read_bytes() == data


def test_transient_errors_retry_then_quarantine(tmp_path: Path) -> None:
    """A file-size limit (as a full disk would) fails every write of the output: retried, then
    quarantined; nothing half-written under a final name, the input kept."""
    once(tmp_path)  # folders, ledger and history exist before the limit
    data = synthetic(10, claims=400)
    drop(tmp_path, "big.x12", data)

    def limit_writes() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (150_000, 150_000))

    result = once(tmp_path, "--max-attempts", "2", preexec=limit_writes)
    assert result.returncode == 0, result.stderr
    assert names(tmp_path, "work") != [] and names(tmp_path, "outbound") == []  # kept for a retry
    result = once(tmp_path, "--max-attempts", "2", preexec=limit_writes)  # the next run retries
    assert reason(tmp_path, "big.x12")["reason"] == "QUARANTINED"
    assert names(tmp_path, "outbound") == [] and names(tmp_path, "work") == []
    (kept,) = [p for p in (tmp_path / "rejected").iterdir() if p.name.endswith("__big.x12")]
    assert kept.read_bytes() == data
    assert not [p for p in tmp_path.rglob(".*.tmp")]


def outcomes(root: Path, inputs: dict[str, bytes]) -> None:
    """Every input exactly once in outbound (processed) or rejected, processed ones once in archive."""
    outbound = [p.name for p in (root / "outbound").iterdir() if p.name.endswith(".x12")]
    archive = names(root, "archive")
    rejected = [p.name for p in (root / "rejected").iterdir() if not p.name.endswith(".json")]
    for name, data in inputs.items():
        file_id = sha_id(data)
        out = outbound.count(f"{file_id}.x12")
        rej = sum(1 for r in rejected if r.endswith(f"__{name}"))
        arc = sum(1 for a in archive if a.endswith(f"__{name}"))
        assert (out, rej) in ((1, 0), (0, 1)), (name, out, rej)
        assert arc == out, (name, arc)
    assert names(root, "inbound") == [] and names(root, "work") == []
    assert not [p for p in root.rglob(".*.tmp")]


@pytest.mark.parametrize("point", ["after_claim", "after_output", "after_ledger"])
def test_sigkill_anywhere_loses_nothing(tmp_path: Path, point: str) -> None:
    inputs = {f"f{n:02d}.x12": synthetic(100 + n, claims=3) for n in range(40)}
    inputs["bad.x12"] = synthetic(99, claims=3).replace(b"\nSE*", b"\nSE*1", 1)
    for name, data in inputs.items():
        drop(tmp_path, name, data)
    kills = 0
    for count in (3, 5, 7, 11):
        result = watch(tmp_path, "--once", "--stable-for", "0", env={"EDI837_WATCH_CRASH_AT": f"{point}:{count}"})
        if result.returncode == -signal.SIGKILL:
            kills += 1
    assert kills >= 3
    final = once(tmp_path)
    assert final.returncode == 0
    outcomes(tmp_path, inputs)


def test_two_watchers_on_one_root(tmp_path: Path) -> None:
    inputs = {f"f{n:02d}.x12": synthetic(200 + n, claims=3) for n in range(20)}
    for name, data in inputs.items():
        drop(tmp_path, name, data)
    workers = [start_watch(tmp_path, "--stable-for", "0", "--scan-interval", "0.05", "--max-scans", "40")
               for _ in range(2)]
    for worker in workers:
        worker.wait(timeout=120)
    assert [w.returncode for w in workers] == [0, 0]
    outcomes(tmp_path, inputs)


def test_postgres_ledger_with_two_workers(tmp_path: Path, postgres_url: str) -> None:  # noqa: F811
    inputs = {f"p{n:02d}.x12": synthetic(300 + n, claims=3) for n in range(16)}
    for name, data in inputs.items():
        drop(tmp_path, name, data)
    workers = [start_watch(tmp_path, "--stable-for", "0", "--scan-interval", "0.05", "--max-scans", "40",
                           "--ledger", postgres_url) for _ in range(2)]
    for worker in workers:
        worker.wait(timeout=120)
    assert [w.returncode for w in workers] == [0, 0], [w.stderr.read() for w in workers]
    outcomes(tmp_path, inputs)
    import psycopg

    with psycopg.connect(postgres_url) as db:
        assert db.execute("SELECT status, count(*) FROM inputs GROUP BY status").fetchall() == [("done", 16)]


# -- real SFTP uploads ------------------------------------------------------------------------

class SftpServer:
    """asyncssh's in-process SFTP server on 127.0.0.1, rooted at ROOT/inbound, no auth."""

    def __init__(self, folder: Path) -> None:
        import asyncssh

        self.folder = folder
        self.key = asyncssh.generate_private_key("ssh-ed25519")
        self.ready = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _serve(self) -> None:
        import asyncssh

        class Server(asyncssh.SSHServer):
            def begin_auth(self, username: str) -> bool:
                return False

        async def start() -> None:
            self.server = await asyncssh.listen(
                "127.0.0.1", 0, server_host_keys=[self.key], server_factory=Server,
                sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=str(self.folder)))
            self.port = self.server.sockets[0].getsockname()[1]
            self.ready.set()

        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(start())
        self.loop.run_forever()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


async def upload(port: int, name: str, data: bytes, *, chunk: int, pause: float, rename_to: str | None = None,
                 stop_after: int | None = None) -> None:
    import asyncssh

    async with (
        asyncssh.connect("127.0.0.1", port, username="partner", known_hosts=None, client_keys=None) as conn,
        conn.start_sftp_client() as sftp,
    ):
        handle = await sftp.open(name, "wb")
        for number, start in enumerate(range(0, len(data), chunk)):
            if stop_after is not None and number >= stop_after:
                conn.abort()  # the client dies mid-upload: sshd closes the handle
                return
            await handle.write(data[start : start + chunk])
            await asyncio.sleep(pause)
        await handle.close()
        if rename_to:
            await sftp.rename(name, rename_to)


@pytest.fixture()
def sftp(tmp_path: Path):
    (tmp_path / "inbound").mkdir()
    server = SftpServer(tmp_path / "inbound")
    yield server
    server.close()


def test_sftp_slow_upload_is_processed_once_complete(tmp_path: Path, sftp: SftpServer) -> None:
    from edi.adapters.rules_files import load_rule_book
    from edi.rewrite import fix_bytes

    data = synthetic(400, claims=40)
    watcher = start_watch(tmp_path, "--stable-for", "1.0", "--scan-interval", "0.1", "--max-scans", "120",
                          "--incomplete-grace", "3600")
    asyncio.run(upload(sftp.port, "slow.x12", data, chunk=len(data) // 12 + 1, pause=0.2))
    watcher.wait(timeout=120)
    file_id = sha_id(data)
    assert (tmp_path / "outbound" / f"{file_id}.x12").read_bytes() == fix_bytes(data, load_rule_book())
    assert names(tmp_path, "archive") == [f"{file_id}__slow.x12"] and names(tmp_path, "rejected") == []


def test_sftp_killed_upload_is_never_processed(tmp_path: Path, sftp: SftpServer) -> None:
    data = synthetic(401, claims=40)
    asyncio.run(upload(sftp.port, "dead.x12", data, chunk=len(data) // 10 + 1, pause=0.01, stop_after=4))
    time.sleep(0.3)
    once(tmp_path, "--incomplete-grace", "3600")
    assert names(tmp_path, "inbound") == ["dead.x12"] and names(tmp_path, "outbound") == []
    assert 0 < (tmp_path / "inbound" / "dead.x12").stat().st_size < len(data)
    once(tmp_path, "--incomplete-grace", "0")
    assert reason(tmp_path, "dead.x12")["reason"] == "PREMATURE_EOF"


def test_sftp_temp_name_then_rename(tmp_path: Path, sftp: SftpServer) -> None:
    data = synthetic(402, claims=20)
    watcher = start_watch(tmp_path, "--stable-for", "0", "--scan-interval", "0.05", "--max-scans", "80")
    asyncio.run(upload(sftp.port, "batch.x12.filepart", data, chunk=len(data) // 8 + 1, pause=0.1,
                       rename_to="batch.x12"))
    watcher.wait(timeout=120)
    file_id = sha_id(data)
    assert names(tmp_path, "archive") == [f"{file_id}__batch.x12"]
    assert [n for n in names(tmp_path, "outbound") if n.endswith(".x12")] == [f"{file_id}.x12"]
