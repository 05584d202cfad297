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
from collections.abc import Mapping
from datetime import date
from typing import Any

from edi.errors import RulesError
from edi.records import Record
from edi.rules.codes import EMPTY, CodeMap, CodeSet, CodeSetError
from edi.rules.kinds import KINDS

FILES = ("codesets.toml", "crosswalk.toml", "rules.toml")
# The CMS correct-coding rules (NCC001-NCC003, edi.rules.ncc) in a file of their own, optional:
# a rules folder without it has no table-driven rules.
TABLE_RULES_FILE = "ncc.toml"
SCHEMA = 1
ACTIONS = ("drop_line", "replace_code", "flag")
SEVERITIES = ("error", "warning", "info")
# Payer scopes (pump-rules v2): medicare = SBR09 in the medicare_filing set (MB), medicaid = in
# the medicaid_filing set (MC), other = everything else. A rule row gives each scope an action;
# one key may name several scopes ("medicaid,other" = "flag").
SCOPES = ("medicare", "medicaid", "other")
DOC_FIELDS = ("what", "why", "example", "instead", "evidence")
_RULE_ID = re.compile(r"(PMP|NCC)\d{3}\Z")
_SET_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")

class CrosswalkRow(Record):
    deleted: str
    action: str
    effective: date
    replacement: str | None = None
    suggestion: tuple[str, ...] = ()
    note: str = ""


class RuleSpec(Record):
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


class RuleBook(Record):
    code_sets: dict[str, CodeSet]
    crosswalk: dict[str, CrosswalkRow]
    rules: tuple[RuleSpec, ...]
    code_lists: dict[str, tuple[str, ...]] = {}  # noqa: RUF012 - each set's entries in file order (ranked sets)
    maps: dict[str, CodeMap] = {}  # noqa: RUF012 - the [maps] tables of codesets.toml

    def rule(self, rule_id: str) -> RuleSpec:
        for spec in self.rules:
            if spec.id == rule_id:
                return spec
        raise KeyError(rule_id)

    @property
    def medicare_filing(self) -> CodeSet:
        return self.code_sets["medicare_filing"]

    @property
    def medicaid_filing(self) -> CodeSet:
        return self.code_sets.get("medicaid_filing", EMPTY)

    @property
    def relevant_codes(self) -> CodeSet:
        """Every procedure code some rule looks at: the index keeps lines of these only."""
        return CodeSet.union(CodeSet(self.crosswalk), *(
            codes_in(spec.params[name]) for spec in self.rules for name in KINDS[spec.kind].code_parameters()))


def codes_in(value: CodeSet | CodeMap | tuple[str, ...]) -> CodeSet:
    """The codes a code parameter names (a map: both its sides)."""
    if isinstance(value, CodeSet):
        return value
    if isinstance(value, CodeMap):
        return value.keys_set | value.values_set
    return CodeSet(value)


def history_codes_in(value: CodeSet | CodeMap | tuple[str, ...]) -> CodeSet:
    """The codes a parameter a kind looks back for names: a map's values (PMP012: the
    primaries of its add-on codes), else all its codes."""
    return value.values_set if isinstance(value, CodeMap) else codes_in(value)


def _fail(file: str, key: str, problem: str) -> RulesError:
    return RulesError(f"{file}: {key}: {problem}", code="RULES_INVALID")


# A rule file: its bytes, or its TOML document already parsed (``edi.adapters.rules_cache``
# keeps the parsed documents of the files' exact bytes: parsing them is most of the book's cost).
RuleFile = bytes | dict[str, Any]


def _load(file: str, data: RuleFile) -> dict[str, Any]:
    if isinstance(data, dict):
        document = data
    else:
        import tomllib  # here: a run whose documents come from the cache never imports it

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


def _code_set(file: str, key: str, entries: list[str]) -> CodeSet:
    try:
        return CodeSet.parse(entries)
    except CodeSetError as error:
        raise _fail(file, key, str(error)) from None


class _Sets(Record):
    sets: dict[str, CodeSet]
    lists: dict[str, tuple[str, ...]]
    maps: dict[str, CodeMap]


def _parse_map(file: str, key: str, table: Any, sets: dict[str, CodeSet]) -> CodeMap:
    """A code -> codes table: each value a code, a set name, or a list of those."""
    if not isinstance(table, dict) or not table:
        raise _fail(file, key, "must be a table of code = codes")
    parsed = {}
    for code, value in table.items():
        if not isinstance(code, str) or not code.strip() or "*" in code or "-" in code:
            raise _fail(file, f"{key}.{code}", "keys are single codes")
        parsed[code.strip().upper()] = _resolve_codes(file, f"{key}.{code}", value, sets)
    return CodeMap(parsed)


def _parse_sets(data: RuleFile) -> _Sets:
    file = "codesets.toml"
    document = _load(file, data)
    sets = document.get("sets")
    if not isinstance(sets, dict) or not sets:
        raise _fail(file, "sets", "missing or empty table")
    parsed, lists = {}, {}
    for name, codes in sets.items():
        if not _SET_NAME.match(name):
            raise _fail(file, f"sets.{name}", "set names are lower-case identifiers")
        entries = _code_list(file, f"sets.{name}", codes)
        parsed[name] = _code_set(file, f"sets.{name}", entries)
        lists[name] = tuple(entry.upper() for entry in entries)
    for required in ("medicare_filing", "medicaid_filing"):
        if required not in parsed:
            raise _fail(file, f"sets.{required}", "required set is missing")
    maps_in = document.get("maps", {})
    if not isinstance(maps_in, dict):
        raise _fail(file, "maps", "must be a table of tables")
    maps = {}
    for name, table in maps_in.items():
        if not _SET_NAME.match(name) or name in parsed:
            raise _fail(file, f"maps.{name}", "map names are lower-case identifiers, distinct from set names")
        maps[name] = _parse_map(file, f"maps.{name}", table, parsed)
    return _Sets(parsed, lists, maps)


def _parse_crosswalk(data: RuleFile) -> dict[str, CrosswalkRow]:
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
        for code, suggested in _crosswalk_codes(file, key, deleted, suggestion):
            if code in parsed:
                raise _fail(file, f"{key}.deleted", f"{code} appears twice")
            parsed[code] = CrosswalkRow(deleted=code, action=action, effective=effective, replacement=replacement,
                                        suggestion=suggested, note=str(row.get("note", "")))
    return parsed


def _numbered(low: str, high: str) -> list[str]:
    """The codes of a range of numbered codes: letters kept, digits counted (G0345-G0363)."""
    head = len(low.rstrip("0123456789"))
    if low[:head] != high[:head] or not low[head:]:
        return []
    width = len(low) - head
    return [f"{low[:head]}{n:0{width}d}" for n in range(int(low[head:]), int(high[head:]) + 1)]


def _crosswalk_codes(file: str, key: str, deleted: str,
                     suggestion: tuple[str, ...]) -> list[tuple[str, tuple[str, ...]]]:
    """A row's deleted codes and each one's suggestion. A range row (``deleted =
    "90760-90779"``) stands for each code of the range; with a parallel range as its only
    suggestion (``["96360-96379"]``, the 2009 renumbering) each code is suggested its counterpart."""
    if "-" not in deleted:
        return [(deleted, suggestion)]
    low, _, high = deleted.partition("-")
    codes = _numbered(low, high) if len(low) == len(high) and low <= high else []
    if not codes:
        raise _fail(file, f"{key}.deleted", "a range is two numbered codes of one length, the lower first")
    if len(suggestion) == 1 and "-" in suggestion[0]:
        first, _, last = suggestion[0].partition("-")
        targets = _numbered(first, last) if len(first) == len(last) else []
        if len(targets) != len(codes):
            raise _fail(file, f"{key}.suggestion", "a range suggestion must have as many codes as the deleted range")
        return [(code, (target,)) for code, target in zip(codes, targets, strict=True)]
    return [(code, suggestion) for code in codes]


def _resolve_codes(file: str, key: str, value: Any, sets: dict[str, CodeSet]) -> CodeSet:
    """A set name, or a list of set names and entries (codes, ``J*``, ``80047-89398``)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise _fail(file, key, "must name a code set or list sets/codes")
    named: list[CodeSet] = []
    entries: list[str] = []
    for item in items:
        if not isinstance(item, str) or not item:
            raise _fail(file, key, "entries must be strings")
        if _SET_NAME.match(item):
            if item not in sets:
                raise _fail(file, key, f"unknown code set {item!r}")
            named.append(sets[item])
        else:
            entries.append(item)
    return CodeSet.union(_code_set(file, key, entries), *named)


def _resolve_ranked(file: str, key: str, value: Any, sets: _Sets) -> tuple[str, ...]:
    """An ordered list of codes: a set's entries in the order codesets.toml lists them, or a list."""
    if isinstance(value, str) and value in sets.lists:
        items: Any = sets.lists[value]
    else:
        items = value
    if not isinstance(items, (list, tuple)) or not items or not all(
            isinstance(i, str) and i and "*" not in i and "-" not in i for i in items):
        raise _fail(file, key, "must name a code set of single codes, or list codes, highest rank first")
    return tuple(i.strip().upper() for i in items)


def _resolve_map(file: str, key: str, value: Any, sets: _Sets) -> CodeMap:
    if isinstance(value, str):
        if value not in sets.maps:
            raise _fail(file, key, f"unknown map {value!r}")
        return sets.maps[value]
    return _parse_map(file, key, value, sets.sets)


def _parse_actions(file: str, key: str, actions: Any, allowed: tuple[str, ...]) -> dict[str, str]:
    """Each scope's action; a key may name several scopes joined by commas."""
    if not isinstance(actions, dict) or not actions:
        raise _fail(file, f"{key}.actions", "must give an action per scope (medicare, medicaid, other)")
    parsed: dict[str, str] = {}
    for names, action in actions.items():
        for scope in (name.strip() for name in names.split(",")):
            if scope not in SCOPES:
                raise _fail(file, f"{key}.actions.{names}", f"unknown payer scope {scope!r}; scopes: {', '.join(SCOPES)}")
            if scope in parsed:
                raise _fail(file, f"{key}.actions.{names}", f"scope {scope} is given twice")
            if action not in allowed:
                raise _fail(file, f"{key}.actions.{names}", f"must be one of {', '.join(allowed)}")
            if action == "replace_code":
                raise _fail(file, f"{key}.actions.{names}", "replace_code needs a crosswalk row (kind crosswalk)")
            parsed[scope] = action
    missing = [scope for scope in SCOPES if scope not in parsed]
    if missing:
        raise _fail(file, f"{key}.actions", f"no action for scope {', '.join(missing)} (give medicare, medicaid and other)")
    return {scope: parsed[scope] for scope in SCOPES}


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def _parse_rules(data: RuleFile, sets: _Sets, file: str = "rules.toml") -> tuple[RuleSpec, ...]:
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
        allowed = ("crosswalk",) if kind == "crosswalk" else ACTIONS
        actions = _parse_actions(file, key, row.get("actions"), allowed)
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
                params[name] = _resolve_codes(file, f"{key}.params.{name}", value, sets.sets)
            elif expected == "ranked":
                params[name] = _resolve_ranked(file, f"{key}.params.{name}", value, sets)
            elif expected == "code_map":
                params[name] = _resolve_map(file, f"{key}.params.{name}", value, sets)
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


def parse_rule_book(files: Mapping[str, RuleFile]) -> RuleBook:
    """Build the rule book from the files' bytes or parsed documents (keyed by file name)."""
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
    return RuleBook(code_sets=sets.sets, crosswalk=crosswalk, rules=rules, code_lists=sets.lists, maps=sets.maps)
