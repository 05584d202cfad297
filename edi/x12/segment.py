"""Value types of the X12 layer: delimiters and segments.

``Segment`` is a ``NamedTuple`` rather than a frozen dataclass: the reader makes one per segment
(hundreds of thousands per file) and a tuple is built in C, several times faster than a frozen
dataclass ``__init__``. It is immutable all the same, and other modules read its fields by name.
"""

from __future__ import annotations

from collections.abc import Callable

from edi.records import Record


class Delimiters(Record):
    """The separators an ISA header declares (one byte each; ``repetition`` may be absent)."""

    element: bytes
    component: bytes
    repetition: bytes | None
    segment: bytes

    def describe(self) -> str:
        rep = self.repetition.decode("latin-1") if self.repetition else "none"
        return (
            f"element {self.element!r} component {self.component!r} "
            f"repetition {rep!r} segment {self.segment!r}"
        )


class Segment(Record):
    """One segment as read: where it stands, and its bytes exactly as they were.

    ``prefix`` holds what stood between the previous terminator and the segment (line breaks,
    indentation, a UTF-8 BOM before the ISA); ``terminator`` is the segment terminator as read
    (empty for a final segment that ended at end of input). ``prefix + body + terminator`` over
    all segments, plus the reader's ``trailer``, gives back the input byte for byte.
    """

    tag: bytes
    body: bytes
    number: int  # 1-based, counting the ISA as 1
    offset: int  # byte offset of the body in the input
    prefix: bytes = b""
    terminator: bytes = b"~"

    @classmethod
    def make(
        cls,
        *,
        tag: bytes,
        body: bytes,
        number: int,
        offset: int,
        prefix: bytes = b"",
        terminator: bytes = b"~",
    ) -> Segment:
        return tuple.__new__(cls, (tag, body, number, offset, prefix, terminator))

    def elements(self, delimiters: Delimiters) -> list[bytes]:
        """The elements after the tag (``elements()[0]`` is element 01)."""
        return self.body.split(delimiters.element)[1:]

    def raw(self) -> bytes:
        """The segment's bytes as they stood in the input."""
        return self.prefix + self.body + self.terminator

    def __repr__(self) -> str:
        # Never the body: it may carry patient data.
        return f"Segment(tag={self.tag!r}, number={self.number}, offset={self.offset})"


class SegmentBatch(Record):
    """Consecutive segments as parallel lists: the reader's fast path, no object per segment.

    Segment ``i`` has body ``bodies[i]``, number ``first_number + i``, byte offset
    ``offsets[i]``, prefix ``prefixes[i]`` and the batch's ``terminator``.
    """

    bodies: list[bytes]
    offsets: list[int]
    first_number: int
    prefixes: list[bytes]
    terminator: bytes
    element: bytes

    def segments(self, tag_of: Callable[[bytes, bytes], bytes]) -> list[Segment]:
        new = tuple.__new__
        term = self.terminator
        element = self.element
        return [
            new(Segment, (tag_of(body, element), body, number, offset, prefix, term))
            for body, number, offset, prefix in zip(
                self.bodies, range(self.first_number, self.first_number + len(self.bodies)),
                self.offsets, self.prefixes, strict=True,
            )
        ]

    def raw(self) -> bytes:
        """The batch's bytes as they stood in the input."""
        term = self.terminator
        return b"".join([prefix + body + term for prefix, body in zip(self.prefixes, self.bodies, strict=True)])
