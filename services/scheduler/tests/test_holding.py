"""The release gate: one timer per instant, releases in instant order, none lost."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from chronoflow_contracts import utc_now
from chronoflow_scheduler.holding import ReleaseGate


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
