"""The pull fetch hands over a lone message at once, and tops a batch up when more are pending."""

from __future__ import annotations

import asyncio
import time

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig

from chronoflow_contracts import names
from chronoflow_executor_function.consumer import next_batch

STREAM = "CF_TEST_FETCH"


async def test_a_lone_message_is_not_held_back_waiting_for_a_full_batch(
    js: JetStreamContext,
) -> None:
    await js.add_stream(name=STREAM, subjects=["cf.test.fetch"])
    try:
        await js.add_consumer(
            STREAM, ConsumerConfig(durable_name="t", ack_policy=AckPolicy.EXPLICIT)
        )
        sub = await js.pull_subscribe_bind("t", stream=STREAM)

        async def publish_later() -> None:
            await asyncio.sleep(0.2)
            await js.publish("cf.test.fetch", b"one")

        started = time.perf_counter()
        publisher = asyncio.create_task(publish_later())
        msgs = await next_batch(sub, 8, wait=5.0)
        waited = time.perf_counter() - started
        await publisher
        assert [m.data for m in msgs] == [b"one"]
        assert waited < 1.5  # not the 5 s a fetch(8) would wait for the other seven
        await msgs[0].ack()

        for i in range(5):
            await js.publish("cf.test.fetch", str(i).encode())
        msgs = await next_batch(sub, 3, wait=5.0)
        assert [m.data for m in msgs] == [b"0", b"1", b"2"]
        for m in msgs:
            await m.ack()
        msgs = await next_batch(sub, 8, wait=5.0)
        assert [m.data for m in msgs] == [b"3", b"4"]
        assert await next_batch(sub, 8, wait=0.3) == []
        await sub.unsubscribe()
    finally:
        await js.delete_stream(STREAM)
    assert names.WORK_STREAM != STREAM
