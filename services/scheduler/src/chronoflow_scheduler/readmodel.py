"""What the scheduler reads from the Postgres read models (kept by the projector)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from chronoflow_contracts import utc_now
from chronoflow_contracts.chrono import ChronoDefinition
from chronoflow_contracts.runs import RunStatus
from chronoflow_contracts.schedule import NormalizedSchedule
from chronoflow_platform.schema import chrono_run_state, chrono_runs, chronos
from chronoflow_scheduler.coalesce import Coalescer
from chronoflow_scheduler.domain import definition_from_row


@dataclass(frozen=True)
class ChronoRow:
    """A chrono as the read model shows it; ``version`` is its last event's stream sequence."""

    id: str
    version: int
    is_active: bool
    definition: ChronoDefinition


@dataclass(frozen=True)
class ActiveChrono:
    """What reconcile needs of an active chrono."""

    id: str
    version: int
    schedule: NormalizedSchedule
    #: The api's first occurrence for the last definition change.
    next_run_at: datetime | None
    #: The scheduler's last announced occurrence, and the version it was announced for.
    armed_at: datetime | None
    armed_version: int | None


@dataclass(frozen=True)
class ChronoState:
    """Version and activity only (for orphan checks)."""

    id: str
    version: int
    is_active: bool


class ReadModel:
    """Queries, with concurrent single-row loads coalesced into one ``IN (...)`` query."""

    def __init__(self, engine: AsyncEngine, *, max_batch: int = 500) -> None:
        self._engine = engine
        # A millisecond's wait lets the rest of a burst queue up behind the first load.
        self._loads: Coalescer[str, ChronoRow] = Coalescer(
            self.rows, max_batch=max_batch, gather=0.001, name="readmodel-flush"
        )

    async def load(self, chrono_id: str) -> ChronoRow | None:
        """One chrono row (None if the read model does not have it)."""
        return await self._loads.get(chrono_id)

    async def wait_for(
        self,
        chrono_id: str,
        version: int,
        *,
        within: float,
        heartbeat: Callable[[], Awaitable[None]],
        heartbeat_every: float,
    ) -> ChronoRow | None:
        """The chrono's row once the projector has applied ``version`` (None after ``within`` s).

        The projector usually is there already; when it lags, this re-reads with backoff and
        calls ``heartbeat`` now and then (to keep a JetStream message in hand meanwhile).
        """
        deadline = time.monotonic() + within
        beat = time.monotonic()
        pause = 0.02
        while True:
            row = await self.load(chrono_id)
            if row is not None and row.version >= version:
                return row
            now = time.monotonic()
            if now >= deadline:
                return None
            if now - beat >= heartbeat_every:
                await heartbeat()
                beat = now
            await asyncio.sleep(min(pause, max(deadline - now, 0.0)))
            pause = min(pause * 2, 0.5)

    async def close(self) -> None:
        """Stop the loader (pending loads are left unanswered)."""
        await self._loads.close()

    async def rows(self, ids: Sequence[str]) -> dict[str, ChronoRow]:
        """Several chrono rows at once."""
        async with self._engine.connect() as conn:
            result = await conn.execute(select(chronos).where(chronos.c.id.in_(list(ids))))
            found = result.mappings().all()
        return {
            r["id"]: ChronoRow(
                id=r["id"],
                version=int(r["version"]),
                is_active=bool(r["is_active"]),
                definition=definition_from_row(r),
            )
            for r in found
        }

    async def states(self, ids: Sequence[str]) -> dict[str, ChronoState]:
        """Version and activity of several chronos."""
        query = select(chronos.c.id, chronos.c.version, chronos.c.is_active).where(
            chronos.c.id.in_(list(ids))
        )
        async with self._engine.connect() as conn:
            found = (await conn.execute(query)).all()
        return {r.id: ChronoState(r.id, int(r.version), bool(r.is_active)) for r in found}

    async def has_running(self, chrono_id: str, *, stale_after: float) -> bool:
        """Whether a recent run of the chrono is still RUNNING."""
        since = utc_now() - timedelta(seconds=stale_after)
        query = (
            select(chrono_runs.c.id)
            .where(
                chrono_runs.c.chrono_id == chrono_id,
                chrono_runs.c.status == RunStatus.RUNNING.value,
                chrono_runs.c.started_at >= since,
            )
            .limit(1)
        )
        async with self._engine.connect() as conn:
            return (await conn.scalar(query)) is not None

    async def active_page(self, after: str, limit: int) -> list[ActiveChrono]:
        """Active chronos with ids after ``after``, in id order (keyset pagination)."""
        query = (
            select(
                chronos.c.id,
                chronos.c.version,
                chronos.c.schedule,
                chronos.c.next_run_at,
                chrono_run_state.c.next_run_at.label("armed_at"),
                chrono_run_state.c.next_run_version,
            )
            .select_from(
                chronos.outerjoin(chrono_run_state, chrono_run_state.c.chrono_id == chronos.c.id)
            )
            .where(chronos.c.is_active.is_(True), chronos.c.id > after)
            .order_by(chronos.c.id)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            found = (await conn.execute(query)).all()
        return [
            ActiveChrono(
                id=r.id,
                version=int(r.version),
                schedule=NormalizedSchedule.model_validate(r.schedule),
                next_run_at=r.next_run_at,
                armed_at=r.armed_at,
                armed_version=r.next_run_version,
            )
            for r in found
        ]
