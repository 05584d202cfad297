"""An implementation guide as data, and its compilation into what the walker runs.

An ``ImplementationGuide`` states everything edi837 knows of a claim transaction's structure:
its loop table (``LoopRow``: this segment, with this qualifier, opens this loop under one of
these parents), its hierarchy levels, which loop is the claim and which the service line, where
a claim ends, and the ``Fact`` list: what to read from which element of which segment in which
loop. ``edi.claims.x222a1`` is the 837P guide; the walker (``edi.claims.walker``) has no
knowledge of the 837P beyond what a guide states.

``compile_guide`` turns a guide into extractors once, at import: per segment (and loop), a small
function generated from the guide's facts that splits the segment once and returns the facts'
values as a tuple, as fast as a hand-written parser (a loop over fact descriptors per segment
measured ~10% slower on the whole walk). ``namedtuple`` builds its classes the same way.

Parsers a fact may name (``Fact.parse``):

================  ================================================================
``text``          the element decoded (latin-1) and stripped; values that repeat
                  across a file (codes, places) are decoded once (``""`` if absent)
``unique``        the same, not cached: one value per claim or person (IDs, names)
``text_or_none``  ``text``, or None when empty or absent
``text_list``     components ``component..last_component``, the non-empty ones
``amount``        a decimal number (``BAD_NUMBER`` when it is not one), None if empty
``count``         a whole number, None when it is not digits
``period``        a date (D8) or range (RD8) in this element, its format in the one
                  before; fills ``<name>`` and ``<name>_end`` (``BAD_DATE``)
``position``      where the element (or component) stands: its (start, end) byte
                  range within the segment body, None when the segment has none
``raw``           the element's bytes as sent (``b""`` if absent)
``code``          ``text``, checked against the fact's ``codes``: any other value
                  (empty included) is ``BAD_PROCEDURE_QUALIFIER`` at the segment
``present``       True when the claim holds such a segment (meeting ``when``), else
                  False: for facts of loops inside the claim (2320, 2430), read
                  wherever the segment stands in the claim, so the guide's segment
                  and condition must be unique to that loop (AMT*D: 2320 only)
================  ================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edi.records import Record

HEADER = "HEADER"
PARSERS = ("text", "unique", "text_or_none", "text_list", "amount", "count", "period", "position", "raw", "code", "present")


class LoopRow(Record):
    """``tag`` with ``qualifiers`` in element ``qualifier_element`` (0: any) opens ``loop`` when
    one of ``parents`` is open (innermost first)."""

    tag: bytes
    qualifier_element: int
    qualifiers: tuple[bytes, ...]
    loop: str
    parents: tuple[str, ...]


class HierarchyLevel(Record):
    """An HL03 level code and the loop its HL opens."""

    code: bytes
    loop: str


class Fact(Record):
    """Read ``name`` from element ``element`` (1-based; ``component`` 1-based, 0: the whole
    element) of ``segment`` in ``loop``, with parser ``parse``; only where element
    ``when[0]`` is ``when[1]``; ``first_only``: the first such segment of the loop counts;
    ``codes``: the values the ``code`` parser accepts (the guide's code list for the element)."""

    name: str
    segment: bytes
    loop: str
    element: int
    component: int = 0
    last_component: int = 0
    parse: str = "text"
    when: tuple[int, bytes] | None = None
    first_only: bool = False
    codes: tuple[str, ...] = ()

    @property
    def fills(self) -> tuple[str, ...]:
        """The value names this fact fills (a period fills its start and end)."""
        return (self.name, f"{self.name}_end") if self.parse == "period" else (self.name,)

    @property
    def designator(self) -> str:
        """The reference designator, as in error messages: ``CLM02``, ``SV101-2``."""
        tag = self.segment.decode("ascii")
        return f"{tag}{self.element:02d}" + (f"-{self.component}" if self.component else "")


class ImplementationGuide(Record):
    """A transaction's implementation guide, as much of it as edi837 reads (a ``NamedTuple``,
    not a dataclass: ``dataclasses`` would add its import to every run's start-up)."""

    name: str  # the version it describes (GS08 / ST03), e.g. 005010X222A1
    kind: str  # what people call it in messages: 837P
    family: str  # the versions it stands for in messages: 005010X222
    transaction_set: bytes  # ST01
    versions: tuple[bytes, ...]  # versions read with this guide (the others: a note)
    loops: tuple[LoopRow, ...]
    hierarchy: tuple[HierarchyLevel, ...]  # HL03 codes; an HL with another code opens nothing
    claim_loop: str
    line_loop: str
    service_segment: bytes  # the line's required segment (its number identifies the line)
    claim_ends_at: tuple[bytes, ...]  # segments that close an open claim (besides envelopes)
    dependent_loop: str  # a claim under this loop is the patient's, else the subscriber's
    repeating_loops: frozenset[str]  # loops whose segments repeat verbatim: parse each once
    facts: tuple[Fact, ...]

    def opener(self, loop: str) -> bytes:
        """The segment that opens ``loop``."""
        return next(row.tag for row in self.loops if row.loop == loop)

    def parents(self, loop: str) -> tuple[str, ...]:
        return next(row.parents for row in self.loops if row.loop == loop)

    def ancestors(self) -> dict[str, frozenset[str]]:
        """Per loop, itself and every loop it may stand under (through any of its parents)."""
        parents = {row.loop: row.parents for row in self.loops}
        found: dict[str, frozenset[str]] = {HEADER: frozenset({HEADER})}

        def above(loop: str) -> frozenset[str]:
            if loop not in found:
                found[loop] = frozenset({loop}).union(*(above(parent) for parent in parents.get(loop, (HEADER,))))
            return found[loop]

        for loop in parents:
            above(loop)
        return found


Extractor = Callable[..., tuple[Any, ...]]


class SegmentFacts(Record):
    """The facts of one segment in one place, and their compiled extractor.

    ``extract(body, number, offset, element, component, values)`` returns the facts' values in
    ``names`` order (``values`` is the walker's ``ValueParsers``). Context facts have ``slots``:
    where their values stand in the walker's context list (``CompiledGuide.context_names``)."""

    tag: bytes
    loop: str
    names: tuple[str, ...]
    extract: Extractor
    when: tuple[int, bytes] | None
    first_only: bool
    slots: slice | None = None
    facts: tuple[Fact, ...] = ()


class CompiledGuide(Record):
    guide: ImplementationGuide
    context: dict[bytes, dict[str, SegmentFacts]]  # tag -> loop -> facts read before a claim
    context_names: tuple[str, ...]  # the context facts, as the walker keeps them (a list)
    context_defaults: tuple[Any, ...]  # their values when their loop was not read
    clears: dict[str, tuple[tuple[slice, tuple[Any, ...]], ...]]  # loop -> (slots, defaults) it resets
    claim: SegmentFacts  # the facts of the segment that opens the claim
    lines: tuple[SegmentFacts, ...]  # the line loop's segments: its opener first
    inside: tuple[Fact, ...] = ()  # ``present`` facts of loops inside the claim, in Claim field order


_ABSENT = {"text": '""', "unique": '""', "text_or_none": "None", "text_list": "()", "amount": "None",
           "count": "None", "period": "None, None", "position": "None", "raw": 'b""', "code": '""'}


def _expression(fact: Fact) -> str:
    """Python source for one fact's value(s), over ``e`` (the elements) and ``n`` (their count)."""
    element = f"e[{fact.element}]"
    if fact.parse == "position":
        # Inline arithmetic: the element starts after the tag and the elements before it, each
        # with its separator; a component after the components before it.
        start = " + ".join([f"len(e[{index}])" for index in range(fact.element)] + [str(fact.element)])
        if not fact.component:
            return f"(({start}, {start} + len({element})) if n > {fact.element} else None)"
        parts = f"c{fact.element}"
        first = fact.component - 1
        inner = " + ".join([start, *(f"len({parts}[{index}])" for index in range(first)), str(first)])
        return (f"(({inner}, {inner} + len({parts}[{first}])) if n > {fact.element} and len({parts}) > {first} "
                "else None)")
    if fact.parse == "raw":
        return element
    if fact.component:
        first = fact.component - 1
        parts = f"c{fact.element}"
        if fact.parse == "text_list":
            raw = f"{parts}[{first}:{fact.last_component}]"
            return f"values.text_list({raw})"
        value = _call(fact, f"{parts}[{first}]")
        return value if first == 0 else f"({value} if len({parts}) > {first} else {_ABSENT[fact.parse]})"
    if fact.parse == "period":
        return f"*values.period(e[{fact.element - 1}], {element}, number, offset)"
    return _call(fact, element)


def _call(fact: Fact, raw: str) -> str:
    if fact.parse == "text_or_none":
        return f"(text({raw}) or None)"
    if fact.parse == "text":
        return f"text({raw})"
    if fact.parse == "unique":
        return f"{raw}.decode('latin-1').strip()"  # inline: one per claim or person
    if fact.parse == "amount":
        return f'values.amount({raw}, number, offset, "{fact.segment.decode()}{fact.element:02d}")'
    if fact.parse == "code":
        return f"values.code({raw}, {frozenset(fact.codes)!r}, number, offset, {fact.designator!r})"
    return f"values.{fact.parse}({raw})"


def extractor_source(facts: tuple[Fact, ...], *, conditions: bool = True, indent: str = "    ") -> list[str]:
    """Python statements reading all ``facts`` (of one segment) from ``body``, ending with
    ``facts = (...)``: the values in fact order. Free names: ``body``, ``number``, ``offset``,
    ``element``, ``component``, ``values`` (the walker's ``ValueParsers``).

    The elements are padded to the highest element read (absent reads as empty), composites are
    split once each; with ``conditions``, a fact with ``when`` reads as ``None`` when its
    condition does not hold (line facts are selected by the walker instead: first DTP*472).
    """
    for fact in facts:
        if fact.parse not in PARSERS:
            raise ValueError(f"fact {fact.name}: unknown parser {fact.parse!r}")
        if (fact.parse == "code") != bool(fact.codes):
            raise ValueError(f"fact {fact.name}: the code parser and a codes list go together")
    highest = max([f.element for f in facts] + [f.when[0] for f in facts if f.when])
    lines = ["e = body.split(element)",
             "n = len(e)",
             f"if n <= {highest}:",
             f"    e += [b''] * ({highest + 1} - n)"]
    lines += [f"c{number} = e[{number}].split(component)"
              for number in sorted({f.element for f in facts if f.component})]
    items = []
    for fact in facts:
        expression = _expression(fact)
        if fact.when and conditions:
            element, value = fact.when
            expression = f"({expression} if e[{element}].strip() == {value!r} else None)"
        items.append(expression)
    if any("text(" in item for item in items):
        lines.insert(0, "text = values.text")
    lines.append(f"facts = ({', '.join(items)},)")
    return [indent + line for line in lines]


def compile_extractor(facts: tuple[Fact, ...], *, conditions: bool = True) -> Extractor:
    """One function reading all ``facts`` (of one segment) from a segment body (see
    ``extractor_source``): ``extract(body, number, offset, element, component, values)``."""
    lines = ["def extract(body, number, offset, element, component, values):",
             *extractor_source(facts, conditions=conditions),
             "    return facts"]
    namespace: dict[str, Any] = {}
    exec("\n".join(lines), namespace)  # noqa: S102 - source built above from the guide's own data
    return namespace["extract"]


def _segment_facts(facts: list[Fact], *, line: bool) -> SegmentFacts:
    first = facts[0]
    names = tuple(name for fact in facts for name in fact.fills)
    if line and any(fact.when != first.when or fact.first_only != first.first_only for fact in facts):
        raise ValueError(f"the line facts of {first.segment!r} must share one condition")
    extract = compile_extractor(tuple(facts), conditions=not line)
    # Context facts that share one condition are read only from the segments meeting it: a
    # loop's other REFs must not reset the REF*EI read before them.
    shared = first.when if all(fact.when == first.when for fact in facts) else None
    return SegmentFacts(first.segment, first.loop, names, extract, first.when if line else shared, first.first_only,
                        facts=tuple(facts))


def compile_guide(guide: ImplementationGuide) -> CompiledGuide:
    """The guide's facts grouped per segment and loop, with their extractors."""
    grouped: dict[tuple[bytes, str], list[Fact]] = {}
    for fact in guide.facts:
        grouped.setdefault((fact.segment, fact.loop), []).append(fact)
    context: dict[bytes, dict[str, SegmentFacts]] = {}
    defaults: dict[str, Any] = {}
    claim: SegmentFacts | None = None
    lines: list[SegmentFacts] = []
    line_opener = guide.opener(guide.line_loop)
    claim_opener = guide.opener(guide.claim_loop)
    names: list[str] = []
    under = guide.ancestors()
    inside = tuple(fact for fact in guide.facts if fact.parse == "present")
    for fact in inside:
        if fact.when is None or fact.loop in (guide.claim_loop, guide.line_loop) or \
                guide.claim_loop not in under[fact.loop]:
            raise ValueError(f"fact {fact.name}: a present fact names a loop inside the claim and a condition")
    for (tag, loop), facts in grouped.items():
        if facts[0].parse == "present":
            continue
        compiled = _segment_facts(facts, line=loop == guide.line_loop)
        if loop == guide.claim_loop:
            if tag != claim_opener:
                raise ValueError(f"claim facts are read from {claim_opener!r} only, not {tag!r}")
            claim = compiled
        elif loop == guide.line_loop:
            lines.append(compiled)
        else:
            slots = slice(len(names), len(names) + len(compiled.names))
            names += compiled.names
            context.setdefault(tag, {})[loop] = compiled._replace(slots=slots)
            for fact in facts:
                defaults[fact.name] = None if fact.parse == "text_or_none" or fact.when else ""
    if claim is None:
        raise ValueError("the guide reads no claim facts")
    lines.sort(key=lambda item: item.tag != line_opener)  # the opener first
    if not lines or lines[0].tag != line_opener:
        raise ValueError("the guide reads no fact from the line loop's opening segment")
    loops = {row.loop for row in guide.loops} | {HEADER}
    loop_of = {fact.name: fact.loop for fact in guide.facts if fact.name in defaults}
    clears = {}
    for loop in loops:
        # Runs of adjacent slots, so that a reset is a slice assignment or two.
        runs: list[list[int]] = []
        for slot, name in enumerate(names):
            if loop in under[loop_of[name]]:
                if runs and runs[-1][1] == slot:
                    runs[-1][1] = slot + 1
                else:
                    runs.append([slot, slot + 1])
        clears[loop] = tuple((slice(start, stop), tuple(defaults[name] for name in names[start:stop]))
                             for start, stop in runs)
    return CompiledGuide(guide, context, tuple(names), tuple(defaults[name] for name in names), clears, claim,
                         tuple(lines), inside)
