"""The scheduler end to end on real NATS JetStream and Postgres, with the real projector.

Chrono events are appended the way the api appends them; the projector keeps the read models;
one in-process scheduler replica does the rest. Assertions are on counts and order, never on
how late something was: waits are generous and end as soon as the condition holds.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from prometheus_client import CollectorRegistry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from chronoflow_api.projector.consumer import STREAMS, StreamProjector
from chronoflow_api.queries import get_chrono
from chronoflow_contracts import names, utc_now
from chronoflow_contracts.chrono import ChronoFinished, TargetType
from chronoflow_contracts.runs import (
    RunRequested,
    RunSkipped,
    RunStarted,
    ScheduleArmed,
    SkipReason,
    Trigger,
    occurrence_id,
    run_id,
)
from chronoflow_devstack.embedded import NatsServer
from chronoflow_platform import jetstream
from chronoflow_platform.publishing import publish_event
from chronoflow_platform.schema import chronos
from chronoflow_scheduler.service import Scheduler
from chronoflow_scheduler.settings import SchedulerSettings
from chronoflow_scheduler.testing import (
    ChronoWriter,
    collect,
    eventually,
    every,
    http_definition,
    once,
    stream_events,
)

WAIT = 20.0


@pytest.fixture
async def projection(
    nc: NatsClient, clean_stack: JetStreamContext, engine: AsyncEngine
) -> AsyncIterator[None]:
    """The real projector, one loop per stream, for the length of a test."""
    tasks = [
        asyncio.create_task(StreamProjector(nc=nc, js=clean_stack, engine=engine, stream=s).run())
        for s in STREAMS
    ]
    yield
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def scheduler_settings(**overrides: object) -> SchedulerSettings:
    """Settings for an in-process replica (connections are passed in, not read from here).

    A short lead keeps the tests short; the mechanism is the same as with the default.
    """
    return SchedulerSettings.model_validate(
        {
            "SCHEDULER_FIRE_ACK_WAIT_SECONDS": 5,
            "SCHEDULER_FIRE_LEAD_SECONDS": 3,
            "SCHEDULER_RELEASE_AHEAD_SECONDS": 1,
            **overrides,
        }
    )


@pytest.fixture
async def scheduler(
    nats_server: NatsServer, engine: AsyncEngine, projection: None
) -> AsyncIterator[Scheduler]:
    """One scheduler replica on its own NATS connection."""
    conn = await jetstream.connect(nats_server.url, name="scheduler-test")
    replica = Scheduler(
        nc=conn,
        js=conn.jetstream(),
        engine=engine,
        settings=scheduler_settings(),
        registry=CollectorRegistry(),
    )
    await replica.start()
    await replica.reconciled.wait()
    yield replica
    await replica.stop()
    await conn.drain()


@pytest.fixture
def writer(clean_stack: JetStreamContext) -> ChronoWriter:
    """Appends chrono events like the api."""
    return ChronoWriter(clean_stack)


async def runs(js: JetStreamContext) -> list[RunRequested]:
    """Every RunRequested in the work queues."""
    return await collect(js, names.WORK_STREAM, RunRequested)


async def runs_of(js: JetStreamContext, chrono_id: str) -> list[RunRequested]:
    """One chrono's RunRequested, in order."""
    return [r for r in await runs(js) if r.chrono_id == chrono_id]


async def until_runs(js: JetStreamContext, chrono_id: str, n: int) -> list[RunRequested]:
    """Wait for at least ``n`` runs of a chrono; returns them all."""
    found: list[RunRequested] = []

    async def enough() -> bool:
        nonlocal found
        found = await runs_of(js, chrono_id)
        return len(found) >= n

    assert await eventually(enough, within=WAIT), f"expected {n} runs, saw {len(found)}"
    return found


async def pending_schedule(js: JetStreamContext, scheduler: Scheduler, chrono_id: str) -> object:
    """The chrono's pending schedule message (None when it has none)."""
    return await scheduler.store.pending(chrono_id)


async def chrono_row(engine: AsyncEngine, chrono_id: str) -> dict[str, object] | None:
    """The chrono as the read model shows it."""
    async with engine.connect() as conn:
        row = (await conn.execute(select(chronos).where(chronos.c.id == chrono_id))).mappings()
        found = row.first()
    return dict(found) if found else None


async def test_one_shot_fires_once_then_finishes(
    scheduler: Scheduler, writer: ChronoWriter, clean_stack: JetStreamContext, engine: AsyncEngine
) -> None:
    due = utc_now() + timedelta(seconds=2)
    chrono_id = await writer.create(http_definition(once(due), url="https://example.com/one"))

    [run] = await until_runs(clean_stack, chrono_id, 1)
    assert run.scheduled_for == due
    assert run.trigger is Trigger.SCHEDULE
    assert run.attempt == 1
    assert run.target_type is TargetType.HTTP
    assert run.definition.url == "https://example.com/one"
    assert run.occurrence_id == occurrence_id(chrono_id, due)
    assert run.run_id == run_id(run.occurrence_id, 1)

    async def finished() -> bool:
        row = await chrono_row(engine, chrono_id)
        return row is not None and row["is_active"] is False

    assert await eventually(finished, within=WAIT)
    # What the api shows: the scheduler's last ScheduleArmed (the fired occurrence) was made
    # for an older version than the ChronoFinished, so nextRunAt comes from the finish: null.
    shown = await get_chrono(engine, chrono_id)
    assert shown is not None
    assert shown.is_active is False
    assert shown.next_run_at is None
    events = await collect(clean_stack, names.EVENTS_STREAM, ChronoFinished)
    assert [e.reason for e in events if e.chrono_id == chrono_id] == ["ONE_SHOT_FIRED"]
    await asyncio.sleep(1.5)  # nothing else comes
    assert len(await runs_of(clean_stack, chrono_id)) == 1
    assert await scheduler.store.pending(chrono_id) is None
    # ChronoFinished alone says the chrono has no next run: no ScheduleArmed(null) follows.
    armed = await collect(clean_stack, names.RUNS_STREAM, ScheduleArmed)
    assert [a.next_run_at for a in armed if a.chrono_id == chrono_id] == [due]


async def stored_at(js: JetStreamContext, chrono_id: str) -> list[tuple[RunRequested, datetime]]:
    """One chrono's RunRequested with the moment JetStream stored each."""
    found = []
    async for seq, event in stream_events(js, names.WORK_STREAM):
        if isinstance(event, RunRequested) and event.chrono_id == chrono_id:
            raw = await js.get_msg(names.WORK_STREAM, seq)
            assert raw.time is not None
            found.append((event, raw.time))
    return found


async def test_an_occurrence_is_in_the_work_queue_ahead_of_its_instant(
    scheduler: Scheduler, writer: ChronoWriter, clean_stack: JetStreamContext
) -> None:
    ahead = timedelta(seconds=scheduler.settings.release_ahead_seconds)
    assert ahead > timedelta(0)
    due = utc_now() + timedelta(seconds=scheduler.settings.fire_lead_seconds + 1)
    chrono_id = await writer.create(http_definition(once(due)))
    await until_runs(clean_stack, chrono_id, 1)
    [(run, stored)] = await stored_at(clean_stack, chrono_id)
    # Stored about release_ahead early (the executor holds it until scheduledFor); not when
    # the fire arrived, a lead earlier.
    assert run.scheduled_for == due
    assert due - ahead <= stored < due


async def test_a_concurrency_one_occurrence_is_released_at_its_instant(
    scheduler: Scheduler, writer: ChronoWriter, clean_stack: JetStreamContext
) -> None:
    # The overlap rule asks what runs at the instant, so it is not decided ahead.
    due = utc_now() + timedelta(seconds=scheduler.settings.fire_lead_seconds + 1)
    chrono_id = await writer.create(http_definition(once(due), concurrency=1))
    await until_runs(clean_stack, chrono_id, 1)
    [(run, stored)] = await stored_at(clean_stack, chrono_id)
    assert run.scheduled_for == due
    assert stored >= due


async def test_recurring_keeps_going(
    scheduler: Scheduler, writer: ChronoWriter, clean_stack: JetStreamContext
) -> None:
    schedule = every(1, utc_now())
    chrono_id = await writer.create(http_definition(schedule))

    found = await until_runs(clean_stack, chrono_id, 4)
    instants = [r.scheduled_for for r in found]
    assert instants == sorted(set(instants)), "each occurrence once, in order"
    steps = {b - a for a, b in itertools.pairwise(instants)}
    assert steps == {timedelta(seconds=1)}, "no occurrence skipped or repeated"
    pending = await scheduler.store.pending(chrono_id)
    assert pending is not None
    assert pending.due > instants[-1]


async def test_pause_cancels_and_resume_reschedules_from_now(
    scheduler: Scheduler, writer: ChronoWriter, clean_stack: JetStreamContext
) -> None:
    chrono_id = await writer.create(http_definition(every(1, utc_now())))
    await until_runs(clean_stack, chrono_id, 1)

    await writer.pause(chrono_id)

    async def cancelled() -> bool:
        return await scheduler.store.pending(chrono_id) is None

    assert await eventually(cancelled, within=WAIT)
    await asyncio.sleep(1.5)  # an occurrence in hand at the pause may still settle
    before = len(await runs_of(clean_stack, chrono_id))
    await asyncio.sleep(2.5)
    paused_runs = await runs_of(clean_stack, chrono_id)
    assert len(paused_runs) == before, "nothing fires while paused"

    resumed_at = utc_now()
    await writer.resume(chrono_id)
    found = await until_runs(clean_stack, chrono_id, before + 2)
    after_resume = found[before:]
    assert all(r.scheduled_for > resumed_at for r in after_resume), "no backfill of the pause"
    assert all(r.scheduled_for > paused_runs[-1].scheduled_for for r in after_resume)


async def test_update_moves_the_schedule(
    scheduler: Scheduler, writer: ChronoWriter, clean_stack: JetStreamContext
) -> None:
    far = utc_now() + timedelta(minutes=10)
    chrono_id = await writer.create(http_definition(once(far), url="https://example.com/old"))

    async def armed_far() -> bool:
        pending = await scheduler.store.pending(chrono_id)
        return pending is not None and pending.due == far

    assert await eventually(armed_far, within=WAIT)

    near = utc_now() + timedelta(seconds=2)
    version = await writer.update(
        chrono_id, http_definition(once(near), url="https://example.com/new")
    )
    [run] = await until_runs(clean_stack, chrono_id, 1)
    assert run.scheduled_for == near
    assert run.definition.url == "https://example.com/new"
    assert run.chrono_version == version
    await asyncio.sleep(1.0)
    assert len(await runs_of(clean_stack, chrono_id)) == 1


async def test_delete_cancels(
    scheduler: Scheduler, writer: ChronoWriter, clean_stack: JetStreamContext
) -> None:
    chrono_id = await writer.create(http_definition(once(utc_now() + timedelta(seconds=3))))

    async def armed() -> bool:
        return await scheduler.store.pending(chrono_id) is not None

    assert await eventually(armed, within=WAIT)
    await writer.delete(chrono_id)

    async def gone() -> bool:
        return await scheduler.store.pending(chrono_id) is None

    assert await eventually(gone, within=WAIT)
    await asyncio.sleep(4)
    assert await runs_of(clean_stack, chrono_id) == []
    assert await scheduler.store.last_fired(chrono_id) is None


async def test_pause_resume_edit_within_seconds_fires_the_latest_version_once(
    scheduler: Scheduler, writer: ChronoWriter, clean_stack: JetStreamContext
) -> None:
    # Every write re-arms the same chrono within the duplicate window: a message id of only
    # ``chrono-<id>`` would make JetStream drop all but the first of them silently.
    chrono_id = await writer.create(
        http_definition(once(utc_now() + timedelta(seconds=2)), url="https://example.com/v1")
    )
    await writer.pause(chrono_id)
    await writer.resume(chrono_id)
    await writer.pause(chrono_id)
    await writer.resume(chrono_id)
    due = utc_now() + timedelta(seconds=2)
    latest = await writer.update(
        chrono_id, http_definition(once(due), url="https://example.com/latest")
    )

    [run] = await until_runs(clean_stack, chrono_id, 1)
    assert run.definition.url == "https://example.com/latest"
    assert run.scheduled_for == due
    assert run.chrono_version == latest
    await asyncio.sleep(3)
    assert len(await runs_of(clean_stack, chrono_id)) == 1


async def test_pause_while_the_fire_is_held_wins(
    scheduler: Scheduler, writer: ChronoWriter, clean_stack: JetStreamContext
) -> None:
    # The fire arrives seconds early (the lead) and is held; a pause before the due instant
    # must still cancel the occurrence.
    lead = scheduler.settings.fire_lead_seconds
    chrono_id = await writer.create(http_definition(once(utc_now() + timedelta(seconds=lead))))

    async def held() -> bool:
        return float(scheduler.metrics.held._value.get()) >= 1

    assert await eventually(held, within=WAIT)
    await writer.pause(chrono_id)

    async def dropped() -> bool:
        return float(scheduler.metrics.stale._value.get()) >= 1

    assert await eventually(dropped, within=WAIT)
    await asyncio.sleep(0.5)
    assert await runs_of(clean_stack, chrono_id) == []


async def test_manual_trigger_runs_now_and_leaves_the_schedule(
    scheduler: Scheduler, writer: ChronoWriter, clean_stack: JetStreamContext
) -> None:
    # Due beyond the fire lead, so the schedule message is still pending at the trigger.
    due = utc_now() + timedelta(seconds=scheduler.settings.fire_lead_seconds + 2)
    chrono_id = await writer.create(http_definition(once(due)))

    async def armed() -> bool:
        return await scheduler.store.pending(chrono_id) is not None

    assert await eventually(armed, within=WAIT)
    run_id_, version = await writer.trigger(chrono_id)

    [manual] = await until_runs(clean_stack, chrono_id, 1)
    assert manual.trigger is Trigger.MANUAL
    assert manual.run_id == run_id_
    pending = await scheduler.store.pending(chrono_id)
    assert pending is not None
    assert pending.due == due, "the trigger did not move the schedule"
    assert pending.version == version, "the schedule was carried over to the new version"

    found = await until_runs(clean_stack, chrono_id, 2)
    assert found[1].trigger is Trigger.SCHEDULE
    assert found[1].scheduled_for == due
    await asyncio.sleep(1)
    assert len(await runs_of(clean_stack, chrono_id)) == 2


async def test_missed_occurrences_coalesce_into_one_skip(
    scheduler: Scheduler, writer: ChronoWriter, clean_stack: JetStreamContext
) -> None:
    # The scheduler reads the creation only after ten occurrences have passed (every 3 s, the
    # latest 1.5 s ago), as if it had been down: with no grace all ten are one skip; with a
    # minute of grace the latest runs and the nine before it are one skip.
    period = 3
    anchor = utc_now() - timedelta(seconds=10 * period + 1.5)
    first = anchor + timedelta(seconds=period)
    strict_id = await writer.create(
        http_definition(every(period, anchor), misfire_grace_seconds=0, name="strict"),
        next_run_at=first,
    )
    lenient_id = await writer.create(
        http_definition(every(period, anchor), misfire_grace_seconds=60, name="lenient"),
        next_run_at=first,
    )

    strict_runs = await until_runs(clean_stack, strict_id, 1)
    lenient_runs = await until_runs(clean_stack, lenient_id, 1)
    skips: list[RunSkipped] = []

    async def both_skipped() -> bool:
        nonlocal skips
        skips = await collect(clean_stack, names.RUNS_STREAM, RunSkipped)
        return {s.chrono_id for s in skips} == {strict_id, lenient_id}

    assert await eventually(both_skipped, within=WAIT)
    [strict_skip] = [s for s in skips if s.chrono_id == strict_id]
    [lenient_skip] = [s for s in skips if s.chrono_id == lenient_id]
    assert strict_skip.reason is lenient_skip.reason is SkipReason.MISSED
    assert strict_skip.scheduled_for == lenient_skip.scheduled_for == first
    assert (strict_skip.coalesced, lenient_skip.coalesced) == (10, 9)
    # The skip and the runs after it cover every occurrence exactly once.
    for skip, found in ((strict_skip, strict_runs), (lenient_skip, lenient_runs)):
        assert found[0].scheduled_for == first + timedelta(seconds=period * skip.coalesced)


async def test_concurrency_one_skips_while_the_previous_run_runs(
    scheduler: Scheduler, writer: ChronoWriter, clean_stack: JetStreamContext
) -> None:
    chrono_id = await writer.create(http_definition(every(1, utc_now()), concurrency=1))
    [first] = (await until_runs(clean_stack, chrono_id, 1))[:1]
    # An executor starts the first run and never finishes it.
    await publish_event(
        clean_stack,
        names.runs_subject(chrono_id),
        RunStarted(
            chrono_id=chrono_id,
            run_id=first.run_id,
            occurrence_id=first.occurrence_id,
            scheduled_for=first.scheduled_for,
            target_type=first.target_type,
            started_at=utc_now(),
        ),
    )

    async def overlapped() -> bool:
        skips = await collect(clean_stack, names.RUNS_STREAM, RunSkipped)
        return any(s.chrono_id == chrono_id and s.reason is SkipReason.OVERLAP for s in skips)

    assert await eventually(overlapped, within=WAIT)
