"""How each event changes the read models: one function per event type (run history's three
share one), SQL only.

Each function receives a run of consecutive events it handles (in stream order) and runs
inside the projector's batch transaction, so the changes and the stream checkpoint that
covers them commit together. Inserts and upserts go as one executemany per run (executed row
by row, in order); run history, thousands of events a second, goes as two statements per
batch that take it as one JSON document each (see run_events). Applying an event twice is
prevented by the checkpoint, not by these functions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import pydantic_core
from sqlalchemy import Boolean, Column, DateTime, Integer, String, bindparam, delete, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import TypeEngine

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
#
# A batch of run events becomes two statements whatever its size, each taking the batch as one
# JSON document (an array of rows, each an array of columns): no per-row work in SQLAlchemy,
# one round trip each. One INSERT ... ON CONFLICT cannot touch a row twice, so the batch is
# folded first to what applying its events one by one would leave (see run_events and
# _newest_candidates).
#
# One document, not one array parameter per column: asyncpg encodes arrays element by element
# (an abstract-class isinstance per element, ~1 us for an instant), where pydantic-core writes
# all the rows as JSON in one call (instants as ISO 8601 with their offsets, enum members as
# their values) and Postgres reads them back in C. run_events alone (its events already
# decoded), 500-run batches: 21-29 us of CPU a run with arrays, 13-15 with the document, and
# Postgres's about the same (14-18 us a run, 15-19).

_RUN_COLUMNS = [c.name for c in chrono_runs.columns]

# How a column is read from its row's JSON array. Strings come out as text, not varchar(n):
# inserting text into the column refuses an overlong value, as a plain INSERT does, where an
# explicit cast to varchar(n) would truncate. ``result`` stays JSON: a row's null there is
# the JSON null SQLAlchemy's JSONB always stored for none, not SQL NULL.
_COLUMN_READERS: tuple[tuple[type[TypeEngine[Any]], str], ...] = (
    (String, "r->>{n}"),
    (DateTime, "(r->>{n})::timestamptz"),
    (Integer, "(r->>{n})::int"),
    (Boolean, "(r->>{n})::bool"),
    (JSONB, "r->{n}"),
)


def _reader_of(n: int, column: Column[Any]) -> str:
    for kind, reader in _COLUMN_READERS:
        if isinstance(column.type, kind):
            return reader.format(n=n)
    raise TypeError(f"no JSON reader for chrono_runs.{column.name} ({column.type!r})")


_COLUMN_LIST = ", ".join(_RUN_COLUMNS)
_READ_COLUMNS = ", ".join(_reader_of(n, c) for n, c in enumerate(chrono_runs.columns))
_REPLACE = ", ".join(f"{c} = excluded.{c}" for c in _RUN_COLUMNS if c != "id")
# Built from the table's own column names and types: nothing from outside goes into the text.
# A RUNNING row never replaces one that exists: that is the attempt's outcome, applied first
# when its RunStarted came late (or the same start again).
_RUN_UPSERT = (
    f"INSERT INTO chrono_runs ({_COLUMN_LIST}) SELECT {_READ_COLUMNS} "  # noqa: S608
    "FROM jsonb_array_elements($1::text::jsonb) AS r "
    f"ON CONFLICT (id) DO UPDATE SET {_REPLACE} "
    f"WHERE excluded.status <> '{RunStatus.RUNNING.value}'"
)

_LAST_RUN_UPSERT = """\
INSERT INTO chrono_run_state (chrono_id, last_run_at, last_run_status, last_run_id)
SELECT DISTINCT ON (c.chrono_id) c.chrono_id, c.final_at, c.final_status, c.final_id
FROM (SELECT e->>0 AS chrono_id, (e->>1)::int AS k, (e->>2)::timestamptz AS at,
        e->>3 AS run_id, (e->>4)::timestamptz AS final_at, e->>5 AS final_status,
        e->>6 AS final_id
    FROM jsonb_array_elements($1::text::jsonb) AS e) AS c
WHERE NOT coalesce((
    SELECT s.last_run_at IS NOT NULL AND s.last_run_id IS DISTINCT FROM c.run_id
        AND s.last_run_at > c.at
    FROM chrono_run_state AS s WHERE s.chrono_id = c.chrono_id), false)
ORDER BY c.chrono_id, c.k
ON CONFLICT (chrono_id) DO UPDATE SET last_run_at = excluded.last_run_at,
    last_run_status = excluded.last_run_status, last_run_id = excluded.last_run_id"""

#: A run's row in chrono_runs, in the order of its columns.
RunRow = tuple[
    str,  # id
    str,  # chrono_id
    str,  # occurrence_id
    datetime,  # scheduled_for
    str,  # trigger
    str | None,  # target_type
    int,  # attempt
    str,  # status
    datetime,  # started_at
    datetime | None,  # finished_at
    int | None,  # duration_ms
    int | None,  # http_status
    str | None,  # response_snippet
    str | None,  # error_message
    Any,  # result, a JSON value (None: JSON null, as SQLAlchemy's JSONB stored it)
    bool,  # will_retry
]
_ROW_ORDER = (
    "id", "chrono_id", "occurrence_id", "scheduled_for", "trigger", "target_type", "attempt",
    "status", "started_at", "finished_at", "duration_ms", "http_status", "response_snippet",
    "error_message", "result", "will_retry",
)  # fmt: skip
if tuple(_RUN_COLUMNS) != _ROW_ORDER:
    # _run_row builds tuples in this order; a changed table must change them too.
    raise RuntimeError(f"chrono_runs has columns {_RUN_COLUMNS}, RunRow has {_ROW_ORDER}")
#: An event's say on its chrono's last run: (instant, run id, status).
LastRun = tuple[datetime, str, str]

_RUNNING = RunStatus.RUNNING.value
_SKIPPED = RunStatus.SKIPPED.value


def _run_row(e: RunStarted | RunCompleted | RunSkipped) -> tuple[RunRow, LastRun]:
    """The row an event writes and what it says about its chrono's last run."""
    # The members of these StrEnums are the strings themselves: no ``.value`` per column.
    if isinstance(e, RunStarted):
        status, at = _RUNNING, e.started_at
        row: RunRow = (
            e.run_id, e.chrono_id, e.occurrence_id, e.scheduled_for, e.trigger,
            e.target_type, e.attempt, status, at,
            None, None, None, None, None, None, False,
        )  # fmt: skip
    elif isinstance(e, RunCompleted):
        status, at = e.status, e.started_at
        row = (
            e.run_id, e.chrono_id, e.occurrence_id, e.scheduled_for, e.trigger,
            e.target_type, e.attempt, status, at,
            e.finished_at, e.duration_ms, e.http_status, e.response_snippet, e.error_message,
            e.result, e.will_retry,
        )  # fmt: skip
    else:
        status, at = _SKIPPED, e.occurred_at
        many = f" ({e.coalesced} occurrences)" if e.coalesced > 1 else ""
        row = (
            e.run_id, e.chrono_id, e.occurrence_id, e.scheduled_for, e.trigger,
            None, e.attempt, status, at,
            at, 0, None, None, f"skipped: {e.reason}{many}",
            {"reason": e.reason, "coalesced": e.coalesced}, False,
        )  # fmt: skip
    return row, (at, e.run_id, status)


def _accepts(current: LastRun, new: LastRun) -> bool:
    """Whether a chrono's last run ``current`` gives way to ``new`` (_LAST_RUN_UPSERT's rule
    between two events of the batch)."""
    return current[1] == new[1] or current[0] <= new[0]


#: One row of _LAST_RUN_UPSERT's document: chrono, the event's place in the batch, its
#: instant and run, and the last run (instant, run, status) the batch leads to from it.
Candidate = tuple[str, int, datetime, str, datetime, str, str]


def _newest_candidates(events: dict[str, list[LastRun]]) -> list[Candidate]:
    """_LAST_RUN_UPSERT's rows: per chrono and event (in stream order), the event and the
    last run that applying the rest of the batch after it ends at.

    Whichever event the stored row accepts first is where the chain starts; from there on the
    outcome depends on the batch alone, so it is worked out here. An event is left out when an
    earlier one of the same run is at least as new: the stored row accepts that one whenever
    it accepts this, so this one is never the first.
    """
    candidates: list[Candidate] = []
    # Quadratic in one chrono's events in a batch: a few in practice, at most a batch's 500.
    for chrono_id, lasts in events.items():
        # Backwards: the chain from event k moves to the first later event k accepts, and
        # from there it goes where that event's chain goes.
        ends: list[LastRun] = list(lasts)
        for k in range(len(lasts) - 2, -1, -1):
            ends[k] = next(
                (ends[j] for j in range(k + 1, len(lasts)) if _accepts(lasts[k], lasts[j])),
                lasts[k],
            )
        for k, (at, run, _) in enumerate(lasts):
            if any(r == run and a >= at for a, r, _ in lasts[:k]):
                continue
            end_at, end_run, end_status = ends[k]
            candidates.append((chrono_id, k, at, run, end_at, end_status, end_run))
    return candidates


def _document(rows: list[Any]) -> str:
    return pydantic_core.to_json(rows).decode()


async def run_events(conn: AsyncConnection, batch: Batch) -> None:
    """RunStarted (a RUNNING row), RunCompleted (the attempt's outcome) and RunSkipped (a
    SKIPPED row saying why, and how many occurrences it stands for), mixed, in stream order.

    One statement for the run rows and one for the chronos' last runs, however the types
    interleave (runs in flight interleave starts and outcomes) and however large the batch.
    """
    # Per run, what the events leave one by one: the first row if all are RUNNING, otherwise
    # the last outcome (a RUNNING row never replaces an existing one). Against the stored row
    # _RUN_UPSERT applies the same rule.
    runs: dict[str, RunRow] = {}
    lasts: dict[str, list[LastRun]] = {}
    for e, _ in batch:
        row, last = _run_row(e)
        run, chrono = row[0], row[1]
        if last[2] != _RUNNING or run not in runs:
            runs[run] = row
        lasts.setdefault(chrono, []).append(last)
    await conn.exec_driver_sql(_RUN_UPSERT, (_document(list(runs.values())),))
    await conn.exec_driver_sql(_LAST_RUN_UPSERT, (_document(_newest_candidates(lasts)),))


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
