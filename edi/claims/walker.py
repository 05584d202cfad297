"""The 837P walker: segments in, frozen ``Claim`` values out, structure errors on the side.

Driven by the loop table in ``edi.claims.loops``. Per segment it does one dict lookup on the tag;
only the segments it needs (envelope, HL, SBR, NM1, DMG, CLM, LX, SV1, DTP and the loop triggers)
are split into elements. One claim is held at a time, so memory does not grow with the file.

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
from collections.abc import Iterable, Iterator
from datetime import date
from decimal import Decimal, InvalidOperation

from edi.claims.loops import INITIAL, LoopState
from edi.claims.model import Claim, PatientIdentity, ServiceLine
from edi.errors import ErrorEntry
from edi.x12.envelope import EnvelopeChecker
from edi.x12.segment import Segment

P837_VERSIONS = (b"005010X222", b"005010X222A1", b"005010X222A2")
_SEGMENT_ID = re.compile(rb"[A-Z][A-Z0-9]{1,2}\Z")
_make_patient = PatientIdentity._make
_make_line = ServiceLine._make
_make_claim = Claim._make
_LINE_LOOPS = frozenset({"2400", "2410", "2420A", "2420B", "2420C", "2420D", "2420E", "2420F",
                         "2420G", "2420H", "2430", "2440"})


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
        self.segments = 0
        self._element = b"*"
        self._component = b":"
        self._element_text = "*"
        self._component_text = ":"
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
        self._known_tags: set[bytes] = set()
        self._last_number = 0
        self._transaction_segment = 0
        self._handlers = {
            b"ISA": self._on_isa, b"IEA": self._on_iea, b"GS": self._on_gs, b"GE": self._on_ge,
            b"ST": self._on_st, b"SE": self._on_se, b"HL": self._on_hl, b"SBR": self._on_sbr,
            b"NM1": self._on_nm1, b"DMG": self._on_dmg, b"CLM": self._on_clm, b"LX": self._on_lx,
            b"SV1": self._on_sv1, b"DTP": self._on_dtp, b"LIN": self._on_child_loop,
            b"SVD": self._on_child_loop, b"LQ": self._on_child_loop, b"": self._on_empty,
        }

    # -- driving ---------------------------------------------------------------------------
    def walk(self, segments: Iterable[Segment]) -> Iterator[Claim]:
        """Consume segments; yield claims as they complete."""
        handlers = self._handlers
        known = self._known_tags
        done = self._done
        segment = None
        for segment in segments:
            handler = handlers.get(segment[0])
            if handler is not None:
                handler(segment)
                if done:
                    yield from done
                    done.clear()
            elif segment[0] not in known:
                self._check_tag(segment)
        if segment is not None:
            self._last_number = segment[2]

    def finish(self) -> Iterator[Claim]:
        """End of input: close what is open (a truncated file leaves a claim open)."""
        self._close_claim(self._last_number)
        self.envelope.finish()
        yield from self._done
        self._done.clear()

    def _error(self, code: str, segment: Segment, message: str) -> None:
        self.errors.append(ErrorEntry(code, segment[2], segment[3], message))

    def _check_tag(self, segment: Segment) -> None:
        if _SEGMENT_ID.match(segment[0]):
            self._known_tags.add(segment[0])
        else:
            self._error("BAD_SEGMENT_ID", segment, "segment ID is not 2-3 upper-case letters or digits")

    def _on_empty(self, segment: Segment) -> None:
        self._error("EMPTY_SEGMENT", segment, "empty segment (two terminators in a row)")

    def _elements(self, segment: Segment) -> list[bytes]:
        return segment[1].split(self._element)[1:]

    # -- envelope --------------------------------------------------------------------------
    def _on_isa(self, segment: Segment) -> None:
        body = segment[1]
        self._element = body[3:4]
        self._component = body[-1:]
        self._element_text = self._element.decode("latin-1")
        self._component_text = self._component.decode("latin-1")
        self._end_transaction(segment[2] - 1)
        self.envelope.isa(segment, self._elements(segment))

    def _on_iea(self, segment: Segment) -> None:
        self._end_transaction(segment[2] - 1)
        self.envelope.iea(segment, self._elements(segment))

    def _on_gs(self, segment: Segment) -> None:
        self._end_transaction(segment[2] - 1)
        elements = self._elements(segment)
        self._gs08 = elements[7].strip() if len(elements) > 7 else b""
        self.envelope.gs(segment, elements)

    def _on_ge(self, segment: Segment) -> None:
        self._end_transaction(segment[2] - 1)
        self.envelope.ge(segment, self._elements(segment))

    def _on_st(self, segment: Segment) -> None:
        self._end_transaction(segment[2] - 1)
        elements = self._elements(segment)
        self.envelope.st(segment, elements)
        kind = elements[0].strip() if elements else b""
        version = elements[2].strip() if len(elements) > 2 and elements[2].strip() else self._gs08
        self._p837 = kind == b"837" and version in P837_VERSIONS
        self._transaction_segment = segment[2]
        if self._p837:
            self.transactions += 1
            self._state = INITIAL
            self._hl_ids = set()
            self._hl_level = b""
            self._billing_npi = None
            self._reset_subscriber()
            if version != b"005010X222A1":
                self.notes.append(ErrorEntry(
                    "VERSION_VARIANT", segment[2], segment[3],
                    f"837P version {version.decode('latin-1')} read with the 005010X222A1 loop table",
                ))
        else:
            self.other_transactions += 1
            label = kind.decode("latin-1") or "?"
            shown = version.decode("latin-1") or "no version"
            self.notes.append(ErrorEntry(
                "PASSED_OVER", segment[2], segment[3],
                f"transaction set {label} ({shown}) is not an 837P 005010X222: counted and passed over",
            ))

    def _on_se(self, segment: Segment) -> None:
        self._end_transaction(segment[2] - 1)
        self.envelope.se(segment, self._elements(segment))

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

    def _on_hl(self, segment: Segment) -> None:
        if not self._p837:
            return
        self._close_claim(segment[2] - 1)
        elements = self._elements(segment)
        hl_id = elements[0].strip() if elements else b""
        parent = elements[1].strip() if len(elements) > 1 else b""
        level = elements[2].strip() if len(elements) > 2 else b""
        if hl_id in self._hl_ids:
            self._error("HL_DUPLICATE_ID", segment, "HL01 repeats an earlier HL ID of the transaction set")
        if parent and parent not in self._hl_ids:
            self._error("HL_PARENT_UNKNOWN", segment, "HL02 names no earlier HL of the transaction set")
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

    def _fields(self, segment: Segment, width: int) -> list[str]:
        """Elements as text, index 0 = the tag, padded with "" to ``width`` entries."""
        fields = segment[1].decode("latin-1").split(self._element_text)
        if len(fields) < width:
            fields.extend([""] * (width - len(fields)))
        return fields

    def _on_sbr(self, segment: Segment) -> None:
        if not self._p837:
            return
        state = self._state.open(b"SBR", b"")
        if state is not None:
            self._state = state
        elif self._state.loop == "2000B":
            self._filing = self._fields(segment, 10)[9].strip() or None

    def _on_nm1(self, segment: Segment) -> None:
        if not self._p837:
            return
        fields = self._fields(segment, 10)
        state = self._state.open(b"NM1", fields[1].strip().encode("latin-1"))
        if state is None:
            return
        self._state = state
        loop = state.loop
        if loop == "2010BA":
            self._subscriber = (fields[9].strip(), fields[3].strip(), fields[4].strip(), "")
        elif loop == "2010BB":
            self._payer_id = fields[9].strip()
        elif loop == "2010CA":
            self._patient = (fields[3].strip(), fields[4].strip(), "")
        elif loop == "2010AA" and fields[8].strip() == "XX":
            self._billing_npi = fields[9].strip()

    def _on_dmg(self, segment: Segment) -> None:
        if not self._p837:
            return
        loop = self._state.loop
        if loop == "2010BA":
            self._subscriber = self._subscriber[:3] + (self._fields(segment, 3)[2].strip(),)
        elif loop == "2010CA" and self._patient is not None:
            self._patient = self._patient[:2] + (self._fields(segment, 3)[2].strip(),)

    # -- claims and lines ------------------------------------------------------------------
    def _decimal(self, value: str, segment: Segment, name: str) -> Decimal | None:
        if not value:
            return None
        try:
            number = Decimal(value)
            if number.is_finite():
                return number
        except (InvalidOperation, ValueError):
            pass
        self._error("BAD_NUMBER", segment, f"{name} is not a decimal number")
        return None

    def _on_clm(self, segment: Segment) -> None:
        if not self._p837:
            return
        self._close_claim(segment[2] - 1)
        state = self._state.open(b"CLM", b"")
        if state is None:
            self._error("OUTSIDE_LOOP", segment, "CLM outside a 2000B or 2000C loop")
            return
        self._state = state
        fields = self._fields(segment, 6)
        facility = fields[5].split(self._component_text) + ["", "", ""]
        subscriber_id, sub_last, sub_first, sub_birth = self._subscriber
        if self._hl_level == b"23" and self._patient is not None:
            last, first, birth = self._patient
            dependent = True
        else:
            last, first, birth, dependent = sub_last, sub_first, sub_birth, False
        patient = _make_patient((self._payer_id, subscriber_id, last, first, birth, dependent))
        self._claim = [
            fields[1].strip(),
            self._decimal(fields[2].strip(), segment, "CLM02"),
            facility[0].strip() or None,
            facility[2].strip() or None,
            patient,
            segment[2],
            segment[3],
        ]
        self._claim_lines = []

    def _close_line(self, last: int) -> None:
        line = self._line
        if line is None:
            return
        self._line = None
        lx, first, sv1, service_date, service_end = line
        if sv1 is None:
            self.errors.append(ErrorEntry("LINE_WITHOUT_SV1", first, None, "2400 service line without SV1"))
            return
        qualifier, code, modifiers, charge, units, pos, number, offset = sv1
        self._claim_lines.append(_make_line((
            lx, qualifier, code, modifiers, charge, units, pos, service_date, service_end,
            number, offset, first, last,
        )))
        self.lines += 1

    def _close_claim(self, last: int) -> None:
        self._close_line(last)
        claim = self._claim
        if claim is None:
            return
        self._claim = None
        claim_id, total, pos, frequency, patient, number, offset = claim
        if not self._claim_lines:
            self.errors.append(ErrorEntry("CLAIM_WITHOUT_LINES", number, offset, "2300 claim without a 2400 service line"))
        self.claims += 1
        self._done.append(_make_claim((
            claim_id, total, pos, frequency, self._filing, self._payer_id, patient,
            self._billing_npi, tuple(self._claim_lines), number, offset, last,
            self._transaction_segment,
        )))
        self._claim_lines = []

    def _on_lx(self, segment: Segment) -> None:
        if not self._p837:
            return
        self._close_line(segment[2] - 1)
        state = self._state.open(b"LX", b"") if self._claim is not None else None
        if state is None:
            self._error("OUTSIDE_LOOP", segment, "LX outside a 2300 claim")
            return
        self._state = state
        value = self._fields(segment, 2)[1].strip()
        # [LX01, LX segment number, SV1 values, service date, end of a date range]
        self._line = [int(value) if value.isdigit() else None, segment[2], None, None, None]

    def _on_sv1(self, segment: Segment) -> None:
        line = self._line
        if line is None or not self._p837 or self._state.loop != "2400":
            if self._p837:
                self._error("OUTSIDE_LOOP", segment, "SV1 outside a 2400 service line")
            return
        fields = self._fields(segment, 6)
        composite = fields[1].split(self._component_text)
        if len(composite) < 2:
            composite.append("")
        line[2] = (
            composite[0].strip(),
            composite[1].strip(),
            tuple(m.strip() for m in composite[2:6] if m.strip()) if len(composite) > 2 else (),
            self._decimal(fields[2].strip(), segment, "SV102"),
            self._decimal(fields[4].strip(), segment, "SV104"),
            fields[5].strip() or None,
            segment[2],
            segment[3],
        )

    def _on_dtp(self, segment: Segment) -> None:
        line = self._line
        if line is None or not self._p837 or self._state.loop != "2400":
            return
        fields = self._fields(segment, 4)
        if fields[1].strip() != "472":
            return
        form = fields[2].strip()
        value = fields[3].strip()
        try:
            if form == "RD8":
                start, _, end = value.partition("-")
                if len(start) != 8:
                    raise ValueError
                line[3] = date.fromisoformat(start)
                line[4] = date.fromisoformat(end) if len(end) == 8 else None
            else:
                if len(value) != 8:
                    raise ValueError
                line[3] = date.fromisoformat(value)
        except ValueError:
            line[3] = None
            self._error("BAD_DATE", segment, "DTP03 service date is not a CCYYMMDD calendar date")

    def _on_child_loop(self, segment: Segment) -> None:
        if self._p837 and self._state.loop in _LINE_LOOPS:
            self._state = self._state.open(segment[0], b"") or self._state
