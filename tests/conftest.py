"""Shared fixtures: the public corpus, synthetic files, and running the CLI as a process."""

from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

# The parsed rule files are cached between runs (edi.adapters.rules_cache): the suite's processes
# share a cache of their own, not the user's, removed when the process that made it ends.
if "EDI837_CACHE_DIR" not in os.environ:
    os.environ["EDI837_CACHE_DIR"] = tempfile.mkdtemp(prefix="edi837-test-cache-")
    atexit.register(shutil.rmtree, os.environ["EDI837_CACHE_DIR"], ignore_errors=True)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPORA = (ROOT.parent / "shared" / "fixtures-public", ROOT.parent / "shared" / "fixtures-public-2")


def corpus_dirs() -> tuple[Path, ...]:
    """The public corpora: both shared folders, or ``$EDI837_PUBLIC_FIXTURES`` (os.pathsep-separated)."""
    configured = os.environ.get("EDI837_PUBLIC_FIXTURES")
    if configured:
        return tuple(Path(part) for part in configured.split(os.pathsep) if part)
    return DEFAULT_CORPORA


@dataclass(frozen=True)
class CorpusFile:
    path: Path
    role: str
    claims: int
    corpus: str

    @property
    def name(self) -> str:
        return f"{self.corpus}/{self.relative}"

    @property
    def relative(self) -> str:
        for folder in corpus_dirs():
            if self.path.is_relative_to(folder):
                return self.path.relative_to(folder).as_posix()
        return self.path.name


def load_corpus_folder(folder: Path) -> list[CorpusFile]:
    """Every file listed in one folder's PROVENANCE.md, with its role and CLM count from the table."""
    provenance = folder / "PROVENANCE.md"
    if not provenance.exists():
        return []
    rows = []
    pattern = re.compile(r"^\| \d+ \| `([^`]+)` \| (P-ok\*?|P-bad|REJ) \|.*?\| (\d+/\d+/\d+(?: \(truncated\))?) \| (\d+)")
    for line in provenance.read_text(encoding="utf-8").splitlines():
        match = pattern.match(line)
        if match:
            rows.append(CorpusFile(path=folder / match.group(1), role=match.group(2),
                                   claims=int(match.group(4)), corpus=folder.name))
    return rows


def load_corpus() -> list[CorpusFile]:
    """Both public corpora, in folder order; a missing folder contributes nothing."""
    return [row for folder in corpus_dirs() for row in load_corpus_folder(folder)]


CORPUS = load_corpus()


def require_corpus() -> list[CorpusFile]:
    """The corpus rows; in CI every configured folder must be there (a missing one fails, never skips)."""
    missing = [folder for folder in corpus_dirs() if not (folder / "PROVENANCE.md").exists()]
    if missing or not CORPUS:
        if os.environ.get("CI") == "true":
            pytest.fail(f"public corpus missing at {missing} (set EDI837_PUBLIC_FIXTURES)")
        pytest.skip(f"public corpus not found at {missing}")
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
