"""Shutdown ends every background loop, even one that missed a cancel."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from prometheus_client import CollectorRegistry

from chronoflow_platform.service import Runtime


def _runtime() -> Runtime:
    # stop_tasks touches only the tasks: no connection is needed.
    return Runtime(
        name="test",
        settings=cast(Any, None),
        nc=cast(Any, None),
        js=cast(Any, None),
        registry=CollectorRegistry(),
    )


async def test_a_loop_that_swallowed_one_cancel_is_cancelled_again() -> None:
    swallowed = asyncio.Event()

    async def loop() -> None:
        # What Python 3.11's wait_for does when a reply races the cancel: the first
        # CancelledError never reaches the loop, which goes on to its next await.
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed.is_set():
                    raise
                swallowed.set()

    runtime = _runtime()
    runtime.spawn(loop(), name="stubborn")
    await asyncio.sleep(0)
    await runtime.stop_tasks()
    assert swallowed.is_set()
    assert all(task.cancelled() for task in runtime.tasks)


async def test_a_crashed_loop_does_not_stop_the_others_from_ending() -> None:
    async def crash() -> None:
        raise RuntimeError("boom")

    runtime = _runtime()
    runtime.spawn(crash(), name="crash")
    runtime.spawn(asyncio.sleep(3600), name="sleeper")
    await asyncio.sleep(0)
    await runtime.stop_tasks()
    crashed, sleeper = runtime.tasks
    assert isinstance(crashed.exception(), RuntimeError)
    assert sleeper.cancelled()
