"""The compiled fast path (edi/x12/_speedups.c) does what its Python reference does.

Both are called directly on the same random inputs: results, the handlers' calls and what they
leave in the table, and exceptions must be equal. Whole runs (``validate``, ``fix``) with the
extension and with ``EDI837_PURE_PYTHON=1`` must give the same bytes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edi.x12 import _speedups as speedups  # an install builds it: missing is a failure here
from edi.x12 import fastpath
from tests.conftest import ROOT, run_cli


def test_the_installed_package_runs_the_compiled_loops() -> None:
    assert fastpath.IMPLEMENTATION == "c"
    assert fastpath.split_uniform is speedups.split_uniform
    assert fastpath.dispatch is speedups.dispatch
    # A build older than its source tests yesterday's C: rebuild with the set-up's `pip install -e`.
    source = ROOT / "edi" / "x12" / "_speedups.c"
    if Path(speedups.__file__).parent == source.parent:
        assert Path(speedups.__file__).stat().st_mtime >= source.stat().st_mtime, "stale build: pip install -e '.[test]'"


SEPARATORS = [b"~", b"~\n", b"~\r\n", b"\n", b"\r\n", b"'\r", b"~~", b"\n\n"]
BODY_BYTES = st.sampled_from([b"A", b"Z", b"0", b"*", b":", b"~", b"\n", b"\r", b" ", b"\t", b"'", b"\x0b", b"\xff"])


def outcome(function, *args):
    try:
        return "ok", function(*args)
    except (ValueError, TypeError) as error:
        return "error", type(error)


@settings(max_examples=600, deadline=None)
@given(
    separator=st.sampled_from(SEPARATORS),
    bodies=st.lists(st.lists(BODY_BYTES, max_size=12).map(b"".join), max_size=20),
    prefix=st.binary(max_size=5),
    suffix=st.binary(max_size=5),
    base=st.integers(0, 1 << 40),
    closed=st.booleans(),
)
def test_split_uniform_equals_its_reference(separator, bodies, prefix, suffix, base, closed) -> None:
    run = separator.join(bodies) + (separator if closed else b"")
    data = prefix + run + suffix
    start, stop = len(prefix), len(prefix) + len(run)
    expected = outcome(fastpath.python_split_uniform, data, start, stop, separator, base)
    assert outcome(speedups.split_uniform, data, start, stop, separator, base) == expected
    term = separator[:1]
    blank_line = term.isspace() and b"" in bodies  # an empty body then starts with whitespace
    plain = term not in separator[1:] and not any(term in body or body[:1].isspace() for body in bodies)
    if closed and bodies and plain and not blank_line:
        assert expected[1] is not None
        assert expected[1][0] == bodies  # the reference itself: what was joined comes back


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=40), start=st.integers(-2, 45), stop=st.integers(-2, 45),
       separator=st.sampled_from([*SEPARATORS, b""]))
def test_split_uniform_equals_its_reference_on_any_region(data, start, stop, separator) -> None:
    assert (outcome(speedups.split_uniform, data, start, stop, separator, 7)
            == outcome(fastpath.python_split_uniform, data, start, stop, separator, 7))


def test_split_uniform_on_a_real_file() -> None:
    data = (ROOT / "fixtures" / "sample-oncology.x12").read_bytes()
    separator = b"~\n" if b"~\n" in data else b"~"
    start = data.index(separator) + len(separator)
    stop = data.rindex(separator) + len(separator)
    split = speedups.split_uniform(data, start, stop, separator, 1000)
    assert split is not None
    assert split == fastpath.python_split_uniform(data, start, stop, separator, 1000)
    bodies, offsets, longest = split
    assert [data[o - 1000: o - 1000 + len(b)] for b, o in zip(bodies, offsets)] == bodies
    assert longest == max(map(len, bodies))


class Recorder:
    """Handlers that write down their calls; some change the table as a resolver may."""

    def __init__(self, table: dict, resolutions: dict, fail_at: int | None) -> None:
        self.calls: list[tuple] = []
        self.table = table
        self.resolutions = resolutions
        self.fail_at = fail_at

    def handler(self, name: str):
        def handle(target, body, number, offset):
            assert target is self
            self.calls.append((name, body, number, offset))
            if self.fail_at is not None and len(self.calls) == self.fail_at:
                raise ValueError("handler failed")
        return handle

    def missing(self, target, body, number, offset):
        self.calls.append(("missing", body, number, offset))
        key = body[:4]
        resolved = self.resolutions.get(key)
        if resolved is not None and not key.startswith(b"Q"):  # some keys are never cached
            self.table[key] = resolved
        return resolved


def run_dispatch(function, bodies, table_names, resolution_names, fail_at):
    table: dict = {}
    resolutions: dict = {}
    recorder = Recorder(table, resolutions, fail_at)
    for key, name in table_names.items():
        table[key] = None if name is None else recorder.handler(name)
    for key, name in resolution_names.items():
        resolutions[key] = None if name is None else recorder.handler(name)
    offsets = [7 * index + 3 for index in range(len(bodies))]
    try:
        function(recorder, bodies, offsets, 41, table, recorder.missing)
        raised = None
    except ValueError as error:
        raised = str(error)
    named = {key: getattr(value, "__qualname__", value) for key, value in table.items()}
    return recorder.calls, sorted(named), raised


KEYS = st.lists(st.sampled_from(b"NMRQSVDXL1*3~"), max_size=5).map(bytes)


@settings(max_examples=500, deadline=None)
@given(
    bodies=st.lists(KEYS, max_size=60),
    table=st.dictionaries(KEYS.map(lambda b: b[:4]), st.sampled_from([None, "a", "b"]), max_size=8),
    resolutions=st.dictionaries(KEYS.map(lambda b: b[:4]), st.sampled_from([None, "c", "d"]), max_size=8),
    fail_at=st.one_of(st.none(), st.integers(1, 30)),
)
def test_dispatch_equals_its_reference(bodies, table, resolutions, fail_at) -> None:
    expected = run_dispatch(fastpath.python_dispatch, bodies, table, resolutions, fail_at)
    assert run_dispatch(speedups.dispatch, bodies, table, resolutions, fail_at) == expected


def test_dispatch_with_more_distinct_keys_than_its_small_table() -> None:
    bodies = [bytes((65 + i % 26, 65 + i // 26 % 26, 48 + i % 10)) + b"*X" for i in range(700)] * 2
    table = {body[:4]: ("a" if i % 3 else None) for i, body in enumerate(bodies[:500])}
    expected = run_dispatch(fastpath.python_dispatch, bodies, table, {}, None)
    assert run_dispatch(speedups.dispatch, bodies, table, {}, None) == expected
    assert len(expected[0]) > 700


def test_dispatch_refuses_what_is_not_a_batch() -> None:
    with pytest.raises(TypeError):
        speedups.dispatch(None, [b"AB*", "text"], [0, 1], 1, {}, lambda *_: None)
    with pytest.raises(ValueError, match="length"):
        speedups.dispatch(None, [b"AB*"], [], 1, {}, lambda *_: None)


def run_edi(args: list[str], *, pure: bool, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    """``run_cli`` with the compiled loops (``pure=False``) or the Python ones, no rule-file cache."""
    return run_cli(*args, env={"EDI837_CACHE_DIR": "off", "EDI837_PURE_PYTHON": "1" if pure else "0"}, cwd=cwd)


def test_whole_runs_are_the_same_with_and_without_the_extension(tmp_path: Path) -> None:
    from edi.synthetic import generate

    synthetic = tmp_path / "synthetic.x12"
    synthetic.write_bytes(b"".join(generate(300, seed=5, rule_breaking_share=0.3)))
    ragged = tmp_path / "ragged.x12"
    sample = (ROOT / "fixtures" / "sample-oncology.x12").read_bytes()
    ragged.write_bytes(sample.replace(b"~", b"~\r\n  ", 40))  # uniform runs and indented ones
    inputs = [str(ROOT / "fixtures" / "sample-oncology.x12"), str(synthetic), str(ragged)]
    probe = [sys.executable, "-c", "import edi.x12.fastpath as f; print(f.IMPLEMENTATION)"]
    assert subprocess.run(probe, env={**os.environ, "EDI837_PURE_PYTHON": "1"}, capture_output=True, text=True,
                          cwd=ROOT, check=True).stdout.strip() == "python"
    for path in inputs:
        compiled = run_edi(["validate", "--format", "json", path], pure=False, cwd=tmp_path)
        pure = run_edi(["validate", "--format", "json", path], pure=True, cwd=tmp_path)
        assert compiled.returncode == pure.returncode
        assert compiled.stdout == pure.stdout and compiled.stdout
        outputs = []
        for label, flag in (("c", False), ("py", True)):
            out = tmp_path / f"{Path(path).stem}-{label}.x12"
            done = run_edi(["fix", path, "-o", str(out)], pure=flag, cwd=tmp_path)
            outputs.append((done.returncode, out.read_bytes() if out.exists() else None))
        assert outputs[0] == outputs[1]


def test_the_c_file_compiles_without_warnings() -> None:
    """The C side's linter: gcc with the warnings that catch sign and width mistakes, as errors."""
    import shutil
    import sysconfig

    compiler = shutil.which("gcc") or shutil.which("cc")
    assert compiler is not None, "the install compiles the extension with gcc: it must be here"
    done = subprocess.run([compiler, "-fsyntax-only", "-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Wconversion",
                           "-Wno-unused-parameter", "-Werror", f"-I{sysconfig.get_paths()['include']}",
                           str(ROOT / "edi" / "x12" / "_speedups.c")], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_whole_corpus_reads_the_same_with_and_without_the_extension() -> None:
    """Every public file (both corpora, with their odd separators, line breaks and envelopes):
    the same JSON reports, and the same fixed bytes where a file can be fixed."""
    from edi.adapters import jobs
    from edi.adapters.rules_files import load_rule_book
    from edi.claims import walker
    from edi.x12 import reader
    from tests.conftest import require_corpus

    corpus = [str(f.path) for f in require_corpus()]
    compiled = run_edi(["validate", "--format", "json", *corpus], pure=False, cwd=ROOT)
    pure = run_edi(["validate", "--format", "json", *corpus], pure=True, cwd=ROOT)
    assert compiled.returncode == pure.returncode
    assert compiled.stdout == pure.stdout and compiled.stdout.count(b"\n") == len(corpus)

    options = jobs.JobOptions(book=load_rule_book())

    def fixed(path: str) -> tuple[str, bytes]:
        import io

        out = io.BytesIO()
        outcome = jobs.process(path, options, mode="rewrite", output=out)
        return type(outcome).__name__, out.getvalue()

    calls = {"split": 0, "dispatch": 0}

    def python_split(*args):
        calls["split"] += 1
        return fastpath.python_split_uniform(*args)

    def python_dispatch(*args):
        calls["dispatch"] += 1
        return fastpath.python_dispatch(*args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reader, "split_uniform", python_split)
        patch.setattr(walker, "dispatch", python_dispatch)
        in_python = [fixed(path) for path in corpus]
    assert calls["split"] > len(corpus) and calls["dispatch"] > len(corpus)  # the Python loops ran
    assert [fixed(path) for path in corpus] == in_python
    assert sum(1 for kind, data in in_python if kind == "Accepted" and data) > 20
