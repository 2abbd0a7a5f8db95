"""Concurrent reads by key, answered by one batched read."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Coalescer(Generic[K, V]):
    """Reads asked for in the same moment go out as one batched ``read`` of their keys.

    ``read`` answers a list of keys with what it found; a key it leaves out reads as None. A
    failed read fails every reader of that batch (each retries on its own). The reads that
    arrive while a batch is in flight make up the next one, so batches grow with the load.
    """

    def __init__(
        self,
        read: Callable[[list[K]], Awaitable[Mapping[K, V]]],
        *,
        max_batch: int,
        gather: float,
        name: str,
    ) -> None:
        self._read = read
        self._max_batch = max_batch
        self._gather = gather
        self._name = name
        self._waiting: dict[K, list[asyncio.Future[V | None]]] = {}
        self._flusher: asyncio.Task[None] | None = None

    async def get(self, key: K) -> V | None:
        """What the batched read finds for ``key``."""
        done: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(done)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name=self._name)
        return await done

    async def close(self) -> None:
        """Stop reading (reads still waiting are left unanswered)."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher

    async def _flush(self) -> None:
        # Let the rest of a burst queue up behind the first read.
        await asyncio.sleep(self._gather)
        while self._waiting:
            keys = list(self._waiting)[: self._max_batch]
            waiters = {key: self._waiting.pop(key) for key in keys}
            try:
                found = await self._read(keys)
            except Exception as exc:  # every waiter gets the error and retries on its own
                for futures in waiters.values():
                    for f in futures:
                        if not f.done():
                            f.set_exception(exc)
                continue
            for key, futures in waiters.items():
                for f in futures:
                    if not f.done():
                        f.set_result(found.get(key))
