"""The byte-faithful X12 writer.

A segment is written back as the bytes it was read from (``prefix + body + terminator``); a
rewrite replaces only the ``body`` of the segments it changes, so delimiters, line breaks,
indentation and whitespace survive untouched.
"""

from __future__ import annotations

from collections.abc import Iterable

from edi.x12.segment import Delimiters, Segment


def segment_bytes(segment: Segment) -> bytes:
    """The segment exactly as it stood in the input."""
    return segment[4] + segment[1] + segment[5]


def write_all(segments: Iterable[Segment], trailer: bytes = b"") -> bytes:
    """Serialise segments (and the reader's trailer) back to bytes."""
    return b"".join([segment[4] + segment[1] + segment[5] for segment in segments]) + trailer


def with_body(segment: Segment, body: bytes) -> Segment:
    """The same segment (position, prefix, terminator) with another body."""
    tag, _, number, offset, prefix, terminator = segment
    return tuple.__new__(Segment, (tag, body, number, offset, prefix, terminator))


def join_elements(elements: Iterable[bytes], delimiters: Delimiters) -> bytes:
    """A segment body from its tag and elements."""
    return delimiters.element.join(elements)
