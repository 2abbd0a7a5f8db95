"""The scheduler's two durable pull consumers: thin loops that fetch, dispatch and ack.

Both durables are shared by every replica: JetStream hands each message to one of them and
redelivers it elsewhere if that replica dies before acknowledging.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from chronoflow_contracts import UnknownEventError, decode, names
from chronoflow_contracts.chrono import ChronoEvent
from chronoflow_platform.delivery import stream_sequence_of
from chronoflow_platform.logs import chrono_id_var
from chronoflow_platform.telemetry import consumer_span
from chronoflow_scheduler.domain import RetryLaterError
from chronoflow_scheduler.firing import FireService
from chronoflow_scheduler.lifecycle import LifecycleService, decided_by_type
from chronoflow_scheduler.metrics import SchedulerMetrics
from chronoflow_scheduler.pulling import Puller

log = logging.getLogger(__name__)

_IDLE_FETCH_SECONDS = 0.25
_BROKEN_PAUSE_SECONDS = 0.5


class FireConsumer:
    """``scheduler-fire`` on ``cf.schedules.fired.>``: each fired message becomes a task.

    Tasks hold their message until the occurrence is due, so many are in hand at once; the
    durable's ``max_ack_pending`` and the local limit are the same number.
    """

    def __init__(
        self,
        nc: NatsClient,
        js: JetStreamContext,
        service: FireService,
        *,
        ack_wait_seconds: float,
        max_in_flight: int,
        fetch_batch: int,
    ) -> None:
        self._nc = nc
        self._js = js
        self._service = service
        self._ack_wait = ack_wait_seconds
        self._max_in_flight = max_in_flight
        self._batch = fetch_batch
        self._tasks: set[asyncio.Task[None]] = set()
        self._room = asyncio.Event()

    def config(self) -> ConsumerConfig:
        """The durable's configuration (created or updated on start)."""
        return ConsumerConfig(
            durable_name=names.SCHEDULER_FIRE_DURABLE,
            description="ChronoFlow scheduler: fired schedule messages",
            filter_subject=names.SCHEDULE_FIRED_FILTER,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self._ack_wait,
            max_deliver=-1,
            max_ack_pending=self._max_in_flight,
        )

    async def ensure(self) -> None:
        """Create the durable, or bring its settings up to date."""
        await self._js.add_consumer(names.SCHEDULES_STREAM, self.config())

    async def run(self) -> None:
        """Fetch and dispatch until cancelled; in-hand messages are handed back on the way out."""
        try:
            while True:
                try:
                    await self._consume()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("fire consumer interrupted (%s); resuming", exc)
                    await asyncio.sleep(_BROKEN_PAUSE_SECONDS)
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _consume(self) -> None:
        await self.ensure()
        async with Puller(
            self._nc,
            stream=names.SCHEDULES_STREAM,
            durable=names.SCHEDULER_FIRE_DURABLE,
            deliver=self._dispatch,
        ) as puller:
            while True:
                room = self._max_in_flight - len(self._tasks)
                if room <= 0:
                    self._room.clear()
                    await self._room.wait()
                    continue
                await self._service.intake.wait_for_room(self._batch)
                room = min(room, 2 * self._batch - self._service.intake.unprepared)
                # A durable that is gone raises: run() starts over, which recreates it.
                await puller.pull(min(self._batch, room), _IDLE_FETCH_SECONDS)

    async def _dispatch(self, msg: Msg) -> None:
        task = asyncio.create_task(self._service.handle(msg), name="fire")
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._room.set()
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("fire task crashed: %r", exc)


class EventsConsumer:
    """``scheduler-events`` on ``cf.events.chrono.*``: one chrono's events in stream order.

    Messages go to a fixed set of workers by chrono id, so a replica applies each chrono's
    events in order while different chronos proceed in parallel.
    """

    def __init__(
        self,
        nc: NatsClient,
        js: JetStreamContext,
        service: LifecycleService,
        metrics: SchedulerMetrics,
        *,
        ack_wait_seconds: float,
        workers: int,
        retry_delay_seconds: float,
    ) -> None:
        self._nc = nc
        self._js = js
        self._service = service
        self._metrics = metrics
        self._ack_wait = ack_wait_seconds
        self._retry_delay = retry_delay_seconds
        self._queues: list[asyncio.Queue[Msg]] = [asyncio.Queue(maxsize=64) for _ in range(workers)]

    def config(self) -> ConsumerConfig:
        """The durable's configuration (created or updated on start)."""
        return ConsumerConfig(
            durable_name=names.SCHEDULER_EVENTS_DURABLE,
            description="ChronoFlow scheduler: chrono events that change schedules",
            filter_subject=names.aggregate_filter("chrono"),
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self._ack_wait,
            max_deliver=-1,
            max_ack_pending=len(self._queues) * 64,
        )

    async def ensure(self) -> None:
        """Create the durable, or bring its settings up to date."""
        await self._js.add_consumer(names.EVENTS_STREAM, self.config())

    async def run(self) -> None:
        """Fetch and dispatch until cancelled."""
        workers = [
            asyncio.create_task(self._work(q), name=f"chrono-events-{i}")
            for i, q in enumerate(self._queues)
        ]
        try:
            while True:
                try:
                    await self._consume()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("chrono-event consumer interrupted (%s); resuming", exc)
                    await asyncio.sleep(_BROKEN_PAUSE_SECONDS)
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _consume(self) -> None:
        await self.ensure()
        async with Puller(
            self._nc,
            stream=names.EVENTS_STREAM,
            durable=names.SCHEDULER_EVENTS_DURABLE,
            deliver=self._dispatch,
        ) as puller:
            while True:
                await puller.pull(256, 1.0)  # a durable that is gone raises (see run)

    async def _dispatch(self, msg: Msg) -> None:
        token = msg.subject.rsplit(".", 1)[-1]
        await self._queues[zlib.crc32(token.encode()) % len(self._queues)].put(msg)

    async def _work(self, queue: asyncio.Queue[Msg]) -> None:
        while True:
            msg = await queue.get()
            try:
                await self._handle(msg)
            finally:
                queue.task_done()

    async def _handle(self, msg: Msg) -> None:
        headers = msg.headers or {}
        action = decided_by_type(headers.get(names.EVENT_TYPE, ""))
        if action is not None:
            # One of these follows every one-shot occurrence: settle it without decoding.
            await msg.ack()
            self._metrics.event_action(action).inc()
            return
        try:
            event = decode(
                headers.get(names.EVENT_TYPE, ""),
                int(headers.get(names.EVENT_VERSION, "1")),
                msg.data,
            )
        except (UnknownEventError, ValueError) as exc:
            log.warning("ignoring unreadable chrono event on %s: %s", msg.subject, exc)
            await msg.ack()
            return
        if not isinstance(event, ChronoEvent):
            await msg.ack()
            return
        token = chrono_id_var.set(event.chrono_id)
        try:
            with consumer_span(
                f"scheduler apply {event.TYPE}",
                msg.headers,
                {"chronoflow.chrono_id": event.chrono_id},
            ):
                action = await self._service.apply(event, stream_sequence_of(msg), msg)
        except asyncio.CancelledError:
            raise
        except RetryLaterError as exc:
            log.info("%s deferred: %s", event.TYPE, exc)
            await msg.nak(delay=self._retry_delay)
            return
        except Exception:
            log.exception("applying %s failed; it will be redelivered", event.TYPE)
            self._metrics.publish_errors.labels("chrono_event").inc()
            with contextlib.suppress(Exception):
                await msg.nak(delay=self._retry_delay)
            return
        finally:
            chrono_id_var.reset(token)
        await msg.ack()
        self._metrics.event_action(action).inc()
