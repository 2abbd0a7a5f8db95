"""What an occurrence becomes: a RunRequested, a RunSkipped; then the next schedule or the
chrono's end."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Literal

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
from chronoflow_contracts.schedule import NormalizedSchedule
from chronoflow_scheduler.domain import FirePlan, lateness_seconds
from chronoflow_scheduler.emitter import Emitter, Prepared
from chronoflow_scheduler.eventlog import EventLog, Verdict
from chronoflow_scheduler.metrics import SchedulerMetrics
from chronoflow_scheduler.readmodel import ChronoRow, ReadModel
from chronoflow_scheduler.schedules import ArmPolicy, ScheduleStore

log = logging.getLogger(__name__)

_FINISH_RACES = 10


class Outcomes:
    """Writes the consequences of one decided occurrence."""

    def __init__(
        self,
        *,
        store: ScheduleStore,
        events: EventLog,
        readmodel: ReadModel,
        emitter: Emitter,
        metrics: SchedulerMetrics,
        running_stale_seconds: float,
    ) -> None:
        self._store = store
        self._events = events
        self._readmodel = readmodel
        self._emitter = emitter
        self._metrics = metrics
        self._running_stale = running_stale_seconds

    def encode(self, row: ChronoRow, plan: FirePlan) -> Prepared | None:
        """The plan's RunRequested, encoded (None if nothing is to run)."""
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

    async def emit(self, row: ChronoRow, plan: FirePlan) -> str:
        """Run (or skip, by the overlap rule) what the plan runs; record what it skips."""
        outcome = "skipped"
        if plan.run is not None:
            if row.definition.config.concurrency == 1 and await self._readmodel.has_running(
                row.id, stale_after=self._running_stale
            ):
                await self.skip(row.id, plan.run, SkipReason.OVERLAP, 1)
            else:
                work = self.encode(row, plan)
                assert work is not None
                try:
                    await self._emitter.send_run(work)
                except Exception:
                    self._metrics.publish_errors.labels("run_requested").inc()
                    raise
                self._metrics.lateness.observe(lateness_seconds(plan.run, utc_now()))
                outcome = "run"
        if plan.skipped is not None:
            await self.skip(row.id, plan.skipped, SkipReason.MISSED, plan.skipped_count)
        return outcome

    async def skip(
        self, chrono_id: str, scheduled_for: datetime, reason: SkipReason, count: int
    ) -> None:
        """Record ``count`` occurrences from ``scheduled_for`` as skipped."""
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

    async def carry_on(
        self, chrono_id: str, schedule: NormalizedSchedule, plan: FirePlan, verdict: Verdict
    ) -> None:
        """Arm the next occurrence, or finish a chrono that has none."""
        if plan.next_due is not None:
            try:
                await self._store.arm(
                    chrono_id, verdict.latest, plan.next_due, policy=ArmPolicy.ADVANCE
                )
            except Exception:
                self._metrics.publish_errors.labels("schedule").inc()
                raise
            return
        reason: Literal["ONE_SHOT_FIRED", "NO_NEXT_OCCURRENCE"] = (
            "ONE_SHOT_FIRED" if schedule.type == "once" else "NO_NEXT_OCCURRENCE"
        )
        expected = verdict.latest
        for _ in range(_FINISH_RACES):
            finished = ChronoFinished(chrono_id=chrono_id, reason=reason)
            if await self._emitter.chrono_finished(finished, expected_version=expected):
                self._metrics.fire_outcome("finished").inc()
                return
            # Something was appended meanwhile: if only triggers, finish after them.
            again = await self._events.verify(chrono_id, expected)
            if not again.holds:
                return  # a newer definition or a pause decides the chrono's fate
            expected = again.latest
        raise RuntimeError("could not append ChronoFinished: the chrono keeps changing")
