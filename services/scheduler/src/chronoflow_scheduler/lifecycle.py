"""Chrono events → the chrono's schedule: arm, move, cancel; and manual triggers → runs."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from nats.aio.msg import Msg

from chronoflow_contracts.chrono import (
    ChronoCreated,
    ChronoDeleted,
    ChronoEvent,
    ChronoFinished,
    ChronoPaused,
    ChronoResumed,
    ChronoTriggered,
    ChronoUpdated,
)
from chronoflow_contracts.runs import RunRequested, Trigger, occurrence_id
from chronoflow_scheduler.domain import (
    SCHEDULE_CHANGING,
    RetryLaterError,
    first_due,
    manual_run_msg_id,
)
from chronoflow_scheduler.emitter import Emitter
from chronoflow_scheduler.eventlog import EventLog
from chronoflow_scheduler.readmodel import ChronoRow, ReadModel
from chronoflow_scheduler.schedules import ArmPolicy, ScheduleStore

log = logging.getLogger(__name__)


def decided_by_type(event_type: str) -> str | None:
    """What applying an event of this type does when its type alone decides (None: read it).

    Only the scheduler appends ChronoFinished, and only once the chrono has no pending
    schedule left: its last one fired (a one-shot, or a recurring schedule without a next
    occurrence) or was cancelled just before (``_arm_or_finish``). The event itself tells the
    read model the chrono is inactive with no next run, so there is nothing to cancel, read
    or announce: a finished one-shot costs no direct get and no ScheduleArmed(null), and the
    consumer need not even decode it.
    """
    return "finished" if event_type == ChronoFinished.TYPE else None


class LifecycleService:
    """Applies one chrono event (at stream sequence ``seq``, the chrono's new version)."""

    def __init__(
        self,
        *,
        store: ScheduleStore,
        events: EventLog,
        readmodel: ReadModel,
        emitter: Emitter,
        read_model_wait_seconds: float,
        keepalive_seconds: float,
    ) -> None:
        self._store = store
        self._events = events
        self._readmodel = readmodel
        self._emitter = emitter
        self._wait = read_model_wait_seconds
        self._keepalive = keepalive_seconds

    async def apply(self, event: ChronoEvent, seq: int, msg: Msg) -> str:
        """Bring the chrono's schedule in line with ``event``; returns what was done."""
        if isinstance(event, ChronoTriggered):
            return await self._triggered(event, seq, msg)
        if (action := decided_by_type(event.TYPE)) is not None:
            return action
        return await self._schedule_changed(event, seq, msg)

    async def _schedule_changed(self, event: ChronoEvent, seq: int, msg: Msg) -> str:
        if await self._superseded(event.chrono_id, seq):
            return "superseded"
        if isinstance(event, ChronoCreated | ChronoUpdated | ChronoResumed):
            return await self._activated(event, seq, msg)
        if isinstance(event, ChronoPaused):
            return await self._cancel(event.chrono_id, seq)
        if isinstance(event, ChronoDeleted):
            await self._store.forget(event.chrono_id)
            return "forgotten"
        return "ignored"

    async def _activated(
        self, event: ChronoCreated | ChronoUpdated | ChronoResumed, seq: int, msg: Msg
    ) -> str:
        if isinstance(event, ChronoResumed):
            due = event.next_run_at
            if due is None:  # older producers did not announce it: compute from the resume
                row = await self._row(event.chrono_id, seq, msg)
                due = first_due(row.definition.schedule, None, event.occurred_at)
        elif not event.definition.is_active:
            return await self._cancel(event.chrono_id, seq)
        else:
            due = first_due(event.definition.schedule, event.next_run_at, event.occurred_at)
        return await self._arm_or_finish(event.chrono_id, seq, due)

    async def _superseded(self, chrono_id: str, seq: int) -> bool:
        # A later schedule-changing event will (or did) decide; acting on this one would only
        # churn the schedule. Replays of old history after a restart mostly end here.
        last = await self._events.last(chrono_id)
        return last is not None and last[0] > seq and last[1] in SCHEDULE_CHANGING

    async def _arm_or_finish(self, chrono_id: str, seq: int, due: datetime | None) -> str:
        if due is None:
            # An active chrono with no occurrence left (a recurring schedule that ended).
            await self._store.cancel(chrono_id, seq)
            await self._emitter.chrono_finished(
                ChronoFinished(chrono_id=chrono_id, reason="NO_NEXT_OCCURRENCE"),
                expected_version=seq,
            )
            return "finished"
        result = await self._store.arm(chrono_id, seq, due.astimezone(UTC), policy=ArmPolicy.EVENT)
        return result.value

    async def _cancel(self, chrono_id: str, seq: int) -> str:
        return "cancelled" if await self._store.cancel(chrono_id, seq) else "superseded"

    async def _triggered(self, event: ChronoTriggered, seq: int, msg: Msg) -> str:
        if await self._deleted(event.chrono_id):
            log.info("manual trigger of a deleted chrono dropped")
            return "dropped"
        row = await self._row(event.chrono_id, seq, msg)
        requested_at = event.requested_at.astimezone(UTC)
        occurrence = occurrence_id(event.chrono_id, requested_at)
        await self._emitter.run_requested(
            RunRequested(
                chrono_id=event.chrono_id,
                run_id=event.run_id,
                occurrence_id=occurrence,
                scheduled_for=requested_at,
                trigger=Trigger.MANUAL,
                attempt=1,
                target_type=row.definition.target_type,
                chrono_version=max(row.version, seq),
                chrono_name=row.definition.name,
                definition=row.definition,
                correlation_id=event.correlation_id or event.event_id,
                causation_id=event.event_id,
            ),
            msg_id=manual_run_msg_id(event.run_id),
        )
        # The trigger moved the version, not the schedule: carry the pending occurrence over.
        await self._store.retag(event.chrono_id, seq)
        return "triggered"

    async def _row(self, chrono_id: str, seq: int, msg: Msg) -> ChronoRow:
        row = await self._readmodel.wait_for(
            chrono_id,
            seq,
            within=self._wait,
            heartbeat=msg.in_progress,
            heartbeat_every=self._keepalive,
        )
        if row is None:
            raise RetryLaterError(f"read model has not reached version {seq}")
        return row

    async def _deleted(self, chrono_id: str) -> bool:
        last = await self._events.last(chrono_id)
        return last is None or last[1] == ChronoDeleted.TYPE
