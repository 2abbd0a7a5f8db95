"""Builds the executor-http service: its lifespan, consumers and operational endpoints."""

from __future__ import annotations

from fastapi import FastAPI

from chronoflow_executor_http.settings import ExecutorHttpSettings
from chronoflow_platform.service import create_service_app


def create_app(settings: ExecutorHttpSettings) -> FastAPI:
    """The executor-http ASGI app; NATS are connected in its lifespan."""
    return create_service_app(name="executor-http", settings=settings, needs_db=False)
