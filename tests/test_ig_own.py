"""edi837's own implementation-guide check (``edi.ig``): the compiled tables, agreement with pyx12
(the oracle) on both public corpora, each listed pyx12 defect with a minimal file, and every
acknowledgment accepted by pyx12."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from edi.adapters.ig import pyx12_check, pyx12_validate
from edi.adapters.ig_own import guide
from edi.adapters.ig_tables import TABLES_NAME, compile_tables, dump_tables
from edi.ig.acknowledge import AckIdentity, acknowledgment
from edi.ig.run import validate_chunks
from edi.ig.validator import Validator
from edi.synthetic import generate
from tests.conftest import ROOT, require_corpus, run_cli

GOOD = (ROOT / "fixtures" / "rules" / "PMP001" / "good.x12").read_bytes()
TODAY = ("20261201", "0300")
# pyx12 maps its internal codes into 999 codes this way (see edi.ig.validator's docstring).
NORMALISED = {("seg", "HL1"): ("ele", "7"), ("seg", "HL2"): ("ele", "7"), ("seg", "LX"): ("ele", "7"),
              ("seg", "SEG1"): ("ele", "6"), ("ele", "10"): ("ele", "I10")}


def own(data: bytes) -> Validator:
    return validate_chunks(guide(), [data])[0]


def checked(validator: Validator) -> bool:
    return any(st.checked for isa in validator.interchanges for group in isa.groups for st in group.transactions)


def clean(validator: Validator) -> bool:
    return not any(isa.notes or any(group.codes or any(st.codes or st.errors for st in group.transactions)
                                    for group in isa.groups) for isa in validator.interchanges)


def own_pairs(validator: Validator) -> set[tuple[int, str, str]]:
    pairs = set()
    for isa in validator.interchanges:
        for group in isa.groups:
            for st in group.transactions:
                for error in st.errors:
                    if error.code != "8":
                        pairs.add((error.number, "seg", error.code))
                    pairs |= {(error.number, "ele", problem.code) for problem in error.elements}
    return pairs


def pyx12_pairs(errors: list) -> set[tuple[int, str, str]]:
    """pyx12's (segment, IK3/IK4 code) pairs; its element-less IK3 8 becomes ``ele *`` (any
    element code at that segment matches it)."""
    pairs = set()
    for error in errors:
        if error.level not in ("segment", "element"):
            continue
        key = ("seg" if error.level == "segment" else "ele", error.code)
        key = NORMALISED.get(key, key)
        pairs.add((error.segment, "ele", "*") if key == ("seg", "8") else (error.segment, *key))
    return pairs


def as_pyx12_reads(data: bytes) -> bytes:
    """The file as pyx12 can read it. pyx12 reports an IK304 1 on every segment that follows
    spaces or tabs (the TR3's own examples are indented), and a final IEA that ends at the end
    of the file without its terminator is lost to it (TA1 023): defects shown on minimal files
    below; the comparison gives it the same segments without the indentation, terminated."""
    data = re.sub(rb"(\r?\n)[ \t]+", rb"\1", data)
    start = data.find(b"ISA")
    terminator = data[start + 105:start + 106] if start >= 0 else b"~"
    body = data.rstrip()
    return data if body.endswith(terminator) else body + terminator + b"\n"


def test_installed_tables_are_what_the_map_compiles_to() -> None:
    """The package data is rebuilt from the installed pyx12's map and compared byte for byte."""
    installed = (ROOT / "edi" / "ig" / TABLES_NAME).read_text(encoding="utf-8")
    rebuilt = compile_tables()
    assert dump_tables(rebuilt) == installed
    sv1 = next(node for node in rebuilt["nodes"] if node["id"] == "SV1")
    assert sv1["counter"].endswith("/2300/2400/SV1") and sv1["usage"] == "R" and sv1["max_use"] == 1
    assert sv1["elements"][0]["components"][0]["codes"] == ["ER", "HC", "IV", "WK"]
    clm = next(node for node in rebuilt["nodes"] if node["id"] == "CLM")
    assert clm["syntax"] == [] or all(note[0] in "PRCLE" for note in clm["syntax"])
    assert any(node["syntax"] == [["P", 8, 9], ["C", 11, 10]] for node in rebuilt["nodes"] if node["id"] == "NM1")
    assert "pos" in rebuilt["external"] and "11" in rebuilt["external"]["pos"]


def test_corpora_agree_with_pyx12_outside_the_listed_defects() -> None:
    """Every 837P file of both corpora pyx12 reads: the same verdict and the same (segment, code)
    pairs, except the listed pyx12 defects."""
    compared = 0
    for row in require_corpus():
        data = row.path.read_bytes()
        validator = own(data)
        oracle = pyx12_check([as_pyx12_reads(data)])
        if oracle.engine_error or not oracle.segments_seen or not checked(validator):
            continue
        compared += 1
        assert clean(validator) == oracle.ok, row.name
        mine, theirs = own_pairs(validator), pyx12_pairs(oracle.errors)
        anywhere = {number for number, _, code in theirs if code == "*"}
        # pyx12 repeats an unrecognized segment's IK304 1 on the segment after it (a defect).
        repeated = {(number + 1, "seg", "1") for number, kind, code in mine if (kind, code) == ("seg", "1")}
        assert theirs - {p for p in theirs if p[2] == "*"} - repeated <= mine, row.name
        assert {p for p in mine - theirs if p[0] not in anywhere} == set(), row.name
    assert compared >= 40


def test_indented_file_is_clean_where_pyx12_finds_an_error_per_segment() -> None:
    indented = GOOD.replace(b"~\n", b"~\n    ")
    assert clean(own(indented))
    ok, errors = pyx12_validate(indented)
    assert not ok and sum(e.code == "1" for e in errors) > 20


def test_newline_terminated_file_is_read_to_its_end() -> None:
    newline = GOOD.replace(b"~\n", b"\n")
    validator = own(newline)
    assert checked(validator) and clean(validator)
    assert pyx12_check([newline]).segments_seen == GOOD.count(b"~")


def test_a_004010_interchange_header_is_a_ta1_where_pyx12_reads_nothing() -> None:
    """The corpus's newline-terminated, indented 837 with ISA12 00402: pyx12 stops at segment 0
    (no control map for it), the former adapter reported IG_INCOMPLETE; it is a TA1 017."""
    data = GOOD.replace(b"~\n", b"\n    ").replace(b"*00501*", b"*00402*", 1)
    validator = own(data)
    assert validator.interchanges[0].notes == ["017"] and checked(validator)
    assert pyx12_check([data]).segments_seen == 0
    ack, _ = acknowledgment(validator, AckIdentity(), TODAY)
    assert ack is not None and b"*R*017~" in ack and pyx12_validate(ack)[0]


@pytest.mark.parametrize(("old", "new", "note"), [
    (b"*261101*1200*", b"*061315*1200*", "014"),  # ISA09: month 13
    (b"*0*T*:", b"*0*X*:", "020"),  # ISA15: neither P nor T
])
def test_isa_errors_are_a_ta1_with_a_valid_header(old: bytes, new: bytes, note: str) -> None:
    data = GOOD.replace(old, new, 1)
    validator = own(data)
    assert validator.interchanges[0].notes == [note]
    ack, _ = acknowledgment(validator, AckIdentity(), TODAY)
    assert ack is not None and f"*R*{note}~".encode() in ack
    assert b"061315" not in ack and b"*X*:" not in ack
    ok, errors = pyx12_validate(ack)
    assert ok and errors == []
    # pyx12's error tree (what its 999 is built from) has nothing to say about the ISA: the
    # former adapter wrote an accepting 999 and copied the bad ISA09 into it.
    assert pyx12_check([data]).errors == []


def test_an_acknowledgment_is_never_acknowledged(tmp_path: Path) -> None:
    ack, _ = acknowledgment(own(GOOD.replace(b"SV1*HC:96416*400.00", b"SV1*HC:96416*4Q7Z", 1)), AckIdentity(), TODAY)
    assert ack is not None
    again, reason = acknowledgment(own(ack), AckIdentity(), TODAY)
    assert again is None and "acknowledgment" in reason
    source = tmp_path / "ack.x12"
    source.write_bytes(ack)
    result = run_cli("validate", "--ig", "--ack", str(tmp_path / "out.x12"), "--format", "json", str(source))
    report = json.loads(result.stdout)
    assert "IG_ACK_NOT_WRITTEN" in {n["code"] for n in report["notes"]} and not (tmp_path / "out.x12").exists()


def test_configured_sender_and_control_number(tmp_path: Path) -> None:
    source = tmp_path / "in.x12"
    source.write_bytes(GOOD)
    target = tmp_path / "ack.x12"
    result = run_cli("validate", "--ig", "--ack", str(target), "--ack-sender", "ZZ:EDI837HOUSE",
                     "--ack-control", "77", str(source))
    assert result.returncode == 0, result.stderr
    isa, gs = target.read_text().splitlines()[:2]
    assert isa.split("*")[5:7] == ["ZZ", "EDI837HOUSE    "] and isa.split("*")[13] == "000000077"
    assert gs.split("*")[2] == "EDI837HOUSE" and gs.split("*")[6] == "77"
    assert pyx12_validate(target.read_bytes())[0]
    refused = run_cli("validate", "--ig", "--ack-sender", "ZZ:A*B", str(source))
    assert refused.returncode == 64 and b"QQ:ID" in refused.stderr


def test_other_transaction_sets_get_a_note_and_no_verdict() -> None:
    data = GOOD.replace(b"*005010X222A1", b"*005010X223A2").replace(b"ST*837", b"ST*837")
    validator = own(data)
    assert not checked(validator) and validator.unchecked_sets
    ack, reason = acknowledgment(validator, AckIdentity(), TODAY)
    assert ack is None and "837P" in reason


def test_every_acknowledgment_of_the_corpora_is_accepted_by_pyx12() -> None:
    written = 0
    for row in require_corpus():
        ack, _ = acknowledgment(own(row.path.read_bytes()), AckIdentity(), TODAY)
        if ack is None:
            continue
        written += 1
        ok, errors = pyx12_validate(ack)
        assert ok and errors == [], (row.name, errors)
        assert b" *" not in ack.split(b"\n", 2)[2], row.name  # no padding copied past the ISA
    assert written >= 40


@pytest.mark.parametrize(("old", "new", "pair"), [
    (b"SV1*HC:96416*400.00", b"SV1*HC:96416*4Q7Z", ("ele", "6")),  # R with a letter
    (b"SV1*HC:", b"SV1*QQ:", ("seg", "1")),  # not a qualifier of SV101-1: no place for the segment
    (b"DTP*472*D8*20261102", b"DTP*472*D8*20261302", ("ele", "8")),  # month 13
    (b"\nLX*1~", b"\nLX*1~\nLX*1~", ("ele", "7")),  # LX01 not counting the lines
    (b"\nBHT*0019*00*", b"\nBHT*0019*00**", ("ele", "1")),  # BHT03 required
])
def test_each_rule_fails_where_broken_and_passes_where_kept(old: bytes, new: bytes, pair: tuple[str, str]) -> None:
    assert clean(own(GOOD))
    broken = GOOD.replace(old, new, 1)
    assert broken != GOOD
    numbers = {number for number, *rest in own_pairs(own(broken)) if tuple(rest) == pair}
    assert numbers, pair
    assert not pyx12_validate(broken)[0]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hs.integers(min_value=1, max_value=6), hs.integers(min_value=0, max_value=10_000))
def test_synthetic_files_are_clean_for_both_engines(claims: int, seed: int) -> None:
    data = b"".join(generate(claims, seed=seed))
    validator = own(data)
    assert checked(validator) and clean(validator), own_pairs(validator)
    assert pyx12_validate(data)[0]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hs.data())
def test_single_element_mutations_give_the_same_error_class(data: hs.DataObject) -> None:
    """One element of a valid file replaced by a value of another kind: both engines flag the
    segment, with an element error."""
    lines = GOOD.split(b"~\n")
    index = data.draw(hs.integers(min_value=3, max_value=len(lines) - 5))
    fields = lines[index].split(b"*")
    if len(fields) < 2:
        return
    position = data.draw(hs.integers(min_value=1, max_value=len(fields) - 1))
    value = data.draw(hs.sampled_from([b"\x01", b"X" * 90, b"20261399", b"ZZZZ!"]))
    fields[position] = value
    lines[index] = b"*".join(fields)
    mutated = b"~\n".join(lines)
    mine = {number for number, kind, _ in own_pairs(own(mutated))}
    theirs = pyx12_check([mutated])
    pyx12_numbers = {e.segment for e in theirs.errors if e.level in ("segment", "element")}
    assert bool(mine) == (not theirs.ok)
    assert (index + 1 in mine) == (index + 1 in pyx12_numbers)


def test_the_watcher_writes_the_acknowledgment_of_every_file(tmp_path: Path) -> None:
    """``watch --acks``: a 999 for a processed file, a TA1 for one whose ISA is broken, each in
    acks/ (private), each accepted by pyx12; no acknowledgment of an acknowledgment."""
    from tests.test_watcher import drop, once, sha_id

    root = tmp_path / "root"
    good = b"".join(generate(3, seed=11))
    broken_isa = b"".join(generate(3, seed=12)).replace(b"*00501*", b"*00502*", 1)
    drop(root, "good.x12", good)
    drop(root, "isa.x12", broken_isa)
    once(root, "--acks", "--ack-sender", "ZZ:EDI837")
    acks = {p.name: p for p in (root / "acks").iterdir()}
    assert set(acks) == {f"{sha_id(good)}.999", f"{sha_id(broken_isa)}.ta1"}
    for path in acks.values():
        assert path.stat().st_mode & 0o077 == 0
        assert pyx12_validate(path.read_bytes())[0], path.name
        assert path.read_text().split("*")[6] == "EDI837         "
    assert "IK5*A~" in acks[f"{sha_id(good)}.999"].read_text()
    assert "*R*017~" in acks[f"{sha_id(broken_isa)}.ta1"].read_text()
    drop(root, "ack.x12", acks[f"{sha_id(good)}.999"].read_bytes())
    once(root, "--acks")
    assert len(list((root / "acks").iterdir())) == 2


def test_a_birth_date_is_checked_as_the_format_dmg01_names() -> None:
    """Found by the mutation property: DMG02 is an AN element whose date format is DMG01 (D8);
    pyx12 reports 20261399 there as an invalid date (IK403 8), and so must the own engine."""
    lines = GOOD.split(b"~\n")
    index = next(i for i, line in enumerate(lines) if line.startswith(b"DMG*D8*"))
    fields = lines[index].split(b"*")
    fields[2] = b"20261399"
    lines[index] = b"*".join(fields)
    mutated = b"~\n".join(lines)
    assert (index + 1, "ele", "8") in own_pairs(own(mutated))
    assert not pyx12_check([mutated]).ok
    assert own_pairs(own(GOOD)) == set()


def _element_value(rule: object, data: hs.DataObject) -> str:
    """A value for one element: one of its codes, a near miss, or a value of another kind."""
    from edi.ig.guide import CompositeRule

    if isinstance(rule, CompositeRule):
        parts = [_element_value(sub, data) for sub in rule.components[:data.draw(hs.integers(1, len(rule.components) + 1))]]
        return ":".join(parts)
    codes = sorted(getattr(rule, "codes", None) or ())[:12]
    kinds = ["", "A", "1", "12.50", "-5", "20261024", "20261399", "1200", "2460", "X" * 90, "A ", " A", "A:B", "\x01",
             "ZZZZ!", "abc", "9" * getattr(rule, "min", 1)]
    return data.draw(hs.sampled_from(codes + [f"{code} " for code in codes[:2]] + kinds))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hs.data())
def test_compiled_checkers_are_exactly_the_element_checks(data: hs.DataObject) -> None:
    """Per guide segment, the compiled checker says "clean" exactly when ``check_segment``
    finds no problem (it decides whether check_segment runs at all)."""
    from edi.ig.elements import check_segment, compile_checker

    nodes = [node for node in guide().nodes if not node.is_loop] + [guide().interchange_header]
    node = data.draw(hs.sampled_from(nodes))
    count = data.draw(hs.integers(min_value=0, max_value=len(node.elements) + 1))
    elements = [_element_value(node.elements[index], data) if index < len(node.elements) else "X"
                for index in range(count)]
    component = data.draw(hs.sampled_from([":", "^"]))
    assert compile_checker(node)(elements, component) == (not check_segment(node, elements, component)), elements


def test_the_input_is_read_as_it_is_checked() -> None:
    """The check streams: a chunk is checked before the next is read, so the input is never
    held whole (memory stays flat whatever the file's size). A reader error in the first chunk
    ends the check without reading another."""
    data = b"".join(generate(40, seed=5))
    lines = data.split(b"~\n")
    lines[30] = lines[30] + b"*" + b"X" * 400  # over the segment length limit below
    broken = b"~\n".join(lines)

    def source() -> Iterator[bytes]:
        yield broken[:8192]
        raise AssertionError("a chunk was asked for after the reader's error: the input was listed whole")

    validator, error = validate_chunks(guide(), source(), max_segment_length=256)
    assert error is not None and error.code == "SEGMENT_TOO_LONG" and checked(validator)
    chunks = [data[start:start + 4096] for start in range(0, len(data), 4096)]
    whole, _ = validate_chunks(guide(), [data])
    streamed, _ = validate_chunks(guide(), iter(chunks))
    assert clean(whole) and clean(streamed) and own_pairs(whole) == own_pairs(streamed) == set()
