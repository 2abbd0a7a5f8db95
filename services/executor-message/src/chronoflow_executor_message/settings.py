"""Settings of the executor-message service."""

from __future__ import annotations

from pydantic import Field

from chronoflow_platform.settings import BaseServiceSettings


class ExecutorMessageSettings(BaseServiceSettings):
    """Environment variables of the executor-message service (see docs/configuration.md)."""

    http_port: int = Field(default=8003, validation_alias="HTTP_PORT")
