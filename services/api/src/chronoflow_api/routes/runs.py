"""``/runs/{id}``."""

from __future__ import annotations

from fastapi import APIRouter

from chronoflow_api import queries
from chronoflow_api.deps import ServicesDep
from chronoflow_api.errors import ErrorBody, not_found
from chronoflow_api.schemas import RunOut

router = APIRouter(prefix="/runs", tags=["runs"])


@router.get("/{run_id}", responses={401: {"model": ErrorBody}, 404: {"model": ErrorBody}})
async def get_run(run_id: str, services: ServicesDep) -> RunOut:
    """One attempt of one occurrence."""
    run = await queries.get_run(services.engine, run_id)
    if run is None:
        raise not_found("run", run_id)
    return run
