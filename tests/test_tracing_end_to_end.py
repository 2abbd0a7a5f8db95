"""One trace per run: the API request, the scheduler, the executor's HTTP call and the projector.

api, projector, scheduler and executor-http run in-process with their real lifespans on the
session's nats-server and PostgreSQL, every span goes to an in-memory exporter, and a chrono
created over REST calls a sink on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from nats.js import JetStreamContext
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.util._once import Once
from sqlalchemy.ext.asyncio import AsyncEngine

from chronoflow_api.app import create_app as create_api
from chronoflow_api.projector.app import create_app as create_projector
from chronoflow_api.settings import ApiSettings, ProjectorSettings
from chronoflow_devstack.embedded import NatsServer
from chronoflow_egress.signing import generate_secret
from chronoflow_executor_http.app import create_app as create_executor
from chronoflow_executor_http.settings import ExecutorHttpSettings
from chronoflow_executor_http.testing import WebhookSink, until
from chronoflow_platform import apikeys
from chronoflow_platform.telemetry import SEMCONV_OPT_IN, configure_tracing
from chronoflow_platform.testing import running
from chronoflow_scheduler.app import create_app as create_scheduler
from chronoflow_scheduler.settings import SchedulerSettings


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """Every span this process ends, kept in memory; tracing is off again afterwards."""
    opt_in = os.environ.get(SEMCONV_OPT_IN)
    spans = InMemorySpanExporter()
    provider = configure_tracing("tests", processor=SimpleSpanProcessor(spans))
    assert provider is not None
    assert trace.get_tracer_provider() is provider, "another test left a tracer provider"
    yield spans
    provider.shutdown()
    # OpenTelemetry lets a process set its provider once; the other tests of this process
    # run without tracing, as services do by default.
    trace._TRACER_PROVIDER = None
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    if opt_in is None:
        os.environ.pop(SEMCONV_OPT_IN, None)


@pytest.fixture
async def client(
    exporter: InMemorySpanExporter,
    nats_server: NatsServer,
    database_url: str,
    clean_stack: JetStreamContext,
    engine: AsyncEngine,
) -> AsyncIterator[httpx.AsyncClient]:
    """A REST client of the api, with the projector, scheduler and executor-http running,
    all created once tracing is on (as a service starting with OTEL_* set would be)."""
    env = {
        "NATS_URL": nats_server.url,
        "DATABASE_URL": database_url,
        "CHRONOFLOW_SECRETS_KEY": Fernet.generate_key().decode(),
        "CHRONOFLOW_PROFILE": "development",
        "CHRONOFLOW_WEBHOOK_SECRET": generate_secret(),
    }
    projector = create_projector(ProjectorSettings.model_validate(env))
    scheduler = create_scheduler(SchedulerSettings.model_validate(env))
    executor = create_executor(ExecutorHttpSettings.model_validate(env))
    api = create_api(ApiSettings.model_validate(env))
    _, key = await apikeys.create_key(engine, "tracing test")
    async with (
        running(projector, scheduler, executor, api),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=api),
            base_url="http://api",
            headers={"Authorization": f"Bearer {key}"},
        ) as rest,
    ):
        yield rest


async def successes(client: httpx.AsyncClient, chrono_id: str, count: int) -> None:
    """Until the read model shows ``count`` successful runs of the chrono."""

    async def done() -> bool:
        runs = (await client.get(f"/chronos/{chrono_id}/runs")).json()["items"]
        return sum(1 for r in runs if r["status"] == "SUCCESS") >= count

    async with asyncio.timeout(30):
        await until(done, interval=0.1)


async def spans_until(
    exporter: InMemorySpanExporter, enough: Any, *, within: float = 10
) -> list[ReadableSpan]:
    """The finished spans, once ``enough(spans)`` holds (spans end as the services go on)."""
    try:
        async with asyncio.timeout(within):
            await until(lambda: bool(enough(list(exporter.get_finished_spans()))), interval=0.05)
    except TimeoutError:
        raise AssertionError(describe(list(exporter.get_finished_spans()))) from None
    return list(exporter.get_finished_spans())


def describe(spans: list[ReadableSpan]) -> str:
    """The spans as lines of name, kind, trace, id and parent (for a failure's message)."""
    return "\n".join(
        f"{s.name} {s.kind.name} {trace_id(s):032x} {span_id(s):016x} {parent_of(s) or 0:016x}"
        for s in spans
    )


def of_chrono(spans: list[ReadableSpan], name: str, chrono_id: str) -> list[ReadableSpan]:
    """The spans called ``name`` that are about ``chrono_id``, oldest first."""
    found = [
        s
        for s in spans
        if s.name == name and (s.attributes or {}).get("chronoflow.chrono_id") == chrono_id
    ]
    return sorted(found, key=lambda s: s.start_time or 0)


def parent_of(span: ReadableSpan) -> int | None:
    """The span id of ``span``'s parent (None for a root)."""
    return span.parent.span_id if span.parent is not None else None


def span_id(span: ReadableSpan) -> int:
    """The span's own id."""
    assert span.context is not None
    return int(span.context.span_id)


def trace_id(span: ReadableSpan) -> int:
    """The id of the trace the span belongs to."""
    assert span.context is not None
    return int(span.context.trace_id)


def children(spans: list[ReadableSpan], parent: ReadableSpan, name: str) -> list[ReadableSpan]:
    """The spans called ``name`` whose parent is ``parent``."""
    return [s for s in spans if s.name == name and parent_of(s) == span_id(parent)]


async def test_one_trace_covers_request_fire_http_call_and_projection(
    client: httpx.AsyncClient, exporter: InMemorySpanExporter
) -> None:
    async with WebhookSink() as sink:
        created = await client.post(
            "/chronos",
            json={
                "name": "traced",
                "cron": "in 2 seconds",
                "url": sink.url("/hook") + "?token=s3cret",
                "method": "POST",
                "payload": {"hello": "world"},
            },
        )
        assert created.status_code == 201, created.text
        chrono_id = created.json()["id"]
        await successes(client, chrono_id, 1)

    def complete(spans: list[ReadableSpan]) -> bool:
        runs = [s for s in spans if s.name == "executor-http run"]
        return bool(runs) and bool(children(spans, runs[0], "project run.completed"))

    spans = await spans_until(exporter, complete)

    (request,) = [s for s in spans if s.kind is SpanKind.SERVER and s.name == "POST /chronos"]
    assert (request.attributes or {}).get("http.request.method") == "POST"
    (applied,) = of_chrono(spans, "scheduler apply chrono.created", chrono_id)
    (fire,) = of_chrono(spans, "scheduler fire", chrono_id)
    (run,) = [s for s in spans if s.name == "executor-http run"]
    (call,) = [s for s in spans if s.kind is SpanKind.CLIENT]
    (projected,) = children(spans, run, "project run.completed")

    # One trace, request → scheduler (event, then fire) → executor → HTTP call / projector.
    assert {trace_id(s) for s in (request, applied, fire, run, call, projected)} == {
        trace_id(request)
    }
    assert parent_of(applied) == span_id(request)
    assert parent_of(fire) == span_id(applied)
    assert parent_of(run) == span_id(fire)
    assert parent_of(call) == span_id(run)
    assert parent_of(projected) == span_id(run)
    # The projector's write of the chrono itself belongs to the request's trace too.
    assert children(spans, request, "project chrono.created")
    assert not fire.links, "an occurrence armed by a command continues it, without a link"

    # The client span follows the HTTP semantic conventions; the URL's secret stays out.
    attributes = call.attributes or {}
    assert call.name == "POST"
    assert attributes.get("http.request.method") == "POST"
    assert attributes.get("http.response.status_code") == 200
    assert attributes.get("server.address") == "127.0.0.1"
    assert attributes.get("url.full") == sink.url("/hook") + "?token=REDACTED"
    # The receiver gets the context of the call, so its own spans join the trace.
    (received,) = sink.received
    assert received.headers["traceparent"].split("-")[1:3] == [
        format(trace_id(call), "032x"),
        format(span_id(call), "016x"),
    ]


async def test_each_occurrence_of_a_recurring_chrono_starts_a_trace_linked_to_the_last(
    client: httpx.AsyncClient, exporter: InMemorySpanExporter
) -> None:
    async with WebhookSink() as sink:
        created = await client.post(
            "/chronos",
            json={"name": "recurring", "cron": "*/2 * * * * *", "url": sink.url("/hook")},
        )
        assert created.status_code == 201, created.text
        chrono_id = created.json()["id"]
        await successes(client, chrono_id, 3)
        paused = await client.post(f"/chronos/{chrono_id}/pause")
        assert paused.status_code == 200, paused.text

    spans = await spans_until(
        exporter, lambda spans: len(of_chrono(spans, "scheduler fire", chrono_id)) >= 3
    )
    (applied,) = of_chrono(spans, "scheduler apply chrono.created", chrono_id)
    first, second, third = of_chrono(spans, "scheduler fire", chrono_id)[:3]

    # The first occurrence was armed by the create: it continues the request's trace.
    assert parent_of(first) == span_id(applied)
    assert trace_id(first) == trace_id(applied)
    # Each later one was armed by the fire before it: a new trace, linked to that fire.
    for previous, fire in ((first, second), (second, third)):
        assert fire.parent is None
        assert trace_id(fire) != trace_id(previous)
        assert [link.context.span_id for link in fire.links] == [span_id(previous)]
        assert [link.context.trace_id for link in fire.links] == [trace_id(previous)]
        # Its run is in its own trace.
        assert children(spans, fire, "executor-http run")
    assert len({trace_id(s) for s in (first, second, third)}) == 3


def test_tracing_is_off_without_otel_variables() -> None:
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)
    assert configure_tracing("tests") is None
