"""The 837P walker: segments in, immutable ``Claim`` values out, structure errors on the side.

Driven by the loop table in ``edi.claims.loops``. The hot path is ``walk_batch``: per segment it
slices the first four bytes and does one dict lookup, which says which handler (if any) wants
the segment; the four bytes determine the tag exactly (a tag of at most three characters is
followed by the element separator within them). Only the segments the claim model needs
(envelope, HL, SBR, NM1, DMG, CLM, LX, SV1, DTP) are split into elements. The line's child
loops (2410 LIN, 2430 SVD, 2440 LQ, 2420 providers) are in the table but not walked: nothing the
model reads can stand in them, and the next LX, CLM or HL closes them. One claim is held at a time, so memory does not grow with the file.

Other transactions on the same channel (837I ``X223``, 837D ``X224``, 835, 999, 4010 837P) are
counted, noted and passed over: not errors. An 837P is ST01 ``837`` with version (ST03, else
GS08) ``005010X222``, ``005010X222A1`` or ``005010X222A2``.

Structure errors (stable codes, beside the envelope codes of ``edi.x12.envelope``):

======================  ======================================================
``HL_DUPLICATE_ID``     an HL01 already used in the transaction set
``HL_PARENT_UNKNOWN``   HL02 names no earlier HL of the transaction set
``CLAIM_WITHOUT_LINES`` a 2300 claim with no 2400 service line
``LINE_WITHOUT_SV1``    a 2400 loop with no SV1
``BAD_NUMBER``          CLM02, SV102 or SV104 is not a decimal number
``BAD_DATE``            a DTP*472 date that is not a calendar date
``EMPTY_SEGMENT``       an empty segment (a stray terminator)
``BAD_SEGMENT_ID``      a segment ID that is not 2-3 upper-case letters or digits
``OUTSIDE_LOOP``        a claim or line segment where its loop cannot open
======================  ======================================================
"""

from __future__ import annotations

import re
from itertools import count
from collections.abc import Callable, Iterable, Iterator
from datetime import date
from decimal import Decimal, InvalidOperation

from edi.claims.loops import INITIAL, LoopState
from edi.claims.model import Claim, PatientIdentity, ServiceLine
from edi.errors import ErrorEntry
from edi.x12.envelope import EnvelopeChecker
from edi.x12.segment import Segment, SegmentBatch

P837_VERSIONS = (b"005010X222", b"005010X222A1", b"005010X222A2")
_SEGMENT_ID = re.compile(rb"[A-Z][A-Z0-9]{1,2}\Z")
_LINE_LOOPS = frozenset({"2400", "2410", "2420A", "2420B", "2420C", "2420D", "2420E", "2420F",
                         "2420G", "2420H", "2430", "2440"})
_DISPATCH_LIMIT = 4096
_VALUE_CACHE_LIMIT = 65_536
# Provider and other-payer name loops (2310x, 2330C-G, 2420x) change nothing the claim model
# reads: no DTP*472, SV1, DMG or 2010 name can follow inside them. Skipping them saves a split
# per provider segment; 2330A/B (NM1*IL/PR after an SBR of 2320) still go through the table
# so they are never taken for the subscriber or payer.
_IGNORED_NM1 = frozenset({b"82", b"77", b"DN", b"P3", b"DQ", b"PW", b"45", b"QB", b"DK"})
_make_patient = PatientIdentity._make
_make_line = ServiceLine._make
_make_claim = Claim._make

Handler = Callable[[bytes, int, int], None]


class ClaimWalker:
    """Walks one input's segments; yields each claim when its 2300 loop closes."""

    def __init__(self) -> None:
        self.envelope = EnvelopeChecker()
        self.errors: list[ErrorEntry] = self.envelope.errors
        self.notes: list[ErrorEntry] = []
        self.transactions = 0
        self.other_transactions = 0
        self.claims = 0
        self.lines = 0
        self._element = b"*"
        self._component = b":"
        self._gs08 = b""
        self._p837 = False
        self._state: LoopState = INITIAL
        self._hl_ids: set[bytes] = set()
        self._hl_level = b""
        self._billing_npi: str | None = None
        self._filing: str | None = None
        self._payer_id = ""
        self._subscriber = ("", "", "", "")  # id, last, first, birth date
        self._patient: tuple[str, str, str] | None = None  # last, first, birth date
        self._claim: list | None = None
        self._claim_lines: list[ServiceLine] = []
        self._line: list | None = None
        self._done: list[Claim] = []
        self._last_number = 0
        self._transaction_segment = 0
        self._by_tag: dict[bytes, Handler] = {
            b"ISA": self._on_isa, b"IEA": self._on_iea, b"GS": self._on_gs, b"GE": self._on_ge,
            b"ST": self._on_st, b"SE": self._on_se, b"HL": self._on_hl, b"SBR": self._on_sbr,
            b"NM1": self._on_nm1, b"DMG": self._on_dmg, b"CLM": self._on_clm, b"LX": self._on_lx,
            b"SV1": self._on_sv1, b"DTP": self._on_dtp,
        }
        # First four bytes of a segment -> its handler, or None for segments nobody needs.
        self._dispatch: dict[bytes, Handler | None] = {}
        # Codes, amounts and dates repeat across a file: parse each distinct value once.
        self._texts: dict[bytes, str] = {}
        self._numbers: dict[bytes, Decimal] = {}
        self._dates: dict[bytes, date] = {}

    # -- driving ---------------------------------------------------------------------------
    def walk_batch(self, batch: SegmentBatch) -> Iterator[Claim]:
        """Consume a reader batch; yield claims as they complete (the fast path)."""
        get = self._dispatch.get
        resolve = self._resolve
        done = self._done
        for number, body, offset in zip(count(batch.first_number), batch.bodies, batch.offsets):
            handler = get(body[:4], resolve)
            if handler is None:
                continue
            if handler is resolve:
                handler = resolve(body, number, offset)
                get = self._dispatch.get  # an ISA starts a new dispatch table
                if handler is None:
                    continue
            handler(body, number, offset)
            if done:
                yield from done
                done.clear()
        if batch.bodies:
            self._last_number = batch.first_number + len(batch.bodies) - 1

    def walk(self, segments: Iterable[Segment]) -> Iterator[Claim]:
        """Consume ``Segment`` values (the general path); yield claims as they complete."""
        done = self._done
        resolve = self._resolve
        for segment in segments:
            handler = self._dispatch.get(segment[1][:4], resolve)
            if handler is resolve:
                handler = resolve(segment[1], segment[2], segment[3])
            if handler is not None:
                handler(segment[1], segment[2], segment[3])
            if done:
                yield from done
                done.clear()
            self._last_number = segment[2]

    def finish(self) -> Iterator[Claim]:
        """End of input: close what is open (a truncated file leaves a claim open)."""
        self._close_claim(self._last_number)
        self.envelope.finish()
        yield from self._done
        self._done.clear()

    def _resolve(self, body: bytes, number: int, offset: int) -> Handler | None:
        """The handler for a segment whose first four bytes were not seen yet (and cache it)."""
        key = body[:4]
        if body.startswith(b"ISA"):
            return self._on_isa  # never cached: the ISA may change the separators
        tag = body.partition(self._element)[0]
        handler: Handler | None
        if not body:
            handler = self._on_empty
        elif len(tag) > 3 or not _SEGMENT_ID.match(tag):
            handler = self._on_bad_tag
        else:
            handler = self._by_tag.get(tag)
        if len(self._dispatch) < _DISPATCH_LIMIT:
            self._dispatch[key] = handler
        return handler

    def _error(self, code: str, number: int, offset: int | None, message: str) -> None:
        self.errors.append(ErrorEntry(code, number, offset, message))

    def _on_bad_tag(self, body: bytes, number: int, offset: int) -> None:
        self._error("BAD_SEGMENT_ID", number, offset, "segment ID is not 2-3 upper-case letters or digits")

    def _on_empty(self, body: bytes, number: int, offset: int) -> None:
        self._error("EMPTY_SEGMENT", number, offset, "empty segment (two terminators in a row)")

    def _segment(self, body: bytes, number: int, offset: int) -> Segment:
        return Segment.make(tag=body.partition(self._element)[0], body=body, number=number, offset=offset)

    # -- envelope --------------------------------------------------------------------------
    def _on_isa(self, body: bytes, number: int, offset: int) -> None:
        self._element = body[3:4]
        self._component = body[-1:]
        self._dispatch = {}
        self._end_transaction(number - 1)
        self.envelope.isa(self._segment(body, number, offset), body.split(self._element)[1:])

    def _on_iea(self, body: bytes, number: int, offset: int) -> None:
        self._end_transaction(number - 1)
        self.envelope.iea(self._segment(body, number, offset), body.split(self._element)[1:])

    def _on_gs(self, body: bytes, number: int, offset: int) -> None:
        self._end_transaction(number - 1)
        elements = body.split(self._element)[1:]
        self._gs08 = elements[7].strip() if len(elements) > 7 else b""
        self.envelope.gs(self._segment(body, number, offset), elements)

    def _on_ge(self, body: bytes, number: int, offset: int) -> None:
        self._end_transaction(number - 1)
        self.envelope.ge(self._segment(body, number, offset), body.split(self._element)[1:])

    def _on_st(self, body: bytes, number: int, offset: int) -> None:
        self._end_transaction(number - 1)
        elements = body.split(self._element)[1:]
        self.envelope.st(self._segment(body, number, offset), elements)
        kind = elements[0].strip() if elements else b""
        version = elements[2].strip() if len(elements) > 2 and elements[2].strip() else self._gs08
        self._p837 = kind == b"837" and version in P837_VERSIONS
        self._transaction_segment = number
        if self._p837:
            self.transactions += 1
            self._state = INITIAL
            self._hl_ids = set()
            self._hl_level = b""
            self._billing_npi = None
            self._reset_subscriber()
            if version != b"005010X222A1":
                self.notes.append(ErrorEntry(
                    "VERSION_VARIANT", number, offset,
                    f"837P version {version.decode('latin-1')} read with the 005010X222A1 loop table",
                ))
        else:
            self.other_transactions += 1
            label = kind.decode("latin-1") or "?"
            shown = version.decode("latin-1") or "no version"
            self.notes.append(ErrorEntry(
                "PASSED_OVER", number, offset,
                f"transaction set {label} ({shown}) is not an 837P 005010X222: counted and passed over",
            ))

    def _on_se(self, body: bytes, number: int, offset: int) -> None:
        self._end_transaction(number - 1)
        self.envelope.se(self._segment(body, number, offset), body.split(self._element)[1:])

    def _end_transaction(self, last: int) -> None:
        if self._p837:
            self._close_claim(last)
        self._p837 = False

    # -- hierarchy -------------------------------------------------------------------------
    def _reset_subscriber(self) -> None:
        self._filing = None
        self._payer_id = ""
        self._subscriber = ("", "", "", "")
        self._patient = None

    def _on_hl(self, body: bytes, number: int, offset: int) -> None:
        if not self._p837:
            return
        self._close_claim(number - 1)
        elements = body.split(self._element)
        elements += [b""] * (4 - len(elements))
        hl_id, parent, level = elements[1].strip(), elements[2].strip(), elements[3].strip()
        if hl_id in self._hl_ids:
            self._error("HL_DUPLICATE_ID", number, offset, "HL01 repeats an earlier HL ID of the transaction set")
        if parent and parent not in self._hl_ids:
            self._error("HL_PARENT_UNKNOWN", number, offset, "HL02 names no earlier HL of the transaction set")
        self._hl_ids.add(hl_id)
        self._hl_level = level
        self._state = self._state.open(b"HL", level) or INITIAL
        if level == b"20":
            self._billing_npi = None
            self._reset_subscriber()
        elif level == b"22":
            self._reset_subscriber()
        elif level == b"23":
            self._patient = ("", "", "")

    def _on_sbr(self, body: bytes, number: int, offset: int) -> None:
        if not self._p837:
            return
        state = self._state.open(b"SBR", b"")
        if state is not None:
            self._state = state
        elif self._state.loop == "2000B":
            elements = body.split(self._element)
            self._filing = elements[9].decode("latin-1").strip() or None if len(elements) > 9 else None

    def _on_nm1(self, body: bytes, number: int, offset: int) -> None:
        if not self._p837:
            return
        if body[4:6] in _IGNORED_NM1 and body[6:7] == self._element:
            return
        elements = body.split(self._element)
        qualifier = elements[1].strip() if len(elements) > 1 else b""
        state = self._state.open(b"NM1", qualifier)
        if state is None:
            return
        self._state = state
        loop = state.loop
        if loop[:2] != "20":
            return
        elements += [b""] * (10 - len(elements))
        if loop == "2010BA":
            self._subscriber = (elements[9].decode("latin-1").strip(), elements[3].decode("latin-1").strip(),
                                elements[4].decode("latin-1").strip(), "")
        elif loop == "2010BB":
            self._payer_id = elements[9].decode("latin-1").strip()
        elif loop == "2010CA":
            self._patient = (elements[3].decode("latin-1").strip(), elements[4].decode("latin-1").strip(), "")
        elif loop == "2010AA" and elements[8].strip() == b"XX":
            self._billing_npi = elements[9].decode("latin-1").strip()

    def _on_dmg(self, body: bytes, number: int, offset: int) -> None:
        if not self._p837:
            return
        loop = self._state.loop
        if loop == "2010BA":
            elements = body.split(self._element)
            birth = elements[2].decode("latin-1").strip() if len(elements) > 2 else ""
            self._subscriber = self._subscriber[:3] + (birth,)
        elif loop == "2010CA" and self._patient is not None:
            elements = body.split(self._element)
            birth = elements[2].decode("latin-1").strip() if len(elements) > 2 else ""
            self._patient = self._patient[:2] + (birth,)

    # -- claims and lines ------------------------------------------------------------------
    def _text(self, value: bytes) -> str:
        text = self._texts.get(value)
        if text is None:
            text = value.decode("latin-1").strip()
            if len(self._texts) < _VALUE_CACHE_LIMIT:
                self._texts[value] = text
        return text

    def _decimal(self, value: bytes, number: int, offset: int, name: str) -> Decimal | None:
        result = self._numbers.get(value)
        if result is not None:
            return result
        value = value.strip()
        if not value:
            return None
        try:
            result = Decimal(value.decode("latin-1"))
        except (InvalidOperation, ValueError):
            result = None
        if result is None or not result.is_finite():
            self._error("BAD_NUMBER", number, offset, f"{name} is not a decimal number")
            return None
        if len(self._numbers) < _VALUE_CACHE_LIMIT:
            self._numbers[value] = result
        return result

    def _date(self, value: bytes) -> date:
        """A CCYYMMDD date; ValueError when it is not one."""
        result = self._dates.get(value)
        if result is None:
            if len(value) != 8 or not value.isdigit():
                raise ValueError(value)
            result = date.fromisoformat(value.decode("ascii"))
            if len(self._dates) < _VALUE_CACHE_LIMIT:
                self._dates[value] = result
        return result

    def _on_clm(self, body: bytes, number: int, offset: int) -> None:
        if not self._p837:
            return
        self._close_claim(number - 1)
        state = self._state.open(b"CLM", b"")
        if state is None:
            self._error("OUTSIDE_LOOP", number, offset, "CLM outside a 2000B or 2000C loop")
            return
        self._state = state
        elements = body.split(self._element)
        elements += [b""] * (6 - len(elements))
        facility = elements[5].split(self._component)
        facility += [b""] * (3 - len(facility))
        subscriber_id, sub_last, sub_first, sub_birth = self._subscriber
        if self._hl_level == b"23" and self._patient is not None:
            last, first, birth = self._patient
            dependent = True
        else:
            last, first, birth, dependent = sub_last, sub_first, sub_birth, False
        text = self._text
        self._claim = [
            elements[1].decode("latin-1").strip(),
            self._decimal(elements[2], number, offset, "CLM02"),
            text(facility[0]) or None,
            text(facility[2]) or None,
            _make_patient((self._payer_id, subscriber_id, last, first, birth, dependent)),
            number,
            offset,
        ]
        self._claim_lines = []

    def _close_line(self, last: int) -> None:
        line = self._line
        if line is None:
            return
        self._line = None
        if len(line) < 13:
            self._error("LINE_WITHOUT_SV1", line[11], None, "2400 service line without SV1")
            return
        line[12] = last
        self._claim_lines.append(_make_line(line))
        self.lines += 1

    def _close_claim(self, last: int) -> None:
        self._close_line(last)
        claim = self._claim
        if claim is None:
            return
        self._claim = None
        claim_id, total, pos, frequency, patient, number, offset = claim
        if not self._claim_lines:
            self._error("CLAIM_WITHOUT_LINES", number, offset, "2300 claim without a 2400 service line")
        self.claims += 1
        self._done.append(_make_claim((
            claim_id, total, pos, frequency, self._filing, self._payer_id, patient,
            self._billing_npi, tuple(self._claim_lines), number, offset, last,
            self._transaction_segment,
        )))
        self._claim_lines = []

    def _on_lx(self, body: bytes, number: int, offset: int) -> None:
        if not self._p837:
            return
        self._close_line(number - 1)
        state = self._state.open(b"LX", b"") if self._claim is not None else None
        if state is None:
            self._error("OUTSIDE_LOOP", number, offset, "LX outside a 2300 claim")
            return
        self._state = state
        value = body[3:].strip()
        # ServiceLine fields in order; SV1 fills 1-6 and 9-10, DTP 7-8, the close 12.
        self._line = [int(value) if value.isdigit() else None, "", "", (), None, None, None, None, None,
                      0, 0, number]

    def _on_sv1(self, body: bytes, number: int, offset: int) -> None:
        line = self._line
        if line is None or not self._p837 or self._state.loop != "2400":
            if self._p837:
                self._error("OUTSIDE_LOOP", number, offset, "SV1 outside a 2400 service line")
            return
        elements = body.split(self._element)
        if len(elements) < 6:
            elements += [b""] * (6 - len(elements))
        composite = elements[1].split(self._component)
        text = self._text
        line[1] = text(composite[0])
        if len(composite) > 1:
            line[2] = text(composite[1])
            if len(composite) > 2:
                line[3] = tuple(m for m in map(text, composite[2:6]) if m)
        line[4] = self._decimal(elements[2], number, offset, "SV102")
        line[5] = self._decimal(elements[4], number, offset, "SV104")
        line[6] = text(elements[5]) or None
        line[9] = number
        line[10] = offset
        if len(line) == 12:
            line.append(0)

    def _on_dtp(self, body: bytes, number: int, offset: int) -> None:
        line = self._line
        if line is None or not self._p837 or self._state.loop != "2400":
            return
        elements = body.split(self._element)
        if len(elements) < 4 or elements[1].strip() != b"472":
            return
        form, value = elements[2].strip(), elements[3].strip()
        try:
            if form == b"RD8":
                start, _, end = value.partition(b"-")
                line[7] = self._date(start)
                line[8] = self._date(end) if end else None
            else:
                line[7] = self._date(value)
        except ValueError:
            line[7] = None
            self._error("BAD_DATE", number, offset, "DTP03 service date is not a CCYYMMDD calendar date")
