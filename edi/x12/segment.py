"""Value types of the X12 layer: delimiters and segments.

``Segment`` is a tuple subclass rather than a frozen dataclass: the reader makes one per segment
(hundreds of thousands per file) and a tuple is built in C, several times faster than a frozen
dataclass ``__init__``. It is immutable all the same, and its fields have names.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter
from typing import NamedTuple


class Delimiters(NamedTuple):
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


class Segment(tuple):
    """One segment as read: where it stands, and its bytes exactly as they were.

    ``prefix`` holds what stood between the previous terminator and the segment (line breaks,
    indentation, a UTF-8 BOM before the ISA); ``terminator`` is the segment terminator as read
    (empty for a final segment that ended at end of input). ``prefix + body + terminator`` over
    all segments, plus the reader's ``trailer``, gives back the input byte for byte.
    """

    __slots__ = ()

    tag: bytes = property(itemgetter(0))  # type: ignore[assignment]
    body: bytes = property(itemgetter(1))  # type: ignore[assignment]
    number: int = property(itemgetter(2))  # type: ignore[assignment]
    offset: int = property(itemgetter(3))  # type: ignore[assignment]
    prefix: bytes = property(itemgetter(4))  # type: ignore[assignment]
    terminator: bytes = property(itemgetter(5))  # type: ignore[assignment]

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
        return self[4] + self[1] + self[5]

    def __repr__(self) -> str:
        # Never the body: it may carry patient data.
        return f"Segment(tag={self[0]!r}, number={self[2]}, offset={self[3]})"


SEGMENT_FIELDS = ("tag", "body", "number", "offset", "prefix", "terminator")


class SegmentBatch(NamedTuple):
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
                self.offsets, self.prefixes,
            )
        ]

    def raw(self) -> bytes:
        """The batch's bytes as they stood in the input."""
        term = self.terminator
        return b"".join([prefix + body + term for prefix, body in zip(self.prefixes, self.bodies)])
