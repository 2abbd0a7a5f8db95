"""Builds the projector process: the consumer loop plus operational endpoints."""

from __future__ import annotations

from fastapi import FastAPI

from chronoflow_api.settings import ProjectorSettings
from chronoflow_platform.service import create_service_app


def create_app(settings: ProjectorSettings) -> FastAPI:
    """The projector ASGI app (health, readiness, metrics) with its consumer in the lifespan."""
    return create_service_app(name="projector", settings=settings, needs_db=True)
