"""The two loops that touch every segment on the fast path, in C when it is built.

``split_uniform`` cuts a run of the input into segment bodies and offsets (the reader's
``batches()``); ``dispatch`` calls each segment's handler, chosen by its first four bytes (the
claim walker). Both are here twice: the Python functions below are the reference, and
``edi/x12/_speedups.c`` does the same in C when ``pip install`` could compile it (a C compiler
and the Python headers; ``setup.py`` marks the extension optional, so an install without them
runs these). ``IMPLEMENTATION`` says which one runs; ``EDI837_PURE_PYTHON=1`` in the
environment picks the Python functions (read in ``edi/__init__.py``: the core reads no
environment). tests/test_fastpath.py holds the two equal on random inputs.

Why C for these two only (measured on a 20k-claim file, 486k segments, in one process):
``split_uniform`` 60 ms in Python (split, a count, ``min``, ``max``, ``accumulate``: five passes
and an int per offset) against 24 ms in C (one pass); ``dispatch`` 49 ms against 13 ms (no
4-byte key object and no tuple per segment; the handlers are called from C). Everything the
loops decide with (limits, errors, the handlers themselves) stays in Python.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import accumulate, compress, count, repeat
from operator import add, itemgetter
from typing import Any

Split = tuple[list[bytes], list[int], int]
_first_four = itemgetter(slice(0, 4))
# What may stand between segments (the reader's general path keeps it as their prefixes).
WHITESPACE = b" \t\r\n\x0b\x0c"
_ragged_patterns: dict[bytes, re.Pattern[bytes]] = {}


def python_split_uniform(data: bytes, start: int, stop: int, separator: bytes, base: int) -> Split | None:
    """``data[start:stop]``, which ends with ``separator`` (a terminator and the line break that
    follows every terminator), as (bodies, offsets, longest): offsets are ``base`` plus each
    body's index in ``data``. None when the run is not uniform: a terminator byte not followed by
    the line break, a body that starts with whitespace, or a separator whose line break holds
    the terminator byte (the general path reads those)."""
    if not 0 <= start <= stop <= len(data) or not separator:
        raise ValueError("split_uniform: bad region or separator")
    term = separator[:1]
    if term in separator[1:]:
        return None
    if start == stop:
        return [], [], 0
    region = data[start:stop]
    if not region.endswith(separator):
        return None
    bodies = region[: -len(separator)].split(separator)
    if region.count(term) != len(bodies):
        return None
    if min(bodies)[:1] <= b" " and (region[:1] in WHITESPACE or _ragged(separator).search(region) is not None):
        return None
    offsets = list(accumulate(map(add, map(len, bodies), repeat(len(separator))), initial=base + start))
    offsets.pop()
    return bodies, offsets, max(map(len, bodies))


def _ragged(separator: bytes) -> re.Pattern[bytes]:
    pattern = _ragged_patterns.get(separator)
    if pattern is None:
        pattern = _ragged_patterns[separator] = re.compile(re.escape(separator) + b"[" + re.escape(WHITESPACE) + b"]")
    return pattern


Handler = Callable[[Any, bytes, int, int], Any]


def python_dispatch(target: Any, bodies: list[bytes], offsets: list[int], first_number: int,
                    table: dict[bytes, Handler | None], missing: Handler) -> None:
    """Call ``handler(target, body, number, offset)`` for each body, in order, where ``handler``
    is ``table.get(body[:4], missing)`` and not None. ``missing`` returns the handler to call
    (None: none) and may add the key it was called for to ``table``; nothing else changes
    ``table`` during a call (a handler may replace the caller's table: this call keeps the one it
    was given)."""
    handlers = list(map(table.get, map(_first_four, bodies), repeat(missing)))
    # One C-built tuple per handled segment (zip reuses its tuple for the others).
    for handler, body, number, offset in compress(zip(handlers, bodies, count(first_number), offsets), handlers):
        if handler is missing:
            resolved = missing(target, body, number, offset)
            if resolved is not None:
                resolved(target, body, number, offset)
            continue
        handler(target, body, number, offset)  # type: ignore[misc]  # compress: never None


split_uniform: Callable[[bytes, int, int, bytes, int], Split | None]
dispatch: Callable[[Any, list[bytes], list[int], int, dict[bytes, Any], Handler], None]
try:
    from edi.x12._speedups import dispatch as c_dispatch
    from edi.x12._speedups import split_uniform as c_split_uniform
except ImportError:  # not built (no compiler at install) or turned off: the Python functions
    split_uniform = python_split_uniform
    dispatch = python_dispatch
    IMPLEMENTATION = "python"
else:
    split_uniform = c_split_uniform
    dispatch = c_dispatch
    IMPLEMENTATION = "c"
