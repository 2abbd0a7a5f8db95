"""The projector loop: one leader per stream applies events in order, checkpoint in the same
transaction, acknowledges after commit and announces how far it got."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chronoflow_api.projector.views import APPLY, Apply
from chronoflow_contracts import Event, decode, names
from chronoflow_platform.delivery import stream_sequence_of
from chronoflow_platform.schema import projection_checkpoints
from chronoflow_platform.telemetry import consumer_span, tracing_active

log = logging.getLogger(__name__)

#: The streams the projector folds, each with its own consumer, checkpoint and leader lock.
STREAMS = (names.EVENTS_STREAM, names.RUNS_STREAM)
BATCH = 500
#: How long a batch of each stream waits for company after its first event. Lifecycle
#: events do not wait: the api answers a write once it is applied (read-your-writes). Run
#: history does: at a few hundred runs a second, events one at a time each cost a
#: transaction (five round trips) while 20 ms gathers a dozen into one, and no one waits on
#: history to be that fresh.
LINGER = {names.EVENTS_STREAM: 0.0, names.RUNS_STREAM: 0.02}
#: While a linger brings at least this many more events the stream is busy, and the batch
#: waits another linger (until it is full): per batch the projector pays a transaction (five
#: round trips), a checkpoint, an ack and an announcement, so a burst's 5,000 run events a
#: second cost less in a few full batches than in many of a hundred. Below it (a spread's few
#: hundred runs a second) a batch goes after one linger, as fresh as before.
BUSY = 40


@dataclass(frozen=True)
class ProjectorMetrics:
    """What operators watch: how far behind the read models are."""

    applied: Counter
    lag_messages: Gauge
    lag_seconds: Gauge

    @classmethod
    def register(cls, registry: CollectorRegistry) -> ProjectorMetrics:
        """Create the metrics on a service's registry."""
        return cls(
            applied=Counter(
                "chronoflow_projector_events_applied",
                "Events applied to the read models",
                ["stream"],
                registry=registry,
            ),
            lag_messages=Gauge(
                "chronoflow_projector_lag_messages",
                "Events in the stream not yet applied",
                ["stream"],
                registry=registry,
            ),
            lag_seconds=Gauge(
                "chronoflow_projector_lag_seconds",
                "Age of the oldest event not yet applied (0 when caught up)",
                ["stream"],
                registry=registry,
            ),
        )


async def load_checkpoint(conn: AsyncConnection, stream: str) -> int:
    """The last stream sequence applied (0 if none)."""
    seq = await conn.scalar(
        select(projection_checkpoints.c.last_seq).where(projection_checkpoints.c.stream == stream)
    )
    return int(seq or 0)


# Plain SQL, handed to the driver as it is: the projector saves a checkpoint with every batch
# it commits, and SQLAlchemy's statement machinery around it (cache lookup, parameter and
# result processing) cost about 0.1 ms of CPU per batch (measured with 80-event batches).
_UPSERT_CHECKPOINT = (
    "INSERT INTO projection_checkpoints (stream, last_seq) VALUES ($1, $2) "
    "ON CONFLICT (stream) DO UPDATE SET last_seq = excluded.last_seq"
)


async def _save_checkpoint(conn: AsyncConnection, stream: str, seq: int) -> None:
    await conn.exec_driver_sql(_UPSERT_CHECKPOINT, (stream, seq))


class ProjectorBusyError(RuntimeError):
    """Another process holds the stream's projector leadership."""


def _lock_key(stream: str) -> int:
    # A stable 31-bit key per stream for pg advisory locks.
    return zlib.crc32(f"chronoflow-projector:{stream}".encode()) & 0x7FFFFFFF


class StreamProjector:
    """Applies one stream to the read models. Only the holder of the stream's advisory lock
    consumes, so events are applied strictly in stream order even with several replicas."""

    def __init__(
        self,
        *,
        nc: NatsClient,
        js: JetStreamContext,
        engine: AsyncEngine,
        stream: str,
        metrics: ProjectorMetrics | None = None,
    ) -> None:
        self.nc = nc
        self.js = js
        self.engine = engine
        self.stream = stream
        self.metrics = metrics
        self._checkpoint = 0
        self._linger = LINGER.get(stream, 0.0)

    async def run(self, *, stop_at: int | None = None, lead_timeout: float | None = None) -> None:
        """Consume forever (or until ``stop_at`` is applied); restarts cleanly on errors.

        Waits to become the stream's leader; with ``lead_timeout`` it gives up instead, raising
        :class:`ProjectorBusyError`.
        """
        while True:
            try:
                async with self.engine.connect() as lock_conn:
                    await self._lead(lock_conn, lead_timeout)
                    if await self._consume(stop_at):
                        return
            except (asyncio.CancelledError, ProjectorBusyError):
                raise
            except Exception:
                log.exception(
                    "projector for %s failed; restarting from its checkpoint", self.stream
                )
                await asyncio.sleep(1)

    async def _lead(self, lock_conn: AsyncConnection, limit: float | None) -> None:
        key = _lock_key(self.stream)
        waited = 0.0
        while not await lock_conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}):
            if limit is not None and waited >= limit:
                raise ProjectorBusyError(
                    f"another projector leads {self.stream}; stop it before a rebuild"
                )
            await asyncio.sleep(0.5)
            waited += 0.5
        await lock_conn.commit()

    async def _consume(self, stop_at: int | None) -> bool:
        async with self.engine.connect() as conn:
            checkpoint = await load_checkpoint(conn, self.stream)
        self._checkpoint = checkpoint
        if stop_at is not None and checkpoint >= stop_at:
            return True
        # The checkpoint in Postgres is the truth; the durable is re-pointed to follow it.
        # It pushes: events stream in while a batch is being applied, so no fetch round trip
        # sits between an append and its projection.
        with contextlib.suppress(NotFoundError):
            await self.js.delete_consumer(self.stream, names.PROJECTOR_DURABLE)
        config = ConsumerConfig(
            durable_name=names.PROJECTOR_DURABLE,
            deliver_subject=self.nc.new_inbox(),
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=checkpoint + 1,
            ack_policy=AckPolicy.ALL,
            max_ack_pending=BATCH * 4,
            ack_wait=60,
        )
        await self.js.add_consumer(self.stream, config)
        inbox: asyncio.Queue[Msg] = asyncio.Queue()

        async def deliver(msg: Msg) -> None:
            inbox.put_nowait(msg)  # unbounded: never waits, so no coroutine step for it

        sub = await self.js.subscribe_bind(
            self.stream, config, names.PROJECTOR_DURABLE, cb=deliver, manual_ack=True
        )
        try:
            # One connection for the whole run, not a pool checkout (and its liveness ping)
            # per batch; if it breaks, run() restarts from the checkpoint with a new one.
            async with self.engine.connect() as conn:
                return await self._consume_into(conn, inbox, stop_at)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _consume_into(
        self, conn: AsyncConnection, inbox: asyncio.Queue[Msg], stop_at: int | None
    ) -> bool:
        while True:
            msgs = await drain(inbox, BATCH, linger=self._linger, busy=BUSY)
            if not msgs:
                await self._observe_lag(None)
                continue
            last = await self._apply(conn, msgs)
            await msgs[-1].ack()
            await self._observe_lag(msgs[-1])
            await self.nc.publish(
                names.PROJECTION_APPLIED_SUBJECT,
                json.dumps({"stream": self.stream, "seq": last}).encode(),
            )
            if stop_at is not None and last >= stop_at:
                return True

    async def _apply(self, conn: AsyncConnection, msgs: list[Msg]) -> int:
        started = time.time_ns()
        async with conn.begin():
            # Only the leader writes this checkpoint, so the value it saved last is current.
            checkpoint = self._checkpoint
            last = checkpoint
            applied = 0
            # Consecutive events with the same apply function go to it together.
            run: list[tuple[Event, int]] = []
            run_apply: Apply | None = None
            for msg in msgs:
                seq = stream_sequence_of(msg)
                last = max(last, seq)
                if seq <= checkpoint:
                    continue  # a redelivery of something already applied
                headers = msg.headers or {}
                event_type = headers.get(names.EVENT_TYPE, "")
                apply = APPLY.get(event_type)
                if apply is None:
                    log.warning("skipping unknown event %r at %s:%d", event_type, self.stream, seq)
                    continue
                if run_apply is not None and apply is not run_apply:
                    await run_apply(conn, run)
                    run = []
                run_apply = apply
                version = int(headers.get(names.EVENT_VERSION, "1"))
                run.append((decode(event_type, version, msg.data), seq))
                applied += 1
            if run_apply is not None:
                await run_apply(conn, run)
            await _save_checkpoint(conn, self.stream, last)
        if tracing_active():
            _record_spans(msgs, checkpoint, started)
        self._checkpoint = last
        if self.metrics is not None:
            self.metrics.applied.labels(self.stream).inc(applied)
        return last

    async def _observe_lag(self, msg: Msg | None) -> None:
        if self.metrics is None:
            return
        pending = msg.metadata.num_pending if msg is not None else 0
        self.metrics.lag_messages.labels(self.stream).set(pending)
        age = 0.0
        if msg is not None and pending:
            age = (datetime.now(UTC) - msg.metadata.timestamp).total_seconds()
        self.metrics.lag_seconds.labels(self.stream).set(max(age, 0.0))


def _record_spans(msgs: list[Msg], checkpoint: int, started: int) -> None:
    # One span per applied event, child of the trace that produced it, covering the
    # transaction that wrote it (from its start to its commit), so a trace reaches from the
    # API request (or the executor) to the read-model write.
    for msg in msgs:
        if stream_sequence_of(msg) <= checkpoint:
            continue
        headers = msg.headers or {}
        with consumer_span(
            f"project {headers.get(names.EVENT_TYPE, 'event')}",
            headers,
            {"messaging.system": "nats", "messaging.destination.name": msg.subject},
            start_time=started,
        ):
            pass


async def drain(
    inbox: asyncio.Queue[Msg],
    size: int,
    *,
    idle: float = 5.0,
    linger: float = 0.0,
    busy: int | None = None,
) -> list[Msg]:
    """Wait (up to ``idle`` s) for one message, then (after ``linger`` s, unless a batch is
    already there) take whatever else arrived. With ``busy``, a linger that brought at least
    that many messages is followed by another, until ``size`` are there or one brings fewer."""
    try:
        async with asyncio.timeout(idle):  # unlike wait_for, no task per call
            msgs = [await inbox.get()]
    except TimeoutError:
        return []
    if linger:
        waiting = inbox.qsize()
        while waiting < size - 1:
            await asyncio.sleep(linger)
            arrived, waiting = inbox.qsize() - waiting, inbox.qsize()
            if busy is None or arrived < busy:
                break
    while len(msgs) < size and not inbox.empty():
        msgs.append(inbox.get_nowait())
    return msgs


async def stream_last_seq(js: JetStreamContext, stream: str) -> int:
    """The stream's last sequence right now."""
    info = await js.stream_info(stream)
    return int(info.state.last_seq)
