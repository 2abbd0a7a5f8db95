"""Run and schedule events: what the scheduler asks for and what the executors report."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import AwareDatetime, Field

from chronoflow_contracts.base import Event
from chronoflow_contracts.chrono import ChronoDefinition, TargetType

# A fixed namespace so that run ids derived from content are the same in every process.
_RUN_NAMESPACE = uuid.UUID("8f0c6c62-4d0b-4a53-9a8e-2f6f3f4c9e21")


class Trigger(StrEnum):
    """Why a run happened."""

    SCHEDULE = "SCHEDULE"
    MANUAL = "MANUAL"


class RunStatus(StrEnum):
    """The outcome of one attempt."""

    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"
    SKIPPED = "SKIPPED"


class SkipReason(StrEnum):
    """Why an occurrence was recorded as skipped instead of run."""

    MISSED = "MISSED"
    OVERLAP = "OVERLAP"


def occurrence_id(chrono_id: str, scheduled_for: datetime) -> str:
    """The id of one occurrence: the same in every replica, across retries and redeliveries.

    It is the Standard Webhooks ``webhook-id``, so a receiver can deduplicate.
    """
    return str(uuid.uuid5(_RUN_NAMESPACE, f"{chrono_id}|{scheduled_for.isoformat()}"))


def run_id(occurrence: str, attempt: int) -> str:
    """The id of one attempt of one occurrence (a ChronoRun row)."""
    return str(uuid.uuid5(_RUN_NAMESPACE, f"{occurrence}|{attempt}"))


def run_request_msg_id(chrono_id: str, scheduled_for: datetime, attempt: int) -> str:
    """``Nats-Msg-Id`` of a RunRequested: JetStream drops a second copy inside its window."""
    return f"run-{chrono_id}-{scheduled_for.isoformat()}-{attempt}"


class RunEvent(Event):
    """An event about one attempt of one occurrence of a chrono."""

    chrono_id: str
    run_id: str
    occurrence_id: str
    scheduled_for: AwareDatetime
    trigger: Trigger = Trigger.SCHEDULE
    attempt: int = Field(default=1, ge=1)


class RunRequested(RunEvent):
    """Work for an executor: carries a snapshot of the chrono so executors need no database."""

    TYPE: ClassVar[str] = "run.requested"
    VERSION: ClassVar[int] = 1
    target_type: TargetType
    chrono_version: int
    chrono_name: str
    definition: ChronoDefinition
    # Per-recipient progress carried into a retry, so a retry sends only to who is missing.
    carried_result: dict[str, Any] | None = None


class RunStarted(RunEvent):
    """An executor started an attempt."""

    TYPE: ClassVar[str] = "run.started"
    VERSION: ClassVar[int] = 1
    target_type: TargetType
    started_at: AwareDatetime


class RunCompleted(RunEvent):
    """An attempt ended; ``will_retry`` says whether another attempt is scheduled."""

    TYPE: ClassVar[str] = "run.completed"
    VERSION: ClassVar[int] = 1
    target_type: TargetType
    status: Literal[RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.TIMEOUT]
    started_at: AwareDatetime
    finished_at: AwareDatetime
    duration_ms: int = Field(ge=0)
    http_status: int | None = None
    response_snippet: str | None = Field(default=None, max_length=1000)
    error_message: str | None = None
    result: Any = None
    will_retry: bool = False


class RunSkipped(RunEvent):
    """An occurrence was not run: missed beyond the grace period, or overlapping a running one.

    ``coalesced`` counts the occurrences this one decision stands for (missed ones coalesce).
    """

    TYPE: ClassVar[str] = "run.skipped"
    VERSION: ClassVar[int] = 1
    reason: SkipReason
    coalesced: int = Field(default=1, ge=1)


class ScheduleArmed(Event):
    """The scheduler set (or cleared) a chrono's single pending schedule message."""

    TYPE: ClassVar[str] = "schedule.armed"
    VERSION: ClassVar[int] = 1
    chrono_id: str
    chrono_version: int
    next_run_at: AwareDatetime | None
