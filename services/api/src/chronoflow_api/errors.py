"""The api's errors, in the stable shape of :mod:`chronoflow_platform.errors`."""

from __future__ import annotations

from chronoflow_platform.errors import ApiError, ErrorBody, FieldError, install_error_handlers

__all__ = [
    "ApiError",
    "ErrorBody",
    "FieldError",
    "conflict",
    "install_error_handlers",
    "not_found",
]


def not_found(kind: str, ident: str) -> ApiError:
    """A 404 naming what was looked for."""
    return ApiError(404, "not_found", f"{kind} {ident} not found")


def conflict(message: str, current_version: int | None) -> ApiError:
    """A 409: the resource moved on since the version the client (or we) validated against."""
    return ApiError(409, "version_conflict", message, current_version=current_version)
