"""Builds the executor-function service: its lifespan, consumers and operational endpoints."""

from __future__ import annotations

from fastapi import FastAPI

from chronoflow_executor_function.settings import ExecutorFunctionSettings
from chronoflow_platform.service import create_service_app


def create_app(settings: ExecutorFunctionSettings) -> FastAPI:
    """The executor-function ASGI app; NATS and Postgres are connected in its lifespan."""
    return create_service_app(name="executor-function", settings=settings, needs_db=True)
