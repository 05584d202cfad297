"""Immutable values of the 837P claim model: patient identity, claim, service line.

They are ``NamedTuple`` classes rather than frozen dataclasses: the walker builds one per line
and claim (tens of thousands per file) and a frozen dataclass ``__init__`` costs about 1.3 us
against 0.15 us for ``_make``. They are immutable and have named fields all the same.

``repr`` of these values never shows names, member IDs, birth dates or claim IDs: values end
up in tracebacks and debug output, and claim files are PHI.
"""

from __future__ import annotations

import struct
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from operator import itemgetter
from typing import Any

from edi.records import Record


def fields_getter(value_type: type[tuple], *names: str) -> Callable[[Any], tuple[Any, ...]]:
    """A function returning the named fields of a ``value_type`` value as a tuple, in one C call.

    For the loops that run once per line of a file: the names are resolved to positions here,
    once, so a reader names what it reads and a reordered field cannot be read by mistake.
    """
    fields: tuple[str, ...] = value_type._fields  # type: ignore[attr-defined]
    unknown = [name for name in names if name not in fields]
    if unknown:
        raise AttributeError(f"{value_type.__name__} has no field {unknown[0]!r}")
    return itemgetter(*(fields.index(name) for name in names))


# CLM05-3, the claim frequency code, of a claim that voids an earlier one (``Claim.is_void``).
VOID_FREQUENCY = "8"


def billing_provider_of(npi: str | None, tax_id: str | None) -> str:
    """``Claim.billing_provider`` from its two fields (the rule index's loop calls this rather
    than the property: a property costs ~1,000 instructions on Python 3.11, this ~150)."""
    if npi:
        return f"XX:{npi}"
    return f"EI:{tax_id}" if tax_id else ""


class PatientIdentity(Record):
    """Who the service was for: the 2010CA patient when a 2000C loop exists, else 2010BA.

    Keyed by payer (2010BB NM109), subscriber ID (2010BA NM109), the patient's name and birth
    date: a dependent has no member ID of its own and shares the subscriber's.
    """

    payer_id: str
    subscriber_id: str
    last_name: str
    first_name: str
    birth_date: str
    is_dependent: bool = False

    def patient_key(self) -> str:
        """The one key of a patient, for the file index and the history store alike (PHI: kept
        in memory, hashed before it is stored, never logged): payer ID, subscriber ID, last and
        first name, birth date, each trimmed and upper-cased (X12 data is case-insensitive in
        practice: ``DOE`` and ``Doe`` are one person), and a mark for a dependent (2000C), who
        is another patient than the subscriber even with the same member ID."""
        # One f-string and one ``upper`` of the whole: upper-casing maps character by character,
        # so it equals upper-casing each field; a third of the generator-and-join form (it runs
        # once per claim).
        payer, subscriber, last, first, born, dependent = self
        key = f"{payer.strip()}\x1f{subscriber.strip()}\x1f{last.strip()}\x1f{first.strip()}\x1f{born.strip()}".upper()
        return key + "\x1fD" if dependent else key

    def fingerprint(self) -> str:
        """A short one-way tag, for tests and debugging; never the identity itself."""
        import hashlib  # here, not at the top: OpenSSL's start-up is paid only by who asks

        return hashlib.sha256(self.patient_key().encode()).hexdigest()[:12]

    def __repr__(self) -> str:
        return f"PatientIdentity(dependent={self.is_dependent}, fingerprint={self.fingerprint()})"




class ServiceLine(Record):
    """One 2400 loop: LX and the SV1 professional service with its date, and where they stand.

    The fields up to ``service_date_end`` are the guide's line facts, in its order
    (``procedure_code_at`` is SV101-2's byte range within the SV1 body, None when SV101 has no
    second component); the rest say where the line stands (``LocatorStore`` keeps the byte ranges).
    """

    lx: int | None
    qualifier: str
    procedure_code: str
    modifiers: tuple[str, ...]
    charge: Decimal | None
    units: Decimal | None
    place_of_service: str | None
    procedure_code_at: tuple[int, int] | None
    service_date: date | None
    service_date_end: date | None
    segment: int  # SV1's 1-based segment number in the file (ISA = 1)
    offset: int  # SV1's byte offset in the file
    first_segment: int  # the LX
    last_segment: int  # the last segment of the 2400 loop (and its 2410-2440 children)

    def __repr__(self) -> str:
        return f"ServiceLine(lx={self.lx}, segment={self.segment})"


class Claim(Record):
    """One 2300 loop with the context above it and its service lines.

    The first six fields are the guide's claim facts; ``total_charge_at`` is CLM02's byte range
    within the CLM body (None when absent) and ``total_charge_text`` its bytes as sent.
    """

    claim_id: str
    total_charge: Decimal | None
    place_of_service: str | None
    frequency_code: str | None
    total_charge_at: tuple[int, int] | None
    total_charge_text: bytes
    filing_indicator: str | None
    payer_id: str
    patient: PatientIdentity
    billing_npi: str | None
    billing_tax_id: str | None  # 2010AA REF*EI
    other_payer_paid: bool  # a 2320 AMT*D (another payer's paid amount)
    line_adjudicated: bool  # a 2430 SVD (another payer's line adjudication)
    lines: tuple[ServiceLine, ...]
    segment: int  # CLM's segment number
    offset: int
    last_segment: int
    transaction_segment: int  # the ST's segment number
    body_end: int  # where the CLM body ends
    end_offset: int  # where the segment after the claim starts (-1: the input ended in it)
    # The walker's record of each 2400 loop ([LX number, LX offset, LX body, then per line
    # segment its body, number and offset]): ``LocatorStore`` reads the byte ranges from it, for the
    # claims a rewrite may edit only.
    loops: tuple[list[Any], ...]

    @property
    def adjudicated_elsewhere(self) -> bool:
        """The claim carries another payer's adjudication: removing or recoding a line would
        unbalance its coordination-of-benefits amounts."""
        return self.other_payer_paid or self.line_adjudicated

    @property
    def is_void(self) -> bool:
        """CLM05-3 8: the claim voids an earlier one (excluded from every rule, never changed)."""
        return self.frequency_code == VOID_FREQUENCY

    @property
    def billing_provider(self) -> str:
        """Who billed the claim, for grouping: the 2010AA NPI, else its REF*EI tax ID ("" when
        neither is sent). The two are tagged so that an NPI never equals a tax ID."""
        return billing_provider_of(self.billing_npi, self.billing_tax_id)

    def __repr__(self) -> str:
        return f"Claim(segment={self.segment}, lines={len(self.lines)})"


class LineLocator(Record):
    """Where one 2400 loop stands in the input: what a rewrite needs to drop it, renumber its
    LX01 or replace its SV101-2, by byte range (offsets absolute)."""

    segment: int  # SV1's segment number: the line's identity in findings
    lx: int | None
    first_segment: int  # the LX
    last_segment: int
    lx_offset: int
    lx_end: int
    end_offset: int  # where the segment after the loop starts
    service_offset: int  # the SV1 body ...
    service_end: int
    procedure_code_at: tuple[int, int] | None  # ... and SV101-2 within it
    charge: Decimal | None


class ClaimLocator(Record):
    """Where one 2300 claim stands in the input, with its lines (see ``LineLocator``)."""

    segment: int  # CLM's segment number
    offset: int  # the CLM body ...
    body_end: int
    total_charge_at: tuple[int, int] | None  # ... and CLM02 within it
    total_charge_text: bytes
    transaction_segment: int
    lines: tuple[LineLocator, ...]


# A claim's locators packed (the store keeps them for every claim a rewrite may edit, ~a third
# of an oncology file's claims; as NamedTuples they would cost ~0.5 KB each): CLM segment, CLM
# offset, CLM body length, CLM02 start and end within the body (-1: none), ST segment, the end
# offset (-1: none), the claim's last segment, its line count; then per line: SV1 segment, LX01
# (-1: not a number), LX segment, LX offset and SV1 offset from the CLM's, their body lengths,
# SV101-2 start and end within the SV1 body (-1: none).
_CLAIM_RECORD = struct.Struct("<IQIiiIqII")
_LINE_RECORD = struct.Struct("<IiIIIIIii")
_NO_RANGE = (-1, -1)


class LocatorStore:
    """The packed locators of the claims a rewrite may edit, by CLM segment number.

    Claims arrive in file order, so their segment numbers ascend: a sorted array and a bisect
    find a claim, with no dict entry per claim. About 0.17 KB per claim kept."""

    __slots__ = ("_charges", "_data", "_first_charge", "_records", "_segments", "_texts", "_totals")

    def __init__(self) -> None:
        self._data = bytearray()
        self._segments = array("Q")  # CLM segment numbers, ascending
        self._records = array("Q")  # where each claim's record starts in ``_data``
        self._first_charge = array("Q")  # its first line's index in ``_charges``
        self._charges: list[Decimal | None] = []  # per line, shared values (the walker caches them)
        self._totals: list[bytes] = []  # CLM02 as sent, per claim (interned: amounts repeat)
        self._texts: dict[bytes, bytes] = {}

    def __len__(self) -> int:
        return len(self._segments)

    def __iter__(self) -> Iterator[int]:
        return iter(self._segments)

    def add(self, claim: Claim) -> None:
        data = self._data
        self._segments.append(claim.segment)
        self._records.append(len(data))
        self._first_charge.append(len(self._charges))
        total = claim.total_charge_at or _NO_RANGE
        data += _CLAIM_RECORD.pack(claim.segment, claim.offset, claim.body_end - claim.offset, total[0], total[1],
                                   claim.transaction_segment, claim.end_offset, claim.last_segment, len(claim.lines))
        text = claim.total_charge_text
        self._totals.append(self._texts.setdefault(text, text))
        loops = claim.loops
        if len(loops) != len(claim.lines):  # a loop without SV1 (an X12 error): match by LX
            by_lx = {loop[0]: loop for loop in loops}
            loops = tuple(by_lx[line.first_segment] for line in claim.lines)
        pack, charges, base = _LINE_RECORD.pack, self._charges, claim.offset
        for line, loop in zip(claim.lines, loops, strict=True):
            lx, code = line.lx, line.procedure_code_at or _NO_RANGE
            # loop[3] is the service segment's body: the guide's first line segment (walker).
            data += pack(line.segment, -1 if lx is None else lx, line.first_segment, loop[1] - base, len(loop[2]),
                         line.offset - base, len(loop[3]), code[0], code[1])
            charges.append(line.charge)

    def get(self, segment: int) -> ClaimLocator:
        claim = bisect_left(self._segments, segment)
        if claim == len(self._segments) or self._segments[claim] != segment:
            raise KeyError(segment)
        at, charge = self._records[claim], self._first_charge[claim]
        data = self._data
        (number, offset, body_length, total_start, total_end, transaction, end_offset, last_segment,
         count) = _CLAIM_RECORD.unpack_from(data, at)
        at += _CLAIM_RECORD.size
        records = [_LINE_RECORD.unpack_from(data, at + index * _LINE_RECORD.size) for index in range(count)]
        lines = []
        for index, (service, lx, first, lx_at, lx_length, service_at, service_length, code_start,
                    code_end) in enumerate(records):
            lx_offset, service_offset = offset + lx_at, offset + service_at
            following = records[index + 1] if index + 1 < count else None
            lines.append(LineLocator(
                service, None if lx < 0 else lx, first, following[2] - 1 if following else last_segment, lx_offset,
                lx_offset + lx_length, offset + following[3] if following else end_offset, service_offset,
                service_offset + service_length, None if code_start < 0 else (code_start, code_end),
                self._charges[charge + index]))
        return ClaimLocator(number, offset, offset + body_length, None if total_start < 0 else (total_start, total_end),
                            self._totals[claim], transaction, tuple(lines))
