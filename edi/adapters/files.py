"""Reading inputs and writing outputs: the only file I/O of the CLI path.

Outputs are written atomically: a temporary file in the target folder (mode 0600, not
world-readable: claim files are PHI), fsync, rename over the final name, fsync of the folder. A
reader of the folder sees either the old file or the whole new one, never a partial write.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Iterator
from typing import BinaryIO, Self

from edi.errors import EdiError, InputError, OutputError
from edi.pipeline import CHUNK_SIZE

OUTPUT_MODE = 0o600


class Spool:
    """Standard input copied to a temp file that never has a name (``O_TMPFILE`` on Linux, else
    unlinked at once): the front ends read their input twice, and standard input is PHI, so
    nothing of it may stay on disk however the process ends (SIGTERM, SIGKILL, a crash).

    Calling the spool reads it again from the start: it is a ``jobs.Source``."""

    def __init__(self) -> None:
        import tempfile  # only when spooling: keeps `validate` start-up short

        self._file = tempfile.TemporaryFile(prefix="edi837-stdin-")  # noqa: SIM115 - owned and closed by the spool
        os.fchmod(self._file.fileno(), OUTPUT_MODE)
        self.size = 0
        try:
            for chunk in read_chunks("-"):
                self._file.write(chunk)
                self.size += len(chunk)
            self._file.flush()
        except OSError as error:  # a full temp folder: nothing was processed, say so (exit 74)
            self._file.close()
            raise OutputError(f"cannot spool standard input ({error.strerror or 'error'})",
                              code="UNWRITABLE") from None
        except BaseException:
            self._file.close()
            raise

    def __call__(self, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        # pread, not the shared file position: two readers of one spool never disturb each other.
        offset = 0
        while chunk := os.pread(self._file.fileno(), chunk_size, offset):
            offset += len(chunk)
            yield chunk

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def read_source(source: str | Spool) -> Iterator[bytes]:
    """The bytes of a path (``-``: standard input) or of a spool."""
    return read_chunks(source) if isinstance(source, str) else source()


def input_size(path: str | Spool) -> int | None:
    if isinstance(path, Spool):
        return path.size
    if path == "-":
        return None
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def read_chunks(path: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """The file's bytes in blocks; ``-`` is standard input. Raises ``InputError``."""
    if path == "-":
        stream = sys.stdin.buffer
        while chunk := stream.read(chunk_size):
            yield chunk
        return
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below, generator-owned
    except OSError as error:
        raise InputError(f"cannot open input ({error.strerror or 'unreadable'})", code="UNREADABLE") from None
    with handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise InputError("input is not a regular file", code="UNREADABLE")
        try:
            while chunk := handle.read(chunk_size):
                yield chunk
        except OSError as error:
            raise InputError(f"cannot read input ({error.strerror or 'read error'})", code="UNREADABLE") from None


def file_identity(path: str, descriptor: int | None = None) -> tuple[object, ...] | None:
    """What names one file: (device, inode) when it exists, so hard links, symbolic links and other
    spellings of one file agree; else the resolved path. ``-`` stands for ``descriptor`` (standard
    input or output), which counts only when it is a regular file (a pipe names no file)."""
    if path == "-":
        if descriptor is None:
            return None
        try:
            status = os.fstat(descriptor)
        except OSError:
            return None
        return ("inode", status.st_dev, status.st_ino) if stat.S_ISREG(status.st_mode) else None
    try:
        status = os.stat(path)
    except OSError:
        return ("path", os.path.realpath(path))
    return ("inode", status.st_dev, status.st_ino)


def first_clash(inputs: dict[str, tuple[object, ...] | None],
                outputs: dict[str, tuple[object, ...] | None]) -> tuple[str, str] | None:
    """(output label, label of the input or earlier output it names), or None when all differ.

    Labels are option names (``--report``, ``IN``): file names are not shown, they may be PHI."""
    seen = {identity: label for label, identity in inputs.items() if identity is not None}
    for label, identity in outputs.items():
        if identity is None:
            continue
        if identity in seen:
            return label, seen[identity]
        seen[identity] = label
    return None


@contextlib.contextmanager
def atomic_output(path: str) -> Iterator[BinaryIO]:
    """Write to a temp file beside ``path``; on success fsync and rename it into place.

    ``-`` writes to standard output (no atomicity possible there). On any error the temp file
    is removed and ``OutputError`` raised; an existing file at ``path`` is left as it was.
    """
    if path == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    import tempfile  # only when writing: keeps `validate` start-up short
    from pathlib import Path

    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    stem = temp_stem(target.name, folder)
    _remove_stale_temps(folder, stem)
    try:
        fd, temp_name = tempfile.mkstemp(prefix=f".{stem}.{os.getpid()}.", suffix=".tmp", dir=folder)
    except OSError as error:
        raise OutputError(f"cannot create output ({error.strerror or 'error'})", code="UNWRITABLE") from None
    try:
        os.fchmod(fd, OUTPUT_MODE)
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, target)
        fsync_folder(folder)
    except EdiError:  # typed already (e.g. a history store down while writing): keep its meaning
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise OutputError(f"cannot write output ({error.strerror or 'error'})", code="UNWRITABLE") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise


# "." + stem + "." + pid (at most 7 digits on Linux) + "." + mkstemp's 8 characters + ".tmp"
TEMP_NAME_OVERHEAD = 1 + 1 + 7 + 1 + 8 + 4


def temp_stem(name: str, folder: os.PathLike[str] | str) -> str:
    """The stem of the temp names of ``name``: the name itself when the temp name fits the
    folder's NAME_MAX, else the name cut to fit plus ``~`` and 8 hex digits of its SHA-256 (so
    two long names with one beginning still get their own temp names)."""
    try:
        name_max = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    budget = name_max - TEMP_NAME_OVERHEAD
    encoded = os.fsencode(name)
    if len(encoded) <= budget:
        return name
    import hashlib

    digest = hashlib.sha256(encoded).hexdigest()[:8]
    stem = name[: budget - 9]
    while len(os.fsencode(stem)) > budget - 9:  # cut whole characters, never half a UTF-8 sequence
        stem = stem[:-1]
    return f"{stem}~{digest}"


def _remove_stale_temps(folder: os.PathLike[str], stem: str) -> None:
    """Temp files of this target left by a killed process (its pid is in the name) go away."""
    prefix = f".{stem}."
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    for entry in entries:
        if not (entry.startswith(prefix) and entry.endswith(".tmp")):
            continue
        pid = temp_pid(entry)
        if pid is None or pid == os.getpid():
            continue
        with contextlib.suppress(OSError):
            path = os.path.join(folder, entry)
            if not temp_writer_alive(pid, os.stat(path).st_mtime):
                os.unlink(path)


def temp_pid(name: str) -> int | None:
    """The writer's pid in a temp name of ``atomic_output`` (".<target>.<pid>.<random>.tmp")."""
    if not (name.startswith(".") and name.endswith(".tmp")):
        return None
    parts = name[1:-4].rsplit(".", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def temp_writer_alive(pid: int, written_at: float) -> bool:
    """Whether the process that wrote a temp file (last at ``written_at``) may still be writing
    it: a process with its pid that started before then. One started later only got the pid again
    (pids wrap in minutes on a busy host)."""
    if not process_alive(pid):
        return False
    started = process_started_at(pid)
    return started is None or started <= written_at + 1.0


def process_started_at(pid: int) -> float | None:
    """When a process of this host started (epoch seconds), from /proc; None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            ticks = int(handle.read().rsplit(b")", 1)[1].split()[19])
        with open("/proc/stat", "rb") as handle:
            boot = next(int(line.split()[1]) for line in handle if line.startswith(b"btime "))
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def process_alive(pid: int) -> bool:
    """Whether a process of this host has that pid (someone else's counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fsync_folder(folder: os.PathLike[str] | str) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: str, data: bytes) -> None:
    with atomic_output(path) as handle:
        handle.write(data)


class OutputIfWritten:
    """An atomic output (``atomic_output``) created at its first write only: the held-claim
    split writes a file only when it holds a claim. As a context manager: on success the file
    (if any) is renamed into place; on an error nothing is left."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.written = False
        self._stack = contextlib.ExitStack()
        self._handle: BinaryIO | None = None

    def write(self, data: bytes) -> int:
        if self._handle is None:
            self._handle = self._stack.enter_context(atomic_output(self.path))
            self.written = True
        return self._handle.write(data)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: object) -> None:
        self._stack.__exit__(kind, error, trace)  # type: ignore[arg-type]
