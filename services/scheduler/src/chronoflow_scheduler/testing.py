"""Drives the scheduler through real streams, standing in for the api: tests and benchmarks.

:class:`ChronoWriter` appends chrono events exactly as the api does (optimistic concurrency on
the chrono's subject, ``nextRunAt`` computed with the schedule library); :func:`stream_events`
reads what the scheduler wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from chronoflow_contracts import Event, decode, names, new_id, utc_now
from chronoflow_contracts.chrono import (
    ChronoCreated,
    ChronoDefinition,
    ChronoDeleted,
    ChronoPaused,
    ChronoResumed,
    ChronoTriggered,
    ChronoUpdated,
    ExecConfig,
    TargetType,
)
from chronoflow_contracts.schedule import NormalizedSchedule
from chronoflow_platform.publishing import publish_event
from chronoflow_schedule import next_after


def once(at: datetime) -> NormalizedSchedule:
    """A one-shot schedule."""
    return NormalizedSchedule(
        type="once", run_at=at.astimezone(UTC), timezone="UTC", description=f"once at {at}"
    )


def every(seconds: int, anchor: datetime) -> NormalizedSchedule:
    """An interval schedule; its first occurrence is one period after ``anchor``."""
    return NormalizedSchedule(
        type="recurring",
        every_seconds=seconds,
        anchor=anchor.astimezone(UTC),
        timezone="UTC",
        description=f"every {seconds}s",
    )


def http_definition(
    schedule: NormalizedSchedule,
    *,
    name: str = "test chrono",
    url: str = "https://example.com/hook",
    misfire_grace_seconds: int = 300,
    concurrency: int | None = None,
    is_active: bool = True,
) -> ChronoDefinition:
    """An HTTP chrono definition on ``schedule``."""
    return ChronoDefinition(
        name=name,
        cron=schedule.description,
        timezone=schedule.timezone,
        schedule=schedule,
        target_type=TargetType.HTTP,
        method="POST",
        url=url,
        config=ExecConfig(misfire_grace_seconds=misfire_grace_seconds, concurrency=concurrency),
        is_active=is_active,
    )


class ChronoWriter:
    """Appends chrono events like the api: each at the version it was decided against."""

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js
        self.versions: dict[str, int] = {}
        self.definitions: dict[str, ChronoDefinition] = {}
        #: The first occurrence each chrono's creation announced (``nextRunAt``).
        self.first_due: dict[str, datetime | None] = {}

    async def _append(self, chrono_id: str, event: Event) -> int:
        ack = await publish_event(
            self._js,
            names.aggregate_subject("chrono", chrono_id),
            event,
            expected_last_subject_sequence=self.versions.get(chrono_id, 0),
        )
        self.versions[chrono_id] = ack.seq
        return ack.seq

    async def create(
        self,
        definition: ChronoDefinition,
        *,
        chrono_id: str | None = None,
        next_run_at: datetime | None = None,
    ) -> str:
        """A new chrono; returns its id. ``next_run_at`` overrides the api's computation
        (an event written long before the scheduler reads it)."""
        chrono_id = chrono_id or new_id()
        self.definitions[chrono_id] = definition
        event = ChronoCreated(
            chrono_id=chrono_id,
            definition=definition,
            next_run_at=next_run_at or next_after(definition.schedule, utc_now()),
        )
        self.first_due[chrono_id] = event.next_run_at
        await self._append(chrono_id, event)
        return chrono_id

    async def update(self, chrono_id: str, definition: ChronoDefinition) -> int:
        """Replace the definition."""
        self.definitions[chrono_id] = definition
        event = ChronoUpdated(
            chrono_id=chrono_id,
            definition=definition,
            next_run_at=next_after(definition.schedule, utc_now()),
        )
        return await self._append(chrono_id, event)

    async def pause(self, chrono_id: str) -> int:
        """Stop firing."""
        return await self._append(chrono_id, ChronoPaused(chrono_id=chrono_id))

    async def resume(self, chrono_id: str) -> int:
        """Fire again from now."""
        schedule = self.definitions[chrono_id].schedule
        event = ChronoResumed(chrono_id=chrono_id, next_run_at=next_after(schedule, utc_now()))
        return await self._append(chrono_id, event)

    async def delete(self, chrono_id: str) -> int:
        """Remove the chrono."""
        return await self._append(chrono_id, ChronoDeleted(chrono_id=chrono_id))

    async def trigger(self, chrono_id: str) -> tuple[str, int]:
        """Ask for a run now; returns the run id and the new version."""
        run_id = new_id()
        event = ChronoTriggered(chrono_id=chrono_id, run_id=run_id, requested_at=utc_now())
        return run_id, await self._append(chrono_id, event)


async def stream_events(
    js: JetStreamContext, stream: str, subject: str = ">", *, batch: int = 1000
) -> AsyncIterator[tuple[int, Event]]:
    """Every event stored in ``stream`` on ``subject``, in order, with its sequence.

    Reads through an ephemeral consumer that never acknowledges, so a work-queue stream is
    read without taking anything out of it.
    """
    info = await js.stream_info(stream)
    if info.state.messages == 0:
        return
    name = f"reader-{new_id()}"
    config = ConsumerConfig(
        name=name,
        filter_subject=subject,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=3600.0,
        max_ack_pending=10_000_000,
        inactive_threshold=30.0,
        mem_storage=True,
    )
    await js.add_consumer(stream, config)
    sub = await js.pull_subscribe_bind(name, stream=stream)
    try:
        while True:
            try:
                msgs = await sub.fetch(batch, timeout=1)
            except TimeoutError:
                return
            for msg in msgs:
                headers = msg.headers or {}
                event = decode(
                    headers[names.EVENT_TYPE], int(headers[names.EVENT_VERSION]), msg.data
                )
                yield msg.metadata.sequence.stream, event
            if msgs[-1].metadata.num_pending == 0:
                return
    finally:
        await sub.unsubscribe()
        with contextlib.suppress(NotFoundError):
            await js.delete_consumer(stream, name)


async def collect(
    js: JetStreamContext, stream: str, event_type: type[Event], subject: str = ">"
) -> list[Any]:
    """Every event of one type in a stream."""
    return [e async for _, e in stream_events(js, stream, subject) if isinstance(e, event_type)]


async def eventually(
    check: Callable[[], Awaitable[bool]], *, within: float, every_s: float = 0.1
) -> bool:
    """Re-run ``check`` until it holds or ``within`` seconds pass; returns the last result."""
    deadline = time.monotonic() + within
    while True:
        if await check():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(every_s)
