"""Support for tests and benchmarks: MESSAGE RunRequested factories, as the scheduler emits them.

Not used by the service itself.
"""

from __future__ import annotations

from datetime import datetime

from nats.js import JetStreamContext
from nats.js.api import PubAck

from chronoflow_contracts import names, new_id, utc_now
from chronoflow_contracts.chrono import ChronoDefinition, ExecConfig, RetryPolicy, TargetType
from chronoflow_contracts.runs import (
    RunRequested,
    Trigger,
    occurrence_id,
    run_id,
    run_request_msg_id,
)
from chronoflow_contracts.schedule import NormalizedSchedule
from chronoflow_platform.publishing import publish_event


def message_definition(
    channel_id: str,
    recipients: list[str],
    text: str = "Bom dia! Promo de hoje...",
    *,
    attempts: int = 1,
    delay_ms: int = 100,
    backoff: str = "fixed",
) -> ChronoDefinition:
    """A MESSAGE chrono's definition, as the scheduler snapshots it into a RunRequested."""
    now = utc_now()
    return ChronoDefinition(
        name="message test",
        cron="in 1 hour",
        timezone="UTC",
        schedule=NormalizedSchedule(type="once", run_at=now, timezone="UTC", description="once"),
        target_type=TargetType.MESSAGE,
        channel_id=channel_id,
        message_template=text,
        recipients=recipients,
        config=ExecConfig(
            retry=RetryPolicy(
                attempts=attempts,
                backoff="exponential" if backoff == "exponential" else "fixed",
                delay_ms=delay_ms,
                max_delay_ms=max(delay_ms, 60_000),
                jitter=False,
            )
        ),
    )


def run_request(
    definition: ChronoDefinition,
    *,
    chrono_id: str | None = None,
    scheduled_for: datetime | None = None,
    attempt: int = 1,
) -> RunRequested:
    """The RunRequested the scheduler would emit for one occurrence of ``definition``."""
    chrono = chrono_id or new_id()
    instant = scheduled_for or utc_now()
    occurrence = occurrence_id(chrono, instant)
    return RunRequested(
        chrono_id=chrono,
        run_id=run_id(occurrence, attempt),
        occurrence_id=occurrence,
        scheduled_for=instant,
        trigger=Trigger.SCHEDULE,
        attempt=attempt,
        target_type=TargetType.MESSAGE,
        chrono_version=1,
        chrono_name=definition.name,
        definition=definition,
        correlation_id=new_id(),
    )


async def publish_run(js: JetStreamContext, request: RunRequested) -> PubAck:
    """Put ``request`` on the MESSAGE work queue exactly as the scheduler does."""
    return await publish_event(
        js,
        names.work_subject("message"),
        request,
        msg_id=run_request_msg_id(request.chrono_id, request.scheduled_for, request.attempt),
    )
