"""Fires in hand stay alive in JetStream, marked in progress shortly before their deadline."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from chronoflow_contracts import new_id
from chronoflow_scheduler.firing.intake import Intake, Ticket
from chronoflow_scheduler.pulling import Puller

ACK_WAIT = 2.0
HOLD = 7.0


@pytest.fixture
async def stream(js: JetStreamContext) -> AsyncIterator[str]:
    """A scratch stream with a durable ``d`` whose ack wait is ``ACK_WAIT``."""
    name = f"INTAKE_{new_id().replace('-', '')}"
    await js.add_stream(StreamConfig(name=name, subjects=[f"{name.lower()}.>"]))
    await js.add_consumer(
        name, ConsumerConfig(durable_name="d", ack_policy=AckPolicy.EXPLICIT, ack_wait=ACK_WAIT)
    )
    yield name
    await js.delete_stream(name)


async def test_a_message_held_past_its_ack_wait_is_kept_with_few_marks(
    nc: NatsClient, js: JetStreamContext, stream: str
) -> None:
    await js.publish(f"{stream.lower()}.m", b"fire")
    got: list[Msg] = []

    async def deliver(msg: Msg) -> None:
        got.append(msg)

    intake = Intake(ack_wait_seconds=ACK_WAIT, retry_delay_seconds=1.0)
    marks = 0

    async def process(msg: Msg, ticket: Ticket) -> bool:
        ticket.done()
        await asyncio.sleep(HOLD)  # held for several acknowledgement waits
        await msg.ack_sync()
        return True

    async with Puller(nc, stream=stream, durable="d", deliver=deliver) as puller:
        await puller.pull(1, 5.0)
        [msg] = got
        mark = msg.in_progress

        async def counted() -> None:
            nonlocal marks
            marks += 1
            await mark()

        msg.in_progress = counted  # type: ignore[method-assign]
        keepalive = asyncio.create_task(intake.keepalive())
        # A pull request open all along: a copy redelivered after a missed deadline lands here.
        watching = asyncio.create_task(puller.pull(1, HOLD + 1))
        try:
            await intake.take(msg, process)
        finally:
            keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keepalive
        await watching
    assert len(got) == 1, "redelivered while held"
    # Marked about every ACK_WAIT - ACK_WAIT/3 (1.33 s), not every third of ACK_WAIT.
    assert 1 <= marks <= HOLD / (ACK_WAIT - ACK_WAIT / 3) + 1
    info = await js.consumer_info(stream, "d")
    assert info.num_ack_pending == 0
    assert info.num_redelivered == 0
