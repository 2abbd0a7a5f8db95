"""The chrono aggregate: its definition and the events that change it."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import AwareDatetime, Field

from chronoflow_contracts.base import CamelModel, Event
from chronoflow_contracts.schedule import NormalizedSchedule


class TargetType(StrEnum):
    """What a chrono fires."""

    HTTP = "HTTP"
    MESSAGE = "MESSAGE"
    FUNCTION = "FUNCTION"


class RetryPolicy(CamelModel):
    """How failed attempts are retried (each attempt is recorded as its own run)."""

    attempts: int = Field(default=3, ge=1, le=20, description="Total attempts, the first included")
    backoff: Literal["fixed", "exponential"] = "exponential"
    delay_ms: int = Field(default=1000, ge=0, le=86_400_000)
    max_delay_ms: int = Field(default=60_000, ge=0, le=86_400_000)
    jitter: bool = True


class ExecConfig(CamelModel):
    """Executor options of one chrono."""

    timeout_ms: int | None = Field(default=None, ge=1, le=600_000)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    misfire_grace_seconds: int = Field(default=300, ge=0, le=31_536_000)
    concurrency: int | None = Field(
        default=None, ge=1, description="1 skips an occurrence while the previous run still runs"
    )
    follow_redirects: bool = False


class ChronoDefinition(CamelModel):
    """Everything a client can set on a chrono; carried whole by create and update events.

    Header values that look like credentials are stored encrypted (``enc:v1:…``): the event
    log is immutable, so a clear secret written there would stay there forever.
    """

    name: str
    description: str | None = None
    cron: str
    timezone: str
    schedule: NormalizedSchedule
    target_type: TargetType
    method: str | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    payload: Any = None
    channel_id: str | None = None
    message_template: str | None = None
    recipients: list[str] = Field(default_factory=list)
    function_id: str | None = None
    extras: dict[str, Any] = Field(default_factory=dict)
    config: ExecConfig = Field(default_factory=ExecConfig)
    is_active: bool = True


class ChronoEvent(Event):
    """An event of one chrono, appended to its own event-store subject."""

    chrono_id: str


class ChronoCreated(ChronoEvent):
    """A chrono was created."""

    TYPE: ClassVar[str] = "chrono.created"
    VERSION: ClassVar[int] = 1
    definition: ChronoDefinition
    #: The first occurrence, computed once by the api when it accepted the command.
    next_run_at: AwareDatetime | None = None


class ChronoUpdated(ChronoEvent):
    """A chrono's definition changed; the event carries the whole new definition."""

    TYPE: ClassVar[str] = "chrono.updated"
    VERSION: ClassVar[int] = 1
    definition: ChronoDefinition
    #: The first occurrence, computed once by the api when it accepted the command.
    next_run_at: AwareDatetime | None = None


class ChronoPaused(ChronoEvent):
    """A chrono stopped firing until resumed."""

    TYPE: ClassVar[str] = "chrono.paused"
    VERSION: ClassVar[int] = 1


class ChronoResumed(ChronoEvent):
    """A paused chrono fires again; its schedule restarts from the resume instant."""

    TYPE: ClassVar[str] = "chrono.resumed"
    VERSION: ClassVar[int] = 1
    #: The next occurrence from the resume instant, computed by the api.
    next_run_at: AwareDatetime | None = None


class ChronoDeleted(ChronoEvent):
    """A chrono was removed; its schedule is cancelled and its runs stay in history."""

    TYPE: ClassVar[str] = "chrono.deleted"
    VERSION: ClassVar[int] = 1


class ChronoTriggered(ChronoEvent):
    """A client asked for a run now; the schedule does not move."""

    TYPE: ClassVar[str] = "chrono.triggered"
    VERSION: ClassVar[int] = 1
    run_id: str
    requested_at: AwareDatetime


class ChronoFinished(ChronoEvent):
    """A one-shot chrono fired its only occurrence (or its schedule has no next occurrence)."""

    TYPE: ClassVar[str] = "chrono.finished"
    VERSION: ClassVar[int] = 1
    reason: Literal["ONE_SHOT_FIRED", "NO_NEXT_OCCURRENCE"] = "ONE_SHOT_FIRED"
