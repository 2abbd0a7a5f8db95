"""pytest fixtures: a private nats-server and a private PostgreSQL per test session.

Loaded from the repository's root ``conftest.py``. Both listen on free loopback ports and keep
their data in a temporary directory that is removed at the end of the session.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chronoflow_contracts import names
from chronoflow_devstack.embedded import NatsServer, Postgres, create_database
from chronoflow_platform import db, jetstream
from chronoflow_platform.schema import metadata

TEST_DUPLICATE_WINDOW = 120.0


@pytest.fixture(scope="session")
def stack_dir() -> Iterator[Path]:
    """A session-private directory for server data (0755 so the postgres user can reach it)."""
    path = Path(tempfile.mkdtemp(prefix="chronoflow-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def nats_server(stack_dir: Path) -> Iterator[NatsServer]:
    """A real nats-server with JetStream, private to this test session."""
    server = NatsServer(stack_dir / "nats", log_file=stack_dir / "nats.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server(stack_dir: Path) -> Iterator[Postgres]:
    """A real PostgreSQL, private to this test session."""
    server = Postgres(stack_dir / "pg", durable=False, log_file=stack_dir / "pg.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def database_url(postgres_server: Postgres) -> str:
    """A migrated database for this session (migrations are exercised on every run)."""
    name = f"chronoflow_test_{os.getpid()}"
    await create_database(postgres_server.url(), name)
    url = postgres_server.url(name)
    await db.migrate_async(url)
    return url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the session database, disposed after the test."""
    eng = db.create_engine(database_url, pool_size=5)
    yield eng
    await eng.dispose()


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[NatsClient]:
    """A NATS connection for one test."""
    client = await jetstream.connect(nats_server.url, name="pytest")
    yield client
    await client.drain()


@pytest.fixture
async def js(nc: NatsClient) -> JetStreamContext:
    """JetStream with ChronoFlow's streams provisioned."""
    ctx = nc.jetstream()
    await jetstream.provision_streams(ctx, duplicate_window=TEST_DUPLICATE_WINDOW)
    return ctx


@pytest.fixture
async def clean_stack(nc: NatsClient, engine: AsyncEngine) -> JetStreamContext:
    """Empty streams and tables: for tests that compare whole projections or count messages."""
    ctx = nc.jetstream()
    for name in (
        names.EVENTS_STREAM,
        names.RUNS_STREAM,
        names.WORK_STREAM,
        names.SCHEDULES_STREAM,
    ):
        with contextlib.suppress(NotFoundError):
            await ctx.delete_stream(name)
    await jetstream.provision_streams(ctx, duplicate_window=TEST_DUPLICATE_WINDOW)
    async with engine.begin() as conn:
        tables = ", ".join(t.name for t in metadata.sorted_tables)
        await conn.execute(text(f"TRUNCATE {tables}"))
    return ctx
