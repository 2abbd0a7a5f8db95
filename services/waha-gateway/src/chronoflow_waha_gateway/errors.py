"""WAHA's failures in the error shape every gateway endpoint answers with (the api's:
:mod:`chronoflow_platform.errors`)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from chronoflow_platform import errors
from chronoflow_platform.errors import ApiError
from chronoflow_waha_gateway.waha_client import (
    WahaClientError,
    WahaError,
    WahaHTTPError,
    WahaNotFoundError,
    WahaProtocolError,
    WahaRateLimitedError,
    WahaSessionStatusError,
    WahaTransportError,
    WahaUnauthorizedError,
)

#: WAHA's failures, most specific first: (kind, HTTP status, code); None keeps WAHA's 4xx.
_MAPPING: tuple[tuple[type[WahaError], int | None, str], ...] = (
    (WahaSessionStatusError, 409, "session_status"),
    (WahaNotFoundError, 404, "not_found"),
    (WahaUnauthorizedError, 502, "waha_unauthorized"),
    (WahaClientError, None, "waha_rejected"),
    (WahaTransportError, 503, "waha_unavailable"),
    (WahaHTTPError, 502, "waha_error"),
    (WahaProtocolError, 502, "waha_error"),
)


def from_waha(exc: WahaError) -> ApiError:
    """How a WAHA failure reaches a client of the gateway."""
    if isinstance(exc, WahaRateLimitedError):
        headers = None if exc.retry_after is None else {"Retry-After": f"{exc.retry_after:.0f}"}
        return ApiError(429, "rate_limited", str(exc), headers=headers)
    if isinstance(exc, WahaUnauthorizedError):
        return ApiError(
            502, "waha_unauthorized", "WAHA refused the gateway's API key (check WAHA_API_KEY)"
        )
    for kind, status, code in _MAPPING:
        if isinstance(exc, kind):
            if status is not None:
                return ApiError(status, code, str(exc))
            assert isinstance(exc, WahaHTTPError)
            kept = exc.status_code if exc.status_code in (400, 409, 422) else 422
            return ApiError(kept, code, str(exc))
    return ApiError(502, "waha_error", str(exc))


def install_error_handlers(app: FastAPI) -> None:
    """Render gateway errors, WAHA failures and FastAPI's own errors in the stable shape."""
    errors.install_error_handlers(app)

    @app.exception_handler(WahaError)
    async def waha_error(_: Request, exc: WahaError) -> JSONResponse:
        error = from_waha(exc)
        return errors.render(error.detail, error.headers)
