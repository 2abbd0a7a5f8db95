"""Typed async client for WAHA's HTTP API: sessions, pairing and ``sendText``, with typed errors.

``WahaClient(base_url, api_key)`` from configuration; ``send_text`` returns the message id and
raises ``WahaSessionNotWorkingError`` / ``WahaRateLimitedError`` (with ``retry_after``) /
other ``WahaError`` subclasses. See ``errors`` for how WAHA signals each failure.
"""

from chronoflow_waha_gateway.waha_client.client import API_KEY_HEADER, SESSION_NAME, WahaClient
from chronoflow_waha_gateway.waha_client.errors import (
    WahaClientError,
    WahaError,
    WahaHTTPError,
    WahaNotFoundError,
    WahaProtocolError,
    WahaRateLimitedError,
    WahaServerError,
    WahaSessionNotWorkingError,
    WahaSessionStatusError,
    WahaTransportError,
    WahaUnauthorizedError,
    carries_429,
    parse_retry_after,
)
from chronoflow_waha_gateway.waha_client.models import MeInfo, QRImage, SessionStatus, WahaSession

__all__ = [
    "API_KEY_HEADER",
    "SESSION_NAME",
    "MeInfo",
    "QRImage",
    "SessionStatus",
    "WahaClient",
    "WahaClientError",
    "WahaError",
    "WahaHTTPError",
    "WahaNotFoundError",
    "WahaProtocolError",
    "WahaRateLimitedError",
    "WahaServerError",
    "WahaSession",
    "WahaSessionNotWorkingError",
    "WahaSessionStatusError",
    "WahaTransportError",
    "WahaUnauthorizedError",
    "carries_429",
    "parse_retry_after",
]
