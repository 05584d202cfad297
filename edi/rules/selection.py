"""Rule selection by ID prefix, as flake8/ruff do: the longest matching prefix wins.

``--select PMP --ignore PMP00 --select PMP001`` enables PMP001 and PMP010-PMP011 only. With no
``--select`` every rule is selected; when a select and an ignore prefix are equally long, the
ignore wins (the safer reading of a contradictory command line).
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
