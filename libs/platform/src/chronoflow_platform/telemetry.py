"""OpenTelemetry: one trace per run, from the API request through NATS to the executors and the
projector.

Off by default. The standard variables turn it on: ``OTEL_TRACES_EXPORTER=otlp`` (or just
``OTEL_EXPORTER_OTLP_ENDPOINT``) exports over OTLP/HTTP; ``OTEL_SERVICE_NAME`` overrides the
service name. Context crosses NATS as W3C ``traceparent`` / ``tracestate`` headers: every
publish injects it (see :mod:`chronoflow_platform.publishing`), every consumer extracts it
with :func:`consumer_span`. A recurring chrono's next schedule message carries the fire's
context as a link (:data:`chronoflow_contracts.names.TRACE_LINK`) instead, so each occurrence
is a trace of its own that points back to the one before (see docs/operations.md, Tracing).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fastapi import FastAPI
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.semconv.attributes.url_attributes import URL_FULL
from opentelemetry.trace import Link, Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from chronoflow_contracts import names

if TYPE_CHECKING:
    import httpx
    from opentelemetry.instrumentation.httpx import RequestInfo

TRACER_NAME = "chronoflow"
#: The standard switch between the old and the stable HTTP semantic conventions of the
#: instrumentations; ChronoFlow defaults it to the stable ones (an explicit value wins).
SEMCONV_OPT_IN = "OTEL_SEMCONV_STABILITY_OPT_IN"
#: The headers of a stored message that carry its trace (copied when a message is rewritten).
TRACE_HEADERS = (names.TRACEPARENT, names.TRACESTATE, names.TRACE_LINK)

_TRACECONTEXT = TraceContextTextMapPropagator()

#: The SDK tracer provider this process traces with, recorded when tracing is set up (None:
#: no tracing). Asked on every message (the handler, every event's headers), and
#: ``trace.get_tracer_provider()`` reads os.environ each time no provider is set: ~1 us.
_installed: TracerProvider | None = None


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
    # Read once, when the first instrumentation is set up: HTTP server and client spans then
    # carry the stable attribute names (http.request.method, url.full, ...).
    os.environ.setdefault(SEMCONV_OPT_IN, "http")
    name = os.environ.get("OTEL_SERVICE_NAME", f"chronoflow-{service}")
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    _record_provider()
    return provider


def _record_provider() -> bool:
    """Note whether an SDK tracer provider is installed now (by us or by an OpenTelemetry
    distro), and say whether one is. A process installs its provider once, at set-up."""
    global _installed  # noqa: PLW0603 - the once-per-process decision the docstring names
    provider = trace.get_tracer_provider()
    _installed = provider if isinstance(provider, TracerProvider) else None
    return _installed is not None


def tracing_active() -> bool:
    """Whether this process traces: an SDK tracer provider was installed when tracing was set
    up (:func:`configure_tracing`, :func:`setup_service_tracing`); else spans are no-ops.

    Without tracing this is one comparison. (The global provider is compared with the recorded
    one only when there is one: tests put the global back to none after a traced test.)
    """
    return _installed is not None and trace.get_tracer_provider() is _installed


def setup_service_tracing(service: str, app: FastAPI) -> None:
    """Configure tracing from the environment once per process, and give ``app`` server spans
    for every request (HTTP semantic conventions; health, readiness and metrics excluded).
    Without tracing, requests pay nothing for it."""
    if not _record_provider():
        configure_tracing(service)
    if tracing_active():
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app, excluded_urls="health,ready,metrics")


def instrument_http_client(client: httpx.AsyncClient) -> None:
    """Give each request ``client`` sends (each redirect hop too) a CLIENT span by the HTTP
    semantic conventions, and the trace context in its ``traceparent`` header. A refusal by
    the egress guard ends its span with the error. Without tracing, nothing is wrapped."""
    if not tracing_active():
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor.instrument_client(client, request_hook=_redact_url)


async def _redact_url(span: Span, request: RequestInfo) -> None:
    # A chrono's URL may carry a token in its query or user info; the trace gets its shape.
    span.set_attribute(URL_FULL, redacted_url(str(request.url)))


def redacted_url(url: str) -> str:
    """``url`` without user info and with every query value replaced by ``REDACTED``."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    query = urlencode(
        [(key, "REDACTED") for key, _ in parse_qsl(parts.query, keep_blank_values=True)],
        safe="",
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


@contextmanager
def consumer_span(
    name: str,
    headers: Mapping[str, str] | None,
    attributes: Mapping[str, str] | None = None,
    *,
    start_time: int | None = None,
) -> Iterator[Span]:
    """A CONSUMER span continuing the trace whose context came in the message headers, and
    linking to the span named in a ``CF-Trace-Link`` header. Free when tracing is off.

    ``start_time`` (ns since the epoch) back-dates the span, for work already done.
    """
    if not tracing_active():
        yield trace.INVALID_SPAN
        return
    carrier = dict(headers or {})
    tracer = trace.get_tracer(TRACER_NAME)
    with tracer.start_as_current_span(
        name,
        context=propagate.extract(carrier),
        kind=SpanKind.CONSUMER,
        attributes=dict(attributes or {}),
        links=_links(carrier),
        start_time=start_time,
    ) as span:
        yield span


def _links(carrier: Mapping[str, str]) -> list[Link]:
    value = carrier.get(names.TRACE_LINK)
    if not value:
        return []
    linked = trace.get_current_span(_TRACECONTEXT.extract({names.TRACEPARENT: value}))
    context = linked.get_span_context()
    return [Link(context)] if context.is_valid else []


def inject(headers: dict[str, str]) -> dict[str, str]:
    """Add the current trace context to outgoing message headers (returns them).

    Nothing to add in a process that does not trace: :func:`consumer_span` makes no span
    current there, so no context is carried (and every event would pay for the propagators
    finding that out)."""
    if tracing_active():
        propagate.inject(headers)
    return headers


def trace_headers(*, link: bool = False) -> dict[str, str]:
    """The current trace context as message headers: to be continued by the consumer, or with
    ``link`` only pointed to (``CF-Trace-Link``), so the consumer starts a trace of its own."""
    headers = inject({})  # empty when this process does not trace
    if not link:
        return headers
    parent = headers.get(names.TRACEPARENT)
    return {names.TRACE_LINK: parent} if parent else {}


def carried_trace(headers: Mapping[str, str] | None) -> dict[str, str]:
    """The trace headers of a stored message, to keep when the message is rewritten."""
    return {k: v for k, v in (headers or {}).items() if k in TRACE_HEADERS}
