"""The sans-I/O reader and the byte-faithful writer."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edi.errors import X12SyntaxError
from edi.x12 import END, NEED_DATA, Reader, read_all, write_all
from tests.strategies import interchange

ISA = b"ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *261101*1200*^*00501*000000001*0*T*:~"
BODY = [b"GS*HC*S*R*20261101*1200*1*X*005010X222A1", b"ST*837*0001*005010X222A1", b"BHT*0019*00*1*20261101*1200*CH",
        b"SE*3*0001", b"GE*1*1", b"IEA*1*000000001"]


def simple(term: bytes = b"~", sep: bytes = b"\n", *, bom: bytes = b"") -> bytes:
    return bom + ISA[:-1] + term + sep + sep.join(body + term for body in BODY) + sep


def bytewise(data: bytes) -> list:
    reader = Reader()
    out = []
    for index in range(len(data)):
        reader.feed(data[index : index + 1])
        out.extend(reader.segments())
    reader.end()
    out.extend(reader.segments())
    return out


# Quirks of PROVENANCE.md that the reader handles: (name, input)
ACCEPTED = [
    ("lf after terminator", simple()),
    ("crlf after terminator", simple(sep=b"\r\n")),
    ("one line", simple(sep=b"")),
    ("utf-8 bom", simple(bom=b"\xef\xbb\xbf")),
    ("indentation", ISA + b"\r\n" + b"".join(b"\r\n    " + body + b"~" for body in BODY)),
    ("newline terminator", ISA[:-1] + b"\n" + b"".join(body + b"\n" for body in BODY)),
    ("cr terminator then lf", ISA[:-1] + b"\r\n" + b"".join(body + b"\r\n" for body in BODY)),
    ("tilde element separator", ISA.replace(b"*", b"~")[:-1] + b"_\n" + b"".join(body.replace(b"*", b"~") + b"_\n" for body in BODY)),
    ("blank lines at the end", simple() + b"\n\n\n\n\n"),
    ("blank lines with newline terminator", ISA[:-1] + b"\n" + b"\n\n".join(body + b"\n" for body in BODY) + b"\n\n"),
    ("trailing spaces after terminator", simple(sep=b"  \n")),
    ("no final terminator", simple(sep=b"\n")[:-2]),
    ("105-character ISA", ISA.replace(b"*ZZ*RECEIVER       *", b"*ZZ*RECEIVER      *") + b"\n" + b"\n".join(b + b"~" for b in BODY)),
    ("stray double terminator", simple().replace(b"BHT", b"~BHT")),
    ("two interchanges, other delimiters", simple() + ISA.replace(b"*", b"|").replace(b":~", b">!") + b"".join(b.replace(b"*", b"|") + b"!" for b in BODY)),
]


@pytest.mark.parametrize(("name", "data"), ACCEPTED, ids=[name for name, _ in ACCEPTED])
def test_accepted_input_round_trips_byte_for_byte(name: str, data: bytes) -> None:
    """Every accepted quirk is written back exactly as read."""
    segments, reader = read_all(data)
    assert write_all(segments, reader.trailer) == data
    assert [s.tag for s in segments][:2] == [b"ISA", b"GS"]
    assert segments[-1].tag == b"IEA"


@pytest.mark.parametrize(("name", "data"), ACCEPTED, ids=[name for name, _ in ACCEPTED])
def test_byte_at_a_time_equals_one_buffer(name: str, data: bytes) -> None:
    """Feeding one byte at a time gives the same segments, numbers and offsets."""
    whole, _ = read_all(data)
    assert bytewise(data) == whole


def test_segment_positions_and_numbers() -> None:
    """Numbers count ISA as 1; offsets point at the segment's first byte (after a BOM)."""
    data = simple(bom=b"\xef\xbb\xbf")
    segments, _ = read_all(data)
    assert [s.number for s in segments] == list(range(1, 8))
    for segment in segments:
        assert data[segment.offset : segment.offset + len(segment.body)] == segment.body
    assert segments[0].offset == 3
    assert segments[0].prefix == b"\xef\xbb\xbf"


def test_delimiters_come_from_the_isa() -> None:
    data = ISA.replace(b"*", b"|").replace(b"^", b"`").replace(b":~", b"<\n") + b"GS|HC\n"
    segments, reader = read_all(data)
    d = reader.delimiters
    assert (d.element, d.component, d.repetition, d.segment) == (b"|", b"<", b"`", b"\n")
    assert segments[1].tag == b"GS"


def test_repetition_separator_absent_in_4010_style_isa() -> None:
    _, reader = read_all(ISA.replace(b"*^*00501", b"*U*00401"))
    assert reader.delimiters.repetition is None


def test_short_isa_still_finds_the_separators() -> None:
    """A 105-character ISA (short ISA08) is read by counting separators, not by offsets."""
    short = ISA.replace(b"RECEIVER       ", b"RECEIVER      ")
    segments, reader = read_all(short + b"GS*HC~")
    assert reader.delimiters.segment == b"~"
    assert len(segments[0].body) == 104
    assert segments[1].tag == b"GS"


def test_need_data_then_end() -> None:
    """The h11-style protocol: NEED_DATA until end() is called, then END."""
    reader = Reader()
    assert reader.next_segment() is NEED_DATA
    reader.feed(ISA[:50])
    assert reader.next_segment() is NEED_DATA
    reader.feed(ISA[50:] + b"GS*HC")
    assert reader.next_segment().tag == b"ISA"
    assert reader.next_segment() is NEED_DATA
    reader.feed(b"~IEA*1*000000001")
    assert reader.next_segment().tag == b"GS"
    assert reader.next_segment() is NEED_DATA
    reader.end()
    last = reader.next_segment()
    assert last.tag == b"IEA" and last.terminator == b""
    assert reader.next_segment() is END
    assert reader.at_end


def test_feed_after_end_is_a_programming_error() -> None:
    reader = Reader()
    reader.end()
    with pytest.raises(RuntimeError):
        reader.feed(b"ISA")


# Refusals: (name, input, code, segment, offset)
REFUSED = [
    ("empty input", b"", "NOT_X12", 1, 0),
    ("only whitespace", b"\n\n  ", "NOT_X12", 1, 4),
    ("not x12", b"hello world, this is not an interchange", "NOT_X12", 1, 0),
    ("starts at GS", b"GS*HC*S*R~ST*837*1~", "NO_ISA", 1, 0),
    ("starts at ST after a blank line", b"\nST*837*0001*005010X222~", "NO_ISA", 1, 1),
    ("utf-16 le without bom", ISA.decode().encode("utf-16-le"), "UTF16", 1, 0),
    ("utf-16 with bom", ISA.decode().encode("utf-16"), "UTF16", 1, 0),
    ("truncated isa", ISA[:60], "BAD_ISA", 1, 0),
    ("letter as element separator", b"ISAX00X", "BAD_DELIMITER", 1, 3),
    ("non-ascii element separator", b"ISA\xc3\x9600", "BAD_DELIMITER", 1, 3),
    ("terminator equals component", ISA[:-2] + b"::", "BAD_DELIMITER", 1, 0),
]


@pytest.mark.parametrize(("name", "data", "code", "segment", "offset"), REFUSED, ids=[r[0] for r in REFUSED])
def test_refusals_carry_code_segment_offset_and_expectation(name: str, data: bytes, code: str, segment: int, offset: int) -> None:
    with pytest.raises(X12SyntaxError) as caught:
        read_all(data)
    error = caught.value
    assert (error.code, error.segment, error.offset) == (code, segment, offset)
    assert error.expected
    assert isinstance(error, ValueError)


def test_over_long_segment_is_refused_before_its_end_arrives() -> None:
    """A segment with no terminator is refused once it passes the limit: memory stays bounded."""
    reader = Reader(max_segment_length=1000)
    reader.feed(ISA + b"GS*HC~")
    assert [s.tag for s in reader.segments()] == [b"ISA", b"GS"]
    reader.feed(b"NTE*" + b"A" * 2000)
    with pytest.raises(X12SyntaxError) as caught:
        reader.segments()
    assert caught.value.code == "SEGMENT_TOO_LONG"
    assert (caught.value.segment, caught.value.offset) == (3, len(ISA) + 6)


def test_over_long_terminated_segment_is_refused_after_the_good_ones() -> None:
    reader = Reader(max_segment_length=100)
    reader.feed(ISA + b"GS*HC~NTE*" + b"B" * 500 + b"~SE*1~")
    reader.end()
    segments = reader.segments()
    assert [s.tag for s in segments] == [b"ISA", b"GS"]
    with pytest.raises(X12SyntaxError) as caught:
        reader.segments()
    assert (caught.value.code, caught.value.segment) == ("SEGMENT_TOO_LONG", 3)
    # The error sticks: the reader does not resume past bad input.
    with pytest.raises(X12SyntaxError):
        reader.next_segment()


def test_too_many_elements_is_refused() -> None:
    reader = Reader(max_elements=50)
    reader.feed(ISA + b"GS*HC~HI" + b"*A" * 60 + b"~")
    reader.end()
    assert [s.tag for s in reader.segments()] == [b"ISA", b"GS"]
    with pytest.raises(X12SyntaxError) as caught:
        reader.segments()
    assert (caught.value.code, caught.value.segment, caught.value.offset) == ("TOO_MANY_ELEMENTS", 3, len(ISA) + 6)


def test_segment_repr_never_shows_the_body() -> None:
    segments, _ = read_all(ISA + b"NM1*IL*1*SECRETNAME~")
    assert b"SECRETNAME" in segments[1].body
    assert "SECRETNAME" not in repr(segments[1])


@settings(max_examples=300, deadline=None)
@given(interchange())
def test_random_delimiters_and_segments_round_trip(case: tuple) -> None:
    """write(read(x)) == x and the bodies are the ones written, for any legal delimiters."""
    data, bodies, (element, _component, _repetition, terminator) = case
    segments, reader = read_all(data)
    assert [s.body for s in segments] == bodies
    assert write_all(segments, reader.trailer) == data
    assert reader.delimiters.element == element.encode()
    assert reader.delimiters.segment == terminator.encode()


@settings(max_examples=150, deadline=None)
@given(interchange(), st.lists(st.integers(1, 64), min_size=1, max_size=40))
def test_any_chunking_gives_the_same_segments(case: tuple, cuts: list[int]) -> None:
    data = case[0]
    whole, _ = read_all(data)
    reader = Reader()
    out = []
    position = 0
    for size in cuts * (len(data) // max(1, sum(cuts)) + 1):
        if position >= len(data):
            break
        reader.feed(data[position : position + size])
        position += size
        out.extend(reader.segments())
    reader.end()
    out.extend(reader.segments())
    assert out == whole
