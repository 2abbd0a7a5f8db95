"""Pull requests answered into one callback subscription, on a real JetStream."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig
from nats.js.errors import APIError

from chronoflow_contracts import new_id
from chronoflow_platform.delivery import stream_sequence_of
from chronoflow_scheduler.pulling import Puller


@pytest.fixture
async def stream(js: JetStreamContext) -> AsyncIterator[str]:
    """A scratch stream with a durable ``d`` on it."""
    name = f"PULL_{new_id().replace('-', '')}"
    await js.add_stream(StreamConfig(name=name, subjects=[f"{name.lower()}.>"]))
    await js.add_consumer(
        name, ConsumerConfig(durable_name="d", ack_policy=AckPolicy.EXPLICIT, ack_wait=30)
    )
    yield name
    await js.delete_stream(name)


async def _publish(js: JetStreamContext, stream: str, count: int) -> None:
    for i in range(count):
        await js.publish(f"{stream.lower()}.m", str(i).encode())


async def test_each_message_is_handed_over_once_in_order_and_can_be_acknowledged(
    nc: NatsClient, js: JetStreamContext, stream: str
) -> None:
    await _publish(js, stream, 5)
    got: list[Msg] = []

    async def deliver(msg: Msg) -> None:
        got.append(msg)

    async with Puller(nc, stream=stream, durable="d", deliver=deliver) as puller:
        await puller.pull(3, 5.0)  # returns once all three are in, long before the expiry
        assert [m.data for m in got] == [b"0", b"1", b"2"]
        await puller.pull(10, 0.2)  # the other two, then the server ends the request
        assert [m.data for m in got] == [b"0", b"1", b"2", b"3", b"4"]
        assert [stream_sequence_of(m) for m in got] == [1, 2, 3, 4, 5]
        for msg in got:
            await msg.ack_sync()
        await puller.pull(10, 0.2)  # nothing left: an empty, ended request
        assert len(got) == 5
    info = await js.consumer_info(stream, "d")
    assert info.num_ack_pending == 0
    assert info.num_pending == 0


async def test_a_durable_that_is_gone_is_an_error(
    nc: NatsClient, js: JetStreamContext, stream: str
) -> None:
    async def deliver(msg: Msg) -> None:
        raise AssertionError("nothing to deliver")

    async with Puller(nc, stream=stream, durable="d", deliver=deliver) as puller:
        await js.delete_consumer(stream, "d")
        with pytest.raises(APIError):
            await puller.pull(10, 0.2)
