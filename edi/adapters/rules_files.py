"""Reading the rule book from a folder (``--rules DIR``) or from the installed package data."""

from __future__ import annotations

import os
from typing import Any

from edi.adapters import rules_cache
from edi.errors import RulesError
from edi.rules.book import FILES, TABLE_RULES_FILE, RuleBook, parse_rule_book


def load_rule_book(folder: str | None = None) -> RuleBook:
    """The rules in ``folder``, else the defaults shipped with edi837 (the repository's rules/)."""
    base = folder if folder is not None else default_folder()
    if not os.path.isdir(base):
        raise RulesError(f"{base}: not a folder", code="RULES_MISSING")
    files: dict[str, bytes] = {}
    for name in FILES:
        try:
            with open(os.path.join(base, name), "rb") as handle:
                files[name] = handle.read()
        except OSError:
            raise RulesError(f"{name}: (file): missing or unreadable in {base}", code="RULES_MISSING") from None
    table_rules = os.path.join(base, TABLE_RULES_FILE)
    if os.path.exists(table_rules):  # optional: the CMS correct-coding rules (edi.rules.ncc)
        try:
            with open(table_rules, "rb") as handle:
                files[TABLE_RULES_FILE] = handle.read()
        except OSError:
            raise RulesError(f"{TABLE_RULES_FILE}: (file): unreadable in {base}", code="RULES_MISSING") from None
    return parse_rule_book(_parsed(files))


def _parsed(files: dict[str, bytes]) -> dict[str, Any]:
    """The files' TOML documents, from the cache when it holds these exact bytes; the bytes
    themselves when one does not parse (the book then reports the error with its file)."""
    documents = rules_cache.load(files)
    if documents is not None:
        return documents
    import tomllib

    try:
        documents = {name: tomllib.loads(data.decode("utf-8")) for name, data in files.items()}
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return files
    rules_cache.store(files, documents)
    return documents


def default_folder() -> str:
    """The installed ``edi.ruledata`` package; in a source checkout (an editable install, whose
    finder does not map a renamed folder) the repository's ``rules/`` next to ``edi/``."""
    here = os.path.dirname(os.path.abspath(__file__))
    checkout = os.path.join(os.path.dirname(os.path.dirname(here)), "rules")
    if os.path.isfile(os.path.join(checkout, "rules.toml")):
        return checkout
    return os.path.join(os.path.dirname(here), "ruledata")
