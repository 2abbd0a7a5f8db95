"""The scheduler assembled: its parts over one NATS connection and one database engine."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Coroutine
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from chronoflow_contracts import names, utc_now
from chronoflow_scheduler.domain import keepalive_interval
from chronoflow_scheduler.emitter import AtomicBatcher, Emitter
from chronoflow_scheduler.eventlog import ChangeWatch, EventLog
from chronoflow_scheduler.firing import FireService, FireTiming
from chronoflow_scheduler.handlers import EventsConsumer, FireConsumer
from chronoflow_scheduler.holding import ReleaseGate
from chronoflow_scheduler.lifecycle import LifecycleService
from chronoflow_scheduler.metrics import SchedulerMetrics
from chronoflow_scheduler.readmodel import ReadModel
from chronoflow_scheduler.reconcile import Reconciler, ReconcileReport
from chronoflow_scheduler.schedules import ScheduleStore
from chronoflow_scheduler.settings import SchedulerSettings

log = logging.getLogger(__name__)

_RECONCILE_RETRY_SECONDS = 5.0
#: How long a ChronoFinished waits for others to go out with it (as one atomic batch and
#: disk sync once there are enough of them). It only delays the fire's acknowledgement and
#: the read model's "inactive", never a run.
_FINISH_LINGER_SECONDS = 0.02
#: Automatic full collections: practically never. A full collection walks every tracked
#: object and stops the event loop meanwhile; with 4,000 fires held (the spread benchmark) one
#: took 60-200 ms, every ~7 s, and found fewer than 300 objects to free (almost everything the
#: scheduler drops is freed by reference counting). So the entry point passes this to
#: ``serve`` and :func:`collect_garbage_between_releases` runs one a minute while no release
#: is near.
FULL_COLLECTION_THRESHOLD = 1_000_000
_FULL_COLLECTION_SECONDS = 60.0
#: A full collection with 10,000 fires held took ~220 ms: keep that far from any release.
_QUIET_SECONDS = 1.0
_QUIET_POLL_SECONDS = 0.05


async def collect_garbage_between_releases(
    gate: ReleaseGate,
    *,
    every: float = _FULL_COLLECTION_SECONDS,
    quiet: float = _QUIET_SECONDS,
    patience: float = _FULL_COLLECTION_SECONDS,
) -> None:
    """Until cancelled: a full garbage collection every ``every`` seconds, at a moment when no
    held fire is due within ``quiet`` seconds (or after ``patience`` seconds without one)."""
    while True:
        await asyncio.sleep(every)
        give_up = time.monotonic() + patience
        while time.monotonic() < give_up:
            due = gate.next_due()
            if due is None or (due - utc_now()).total_seconds() > quiet:
                break
            await asyncio.sleep(_QUIET_POLL_SECONDS)
        gc.collect()


class Scheduler:
    """One scheduler replica. :meth:`loops` are its background loops; run them all."""

    def __init__(
        self,
        *,
        nc: NatsClient,
        js: JetStreamContext,
        engine: AsyncEngine,
        settings: SchedulerSettings,
        registry: CollectorRegistry,
    ) -> None:
        self.settings = settings
        self.metrics = SchedulerMetrics.register(registry)
        self.batcher = AtomicBatcher(
            nc, js, stream=names.WORK_STREAM, max_batch=settings.work_batch_size
        )
        # ChronoFinished follows every one-shot's run; nobody waits on it to be punctual, so
        # it may gather briefly into batches that share one disk sync.
        self.finish_batcher = AtomicBatcher(
            nc,
            js,
            stream=names.EVENTS_STREAM,
            max_batch=settings.work_batch_size,
            max_in_flight=2,
            linger=_FINISH_LINGER_SECONDS,
        )
        self.emitter = Emitter(js, work=self.batcher, events=self.finish_batcher)
        self.store = ScheduleStore(js, self.emitter, lead_seconds=settings.fire_lead_seconds)
        self.events = EventLog(nc, js)
        self.watch = ChangeWatch(nc)
        # The scheduler only reads, one statement at a time: around each, a transaction would
        # only add a BEGIN and a ROLLBACK round trip (each statement sees committed data
        # either way).
        self.readmodel = ReadModel(engine.execution_options(isolation_level="AUTOCOMMIT"))
        self.fire = FireService(
            store=self.store,
            events=self.events,
            watch=self.watch,
            readmodel=self.readmodel,
            emitter=self.emitter,
            metrics=self.metrics,
            timing=FireTiming(
                ack_wait_seconds=settings.fire_ack_wait_seconds,
                read_model_wait_seconds=settings.read_model_wait_seconds,
                retry_delay_seconds=settings.retry_delay_seconds,
                running_stale_seconds=settings.running_stale_seconds,
                release_ahead_seconds=settings.release_ahead_seconds,
            ),
        )
        self.lifecycle = LifecycleService(
            store=self.store,
            events=self.events,
            readmodel=self.readmodel,
            emitter=self.emitter,
            read_model_wait_seconds=settings.read_model_wait_seconds,
            keepalive_seconds=keepalive_interval(settings.events_ack_wait_seconds),
        )
        self.fire_consumer = FireConsumer(
            nc,
            js,
            self.fire,
            ack_wait_seconds=settings.fire_ack_wait_seconds,
            max_in_flight=settings.fire_max_in_flight,
            fetch_batch=settings.fire_fetch_batch,
        )
        self.events_consumer = EventsConsumer(
            nc,
            js,
            self.lifecycle,
            self.metrics,
            ack_wait_seconds=settings.events_ack_wait_seconds,
            workers=settings.event_workers,
            retry_delay_seconds=settings.retry_delay_seconds,
        )
        self.reconciler = Reconciler(
            js=js,
            store=self.store,
            events=self.events,
            readmodel=self.readmodel,
            metrics=self.metrics,
            page_size=settings.reconcile_page_size,
            concurrency=settings.reconcile_concurrency,
        )
        #: Set once the start-up reconcile has finished (or at once when it is off).
        self.reconciled = asyncio.Event()
        self.last_reconcile: ReconcileReport | None = None
        self._tasks: list[asyncio.Task[Any]] = []

    async def prepare(self) -> None:
        """Watch chrono events; create (or update) the durables, the fire one first."""
        await self.watch.start()
        await self.events.start()
        await self.fire_consumer.ensure()
        await self.events_consumer.ensure()

    def loops(self) -> list[tuple[str, Coroutine[Any, Any, None]]]:
        """The background loops, each with a name (they run until cancelled)."""
        return [
            ("scheduler-work-batcher", self.batcher.run()),
            ("scheduler-finish-batcher", self.finish_batcher.run()),
            ("scheduler-fire", self.fire_consumer.run()),
            ("scheduler-keepalive", self.fire.intake.keepalive()),
            ("scheduler-events", self.events_consumer.run()),
            ("scheduler-reconcile", self._maintain()),
            ("scheduler-gc", collect_garbage_between_releases(self.fire.gate)),
        ]

    async def _maintain(self) -> None:
        # Reconcile once at start (retrying until it completes), then stay up: readiness
        # treats a finished background task as a crashed one.
        if self.settings.reconcile_on_start:
            while True:
                try:
                    self.last_reconcile = await self.reconciler.run()
                    break
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("reconcile failed; retrying")
                    await asyncio.sleep(_RECONCILE_RETRY_SECONDS)
        self.reconciled.set()
        await asyncio.Event().wait()

    async def start(self) -> None:
        """Prepare and run the loops as tasks of this object (tests, benchmarks, tools)."""
        await self.prepare()
        self._tasks = [asyncio.create_task(coro, name=name) for name, coro in self.loops()]

    async def stop(self) -> None:
        """Cancel the loops started by :meth:`start`; held fires are handed back."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.close()

    async def close(self) -> None:
        """Release what the loops do not own."""
        with contextlib.suppress(Exception):
            await self.readmodel.close()
        with contextlib.suppress(Exception):
            await self.watch.stop()
        await self.events.stop()
