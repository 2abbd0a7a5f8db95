"""Settings of the executor-function service."""

from __future__ import annotations

from pydantic import Field

from chronoflow_platform.settings import BaseServiceSettings


class ExecutorFunctionSettings(BaseServiceSettings):
    """Environment variables of the executor-function service (see docs/configuration.md)."""

    http_port: int = Field(default=8004, validation_alias="HTTP_PORT")
