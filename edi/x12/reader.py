"""A sans-I/O X12 reader: bytes in, segments out.

Modelled on h11: ``feed(data)`` only buffers, ``next_segment()`` returns a ``Segment``, the
sentinel ``NEED_DATA`` (feed more) or ``END`` (input over); ``end()`` says that no more bytes will
come. The reader opens nothing; the CLI, the HTTP body stream and the watcher all drive it.

Delimiters come from each ISA header (a file may hold several interchanges with different
delimiters). The ISA is located by counting its 16 element separators rather than by fixed
offsets, so a 105-character ISA (a short ISA02 or ISA08, common in the wild) still gives the
right separators; the envelope checks report the wrong width.

What the reader refuses, with an ``X12SyntaxError`` carrying a stable code, the segment number,
the byte offset and what was expected:

=========================  ==================================================================
``NOT_X12``                the input does not begin with an ISA header (after a BOM/whitespace)
``NO_ISA``                 the input starts at GS or ST: no header, so no declared delimiters;
                           guessing them would be silent guessing, so it is refused
``UTF16``                  UTF-16 text (NUL bytes between characters, or a UTF-16 BOM)
``BAD_ISA``                an ISA without 16 elements and ISA16 within ``MAX_ISA_LENGTH`` bytes
``BAD_DELIMITER``          a separator that is a letter, digit, space, non-ASCII, or reused
``SEGMENT_TOO_LONG``       more than ``max_segment_length`` bytes without a terminator
``TOO_MANY_ELEMENTS``      more than ``max_elements`` elements in one segment
=========================  ==================================================================

What it accepts and hands on unchanged (byte-faithful): a UTF-8 BOM (kept in the ISA's
``prefix``), CR/LF/CRLF, spaces and indentation between segments, blank lines, trailing
whitespace at the end (``trailer``), a newline or CR as the only segment terminator, any
single-byte ASCII punctuation as element separator (``~`` included), and a final segment that
ends at end of input without a terminator. Empty segments (a stray ``~~``) and malformed
segment IDs are handed on as segments; the envelope checks report them.

Speed: ``batches()`` is the fast path. When every terminator is followed by the same line break
(the common case) a batch is made entirely in C (``edi.x12.fastpath.split_uniform``: one pass
of the compiled extension, else ``bytes.split`` and ``itertools.accumulate``); no Python code
runs per segment. ``segments()`` and
``next_segment()`` build a ``Segment`` per segment from the batches, for callers that want them.
"""

from __future__ import annotations

from typing import Final

from edi.errors import X12SyntaxError
from edi.x12.fastpath import WHITESPACE, split_uniform
from edi.x12.segment import Delimiters, Segment, SegmentBatch

UTF8_BOM: Final = b"\xef\xbb\xbf"
ISA_ELEMENTS: Final = 16
STANDARD_ISA_LENGTH: Final = 106
# A malformed ISA is rarely more than a few characters off; past this it is not an ISA.
MAX_ISA_LENGTH: Final = 160
DEFAULT_MAX_SEGMENT_LENGTH: Final = 65_536
DEFAULT_MAX_ELEMENTS: Final = 1_024
_TAG_CACHE_LIMIT: Final = 4096


class _Sentinel:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NEED_DATA: Final = _Sentinel("NEED_DATA")
END: Final = _Sentinel("END")


def _syntax_error(code: str, message: str, *, segment: int, offset: int, expected: str) -> X12SyntaxError:
    return X12SyntaxError(message, code=code, segment=segment, offset=offset, expected=expected)


def _check_delimiter(value: int, name: str, *, segment: int, offset: int) -> bytes:
    char = bytes((value,))
    if value >= 0x80 or char.isalnum() or char == b" ":
        raise _syntax_error(
            "BAD_DELIMITER",
            f"the ISA declares an unusable {name} separator (byte 0x{value:02x})",
            segment=segment,
            offset=offset,
            expected="a single ASCII character that is not a letter, digit or space",
        )
    return char


class Reader:
    """Incremental X12 reader. Not thread-safe; one per input."""

    def __init__(
        self,
        *,
        max_segment_length: int = DEFAULT_MAX_SEGMENT_LENGTH,
        max_elements: int = DEFAULT_MAX_ELEMENTS,
    ) -> None:
        self.max_segment_length = max_segment_length
        self.max_elements = max_elements
        self.delimiters: Delimiters | None = None
        self.trailer = b""
        self.segment_count = 0
        self.longest_segment = 0  # bytes of the longest segment body read so far
        self._data = b""
        self._pos = 0
        self._base = 0  # absolute offset of self._data[0]
        self._ended = False
        self._expect_header = True
        self._carry = b""  # blank lines (whitespace-only pieces) waiting for the next segment
        self._error: X12SyntaxError | None = None
        self._finished = False
        self._pending_error: X12SyntaxError | None = None
        self._queue: list[Segment] = []
        self._queue_pos = 0
        # First four bytes of a segment -> its tag; exact because a tag of at most three
        # characters is followed by the element separator within those four bytes.
        self._tags: dict[bytes, bytes] = {}
        self._tags_element = b""

    # -- feeding ---------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Add bytes. ``feed(b"")`` is ignored; call ``end()`` for end of input."""
        if self._ended:
            raise RuntimeError("feed() after end()")
        if not data:
            return
        cut = self._pos
        if cut:
            self._base += cut
            self._data = self._data[cut:] + data
            self._pos -= cut
        else:
            self._data += data

    def end(self) -> None:
        """No more bytes will come."""
        self._ended = True

    # -- reading ---------------------------------------------------------------------------
    def next_segment(self) -> Segment | _Sentinel:
        """The next segment, ``NEED_DATA`` or ``END``; raises ``X12SyntaxError`` on bad input."""
        if self._queue_pos >= len(self._queue):
            self._queue = self.segments()
            self._queue_pos = 0
            if not self._queue:
                return END if self._finished else NEED_DATA
        segment = self._queue[self._queue_pos]
        self._queue_pos += 1
        return segment

    def segments(self) -> list[Segment]:
        """Every segment available now, in order (stops where more data or the end is needed).

        Raises ``X12SyntaxError`` at bad input, but only once the segments before it were
        handed out: a call that has segments to give returns them and the next call raises.
        After ``end()``, call until it returns an empty list: that call raises what is left.
        """
        out = self._queue[self._queue_pos :]
        self._queue = []
        self._queue_pos = 0
        try:
            for batch in self.batches():
                out.extend(batch.segments(self._tag_of))
        except X12SyntaxError:
            if out:
                return out
            raise
        return out

    def batches(self) -> list[SegmentBatch]:
        """Every segment available now, as batches (the fast path: no object per segment)."""
        if self._queue_pos < len(self._queue):
            raise RuntimeError("batches() after next_segment(): drain with segments() first")
        out: list[SegmentBatch] = []
        while True:
            try:
                batch = self._fill_guarded()
            except X12SyntaxError:
                if out:
                    return out
                raise
            if batch is None:
                return out
            out.append(batch)

    def _fill_guarded(self) -> SegmentBatch | None:
        if self._error is not None:
            raise self._error
        try:
            return self._fill()
        except X12SyntaxError as error:
            self._error = error
            raise

    @property
    def at_end(self) -> bool:
        return self._finished

    @property
    def consumed(self) -> int:
        """Bytes of input handed out as segments (or skipped as whitespace) so far."""
        return self._base + self._pos

    # -- the state machine -----------------------------------------------------------------
    def _fill(self) -> SegmentBatch | None:
        """The next batch of segments; None when more data (or nothing more) is to be had."""
        while True:
            if self._pending_error is not None:
                error, self._pending_error = self._pending_error, None
                raise error
            if self._finished:
                return None
            if self._expect_header:
                header = self._read_header()
                if header is None:
                    return None
                return SegmentBatch([header.body], [header.offset], header.number, [header.prefix],
                                    header.terminator, header.body[3:4])
            batch, progressed = self._read_body()
            if batch is not None and batch.bodies:
                return batch
            if not progressed:
                return None

    def _tag_of(self, body: bytes, element: bytes) -> bytes:
        if body.startswith(b"ISA"):
            return b"ISA"
        if element == self._tags_element:
            tag = self._tags.get(body[:4])
            if tag is not None:
                return tag
        return self._tag(body, element)

    def _read_header(self) -> Segment | None:
        """Parse an ISA at the current position; None when more data is needed."""
        data, pos = self._data, self._pos
        number = self.segment_count + 1
        start = pos
        if self._base + pos == 0 and data.startswith(UTF8_BOM):
            start += len(UTF8_BOM)
        elif self._base + pos == 0 and data[:2] in (b"\xff\xfe", b"\xfe\xff"):
            raise _syntax_error(
                "UTF16", "the input is UTF-16 text", segment=number, offset=0,
                expected="8-bit text (ASCII, UTF-8 or Latin-1) beginning with ISA",
            )
        while start < len(data) and data[start] in WHITESPACE:
            start += 1
        if len(data) - start < 4 and not self._ended:
            return None
        if len(data) - start == 0:
            if self.segment_count == 0:
                raise _syntax_error(
                    "NOT_X12", "the input is empty", segment=number, offset=self._base + start,
                    expected="an ISA interchange header",
                )
            self._finish(data[pos:])
            return None
        head = data[start : start + 8]
        offset = self._base + start
        if b"\x00" in head:
            def text(part: bytes) -> bool:
                return bool(part) and all(32 <= byte < 127 for byte in part)

            utf16 = (text(head[0::2]) and not head[1::2].strip(b"\x00")) or (
                text(head[1::2]) and not head[0::2].strip(b"\x00"))
            raise _syntax_error(
                "UTF16" if utf16 else "NOT_X12",
                "the input holds NUL bytes between characters (UTF-16 text)" if utf16 else "the input is binary data",
                segment=number, offset=offset,
                expected="8-bit text (ASCII, UTF-8 or Latin-1) beginning with ISA",
            )
        if not head.startswith(b"ISA"):
            if head[:2] in (b"GS", b"ST") and head[2:3] and not head[2:3].isalnum():
                raise _syntax_error(
                    "NO_ISA",
                    "the input starts at a GS or ST segment with no ISA header, so its delimiters are not declared",
                    segment=number, offset=offset, expected="an ISA interchange header",
                )
            raise _syntax_error(
                "NOT_X12", "the input does not begin with an ISA header",
                segment=number, offset=offset, expected="an ISA interchange header",
            )
        if len(data) - start < 4:
            raise _syntax_error(
                "BAD_ISA", "the ISA header is incomplete", segment=number, offset=offset,
                expected=f"{ISA_ELEMENTS} elements and a segment terminator after ISA16",
            )
        element = _check_delimiter(data[start + 3], "element", segment=number, offset=offset + 3)
        cursor = start + 3
        for _ in range(ISA_ELEMENTS - 1):
            cursor = data.find(element, cursor + 1, start + MAX_ISA_LENGTH)
            if cursor < 0:
                break
        if cursor < 0 or cursor + 2 >= len(data):
            if not self._ended and len(data) - start < MAX_ISA_LENGTH:
                return None
            raise _syntax_error(
                "BAD_ISA", "the ISA header is incomplete", segment=number, offset=offset,
                expected=f"{ISA_ELEMENTS} elements and a segment terminator after ISA16",
            )
        component = _check_delimiter(data[cursor + 1], "component", segment=number, offset=self._base + cursor + 1)
        terminator_byte = data[cursor + 2]
        terminator = bytes((terminator_byte,))
        if terminator_byte >= 0x80 or terminator.isalnum() or terminator == b" ":
            raise _syntax_error(
                "BAD_DELIMITER", "the ISA declares an unusable segment terminator",
                segment=number, offset=self._base + cursor + 2,
                expected="a single ASCII character that is not a letter, digit or space",
            )
        if len({element, component, terminator}) != 3:
            raise _syntax_error(
                "BAD_DELIMITER", "the ISA declares the same character for two separators",
                segment=number, offset=offset, expected="distinct element, component and segment separators",
            )
        body = data[start : cursor + 2]
        fields = body.split(element)
        repetition: bytes | None = None
        rep, version = fields[11], fields[12]
        if len(rep) == 1 and version >= b"00501" and not rep.isalnum() and rep not in (element, component, terminator, b" "):
            repetition = rep
        self.delimiters = Delimiters(element=element, component=component, repetition=repetition, segment=terminator)
        prefix = self._carry + data[pos:start]
        self._carry = b""
        self._pos = cursor + 3
        self._expect_header = False
        self.segment_count = number
        return Segment.make(tag=b"ISA", body=body, number=number, offset=offset, prefix=prefix, terminator=terminator)

    def _finish(self, trailer: bytes) -> None:
        self.trailer = self._carry + trailer
        self._carry = b""
        self._pos = len(self._data)
        self._finished = True

    def _tag(self, body: bytes, element: bytes) -> bytes:
        tag = body.partition(element)[0]
        if element != self._tags_element:
            self._tags = {}
            self._tags_element = element
        if len(tag) <= 3 and tag != b"ISA" and len(self._tags) < _TAG_CACHE_LIMIT:
            self._tags[body[:4]] = tag
        return tag

    def _read_body(self) -> tuple[SegmentBatch | None, bool]:
        """Split what is buffered into segments: (batch, whether input was consumed)."""
        delimiters = self.delimiters
        assert delimiters is not None
        term = delimiters.segment
        data, pos = self._data, self._pos
        last = data.rfind(term, pos)
        if last < 0:
            tail = self._read_tail(data, pos)
            return tail, self._finished or self._expect_header
        if not self._carry:
            fast = self._read_uniform(data, pos, term)
            if fast is not None:
                return fast, True
        return self._read_general(data, pos, last, term, delimiters.element), True

    def _read_uniform(self, data: bytes, pos: int, term: bytes) -> SegmentBatch | None:
        """The common case, all in C: every terminator followed by the same line break (none,
        LF, CR or CRLF) and nothing else, no segment over the limits. None when it is not so."""
        first = data.find(term, pos)
        after = data[first + 1 : first + 3]
        if after == b"\r\n":
            line_break = b"\r\n"
        elif after[:1] in (b"\n", b"\r"):
            line_break = after[:1]
        else:
            line_break = b""
        separator = term + line_break
        start = pos
        prefix0 = b""
        if line_break and data.startswith(line_break, pos):
            start += len(line_break)
            prefix0 = line_break
        if data.startswith(b"ISA", start):
            # A new interchange may declare other delimiters: the header parser takes it.
            self._pos = start
            self._carry = prefix0
            self._expect_header = True
            return SegmentBatch([], [], self.segment_count + 1, [], term, b"")
        last = data.rfind(separator, start)
        if last < start:
            return None
        new_interchange = data.find(separator + b"ISA", start, last + len(separator))
        if new_interchange >= 0:
            last = new_interchange
        split = split_uniform(data, start, last + len(separator), separator, self._base)
        if split is None:
            return None
        bodies, offsets, longest = split
        if longest > self.max_segment_length or longest >= self.max_elements:
            return None
        self.longest_segment = max(self.longest_segment, longest)
        number = self.segment_count + 1
        self.segment_count += len(bodies)
        prefixes = [line_break] * len(bodies)
        prefixes[0] = prefix0
        if new_interchange >= 0:
            self._pos = last + len(separator)
            self._carry = line_break
            self._expect_header = True
        else:
            self._pos = last + len(term)  # the line break stays: it is the next segment's prefix
        assert self.delimiters is not None  # a body is only read after its ISA
        return SegmentBatch(bodies, offsets, number, prefixes, term, self.delimiters.element)

    def _read_general(self, data: bytes, pos: int, last: int, term: bytes, element: bytes) -> SegmentBatch:
        """Any whitespace between segments, blank lines, over-long or element-heavy segments."""
        pieces = data[pos:last].split(term)
        self._pos = last + 1
        offset = self._base + pos
        number = self.segment_count
        longest = max(map(len, pieces))
        self.longest_segment = max(self.longest_segment, min(longest, self.max_segment_length))
        check_elements = longest >= self.max_elements
        whitespace_terminator = term in WHITESPACE
        carry = self._carry
        bodies: list[bytes] = []
        offsets: list[int] = []
        prefixes: list[bytes] = []
        for piece in pieces:
            body = piece.lstrip()
            lead = len(piece) - len(body)
            prefix = carry + piece[:lead] if (lead or carry) else b""
            carry = b""
            if not body and whitespace_terminator:
                # A blank line where a line break terminates segments: whitespace, not a segment.
                carry = prefix + term
                offset += len(piece) + 1
                continue
            if len(piece) > self.max_segment_length:
                self._pending_error = _syntax_error(
                    "SEGMENT_TOO_LONG", "a segment is longer than the limit", segment=number + 1,
                    offset=offset + lead, expected=f"a segment terminator within {self.max_segment_length} bytes",
                )
                break
            if body.startswith(b"ISA"):
                self._carry = prefix
                self._pos = offset + lead - self._base
                self._expect_header = True
                break
            if check_elements and len(body) >= self.max_elements and body.count(element) >= self.max_elements:
                self._pending_error = _syntax_error(
                    "TOO_MANY_ELEMENTS", "a segment has too many elements", segment=number + 1,
                    offset=offset + lead, expected=f"at most {self.max_elements - 1} elements",
                )
                break
            number += 1
            bodies.append(body)
            offsets.append(offset + lead)
            prefixes.append(prefix)
            offset += len(piece) + 1
        else:
            self._carry = carry
        first = self.segment_count + 1
        self.segment_count = number
        return SegmentBatch(bodies, offsets, first, prefixes, term, element)

    def _read_tail(self, data: bytes, pos: int) -> SegmentBatch | None:
        """No terminator in the buffer: wait, or at end of input take the final segment."""
        remainder = len(data) - pos
        if remainder > self.max_segment_length:
            raise _syntax_error(
                "SEGMENT_TOO_LONG", "a segment is longer than the limit", segment=self.segment_count + 1,
                offset=self._base + pos, expected=f"a segment terminator within {self.max_segment_length} bytes",
            )
        if not self._ended:
            return None
        piece = data[pos:]
        body = piece.strip()
        if not body:
            self._finish(piece)
            return None
        lead = len(piece) - len(piece.lstrip())
        body = piece[lead:].rstrip()
        prefix = self._carry + piece[:lead]
        self._carry = b""
        if body.startswith(b"ISA"):
            self._pos = pos
            self._expect_header = True
            return None
        self.segment_count += 1
        element = self.delimiters.element if self.delimiters else b"*"
        batch = SegmentBatch([body], [self._base + pos + lead], self.segment_count, [prefix], b"", element)
        self._finish(piece[lead + len(body) :])
        return batch


def read_all(data: bytes, **limits: int) -> tuple[list[Segment], Reader]:
    """Read a whole buffer (tests and small inputs); raises ``X12SyntaxError`` on bad input."""
    reader = Reader(**limits)
    reader.feed(data)
    reader.end()
    segments: list[Segment] = []
    while batch := reader.segments():  # an empty call raises an error held back for it
        segments += batch
    return segments, reader
