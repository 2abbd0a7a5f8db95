"""WAHA's failures as typed exceptions, and how an error answer maps onto them.

How WAHA signals trouble: 401 for a wrong ``X-Api-Key``; on a session-scoped call (sendText,
QR, request-code) 404 when the session is not running (STOPPED or unknown) and 422
``{"error": "Session status is not as expected...", "status", "expected"}`` when it runs in
another status; 429, or a 5xx whose body carries WhatsApp's 429 (``rate-overlimit``), when
throttled; other 5xx from the engine.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
from datetime import UTC, datetime
from typing import Any

_DETAIL_CHARS = 300
_RATE_LIMIT_TEXT = re.compile(r"\b429\b|rate[- ]?overlimit|too many requests", re.IGNORECASE)


class WahaError(Exception):
    """Any failure talking to WAHA. ``retryable``: whether trying again later may succeed."""

    retryable = False

    def __init__(self, message: str, *, operation: str) -> None:
        super().__init__(message)
        self.operation = operation


class WahaTransportError(WahaError):
    """No answer: connection refused or reset, or a timeout."""

    retryable = True


class WahaProtocolError(WahaError):
    """A success answer this client cannot read (not the shape WAHA's contract gives)."""


class WahaHTTPError(WahaError):
    """WAHA answered with an error status; ``detail`` is a short, key-free excerpt of the body."""

    def __init__(self, message: str, *, operation: str, status_code: int, detail: str) -> None:
        super().__init__(message, operation=operation)
        self.status_code = status_code
        self.detail = detail


class WahaRateLimitedError(WahaHTTPError):
    """WhatsApp's (or WAHA's) rate limit: a 429, or a 5xx whose body carries 429."""

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        operation: str,
        status_code: int,
        detail: str,
        retry_after: float | None,
    ) -> None:
        super().__init__(message, operation=operation, status_code=status_code, detail=detail)
        self.retry_after = retry_after
        """Seconds to wait, from ``Retry-After``; None when WAHA gave none."""


class WahaServerError(WahaHTTPError):
    """Any other 5xx."""

    retryable = True


class WahaClientError(WahaHTTPError):
    """Any other 4xx: the request itself is wrong (e.g. a session name already taken)."""


class WahaUnauthorizedError(WahaClientError):
    """401/403: WAHA refused the API key."""


class WahaNotFoundError(WahaClientError):
    """404 from a session route: no such session."""


class WahaSessionStatusError(WahaClientError):
    """The session is not in the status the call needs (``status`` None: not running)."""

    def __init__(
        self,
        message: str,
        *,
        operation: str,
        status_code: int,
        detail: str,
        session: str,
        status: str | None,
        expected: list[str],
    ) -> None:
        super().__init__(message, operation=operation, status_code=status_code, detail=detail)
        self.session = session
        self.status = status
        self.expected = expected


class WahaSessionNotWorkingError(WahaSessionStatusError):
    """``send_text`` through a session that is not WORKING."""


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); None if unusable."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def carries_429(body: str) -> bool:
    """Whether an error body reports a 429 (WhatsApp's ``rate-overlimit`` inside a 5xx).

    WAHA's 500 body echoes the request under ``request``; a "429" in the message text there
    must not count, so that member is ignored.
    """
    try:
        parsed = json.loads(body)
    except ValueError:
        return bool(_RATE_LIMIT_TEXT.search(body))
    if isinstance(parsed, dict):
        parsed = {k: v for k, v in parsed.items() if k != "request"}
    return _mentions_429(parsed)


def _mentions_429(node: Any) -> bool:
    if isinstance(node, bool):
        return False
    if isinstance(node, int | float):
        return node == 429
    if isinstance(node, str):
        return bool(_RATE_LIMIT_TEXT.search(node))
    if isinstance(node, dict):
        return any(_mentions_429(v) for v in node.values())
    if isinstance(node, list):
        return any(_mentions_429(v) for v in node)
    return False


def _detail(body: Any, text: str) -> str:
    if isinstance(body, dict):
        exception = body.get("exception")
        candidates = [
            body.get("message"),
            body.get("error"),
            exception.get("message") if isinstance(exception, dict) else None,
        ]
        for candidate in candidates:
            words = "; ".join(map(str, candidate)) if isinstance(candidate, list) else candidate
            if isinstance(words, str) and words:
                return words[:_DETAIL_CHARS]
    return " ".join(text.split())[:_DETAIL_CHARS] or "(empty body)"


def error_for(
    operation: str,
    status_code: int,
    text: str,
    *,
    retry_after: str | None,
    session: str | None,
) -> WahaHTTPError:
    """The exception for an error answer (``text`` already free of the API key).

    ``session`` is given for session-scoped calls, where 404/422 mean a status problem.
    """
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = None
    detail = _detail(body, text)
    prefix = f"WAHA {operation}: HTTP {status_code}"
    common: dict[str, Any] = {"operation": operation, "status_code": status_code, "detail": detail}
    if status_code == 429 or (status_code >= 500 and carries_429(text)):
        seconds = parse_retry_after(retry_after)
        wait = "" if seconds is None else f", retry after {seconds:g} s"
        return WahaRateLimitedError(
            f"{prefix}: rate limited{wait}: {detail}", retry_after=seconds, **common
        )
    if session is not None and (status_error := _status_error(prefix, body, session, common)):
        return status_error
    kind: type[WahaHTTPError] = WahaClientError
    if status_code >= 500:
        kind = WahaServerError
    elif status_code in (401, 403):
        kind, detail = WahaUnauthorizedError, "WAHA refused the API key"
    elif status_code == 404:
        kind = WahaNotFoundError
    return kind(f"{prefix}: {detail}", **common)


def _status_error(
    prefix: str, body: Any, session: str, common: dict[str, Any]
) -> WahaSessionStatusError | None:
    kind = (
        WahaSessionNotWorkingError if common["operation"] == "sendText" else WahaSessionStatusError
    )
    if common["status_code"] == 422 and isinstance(body, dict) and "expected" in body:
        status = str(body.get("status"))
        expected = [str(s) for s in body.get("expected") or []]
        message = f"{prefix}: session '{session}' is {status}, not {' or '.join(expected)}"
        return kind(message, session=session, status=status, expected=expected, **common)
    if common["status_code"] == 404:
        message = f"{prefix}: session '{session}' is not running (stopped or unknown)"
        return kind(message, session=session, status=None, expected=[], **common)
    return None
