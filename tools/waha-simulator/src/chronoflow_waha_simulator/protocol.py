"""WAHA's wire protocol in one place: statuses, header names, version, and its error bodies.

Everything here is taken from WAHA's published OpenAPI document (version 2026.7.1) and from how
WAHA's NestJS server shapes its errors, so the simulator answers the way WAHA answers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

WAHA_VERSION = "2026.7.1"
"""The WAHA release whose contract (``shared/waha/openapi.json``) the simulator follows."""

ENGINE = "WEBJS"
"""WAHA's default engine; it appears in session info and in every event envelope."""

TIER = "CORE"

API_KEY_HEADER = "X-Api-Key"

WEBHOOK_HMAC_HEADER = "X-Webhook-Hmac"
"""Hex HMAC of the raw request body, present when the webhook has an HMAC key."""
WEBHOOK_HMAC_ALGORITHM_HEADER = "X-Webhook-Hmac-Algorithm"
WEBHOOK_HMAC_ALGORITHM = "sha512"
WEBHOOK_REQUEST_ID_HEADER = "X-Webhook-Request-Id"
WEBHOOK_TIMESTAMP_HEADER = "X-Webhook-Timestamp"
"""Unix time in milliseconds when the webhook was sent."""

SESSION_STATUS_EVENT = "session.status"

NOT_AS_EXPECTED = "Session status is not as expected. Try again later or restart the session"


class SessionStatus(StrEnum):
    """``SessionInfo.status`` in the contract."""

    STOPPED = "STOPPED"
    STARTING = "STARTING"
    SCAN_QR_CODE = "SCAN_QR_CODE"
    PASSKEY_REQUIRED = "PASSKEY_REQUIRED"
    PASSKEY_CONFIRMATION_REQUIRED = "PASSKEY_CONFIRMATION_REQUIRED"
    WORKING = "WORKING"
    FAILED = "FAILED"


def environment() -> dict[str, Any]:
    """``WAHAEnvironment`` as WAHA puts it in every event envelope."""
    return {
        "version": WAHA_VERSION,
        "engine": ENGINE,
        "tier": TIER,
        "browser": "chronoflow-waha-simulator",
        "platform": "linux/x64",
        "worker": {"id": "simulator"},
    }


class WahaHTTPError(Exception):
    """An error answered with WAHA's status code, JSON body and headers."""

    def __init__(self, status_code: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status_code}: {body}")
        self.status_code = status_code
        self.body = body
        self.headers = headers or {}


_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    422: "Unprocessable Entity",
}


def http_error(status_code: int, message: str | list[str]) -> WahaHTTPError:
    """A NestJS ``HttpException`` body: ``{message, error, statusCode}``."""
    reason = _REASONS.get(status_code, "Error")
    return WahaHTTPError(
        status_code, {"message": message, "error": reason, "statusCode": status_code}
    )


def unauthorized() -> WahaHTTPError:
    """What WAHA answers for a missing or wrong ``X-Api-Key``."""
    return WahaHTTPError(401, {"message": "Unauthorized", "statusCode": 401})


def session_not_found() -> WahaHTTPError:
    """The session routes' answer for an unknown session."""
    return http_error(404, "Session not found")


def session_not_running(name: str) -> WahaHTTPError:
    """WAHA's answer when a session-scoped call names a session that is not running.

    WAHA keeps only running sessions in memory, so a ``STOPPED`` session is "not found" here.
    """
    return http_error(
        404,
        f"We didn't find a session with name '{name}'.\n"
        f"Please start it first by using POST /api/sessions/{name}/start request",
    )


def status_not_expected(
    name: str, status: SessionStatus, expected: list[SessionStatus]
) -> WahaHTTPError:
    """WAHA's 422 when a running session is not in the status an operation needs."""
    return WahaHTTPError(
        422,
        {
            "error": NOT_AS_EXPECTED,
            "session": name,
            "status": status.value,
            "expected": [s.value for s in expected],
        },
    )


def too_many_requests(retry_after: float | None) -> WahaHTTPError:
    """A 429 as WAHA's throttler (or a proxy in front of it) answers."""
    headers = {} if retry_after is None else {"Retry-After": retry_after_header(retry_after)}
    return WahaHTTPError(
        429, {"statusCode": 429, "message": "ThrottlerException: Too Many Requests"}, headers
    )


def internal_error(
    *,
    status_code: int,
    exception: dict[str, Any],
    path: str,
    method: str,
    body: Any,
    headers: dict[str, str] | None = None,
) -> WahaHTTPError:
    """A non-HTTP exception as WAHA's ``AllExceptionsFilter`` serializes it."""
    return WahaHTTPError(
        status_code,
        {
            "statusCode": status_code,
            "timestamp": datetime.now(UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "exception": exception,
            "request": {"path": path, "method": method, "body": body, "query": {}},
            "version": environment(),
        },
        headers,
    )


def rate_overlimit_exception() -> dict[str, Any]:
    """WhatsApp's rate limit as the engine raises it: a Boom error carrying 429 inside."""
    return {
        "message": "rate-overlimit",
        "name": "Error",
        "isBoom": True,
        "isServer": False,
        "data": 429,
        "output": {
            "statusCode": 429,
            "payload": {
                "statusCode": 429,
                "error": "Too Many Requests",
                "message": "rate-overlimit",
            },
            "headers": {},
        },
    }


def retry_after_header(value: float) -> str:
    """Seconds for ``Retry-After``: an integer when whole (the simulator allows fractions)."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
