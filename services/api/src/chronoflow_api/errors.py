"""The one error shape every endpoint answers with, and the handlers that produce it.

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


def invalid(field: str, message: str, accepted: list[str] | None = None) -> ApiError:
    """A 422 about one field."""
    return ApiError(
        422,
        "validation_error",
        f"{field}: {message}",
        fields=[FieldError(field=field, message=message, accepted=accepted)],
    )


def not_found(kind: str, ident: str) -> ApiError:
    """A 404 naming what was looked for."""
    return ApiError(404, "not_found", f"{kind} {ident} not found")


def conflict(message: str, current_version: int | None) -> ApiError:
    """A 409: the resource moved on since the version the client (or we) validated against."""
    return ApiError(409, "version_conflict", message, current_version=current_version)


def _render(detail: ErrorDetail, headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorBody(error=detail).model_dump(mode="json", by_alias=True, exclude_none=True)
    return JSONResponse(body, status_code=detail.status, headers=headers)


def _loc_to_field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    """Render every error, FastAPI's own included, in the stable shape."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _render(exc.detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def request_invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [
            FieldError(field=_loc_to_field(tuple(e.get("loc", ()))), message=e.get("msg", ""))
            for e in exc.errors()
        ]
        summary = "; ".join(f"{f.field}: {f.message}" for f in fields[:5])
        return _render(
            ErrorDetail(status=422, code="validation_error", message=summary, fields=fields)
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "http_error"
        )
        return _render(
            ErrorDetail(status=exc.status_code, code=code, message=str(exc.detail)),
            dict(exc.headers) if exc.headers else None,
        )
