"""Reconcile's bounded fan-out makes a coroutine only once it has a place."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Coroutine
from typing import Any

from chronoflow_scheduler.reconcile import _bounded


async def test_cancelled_while_waiting_leaves_no_coroutine_made_and_unawaited() -> None:
    made = 0
    blocked = asyncio.Event()

    async def work() -> int:
        await blocked.wait()
        return 1

    def call() -> Coroutine[Any, Any, int]:
        nonlocal made
        made += 1
        return work()

    fan_out: asyncio.Task[list[int]] = asyncio.create_task(_bounded([call] * 5, 1))
    await asyncio.sleep(0.05)
    fan_out.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await fan_out
    # Only the call that got the one place was made; the four waiting never were (a
    # coroutine made up front and cancelled before its turn is never awaited).
    assert made == 1


async def test_every_call_runs_and_results_keep_their_order() -> None:
    async def value(n: int) -> int:
        await asyncio.sleep(0.001 * (5 - n))
        return n

    calls = [functools.partial(value, n) for n in range(5)]
    assert await _bounded(calls, 2) == [0, 1, 2, 3, 4]
