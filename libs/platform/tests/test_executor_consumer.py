"""The durable pull consumer and the handler against a real nats-server."""

from __future__ import annotations

import asyncio
import contextlib
import time as _time
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import NotJSMessageError
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from prometheus_client import CollectorRegistry

from chronoflow_contracts import decode, names, utc_now
from chronoflow_contracts.chrono import ChronoDefinition, TargetType
from chronoflow_contracts.runs import RunCompleted, RunRequested
from chronoflow_platform.delivery import Delivery, delivery_of
from chronoflow_platform.executor import consumer as consumer_module
from chronoflow_platform.executor.consumer import ConsumerOptions, Handler, Job, WorkConsumer
from chronoflow_platform.executor.handler import RunRequestHandler
from chronoflow_platform.executor.metrics import RunMetrics
from chronoflow_platform.executor.recording import EventRecorder
from chronoflow_platform.executor.runs import RunLedger
from chronoflow_platform.executor.testing import one_off_definition, publish_run, run_request, until
from chronoflow_platform.publishing import publish_event

DURABLE = names.EXECUTOR_DURABLES["http"]


def http_definition(url: str) -> ChronoDefinition:
    return one_off_definition(TargetType.HTTP, "consumer test", url=url)


def options(**changes: float) -> ConsumerOptions:
    values: dict[str, float] = {
        "concurrency": 5,
        "batch": 3,
        "ack_wait_s": 30.0,
        "max_deliver": 5,
        "max_ack_pending": 1000,
        "shutdown_grace_s": 5.0,
        "hold_ahead": 0,
        "pull_expires_s": 30.0,
        "pull_heartbeat_s": 5.0,
        **changes,
    }
    return ConsumerOptions(
        concurrency=int(values["concurrency"]),
        batch=int(values["batch"]),
        ack_wait_s=values["ack_wait_s"],
        max_deliver=int(values["max_deliver"]),
        max_ack_pending=int(values["max_ack_pending"]),
        shutdown_grace_s=values["shutdown_grace_s"],
        hold_ahead=int(values["hold_ahead"]),
        pull_expires_s=values["pull_expires_s"],
        pull_heartbeat_s=values["pull_heartbeat_s"],
    )


class _AtOnce:
    """A message due at once, run by a plain coroutine function."""

    due = 0.0
    name = "test message"

    def __init__(self, handle: Callable[[Msg], Coroutine[Any, Any, None]], msg: Msg) -> None:
        self._handle = handle
        self._msg = msg

    def run(self) -> Coroutine[Any, Any, None]:
        return self._handle(self._msg)


def at_once(handle: Callable[[Msg], Coroutine[Any, Any, None]]) -> Handler:
    def prepare(msg: Msg) -> Job:
        return _AtOnce(handle, msg)

    return prepare


@pytest.fixture
async def queue(nc: NatsClient, js: JetStreamContext) -> AsyncIterator[JetStreamContext]:
    """An empty HTTP work queue without the durable (each test creates its own)."""
    with contextlib.suppress(NotFoundError):
        await js.delete_consumer(names.WORK_STREAM, DURABLE)
    await js.purge_stream(names.WORK_STREAM)
    yield js
    with contextlib.suppress(NotFoundError):
        await js.delete_consumer(names.WORK_STREAM, DURABLE)
    await js.purge_stream(names.WORK_STREAM)


@contextlib.asynccontextmanager
async def consuming(
    nc: NatsClient, js: JetStreamContext, handler: Handler, opts: ConsumerOptions
) -> AsyncIterator[WorkConsumer]:
    consumer = WorkConsumer(nc, js, "http", handler, opts)
    await consumer.ensure()
    task = asyncio.create_task(consumer.run())
    try:
        yield consumer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def queue_empty(js: JetStreamContext) -> bool:
    return (await js.stream_info(names.WORK_STREAM)).state.messages == 0


async def publish(
    js: JetStreamContext, count: int, due: datetime | None = None
) -> list[RunRequested]:
    """``count`` runs due at ``due`` (now if not given)."""
    requests = [
        run_request(http_definition("http://127.0.0.1:9/never"), scheduled_for=due)
        for _ in range(count)
    ]
    for request in requests:
        await publish_run(js, request)
    return requests


async def test_the_durable_is_created_idempotently_with_its_settings(
    nc: NatsClient, queue: JetStreamContext
) -> None:
    for opts in (options(), options(), options(ack_wait_s=12.0, max_deliver=7)):
        await WorkConsumer(nc, queue, "http", at_once(_ack), opts).ensure()
    info = await queue.consumer_info(names.WORK_STREAM, DURABLE)
    assert info.config.filter_subject == names.work_subject("http")
    assert (info.config.ack_wait, info.config.max_deliver) == (12.0, 7)
    assert info.config.max_ack_pending == 1000


async def _ack(msg: Msg) -> None:
    await msg.ack()


async def test_concurrency_is_bounded_and_every_message_is_handled(
    nc: NatsClient, queue: JetStreamContext
) -> None:
    running = 0
    peak = 0
    seen: list[int] = []

    async def handler(msg: Msg) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        seen.append(msg.metadata.sequence.stream)
        running -= 1
        await msg.ack()

    await publish(queue, 40)
    async with consuming(nc, queue, at_once(handler), options(concurrency=5, batch=3)):
        async with asyncio.timeout(10):
            await until(lambda: len(seen) >= 40)
    assert peak == 5
    assert sorted(seen) == sorted(set(seen))
    assert (await queue.stream_info(names.WORK_STREAM)).state.messages == 0


async def test_a_long_run_keeps_its_message_with_in_progress_acks(
    nc: NatsClient, queue: JetStreamContext
) -> None:
    deliveries: list[int] = []

    async def handler(msg: Msg) -> None:
        deliveries.append(msg.metadata.num_delivered)
        await asyncio.sleep(3.5)  # more than twice ack_wait
        await msg.ack()

    await publish(queue, 1)
    async with consuming(nc, queue, at_once(handler), options(ack_wait_s=1.5)):
        async with asyncio.timeout(8):
            await until(lambda: queue_empty(queue))
    assert deliveries == [1]


async def test_on_shutdown_unfinished_runs_are_handed_back_at_once(
    nc: NatsClient, queue: JetStreamContext
) -> None:
    deliveries: list[int] = []
    release = asyncio.Event()

    async def handler(msg: Msg) -> None:
        deliveries.append(msg.metadata.num_delivered)
        await release.wait()
        await msg.ack()

    await publish(queue, 1)
    async with consuming(nc, queue, at_once(handler), options(shutdown_grace_s=0.2)):
        async with asyncio.timeout(5):
            await until(lambda: bool(deliveries), interval=0.02)
    # ack_wait is 30 s: only the NAK at shutdown can bring it back this soon.
    release.set()
    async with consuming(nc, queue, at_once(handler), options()):
        async with asyncio.timeout(5):
            await until(lambda: len(deliveries) >= 2, interval=0.02)
    assert deliveries == [1, 2]


async def test_messages_beyond_the_slots_wait_in_line_and_go_back_at_shutdown(
    nc: NatsClient, queue: JetStreamContext
) -> None:
    # More messages than slots only come from pull requests the consumer had given up on;
    # delivering straight to its inbox stands in for them.
    handled: list[bytes] = []
    release = asyncio.Event()
    handed_back: list[str] = []

    async def handler(msg: Msg) -> None:
        handled.append(msg.data)
        await release.wait()
        if msg.data == b"first":
            release.clear()  # the second then holds its slot until shutdown

    async def record_nak(msg: Msg) -> None:
        handed_back.append(msg.subject)

    await nc.subscribe("line.ack.*", cb=record_nak)
    async with consuming(
        nc, queue, at_once(handler), options(concurrency=1, shutdown_grace_s=0.2)
    ) as (consumer):
        async with asyncio.timeout(5):
            await until(lambda: consumer._inbox)
            for name in ("first", "second", "third"):
                await nc.publish(consumer._inbox, name.encode(), reply=f"line.ack.{name}")
            await until(lambda: consumer.inflight == 3, interval=0.01)
            assert handled == [b"first"]
            release.set()
            await until(lambda: len(handled) == 2, interval=0.01)
    assert handled == [b"first", b"second"]
    # Shutdown: the one still in line goes back at once, the one running after the grace.
    async with asyncio.timeout(5):
        await until(lambda: len(handed_back) == 2, interval=0.01)
    assert handed_back == ["line.ack.third", "line.ack.second"]


async def test_a_lone_run_is_handed_over_at_once_and_pulls_are_renewed(
    nc: NatsClient, queue: JetStreamContext
) -> None:
    arrived: list[float] = []

    async def handler(msg: Msg) -> None:
        arrived.append(asyncio.get_running_loop().time())
        await msg.ack()

    opts = options(concurrency=50, batch=50, pull_expires_s=1.0, pull_heartbeat_s=0.5)
    async with consuming(nc, queue, at_once(handler), opts) as consumer:
        await asyncio.sleep(0.3)
        # Idle: one message must not wait for a batch of 50 to fill.
        sent = asyncio.get_running_loop().time()
        await publish(queue, 1)
        async with asyncio.timeout(2):
            await until(lambda: bool(arrived), interval=0.01)
        assert arrived[0] - sent < 1.0
        # Past several expiries, the consumer still asks, and for no more than it can take.
        await asyncio.sleep(2.5)
        await publish(queue, 3)
        async with asyncio.timeout(3):
            await until(lambda: len(arrived) == 4 and consumer.inflight == 0, interval=0.01)
    info = await queue.consumer_info(names.WORK_STREAM, DURABLE)
    assert info.num_waiting <= 2


class _Exploding:
    """An executor whose every run crashes; its give-up is recorded for real."""

    def __init__(self, nc: NatsClient, js: JetStreamContext) -> None:
        metrics = RunMetrics.register(CollectorRegistry(), "http", duration_help="test")
        self._ledger = RunLedger(js=js, recorder=EventRecorder(nc, js), metrics=metrics)
        self.calls = 0

    async def execute(self, request: RunRequested) -> RunCompleted:
        self.calls += 1
        raise RuntimeError("bug")

    async def give_up(self, request: RunRequested, reason: str) -> None:
        await self._ledger.give_up(request, reason)


async def test_a_crashing_run_is_retried_then_recorded_as_failed(
    nc: NatsClient, queue: JetStreamContext
) -> None:
    executor = _Exploding(nc, queue)
    redelivered: list[int] = []

    def observe(delivery: Delivery) -> None:
        if delivery.number > 1:
            redelivered.append(delivery.number)

    handler = RunRequestHandler(executor, "http", max_deliver=2, observe=observe)
    [request] = await publish(queue, 1)
    async with consuming(nc, queue, handler, options(max_deliver=2)):
        async with asyncio.timeout(10):
            await until(lambda: queue_empty(queue))
    assert executor.calls == 2
    raw = await queue.get_msg(names.RUNS_STREAM, subject=names.runs_subject(request.chrono_id))
    done = decode(RunCompleted.TYPE, 1, raw.data or b"")
    assert isinstance(done, RunCompleted)
    assert done.run_id == request.run_id
    assert done.error_message == "executor error after 2 deliveries: RuntimeError"
    assert len(redelivered) == 1


async def test_a_message_that_is_not_an_http_run_is_dropped(
    nc: NatsClient, queue: JetStreamContext
) -> None:
    executor = _Exploding(nc, queue)
    handler = RunRequestHandler(executor, "http", max_deliver=5)
    await queue.publish(names.work_subject("http"), b"not json")
    message = run_request(http_definition("http://127.0.0.1:9/")).model_copy(
        update={"target_type": TargetType.FUNCTION}
    )
    await publish_event(queue, names.work_subject("http"), message, msg_id=message.run_id)
    async with consuming(nc, queue, handler, options()):
        async with asyncio.timeout(5):
            await until(lambda: queue_empty(queue))
    assert executor.calls == 0


class _Clocked:
    """An executor that notes when each run started."""

    def __init__(self) -> None:
        self.started: dict[str, datetime] = {}

    async def execute(self, request: RunRequested) -> None:
        self.started[request.run_id] = utc_now()

    async def give_up(self, request: RunRequested, reason: str) -> None:
        raise AssertionError(f"gave up on {request.run_id}: {reason}")


async def test_a_run_released_ahead_of_its_instant_starts_at_the_instant(
    nc: NatsClient, queue: JetStreamContext
) -> None:
    executor = _Clocked()
    handler = RunRequestHandler(executor, "http", max_deliver=5)
    due = utc_now() + timedelta(seconds=0.6)
    ahead = run_request(http_definition("http://127.0.0.1:9/"), scheduled_for=due)
    past = run_request(http_definition("http://127.0.0.1:9/"))
    await publish_run(queue, ahead)
    await publish_run(queue, past)
    async with consuming(nc, queue, handler, options()):
        async with asyncio.timeout(10):
            await until(lambda: queue_empty(queue))
    # Held until its instant (and acknowledged after), while the one already due ran at once
    # even though it was queued behind it.
    assert executor.started[ahead.run_id] >= due
    assert executor.started[past.run_id] < due


async def test_a_run_far_ahead_of_this_hosts_clock_is_held_only_so_long(
    nc: NatsClient,
    queue: JetStreamContext,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(consumer_module, "MAX_EARLY_HOLD_S", 0.3)
    executor = _Clocked()
    handler = RunRequestHandler(executor, "http", max_deliver=5)
    request = run_request(
        http_definition("http://127.0.0.1:9/"), scheduled_for=utc_now() + timedelta(hours=1)
    )
    await publish_run(queue, request)
    async with consuming(nc, queue, handler, options()):
        async with asyncio.timeout(10):
            await until(lambda: queue_empty(queue))
    assert request.run_id in executor.started
    assert "before it is due" in caplog.text


async def test_runs_released_ahead_are_held_beyond_the_slots_and_start_at_their_instant(
    nc: NatsClient, queue: JetStreamContext
) -> None:
    executor = _Clocked()
    handler = RunRequestHandler(executor, "http", max_deliver=5)
    due = utc_now() + timedelta(seconds=1.5)
    ahead = await publish(queue, 12, due)
    opts = options(concurrency=2, batch=2, hold_ahead=20)
    registry = CollectorRegistry()
    metrics = RunMetrics.register(registry, "http", duration_help="test")
    async with consuming(nc, queue, handler, opts) as consumer:
        metrics.count_held(lambda: consumer.held)
        async with asyncio.timeout(10):
            # All twelve taken and held, none in a slot: two slots did not limit them.
            await until(lambda: consumer.held == 12, interval=0.01)
            assert consumer.inflight == 0
            assert (
                registry.get_sample_value("chronoflow_executor_held_runs", {"target": "http"}) == 12
            )
            # A run due now, queued behind them, finds a slot free.
            [now] = await publish(queue, 1)
            await until(lambda: now.run_id in executor.started, interval=0.01)
            assert utc_now() < due
            await until(lambda: queue_empty(queue))
    assert all(executor.started[request.run_id] >= due for request in ahead)


class _FastOnce:
    """``time`` whose clock reads 0.3 s fast on its first reading: the hold it sets ends
    early, as a timer that fires early (or a wall clock stepped back) would make it."""

    def __init__(self) -> None:
        self.readings = 0

    def time(self) -> float:
        self.readings += 1
        return _time.time() + (0.3 if self.readings == 1 else 0.0)


async def test_a_hold_that_ends_early_waits_out_the_rest(
    nc: NatsClient, queue: JetStreamContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    executor = _Clocked()
    handler = RunRequestHandler(executor, "http", max_deliver=5)
    due = utc_now() + timedelta(seconds=1)
    [request] = await publish(queue, 1, due)
    monkeypatch.setattr(consumer_module, "time", _FastOnce())
    async with consuming(nc, queue, handler, options(hold_ahead=5)):
        async with asyncio.timeout(5):
            await until(lambda: request.run_id in executor.started, interval=0.01)
    assert executor.started[request.run_id] >= due


async def test_runs_held_beyond_the_hold_ahead_count_as_slots_taken(
    nc: NatsClient, queue: JetStreamContext
) -> None:
    executor = _Clocked()
    handler = RunRequestHandler(executor, "http", max_deliver=5)
    await publish(queue, 20, utc_now() + timedelta(seconds=30))
    async with consuming(nc, queue, handler, options(concurrency=2, batch=2, hold_ahead=5)) as (
        consumer
    ):
        async with asyncio.timeout(5):
            await until(lambda: consumer.held == 7, interval=0.01)
        await asyncio.sleep(0.5)
        assert consumer.held == 7
    assert executor.started == {}


async def test_held_runs_go_back_at_shutdown_and_are_kept_alive_past_ack_wait(
    nc: NatsClient, queue: JetStreamContext
) -> None:
    deliveries: list[int] = []

    def observe(delivery: Delivery) -> None:
        deliveries.append(delivery.number)

    executor = _Clocked()
    handler = RunRequestHandler(executor, "http", max_deliver=5, observe=observe)
    # Held past twice ack_wait: in-progress acks keep it from being redelivered.
    [kept] = await publish(queue, 1, utc_now() + timedelta(seconds=3.5))
    async with consuming(nc, queue, handler, options(ack_wait_s=1.5, hold_ahead=5)):
        async with asyncio.timeout(8):
            await until(lambda: kept.run_id in executor.started, interval=0.02)
    assert deliveries == [1]
    # Still held at shutdown: handed back at once (ack_wait is 30 s), to run once due.
    [back] = await publish(queue, 1, utc_now() + timedelta(seconds=1.5))
    async with consuming(nc, queue, handler, options(hold_ahead=5)) as consumer:
        async with asyncio.timeout(5):
            await until(lambda: consumer.held == 1, interval=0.01)
    assert back.run_id not in executor.started
    async with consuming(nc, queue, handler, options(hold_ahead=5)):
        async with asyncio.timeout(5):
            await until(lambda: back.run_id in executor.started, interval=0.02)
    assert deliveries == [1, 1, 2]


@pytest.mark.parametrize(
    "reply",
    [
        "$JS.ACK.CF_WORK.executor-http.1.12345.678.1796547711000000000.2000",
        "$JS.ACK.CF_WORK.executor-http.3.12345.678.1796547711000000000.0",
        "$JS.ACK.hub.ACCHASH.CF_WORK.executor-http.2.12345.678.1796547711000000000.41",
        "$JS.ACK.hub.ACCHASH.CF_WORK.executor-http.7.12345.678.1796547711000000000.9.tok",
        "$JS.ACK._.ACCHASH.CF_WORK.executor-http.1.5.6.1796547711000000000.0.tok.more",
    ],
)
def test_a_delivery_is_read_from_the_reply_subject_as_nats_py_reads_it(reply: str) -> None:
    meta = Msg(None, subject=names.work_subject("http"), reply=reply).metadata  # type: ignore[arg-type]
    assert delivery_of(Msg(None, reply=reply)) == (meta.num_delivered, meta.num_pending)  # type: ignore[arg-type]


@pytest.mark.parametrize("reply", ["", "_INBOX.abc", "$JS.ACK.too.short", "$JS.API.X.a.1.2.3.4.5"])
def test_a_message_not_from_jetstream_has_no_delivery(reply: str) -> None:
    with pytest.raises(NotJSMessageError):
        delivery_of(Msg(None, reply=reply))  # type: ignore[arg-type]
