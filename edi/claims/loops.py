"""A loop table as a state machine: which segment opens which loop, as a guide's rows say.

Everything that decides loop membership is the guide's loop table (``edi.claims.x222a1``), as
h11 keeps its state machine in one table. A row says: this segment tag, with this qualifier in
this element, opens this loop when one of these loops is open (innermost first). Segments not in
the table belong to the loop that is open. ``LoopTable`` compiles the rows into interned states
with memoised transitions: the walker's hot path is one dict lookup.
"""

from __future__ import annotations

from collections.abc import Iterable

from edi.claims.guide import HEADER, LoopRow


class LoopState:
    """A path of open loops with its transitions, memoised.

    States are interned by path per table; there are a few dozen reachable paths, and only
    qualifiers that appear in the table are memoised, so hostile input cannot grow the memo.
    """

    __slots__ = ("_moves", "_table", "loop", "path")

    def __init__(self, table: LoopTable, path: tuple[str, ...]) -> None:
        self._table = table
        self.path = path
        self.loop = path[-1]
        self._moves: dict[tuple[bytes, bytes], LoopState | None] = {}

    def open(self, tag: bytes, qualifier: bytes) -> LoopState | None:
        """The state after a segment that may open a loop; None if it opens none here."""
        key = (tag, qualifier)
        try:
            return self._moves[key]
        except KeyError:
            pass
        table = self._table
        if key not in table.triggers:
            return None
        stack = list(self.path)
        moved = table.open_loop(stack, tag, qualifier)
        state = table.state_for(tuple(stack)) if moved is not None else None
        self._moves[key] = state
        return state

    def __repr__(self) -> str:
        return f"LoopState({'/'.join(self.path)})"


class LoopTable:
    """The rows of a guide's loop table, indexed by (tag, qualifier)."""

    def __init__(self, rows: Iterable[LoopRow]) -> None:
        triggers: dict[tuple[bytes, bytes], list[LoopRow]] = {}
        self.qualifier_element: dict[bytes, int] = {}
        for row in rows:
            self.qualifier_element[row.tag] = row.qualifier_element
            for value in row.qualifiers or (b"",):
                triggers.setdefault((row.tag, value), []).append(row)
        self.triggers = {key: tuple(found) for key, found in triggers.items()}
        self._states: dict[tuple[str, ...], LoopState] = {}
        self.initial = self.state_for((HEADER,))

    def state_for(self, path: tuple[str, ...]) -> LoopState:
        state = self._states.get(path)
        if state is None:
            state = self._states[path] = LoopState(self, path)
        return state

    def open_loop(self, stack: list[str], tag: bytes, qualifier: bytes) -> str | None:
        """Open the loop this segment starts, closing inner loops; None if it starts none here.

        ``stack`` is the path of open loops, outermost first (``[HEADER, "2000A", "2000B", ...]``);
        it is changed in place.
        """
        candidates = self.triggers.get((tag, qualifier))
        if not candidates:
            return None
        for depth in range(len(stack) - 1, -1, -1):
            current = stack[depth]
            for row in candidates:
                if current in row.parents:
                    del stack[depth + 1 :]
                    stack.append(row.loop)
                    return row.loop
        return None
