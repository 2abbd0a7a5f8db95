"""heap.settle: what survives start-up is frozen and young collections become rare."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from chronoflow_platform import heap


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_collector")
def test_settle_freezes_and_raises_the_young_threshold() -> None:
    _, middle, full = gc.get_threshold()
    heap.settle()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (heap.YOUNG_THRESHOLD, middle, full)


@pytest.mark.usefixtures("restored_collector")
def test_settle_replaces_the_full_threshold_when_asked() -> None:
    heap.settle(full_threshold=1_000_000)
    assert gc.get_threshold()[2] == 1_000_000
