"""What happens when a chrono's schedule fires: check, hold, decide, emit, continue.

A fired message arrives ``fire_lead_seconds`` early. While it waits, the scheduler checks the
schedule still holds and loads the chrono; at the due instant it checks again (a pause in the
last seconds wins), applies the misfire and overlap rules, emits RunRequested (or RunSkipped),
then arms the next occurrence or finishes the one-shot. The message is acknowledged only after
all of that is stored, so a crash anywhere means redelivery; message ids make the repeat
harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from nats.aio.msg import Msg
from pydantic import ValidationError

from chronoflow_contracts import utc_now
from chronoflow_contracts.chrono import ChronoFinished
from chronoflow_contracts.runs import (
    RunRequested,
    RunSkipped,
    SkipReason,
    Trigger,
    occurrence_id,
    run_id,
    run_request_msg_id,
)
from chronoflow_platform.logs import chrono_id_var
from chronoflow_scheduler.domain import (
    ON_TIME_SECONDS,
    FirePlan,
    RetryLaterError,
    ScheduleMessage,
    hold_seconds,
    keepalive_interval,
    lateness_seconds,
    plan_fire,
)
from chronoflow_scheduler.emitter import Emitter, PreparedWork
from chronoflow_scheduler.eventlog import ChangeWatch, EventLog, Verdict
from chronoflow_scheduler.metrics import SchedulerMetrics
from chronoflow_scheduler.readmodel import ChronoRow, ReadModel
from chronoflow_scheduler.schedules import ArmPolicy, ScheduleStore

log = logging.getLogger(__name__)

_FINISH_RACES = 10


@dataclass(frozen=True)
class FireTiming:
    """The knobs of fire processing."""

    ack_wait_seconds: float
    read_model_wait_seconds: float
    retry_delay_seconds: float
    running_stale_seconds: float


class FireService:
    """Processes fired schedule messages; safe to run in any number of replicas."""

    def __init__(
        self,
        *,
        store: ScheduleStore,
        events: EventLog,
        watch: ChangeWatch,
        readmodel: ReadModel,
        emitter: Emitter,
        metrics: SchedulerMetrics,
        timing: FireTiming,
    ) -> None:
        self._store = store
        self._events = events
        self._watch = watch
        self._readmodel = readmodel
        self._emitter = emitter
        self._metrics = metrics
        self._timing = timing
        self._keepalive = keepalive_interval(timing.ack_wait_seconds)

    async def handle(self, msg: Msg) -> None:
        """Process one fired message to its acknowledgement, or hand it back for later."""
        try:
            fire = ScheduleMessage.model_validate_json(msg.data)
        except ValidationError:
            log.warning("dropping unreadable fired message on %s", msg.subject)
            self._metrics.fires.labels("malformed").inc()
            await msg.ack()
            return
        token = chrono_id_var.set(fire.chrono_id)
        try:
            outcome = await self._process(msg, fire)
        except asyncio.CancelledError:
            # Shutting down: give it back now so another replica takes it without waiting.
            with contextlib.suppress(Exception):
                await asyncio.shield(msg.nak())
            raise
        except RetryLaterError as exc:
            log.info("fire of %s deferred: %s", fire.due_at.isoformat(), exc)
            await msg.nak(delay=self._timing.retry_delay_seconds)
            return
        except Exception:
            log.exception("fire of %s failed; it will be redelivered", fire.due_at.isoformat())
            self._metrics.publish_errors.labels("fire").inc()
            with contextlib.suppress(Exception):
                await msg.nak(delay=self._timing.retry_delay_seconds)
            return
        finally:
            chrono_id_var.reset(token)
        await msg.ack()
        self._metrics.fires.labels(outcome).inc()

    async def _process(self, msg: Msg, fire: ScheduleMessage) -> str:
        watch = self._watch.watch(fire.chrono_id)
        try:
            verdict = await self._events.verify(fire.chrono_id, fire.chrono_version)
            if not verdict.holds:
                return self._stale(fire, verdict)
            row = await self._await_row(msg, fire)
            # Decide as if on time and encode the run now, while there is time to spare.
            plan = self._plan(row, fire, at=fire.due_at)
            work = self._prepare(row, plan)
            self._metrics.held.inc()
            try:
                await self._hold(msg, fire)
            finally:
                self._metrics.held.dec()
            if self._watch.changed(watch):
                verdict = await self._events.verify(fire.chrono_id, fire.chrono_version)
        finally:
            self._watch.release(watch)
        if not verdict.holds or not row.is_active:
            return self._stale(fire, verdict)
        now = utc_now()
        if lateness_seconds(fire.due_at, now) > ON_TIME_SECONDS:
            plan = self._plan(row, fire, at=now)
            work = self._prepare(row, plan)
        outcome = await self._emit(row, plan, work)
        # Let a burst's runs go out before the bookkeeping that follows them.
        await self._emitter.quiet()
        await self._continue(row, plan, verdict)
        return outcome

    @staticmethod
    def _plan(row: ChronoRow, fire: ScheduleMessage, *, at: datetime) -> FirePlan:
        return plan_fire(
            row.definition.schedule,
            fire.due_at,
            at,
            row.definition.config.misfire_grace_seconds,
        )

    def _stale(self, fire: ScheduleMessage, verdict: Verdict) -> str:
        log.info(
            "stale fire of %s (armed at version %d, changed at %d by %s)",
            fire.due_at.isoformat(),
            fire.chrono_version,
            verdict.latest,
            verdict.changed_by,
        )
        self._metrics.stale.inc()
        return "stale"

    async def _await_row(self, msg: Msg, fire: ScheduleMessage) -> ChronoRow:
        """The chrono's row once the projector has applied the event that armed the schedule."""
        row = await self._readmodel.wait_for(
            fire.chrono_id,
            fire.chrono_version,
            within=self._timing.read_model_wait_seconds,
            heartbeat=msg.in_progress,
            heartbeat_every=self._keepalive,
        )
        if row is None:
            raise RetryLaterError(f"read model has not reached version {fire.chrono_version}")
        return row

    async def _hold(self, msg: Msg, fire: ScheduleMessage) -> None:
        """Sleep until the due instant, telling JetStream the message is still in hand."""
        while (wait := hold_seconds(fire.due_at, utc_now())) > 0:
            if wait > self._keepalive:
                await asyncio.sleep(self._keepalive)
                await msg.in_progress()
            else:
                await asyncio.sleep(wait)

    def _prepare(self, row: ChronoRow, plan: FirePlan) -> PreparedWork | None:
        if plan.run is None:
            return None
        occurrence = occurrence_id(row.id, plan.run)
        event = RunRequested(
            chrono_id=row.id,
            run_id=run_id(occurrence, 1),
            occurrence_id=occurrence,
            scheduled_for=plan.run,
            trigger=Trigger.SCHEDULE,
            attempt=1,
            target_type=row.definition.target_type,
            chrono_version=row.version,
            chrono_name=row.definition.name,
            definition=row.definition,
            correlation_id=occurrence,
        )
        return self._emitter.prepare_run(event, msg_id=run_request_msg_id(row.id, plan.run, 1))

    async def _emit(self, row: ChronoRow, plan: FirePlan, work: PreparedWork | None) -> str:
        outcome = "skipped"
        if plan.run is not None and work is not None:
            if row.definition.config.concurrency == 1 and await self._readmodel.has_running(
                row.id, stale_after=self._timing.running_stale_seconds
            ):
                await self._skip(row.id, plan.run, SkipReason.OVERLAP, 1)
            else:
                try:
                    await self._emitter.send_run(work)
                except Exception:
                    self._metrics.publish_errors.labels("run_requested").inc()
                    raise
                self._metrics.lateness.observe(lateness_seconds(plan.run, utc_now()))
                outcome = "run"
        if plan.skipped is not None:
            await self._skip(row.id, plan.skipped, SkipReason.MISSED, plan.skipped_count)
        return outcome

    async def _skip(
        self, chrono_id: str, scheduled_for: datetime, reason: SkipReason, count: int
    ) -> None:
        occurrence = occurrence_id(chrono_id, scheduled_for)
        event = RunSkipped(
            chrono_id=chrono_id,
            run_id=run_id(occurrence, 1),
            occurrence_id=occurrence,
            scheduled_for=scheduled_for,
            trigger=Trigger.SCHEDULE,
            attempt=1,
            reason=reason,
            coalesced=count,
            correlation_id=occurrence,
        )
        try:
            await self._emitter.run_skipped(event)
        except Exception:
            self._metrics.publish_errors.labels("run_skipped").inc()
            raise
        self._metrics.skips.labels(reason.value).inc(count)

    async def _continue(self, row: ChronoRow, plan: FirePlan, verdict: Verdict) -> None:
        """Arm the next occurrence, or finish a chrono that has none."""
        if plan.next_due is not None:
            try:
                await self._store.arm(
                    row.id, verdict.latest, plan.next_due, policy=ArmPolicy.ADVANCE
                )
            except Exception:
                self._metrics.publish_errors.labels("schedule").inc()
                raise
            return
        reason: Literal["ONE_SHOT_FIRED", "NO_NEXT_OCCURRENCE"] = (
            "ONE_SHOT_FIRED" if row.definition.schedule.type == "once" else "NO_NEXT_OCCURRENCE"
        )
        expected = verdict.latest
        for _ in range(_FINISH_RACES):
            finished = ChronoFinished(chrono_id=row.id, reason=reason)
            if await self._emitter.chrono_finished(finished, expected_version=expected):
                self._metrics.fires.labels("finished").inc()
                return
            # Something was appended meanwhile: if only triggers, finish after them.
            again = await self._events.verify(row.id, expected)
            if not again.holds:
                return  # a newer definition or a pause decides the chrono's fate
            expected = again.latest
        raise RuntimeError("could not append ChronoFinished: the chrono keeps changing")
