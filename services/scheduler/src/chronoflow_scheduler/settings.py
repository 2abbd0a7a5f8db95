"""Settings of the scheduler service."""

from __future__ import annotations

from pydantic import Field, model_validator

from chronoflow_platform.settings import BaseServiceSettings


class SchedulerSettings(BaseServiceSettings):
    """Environment variables of the scheduler service (see docs/scheduler.md)."""

    http_port: int = Field(default=8001, validation_alias="HTTP_PORT")
    # With fsync-always storage nats-server emits scheduled messages at 1,000-2,400/s on a
    # 2-core box (it depends on the disk), so 10,000 due in the same second need up to ~10 s
    # to come out. The lead covers that; holding each fire until its instant restores the
    # precision. Watch chronoflow_scheduler_fire_arrival_lead_seconds.
    fire_lead_seconds: float = Field(
        default=20.0, ge=1.0, le=300.0, validation_alias="SCHEDULER_FIRE_LEAD_SECONDS"
    )
    # Occurrences go to the work queue this long before their instant and executors hold
    # them until it: a burst is stored, and its follow-ups written, before it is due. A pause,
    # edit or delete later than this applies from the next occurrence (docs/scheduler.md).
    release_ahead_seconds: float = Field(
        default=3.0, ge=0.0, le=10.0, validation_alias="SCHEDULER_RELEASE_AHEAD_SECONDS"
    )
    # How soon the fires a crashed replica was holding are redelivered to another one. Held
    # fires are marked in progress a third of this before its deadline, so it can stay short.
    fire_ack_wait_seconds: float = Field(
        default=6.0, ge=1.0, validation_alias="SCHEDULER_FIRE_ACK_WAIT_SECONDS"
    )
    fire_max_in_flight: int = Field(
        default=50_000, ge=1, validation_alias="SCHEDULER_FIRE_MAX_IN_FLIGHT"
    )
    fire_fetch_batch: int = Field(
        default=256, ge=1, le=10_000, validation_alias="SCHEDULER_FIRE_FETCH_BATCH"
    )
    events_ack_wait_seconds: float = Field(
        default=30.0, ge=1.0, validation_alias="SCHEDULER_EVENTS_ACK_WAIT_SECONDS"
    )
    event_workers: int = Field(
        default=32, ge=1, le=1024, validation_alias="SCHEDULER_EVENT_WORKERS"
    )
    # The chrono row a fire needs may not be projected yet; wait this long, then retry later.
    read_model_wait_seconds: float = Field(
        default=10.0, ge=0.0, validation_alias="SCHEDULER_READ_MODEL_WAIT_SECONDS"
    )
    retry_delay_seconds: float = Field(
        default=1.0, gt=0.0, validation_alias="SCHEDULER_RETRY_DELAY_SECONDS"
    )
    reconcile_on_start: bool = Field(default=True, validation_alias="SCHEDULER_RECONCILE_ON_START")
    reconcile_page_size: int = Field(
        default=1000, ge=1, le=10_000, validation_alias="SCHEDULER_RECONCILE_PAGE_SIZE"
    )
    reconcile_concurrency: int = Field(
        default=256, ge=1, le=10_000, validation_alias="SCHEDULER_RECONCILE_CONCURRENCY"
    )
    # A RUNNING run older than this is presumed abandoned by a crashed executor and no
    # longer blocks a ``concurrency: 1`` chrono.
    running_stale_seconds: float = Field(
        default=3600.0, gt=0.0, validation_alias="SCHEDULER_RUNNING_STALE_SECONDS"
    )
    # RunRequested bursts are written as JetStream atomic batches (one disk sync per batch)
    # when the work stream allows it; otherwise one by one.
    work_batch_size: int = Field(
        default=500, ge=1, le=1000, validation_alias="SCHEDULER_WORK_BATCH_SIZE"
    )

    @model_validator(mode="after")
    def _released_within_the_lead(self) -> SchedulerSettings:
        # A fire arrives fire_lead_seconds early at best; releasing further ahead than that
        # could never happen as configured.
        if self.release_ahead_seconds >= self.fire_lead_seconds:
            raise ValueError(
                "SCHEDULER_RELEASE_AHEAD_SECONDS must be less than SCHEDULER_FIRE_LEAD_SECONDS "
                f"(got {self.release_ahead_seconds:g} and {self.fire_lead_seconds:g})"
            )
        return self
