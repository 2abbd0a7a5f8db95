"""The read side: chronos, runs, channels and functions from the Postgres read models."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chronoflow_api.schemas import ChannelOut, ChronoOut, FunctionOut, RunOut
from chronoflow_contracts.chrono import ChronoCreated
from chronoflow_platform.header_secrets import redact
from chronoflow_platform.schema import (
    channels,
    chrono_run_state,
    chrono_runs,
    chronos,
    function_state,
    functions,
)

_rs = chrono_run_state
# The scheduler's choice wins once it was made for the chrono's current version.
_next_run_at = case(
    (
        and_(_rs.c.next_run_version.is_not(None), _rs.c.next_run_version >= chronos.c.version),
        _rs.c.next_run_at,
    ),
    else_=chronos.c.next_run_at,
).label("next_run_at_effective")

_CHRONO_SELECT = select(
    chronos,
    _rs.c.last_run_at,
    _rs.c.last_run_status,
    _rs.c.last_run_id,
    _next_run_at,
).select_from(chronos.outerjoin(_rs, _rs.c.chrono_id == chronos.c.id))


def _chrono(row: Any) -> ChronoOut:
    m = dict(row._mapping)
    m["next_run_at"] = m.pop("next_run_at_effective")
    m["headers"] = redact(m["headers"])
    return ChronoOut.model_validate(m)


def chrono_as_created(event: ChronoCreated, version: int) -> ChronoOut:
    """What the read model holds right after ``event`` was projected as ``version``.

    Lets a create answer without reading the row back; a test keeps it equal to the read.
    Every value comes from the event, validated when it was built, so none is validated again
    (the nested models are shared: they are immutable).
    """
    d = event.definition
    return ChronoOut.model_construct(
        id=event.chrono_id,
        **{name: value for name, value in d if name != "headers"},
        headers=redact(d.headers),
        last_run_at=None,
        last_run_status=None,
        last_run_id=None,
        next_run_at=event.next_run_at if d.is_active else None,
        created_at=event.occurred_at,
        updated_at=event.occurred_at,
        version=version,
    )


async def get_chrono(engine: AsyncEngine, chrono_id: str) -> ChronoOut | None:
    """One chrono, or None."""
    async with engine.connect() as conn:
        row = (await conn.execute(_CHRONO_SELECT.where(chronos.c.id == chrono_id))).first()
    return _chrono(row) if row is not None else None


async def get_chrono_row(engine: AsyncEngine, chrono_id: str) -> dict[str, Any] | None:
    """The raw stored row (sealed header values included): what a PATCH merges into."""
    async with engine.connect() as conn:
        row = (await conn.execute(select(chronos).where(chronos.c.id == chrono_id))).first()
    return dict(row._mapping) if row is not None else None


async def list_chronos(
    engine: AsyncEngine,
    *,
    skip: int,
    take: int,
    cursor: str | None,
    is_active: bool | None,
    target_type: str | None,
    name: str | None,
) -> tuple[list[ChronoOut], int, str | None]:
    """A page of chronos, newest first (ids are time-ordered), with the total matching."""
    conds: list[ColumnElement[bool]] = []
    if is_active is not None:
        conds.append(chronos.c.is_active.is_(is_active))
    if target_type is not None:
        conds.append(chronos.c.target_type == target_type)
    if name:
        escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conds.append(chronos.c.name.ilike(f"%{escaped}%", escape="\\"))
    where = and_(*conds) if conds else None
    query: Select[Any] = _CHRONO_SELECT
    count = select(func.count()).select_from(chronos)
    if where is not None:
        query = query.where(where)
        count = count.where(where)
    # A cursor continues a keyset scan (cheap at any depth); skip is for small offsets.
    query = query.where(chronos.c.id < cursor) if cursor else query.offset(skip)
    query = query.order_by(chronos.c.id.desc()).limit(take)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
        total = int(await conn.scalar(count) or 0)
    items = [_chrono(r) for r in rows]
    next_cursor = items[-1].id if len(items) == take else None
    return items, total, next_cursor


async def list_runs(
    engine: AsyncEngine, chrono_id: str, *, skip: int, take: int
) -> tuple[list[RunOut], int]:
    """A chrono's runs, newest first."""
    query = (
        select(chrono_runs)
        .where(chrono_runs.c.chrono_id == chrono_id)
        .order_by(
            chrono_runs.c.scheduled_for.desc(),
            chrono_runs.c.attempt.desc(),
            chrono_runs.c.id.desc(),
        )
        .offset(skip)
        .limit(take)
    )
    count = (
        select(func.count()).select_from(chrono_runs).where(chrono_runs.c.chrono_id == chrono_id)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
        total = int(await conn.scalar(count) or 0)
    return [RunOut.model_validate(dict(r._mapping)) for r in rows], total


async def get_run(engine: AsyncEngine, run_id: str) -> RunOut | None:
    """One run, or None."""
    async with engine.connect() as conn:
        row = (await conn.execute(select(chrono_runs).where(chrono_runs.c.id == run_id))).first()
    return RunOut.model_validate(dict(row._mapping)) if row is not None else None


async def get_channel(engine: AsyncEngine, channel_id: str) -> ChannelOut | None:
    """One channel, or None."""
    async with engine.connect() as conn:
        row = (await conn.execute(select(channels).where(channels.c.id == channel_id))).first()
    return ChannelOut.model_validate(dict(row._mapping)) if row is not None else None


async def list_channels(
    engine: AsyncEngine, *, skip: int, take: int
) -> tuple[list[ChannelOut], int]:
    """A page of channels, newest first."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(channels).order_by(channels.c.id.desc()).offset(skip).limit(take)
            )
        ).all()
        total = int(await conn.scalar(select(func.count()).select_from(channels)) or 0)
    return [ChannelOut.model_validate(dict(r._mapping)) for r in rows], total


_FUNCTION_SELECT = select(functions, function_state.c.state).select_from(
    functions.outerjoin(function_state, function_state.c.function_id == functions.c.id)
)


def _function(row: Any, *, with_code: bool) -> FunctionOut:
    m = dict(row._mapping)
    m["state"] = m.get("state") or {}
    if not with_code:
        m["code"] = None
    return FunctionOut.model_validate(m)


async def get_function(engine: AsyncEngine, function_id: str) -> FunctionOut | None:
    """One function with its code and state, or None."""
    async with engine.connect() as conn:
        row = (await conn.execute(_FUNCTION_SELECT.where(functions.c.id == function_id))).first()
    return _function(row, with_code=True) if row is not None else None


async def list_functions(
    engine: AsyncEngine, *, skip: int, take: int
) -> tuple[list[FunctionOut], int]:
    """A page of functions (without code), newest first."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                _FUNCTION_SELECT.order_by(functions.c.id.desc()).offset(skip).limit(take)
            )
        ).all()
        total = int(await conn.scalar(select(func.count()).select_from(functions)) or 0)
    return [_function(r, with_code=False) for r in rows], total


async def exists(engine: AsyncEngine, kind: str, ident: str) -> bool:
    """Whether a channel or function with this id is in the read model."""
    table = {"channel": channels, "function": functions}[kind]
    async with engine.connect() as conn:
        return await conn.scalar(select(table.c.id).where(table.c.id == ident)) is not None
