"""Soak: 500 uploads through two watchers that are SIGKILLed at random, as a night shift would see.

Some uploads are duplicates, some broken, some quarantined (a fault) and then resent, some stall
with the uploader's handle open and append a second interchange; symlinks and hard links point
outside ROOT. Afterwards every input is exactly once in outbound/ (by its content) or rejected/,
archive/ holds exactly what was processed, work/ is empty, every kept file is owner-only, and no
file outside ROOT was touched. Seeded: a failure reproduces with the same ``SEED``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import stat
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from tests.conftest import ROOT
from tests.test_watcher import KEY_ENV, once, sha_id, synthetic

SEED = int(os.environ.get("EDI837_SOAK_SEED", "14"))  # another seed: another night
WATCH_ARGS = ("--stable-for", "0.3", "--scan-interval", "0.05", "--incomplete-grace", "3", "--max-attempts", "3")


def bad_content(data: bytes) -> bytes:
    return data.replace(b"\nSE*", b"\nSE*1", 1)


# Where a restarted watcher may SIGKILL itself (EDI837_WATCH_CRASH_AT): the narrow windows that
# random kills from outside rarely hit.
CRASH_POINTS = ("after_claim", "after_lease", "after_output", "after_ledger", "after_link", "reject_midway")


class Watchers:
    """Two long-running watchers on one ROOT; ``kill`` SIGKILLs one and starts it again at once,
    half of the time primed to kill itself at a crash point; ``revive`` restarts those."""

    def __init__(self, root: Path, logs: Path, rng: random.Random) -> None:
        self.root, self.logs, self.rng = root, logs, rng
        self.env = {**os.environ, **KEY_ENV, "PYTHONPATH": str(ROOT)}
        self.started = 0
        self.crashing = True
        self.processes = [self._start(), self._start()]
        self.kills = 0
        self.crash_point_kills = 0

    def _start(self) -> subprocess.Popen[bytes]:
        self.started += 1
        env = dict(self.env)
        if self.crashing and self.rng.random() < 0.5:
            env["EDI837_WATCH_CRASH_AT"] = f"{self.rng.choice(CRASH_POINTS)}:{self.rng.randint(1, 6)}"
        log = open(self.logs / f"watcher-{self.started}.log", "wb")  # noqa: SIM115 - owned by the process
        process = subprocess.Popen([sys.executable, "-m", "edi", "watch", str(self.root), *WATCH_ARGS],
                                   stdout=log, stderr=log, env=env)
        log.close()
        return process

    def revive(self) -> None:
        for index, process in enumerate(self.processes):
            if process.poll() is not None:
                assert process.returncode == -signal.SIGKILL, (process.returncode, self.log_text())
                self.crash_point_kills += 1
                self.processes[index] = self._start()

    def kill(self) -> None:
        self.revive()
        index = self.rng.randrange(2)
        process = self.processes[index]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        if process.returncode == -signal.SIGKILL:
            self.kills += 1
        self.processes[index] = self._start()

    def calm(self) -> None:
        """The rest of the night: both killed once more and started without crash points."""
        self.revive()
        self.crashing = False
        for index, process in enumerate(self.processes):
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            self.kills += process.returncode == -signal.SIGKILL
            self.processes[index] = self._start()

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            process.wait(timeout=60)
            # -SIGTERM: stopped while still starting, before its handler was installed.
            assert process.returncode in (0, -signal.SIGTERM), (process.returncode, self.log_text())

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace")[-2000:] for p in self.logs.iterdir())


def state_of(path: Path) -> tuple[int, int, int, str]:
    info = path.stat()
    return (stat.S_IMODE(info.st_mode), info.st_size, info.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())


def test_soak_500_uploads_two_watchers_random_sigkills(tmp_path: Path) -> None:
    started = time.monotonic()
    rng = random.Random(SEED)
    root, outside, logs = tmp_path / "root", tmp_path / "outside", tmp_path / "logs"
    outside.mkdir()
    logs.mkdir()
    once(root)  # folders, ledger and history exist

    seeds = iter(range(20_000, 30_000))
    expected: dict[str, str] = {}  # name -> "processed" or the reject reason
    content: dict[str, bytes] = {}  # name -> the bytes that end up under that name
    uploads: list[tuple[str, bytes]] = []
    for n in range(365):
        data = synthetic(next(seeds), claims=rng.choice((1, 2, 3)))
        uploads.append((f"good-{n:03d}.x12", data))
        expected[f"good-{n:03d}.x12"] = "processed"
    for n in range(40):  # the same content again, under another name
        _, data = rng.choice(uploads[:365])
        uploads.append((f"copy-{n:03d}.x12", data))
        expected[f"copy-{n:03d}.x12"] = "processed"
    for n in range(25):
        uploads.append((f"broken-{n:03d}.x12", bad_content(synthetic(next(seeds), claims=2))))
        expected[f"broken-{n:03d}.x12"] = "CONTENT_ERROR"
    for n in range(10):
        uploads.append((f"notes-{n:03d}.txt", f"not an interchange, number {n}\n".encode()))
        expected[f"notes-{n:03d}.txt"] = "NOT_X12"
    for n in range(10):
        data = synthetic(next(seeds), claims=3)
        uploads.append((f"cut-{n:03d}.x12", data[: len(data) // 2]))
        expected[f"cut-{n:03d}.x12"] = "PREMATURE_EOF"

    # Quarantined first (a fault on every attempt), then resent with the same bytes under new names.
    quarantined = {f"q-{n:03d}.x12": synthetic(next(seeds), claims=2) for n in range(15)}
    for name, data in quarantined.items():
        (root / "inbound" / name).write_bytes(data)
    once(root, "--max-attempts", "1", env={"EDI837_FAULT": "raise:check.after_pass1"})
    for n, (name, data) in enumerate(quarantined.items()):
        expected[name] = "QUARANTINED"
        content[name] = data
        uploads.append((f"resend-{n:03d}.x12", data))
        expected[f"resend-{n:03d}.x12"] = "processed"

    # Stalled uploads: interchange 1, a pause longer than --stable-for with the handle open, interchange 2.
    stalled = [(f"stalled-{n:03d}.x12", synthetic(next(seeds), claims=2), synthetic(next(seeds), claims=2),
                rng.uniform(0.5, 1.5)) for n in range(10)]
    for name, first, second, _ in stalled:
        expected[name] = "processed"
        content[name] = first + second

    # Links to files outside ROOT: never followed, never touched.
    outside_files = {}
    for n in range(5):
        target = outside / f"secret-{n}.x12"
        target.write_bytes(synthetic(next(seeds), claims=2))
        target.chmod(0o644)
        outside_files[target] = None
    links = [(f"symlink-{n}.x12", "symlink", outside / f"secret-{n}.x12") for n in range(5)]
    links += [(f"hardlink-{n}.x12", "hardlink", outside / f"secret-{n}.x12") for n in range(5)]
    for name, kind, _ in links:
        expected[name] = "SYMLINK" if kind == "symlink" else "HARD_LINK"
    for target in outside_files:
        outside_files[target] = state_of(target)
    for name, data in uploads:
        content[name] = data
    inputs = len(uploads) + len(stalled) + len(quarantined) + len(links)
    assert inputs == 500

    rng.shuffle(uploads)
    inbound = root / "inbound"

    def upload_all() -> None:
        for number, (name, data) in enumerate(uploads):
            if number % 3:  # most clients upload under a temp name and rename, some write in place
                (inbound / f"{name}.filepart").write_bytes(data)
                os.rename(inbound / f"{name}.filepart", inbound / name)
            else:
                (inbound / name).write_bytes(data)
            if number % 25 == 0:
                time.sleep(0.3)
        for name, kind, target in links:
            if kind == "symlink":
                (inbound / name).symlink_to(target)
            else:
                os.link(target, inbound / name)

    def stall(name: str, first: bytes, second: bytes, pause: float) -> None:
        with open(inbound / name, "wb") as handle:
            handle.write(first)
            handle.flush()
            time.sleep(pause)
            handle.write(second)

    watchers = Watchers(root, logs, rng)
    threads = [threading.Thread(target=upload_all)]
    threads += [threading.Thread(target=stall, args=item) for item in stalled]
    for thread in threads:
        thread.start()
    try:
        kill_until = time.monotonic() + 25
        while time.monotonic() < kill_until or any(t.is_alive() for t in threads):
            time.sleep(rng.uniform(0.3, 1.2))
            watchers.kill()
        for thread in threads:
            thread.join(timeout=60)
        watchers.calm()

        def settled() -> bool:
            rejected = sum(1 for p in (root / "rejected").iterdir() if not p.name.endswith(".json"))
            archived = sum(1 for _ in (root / "archive").iterdir())
            return not any(inbound.iterdir()) and not any((root / "work").iterdir()) and rejected + archived == inputs

        deadline = time.monotonic() + 60
        while not settled() and time.monotonic() < deadline:
            watchers.revive()
            time.sleep(0.2)
    finally:
        watchers.stop()
    final = once(root, "--incomplete-grace", "3")
    assert final.returncode == 0
    duration = time.monotonic() - started

    # Every input exactly once: archived (processed, or a duplicate of processed content) or rejected.
    archive = {p.name: p for p in (root / "archive").iterdir()}
    rejected = {p.name: p for p in (root / "rejected").iterdir() if not p.name.endswith(".reason.json")}
    reasons = {p.name for p in (root / "rejected").iterdir() if p.name.endswith(".reason.json")}
    assert reasons == {f"{name}.reason.json" for name in rejected}
    archived_names = Counter(name.split("__", 1)[1].removeprefix("dup__") for name in archive)
    rejected_names = Counter(name.split("__", 1)[1] for name in rejected)
    outcomes = Counter()
    for name, want in expected.items():
        if want == "processed":
            assert (archived_names[name], rejected_names[name]) == (1, 0), (name, want)
        else:
            assert (archived_names[name], rejected_names[name]) == (0, 1), (name, want)
            (path,) = [p for n, p in rejected.items() if n.split("__", 1)[1] == name]
            assert json.loads(Path(f"{path}.reason.json").read_text())["reason"] == want, name
        outcomes[want] += 1
    assert sum(archived_names.values()) + sum(rejected_names.values()) == inputs

    # archive/ holds exactly what was processed: each file's bytes are its content id, one original
    # per content, and outbound/ has exactly those contents.
    processed = {sha_id(content[name]) for name, want in expected.items() if want == "processed"}
    copies = Counter(sha_id(content[name]) for name, want in expected.items() if want == "processed")
    for name, path in archive.items():
        assert sha_id(path.read_bytes()) == name.split("__", 1)[0], name
    originals = Counter(name.split("__", 1)[0] for name in archive if not name.split("__", 1)[1].startswith("dup__"))
    assert originals == Counter(dict.fromkeys(processed, 1))
    assert Counter(name.split("__", 1)[0] for name in archive) == copies
    outbound = sorted(p.name for p in (root / "outbound").iterdir())
    assert outbound == sorted([f"{i}.x12" for i in processed] + [f"{i}.report.json" for i in processed])

    # Nothing left behind, everything kept private, nothing outside ROOT touched.
    assert list(inbound.iterdir()) == [] and list((root / "work").iterdir()) == []
    assert not [p for p in root.rglob("*.tmp")]
    for folder in ("outbound", "rejected", "archive", "state"):
        for path in (root / folder).iterdir():
            if path.is_symlink() or path.name.split("__", 1)[-1].startswith("hardlink-"):
                continue  # moved by name, never touched: the inode is someone else's
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, (path, oct(path.stat().st_mode))
    for target, before in outside_files.items():
        assert state_of(target) == before, target

    figures = {"inputs": inputs, "kills": watchers.kills, "crash_point_kills": watchers.crash_point_kills,
               "watcher_starts": watchers.started,
               "duration_s": round(duration, 1), "outcomes": dict(sorted(outcomes.items())),
               "outbound_contents": len(processed), "archive_files": len(archive)}
    print(json.dumps(figures, sort_keys=True))
    assert watchers.kills >= 15
    assert duration < 120, figures
