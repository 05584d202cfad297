"""``Record``: ``typing.NamedTuple``'s class syntax without its start-up cost.

Every module here writes ``from __future__ import annotations``, so a NamedTuple's field types
are strings, and ``typing.NamedTuple`` checks each one by compiling it into a ``ForwardRef``:
~0.9 ms for a six-field class against ~0.16 ms for ``collections.namedtuple`` (in-process, 100
classes). ``validate`` defines some forty of them before it reads a byte, about 30 ms of a run
that ``bin/bench`` times whole. ``Record`` builds the same class (a ``collections.namedtuple``
with the class body's defaults, methods, properties and docstring, and ``__annotations__``)
without the check; type checkers see ``typing.NamedTuple`` itself, so mypy checks the fields as
before. Nothing here reads the annotations at run time (``get_type_hints`` is not used).

Only the class form is supported (``class Point(Record): x: int``); one level, no subclassing
of a record by another record, as with NamedTuple.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing import NamedTuple as Record
else:
    from collections import namedtuple

    # As typing.NamedTupleMeta: the namedtuple's own attributes may not be set by the body.
    _PROHIBITED = frozenset({"__new__", "__init__", "__slots__", "__getnewargs__", "_fields", "_field_defaults",
                             "_make", "_replace", "_asdict", "_source"})
    _SPECIAL = frozenset({"__module__", "__name__", "__annotations__"})

    class _RecordMeta(type):
        def __new__(cls, typename: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> type:
            if namespace.get("_root"):  # Record itself
                return super().__new__(cls, typename, bases, namespace)
            annotations = namespace.get("__annotations__", {})
            fields = list(annotations)
            defaults = [namespace[name] for name in fields if name in namespace]
            if defaults and any(name not in namespace for name in fields[len(fields) - len(defaults):]):
                raise TypeError(f"{typename}: a field without a default follows one with a default")
            record = namedtuple(typename, fields, defaults=defaults, module=namespace["__module__"])  # noqa: PYI024 - the point
            record.__annotations__ = record.__new__.__annotations__ = dict(annotations)
            for key, value in namespace.items():
                if key in _PROHIBITED:
                    raise AttributeError(f"{typename}: cannot overwrite NamedTuple attribute {key}")
                if key not in _SPECIAL and key not in record._fields:
                    setattr(record, key, value)
            return record

    class Record(metaclass=_RecordMeta):
        _root = True

__all__ = ["Record"]
