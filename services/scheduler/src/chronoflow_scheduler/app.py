"""Builds the scheduler service: its lifespan, consumers and operational endpoints."""

from __future__ import annotations

from fastapi import FastAPI

from chronoflow_contracts import names
from chronoflow_platform.consumer_metrics import watch_consumers
from chronoflow_platform.service import Runtime, create_service_app
from chronoflow_scheduler.service import Scheduler
from chronoflow_scheduler.settings import SchedulerSettings


def create_app(settings: SchedulerSettings) -> FastAPI:
    """The scheduler ASGI app; NATS and Postgres are connected in its lifespan."""

    async def startup(runtime: Runtime) -> None:
        assert runtime.engine is not None
        scheduler = Scheduler(
            nc=runtime.nc,
            js=runtime.js,
            engine=runtime.engine,
            settings=settings,
            registry=runtime.registry,
        )
        await scheduler.prepare()
        for name, loop in scheduler.loops():
            runtime.spawn(loop, name=name)
        runtime.state["scheduler"] = scheduler
        watch_consumers(
            runtime,
            (names.SCHEDULES_STREAM, names.SCHEDULER_FIRE_DURABLE),
            (names.EVENTS_STREAM, names.SCHEDULER_EVENTS_DURABLE),
        )

    async def shutdown(runtime: Runtime) -> None:
        scheduler: Scheduler | None = runtime.state.get("scheduler")
        if scheduler is not None:
            await scheduler.close()

    return create_service_app(
        name="scheduler",
        settings=settings,
        needs_db=True,
        on_startup=startup,
        on_shutdown=shutdown,
    )
