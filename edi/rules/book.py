"""The rule book: code sets, the crosswalk and the rule rows, parsed and checked from TOML.

The data lives in ``rules/`` (``codesets.toml``, ``crosswalk.toml``, ``rules.toml``); this module
takes their bytes (the front end reads the files) and refuses a bad file with a ``RulesError``
that names the file, the key and the problem. Python holds the rule *kinds* (``edi.rules.kinds``:
each one's parameters and message fields are checked here); the data picks the codes, windows,
actions and messages.
"""

from __future__ import annotations

import re
import string
import tomllib
from datetime import date
from typing import Any, NamedTuple

from edi.errors import RulesError
from edi.rules.kinds import KINDS

FILES = ("codesets.toml", "crosswalk.toml", "rules.toml")
# The CMS correct-coding rules (NCC001-NCC003, edi.rules.ncc) in a file of their own, optional:
# a rules folder without it has no table-driven rules.
TABLE_RULES_FILE = "ncc.toml"
SCHEMA = 1
ACTIONS = ("drop_line", "replace_code", "flag")
SEVERITIES = ("error", "warning", "info")
SCOPES = ("medicare", "other")
DOC_FIELDS = ("what", "why", "example", "instead", "evidence")
_RULE_ID = re.compile(r"(PMP|NCC)\d{3}\Z")
OPTIONAL_SCOPES = ("medicaid",)  # a row without it takes its `other` action for Medicaid lines
_SET_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")

class CrosswalkRow(NamedTuple):
    deleted: str
    action: str
    effective: date
    replacement: str | None = None
    suggestion: tuple[str, ...] = ()
    note: str = ""


class RuleSpec(NamedTuple):
    id: str
    title: str
    kind: str
    severity: str
    actions: dict[str, str]
    message: str
    params: dict[str, Any]
    docs: dict[str, str]

    def action_for(self, scope: str) -> str:
        return self.actions.get(scope) or self.actions["other"]


class RuleBook(NamedTuple):
    code_sets: dict[str, frozenset[str]]
    crosswalk: dict[str, CrosswalkRow]
    rules: tuple[RuleSpec, ...]

    def rule(self, rule_id: str) -> RuleSpec:
        for spec in self.rules:
            if spec.id == rule_id:
                return spec
        raise KeyError(rule_id)

    @property
    def medicare_filing(self) -> frozenset[str]:
        return self.code_sets["medicare_filing"]

    @property
    def relevant_codes(self) -> frozenset[str]:
        """Every procedure code some rule looks at: the index keeps lines of these only."""
        codes: set[str] = set(self.crosswalk)
        for spec in self.rules:
            for name in KINDS[spec.kind].code_parameters():
                codes |= spec.params[name]
        return frozenset(codes)


def _fail(file: str, key: str, problem: str) -> RulesError:
    return RulesError(f"{file}: {key}: {problem}", code="RULES_INVALID")


def _load(file: str, data: bytes) -> dict[str, Any]:
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise _fail(file, "(file)", f"not valid TOML ({error})") from None
    if document.get("schema") != SCHEMA:
        raise _fail(file, "schema", f"must be {SCHEMA}")
    return document


def _code_list(file: str, key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _fail(file, key, "must be a list of non-empty strings")
    return [v.strip() for v in value]


def _parse_sets(data: bytes) -> dict[str, frozenset[str]]:
    file = "codesets.toml"
    document = _load(file, data)
    sets = document.get("sets")
    if not isinstance(sets, dict) or not sets:
        raise _fail(file, "sets", "missing or empty table")
    parsed = {}
    for name, codes in sets.items():
        if not _SET_NAME.match(name):
            raise _fail(file, f"sets.{name}", "set names are lower-case identifiers")
        parsed[name] = frozenset(_code_list(file, f"sets.{name}", codes))
    for required in ("medicare_filing",):
        if required not in parsed:
            raise _fail(file, f"sets.{required}", "required set is missing")
    return parsed


def _parse_crosswalk(data: bytes) -> dict[str, CrosswalkRow]:
    file = "crosswalk.toml"
    document = _load(file, data)
    rows = document.get("row", [])
    if not isinstance(rows, list):
        raise _fail(file, "row", "must be an array of tables ([[row]])")
    parsed: dict[str, CrosswalkRow] = {}
    for index, row in enumerate(rows):
        key = f"row[{index}]"
        deleted = row.get("deleted")
        if not isinstance(deleted, str) or not deleted:
            raise _fail(file, f"{key}.deleted", "missing code")
        if deleted in parsed:
            raise _fail(file, f"{key}.deleted", f"{deleted} appears twice")
        action = row.get("action")
        if action not in ("replace_code", "flag"):
            raise _fail(file, f"{key}.action", "must be replace_code or flag")
        effective = row.get("effective")
        if not isinstance(effective, date):
            raise _fail(file, f"{key}.effective", "must be a date (YYYY-MM-DD, unquoted)")
        replacement = row.get("replacement")
        if action == "replace_code" and not (isinstance(replacement, str) and replacement):
            raise _fail(file, f"{key}.replacement", "replace_code needs a replacement code")
        suggestion = tuple(_code_list(file, f"{key}.suggestion", row.get("suggestion", [])))
        unknown = set(row) - {"deleted", "action", "effective", "replacement", "suggestion", "note"}
        if unknown:
            raise _fail(file, f"{key}.{min(unknown)}", "unknown key")
        parsed[deleted] = CrosswalkRow(deleted=deleted, action=action, effective=effective,
                                       replacement=replacement, suggestion=suggestion, note=str(row.get("note", "")))
    return parsed


def _resolve_codes(file: str, key: str, value: Any, sets: dict[str, frozenset[str]]) -> frozenset[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise _fail(file, key, "must name a code set or list sets/codes")
    codes: set[str] = set()
    for item in items:
        if not isinstance(item, str) or not item:
            raise _fail(file, key, "entries must be strings")
        if _SET_NAME.match(item):
            if item not in sets:
                raise _fail(file, key, f"unknown code set {item!r}")
            codes |= sets[item]
        else:
            codes.add(item)
    return frozenset(codes)


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def _parse_rules(data: bytes, sets: dict[str, frozenset[str]], file: str = "rules.toml") -> tuple[RuleSpec, ...]:
    document = _load(file, data)
    rows = document.get("rule")
    if not isinstance(rows, list) or not rows:
        raise _fail(file, "rule", "no [[rule]] tables")
    specs = []
    seen: set[str] = set()
    for index, row in enumerate(rows):
        rule_id = row.get("id")
        key = f"rule[{index}]" if not isinstance(rule_id, str) else rule_id
        if not isinstance(rule_id, str) or not _RULE_ID.match(rule_id):
            raise _fail(file, f"{key}.id", "must look like PMP001")
        if rule_id in seen:
            raise _fail(file, f"{key}.id", "appears twice")
        seen.add(rule_id)
        kind = row.get("kind")
        if kind not in KINDS:
            raise _fail(file, f"{key}.kind", f"unknown kind {kind!r}; known: {', '.join(sorted(KINDS))}")
        severity = row.get("severity")
        if severity not in SEVERITIES:
            raise _fail(file, f"{key}.severity", f"must be one of {', '.join(SEVERITIES)}")
        actions = row.get("actions")
        if not isinstance(actions, dict) or set(actions) - set(OPTIONAL_SCOPES) != set(SCOPES):
            raise _fail(file, f"{key}.actions", "must give medicare = ... and other = ... (and may give medicaid = ...)")
        allowed = ("crosswalk",) if kind == "crosswalk" else ACTIONS
        for scope, action in actions.items():
            if action not in allowed:
                raise _fail(file, f"{key}.actions.{scope}", f"must be one of {', '.join(allowed)}")
            if action == "replace_code":
                raise _fail(file, f"{key}.actions.{scope}", "replace_code needs a crosswalk row (kind crosswalk)")
        title, message = row.get("title"), row.get("message")
        if not isinstance(title, str) or not title:
            raise _fail(file, f"{key}.title", "missing")
        if not isinstance(message, str) or not message:
            raise _fail(file, f"{key}.message", "missing")
        unknown_fields = _placeholders(message) - KINDS[kind].message_fields
        if unknown_fields:
            raise _fail(file, f"{key}.message", f"unknown placeholder {{{min(unknown_fields)}}}")
        docs = row.get("docs", {})
        for name in DOC_FIELDS:
            if not isinstance(docs.get(name), str) or not docs[name].strip():
                raise _fail(file, f"{key}.docs.{name}", "missing (every rule documents what, why, example, instead, evidence)")
        params_in = row.get("params", {})
        declared = KINDS[kind].parameters
        defaults = KINDS[kind].defaults
        unknown = set(params_in) - set(declared)
        if unknown:
            raise _fail(file, f"{key}.params.{min(unknown)}", f"not a parameter of kind {kind}")
        params: dict[str, Any] = {}
        for name, expected in declared.items():
            if name not in params_in:
                if name in defaults:
                    params[name] = defaults[name]
                    continue
                raise _fail(file, f"{key}.params.{name}", "missing")
            value = params_in[name]
            if expected in ("codes", "values"):  # a set name, or a list of set names and literals
                params[name] = _resolve_codes(file, f"{key}.params.{name}", value, sets)
            elif expected is int:
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise _fail(file, f"{key}.params.{name}", "must be a non-negative integer")
                params[name] = value
            elif expected is bool:
                if not isinstance(value, bool):
                    raise _fail(file, f"{key}.params.{name}", "must be true or false")
                params[name] = value
            else:
                if not isinstance(value, str) or not value:
                    raise _fail(file, f"{key}.params.{name}", "must be a non-empty string")
                params[name] = value
        specs.append(RuleSpec(id=rule_id, title=title, kind=kind, severity=severity, actions=dict(actions),
                              message=message, params=params, docs={k: docs[k].strip() for k in DOC_FIELDS}))
    return tuple(sorted(specs, key=lambda spec: spec.id))


def parse_rule_book(files: dict[str, bytes]) -> RuleBook:
    """Build the rule book from the three files' bytes (keyed by file name)."""
    for name in FILES:
        if name not in files:
            raise _fail(name, "(file)", "missing from the rules folder")
    sets = _parse_sets(files["codesets.toml"])
    crosswalk = _parse_crosswalk(files["crosswalk.toml"])
    rules = _parse_rules(files["rules.toml"], sets)
    if TABLE_RULES_FILE in files:
        table_rules = _parse_rules(files[TABLE_RULES_FILE], sets, TABLE_RULES_FILE)
        clash = {spec.id for spec in rules} & {spec.id for spec in table_rules}
        if clash:
            raise _fail(TABLE_RULES_FILE, f"{min(clash)}.id", "appears in rules.toml too")
        rules = tuple(sorted((*rules, *table_rules), key=lambda spec: spec.id))
    return RuleBook(code_sets=sets, crosswalk=crosswalk, rules=rules)
