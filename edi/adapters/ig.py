"""The one module that imports pyx12: implementation-guide (005010X222A1) validation.

pyx12 4.0.0 facts this adapter works around: it reads ASCII only (the input is decoded as
latin-1 here and handed over as text), it logs element values through ``logging`` (its logger
gets a NullHandler and stops propagating), and it knows only ``005010X222A1`` for 837P.

Its error texts can quote element values (``... invalid character(ABC)``): they are kept in
``IgError.detail`` for the submitter's own report and never logged.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from typing import Any

_PYX12_LOGGER = logging.getLogger("pyx12")
_PYX12_LOGGER.handlers[:] = [logging.NullHandler()]
_PYX12_LOGGER.propagate = False


@dataclass(frozen=True, slots=True, kw_only=True)
class IgError:
    level: str  # interchange, group, transaction, segment, element
    code: str  # pyx12's code: TA1 note, AK9/IK5, IK3 or IK4 code by level
    segment_id: str | None
    segment: int | None  # 1-based segment number in the file (pyx12's cur_line)
    element: str | None  # e.g. "SV102"
    detail: str  # pyx12's text: may quote data; report only, never logs

    def key(self) -> tuple[str, str, str | None, str | None]:
        """What identifies the error independent of where lines moved."""
        return (self.level, self.code, self.segment_id, self.element)


def _collect(node: dict[str, Any], level: str, out: list[IgError], segment_id: str | None = None,
             segment: int | None = None) -> None:
    for error in node.get("errors", []):
        out.append(IgError(level=level, code=str(error.get("err_cde")), segment_id=segment_id, segment=segment,
                           element=None, detail=str(error.get("err_str", ""))))
    for child_key, child_level in (("interchanges", "interchange"), ("groups", "group"), ("transactions", "transaction")):
        for child in node.get(child_key, []):
            _collect(child, child_level, out)
    for seg in node.get("segments", []):
        seg_id, number = seg.get("seg_id"), seg.get("cur_line")
        for error in seg.get("errors", []):
            out.append(IgError(level="segment", code=str(error.get("err_cde")), segment_id=seg_id, segment=number,
                               element=None, detail=str(error.get("err_str", ""))))
        for element in seg.get("elements", []):
            name = f"{seg_id}{int(element.get('ele_pos') or 0):02d}"
            if element.get("subele_pos"):
                name += f"-{element['subele_pos']}"
            for error in element.get("errors", []):
                out.append(IgError(level="element", code=str(error.get("err_cde")), segment_id=seg_id,
                                   segment=number, element=name, detail=str(error.get("err_str", ""))))


def pyx12_validate(data: bytes) -> tuple[bool, list[IgError]]:
    """Run pyx12 over the bytes: (pyx12's verdict, its errors as edi837 records)."""
    import pyx12.params
    import pyx12.x12n_document

    text = data.decode("latin-1")
    if text.startswith("\ufeff") or text.startswith("\xef\xbb\xbf"):
        text = text[3:] if text.startswith("\xef\xbb\xbf") else text[1:]
    out = io.StringIO()
    ok = pyx12.x12n_document.x12n_document(
        param=pyx12.params.params(), src_file=io.StringIO(text), fd_997=None, fd_html=None,
        fd_xmldoc=None, fd_json=out,
    )
    errors: list[IgError] = []
    payload = out.getvalue()
    if payload:
        _collect(json.loads(payload), "root", errors)
    return bool(ok), errors
