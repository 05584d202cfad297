"""The compiled implementation-guide tables (``x222a1.json``) as the validator's runtime nodes.

A ``Node`` is a loop or a segment of the guide. The tables are a dict (the adapter reads the
package data); nothing here opens a file.
"""

from __future__ import annotations

from typing import Any

UNBOUNDED = 1 << 30


class ElementRule:
    """One simple element (or a component of a composite) of a segment."""

    __slots__ = ("checked", "codes", "external", "max", "min", "name", "pattern", "position", "ref", "type", "usage")

    def __init__(self, row: dict[str, Any], external: dict[str, frozenset[str]]) -> None:
        self.position = int(row["seq"])
        self.ref = str(row["ref"])
        self.name = str(row["name"])
        self.usage = str(row["usage"])
        self.type = str(row.get("type") or "AN")
        self.min = int(row.get("min") or 1)
        self.max = int(row.get("max") or UNBOUNDED)
        codes = frozenset(row.get("codes") or ())
        self.external = external.get(row["external"], frozenset()) if row.get("external") else None
        self.codes = codes if codes or self.external is not None else None
        self.pattern = row.get("pattern")
        # Values checked before, with their IK403 codes (bounded: IDs and names do not repeat).
        self.checked: dict[str | tuple[str, str], tuple[str, ...]] = {}


class CompositeRule:
    __slots__ = ("components", "name", "position", "ref", "usage")

    def __init__(self, row: dict[str, Any], external: dict[str, frozenset[str]]) -> None:
        self.position = int(row["seq"])
        self.ref = str(row["ref"])
        self.name = str(row["name"])
        self.usage = str(row["usage"])
        self.components = tuple(ElementRule(component, external) for component in row["components"])


class Node:
    """A loop or segment of the guide; ``counter`` is the count it shares (see ig_tables)."""

    __slots__ = ("below", "children", "counter", "elements", "first", "id", "index", "is_loop", "key",
                 "loop_id", "max", "name", "parent", "pos", "syntax", "usage", "zeros")

    def __init__(self, index: int, row: dict[str, Any], external: dict[str, frozenset[str]]) -> None:
        self.index = index
        self.id = str(row["id"])
        self.name = str(row["name"])
        self.is_loop = row["kind"] == "loop"
        self.pos = int(row["pos"])
        self.usage = str(row["usage"])
        limit = row.get("repeat") if self.is_loop else row.get("max_use")
        self.max = UNBOUNDED if limit is None else int(limit)
        self.counter: Any = row["counter"]
        self.parent: Node | None = None
        self.children: tuple[Node, ...] = ()
        self.first: Node | None = None  # a loop's first child
        self.below = slice(0, 0)  # the counters below a loop (one range: see Guide)
        self.zeros: tuple[int, ...] = ()  # as many zeros
        self.loop_id = ""  # the loop a segment stands in
        self.syntax = tuple(tuple(note) for note in row.get("syntax", ()))
        self.elements: tuple[ElementRule | CompositeRule, ...] = tuple(
            CompositeRule(e, external) if "components" in e else ElementRule(e, external)
            for e in row.get("elements", ()))
        self.key = _match_key(self.id, self.elements)

    def is_match(self, seg_id: str, elements: list[str], component: str) -> bool:
        """pyx12's segment match: the ID, and the qualifier element's value among its codes."""
        if seg_id != self.id:
            return False
        key = self.key
        if key is None:
            return True
        position, first_component, codes = key
        if position > len(elements):
            return None in codes
        value = elements[position - 1]
        return (value.split(component, 1)[0] if first_component else value.rstrip(component)) in codes


def _match_key(seg_id: str, elements: tuple[ElementRule | CompositeRule, ...]) -> tuple[int, bool, frozenset[Any]] | None:
    """Which element tells same-ID segments apart (pyx12's ``_resolve_unique_key_field``)."""
    first = elements[0] if elements else None
    if isinstance(first, ElementRule) and first.type == "ID" and first.usage == "R" and first.codes:
        return (1, False, first.codes)
    if isinstance(first, CompositeRule) and first.components and first.components[0].type == "ID" \
            and first.components[0].codes:
        return (1, True, first.components[0].codes)
    third = elements[2] if len(elements) > 2 else None
    if seg_id == "HL" and isinstance(third, ElementRule) and third.codes:
        return (3, False, third.codes)
    return None


class Guide:
    """The nodes of one transaction's guide, linked, with the interchange header's rules."""

    def __init__(self, tables: dict[str, Any]) -> None:
        external = {name: frozenset(codes) for name, codes in tables["external"].items()}
        rows = tables["nodes"]
        self.nodes = [Node(index, row, external) for index, row in enumerate(rows)]
        # Counters are numbered in the order of their paths: the counters below a loop (the
        # paths under its own) are then one range, which entering the loop resets with one slice
        # assignment (the walker keeps the counts in a list).
        paths = {index: row["counter"] for index, row in enumerate(rows)}
        counters = {path: number for number, path in enumerate(sorted(set(paths.values())))}
        self.counter_count = len(counters)
        for index, node in enumerate(self.nodes):
            node.counter = counters[paths[index]]
        for index, row in enumerate(rows):
            node = self.nodes[index]
            if row["parent"] is not None:
                node.parent = self.nodes[row["parent"]]
            if node.is_loop:
                node.children = tuple(self.nodes[child] for child in row["children"])
                node.first = node.children[0] if node.children else None
                prefix = paths[index] + "/"
                below = sorted(number for path, number in counters.items() if path.startswith(prefix))
                if below:
                    node.below = slice(below[0], below[-1] + 1)
                    node.zeros = (0,) * len(below)
                    if len(below) != below[-1] + 1 - below[0]:
                        raise ValueError(f"the counters below {paths[index]} are not one range")
        for node in self.nodes:
            if not node.is_loop and node.parent is not None:
                node.loop_id = node.parent.id
        self.root = self.nodes[0]
        self.interchange_header = Node(-1, {**tables["interchange_header"], "kind": "segment"}, external)
        # Per segment ID, the qualifier places that decide its matches (see ``Node.key``).
        self.keyed: dict[str, tuple[tuple[int, bool], ...]] = {}
        for node in self.nodes:
            if node.key is not None:
                place = (node.key[0], node.key[1])
                if place not in self.keyed.get(node.id, ()):
                    self.keyed[node.id] = (*self.keyed.get(node.id, ()), place)
        # Per segment node index, its compiled element checker (``edi.ig.elements``), made
        # when a validator first needs it and kept with the guide.
        self.checkers: dict[int, Any] = {}
        self.by_path: dict[str, Node] = {}
        for index, node in enumerate(self.nodes):
            self.by_path[paths[index]] = node

    def node(self, path: str) -> Node:
        return self.by_path[path]
