"""Builds the waha-gateway service: its lifespan, consumers and operational endpoints."""

from __future__ import annotations

from fastapi import FastAPI

from chronoflow_platform.service import create_service_app
from chronoflow_waha_gateway.settings import WahaGatewaySettings


def create_app(settings: WahaGatewaySettings) -> FastAPI:
    """The waha-gateway ASGI app; NATS and Postgres are connected in its lifespan."""
    return create_service_app(name="waha-gateway", settings=settings, needs_db=True)
