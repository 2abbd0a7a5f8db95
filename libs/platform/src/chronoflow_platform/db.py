"""The async SQLAlchemy engine (asyncpg) and programmatic Alembic migrations."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def create_engine(url: str, *, pool_size: int = 10, synchronous_commit: bool = True) -> AsyncEngine:
    """An asyncpg-backed engine; ``pool_pre_ping`` so a restarted Postgres is survived.

    ``synchronous_commit=False`` is for writers whose data can be rebuilt (the projector):
    a commit is visible at once, only its WAL flush is deferred.
    """
    settings = {} if synchronous_commit else {"synchronous_commit": "off"}
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args={"server_settings": settings},
    )


def alembic_config(url: str) -> Config:
    """Alembic configuration pointing at the packaged migrations, no alembic.ini needed."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str) -> None:
    """Bring the database schema to the newest revision (safe to run on every start).

    Concurrent runs (several replicas starting at once) serialize on an advisory lock taken
    inside the migration transaction (see ``migrations/env.py``).
    """
    command.upgrade(alembic_config(url), "head")


async def migrate_async(url: str) -> None:
    """:func:`migrate` from async code (Alembic's env runs its own event loop in a thread)."""
    await asyncio.to_thread(migrate, url)


async def ping(engine: AsyncEngine) -> None:
    """Raise if the database cannot answer a trivial query."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
