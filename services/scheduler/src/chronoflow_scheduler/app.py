"""Builds the scheduler service: its lifespan, consumers and operational endpoints."""

from __future__ import annotations

from fastapi import FastAPI

from chronoflow_platform.service import create_service_app
from chronoflow_scheduler.settings import SchedulerSettings


def create_app(settings: SchedulerSettings) -> FastAPI:
    """The scheduler ASGI app; NATS and Postgres are connected in its lifespan."""
    return create_service_app(name="scheduler", settings=settings, needs_db=True)
