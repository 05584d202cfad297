"""The 005010X222A1 implementation guide as flat tables, compiled from pyx12's map with lxml.

pyx12 ships the guide as XML: ``837.5010.X222.A1.xml`` (loops, segments, elements, usage, valid
codes, syntax notes), ``dataele.xml`` (per data element number: type, minimum and maximum
length) and ``codes.xml`` (external code lists: states, countries, places of service...). The
interchange header (ISA) is read from ``x12.control.00501.xml``, the map pyx12 itself checks
an ISA against (the 837 map's ISA is a 004010 copy: ISA11 "U").

``compile_tables`` turns them into one JSON document (``edi/ig/x222a1.json``, package data):

* ``nodes``: every loop and segment in map order; a loop has its ``children`` (node indexes, in
  the order pyx12 scans them: by position, loops before segments at one position); a segment
  has its ``elements`` and ``syntax`` notes; both have ``usage`` (R, S, N), ``pos``, the
  repeat (loops) or max use (segments: ``null`` for unbounded) and the ``counter``: the node's
  X12 path as pyx12 counts it (two segments with one ID in one loop share a count unless they
  stand at one position, where the qualifier tells them apart: pyx12's rule, kept so that
  "exceeds maximum use" is judged as pyx12 judges it);
* per element: position, data element number, type (AN, ID, N0-N2, R, DT, TM, B), minimum and
  maximum length, usage, valid codes or the name of an external list, a pattern; a composite
  has its components;
* ``external``: the external code lists the map names.

It is built once (``bin/make-ig-tables``) and installed as package data; ``load_tables`` reads
the installed copy, and a test rebuilds it from the installed pyx12 and compares.
"""

from __future__ import annotations

import importlib.util
import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

MAP_NAME = "837.5010.X222.A1.xml"
CONTROL_NAME = "x12.control.00501.xml"
TABLES_PACKAGE = "edi.ig"
TABLES_NAME = "x222a1.json"


def pyx12_map_folder() -> Path:
    """The ``map`` folder of the installed pyx12 (found without importing it)."""
    spec = importlib.util.find_spec("pyx12")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("pyx12 is not installed: its map is the source of the tables")
    return Path(next(iter(spec.submodule_search_locations))) / "map"


def _text(node: Any, tag: str) -> str | None:
    found = node.find(tag)
    return None if found is None or found.text is None else found.text.strip()


def _count(text: str | None) -> int | None:
    """A max use or repeat: a number, or None for unbounded (``>1``, absent)."""
    return int(text) if text and text.isdigit() else None


class _Compiler:
    def __init__(self, data_elements: dict[str, dict[str, Any]]) -> None:
        self.data_elements = data_elements
        self.nodes: list[dict[str, Any]] = []
        self.external: set[str] = set()

    def element(self, node: Any) -> dict[str, Any]:
        number = _text(node, "data_ele") or ""
        kind = self.data_elements.get(number, {"type": "AN", "min": 1, "max": 99999})
        row: dict[str, Any] = {
            "seq": int(_text(node, "seq") or 0), "ref": number, "name": _text(node, "name") or "",
            "usage": _text(node, "usage") or "S", "type": kind["type"], "min": kind["min"], "max": kind["max"],
        }
        codes = node.find("valid_codes")
        if codes is not None:
            if codes.get("external"):
                row["external"] = codes.get("external")
                self.external.add(codes.get("external"))
            listed = [code.text for code in codes.findall("code") if code.text is not None]
            if listed:
                row["codes"] = listed
        pattern = _text(node, "regex")
        if pattern:
            row["pattern"] = pattern
        return row

    def composite(self, node: Any) -> dict[str, Any]:
        return {"seq": int(_text(node, "seq") or 0), "ref": _text(node, "data_ele") or "",
                "name": _text(node, "name") or "", "usage": _text(node, "usage") or "S",
                "components": [self.element(child) for child in node.findall("element")]}

    def segment(self, node: Any, parent: int, parent_path: str, duplicated: bool) -> int:
        seg_id = node.get("xid")
        elements = [self.element(e) for e in node.findall("element")]
        elements += [self.composite(c) for c in node.findall("composite")]
        elements.sort(key=lambda row: row["seq"])
        syntax = []
        for note in node.findall("syntax"):
            text = (note.text or "").strip()
            if text and text[0] in "PRCLE":
                syntax.append([text[0], *(int(text[i:i + 2]) for i in range(1, len(text) - 1, 2))])
        path = seg_id
        if duplicated:
            key = _key_codes(elements, seg_id, guess=True)
            if key:
                path = f"{seg_id}[{key[0]}]"
        index = len(self.nodes)
        self.nodes.append({"kind": "segment", "id": seg_id, "name": _text(node, "name") or "", "parent": parent,
                           "pos": int(_text(node, "pos") or 0), "usage": _text(node, "usage") or "S",
                           "max_use": _count(_text(node, "max_use")), "counter": f"{parent_path}/{path}",
                           "syntax": syntax, "elements": elements})
        return index

    def loop(self, node: Any, parent: int | None, parent_path: str) -> int:
        loop_id = node.get("xid")
        path = f"{parent_path}/{loop_id}"
        index = len(self.nodes)
        self.nodes.append({"kind": "loop", "id": loop_id, "name": _text(node, "name") or "", "parent": parent,
                           "pos": int(_text(node, "pos") or 0), "usage": _text(node, "usage") or "S",
                           "repeat": _count(_text(node, "repeat")), "counter": path, "children": []})
        positions: dict[int, list[Any]] = {}
        for child in node.findall("loop"):
            positions.setdefault(int(_text(child, "pos") or 0), []).append(child)
        for child in node.findall("segment"):
            positions.setdefault(int(_text(child, "pos") or 0), []).append(child)
        children = []
        for position in sorted(positions):
            duplicated = len(positions[position]) > 1
            for child in positions[position]:
                if child.tag == "loop":
                    children.append(self.loop(child, index, path))
                else:
                    children.append(self.segment(child, index, path, duplicated))
        self.nodes[index]["children"] = children
        return index


def _key_codes(elements: list[dict[str, Any]], seg_id: str, *, guess: bool) -> list[str]:
    """The codes of the element pyx12 tells same-ID segments apart by (see ``key`` in the
    validator); ``guess``: its looser choice for counter paths (the first element need not be
    required)."""
    first = elements[0] if elements else None
    if first and "components" not in first and first["type"] == "ID" and first.get("codes") and \
            (guess or first["usage"] == "R"):
        return list(first["codes"])
    if first and "components" in first and first["components"] and first["components"][0]["type"] == "ID" \
            and first["components"][0].get("codes"):
        return list(first["components"][0]["codes"])
    third = elements[2] if len(elements) > 2 else None
    if seg_id == "HL" and third and "components" not in third and third.get("codes"):
        return list(third["codes"])
    return []


def compile_tables(folder: Path | None = None) -> dict[str, Any]:
    """The tables from pyx12's map folder (the installed pyx12's by default)."""
    from lxml import etree  # only to compile: a check loads the JSON and never pays for lxml

    folder = folder or pyx12_map_folder()
    data_elements = {
        node.get("ele_num"): {"type": node.get("data_type"), "min": int(node.get("min_len")),
                              "max": int(node.get("max_len"))}
        for node in etree.parse(str(folder / "dataele.xml")).getroot().iter("data_ele")
    }
    compiler = _Compiler(data_elements)
    root = etree.parse(str(folder / MAP_NAME)).getroot()
    compiler.loop(root.find("loop"), None, "")
    control = etree.parse(str(folder / CONTROL_NAME)).getroot()
    isa = _Compiler(data_elements)
    isa.segment(control.find("loop").find("segment"), 0, "/ISA_LOOP", duplicated=False)
    external = {}
    for codeset in etree.parse(str(folder / "codes.xml")).getroot().iter("codeset"):
        name = _text(codeset, "id")
        if name in compiler.external:
            external[name] = sorted(code.text for code in codeset.iterfind("version/code") if code.text)
    return {"source": {"map": MAP_NAME, "control": CONTROL_NAME, "transaction": root.get("xid")},
            "nodes": compiler.nodes, "interchange_header": isa.nodes[0], "external": external}


def dump_tables(tables: dict[str, Any]) -> str:
    """The JSON text as installed: one node per line, so a change to the map reads as a diff."""
    lines = ["{", f'"source": {json.dumps(tables["source"], sort_keys=True)},',
             f'"interchange_header": {json.dumps(tables["interchange_header"], sort_keys=True)},',
             f'"external": {json.dumps(tables["external"], sort_keys=True)},', '"nodes": [']
    nodes = tables["nodes"]
    lines += [json.dumps(node, sort_keys=True) + ("," if index < len(nodes) - 1 else "")
              for index, node in enumerate(nodes)]
    lines += ["]", "}"]
    return "\n".join(lines) + "\n"


@cache
def load_tables() -> dict[str, Any]:
    """The installed tables (package data ``edi/ig/x222a1.json``)."""
    text = resources.files(TABLES_PACKAGE).joinpath(TABLES_NAME).read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded
