"""Settings of the waha-gateway service."""

from __future__ import annotations

from pydantic import Field

from chronoflow_platform.settings import BaseServiceSettings


class WahaGatewaySettings(BaseServiceSettings):
    """Environment variables of the waha-gateway service (see docs/configuration.md)."""

    http_port: int = Field(default=8005, validation_alias="HTTP_PORT")
