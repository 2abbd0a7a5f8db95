"""Postgres: the function's current version and state, and the state's compare-and-set write.

``functions`` and ``chrono_runs`` are the projector's read models (read only here);
``function_state`` belongs to this service, written with compare-and-set on ``revision``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from chronoflow_contracts import utc_now
from chronoflow_contracts.functions import FunctionLimits
from chronoflow_contracts.runs import RunStatus
from chronoflow_executor_function import domain
from chronoflow_executor_function.sandbox import JsonValue
from chronoflow_platform.schema import chrono_runs, function_state, functions

log = logging.getLogger(__name__)

_TERMINAL = (RunStatus.SUCCESS.value, RunStatus.FAILED.value, RunStatus.TIMEOUT.value)


@dataclass(frozen=True, slots=True)
class StoredFunction:
    """A function's current version as the read model holds it, with its stored state."""

    id: str
    name: str
    code: str
    limits: FunctionLimits
    function_version: int
    checksum: str
    channel_id: str | None
    state: dict[str, Any] = field(default_factory=dict)
    revision: int = 0


@dataclass(frozen=True, slots=True)
class StateWrite:
    """A saved state change: the new revision, and the keys the run wrote that a concurrent
    run had changed since this run read them (this run's value replaced the other's)."""

    revision: int
    overwritten: tuple[str, ...] = ()


class StateConflictError(RuntimeError):
    """The state could not be saved: other runs kept winning the compare-and-set."""


async def load_function(engine: AsyncEngine, function_id: str) -> StoredFunction | None:
    """The function's current version and state, or None if there is no such function."""
    query = (
        select(functions, function_state.c.state, function_state.c.revision)
        .select_from(
            functions.outerjoin(function_state, function_state.c.function_id == functions.c.id)
        )
        .where(functions.c.id == function_id)
    )
    async with engine.connect() as conn:
        row = (await conn.execute(query)).first()
    if row is None:
        return None
    m = row._mapping
    return StoredFunction(
        id=m["id"],
        name=m["name"],
        code=m["code"],
        limits=FunctionLimits.model_validate(m["limits"]),
        function_version=m["function_version"],
        checksum=m["checksum"],
        channel_id=m["channel_id"],
        state=dict(m["state"] or {}),
        revision=int(m["revision"] or 0),
    )


async def run_finished(engine: AsyncEngine, run_id: str) -> bool:
    """Whether history already shows this attempt finished (a redelivery after its outcome)."""
    async with engine.connect() as conn:
        status = await conn.scalar(select(chrono_runs.c.status).where(chrono_runs.c.id == run_id))
    return status in _TERMINAL


async def save_state(
    engine: AsyncEngine,
    function_id: str,
    upserts: Mapping[str, JsonValue],
    deletes: Iterable[str],
    *,
    base: Mapping[str, Any],
    attempts: int,
) -> StateWrite:
    """Apply a run's changed keys onto the latest stored state.

    Compare-and-set: read ``(state, revision)``, merge, write only where the revision is still
    the one read; if another run wrote in between, read again and re-apply. Concurrent runs
    therefore never lose each other's writes; a key both wrote ends with the later write, and
    ``overwritten`` names such keys (``base``, the state the run started from, tells).
    A lost connection counts as a failed attempt too: each attempt is its own transaction.
    """
    deleted = tuple(deletes)
    delay = 0.005
    for attempt in range(1, attempts + 1):
        try:
            written = await _try_save(engine, function_id, upserts, deleted, base)
        except (OperationalError, DBAPIError, OSError) as exc:
            if attempt == attempts:
                raise
            log.warning("saving function state failed (attempt %d): %s", attempt, exc)
            written = None
        if written is not None:
            return written
        # Jittered, so runs that collided do not collide again in lockstep.
        await asyncio.sleep(delay * (0.5 + random.random()))  # noqa: S311 - not cryptographic
        delay = min(delay * 2, 0.5)
    raise StateConflictError(
        f"ctx.state could not be saved: {attempts} compare-and-set attempts lost to other runs"
    )


async def _try_save(
    engine: AsyncEngine,
    function_id: str,
    upserts: Mapping[str, JsonValue],
    deletes: tuple[str, ...],
    base: Mapping[str, Any],
) -> StateWrite | None:
    now = utc_now()
    async with engine.begin() as conn:
        row = (
            await conn.execute(
                select(function_state.c.state, function_state.c.revision).where(
                    function_state.c.function_id == function_id
                )
            )
        ).first()
        if row is None:
            created = await conn.execute(
                insert(function_state)
                .values(
                    function_id=function_id,
                    state=domain.merge_state({}, upserts, deletes),
                    revision=1,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=[function_state.c.function_id])
            )
            return StateWrite(1) if created.rowcount == 1 else None
        revision = int(row.revision)
        latest: Mapping[str, Any] = row.state or {}
        changed = await conn.execute(
            update(function_state)
            .where(
                function_state.c.function_id == function_id,
                function_state.c.revision == revision,
            )
            .values(
                state=domain.merge_state(latest, upserts, deletes),
                revision=revision + 1,
                updated_at=now,
            )
        )
        if changed.rowcount != 1:
            return None
        return StateWrite(revision + 1, domain.overwritten_keys(base, latest, [*upserts, *deletes]))
