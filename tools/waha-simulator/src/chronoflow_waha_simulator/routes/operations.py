"""``GET /ping`` (WAHA's, no key needed) and ``GET /ready`` (ChronoFlow's readiness probe)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["operations"])


@router.get("/ping", summary="Ping the server")
async def ping() -> dict[str, str]:
    """WAHA's ``PingResponse``."""
    return {"message": "pong"}


@router.get("/ready", summary="Readiness probe (ChronoFlow's, not WAHA's)")
async def ready() -> dict[str, str]:
    """The simulator needs nothing external, so it is ready once it answers."""
    return {"status": "ready"}
