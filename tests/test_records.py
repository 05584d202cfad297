"""``edi.records.Record`` makes the class ``typing.NamedTuple`` makes, faster."""

from __future__ import annotations

import pickle
from typing import NamedTuple

import pytest

from edi.records import Record


class TypedPoint(NamedTuple):
    """A point."""

    x: int
    y: int = 0
    label: str | None = None

    @property
    def norm(self) -> int:
        return abs(self.x) + abs(self.y)

    def moved(self, dx: int) -> TypedPoint:
        return self._replace(x=self.x + dx)


class Point(Record):
    """A point."""

    x: int
    y: int = 0
    label: str | None = None

    @property
    def norm(self) -> int:
        return abs(self.x) + abs(self.y)

    def moved(self, dx: int) -> Point:
        return self._replace(x=self.x + dx)


def test_a_record_is_the_namedtuple_typing_would_make() -> None:
    for cls in (Point, TypedPoint):
        point = cls(3, -4)
        assert point == (3, -4, None) and point.norm == 7 and point.moved(1).x == 4
        assert isinstance(point, tuple) and cls.__bases__ == (tuple,)
    assert Point._fields == TypedPoint._fields and Point._field_defaults == TypedPoint._field_defaults
    assert Point.__doc__ == TypedPoint.__doc__ and Point.__qualname__ == "Point"
    assert list(Point.__annotations__) == list(TypedPoint.__annotations__)
    assert repr(Point(1, label="a")) == repr(TypedPoint(1, label="a")).replace("TypedPoint", "Point")
    assert Point(1, 2)._asdict() == TypedPoint(1, 2)._asdict()
    assert pickle.loads(pickle.dumps(Point(5, 6, "z"))) == Point(5, 6, "z")
    assert Point.__module__ == __name__


def test_a_record_refuses_what_namedtuple_refuses() -> None:
    with pytest.raises(TypeError):
        class Broken(Record):  # a field without a default after one with a default
            a: int = 1
            b: int
    with pytest.raises(AttributeError):
        class Clobbering(Record):
            a: int

            def _replace(self, **kwargs: object) -> None: ...
