"""The report documents written whole for a run (HTML and CSV worklists, XML), streamed.

Shared by the command line and the watcher: one place says which format is built by which
module and how a worklist is made from a run's report and rules index.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edi.report.model import FileReport
from edi.report.worklist import ClaimContext, WorklistFile, csv_pieces, html_pieces
from edi.rules.engine import RuleEngine


def worklist_file(report: FileReport, engine: RuleEngine, *, fixed: bool = False) -> WorklistFile:
    """What the worklist needs of one file: its report, where its claims' patients and payers
    stand, and the rule book's titles and documentation."""
    return WorklistFile(report=report, context=ClaimContext(engine.index),
                        rules={spec.id: spec for spec in engine.book.rules}, fixed=fixed)


def write_document(write: Callable[[bytes], object], fmt: str, made: list[Any]) -> None:
    """The HTML or CSV worklist, streamed piece by piece, or the XML report."""
    if fmt == "xml":
        from edi.report.people import write_xml

        write_xml(write, made)
        return
    for piece in (html_pieces(made) if fmt == "html" else csv_pieces(made)):
        write(piece.encode("utf-8"))
