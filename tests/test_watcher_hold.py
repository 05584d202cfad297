"""``watch --hold``: claims left for a person go to ``held/`` with their worklist; nothing is lost."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path

from edi.adapters.rules_files import load_rule_book
from edi.split import hold_bytes
from tests.test_phi import assert_no_canary, canary_file
from tests.test_watcher import SftpServer, names, once, sftp, sha_id, start_watch, upload, watch
from tests.test_worklist import SAMPLE

__all__ = ["sftp"]  # the SFTP server fixture, used by name
BOOK = load_rule_book()


def test_sftp_upload_is_split_into_outbound_and_held_with_the_worklist(tmp_path: Path, sftp: SftpServer) -> None:
    data = SAMPLE.read_bytes()
    watcher = start_watch(tmp_path, "--hold", "--stable-for", "0.5", "--scan-interval", "0.1", "--max-scans", "100")
    asyncio.run(upload(sftp.port, "sample.x12", data, chunk=len(data) // 6 + 1, pause=0.1))
    watcher.wait(timeout=120)
    assert watcher.returncode == 0, watcher.stderr.read() if watcher.stderr else b""
    forward, held, report = hold_bytes(data, BOOK)
    file_id = sha_id(data)
    assert (tmp_path / "outbound" / f"{file_id}.x12").read_bytes() == forward
    assert (tmp_path / "held" / f"{file_id}.x12").read_bytes() == held
    assert names(tmp_path, "held") == [f"{file_id}.worklist.csv", f"{file_id}.worklist.html", f"{file_id}.x12"]
    record = json.loads((tmp_path / "outbound" / f"{file_id}.report.json").read_text())
    assert record["held_claims"] == report.held_claims == 2
    rows = list(csv.DictReader(io.StringIO((tmp_path / "held" / f"{file_id}.worklist.csv").read_text())))
    assert len(rows) == len(record["findings"])  # the watcher's run (with its history store)
    assert {r["claim"] for r in rows if r["status"] == "held for review"} == {
        f.claim for f in report.findings if f.held}
    assert names(tmp_path, "archive") == [f"{file_id}__sample.x12"]
    assert (tmp_path / "archive" / f"{file_id}__sample.x12").read_bytes() == data  # the original, kept
    for path in (tmp_path / "held").iterdir():
        assert path.stat().st_mode & 0o077 == 0
    status = json.loads(watch(tmp_path, "--status").stdout)
    assert status["folders"]["held"] == 1 and status["folders"]["outbound"] == 1


def test_held_worklists_carry_no_phi(tmp_path: Path) -> None:
    data = canary_file()
    (tmp_path / "inbound").mkdir()
    (tmp_path / "inbound" / "canary.x12").write_bytes(data)
    once(tmp_path, "--hold", "--log-level", "debug")
    file_id = sha_id(data)
    held = tmp_path / "held"
    assert (held / f"{file_id}.x12").exists()  # the canary file has a claim held (PMP006 flag)
    assert_no_canary((held / f"{file_id}.worklist.html").read_bytes(), (held / f"{file_id}.worklist.csv").read_bytes())


def test_without_hold_nothing_goes_to_held(tmp_path: Path) -> None:
    data = SAMPLE.read_bytes()
    (tmp_path / "inbound").mkdir()
    (tmp_path / "inbound" / "sample.x12").write_bytes(data)
    once(tmp_path)
    assert names(tmp_path, "held") == []
    assert b"PCN04200000031" in (tmp_path / "outbound" / f"{sha_id(data)}.x12").read_bytes()
