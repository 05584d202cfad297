"""Hostile input: bounded time and memory, a clear error, never a crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT

ISA = b"ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *261101*1200*^*00501*000000001*0*T*:~\n"
LAUNCHER = (
    "import os,sys,time\n"
    "t=time.perf_counter(); pid=os.posix_spawn(sys.argv[1],sys.argv[1:],os.environ,"
    "file_actions=[(os.POSIX_SPAWN_OPEN,1,'/dev/null',os.O_WRONLY,0)])\n"
    "_,status,usage=os.wait4(pid,0)\n"
    "print(time.perf_counter()-t, usage.ru_maxrss, os.waitstatus_to_exitcode(status))\n"
)


def measured(*args: str) -> tuple[float, int, int]:
    """(seconds, peak RSS MB, exit code) of ``edi837 ARGS`` as its own process."""
    out = subprocess.run([sys.executable, "-S", "-c", LAUNCHER, sys.executable, "-m", "edi", *args],
                         capture_output=True, text=True, check=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    seconds, rss, code = out.stdout.split()
    return float(seconds), int(rss) // 1024, int(code)


def report_of(path: Path, *extra: str) -> dict:
    result = subprocess.run([sys.executable, "-m", "edi", "validate", "--format", "json", *extra, str(path)],
                            capture_output=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120, check=False)
    assert b"Traceback" not in result.stderr
    return json.loads(result.stdout)


def test_a_single_huge_segment(tmp_path: Path) -> None:
    path = tmp_path / "huge.x12"
    with open(path, "wb") as handle:
        handle.write(ISA + b"NTE*")
        block = b"A" * (1 << 20)
        handle.writelines(block for _ in range(64))
    seconds, rss, code = measured("validate", str(path))
    assert code == 65 and seconds < 10 and rss < 120
    assert report_of(path)["errors"][-1]["code"] == "SEGMENT_TOO_LONG"


def test_millions_of_elements(tmp_path: Path) -> None:
    path = tmp_path / "elements.x12"
    path.write_bytes(ISA + b"GS*HC~HI" + b"*A" * 3_000_000 + b"~GE*1*1~IEA*1*000000001~")
    seconds, rss, code = measured("validate", "--max-segment-length", "10000000", str(path))
    assert code == 65 and seconds < 10 and rss < 200
    assert report_of(path, "--max-segment-length", "10000000")["errors"][-1]["code"] == "TOO_MANY_ELEMENTS"
    assert report_of(path)["errors"][-1]["code"] == "SEGMENT_TOO_LONG"


def test_deep_hl_chain(tmp_path: Path) -> None:
    body = [b"GS*HC*S*R*20261101*1200*1*X*005010X222A1", b"ST*837*0001*005010X222A1", b"HL*1**20*1"]
    body += [b"HL*%d*%d*22*1" % (n, n - 1) for n in range(2, 200_002)]
    body += [b"SE*%d*0001" % (len(body)), b"GE*1*1", b"IEA*1*000000001"]
    path = tmp_path / "deep.x12"
    path.write_bytes(ISA + b"~\n".join(body) + b"~\n")
    seconds, rss, code = measured("validate", str(path))
    assert code in (0, 65) and seconds < 20 and rss < 150


def test_two_gigabyte_sparse_files(tmp_path: Path) -> None:
    zeros = tmp_path / "zeros.x12"
    with open(zeros, "wb") as handle:
        handle.truncate(2 * 1024**3)
    started = time.monotonic()
    assert report_of(zeros)["errors"][0]["code"] == "NOT_X12"
    headed = tmp_path / "headed.x12"
    with open(headed, "wb") as handle:
        handle.write(ISA)
        handle.truncate(2 * 1024**3)
    seconds, rss, code = measured("validate", str(headed))
    assert code == 65 and seconds < 10 and rss < 120
    assert report_of(headed)["errors"][-1]["code"] == "SEGMENT_TOO_LONG"
    assert time.monotonic() - started < 60
    watch_root = tmp_path / "watch"
    (watch_root / "inbound").mkdir(parents=True)
    os.rename(headed, watch_root / "inbound" / "big.x12")  # moved, not linked: a hard link is rejected as HARD_LINK
    result = subprocess.run([sys.executable, "-m", "edi", "watch", str(watch_root), "--once", "--stable-for", "0"],
                            cwd=ROOT, capture_output=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "EDI837_HISTORY_KEY": "k" * 32}, check=False)
    assert result.returncode == 0
    (reason,) = (watch_root / "rejected").glob("*.reason.json")
    assert json.loads(reason.read_text())["reason"] == "TOO_LARGE"


@pytest.mark.parametrize(("data", "code"), [
    (ISA.decode().encode("utf-16"), "UTF16"),
    (ISA.decode().encode("utf-16-le"), "UTF16"),
    (ISA.decode().encode("utf-16-be"), "UTF16"),
    (b"\x00\x00\x00\x00\x00\x00\x00\x00ISA", "NOT_X12"),
    (b"\xfd\xfc\xfb" * 100, "NOT_X12"),
])
def test_utf16_and_binary_are_refused(tmp_path: Path, data: bytes, code: str) -> None:
    path = tmp_path / "odd.x12"
    path.write_bytes(data)
    report = report_of(path)
    assert report["errors"][0]["code"] == code and report["status"] == "error"


def test_invalid_utf8_inside_elements_is_data(tmp_path: Path) -> None:
    from edi.synthetic import generate

    data = b"".join(generate(5, seed=2)).replace(b"SYNTHETIC WAY", b"SYNTH\xff\xfe\xc3(WAY")
    path = tmp_path / "latin.x12"
    path.write_bytes(data)
    report = report_of(path)
    assert report["errors"] == [] and report["claims"] == 5
