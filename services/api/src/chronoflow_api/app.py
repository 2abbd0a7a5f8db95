"""Builds the api service: routes, lifespan and operational endpoints."""

from __future__ import annotations

from fastapi import FastAPI

from chronoflow_api.settings import ApiSettings
from chronoflow_platform.service import create_service_app


def create_app(settings: ApiSettings) -> FastAPI:
    """The api ASGI app; NATS and Postgres are connected in its lifespan."""
    return create_service_app(name="api", settings=settings, needs_db=True)
