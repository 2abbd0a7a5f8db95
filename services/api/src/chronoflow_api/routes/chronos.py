"""``/chronos``: create, list, read, update, delete, pause, resume, trigger, runs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from chronoflow_api import queries
from chronoflow_api.deps import IfMatch, ServicesDep
from chronoflow_api.errors import ErrorBody, not_found
from chronoflow_api.schemas import (
    ChronoCreate,
    ChronoOut,
    ChronoPatch,
    Page,
    RunOut,
    TriggerOut,
)
from chronoflow_contracts.chrono import TargetType

router = APIRouter(prefix="/chronos", tags=["chronos"])
ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody},
    404: {"model": ErrorBody},
    409: {"model": ErrorBody},
    422: {"model": ErrorBody},
}

Skip = Annotated[int, Query(ge=0, le=1_000_000)]
Take = Annotated[int, Query(ge=1, le=200)]


def _etag(response: Response, version: int) -> None:
    response.headers["ETag"] = f'"{version}"'


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ChronoOut, responses=ERRORS)
async def create_chrono(body: ChronoCreate, services: ServicesDep) -> Response:
    """Create a chrono; answers with it as the next read will show it."""
    # Most creates are answered before they get here, by the same steps in
    # chronoflow_api.shortcut; this route documents the operation and takes the rest.
    return created_response(await services.create_chrono(body))


def created_response(chrono: ChronoOut) -> Response:
    """The 201 answer to a create."""
    # Encoded here: given the model, FastAPI would validate what was just built before encoding
    # it, a cost on the API's busiest route.
    response = Response(
        chrono.model_dump_json(by_alias=True),
        status_code=status.HTTP_201_CREATED,
        media_type="application/json",
        headers={"Location": f"/chronos/{chrono.id}"},
    )
    _etag(response, chrono.version)
    return response


@router.get("", responses=ERRORS)
async def list_chronos(  # noqa: PLR0917 - FastAPI query parameters
    services: ServicesDep,
    skip: Skip = 0,
    take: Take = 20,
    cursor: Annotated[str | None, Query(description="nextCursor of the previous page")] = None,
    is_active: Annotated[bool | None, Query(alias="isActive")] = None,
    target_type: Annotated[TargetType | None, Query(alias="targetType")] = None,
    name: Annotated[str | None, Query(max_length=200, description="substring, any case")] = None,
) -> Page[ChronoOut]:
    """Chronos, newest first; ``skip``/``take`` or ``cursor`` for large tables."""
    items, total, next_cursor = await queries.list_chronos(
        services.engine,
        skip=skip,
        take=take,
        cursor=cursor,
        is_active=is_active,
        target_type=target_type.value if target_type else None,
        name=name,
    )
    return Page[ChronoOut](items=items, total=total, skip=skip, take=take, next_cursor=next_cursor)


@router.get("/{chrono_id}", responses=ERRORS)
async def get_chrono(chrono_id: str, services: ServicesDep, response: Response) -> ChronoOut:
    """One chrono."""
    chrono = await queries.get_chrono(services.engine, chrono_id)
    if chrono is None:
        raise not_found("chrono", chrono_id)
    _etag(response, chrono.version)
    return chrono


@router.patch("/{chrono_id}", responses=ERRORS)
async def update_chrono(
    chrono_id: str, body: ChronoPatch, services: ServicesDep, if_match: IfMatch, response: Response
) -> ChronoOut:
    """Change fields; send ``version`` (or ``If-Match``) to refuse lost updates with a 409."""
    chrono = await services.update_chrono(chrono_id, body, if_match)
    _etag(response, chrono.version)
    return chrono


@router.delete("/{chrono_id}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
async def delete_chrono(chrono_id: str, services: ServicesDep, if_match: IfMatch) -> None:
    """Delete a chrono; its schedule is cancelled, its run history kept."""
    await services.delete_chrono(chrono_id, if_match)


@router.post("/{chrono_id}/pause", responses=ERRORS)
async def pause_chrono(chrono_id: str, services: ServicesDep, if_match: IfMatch) -> ChronoOut:
    """Stop firing until resumed."""
    return await services.pause_chrono(chrono_id, if_match)


@router.post("/{chrono_id}/resume", responses=ERRORS)
async def resume_chrono(chrono_id: str, services: ServicesDep, if_match: IfMatch) -> ChronoOut:
    """Fire again; the next occurrence is computed from now."""
    return await services.resume_chrono(chrono_id, if_match)


@router.post("/{chrono_id}/trigger", status_code=status.HTTP_202_ACCEPTED, responses=ERRORS)
async def trigger_chrono(chrono_id: str, services: ServicesDep) -> TriggerOut:
    """Run now (``trigger=MANUAL``); the schedule does not move."""
    return await services.trigger_chrono(chrono_id)


@router.get("/{chrono_id}/runs", responses=ERRORS)
async def list_runs(
    chrono_id: str, services: ServicesDep, skip: Skip = 0, take: Take = 20
) -> Page[RunOut]:
    """The chrono's runs, newest first (one row per attempt)."""
    items, total = await queries.list_runs(services.engine, chrono_id, skip=skip, take=take)
    return Page[RunOut](items=items, total=total, skip=skip, take=take)
