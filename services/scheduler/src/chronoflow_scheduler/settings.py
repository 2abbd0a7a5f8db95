"""Settings of the scheduler service."""

from __future__ import annotations

from pydantic import Field

from chronoflow_platform.settings import BaseServiceSettings


class SchedulerSettings(BaseServiceSettings):
    """Environment variables of the scheduler service (see docs/configuration.md)."""

    http_port: int = Field(default=8001, validation_alias="HTTP_PORT")
