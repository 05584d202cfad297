"""The 837P loop table (005010X222, X222A1 and X222A2 share it): which segment opens which loop.

Everything that decides loop membership lives in this one table, as h11 keeps its state machine
in one file. A row says: this segment tag, with this qualifier in this element, opens this loop
when one of these loops is open (innermost first). Segments not in the table belong to the loop
that is open. Source: ASC X12 005010X222A1 (pyx12's ``837.5010.X222.A1.xml``).
"""

from __future__ import annotations

from typing import NamedTuple

HEADER = "HEADER"


class LoopTrigger(NamedTuple):
    loop: str
    parents: tuple[str, ...]


# (tag, qualifier element number (1-based) or 0, qualifier values) -> loop, allowed parents
_ROWS: tuple[tuple[bytes, int, tuple[bytes, ...], str, tuple[str, ...]], ...] = (
    (b"NM1", 1, (b"41",), "1000A", (HEADER,)),
    (b"NM1", 1, (b"40",), "1000B", (HEADER, "1000A")),
    (b"HL", 3, (b"20",), "2000A", (HEADER,)),
    (b"HL", 3, (b"22",), "2000B", ("2000A", HEADER)),
    (b"HL", 3, (b"23",), "2000C", ("2000B",)),
    (b"NM1", 1, (b"85",), "2010AA", ("2000A",)),
    (b"NM1", 1, (b"87",), "2010AB", ("2000A",)),
    (b"NM1", 1, (b"PE",), "2010AC", ("2000A",)),
    (b"NM1", 1, (b"IL",), "2010BA", ("2000B",)),
    (b"NM1", 1, (b"PR",), "2010BB", ("2000B",)),
    (b"NM1", 1, (b"QC",), "2010CA", ("2000C",)),
    (b"CLM", 0, (), "2300", ("2000C", "2000B")),
    (b"NM1", 1, (b"DN", b"P3"), "2310A", ("2300",)),
    (b"NM1", 1, (b"82",), "2310B", ("2300",)),
    (b"NM1", 1, (b"77",), "2310C", ("2300",)),
    (b"NM1", 1, (b"DQ",), "2310D", ("2300",)),
    (b"NM1", 1, (b"PW",), "2310E", ("2300",)),
    (b"NM1", 1, (b"45",), "2310F", ("2300",)),
    (b"SBR", 0, (), "2320", ("2300",)),
    (b"NM1", 1, (b"IL",), "2330A", ("2320",)),
    (b"NM1", 1, (b"PR",), "2330B", ("2320",)),
    (b"NM1", 1, (b"DN", b"P3"), "2330C", ("2320",)),
    (b"NM1", 1, (b"82",), "2330D", ("2320",)),
    (b"NM1", 1, (b"77",), "2330E", ("2320",)),
    (b"NM1", 1, (b"DQ",), "2330F", ("2320",)),
    (b"NM1", 1, (b"85",), "2330G", ("2320",)),
    (b"LX", 0, (), "2400", ("2300",)),
    (b"LIN", 0, (), "2410", ("2400",)),
    (b"NM1", 1, (b"82",), "2420A", ("2400",)),
    (b"NM1", 1, (b"QB",), "2420B", ("2400",)),
    (b"NM1", 1, (b"77",), "2420C", ("2400",)),
    (b"NM1", 1, (b"DQ",), "2420D", ("2400",)),
    (b"NM1", 1, (b"DK",), "2420E", ("2400",)),
    (b"NM1", 1, (b"DN", b"P3"), "2420F", ("2400",)),
    (b"NM1", 1, (b"PW",), "2420G", ("2400",)),
    (b"NM1", 1, (b"45",), "2420H", ("2400",)),
    (b"SVD", 0, (), "2430", ("2400",)),
    (b"LQ", 0, (), "2440", ("2400",)),
)


def _build() -> tuple[dict[tuple[bytes, bytes], tuple[LoopTrigger, ...]], dict[bytes, int]]:
    table: dict[tuple[bytes, bytes], list[LoopTrigger]] = {}
    qualifier_element: dict[bytes, int] = {}
    for tag, element, values, loop, parents in _ROWS:
        qualifier_element[tag] = element
        for value in values or (b"",):
            table.setdefault((tag, value), []).append(LoopTrigger(loop=loop, parents=parents))
    return {key: tuple(rows) for key, rows in table.items()}, qualifier_element


TRIGGERS, QUALIFIER_ELEMENT = _build()
TRIGGER_TAGS = frozenset(QUALIFIER_ELEMENT)


class LoopState:
    """A path of open loops with its transitions, memoised: the walker's hot path is one lookup.

    States are interned by path; there are a few dozen reachable paths, and only qualifiers
    that appear in the table are memoised, so hostile input cannot grow the memo.
    """

    __slots__ = ("_moves", "loop", "path")

    def __init__(self, path: tuple[str, ...]) -> None:
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
        if key not in TRIGGERS:
            return None
        stack = list(self.path)
        moved = open_loop(stack, tag, qualifier)
        state = state_for(tuple(stack)) if moved is not None else None
        self._moves[key] = state
        return state

    def __repr__(self) -> str:
        return f"LoopState({'/'.join(self.path)})"


_STATES: dict[tuple[str, ...], LoopState] = {}


def state_for(path: tuple[str, ...]) -> LoopState:
    state = _STATES.get(path)
    if state is None:
        state = _STATES[path] = LoopState(path)
    return state


INITIAL = state_for((HEADER,))


def open_loop(stack: list[str], tag: bytes, qualifier: bytes) -> str | None:
    """Open the loop this segment starts, closing inner loops; None if it starts none here.

    ``stack`` is the path of open loops, outermost first (``[HEADER, "2000A", "2000B", ...]``);
    it is changed in place.
    """
    candidates = TRIGGERS.get((tag, qualifier))
    if not candidates:
        return None
    for depth in range(len(stack) - 1, -1, -1):
        current = stack[depth]
        for trigger in candidates:
            if current in trigger.parents:
                del stack[depth + 1 :]
                stack.append(trigger.loop)
                return trigger.loop
    return None
