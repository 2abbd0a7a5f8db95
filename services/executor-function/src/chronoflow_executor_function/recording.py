"""What a run's events carry about it, and how its next attempt is put back on the queue."""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict

from nats.js import JetStreamContext

from chronoflow_contracts import names, new_id, utc_now
from chronoflow_contracts.runs import (
    RunCompleted,
    RunRequested,
    Trigger,
    run_id,
    run_request_msg_id,
)
from chronoflow_executor_function import domain
from chronoflow_platform.publishing import publish_event


class Identity(TypedDict):
    """The fields every run event repeats from its RunRequested."""

    chrono_id: str
    run_id: str
    occurrence_id: str
    scheduled_for: datetime
    trigger: Trigger
    attempt: int
    correlation_id: str | None
    causation_id: str | None


def identity(request: RunRequested) -> Identity:
    """The run's identity, caused by ``request``."""
    return {
        "chrono_id": request.chrono_id,
        "run_id": request.run_id,
        "occurrence_id": request.occurrence_id,
        "scheduled_for": request.scheduled_for,
        "trigger": request.trigger,
        "attempt": request.attempt,
        "correlation_id": request.correlation_id,
        "causation_id": request.event_id,
    }


async def publish_retry(
    js: JetStreamContext, request: RunRequested, completed: RunCompleted, due: datetime
) -> None:
    """Queue the next attempt at ``due``: at once if due, else as an ``@at`` schedule in the
    work stream, which nats-server moves to the queue when due (so it survives any restart).
    Its message id (the scheduler's scheme) makes a second scheduling a no-op."""
    attempt = request.attempt + 1
    following = request.model_copy(
        update={
            "event_id": new_id(),
            "occurred_at": utc_now(),
            "causation_id": completed.event_id,
            "attempt": attempt,
            "run_id": run_id(request.occurrence_id, attempt),
        }
    )
    msg_id = run_request_msg_id(request.chrono_id, request.scheduled_for, attempt)
    target = names.work_subject(domain.TARGET)
    if due <= utc_now():
        await publish_event(js, target, following, msg_id=msg_id)
        return
    await publish_event(
        js,
        names.work_retry_subject(domain.TARGET, following.run_id),
        following,
        msg_id=msg_id,
        extra_headers={
            names.SCHEDULE: domain.schedule_header(due),
            names.SCHEDULE_TARGET: target,
            names.DUE_AT: due.isoformat(),
        },
    )
