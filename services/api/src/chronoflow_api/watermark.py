"""Read-your-writes: wait until the projector has applied a given stream sequence.

The projector announces each commit on a core NATS subject; the api keeps the highest
sequence per stream and resolves exactly the waiters it satisfies (a heap per stream, so an
announcement wakes no request that still has to wait). Announcements can be missed (the api
started later, a reconnect), so while anyone waits, one background loop re-reads the
checkpoints from Postgres now and then.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import logging

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from sqlalchemy.ext.asyncio import AsyncEngine

from chronoflow_api.projector.consumer import load_checkpoint
from chronoflow_contracts import names

log = logging.getLogger(__name__)

_RECHECK_SECONDS = 0.25

# (sequence awaited, tie-breaker, loop time it began waiting, future resolved once applied)
_Waiter = tuple[int, int, float, asyncio.Future[None]]


class ProjectionWatermark:
    """The highest applied sequence per stream, as far as this process has heard."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._applied: dict[str, int] = {}
        self._waiters: dict[str, list[_Waiter]] = {}
        self._order = itertools.count()
        self._sub: Subscription | None = None
        self._recheck: asyncio.Task[None] | None = None

    async def start(self, nc: NatsClient) -> None:
        """Listen to the projector's announcements; re-read checkpoints for missed ones."""
        self._sub = await nc.subscribe(names.PROJECTION_APPLIED_SUBJECT, cb=self._on_applied)
        self._recheck = asyncio.create_task(self._recheck_loop(), name="watermark-recheck")

    async def stop(self) -> None:
        """Stop listening."""
        if self._recheck is not None:
            self._recheck.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recheck
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()

    async def _on_applied(self, msg: Msg) -> None:
        data = json.loads(msg.data)
        self._advance(str(data["stream"]), int(data["seq"]))

    def _advance(self, stream: str, seq: int) -> None:
        if seq <= self._applied.get(stream, 0):
            return
        self._applied[stream] = seq
        waiters = self._waiters.get(stream)
        while waiters and waiters[0][0] <= seq:
            future = heapq.heappop(waiters)[3]
            if not future.done():
                future.set_result(None)

    async def _recheck_loop(self) -> None:
        while True:
            await asyncio.sleep(_RECHECK_SECONDS)
            # Only a waiter left waiting that long suggests a missed announcement; the ones
            # just begun will be answered by the next one (lowest sequence = longest waiting).
            overdue = asyncio.get_running_loop().time() - _RECHECK_SECONDS
            streams = [
                stream
                for stream, waiters in self._waiters.items()
                if waiters and waiters[0][2] <= overdue
            ]
            if not streams:
                continue
            try:
                async with self._engine.connect() as conn:
                    for stream in streams:
                        self._advance(stream, await load_checkpoint(conn, stream))
            except Exception:  # Postgres unreachable: waiters time out with a clear 503
                log.warning("cannot re-read projection checkpoints", exc_info=True)

    async def wait_for(self, stream: str, seq: int, *, limit: float) -> bool:
        """True once ``seq`` of ``stream`` is in the read models; False if ``limit`` passed."""
        if self._applied.get(stream, 0) >= seq:
            return True
        loop = asyncio.get_running_loop()
        waiter: _Waiter = (seq, next(self._order), loop.time(), loop.create_future())
        waiters = self._waiters.setdefault(stream, [])
        heapq.heappush(waiters, waiter)
        try:
            async with asyncio.timeout(limit):
                await waiter[3]
        except TimeoutError:
            return False
        finally:
            if waiter[3].cancelled():
                # Timed out (projector down or slow) or the request went away: drop the waiter
                # so that nothing keeps polling for it.
                with contextlib.suppress(ValueError):
                    waiters.remove(waiter)
                    heapq.heapify(waiters)
        return True
