"""The rewriter by locator gives the bytes and the changes of the rewriter it replaced.

Pass 2 used to walk the claims a second way (its own claim-end tags); it now applies edits by
the locators pass 1 emits. ``tests/legacy_rewrite.py`` keeps the old pass 2 as the oracle: on
both public corpora, the rule examples, the sample and random oncology files, the outputs are
identical byte for byte, and so are the changed segments ``--diff`` shows.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from edi.adapters.rules_files import load_rule_book
from edi.pipeline import validate
from edi.rewrite import DropLoop, Recount, ReplaceCode, plan_edits, rewrite
from edi.rules.engine import RuleEngine
from edi.synthetic import generate, render
from tests import legacy_rewrite
from tests.conftest import ROOT, require_corpus
from tests.helpers import HEADER, claim, subscriber, x12
from tests.strategies import oncology_visits, styles

BOOK = load_rule_book()


def both_rewrites(data: bytes, chunk: int = 1 << 16) -> tuple[bytes, bytes, list, list]:
    """(new output, old output, new changes, old changes) for ``data`` fed in ``chunk``-byte pieces."""
    report = validate([data], name="-", engine=RuleEngine(BOOK))
    if report.errors:
        return data, data, [], []
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    output, result = rewrite(pieces, plan_edits(report))
    new = b"".join(output)
    old_output, old_result = legacy_rewrite.rewrite(pieces, legacy_rewrite.legacy_plan(report),
                                                    max_segment_length=65_536, max_elements=1_024)
    old = b"".join(old_output)
    assert result.dropped == old_result.dropped and result.replaced == old_result.replaced
    assert result.claims_changed == old_result.claims_changed
    return new, old, _changes(result.changes), _changes(old_result.changes)


def _changes(changes: list) -> list[tuple[int, bytes, bytes | None]]:
    return sorted((change.number, bytes(change.old), change.new and bytes(change.new)) for change in changes)


def test_both_public_corpora_rewrite_identically() -> None:
    """Every public file (their findings, if any, flag: most come out as they went in)."""
    checked = 0
    for fixture in require_corpus():
        try:
            data = fixture.path.read_bytes()
        except OSError:
            continue
        new, old, new_changes, old_changes = both_rewrites(data)
        assert new == old, fixture.name
        assert new_changes == old_changes, fixture.name
        checked += 1
    assert checked == len(require_corpus())


@pytest.mark.parametrize("path", sorted((ROOT / "fixtures" / "rules").glob("*/bad.x12")) + [ROOT / "fixtures" / "sample-oncology.x12"],
                         ids=lambda path: f"{path.parent.name}/{path.name}")
def test_examples_rewrite_identically_in_any_chunking(path: Path) -> None:
    data = path.read_bytes()
    for chunk in (1, 7, 64, 1 << 16):
        new, old, new_changes, old_changes = both_rewrites(data, chunk)
        assert (new, new_changes) == (old, old_changes)


def test_a_synthetic_practice_file_rewrites_identically() -> None:
    """3,000 claims with a quarter of the visits breaking a rule: many drops and recodes."""
    data = b"".join(generate(3000, seed=11, rule_breaking_share=0.25))
    new, old, new_changes, old_changes = both_rewrites(data, 4096)
    assert new != data and len(new_changes) > 100
    assert (new, new_changes) == (old, old_changes)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(oncology_visits(max_visits=8), styles())
def test_random_oncology_files_rewrite_identically(visits, style) -> None:
    data = b"".join(render(visits, style=style))
    new, old, new_changes, old_changes = both_rewrites(data, 97)
    assert (new, new_changes) == (old, old_changes)


def test_edits_are_values_placed_by_locator() -> None:
    """A drop, the LX01 and CLM02 it changes, a code replaced, SE01: each a value with its bytes."""
    d1 = "20261102"
    data = x12(*HEADER, *subscriber(), *claim("C1", ("96416", "1", d1), ("96521", "1", d1), ("J9190", "3", d1)),
               *claim("C2", ("96414", "1", d1)))
    report = validate([data], name="-", engine=RuleEngine(BOOK))
    plan = plan_edits(report)
    kinds = [type(edit).__name__ for edit in plan.edits]
    assert kinds == ["Recount", "DropLoop", "Recount", "ReplaceCode", "Recount"]
    clm02, drop, lx01, replace, se01 = plan.edits
    assert isinstance(drop, DropLoop) and data[drop.line.lx_offset : drop.line.end_offset].startswith(b"LX*2~")
    assert isinstance(clm02, Recount) and data[clm02.start : clm02.end] == b"500.00" and clm02.value == b"400.00"
    assert isinstance(lx01, Recount) and data[lx01.start : lx01.end] == b"3" and lx01.value == b"2"
    assert isinstance(replace, ReplaceCode) and replace.code == "96416"
    start, end = replace.line.procedure_code_at  # type: ignore[misc]
    assert data[replace.line.service_offset + start : replace.line.service_offset + end] == b"96414"
    assert isinstance(se01, Recount) and data[se01.body_start : se01.body_end].startswith(b"SE*")
    assert int(se01.value) == int(data[se01.start : se01.end]) - 3


def test_only_claims_with_edits_keep_their_locators() -> None:
    """Pass 1 keeps locators for claims with a line a rule may drop or recode, not for the rest."""
    d1 = "20261102"
    data = x12(*HEADER, *subscriber(), *claim("C1", ("96416", "1", d1), ("96521", "1", d1)),
               *claim("C2", ("99213", "1", d1)), *claim("C3", ("96413", "1", d1)))
    engine = RuleEngine(BOOK)
    report = validate([data], name="-", engine=engine)
    assert len(engine.index.locators) == 1
    assert [locator.segment for locator in report.locators] == list(engine.index.locators)
