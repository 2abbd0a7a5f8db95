"""For tests that run several services in one process, each with its real lifespan."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI


@contextlib.asynccontextmanager
async def running(*apps: FastAPI) -> AsyncIterator[None]:
    """Start the apps' lifespans in the order given (NATS, consumers and loops included), and
    stop them in reverse, as a deployment starting and stopping their processes would."""
    async with contextlib.AsyncExitStack() as stack:
        for app in apps:
            await stack.enter_async_context(app.router.lifespan_context(app))
        yield
