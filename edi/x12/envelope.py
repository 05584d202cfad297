"""Envelope checks: ISA/IEA, GS/GE and ST/SE counts and control numbers.

Fed only the envelope segments (the claim walker dispatches them here), so it adds no cost per
ordinary segment: SE01 is checked as ``SE's number - ST's number + 1``. Every finding is an
``ErrorEntry`` with a stable code:

==================  ============================================================
``ISA_WIDTH``       the ISA header is not 106 characters (fixed-width fields)
``SE01_COUNT``      SE01 differs from the number of segments from ST to SE
``SE02_CONTROL``    SE02 differs from ST02
``GE01_COUNT``      GE01 differs from the number of ST in the group
``GE02_CONTROL``    GE02 differs from GS06
``IEA01_COUNT``     IEA01 differs from the number of GS in the interchange
``IEA02_CONTROL``   IEA02 differs from ISA13
``MISSING_SE``      a transaction set not closed by SE before ST, GE, IEA or end
``MISSING_GE``      a functional group not closed by GE
``MISSING_IEA``     an interchange not closed by IEA (premature end of file)
``UNEXPECTED``      an envelope segment where it cannot stand (SE outside ST, ...)
``BAD_COUNT``       a count element that is not a number
==================  ============================================================
"""

from __future__ import annotations

from edi.errors import ErrorEntry
from edi.records import Record
from edi.x12.segment import Segment

ISA_BODY_LENGTH = 105  # 106 characters with the terminator


class TransactionSpan(Record):
    """Where one closed transaction set stands: what the rewriter needs to recount SE01."""

    st: int  # the ST's segment number
    se: int  # the SE's segment number
    se01_start: int  # byte range of SE01 in the input (-1 when the SE has no element 01)
    se01_end: int
    se_offset: int  # byte range of the SE body
    se_end: int


class EnvelopeHeader(Record):
    """An ISA, GS or ST with its elements (sender, receiver, dates, control numbers, versions:
    no patient data): what an acknowledgment echoes back."""

    tag: bytes
    number: int
    elements: tuple[bytes, ...]


def _count(value: bytes) -> int | None:
    value = value.strip()
    return int(value) if value.isdigit() else None


class EnvelopeChecker:
    """Tracks the open interchange, group and transaction and reports broken envelopes."""

    __slots__ = (
        "_groups",
        "_gs",
        "_gs06",
        "_isa",
        "_isa13",
        "_sets",
        "_st",
        "_st02",
        "errors",
        "headers",
        "interchanges",
        "spans",
        "transaction_sets",
    )

    def __init__(self) -> None:
        self.errors: list[ErrorEntry] = []
        self._isa: Segment | None = None
        self._isa13 = b""
        self._groups = 0
        self._gs: Segment | None = None
        self._gs06 = b""
        self._sets = 0
        self._st: Segment | None = None
        self._st02 = b""
        self.interchanges = 0
        self.transaction_sets = 0
        self.spans: list[TransactionSpan] = []  # every closed transaction set
        self.headers: list[EnvelopeHeader] = []

    def _error(self, code: str, segment: Segment, message: str) -> None:
        self.errors.append(ErrorEntry(code, segment.number, segment.offset, message))

    @property
    def in_transaction(self) -> bool:
        return self._st is not None

    def isa(self, segment: Segment, elements: list[bytes]) -> None:
        if self._isa is not None:
            self._close_interchange()
        self._isa = segment
        self.headers.append(EnvelopeHeader(b"ISA", segment.number, tuple(elements)))
        self.interchanges += 1
        self._isa13 = elements[12].strip() if len(elements) > 12 else b""
        self._groups = 0
        if len(segment.body) != ISA_BODY_LENGTH:
            self._error(
                "ISA_WIDTH", segment,
                f"the ISA header is {len(segment.body) + 1} characters long, expected 106 (fixed-width fields)",
            )

    def gs(self, segment: Segment, elements: list[bytes]) -> None:
        if self._gs is not None:
            self._close_group()
        if self._isa is None:
            self._error("UNEXPECTED", segment, "GS outside an interchange")
        self._gs = segment
        self.headers.append(EnvelopeHeader(b"GS", segment.number, tuple(elements)))
        self._gs06 = elements[5].strip() if len(elements) > 5 else b""
        self._groups += 1
        self._sets = 0

    def st(self, segment: Segment, elements: list[bytes]) -> None:
        if self._st is not None:
            self._error("MISSING_SE", self._st, "transaction set not closed by SE before the next ST")
        if self._gs is None:
            self._error("UNEXPECTED", segment, "ST outside a functional group")
        self._st = segment
        self.headers.append(EnvelopeHeader(b"ST", segment.number, tuple(elements)))
        self._st02 = elements[1].strip() if len(elements) > 1 else b""
        self._sets += 1
        self.transaction_sets += 1

    def se(self, segment: Segment, elements: list[bytes]) -> None:
        st = self._st
        if st is None:
            self._error("UNEXPECTED", segment, "SE without a matching ST")
            return
        self._st = None
        se01_start = segment.offset + len(b"SE") + 1 if elements else -1
        se01_end = se01_start + len(elements[0]) if elements else -1
        self.spans.append(TransactionSpan(st.number, segment.number, se01_start, se01_end, segment.offset,
                                          segment.offset + len(segment.body)))
        actual = segment.number - st.number + 1
        self._check_trailer(segment, elements, "SE", actual, "segments", "transaction set", self._st02, "ST02")

    def ge(self, segment: Segment, elements: list[bytes]) -> None:
        if self._st is not None:
            self._error("MISSING_SE", self._st, "transaction set not closed by SE before GE")
            self._st = None
        if self._gs is None:
            self._error("UNEXPECTED", segment, "GE without a matching GS")
            return
        self._gs = None
        self._check_trailer(segment, elements, "GE", self._sets, "transaction sets", "group", self._gs06, "GS06")

    def iea(self, segment: Segment, elements: list[bytes]) -> None:
        if self._gs is not None:
            self._close_group()
        if self._isa is None:
            self._error("UNEXPECTED", segment, "IEA without a matching ISA")
            return
        self._isa = None
        self._check_trailer(segment, elements, "IEA", self._groups, "groups", "interchange", self._isa13, "ISA13")

    def _check_trailer(self, segment: Segment, elements: list[bytes], tag: str, actual: int, counted: str,
                       envelope: str, control: bytes, header_element: str) -> None:
        """SE, GE and IEA alike: element 01 counts what the envelope holds, 02 repeats its control number
        (codes ``<tag>01_COUNT``, ``<tag>02_CONTROL``, ``BAD_COUNT``)."""
        declared = _count(elements[0]) if elements else None
        if declared is None:
            self._error("BAD_COUNT", segment, f"{tag}01 is not a number")
        elif declared != actual:
            self._error(f"{tag}01_COUNT", segment, f"{tag}01 says {declared} {counted}, the {envelope} has {actual}")
        if (elements[1].strip() if len(elements) > 1 else b"") != control:
            self._error(f"{tag}02_CONTROL", segment, f"{tag}02 does not match {header_element}")

    def _close_group(self) -> None:
        if self._st is not None:
            self._error("MISSING_SE", self._st, "transaction set not closed by SE")
            self._st = None
        assert self._gs is not None
        self._error("MISSING_GE", self._gs, "functional group not closed by GE")
        self._gs = None

    def _close_interchange(self) -> None:
        if self._gs is not None:
            self._close_group()
        assert self._isa is not None
        self._error("MISSING_IEA", self._isa, "interchange not closed by IEA before the next ISA")
        self._isa = None

    def finish(self) -> None:
        """End of input: whatever is still open was truncated."""
        if self._st is not None:
            self._error("MISSING_SE", self._st, "input ended inside a transaction set (premature end of file)")
            self._st = None
        if self._gs is not None:
            self._error("MISSING_GE", self._gs, "input ended inside a functional group (premature end of file)")
            self._gs = None
        if self._isa is not None:
            self._error("MISSING_IEA", self._isa, "input ended inside an interchange (premature end of file)")
            self._isa = None
