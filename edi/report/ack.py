"""Acknowledgments for the submitter: a 999 (005010X231A1) or a TA1, built deterministically.

Control numbers and dates come from the input's envelope (or a configured control number),
never from the clock, so the same input always gives the same acknowledgment. Sender and
receiver are the input's, swapped. The 999 carries one ST per functional group of the input:
AK1, then per transaction set AK2, IK3/IK4 for its segment and element errors, IK5; then AK9.
A TA1 answers an interchange whose envelope failed (premature end of file 023, ISA13/IEA02
mismatch 001, wrong group count 021, duplicate interchange control number 025).

IK404 (the copy of a bad element) is PHI: it is written here, for the submitter, and nowhere
else; it is left out when it would hold a delimiter.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from edi.x12.envelope import EnvelopeHeader

ELEMENT, COMPONENT, REPETITION, TERMINATOR = "*", ":", "^", "~"
TA1_NOTES = {"MISSING_IEA": "023", "IEA02_CONTROL": "001", "IEA01_COUNT": "021", "DUPLICATE_ISA13": "025"}


@dataclass(frozen=True, slots=True)
class Envelope:
    """The input's ISA, GS and ST values an acknowledgment echoes."""

    isa: tuple[str, ...]
    groups: tuple[tuple[tuple[str, ...], tuple[tuple[str, ...], ...]], ...]  # (GS, (ST, ...))


def envelope_from(headers: Iterable[EnvelopeHeader]) -> Envelope | None:
    isa: tuple[str, ...] | None = None
    groups: list[tuple[tuple[str, ...], list[tuple[str, ...]]]] = []
    for header in headers:
        values = tuple(e.decode("latin-1").strip() for e in header.elements)
        if header.tag == b"ISA" and isa is None:
            isa = values
        elif header.tag == b"GS":
            groups.append((values, []))
        elif header.tag == b"ST" and groups:
            groups[-1][1].append(values)
    if isa is None or len(isa) < 16:
        return None
    return Envelope(isa=isa, groups=tuple((gs, tuple(sts)) for gs, sts in groups))


def _seg(*elements: str) -> str:
    return ELEMENT.join(elements).rstrip(ELEMENT) + TERMINATOR


def _value(values: tuple[str, ...], index: int, default: str = "") -> str:
    return values[index] if len(values) > index and values[index] else default


def _interchange_header(envelope: Envelope, control: str) -> str:
    isa = envelope.isa
    return ELEMENT.join((
        "ISA", "00", " " * 10, "00", " " * 10,
        _value(isa, 6, "ZZ").ljust(2)[:2], _value(isa, 7, "RECEIVER").ljust(15)[:15],
        _value(isa, 4, "ZZ").ljust(2)[:2], _value(isa, 5, "SENDER").ljust(15)[:15],
        _value(isa, 8, "000101").rjust(6, "0")[:6], _value(isa, 9, "0000").rjust(4, "0")[:4],
        REPETITION, "00501", control, "0", _value(isa, 14, "P")[:1] or "P", COMPONENT,
    )) + TERMINATOR


def _control(envelope: Envelope, configured: int | None) -> str:
    if configured is not None:
        return f"{configured % 1_000_000_000:09d}"
    digits = "".join(ch for ch in _value(envelope.isa, 12, "1") if ch.isdigit()) or "1"
    return f"{int(digits) % 1_000_000_000:09d}"


def build_999(envelope: Envelope, tree: dict[str, Any], *, control: int | None = None) -> bytes:
    """The 999 for the input, from pyx12's error tree and the input's envelope."""
    number = _control(envelope, control)
    group_control = str(int(number))
    lines = [_interchange_header(envelope, number)]
    gs_date = None
    tree_groups = [g for interchange in tree.get("interchanges", []) for g in interchange.get("groups", [])]
    sets = []
    for index, (gs, transactions) in enumerate(envelope.groups):
        if gs_date is None:
            gs_date = (_value(gs, 3, "20000101"), _value(gs, 4, "0000"))
        tree_group = tree_groups[index] if index < len(tree_groups) else {}
        body = [_seg("AK1", _value(gs, 0, "HC"), _value(gs, 5, "1"), _value(gs, 7))]
        tree_sets = tree_group.get("transactions", [])
        accepted = 0
        for position, st in enumerate(transactions):
            node = tree_sets[position] if position < len(tree_sets) else {}
            body.append(_seg("AK2", _value(st, 0, "837"), _value(st, 1, "0001"), _value(st, 2, _value(gs, 7))))
            body += _segment_errors(node)
            ack = node.get("ack_code") or ("A" if not node else "R")
            codes = sorted({str(e.get("err_cde")) for e in node.get("errors", [])})
            if any(seg.get("errors") or any(el.get("errors") for el in seg.get("elements", []))
                   for seg in node.get("segments", [])):
                codes = sorted(set(codes) | {"5"})
            if ack == "A" and codes:
                ack = "R"
            body.append(_seg("IK5", ack, *codes[:5]))
            accepted += ack in ("A", "E")
        received = len(transactions)
        group_ack = "A" if accepted == received else ("R" if accepted == 0 else "P")
        group_codes = sorted({str(e.get("err_cde")) for e in tree_group.get("errors", [])})[:5]
        included = str(tree_group.get("st_count_orig", received)) if tree_group else str(received)
        body.append(_seg("AK9", group_ack, included, str(received), str(accepted), *group_codes))
        st_control = f"{index + 1:04d}"
        sets.append([_seg("ST", "999", st_control, "005010X231A1"), *body,
                     _seg("SE", str(len(body) + 2), st_control)])
    date, time = gs_date or ("20000101", "0000")
    lines.append(_seg("GS", "FA", _value(envelope.groups[0][0], 2, "RECEIVER") if envelope.groups else "RECEIVER",
                      _value(envelope.groups[0][0], 1, "SENDER") if envelope.groups else "SENDER",
                      date, time, group_control, "X", "005010X231A1"))
    for segments in sets:
        lines += segments
    lines.append(_seg("GE", str(len(sets)), group_control))
    lines.append(_seg("IEA", "1", number))
    return ("\n".join(lines) + "\n").encode("latin-1")


def _segment_errors(node: dict[str, Any]) -> list[str]:
    out = []
    for seg in node.get("segments", []):
        seg_codes = [str(e.get("err_cde")) for e in seg.get("errors", [])]
        element_errors = [(el, str(e.get("err_cde")), e.get("err_val")) for el in seg.get("elements", [])
                          for e in el.get("errors", [])]
        if element_errors and "8" not in seg_codes:
            seg_codes.append("8")
        if not seg_codes:
            continue
        for code in dict.fromkeys(c for c in seg_codes if c in IK3_CODES):
            out.append(_seg("IK3", str(seg.get("seg_id") or ""), str(seg.get("seg_count") or 1), seg.get("ls_id") or "",
                            code))
            if code != "8":
                continue
            for element, element_code, bad in element_errors:
                if element_code not in IK4_CODES:
                    continue
                position = str(element.get("ele_pos") or 1)
                if element.get("subele_pos"):
                    position += COMPONENT + str(element["subele_pos"])
                copy = _safe_copy(bad)
                out.append(_seg("IK4", position, str(element.get("ele_ref_num") or ""), element_code, copy))
    return out


IK3_CODES = frozenset({"1", "2", "3", "4", "5", "6", "7", "8", "I4", "I6", "I7", "I8", "I9"})
IK4_CODES = frozenset({"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "12", "13", "I10", "I11", "I12",
                       "I13", "I6", "I9"})


def _safe_copy(value: Any) -> str:
    if not value:
        return ""
    text = str(value)[:99]
    if any(ch in text for ch in (ELEMENT, COMPONENT, REPETITION, TERMINATOR, "\n", "\r")):
        return ""
    return text


def ta1_note(error_codes: list[str]) -> str | None:
    """The TA1 note code of the first envelope failure, or None when the envelope is sound."""
    for code in error_codes:
        if code in TA1_NOTES:
            return TA1_NOTES[code]
    return None


def build_ta1(envelope: Envelope, note: str, *, control: int | None = None) -> bytes:
    number = _control(envelope, control)
    isa = envelope.isa
    lines = [
        _interchange_header(envelope, number),
        _seg("TA1", _value(isa, 12, "000000000").rjust(9, "0")[:9], _value(isa, 8, "000101"),
             _value(isa, 9, "0000"), "R", note),
        _seg("IEA", "0", number),
    ]
    return ("\n".join(lines) + "\n").encode("latin-1")
