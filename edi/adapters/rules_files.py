"""Reading the rule book from a folder (``--rules DIR``) or from the installed package data."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from edi.errors import RulesError
from edi.rules.book import FILES, RuleBook, parse_rule_book


def load_rule_book(folder: str | None = None) -> RuleBook:
    """The rules in ``folder``, else the defaults shipped with edi837 (the repository's rules/)."""
    files: dict[str, bytes] = {}
    if folder is not None:
        base = Path(folder)
        if not base.is_dir():
            raise RulesError(f"{folder}: not a folder", code="RULES_MISSING")
        for name in FILES:
            path = base / name
            try:
                files[name] = path.read_bytes()
            except OSError:
                raise RulesError(f"{name}: (file): missing or unreadable in {folder}", code="RULES_MISSING") from None
        return parse_rule_book(files)
    for name in FILES:
        files[name] = _default_folder().joinpath(name).read_bytes()
    return parse_rule_book(files)


def _default_folder():  # -> Traversable
    """The installed ``edi.ruledata`` package; in a source checkout (editable install, whose
    finder does not map a renamed folder) the repository's ``rules/`` next to ``edi/``."""
    checkout = Path(__file__).resolve().parent.parent.parent / "rules"
    if (checkout / "rules.toml").is_file():
        return checkout
    return resources.files("edi.ruledata")
