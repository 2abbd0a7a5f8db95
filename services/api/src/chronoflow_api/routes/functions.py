"""``/functions``: saved user JavaScript (execution lives in executor-function)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from chronoflow_api import queries
from chronoflow_api.deps import IfMatch, ServicesDep
from chronoflow_api.errors import ErrorBody, not_found
from chronoflow_api.routes.chronos import ERRORS, Skip, Take
from chronoflow_api.schemas import (
    FunctionCreate,
    FunctionOut,
    FunctionPatch,
    FunctionTestIn,
    FunctionTestOut,
    Page,
)

router = APIRouter(prefix="/functions", tags=["functions"])


@router.post("", status_code=status.HTTP_201_CREATED, responses=ERRORS)
async def create_function(
    body: FunctionCreate, services: ServicesDep, response: Response
) -> FunctionOut:
    """Save a function (version 1, sha256 checksum of the code)."""
    function = await services.create_function(body)
    response.headers["Location"] = f"/functions/{function.id}"
    return function


@router.get("", responses=ERRORS)
async def list_functions(
    services: ServicesDep, skip: Skip = 0, take: Take = 20
) -> Page[FunctionOut]:
    """Functions, newest first, without their code."""
    items, total = await queries.list_functions(services.engine, skip=skip, take=take)
    return Page[FunctionOut](items=items, total=total, skip=skip, take=take)


@router.get("/{function_id}", responses=ERRORS)
async def get_function(function_id: str, services: ServicesDep) -> FunctionOut:
    """One function with its code and persistent state."""
    function = await queries.get_function(services.engine, function_id)
    if function is None:
        raise not_found("function", function_id)
    return function


@router.patch("/{function_id}", responses=ERRORS)
async def update_function(
    function_id: str, body: FunctionPatch, services: ServicesDep, if_match: IfMatch
) -> FunctionOut:
    """Save a new version of the code, limits or channel."""
    return await services.update_function(function_id, body, if_match)


@router.delete("/{function_id}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
async def delete_function(function_id: str, services: ServicesDep, if_match: IfMatch) -> None:
    """Delete a function."""
    await services.delete_function(function_id, if_match)


@router.post(
    "/{function_id}/test",
    responses={
        **ERRORS,
        504: {"model": ErrorBody, "description": "No executor-function answered in time"},
    },
)
async def test_function(
    function_id: str, body: FunctionTestIn, services: ServicesDep, request: Request
) -> FunctionTestOut:
    """Run the function once now, in executor-function's sandbox, and return its result.

    Its `ctx.http` and `ctx.message` calls are real (on the function's channel); its state is
    not saved and no run is recorded. The answer waits for the run: up to the function's
    `timeoutMs` plus a margin.
    """
    return await services.test_function(function_id, body, request.app.state.runtime.nc)
