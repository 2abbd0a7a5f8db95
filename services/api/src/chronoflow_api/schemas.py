"""REST request and response bodies (camelCase JSON, as in the original product's API)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import AwareDatetime, Field

from chronoflow_contracts import CamelModel
from chronoflow_contracts.channels import ChannelConfig, ChannelStatus
from chronoflow_contracts.chrono import ExecConfig, TargetType
from chronoflow_contracts.functions import FunctionLimits
from chronoflow_contracts.runs import RunStatus, Trigger
from chronoflow_contracts.schedule import NormalizedSchedule

Name = Field(min_length=1, max_length=200)


class ChronoCreate(CamelModel):
    """``POST /chronos``."""

    name: str = Name
    description: str | None = Field(default=None, max_length=2000)
    cron: str = Field(min_length=1, max_length=200, examples=["in 10 min", "todo dia as 08:00"])
    timezone: str | None = Field(default=None, examples=["America/Sao_Paulo"])
    target_type: TargetType = TargetType.HTTP
    method: str | None = None
    url: str | None = Field(default=None, max_length=2048)
    headers: dict[str, str] = Field(default_factory=dict)
    payload: Any = None
    channel_id: str | None = None
    message_template: str | None = Field(default=None, max_length=4096)
    recipients: list[str] = Field(default_factory=list, max_length=10_000)
    function_id: str | None = None
    function_code: str | None = Field(default=None, max_length=256_000)
    function_limits: FunctionLimits | None = None
    extras: dict[str, Any] = Field(default_factory=dict)
    config: ExecConfig = Field(default_factory=ExecConfig)
    is_active: bool = True


class ChronoPatch(CamelModel):
    """``PATCH /chronos/{id}``: any subset of fields; ``version`` refuses lost updates."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    cron: str | None = Field(default=None, min_length=1, max_length=200)
    timezone: str | None = None
    target_type: TargetType | None = None
    method: str | None = None
    url: str | None = Field(default=None, max_length=2048)
    headers: dict[str, str] | None = None
    payload: Any = None
    channel_id: str | None = None
    message_template: str | None = Field(default=None, max_length=4096)
    recipients: list[str] | None = Field(default=None, max_length=10_000)
    function_id: str | None = None
    extras: dict[str, Any] | None = None
    config: ExecConfig | None = None
    is_active: bool | None = None
    version: int | None = Field(default=None, description="The version last seen; 409 if stale")


class ChronoOut(CamelModel):
    """A chrono as the read model shows it; credential-like header values are redacted."""

    id: str
    name: str
    description: str | None
    cron: str
    timezone: str
    schedule: NormalizedSchedule
    target_type: TargetType
    method: str | None
    url: str | None
    headers: dict[str, str]
    payload: Any
    channel_id: str | None
    message_template: str | None
    recipients: list[str]
    function_id: str | None
    extras: dict[str, Any]
    config: ExecConfig
    is_active: bool
    last_run_at: datetime | None
    last_run_status: RunStatus | None
    last_run_id: str | None
    next_run_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int


class RunOut(CamelModel):
    """One attempt of one occurrence."""

    id: str
    chrono_id: str
    occurrence_id: str
    scheduled_for: datetime
    trigger: Trigger
    target_type: TargetType | None
    attempt: int
    status: RunStatus
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    http_status: int | None
    response_snippet: str | None
    error_message: str | None
    result: Any
    will_retry: bool


class TriggerOut(CamelModel):
    """``POST /chronos/{id}/trigger``: the run that was requested."""

    chrono_id: str
    run_id: str
    scheduled_for: AwareDatetime
    trigger: Trigger = Trigger.MANUAL


class ChannelCreate(CamelModel):
    """``POST /channels``."""

    provider: str = "WAHA"
    name: str = Name
    config: ChannelConfig = Field(default_factory=ChannelConfig)


class ChannelPatch(CamelModel):
    """``PATCH /channels/{id}``."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    config: ChannelConfig | None = None
    version: int | None = None


class ChannelOut(CamelModel):
    """A channel and its WAHA session status."""

    id: str
    provider: str
    name: str
    config: ChannelConfig
    status: ChannelStatus
    created_at: datetime
    updated_at: datetime
    version: int


class FunctionCreate(CamelModel):
    """``POST /functions``."""

    name: str = Name
    code: str = Field(min_length=1, max_length=256_000)
    limits: FunctionLimits = Field(default_factory=FunctionLimits)
    channel_id: str | None = None


class FunctionPatch(CamelModel):
    """``PATCH /functions/{id}``: a new code version, new limits or channel."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    code: str | None = Field(default=None, min_length=1, max_length=256_000)
    limits: FunctionLimits | None = None
    channel_id: str | None = None
    version: int | None = None


class FunctionOut(CamelModel):
    """A saved function (``code`` only on the single-item read)."""

    id: str
    name: str
    code: str | None = None
    runtime: str
    limits: FunctionLimits
    channel_id: str | None
    function_version: int
    checksum: str
    state: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime
    version: int


class FunctionTestIn(CamelModel):
    """``POST /functions/{id}/test``: what the one run sees."""

    extras: dict[str, Any] = Field(default_factory=dict, description="`ctx.extras` of the run")
    state: dict[str, Any] | None = Field(
        default=None,
        description="What `ctx.state` starts from; default: the function's stored state. "
        "The run's state is never saved.",
    )


class FunctionTestOut(CamelModel):
    """The test run's outcome; nothing was scheduled, saved or recorded."""

    function_id: str
    function_version: int
    status: RunStatus = Field(description="SUCCESS, FAILED or TIMEOUT, as a scheduled run")
    error_message: str | None = None
    result: dict[str, Any] = Field(
        description="As a run's `result`: termination, errorMessage, error, value, logs, "
        "changedKeys, httpCalls, messagesSent, usage, function"
    )
    state: dict[str, Any] = Field(description="`ctx.state` as the run left it (not saved)")


class SchedulePreviewIn(CamelModel):
    """``POST /schedules/preview``."""

    cron: str = Field(min_length=1, max_length=200)
    timezone: str | None = None


class SchedulePreviewOut(CamelModel):
    """The normalized schedule, its description and its next fire times."""

    schedule: NormalizedSchedule
    description: str
    next_runs: list[datetime]


T = TypeVar("T")


class Page(CamelModel, Generic[T]):
    """A page of results; ``nextCursor`` continues a keyset scan of large tables."""

    items: list[T]
    total: int
    skip: int
    take: int
    next_cursor: str | None = None
