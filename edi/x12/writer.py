"""The byte-faithful X12 writer.

A segment is written back as the bytes it was read from (``prefix + body + terminator``); a
rewrite replaces byte ranges of the input (``edi.rewrite``), so delimiters, line breaks,
indentation and whitespace survive untouched.
"""

from __future__ import annotations

from collections.abc import Iterable

from edi.x12.segment import Segment


def write_all(segments: Iterable[Segment], trailer: bytes = b"") -> bytes:
    """Serialise segments (and the reader's trailer) back to bytes."""
    return b"".join([segment.prefix + segment.body + segment.terminator for segment in segments]) + trailer
