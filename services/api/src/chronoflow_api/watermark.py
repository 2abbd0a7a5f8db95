"""Read-your-writes: wait until the projector has applied a given stream sequence.

The projector announces each commit on a core NATS subject; the api keeps the highest
sequence per stream and wakes waiters. Announcements can be missed (the api started later, a
reconnect), so a waiter also re-reads the checkpoint from Postgres now and then.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from sqlalchemy.ext.asyncio import AsyncEngine

from chronoflow_api.projector.consumer import load_checkpoint
from chronoflow_contracts import names

_RECHECK_SECONDS = 0.25


class ProjectionWatermark:
    """The highest applied sequence per stream, as far as this process has heard."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._applied: dict[str, int] = {}
        self._changed = asyncio.Condition()
        self._sub: Subscription | None = None

    async def start(self, nc: NatsClient) -> None:
        """Listen to the projector's announcements."""
        self._sub = await nc.subscribe(names.PROJECTION_APPLIED_SUBJECT, cb=self._on_applied)

    async def stop(self) -> None:
        """Stop listening."""
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()

    async def _on_applied(self, msg: Msg) -> None:
        data = json.loads(msg.data)
        await self._advance(str(data["stream"]), int(data["seq"]))

    async def _advance(self, stream: str, seq: int) -> None:
        if seq > self._applied.get(stream, 0):
            self._applied[stream] = seq
            async with self._changed:
                self._changed.notify_all()

    async def wait_for(self, stream: str, seq: int, *, limit: float) -> bool:
        """True once ``seq`` of ``stream`` is in the read models; False if ``limit`` passed."""
        try:
            async with asyncio.timeout(limit):
                while True:
                    async with self._changed:
                        if self._applied.get(stream, 0) >= seq:
                            return True
                        try:
                            await asyncio.wait_for(self._changed.wait(), _RECHECK_SECONDS)
                            continue
                        except TimeoutError:
                            pass
                    async with self._engine.connect() as conn:
                        await self._advance(stream, await load_checkpoint(conn, stream))
        except TimeoutError:
            return False
