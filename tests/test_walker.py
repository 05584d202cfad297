"""The 837P claim model: values the walker yields."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from tests.helpers import HEADER, claim, dependent, subscriber, walk, x12


def test_claim_values() -> None:
    data = x12(*HEADER, *subscriber(filing="MB", member="M77", payer="00431"),
               *claim("PCN1", ("96416:59:XS", "1", "20261101"), ("J9190", "3", "20261101"), pos="11"))
    (c,), _ = walk(data)
    assert c.claim_id == "PCN1"
    assert c.total_charge == Decimal("400.00")
    assert (c.place_of_service, c.frequency_code, c.filing_indicator, c.payer_id) == ("11", "1", "MB", "00431")
    assert c.billing_npi == "1234567893"
    assert c.patient.subscriber_id == "M77" and not c.patient.is_dependent
    assert (c.patient.last_name, c.patient.first_name, c.patient.birth_date) == ("DOE", "JO", "19500101")
    first, second = c.lines
    assert (first.lx, first.qualifier, first.procedure_code, first.modifiers) == (1, "HC", "96416", ("59", "XS"))
    assert (first.charge, first.units, first.service_date) == (Decimal("100.00"), Decimal(1), date(2026, 11, 1))
    assert second.procedure_code == "J9190" and second.units == Decimal(3)
    assert data[first.offset :].startswith(b"SV1*HC:96416")
    assert data[c.offset :].startswith(b"CLM*PCN1")
    # LX..DTP of line 1, then line 2 runs to the segment before SE.
    assert (first.first_segment, first.segment, first.last_segment) == (first.segment - 1, first.segment, first.segment + 1)
    assert second.last_segment == c.last_segment


def test_dependent_is_the_patient_not_the_subscriber() -> None:
    data = x12(*HEADER, *subscriber(member="SHARED", children=True, filing="CI"), *dependent(3, 2, first="KID"),
               *claim("D1", ("96413", "1", "20261101")),
               *subscriber(4, member="SHARED", filing="CI"), *claim("S1", ("96413", "1", "20261101")))
    kid, parent = walk(data)[0]
    assert kid.patient.is_dependent and kid.patient.first_name == "KID" and kid.patient.birth_date == "20100101"
    assert kid.patient.subscriber_id == parent.patient.subscriber_id == "SHARED"
    assert kid.patient.patient_key() != parent.patient.patient_key()
    assert kid.filing_indicator == "CI"


def test_rd8_range_and_line_place_of_service() -> None:
    data = x12(*HEADER, *subscriber(), "CLM*R1*100***11:B:1*Y*A*Y*Y", "LX*1", "SV1*HC:96521*100*UN*1*22**1",
               "DTP*472*RD8*20261101-20261103")
    (c,), walker = walk(data)
    line = c.lines[0]
    assert (line.service_date, line.service_date_end, line.place_of_service) == (date(2026, 11, 1), date(2026, 11, 3), "22")
    assert walker.errors == []


def test_other_payer_loops_do_not_overwrite_the_subscriber() -> None:
    """2320/2330A NM1*IL and NM1*PR belong to the other payer, not to 2010BA/2010BB."""
    data = x12(*HEADER, *subscriber(member="MAIN", payer="P1"), "CLM*O1*100***11:B:1*Y*A*Y*Y",
               "SBR*S*18*******CI", "OI***Y*P**Y", "NM1*IL*1*OTHER*PERSON****MI*OTHERID", "NM1*PR*2*OTHERPAYER*****PI*P2",
               "LX*1", "SV1*HC:96413*100*UN*1***1", "DTP*472*D8*20261101")
    (c,), _walker = walk(data)
    assert (c.patient.subscriber_id, c.payer_id, c.filing_indicator) == ("MAIN", "P1", "MB")
    assert c.lines[0].procedure_code == "96413"


def test_repr_of_values_hides_phi() -> None:
    data = x12(*HEADER, *subscriber(last="SECRETLAST", member="SECRETID"), *claim("SECRETCLAIM", ("96413", "1", "20261101")))
    (c,), _ = walk(data)
    text = repr(c) + repr(c.patient) + repr(c.lines)
    for secret in ("SECRETLAST", "SECRETID", "SECRETCLAIM", "2026"):
        assert secret not in text


def test_walker_memory_does_not_hold_claims(synthetic_file) -> None:
    """Claims are handed out as they close; the walker keeps none of them."""
    from edi.claims import ClaimWalker
    from edi.x12 import Reader

    reader, walker = Reader(), ClaimWalker()
    reader.feed(synthetic_file.read_bytes())
    reader.end()
    count = sum(1 for _ in walker.walk(reader.segments()))
    count += sum(1 for _ in walker.finish())
    assert count == walker.claims == 300
    assert walker._done == [] and walker._claim is None


def test_fields_getter_reads_by_name_and_refuses_unknown_names() -> None:
    """Hot loops read values by declared names, resolved once to positions."""
    from edi.claims.model import ServiceLine, fields_getter
    data = x12(*HEADER, *subscriber(), *claim("N1", ("96416:59", "2", "20261101")))
    (c,), _ = walk(data)
    line = c.lines[0]
    assert fields_getter(ServiceLine, "procedure_code", "units")(line) == (line.procedure_code, line.units)
    with pytest.raises(AttributeError, match="no field 'code'"):
        fields_getter(ServiceLine, "code")


def test_transaction_spans_locate_se01() -> None:
    """The envelope records each transaction set's ST, SE and the byte range of SE01."""
    data = x12(*HEADER, *subscriber(), *claim("N1", ("96416", "1", "20261101")))
    _, walker = walk(data)
    (span,) = walker.envelope.spans
    assert span.se - span.st + 1 == int(data[span.se01_start : span.se01_end])
    assert data[span.se01_start - 3 : span.se01_start] == b"SE*"


def test_a_walked_walker_is_freed_by_reference_counting_alone() -> None:
    """The walker holds no reference to itself (no bound methods in its tables): no cycle."""
    import gc
    import weakref

    from edi.claims import ClaimWalker

    data = x12(*HEADER, *subscriber(), *claim("G1", ("96413", "1", "20261101"), ("96415", "2", "20261101")))
    enabled = gc.isenabled()
    gc.disable()
    try:
        (c,), walker = walk(data)
        assert isinstance(walker, ClaimWalker) and c.claim_id == "G1"
        alive = weakref.ref(walker)
        del walker
        assert alive() is None
    finally:
        if enabled:
            gc.enable()


def test_the_walker_reads_what_the_guide_states() -> None:
    """The guide, not the walker, decides which versions are read and which element is a fact."""
    from edi.claims import ClaimWalker
    from edi.claims.guide import Fact
    from edi.claims.x222a1 import X222A1
    from edi.x12 import Reader

    data = x12(*HEADER, *subscriber(), *claim("V1", ("96413", "1", "20261101")))
    narrow = X222A1._replace(name="005010X222A1-test", versions=(b"005010X222",))
    reader = Reader()
    reader.feed(data)
    reader.end()
    walker = ClaimWalker(narrow)
    assert walker.walk(reader.segments()) + walker.finish() == []
    assert [note.code for note in walker.notes] == ["PASSED_OVER"]
    # The claim ID read from CLM02 instead of CLM01: the walker follows.
    facts = tuple(f._replace(element=2) if f.name == "claim_id" else f for f in X222A1.facts)
    moved = X222A1._replace(name="005010X222A1-moved", facts=facts)
    reader = Reader()
    reader.feed(data)
    reader.end()
    walker = ClaimWalker(moved)
    (c,) = walker.walk(reader.segments()) + walker.finish()
    assert c.claim_id == "100.00"
    broken = X222A1._replace(name="005010X222A1-broken",
                             facts=tuple(f for f in X222A1.facts if f.name != "units"))
    with pytest.raises(ValueError, match="must fill ServiceLine's fields"):
        ClaimWalker(broken)
    assert Fact("total_charge", b"CLM", "2300", 2).designator == "CLM02"


# -- SV101-1: a procedure code that cannot be read is an error (issue 16 item 8) ---------------

def _one_line(service: str) -> bytes:
    return x12(*HEADER, *subscriber(), "CLM*Q1*100***11:B:1*Y*A*Y*Y", "HI*ABK:C184", "LX*1",
               f"SV1*{service}*100*UN*1***1", "DTP*472*D8*20261101")


@pytest.mark.parametrize("qualifier", ["HC", "ER", "IV", "WK", " HC "])
def test_the_guide_s_procedure_qualifiers_are_read(qualifier: str) -> None:
    (c,), walker = walk(_one_line(f"{qualifier}:96416"))
    assert walker.errors == []
    assert (c.lines[0].qualifier, c.lines[0].procedure_code) == (qualifier.strip(), "96416")


def test_another_component_separator_is_an_error_at_the_sv1() -> None:
    """ISA16 declares ':' but the sender wrote '>': the qualifier reads as 'HC>96414' and the
    line has no code. Before, such a file was reported clean whatever its codes."""
    data = _one_line("HC>96414")
    (c,), walker = walk(data)
    (error,) = walker.errors
    assert error.code == "BAD_PROCEDURE_QUALIFIER"
    assert data[error.offset :].startswith(b"SV1*HC>96414") and error.segment == c.lines[0].segment
    assert "'>'" in error.message and "another character than ISA16 declares" in error.message
    assert "96414" not in error.message  # element values stay out of messages


@pytest.mark.parametrize("service", ["XX:96416", ":96416", "hc:96416", "N4:00002123401"])
def test_a_qualifier_outside_the_guide_s_list_is_an_error(service: str) -> None:
    _, walker = walk(_one_line(service))
    assert [e.code for e in walker.errors] == ["BAD_PROCEDURE_QUALIFIER"]
    assert "the procedure code cannot be read" in walker.errors[0].message


def test_each_line_with_an_unreadable_code_is_reported_even_when_repeated() -> None:
    """Line facts are cached per distinct SV1 body; a body with an error is not cached, so the
    second identical line is reported at its own position."""
    data = x12(*HEADER, *subscriber(), "CLM*Q1*200***11:B:1*Y*A*Y*Y", "HI*ABK:C184",
               *[s for n in (1, 2) for s in (f"LX*{n}", "SV1*HC>96414*100*UN*1***1", "DTP*472*D8*20261101")])
    (c,), walker = walk(data)
    assert [e.segment for e in walker.errors] == [line.segment for line in c.lines]


def test_a_file_with_unreadable_codes_exits_65_not_clean(tmp_path) -> None:
    from tests.conftest import run_cli

    path = tmp_path / "separator.x12"
    path.write_bytes(_one_line("HC>96414"))
    result = run_cli("validate", str(path))
    assert result.returncode == 65 and b"BAD_PROCEDURE_QUALIFIER" in result.stdout


def test_a_code_fact_needs_its_code_list() -> None:
    from edi.claims.guide import Fact, compile_extractor

    with pytest.raises(ValueError, match="codes list"):
        compile_extractor((Fact("qualifier", b"SV1", "2400", 1, component=1, parse="code"),))
    with pytest.raises(ValueError, match="codes list"):
        compile_extractor((Fact("qualifier", b"SV1", "2400", 1, component=1, codes=("HC",)),))


def test_a_second_interchange_with_other_separators_is_read_with_its_own() -> None:
    """Line and payer facts are cached by segment bytes: the same bytes under another ISA16 are
    another segment ('HC:96414' is one unreadable qualifier when ISA16 is '>')."""
    first = x12(*HEADER, *subscriber(), *claim("A1", ("96414", "1", "20261101")))
    second = x12(*HEADER, *subscriber(), *claim("A2", ("96414", "1", "20261101")))
    second = second.replace(b"*T*:~", b"*T*>~", 1)  # ISA16: '>' in the second interchange
    claims, walker = walk(first + second)
    assert [c.claim_id for c in claims] == ["A1", "A2"]
    assert claims[0].lines[0].procedure_code == "96414"
    assert [e.code for e in walker.errors] == ["BAD_PROCEDURE_QUALIFIER"]
    assert walker.errors[0].segment == claims[1].lines[0].segment


def test_a_claim_left_open_by_a_truncated_interchange_closes_under_its_own_separators() -> None:
    first = x12(*HEADER, *subscriber(), *claim("A1", ("96414", "1", "20261101")))
    first = first[: first.index(b"SE*")]  # no SE, GE, IEA: the next ISA closes the claim
    second = x12(*HEADER, *subscriber(), *claim("A2", ("96416", "1", "20261101")))
    second = second.replace(b"*T*:~", b"*T*>~", 1).replace(b"HC:96416", b"HC>96416")
    claims, _ = walk(first + second)
    assert [(c.claim_id, c.lines[0].procedure_code) for c in claims] == [("A1", "96414"), ("A2", "96416")]
