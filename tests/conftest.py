"""Shared fixtures: the public corpus, synthetic files, and running the CLI as a process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = ROOT.parent / "shared" / "fixtures-public"


def corpus_dir() -> Path:
    return Path(os.environ.get("EDI837_PUBLIC_FIXTURES", DEFAULT_CORPUS))


@dataclass(frozen=True)
class CorpusFile:
    path: Path
    role: str
    claims: int

    @property
    def name(self) -> str:
        return str(self.path.relative_to(corpus_dir()))


def load_corpus() -> list[CorpusFile]:
    """Every file listed in PROVENANCE.md, with its role and CLM count from the table."""
    folder = corpus_dir()
    provenance = folder / "PROVENANCE.md"
    if not provenance.exists():
        return []
    rows = []
    pattern = re.compile(r"^\| \d+ \| `([^`]+)` \| (P-ok\*?|P-bad|REJ) \|.*?\| (\d+/\d+/\d+(?: \(truncated\))?) \| (\d+)")
    for line in provenance.read_text(encoding="utf-8").splitlines():
        match = pattern.match(line)
        if match:
            rows.append(CorpusFile(path=folder / match.group(1), role=match.group(2), claims=int(match.group(4))))
    return rows


CORPUS = load_corpus()


def require_corpus() -> list[CorpusFile]:
    if not CORPUS:
        if os.environ.get("CI") == "true":
            pytest.fail(f"public corpus missing at {corpus_dir()} (set EDI837_PUBLIC_FIXTURES)")
        pytest.skip(f"public corpus not found at {corpus_dir()}")
    return CORPUS


def run_cli(*args: str, stdin: bytes | None = None, env: dict[str, str] | None = None,
            cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    """Run ``edi837`` as a separate process (the way users and the gateway run it)."""
    environment = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "edi", *args], input=stdin, capture_output=True,
        env=environment, cwd=cwd or ROOT, timeout=timeout, check=False,
    )


@pytest.fixture(scope="session")
def synthetic_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edi.synthetic import generate

    path = tmp_path_factory.mktemp("synth") / "synthetic-300.x12"
    path.write_bytes(b"".join(generate(300, seed=7)))
    return path
