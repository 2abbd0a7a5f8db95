"""How each event changes the read models: one function per event type, SQL only.

Every function runs inside the projector's batch transaction, so a change and the stream
checkpoint that covers it commit together. Applying an event twice is prevented by the
checkpoint, not by these functions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from chronoflow_contracts import Event
from chronoflow_contracts.channels import (
    ChannelCreated,
    ChannelDeleted,
    ChannelStatus,
    ChannelStatusChanged,
    ChannelUpdated,
)
from chronoflow_contracts.chrono import (
    ChronoCreated,
    ChronoDefinition,
    ChronoDeleted,
    ChronoFinished,
    ChronoPaused,
    ChronoResumed,
    ChronoTriggered,
    ChronoUpdated,
)
from chronoflow_contracts.functions import FunctionDeleted, FunctionSaved
from chronoflow_contracts.runs import (
    RunCompleted,
    RunRequested,
    RunSkipped,
    RunStarted,
    RunStatus,
    ScheduleArmed,
)
from chronoflow_platform.schema import (
    channels,
    chrono_run_state,
    chrono_runs,
    chronos,
    functions,
)


def _definition_columns(d: ChronoDefinition) -> dict[str, Any]:
    return {
        "name": d.name,
        "description": d.description,
        "cron": d.cron,
        "timezone": d.timezone,
        "schedule": d.schedule.model_dump(mode="json", by_alias=True),
        "target_type": d.target_type.value,
        "method": d.method,
        "url": d.url,
        "headers": d.headers,
        "payload": d.payload,
        "channel_id": d.channel_id,
        "message_template": d.message_template,
        "recipients": d.recipients,
        "function_id": d.function_id,
        "extras": d.extras,
        "config": d.config.model_dump(mode="json", by_alias=True),
        "is_active": d.is_active,
    }


async def chrono_created(conn: AsyncConnection, e: ChronoCreated, seq: int) -> None:
    """Insert the chrono row."""
    await conn.execute(
        insert(chronos)
        .values(
            id=e.chrono_id,
            **_definition_columns(e.definition),
            next_run_at=e.next_run_at if e.definition.is_active else None,
            created_at=e.occurred_at,
            updated_at=e.occurred_at,
            version=seq,
        )
        .on_conflict_do_nothing()
    )


async def chrono_updated(conn: AsyncConnection, e: ChronoUpdated, seq: int) -> None:
    """Replace the definition."""
    await conn.execute(
        update(chronos)
        .where(chronos.c.id == e.chrono_id)
        .values(
            **_definition_columns(e.definition),
            next_run_at=e.next_run_at if e.definition.is_active else None,
            updated_at=e.occurred_at,
            version=seq,
        )
    )


async def _set_chrono(conn: AsyncConnection, e: Event, chrono_id: str, **values: Any) -> None:
    await conn.execute(
        update(chronos).where(chronos.c.id == chrono_id).values(updated_at=e.occurred_at, **values)
    )


async def chrono_paused(conn: AsyncConnection, e: ChronoPaused, seq: int) -> None:
    """Inactive, nothing next."""
    await _set_chrono(conn, e, e.chrono_id, is_active=False, next_run_at=None, version=seq)


async def chrono_resumed(conn: AsyncConnection, e: ChronoResumed, seq: int) -> None:
    """Active again, next occurrence from the resume instant."""
    await _set_chrono(conn, e, e.chrono_id, is_active=True, next_run_at=e.next_run_at, version=seq)


async def chrono_finished(conn: AsyncConnection, e: ChronoFinished, seq: int) -> None:
    """A one-shot is done: inactive, ``nextRunAt`` null."""
    await _set_chrono(conn, e, e.chrono_id, is_active=False, next_run_at=None, version=seq)


async def chrono_triggered(conn: AsyncConnection, e: ChronoTriggered, seq: int) -> None:
    """A manual run moves the version (it is an event of the chrono) but nothing else."""
    await conn.execute(update(chronos).where(chronos.c.id == e.chrono_id).values(version=seq))


async def chrono_deleted(conn: AsyncConnection, e: ChronoDeleted, seq: int) -> None:
    """Remove the chrono; its run history stays."""
    await conn.execute(delete(chronos).where(chronos.c.id == e.chrono_id))


async def _run_row(conn: AsyncConnection, values: dict[str, Any], update_cols: list[str]) -> None:
    stmt = insert(chrono_runs).values(**values)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["id"], set_={c: stmt.excluded[c] for c in update_cols}
        )
    )


async def _last_run(
    conn: AsyncConnection, chrono_id: str, run_id: str, at: datetime, status: str
) -> None:
    # The newest run by its instant wins; a late event about an older run changes nothing.
    stmt = insert(chrono_run_state).values(
        chrono_id=chrono_id, last_run_at=at, last_run_status=status, last_run_id=run_id
    )
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["chrono_id"],
            set_={
                "last_run_at": stmt.excluded.last_run_at,
                "last_run_status": stmt.excluded.last_run_status,
                "last_run_id": stmt.excluded.last_run_id,
            },
            where=or_(
                chrono_run_state.c.last_run_at.is_(None),
                chrono_run_state.c.last_run_id == run_id,
                chrono_run_state.c.last_run_at <= at,
            ),
        )
    )


def _run_identity(e: RunStarted | RunCompleted | RunSkipped) -> dict[str, Any]:
    return {
        "id": e.run_id,
        "chrono_id": e.chrono_id,
        "occurrence_id": e.occurrence_id,
        "scheduled_for": e.scheduled_for,
        "trigger": e.trigger.value,
        "attempt": e.attempt,
    }


async def run_started(conn: AsyncConnection, e: RunStarted, seq: int) -> None:
    """A RUNNING row (unless the completion was applied already)."""
    stmt = insert(chrono_runs).values(
        **_run_identity(e),
        target_type=e.target_type.value,
        status=RunStatus.RUNNING.value,
        started_at=e.started_at,
        will_retry=False,
    )
    await conn.execute(stmt.on_conflict_do_nothing())
    await _last_run(conn, e.chrono_id, e.run_id, e.started_at, RunStatus.RUNNING.value)


async def run_completed(conn: AsyncConnection, e: RunCompleted, seq: int) -> None:
    """The attempt's outcome."""
    values = {
        **_run_identity(e),
        "target_type": e.target_type.value,
        "status": e.status.value,
        "started_at": e.started_at,
        "finished_at": e.finished_at,
        "duration_ms": e.duration_ms,
        "http_status": e.http_status,
        "response_snippet": e.response_snippet,
        "error_message": e.error_message,
        "result": e.result,
        "will_retry": e.will_retry,
    }
    await _run_row(conn, values, [k for k in values if k != "id"])
    await _last_run(conn, e.chrono_id, e.run_id, e.started_at, e.status.value)


async def run_skipped(conn: AsyncConnection, e: RunSkipped, seq: int) -> None:
    """A SKIPPED row saying why (and how many occurrences it stands for)."""
    values = {
        **_run_identity(e),
        "status": RunStatus.SKIPPED.value,
        "started_at": e.occurred_at,
        "finished_at": e.occurred_at,
        "duration_ms": 0,
        "error_message": f"skipped: {e.reason.value}"
        + (f" ({e.coalesced} occurrences)" if e.coalesced > 1 else ""),
        "result": {"reason": e.reason.value, "coalesced": e.coalesced},
        "will_retry": False,
    }
    await _run_row(conn, values, [k for k in values if k != "id"])
    await _last_run(conn, e.chrono_id, e.run_id, e.occurred_at, RunStatus.SKIPPED.value)


async def schedule_armed(conn: AsyncConnection, e: ScheduleArmed, seq: int) -> None:
    """The scheduler's next occurrence, tagged with the chrono version it was computed for."""
    stmt = insert(chrono_run_state).values(
        chrono_id=e.chrono_id, next_run_at=e.next_run_at, next_run_version=e.chrono_version
    )
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["chrono_id"],
            set_={
                "next_run_at": stmt.excluded.next_run_at,
                "next_run_version": stmt.excluded.next_run_version,
            },
        )
    )


async def channel_created(conn: AsyncConnection, e: ChannelCreated, seq: int) -> None:
    """Insert the channel; a new session is STOPPED until WAHA says otherwise."""
    d = e.definition
    await conn.execute(
        insert(channels)
        .values(
            id=e.channel_id,
            provider=d.provider,
            name=d.name,
            config=d.config.model_dump(mode="json", by_alias=True),
            status=ChannelStatus.STOPPED.value,
            created_at=e.occurred_at,
            updated_at=e.occurred_at,
            version=seq,
        )
        .on_conflict_do_nothing()
    )


async def channel_updated(conn: AsyncConnection, e: ChannelUpdated, seq: int) -> None:
    """Replace the definition."""
    d = e.definition
    await conn.execute(
        update(channels)
        .where(channels.c.id == e.channel_id)
        .values(
            name=d.name,
            config=d.config.model_dump(mode="json", by_alias=True),
            updated_at=e.occurred_at,
            version=seq,
        )
    )


async def channel_status_changed(conn: AsyncConnection, e: ChannelStatusChanged, seq: int) -> None:
    """Follow the WAHA session's status."""
    await conn.execute(
        update(channels)
        .where(channels.c.id == e.channel_id)
        .values(status=e.status.value, updated_at=e.occurred_at, version=seq)
    )


async def channel_deleted(conn: AsyncConnection, e: ChannelDeleted, seq: int) -> None:
    """Remove the channel."""
    await conn.execute(delete(channels).where(channels.c.id == e.channel_id))


async def function_saved(conn: AsyncConnection, e: FunctionSaved, seq: int) -> None:
    """Insert or replace the function's code, limits and version."""
    d = e.definition
    values = {
        "name": d.name,
        "code": d.code,
        "runtime": d.runtime,
        "limits": d.limits.model_dump(mode="json", by_alias=True),
        "channel_id": d.channel_id,
        "function_version": e.function_version,
        "checksum": e.checksum,
        "updated_at": e.occurred_at,
        "version": seq,
    }
    stmt = insert(functions).values(id=e.function_id, created_at=e.occurred_at, **values)
    await conn.execute(stmt.on_conflict_do_update(index_elements=["id"], set_=values))


async def function_deleted(conn: AsyncConnection, e: FunctionDeleted, seq: int) -> None:
    """Remove the function."""
    await conn.execute(delete(functions).where(functions.c.id == e.function_id))


async def _ignore(conn: AsyncConnection, e: Event, seq: int) -> None:
    """Events that change no read model."""


Apply = Callable[[AsyncConnection, Any, int], Awaitable[None]]

#: event type -> how it changes the read models.
APPLY: dict[str, Apply] = {
    ChronoCreated.TYPE: chrono_created,
    ChronoUpdated.TYPE: chrono_updated,
    ChronoPaused.TYPE: chrono_paused,
    ChronoResumed.TYPE: chrono_resumed,
    ChronoFinished.TYPE: chrono_finished,
    ChronoTriggered.TYPE: chrono_triggered,
    ChronoDeleted.TYPE: chrono_deleted,
    RunRequested.TYPE: _ignore,
    RunStarted.TYPE: run_started,
    RunCompleted.TYPE: run_completed,
    RunSkipped.TYPE: run_skipped,
    ScheduleArmed.TYPE: schedule_armed,
    ChannelCreated.TYPE: channel_created,
    ChannelUpdated.TYPE: channel_updated,
    ChannelStatusChanged.TYPE: channel_status_changed,
    ChannelDeleted.TYPE: channel_deleted,
    FunctionSaved.TYPE: function_saved,
    FunctionDeleted.TYPE: function_deleted,
}
