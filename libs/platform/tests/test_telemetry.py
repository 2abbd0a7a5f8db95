"""What the trace keeps of a chrono's URL, and when tracing turns on."""

from __future__ import annotations

import os

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once

from chronoflow_platform.telemetry import (
    SEMCONV_OPT_IN,
    configure_tracing,
    inject,
    redacted_url,
    tracing_active,
    tracing_enabled,
)


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://hooks.example/a/b", "https://hooks.example/a/b"),
        (
            "https://user:pass@hooks.example:8443/a?token=s3cret&x=1&empty=",
            "https://hooks.example:8443/a?token=REDACTED&x=REDACTED&empty=REDACTED",
        ),
        ("http://127.0.0.1:9/hook?sig=abc#frag", "http://127.0.0.1:9/hook?sig=REDACTED"),
    ],
)
def test_url_keeps_its_shape_not_its_secrets(url: str, kept: str) -> None:
    assert redacted_url(url) == kept


@pytest.mark.parametrize(
    ("environ", "enabled"),
    [
        ({}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
                "OTEL_TRACES_EXPORTER": "none",
            },
            False,
        ),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_standard_variables_turn_tracing_on(environ: dict[str, str], enabled: bool) -> None:
    assert tracing_enabled(environ) is enabled


def test_tracing_is_active_only_while_the_provider_set_up_is_installed() -> None:
    opt_in = os.environ.get(SEMCONV_OPT_IN)
    assert not tracing_active()
    assert inject({}) == {}
    provider = configure_tracing("tests", processor=SimpleSpanProcessor(InMemorySpanExporter()))
    assert provider is not None
    try:
        assert tracing_active()
        with trace.get_tracer("tests").start_as_current_span("run"):
            assert "traceparent" in inject({})
    finally:
        provider.shutdown()
        # As the end-to-end tracing test does: the process goes back to no provider.
        trace._TRACER_PROVIDER = None
        trace._TRACER_PROVIDER_SET_ONCE = Once()
        if opt_in is None:
            os.environ.pop(SEMCONV_OPT_IN, None)
    assert not tracing_active()
    assert inject({}) == {}
