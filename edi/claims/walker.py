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
from collections.abc import Callable, Iterable
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import partial
from itertools import compress, repeat
from operator import itemgetter

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
_first_four = itemgetter(slice(0, 4))
_NO_DATES: tuple[None, None] = (None, None)
# Provider and other-payer name loops (2310x, 2330C-G, 2420x) change nothing the claim model
# reads: no DTP*472, SV1, DMG or 2010 name can follow inside them. Skipping them saves a split
# per provider segment; 2330A/B (NM1*IL/PR after an SBR of 2320) still go through the table
# so they are never taken for the subscriber or payer.
_IGNORED_NM1 = frozenset({b"82", b"77", b"DN", b"P3", b"DQ", b"PW", b"45", b"QB", b"DK"})
# tuple.__new__ bound to the class: builds the NamedTuple in C (``_make`` runs Python code).
_make_patient = partial(tuple.__new__, PatientIdentity)
_make_line = partial(tuple.__new__, ServiceLine)
_make_claim = partial(tuple.__new__, Claim)

Handler = Callable[[bytes, int, int], None]


class ClaimWalker:
    """Walks one input's segments; hands out each claim once its 2300 loop has closed."""

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
        self._claim: tuple | None = None
        self._lines: list[list] = []  # the open claim's lines, raw until the claim closes
        self._dtp_472 = b"472*"
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
        # Whole SV1 and DTP bodies repeat too (fee schedules, visit days): parse each once.
        self._sv1s: dict[bytes, tuple] = {}
        self._dtps: dict[bytes, tuple[date | None, date | None]] = {}
        self._payers: dict[bytes, str] = {}

    # -- driving ---------------------------------------------------------------------------
    def walk_batch(self, batch: SegmentBatch) -> list[Claim]:
        """Consume a reader batch; return the claims it completed (the fast path)."""
        resolve = self._resolve
        bodies, offsets, first = batch.bodies, batch.offsets, batch.first_number
        # The handler of every segment, looked up in C; the loop below then runs only for the
        # segments someone handles (None is skipped by compress).
        handlers = list(map(self._dispatch.get, map(_first_four, bodies), repeat(resolve)))
        for index in compress(range(len(bodies)), handlers):
            handler = handlers[index]
            body = bodies[index]
            if handler is resolve:
                handler = resolve(body, first + index, offsets[index])
                if handler is None:
                    continue
            handler(body, first + index, offsets[index])
        if bodies:
            self._last_number = first + len(bodies) - 1
        done, self._done = self._done, []
        return done

    def walk(self, segments: Iterable[Segment]) -> list[Claim]:
        """Consume ``Segment`` values (the general path); return the claims completed."""
        resolve = self._resolve
        for segment in segments:
            body, number, offset = segment.body, segment.number, segment.offset
            handler = self._dispatch.get(body[:4], resolve)
            if handler is resolve:
                handler = resolve(body, number, offset)
            if handler is not None:
                handler(body, number, offset)
            self._last_number = number
        done, self._done = self._done, []
        return done

    def finish(self) -> list[Claim]:
        """End of input: close what is open (a truncated file leaves a claim open)."""
        self._close_claim(self._last_number)
        self.envelope.finish()
        done, self._done = self._done, []
        return done

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
        self._dtp_472 = b"472" + self._element
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
            self._filing = None
            self._payer_id = ""
            self._subscriber = ("", "", "", "")
            self._patient = None
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
        if self._claim is not None:
            self._close_claim(last)
        self._p837 = False

    # -- hierarchy -------------------------------------------------------------------------
    def _on_hl(self, body: bytes, number: int, offset: int) -> None:
        if not self._p837:
            return
        if self._claim is not None:
            self._close_claim(number - 1)
        elements = body.split(self._element)
        if len(elements) < 4:
            elements += [b""] * (4 - len(elements))
        hl_id, parent, level = elements[1], elements[2], elements[3]
        ids = self._hl_ids
        if hl_id in ids:
            self._error("HL_DUPLICATE_ID", number, offset, "HL01 repeats an earlier HL ID of the transaction set")
        if parent and parent not in ids:
            self._error("HL_PARENT_UNKNOWN", number, offset, "HL02 names no earlier HL of the transaction set")
        ids.add(hl_id)
        self._hl_level = level
        self._state = self._state.open(b"HL", level) or INITIAL
        if level == b"23":
            self._patient = ("", "", "")
            return
        if level == b"20":
            self._billing_npi = None
        self._filing = None
        self._payer_id = ""
        self._subscriber = ("", "", "", "")
        self._patient = None

    def _on_sbr(self, body: bytes, number: int, offset: int) -> None:
        # Inside a claim an SBR opens 2320 (other subscriber): nothing the model reads.
        if self._p837 and self._claim is None and self._state.loop == "2000B":
            elements = body.split(self._element, 9)
            self._filing = (self._text(elements[9]) or None) if len(elements) > 9 else None

    def _on_nm1(self, body: bytes, number: int, offset: int) -> None:
        # Inside a claim NM1 opens provider and other-payer loops (2310x, 2330x, 2420x): none
        # of them is read, and none may be taken for the 2010BA subscriber or 2010BB payer.
        if not self._p837 or self._claim is not None:
            return
        if body[6:7] == self._element:  # a two-character qualifier, the rule: no split needed yet
            qualifier = body[4:6]
        else:
            qualifier = body.split(self._element, 2)[1].strip() if body.count(self._element) else b""
        state = self._state.open(b"NM1", qualifier)
        if state is None:
            return
        self._state = state
        loop = state.loop
        if loop == "2010BB":
            payer = self._payers.get(body)  # payers repeat: parse each NM1*PR once
            if payer is None:
                fields = body.split(self._element)
                payer = self._text(fields[9]) if len(fields) > 9 else ""
                if len(self._payers) < _VALUE_CACHE_LIMIT:
                    self._payers[body] = payer
            self._payer_id = payer
            return
        if loop[:2] != "20":
            return
        elements = body.split(self._element)
        if len(elements) < 10:
            elements += [b""] * (10 - len(elements))
        if loop == "2010BA":
            self._subscriber = (elements[9].decode("latin-1").strip(), elements[3].decode("latin-1").strip(),
                                elements[4].decode("latin-1").strip(), "")
        elif loop == "2010CA":
            self._patient = (elements[3].decode("latin-1").strip(), elements[4].decode("latin-1").strip(), "")
        elif loop == "2010AA" and elements[8].strip() == b"XX":
            self._billing_npi = self._text(elements[9])

    def _on_dmg(self, body: bytes, number: int, offset: int) -> None:
        if not self._p837 or self._claim is not None:
            return
        loop = self._state.loop
        if loop == "2010BA":
            elements = body.split(self._element, 3)
            birth = elements[2].decode("latin-1").strip() if len(elements) > 2 else ""
            self._subscriber = self._subscriber[:3] + (birth,)
        elif loop == "2010CA" and self._patient is not None:
            elements = body.split(self._element, 3)
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
        if self._claim is not None:
            self._close_claim(number - 1)
        state = self._state.open(b"CLM", b"")
        if state is None:
            self._error("OUTSIDE_LOOP", number, offset, "CLM outside a 2000B or 2000C loop")
            return
        self._state = state
        elements = body.split(self._element)
        if len(elements) < 6:
            elements += [b""] * (6 - len(elements))
        facility = elements[5].split(self._component)
        if len(facility) < 3:
            facility += [b""] * (3 - len(facility))
        subscriber_id, last, first, birth = self._subscriber
        dependent = self._hl_level == b"23" and self._patient is not None
        if dependent:
            last, first, birth = self._patient  # type: ignore[misc]
        text = self._text
        self._claim = (
            elements[1].decode("latin-1").strip(),
            self._decimal(elements[2], number, offset, "CLM02"),
            text(facility[0]) or None,
            text(facility[2]) or None,
            _make_patient((self._payer_id, subscriber_id, last, first, birth, dependent)),
            number,
            offset,
        )
        self._lines = []

    def _on_lx(self, body: bytes, number: int, offset: int) -> None:
        # Within an open claim LX always opens 2400 (its parent 2300 is on the path of every
        # loop inside the claim), so the table is not consulted per line.
        if self._claim is None:
            if self._p837:
                self._error("OUTSIDE_LOOP", number, offset, "LX outside a 2300 claim")
            return
        # [LX number, LX body, SV1 body, SV1 number, SV1 offset, DTP body, DTP number, DTP offset]
        self._lines.append([number, body, None, 0, 0, None, 0, 0])

    def _on_sv1(self, body: bytes, number: int, offset: int) -> None:
        lines = self._lines
        if self._claim is None or not lines:
            if self._p837:
                self._error("OUTSIDE_LOOP", number, offset, "SV1 outside a 2400 service line")
            return
        line = lines[-1]
        line[2] = body
        line[3] = number
        line[4] = offset

    def _on_dtp(self, body: bytes, number: int, offset: int) -> None:
        lines = self._lines
        if lines and self._claim is not None and body[4:8] == self._dtp_472:
            line = lines[-1]
            if line[5] is None:
                line[5] = body
                line[6] = number
                line[7] = offset

    def _close_claim(self, last: int) -> None:
        """Build the claim and its lines; the lines' fields are parsed here, in one loop."""
        claim = self._claim
        if claim is None:
            return
        self._claim = None
        claim_id, total, pos, frequency, patient, number, offset = claim
        raw_lines = self._lines
        self._lines = []
        lines = []
        if not raw_lines:
            self._error("CLAIM_WITHOUT_LINES", number, offset, "2300 claim without a 2400 service line")
        else:
            sv1s, dtps = self._sv1s, self._dtps
            ends = [line[0] - 1 for line in raw_lines[1:]]
            ends.append(last)
            for (lx_number, lx_body, sv1, sv1_number, sv1_offset, dtp, dtp_number, dtp_offset), end in zip(raw_lines, ends):
                if sv1 is None:
                    self._error("LINE_WITHOUT_SV1", lx_number, None, "2400 service line without SV1")
                    continue
                service = sv1s.get(sv1) or self._parse_sv1(sv1, sv1_number, sv1_offset)
                dates = (dtps.get(dtp) or self._parse_dtp(dtp, dtp_number, dtp_offset)) if dtp is not None else _NO_DATES
                lx = lx_body[3:]
                lines.append(_make_line((
                    int(lx) if lx.isdigit() else None, *service, *dates, sv1_number, sv1_offset, lx_number, end,
                )))
            self.lines += len(lines)
        self.claims += 1
        self._done.append(_make_claim((
            claim_id, total, pos, frequency, self._filing, self._payer_id, patient,
            self._billing_npi, tuple(lines), number, offset, last, self._transaction_segment,
        )))

    def _parse_sv1(self, body: bytes, number: int, offset: int) -> tuple:
        """(qualifier, code, modifiers, charge, units, place of service) of an SV1 body."""
        text = self._text
        elements = body.split(self._element)
        if len(elements) < 6:
            elements += [b""] * (6 - len(elements))
        composite = elements[1].split(self._component)
        errors = len(self.errors)
        service = (
            text(composite[0]),
            text(composite[1]) if len(composite) > 1 else "",
            tuple(m for m in map(text, composite[2:6]) if m) if len(composite) > 2 else (),
            self._decimal(elements[2], number, offset, "SV102"),
            self._decimal(elements[4], number, offset, "SV104"),
            text(elements[5]) or None,
        )
        if len(self.errors) == errors and len(self._sv1s) < _VALUE_CACHE_LIMIT:
            self._sv1s[body] = service  # only clean parses: an error is reported at each segment
        return service

    def _parse_dtp(self, body: bytes, number: int, offset: int) -> tuple[date | None, date | None]:
        elements = body.split(self._element)
        if len(elements) < 4:
            elements += [b""] * (4 - len(elements))
        form, value = elements[2].strip(), elements[3].strip()
        try:
            if form == b"RD8":
                start, _, end = value.partition(b"-")
                dates = (self._date(start), self._date(end) if end else None)
            else:
                dates = (self._date(value), None)
        except ValueError:
            self._error("BAD_DATE", number, offset, "DTP03 service date is not a CCYYMMDD calendar date")
            return _NO_DATES
        if len(self._dtps) < _VALUE_CACHE_LIMIT:
            self._dtps[body] = dates
        return dates
