"""Serve an ASGI app in-process on a loopback port: the simulator (or a webhook sink) in tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from chronoflow_waha_simulator.app import create_app
from chronoflow_waha_simulator.settings import SimulatorSettings
from chronoflow_waha_simulator.simulator import Simulator

_START_TIMEOUT_SECONDS = 10.0


@contextlib.asynccontextmanager
async def serve_app(app: FastAPI, *, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Run ``app`` with uvicorn in this event loop; yields its base URL (port 0: a free one)."""
    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, access_log=False, lifespan="on", ws="none"
    )
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve(), name="uvicorn")
    try:
        async with asyncio.timeout(_START_TIMEOUT_SECONDS):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.01)
        bound = server.servers[0].sockets[0].getsockname()
        yield f"http://{host}:{bound[1]}"
    finally:
        server.should_exit = True
        await task


@dataclass(frozen=True)
class RunningSimulator:
    """A simulator serving on ``base_url``; ``state`` is its in-memory state for assertions."""

    base_url: str
    app: FastAPI
    state: Simulator


@contextlib.asynccontextmanager
async def run_simulator(settings: SimulatorSettings) -> AsyncIterator[RunningSimulator]:
    """Start a simulator in this event loop (``http_port=0`` for a free port) and stop it after."""
    app = create_app(settings)
    async with serve_app(app, host=settings.http_host, port=settings.http_port) as base_url:
        yield RunningSimulator(base_url=base_url, app=app, state=app.state.simulator)
