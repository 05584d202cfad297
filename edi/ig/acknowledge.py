"""The 999 (005010X231A1) or TA1 for a file, from edi837's own implementation-guide results.

* A TA1 answers an interchange whose envelope failed (the ISA's notes: an invalid ISA element,
  IEA01/IEA02, no IEA, a repeated ISA13), and only then; otherwise a 999.
* Sender, receiver and control number are edi837's own when configured (``AckIdentity``: the
  ``--ack-sender`` / ``--ack-control`` options, the watcher's and gateway's settings), else the
  input's receiver answers its sender with the input's ISA13. Dates are the input's ISA09/ISA10
  when they are valid dates, else the caller's ``today`` (the adapter reads the clock; the same
  input and settings give the same acknowledgment).
* Every copied value is cleaned: no padding or whitespace, no separator, cut to the element's
  maximum length; a value that cannot be cleaned into a valid one is replaced (a group control
  number that is not a number is acknowledged as 0 with AK905 6).
* Only checked transaction sets (837P 005010X222*) are acknowledged; no acknowledgment for a
  999, 997 or TA1 (``acknowledgment`` returns None and the reason).
"""

from __future__ import annotations

import re

from edi.ig.elements import valid_date, valid_time
from edi.ig.validator import InterchangeResult, Validator
from edi.records import Record

ELEMENT, COMPONENT, REPETITION, TERMINATOR = "*", ":", "^", "~"
_UNSAFE = re.compile(r"[^A-Za-z0-9 !\"&'()+,\-./;?=%@\[\]_{}\\|<>#$]")
QUALIFIERS = frozenset({"01", "14", "20", "27", "28", "29", "30", "33", "ZZ"})


class AckIdentity(Record):
    """Who acknowledges: ISA05/ISA06 and GS02 of the acknowledgment (None: the input's
    receiver), and its control number (None: the input's ISA13)."""

    qualifier: str | None = None
    sender: str | None = None
    control: int | None = None


def clean(value: str, limit: int) -> str:
    """A value as an acknowledgment may copy it: no separators, no padding, at most ``limit``."""
    return _UNSAFE.sub("", value).strip()[:limit].strip()


def _seg(*elements: str) -> str:
    return ELEMENT.join(elements).rstrip(ELEMENT) + TERMINATOR


def _at(values: tuple[str, ...], index: int) -> str:
    return values[index] if len(values) > index else ""


def _dates(isa: tuple[str, ...], today: tuple[str, str]) -> tuple[str, str]:
    """(CCYYMMDD, HHMM): the input's ISA09/ISA10 when valid, else ``today``."""
    date, time = _at(isa, 8).strip(), _at(isa, 9).strip()
    if len(date) == 6 and valid_date(date, "D6") and len(time) == 4 and valid_time(time):
        return ("20" + date, time)
    return today


def _control(isa: tuple[str, ...], identity: AckIdentity) -> str:
    if identity.control is not None:
        return f"{identity.control % 1_000_000_000:09d}"
    digits = "".join(ch for ch in _at(isa, 12) if ch.isdigit())[-9:] or "1"
    return f"{int(digits):09d}"


def _header(isa: tuple[str, ...], identity: AckIdentity, number: str, date: tuple[str, str]) -> tuple[str, str, str]:
    """The ISA, and the GS sender and receiver."""
    their_qualifier = clean(_at(isa, 4), 2)
    their_id = clean(_at(isa, 5), 15) or "UNKNOWN"
    own_qualifier = identity.qualifier or clean(_at(isa, 6), 2)
    own_id = clean(identity.sender or _at(isa, 7), 15) or "EDI837"
    their_qualifier = their_qualifier if their_qualifier in QUALIFIERS else "ZZ"
    own_qualifier = own_qualifier if own_qualifier in QUALIFIERS else "ZZ"
    usage = _at(isa, 14).strip()
    header = ELEMENT.join((
        "ISA", "00", " " * 10, "00", " " * 10, own_qualifier, own_id.ljust(15), their_qualifier, their_id.ljust(15),
        date[0][2:], date[1], REPETITION, "00501", number, "0", usage if usage in ("P", "T") else "P", COMPONENT,
    )) + TERMINATOR
    return header, own_id, their_id


def build_ta1(isa: InterchangeResult, identity: AckIdentity, today: tuple[str, str]) -> bytes:
    values = isa.isa
    number = _control(values, identity)
    date = _dates(values, today)
    header, _, _ = _header(values, identity, number, date)
    original = "".join(ch for ch in _at(values, 12) if ch.isdigit())[-9:].rjust(9, "0")
    lines = [header, _seg("TA1", original, date[0][2:], date[1], "R", isa.notes[0]), _seg("IEA", "0", number)]
    return ("\n".join(lines) + "\n").encode("ascii")


def build_999(isa: InterchangeResult, identity: AckIdentity, today: tuple[str, str]) -> bytes:
    values = isa.isa
    number = _control(values, identity)
    date = _dates(values, today)
    header, own_id, their_id = _header(values, identity, number, date)
    group_control = str(int(number))
    sets = []
    for index, group in enumerate(g for g in isa.groups if g.checked):
        gs = group.gs
        control = _at(gs, 5).strip()
        codes = list(group.codes)
        if not (control.isdigit() and len(control) <= 9):
            control = "0"
            codes.append("6")
        version = clean(_at(gs, 7), 12) or "005010X222A1"
        body = [_seg("AK1", "HC", str(int(control)), version)]
        accepted = received = 0
        for st in group.transactions:
            if not st.checked:
                continue
            received += 1
            st_control = clean(_at(st.st, 1), 9)
            if len(st_control) < 4:
                st_control = st_control.rjust(4, "0")
            body.append(_seg("AK2", "837", st_control, clean(_at(st.st, 2), 35) or version))
            for error in st.errors[:999]:
                seg_id = error.seg_id if re.fullmatch(r"[A-Z0-9]{2,3}", error.seg_id) else ""
                body.append(_seg("IK3", seg_id or "UNK", str(max(error.position, 1)), "", error.code))
                for problem in error.elements[:99]:
                    position = str(problem.position) + (f"{COMPONENT}{problem.component}" if problem.component else "")
                    ref = problem.ref if problem.ref.isdigit() else ""
                    copy = clean(problem.copy, 99) if problem.copy else ""
                    body.append(_seg("IK4", position, ref, problem.code, copy))
            ok = st.accepted
            accepted += ok
            body.append(_seg("IK5", "A" if ok else "R", *sorted(set(st.codes), key=int)[:5]))
        if not received:
            continue
        status = "A" if accepted == received and not codes else ("R" if accepted == 0 or codes else "P")
        body.append(_seg("AK9", status, str(len(group.transactions)), str(received), str(accepted),
                         *sorted(set(codes), key=int)[:5]))
        st_number = f"{index + 1:04d}"
        sets.append([_seg("ST", "999", st_number, "005010X231A1"), *body, _seg("SE", str(len(body) + 2), st_number)])
    lines = [header, _seg("GS", "FA", own_id, their_id, date[0], date[1], group_control, "X", "005010X231A1")]
    for segments in sets:
        lines += segments
    lines += [_seg("GE", str(len(sets)), group_control), _seg("IEA", "1", number)]
    return ("\n".join(lines) + "\n").encode("ascii")


def acknowledgment(validator: Validator, identity: AckIdentity, today: tuple[str, str]) -> tuple[bytes | None, str]:
    """The acknowledgment of the first interchange, or None and why there is none."""
    if validator.acknowledgments:
        return None, "the input is an acknowledgment: acknowledgments are never acknowledged"
    if not validator.interchanges:
        return None, "no ISA header: no acknowledgment can be addressed"
    isa = validator.interchanges[0]
    if isa.notes:
        return build_ta1(isa, identity, today), ""
    if not any(st.checked for group in isa.groups for st in group.transactions):
        return None, "no 837P 005010X222 transaction set to acknowledge"
    return build_999(isa, identity, today), ""
