"""Bearer API keys (the api's keys), checked against their stored hashes, cached briefly; and
the FastAPI dependency that requires one."""

from __future__ import annotations

import time

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncEngine

from chronoflow_platform import apikeys
from chronoflow_platform.errors import ApiError

_TTL_SECONDS = 5.0
_MAX_REMEMBERED = 10_000
#: Where a service's lifespan keeps its :class:`KeyChecker` (``runtime.state``).
STATE_KEY = "keys"


class KeyChecker:
    """Answers whether a presented key is valid; a revocation takes effect within the TTL."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._known: dict[str, tuple[bool, float]] = {}

    async def is_valid(self, key: str) -> bool:
        """Look the key's hash up (or reuse a recent answer)."""
        digest = apikeys.hash_key(key)
        now = time.monotonic()
        cached = self._known.get(digest)
        if cached is not None and now - cached[1] < _TTL_SECONDS:
            return cached[0]
        valid = await apikeys.is_valid(self._engine, key)
        if len(self._known) > _MAX_REMEMBERED:
            self._known.clear()  # bound the memory an attacker can make us spend
        self._known[digest] = (valid, now)
        return valid


async def require_key(request: Request) -> None:
    """A route dependency: 401 unless ``Authorization: Bearer <key>`` holds a valid key
    (checked by the :class:`KeyChecker` in ``runtime.state["keys"]``)."""
    checker = request.app.state.runtime.state[STATE_KEY]
    assert isinstance(checker, KeyChecker)
    # Read straight from the request: a declared Header parameter costs a validation per call
    # (services document the bearer scheme in their OpenAPI instead).
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key or not await checker.is_valid(key.strip()):
        raise ApiError(
            401,
            "unauthorized",
            "a valid API key is required: Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )
