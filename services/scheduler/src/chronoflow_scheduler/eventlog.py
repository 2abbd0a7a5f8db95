"""Asks the event store (not the lagging read model) whether a schedule still holds, and
watches chrono events live while fires are held."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
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


class Watch:
    """One holder's interest in one chrono: set when any event of the chrono is seen."""

    __slots__ = ("changed", "chrono_id", "epoch")

    def __init__(self, chrono_id: str, epoch: int) -> None:
        self.chrono_id = chrono_id
        self.epoch = epoch
        self.changed = False


class ChangeWatch:
    """Notices chrono events while fires are held, so the due-instant check is free.

    A core subscription on ``cf.events.chrono.*`` marks the watches of held chronos. Nothing
    is dropped (no pending limits), and a reconnect in between counts as a change, so "not
    changed" is trustworthy; "changed" only costs a re-read of the event store.
    """

    def __init__(self, nc: NatsClient) -> None:
        self._nc = nc
        self._watches: dict[str, list[Watch]] = {}
        self._sub: Subscription | None = None

    async def start(self) -> None:
        """Subscribe (once)."""
        if self._sub is None:
            self._sub = await self._nc.subscribe(
                names.aggregate_filter("chrono"),
                cb=self._on_event,
                pending_msgs_limit=0,
                pending_bytes_limit=0,
            )

    async def stop(self) -> None:
        """Unsubscribe."""
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None

    def _epoch(self) -> int:
        return int(self._nc.stats["reconnects"])

    def watch(self, chrono_id: str) -> Watch:
        """Start noticing the chrono's events (before reading its state)."""
        w = Watch(chrono_id, self._epoch())
        self._watches.setdefault(chrono_id, []).append(w)
        return w

    def release(self, w: Watch) -> None:
        """Stop noticing for this holder."""
        held = self._watches.get(w.chrono_id)
        if held is not None:
            with contextlib.suppress(ValueError):
                held.remove(w)
            if not held:
                del self._watches[w.chrono_id]

    def changed(self, w: Watch) -> bool:
        """Whether the chrono may have changed since :meth:`watch`."""
        return (
            w.changed or self._sub is None or not self._nc.is_connected or self._epoch() != w.epoch
        )

    async def _on_event(self, msg: Msg) -> None:
        for w in self._watches.get(msg.subject.rsplit(".", 1)[-1], ()):
            w.changed = True
