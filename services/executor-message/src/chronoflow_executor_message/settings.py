"""Settings of the executor-message service."""

from __future__ import annotations

from pydantic import Field

from chronoflow_platform.settings import BaseServiceSettings


class ExecutorMessageSettings(BaseServiceSettings):
    """Environment variables of the executor-message service (see docs/configuration.md)."""

    http_port: int = Field(default=8003, validation_alias="HTTP_PORT")
    #: Runs one replica works on at once (each sends its list one text at a time).
    concurrency: int = Field(
        default=32, ge=1, le=1024, validation_alias="EXECUTOR_MESSAGE_CONCURRENCY"
    )
    #: How long one send waits for the gateway: more than its pacing wait plus WAHA's timeout.
    send_timeout_seconds: float = Field(
        default=60.0, gt=0, le=600, validation_alias="EXECUTOR_MESSAGE_SEND_TIMEOUT_SECONDS"
    )
    ack_wait_seconds: float = Field(
        default=30.0, ge=1, le=3600, validation_alias="EXECUTOR_MESSAGE_ACK_WAIT_SECONDS"
    )
    max_deliver: int = Field(
        default=5, ge=1, le=100, validation_alias="EXECUTOR_MESSAGE_MAX_DELIVER"
    )
    max_ack_pending: int = Field(
        default=1000, ge=1, validation_alias="EXECUTOR_MESSAGE_MAX_ACK_PENDING"
    )
    shutdown_grace_seconds: float = Field(
        default=10.0, ge=0, le=300, validation_alias="EXECUTOR_MESSAGE_SHUTDOWN_GRACE_SECONDS"
    )
