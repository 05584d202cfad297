"""Fuzzing: any input gives a result or a typed edi837 error, never another exception.

Hypothesis drives the reader, the walker, the rules, the rewriter and the whole validate/fix
pipeline with mutated real files and random bytes; CI runs well over 10,000 inputs (the sum of
``max_examples`` below). ``bin/fuzz`` runs the same targets for longer (atheris when installed).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edi.adapters.rules_files import load_rule_book
from edi.claims import ClaimWalker
from edi.errors import EdiError, X12SyntaxError
from edi.pipeline import Limits, validate
from edi.rewrite import fix_bytes
from edi.rules.engine import RuleEngine
from edi.x12 import Reader, read_all, write_all
from tests.strategies import mutated_interchange

BOOK = load_rule_book()
SCALE = max(1, int(os.environ.get("EDI837_FUZZ_EXAMPLES", "11500")) // 11500)  # bin/fuzz --hypothesis


def fuzz_settings(examples: int) -> settings:
    return settings(max_examples=examples * SCALE, deadline=None, suppress_health_check=list(HealthCheck),
                    database=None)
LIMITS = Limits(max_segment_length=4096, max_elements=256)


def read_in_pieces(data: bytes, cuts: list[int]) -> list:
    reader = Reader(max_segment_length=LIMITS.max_segment_length, max_elements=LIMITS.max_elements)
    out = []
    position = 0
    for cut in cuts:
        reader.feed(data[position : position + cut])
        position += cut
        out += reader.segments()
    reader.feed(data[position:])
    reader.end()
    out += reader.segments()
    return out


@fuzz_settings(3000)
@given(mutated_interchange(), st.lists(st.integers(1, 300), max_size=8))
def test_reader_never_fails_untyped_and_round_trips(data: bytes, cuts: list[int]) -> None:
    try:
        segments, reader = read_all(data, max_segment_length=LIMITS.max_segment_length, max_elements=LIMITS.max_elements)
    except X12SyntaxError as error:
        assert error.code and error.segment is not None and error.offset is not None
        return
    assert write_all(segments, reader.trailer) == data
    assert read_in_pieces(data, cuts) == segments


@fuzz_settings(3000)
@given(mutated_interchange())
def test_walker_and_rules_never_fail_untyped(data: bytes) -> None:
    engine = RuleEngine(BOOK)
    report = validate([data], name="fuzz", engine=engine, limits=LIMITS)
    assert report.status in ("clean", "findings", "error")
    for error in report.errors:
        assert error.code
    walker = ClaimWalker()
    reader = Reader()
    reader.feed(data)
    reader.end()
    try:
        for batch in reader.batches():
            walker.walk_batch(batch)
    except X12SyntaxError:
        pass
    walker.finish()


@fuzz_settings(2500)
@given(mutated_interchange())
def test_rewriter_never_fails_untyped_and_is_idempotent(data: bytes) -> None:
    try:
        fixed = fix_bytes(data, BOOK)
    except EdiError:
        return
    assert fix_bytes(fixed, BOOK) == fixed


@fuzz_settings(2000)
@given(st.binary(max_size=600))
def test_random_bytes(data: bytes) -> None:
    report = validate([data], name="fuzz", engine=RuleEngine(BOOK), limits=LIMITS)
    assert report.errors or report.transactions == 0 or report.status in ("clean", "findings")


@fuzz_settings(1000)
@given(st.binary(max_size=200))
def test_random_bytes_after_a_valid_header(tail: bytes) -> None:
    head = b"ISA*00*          *00*          *ZZ*S              *ZZ*R              *261101*1200*^*00501*000000001*0*T*:~"
    report = validate([head + tail], name="fuzz", engine=RuleEngine(BOOK), limits=LIMITS)
    assert report.status in ("clean", "findings", "error")
