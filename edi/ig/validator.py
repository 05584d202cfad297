"""edi837's own implementation-guide check of 837P files (005010X222A1), on its own reader.

Fed the reader's segments one at a time (``feed``), it keeps one transaction set's walk state
and the errors found, so memory stays flat. What it checks, with the X12 code each problem
gets in the 999 (or the TA1):

* the interchange header (ISA) against the control map: an invalid element is a TA1 note
  (ISA01 010, ISA02 011, ISA03 012, ISA04 013, ISA05 005, ISA06 006, ISA07 007, ISA08 008,
  ISA09 014, ISA10 015, ISA11 026 (repetition separator), ISA12 017, ISA13 018, ISA14 019,
  ISA15 020, ISA16 027); IEA: 001 (IEA02), 021 (IEA01), 023 (no IEA), 025 (ISA13 repeated);
* groups: AK905 1 (GS01 not HC), 2 (GS08 not an 837P version), 3 (no GE), 4 (GE02), 5 (GE01),
  6 (GS06 repeated in the interchange);
* transaction sets: IK502 2 (no SE), 3 (SE02), 4 (SE01), 5 (segments in error), 23 (ST02
  repeated in the group);
* segments (IK304): 1 unrecognized (no place in the guide, or an ID that is no X12 ID),
  2 unexpected ("not used" segment or loop), 3 required segment or loop missing, 4 loop over
  its repeat, 5 segment over its max use, 8 data element errors (``edi.ig.elements``);
* the HL structure: HL01 must count 1, 2, 3... in the transaction set, HL02 must name an open
  HL above (IK403 7 on HL01 / HL02); LX01 must count the lines of a claim 1, 2, 3... (IK403 7).

Transaction sets other than 837P 005010X222 (270, 271, 277, 835, 837I, a 999...) are not
judged: they get the note ``IG_NOT_CHECKED`` and no verdict. 005010X222 and X222A2 are read
with the X222A1 tables (noted: ``IG_VERSION_MAPPED``).

Where it differs from pyx12, the oracle (on purpose; tests show each with a minimal file):

* whitespace and line breaks between segments are not data (pyx12: an IK304 1 per indented
  segment; a newline-only terminator stops it at segment 0);
* ISA element errors are TA1 notes (pyx12 leaves them out of its verdict);
* pyx12's internal codes are real 999 codes here: its ``HL1``/``HL2``/``LX`` are IK304 8 with
  IK403 7 on HL01, HL02 or LX01; its ``SEG1`` (separators after the last element) is IK304 8
  with IK403 6 on the empty element; its segment-level "8" without an element (syntax notes,
  too many elements, required composite) names the element: IK403 2, 10, 3 or 1;
* a "not used" data element is IK403 I10 (pyx12 writes 10, exclusion condition violated);
* too many components in a composite is IK403 13 (pyx12 writes 3, or crashes);
* an invalid character in an element is IK403 6 once, with no copy of the value when the value
  holds a separator.

Speed and memory (issue 19: ``validate --ig`` at most 3 times ``validate``, memory flat). The
check is a second pass over the file, after ``validate``'s. ``feed_batch`` runs the common case
inline: a body seen before at its place is one dictionary lookup (per place, keyed by the bytes
as sent: no decoding), and when its walk step needs no replay (``edi.ig.walker.inline_step``:
two counters above zero, one below its limit) the count goes up and the place moves on. A body
not seen before at its place (a quarter of the segments: names, IDs, claim and HL numbers) is
split once and checked by its guide segment's compiled checker (``edi.ig.elements``);
``check_segment`` runs only on a segment that has problems. What a (place, body) gives is pure
(the place, the text and the separators decide it), so reusing it changes no verdict: errors,
segment numbers, offsets, loops and the 999/TA1 are the same as before, byte for byte, on both
corpora, the bench files and 3,186 random and mutated files (compared with the unoptimised
validator in one script), and the tests compare with pyx12 as before.

The memo holds two generations of 8,192 entries: when one is full it becomes the old one (the
one before is dropped) and a body found in the old one moves back; what repeats stays. 32,768
entries in one generation cost 7 MB of peak RSS more for 2% less instructions; a memo that kept
its first 32,768 entries (as before) stopped learning once full.

Measured (whole processes, CPU user+sys from ``/usr/bin/time -f "%U %S %M"``, best of 4
alternating runs, bytecode compiled; busy 2-core machine), ``edi837 validate`` and
``edi837 validate --ig`` on /work/bench-files/s20000.x12 and s50000.x12:

=========  ==============  ===================  ===================  ==============
claims     ``validate``    ``--ig`` before      ``--ig`` after       peak RSS (MB)
=========  ==============  ===================  ===================  ==============
20,000     1.99-2.06 s     7.22 s (3.5x)        3.82 s (1.9x)        26 / 52 / 38
50,000     4.51-4.67 s     16.86 s (3.7x)       8.93 s (1.9x)        41 / 80 / 52
=========  ==============  ===================  ===================  ==============

(peak RSS: ``validate`` / ``--ig`` before / after: the check now adds a constant 11-12 MB: the
guide, its checkers and the memo.) In one process (``own_check`` only, gc off, best of 5) the
check of the 20k file went from 5.3 s to about 1.4-1.8 s. Instructions (valgrind callgrind,
``own_check`` of /work/bench-files/s5000.x12 less the start-up): 3.76 G before, 1.63 G after.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from edi.ig.elements import Checker, ElementProblem, check_segment, compile_checker
from edi.ig.guide import Guide, Node
from edi.ig.walker import Plan, Step, Walker
from edi.records import Record

VERSIONS = ("005010X222", "005010X222A1", "005010X222A2")
ACKNOWLEDGMENT_SETS = ("999", "997", "TA1")
ISA_NOTES = ("010", "011", "012", "013", "005", "006", "007", "008", "014", "015", "026", "017", "018", "019",
             "020", "027")
_SEGMENT_ID = re.compile(r"[A-Z0-9]{2,3}")
_ENVELOPE = frozenset({"ISA", "IEA", "GS", "GE", "ST", "SE"})
_STRUCTURE = frozenset({"HL", "CLM", "LX"})
# What a segment body at a place gives: the plan's inline step (None: the plan is replayed; see
# ``edi.ig.walker``), the walk plan, the element problems, the segment ID, and for an HL, CLM or
# LX the elements its numbering reads (None for the others).
Entry = tuple[Step | None, Plan, tuple[ElementProblem, ...], str, list[str] | None]
_MEMO_LIMIT = 8_192  # entries per generation (two kept): memory stays flat
_IDS_LIMIT = 1_024



def _at(fields: Sequence[str], position: int) -> str:
    """An envelope element, empty when the segment is too short to hold it."""
    return fields[position] if len(fields) > position else ""

class SegmentError(Record):
    """An IK3 (and its IK4s): the segment, where it stands, the code, the element problems."""

    seg_id: str
    number: int  # segment number in the file (ISA = 1)
    offset: int  # byte offset of the segment in the file
    position: int  # IK302: position in the transaction set (ST = 1)
    loop: str  # the guide's loop the segment stands in ("" when it has none)
    code: str  # IK304
    elements: tuple[ElementProblem, ...] = ()


class TransactionResult:
    __slots__ = ("checked", "codes", "errors", "number", "offset", "se_number", "se_offset", "st")

    def __init__(self, st: tuple[str, ...], number: int, offset: int, *, checked: bool) -> None:
        self.st = st
        self.number = number
        self.offset = offset
        self.checked = checked
        self.se_number = number  # where the SE stands (the ST while none was read)
        self.se_offset = offset
        self.codes: list[str] = []  # IK502
        self.errors: list[SegmentError] = []

    @property
    def accepted(self) -> bool:
        return not self.codes and not self.errors


class GroupResult:
    __slots__ = ("checked", "codes", "gs", "number", "offset", "problems", "transactions")

    def __init__(self, gs: tuple[str, ...], number: int, offset: int) -> None:
        self.gs = gs
        self.number = number
        self.offset = offset
        self.codes: list[str] = []  # AK905
        self.transactions: list[TransactionResult] = []
        self.problems: list[ElementProblem] = []  # GS element errors (reported, no AK9 code)
        self.checked = True


class InterchangeResult:
    __slots__ = ("groups", "isa", "notes", "number", "offset", "problems")

    def __init__(self, isa: tuple[str, ...], number: int, offset: int) -> None:
        self.isa = isa
        self.number = number
        self.offset = offset
        self.notes: list[str] = []  # TA1 note codes
        self.groups: list[GroupResult] = []
        self.problems: list[ElementProblem] = []


class Validator:
    """Feed segments in order (``feed``), then ``finish``; read ``interchanges``."""

    def __init__(self, guide: Guide) -> None:
        self.guide = guide
        self.isa_loop = guide.node("/ISA_LOOP")
        self.gs_loop = guide.node("/ISA_LOOP/GS_LOOP")
        self.interchanges: list[InterchangeResult] = []
        self.versions_mapped = 0
        self.unchecked_sets: set[str] = set()
        self.acknowledgments = 0  # transaction sets that are acknowledgments themselves
        self._element = "*"
        self._component = ":"
        self._node: Node = self.isa_loop
        self._plans: dict[tuple[object, ...], Plan] = {}
        self._walker = Walker(":", guide.counter_count, self._plans)
        self._isa: InterchangeResult | None = None
        self._gs: GroupResult | None = None
        self._st: TransactionResult | None = None
        self._isa_ids: set[str] = set()
        self._gs_ids: set[str] = set()
        self._st_ids: set[str] = set()
        self._checking = False
        self._position = 0  # IK302 of the current segment
        self._hl_count = 0
        self._hl_stack: list[int] = []
        self._lx_count = 0
        # Per place (node index), per segment body: what it gives (a segment repeated at one
        # place, as most are, is checked once; the counts are checked every time).
        self._memos: list[dict[bytes, Entry]] = [{} for _ in guide.nodes]
        self._memo_size = 0
        # The previous generation: when the memo is full it becomes this one (and the one before
        # is dropped); a body found here moves back. What repeats stays, what was seen once goes.
        self._old_memos: list[dict[bytes, Entry]] = [{} for _ in guide.nodes]
        self._memo_separators = ("*", ":")
        self._checkers: dict[int, Checker] = guide.checkers
        self._keyed = guide.keyed
        self._seg_ids: set[str] = set()

    # -- feeding -------------------------------------------------------------------------------
    def feed(self, body: bytes, number: int, offset: int) -> None:
        """One segment: its body (no terminator), number and byte offset."""
        self.feed_batch([body], [offset], number)

    def feed_batch(self, bodies: list[bytes], offsets: list[int], number: int) -> None:
        """Consecutive segments (the reader's batch), the first numbered ``number``.

        The common case runs inline: a body seen before at its place (one dictionary lookup,
        no decoding), clean, whose walk step the counts allow without an error (the counters it
        needs above zero, its own below its limit): the count goes up, the place moves on.
        Everything else (a first sight, an error, the envelope) goes through the methods."""
        memos = self._memos
        node = self._node
        memo = memos[node.index]
        walker = self._walker
        counts = walker.counts
        position = self._position
        checking = self._checking
        for body, offset in zip(bodies, offsets, strict=True):
            if checking:
                entry = memo.get(body)
                if entry is None:
                    self._node, self._position = node, position
                    entry = self._first_sight(body, number, offset)
                    if entry is None:  # an envelope segment, or no segment ID: done
                        node, position, checking, walker = self._node, self._position, self._checking, self._walker
                        memo, counts = memos[node.index], walker.counts
                        number += 1
                        continue
                position += 1
                step = entry[0]
                if step is not None:
                    first, second, limited, limit, counter, target, loop = step
                    if counts[first] and counts[second] and counts[limited] < limit:
                        if loop is not None:
                            walker.enter(loop)
                        counts[counter] += 1
                        node = target
                        memo = memos[target.index]
                        if entry[4] is not None:
                            self._node, self._position = node, position
                            self._numbering(entry, number, offset)
                        number += 1
                        continue
                self._node, self._position = node, position
                self._apply(entry, number, offset)
                node = self._node
                memo = memos[node.index]
                number += 1
                continue
            self._node, self._position = node, position
            text = body.decode("latin-1")
            cut = text.find(self._element)
            self._envelope(text if cut < 0 else text[:cut], text, body, number, offset)
            node, position, checking, walker = self._node, self._position, self._checking, self._walker
            memo, counts = memos[node.index], walker.counts
            number += 1
        self._node, self._position = node, position

    def _envelope(self, seg_id: str, text: str, body: bytes, number: int, offset: int) -> None:
        """A segment outside a checked transaction set, or an envelope segment."""
        if seg_id[:3] == "ISA":
            self._element = chr(body[3]) if len(body) > 3 else "*"
            fields = text.split(self._element)
            self._component = fields[16][:1] if len(fields) > 16 and fields[16] else ":"
            self._interchange(fields, number, offset)
            return
        fields = text.split(self._element)
        if seg_id == "IEA":
            self._close_interchange(fields)
        elif seg_id == "GS":
            self._group(fields, number, offset)
        elif seg_id == "GE":
            self._close_group(fields)
        elif seg_id == "ST":
            self._transaction(fields, number, offset)
        elif seg_id == "SE":
            self._close_transaction(fields, number, offset)
        elif self._st is not None:
            self._position += 1

    def _first_sight(self, body: bytes, number: int, offset: int) -> Entry | None:
        """A body not in the memo at this place, in a checked transaction set: its entry (kept),
        or None when it was handled here (an envelope segment; no segment ID: IK304 1)."""
        place = self._node.index
        entry = self._old_memos[place].get(body)
        if entry is None:
            text = body.decode("latin-1")
            element = self._element
            cut = text.find(element)
            seg_id = text if cut < 0 else text[:cut]
            if seg_id in _ENVELOPE:
                self._envelope(seg_id, text, body, number, offset)
                return None
            if seg_id not in self._seg_ids and not self._is_id(seg_id):
                self._position += 1
                self._unrecognized(seg_id, number, offset)
                return None
            entry = self._entry(seg_id, text.split(element)[1:])
        if self._memo_size >= _MEMO_LIMIT:
            # A new generation; the list objects stay (feed_batch holds them).
            memos = self._memos
            self._old_memos[:] = memos
            memos[:] = [{} for _ in memos]
            self._memo_size = 0
        self._memos[place][body] = entry
        self._memo_size += 1
        return entry

    def _clear_memos(self) -> None:
        for memo in self._memos:
            memo.clear()
        for memo in self._old_memos:
            memo.clear()
        self._memo_size = 0

    def _walk_errors(self, node: Node | None, number: int, offset: int) -> None:
        st = self._st
        assert st is not None
        loop = node.loop_id if node is not None else self._node.loop_id
        st.errors += [SegmentError(error.seg_id, number, offset, self._position, loop, error.code)
                      for error in self._walker.errors]

    def finish(self) -> None:
        """End of input: what is still open has no trailer."""
        self._close_open_group()
        if self._isa is not None:
            self._isa.notes.append("023")
            self._isa = None

    # -- envelopes -----------------------------------------------------------------------------
    def _interchange(self, fields: list[str], number: int, offset: int) -> None:
        if self._isa is not None:
            self.finish()
        isa = InterchangeResult(tuple(fields[1:]), number, offset)
        self.interchanges.append(isa)
        self._isa = isa
        self._gs_ids = set()
        control = _at(fields, 13)
        if control in self._isa_ids:
            isa.notes.append("025")
        self._isa_ids.add(control)
        problems = check_segment(self.guide.interchange_header, fields[1:], "\x00")
        isa.problems = problems
        for problem in problems:
            note = ISA_NOTES[problem.position - 1] if 0 < problem.position <= len(ISA_NOTES) else "024"
            if note not in isa.notes:
                isa.notes.append(note)
        self._node = self.isa_loop
        if self._component != self._walker.component:
            self._plans = {}
        if (self._element, self._component) != self._memo_separators:
            # The memo's keys are bodies as sent: they split otherwise with other separators.
            self._clear_memos()
            self._memo_separators = (self._element, self._component)
        self._walker = Walker(self._component, self.guide.counter_count, self._plans)
        self._walker.enter(self.isa_loop)

    def _close_open_group(self) -> None:
        """A transaction set or group still open has no trailer: SE missing (IK502 2), GE missing (AK905 3)."""
        if self._st is not None:
            self._st.codes.append("2")
            self._end_transaction()
        if self._gs is not None:
            self._gs.codes.append("3")
            self._gs = None

    def _close_interchange(self, fields: list[str]) -> None:
        self._close_open_group()
        isa = self._isa
        if isa is None:
            return
        if _at(fields, 2) != _at(isa.isa, 12):
            isa.notes.append("001")
        if not _at(fields, 1).isdigit() or int(fields[1]) != len(isa.groups):
            isa.notes.append("021")
        self._isa = None

    def _group(self, fields: list[str], number: int, offset: int) -> None:
        if self._gs is not None:
            self._close_group([], closed=False)
        group = GroupResult(tuple(fields[1:]), number, offset)
        if self._isa is None:
            return
        self._isa.groups.append(group)
        self._gs = group
        self._st_ids = set()
        control = _at(fields, 6)
        if control in self._gs_ids:
            group.codes.append("6")
        self._gs_ids.add(control)
        version = _at(fields, 8)
        group.checked = _at(fields, 1) == "HC" and version in VERSIONS
        if group.checked:
            gs_node = self.guide.node("/ISA_LOOP/GS_LOOP/GS")
            # X222 and X222A2 are read as X222A1 (noted): GS08 is checked as if it said so.
            group.problems = check_segment(gs_node, [*fields[1:8], "005010X222A1", *fields[9:]], self._component)
            if version != "005010X222A1":
                self.versions_mapped += 1
        self._walker.enter(self.gs_loop)
        self._node = self.guide.node("/ISA_LOOP/GS_LOOP/GS")
        self._walker.counts[self._node.counter] = 1

    def _close_group(self, fields: list[str], *, closed: bool = True) -> None:
        if self._st is not None:
            self._st.codes.append("2")
            self._end_transaction()
        group = self._gs
        if group is None:
            return
        if not closed:
            group.codes.append("3")
        else:
            if _at(fields, 2) != _at(group.gs, 5):
                group.codes.append("4")
            if not _at(fields, 1).isdigit() or int(fields[1]) != len(group.transactions):
                group.codes.append("5")
        self._gs = None

    def _transaction(self, fields: list[str], number: int, offset: int) -> None:
        if self._st is not None:
            self._st.codes.append("2")
            self._end_transaction()
        group = self._gs
        st = TransactionResult(tuple(fields[1:]), number, offset, checked=False)
        self._position = 1
        self._hl_count = 0
        self._hl_stack = []
        if group is None:
            return
        group.transactions.append(st)
        self._st = st
        control = _at(fields, 2)
        if control in self._st_ids:
            st.codes.append("23")
        self._st_ids.add(control)
        set_id = _at(fields, 1)
        version = _at(fields, 3) or _at(group.gs, 7)
        if set_id in ACKNOWLEDGMENT_SETS or (group.gs[0] if group.gs else "") == "FA":
            self.acknowledgments += 1
        st.checked = group.checked and set_id == "837" and version in VERSIONS
        self._checking = st.checked
        if not st.checked:
            self.unchecked_sets.add(f"{set_id or '?'} {version or '?'}")
            return
        if len(fields) > 3 and fields[3]:
            fields = [*fields[:3], "005010X222A1", *fields[4:]]
        self._segment("ST", self._element.join(fields), number, offset)

    def _close_transaction(self, fields: list[str], number: int, offset: int) -> None:
        st = self._st
        if st is None:
            return
        self._position += 1
        st.se_number, st.se_offset = number, offset
        if st.checked:
            self._segment("SE", self._element.join(fields), number, offset)
        if _at(fields, 2) != _at(st.st, 1):
            st.codes.append("3")
        if not _at(fields, 1).isdigit() or int(fields[1]) != self._position:
            st.codes.append("4")
        self._end_transaction()

    def _end_transaction(self) -> None:
        st = self._st
        if st is not None and st.errors and "5" not in st.codes:
            st.codes.append("5")
        self._st = None
        self._checking = False

    # -- segments ------------------------------------------------------------------------------
    def _segment(self, seg_id: str, text: str, number: int, offset: int) -> None:
        """An envelope segment of a checked transaction set (ST, SE), checked as the others
        (not kept in the memo: the envelope is never looked up there)."""
        entry = self._entry(seg_id, text.split(self._element)[1:]) if self._is_id(seg_id) else None
        if entry is None:
            self._unrecognized(seg_id, number, offset)
        else:
            self._apply(entry, number, offset)

    def _unrecognized(self, seg_id: str, number: int, offset: int) -> None:
        st = self._st
        assert st is not None
        st.errors.append(SegmentError(seg_id[:3] if _SEGMENT_ID.fullmatch(seg_id[:3]) else "", number, offset,
                                      self._position, "", "1"))

    def _apply(self, entry: Entry, number: int, offset: int) -> None:
        """A segment's entry, the general way: its plan replayed (the counts checked and its
        walk errors reported), its element problems and numbering errors reported."""
        _step, plan, problems, seg_id, numbered = entry
        walker = self._walker
        node = walker.replay(plan, seg_id)
        if walker.errors:
            self._walk_errors(node, number, offset)
        if node is None:
            return
        self._node = node
        if numbered is not None:
            self._numbering(entry, number, offset)
        elif problems:
            self._problems(seg_id, number, offset, problems)

    def _numbering(self, entry: Entry, number: int, offset: int) -> None:
        """An HL, CLM or LX: its numbering checked, its problems and those reported."""
        _step, _plan, problems, seg_id, elements = entry
        extra = self._structure(seg_id, elements or [])
        if problems or extra:
            self._problems(seg_id, number, offset, problems + tuple(extra))

    def _problems(self, seg_id: str, number: int, offset: int, problems: tuple[ElementProblem, ...]) -> None:
        st = self._st
        assert st is not None
        st.errors.append(SegmentError(seg_id, number, offset, self._position, self._node.loop_id, "8", problems))

    def _is_id(self, seg_id: str) -> bool:
        """A segment ID (two or three capitals or digits); the IDs seen are remembered."""
        if seg_id in self._seg_ids:
            return True
        if not seg_id or not _SEGMENT_ID.fullmatch(seg_id):
            return False
        if len(self._seg_ids) < _IDS_LIMIT:
            self._seg_ids.add(seg_id)
        return True

    def _entry(self, seg_id: str, elements: list[str]) -> Entry:
        """What a segment gives at this place: its walk plan, element problems and inline step.
        All depend on the place and the text only."""
        component = self._component
        places = self._keyed.get(seg_id)
        if places is None:
            key: tuple[object, ...] = (self._node.index, seg_id)
        elif len(places) == 1 and places[0] == (1, False):
            key = (self._node.index, seg_id, elements[0].rstrip(component) if elements else None)
        else:
            key = (self._node.index, seg_id, *[_qualifier(elements, place, component) for place in places])
        plan = self._plans.get(key) or self._walker.plan(self._node, seg_id, elements, key)
        node = plan[0]
        numbered = elements if seg_id in _STRUCTURE else None
        if node is None:
            return None, plan, (), seg_id, numbered
        checker = self._checkers.get(node.index)
        if checker is None:
            checker = self._checkers[node.index] = compile_checker(node)
        # A separator after the last element is an invalid character (IK403 6) but in the envelope.
        trailing = bool(elements) and elements[-1] == "" and seg_id not in _ENVELOPE
        if not trailing and checker(elements, component):
            return plan[2], plan, (), seg_id, numbered
        problems = check_segment(node, elements, component)
        if trailing:
            problems.append(ElementProblem(len(elements), 0, "", "6", None))
        return (None if problems else plan[2]), plan, tuple(problems), seg_id, numbered

    def _structure(self, seg_id: str, elements: list[str]) -> list[ElementProblem]:
        """HL numbering and parents; LX numbering within a claim."""
        out: list[ElementProblem] = []
        if seg_id == "HL":
            self._hl_count += 1
            own = elements[0] if elements else ""
            if own != str(self._hl_count) and not (own.isdigit() and int(own) == self._hl_count):
                out.append(ElementProblem(1, 0, "628", "7", None))
            parent = _at(elements, 1)
            if parent:
                parent_number = int(parent) if parent.isdigit() else None
                if parent_number not in self._hl_stack:
                    out.append(ElementProblem(2, 0, "734", "7", None))
                while self._hl_stack and self._hl_stack[-1] != parent_number:
                    self._hl_stack.pop()
            self._hl_stack.append(self._hl_count)
        elif seg_id == "CLM":
            self._lx_count = 0
        elif seg_id == "LX":
            self._lx_count += 1
            if (elements[0] if elements else "") != str(self._lx_count):
                out.append(ElementProblem(1, 0, "554", "7", None))
        return out


def _qualifier(elements: list[str], place: tuple[int, bool], component: str) -> str | None:
    position, first_component = place
    if position > len(elements):
        return None
    value = elements[position - 1]
    return value.split(component, 1)[0] if first_component else value.rstrip(component)
