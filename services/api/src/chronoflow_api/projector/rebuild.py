"""Rebuild: empty the read models and replay both streams from the start.

Run it with the projector stopped: it refuses (after a few seconds) while another process
leads a stream. When the projector starts again it re-points its consumer at the rebuilt
checkpoint and carries on from there.
"""

from __future__ import annotations

import asyncio
import logging

from nats.aio.client import Client as NatsClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chronoflow_api.projector.consumer import STREAMS, StreamProjector, stream_last_seq
from chronoflow_platform.schema import PROJECTION_TABLES

log = logging.getLogger(__name__)


async def truncate_read_models(engine: AsyncEngine) -> None:
    """Empty every projection table and checkpoint (function state and API keys are kept)."""
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {', '.join(t.name for t in PROJECTION_TABLES)}"))


async def rebuild(nc: NatsClient, engine: AsyncEngine) -> dict[str, int]:
    """Drop the read models' content and replay every stream up to its current end."""
    js = nc.jetstream()
    targets = {stream: await stream_last_seq(js, stream) for stream in STREAMS}
    await truncate_read_models(engine)
    await asyncio.gather(
        *(
            StreamProjector(nc=nc, js=js, engine=engine, stream=stream).run(
                stop_at=last, lead_timeout=5
            )
            for stream, last in targets.items()
            if last > 0
        )
    )
    log.info("rebuilt read models: %s", targets)
    return targets
