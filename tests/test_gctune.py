"""engine.gctune: start-up objects frozen out of the collector, young collections rarer, cycles still collected."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from engine import gctune


@pytest.fixture
def restore_gc() -> Iterator[None]:
    """Start with nothing frozen (tests/conftest.py freezes what collection built), end as before."""
    before = gc.get_threshold()
    was_frozen = gc.get_freeze_count() > 0
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)
    if was_frozen:
        gc.freeze()


@pytest.mark.usefixtures("restore_gc")
def test_tune_freezes_start_up_objects_and_raises_the_young_threshold() -> None:
    gen1, gen2 = gc.get_threshold()[1:]
    assert gctune.tune(12_345) == (12_345, gen1, gen2)
    assert gc.get_freeze_count() > 1000  # modules, classes, functions: no longer re-scanned


@pytest.mark.usefixtures("restore_gc")
def test_cycles_made_after_tuning_are_still_collected() -> None:
    gctune.tune()

    class Node:
        other: object = None

    a, b = Node(), Node()
    a.other, b.other = b, a  # a reference cycle: only the cyclic collector frees it
    gone = weakref.ref(a)
    del a, b
    gc.collect()
    assert gone() is None
