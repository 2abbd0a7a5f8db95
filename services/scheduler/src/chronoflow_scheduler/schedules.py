"""A chrono's single schedule message in CF_SCHEDULES: read, arm, re-tag, cancel.

Three writers can touch one chrono's schedule subject at once: the chrono-event consumer,
the fire consumer (arming the next occurrence) and the reconcile, possibly in several
replicas. Every write is a compare-and-set on the subject's last sequence
(``Nats-Expected-Last-Subject-Sequence``) and versions only move forward: a write never
replaces a schedule made for a newer chrono version, and a cancel deletes exactly the message
it judged (by sequence), never a newer one that replaced it meanwhile.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.errors import APIError, NotFoundError
from pydantic import ValidationError

from chronoflow_contracts import names
from chronoflow_contracts.runs import ScheduleArmed
from chronoflow_platform.telemetry import carried_trace, trace_headers
from chronoflow_scheduler.domain import (
    ScheduleMessage,
    at_expression,
    fire_at,
    schedule_msg_id,
)
from chronoflow_scheduler.emitter import WRONG_LAST_SEQUENCE, Emitter

log = logging.getLogger(__name__)

_NO_MESSAGE = 10057
_MAX_RACES = 20


@dataclass(frozen=True)
class Pending:
    """A schedule message as stored: where it is and which occurrence of which version."""

    seq: int
    version: int
    due: datetime
    #: The trace headers it carries (kept when a manual trigger re-tags it).
    trace: dict[str, str] = field(default_factory=dict)


class ArmPolicy(enum.Enum):
    """Who arms, which decides what an existing message means."""

    #: A chrono event: a schedule already made for this version (or a newer one) stands,
    #: including one that has just fired and is being processed.
    EVENT = "event"
    #: The next occurrence after a fire: stands aside only for a newer version or a later
    #: occurrence of the same version.
    ADVANCE = "advance"
    #: Reconcile: like EVENT, but must land even if an identical message was sent recently.
    REPAIR = "repair"


class ArmResult(enum.Enum):
    """What an arm did."""

    ARMED = "armed"
    SUPERSEDED = "superseded"
    DUPLICATE = "duplicate"


def _parse(raw: RawStreamMsg) -> Pending | None:
    if raw.data is None or raw.seq is None:
        return None
    try:
        body = ScheduleMessage.model_validate_json(raw.data)
    except ValidationError:
        log.warning("unreadable schedule message at seq %s", raw.seq)
        return None
    return Pending(
        seq=raw.seq, version=body.chrono_version, due=body.due_at, trace=carried_trace(raw.headers)
    )


class ScheduleStore:
    """CF_SCHEDULES operations for one chrono at a time."""

    def __init__(self, js: JetStreamContext, emitter: Emitter, *, lead_seconds: float) -> None:
        self._js = js
        self._emitter = emitter
        self._lead = lead_seconds

    async def pending(self, chrono_id: str) -> Pending | None:
        """The chrono's schedule message not yet fired, if any."""
        return await self._last(names.schedule_subject(chrono_id))

    async def last_fired(self, chrono_id: str) -> Pending | None:
        """The last message the chrono's schedule fired (kept: one per subject)."""
        return await self._last(names.schedule_fired_subject(chrono_id))

    async def _last(self, subject: str) -> Pending | None:
        try:
            raw = await self._js.get_last_msg(names.SCHEDULES_STREAM, subject, direct=True)
        except NotFoundError:
            return None
        return _parse(raw)

    async def arm(
        self,
        chrono_id: str,
        version: int,
        due: datetime,
        *,
        policy: ArmPolicy,
        nonce: str | None = None,
    ) -> ArmResult:
        """Make ``due`` (for chrono version ``version``) the chrono's pending occurrence."""
        for _ in range(_MAX_RACES):
            current = await self.pending(chrono_id)
            if current is not None and _stands(current, version, due, policy):
                return ArmResult.SUPERSEDED
            if current is None and policy is ArmPolicy.EVENT:
                fired = await self.last_fired(chrono_id)
                if fired is not None and fired.version >= version:
                    return ArmResult.SUPERSEDED
            try:
                duplicate = await self._write(
                    chrono_id,
                    version,
                    due,
                    expected=current.seq if current else 0,
                    nonce=nonce if policy is ArmPolicy.REPAIR else None,
                    # An occurrence armed by a fire starts its own trace, linked to the fire's.
                    trace=trace_headers(link=policy is ArmPolicy.ADVANCE),
                )
            except APIError as exc:
                if exc.err_code == WRONG_LAST_SEQUENCE:
                    continue  # another writer got there first: look again
                raise
            if duplicate:
                return ArmResult.DUPLICATE
            await self._emitter.schedule_armed(
                ScheduleArmed(chrono_id=chrono_id, chrono_version=version, next_run_at=due)
            )
            return ArmResult.ARMED
        raise RuntimeError(f"schedule of chrono {chrono_id} kept changing under {_MAX_RACES} arms")

    async def retag(self, chrono_id: str, version: int) -> Pending | None:
        """Carry the pending occurrence over to a newer version (after a manual trigger)."""
        for _ in range(_MAX_RACES):
            current = await self.pending(chrono_id)
            if current is None or current.version >= version:
                return None
            try:
                await self._write(
                    chrono_id, version, current.due, expected=current.seq, trace=current.trace
                )
            except APIError as exc:
                if exc.err_code == WRONG_LAST_SEQUENCE:
                    continue
                raise
            await self._emitter.schedule_armed(
                ScheduleArmed(chrono_id=chrono_id, chrono_version=version, next_run_at=current.due)
            )
            return current
        raise RuntimeError(
            f"schedule of chrono {chrono_id} kept changing under {_MAX_RACES} retags"
        )

    async def cancel(self, chrono_id: str, version: int) -> bool:
        """Remove the pending occurrence unless it belongs to a newer version; announce it."""
        current = await self.pending(chrono_id)
        if current is not None:
            if current.version > version:
                return False
            await self._delete(current.seq)
        await self._emitter.schedule_armed(
            ScheduleArmed(chrono_id=chrono_id, chrono_version=version, next_run_at=None)
        )
        return True

    async def forget(self, chrono_id: str) -> None:
        """Drop everything of a deleted chrono (ids are never reused, so nothing newer exists)."""
        for subject in (names.schedule_subject(chrono_id), names.schedule_fired_subject(chrono_id)):
            await self._js.purge_stream(names.SCHEDULES_STREAM, subject=subject)

    async def delete_if_current(self, pending: Pending) -> None:
        """Delete exactly this stored message (a newer one that replaced it is untouched)."""
        await self._delete(pending.seq)

    async def _delete(self, seq: int) -> None:
        try:
            await self._js.delete_msg(names.SCHEDULES_STREAM, seq)
        except APIError as exc:
            if exc.err_code != _NO_MESSAGE:  # already fired or replaced: nothing to cancel
                raise

    async def _write(
        self,
        chrono_id: str,
        version: int,
        due: datetime,
        *,
        expected: int,
        nonce: str | None = None,
        trace: Mapping[str, str],
    ) -> bool:
        body = ScheduleMessage(chrono_id=chrono_id, chrono_version=version, due_at=due)
        headers = {
            # nats-server copies these onto the fired message: the fire continues the trace.
            **trace,
            names.SCHEDULE: at_expression(fire_at(due, self._lead)),
            names.SCHEDULE_TARGET: names.schedule_fired_subject(chrono_id),
            names.MSG_ID: schedule_msg_id(chrono_id, version, due, nonce),
            names.DUE_AT: due.isoformat(),
            names.EXPECTED_LAST_SUBJECT_SEQUENCE: str(expected),
        }
        ack = await self._js.publish(
            names.schedule_subject(chrono_id),
            body.model_dump_json(by_alias=True).encode(),
            headers=headers,
        )
        return bool(ack.duplicate)


def _stands(current: Pending, version: int, due: datetime, policy: ArmPolicy) -> bool:
    """Whether the existing message makes arming (``version``, ``due``) unnecessary."""
    if policy is ArmPolicy.ADVANCE:
        return (current.version, current.due) >= (version, due)
    return current.version >= version
