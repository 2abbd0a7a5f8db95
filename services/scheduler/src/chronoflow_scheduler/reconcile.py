"""Start-up reconcile: every active chrono has its schedule message, and nothing else does.

Both passes stream: active chronos come from Postgres a page at a time (keyset on id) and are
checked against their schedule subjects by direct get; the orphan pass reads the schedule
messages through an ephemeral consumer a batch at a time. Memory stays flat in the number of
chronos. Everything written goes through the same compare-and-set arms as the live path, so
running alongside the consumers (or another replica's reconcile) is safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from pydantic import ValidationError

from chronoflow_contracts import names, utc_now
from chronoflow_contracts.chrono import ChronoDeleted
from chronoflow_schedule import next_after
from chronoflow_scheduler.domain import ScheduleMessage
from chronoflow_scheduler.eventlog import EventLog
from chronoflow_scheduler.metrics import SchedulerMetrics
from chronoflow_scheduler.readmodel import ActiveChrono, ReadModel
from chronoflow_scheduler.schedules import ArmPolicy, ArmResult, Pending, ScheduleStore

log = logging.getLogger(__name__)

T = TypeVar("T")

_SCHEDULE_FILTER = "cf.schedules.chrono.>"


@dataclass(frozen=True)
class ReconcileReport:
    """What one reconcile saw and did, and how long each pass took."""

    checked: int
    repaired: int
    removed: int
    repair_seconds: float
    sweep_seconds: float


async def _bounded(calls: Iterable[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    """Run the calls, at most ``limit`` at once. Each coroutine is made only once it has a
    place: one made up front and then cancelled while waiting (a shutdown mid-reconcile)
    would never be awaited, which Python reports as a warning for each."""
    gate = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await call()

    return await asyncio.gather(*(one(call) for call in calls))


def repair_due(chrono: ActiveChrono, fired: Pending | None, now: datetime) -> datetime | None:
    """The occurrence to arm for an active chrono that lost its schedule message.

    The scheduler's last announced occurrence if it was made for the current version, else
    the api's; moved past the last occurrence that already fired; from now if none is known.
    Missed occurrences then go through the misfire rule like any late fire.
    """
    known = chrono.armed_version is not None and chrono.armed_version >= chrono.version
    due = chrono.armed_at if known else chrono.next_run_at
    if fired is not None and due is not None and fired.due >= due:
        due = next_after(chrono.schedule, fired.due)
    return due if due is not None else next_after(chrono.schedule, now)


class Reconciler:
    """Checks and repairs schedule messages against the read model."""

    def __init__(
        self,
        *,
        js: JetStreamContext,
        store: ScheduleStore,
        events: EventLog,
        readmodel: ReadModel,
        metrics: SchedulerMetrics,
        page_size: int,
        concurrency: int,
    ) -> None:
        self._js = js
        self._store = store
        self._events = events
        self._readmodel = readmodel
        self._metrics = metrics
        self._page = page_size
        self._concurrency = concurrency

    async def run(self) -> ReconcileReport:
        """Repair every active chrono's schedule, then remove orphans.

        The repair pass is what firing depends on. The sweep is hygiene: an orphan schedule
        that fires is dropped as stale anyway; it runs second and yields to live work.
        """
        started = time.monotonic()
        ack_floor = await self._ack_floor()
        checked = repaired = 0
        after = ""
        nonce = f"r{int(time.time() * 1000)}"
        while page := await self._readmodel.active_page(after, self._page):
            results = await _bounded(
                (functools.partial(self._check, c, ack_floor, nonce) for c in page),
                self._concurrency,
            )
            checked += len(page)
            repaired += sum(results)
            after = page[-1].id
        repair_seconds = time.monotonic() - started
        self._metrics.reconcile_seconds.labels("repair").set(repair_seconds)
        swept = time.monotonic()
        removed = await self._sweep()
        sweep_seconds = time.monotonic() - swept
        self._metrics.reconcile_seconds.labels("sweep").set(sweep_seconds)
        report = ReconcileReport(checked, repaired, removed, repair_seconds, sweep_seconds)
        log.info(
            "reconciled %d active chronos in %.1fs (%d re-armed), swept orphans in %.1fs "
            "(%d removed)",
            checked,
            repair_seconds,
            repaired,
            sweep_seconds,
            removed,
        )
        return report

    async def _ack_floor(self) -> int:
        # Fired messages after the fire durable's ack floor may still be in someone's hands.
        try:
            info = await self._js.consumer_info(
                names.SCHEDULES_STREAM, names.SCHEDULER_FIRE_DURABLE
            )
        except NotFoundError:
            return 0
        return int(info.ack_floor.stream_seq) if info.ack_floor else 0

    async def _check(self, chrono: ActiveChrono, ack_floor: int, nonce: str) -> bool:
        pending = await self._store.pending(chrono.id)
        fired: Pending | None = None
        if pending is not None:
            if pending.version >= chrono.version:
                return False
            if (await self._events.verify(chrono.id, pending.version)).holds:
                return False
        else:
            fired = await self._store.last_fired(chrono.id)
            if fired is not None and fired.seq > ack_floor:
                return False  # fired and not yet settled: the fire consumer carries it on
        due = repair_due(chrono, fired, utc_now())
        if due is None:
            return False
        result = await self._store.arm(
            chrono.id, chrono.version, due, policy=ArmPolicy.REPAIR, nonce=nonce
        )
        if result is ArmResult.ARMED:
            log.info("re-armed chrono %s for %s", chrono.id, due.isoformat())
            self._metrics.reconcile_repairs.labels("rearmed").inc()
            return True
        return False

    async def _sweep(self) -> int:
        """Remove schedule messages of chronos that are deleted, or inactive since."""
        name = f"scheduler-reconcile-{uuid.uuid4().hex[:12]}"
        config = ConsumerConfig(
            name=name,
            filter_subject=_SCHEDULE_FILTER,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=60.0,
            mem_storage=True,
        )
        info = await self._js.add_consumer(names.SCHEDULES_STREAM, config)
        sub = await self._js.pull_subscribe_bind(name, stream=names.SCHEDULES_STREAM)
        removed = 0
        remaining = info.num_pending
        try:
            while remaining:
                try:
                    msgs = await sub.fetch(self._page, timeout=2)
                except TimeoutError:
                    break
                removed += await self._sweep_batch(msgs)
                remaining = msgs[-1].metadata.num_pending
                await asyncio.sleep(0)  # let fires in between batches
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
            with contextlib.suppress(Exception):
                await self._js.delete_consumer(names.SCHEDULES_STREAM, name)
        return removed

    async def _sweep_batch(self, msgs: list[Msg]) -> int:
        found: dict[str, Pending] = {}
        for msg in msgs:
            try:
                body = ScheduleMessage.model_validate_json(msg.data)
            except ValidationError:
                continue
            found[body.chrono_id] = Pending(
                msg.metadata.sequence.stream, body.chrono_version, body.due_at
            )
        states = await self._readmodel.states(list(found))
        # Almost every schedule belongs to an active chrono: only the others need a look.
        suspects = [
            (chrono_id, pending)
            for chrono_id, pending in found.items()
            if chrono_id not in states or not states[chrono_id].is_active
        ]

        async def judge(chrono_id: str, pending: Pending) -> int:
            state = states.get(chrono_id)
            if state is not None:
                if state.version <= pending.version:
                    return 0  # the read model has not caught up with this schedule yet
                if (await self._events.verify(chrono_id, pending.version)).holds:
                    return 0
                await self._store.delete_if_current(pending)
            else:
                last = await self._events.last(chrono_id)
                if last is not None and last[1] != ChronoDeleted.TYPE:
                    return 0  # created but not projected yet
                await self._store.forget(chrono_id)
            self._metrics.reconcile_repairs.labels("removed").inc()
            return 1

        results = await _bounded(
            (functools.partial(judge, i, p) for i, p in suspects), self._concurrency
        )
        return sum(results)
