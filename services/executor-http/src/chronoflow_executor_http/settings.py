"""Settings of the executor-http service."""

from __future__ import annotations

from pydantic import Field

from chronoflow_platform.settings import BaseServiceSettings


class ExecutorHttpSettings(BaseServiceSettings):
    """Environment variables of the executor-http service (see docs/configuration.md)."""

    http_port: int = Field(default=8002, validation_alias="HTTP_PORT")
