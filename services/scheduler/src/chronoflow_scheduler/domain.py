"""Pure scheduling decisions: fire instants, message ids, misfire coalescing. No I/O here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from pydantic import AwareDatetime

from chronoflow_contracts import CamelModel
from chronoflow_contracts.chrono import (
    ChronoCreated,
    ChronoDefinition,
    ChronoDeleted,
    ChronoFinished,
    ChronoPaused,
    ChronoResumed,
    ChronoTriggered,
    ChronoUpdated,
    ExecConfig,
    TargetType,
)
from chronoflow_contracts.names import TargetKind
from chronoflow_contracts.schedule import NormalizedSchedule
from chronoflow_schedule import next_after

#: Event types after which a schedule armed for an earlier version no longer holds.
#: A manual trigger moves the chrono's version but not its schedule, so it is not here.
SCHEDULE_CHANGING: Final = frozenset(
    {
        ChronoCreated.TYPE,
        ChronoUpdated.TYPE,
        ChronoPaused.TYPE,
        ChronoResumed.TYPE,
        ChronoDeleted.TYPE,
        ChronoFinished.TYPE,
    }
)
TRIGGERED: Final = ChronoTriggered.TYPE

#: A misfire walk stops counting missed occurrences after this many (a 1 s interval missed
#: for a day would otherwise walk 86,400 instants); ``coalesced`` is then a lower bound.
MAX_MISSED_WALK: Final = 10_000

#: An occurrence processed within this long of its due instant is on time whatever its grace
#: period: a grace of 0 means "never run late", not "never run" (processing takes a moment).
ON_TIME_SECONDS: Final = 1.0

_TARGET_KINDS: Final[dict[TargetType, TargetKind]] = {
    TargetType.HTTP: "http",
    TargetType.MESSAGE: "message",
    TargetType.FUNCTION: "function",
}


class RetryLaterError(Exception):
    """A message cannot be decided yet (the read model lags behind it); redeliver it later."""


class ScheduleMessage(CamelModel):
    """Body of a chrono's schedule message, and of the message nats-server fires from it.

    Internal to the scheduler (it writes and reads it): which occurrence, of which version.
    """

    chrono_id: str
    chrono_version: int
    due_at: AwareDatetime


def target_kind(target: TargetType) -> TargetKind:
    """The work queue of a target type."""
    return _TARGET_KINDS[target]


def fire_at(due: datetime, lead_seconds: float) -> datetime:
    """When nats-server should fire the schedule for an occurrence due at ``due``.

    ``@at`` has whole-second granularity and the server fires on a ~250 ms tick (slower when
    thousands share a second), so the message is fired ``lead_seconds`` early, rounded down
    to the second, and the scheduler holds it until ``due`` exactly.
    """
    early = due.astimezone(UTC) - timedelta(seconds=lead_seconds)
    return early.replace(microsecond=0)


def at_expression(instant: datetime) -> str:
    """The ``Nats-Schedule`` value firing once at ``instant`` (RFC 3339, UTC, seconds)."""
    return "@at " + instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _compact(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")


def schedule_msg_id(chrono_id: str, version: int, due: datetime, nonce: str | None = None) -> str:
    """``Nats-Msg-Id`` of a schedule message: ``chrono-<id>`` + the occurrence and version.

    Unique per occurrence and version, so JetStream's duplicate window only ever drops a true
    re-send (a redelivered event or a racing replica), never a legitimate re-schedule.
    A repair adds a nonce: it must land even if the same occurrence was armed moments ago.
    """
    base = f"chrono-{chrono_id}-v{version}-{_compact(due)}"
    return f"{base}-{nonce}" if nonce else base


def armed_msg_id(chrono_id: str, version: int, due: datetime | None) -> str:
    """``Nats-Msg-Id`` of a ScheduleArmed (one per chrono, version and instant)."""
    return f"armed-{chrono_id}-v{version}-{_compact(due) if due else 'none'}"


def skipped_msg_id(chrono_id: str, first_skipped: datetime) -> str:
    """``Nats-Msg-Id`` of a RunSkipped, keyed by the first occurrence it stands for."""
    return f"skip-{chrono_id}-{first_skipped.astimezone(UTC).isoformat()}"


def manual_run_msg_id(run_id: str) -> str:
    """``Nats-Msg-Id`` of the RunRequested of a manual trigger (the trigger's run id)."""
    return f"run-manual-{run_id}"


def finished_msg_id(chrono_id: str, version: int) -> str:
    """``Nats-Msg-Id`` of a ChronoFinished written after version ``version``."""
    return f"finished-{chrono_id}-v{version}"


@dataclass(frozen=True)
class FirePlan:
    """What to do with a fired occurrence, decided at the instant it is processed.

    ``run`` is the occurrence to run (None: everything was missed); ``skipped`` the first of
    ``skipped_count`` occurrences recorded as one MISSED decision; ``next_due`` the next
    occurrence to arm (None: the chrono has no further occurrence and finishes).
    """

    run: datetime | None
    skipped: datetime | None
    skipped_count: int
    next_due: datetime | None


def plan_fire(
    schedule: NormalizedSchedule, due: datetime, now: datetime, grace_seconds: float
) -> FirePlan:
    """Apply the misfire rule to the occurrence ``due``, processed at ``now``.

    Every occurrence from ``due`` up to ``now`` has come due. The latest of them runs if it is
    late by no more than the grace period; all the others (or all of them) coalesce into one
    MISSED decision. The next occurrence is the first one after the latest that came due.
    Lateness up to :data:`ON_TIME_SECONDS` never counts as a misfire.
    """
    grace = timedelta(seconds=max(grace_seconds, ON_TIME_SECONDS))
    came_due = [due]
    following = next_after(schedule, due)
    capped = False
    while following is not None and following <= now:
        if len(came_due) >= MAX_MISSED_WALK:
            capped = True
            break
        came_due.append(following)
        following = next_after(schedule, following)
    if capped:
        following = next_after(schedule, now)
    latest = came_due[-1]
    if now - latest <= grace:
        missed = came_due[:-1]
        return FirePlan(
            run=latest,
            skipped=missed[0] if missed else None,
            skipped_count=len(missed),
            next_due=following,
        )
    return FirePlan(run=None, skipped=due, skipped_count=len(came_due), next_due=following)


def first_due(
    schedule: NormalizedSchedule, announced: datetime | None, since: datetime
) -> datetime | None:
    """The occurrence to arm for a definition change: the api's if it announced one."""
    if announced is not None:
        return announced
    return next_after(schedule, since)


def hold_seconds(due: datetime, now: datetime) -> float:
    """How long to hold a fired message before its occurrence is due (0 if already due)."""
    return max((due - now).total_seconds(), 0.0)


def lateness_seconds(due: datetime, now: datetime) -> float:
    """How late an occurrence is at ``now`` (never negative)."""
    return max((now - due).total_seconds(), 0.0)


def keepalive_interval(ack_wait_seconds: float) -> float:
    """How often to tell JetStream a held message is still being worked on."""
    return max(ack_wait_seconds / 3, 0.5)


def definition_from_row(row: Mapping[Any, Any]) -> ChronoDefinition:
    """The chrono definition stored in a ``chronos`` read-model row."""
    return ChronoDefinition(
        name=row["name"],
        description=row["description"],
        cron=row["cron"],
        timezone=row["timezone"],
        schedule=NormalizedSchedule.model_validate(row["schedule"]),
        target_type=TargetType(row["target_type"]),
        method=row["method"],
        url=row["url"],
        headers=row["headers"] or {},
        payload=row["payload"],
        channel_id=row["channel_id"],
        message_template=row["message_template"],
        recipients=row["recipients"] or [],
        function_id=row["function_id"],
        extras=row["extras"] or {},
        config=ExecConfig.model_validate(row["config"] or {}),
        is_active=row["is_active"],
    )
