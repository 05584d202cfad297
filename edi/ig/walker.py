"""Where a segment stands in the guide: pyx12's map walk, on the compiled nodes.

From the node of the previous segment, the walk scans the loop's children at and after that
position, then pops to the parent loop and scans on, until a segment node matches (the ID, and
the qualifier element among its codes). On the way it finds what a 999 reports about
structure: IK304 3 (a required segment or loop passed over), 4 (a loop over its repeat), 5 (a
segment over its max use), 2 (a "not used" segment or loop present) and 1 (no place for the
segment anywhere above: unrecognized). Counts are kept as pyx12 keeps them (per counter path,
reset when a loop is entered again), so the verdicts are the oracle's.

The walk is a port of ``pyx12.map_walker.walk_tree`` (the oracle the tests compare with), on
flat nodes; it is deterministic, so the scan from a node for a segment key is cached: the
cache holds the path of the walk (loops entered, the required nodes passed, the target), and
only the count checks run again per segment.

Speed (issue 19): the counts are a list indexed by counter, and the guide numbers counters in
the order of their paths, so the counters below a loop are one range: entering a loop resets
them with one slice assignment (the dict of counts, emptied key by key, cost a tenth of the
check). A plan carries its ``inline_step``: for the plans that reach a segment or enter a loop
after passing over at most two required nodes (nearly all), the validator checks two counters
and a limit and counts, without replaying the plan; any other case is replayed as before.
"""

from __future__ import annotations

from typing import Any

from edi.ig.guide import Node
from edi.records import Record

# The step of a plan the validator takes inline when the counts allow it without an error
# (``inline_step``): two counters that must be above zero (required nodes passed over; the
# counter ``ALWAYS`` when fewer), the counter that must stay within the limit that follows (the
# node's, or the loop's entered on the way), the counter that goes up (the node's), the node,
# and the loop entered (None: a segment of the loop the walk stands in).
Step = tuple[int, int, int, int, int, Node, Node | None]
# A walk's plan: the node it reaches (None: no place), its steps (operation, node), its inline step.
Plan = tuple[Node | None, tuple[tuple[int, Any], ...], Step | None]


_MISS, _MISS_LOOP, _ENTER, _SEGMENT, _NOT_FOUND = range(5)


class WalkError(Record):
    code: str  # IK304
    seg_id: str  # the segment the error names (a missing one's own ID)


class Walker:
    """One transaction set's walk: the counts, and the errors of the last step."""

    __slots__ = ("always", "component", "counts", "errors", "missing", "plans", "trace")

    def __init__(self, component: str, counters: int, plans: dict[tuple[object, ...], Plan] | None = None) -> None:
        self.component = component
        # Per counter (``Node.counter``, numbered by the guide), how many times it was counted;
        # then one counter that is always 1 (``inline_step``'s filler).
        self.counts: list[int] = [0] * counters + [1]
        self.always = counters
        self.errors: list[WalkError] = []
        self.missing: list[Node] = []
        # Walk plans, per (start node, segment ID, qualifier values): shared by the walkers of
        # one guide (a plan depends on the guide only).
        self.plans = {} if plans is None else plans
        self.trace: list[tuple[int, Any]] = []

    def plan(self, start: Node, seg_id: str, elements: list[str], key: tuple[object, ...]) -> Plan:
        """The walk's plan from ``start`` for a segment (cached per key: the path through the
        guide depends on the place, the ID and the qualifier values only)."""
        plan = self.plans.get(key)
        if plan is None:
            saved, self.counts, self.trace = self.counts, list(self.counts), []
            node = self.walk(start, seg_id, elements)
            steps = tuple(self.trace)
            plan = (node, steps, inline_step(node, steps, self.always))
            self.counts, self.trace = saved, []
            if len(self.plans) < 100_000:
                self.plans[key] = plan
        return plan

    def replay(self, plan: Plan, seg_id: str) -> Node | None:
        """Walk a plan: the counts are kept and checked as the walk itself does."""
        if self.errors:
            self.errors = []
        if self.missing:
            self.missing = []
        counts = self.counts
        for operation, argument in plan[1]:
            if operation == _SEGMENT:
                self._segment(argument)
            elif operation == _MISS:
                if counts[argument.counter] < 1:
                    self.missing.append(argument)
            elif operation == _MISS_LOOP:
                if counts[argument.counter] < 1:
                    self.missing.append(argument.first)
            elif operation == _ENTER:
                self._enter_loop(argument, seg_id)
            else:
                self.errors.append(WalkError("1", seg_id))
        return plan[0]

    def count(self, node: Node) -> int:
        return self.counts[node.counter]

    def _increment(self, node: Node) -> int:
        value = self.counts[node.counter] + 1
        self.counts[node.counter] = value
        return value

    def enter(self, loop: Node) -> None:
        """A loop entered (again): its descendants' counts start over, its own goes up."""
        counts = self.counts
        counts[loop.below] = loop.zeros
        counts[loop.counter] += 1

    def walk(self, start: Node, seg_id: str, elements: list[str]) -> Node | None:
        """The node of the segment, or None (then ``errors`` holds its IK304 1)."""
        self.errors = []
        self.missing = []
        node = start if start.is_loop else start.parent
        position = start.pos
        while node is not None:
            found = self._scan(node, position, seg_id, elements)
            if found is not None:
                return found
            if node.parent is None:
                break
            position = node.pos
            node = node.parent
        self.errors.append(WalkError("1", seg_id))
        self.trace.append((_NOT_FOUND, None))
        return None

    def _scan(self, loop: Node, position: int, seg_id: str, elements: list[str]) -> Node | None:
        component = self.component
        for child in loop.children:
            if child.pos < position:
                continue
            if not child.is_loop:
                if child.is_match(seg_id, elements, component):
                    first = loop.first
                    if first is not None and self._loop_matches(loop, seg_id, elements):
                        return self._enter_at_first(loop, seg_id, elements)
                    self.trace.append((_SEGMENT, child))
                    return self._segment(child)
                if child.usage == "R":
                    self.trace.append((_MISS, child))
                    if self.count(child) < 1:
                        self.missing.append(child)
            elif self._loop_matches(child, seg_id, elements):
                return self._enter_at_first(child, seg_id, elements)
        return None

    def _loop_matches(self, loop: Node, seg_id: str, elements: list[str]) -> bool:
        first = loop.first
        if first is None:
            return False
        if first.is_loop:
            return any(child.is_loop and self._loop_matches(child, seg_id, elements) for child in loop.children)
        if first.is_match(seg_id, elements, self.component):
            return True
        if loop.usage == "R":
            self.trace.append((_MISS_LOOP, loop))
            if self.count(loop) < 1:
                self.missing.append(first)
        return False

    def _enter_at_first(self, loop: Node, seg_id: str, elements: list[str]) -> Node | None:
        first = loop.first
        if first is not None and not first.is_loop and first.is_match(seg_id, elements, self.component):
            self.trace.append((_ENTER, loop))
            self._enter_loop(loop, seg_id)
            return first
        for child in loop.children:
            if child.is_loop:
                found = self._enter_at_first(child, seg_id, elements)
                if found is not None:
                    return found
        return None

    def _enter_loop(self, loop: Node, seg_id: str) -> None:
        if loop.usage == "N":
            self.errors.append(WalkError("2", seg_id))
        else:
            self.enter(loop)
            if self.count(loop) > loop.max:
                self.errors.append(WalkError("4", seg_id))
        first = loop.first
        assert first is not None
        self._increment(first)
        if self.missing:
            self._flush(None)

    def _segment(self, node: Node) -> Node:
        count = self._increment(node)
        if node.usage == "N":
            self.errors.append(WalkError("2", node.id))
        elif count > node.max:
            self.errors.append(WalkError("5", node.id))
        if self.missing:
            self.missing = [m for m in self.missing if m is not node]
            self._flush(node.pos)
        return node

    def _flush(self, position: int | None) -> None:
        """Required nodes passed over are missing, except those at the position reached (a
        segment at one position with another qualifier may still come)."""
        kept = []
        for node in self.missing:
            if node.pos != position:
                self.errors.append(WalkError("3", node.id))
            else:
                kept.append(node)
        self.missing = kept


def inline_step(node: Node | None, steps: tuple[tuple[int, Any], ...], always: int) -> Step | None:
    """The step of a plan that reaches a used segment, or enters a used loop at its first
    segment, after passing over required nodes; None for any other plan (it is replayed).

    Taken when every counter it needs is above zero and the node (or the loop) is below its
    limit, it is exactly the replay without an error: no required node is missing, so nothing
    is flushed; the counts go up as the replay counts them. A plan passing over more than two
    required nodes has none (it is rare)."""
    if node is None or not steps or node.usage == "N":
        return None
    needed = []
    for operation, argument in steps[:-1]:
        if operation not in (_MISS, _MISS_LOOP):
            return None
        needed.append(argument.counter)
    if len(needed) > 2:
        return None
    first, second = [*needed, always, always][:2]
    operation, argument = steps[-1]
    if operation == _SEGMENT and argument is node:
        return first, second, node.counter, node.max, node.counter, node, None
    if operation == _ENTER and argument.usage != "N" and argument.first is node:
        return first, second, argument.counter, argument.max, node.counter, node, argument
    return None
