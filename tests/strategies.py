"""All hypothesis strategies of the test suite, in one place."""

from __future__ import annotations

import string
from datetime import date, timedelta

from hypothesis import strategies as st

from edi.synthetic import PAYERS, LineSpec, Patient, Style, Visit

# Separators seen in real files (PROVENANCE.md) and the others X12 allows.
SEPARATOR_CHARS = "*~|^:<>!`_\\+{}"
LINE_BREAKS = ("", "\n", "\r\n", "\r")


@st.composite
def delimiters(draw: st.DrawFn) -> tuple[str, str, str, str]:
    element, component, repetition, terminator = draw(
        st.lists(st.sampled_from(SEPARATOR_CHARS), min_size=4, max_size=4, unique=True)
    )
    return element, component, repetition, terminator


VALUE_ALPHABET = string.ascii_uppercase + string.digits + " .-/#&"


def element_values(forbidden: str) -> st.SearchStrategy[str]:
    alphabet = "".join(c for c in VALUE_ALPHABET if c not in forbidden)
    return st.text(alphabet=alphabet, max_size=12)


@st.composite
def interchange(draw: st.DrawFn) -> tuple[bytes, list[bytes], tuple[str, str, str, str]]:
    """A syntactically readable interchange: a proper ISA then random segments.

    Returns the bytes, the segment bodies as written, and the delimiters.
    """
    element, component, repetition, terminator = draw(delimiters())
    line_break = draw(st.sampled_from(LINE_BREAKS))
    forbidden = element + component + repetition + terminator + "\r\n"
    isa = element.join((
        "ISA", "00", " " * 10, "00", " " * 10, "ZZ", "SENDER".ljust(15), "ZZ", "RECEIVER".ljust(15),
        "261101", "1200", repetition, "00501", "000000001", "0", "T", component,
    ))
    tags = st.sampled_from(["GS", "ST", "BHT", "NM1", "N3", "N4", "HL", "SBR", "CLM", "LX", "SV1", "DTP", "REF", "SE", "GE"])
    segments = draw(st.lists(
        st.tuples(tags, st.lists(element_values(forbidden), max_size=8)), min_size=1, max_size=30,
    ))
    bodies = [isa] + [element.join([tag, *values]) for tag, values in segments] + [element.join(["IEA", "1", "000000001"])]
    data = "".join(body + terminator + line_break for body in bodies)
    return data.encode("latin-1"), [b.encode("latin-1") for b in bodies], (element, component, repetition, terminator)


_NAMES = st.text(alphabet=string.ascii_uppercase, min_size=2, max_size=10)


@st.composite
def patients(draw: st.DrawFn) -> Patient:
    dependent = draw(st.booleans())
    birth = draw(st.dates(min_value=date(1930, 1, 1), max_value=date(2010, 12, 31)))
    return Patient(
        last_name=draw(_NAMES), first_name=draw(_NAMES),
        member_id=draw(st.text(alphabet=string.ascii_uppercase + string.digits, min_size=6, max_size=12)),
        birth_date=birth, sex=draw(st.sampled_from("FM")), payer=draw(st.integers(0, len(PAYERS) - 1)),
        dependent_of=(draw(_NAMES), draw(_NAMES), birth - timedelta(days=9000)) if dependent else None,
    )


ONCOLOGY_CODES = (
    "96413", "96415", "96416", "96417", "96409", "96411", "96521", "96522", "96523", "96365", "96366",
    "96374", "96360", "99213", "99214", "J9190", "J9065", "J9200", "E0781", "A4222", "96414", "96520",
    "96410", "96412", "96530", "G0359", "96425", "96401",
)


@st.composite
def line_specs(draw: st.DrawFn) -> LineSpec:
    return LineSpec(
        code=draw(st.sampled_from(ONCOLOGY_CODES)),
        units=draw(st.integers(1, 9)),
        modifiers=tuple(draw(st.lists(st.sampled_from(["59", "XE", "XS", "XU", "25", "JW"]), max_size=2, unique=True))),
        place_of_service=draw(st.sampled_from([None, None, None, "11", "22", "19"])),
    )


@st.composite
def oncology_visits(draw: st.DrawFn, max_visits: int = 12) -> list[Visit]:
    """Several visits per patient-day, several payers, dependents, deleted codes."""
    people = draw(st.lists(patients(), min_size=1, max_size=4))
    start = draw(st.dates(min_value=date(2004, 6, 1), max_value=date(2026, 10, 1)))
    visits = []
    for number in range(draw(st.integers(1, max_visits))):
        visits.append(Visit(
            patient=draw(st.sampled_from(people)),
            service_date=start + timedelta(days=draw(st.integers(0, 10))),
            lines=tuple(draw(st.lists(line_specs(), min_size=1, max_size=5))),
            claim_id=f"HYP{number:05d}",
            place_of_service=draw(st.sampled_from(["11", "11", "11", "22"])),
        ))
    return visits


def styles() -> st.SearchStrategy[Style]:
    return st.builds(
        Style,
        element=st.just("*"), component=st.sampled_from([":", ">", "<"]), repetition=st.just("^"),
        terminator=st.just("~"), line_break=st.sampled_from(["", "\n", "\r\n"]),
        claims_per_transaction=st.integers(1, 6),
    )


# -- fuzzing: mutations of real files -----------------------------------------------------------

def seed_files() -> list[bytes]:
    """The public corpus (when present), the rule examples and a synthetic file: the seeds."""

    from edi.synthetic import generate
    from tests.conftest import CORPUS, ROOT

    seeds = [f.path.read_bytes() for f in CORPUS if f.path.stat().st_size < 40_000]
    seeds += [p.read_bytes() for p in sorted((ROOT / "fixtures" / "rules").glob("*/bad.x12"))]
    seeds.append(b"".join(generate(12, seed=1)))
    return seeds or [b"ISA"]


SEEDS = seed_files()


@st.composite
def mutated_interchange(draw: st.DrawFn) -> bytes:
    """A seed file with a few mutations: truncation, byte flips, delimiter swaps, segments
    duplicated or dropped, random bytes spliced in."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["truncate", "flip", "swap", "duplicate", "drop", "splice", "insert_delimiter"]))
        if not data:
            break
        position = draw(st.integers(0, len(data) - 1))
        if kind == "truncate":
            del data[position:]
        elif kind == "flip":
            data[position] = draw(st.integers(0, 255))
        elif kind == "swap":
            old, new = draw(st.sampled_from([b"*", b"~", b":", b"^", b"\n"])), draw(st.sampled_from([b"*", b"~", b":", b"|", b"\n", b"\x00"]))
            data = bytearray(bytes(data).replace(old, new, draw(st.integers(1, 50))))
        elif kind in ("duplicate", "drop"):
            start = data.rfind(b"~", 0, position) + 1
            end = data.find(b"~", position)
            end = len(data) if end < 0 else end + 1
            segment = bytes(data[start:end])
            if kind == "duplicate":
                data[start:start] = segment * draw(st.integers(1, 3))
            else:
                del data[start:end]
        elif kind == "splice":
            data[position:position] = draw(st.binary(max_size=40))
        else:
            data[position:position] = draw(st.sampled_from([b"~", b"~~", b"*", b"ISA*", b"IEA*1*", b"SE*", b"HL*1**20*1~"]))
    return bytes(data)
