"""The pure rules: verdicts, Retry-After, backoff, the request's body and headers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from chronoflow_contracts.chrono import RetryPolicy
from chronoflow_contracts.runs import RunStatus
from chronoflow_executor_http import domain
from chronoflow_executor_http.domain import Outcome, Verdict
from chronoflow_platform.executor.rules import next_attempt

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "run_status", "retryable"),
    [
        (200, RunStatus.SUCCESS, False),
        (204, RunStatus.SUCCESS, False),
        (301, RunStatus.SUCCESS, False),
        (399, RunStatus.SUCCESS, False),
        (400, RunStatus.FAILED, False),
        (401, RunStatus.FAILED, False),
        (404, RunStatus.FAILED, False),
        (409, RunStatus.FAILED, False),
        (422, RunStatus.FAILED, False),
        (408, RunStatus.FAILED, True),
        (429, RunStatus.FAILED, True),
        (500, RunStatus.FAILED, True),
        (502, RunStatus.FAILED, True),
        (503, RunStatus.FAILED, True),
        (599, RunStatus.FAILED, True),
        (101, RunStatus.FAILED, False),
    ],
)
def test_responses_are_judged_by_status(
    status: int, run_status: RunStatus, retryable: bool
) -> None:
    verdict = domain.judge_response(status, None, NOW)
    assert verdict.status == run_status
    assert verdict.retryable is retryable
    assert verdict.http_status == status
    if run_status == RunStatus.SUCCESS:
        assert verdict.error_message is None
        assert verdict.outcome == Outcome.SUCCESS
    else:
        assert verdict.error_message == f"HTTP {status}"
        assert verdict.outcome == Outcome.HTTP_ERROR


def test_retry_after_is_read_only_where_a_retry_may_follow() -> None:
    assert domain.judge_response(429, "7", NOW).retry_after_s == 7
    assert domain.judge_response(503, "7", NOW).retry_after_s == 7
    assert domain.judge_response(404, "7", NOW).retry_after_s is None


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("2", 2.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        ("Wed, 25 Nov 2026 12:00:30 GMT", 30.0),
        ("Wed, 25 Nov 2026 11:59:00 GMT", 0.0),  # in the past: no extra wait
        ("999999999", domain.MAX_RETRY_AFTER_S),
        ("-1", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_forms(header: str | None, seconds: float | None) -> None:
    assert domain.parse_retry_after(header, NOW) == seconds


def test_failures_without_a_response() -> None:
    timeout = domain.judge_timeout(0.3)
    assert (timeout.status, timeout.outcome, timeout.retryable) == (
        RunStatus.TIMEOUT,
        Outcome.TIMEOUT,
        True,
    )
    assert timeout.error_message == "no complete response within 300 ms"
    refused = domain.judge_connection_error("Connection refused")
    assert (refused.status, refused.retryable) == (RunStatus.FAILED, True)
    assert refused.error_message == "connection error: Connection refused"
    blocked = domain.judge_refusal(Outcome.BLOCKED, "egress blocked (private): x:80")
    assert (blocked.status, blocked.retryable) == (RunStatus.FAILED, False)
    assert len(domain.judge_connection_error("x" * 5000).error_message or "") == 500


def policy(**fields: object) -> RetryPolicy:
    return RetryPolicy.model_validate(fields)


def test_next_attempt_follows_the_policy_and_honours_retry_after() -> None:
    p = policy(attempts=3, backoff="fixed", delayMs=100, jitter=False)
    failed = domain.judge_response(503, None, NOW)
    assert next_attempt(failed, p, 1, NOW, 0.5) == NOW + timedelta(milliseconds=100)
    assert next_attempt(failed, p, 2, NOW, 0.5) == NOW + timedelta(milliseconds=100)
    assert next_attempt(failed, p, 3, NOW, 0.5) is None  # attempts exhausted
    busy = domain.judge_response(429, "2", NOW)
    assert next_attempt(busy, p, 1, NOW, 0.5) == NOW + timedelta(seconds=2)
    # Retry-After is a floor, never a ceiling.
    slow = policy(attempts=3, backoff="fixed", delayMs=5000, jitter=False)
    assert next_attempt(busy, slow, 1, NOW, 0.5) == NOW + timedelta(seconds=5)
    final = domain.judge_response(404, None, NOW)
    assert next_attempt(final, p, 1, NOW, 0.5) is None
    blocked = Verdict(RunStatus.FAILED, Outcome.BLOCKED, False)
    assert next_attempt(blocked, p, 1, NOW, 0.5) is None


def test_the_body_is_compact_json_except_where_a_method_has_none() -> None:
    assert domain.encode_body({"a": "ç", "b": [1, 2]}, "POST") == '{"a":"ç","b":[1,2]}'.encode()
    assert domain.encode_body("text", "PUT") == b'"text"'
    assert domain.encode_body(0, "PATCH") == b"0"
    assert domain.encode_body(None, "POST") is None
    assert domain.encode_body({"a": 1}, "GET") is None
    assert domain.encode_body({"a": 1}, "HEAD") is None


def test_the_signature_headers_always_win() -> None:
    signature = {"webhook-id": "id", "webhook-timestamp": "1", "webhook-signature": "v1,x"}
    user = {"Webhook-Signature": "forged", "X-Other": "kept", "WEBHOOK-ID": "forged"}
    headers = domain.request_headers(user, b"{}", signature)
    assert headers == {"X-Other": "kept", "content-type": "application/json", **signature}
    # A chrono's own content type is kept; no body, no content type.
    assert domain.request_headers({"Content-Type": "text/plain"}, b"x", {})["Content-Type"] == (
        "text/plain"
    )
    assert "content-type" not in domain.request_headers({}, None, {})


def test_status_classes() -> None:
    assert [domain.status_class(s) for s in (101, 204, 302, 404, 503, None, 99, 600)] == [
        "1xx",
        "2xx",
        "3xx",
        "4xx",
        "5xx",
        "none",
        "none",
        "none",
    ]


DEFAULTS = [("accept", "*/*"), ("user-agent", "ChronoFlow-Webhooks/0.1")]


@pytest.mark.parametrize(
    ("method", "url", "headers", "body"),
    [
        ("POST", "http://sink.test:8080/hook?a=1", {"webhook-id": "o1"}, b'{"a":1}'),
        ("POST", "https://sink.test/hook", {"webhook-id": "o1"}, None),
        ("POST", "http://[::1]:9000/", {}, b""),
        ("PUT", "http://sink.test/", {"User-Agent": "mine", "X-A": "1"}, b"x"),
        ("PATCH", "http://sink.test/", {"Content-Length": "1"}, b"x"),
        ("DELETE", "http://sink.test/", {"Host": "other.test"}, None),
        ("GET", "http://sink.test/", {"transfer-encoding": "chunked"}, None),
        ("POST", "http://sink.test/", {"Transfer-Encoding": "chunked"}, None),
    ],
)
def test_a_request_is_built_as_httpx_builds_it(
    method: str, url: str, headers: dict[str, str], body: bytes | None
) -> None:
    expected_headers = httpx.Headers(DEFAULTS)
    expected_headers.update(headers)
    expected = httpx.Request(method, url, content=body, headers=expected_headers)
    built = domain.build_request(
        method, httpx.URL(url), [*DEFAULTS, *headers.items()], body, {"timeout": {}}
    )
    assert (built.method, built.url, built.content) == (
        expected.method,
        expected.url,
        expected.content,
    )
    assert built.headers.raw == expected.headers.raw
    # Set by build_request rather than worked out again by the transport: it must agree.
    assert built.headers.encoding == expected.headers.encoding
    assert built.extensions == {"timeout": {}}


def test_a_header_that_is_not_ascii_is_refused_as_httpx_refuses_it() -> None:
    with pytest.raises(UnicodeEncodeError):
        domain.build_request("POST", httpx.URL("http://sink.test/"), [("x", "é")], None, {})
