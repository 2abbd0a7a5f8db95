"""Asks the event store (not the lagging read model) whether a schedule still holds."""

from __future__ import annotations

from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from chronoflow_contracts import names
from chronoflow_scheduler.domain import SCHEDULE_CHANGING


@dataclass(frozen=True)
class Verdict:
    """Whether a schedule made for some version still holds, and the chrono's latest version.

    ``latest`` is the sequence of the chrono's last event when the schedule holds (only manual
    triggers followed it), else the sequence of the first event that invalidated it.
    ``changed_by`` names that event's type.
    """

    holds: bool
    latest: int
    changed_by: str | None = None


class EventLog:
    """Reads a chrono's events on its CF_EVENTS subject by direct get (cheap, no consumer)."""

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js

    async def last(self, chrono_id: str) -> tuple[int, str] | None:
        """The sequence and type of the chrono's last event (None: no such chrono)."""
        subject = names.aggregate_subject("chrono", chrono_id)
        try:
            raw = await self._js.get_last_msg(names.EVENTS_STREAM, subject, direct=True)
        except NotFoundError:
            return None
        assert raw.seq is not None
        return raw.seq, (raw.headers or {}).get(names.EVENT_TYPE, "")

    async def verify(self, chrono_id: str, version: int) -> Verdict:
        """Does a schedule armed at ``version`` still hold? Only triggers may have followed it.

        Event types this code does not know are taken as leaving the schedule alone, exactly
        as the chrono-event consumer ignores them.
        """
        last = await self.last(chrono_id)
        if last is None:
            return Verdict(holds=False, latest=0, changed_by=None)
        last_seq, last_type = last
        if last_seq == version:
            return Verdict(holds=True, latest=version)
        if last_seq < version:
            # The schedule names a version the store never had (a recreated stream).
            return Verdict(holds=False, latest=last_seq, changed_by=last_type)
        if last_type in SCHEDULE_CHANGING:
            return Verdict(holds=False, latest=last_seq, changed_by=last_type)
        return await self._walk(chrono_id, version, last_seq)

    async def _walk(self, chrono_id: str, version: int, last_seq: int) -> Verdict:
        # The last event leaves schedules alone (a manual trigger); look at each event
        # between to see whether any other one changed the schedule.
        subject = names.aggregate_subject("chrono", chrono_id)
        seq = version + 1
        latest = version
        while seq <= last_seq:
            try:
                raw = await self._js.get_msg(
                    names.EVENTS_STREAM, seq=seq, subject=subject, next=True, direct=True
                )
            except NotFoundError:
                break
            assert raw.seq is not None
            event_type = (raw.headers or {}).get(names.EVENT_TYPE, "")
            if event_type in SCHEDULE_CHANGING:
                return Verdict(holds=False, latest=raw.seq, changed_by=event_type)
            latest = raw.seq
            seq = raw.seq + 1
        return Verdict(holds=True, latest=max(latest, last_seq))
