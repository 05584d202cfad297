"""The drop-folder watcher: each complete upload in ``inbound/`` processed once, none lost.

Behaviour, row by row of ``operations.md`` (each has a test in tests/test_watcher.py):

* temp names (``*.filepart``, ``*.part``, ``*.partial``, ``*.tmp``, ``*.writing``, ``.*``, ``~*``)
  are never touched;
* readiness is polled (a scan every ``scan_interval``): size, mtime and inode unchanged for
  ``stable_for`` seconds on the monotonic clock; a closed file is not a complete upload;
* stable but not beginning with an ISA (after a BOM or whitespace): rejected at once (NOT_X12);
* begins with ISA but without a final IEA matching ISA13 and the GS count: not ready; after
  ``incomplete_grace`` rejected as PREMATURE_EOF. A truncated interchange is never processed;
* ready: claimed by an atomic rename ``inbound/f -> work/<token>__f``; a lost race is skipped;
* not a regular file, a symlink (never followed), unreadable, larger than ``max_bytes``: rejected
  with that reason;
* content already done (ledger by SHA-256, or twice in one scan): processed once; the copy goes to
  ``archive/`` marked ``dup`` (or to ``rejected/`` with ``--duplicates reject``) and is recorded;
* same (ISA06, ISA13) as a finished interchange with other content: rejected as
  DUPLICATE_CONTROL_NUMBER (``--control-reuse allow`` turns this off);
* processed: ``outbound/<sha256[:20]>.x12`` (and ``.report.json``) written durably, ledger marked
  done, original moved to ``archive/<sha256[:20]>__<name>``, never overwriting an archived file;
* content error: ``rejected/<sha256[:20]>__<name>`` with a ``.reason.json`` beside it (codes and
  positions, no PHI);
* transient error (disk full, database down): the file stays in ``work/`` and is retried with
  exponential backoff; after ``max_attempts`` it is quarantined in ``rejected/``;
* crash or SIGKILL anywhere: on start ``work/`` is re-driven (a file whose ledger row says done
  only finishes its archive move) and stale temp files are removed: each input ends exactly once
  in outbound or rejected, and once in archive (processed inputs);
* several watchers on one host: the rename claim, plus an ``flock`` on the work file while it is
  processed (recovery skips files another live watcher holds);
* watchers on several hosts: a PostgreSQL ledger whose row lease (``FOR UPDATE SKIP LOCKED``)
  decides who processes a content hash.

Durable writes: temp file in the target folder, fsync, rename, fsync of the folder; every file
written is mode 0600. Logs carry file ids (hash prefixes), outcomes, counts and durations; never
file names, which partners fill with patient names.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import secrets
import signal
import socket
import stat
import time
from dataclasses import dataclass, field
from typing import Any

from edi.adapters import files, jobs
from edi.adapters.ledger import Ledger, open_ledger
from edi.adapters.logs import get_logger
from edi.errors import EdiError, TemporaryFailure
from edi.x12.reader import Reader

FOLDERS = ("inbound", "work", "outbound", "rejected", "archive", "state")
TEMP_SUFFIXES = (".filepart", ".part", ".partial", ".tmp", ".writing")
CRASH_ENV = "EDI837_WATCH_CRASH_AT"  # tests: "<point>:<n>" kills the watcher at the n-th <point>
STOP_ENV = "EDI837_WATCH_STOP_AT"  # tests: "<point>:<n>" stops (SIGSTOP) the watcher at the n-th <point>


def is_temp_name(name: str) -> bool:
    return name.startswith((".", "~")) or name.endswith(TEMP_SUFFIXES)


@dataclass(slots=True, kw_only=True)
class WatchSettings:
    root: str
    mode: str = "rewrite"
    stable_for: float = 5.0
    scan_interval: float = 2.0
    max_bytes: int = 200 * 1024 * 1024
    incomplete_grace: float = 600.0
    max_attempts: int = 5
    duplicates: str = "archive"  # or "reject"
    control_reuse: str = "reject"  # or "allow"
    lease_seconds: float = 600.0
    ledger_url: str | None = None


@dataclass(slots=True)
class _Seen:
    signature: tuple[int, int, int]
    since: float


@dataclass(slots=True)
class Counters:
    values: dict[str, int] = field(default_factory=dict)

    def add(self, name: str) -> None:
        self.values[name] = self.values.get(name, 0) + 1


class Watcher:
    def __init__(self, settings: WatchSettings, options: jobs.JobOptions) -> None:
        self.settings = settings
        self.options = options
        self.root = settings.root
        for name in FOLDERS:
            os.makedirs(self.path(name), mode=0o700, exist_ok=True)
        self.ledger: Ledger = open_ledger(settings.ledger_url or self.path("state", "ledger.sqlite"))
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.counters = Counters()
        self.log = get_logger("edi837.watch")
        self._seen: dict[str, _Seen] = {}
        self._retry_at: dict[str, float] = {}
        self._crash = self._parse_crash(os.environ.get(CRASH_ENV, ""))
        self._stop = self._parse_crash(os.environ.get(STOP_ENV, ""))

    # -- helpers ---------------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    @staticmethod
    def _parse_crash(value: str) -> dict[str, int]:
        points: dict[str, int] = {}
        for item in filter(None, value.split(",")):
            point, _, count = item.partition(":")
            points[point] = int(count or 1)
        return points

    def _checkpoint(self, point: str) -> None:
        """Test hook: die here, as a power cut would (SIGKILL: no cleanup, no finally)."""
        if point in self._crash:
            self._crash[point] -= 1
            if self._crash[point] <= 0:
                os.kill(os.getpid(), signal.SIGKILL)
        if point in self._stop:
            self._stop[point] -= 1
            if self._stop[point] == 0:
                os.kill(os.getpid(), signal.SIGSTOP)  # the test changes the folder, then SIGCONT

    def _move(self, source: str, folder: str, name: str) -> str:
        """Rename into ``folder`` under ``name`` (never overwriting); fsync both folders."""
        target = os.path.join(self.path(folder), name)
        stem, dot, suffix = name.partition(".")
        counter = 1
        while True:
            try:
                os.link(source, target)  # fails if the target exists: never overwrite
                break
            except FileExistsError:
                counter += 1
                target = os.path.join(self.path(folder), f"{stem}~{counter}{dot}{suffix}")
        self._checkpoint("after_link")
        os.unlink(source)
        files.fsync_folder(self.path(folder))
        files.fsync_folder(os.path.dirname(source))
        return target

    def _write_json(self, folder: str, name: str, record: dict[str, Any]) -> None:
        files.write_atomically(os.path.join(self.path(folder), name),
                               (json.dumps(record, sort_keys=True, indent=1) + "\n").encode())

    # -- the loop --------------------------------------------------------------------------
    def recover(self) -> None:
        """After a crash: remove stale temp files, re-drive what is left in ``work/``."""
        for folder in ("outbound", "rejected", "archive", "state"):
            for entry in os.scandir(self.path(folder)):
                if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
                        self.counters.add("stale_temp_removed")
        for entry in sorted(os.scandir(self.path("work")), key=lambda e: e.name):
            if entry.is_file(follow_symlinks=False):
                self.process(entry.path, recovering=True)

    def run(self, *, once: bool = False, max_scans: int | None = None) -> None:
        self.recover()
        scans = 0
        while True:
            self.scan()
            scans += 1
            self.retry_work()
            self.write_metrics()
            if max_scans is not None and scans >= max_scans:
                return
            if once:
                # "What is ready now": one more look after stable_for, for files first seen now.
                if any(not is_temp_name(e.name) for e in os.scandir(self.path("inbound"))):
                    time.sleep(min(self.settings.stable_for, 60.0))
                    self.scan()
                    self.retry_work(force=True)
                    self.write_metrics()
                return
            time.sleep(self.settings.scan_interval)

    def scan(self) -> None:
        now = time.monotonic()
        present = set()
        hashes_this_scan: set[str] = set()
        for entry in sorted(os.scandir(self.path("inbound")), key=lambda e: e.name):
            name = entry.name
            if is_temp_name(name):
                continue
            present.add(name)
            try:
                info = os.lstat(entry.path)
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(info.st_mode):
                self._reject_unprocessed(entry.path, name, "SYMLINK", "a symbolic link: never followed")
                continue
            if not stat.S_ISREG(info.st_mode):
                self._reject_unprocessed(entry.path, name, "NOT_REGULAR_FILE", "not a regular file")
                continue
            if info.st_size > self.settings.max_bytes:
                self._reject_unprocessed(entry.path, name, "TOO_LARGE", f"larger than {self.settings.max_bytes} bytes")
                continue
            signature = (info.st_size, info.st_mtime_ns, info.st_ino)
            seen = self._seen.get(name)
            if seen is None or seen.signature != signature:
                self._seen[name] = _Seen(signature, now)
                if self.settings.stable_for > 0:
                    continue
                seen = self._seen[name]
            if now - seen.since < self.settings.stable_for:
                continue
            self._checkpoint("before_open")
            state = self._completeness(entry.path)
            if state == "unreadable":
                self._reject_unprocessed(entry.path, name, "UNREADABLE", "the file cannot be read")
                continue
            if state == "not_x12":
                self._reject_unprocessed(entry.path, name, "NOT_X12", "does not begin with an ISA header")
                continue
            if state == "incomplete":
                if now - seen.since >= self.settings.incomplete_grace:
                    self._reject_unprocessed(entry.path, name, "PREMATURE_EOF",
                                             "the interchange has no final IEA matching ISA13 and the group count")
                continue
            work = self.path("work", f"{secrets.token_hex(6)}__{name}")
            try:
                os.rename(entry.path, work)  # the claim: atomic on one filesystem
            except FileNotFoundError:
                self.counters.add("lost_race")
                continue
            with contextlib.suppress(OSError):
                os.chmod(work, files.OUTPUT_MODE)  # partners upload 0644; what we keep is private
            files.fsync_folder(self.path("work"))
            self._seen.pop(name, None)
            self._checkpoint("after_claim")
            self.process(work, hashes_this_scan=hashes_this_scan)
        for name in list(self._seen):
            if name not in present:
                del self._seen[name]

    def _completeness(self, path: str) -> str:
        """not_x12, incomplete, complete or unreadable: every interchange of the file ends with
        an IEA whose IEA02 is its ISA13 and whose IEA01 is its number of GS."""
        reader = Reader(max_segment_length=self.options.limits.max_segment_length,
                        max_elements=self.options.limits.max_elements)
        control: bytes | None = None
        groups = 0
        closed = 0
        balanced = True
        try:
            with open(path, "rb") as handle:
                head = handle.read(16).lstrip(b"\xef\xbb\xbf").lstrip()
                if not head.startswith(b"ISA"):
                    return "not_x12"
                handle.seek(0)
                chunk = handle.read(1 << 20)
                while True:
                    if chunk:
                        reader.feed(chunk)
                    else:
                        reader.end()
                    segments = reader.segments()
                    while not chunk and (more := reader.segments()):
                        segments += more
                    for segment in segments:
                        fields = segment.body.split(segment.body[3:4] if segment.tag == b"ISA" else reader.delimiters.element)
                        if segment.tag == b"ISA":
                            if control is not None:
                                balanced = False  # the previous interchange had no IEA
                            control = fields[13].strip() if len(fields) > 13 else b""
                            groups = 0
                        elif segment.tag == b"GS":
                            groups += 1
                        elif segment.tag == b"IEA":
                            ok = (control is not None and len(fields) > 2 and fields[2].strip() == control
                                  and fields[1].strip() == str(groups).encode())
                            balanced = balanced and ok
                            control = None
                            closed += 1
                    if not chunk:
                        break
                    chunk = handle.read(1 << 20)
        except OSError:
            return "unreadable"
        except EdiError:
            return "not_x12" if reader.segment_count == 0 else "incomplete"
        return "complete" if balanced and closed and control is None else "incomplete"

    # -- outcomes --------------------------------------------------------------------------
    def _reject_unprocessed(self, path: str, name: str, code: str, message: str) -> None:
        """Reject straight from inbound (no content read): the item itself is moved, never followed."""
        token = secrets.token_hex(6)
        try:
            target = self._move_link_safe(path, f"{token}__{name}")
        except FileNotFoundError:
            return
        self._write_json("rejected", os.path.basename(target) + ".reason.json",
                         {"reason": code, "message": message, "errors": []})
        self.counters.add(f"rejected_{code.lower()}")
        self._seen.pop(name, None)
        self.log.warning("file.rejected", reason=code)

    def _move_link_safe(self, path: str, name: str) -> str:
        target = os.path.join(self.path("rejected"), name)
        os.rename(path, target)  # renames a symlink itself, not what it points to
        files.fsync_folder(self.path("rejected"))
        files.fsync_folder(self.path("inbound"))
        return target

    def _hash(self, path: str) -> tuple[str, str | None, str | None]:
        digest = hashlib.sha256()
        head = b""
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                if len(head) < 200:
                    head += chunk[:200]
                digest.update(chunk)
        sender = control = None
        start = head.lstrip(b"\xef\xbb\xbf").lstrip()
        if start.startswith(b"ISA") and len(start) > 4:
            fields = start.split(start[3:4])
            if len(fields) > 13:
                sender = fields[6].strip().decode("latin-1")
                control = fields[13].strip().decode("latin-1")
        return digest.hexdigest(), sender, control

    def process(self, work: str, *, recovering: bool = False, hashes_this_scan: set[str] | None = None) -> None:
        started = time.perf_counter()
        name = os.path.basename(work).split("__", 1)[-1]
        try:
            handle = open(work, "rb")  # noqa: SIM115 - held for the lock until the file is done
        except FileNotFoundError:
            return
        with handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # another watcher on this host is processing it
            if not os.path.exists(work):
                return  # finished by the other watcher while we waited for the lock
            try:
                self._process_locked(work, name, recovering, hashes_this_scan, started)
            except (TemporaryFailure, OSError) as error:
                self._transient(work, name, error)
            except Exception as error:  # noqa: BLE001 - a bug must not stop the folder: retry, then quarantine
                self.log.error("file.failed", error_type=type(error).__name__)
                self._transient(work, name, error)

    def _process_locked(self, work: str, name: str, recovering: bool, hashes_this_scan: set[str] | None,
                        started: float) -> None:
        sha, sender, control = self._hash(work)
        file_id = sha[:20]
        entry = self.ledger.get(sha)
        if entry is not None and entry.status in ("done", "rejected", "quarantined"):
            archived = os.path.exists(self.path("archive", f"{file_id}__{name}"))
            if entry.status == "done" and (recovering and not archived):
                # A crash between the ledger and the archive move: finish the move.
                self._move(work, "archive", f"{file_id}__{name}")
                self.counters.add("recovered")
                return
            if entry.status == "rejected" and recovering:
                self._move(work, "rejected", f"{file_id}__{name}")
                return
            self._duplicate(work, name, file_id)
            return
        if hashes_this_scan is not None:
            if sha in hashes_this_scan:
                self._duplicate(work, name, file_id)
                return
            hashes_this_scan.add(sha)
        if sender and control and self.settings.control_reuse == "reject":
            others = [e for e in self.ledger.by_control(sender, control) if e.sha256 != sha and e.status == "done"]
            if others:
                self.ledger.finish(sha, "rejected", "DUPLICATE_CONTROL_NUMBER")
                self._reject_processed(work, name, file_id, "DUPLICATE_CONTROL_NUMBER",
                                       "ISA06 and ISA13 of a finished interchange, with other content", [])
                return
        dead = entry.owner if entry is not None and entry.owner and self._owner_is_dead(entry.owner) else None
        claimed = self.ledger.claim(sha, self.owner, self.settings.lease_seconds, sender, control, steal_from=dead)
        if claimed is None:
            return  # another host holds the lease: it will finish the content; we keep the file
        self._checkpoint("after_lease")
        report, engine = jobs.check(work, self.options, name=file_id)
        self._checkpoint("after_pass1")
        if report.errors or report.unreadable:
            self.ledger.finish(sha, "rejected", report.errors[0].code if report.errors else "UNREADABLE")
            self._reject_processed(work, name, file_id, "CONTENT_ERROR", "the interchange has X12 errors",
                                   [e.as_record() for e in report.errors])
            return
        output = self.path("outbound", f"{file_id}.x12")
        report = jobs.pass_on(self.settings.mode, work, output, report, engine, self.options)
        files.write_atomically(self.path("outbound", f"{file_id}.report.json"), (report.to_json() + "\n").encode())
        self._checkpoint("after_output")
        self.ledger.finish(sha, "done", "PROCESSED")
        self._checkpoint("after_ledger")
        self._move(work, "archive", f"{file_id}__{name}")
        self.counters.add("processed")
        self.log.info("file.processed", file_id=file_id, claims=report.claims, findings=len(report.findings),
                      mode=self.settings.mode, duration_ms=round((time.perf_counter() - started) * 1000, 1))

    @staticmethod
    def _owner_is_dead(owner: str) -> bool:
        """An owner on this host whose process is gone (its lease need not run out)."""
        host, _, rest = owner.partition(":")
        pid = rest.partition(":")[0]
        if host != socket.gethostname() or not pid.isdigit():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def _duplicate(self, work: str, name: str, file_id: str) -> None:
        if self.settings.duplicates == "reject":
            self._reject_processed(work, name, file_id, "DUPLICATE_CONTENT", "the same content was processed before", [])
            return
        self._move(work, "archive", f"{file_id}__dup__{name}")
        self.counters.add("duplicate")
        self.log.info("file.duplicate", file_id=file_id)

    def _reject_processed(self, work: str, name: str, file_id: str, code: str, message: str,
                          errors: list[dict[str, object]]) -> None:
        target = self._move(work, "rejected", f"{file_id}__{name}")
        self._checkpoint("reject_midway")
        self._write_json("rejected", os.path.basename(target) + ".reason.json",
                         {"reason": code, "message": message, "file_id": file_id, "errors": errors})
        self.counters.add(f"rejected_{code.lower()}")
        self.log.warning("file.rejected", file_id=file_id, reason=code, errors=len(errors))

    def _transient(self, work: str, name: str, error: Exception) -> None:
        code = getattr(error, "code", None) or errno.errorcode.get(getattr(error, "errno", 0) or 0, type(error).__name__)
        try:
            sha, _, _ = self._hash(work)
            attempts = self.ledger.failed_attempt(sha)
        except (OSError, EdiError):
            sha, attempts = "", self._retry_counts(work)
        self.counters.add("transient_error")
        if attempts >= self.settings.max_attempts:
            with contextlib.suppress(OSError, EdiError):
                if sha:
                    self.ledger.finish(sha, "quarantined", str(code))
                self._reject_processed(work, name, sha[:20] or "unknown", "QUARANTINED",
                                       f"{attempts} attempts failed with a temporary error ({code})", [])
            return
        self._retry_at[work] = time.monotonic() + min(2 ** attempts, 300)
        self.log.warning("file.retry", error_code=str(code), attempt=attempts)

    def _retry_counts(self, work: str) -> int:
        key = f"attempts::{work}"
        self.counters.add(key)
        return self.counters.values[key]

    def retry_work(self, *, force: bool = False) -> None:
        now = time.monotonic()
        for entry in sorted(os.scandir(self.path("work")), key=lambda e: e.name):
            due = self._retry_at.get(entry.path)
            if due is not None and (force or now >= due):
                del self._retry_at[entry.path]
                self.process(entry.path, recovering=True)

    # -- operations ------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        folders = {name: sum(1 for e in os.scandir(self.path(name)) if not e.name.endswith(".json"))
                   for name in ("inbound", "work", "outbound", "rejected", "archive")}
        return {"ledger": self.ledger.counts(), "folders": folders,
                "counters": {k: v for k, v in self.counters.values.items() if "::" not in k}}

    def write_metrics(self) -> None:
        self._write_json("state", "metrics.json", self.status())
