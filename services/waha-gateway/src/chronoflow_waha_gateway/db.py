"""Channels from the read model: which session a channel sends with, which channels a session
serves."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from chronoflow_platform.schema import channels

#: How long a channel's session is remembered (a channel edited to another session is
#: followed within this delay).
SESSION_CACHE_S = 5.0


@dataclass(frozen=True, slots=True)
class ChannelRow:
    """One WAHA channel as the read model holds it."""

    id: str
    session: str
    status: str


class ChannelDirectory:
    """Reads the ``channels`` read model; remembers channel sessions briefly."""

    def __init__(self, engine: AsyncEngine, *, clock: Callable[[], float]) -> None:
        self._engine = engine
        self._clock = clock
        self._sessions: dict[str, tuple[str | None, float]] = {}
        self._loading: dict[str, asyncio.Task[str | None]] = {}

    async def session_of(self, channel_id: str) -> str | None:
        """The session of a channel; None if there is no such channel."""
        cached = self._sessions.get(channel_id)
        if cached is not None and self._clock() - cached[1] < SESSION_CACHE_S:
            return cached[0]
        # Many sends for one channel arrive together: one query answers them all.
        loading = self._loading.get(channel_id)
        if loading is None:
            loading = asyncio.get_running_loop().create_task(self._load(channel_id))
            self._loading[channel_id] = loading
            loading.add_done_callback(lambda _: self._loading.pop(channel_id, None))
        return await asyncio.shield(loading)

    async def _load(self, channel_id: str) -> str | None:
        now = self._clock()
        async with self._engine.connect() as conn:
            config = await conn.scalar(
                select(channels.c.config).where(
                    channels.c.id == channel_id, channels.c.provider == "WAHA"
                )
            )
        session = _session(config) if config is not None else None
        if len(self._sessions) > 10_000:
            self._sessions.clear()
        self._sessions[channel_id] = (session, now)
        return session

    async def status_of(self, channel_id: str) -> str | None:
        """A channel's status in the read model; None if it is not there (yet)."""
        async with self._engine.connect() as conn:
            status = await conn.scalar(select(channels.c.status).where(channels.c.id == channel_id))
        return None if status is None else str(status)

    async def channels_of(self, session: str) -> list[ChannelRow]:
        """Every WAHA channel whose ``config.session`` is ``session``."""
        return [row for row in await self.all() if row.session == session]

    async def all(self) -> list[ChannelRow]:
        """Every WAHA channel."""
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(channels.c.id, channels.c.config, channels.c.status)
                    .where(channels.c.provider == "WAHA")
                    .order_by(channels.c.id)
                )
            ).all()
        return [ChannelRow(row.id, _session(row.config), row.status) for row in rows]


def _session(config: object) -> str:
    # ChannelConfig's default: a channel stored without one uses WAHA's "default" session.
    if isinstance(config, dict) and isinstance(config.get("session"), str):
        return str(config["session"])
    return "default"
