"""The scheduler through crashes: kill -9 of the service, nats-server stopped and restarted
(SIGTERM and SIGKILL) under two replicas, and the start-up reconcile repairing damage.

Everything runs on the real nats-server and Postgres of the test session, with the real
projector. "Exactly once" is checked on what reached the work queue: every one-shot has one
RunRequested; a recurring chrono's runs and skips cover its occurrences without gap or repeat.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from asyncio.subprocess import Process
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from chronoflow_api.projector.consumer import STREAMS, StreamProjector
from chronoflow_contracts import names, new_id, utc_now
from chronoflow_contracts.runs import RunRequested, RunSkipped
from chronoflow_contracts.schedule import NormalizedSchedule
from chronoflow_devstack.embedded import NatsServer, free_port
from chronoflow_devstack.pytest_plugin import TEST_DUPLICATE_WINDOW
from chronoflow_platform import jetstream
from chronoflow_schedule import next_after
from chronoflow_scheduler.domain import ScheduleMessage, at_expression
from chronoflow_scheduler.service import Scheduler
from chronoflow_scheduler.settings import SchedulerSettings
from chronoflow_scheduler.testing import (
    ChronoWriter,
    collect,
    eventually,
    every,
    http_definition,
    once,
)

pytestmark = pytest.mark.slow

WAIT = 45.0


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


@pytest.fixture
def writer(clean_stack: JetStreamContext) -> ChronoWriter:
    """Appends chrono events like the api."""
    return ChronoWriter(clean_stack)


class Replicas:
    """In-process scheduler replicas, each on its own NATS connection."""

    def __init__(self, url: str, engine: AsyncEngine) -> None:
        self.url = url
        self.engine = engine
        self.running: list[tuple[Scheduler, NatsClient]] = []

    async def start(self, **settings: object) -> Scheduler:
        conn = await jetstream.connect(self.url, name=f"scheduler-{len(self.running)}")
        replica = Scheduler(
            nc=conn,
            js=conn.jetstream(),
            engine=self.engine,
            settings=SchedulerSettings.model_validate(
                {"SCHEDULER_FIRE_ACK_WAIT_SECONDS": 4, **settings}
            ),
            registry=CollectorRegistry(),
        )
        await replica.start()
        self.running.append((replica, conn))
        return replica

    async def stop_all(self) -> None:
        for replica, conn in self.running:
            await replica.stop()
            await conn.close()
        self.running = []


@pytest.fixture
async def replicas(
    nats_server: NatsServer, engine: AsyncEngine, projection: None
) -> AsyncIterator[Replicas]:
    """Start replicas as needed; all are stopped at the end."""
    pool = Replicas(nats_server.url, engine)
    yield pool
    await pool.stop_all()


async def work(js: JetStreamContext) -> list[RunRequested]:
    """Every RunRequested in the work queues."""
    return await collect(js, names.WORK_STREAM, RunRequested)


async def until_every_one_shot_ran(js: JetStreamContext, due: dict[str, datetime]) -> None:
    """Wait until each one-shot has at least one RunRequested."""

    async def all_ran() -> bool:
        return set(due) <= {r.chrono_id for r in await work(js)}

    assert await eventually(all_ran, within=WAIT, every_s=0.5)


async def assert_exactly_once(
    js: JetStreamContext,
    writer: ChronoWriter,
    due: dict[str, datetime],
    recurring: dict[str, datetime],
) -> None:
    """Once every one-shot ran and the recurring chronos are stopped: one run per one-shot at
    its instant; each recurring occurrence, from the first its creation announced, run or
    skipped once."""
    await until_every_one_shot_ran(js, due)

    async def recurring_decided() -> bool:
        # A recurring fire held by a killed replica comes back only after the ack wait: stop
        # the chrono only once some occurrence of it was decided, or there is nothing to check.
        runs = {r.chrono_id for r in await work(js)}
        skips = {s.chrono_id for s in await collect(js, names.RUNS_STREAM, RunSkipped)}
        return set(recurring) <= runs | skips

    assert await eventually(recurring_decided, within=WAIT, every_s=0.5)
    await asyncio.sleep(1)
    await stop_recurring(writer, recurring)
    runs = await work(js)
    skips = await collect(js, names.RUNS_STREAM, RunSkipped)
    for chrono_id, instant in due.items():
        assert [r.scheduled_for for r in runs if r.chrono_id == chrono_id] == [instant]
    for chrono_id, anchor in recurring.items():
        ran = [r.scheduled_for for r in runs if r.chrono_id == chrono_id]
        assert len(ran) == len(set(ran)), "an occurrence ran twice"
        covered = list(ran)
        schedule = every(1, anchor)
        for skip in (s for s in skips if s.chrono_id == chrono_id):
            covered.extend(occurrences(schedule, skip.scheduled_for, skip.coalesced))
        assert len(covered) == len(set(covered)), "an occurrence both ran and was skipped"
        first = writer.first_due[chrono_id]
        assert first is not None
        expected = [t for t in occurrences(schedule, first, 10_000) if t <= max(covered)]
        assert sorted(covered) == expected, "an occurrence was lost"


def occurrences(schedule: NormalizedSchedule, first: datetime, count: int) -> list[datetime]:
    """``first`` and the occurrences after it, ``count`` in all."""
    found = [first]
    while len(found) < count:
        following = next_after(schedule, found[-1])
        assert following is not None
        found.append(following)
    return found


async def stop_recurring(writer: ChronoWriter, recurring: dict[str, datetime]) -> None:
    """Pause the recurring chronos and let what is in hand settle."""
    for chrono_id in recurring:
        await writer.pause(chrono_id)
    await asyncio.sleep(2)


async def one_shots(
    writer: ChronoWriter, start: datetime, count: int, *, first: float, step: float
) -> dict[str, datetime]:
    """``count`` one-shots due ``first`` seconds after ``start``, then every ``step`` seconds."""
    due = {}
    for i in range(count):
        instant = start + timedelta(seconds=first + i * step)
        due[await writer.create(http_definition(once(instant)))] = instant
    return due


async def kill(*procs: Process) -> None:
    """kill -9 whichever of the processes still runs."""
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def spawn_scheduler(
    nats_url: str, database_url: str, log: Path, *, port: int | None = None
) -> Process:
    """``python -m chronoflow_scheduler`` as its own process; returns once it is ready."""
    port = port or free_port()
    env = {
        **os.environ,
        "NATS_URL": nats_url,
        "DATABASE_URL": database_url,
        "HTTP_PORT": str(port),
        "LOG_FORMAT": "console",
        "CHRONOFLOW_DUPLICATE_WINDOW_SECONDS": str(TEST_DUPLICATE_WINDOW),
        "SCHEDULER_FIRE_ACK_WAIT_SECONDS": "3",
        "SCHEDULER_FIRE_LEAD_SECONDS": "2",
        "SCHEDULER_RELEASE_AHEAD_SECONDS": "0.5",
    }
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "chronoflow_scheduler",
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    async def ready() -> bool:
        assert proc.returncode is None, f"scheduler exited; see {log}"
        try:
            async with httpx.AsyncClient() as client:
                r = await client.get(f"http://127.0.0.1:{port}/ready", timeout=1)
        except httpx.HTTPError:
            return False
        return r.status_code == 200

    assert await eventually(ready, within=30, every_s=0.2)
    return proc


class Spawner:
    """Starts scheduler processes on the test's servers; logs go to the test's directory."""

    def __init__(self, nats_url: str, database_url: str, logs: Path) -> None:
        self.nats_url = nats_url
        self.database_url = database_url
        self.logs = logs
        self.procs: list[Process] = []

    async def __call__(self, name: str, *, port: int | None = None) -> Process:
        log = self.logs / f"{name}.log"
        proc = await spawn_scheduler(self.nats_url, self.database_url, log, port=port)
        self.procs.append(proc)
        return proc


@pytest.fixture
async def processes(
    nats_server: NatsServer, database_url: str, tmp_path: Path, projection: None
) -> AsyncIterator[Spawner]:
    """Scheduler processes, as many as the test starts; any still running are killed after."""
    spawner = Spawner(nats_server.url, database_url, tmp_path)
    yield spawner
    await kill(*spawner.procs)


async def test_kill_9_while_occurrences_are_due(
    processes: Spawner, writer: ChronoWriter, clean_stack: JetStreamContext
) -> None:
    proc = await processes("scheduler")
    start = utc_now()
    due = await one_shots(writer, start, 12, first=2, step=0.4)
    recurring = {await writer.create(http_definition(every(1, start))): start}

    # Some occurrences have run, some are held in the process, some are still pending.
    await asyncio.sleep(3.5)
    proc.kill()
    ran_before = {r.chrono_id for r in await work(clean_stack)} & set(due)
    assert 0 < len(ran_before) < len(due)
    await proc.wait()
    await asyncio.sleep(3)  # more come due while nothing runs

    await processes("scheduler")
    await assert_exactly_once(clean_stack, writer, due, recurring)


async def held_fires(port: int) -> float:
    """How many fires a scheduler process holds, from its /metrics."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics", timeout=5)).text
    [line] = [x for x in text.splitlines() if x.startswith("chronoflow_scheduler_held_fires ")]
    return float(line.split()[1])


async def test_kill_9_of_one_replica_while_it_holds_fires(
    processes: Spawner, writer: ChronoWriter, clean_stack: JetStreamContext
) -> None:
    doomed_port = free_port()
    doomed = await processes("doomed", port=doomed_port)
    await processes("survivor")
    start = utc_now()
    due = await one_shots(writer, start, 16, first=3, step=0.3)
    recurring = {await writer.create(http_definition(every(1, start))): start}

    async def doomed_holds() -> bool:
        return await held_fires(doomed_port) >= 1

    assert await eventually(doomed_holds, within=WAIT)
    doomed.kill()
    await doomed.wait()
    # What it held comes back to the survivor after the ack wait, late but once.
    await assert_exactly_once(clean_stack, writer, due, recurring)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_nats_restart_with_two_replicas_fires_everything_once(
    sig: signal.Signals,
    nats_server: NatsServer,
    replicas: Replicas,
    writer: ChronoWriter,
    clean_stack: JetStreamContext,
) -> None:
    # A short lead, so that at the stop some occurrences are fired and held in a replica
    # while others are still schedule messages waiting in the stream for their instant.
    lead = {"SCHEDULER_FIRE_LEAD_SECONDS": 2, "SCHEDULER_RELEASE_AHEAD_SECONDS": 0.5}
    first = await replicas.start(**lead)
    second = await replicas.start(**lead)
    start = utc_now()
    due = await one_shots(writer, start, 4, first=2.5, step=0.5)
    recurring = {await writer.create(http_definition(every(1, start))): start}

    async def some_held() -> bool:
        return sum(float(r.metrics.held._value.get()) for r in (first, second)) >= 1

    assert await eventually(some_held, within=WAIT)
    # Their schedule messages are pending when the server stops, and the first of them
    # come due (fire at instant - lead) while it is down.
    pending = await one_shots(writer, utc_now(), 8, first=6, step=0.4)

    async def armed() -> bool:
        return all([await first.store.pending(c) is not None for c in pending])

    assert await eventually(armed, within=WAIT)
    await asyncio.to_thread(nats_server.stop, sig)
    await asyncio.sleep(4)  # occurrences come due while the server is down
    await asyncio.to_thread(nats_server.start)

    await assert_exactly_once(clean_stack, writer, due | pending, recurring)


async def test_two_replicas_share_a_burst_exactly_once(
    replicas: Replicas, writer: ChronoWriter, clean_stack: JetStreamContext
) -> None:
    first = await replicas.start()
    second = await replicas.start()
    start = utc_now()
    due = {}
    for i in range(200):
        instant = start + timedelta(seconds=3, milliseconds=(i % 20) * 50)
        due[await writer.create(http_definition(once(instant)))] = instant
    recurring = {}
    for _ in range(5):
        recurring[await writer.create(http_definition(every(1, start)))] = start

    await assert_exactly_once(clean_stack, writer, due, recurring)
    # Both replicas took part.
    assert first.metrics.fires.labels("run")._value.get() > 0
    assert second.metrics.fires.labels("run")._value.get() > 0


async def test_reconcile_rearms_lost_schedules_and_removes_orphans(
    replicas: Replicas, writer: ChronoWriter, clean_stack: JetStreamContext
) -> None:
    js = clean_stack
    first = await replicas.start()
    far = utc_now() + timedelta(minutes=5)
    lost = await writer.create(http_definition(once(far)))
    kept = await writer.create(http_definition(once(far)))
    paused = await writer.create(http_definition(once(far)))

    async def armed() -> bool:
        return all([await first.store.pending(c) is not None for c in (lost, kept, paused)])

    assert await eventually(armed, within=WAIT)

    async def projected() -> bool:
        page = await first.readmodel.active_page("", 10)
        return len([c for c in page if c.armed_at is not None]) == 3

    assert await eventually(projected, within=WAIT)
    await replicas.stop_all()

    # Damage while no scheduler runs: a schedule vanishes, and one appears for a chrono that
    # never existed.
    await js.purge_stream(names.SCHEDULES_STREAM, subject=names.schedule_subject(lost))
    ghost = new_id()
    body = ScheduleMessage(chrono_id=ghost, chrono_version=1, due_at=far)
    await js.publish(
        names.schedule_subject(ghost),
        body.model_dump_json(by_alias=True).encode(),
        headers={
            names.SCHEDULE: at_expression(far),
            names.SCHEDULE_TARGET: names.schedule_fired_subject(ghost),
        },
    )

    second = await replicas.start()
    await asyncio.wait_for(second.reconciled.wait(), timeout=WAIT)
    report = second.last_reconcile
    assert report is not None
    assert (report.checked, report.repaired, report.removed) == (3, 1, 1)
    restored = await second.store.pending(lost)
    assert restored is not None
    assert restored.due == far
    assert await second.store.pending(ghost) is None
    assert await second.store.pending(kept) is not None
