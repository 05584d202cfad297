"""Rule selection by ID prefix, as flake8/ruff do: the longest matching prefix wins.

``--select PMP --ignore PMP00 --select PMP001`` enables PMP001 and PMP010-PMP011 only. With no
``--select`` every rule is selected; when a select and an ignore prefix are equally long, the
ignore wins (the safer reading of a contradictory command line).

A prefix that names no rule is refused (``unknown_prefixes``): ``--select PMP03`` selecting
nothing would let every file pass clean, and a mistyped ``--ignore`` would silently run the rule
the user meant to turn off.
"""

from __future__ import annotations

from collections.abc import Iterable


def is_selected(rule_id: str, select: Iterable[str] = (), ignore: Iterable[str] = ()) -> bool:
    select, ignore = list(select), list(ignore)
    best_select = max((len(p) for p in select if rule_id.startswith(p)), default=-1)
    best_ignore = max((len(p) for p in ignore if rule_id.startswith(p)), default=-1)
    if not select:
        best_select = max(best_select, 0)
    if best_select < 0 and best_ignore < 0:
        return False
    return best_select > best_ignore


def unknown_prefixes(rule_ids: Iterable[str], prefixes: Iterable[str]) -> list[str]:
    """The prefixes that no rule ID starts with, in the order given (each once)."""
    ids = list(rule_ids)
    unknown: list[str] = []
    for prefix in prefixes:
        if prefix not in unknown and not any(rule_id.startswith(prefix) for rule_id in ids):
            unknown.append(prefix)
    return unknown
