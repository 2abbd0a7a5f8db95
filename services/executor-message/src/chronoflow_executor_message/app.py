"""Builds the executor-message service: its lifespan, consumers and operational endpoints."""

from __future__ import annotations

from fastapi import FastAPI

from chronoflow_executor_message.settings import ExecutorMessageSettings
from chronoflow_platform.service import create_service_app


def create_app(settings: ExecutorMessageSettings) -> FastAPI:
    """The executor-message ASGI app; NATS are connected in its lifespan."""
    return create_service_app(name="executor-message", settings=settings, needs_db=False)
