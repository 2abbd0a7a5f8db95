"""The scheduler's batched writes on a real JetStream: ChronoFinished of many chronos share an
atomic batch and each keeps its own compare-and-set; waiting for the work ahead waits for
exactly that."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from chronoflow_contracts import names, new_id, utc_now
from chronoflow_contracts.chrono import ChronoCreated, ChronoFinished, ChronoTriggered
from chronoflow_platform.publishing import ATOMIC_MIN_BATCH, publish_event
from chronoflow_scheduler.emitter import AtomicBatcher, Emitter, Prepared
from chronoflow_scheduler.testing import collect, http_definition, once


@pytest.fixture
async def batchers(nc: NatsClient, js: JetStreamContext) -> AsyncIterator[Emitter]:
    """An emitter whose two batchers are running (no linger: the test decides the moment)."""
    work = AtomicBatcher(nc, js, stream=names.WORK_STREAM, max_batch=50)
    events = AtomicBatcher(nc, js, stream=names.EVENTS_STREAM, max_batch=50)
    tasks = [asyncio.create_task(work.run()), asyncio.create_task(events.run())]
    yield Emitter(js, work=work, events=events)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _created(js: JetStreamContext) -> tuple[str, int]:
    """A chrono with one event on its subject, and that event's sequence (its version)."""
    chrono_id = new_id()
    event = ChronoCreated(
        chrono_id=chrono_id,
        definition=http_definition(once(utc_now() + timedelta(hours=1))),
        next_run_at=None,
    )
    ack = await publish_event(
        js, names.aggregate_subject("chrono", chrono_id), event, expected_last_subject_sequence=0
    )
    return chrono_id, ack.seq


async def test_finishes_are_batched_and_each_keeps_its_compare_and_set(
    batchers: Emitter, js: JetStreamContext
) -> None:
    # Enough for an atomic batch (fewer go out as plain concurrent publishes).
    chronos = [await _created(js) for _ in range(ATOMIC_MIN_BATCH)]
    # One chrono moves on (a manual trigger) after its version was read: its finish must be
    # refused, and it must not take the others down with it.
    moved_id, moved_version = chronos[0]
    trigger = await publish_event(
        js,
        names.aggregate_subject("chrono", moved_id),
        ChronoTriggered(chrono_id=moved_id, run_id=new_id(), requested_at=utc_now()),
        expected_last_subject_sequence=moved_version,
    )

    results = await asyncio.gather(
        *(
            batchers.chrono_finished(
                ChronoFinished(chrono_id=chrono_id, reason="ONE_SHOT_FIRED"),
                expected_version=version,
            )
            for chrono_id, version in chronos
        )
    )

    assert results == [False] + [True] * (ATOMIC_MIN_BATCH - 1)
    finished = await collect(js, names.EVENTS_STREAM, ChronoFinished)
    ids = {chrono_id for chrono_id, _ in chronos}
    assert sorted(e.chrono_id for e in finished if e.chrono_id in ids) == sorted(
        chrono_id for chrono_id, _ in chronos[1:]
    )

    # A redelivered fire finishes again with the same expectation: refused (its own finish
    # moved the chrono on; the fire then sees a finished chrono), no second event; the finish
    # after the trigger, in the same batch, is stored.
    again = await asyncio.gather(
        batchers.chrono_finished(
            ChronoFinished(chrono_id=chronos[1][0], reason="ONE_SHOT_FIRED"),
            expected_version=chronos[1][1],
        ),
        batchers.chrono_finished(
            ChronoFinished(chrono_id=moved_id, reason="ONE_SHOT_FIRED"),
            expected_version=trigger.seq,
        ),
    )
    assert list(again) == [False, True]
    finished = await collect(js, names.EVENTS_STREAM, ChronoFinished)
    assert sorted(e.chrono_id for e in finished if e.chrono_id in ids) == sorted(ids)


async def test_work_ahead_waits_for_what_is_queued(nc: NatsClient, js: JetStreamContext) -> None:
    work = AtomicBatcher(nc, js, stream=names.WORK_STREAM, max_batch=50)
    events = AtomicBatcher(nc, js, stream=names.EVENTS_STREAM, max_batch=50)
    emitter = Emitter(js, work=work, events=events)
    await asyncio.wait_for(emitter.work_ahead(), timeout=1)  # nothing queued: no wait

    subject = names.work_subject("http")
    stored = [
        work.enqueue(Prepared(subject, b"{}", {names.MSG_ID: f"ahead-{new_id()}"}))
        for _ in range(3)
    ]
    waiting = asyncio.create_task(emitter.work_ahead())
    await asyncio.sleep(0.2)
    assert not waiting.done()  # the batcher is not running: nothing was stored

    flushing = asyncio.create_task(work.run())
    try:
        await asyncio.wait_for(waiting, timeout=10)
        assert all(f.done() and f.exception() is None for f in stored)
    finally:
        flushing.cancel()
        await asyncio.gather(flushing, return_exceptions=True)


async def test_work_queued_later_does_not_extend_the_wait(
    nc: NatsClient, js: JetStreamContext
) -> None:
    work = AtomicBatcher(nc, js, stream=names.WORK_STREAM, max_batch=50)
    subject = names.work_subject("http")
    first = work.enqueue(Prepared(subject, b"{}", {names.MSG_ID: f"ahead-{new_id()}"}))
    waiting = asyncio.create_task(work.ahead())
    await asyncio.sleep(0)
    later = work.enqueue(Prepared(subject, b"{}", {names.MSG_ID: f"ahead-{new_id()}"}))
    assert not waiting.done()
    first.cancel()  # settled without being stored, as when the batcher stops
    await asyncio.wait_for(waiting, timeout=10)
    assert not later.done()
    later.cancel()
