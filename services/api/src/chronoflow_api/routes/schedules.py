"""``POST /schedules/preview``: check a phrase before saving it."""

from __future__ import annotations

from fastapi import APIRouter

from chronoflow_api.deps import ServicesDep
from chronoflow_api.domain import InvalidInputError, parse_schedule
from chronoflow_api.errors import FieldError
from chronoflow_api.routes.chronos import ERRORS
from chronoflow_api.schemas import SchedulePreviewIn, SchedulePreviewOut
from chronoflow_contracts import utc_now
from chronoflow_schedule import next_n

router = APIRouter(prefix="/schedules", tags=["schedules"])


@router.post("/preview", responses=ERRORS)
async def preview(body: SchedulePreviewIn, services: ServicesDep) -> SchedulePreviewOut:
    """The normalized schedule, a human description and the next five fire times."""
    now = utc_now()
    errors: list[FieldError] = []
    schedule = parse_schedule(
        body.cron, body.timezone or services.policy.default_timezone, now, errors
    )
    if schedule is None:
        raise InvalidInputError(errors)
    return SchedulePreviewOut(
        schedule=schedule, description=schedule.description, next_runs=next_n(schedule, now, 5)
    )
