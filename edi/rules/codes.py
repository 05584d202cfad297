"""Code sets as a coder writes them: codes, prefixes (``J*``) and ranges (``80047-89398``).

``rules/codesets.toml`` lists procedure codes, and the catalogue (pump-rules v2) lets a set name
a whole family: every drug (``J*``), every laboratory code (``80047-89398``). A ``CodeSet``
answers ``code in codes`` without enumerating a range and without scanning it line by line:
exact codes are a frozenset lookup, prefixes one ``str.startswith(tuple)``, and ranges a
binary search over the merged ranges of the code's length. Answers are remembered per code (a
file holds few distinct codes and asks about them on every line); the memory is bounded
(``_MEMO_LIMIT``) because one book serves a long-running ``serve`` or ``watch``.

A range matches codes of its bounds' length between them in text order: ``80047-89398`` holds
``85025`` but not ``8504`` or ``850251``; ``G0345-G0363`` holds ``G0359``. Both bounds must have
the same length, and the first must not sort after the second.

``CodeMap`` is a code-to-codes table (PMP010's ``subsequent_of``, PMP012's add-on primaries).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Container, Iterable, Mapping

_MEMO_LIMIT = 4096
_RANGE = re.compile(r"([A-Z0-9]+)-([A-Z0-9]+)\Z")
_PREFIX = re.compile(r"([A-Z0-9]*)\*\Z")


class CodeSetError(ValueError):
    """An entry of a code set that is neither a code, a ``prefix*`` nor a ``low-high`` range."""


class _Memo(dict[object, bool]):
    """code -> member or not, computed on first look (``__missing__``): a hit is one C-level dict
    subscription, so the index asks it once per service line at the cost of a dict lookup."""

    __slots__ = ("_match",)

    def __init__(self, match: Callable[[str], bool]) -> None:
        super().__init__()
        self._match = match

    def __missing__(self, code: object) -> bool:
        if len(self) >= _MEMO_LIMIT:
            self.clear()
        known = self[code] = isinstance(code, str) and self._match(code)
        return known


def membership(codes: Container[str]) -> Mapping[object, bool]:
    """``lookup[code]`` answering ``code in codes`` (what the per-line loop of the index uses)."""
    if isinstance(codes, CodeSet):
        return codes.lookup
    return _Memo(codes.__contains__)


def _matcher(exact: frozenset[str], prefixes: tuple[str, ...],
             ranges: dict[int, tuple[list[str], list[str]]]) -> Callable[[str], bool]:
    def matches(code: str) -> bool:
        if code in exact or (prefixes and code.startswith(prefixes)):
            return True
        bounds = ranges.get(len(code))
        if bounds is None:
            return False
        lows, highs = bounds
        position = bisect_right(lows, code) - 1
        return position >= 0 and code <= highs[position]

    return matches


class CodeSet:
    """Codes, prefixes and ranges; ``in``, ``isdisjoint`` and ``intersection`` as a set has them.

    Not iterable on purpose: a set with a prefix or a range has no list of members, and a
    ``set.isdisjoint(code_set)`` written by mistake fails loudly instead of being wrong."""

    __slots__ = ("_plain", "_ranges", "exact", "lookup", "prefixes")

    def __init__(self, exact: Iterable[str] = (), prefixes: Iterable[str] = (),
                 ranges: Iterable[tuple[str, str]] = ()) -> None:
        self.exact = frozenset(exact)
        self.prefixes = tuple(sorted(set(prefixes)))
        merged: dict[int, list[list[str]]] = {}
        for low, high in sorted(set(ranges), key=lambda pair: (len(pair[0]), pair)):
            spans = merged.setdefault(len(low), [])
            if spans and low <= spans[-1][1]:
                spans[-1][1] = max(spans[-1][1], high)
            else:
                spans.append([low, high])
        # Per code length: the sorted lows and their highs (bisect over the lows).
        self._ranges = {length: ([s[0] for s in spans], [s[1] for s in spans]) for length, spans in merged.items()}
        # The matcher closes over the values, not over ``self``: a bound method here would make
        # every code set a reference cycle (tests/test_memory.py checks a run leaves none).
        self.lookup: Mapping[object, bool] = _Memo(_matcher(self.exact, self.prefixes, self._ranges))
        self._plain = not self.prefixes and not self._ranges

    @classmethod
    def parse(cls, entries: Iterable[str]) -> CodeSet:
        """Build from entries as written in ``rules/`` (upper-cased); ``CodeSetError`` names a bad one."""
        exact, prefixes, ranges = [], [], []
        for raw in entries:
            entry = raw.strip().upper()
            if "*" in entry:
                match = _PREFIX.match(entry)
                if match is None or not match.group(1):
                    raise CodeSetError(f"{raw!r}: a prefix is letters or digits then one '*' (J*)")
                prefixes.append(match.group(1))
            elif "-" in entry:
                match = _RANGE.match(entry)
                if match is None:
                    raise CodeSetError(f"{raw!r}: a range is two codes joined by '-' (80047-89398)")
                low, high = match.groups()
                if len(low) != len(high) or low > high:
                    raise CodeSetError(f"{raw!r}: a range's bounds have one length and the first is the lower")
                ranges.append((low, high))
            else:
                exact.append(entry)
        return cls(exact, prefixes, ranges)

    @classmethod
    def union(cls, *sets: CodeSet) -> CodeSet:
        ranges = [pair for s in sets for pair in s.range_pairs()]
        return cls(frozenset().union(*(s.exact for s in sets)), [p for s in sets for p in s.prefixes], ranges)

    def range_pairs(self) -> list[tuple[str, str]]:
        return [pair for lows, highs in self._ranges.values() for pair in zip(lows, highs, strict=True)]

    def __contains__(self, code: object) -> bool:
        return self.lookup[code]

    @property
    def is_plain(self) -> bool:
        """Only listed codes (no prefix, no range)."""
        return self._plain

    def isdisjoint(self, codes: Iterable[str]) -> bool:
        if self._plain:
            return self.exact.isdisjoint(codes)
        return not any(map(self.lookup.__getitem__, codes))  # C-level: no generator frame per day

    def intersection(self, codes: Iterable[str]) -> set[str]:
        return {code for code in codes if code in self}

    def __or__(self, other: CodeSet) -> CodeSet:
        return CodeSet.union(self, other)

    def __bool__(self) -> bool:
        return bool(self.exact or self.prefixes or self._ranges)

    def _identity(self) -> tuple[frozenset[str], tuple[str, ...], tuple[tuple[str, str], ...]]:
        return self.exact, self.prefixes, tuple(sorted(self.range_pairs()))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CodeSet):
            return self._identity() == other._identity()
        if isinstance(other, (set, frozenset)):  # a plain set of codes compares to its members
            return self.is_plain and self.exact == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._identity())

    def describe(self) -> str:
        """The entries as a coder would write them, sorted."""
        parts = sorted(self.exact) + [f"{p}*" for p in self.prefixes] + [f"{lo}-{hi}" for lo, hi in sorted(self.range_pairs())]
        return ", ".join(parts)

    def __repr__(self) -> str:
        return f"CodeSet({self.describe()})"


EMPTY = CodeSet()


class CodeMap(Mapping[str, CodeSet]):
    """A code and the codes it goes with: PMP012's add-on -> primaries, PMP010's initial ->
    subsequent. ``keys_set`` and ``values_set`` are the two sides as code sets (the index keeps
    lines of both; the history store keeps the values PMP012 looks back for)."""

    __slots__ = ("_table", "keys_set", "values_set")

    def __init__(self, table: Mapping[str, CodeSet]) -> None:
        self._table = dict(table)
        self.keys_set = CodeSet(self._table)
        self.values_set = CodeSet.union(EMPTY, *self._table.values())

    def __getitem__(self, code: str) -> CodeSet:
        return self._table[code]

    def __iter__(self):  # noqa: ANN204 - Mapping's own signature
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)

    def first(self, code: str) -> str | None:
        """The single code a key maps to, when it maps to exactly one listed code."""
        codes = self._table.get(code)
        if codes is None or not codes.is_plain or len(codes.exact) != 1:
            return None
        return next(iter(codes.exact))
