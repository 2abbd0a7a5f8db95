"""The error shape every gateway endpoint answers with (the api's), and WAHA's failures in it.

``{"error": {"status", "code", "message", "fields": [{"field", "message"}]}}``
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

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


class GatewayError(Exception):
    """Raised by routes; rendered in the stable shape."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        fields: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or []
        self.headers = headers


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


def from_waha(exc: WahaError) -> GatewayError:
    """How a WAHA failure reaches a client of the gateway."""
    if isinstance(exc, WahaRateLimitedError):
        headers = None if exc.retry_after is None else {"Retry-After": f"{exc.retry_after:.0f}"}
        return GatewayError(429, "rate_limited", str(exc), headers=headers)
    if isinstance(exc, WahaUnauthorizedError):
        return GatewayError(
            502, "waha_unauthorized", "WAHA refused the gateway's API key (check WAHA_API_KEY)"
        )
    for kind, status, code in _MAPPING:
        if isinstance(exc, kind):
            if status is not None:
                return GatewayError(status, code, str(exc))
            assert isinstance(exc, WahaHTTPError)
            kept = exc.status_code if exc.status_code in (400, 409, 422) else 422
            return GatewayError(kept, code, str(exc))
    return GatewayError(502, "waha_error", str(exc))


def _render(
    status: int,
    code: str,
    message: str,
    fields: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"status": status, "code": code, "message": message}
    body["fields"] = fields or []
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Render gateway errors, WAHA failures and FastAPI's own errors in the stable shape."""

    @app.exception_handler(GatewayError)
    async def gateway_error(_: Request, exc: GatewayError) -> JSONResponse:
        return _render(exc.status, exc.code, exc.message, exc.fields, exc.headers)

    @app.exception_handler(WahaError)
    async def waha_error(_: Request, exc: WahaError) -> JSONResponse:
        error = from_waha(exc)
        return _render(error.status, error.code, error.message, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def request_invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [
            {
                "field": ".".join(
                    str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path")
                )
                or "body",
                "message": str(e.get("msg", "")),
            }
            for e in exc.errors()
        ]
        summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:5])
        return _render(422, "validation_error", summary, fields)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "http_error"
        )
        headers = dict(exc.headers) if exc.headers else None
        return _render(exc.status_code, code, str(exc.detail), headers=headers)
