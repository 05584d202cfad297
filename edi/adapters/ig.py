"""The one module that imports pyx12: implementation-guide (005010X222A1) validation.

pyx12 4.0.0 facts this adapter works around:
* it reads ASCII only and crashes on a BOM or any other byte: the input is decoded as latin-1
  and handed over as text, BOM removed;
* it logs element values through ``logging``: its logger gets a NullHandler and stops
  propagating, so nothing of it reaches edi837's logs;
* it knows only ``005010X222A1`` for 837P: ``005010X222`` and ``005010X222A2`` in GS08/ST03 are
  read as X222A1 (the report says so in a note);
* it stops silently on a stray ``~~``, on a segment over about 8 KB and on a truncated file:
  the callback counts the segments it saw, and fewer than edi837's reader read is an
  ``IG_INCOMPLETE`` error (never a file reported valid that pyx12 did not finish);
* its error texts quote element values: they are never used; edi837's messages name the
  segment, element and the X12 code only. The copy of a bad element goes into IK404 of the 999
  (for the submitter) and nowhere else.

Error codes are ``IG_<level>_<X12 code>``: ``IG_IK3_8`` (segment has data element errors),
``IG_IK4_6`` (invalid character in data element), ``IG_IK5_4`` (SE01 count), ``IG_AK9_3``,
``IG_TA1_023``... with the segment number, byte offset, loop and element in the message.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from edi.errors import ErrorEntry

_PYX12_LOGGER = logging.getLogger("pyx12")
_PYX12_LOGGER.handlers[:] = [logging.NullHandler()]
_PYX12_LOGGER.propagate = False
# pyx12 reads segments into an 8 KiB buffer; a longer segment ends its reading (we check first).
PYX12_SEGMENT_LIMIT = 8 * 1024 - 64

IK304 = {"1": "unrecognized segment ID", "2": "unexpected segment", "3": "required segment missing",
         "4": "loop occurs over maximum times", "5": "segment exceeds maximum use",
         "6": "segment not in defined transaction set", "7": "segment not in proper sequence",
         "8": "segment has data element errors", "I4": "implementation 'not used' segment present",
         "I6": "implementation dependent segment missing", "I7": "implementation loop occurs under minimum times",
         "I8": "implementation segment below minimum use", "I9": "implementation dependent 'not used' segment present"}
IK403 = {"1": "required data element missing", "2": "conditional required data element missing",
         "3": "too many data elements", "4": "data element too short", "5": "data element too long",
         "6": "invalid character in data element", "7": "invalid code value", "8": "invalid date",
         "9": "invalid time", "10": "exclusion condition violated", "12": "too many repetitions",
         "13": "too many components", "I10": "implementation 'not used' data element present",
         "I11": "implementation too few repetitions", "I12": "implementation pattern match failure",
         "I13": "implementation dependent 'not used' data element present",
         "I6": "code value not used in implementation", "I9": "implementation dependent data element missing"}
IK502 = {"1": "transaction set not supported", "2": "transaction set trailer missing",
         "3": "transaction set control number in header and trailer do not match",
         "4": "number of included segments does not match actual count",
         "5": "one or more segments in error", "6": "missing or invalid transaction set identifier",
         "7": "missing or invalid transaction set control number", "23": "transaction set control number not unique"}
VALID_IK3 = frozenset(IK304)
VALID_IK4 = frozenset(IK403)


@dataclass(frozen=True, slots=True, kw_only=True)
class IgError:
    level: str  # interchange, group, transaction, segment, element
    code: str  # the X12 code: TA1 note, AK9/IK5, IK3 or IK4 code by level
    segment_id: str | None
    segment: int | None  # 1-based segment number in the file
    element: str | None  # e.g. "SV102" or "SV101-2"
    loop: str | None = None
    bad_value: str | None = field(default=None, repr=False)  # PHI: for IK404 only

    def key(self) -> tuple[str, str, str | None, str | None]:
        """What identifies the error independent of where lines moved."""
        return (self.level, self.code, self.segment_id, self.element)

    def entry(self, offset: int | None) -> ErrorEntry:
        if self.level == "element":
            text = f"{self.element} in loop {self.loop or '?'}: {IK403.get(self.code, 'data element error')} (IK403 {self.code})"
            prefix = "IG_IK4"
        elif self.level == "segment":
            text = f"{self.segment_id} in loop {self.loop or '?'}: {IK304.get(self.code, 'segment error')} (IK304 {self.code})"
            prefix = "IG_IK3"
        elif self.level == "transaction":
            text = f"transaction set: {IK502.get(self.code, 'transaction set error')} (IK502 {self.code})"
            prefix = "IG_IK5"
        elif self.level == "group":
            text = f"functional group error (AK905 {self.code})"
            prefix = "IG_AK9"
        else:
            text = f"interchange error (TA1 note {self.code})"
            prefix = "IG_TA1"
        return ErrorEntry(f"{prefix}_{self.code}", self.segment, offset, text)


@dataclass(slots=True)
class IgResult:
    ok: bool
    errors: list[IgError]
    tree: dict[str, Any]  # pyx12's error tree (JSON): what the 999 is built from
    segments_seen: int
    notes: list[ErrorEntry]
    engine_error: str | None = None  # pyx12 refused the input (e.g. no map for a version)


class _TextFeed:
    """The input as latin-1 text for pyx12, read as it asks, with 837P versions mapped to A1."""

    _VERSION = re.compile(r"005010X222(?:A2)?(?![A-Z0-9])")

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = ""
        self._first = True
        self._ended = False
        self.closed = False
        self.mapped = 0

    def _more(self) -> None:
        try:
            chunk = next(self._chunks).decode("latin-1")
        except StopIteration:
            self._ended = True
            return
        if self._first:
            chunk = chunk.removeprefix("\xef\xbb\xbf")
            self._first = False
        self._buffer += chunk

    def read(self, size: int = -1) -> str:
        while not self._ended and (size < 0 or len(self._buffer) < size + 16):
            self._more()
        # Keep 15 characters back so a version string split between chunks is seen whole.
        keep = 0 if self._ended else 15
        take = len(self._buffer) - keep if size < 0 else min(size, len(self._buffer) - keep)
        text, self._buffer = self._buffer[:take], self._buffer[take:]
        mapped, count = self._VERSION.subn("005010X222A1", text)
        self.mapped += count
        return mapped


def pyx12_check(chunks: Iterable[bytes]) -> IgResult:
    """Run pyx12 over the input: its verdict, errors, error tree and the segments it read."""
    import pyx12.errors
    import pyx12.params
    import pyx12.x12n_document

    feed = _TextFeed(chunks)
    tree_out = io.StringIO()
    seen = [0]
    loops: dict[int, str] = {}

    def on_segment(seg: Any, src: Any, node: Any, valid: bool) -> None:
        seen[0] += 1
        if not valid and node is not None:
            parent = getattr(node, "parent", None)
            loops[seen[0]] = getattr(parent, "id", None) or ""

    try:
        ok = pyx12.x12n_document.x12n_document(
            param=pyx12.params.params(), src_file=feed, fd_997=None, fd_html=None, fd_xmldoc=None,
            fd_json=tree_out, callback=on_segment,
        )
    except (pyx12.errors.X12Error, pyx12.errors.EngineError, KeyError, IndexError, AttributeError,
            ValueError, TypeError) as error:
        return IgResult(ok=False, errors=[], tree={}, segments_seen=seen[0], notes=[],
                        engine_error=type(error).__name__)
    tree = json.loads(tree_out.getvalue() or '{"interchanges": []}')
    errors: list[IgError] = []
    _collect(tree, "root", errors, loops)
    notes = []
    if feed.mapped:
        notes.append(ErrorEntry("IG_VERSION_MAPPED", None, None,
                                "005010X222 / X222A2 checked against the 005010X222A1 implementation guide"))
    return IgResult(ok=bool(ok), errors=errors, tree=tree, segments_seen=seen[0], notes=notes)


def _collect(node: dict[str, Any], level: str, out: list[IgError], loops: dict[int, str]) -> None:
    for error in node.get("errors", []):
        out.append(IgError(level=level, code=str(error.get("err_cde")), segment_id=None,
                           segment=node.get("cur_line"), element=None))
    for child_key, child_level in (("interchanges", "interchange"), ("groups", "group"), ("transactions", "transaction")):
        for child in node.get(child_key, []):
            _collect(child, child_level, out, loops)
    for seg in node.get("segments", []):
        seg_id, number = seg.get("seg_id"), seg.get("cur_line")
        loop = seg.get("ls_id") or loops.get(number) or None
        for error in seg.get("errors", []):
            out.append(IgError(level="segment", code=str(error.get("err_cde")), segment_id=seg_id, segment=number,
                               element=None, loop=loop))
        for element in seg.get("elements", []):
            name = f"{seg_id}{int(element.get('ele_pos') or 0):02d}"
            if element.get("subele_pos"):
                name += f"-{element['subele_pos']}"
            for error in element.get("errors", []):
                out.append(IgError(level="element", code=str(error.get("err_cde")), segment_id=seg_id,
                                   segment=number, element=name, loop=loop, bad_value=error.get("err_val")))


def pyx12_validate(data: bytes) -> tuple[bool, list[IgError]]:
    """pyx12's verdict and errors for a buffer (the tests' oracle)."""
    result = pyx12_check([data])
    if result.engine_error:
        return False, [IgError(level="interchange", code="ENGINE", segment_id=None, segment=None, element=None)]
    return result.ok, result.errors


def iter_unique(entries: Iterable[ErrorEntry]) -> Iterator[ErrorEntry]:
    seen = set()
    for entry in entries:
        key = (entry.code, entry.segment, entry.message)
        if key not in seen:
            seen.add(key)
            yield entry
