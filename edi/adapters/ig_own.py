"""``validate --ig`` with edi837's own implementation-guide check (``edi.ig``): the file read
again by edi837's reader, its errors added to the report, the 999 or TA1 written.

The tables come from the installed package data (``edi/ig/x222a1.json``); the guide is built
from them once per process. The acknowledgment's fallback date (used when the input's ISA09 is
not a valid date) is today's, in UTC: the one clock read, here at the edge.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable
from functools import cache

from edi.adapters import files
from edi.adapters.ig_tables import load_tables
from edi.errors import ErrorEntry
from edi.ig.acknowledge import AckIdentity, acknowledgment, build_ta1
from edi.ig.guide import Guide
from edi.ig.run import validate_chunks
from edi.ig.validator import ISA_NOTES, InterchangeResult, Validator
from edi.pipeline import Limits

IK304 = {"1": "unrecognized segment ID", "2": "unexpected segment", "3": "required segment missing",
         "4": "loop occurs over maximum times", "5": "segment exceeds maximum use",
         "8": "segment has data element errors"}
IK403 = {"1": "required data element missing", "2": "conditional required data element missing",
         "3": "too many data elements", "4": "data element too short", "5": "data element too long",
         "6": "invalid character in data element", "7": "invalid code value", "8": "invalid date",
         "9": "invalid time", "10": "exclusion condition violated", "13": "too many components",
         "I10": "implementation 'not used' data element present"}
IK502 = {"2": "transaction set trailer missing", "3": "SE02 does not match ST02",
         "4": "SE01 does not match the number of segments", "5": "one or more segments in error",
         "23": "ST02 not unique in the group"}
AK905 = {"1": "GS01 is not HC", "2": "GS08 is not an 837P version", "3": "functional group trailer missing",
         "4": "GE02 does not match GS06", "5": "GE01 does not match the number of transaction sets",
         "6": "group control number not unique or not a number"}
TA1 = {"001": "IEA02 does not match ISA13", "021": "IEA01 does not match the number of groups",
       "023": "interchange trailer (IEA) missing", "025": "ISA13 not unique in the file",
       **{note: f"ISA{index + 1:02d} is invalid" for index, note in enumerate(ISA_NOTES)}}


@cache
def guide() -> Guide:
    return Guide(load_tables())


def today() -> tuple[str, str]:
    now = dt.datetime.now(dt.UTC)
    return now.strftime("%Y%m%d"), now.strftime("%H%M")


def entries(validator: Validator) -> tuple[list[ErrorEntry], list[ErrorEntry]]:
    """The report's errors and notes: codes, segment numbers, offsets, loops, element positions
    (never a value)."""
    errors: list[ErrorEntry] = []
    notes: list[ErrorEntry] = []
    for isa in validator.interchanges:
        errors += [ErrorEntry(f"IG_TA1_{note}", isa.number, isa.offset,
                              f"interchange: {TA1.get(note, 'envelope error')} (TA1 note {note})") for note in isa.notes]
        for group in isa.groups:
            errors += [ErrorEntry(f"IG_AK9_{code}", group.number, group.offset,
                                  f"functional group: {AK905.get(code, 'group error')} (AK905 {code})")
                       for code in group.codes]
            errors += [ErrorEntry("IG_GS_ELEMENT", group.number, group.offset,
                                  f"GS{problem.position:02d}: {IK403.get(problem.code, 'element error')} "
                                  f"(IK403 {problem.code})") for problem in group.problems]
            for st in group.transactions:
                errors += [ErrorEntry(f"IG_IK5_{code}", *((st.se_number, st.se_offset) if code in ("3", "4")
                                                           else (st.number, st.offset)),
                                      f"transaction set: {IK502.get(code, 'transaction set error')} (IK502 {code})")
                           for code in st.codes if code != "5"]
                for error in st.errors:
                    where = f"loop {error.loop}" if error.loop else "no loop"
                    if error.code != "8" or not error.elements:
                        errors.append(ErrorEntry(f"IG_IK3_{error.code}", error.number, error.offset,
                                                 f"{error.seg_id or 'segment'} in {where}: {IK304.get(error.code)} "
                                                 f"(IK304 {error.code})"))
                    for problem in error.elements:
                        name = f"{error.seg_id}{problem.position:02d}" + (f"-{problem.component}" if problem.component else "")
                        errors.append(ErrorEntry(f"IG_IK4_{problem.code}", error.number, error.offset,
                                                 f"{name} in {where}: {IK403.get(problem.code, 'element error')} "
                                                 f"(IK403 {problem.code})"))
    if validator.versions_mapped:
        notes.append(ErrorEntry("IG_VERSION_MAPPED", None, None,
                                "005010X222 / X222A2 checked against the 005010X222A1 implementation guide"))
    notes += [ErrorEntry("IG_NOT_CHECKED", None, None, f"transaction set {name}: not judged by the implementation-"
                         "guide check (837P 005010X222 only)") for name in sorted(validator.unchecked_sets)]
    return errors, notes


def own_check(path: str | files.Spool | Callable[[], Iterable[bytes]], limits: Limits) -> Validator:
    """The check over a path, a spool, or a callable giving the input's chunks (the watcher's)."""
    chunks = path() if callable(path) and not isinstance(path, files.Spool) else files.read_source(path)
    validator, _error = validate_chunks(guide(), chunks, max_segment_length=limits.max_segment_length,
                                        max_elements=limits.max_elements)
    return validator


def acknowledge_into(folder: str, name: str, source: Callable[[], Iterable[bytes]], limits: Limits,
                     identity: AckIdentity) -> str | None:
    """The watcher's acknowledgment of one file: ``<folder>/<name>.999`` or ``.ta1`` (written
    atomically, private), or None when there is none to write (an acknowledgment, no 837P)."""
    data, _reason = acknowledgment(own_check(source, limits), identity, today())
    if data is None:
        return None
    return _write_into(folder, name, "ta1" if b"\nTA1*" in data else "999", data)


def reject_interchange_into(folder: str, name: str, isa: tuple[str, ...], note: str, identity: AckIdentity) -> str:
    """A TA1 rejecting an interchange that is refused before it is read, ``<folder>/<name>.ta1``
    (written atomically, private): ``isa`` its ISA01-ISA16, ``note`` the TA105 note code (025:
    duplicate interchange control number)."""
    if len(note) != 3 or not note.isdigit():
        raise ValueError(f"a TA1 note code is three digits, not {note!r}")
    rejected = InterchangeResult(isa, 1, 0)
    rejected.notes.append(note)
    return _write_into(folder, name, "ta1", build_ta1(rejected, identity, today()))


def _write_into(folder: str, name: str, kind: str, data: bytes) -> str:
    """``<folder>/<name>.<kind>``, the folder made private if missing, the file written atomically."""
    target = os.path.join(folder, f"{name}.{kind}")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    files.write_atomically(target, data)
    return target


def write_acknowledgment(validator: Validator, ack_path: str, identity: AckIdentity) -> ErrorEntry | None:
    """Write the 999 or TA1; a note when none is written (and why)."""
    data, reason = acknowledgment(validator, identity, today())
    if data is None:
        return ErrorEntry("IG_ACK_NOT_WRITTEN", None, None, f"no acknowledgment: {reason}")
    files.write_atomically(ack_path, data)
    return None
