"""Memory stays flat in the long-running front ends (``serve``, ``watch``) and the core makes
no reference cycles, so nothing waits for the cyclic collector to be freed.

The RSS checks use a generous bound: a leak of the kind issue 13 reported (about 45 KB per
request) adds tens of megabytes over these runs, allocator noise a few.
"""

from __future__ import annotations

import gc
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from edi.adapters import jobs
from edi.adapters.rules_files import load_rule_book
from edi.synthetic import generate
from tests.conftest import ROOT
from tests.test_gateway import BAD, EDI, Server

RSS_GROWTH_BOUND = 12 * 1024 * 1024  # serve: 32 MB over 2,500 requests before the fix, under 1 after
WATCH_RSS_GROWTH_BOUND = 7 * 1024 * 1024  # watch: 13 MB over 320 files before the fix, about 2 after


def rss(pid: int) -> int:
    """Resident set size of a process, in bytes (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_checking_and_fixing_a_file_leaves_no_reference_cycles() -> None:
    """The walker, reader, index, engine and rewriter are freed by reference counting alone."""
    data = b"".join(generate(60, seed=3))
    options = jobs.JobOptions(book=load_rule_book())
    found = []
    was_enabled = gc.isenabled()
    try:
        for _ in range(2):  # the first run may create one-off module-level caches
            gc.collect()
            gc.disable()
            report, engine = jobs.check(lambda: iter([data]), options)
            out = io.BytesIO()
            jobs.pass_on("rewrite", lambda: iter([data]), out, report, engine, options)
            assert report.findings and out.getvalue() != data
            del report, engine, out
            found.append(gc.collect())
    finally:
        if was_enabled:
            gc.enable()
    assert found[-1] == 0


def test_long_running_commands_keep_the_collector_and_one_shot_commands_do_not() -> None:
    from edi.cli import tune_gc

    was_enabled = gc.isenabled()
    try:
        tune_gc("validate")
        assert not gc.isenabled()
        for command in ("serve", "watch"):
            tune_gc(command)
            assert gc.isenabled()
    finally:
        gc.unfreeze()
        if was_enabled:
            gc.enable()


def test_serve_memory_stays_flat_over_thousands_of_requests(tmp_path: Path) -> None:
    """The real server in one process (where ``edi837 serve`` itself runs the app)."""
    running = Server(tmp_path, "--workers", "1", "--threads", "2")
    try:
        expected = None
        with httpx.Client(timeout=30) as client:
            def burst(count: int) -> None:
                nonlocal expected
                for _ in range(count):
                    response = client.post(f"{running.url}/v1/preprocess?mode=rewrite", content=BAD, headers=EDI)
                    assert response.status_code == 200
                    expected = expected or response.content
                    assert response.content == expected

            burst(500)  # warm-up: caches, thread pool, allocator arenas
            before = rss(running.process.pid)
            burst(2500)
            after = rss(running.process.pid)
        assert after - before < RSS_GROWTH_BOUND, (before, after)
    finally:
        running.stop()


def test_watch_memory_stays_flat_over_hundreds_of_files(tmp_path: Path) -> None:
    environment = {**os.environ, "EDI837_HISTORY_KEY": "leak-test-secret-of-at-least-32-bytes", "PYTHONPATH": str(ROOT)}
    watcher = subprocess.Popen(
        [sys.executable, "-m", "edi", "watch", str(tmp_path), "--stable-for", "0", "--scan-interval", "0.02"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=environment)
    inbound = tmp_path / "inbound"
    dropped = 0

    def feed(count: int) -> None:
        nonlocal dropped
        for _ in range(count):
            dropped += 1
            temporary = inbound / f"upload-{dropped}.x12.part"  # a temp name: the watcher waits for the rename
            temporary.write_bytes(b"".join(generate(30, seed=1000 + dropped)))
            temporary.rename(inbound / f"upload-{dropped}.x12")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if len(list((tmp_path / "archive").glob("*"))) >= dropped:
                return
            time.sleep(0.05)
        raise AssertionError(f"the watcher archived {len(list((tmp_path / 'archive').glob('*')))} of {dropped}")

    try:
        deadline = time.monotonic() + 20
        while not inbound.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        feed(40)  # warm-up
        before = rss(watcher.pid)
        feed(320)
        after = rss(watcher.pid)
    finally:
        watcher.terminate()
        _, errors = watcher.communicate(timeout=20)
    assert b"Traceback" not in errors
    assert len(list((tmp_path / "outbound").glob("*.report.json"))) == dropped
    assert after - before < WATCH_RSS_GROWTH_BOUND, (before, after)
