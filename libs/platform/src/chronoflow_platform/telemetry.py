"""OpenTelemetry: traces from the API request through NATS to the executors and the projector.

Off by default. The standard variables turn it on: ``OTEL_TRACES_EXPORTER=otlp`` (or just
``OTEL_EXPORTER_OTLP_ENDPOINT``) exports over OTLP/HTTP; ``OTEL_SERVICE_NAME`` overrides the
service name. Context crosses NATS as W3C ``traceparent`` / ``tracestate`` headers: every
publish injects it (see :mod:`chronoflow_platform.publishing`), every consumer extracts it
with :func:`consumer_span`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from fastapi import FastAPI
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind

TRACER_NAME = "chronoflow"


def tracing_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the standard OTEL_* variables ask for trace export."""
    env = os.environ if environ is None else environ
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none" or env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    return exporter == "otlp" or bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def configure_tracing(
    service: str, *, processor: SpanProcessor | None = None
) -> TracerProvider | None:
    """Install a tracer provider for this process when tracing is on (or a processor is given,
    as tests do with an in-memory exporter). Returns it, or None when tracing stays off."""
    if processor is None:
        if not tracing_enabled():
            return None
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter: SpanExporter = OTLPSpanExporter()
        processor = BatchSpanProcessor(exporter)
    name = os.environ.get("OTEL_SERVICE_NAME", f"chronoflow-{service}")
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    return provider


def tracing_active() -> bool:
    """Whether this process installed an SDK tracer provider (else spans are no-ops)."""
    return isinstance(trace.get_tracer_provider(), TracerProvider)


def setup_service_tracing(service: str, app: FastAPI) -> None:
    """Configure tracing from the environment once per process, and give ``app`` server spans
    for every request (HTTP semantic conventions; health, readiness and metrics excluded).
    Without tracing, requests pay nothing for it."""
    if not tracing_active():
        configure_tracing(service)
    if tracing_active():
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app, excluded_urls="health,ready,metrics")


@contextmanager
def consumer_span(
    name: str, headers: Mapping[str, str] | None, attributes: Mapping[str, str] | None = None
) -> Iterator[Span]:
    """A CONSUMER span continuing the trace whose context came in the message headers."""
    ctx = propagate.extract(dict(headers or {}))
    tracer = trace.get_tracer(TRACER_NAME)
    with tracer.start_as_current_span(
        name, context=ctx, kind=SpanKind.CONSUMER, attributes=dict(attributes or {})
    ) as span:
        yield span


def inject(headers: dict[str, str]) -> dict[str, str]:
    """Add the current trace context to outgoing message headers (returns them)."""
    propagate.inject(headers)
    return headers
