"""The release gate: one timer per instant, releases in instant order, none lost."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from chronoflow_contracts import utc_now
from chronoflow_scheduler.holding import ReleaseGate
from chronoflow_scheduler.service import collect_garbage_between_releases


async def test_releases_run_at_their_instant_in_order() -> None:
    gate = ReleaseGate()
    seen: list[tuple[str, float]] = []
    base = utc_now()
    soon, later = base + timedelta(milliseconds=80), base + timedelta(milliseconds=160)

    def record(name: str, due_offset: float) -> None:
        seen.append((name, (utc_now() - base).total_seconds() - due_offset))

    gate.at(later, lambda: record("later", 0.16))
    for i in range(1000):
        gate.at(soon, lambda i=i: record(f"soon-{i}", 0.08))  # type: ignore[misc]
    assert len(gate) == 1001
    await asyncio.sleep(0.3)
    assert [name for name, _ in seen] == [f"soon-{i}" for i in range(1000)] + ["later"]
    assert all(early >= 0 for _, early in seen), "nothing is released before its instant"
    assert len(gate) == 0


async def test_a_discarded_release_does_not_run_and_a_failing_one_stops_nothing() -> None:
    gate = ReleaseGate()
    ran: list[str] = []
    due = utc_now() + timedelta(milliseconds=50)

    def boom() -> None:
        raise RuntimeError("boom")

    def dropped() -> None:
        ran.append("dropped")

    gate.at(due, boom)
    gate.at(due, dropped)
    gate.at(due, lambda: ran.append("kept"))
    gate.discard(due, dropped)
    await asyncio.sleep(0.15)
    assert ran == ["kept"]


async def test_a_past_instant_is_released_at_once() -> None:
    gate = ReleaseGate()
    done = asyncio.Event()
    gate.at(utc_now() - timedelta(seconds=5), done.set)
    await asyncio.wait_for(done.wait(), timeout=1)


async def test_next_due_is_the_earliest_instant_still_held() -> None:
    gate = ReleaseGate()
    assert gate.next_due() is None
    base = utc_now()
    gate.at(base + timedelta(hours=2), lambda: None)
    gate.at(base + timedelta(hours=1), lambda: None)
    assert gate.next_due() == base + timedelta(hours=1)
    gate.at(base, lambda: None)
    await asyncio.sleep(0.05)  # the past instant is released
    assert gate.next_due() == base + timedelta(hours=1)


class Timeline:
    """What happened, in order; ``collected`` is set by the first full garbage collection."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.collected = asyncio.Event()

    def on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start" and info["generation"] == 2:
            self.seen.append("collect")
            self.collected.set()


@pytest.fixture
def timeline() -> Iterator[Timeline]:
    """A timeline that notes full garbage collections while the test runs (automatic ones are
    off meanwhile, so every one noted was asked for)."""
    found = Timeline()
    was_enabled = gc.isenabled()
    gc.disable()
    gc.callbacks.append(found.on_gc)
    yield found
    gc.callbacks.remove(found.on_gc)
    if was_enabled:
        gc.enable()


async def test_full_collection_waits_until_no_release_is_near(timeline: Timeline) -> None:
    gate = ReleaseGate()
    gate.at(utc_now() + timedelta(milliseconds=300), lambda: timeline.seen.append("release"))
    loop = asyncio.create_task(
        collect_garbage_between_releases(gate, every=0.01, quiet=1.0, patience=30)
    )
    try:
        await timeline.collected.wait()
    finally:
        loop.cancel()
    assert timeline.seen[:2] == ["release", "collect"]
