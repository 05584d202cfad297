"""Element checks of one segment against its guide node: usage, length, type, codes, syntax notes.

Each problem is an ``ElementProblem`` with its X12 999 IK403 code:

=====  ================================================================================
1      required data element missing (an element, or a required composite left empty)
2      conditional required data element missing (syntax notes P, R, C, L)
3      too many data elements
4      data element too short
5      data element too long
6      invalid character in data element (type AN/ID character set, N/R not a number,
       a control character, padding: trailing spaces, a component separator in a simple
       element, a separator standing after the last element of the segment)
7      invalid code value (the element's code list or external list; a guide pattern)
8      invalid date
9      invalid time
10     exclusion condition violated (syntax note E)
13     too many components
I10    implementation "not used" data element present
=====  ================================================================================

The rules follow pyx12's (the oracle) except where it is wrong, each listed in the module
docstring of ``edi.ig.validator``. Values never leave this module except as ``copy`` (the bad
value, for IK404 of the 999 only).

``compile_checker`` generates per guide segment one function that answers "clean or not"
exactly as ``check_segment`` would; the validator runs ``check_segment`` only when it says
"not clean" (a property test compares the two over every guide segment). On the synthetic
20k-claim file a quarter of the segments are bodies not seen before (names, IDs, claim and
HL numbers), and the interpreted check of those was the largest part of the IG check.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from edi.ig.guide import UNBOUNDED, CompositeRule, ElementRule, Node
from edi.records import Record

# The X12 extended character set for 00501 (pyx12's rec_ID_E5, the charset it checks by default).
_BAD_CHARACTER = re.compile(r"""[^A-Z0-9!"&'()*+,\-./:;?= a-z%~@\[\]_{}\\|<>^`#$]""")
_NUMBER = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"-?[0-9]*(\.[0-9]+)?")
_DIGITS = re.compile(r"[0-9]+")
_CONTROL = re.compile(r"[\x01-\x07\x09-\x0d\x11-\x17\x1c-\x1f]")
_THIRTY = (4, 6, 9, 11)
_REMEMBERED = 4096
_DATE_FORMATS = frozenset({"RD8", "D8", "D6", "DT", "TM"})


class ElementProblem(Record):
    """An element-level problem: position (1-based), component (0: none), IK403 code."""

    position: int
    component: int
    ref: str
    code: str
    copy: str | None  # the bad value (IK404), None when there is none to copy


def valid_date(value: str, kind: str = "D8") -> bool:
    if not _DIGITS.fullmatch(value) or (kind == "D8" and len(value) != 8) or (kind == "D6" and len(value) != 6):
        return False
    if len(value) not in (6, 8, 12):
        return False
    if len(value) == 6:
        value = ("20" if int(value[:2]) < 50 else "19") + value
    year, month, day = int(value[:4]), int(value[4:6]), int(value[6:8])
    if year < 1800 or not 1 <= month <= 12:
        return False
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        last = 29 if leap else 28
    else:
        last = 30 if month in _THIRTY else 31
    return 1 <= day <= last and (len(value) != 12 or valid_time(value[8:]))


def valid_time(value: str) -> bool:
    if not _DIGITS.fullmatch(value) or len(value) < 4 or len(value) == 5 or len(value) > 8:
        return False
    return value[:2] <= "23" and value[2:4] <= "59" and (len(value) < 6 or value[4:6] <= "59")


def _type_problem(rule: ElementRule, value: str) -> str | None:
    kind = rule.type
    if kind[0] == "N":
        return None if _NUMBER.fullmatch(value) else "6"
    if kind == "R":
        return None if _DECIMAL.fullmatch(value) and value != "-" else "6"
    if kind in ("ID", "AN"):
        return "6" if _BAD_CHARACTER.search(value) else None
    if kind in ("DT", "D8", "D6"):
        return None if valid_date(value, kind) else "8"
    if kind == "TM":
        return None if valid_time(value) else "9"
    if kind == "RD8":
        start, _, end = value.partition("-")
        return None if end and valid_date(start) and valid_date(end) else "8"
    return None


def _period_problem(value: str, date_format: str) -> str | None:
    """DTP03 against DTP02 (D8, RD8, ...): pyx12 checks the date the format names."""
    if date_format == "RD8":
        start, dash, end = value.partition("-")
        return None if dash and valid_date(start) and valid_date(end) else "8"
    if date_format in ("D8", "D6", "DT"):
        return None if valid_date(value, date_format) else "8"
    if date_format == "TM":
        return None if valid_time(value) else "9"
    return None


def check_value(rule: ElementRule, value: str, date_format: str | None = None) -> tuple[str, ...]:
    """The IK403 codes of one present (non-empty) value (remembered per rule for values that
    repeat: codes, dates, amounts; a date with the format it is read in)."""
    key = value if date_format is None else (value, date_format)
    known = rule.checked.get(key)
    if known is None:
        known = tuple(_check_value(rule, value, date_format))
        if len(rule.checked) < _REMEMBERED:
            rule.checked[key] = known
    return known


def _check_value(rule: ElementRule, value: str, date_format: str | None) -> list[str]:
    if rule.usage == "N":
        return ["I10"]
    codes = []
    measured = len(value.replace("-", "").replace(".", "")) if rule.type == "R" or rule.type[0] == "N" else len(value)
    if measured < rule.min:
        codes.append("4")
    if measured > rule.max:
        codes.append("5")
    if _CONTROL.search(value):
        codes.append("6")
        return codes
    # Padding is an invalid character, except in the interchange header (fixed width: I01-I16).
    if rule.type in ("AN", "ID") and value[-1] == " " and len(value.rstrip()) >= rule.min and rule.ref[0] != "I":
        codes.append("6")
    if rule.codes is not None and value not in rule.codes and (rule.external is None or value not in rule.external):
        codes.append("7")
    problem = _type_problem(rule, value)
    if problem:
        codes.append(problem)
    if date_format:
        problem = _period_problem(value, date_format)
        if problem and problem not in codes:
            codes.append(problem)
    if rule.pattern and not re.search(rule.pattern, value):
        codes.append("7")
    return codes


def check_segment(node: Node, elements: list[str], component: str) -> list[ElementProblem]:
    """Every element problem of a segment (``elements[0]`` is element 01)."""
    out: list[ElementProblem] = []
    rules = node.elements
    count = len(rules)
    present = len(elements)
    if present > count:
        out.append(ElementProblem(count + 1, 0, "", "3", None))
    # A date is checked as the format beside it says (pyx12's rule): DTP03 by DTP02, and DMG02
    # (the birth date) by DMG01.
    date_format, dated = None, -1
    if node.id == "DTP" and present > 2 and elements[1] in _DATE_FORMATS:
        date_format, dated = elements[1], 2
    elif node.id == "DMG" and present > 1 and elements[0] in _DATE_FORMATS:
        date_format, dated = elements[0], 1
    check_separator = node.id != "ISA"
    for index in range(min(present, count)):
        raw = elements[index]
        rule = rules[index]
        if isinstance(rule, CompositeRule):
            _check_composite(rule, raw, component, out)
        elif not raw:
            if rule.usage == "R":
                out.append(ElementProblem(index + 1, 0, rule.ref, "1", None))
        elif check_separator and component in raw:
            out.append(ElementProblem(index + 1, 0, rule.ref, "6", None))
        else:
            codes = check_value(rule, raw, date_format if index == dated else None)
            if codes:
                out.extend(ElementProblem(index + 1, 0, rule.ref, code, raw) for code in codes)
    out.extend(ElementProblem(rule.position, 0, rule.ref, "1", None) for rule in rules[present:] if rule.usage == "R")
    for note in node.syntax:
        code, first = _syntax_problem(note, elements)
        if code:
            out.append(ElementProblem(first, 0, rules[first - 1].ref if 0 < first <= count else "", code, None))
    return out


def _check_composite(rule: CompositeRule, raw: str, component: str, out: list[ElementProblem]) -> None:
    parts = raw.split(component) if raw else []
    filled = any(parts)
    position = rule.position
    if not filled:
        if rule.usage == "R":
            out.append(ElementProblem(position, 0, rule.ref, "1", None))
        return
    if rule.usage == "N":
        out.append(ElementProblem(position, 0, rule.ref, "I10", None))
        return
    components = rule.components
    if len(parts) > len(components):
        out.append(ElementProblem(position, 0, rule.ref, "13", None))
    for index, sub in enumerate(components):
        value = parts[index] if index < len(parts) else ""
        if not value:
            # pyx12's rule: the first component of a situational composite is not reported
            # missing (the composite as a whole is absent or has another component).
            if sub.usage == "R" and (index or rule.usage == "R"):
                out.append(ElementProblem(position, index + 1, sub.ref, "1", None))
            continue
        out.extend(ElementProblem(position, index + 1, sub.ref, code, value) for code in check_value(sub, value))


def _syntax_problem(note: tuple[object, ...], elements: list[str]) -> tuple[str | None, int]:
    """A syntax note's IK403 code and the element it names first, or (None, 0)."""
    kind = note[0]
    positions = [int(str(p)) for p in note[1:]]

    def there(position: int) -> bool:
        return position <= len(elements) and elements[position - 1] != ""

    found = [p for p in positions if there(p)]
    if kind == "P" and found and len(found) != len(positions):
        return "2", next(p for p in positions if not there(p))
    if kind == "R" and not found:
        return "2", positions[0]
    if kind == "E" and len(found) > 1:
        return "10", found[1]
    if kind == "C" and there(positions[0]):
        missing = [p for p in positions[1:] if not there(p)]
        if missing:
            return "2", missing[0]
    if kind == "L" and there(positions[0]) and not any(there(p) for p in positions[1:]):
        return "2", positions[1]
    return None, 0


# -- compiled checkers -------------------------------------------------------------------------
# ``check_segment`` interprets a node's rules per segment; most segments are clean, and a
# segment whose text was not seen before (names, IDs, claim numbers, HL numbers: a quarter of a
# real file's segments) paid for the interpretation in full. ``compile_checker`` generates, per
# guide segment node, one function that answers only "clean or not", exactly as
# ``check_segment`` would (its result is [] or not): the rules' loop unrolled, each element's
# test chosen when compiled (a code list is a set of the codes that pass every check, an AN or ID
# element without codes a regular expression of its character set and lengths, a number one of
# its digits), the syntax notes as boolean expressions. When it says "not clean",
# ``check_segment`` finds the problems. Elements whose test is not worth generating (R, dates,
# a pattern) call ``check_value`` (its answer is remembered per value).
Checker = Callable[[list[str], str], bool]
_ALLOWED = r"""A-Z0-9!"&'()*+,\-./:;?= a-z%~@\[\]_{}\\|<>^`#$"""


def _length(low: int, high: int) -> str:
    return f"{{{max(low, 0)},}}" if high >= UNBOUNDED else f"{{{max(low, 0)},{max(high, 0)}}}"


def _value_fails(rule: ElementRule, name: str, namespace: dict[str, object]) -> str:
    """An expression true when ``check_value(rule, v)`` finds a problem (``v`` non-empty)."""
    if rule.usage == "N":
        return "True"
    if rule.codes is not None:
        # Every code (and external code) that passes all checks: membership is the whole test.
        candidates = set(rule.codes) | set(rule.external or ())
        namespace[name] = frozenset(code for code in candidates if code and not _check_value(rule, code, None))
        return f"v not in {name}"
    if rule.pattern is None and rule.min <= rule.max:
        if rule.type in ("AN", "ID") and rule.min >= 1:
            # A trailing space may be padding (a problem) or not (short values): left to
            # check_value, as is everything the expression refuses.
            last = "[" + _ALLOWED.replace(" ", "") + "]"
            expression = f"[{_ALLOWED}]{_length(rule.min - 1, rule.max - 1)}{last}"
            namespace[name] = re.compile(expression).fullmatch
            return f"({name}(v) is None and check_value({name}_rule, v))"
        if rule.type[0] == "N":
            namespace[name] = re.compile(f"-?[0-9]{_length(rule.min, rule.max)}").fullmatch
            return f"({name}(v) is None and check_value({name}_rule, v))"
    return f"check_value({name}_rule, v)"


def compile_checker(node: Node) -> Checker:
    """``clean(elements, component)``: True exactly when ``check_segment(node, elements,
    component)`` finds no problem."""
    rules = node.elements
    count = len(rules)
    required = max((index + 1 for index, rule in enumerate(rules) if rule.usage == "R"), default=0)
    namespace: dict[str, object] = {"check_value": check_value, "DATE_FORMATS": _DATE_FORMATS}
    lines = ["def clean(e, c):", "    n = len(e)", f"    if n > {count} or n < {required}:", "        return False"]
    dated = {"DTP": (2, 1), "DMG": (1, 0)}.get(node.id)
    indent = "    "
    for index, rule in enumerate(rules):
        if index >= required:
            # Nested: a short segment (the common case) passes one test for all it lacks.
            lines.append(f"{indent}if n > {index}:")
            indent += "    "
        lines.append(f"{indent}v = e[{index}]")
        if isinstance(rule, CompositeRule):
            lines += [indent + line for line in _composite_lines(rule, f"r{index}", namespace)]
            continue
        name = f"r{index}"
        namespace[f"{name}_rule"] = rule
        fails = _value_fails(rule, name, namespace)
        if dated is not None and index == dated[0]:
            # The date is checked as the format beside it says (see check_segment).
            fails = f"(check_value({name}_rule, v, e[{dated[1]}]) if e[{dated[1]}] in DATE_FORMATS else {fails})"
        separator = "" if node.id == "ISA" else "c in v or "
        if rule.usage == "N":
            lines += [f"{indent}if v:", f"{indent}    return False"]
        elif rule.usage == "R":
            lines += [f"{indent}if not v or {separator}{fails}:", f"{indent}    return False"]
        else:
            lines += [f"{indent}if v and ({separator}{fails}):", f"{indent}    return False"]
    for note in node.syntax:
        lines += ["    " + line for line in _syntax_lines(note)]
    lines.append("    return True")
    exec("\n".join(lines), namespace)  # noqa: S102 - source built above from the guide's own tables
    checker: Checker = namespace["clean"]  # type: ignore[assignment]
    return checker


def _composite_lines(rule: CompositeRule, name: str, namespace: dict[str, object]) -> list[str]:
    """Statements judging a composite ``v`` as ``_check_composite`` does (returning False)."""
    lines = ["if v:", "    p = v.split(c)"]
    empty = ["        return False"] if rule.usage == "R" else ["        pass"]
    lines += ["    if not any(p):", *empty, "    else:"]
    if rule.usage == "N":
        return [*lines, "        return False"]
    components = rule.components
    lines += [f"        if len(p) > {len(components)}:", "            return False", "        k = len(p)"]
    for index, sub in enumerate(components):
        sub_name = f"{name}_{index}"
        namespace[f"{sub_name}_rule"] = sub
        fails = _value_fails(sub, sub_name, namespace)
        value = "p[0]" if index == 0 else f"(p[{index}] if k > {index} else '')"
        lines.append(f"        v = {value}")
        if sub.usage == "R" and (index or rule.usage == "R"):
            lines += [f"        if not v or {fails}:", "            return False"]
        else:
            lines += [f"        if v and {fails}:", "            return False"]
    if rule.usage == "R":
        lines += ["else:", "    return False"]
    return lines


def _syntax_lines(note: tuple[object, ...]) -> list[str]:
    """Statements returning False when a syntax note is broken (as ``_syntax_problem``)."""
    kind = note[0]
    there = [f"(n > {int(str(p)) - 1} and e[{int(str(p)) - 1}] != '')" for p in note[1:]]
    if not there or (kind in ("C", "L") and len(there) < 2):
        return []
    if kind == "P":
        condition = f"({' or '.join(there)}) and not ({' and '.join(there)})"
    elif kind == "R":
        condition = f"not ({' or '.join(there)})"
    elif kind == "E":
        condition = f"({' + '.join(there)}) > 1"
    elif kind == "C":
        condition = f"{there[0]} and not ({' and '.join(there[1:])})"
    elif kind == "L":
        condition = f"{there[0]} and not ({' or '.join(there[1:])})"
    else:
        return []
    return [f"if {condition}:", "    return False"]
