"""What the trace keeps of a chrono's URL, and when tracing turns on."""

from __future__ import annotations

import pytest

from chronoflow_platform.telemetry import redacted_url, tracing_enabled


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
