"""The drop-folder watcher: each complete upload in ``inbound/`` processed once, none lost.

Behaviour, row by row of ``operations.md`` (each has a test in tests/test_watcher.py, the hostile
cases of issue 14 in tests/test_watcher_hostile.py):

* temp names (``*.filepart``, ``*.part``, ``*.partial``, ``*.tmp``, ``*.writing``, ``.*``, ``~*``)
  are never touched;
* readiness is polled (a scan every ``scan_interval``): size, mtime and inode unchanged for
  ``stable_for`` seconds on the monotonic clock; a closed file is not a complete upload, and a file
  still open for writing (a stalled upload: the kernel refuses a read lease) is not ready either;
* stable but not beginning with an ISA (after a BOM or whitespace): rejected at once (NOT_X12);
* begins with ISA but without a final IEA matching ISA13 and the GS count: not ready; after
  ``incomplete_grace`` rejected as PREMATURE_EOF. A truncated interchange is never processed. The
  reader and the envelope checker (``edi.x12.envelope``) decide this, and read ISA06 and ISA13:
  the watcher keeps no envelope logic of its own;
* ready: opened once (``O_NOFOLLOW``), checked on that descriptor, claimed by an atomic rename
  ``inbound/f -> work/<token>__f``; the claimed inode must be the one opened, and from then on the
  watcher works on the descriptor (fchmod, reads), never on the name; a lost race is skipped;
* not a regular file, a symlink (never followed), a file with more than one link (HARD_LINK: never
  touched, another name may be outside ROOT), a name with control characters (BAD_NAME), unreadable,
  larger than ``max_bytes``: rejected with that reason. Long names are shortened with a hash;
* content already done (ledger by SHA-256): processed once; the copy goes to ``archive/`` marked
  ``dup`` (or to ``rejected/`` with ``--duplicates reject``) and is recorded. Only ``done`` counts
  as seen: a resend of quarantined or rejected content is processed again;
* same (ISA06, ISA13) as a finished interchange with other content: rejected as
  DUPLICATE_CONTROL_NUMBER (``--control-reuse allow`` turns this off);
* processed: ``outbound/<sha256[:20]>.x12`` (and ``.report.json``) written durably, the history
  written before the output is renamed into place, ledger marked done, original moved to
  ``archive/<sha256[:20]>__<name>``, never overwriting an archived file. If the file changed while
  it was worked on (size, mtime, or the hash of what was read), nothing goes out: it waits in
  ``work/`` until it is stable and complete again, then is processed whole;
* content error: ``rejected/<sha256[:20]>__<name>`` with a ``.reason.json`` beside it (codes and
  positions, no PHI), the reason written first;
* transient error (disk full, database down): the file stays in ``work/`` and is retried with
  exponential backoff; after ``max_attempts`` it is quarantined in ``rejected/``;
* crash or SIGKILL anywhere: on start ``work/`` is re-driven and every step is completed once (a
  reason without its file finishes the move, a file linked but not yet unlinked only loses its work
  name, a file marked done only finishes its archive move); temp files of dead processes are
  removed, never those of a live watcher;
* several watchers on one host: the rename claim, plus an ``flock`` on the descriptor while the
  file is claimed and processed; the watcher that finds another holding the content's lease looks
  again later (then archives its copy as a duplicate) and on exit hands its file back to ``inbound/``;
* watchers on several hosts: a PostgreSQL ledger whose row lease (``FOR UPDATE SKIP LOCKED``)
  decides who processes a content hash.

Durable writes: temp file in the target folder, fsync, rename, fsync of the folder; every file the
watcher writes or keeps is owner-only (0600; a rejected folder 0700), except a rejected symlink or
hard link, which is moved by name and never touched. Logs carry file ids (hash prefixes), outcomes,
counts and durations; never file names, which partners fill with patient names.
"""

from __future__ import annotations

import contextlib
import ctypes
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from edi.adapters import files, jobs
from edi.adapters.databases import is_postgres
from edi.adapters.ledger import Ledger, open_ledger
from edi.adapters.logs import get_logger
from edi.errors import EdiError, TemporaryFailure
from edi.ig.acknowledge import AckIdentity
from edi.pipeline import Limits, Refused, Retry
from edi.report.model import FileReport
from edi.x12.envelope import EnvelopeChecker
from edi.x12.reader import Reader
from edi.x12.segment import Segment

FOLDERS = ("inbound", "work", "outbound", "held", "rejected", "archive", "state")
TEMP_SUFFIXES = (".filepart", ".part", ".partial", ".tmp", ".writing")
CRASH_ENV = "EDI837_WATCH_CRASH_AT"  # tests: "<point>:<n>" kills the watcher at the n-th <point>
STOP_ENV = "EDI837_WATCH_STOP_AT"  # tests: "<point>:<n>" stops (SIGSTOP) the watcher at the n-th <point>

# Why a file goes to rejected/ without output: the ``reason`` of its ``.reason.json``. A public
# contract like the X12 error codes: never reuse or rename one (README, watcher section).
REJECT_REASONS = {
    "NOT_X12": "does not begin with an ISA header",
    "SYMLINK": "a symbolic link: never followed",
    "HARD_LINK": "a file with more than one link: another name may be outside the folder; not touched",
    "NOT_REGULAR_FILE": "not a regular file",
    "BAD_NAME": "the file name has control characters",
    "UNREADABLE": "the file cannot be read",
    "TOO_LARGE": "larger than the byte limit",
    "PREMATURE_EOF": "the interchange has no final IEA matching ISA13 and the group count",
    "CONTENT_ERROR": "the interchange has X12 errors",
    "DUPLICATE_CONTROL_NUMBER": "ISA06 and ISA13 of a finished interchange, with other content",
    "DUPLICATE_CONTENT": "the same content was processed before",
    "QUARANTINED": "temporary errors on every attempt",
}

# A kept name is at most this many bytes, so that the longest name derived from it (the temp file
# of a ``.reason.json``: ".<20 hex>__<name>~<n>.reason.json.<pid>.<8>.tmp") stays under the 255
# bytes of a Linux file name. Longer names are shortened: their start, a hash of the whole, the suffix.
MAX_KEPT_NAME = 150
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_READ_SIZE = 1 << 20


def is_temp_name(name: str) -> bool:
    return name.startswith((".", "~")) or name.endswith(TEMP_SUFFIXES)


def kept_name(name: str) -> str | None:
    """The name the watcher keeps for an upload, or None for a BAD_NAME (control characters:
    they break the operators' tools and the partners' own scripts downstream)."""
    raw = os.fsencode(name)
    if any(byte < 0x20 or byte == 0x7F for byte in raw):
        return None
    if len(raw) <= MAX_KEPT_NAME:
        return name
    _, dot, extension = name.rpartition(".")
    suffix = f".{extension}" if dot and 0 < len(os.fsencode(extension)) <= 10 else ""
    head = raw[: MAX_KEPT_NAME - 18 - len(os.fsencode(suffix))]
    while head and head[-1] & 0xC0 == 0x80:  # never cut a UTF-8 character in two
        head = head[:-1]
    if head and head[-1] >= 0xC0:
        head = head[:-1]
    return f"{os.fsdecode(head)}~{hashlib.sha256(raw).hexdigest()[:16]}{suffix}"


def _errno_code(error: OSError) -> str:
    return errno.errorcode.get(error.errno or 0, type(error).__name__)


def _snapshot(fd: int, size: int) -> Callable[[], Iterator[bytes]]:
    """The first ``size`` bytes of the open file, read again on every call (by position, so two
    readers never share an offset). What is appended later is not part of this input."""

    def chunks() -> Iterator[bytes]:
        offset = 0
        while offset < size:
            chunk = os.pread(fd, min(_READ_SIZE, size - offset), offset)
            if not chunk:
                return
            offset += len(chunk)
            yield chunk

    return chunks


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _rename_noreplace(source: str, target: str) -> bool:
    """rename(2) that never replaces ``target`` (renameat2 RENAME_NOREPLACE); False when the target
    exists or the call is not available (the file then stays where it is)."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_noreplace = -100, 1
    if renameat2(at_fdcwd, os.fsencode(source), at_fdcwd, os.fsencode(target), rename_noreplace) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EEXIST, errno.EINVAL, errno.ENOSYS, errno.ENOENT):
        return False
    raise OSError(code, os.strerror(code))


def _started(pid: int) -> str:
    """The process's start time (clock ticks after boot, /proc/<pid>/stat field 22); "" unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return ""
    return fields[19].decode() if len(fields) > 19 else ""


def _read_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as handle:
            record = json.loads(handle.read())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


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
    hold: bool = False  # rewrite mode: claims left for a person go to held/ with their worklist
    # The 999 (or TA1) of every file, accepted or rejected, in acks/ for the partner to pick up
    # (edi837's own implementation-guide check; None: no acknowledgments).
    acks: AckIdentity | None = None


@dataclass(slots=True)
class _Seen:
    signature: tuple[int, int, int]
    since: float  # unchanged since (monotonic): stable_for and incomplete_grace count from here


@dataclass(slots=True)
class Counters:
    values: dict[str, int] = field(default_factory=dict)

    def add(self, name: str) -> None:
        self.values[name] = self.values.get(name, 0) + 1


class InputChanged(TemporaryFailure):
    """The claimed file changed while the watcher worked on it (an upload still writing)."""

    code = "INPUT_CHANGED"


def _signature(info: os.stat_result) -> tuple[int, int, int]:
    return (info.st_size, info.st_mtime_ns, info.st_ino)


def create_folders(root: str) -> None:
    """The ownership model: ``inbound/`` is where the partner's SFTP user writes, so it is
    group-writable (the partner's group, set by the operator; setgid so uploads keep that group);
    everything else is the watcher's alone. ROOT lets the group through, nothing more."""
    if not os.path.isdir(root):
        os.makedirs(root, exist_ok=True)
        os.chmod(root, 0o710)
    for name in FOLDERS:
        path = os.path.join(root, name)
        if os.path.isdir(path):
            continue  # an operator's choice of mode and group stays
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
            if name == "inbound":
                os.chmod(path, 0o2770)  # explicit: the umask (077) would take the group's bits away


def _counted(folder: str, name: str) -> bool:
    """A file the status counts: not a report beside it (held/ also keeps the worklists)."""
    return name.endswith(".x12") if folder == "held" else not name.endswith(".json")


def read_status(root: str, ledger_url: str | None = None) -> dict[str, Any] | None:
    """What ``watch --status`` prints: the ledger, the folders and the counters the running
    watcher last wrote. None when ROOT is not a watcher folder; nothing is ever created."""
    if not (os.path.isdir(os.path.join(root, "inbound")) and os.path.isdir(os.path.join(root, "state"))):
        return None
    folders = {}
    for name in ("inbound", "work", "outbound", "held", "rejected", "archive"):
        path = os.path.join(root, name)
        folders[name] = (sum(1 for e in os.scandir(path) if _counted(name, e.name))
                         if os.path.isdir(path) else 0)
    ledger_path = os.path.join(root, "state", "ledger.sqlite")
    ledger: dict[str, int] = {}
    if ledger_url or os.path.exists(ledger_path):
        opened = open_ledger(ledger_url or ledger_path)
        try:
            ledger = opened.counts()
        finally:
            opened.close()
    metrics = _read_json(os.path.join(root, "state", "metrics.json")) or {}
    return {"ledger": ledger, "folders": folders, "counters": metrics.get("counters", {}),
            "metrics_written": metrics.get("written")}


class Watcher:
    def __init__(self, settings: WatchSettings, options: jobs.JobOptions) -> None:
        self.settings = settings
        self.options = options
        self.root = settings.root
        create_folders(self.root)
        self.ledger: Ledger = open_ledger(settings.ledger_url or self.path("state", "ledger.sqlite"))
        # host:pid:start time:random. The start time tells a dead watcher from a new process that
        # got its pid again (pids wrap in minutes on a busy host).
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{_started(os.getpid())}:{secrets.token_hex(4)}"
        self.counters = Counters()
        self.log = get_logger("edi837.watch")
        self._seen: dict[str, _Seen] = {}
        self._settling: dict[str, _Seen] = {}  # work files that changed or are incomplete
        self._retry_at: dict[str, float] = {}
        self._lease_waits: dict[str, int] = {}  # work files whose content another watcher holds
        self._crash = self._parse_points(os.environ.get(CRASH_ENV, ""))
        self._stop = self._parse_points(os.environ.get(STOP_ENV, ""))
        with contextlib.suppress(ValueError):  # not the main thread (tests): nothing to set
            # A lease break (someone opens a file we hold a read lease on) is signalled with SIGIO,
            # whose default action ends the process; leases are only ever held for a moment.
            signal.signal(signal.SIGIO, signal.SIG_IGN)

    # -- helpers ---------------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    @staticmethod
    def _parse_points(value: str) -> dict[str, int]:
        points: dict[str, int] = {}
        for item in filter(None, value.split(",")):
            point, _, count = item.partition(":")
            points[point] = int(count or 1)
        return points

    def _checkpoint(self, point: str) -> None:
        """Test hooks: die here, as a power cut would (SIGKILL: no cleanup, no finally), or stop
        here (SIGSTOP) while a test changes the folder."""
        if point in self._crash:
            self._crash[point] -= 1
            if self._crash[point] <= 0:
                os.kill(os.getpid(), signal.SIGKILL)
        if point in self._stop:
            self._stop[point] -= 1
            if self._stop[point] == 0:
                os.kill(os.getpid(), signal.SIGSTOP)

    def _slots(self, folder: str, base: str) -> Iterator[str]:
        """``base``, then ``stem~2.suffix``, ``stem~3.suffix``...: never overwrite a kept file."""
        stem, dot, suffix = base.partition(".")
        yield os.path.join(self.path(folder), base)
        counter = 2
        while True:
            yield os.path.join(self.path(folder), f"{stem}~{counter}{dot}{suffix}")
            counter += 1

    def _link(self, work: str, identity: os.stat_result, target: str) -> bool:
        """A second name for the work file; True also when a run that died made it already."""
        try:
            os.link(work, target)  # fails if the target exists: never overwrite
        except FileExistsError:
            try:
                return _same(os.lstat(target), identity)
            except FileNotFoundError:
                return False
        files.fsync_folder(os.path.dirname(target))
        self._checkpoint("after_link")
        return True

    def _drop_work_name(self, work: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(work)
        files.fsync_folder(self.path("work"))
        self._retry_at.pop(work, None)
        self._settling.pop(work, None)
        self._lease_waits.pop(work, None)

    def _write_json(self, path: str, record: dict[str, Any]) -> None:
        files.write_atomically(path, (json.dumps(record, sort_keys=True, indent=1) + "\n").encode())

    def _reserve(self, base: str, claim: str, record: dict[str, Any]) -> str:
        """The first free name in rejected/ for ``base``, its ``.reason.json`` written first (so a
        crash never leaves a rejected file without its reason); a reason this claim wrote before a
        crash is reused, never duplicated."""
        for target in self._slots("rejected", base):
            if os.path.lexists(target):
                continue
            existing = _read_json(target + ".reason.json")
            if existing is not None and existing.get("claim") != claim:
                continue  # another claim's move in progress
            self._write_json(target + ".reason.json", {**record, "claim": claim})
            return target
        raise AssertionError("unreachable")  # pragma: no cover - _slots never ends

    def _pending_reject(self, work: str, identity: os.stat_result, base: str, claim: str) -> bool:
        """Finish a reject a crash interrupted: the reason is there (the file not yet, or the file
        linked but its work name not yet removed). True when there was one."""
        for target in self._slots("rejected", base):
            try:
                there = os.lstat(target)
            except FileNotFoundError:
                there = None
            if there is not None:
                if _same(there, identity):
                    self._drop_work_name(work)
                    self.counters.add("recovered")
                    return True
                continue
            record = _read_json(target + ".reason.json")
            if record is None:
                return False
            if record.get("claim") == claim:
                if self._link(work, identity, target):
                    self._drop_work_name(work)
                    self.counters.add("recovered")
                    return True
                return False
        return False  # pragma: no cover - _slots never ends

    # -- the loop --------------------------------------------------------------------------
    def recover(self) -> None:
        """After a crash: remove temp files of dead processes, re-drive what is left in ``work/``."""
        self._remove_stale_temps()
        for entry in sorted(os.scandir(self.path("work")), key=lambda e: e.name):
            self.process(entry.path, recovering=True)

    def _remove_stale_temps(self) -> None:
        """Only temps whose writer is gone: another watcher on this ROOT may be writing right now.
        With watchers on several hosts a pid means nothing here, so the temp must also be older
        than a lease."""
        shared = is_postgres(self.settings.ledger_url or "")
        for folder in ("outbound", "held", "rejected", "archive", "state"):
            if not os.path.isdir(self.path(folder)):
                continue  # held/ of a ROOT made before it existed
            for entry in os.scandir(self.path(folder)):
                pid = files.temp_pid(entry.name)
                if pid is None or pid == os.getpid():
                    continue
                with contextlib.suppress(OSError):
                    written_at = entry.stat(follow_symlinks=False).st_mtime
                    if files.temp_writer_alive(pid, written_at):
                        continue
                    if shared and time.time() - written_at < self.settings.lease_seconds:
                        continue
                    os.unlink(entry.path)
                    self.counters.add("stale_temp_removed")

    def run(self, *, once: bool = False, max_scans: int | None = None) -> None:
        try:
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
        finally:
            self.hand_back()

    def hand_back(self) -> None:
        """Files whose content another watcher holds go back to inbound/ on exit, where a live
        watcher finds them (a file stays in work/ when its name is taken there meanwhile)."""
        for work in list(self._lease_waits):
            name = os.path.basename(work).partition("__")[2]
            with contextlib.suppress(OSError):
                if _rename_noreplace(work, self.path("inbound", name)):
                    files.fsync_folder(self.path("inbound"))
                    files.fsync_folder(self.path("work"))
                    self.counters.add("handed_back")
            self._lease_waits.pop(work, None)

    def scan(self) -> None:
        now = time.monotonic()
        present = set()
        for entry in sorted(os.scandir(self.path("inbound")), key=lambda e: e.name):
            if is_temp_name(entry.name):
                continue
            present.add(entry.name)
            try:
                self._consider(entry.path, entry.name, now)
            except OSError as error:
                # One file the kernel refuses (an I/O error, a name it cannot take) never stops
                # the others: counted, logged by code, looked at again next scan.
                self.counters.add("scan_error")
                self.log.warning("file.scan_error", error_code=_errno_code(error))
        for name in list(self._seen):
            if name not in present:
                del self._seen[name]

    def _consider(self, path: str, name: str, now: float) -> None:
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return
        if kept_name(name) is None:
            self._reject_inbound(path, name, info, "BAD_NAME")
            return
        if stat.S_ISLNK(info.st_mode):
            self._reject_inbound(path, name, info, "SYMLINK")
            return
        if not stat.S_ISREG(info.st_mode):
            self._reject_inbound(path, name, info, "NOT_REGULAR_FILE")
            return
        if info.st_nlink > 1:
            self._reject_inbound(path, name, info, "HARD_LINK")
            return
        if info.st_size > self.settings.max_bytes:
            self._reject_inbound(path, name, info, "TOO_LARGE", f"larger than {self.settings.max_bytes} bytes")
            return
        seen = self._seen.get(name)
        if seen is None or seen.signature != _signature(info):
            seen = self._seen[name] = _Seen(_signature(info), now)
            if self.settings.stable_for > 0:
                return
        if now - seen.since < self.settings.stable_for:
            return
        self._checkpoint("before_open")
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except FileNotFoundError:
            return
        except OSError as error:
            if error.errno == errno.ELOOP:  # a symlink put there since the look: the link is rejected
                self._reject_inbound(path, name, os.lstat(path), "SYMLINK")
            elif error.errno in (errno.EACCES, errno.EPERM):
                self._reject_inbound(path, name, info, "UNREADABLE")
            else:
                raise
            return
        try:
            self._consider_opened(fd, path, name, info, seen, now)
        finally:
            os.close(fd)

    def _consider_opened(self, fd: int, path: str, name: str, info: os.stat_result, seen: _Seen, now: float) -> None:
        opened = os.fstat(fd)
        if not _same(opened, info):
            self._seen.pop(name, None)  # replaced since the look: a new file, with its own wait
            return
        if opened.st_nlink > 1:
            self._reject_inbound(path, name, info, "HARD_LINK")
            return
        state = self._completeness(_snapshot(fd, opened.st_size))
        if state in ("unreadable", "not_x12"):
            self._reject_inbound(path, name, info, state.upper(), fd=fd)
            return
        if state == "incomplete":
            if now - seen.since >= self.settings.incomplete_grace:
                self._reject_inbound(path, name, info, "PREMATURE_EOF", fd=fd)
            return
        if not self._no_writer(fd) and now - seen.since < self.settings.incomplete_grace:
            # A complete interchange with its upload still open: the client may append another.
            # A handle left open past the grace (a hung client) no longer holds the file back; the
            # check after processing still notices an append.
            self.counters.add("still_open_for_writing")
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # another watcher on this host is claiming it
        work = self.path("work", f"{secrets.token_hex(6)}__{kept_name(name)}")
        try:
            os.rename(path, work)  # the claim: atomic on one filesystem
        except FileNotFoundError:
            self.counters.add("lost_race")
            return
        files.fsync_folder(self.path("work"))
        self._seen.pop(name, None)
        self._checkpoint("after_claim")
        try:
            claimed = os.lstat(work)
        except FileNotFoundError:
            return
        if not _same(claimed, opened):
            # Swapped between the open and the rename: what was checked is not what was claimed.
            self.counters.add("swapped")
            self.process(work)
            return
        self.process(work, fd=fd, checked=True)

    @staticmethod
    def _no_writer(fd: int) -> bool:
        """False while someone holds the file open for writing (a stalled upload): the kernel
        refuses a read lease then. Where leases are not allowed (a file of another owner without
        CAP_LEASE, a network filesystem), the check after processing is what notices an append."""
        try:
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
        except OSError as error:
            return error.errno not in (errno.EAGAIN, errno.EBUSY)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        return True

    def _completeness(self, source: Callable[[], Iterator[bytes]]) -> str:
        """not_x12, incomplete, complete or unreadable: every interchange of the file ends with
        an IEA whose IEA02 is its ISA13 and whose IEA01 is its number of GS, as the envelope
        checker (``edi.x12.envelope``, which also checks every file processed) sees it."""
        envelope = _Envelope(self.options.limits)
        started = False
        try:
            for chunk in _with_end(source()):
                if not started:
                    if not chunk.lstrip(b"\xef\xbb\xbf").lstrip().startswith(b"ISA"):
                        return "not_x12"
                    started = True
                envelope.feed(chunk)
        except OSError:
            return "unreadable"
        except EdiError:
            return "not_x12" if envelope.reader.segment_count == 0 else "incomplete"
        if not started:
            return "not_x12"
        return "complete" if envelope.interchanges_complete() else "incomplete"

    # -- outcomes --------------------------------------------------------------------------
    def _reject_inbound(self, path: str, name: str, info: os.stat_result, code: str, message: str | None = None,
                        *, fd: int | None = None) -> None:
        """Reject straight from inbound (content not processed): the entry itself is moved, never
        followed. Its claim token comes from the inode and the name, so a crash between the reason
        and the move reuses the same slot."""
        claim = hashlib.sha256(f"{info.st_dev}:{info.st_ino}:".encode() + os.fsencode(name)).hexdigest()[:12]
        target = self._reserve(f"{claim}__{kept_name(name) or 'bad-name'}", claim,
                               {"reason": code, "message": message or REJECT_REASONS[code], "errors": []})
        self._checkpoint("reject_midway")
        if code not in ("SYMLINK", "HARD_LINK"):
            self._make_private(path, info, fd)
        try:
            os.rename(path, target)  # renames a symlink or a hard link itself, not what it points to
        except FileNotFoundError:
            self._release(target)
            return
        files.fsync_folder(self.path("rejected"))
        files.fsync_folder(self.path("inbound"))
        self.counters.add(f"rejected_{code.lower()}")
        self._seen.pop(name, None)
        self.log.warning("file.rejected", reason=code)

    @staticmethod
    def _release(target: str) -> None:
        """The entry vanished before its move: its reason goes too, unless another watcher moved
        that very entry into this slot (the rename that took our source is what made the target)."""
        if not os.path.lexists(target):
            with contextlib.suppress(OSError):
                os.unlink(target + ".reason.json")

    @staticmethod
    def _make_private(path: str, info: os.stat_result, fd: int | None) -> None:
        """Owner-only mode on exactly the inode that was looked at (0700 for a folder: its owner
        needs to enter it). A file of another owner stays as it is where the watcher may not
        change it (no CAP_FOWNER): the 0700 folders keep it private then."""
        with contextlib.suppress(OSError):
            if fd is not None:
                os.fchmod(fd, files.OUTPUT_MODE)
                return
            handle = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                opened = os.fstat(handle)
                if (not _same(opened, info) or stat.S_ISLNK(opened.st_mode)
                        or (opened.st_nlink > 1 and not stat.S_ISDIR(opened.st_mode))):
                    return
                mode = 0o700 if stat.S_ISDIR(opened.st_mode) else files.OUTPUT_MODE
                os.chmod(f"/proc/self/fd/{handle}", mode)  # an O_PATH descriptor: no fchmod
            finally:
                os.close(handle)

    def _reject_work(self, work: str, identity: os.stat_result, base_id: str, code: str,
                     errors: list[dict[str, object]] | None = None, message: str | None = None) -> None:
        """Reject a claimed file: reason first, then the link into rejected/, then the work name
        goes. A crash between any two steps is finished by ``_pending_reject``."""
        claim, _, name = os.path.basename(work).partition("__")
        record: dict[str, Any] = {"reason": code, "message": message or REJECT_REASONS[code], "errors": errors or []}
        if base_id != claim:
            record["file_id"] = base_id
        while True:
            target = self._reserve(f"{base_id}__{name}", claim, record)
            self._checkpoint("reject_midway")
            if self._link(work, identity, target):
                break
        self._drop_work_name(work)
        self.counters.add(f"rejected_{code.lower()}")
        self.log.warning("file.rejected", file_id=base_id if base_id != claim else None, reason=code,
                         errors=len(errors or []))

    def _reject_work_entry(self, work: str, code: str) -> None:
        """Something in work/ that cannot be opened as a file (a symlink or a socket put in place
        of the claimed file): moved itself, never followed."""
        claim, _, name = os.path.basename(work).partition("__")
        target = self._reserve(f"{claim}__{name}", claim, {"reason": code, "message": REJECT_REASONS[code],
                                                           "errors": []})
        try:
            os.rename(work, target)
        except FileNotFoundError:
            self._release(target)
            return
        files.fsync_folder(self.path("rejected"))
        self._drop_work_name(work)
        self.counters.add(f"rejected_{code.lower()}")
        self.log.warning("file.rejected", reason=code)

    def _identify(self, source: Callable[[], Iterator[bytes]]) -> tuple[str, str | None, str | None, tuple[str, ...]]:
        """(SHA-256, ISA06, ISA13, ISA01-ISA16) of the input; the ISA elements as the reader reads
        the first interchange (None and () for input that does not begin with a readable ISA)."""
        digest = hashlib.sha256()
        envelope: _Envelope | None = _Envelope(self.options.limits)
        for chunk in source():
            digest.update(chunk)
            if envelope is not None and not envelope.isa:
                try:
                    envelope.feed(chunk)
                except EdiError:
                    envelope = None
        isa = envelope.isa if envelope is not None else ()
        sender = isa[5].strip().decode("latin-1") if len(isa) > 12 else None
        control = isa[12].strip().decode("latin-1") if len(isa) > 12 else None
        return digest.hexdigest(), sender, control, tuple(element.decode("latin-1") for element in isa)

    def process(self, work: str, *, fd: int | None = None, recovering: bool = False, checked: bool = False) -> None:
        """Process one claimed file. ``fd``: the descriptor the claim checked (already locked);
        otherwise the file is opened here, never through a symlink, and locked."""
        started = time.perf_counter()
        owned: int | None = None
        if fd is None:
            try:
                fd = owned = os.open(work, _OPEN_FLAGS)
            except FileNotFoundError:
                return
            except OSError as error:
                try:
                    if error.errno == errno.ELOOP:
                        self._reject_work_entry(work, "SYMLINK")
                    elif error.errno == errno.ENXIO:
                        self._reject_work_entry(work, "NOT_REGULAR_FILE")
                    else:
                        self._transient(work, None, error)
                except OSError as failure:  # a full disk while rejecting: kept in work/, tried again
                    self._transient(work, None, failure)
                return
        try:
            if owned is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return  # another watcher on this host is processing it
            opened = os.fstat(fd)
            try:
                if not _same(os.lstat(work), opened):
                    return
            except FileNotFoundError:
                return  # finished by another watcher while we waited for the lock
            self._process_locked(work, fd, opened, recovering, checked, started)
        except TemporaryFailure as error:
            if error.code == InputChanged.code:
                self._settle(work)
            else:
                self._transient(work, fd, error)
        except OSError as error:
            self._transient(work, fd, error)
        except Exception as error:  # noqa: BLE001 - a bug must not stop the folder: retry, then quarantine
            self.log.error("file.failed", error_type=type(error).__name__)
            self._transient(work, fd, error)
        finally:
            if owned is not None:
                os.close(owned)

    def _settle(self, work: str) -> None:
        """The file changed while it was worked on (or is incomplete): nothing went out; it is
        looked at again once it is stable (and complete) again."""
        now = time.monotonic()
        with contextlib.suppress(FileNotFoundError):
            signature = _signature(os.lstat(work))
            previous = self._settling.get(work)
            if previous is None or previous.signature != signature:
                self._settling[work] = _Seen(signature, now)
            self.counters.add("waiting_in_work")
            self.log.info("file.settling")

    def _process_locked(self, work: str, fd: int, opened: os.stat_result, recovering: bool, checked: bool,
                        started: float) -> None:
        claim, _, name = os.path.basename(work).partition("__")
        if not stat.S_ISREG(opened.st_mode):
            self._reject_work(work, opened, claim, "NOT_REGULAR_FILE")
            return
        if self._pending_reject(work, opened, f"{claim}__{name}", claim):
            return
        with contextlib.suppress(OSError):
            os.fchmod(fd, files.OUTPUT_MODE)  # partners upload 0644; what we keep is private
        size, mtime = opened.st_size, opened.st_mtime_ns
        source = _snapshot(fd, size)
        if not checked:
            state = self._completeness(source)
            if state == "incomplete":
                settling = self._settling.get(work)
                if settling is not None and time.monotonic() - settling.since >= self.settings.incomplete_grace:
                    self._reject_work(work, opened, claim, "PREMATURE_EOF")
                else:
                    self._settle(work)
                return
            if state in ("not_x12", "unreadable"):
                self._reject_work(work, opened, claim, state.upper())
                return
        self._settling.pop(work, None)
        sha, sender, control, isa = self._identify(source)
        file_id = sha[:20]
        if self._pending_reject(work, opened, f"{file_id}__{name}", claim):
            return
        entry = self.ledger.get(sha)
        if entry is not None and entry.status == "done":
            if recovering and self._is_unarchived_original(entry, claim, opened, file_id):
                self._archive(work, fd, opened, f"{file_id}__{name}")  # a crash between the ledger and the archive
                self.counters.add("recovered")
            else:
                self._duplicate(work, fd, opened, file_id, name)
            return
        if sender and control and self.settings.control_reuse == "reject":
            others = [e for e in self.ledger.by_control(sender, control) if e.sha256 != sha and e.status == "done"]
            if others:
                self.ledger.finish(sha, "rejected", "DUPLICATE_CONTROL_NUMBER")
                self._reject_work(work, opened, file_id, "DUPLICATE_CONTROL_NUMBER")
                self._reject_interchange(file_id, isa, "025")
                return
        dead = entry.owner if entry is not None and entry.owner and self._owner_is_dead(entry.owner) else None
        # The lease names the claim too: a recovery can then tell the processed file from a copy.
        claimed = self.ledger.claim(sha, f"{self.owner}/{claim}", self.settings.lease_seconds, sender, control,
                                    steal_from=dead)
        if claimed is None:
            self._wait_for_lease(work)
            return
        self._lease_waits.pop(work, None)
        self._checkpoint("after_lease")

        def unchanged(checked: FileReport) -> None:
            now = os.fstat(fd)
            if (now.st_size, now.st_mtime_ns) != (size, mtime) or (checked.sha256 and checked.sha256 != sha):
                raise InputChanged("the file changed while it was processed; nothing was sent")

        def after_pass1(checked: FileReport) -> None:
            self._checkpoint("after_pass1")
            unchanged(checked)

        def write_report(report: FileReport) -> None:
            # Before the output's rename: a delivered file always has its report.
            files.write_atomically(self.path("outbound", f"{file_id}.report.json"), (report.to_json() + "\n").encode())

        # unchanged() runs after pass 1 and again once the output is written, before the history
        # and the rename.
        with contextlib.ExitStack() as outputs:
            output: str | files.OutputIfWritten = self.path("outbound", f"{file_id}.x12")
            held: files.OutputIfWritten | None = None
            if self.settings.hold and self.settings.mode == "rewrite":
                # Entered after the forward output: the held file is in place before the forward
                # file is renamed into outbound/ (a crash between leaves the input in work/).
                output = outputs.enter_context(files.OutputIfWritten(str(output)))
                os.makedirs(self.path("held"), mode=0o700, exist_ok=True)
                held = outputs.enter_context(files.OutputIfWritten(self.path("held", f"{file_id}.x12")))
            outcome = jobs.process(source, self.options, mode=self.settings.mode, name=file_id, output=output,
                                   check_input=after_pass1, before_record=unchanged, before_publish=write_report,
                                   hold=held)
            if held is not None and held.written and not isinstance(outcome, (Retry, Refused)):
                self._write_worklists(file_id, outcome)
        if isinstance(outcome, Retry):
            if outcome.code == InputChanged.code:
                self._settle(work)
            else:
                self._transient(work, fd, outcome.error)
            return
        report = outcome.report
        if self.settings.acks is not None:
            self._acknowledge(source, file_id)
        if isinstance(outcome, Refused):
            self.ledger.finish(sha, "rejected", report.errors[0].code if report.errors else "UNREADABLE")
            self._reject_work(work, opened, file_id, "CONTENT_ERROR", [e.as_record() for e in report.errors])
            return
        self._checkpoint("after_output")
        self.ledger.finish(sha, "done", "PROCESSED")
        self._checkpoint("after_ledger")
        self._archive(work, fd, opened, f"{file_id}__{name}")
        self.counters.add("processed")
        self.log.info("file.processed", file_id=file_id, claims=report.claims, findings=len(report.findings),
                      mode=self.settings.mode, duration_ms=round((time.perf_counter() - started) * 1000, 1))

    def _write_worklists(self, file_id: str, outcome: Any) -> None:
        """The worklist (HTML and CSV, ``edi.report.worklist``) beside the held claims."""
        from edi.report.documents import worklist_file, write_document

        made = [worklist_file(outcome.report, outcome.engine, fixed=True)]
        for fmt in ("html", "csv"):
            with files.atomic_output(self.path("held", f"{file_id}.worklist.{fmt}")) as handle:
                write_document(handle.write, fmt, made)

    def _acknowledge(self, source: Callable[[], Iterator[bytes]], file_id: str) -> None:
        """Write the file's 999 or TA1 to acks/."""
        from edi.adapters.ig_own import acknowledge_into

        assert self.settings.acks is not None
        self._write_ack(file_id, lambda identity: acknowledge_into(self.path("acks"), file_id, source,
                                                                   self.options.limits, identity))

    def _reject_interchange(self, file_id: str, isa: tuple[str, ...], note: str) -> None:
        """With ``--acks``: the TA1 of an interchange refused before it is read (note 025: its
        ISA06 and ISA13 name another file already sent)."""
        if self.settings.acks is None or len(isa) < 16:
            return
        from edi.adapters.ig_own import reject_interchange_into

        self._write_ack(file_id, lambda identity: reject_interchange_into(self.path("acks"), file_id, isa, note,
                                                                          identity))

    def _write_ack(self, file_id: str, write: Callable[[Any], str | None]) -> None:
        """Run ``write(identity)``, which writes an acknowledgment to acks/ (None: there was none to
        write), and count it: a failure is counted and logged, never the file's (the file's fate is
        decided; the acknowledgment can be asked for again)."""
        try:
            written = write(self.settings.acks)
        except (OSError, ValueError) as error:
            self.counters.add("ack_failed")
            self.log.warning("file.ack_failed", file_id=file_id, error=type(error).__name__)
            return
        self.counters.add("acknowledged" if written else "not_acknowledged")

    def _archive(self, work: str, fd: int, identity: os.stat_result, base: str) -> None:
        for target in self._slots("archive", base):
            if self._link(work, identity, target):
                break
        now = os.fstat(fd)
        if (now.st_size, now.st_mtime_ns) != (identity.st_size, identity.st_mtime_ns):
            # Written to after the last check (a writer the kernel could not report): the archive
            # holds more than what went out. Rare; counted and logged for the operator.
            self.counters.add("changed_after_output")
            self.log.warning("file.changed_after_output", file_id=base.partition("__")[0])
        self._drop_work_name(work)

    def _original_archived(self, file_id: str, identity: os.stat_result) -> bool:
        """Whether the processed original of this content is in archive/ (not counting this very
        file, linked there by a run that died before removing its work name)."""
        prefix = f"{file_id}__"
        for entry in os.scandir(self.path("archive")):
            if entry.name.startswith(prefix) and not entry.name.startswith(f"{prefix}dup__"):
                return not _same(entry.stat(follow_symlinks=False), identity)
        return False

    def _is_unarchived_original(self, entry: Any, claim: str, identity: os.stat_result, file_id: str) -> bool:
        """Whether this file, found in work/ with its content done, is the one that was processed
        (a run died between the ledger and the archive move) rather than a copy: the lease names
        the claim that processed it. While that claim's file is still in work/, it is the original."""
        if self._original_archived(file_id, identity):
            return False
        processed_by = (entry.owner or "").rpartition("/")[2]
        if not processed_by or processed_by == claim:
            return True
        return not any(e.name.startswith(f"{processed_by}__") for e in os.scandir(self.path("work")))

    def _wait_for_lease(self, work: str) -> None:
        """Another watcher holds this content's lease: look again later (it ends as a duplicate
        of what the other sends), backing off; on exit the file is handed back to inbound/."""
        waits = self._lease_waits.get(work, 0) + 1
        self._lease_waits[work] = waits
        self._retry_at[work] = time.monotonic() + min(max(self.settings.scan_interval, 0.1) * 2 ** min(waits, 10), 60)
        self.counters.add("lease_wait")

    @staticmethod
    def _owner_is_dead(owner: str) -> bool:
        """An owner on this host whose process is gone (its lease need not run out): no process
        with its pid, or one started at another time."""
        host, _, rest = owner.partition(":")
        pid, _, rest = rest.partition(":")
        start = rest.partition(":")[0]
        if host != socket.gethostname() or not pid.isdigit():
            return False
        if not files.process_alive(int(pid)):
            return True
        return start.isdigit() and _started(int(pid)) not in (start, "")

    def _duplicate(self, work: str, fd: int, identity: os.stat_result, file_id: str, name: str) -> None:
        if self.settings.duplicates == "reject":
            self._reject_work(work, identity, file_id, "DUPLICATE_CONTENT")
            return
        self._archive(work, fd, identity, f"{file_id}__dup__{name}")
        self.counters.add("duplicate")
        self.log.info("file.duplicate", file_id=file_id)

    def _transient(self, work: str, fd: int | None, error: Exception) -> None:
        code = getattr(error, "code", None) or errno.errorcode.get(getattr(error, "errno", 0) or 0, type(error).__name__)
        self.counters.add("transient_error")
        try:
            if fd is None:
                raise OSError(errno.EBADF, "not open")
            sha, _, _, _ = self._identify(_snapshot(fd, os.fstat(fd).st_size))
            attempts = self.ledger.failed_attempt(sha)
        except (OSError, EdiError):
            sha, attempts = "", self._retry_counts(work)
        delivered = bool(sha) and os.path.exists(self.path("outbound", f"{sha[:20]}.x12"))
        if attempts >= self.settings.max_attempts and not delivered:
            # (A file whose output already went out is never quarantined: it would end in both
            # outbound/ and rejected/. Only its last steps, ledger and archive, are left to retry.)
            try:
                identity = os.fstat(fd) if fd is not None else os.lstat(work)
                if sha:
                    # Recorded first: a ledger that cannot record it keeps the file here for a retry.
                    self.ledger.finish(sha, "quarantined", str(code))
                claim = os.path.basename(work).partition("__")[0]
                self._reject_work(work, identity, sha[:20] or claim, "QUARANTINED",
                                  message=f"{attempts} attempts failed with a temporary error ({code})")
                return
            except (OSError, EdiError):
                pass
        self._retry_at[work] = time.monotonic() + min(2 ** attempts, 300)
        self.log.warning("file.retry", error_code=str(code), attempt=attempts)

    def _retry_counts(self, work: str) -> int:
        key = f"attempts::{work}"
        self.counters.add(key)
        return self.counters.values[key]

    def retry_work(self, *, force: bool = False) -> None:
        now = time.monotonic()
        present = set()
        for entry in sorted(os.scandir(self.path("work")), key=lambda e: e.name):
            present.add(entry.path)
            settling = self._settling.get(entry.path)
            if settling is not None:
                try:
                    signature = _signature(os.lstat(entry.path))
                except FileNotFoundError:
                    continue
                if signature != settling.signature:
                    settling.signature, settling.since = signature, now
                elif force or now - settling.since >= self.settings.stable_for:
                    self.process(entry.path, recovering=True)
                continue
            due = self._retry_at.get(entry.path)
            if due is not None and (force or now >= due):
                del self._retry_at[entry.path]
                # A copy waiting for another watcher's lease was never processed here: never the original.
                self.process(entry.path, recovering=entry.path not in self._lease_waits)
        for tracked in (self._settling, self._retry_at, self._lease_waits):
            for path in [p for p in tracked if p not in present]:
                del tracked[path]

    # -- operations ------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        folders = {name: sum(1 for e in os.scandir(self.path(name)) if _counted(name, e.name))
                   for name in ("inbound", "work", "outbound", "held", "rejected", "archive")
                   if os.path.isdir(self.path(name))}
        return {"ledger": self.ledger.counts(), "folders": folders, "written": time.time(),
                "counters": {k: v for k, v in self.counters.values.items() if "::" not in k}}

    def write_metrics(self) -> None:
        """Best effort: a full disk or a ledger down must not stop the watcher over its metrics."""
        try:
            self._write_json(self.path("state", "metrics.json"), self.status())
        except (OSError, EdiError) as error:
            self.counters.add("metrics_error")
            self.log.warning("watch.metrics_failed", error_type=type(error).__name__)


class _Envelope:
    """The reader (``edi.x12``) fed a file's chunks, and its envelope segments handed to the envelope
    checker: the watcher asks the one place that knows ISA/GS/ST/SE/GE/IEA, not a count of its own."""

    # The checker's errors that say an interchange is not (yet) closed as its ISA declares: an
    # upload still being written, or cut short. Errors inside groups or transaction sets are the
    # content's, reported when the file is processed (CONTENT_ERROR), not a reason to wait.
    NOT_CLOSED = frozenset({"MISSING_IEA", "IEA01_COUNT", "IEA02_CONTROL"})

    def __init__(self, limits: Limits) -> None:
        self.reader = Reader(max_segment_length=limits.max_segment_length, max_elements=limits.max_elements)
        self.checker = EnvelopeChecker()
        self.isa: tuple[bytes, ...] = ()  # the elements of the first ISA, once read
        self._iea_numbers: set[int] = set()
        self._handlers = {b"ISA": self.checker.isa, b"GS": self.checker.gs, b"ST": self.checker.st,
                          b"SE": self.checker.se, b"GE": self.checker.ge, b"IEA": self.checker.iea}

    def feed(self, chunk: bytes) -> None:
        """A chunk of the input; ``b""`` ends it. Raises what the reader raises (``EdiError``)."""
        if chunk:
            self.reader.feed(chunk)
            self._hand_over(self.reader.segments())
            return
        self.reader.end()
        while segments := self.reader.segments():  # until empty: an error held back is raised then
            self._hand_over(segments)
        self.checker.finish()

    def _hand_over(self, segments: list[Segment]) -> None:
        for segment in segments:
            handler = self._handlers.get(segment.tag)
            if handler is None:
                continue
            # The ISA declares the element separator itself (its fourth byte).
            delimiters = self.reader.delimiters  # known from the ISA on, and only the ISA comes before it
            separator = segment.body[3:4] if segment.tag == b"ISA" or delimiters is None else delimiters.element
            elements = segment.body.split(separator)[1:]
            if segment.tag == b"ISA" and not self.isa:
                self.isa = tuple(elements)
            elif segment.tag == b"IEA":
                self._iea_numbers.add(segment.number)
            handler(segment, elements)

    def interchanges_complete(self) -> bool:
        """After the end: at least one interchange, each closed by an IEA that matches its ISA13
        and counts its groups (an IEA with a count that is no number, or without an ISA, too)."""
        return bool(self._iea_numbers) and not any(
            error.code in self.NOT_CLOSED or error.segment in self._iea_numbers for error in self.checker.errors)


def _with_end(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The chunks, then ``b""`` (the reader's end of input)."""
    yield from chunks
    yield b""
