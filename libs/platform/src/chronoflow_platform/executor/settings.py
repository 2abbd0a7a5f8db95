"""The settings every executor has, read from ``EXECUTOR_<TARGET>_…`` variables."""

from __future__ import annotations

from pydantic import AliasGenerator, Field
from pydantic_settings import SettingsConfigDict

from chronoflow_platform.executor.consumer import ConsumerOptions
from chronoflow_platform.settings import BaseServiceSettings

#: Most messages one pull request asks for, unless the executor sets its own.
DEFAULT_BATCH = 100


def executor_settings_config(prefix: str) -> SettingsConfigDict:
    """The model config of an executor's settings: the fields below are read from
    ``<prefix><FIELD NAME>`` (``EXECUTOR_HTTP_ACK_WAIT_SECONDS``); a field with its own
    ``validation_alias`` keeps it."""
    return SettingsConfigDict(
        **BaseServiceSettings.model_config,
        alias_generator=AliasGenerator(validation_alias=lambda name: prefix + name.upper()),
    )


class ExecutorSettings(BaseServiceSettings):
    """Subclassed by each executor, whose ``model_config`` comes from
    :func:`executor_settings_config` (and which may narrow a field's default or bounds)."""

    #: How long JetStream waits for an ack before redelivering; runs longer than a third of it
    #: send in-progress acks, so it bounds how soon a crashed replica's work resumes.
    ack_wait_seconds: float = Field(default=30.0, ge=3.0, le=3600.0)
    #: Deliveries of one run request before JetStream gives up on it (crashes, not retries:
    #: each retry is a new message).
    max_deliver: int = Field(default=5, ge=2, le=100)
    #: Unacknowledged run requests the durable consumer allows across all replicas.
    max_ack_pending: int = Field(default=1000, ge=1)
    #: Run requests released ahead of their instant one replica takes and holds, decoded,
    #: beyond its concurrency (more wait in the work queue until slots free up).
    hold_ahead: int = Field(default=400, ge=0, le=100_000)
    #: On SIGTERM, how long runs in flight may finish before they are handed back to JetStream.
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)

    def consumer_options(self, concurrency: int, batch: int = DEFAULT_BATCH) -> ConsumerOptions:
        """How this executor's consumer paces itself with ``concurrency`` runs at once."""
        return ConsumerOptions(
            concurrency=concurrency,
            batch=min(batch, concurrency),
            ack_wait_s=self.ack_wait_seconds,
            max_deliver=self.max_deliver,
            max_ack_pending=self.max_ack_pending,
            hold_ahead=self.hold_ahead,
            shutdown_grace_s=self.shutdown_grace_seconds,
        )
