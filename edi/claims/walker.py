"""The claim walker: segments in, immutable ``Claim`` values out, structure errors on the side.

Driven by an implementation guide (``edi.claims.guide``; the 837P's is ``edi.claims.x222a1``):
its loop table, hierarchy levels and facts decide what is read; the walker adds only what every
X12 transaction shares (the envelope, HL01/HL02 links) and the claim model's assembly. The hot
path is ``walk_batch``: each segment's first four bytes say which handler (if any) wants it
(``edi.x12.fastpath.dispatch``, in C when built: a segment nobody handles costs no Python
code); the four bytes determine the tag exactly (a tag of at most three characters is followed
by the element separator within them). Only segments some fact or loop needs are looked at.
One claim is held at a time, so memory does not grow with the file.

Speed, measured in instructions (valgrind callgrind, walker = walking the batches of
/work/bench-files/s5000.x12 minus reading them; ``cg.py`` reads every batch, then walks them):
~152k per claim (762 M at 5k claims) before the round of issue 19, 736 M (-3.5%) after it.
Where they went: the per-segment map (slice of four bytes, hash, lookup) ~28k per claim, the
loop over the ~17 handled segments and their calls ~35-40k (both now in C: wall time of the walk
over a 20k-claim file 180 ms -> 140 ms), the handlers' bodies the rest, mostly allocation
(splitting a segment into elements, the values built). What was measured and kept: one cache
per line's combination of bodies (``_line_reader``: -8.6 M), the subscriber's SBR parsed once
per distinct segment (``repeating_loops``: -9.7 M), CLM's tag from the guide instead of a
partition (-6.2 M), the claim's head kept as one tuple (-1.9 M); the claim, line and patient
values built by ``tuple.__new__`` called with the class (a ``partial`` of it added a call per
value) from tuples joined by ``+`` (``(*a, b)`` builds a list first): -8.9 M of the whole
``validate`` of s5000 (1,105.7 M -> 1,096.8 M; wall at 20k, best of 10 alternated, ~1%).
Measured and dropped:
reading a claim's interior in bulk (the runs between stops, each run's handler tuple as a
shape with a cached template of where each line's segments stand, ``list.index`` to find the
next stop): +9 M (the per-run shape tuple, the stop search and the second lookup of a stop's
handler cost more than the ~10 handler calls per claim they save); looking a loop move up in
the state's memo before calling ``LoopState.open``: +4 M (two dict lookups beat no call);
skipping the context handlers in the batch loop while a claim is open (REF, NM1 of 2310B:
~4 calls per claim that return at once): +3 M (the test runs on every handled segment).

Handlers are module functions taking the walker as their first argument (the dispatch tables
hold functions, never bound methods): a walker holds no reference to itself and is freed by
reference counting alone, with the cyclic garbage collector off.

Other transactions on the same channel (837I ``X223``, 837D ``X224``, 835, 999, 4010 837P) are
counted, noted and passed over: not errors. A transaction is read when ST01 is the guide's
transaction set and its version (ST03, else GS08) one of the guide's versions.

Structure errors (stable codes, beside the envelope codes of ``edi.x12.envelope``):

======================  ======================================================
``HL_DUPLICATE_ID``     an HL01 already used in the transaction set
``HL_PARENT_UNKNOWN``   HL02 names no earlier HL of the transaction set
``CLAIM_WITHOUT_LINES`` a 2300 claim with no 2400 service line
``LINE_WITHOUT_SV1``    a 2400 loop with no SV1
``BAD_NUMBER``          CLM02, SV102 or SV104 is not a decimal number
``BAD_DATE``            a DTP*472 date that is not a calendar date
``BAD_PROCEDURE_QUALIFIER``  SV101-1 is not a procedure code qualifier (HC, ER, IV,
                        WK): the procedure code cannot be read; the message names
                        the likely cause (another component separator than ISA16)
``EMPTY_SEGMENT``       an empty segment (a stray terminator)
``BAD_SEGMENT_ID``      a segment ID that is not 2-3 upper-case letters or digits
``OUTSIDE_LOOP``        a claim or line segment where its loop cannot open
======================  ======================================================
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation
from operator import itemgetter
from typing import Any

from edi.claims.guide import (
    CompiledGuide,
    ImplementationGuide,
    SegmentFacts,
    compile_guide,
    extractor_source,
)
from edi.claims.loops import LoopState, LoopTable
from edi.claims.model import Claim, PatientIdentity, ServiceLine
from edi.claims.x222a1 import X222A1
from edi.errors import ErrorEntry
from edi.x12.envelope import EnvelopeChecker
from edi.x12.fastpath import dispatch
from edi.x12.segment import Segment, SegmentBatch

_SEGMENT_ID = re.compile(rb"[A-Z][A-Z0-9]{1,2}\Z")
_DISPATCH_LIMIT = 4096
_VALUE_CACHE_LIMIT = 65_536
# ``_new(Claim, values)`` builds the NamedTuple in C (``_make`` runs Python code); called with the
# class rather than through ``partial(tuple.__new__, Claim)``, which adds a call per value.
_new = tuple.__new__

Handler = Callable[["ClaimWalker", bytes, int, int], None]
# The context facts a claim takes (see the guide's FACTS): its patient's identity, from the
# 2010CA patient when the claim is a dependent's, else from the 2010BA subscriber.
_SUBSCRIBER_IDENTITY = ("payer_id", "subscriber_id", "subscriber_last_name", "subscriber_first_name",
                        "subscriber_birth_date")
_DEPENDENT_IDENTITY = ("payer_id", "subscriber_id", "patient_last_name", "patient_first_name", "patient_birth_date")
_CLAIM_CONTEXT = ("filing_indicator", "payer_id", "billing_npi", "billing_tax_id")


class ValueParsers:
    """The parsers a guide's facts name, with caches: codes, amounts and dates repeat across a
    file, so each distinct value is parsed once. Errors go to the walker's list."""

    __slots__ = ("_dates", "_numbers", "_texts", "errors")

    def __init__(self, errors: list[ErrorEntry]) -> None:
        self.errors = errors
        self._texts: dict[bytes, str] = {}
        self._numbers: dict[bytes, Decimal] = {}
        self._dates: dict[bytes, dt.date] = {}

    def text(self, value: bytes) -> str:
        text = self._texts.get(value)
        if text is None:
            text = value.decode("latin-1").strip()
            if len(self._texts) < _VALUE_CACHE_LIMIT:
                self._texts[value] = text
        return text

    @staticmethod
    def unique(value: bytes) -> str:
        return value.decode("latin-1").strip()

    def text_list(self, values: list[bytes]) -> tuple[str, ...]:
        return tuple(text for text in map(self.text, values) if text)

    def code(self, value: bytes, codes: frozenset[str], number: int, offset: int, name: str) -> str:
        """A value from the guide's code list for the element; anything else is an error."""
        text = self.text(value)
        if text in codes:
            return text
        expected = ", ".join(sorted(codes))
        stray = sorted({chr(byte) for byte in value if not chr(byte).isalnum() and byte > 32})
        if stray:
            # The element holds no component separator the ISA declared but a punctuation mark:
            # the usual cause is a sender writing another separator than its ISA16 ('>' for ':').
            cause = (f"it holds {' '.join(repr(c) for c in stray)} where a component separator is expected: "
                     "the file may separate components with another character than ISA16 declares")
        else:
            cause = "the procedure code cannot be read"
        self.errors.append(ErrorEntry("BAD_PROCEDURE_QUALIFIER", number, offset,
                                      f"{name} is not a procedure code qualifier ({expected}); {cause}"))
        return text

    @staticmethod
    def count(value: bytes) -> int | None:
        return int(value) if value.isdigit() else None

    def amount(self, value: bytes, number: int, offset: int, name: str) -> Decimal | None:
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
            self.errors.append(ErrorEntry("BAD_NUMBER", number, offset, f"{name} is not a decimal number"))
            return None
        if len(self._numbers) < _VALUE_CACHE_LIMIT:
            self._numbers[value] = result
        return result

    def date(self, value: bytes) -> dt.date:
        """A CCYYMMDD date; ValueError when it is not one."""
        result = self._dates.get(value)
        if result is None:
            if len(value) != 8 or not value.isdigit():
                raise ValueError(value)
            result = dt.date.fromisoformat(value.decode("ascii"))
            if len(self._dates) < _VALUE_CACHE_LIMIT:
                self._dates[value] = result
        return result

    def period(self, form: bytes, value: bytes, number: int,
               offset: int) -> tuple[dt.date | None, dt.date | None]:
        """A D8 date or an RD8 range (``form`` is the element before, DTP02)."""
        form, value = form.strip(), value.strip()
        try:
            if form == b"RD8":
                start, _, end = value.partition(b"-")
                return self.date(start), self.date(end) if end else None
            return self.date(value), None
        except ValueError:
            self.errors.append(ErrorEntry("BAD_DATE", number, offset,
                                          "DTP03 service date is not a CCYYMMDD calendar date"))
            return None, None


class _Plan:
    """A compiled guide as the walker runs it: handlers per tag and the line layout."""

    def __init__(self, guide: ImplementationGuide) -> None:
        compiled: CompiledGuide = compile_guide(guide)
        self.guide = guide
        self.compiled = compiled
        self.table = LoopTable(guide.loops)
        self.levels = {level.code: level.loop for level in guide.hierarchy}
        self.line_segments = compiled.lines[1:]  # the opener (LX) is kept apart
        self.line_opener = compiled.lines[0]
        # The service segment's facts come first among the line's (its body is the record's
        # fourth item: ``edi.claims.model.LocatorStore`` reads it there).
        if not self.line_segments or self.line_segments[0].tag != guide.service_segment:
            raise ValueError("the guide's first line facts after the opener must be its service segment's")
        self.service_slot = 0
        names = self.line_opener.names + tuple(name for item in self.line_segments for name in item.names)
        fields = ServiceLine._fields[: len(names)]
        if names != fields:
            raise ValueError(f"the line facts {names} must fill ServiceLine's fields {fields} in order")
        claim_fields = Claim._fields[: len(compiled.claim.names)]
        if compiled.claim.names != claim_fields:
            raise ValueError(f"the claim facts {compiled.claim.names} must fill Claim's fields {claim_fields}")
        # What a line holds while its claim is open: [LX number, LX offset, LX body], then per
        # line segment its body, number and offset (``line_tail``: none seen yet).
        self.line_tail: tuple[Any, ...] = (None, 0, 0) * len(self.line_segments)
        self.absent = [(None,) * len(item.names) for item in self.line_segments]
        self.by_tag: dict[bytes, Handler] = {
            b"ISA": _on_isa, b"IEA": _on_iea, b"GS": _on_gs, b"GE": _on_ge, b"ST": _on_st, b"SE": _on_se,
            b"HL": _on_hl,
        }
        claim_tag = self.claim_tag = guide.opener(guide.claim_loop)
        for tag, by_loop in compiled.context.items():
            # Rows whose loop can only open inside a claim (SBR: 2320) do not concern a segment
            # read before the claim: it opens no loop there.
            ancestors = guide.ancestors()
            before_claim = [row for row in guide.loops if row.tag == tag
                            and not all(guide.claim_loop in ancestors[parent] for parent in row.parents)]
            qualifier_element = before_claim[0].qualifier_element if before_claim else None
            # What opening each loop resets beyond the facts this segment reads there.
            residual = {loop: _residual(compiled.clears[loop], facts.slots) for loop, facts in by_loop.items()}
            self.by_tag[tag] = _context_handler(tag, by_loop, qualifier_element, guide.repeating_loops, residual)
        for tag in guide.claim_ends_at:
            self.by_tag.setdefault(tag, _close_claim_at)
        for position, fact in enumerate(compiled.inside):
            if fact.segment in self.by_tag:
                raise ValueError(f"fact {fact.name}: {fact.segment!r} is already read elsewhere")
            self.by_tag[fact.segment] = _presence_handler(position, fact.when)  # type: ignore[arg-type]
        self.inside_absent = (False,) * len(compiled.inside)
        self.by_tag[claim_tag] = _on_claim
        self.by_tag[self.line_opener.tag] = _on_line
        for slot, item in enumerate(self.line_segments):
            self.by_tag[item.tag] = _line_segment_handler(slot, item, required=slot == self.service_slot)
        # What a claim takes from the context list (read by name, fetched by position in C).
        context_slot = {name: index for index, name in enumerate(compiled.context_names)}
        self.subscriber_identity = itemgetter(*(context_slot[name] for name in _SUBSCRIBER_IDENTITY))
        self.dependent_identity = itemgetter(*(context_slot[name] for name in _DEPENDENT_IDENTITY))
        self.claim_context = itemgetter(*(context_slot[name] for name in _CLAIM_CONTEXT))
        parents = " or ".join(sorted(guide.parents(guide.claim_loop)))
        self.claim_outside = f"{claim_tag.decode()} outside a {parents} loop"
        self.line_outside = f"{self.line_opener.tag.decode()} outside a {guide.claim_loop} claim"
        self.no_lines = f"{guide.claim_loop} claim without a {guide.line_loop} service line"
        self.no_service = f"{guide.line_loop} service line without {guide.service_segment.decode()}"
        self.service_outside = f"{guide.service_segment.decode()} outside a {guide.line_loop} service line"
        self.read_lines = _line_reader(self)
        self.dependent_loop = guide.dependent_loop
        self.claim_extract = compiled.claim.extract


def _line_reader(plan: _Plan) -> Callable[..., list[ServiceLine]]:
    """The function that turns a closed claim's raw lines into ``ServiceLine`` values.

    Generated from the guide, as its extractors are (``edi.claims.guide``): it runs once per
    line of the file, and a loop over the line's segments measured ~15% slower on the walk.
    Each distinct segment body is read once (only clean reads are kept: an error is reported
    at each segment that has it), and each distinct combination of a line's bodies once more:
    its facts as one tuple, kept only when every part is kept in its own cache (so a hit gives
    what the parts' caches would).
    """
    service = 3 + 3 * plan.service_slot
    slots = range(len(plan.line_segments))
    key = ", ".join(["raw[2]", *(f"raw[{3 + 3 * slot}]" for slot in slots)])
    source = [
        "def read_lines(raw_lines, last, element, component, values, errors, caches):",
        *(f"    cache{slot} = caches[{slot}]" for slot in slots),
        f"    opener_cache = caches[{len(slots)}]",
        f"    line_cache = caches[{len(slots) + 1}]",
        "    following = [*map(first_item, raw_lines[1:]), last + 1]  # C: no comprehension frame",
        "    lines = []",
        "    for raw, after in zip(raw_lines, following):",
        f"        if raw[{service}] is None:",
        "            errors.append(ErrorEntry('LINE_WITHOUT_SV1', raw[0], None, NO_SERVICE))",
        "            continue",
        f"        key = ({key},)",
        "        facts = line_cache.get(key)",
        "        if facts is None:",
        "            clean = len(errors)",
        "            body = raw[2]",
        "            opener = opener_cache.get(body)",
        "            if opener is None:",
        "                opener = extract_opener(body, raw[0], raw[1], element, component, values)",
        "                if len(opener_cache) < LIMIT:",
        "                    opener_cache[body] = opener",
    ]
    namespace: dict[str, Any] = {"ErrorEntry": ErrorEntry, "NO_SERVICE": plan.no_service, "LIMIT": _VALUE_CACHE_LIMIT,
                                 "extract_opener": plan.line_opener.extract, "new": _new, "ServiceLine": ServiceLine,
                                 "first_item": itemgetter(0)}
    kept = ["len(errors) == clean", "len(line_cache) < LIMIT", "raw[2] in opener_cache"]
    for slot, item in enumerate(plan.line_segments):
        at = 3 + 3 * slot
        namespace[f"extract{slot}"] = item.extract
        namespace[f"absent{slot}"] = plan.absent[slot]
        source += [
            f"            body = raw[{at}]",
            "            if body is None:",
            f"                facts{slot} = absent{slot}",
            "            else:",
            f"                facts{slot} = cache{slot}.get(body)",
            f"                if facts{slot} is None:",
            "                    seen = len(errors)",
            f"                    facts{slot} = extract{slot}(body, raw[{at + 1}], raw[{at + 2}], element, component, values)",
            f"                    if len(errors) == seen and len(cache{slot}) < LIMIT:",
            f"                        cache{slot}[body] = facts{slot}",
        ]
        kept.append(f"(raw[{at}] is None or raw[{at}] in cache{slot})")
    parts = ", ".join(["*opener", *(f"*facts{slot}" for slot in slots)])
    source += [
        f"            facts = ({parts},)",
        f"            if {' and '.join(kept)}:",
        "                line_cache[key] = facts",
        f"        lines.append(new(ServiceLine, facts + (raw[{service + 1}], raw[{service + 2}], raw[0], after - 1)))",
        "    return lines",
    ]
    exec("\n".join(source), namespace)  # noqa: S102 - source built above from the guide's own data
    return namespace["read_lines"]


def _residual(clears: tuple[tuple[slice, tuple[Any, ...]], ...], filled: slice | None) -> tuple[Any, ...]:
    """The runs of ``clears`` minus the slots ``filled``."""
    assert filled is not None  # context facts always have slots
    out = []
    for slots, defaults in clears:
        keep = [(index, value) for index, value in zip(range(slots.start, slots.stop), defaults, strict=True)
                if not filled.start <= index < filled.stop]
        runs: list[list[Any]] = []
        for index, value in keep:
            if runs and runs[-1][1] == index:
                runs[-1][1] = index + 1
                runs[-1][2].append(value)
            else:
                runs.append([index, index + 1, [value]])
        out += [(slice(start, stop), tuple(values)) for start, stop, values in runs]
    return tuple(out)


_PLANS: dict[str, _Plan] = {}


def _plan_for(guide: ImplementationGuide) -> _Plan:
    plan = _PLANS.get(guide.name)
    if plan is None or plan.guide is not guide:
        plan = _PLANS[guide.name] = _Plan(guide)
    return plan


class ClaimWalker:
    """Walks one input's segments; hands out each claim once its claim loop has closed."""

    def __init__(self, guide: ImplementationGuide = X222A1) -> None:
        plan = _plan_for(guide)
        self._plan = plan
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
        self._state: LoopState = plan.table.initial
        self._hl_ids: set[bytes] = set()
        self._context: list[Any] = list(plan.compiled.context_defaults)
        self._clears = plan.compiled.clears
        self._line_tail = plan.line_tail
        self._claim: tuple[Any, ...] | None = None
        self._claim_at = (0, 0, 0)  # the open claim's CLM number, offset and body end
        self._lines: list[list[Any]] = []  # the open claim's lines, raw until the claim closes
        self._inside: list[bool] = list(plan.inside_absent)  # the open claim's present facts
        self._selectors: list[bytes | None] = [None] * len(plan.line_segments)
        self._done: list[Claim] = []
        self._last_number = 0
        self._transaction_segment = 0
        # First four bytes of a segment -> its handler, or None for segments nobody needs.
        self._dispatch: dict[bytes, Handler | None] = {}
        self.values = ValueParsers(self.errors)
        # Line segments repeat whole across a file (fee schedules, visit days): each distinct
        # body is parsed once (only clean parses: an error is reported at each segment).
        self._line_values: list[dict[Any, tuple[Any, ...]]] = [{} for _ in range(len(plan.line_segments) + 2)]
        # Per repeating loop (the guide's ``repeating_loops``): its facts by segment body.
        self._repeating: dict[str, dict[bytes, tuple[Any, ...]]] = {loop: {} for loop in plan.guide.repeating_loops}

    # -- driving ---------------------------------------------------------------------------
    def walk_batch(self, batch: SegmentBatch) -> list[Claim]:
        """Consume a reader batch; return the claims it completed (the fast path).

        Each segment's handler is chosen by its first four bytes (``_dispatch``, filled by
        ``_resolve``) and called from ``edi.x12.fastpath.dispatch``: C when it is built, so no
        Python code runs for the segments nobody handles."""
        bodies = batch.bodies
        dispatch(self, bodies, batch.offsets, batch.first_number, self._dispatch, _resolve)
        if bodies:
            self._last_number = batch.first_number + len(bodies) - 1
        done, self._done = self._done, []
        return done

    def walk(self, segments: Iterable[Segment]) -> list[Claim]:
        """Consume ``Segment`` values (the general path); return the claims completed."""
        for segment in segments:
            body, number, offset = segment.body, segment.number, segment.offset
            handler = self._dispatch.get(body[:4], _resolve)
            if handler is _resolve:
                handler = _resolve(self, body, number, offset)
            if handler is not None:
                handler(self, body, number, offset)
            self._last_number = number
        done, self._done = self._done, []
        return done

    def finish(self) -> list[Claim]:
        """End of input: close what is open (a truncated file leaves a claim open)."""
        _close_claim(self, self._last_number, -1)
        self.envelope.finish()
        done, self._done = self._done, []
        return done

    def _error(self, code: str, number: int, offset: int | None, message: str) -> None:
        self.errors.append(ErrorEntry(code, number, offset, message))

    def _segment(self, body: bytes, number: int, offset: int) -> Segment:
        return Segment.make(tag=body.partition(self._element)[0], body=body, number=number, offset=offset)


def _resolve(walker: ClaimWalker, body: bytes, number: int, offset: int) -> Handler | None:
    """The handler for a segment whose first four bytes were not seen yet (and cache it)."""
    key = body[:4]
    if body.startswith(b"ISA"):
        return _on_isa  # never cached: the ISA may change the separators
    tag = body.partition(walker._element)[0]
    handler: Handler | None
    if not body:
        handler = _on_empty
    elif len(tag) > 3 or not _SEGMENT_ID.match(tag):
        handler = _on_bad_tag
    else:
        handler = walker._plan.by_tag.get(tag)
    if len(walker._dispatch) < _DISPATCH_LIMIT:
        walker._dispatch[key] = handler
    return handler


def _on_bad_tag(walker: ClaimWalker, body: bytes, number: int, offset: int) -> None:
    walker._error("BAD_SEGMENT_ID", number, offset, "segment ID is not 2-3 upper-case letters or digits")


def _on_empty(walker: ClaimWalker, body: bytes, number: int, offset: int) -> None:
    walker._error("EMPTY_SEGMENT", number, offset, "empty segment (two terminators in a row)")


# -- envelope --------------------------------------------------------------------------------
def _on_isa(walker: ClaimWalker, body: bytes, number: int, offset: int) -> None:
    # What is open closes under the separators it was read with; then the new ones apply.
    _end_transaction(walker, number - 1, offset)
    element, component = body[3:4], body[-1:]
    if (element, component) != (walker._element, walker._component):
        # Cached facts were split with the old separators: the same bytes mean other elements now.
        for cache in (*walker._line_values, *walker._repeating.values()):
            cache.clear()
    walker._element, walker._component = element, component
    walker._dispatch = {}
    walker._selectors = [
        item.tag + element + item.when[1] + element if item.when else None for item in walker._plan.line_segments
    ]
    walker.envelope.isa(walker._segment(body, number, offset), body.split(element)[1:])


def _on_iea(walker: ClaimWalker, body: bytes, number: int, offset: int) -> None:
    _end_transaction(walker, number - 1, offset)
    walker.envelope.iea(walker._segment(body, number, offset), body.split(walker._element)[1:])


def _on_gs(walker: ClaimWalker, body: bytes, number: int, offset: int) -> None:
    _end_transaction(walker, number - 1, offset)
    elements = body.split(walker._element)[1:]
    walker._gs08 = elements[7].strip() if len(elements) > 7 else b""
    walker.envelope.gs(walker._segment(body, number, offset), elements)


def _on_ge(walker: ClaimWalker, body: bytes, number: int, offset: int) -> None:
    _end_transaction(walker, number - 1, offset)
    walker.envelope.ge(walker._segment(body, number, offset), body.split(walker._element)[1:])


def _on_st(walker: ClaimWalker, body: bytes, number: int, offset: int) -> None:
    _end_transaction(walker, number - 1, offset)
    elements = body.split(walker._element)[1:]
    walker.envelope.st(walker._segment(body, number, offset), elements)
    guide = walker._plan.guide
    kind = elements[0].strip() if elements else b""
    version = elements[2].strip() if len(elements) > 2 and elements[2].strip() else walker._gs08
    walker._p837 = kind == guide.transaction_set and version in guide.versions
    walker._transaction_segment = number
    if walker._p837:
        walker.transactions += 1
        walker._state = walker._plan.table.initial
        walker._hl_ids = set()
        walker._context = list(walker._plan.compiled.context_defaults)
        if version != guide.name.encode():
            walker.notes.append(ErrorEntry(
                "VERSION_VARIANT", number, offset,
                f"{guide.kind} version {version.decode('latin-1')} read with the {guide.name} loop table",
            ))
    else:
        walker.other_transactions += 1
        label = kind.decode("latin-1") or "?"
        shown = version.decode("latin-1") or "no version"
        walker.notes.append(ErrorEntry(
            "PASSED_OVER", number, offset,
            f"transaction set {label} ({shown}) is not an {guide.kind} {guide.family}: counted and passed over",
        ))


def _on_se(walker: ClaimWalker, body: bytes, number: int, offset: int) -> None:
    _end_transaction(walker, number - 1, offset)
    walker.envelope.se(walker._segment(body, number, offset), body.split(walker._element)[1:])


def _end_transaction(walker: ClaimWalker, last: int, end_offset: int) -> None:
    if walker._claim is not None:
        _close_claim(walker, last, end_offset)
    walker._p837 = False


# -- hierarchy and context -------------------------------------------------------------------
def _on_hl(walker: ClaimWalker, body: bytes, number: int, offset: int) -> None:
    if not walker._p837:
        return
    if walker._claim is not None:
        _close_claim(walker, number - 1, offset)
    elements = body.split(walker._element)
    if len(elements) < 4:
        elements += [b""] * (4 - len(elements))
    hl_id, parent, level = elements[1], elements[2], elements[3]
    ids = walker._hl_ids
    if hl_id in ids:
        walker._error("HL_DUPLICATE_ID", number, offset, "HL01 repeats an earlier HL ID of the transaction set")
    if parent and parent not in ids:
        walker._error("HL_PARENT_UNKNOWN", number, offset, "HL02 names no earlier HL of the transaction set")
    ids.add(hl_id)
    # An HL whose level opens no loop here goes back to the header: nothing above holds.
    # Opening a loop resets the facts read in it and in the loops under it.
    state = walker._state = walker._state.open(b"HL", level) or walker._plan.table.initial
    context = walker._context
    for slots, defaults in walker._clears[state.loop]:
        context[slots] = defaults


def _context_handler(tag: bytes, facts_by_loop: dict[str, SegmentFacts], qualifier_element: int | None,
                     repeating_loops: frozenset[str], residual: dict[str, Any]) -> Handler:
    """The handler of a segment read before a claim: it may open a loop, then gives its facts.

    ``qualifier_element``: None when the tag opens no loop before a claim, 0 when it opens one
    whatever its elements, else the element whose value picks the loop (a segment whose
    qualifier opens no loop where it stands is not read). Opening a loop resets the facts read
    in it and in the loops under it (``residual``: those this segment does not set itself).

    Generated from the guide, with each loop's extraction inlined (``edi.claims.guide``): these
    segments come several per claim, and a generic handler calling an extractor measured ~10%
    slower on the walk.
    """
    length = len(tag)
    always_opens = bool(qualifier_element)  # past the qualifier check, a loop was opened
    source = ["def on_context(walker, body, number, offset):",
              "    if walker._claim is not None or not walker._p837:",
              "        return",
              "    element = walker._element",
              "    state = walker._state"]
    if not always_opens:
        source.append("    opened = False")
    if qualifier_element is not None:
        if qualifier_element == 1:
            source += [f"    if body[{length + 3}:{length + 4}] == element:",
                       f"        qualifier = body[{length + 1}:{length + 3}]  # two characters: no split",
                       "    else:",
                       "        parts = body.split(element, 2)",
                       "        qualifier = parts[1].strip() if len(parts) > 1 else b''"]
        elif qualifier_element:
            source += [f"    parts = body.split(element, {qualifier_element + 1})",
                       f"    qualifier = parts[{qualifier_element}].strip() if len(parts) > {qualifier_element} else b''"]
        else:
            source += ["    qualifier = b''"]
        source += [f"    moved = state.open({tag!r}, qualifier)"]
        if always_opens:
            source += ["    if moved is None:", "        return", "    state = walker._state = moved"]
        else:
            source += ["    if moved is not None:", "        state = walker._state = moved", "        opened = True"]
    source += ["    loop = state.loop", "    context = walker._context"]
    namespace: dict[str, Any] = {}
    keyword = "if"
    for loop, facts in facts_by_loop.items():
        assert facts.slots is not None  # context facts always have slots
        source.append(f"    {keyword} loop == {loop!r}:")
        resets = [f"context[{slots.start}:{slots.stop}] = {defaults!r}" for slots, defaults in residual[loop]]
        if resets and always_opens:
            source += ["        " + reset for reset in resets]
        elif resets:
            source += ["        if opened:", *("            " + reset for reset in resets)]
        if facts.when is not None and not always_opens:
            # A segment inside the loop (REF) that does not meet the facts' condition leaves what
            # was read; one that opened the loop reads its facts (None when unmet) over the last.
            position, value = facts.when
            source += ["        if not opened:",
                       f"            parts = body.split(element, {position + 1})",
                       f"            if len(parts) <= {position} or parts[{position}].strip() != {value!r}:",
                       "                return"]
        extraction = extractor_source(facts.facts, indent="        ")
        text = "\n".join(extraction)
        if "component" in text:
            source.append("        component = walker._component")
        if "values" in text:
            source.append("        values = walker.values")
        if loop in repeating_loops:
            source += [f"        cache = walker._repeating[{loop!r}]",
                       "        facts = cache.get(body)",
                       "        if facts is None:",
                       *("    " + line for line in extraction),
                       f"            if len(cache) < {_VALUE_CACHE_LIMIT}:",
                       "                cache[body] = facts"]
        else:
            source += extraction
        source.append(f"        context[{facts.slots.start}:{facts.slots.stop}] = facts")
        keyword = "elif"
    if qualifier_element is not None:
        source += ["    else:" if always_opens else "    elif opened:",
                   "        for slots, defaults in walker._clears[loop]:",
                   "            context[slots] = defaults"]
    exec("\n".join(source), namespace)  # noqa: S102 - source built above from the guide's own data
    return namespace["on_context"]


# -- claims and lines ------------------------------------------------------------------------
def _close_claim_at(walker: ClaimWalker, body: bytes, number: int, offset: int) -> None:
    if walker._claim is not None:
        _close_claim(walker, number - 1, offset)


def _on_claim(walker: ClaimWalker, body: bytes, number: int, offset: int) -> None:
    if not walker._p837:
        return
    if walker._claim is not None:
        _close_claim(walker, number - 1, offset)
    plan = walker._plan
    state = walker._state.open(plan.claim_tag, b"")  # the tag: its handler is dispatched for no other
    if state is None:
        walker._error("OUTSIDE_LOOP", number, offset, plan.claim_outside)
        return
    walker._state = state
    context = walker._context
    dependent = plan.dependent_loop in state.path
    identity = (plan.dependent_identity if dependent else plan.subscriber_identity)(context)
    patient = _new(PatientIdentity, identity + (dependent,))  # noqa: RUF005 - concatenation: no list built
    claim_values = plan.claim_extract(body, number, offset, walker._element, walker._component, walker.values)
    filing, payer_id, billing_npi, billing_tax_id = plan.claim_context(context)
    # The claim's fields up to its present facts, and where it stands (``walker._lines`` is
    # empty: no line is read while no claim is open, and closing one empties it).
    walker._claim = claim_values + (filing, payer_id, patient, billing_npi, billing_tax_id)  # noqa: RUF005 - no list built
    walker._claim_at = (number, offset, offset + len(body))
    walker._inside = list(plan.inside_absent)


def _presence_handler(position: int, when: tuple[int, bytes]) -> Handler:
    """The handler of a segment a ``present`` fact looks for inside a claim (AMT*D, SVD)."""
    element, value = when

    def on_present(walker: ClaimWalker, body: bytes, number: int, offset: int) -> None:
        if walker._claim is None:
            return
        elements = body.split(walker._element, element + 1)
        if len(elements) > element and elements[element].strip() == value:
            walker._inside[position] = True

    return on_present


def _on_line(walker: ClaimWalker, body: bytes, number: int, offset: int) -> None:
    # Within an open claim the line opener always opens the line loop (the claim loop is on
    # the path of every loop inside the claim), so the table is not consulted per line.
    if walker._claim is None:
        if walker._p837:
            walker._error("OUTSIDE_LOOP", number, offset, walker._plan.line_outside)
        return
    walker._lines.append([number, offset, body, *walker._line_tail])


def _line_segment_handler(slot: int, facts: SegmentFacts, *, required: bool) -> Handler:
    """The handler of a segment of the line loop: its body is kept until the claim closes.

    Two shapes: a segment read wherever it stands in the line, the last one counting (SV1),
    and a selected one of which the first counts (DTP*472)."""
    at = 3 + 3 * slot

    def on_line_segment(walker: ClaimWalker, body: bytes, number: int, offset: int) -> None:
        lines = walker._lines
        if walker._claim is None or not lines:
            if required and walker._p837:
                walker._error("OUTSIDE_LOOP", number, offset, walker._plan.service_outside)
            return
        line = lines[-1]
        line[at] = body
        line[at + 1] = number
        line[at + 2] = offset

    def on_first_selected(walker: ClaimWalker, body: bytes, number: int, offset: int) -> None:
        lines = walker._lines
        if not lines or walker._claim is None:
            if required and walker._p837:
                walker._error("OUTSIDE_LOOP", number, offset, walker._plan.service_outside)
            return
        line = lines[-1]
        if line[at] is None and body.startswith(walker._selectors[slot]):  # type: ignore[arg-type]
            line[at] = body
            line[at + 1] = number
            line[at + 2] = offset

    if facts.first_only and facts.when is not None:
        return on_first_selected
    if facts.first_only or facts.when is not None:
        raise ValueError(f"line facts of {facts.tag!r}: first_only and when go together")
    return on_line_segment


def _close_claim(walker: ClaimWalker, last: int, end_offset: int) -> None:
    """Build the claim and its lines (``last``: the claim's last segment, ``end_offset``: where
    the segment after it starts); the lines' facts are read here, in one loop."""
    claim = walker._claim
    if claim is None:
        return
    walker._claim = None
    number, offset, body_end = walker._claim_at
    plan = walker._plan
    raw_lines = walker._lines
    walker._lines = []
    lines = []
    if not raw_lines:
        walker._error("CLAIM_WITHOUT_LINES", number, offset, plan.no_lines)
    else:
        lines = plan.read_lines(raw_lines, last, walker._element, walker._component, walker.values,
                                walker.errors, walker._line_values)
        walker.lines += len(lines)
    walker.claims += 1
    walker._done.append(_new(Claim, claim + tuple(walker._inside) + (
        tuple(lines), number, offset, last, walker._transaction_segment, body_end, end_offset, tuple(raw_lines),
    )))
