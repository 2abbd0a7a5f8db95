"""``Annotated`` dependencies shared by the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from chronoflow_api.auth import KeyChecker
from chronoflow_api.errors import ApiError
from chronoflow_api.service import Services


async def _services(request: Request) -> Services:
    services: Services = request.app.state.runtime.state["services"]
    return services


async def _require_key(request: Request) -> None:
    checker: KeyChecker = request.app.state.runtime.state["keys"]
    # Read straight from the request: a declared Header parameter costs a validation per call.
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key or not await checker.is_valid(key.strip()):
        raise ApiError(
            401,
            "unauthorized",
            "a valid API key is required: Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )


async def _if_match(if_match: Annotated[str | None, Header()] = None) -> int | None:
    if if_match is None:
        return None
    value = if_match.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise ApiError(422, "validation_error", 'If-Match must be a version number, e.g. "42"')
    return int(value)


ServicesDep = Annotated[Services, Depends(_services)]
IfMatch = Annotated[int | None, Depends(_if_match)]
RequireKey = Depends(_require_key)
