"""Asks the event store (not the lagging read model) whether a schedule still holds, and
watches chrono events live while fires are held."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import Header
from nats.js.errors import APIError, NotFoundError

from chronoflow_contracts import names
from chronoflow_scheduler.coalesce import Coalescer
from chronoflow_scheduler.domain import SCHEDULE_CHANGING

#: Status of the message that ends a batched direct get, and of one that found nothing.
_END_OF_BATCH = "204"
_NO_RESULTS = "404"
#: Headers a direct get adds to each message it returns.
_SUBJECT = "Nats-Subject"
_SEQUENCE = "Nats-Sequence"


async def _listen(
    nc: NatsClient, subject: str, cb: Callable[[Msg], Awaitable[None]]
) -> Subscription:
    """A core subscription without pending limits: nothing it is sent is dropped."""
    return await nc.subscribe(subject, cb=cb, pending_msgs_limit=0, pending_bytes_limit=0)


async def _unsubscribe(sub: Subscription | None) -> None:
    """Unsubscribe, if subscribed; a connection already gone has nothing left to undo."""
    if sub is not None:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


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


@dataclass(eq=False)
class _Batch:
    """One batched direct get in flight: the last event found for each subject asked."""

    found: dict[str, tuple[int, str]] = field(default_factory=dict)
    over: asyncio.Event = field(default_factory=asyncio.Event)
    error: Exception | None = None


class LastEvents:
    """The last event of many subjects, concurrent reads coalesced into one direct get.

    A fire's check of the event store is one direct get per fire: through nats-py's request
    (a future, a response parse) ~40-50 us of the scheduler's CPU each and a request each for
    nats-server. Reads asked for in the same moment go out as one batched direct get
    (``multi_last``, the last message of each listed subject as of one point of the stream),
    answered into one subscription: ~20 us a subject. A burst prepares a few dozen fires at
    once, and the reads of the next batch gather while one is in flight.
    """

    def __init__(
        self, nc: NatsClient, *, stream: str, max_batch: int = 256, timeout: float = 5.0
    ) -> None:
        self._nc = nc
        self._get_subject = f"$JS.API.DIRECT.GET.{stream}"
        self._timeout = timeout
        # One turn of the event loop lets the reads asked for in the same moment join.
        self._reads: Coalescer[str, tuple[int, str]] = Coalescer(
            self._read, max_batch=max_batch, gather=0.0, name="last-events-flush"
        )
        self._sub: Subscription | None = None
        self._inbox = ""
        self._numbers = itertools.count()
        self._batches: dict[str, _Batch] = {}

    async def start(self) -> None:
        """Subscribe the inbox the batches are answered on (once)."""
        if self._sub is None:
            self._inbox = self._nc.new_inbox()
            self._sub = await _listen(self._nc, f"{self._inbox}.*", self._on_msg)

    async def stop(self) -> None:
        """Unsubscribe."""
        await _unsubscribe(self._sub)
        self._sub = None

    async def get(self, subject: str) -> tuple[int, str] | None:
        """The sequence and ``CF-Event-Type`` of the subject's last message (None: none)."""
        if self._sub is None:
            await self.start()
        return await self._reads.get(subject)

    async def _read(self, subjects: list[str]) -> dict[str, tuple[int, str]]:
        token = str(next(self._numbers))
        batch = _Batch()
        self._batches[token] = batch
        try:
            request = {"multi_last": subjects, "batch": len(subjects)}
            await self._nc.publish(
                self._get_subject, json.dumps(request).encode(), f"{self._inbox}.{token}"
            )
            await asyncio.wait_for(batch.over.wait(), self._timeout)
        finally:
            del self._batches[token]
        if batch.error is not None:
            raise batch.error
        return batch.found

    async def _on_msg(self, msg: Msg) -> None:
        batch = self._batches.get(msg.subject.rsplit(".", 1)[-1])
        if batch is None:
            return  # the answer to a read given up on
        headers = msg.headers or {}
        status = headers.get(Header.STATUS)
        if not status:
            subject = headers.get(_SUBJECT, "")
            batch.found[subject] = (int(headers[_SEQUENCE]), headers.get(names.EVENT_TYPE, ""))
            return
        if status not in (_END_OF_BATCH, _NO_RESULTS):
            try:
                APIError.from_msg(msg)
            except APIError as exc:
                batch.error = exc
        batch.over.set()


class EventLog:
    """Reads a chrono's events on its CF_EVENTS subject by direct get (cheap, no consumer)."""

    def __init__(self, nc: NatsClient, js: JetStreamContext) -> None:
        self._js = js
        self._lasts = LastEvents(nc, stream=names.EVENTS_STREAM)

    async def start(self) -> None:
        """Subscribe what batched reads are answered on."""
        await self._lasts.start()

    async def stop(self) -> None:
        """Unsubscribe."""
        await self._lasts.stop()

    async def last(self, chrono_id: str) -> tuple[int, str] | None:
        """The sequence and type of the chrono's last event (None: no such chrono)."""
        return await self._lasts.get(names.aggregate_subject("chrono", chrono_id))

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
            self._sub = await _listen(self._nc, names.aggregate_filter("chrono"), self._on_event)

    async def stop(self) -> None:
        """Unsubscribe."""
        await _unsubscribe(self._sub)
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
