"""X12 syntax: delimiters, the sans-I/O reader, the segment value and the byte-faithful writer.

Imports nothing else of edi837 but its error root.
"""

from edi.x12.reader import END, NEED_DATA, Reader, read_all
from edi.x12.segment import Delimiters, Segment
from edi.x12.writer import write_all

__all__ = [
    "END",
    "NEED_DATA",
    "Delimiters",
    "Reader",
    "Segment",
    "read_all",
    "write_all",
]
