"""The one error shape every HTTP endpoint of ChronoFlow answers with (the api's and the
waha-gateway's), and the handlers that produce it.

``{"error": {"status", "code", "message", "fields": [{"field", "message", "accepted"?}]}}``
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from chronoflow_contracts import CamelModel


class FieldError(CamelModel):
    """One bad field: which, what is wrong, and what would be accepted."""

    field: str
    message: str
    accepted: list[str] | None = None


class ErrorDetail(CamelModel):
    """The body of every error response."""

    status: int
    code: str
    message: str
    fields: list[FieldError] = Field(default_factory=list)
    current_version: int | None = None


class ErrorBody(CamelModel):
    """``{"error": {...}}``."""

    error: ErrorDetail


class ApiError(Exception):
    """Raised by routes and services; rendered as :class:`ErrorBody`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        fields: list[FieldError] | None = None,
        current_version: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.detail = ErrorDetail(
            status=status,
            code=code,
            message=message,
            fields=fields or [],
            current_version=current_version,
        )
        self.headers = headers


def _loc_to_field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def render(detail: ErrorDetail, headers: dict[str, str] | None = None) -> JSONResponse:
    """The response carrying ``detail`` in the stable shape."""
    body = ErrorBody(error=detail).model_dump(mode="json", by_alias=True, exclude_none=True)
    return JSONResponse(body, status_code=detail.status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Render every error, FastAPI's own included, in the stable shape."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return render(exc.detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def request_invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [
            FieldError(field=_loc_to_field(tuple(e.get("loc", ()))), message=e.get("msg", ""))
            for e in exc.errors()
        ]
        summary = "; ".join(f"{f.field}: {f.message}" for f in fields[:5])
        return render(
            ErrorDetail(status=422, code="validation_error", message=summary, fields=fields)
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "http_error"
        )
        return render(
            ErrorDetail(status=exc.status_code, code=code, message=str(exc.detail)),
            dict(exc.headers) if exc.headers else None,
        )
