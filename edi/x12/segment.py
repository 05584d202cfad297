"""Value types of the X12 layer: delimiters and segments.

``Segment`` is a tuple subclass rather than a frozen dataclass: the reader makes one per segment
(hundreds of thousands per file) and a tuple is built in C, several times faster than a frozen
dataclass ``__init__``. It is immutable all the same, and its fields have names.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import itemgetter


@dataclass(frozen=True, slots=True, kw_only=True)
class Delimiters:
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
