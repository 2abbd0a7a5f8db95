"""Support for tests and benchmarks of every executor: run requests as the scheduler emits them,
and a poll helper. Not used by the services themselves."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
from nats.js import JetStreamContext
from nats.js.api import PubAck

from chronoflow_contracts import names, new_id, utc_now
from chronoflow_contracts.chrono import ChronoDefinition, RetryPolicy, TargetType
from chronoflow_contracts.runs import (
    RunRequested,
    Trigger,
    occurrence_id,
    run_id,
    run_request_msg_id,
)
from chronoflow_contracts.schedule import NormalizedSchedule
from chronoflow_platform.executor.rules import KINDS
from chronoflow_platform.publishing import publish_event


def one_off_definition(target_type: TargetType, name: str, **fields: Any) -> ChronoDefinition:
    """A one-off chrono's definition (runs are requested directly), as the scheduler snapshots
    it into a RunRequested; ``fields`` are the target's own (``url``, ``channel_id``, ...)."""
    return ChronoDefinition(
        name=name,
        cron="in 1 hour",
        timezone="UTC",
        schedule=NormalizedSchedule(
            type="once", run_at=utc_now(), timezone="UTC", description="once"
        ),
        target_type=target_type,
        **fields,
    )


def retry_policy(
    *, attempts: int, delay_ms: int, backoff: str = "fixed", jitter: bool = False
) -> RetryPolicy:
    """A retry policy whose longest delay is at least a minute."""
    return RetryPolicy(
        attempts=attempts,
        backoff="exponential" if backoff == "exponential" else "fixed",
        delay_ms=delay_ms,
        max_delay_ms=max(delay_ms, 60_000),
        jitter=jitter,
    )


def run_request(
    definition: ChronoDefinition,
    *,
    chrono_id: str | None = None,
    scheduled_for: datetime | None = None,
    attempt: int = 1,
    trigger: Trigger = Trigger.SCHEDULE,
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
        trigger=trigger,
        attempt=attempt,
        target_type=definition.target_type,
        chrono_version=1,
        chrono_name=definition.name,
        definition=definition,
        correlation_id=new_id(),
    )


async def publish_run(js: JetStreamContext, request: RunRequested) -> PubAck:
    """Put ``request`` on its target's work queue exactly as the scheduler does."""
    return await publish_event(
        js,
        names.work_subject(KINDS[request.target_type]),
        request,
        msg_id=run_request_msg_id(request.chrono_id, request.scheduled_for, request.attempt),
    )


async def until(check: Callable[[], object], *, interval: float = 0.05) -> Any:
    """Poll ``check`` (plain or async) until it returns something truthy, and return that;
    bound it with ``asyncio.timeout``."""
    while True:
        outcome = check()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome:
            return outcome
        await asyncio.sleep(interval)


#: The statuses a run attempt ends with.
TERMINAL = frozenset({"SUCCESS", "FAILED", "TIMEOUT"})


async def run_history(
    api: httpx.AsyncClient, chrono_id: str, *, attempts: int = 1, wait_s: float = 20.0
) -> list[dict[str, Any]]:
    """The chrono's runs through the api, oldest attempt first, once ``attempts`` of them are
    terminal."""
    async with asyncio.timeout(wait_s):
        while True:
            response = await api.get(f"/chronos/{chrono_id}/runs", params={"take": 100})
            assert response.status_code == 200, response.text
            items: list[dict[str, Any]] = response.json()["items"]
            if sum(1 for r in items if r["status"] in TERMINAL) >= attempts:
                return sorted(items, key=lambda r: (r["scheduledFor"], r["attempt"]))
            await asyncio.sleep(0.05)
