"""``validate --ig`` and ``--ack``: run the implementation-guide check on a file, add its errors
to the report, write the acknowledgment.

Two engines: ``own`` (the default: ``edi.ig``, edi837's reader and the compiled X222A1 tables,
see ``edi.adapters.ig_own``) and ``pyx12`` (``--ig-engine pyx12``: the former adapter, kept as a
second opinion and the tests' oracle). With pyx12 the file is read again (pyx12 streams it; a
third, cheap pass maps segment numbers to byte offsets) and a file pyx12 did not read to the end
is never called valid.
"""

from __future__ import annotations

from edi.adapters import files
from edi.adapters.ig import PYX12_SEGMENT_LIMIT, iter_unique, pyx12_check
from edi.adapters.ig_own import entries, own_check, write_acknowledgment
from edi.errors import ErrorEntry
from edi.ig.acknowledge import AckIdentity
from edi.pipeline import Limits
from edi.report.ack import build_999, build_ta1, envelope_from, ta1_note
from edi.report.model import FileReport
from edi.x12.reader import Reader


def offsets_of(path: str | files.Spool, numbers: set[int], limits: Limits) -> dict[int, int]:
    """Byte offsets of the given segment numbers (a reader pass, no claim walk)."""
    found: dict[int, int] = {}
    if not numbers:
        return found
    reader = Reader(max_segment_length=limits.max_segment_length, max_elements=limits.max_elements)
    last = max(numbers)
    try:
        for chunk in files.read_source(path):
            reader.feed(chunk)
            for batch in reader.batches():
                first = batch.first_number
                for number in numbers:
                    if first <= number < first + len(batch.bodies):
                        found[number] = batch.offsets[number - first]
            if reader.segment_count >= last:
                break
    except Exception:  # noqa: BLE001 - offsets are a convenience; the errors stand without them
        return found
    return found


def check_file(path: str | files.Spool, report: FileReport, *, limits: Limits, ack_path: str | None,
               ack_control: int | None, engine: str = "own", identity: AckIdentity | None = None) -> FileReport:
    if engine == "own":
        return _own_check_file(path, report, limits=limits, ack_path=ack_path,
                               identity=(identity or AckIdentity())._replace(
                                   control=ack_control if ack_control is not None else (identity or AckIdentity()).control))
    errors = list(report.errors)
    notes = list(report.notes)
    result = None
    if report.fatal or report.unreadable:
        notes.append(ErrorEntry("IG_NOT_RUN", None, None, "the file could not be read to its end: no implementation-guide check"))
    elif report.longest_segment > PYX12_SEGMENT_LIMIT:
        errors.append(ErrorEntry("IG_SEGMENT_TOO_LONG", None, None,
                                 f"a segment of {report.longest_segment} bytes: the implementation-guide check "
                                 f"reads segments up to {PYX12_SEGMENT_LIMIT} bytes"))
    else:
        result = pyx12_check(files.read_source(path))
        if result.engine_error:
            entry = ErrorEntry("IG_NOT_CHECKED", None, None,
                               f"pyx12 could not check this interchange ({result.engine_error})")
            (errors if report.transactions else notes).append(entry)
        else:
            if result.segments_seen < report.segments:
                errors.append(ErrorEntry("IG_INCOMPLETE", result.segments_seen + 1, None,
                                         f"the implementation-guide check stopped after segment {result.segments_seen} "
                                         f"of {report.segments}"))
            numbers = {e.segment for e in result.errors if e.segment}
            offsets = offsets_of(path, numbers, limits)
            errors += iter_unique(e.entry(offsets.get(e.segment) if e.segment else None) for e in result.errors)
            notes += result.notes
    report = report._replace(errors=tuple(sorted(errors, key=lambda e: e.segment or 0)), notes=tuple(notes))
    if ack_path:
        envelope = envelope_from(report.headers)
        if envelope is None:
            return report._replace(errors=report.errors + (
                ErrorEntry("ACK_NOT_POSSIBLE", None, None, "no ISA header: no acknowledgment can be addressed"),))
        note = ta1_note([e.code for e in report.errors])
        if note is not None or result is None or result.engine_error:
            data = build_ta1(envelope, note or "024", control=ack_control)
        else:
            data = build_999(envelope, result.tree, control=ack_control)
        files.write_atomically(ack_path, data)
    return report


def _own_check_file(path: str | files.Spool, report: FileReport, *, limits: Limits, ack_path: str | None,
                    identity: AckIdentity) -> FileReport:
    """edi837's own check: its errors join the report's; the 999/TA1 is built from them."""
    errors = list(report.errors)
    notes = list(report.notes)
    validator = own_check(path, limits)
    found, noted = entries(validator)
    errors += found
    notes += noted
    if ack_path:
        skipped = write_acknowledgment(validator, ack_path, identity)
        if skipped is not None:
            notes.append(skipped)
    return report._replace(errors=tuple(sorted(errors, key=lambda e: e.segment or 0)), notes=tuple(notes))
