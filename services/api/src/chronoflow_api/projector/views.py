"""How each event changes the read models: one function per event type (run history's three
share one), SQL only.

Each function receives a run of consecutive events it handles (in stream order) and runs
inside the projector's batch transaction, so the changes and the stream checkpoint that
covers them commit together. Inserts and upserts go as one executemany per run (executed row
by row, in order), which lets the projector keep up with thousands of run events a second.
Applying an event twice is prevented by the checkpoint, not by these functions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, or_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

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

Batch = Sequence[tuple[Any, int]]
Apply = Callable[[AsyncConnection, Batch], Awaitable[None]]


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


# --- chronos (from CF_EVENTS) ---------------------------------------------------------------

_INSERT_CHRONOS = insert(chronos).on_conflict_do_nothing()  # built once: every create uses it


async def chrono_created(conn: AsyncConnection, batch: Batch) -> None:
    """Insert the chrono rows."""
    rows = []
    for e, seq in batch:
        assert isinstance(e, ChronoCreated)
        rows.append(
            {
                "id": e.chrono_id,
                **_definition_columns(e.definition),
                "next_run_at": e.next_run_at if e.definition.is_active else None,
                "created_at": e.occurred_at,
                "updated_at": e.occurred_at,
                "version": seq,
            }
        )
    await conn.execute(_INSERT_CHRONOS, rows)


async def chrono_updated(conn: AsyncConnection, batch: Batch) -> None:
    """Replace the definition."""
    for e, seq in batch:
        assert isinstance(e, ChronoUpdated)
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


# One statement run for the whole batch (executemany), not one per event: every one-shot that
# fires is followed by a ChronoFinished, so a burst of them arrives by the thousand.
_set_chrono_stmt = (
    update(chronos)
    .where(chronos.c.id == bindparam("b_id"))
    .values(
        updated_at=bindparam("b_updated_at"),
        version=bindparam("b_version"),
        is_active=bindparam("b_is_active"),
        next_run_at=bindparam("b_next_run_at"),
    )
)


async def _set_chrono(
    conn: AsyncConnection, batch: Batch, *, is_active: bool, next_run_at: datetime | None
) -> None:
    await conn.execute(
        _set_chrono_stmt,
        [
            {
                "b_id": e.chrono_id,
                "b_updated_at": e.occurred_at,
                "b_version": seq,
                "b_is_active": is_active,
                "b_next_run_at": next_run_at,
            }
            for e, seq in batch
        ],
    )


async def chrono_paused(conn: AsyncConnection, batch: Batch) -> None:
    """Inactive, nothing next."""
    await _set_chrono(conn, batch, is_active=False, next_run_at=None)


async def chrono_finished(conn: AsyncConnection, batch: Batch) -> None:
    """A one-shot is done: inactive, ``nextRunAt`` null."""
    await _set_chrono(conn, batch, is_active=False, next_run_at=None)


async def chrono_resumed(conn: AsyncConnection, batch: Batch) -> None:
    """Active again, next occurrence from the resume instant."""
    for e, seq in batch:
        assert isinstance(e, ChronoResumed)
        await _set_chrono(conn, [(e, seq)], is_active=True, next_run_at=e.next_run_at)


async def chrono_triggered(conn: AsyncConnection, batch: Batch) -> None:
    """A manual run moves the version (it is an event of the chrono) but nothing else."""
    for e, seq in batch:
        await conn.execute(update(chronos).where(chronos.c.id == e.chrono_id).values(version=seq))


async def chrono_deleted(conn: AsyncConnection, batch: Batch) -> None:
    """Remove the chrono; its run history stays."""
    await conn.execute(delete(chronos).where(chronos.c.id.in_([e.chrono_id for e, _ in batch])))


# --- runs (from CF_RUNS) --------------------------------------------------------------------

_last_run_stmt = insert(chrono_run_state)
# The newest run by its instant wins; a late event about an older run changes nothing.
_last_run_upsert = _last_run_stmt.on_conflict_do_update(
    index_elements=["chrono_id"],
    set_={
        "last_run_at": _last_run_stmt.excluded.last_run_at,
        "last_run_status": _last_run_stmt.excluded.last_run_status,
        "last_run_id": _last_run_stmt.excluded.last_run_id,
    },
    where=or_(
        chrono_run_state.c.last_run_at.is_(None),
        chrono_run_state.c.last_run_id == _last_run_stmt.excluded.last_run_id,
        chrono_run_state.c.last_run_at <= _last_run_stmt.excluded.last_run_at,
    ),
)


def _last_run(chrono_id: str, run_id: str, at: Any, status: RunStatus) -> dict[str, Any]:
    return {
        "chrono_id": chrono_id,
        "last_run_at": at,
        "last_run_status": status.value,
        "last_run_id": run_id,
    }


def _run_identity(e: RunStarted | RunCompleted | RunSkipped) -> dict[str, Any]:
    return {
        "id": e.run_id,
        "chrono_id": e.chrono_id,
        "occurrence_id": e.occurrence_id,
        "scheduled_for": e.scheduled_for,
        "trigger": e.trigger.value,
        "attempt": e.attempt,
    }


_RUN_COLUMNS = [c.name for c in chrono_runs.columns if c.name != "id"]
_run_stmt = insert(chrono_runs)
_run_upsert = _run_stmt.on_conflict_do_update(
    index_elements=["id"],
    set_={c: _run_stmt.excluded[c] for c in _RUN_COLUMNS},
    # A RUNNING row never replaces one that exists: that is the attempt's outcome, applied
    # first when its RunStarted came late (or the same start again).
    where=_run_stmt.excluded.status != RunStatus.RUNNING.value,
)


def _run_row(**values: Any) -> dict[str, Any]:
    # executemany needs every row to bind every column.
    return dict.fromkeys(_RUN_COLUMNS) | values


def _started(e: RunStarted) -> tuple[dict[str, Any], dict[str, Any]]:
    row = _run_row(
        **_run_identity(e),
        target_type=e.target_type.value,
        status=RunStatus.RUNNING.value,
        started_at=e.started_at,
        will_retry=False,
    )
    return row, _last_run(e.chrono_id, e.run_id, e.started_at, RunStatus.RUNNING)


def _completed(e: RunCompleted) -> tuple[dict[str, Any], dict[str, Any]]:
    row = _run_row(
        **_run_identity(e),
        target_type=e.target_type.value,
        status=e.status.value,
        started_at=e.started_at,
        finished_at=e.finished_at,
        duration_ms=e.duration_ms,
        http_status=e.http_status,
        response_snippet=e.response_snippet,
        error_message=e.error_message,
        result=e.result,
        will_retry=e.will_retry,
    )
    return row, _last_run(e.chrono_id, e.run_id, e.started_at, RunStatus(e.status))


def _skipped(e: RunSkipped) -> tuple[dict[str, Any], dict[str, Any]]:
    many = f" ({e.coalesced} occurrences)" if e.coalesced > 1 else ""
    row = _run_row(
        **_run_identity(e),
        status=RunStatus.SKIPPED.value,
        started_at=e.occurred_at,
        finished_at=e.occurred_at,
        duration_ms=0,
        error_message=f"skipped: {e.reason.value}{many}",
        result={"reason": e.reason.value, "coalesced": e.coalesced},
        will_retry=False,
    )
    return row, _last_run(e.chrono_id, e.run_id, e.occurred_at, RunStatus.SKIPPED)


async def run_events(conn: AsyncConnection, batch: Batch) -> None:
    """RunStarted (a RUNNING row), RunCompleted (the attempt's outcome) and RunSkipped (a
    SKIPPED row saying why, and how many occurrences it stands for), mixed, in stream order.

    One statement for the run rows and one for each chrono's last run, however the types
    interleave: runs in flight interleave starts and outcomes, and a statement per stretch of
    one type cost the projector a round trip per event at moderate rates.
    """
    rows, last = [], []
    for e, _ in batch:
        if isinstance(e, RunStarted):
            row, newest = _started(e)
        elif isinstance(e, RunCompleted):
            row, newest = _completed(e)
        else:
            assert isinstance(e, RunSkipped)
            row, newest = _skipped(e)
        rows.append(row)
        last.append(newest)
    await conn.execute(_run_upsert, rows)
    await conn.execute(_last_run_upsert, last)


_armed_stmt = insert(chrono_run_state)
_armed_upsert = _armed_stmt.on_conflict_do_update(
    index_elements=["chrono_id"],
    set_={
        "next_run_at": _armed_stmt.excluded.next_run_at,
        "next_run_version": _armed_stmt.excluded.next_run_version,
    },
)


async def schedule_armed(conn: AsyncConnection, batch: Batch) -> None:
    """The scheduler's next occurrence, tagged with the chrono version it was computed for."""
    rows = []
    for e, _ in batch:
        assert isinstance(e, ScheduleArmed)
        rows.append(
            {
                "chrono_id": e.chrono_id,
                "next_run_at": e.next_run_at,
                "next_run_version": e.chrono_version,
            }
        )
    await conn.execute(_armed_upsert, rows)


# --- channels and functions (from CF_EVENTS) ------------------------------------------------


async def channel_created(conn: AsyncConnection, batch: Batch) -> None:
    """Insert channels; a new session is STOPPED until WAHA says otherwise."""
    rows = []
    for e, seq in batch:
        assert isinstance(e, ChannelCreated)
        rows.append(
            {
                "id": e.channel_id,
                "provider": e.definition.provider,
                "name": e.definition.name,
                "config": e.definition.config.model_dump(mode="json", by_alias=True),
                "status": ChannelStatus.STOPPED.value,
                "created_at": e.occurred_at,
                "updated_at": e.occurred_at,
                "version": seq,
            }
        )
    await conn.execute(insert(channels).on_conflict_do_nothing(), rows)


async def channel_updated(conn: AsyncConnection, batch: Batch) -> None:
    """Replace the definition."""
    for e, seq in batch:
        assert isinstance(e, ChannelUpdated)
        await conn.execute(
            update(channels)
            .where(channels.c.id == e.channel_id)
            .values(
                name=e.definition.name,
                config=e.definition.config.model_dump(mode="json", by_alias=True),
                updated_at=e.occurred_at,
                version=seq,
            )
        )


async def channel_status_changed(conn: AsyncConnection, batch: Batch) -> None:
    """Follow the WAHA session's status."""
    for e, seq in batch:
        assert isinstance(e, ChannelStatusChanged)
        await conn.execute(
            update(channels)
            .where(channels.c.id == e.channel_id)
            .values(status=e.status.value, updated_at=e.occurred_at, version=seq)
        )


async def channel_deleted(conn: AsyncConnection, batch: Batch) -> None:
    """Remove channels."""
    await conn.execute(delete(channels).where(channels.c.id.in_([e.channel_id for e, _ in batch])))


async def function_saved(conn: AsyncConnection, batch: Batch) -> None:
    """Insert or replace a function's code, limits and version."""
    for e, seq in batch:
        assert isinstance(e, FunctionSaved)
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


async def function_deleted(conn: AsyncConnection, batch: Batch) -> None:
    """Remove functions."""
    ids = [e.function_id for e, _ in batch]
    await conn.execute(delete(functions).where(functions.c.id.in_(ids)))


async def _ignore(conn: AsyncConnection, batch: Batch) -> None:
    """Events that change no read model."""


#: event type -> how a run of such events changes the read models.
APPLY: dict[str, Apply] = {
    ChronoCreated.TYPE: chrono_created,
    ChronoUpdated.TYPE: chrono_updated,
    ChronoPaused.TYPE: chrono_paused,
    ChronoResumed.TYPE: chrono_resumed,
    ChronoFinished.TYPE: chrono_finished,
    ChronoTriggered.TYPE: chrono_triggered,
    ChronoDeleted.TYPE: chrono_deleted,
    RunRequested.TYPE: _ignore,
    RunStarted.TYPE: run_events,
    RunCompleted.TYPE: run_events,
    RunSkipped.TYPE: run_events,
    ScheduleArmed.TYPE: schedule_armed,
    ChannelCreated.TYPE: channel_created,
    ChannelUpdated.TYPE: channel_updated,
    ChannelStatusChanged.TYPE: channel_status_changed,
    ChannelDeleted.TYPE: channel_deleted,
    FunctionSaved.TYPE: function_saved,
    FunctionDeleted.TYPE: function_deleted,
}
