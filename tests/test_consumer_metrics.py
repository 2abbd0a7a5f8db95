"""The consumer backlog gauges: real numbers from a real nats-server, exported by every service
that consumes (deploy/grafana/metrics.txt lists which)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig
from nats.js.errors import NotFoundError
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from chronoflow_api.projector.app import create_app as create_projector
from chronoflow_api.settings import ProjectorSettings
from chronoflow_contracts import names
from chronoflow_devstack.embedded import NatsServer
from chronoflow_egress.signing import generate_secret
from chronoflow_executor_function.testing import running_executor
from chronoflow_executor_http.app import create_app as create_executor_http
from chronoflow_executor_http.settings import ExecutorHttpSettings
from chronoflow_executor_http.testing import until
from chronoflow_executor_message.app import create_app as create_executor_message
from chronoflow_executor_message.settings import ExecutorMessageSettings
from chronoflow_platform.consumer_metrics import ConsumerBacklog
from chronoflow_platform.testing import running
from chronoflow_scheduler.app import create_app as create_scheduler
from chronoflow_scheduler.settings import SchedulerSettings

STREAM = "CF_TEST_BACKLOG"
DURABLE = "backlog-test"
PENDING = "chronoflow_consumer_pending_messages"
ACK_PENDING = "chronoflow_consumer_ack_pending_messages"


@pytest.fixture
async def stream(js: JetStreamContext) -> AsyncIterator[str]:
    """A stream of its own with one explicit-ack durable on it."""
    with pytest.raises(NotFoundError):
        await js.stream_info(STREAM)
    await js.add_stream(StreamConfig(name=STREAM, subjects=["backlog.test.>"]))
    await js.add_consumer(
        STREAM, ConsumerConfig(durable_name=DURABLE, ack_policy=AckPolicy.EXPLICIT, ack_wait=60)
    )
    try:
        yield STREAM
    finally:
        await js.delete_stream(STREAM)


def value(registry: CollectorRegistry, name: str, consumer: str = DURABLE) -> float | None:
    return registry.get_sample_value(name, {"stream": STREAM, "consumer": consumer})


async def test_gauges_report_what_the_server_counts(js: JetStreamContext, stream: str) -> None:
    registry = CollectorRegistry()
    backlog = ConsumerBacklog.register(registry)
    durables = [(stream, DURABLE), (stream, "no-such-durable")]
    for n in range(5):
        await js.publish(f"backlog.test.{n}", b"x")
    sub = await js.pull_subscribe_bind(DURABLE, stream=stream)
    taken = await sub.fetch(2, timeout=5)
    assert len(taken) == 2

    await backlog.sample(js, durables)
    assert value(registry, PENDING) == 3
    assert value(registry, ACK_PENDING) == 2
    assert value(registry, PENDING, "no-such-durable") is None

    for msg in taken:
        await msg.ack_sync()
    await backlog.sample(js, durables)
    assert value(registry, PENDING) == 3
    assert value(registry, ACK_PENDING) == 0

    # A durable that goes away stops being reported instead of showing its last numbers.
    await sub.unsubscribe()
    await js.delete_consumer(stream, DURABLE)
    await backlog.sample(js, durables)
    assert value(registry, PENDING) is None
    assert value(registry, ACK_PENDING) is None


async def scraped(app: FastAPI) -> dict[tuple[str, str, str], float]:
    """The consumer gauges on the app's /metrics: (metric, stream, consumer) → value."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as c:
        text = (await c.get("/metrics")).text
    found: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in (PENDING, ACK_PENDING):
                found[sample.name, sample.labels["stream"], sample.labels["consumer"]] = (
                    sample.value
                )
    return found


async def test_every_consuming_service_exports_its_durables(
    nats_server: NatsServer,
    database_url: str,
    clean_stack: JetStreamContext,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    env = {
        "NATS_URL": nats_server.url,
        "DATABASE_URL": database_url,
        "CHRONOFLOW_SECRETS_KEY": Fernet.generate_key().decode(),
        "CHRONOFLOW_PROFILE": "development",
        "CHRONOFLOW_WEBHOOK_SECRET": generate_secret(),
    }
    apps = {
        "projector": create_projector(ProjectorSettings.model_validate(env)),
        "scheduler": create_scheduler(SchedulerSettings.model_validate(env)),
        "executor-http": create_executor_http(ExecutorHttpSettings.model_validate(env)),
        "executor-message": create_executor_message(ExecutorMessageSettings.model_validate(env)),
    }
    expected = {
        "projector": {
            (names.EVENTS_STREAM, names.PROJECTOR_DURABLE),
            (names.RUNS_STREAM, names.PROJECTOR_DURABLE),
        },
        "scheduler": {
            (names.SCHEDULES_STREAM, names.SCHEDULER_FIRE_DURABLE),
            (names.EVENTS_STREAM, names.SCHEDULER_EVENTS_DURABLE),
        },
        **{
            f"executor-{target}": {(names.WORK_STREAM, durable)}
            for target, durable in names.EXECUTOR_DURABLES.items()
        },
    }
    async with (
        running(*apps.values()),
        running_executor(
            nats_url=nats_server.url,
            database_url=database_url,
            cache_dir=str(tmp_path_factory.mktemp("function-cache")),
        ) as function_executor,
    ):
        apps["executor-function"] = function_executor
        found: dict[str, dict[tuple[str, str, str], float]] = {}

        async def all_reported() -> bool:
            for service, app in apps.items():
                found[service] = await scraped(app)
            return all(
                {(s, c) for metric, s, c in found[service] if metric == name} == durables
                for service, durables in expected.items()
                for name in (PENDING, ACK_PENDING)
            )

        # The first sample may come before a durable exists; the next one, 5 s on, sees it.
        async with asyncio.timeout(20):
            await until(all_reported, interval=0.5)
    # Nothing was published: every backlog is empty.
    assert {v for values in found.values() for v in values.values()} == {0}
