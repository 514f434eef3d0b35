"""engine.frozen.fast_init: the same class as @dataclass(frozen=True, slots=True) made it, only a faster __init__."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.dispatch.admit import Sendable
from engine.dispatch.record import Accept, Fail, RetryLater
from engine.frozen import fast_init
from engine.policy.admission import Facts, Prepared
from engine.providers import OutboundRequest, SendResult
from engine.providers.http1 import Reply
from engine.segment.analyze import SegmentInfo
from engine.statuses import StatusChange
from engine.store.outbound import CarrierStatus, Claimed, FactsRequest, Outcome

FAST = [StatusChange, Reply, OutboundRequest, SendResult, Facts, Prepared, Sendable, Accept, RetryLater, Fail,
        Outcome, CarrierStatus, Claimed, FactsRequest, SegmentInfo]


def reference(cls: type) -> type:
    """The class as the dataclass decorator alone makes it (its generated __init__ included)."""
    fields = [(f.name, f.type, f.default if f.default is not dataclasses.MISSING else dataclasses.field())
              for f in dataclasses.fields(cls)]
    return dataclasses.make_dataclass(cls.__name__, fields, frozen=True, slots=True)


@pytest.mark.parametrize("cls", FAST, ids=lambda c: c.__name__)
def test_signature_and_semantics_are_the_dataclass_ones(cls: type) -> None:
    ref = reference(cls)
    assert inspect.signature(cls) == inspect.signature(ref)
    assert cls.__dict__["__init__"].__qualname__ == f"{cls.__qualname__}.__init__"
    # Every field set, positionally and by keyword, to distinct sentinels; defaults left out take their default.
    names = [f.name for f in dataclasses.fields(cls)]
    values = [object() for _ in names]
    a, b = cls(*values), cls(**dict(zip(names, values, strict=True)))
    assert a == b and hash(a) == hash(b)
    assert [getattr(a, n) for n in names] == values
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(a, names[0], 1)
    required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
    c = cls(*values[: len(required)])
    for f in dataclasses.fields(cls)[len(required):]:
        assert getattr(c, f.name) == f.default
    with pytest.raises(TypeError):
        cls(*values, object())  # one argument too many, as the dataclass's own __init__
    if required:
        with pytest.raises(TypeError):
            cls(*values[: len(required) - 1])  # one missing


@fast_init
@dataclass(frozen=True, slots=True)
class Point:
    x: int
    y: str
    z: float | None = None
    w: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class PointRef:
    x: int
    y: str
    z: float | None = None
    w: tuple[int, ...] = ()


@given(st.integers(), st.text(), st.none() | st.floats(allow_nan=False), st.tuples(st.integers()))
def test_equal_to_the_reference_on_any_values(x: int, y: str, z: float | None, w: tuple[int, ...]) -> None:
    p, r = Point(x, y, z, w), PointRef(x, y, z, w)
    assert (p.x, p.y, p.z, p.w) == (r.x, r.y, r.z, r.w)
    assert repr(p) == repr(r).replace("PointRef", "Point")
    assert p == Point(x=x, y=y, z=z, w=w) and hash(p) == hash(Point(x, y, z, w))
    assert Point(x, y) == Point(x, y, None, ())


def test_refuses_classes_it_cannot_copy_exactly() -> None:
    def make(**kw: Any) -> type:
        return dataclass(**kw)(type("C", (), {"__annotations__": {"a": "int"}}))

    with pytest.raises(TypeError):
        fast_init(make())  # not frozen
    with pytest.raises(TypeError):
        fast_init(make(frozen=True))  # no slots

    @dataclass(frozen=True, slots=True)
    class WithFactory:
        a: list[int] = dataclasses.field(default_factory=list)

    with pytest.raises(TypeError):
        fast_init(WithFactory)

    @dataclass(frozen=True, slots=True)
    class WithPost:
        a: int

        def __post_init__(self) -> None:
            pass

    with pytest.raises(TypeError):
        fast_init(WithPost)

    @dataclass(frozen=True, slots=True, kw_only=True)
    class KwOnly:
        a: int

    with pytest.raises(TypeError):
        fast_init(KwOnly)
