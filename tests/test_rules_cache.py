"""The parsed rule files kept between runs: used only for the files' exact bytes, never needed."""

from __future__ import annotations

import os
import shutil
import stat
import tomllib
from pathlib import Path

import pytest

from edi.adapters import rules_cache
from edi.adapters.rules_files import default_folder, load_rule_book

RULES = Path(default_folder())


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("EDI837_CACHE_DIR", str(folder))
    return folder


def _no_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("parsed although the cache holds these bytes")

    monkeypatch.setattr(tomllib, "loads", refuse)


def test_a_second_load_reads_the_cache_and_builds_the_same_book(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_rule_book(None)
    (written,) = cache.iterdir()
    assert stat.S_IMODE(written.stat().st_mode) == 0o600 and stat.S_IMODE(cache.stat().st_mode) == 0o700
    _no_parsing(monkeypatch)
    second = load_rule_book(None)
    assert [spec.id for spec in second.rules] == [spec.id for spec in first.rules]
    assert [(s.params.keys(), s.message, s.actions) for s in second.rules] == [
        (s.params.keys(), s.message, s.actions) for s in first.rules]
    assert second.crosswalk == first.crosswalk  # TOML dates come back as dates
    assert {row.effective for row in second.crosswalk.values()} == {row.effective for row in first.crosswalk.values()}


def test_an_edited_rule_file_is_parsed_anew(cache: Path, tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    shutil.copytree(RULES, folder)
    before = load_rule_book(str(folder))
    text = (folder / "rules.toml").read_text(encoding="utf-8")
    spec = before.rule("PMP001")
    assert spec.message in text
    (folder / "rules.toml").write_text(text.replace(spec.message, spec.message + " (edited)", 1), encoding="utf-8")
    after = load_rule_book(str(folder))
    assert after.rule(spec.id).message == spec.message + " (edited)"


def test_a_damaged_or_foreign_cache_file_is_ignored_and_replaced(cache: Path) -> None:
    expected = [spec.id for spec in load_rule_book(None).rules]
    (written,) = cache.iterdir()
    for damage in (b"", b"\x00garbage", written.read_bytes()[:100]):
        written.write_bytes(damage)
        assert [spec.id for spec in load_rule_book(None).rules] == expected
        assert written.read_bytes() != damage  # rewritten


def test_without_a_writable_cache_the_rules_still_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("EDI837_CACHE_DIR", str(blocker / "cache"))
    assert load_rule_book(None).rules
    monkeypatch.setenv("EDI837_CACHE_DIR", "off")
    assert rules_cache.cache_folder() is None and load_rule_book(None).rules


def test_invalid_toml_is_reported_with_its_file_as_without_a_cache(cache: Path, tmp_path: Path) -> None:
    from edi.errors import RulesError

    folder = tmp_path / "rules"
    shutil.copytree(RULES, folder)
    (folder / "crosswalk.toml").write_text("[[row]\nbroken", encoding="utf-8")
    with pytest.raises(RulesError, match=r"crosswalk\.toml: \(file\): not valid TOML"):
        load_rule_book(str(folder))
    assert not os.path.exists(cache) or not list(cache.iterdir())
