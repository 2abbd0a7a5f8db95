"""The durable pull consumer on ``cf.work.function``: one message per free sandbox, keep-alive.

Replicas bind to one durable, so JetStream shares the work among them. A replica holds at
most ``concurrency`` messages (its pool size): a message waits in the stream, not in a
replica's memory, until a sandbox is free to run it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from chronoflow_contracts import names
from chronoflow_executor_function.metrics import CONSUMER

log = logging.getLogger(__name__)

Handler = Callable[[Msg], Coroutine[Any, Any, None]]
#: How long one idle pull request waits for work before asking again.
FETCH_WAIT_S = 5.0
#: How long topping up a batch may wait for messages the first one said were pending.
TOP_UP_WAIT_S = 0.05


@dataclass(frozen=True, slots=True)
class ConsumerOptions:
    """How the consumer shares and paces its work."""

    concurrency: int
    ack_wait_s: float
    max_deliver: int
    max_ack_pending: int
    shutdown_grace_s: float


def consumer_config(options: ConsumerOptions) -> ConsumerConfig:
    """The durable every replica binds to (creating it again with this config is a no-op)."""
    return ConsumerConfig(
        durable_name=CONSUMER,
        description="executor-function: RunRequested for FUNCTION chronos, shared by replicas",
        filter_subject=names.work_subject("function"),
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=options.ack_wait_s,
        max_deliver=options.max_deliver,
        max_ack_pending=options.max_ack_pending,
        max_waiting=512,
    )


async def next_batch(
    sub: JetStreamContext.PullSubscription, wanted: int, wait: float = FETCH_WAIT_S
) -> list[Msg]:
    """Up to ``wanted`` messages, as soon as the first one is there.

    nats-py's ``fetch(n)`` with ``n > 1`` on an idle stream keeps waiting, once a message has
    arrived, until the batch is full or the wait is over: a lone run would start seconds late.
    So: wait for one, then take without waiting as many more as it says are pending.
    """
    try:
        msgs = await sub.fetch(1, timeout=wait)
    except TimeoutError:
        return []
    room = min(wanted - len(msgs), msgs[-1].metadata.num_pending if msgs else 0)
    if room > 0:
        with contextlib.suppress(TimeoutError):
            msgs += await sub.fetch(room, timeout=TOP_UP_WAIT_S)
    return msgs


class WorkConsumer:
    """Fetches as many messages as there are free sandboxes; each runs in its own task.

    Messages held longer than a third of ``ack_wait`` get an in-progress ack every third of
    ``ack_wait``, so a long function is not redelivered while it runs, while a crashed
    replica's messages come back after ``ack_wait``.
    """

    def __init__(
        self,
        js: JetStreamContext,
        handler: Handler,
        options: ConsumerOptions,
    ) -> None:
        self._js = js
        self._handler = handler
        self._options = options
        self._slots = asyncio.Semaphore(options.concurrency)
        self._inflight: dict[asyncio.Task[None], tuple[Msg, float]] = {}

    @property
    def inflight(self) -> int:
        """Messages being handled right now."""
        return len(self._inflight)

    async def ensure(self) -> None:
        """Create the durable consumer or bring its settings up to date (idempotent)."""
        await self._js.add_consumer(names.WORK_STREAM, consumer_config(self._options))

    async def run(self) -> None:
        """Consume until cancelled; then let runs in flight finish within the grace period."""
        sub = await self._js.pull_subscribe_bind(CONSUMER, stream=names.WORK_STREAM)
        helpers = [asyncio.create_task(self._keep_alive(), name="executor-function-keepalive")]
        try:
            while True:
                wanted = await self._take_slots()
                msgs = await self._fetch(sub, wanted)
                for _ in range(wanted - len(msgs)):
                    self._slots.release()
                for msg in msgs:
                    self._start(msg)
        finally:
            # Stop taking work first: a message handed back while this subscription still
            # listens would be delivered straight back to it.
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
            await self._finish_inflight()
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)

    async def _take_slots(self) -> int:
        await self._slots.acquire()
        wanted = 1
        while not self._slots.locked():
            await self._slots.acquire()
            wanted += 1
        return wanted

    async def _fetch(self, sub: JetStreamContext.PullSubscription, wanted: int) -> list[Msg]:
        try:
            return await next_batch(sub, wanted)
        except nats.errors.Error as exc:
            # Disconnected or reconnecting: the client reconnects by itself; ask again soon.
            log.warning("fetch failed: %s", exc)
            await asyncio.sleep(0.5)
            return []
        except BaseException:
            for _ in range(wanted):
                self._slots.release()
            raise

    def _start(self, msg: Msg) -> None:
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._handler(msg))
        self._inflight[task] = (msg, loop.time())
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.pop(task, None)
        self._slots.release()
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("handler crashed", exc_info=exc)

    async def _keep_alive(self) -> None:
        period = self._options.ack_wait_s / 3
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(period)
            now = loop.time()
            for msg, since in list(self._inflight.values()):
                if now - since >= period:
                    with contextlib.suppress(Exception):
                        await msg.in_progress()

    async def _finish_inflight(self) -> None:
        tasks = list(self._inflight)
        if not tasks:
            return
        log.info(
            "waiting up to %ss for %d runs in flight", self._options.shutdown_grace_s, len(tasks)
        )
        _, late = await asyncio.wait(tasks, timeout=self._options.shutdown_grace_s)
        for task in late:
            msg, _ = self._inflight.get(task, (None, 0.0))
            task.cancel()
            if msg is not None:
                # Hand it straight back so another replica takes it now, not after ack_wait.
                with contextlib.suppress(Exception):
                    await msg.nak()
        if late:
            await asyncio.gather(*late, return_exceptions=True)
