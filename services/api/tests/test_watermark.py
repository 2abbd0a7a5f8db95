"""Read-your-writes waits: woken by the projector's announcements, or by its checkpoint when an
announcement was missed; bounded by the caller's limit."""

from __future__ import annotations

import asyncio
import json

from nats.aio.client import Client as NatsClient
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from chronoflow_api.watermark import ProjectionWatermark
from chronoflow_contracts import names, new_id
from chronoflow_platform.schema import projection_checkpoints


async def test_announcements_wake_only_satisfied_waiters_and_checkpoint_covers_missed_ones(
    nc: NatsClient, engine: AsyncEngine
) -> None:
    stream = f"test-{new_id()}"  # a stream of its own: no other test's checkpoint moves it
    watermark = ProjectionWatermark(engine)
    await watermark.start(nc)
    try:
        waits = {
            seq: asyncio.create_task(watermark.wait_for(stream, seq, limit=30)) for seq in (2, 3, 5)
        }
        await asyncio.sleep(0)  # let them register
        await nc.publish(
            names.PROJECTION_APPLIED_SUBJECT, json.dumps({"stream": stream, "seq": 3}).encode()
        )
        assert await waits[2]
        assert await waits[3]
        assert not waits[5].done()
        # The projector got to 5 but its announcement never arrived: the checkpoint tells.
        async with engine.begin() as conn:
            await conn.execute(insert(projection_checkpoints).values(stream=stream, last_seq=5))
        assert await waits[5]
        assert await watermark.wait_for(stream, 4, limit=0)  # already known: no wait at all
    finally:
        await watermark.stop()


async def test_a_wait_past_its_limit_answers_false(nc: NatsClient, engine: AsyncEngine) -> None:
    stream = f"test-{new_id()}"
    watermark = ProjectionWatermark(engine)
    await watermark.start(nc)
    try:
        assert not await watermark.wait_for(stream, 1, limit=0.3)
        # The given-up waiter is gone; a later announcement still serves new waiters.
        await nc.publish(
            names.PROJECTION_APPLIED_SUBJECT, json.dumps({"stream": stream, "seq": 1}).encode()
        )
        assert await watermark.wait_for(stream, 1, limit=30)
    finally:
        await watermark.stop()
