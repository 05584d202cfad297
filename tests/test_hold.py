"""``fix --hold``: the claims left for a person go to a second 837P; every claim ends in one file."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edi.adapters.ig import pyx12_validate
from edi.adapters.rules_files import load_rule_book
from edi.rewrite import fix_bytes
from edi.split import Splitter, hold_bytes
from edi.synthetic import render
from edi.x12 import read_all
from tests.conftest import ROOT, run_cli
from tests.helpers import HEADER, claim, subscriber, x12
from tests.strategies import oncology_visits, styles
from tests.test_history import history_url, postgres_url  # noqa: F401 - the history store fixtures

BOOK = load_rule_book()
SAMPLE = ROOT / "fixtures" / "sample-oncology.x12"
CLAIM_ENDS = {b"HL", b"CLM", b"SE"}


def claims_of(data: bytes) -> list[bytes]:
    """Each claim's bytes as written: CLM up to the next HL, CLM or SE."""
    segments, _ = read_all(data)
    out: list[bytes] = []
    current: list[bytes] | None = None
    for segment in segments:
        if segment.tag in CLAIM_ENDS and current is not None:
            out.append(b"~".join(current))
            current = None
        if segment.tag == b"CLM":
            current = []
        if current is not None:
            current.append(segment.raw())
    return out


def merged_in_order(first: list[bytes], second: list[bytes], whole: list[bytes]) -> bool:
    """``whole`` is ``first`` and ``second`` interleaved, each kept in its order."""
    a, b = iter(first), iter(second)
    next_a, next_b = next(a, None), next(b, None)
    for item in whole:
        if item == next_a:
            next_a = next(a, None)
        elif item == next_b:
            next_b = next(b, None)
        else:
            return False
    return next_a is None and next_b is None


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(oncology_visits(max_visits=8), styles(), st.sampled_from(["error", "warning"]))
def test_split_property(visits, style, severity) -> None:
    """Random oncology files: every claim in exactly one output, byte for byte as ``fix`` writes
    it, in order; both outputs valid for pyx12; splitting the forward file again holds nothing."""
    data = b"".join(render(visits, style=style))
    fixed = fix_bytes(data, BOOK)
    forward, held, report = hold_bytes(data, BOOK, severity=severity)
    forward_claims, held_claims = claims_of(forward) if forward else [], claims_of(held) if held else []
    assert merged_in_order(forward_claims, held_claims, claims_of(fixed))
    assert len(held_claims) == report.held_claims
    assert len(forward_claims) + len(held_claims) == report.claims
    for output in (forward, held):
        if output:
            assert pyx12_validate(output) == (True, [])
    held_ids = {f.claim for f in report.findings if f.held}
    assert len(held_ids) == len(held_claims)
    # Idempotent: splitting an output again, holding the same claims, gives it back unchanged.
    assert split(forward, hold_all=False) == (forward, b"")
    assert split(held, hold_all=True) == (b"", held)


def split(data: bytes, *, hold_all: bool) -> tuple[bytes, bytes]:
    if not data:
        return b"", b""
    segments, _ = read_all(data)
    numbers = frozenset(n for n, s in enumerate(segments, start=1) if s.tag == b"CLM") if hold_all else frozenset()
    splitter = Splitter(numbers)
    forward, held = splitter.feed(data)
    rest = splitter.end()
    return forward + rest[0], held + rest[1]


def test_sample_holds_the_flagged_errors_with_a_recounted_envelope() -> None:
    _, held, report = hold_bytes(SAMPLE.read_bytes(), BOOK)
    held_ids = sorted({f.claim for f in report.findings if f.held})
    assert held_ids == sorted({f.claim for f in report.findings if f.severity == "error" and not f.applied})
    assert held_ids == ["PCN04200000031", "PCN04200000032"]  # PMP007 in a facility (v2: PMP003 only warns)
    segments, _ = read_all(held)
    tags = [s.tag for s in segments]
    assert tags.count(b"CLM") == 2
    se = next(s for s in segments if s.tag == b"SE")
    st_at = tags.index(b"ST")
    assert int(se.body.split(b"*")[1]) == tags.index(b"SE") - st_at + 1
    hl_numbers = [s.body.split(b"*")[1] for s in segments if s.tag == b"HL"]
    assert hl_numbers == [str(n).encode() for n in range(1, len(hl_numbers) + 1)]
    isa_in, isa_held = read_all(SAMPLE.read_bytes())[0][0], segments[0]
    assert isa_held.raw() == isa_in.raw()  # control numbers are the input's


def test_a_transaction_left_empty_is_omitted() -> None:
    """Two transaction sets; every claim of the first is held: the forward file has one ST."""
    pump_refill_in_facility = claim("C1", ("96521", "100", "20261102"), pos="22")
    clean = claim("C2", ("96413", "300", "20261102"))
    first = x12(*HEADER, *subscriber(2), *pump_refill_in_facility)
    second = x12(*HEADER, *subscriber(2, member="M2", last="ROE"), *clean).replace(b"0001", b"0002")
    # One interchange with both transaction sets and GE01 2.
    body_first = first.split(b"GE*")[0]
    body_second = second.split(b"ST*")[1].split(b"GE*")[0]
    data = body_first + b"ST*" + body_second + b"GE*2*1~\nIEA*1*000000001~\n"
    forward, held, report = hold_bytes(data, BOOK)
    assert report.errors == ()
    assert report.held_claims == 1
    assert forward.count(b"ST*837") == 1 and b"ST*837*0002" in forward and b"GE*1*1~" in forward
    assert held.count(b"ST*837") == 1 and b"ST*837*0001" in held and b"GE*1*1~" in held
    # The helper's envelope has its own pyx12 complaints (GS02 too short): none is added.
    allowed = ig_error_keys(data)
    assert ig_error_keys(forward) <= allowed
    assert ig_error_keys(held) <= allowed


def ig_error_keys(data: bytes) -> set:
    return {error.key() for error in pyx12_validate(data)[1]}


def test_nothing_held_writes_no_held_file(tmp_path: Path) -> None:
    clean = x12(*HEADER, *subscriber(2), *claim("C2", ("96413", "300", "20261102")))
    source = tmp_path / "in.x12"
    source.write_bytes(clean)
    result = run_cli("fix", str(source), "-o", str(tmp_path / "out.x12"), "--hold", str(tmp_path / "held.x12"),
                     "--report", str(tmp_path / "r.json"), "--exit-zero")
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "held.x12").exists()
    assert (tmp_path / "out.x12").read_bytes() == clean
    assert json.loads((tmp_path / "r.json").read_text())["held_claims"] == 0


def test_fix_hold_command_on_the_sample(tmp_path: Path) -> None:
    out, held, report = tmp_path / "out.x12", tmp_path / "held.x12", tmp_path / "r.json"
    result = run_cli("fix", str(SAMPLE), "-o", str(out), "--hold", str(held), "--report", str(report))
    assert result.returncode == 1  # flags are left for review
    record = json.loads(report.read_text())
    assert record["held_claims"] == 2
    assert {f["claim"] for f in record["findings"] if f["held"]} == {"PCN04200000031", "PCN04200000032"}
    assert len(claims_of(out.read_bytes())) == 38
    assert oct(held.stat().st_mode & 0o777) == "0o600"
    assert b"2 of 40 claim(s) held" in result.stderr
    warning = run_cli("fix", str(SAMPLE), "-o", str(out), "--hold", str(held), "--hold-severity", "warning")
    assert warning.returncode == 1
    with_warnings = {f["claim"] for f in record["findings"] if f["severity"] == "warning" and not f["applied"]}
    assert len(with_warnings) == 7  # PMP003 x3, PMP004 x2, PMP008/PMP010 on two claims
    assert len(claims_of(held.read_bytes())) == 9  # the seven claims with warnings join the two


def test_hold_refuses_standard_output_and_in_place(tmp_path: Path) -> None:
    source = tmp_path / "in.x12"
    source.write_bytes(SAMPLE.read_bytes())
    assert run_cli("fix", str(source), "-o", str(tmp_path / "o.x12"), "--hold", "-").returncode == 64
    assert run_cli("fix", str(source), "--in-place", "--hold", str(tmp_path / "h.x12")).returncode == 64
    assert run_cli("fix", str(source), "-o", str(tmp_path / "o.x12"), "--hold", str(source)).returncode == 64
    assert source.read_bytes() == SAMPLE.read_bytes() and not (tmp_path / "h.x12").exists()


def test_held_claims_are_not_recorded_in_the_history(tmp_path: Path, history_url: str) -> None:  # noqa: F811
    """The history records what is passed on: the held claim's pump initiation is not in it."""
    from datetime import date

    from edi.adapters.history import open_history
    from tests.test_history import CLINIC, KEY, cli, patient_file, write

    data = patient_file(claim("H1", ("96416", "400", "20261102"), pos="22"),  # PMP007 (error, flag): held
                        claim("F1", ("96416", "400", "20261120")))
    result = cli("fix", write(tmp_path, "f.x12", data), "-o", str(tmp_path / "f.out"), "--hold",
                 str(tmp_path / "f.held"), "--history", history_url)
    assert b"1 of 2 claim(s) held" in result.stderr, result.stderr
    store = open_history(history_url, env=KEY)
    key = "00431\x1fHISTMEMBERQ77\x1fHISTORYLASTNAMEQ\x1fJO\x1f19470203"
    store.prefetch([key])
    assert [(e.date, e.code) for e in store.events(key, CLINIC, date(2026, 1, 1), date(2026, 12, 31))] == [
        (date(2026, 11, 20), "96416")]
    store.close()
