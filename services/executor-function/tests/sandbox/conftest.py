"""Sandbox fixtures: a worker pool, a local HTTP server on 127.0.0.1 and a recording bridge."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from chronoflow_executor_function.sandbox import FunctionResult, PoolConfig, SandboxPool
from chronoflow_executor_function.sandbox.testing import (
    Harness,
    LocalBridge,
    LocalServer,
    dump,
    start_local_server,
)


@pytest.fixture(scope="session")
async def http_server() -> AsyncIterator[LocalServer]:
    """A local HTTP server on 127.0.0.1 and a free port."""
    server, runner = await start_local_server()
    yield server
    await runner.cleanup()


@pytest.fixture(scope="session")
async def http_session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def bridge(http_session: aiohttp.ClientSession, http_server: LocalServer) -> LocalBridge:
    """A fresh recording bridge per test."""
    return LocalBridge(http_session, http_server.base)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wasm-cache")


@pytest.fixture(scope="session")
async def pool(cache_dir: Path) -> AsyncIterator[SandboxPool]:
    """The shared pool (two workers, as on the 2-core box)."""
    async with SandboxPool(PoolConfig(cache_dir=cache_dir, size=2)) as sandbox_pool:
        yield sandbox_pool


PoolFactory = Callable[..., Awaitable[SandboxPool]]


@pytest.fixture
async def make_pool(cache_dir: Path) -> AsyncIterator[PoolFactory]:
    """Private pools for tests that kill workers; closed at the end of the test."""
    pools: list[SandboxPool] = []

    async def factory(**options: Any) -> SandboxPool:
        new_pool = SandboxPool(PoolConfig(cache_dir=cache_dir, **options))
        await new_pool.start()
        pools.append(new_pool)
        return new_pool

    yield factory
    for created in pools:
        await created.close()


@pytest.fixture
def sandbox(pool: SandboxPool, http_server: LocalServer, bridge: LocalBridge) -> Harness:
    http_server.requests.clear()
    return Harness(pool=pool, server=http_server, bridge=bridge)


@pytest.fixture
def show() -> Callable[[FunctionResult], str]:
    return dump
