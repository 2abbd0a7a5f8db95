"""API keys: long random tokens, stored only as their sha256."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from chronoflow_contracts import new_id, utc_now
from chronoflow_platform.schema import api_keys

KEY_PREFIX = "cf_"


def generate_key() -> str:
    """A new key: 256 bits of randomness, so a fast hash is enough to store it."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """What the database keeps of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


async def create_key(engine: AsyncEngine, name: str, key: str | None = None) -> tuple[str, str]:
    """Store a key (a given one, e.g. a fixed development key, or a new one); idempotent.

    Returns ``(id, key)``. The clear key is shown once, never stored.
    """
    key = key or generate_key()
    digest = hash_key(key)
    async with engine.begin() as conn:
        await conn.execute(
            insert(api_keys)
            .values(id=new_id(), name=name, key_hash=digest, prefix=key[:8], created_at=utc_now())
            .on_conflict_do_update(index_elements=["key_hash"], set_={"revoked_at": None})
        )
        key_id = await conn.scalar(select(api_keys.c.id).where(api_keys.c.key_hash == digest))
    assert key_id is not None
    return str(key_id), key


async def revoke_key(engine: AsyncEngine, key_id: str) -> bool:
    """Revoke a key by id; False if there is no such active key."""
    async with engine.begin() as conn:
        result = await conn.execute(
            update(api_keys)
            .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=utc_now())
        )
    return bool(result.rowcount)


async def is_valid(engine: AsyncEngine, key: str) -> bool:
    """Whether ``key`` is a stored, unrevoked key."""
    async with engine.connect() as conn:
        found = await conn.scalar(
            select(api_keys.c.id).where(
                api_keys.c.key_hash == hash_key(key), api_keys.c.revoked_at.is_(None)
            )
        )
    return found is not None
