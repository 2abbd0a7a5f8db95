"""Settings of the executor-message service."""

from __future__ import annotations

from pydantic import Field

from chronoflow_platform.executor.settings import ExecutorSettings, executor_settings_config


class ExecutorMessageSettings(ExecutorSettings):
    """Environment variables of the executor-message service (see docs/configuration.md);
    the consumer's are ``EXECUTOR_MESSAGE_ACK_WAIT_SECONDS`` and its siblings."""

    model_config = executor_settings_config("EXECUTOR_MESSAGE_")

    http_port: int = Field(default=8003, validation_alias="HTTP_PORT")
    #: Runs one replica works on at once (each sends its list one text at a time).
    concurrency: int = Field(
        default=32, ge=1, le=1024, validation_alias="EXECUTOR_MESSAGE_CONCURRENCY"
    )
    #: How long one send waits for the gateway: more than its pacing wait plus WAHA's timeout.
    send_timeout_seconds: float = Field(
        default=60.0, gt=0, le=600, validation_alias="EXECUTOR_MESSAGE_SEND_TIMEOUT_SECONDS"
    )
