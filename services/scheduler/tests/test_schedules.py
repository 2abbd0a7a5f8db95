"""A chrono's schedule message on a real JetStream: versions only move forward, cancels are
exact, and a repeated arm inside the duplicate window is recognised, not lost."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from chronoflow_contracts import names, new_id, utc_now
from chronoflow_contracts.runs import ScheduleArmed
from chronoflow_scheduler.domain import ScheduleMessage
from chronoflow_scheduler.emitter import AtomicBatcher, Emitter
from chronoflow_scheduler.schedules import ArmPolicy, ArmResult, ScheduleStore
from chronoflow_scheduler.testing import collect

FAR = timedelta(hours=1)


@pytest.fixture
async def store(nc: NatsClient, js: JetStreamContext) -> ScheduleStore:
    """A schedule store with its emitter (the batcher loop is not needed here)."""
    emitter = Emitter(
        js,
        work=AtomicBatcher(nc, js, stream=names.WORK_STREAM, max_batch=1),
        events=AtomicBatcher(nc, js, stream=names.EVENTS_STREAM, max_batch=1),
    )
    return ScheduleStore(js, emitter, lead_seconds=10)


async def test_arm_by_version_only_moves_forward(store: ScheduleStore) -> None:
    chrono = new_id()
    t1, t2 = utc_now() + FAR, utc_now() + 2 * FAR
    assert await store.arm(chrono, 5, t1, policy=ArmPolicy.EVENT) is ArmResult.ARMED
    assert await store.arm(chrono, 4, t2, policy=ArmPolicy.EVENT) is ArmResult.SUPERSEDED
    assert await store.arm(chrono, 5, t2, policy=ArmPolicy.EVENT) is ArmResult.SUPERSEDED
    assert await store.arm(chrono, 7, t2, policy=ArmPolicy.EVENT) is ArmResult.ARMED
    pending = await store.pending(chrono)
    assert pending is not None
    assert (pending.version, pending.due) == (7, t2)


async def test_advance_moves_to_a_later_occurrence_of_the_same_version(
    store: ScheduleStore,
) -> None:
    chrono = new_id()
    t1, t2 = utc_now() + FAR, utc_now() + 2 * FAR
    await store.arm(chrono, 5, t1, policy=ArmPolicy.EVENT)
    assert await store.arm(chrono, 5, t2, policy=ArmPolicy.ADVANCE) is ArmResult.ARMED
    assert await store.arm(chrono, 5, t1, policy=ArmPolicy.ADVANCE) is ArmResult.SUPERSEDED
    assert await store.arm(chrono, 4, t2 + FAR, policy=ArmPolicy.ADVANCE) is ArmResult.SUPERSEDED


async def test_concurrent_arms_leave_the_newest_version(store: ScheduleStore) -> None:
    chrono = new_id()
    due = utc_now() + FAR
    await asyncio.gather(*(store.arm(chrono, v, due, policy=ArmPolicy.EVENT) for v in range(1, 21)))
    pending = await store.pending(chrono)
    assert pending is not None
    assert pending.version == 20


async def test_cancel_spares_a_newer_schedule(store: ScheduleStore) -> None:
    chrono = new_id()
    await store.arm(chrono, 8, utc_now() + FAR, policy=ArmPolicy.EVENT)
    assert not await store.cancel(chrono, 7)
    assert await store.pending(chrono) is not None
    assert await store.cancel(chrono, 9)
    assert await store.pending(chrono) is None


async def test_retag_carries_the_occurrence_to_a_new_version(store: ScheduleStore) -> None:
    chrono = new_id()
    due = utc_now() + FAR
    await store.arm(chrono, 3, due, policy=ArmPolicy.EVENT)
    await store.retag(chrono, 4)
    pending = await store.pending(chrono)
    assert pending is not None
    assert (pending.version, pending.due) == (4, due)


async def test_an_event_redelivered_after_its_schedule_fired_does_not_rearm(
    store: ScheduleStore, js: JetStreamContext
) -> None:
    chrono = new_id()
    due = utc_now() - timedelta(seconds=30)  # fires at once
    assert await store.arm(chrono, 2, due, policy=ArmPolicy.EVENT) is ArmResult.ARMED
    for _ in range(100):
        if await store.last_fired(chrono) is not None:
            break
        await asyncio.sleep(0.1)
    assert await store.pending(chrono) is None
    assert await store.arm(chrono, 2, due, policy=ArmPolicy.EVENT) is ArmResult.SUPERSEDED


async def test_a_repair_lands_even_inside_the_duplicate_window(
    store: ScheduleStore, js: JetStreamContext
) -> None:
    chrono = new_id()
    due = utc_now() + FAR
    await store.arm(chrono, 1, due, policy=ArmPolicy.EVENT)
    await js.purge_stream(names.SCHEDULES_STREAM, subject=names.schedule_subject(chrono))
    # The same occurrence and version again: JetStream would drop the same message id.
    assert await store.arm(chrono, 1, due, policy=ArmPolicy.ADVANCE) is ArmResult.DUPLICATE
    assert await store.arm(chrono, 1, due, policy=ArmPolicy.REPAIR, nonce="r1") is ArmResult.ARMED
    raw = await js.get_last_msg(names.SCHEDULES_STREAM, names.schedule_subject(chrono))
    assert raw.data is not None
    assert ScheduleMessage.model_validate_json(raw.data).due_at == due
    assert raw.headers is not None
    assert raw.headers[names.MSG_ID].startswith(f"chrono-{chrono}-")
    assert raw.headers[names.DUE_AT] == due.isoformat()
    armed = [
        a
        for a in await collect(js, names.RUNS_STREAM, ScheduleArmed, names.runs_subject(chrono))
        if a.chrono_id == chrono
    ]
    assert [a.next_run_at for a in armed] == [due]  # announced once: same message id
