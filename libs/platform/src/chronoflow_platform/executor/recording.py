"""Records run events in CF_RUNS, coalescing concurrent ones into JetStream atomic batches.

With ``sync_interval: always`` every stored message costs a disk sync, which caps one stream
at roughly 1,500 messages/s on a small machine; each run writes two (RunStarted and
RunCompleted). Events go out together when they are queued while earlier batches are being
stored (under load), or within :data:`LINGER` of the first of them (at moderate rates, where
nothing else would wait with them): from ``ATOMIC_MIN_BATCH`` events on as one atomic batch
(one request and acknowledgement, a fraction of the server's CPU per message), else as
concurrent plain publishes, which cost both sides less than a small atomic batch (see
``chronoflow_platform.publishing``). A caller that needs its event stored promptly calls
:meth:`EventRecorder.flush`. An event recorded *after* another that is still queued joins its
group, which goes out whole and in order: a fast attempt's RunStarted and RunCompleted go out
together. A batch holding a duplicate message id (a redelivered run) is refused whole by the
server; its events are then stored one by one (a group's in order), so each learns whether it
was a duplicate and where the original is.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.errors import APIError

from chronoflow_contracts import Event, encode
from chronoflow_platform.publishing import (
    ATOMIC_DISABLED,
    ATOMIC_MIN_BATCH,
    BATCH_DUPLICATE_ID,
    commit_atomic,
    event_headers,
)

log = logging.getLogger(__name__)


#: How long an event waits for others when no batch is being stored. Long enough for a
#: webhook to a nearby receiver to come back, so an attempt's two events share a write, and
#: for a few more runs to join at a few hundred runs/s; short against what waits on it (the
#: work message's ack, which holds a consumer slot, and the run history) and far below the
#: ack wait. Callers that cannot wait (an executor about to send a message) flush.
LINGER = 0.010


@dataclass(frozen=True, slots=True)
class Stored:
    """Where an event is: its stream sequence, or the original's when it was a duplicate."""

    seq: int
    duplicate: bool = False


@dataclass(slots=True)
class _Pending:
    subject: str
    body: bytes
    headers: dict[str, str]
    done: asyncio.Future[Stored] = field(repr=False)


#: Events that go out together and in order, never split across batches.
_Group = list[_Pending]


class EventRecorder:
    """Stores events on one stream, batching those that wait at the same time.

    At most ``max_in_flight`` batches are being stored at once; under load the queue grows
    while they are, so batches grow with the load and the number of syncs does not. With no
    batch being stored, queued events wait up to ``linger`` seconds for company, or until
    ``max_batch`` of them are queued, or until someone flushes.
    """

    def __init__(
        self,
        nc: NatsClient,
        js: JetStreamContext,
        *,
        max_batch: int = 200,
        max_in_flight: int = 4,
        linger: float = LINGER,
        timeout: float = 10.0,
    ) -> None:
        self._nc = nc
        self._js = js
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._linger = linger
        self._timeout = timeout
        self._queue: deque[_Group] = deque()
        self._queued = 0
        # The queued groups by their first event's future, for events recorded after it.
        self._groups: dict[asyncio.Future[Stored], _Group] = {}
        self._in_flight = 0
        self._wake: asyncio.Handle | None = None
        self._wake_at = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self.atomic = max_batch > 1

    def record(
        self,
        subject: str,
        event: Event,
        *,
        msg_id: str,
        after: asyncio.Future[Stored] | None = None,
    ) -> asyncio.Future[Stored]:
        """Queue ``event``; the future resolves once it is stored (or found a duplicate).

        ``after``: a future this recorder returned; ``event`` is stored only once that one is
        (stored or a duplicate), and fails with it. While that event is still queued, both go
        out in the same batch.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Stored] = loop.create_future()
        pending = _Pending(subject, encode(event), event_headers(event, msg_id=msg_id), done)
        if after is None or after.done():
            self._enqueue(pending, after)
            return done
        group = self._groups.get(after)
        if group is not None:
            group.append(pending)
            self._queued += 1
            self._schedule()
        else:
            # Already in a batch being stored, which may land after one sent now: wait for it.
            after.add_done_callback(lambda before: self._enqueue(pending, before))
        return done

    def flush(self) -> None:
        """Send what is queued on the next turn of the loop instead of lingering."""
        if self._queue:
            self._schedule(0.0)

    async def close(self) -> None:
        """Store what is queued and wait for it; fail whatever could not go out."""
        self._linger = 0.0
        self.flush()
        while self._tasks or self._wake is not None:
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            else:
                await asyncio.sleep(0)
        for group in self._queue:
            for pending in group:
                if not pending.done.done():
                    pending.done.set_exception(ConnectionError("the recorder was closed"))
        self._queue.clear()
        self._groups.clear()
        self._queued = 0

    def _enqueue(self, pending: _Pending, before: asyncio.Future[Stored] | None) -> None:
        if before is not None:
            if before.cancelled():
                # Nothing tells when, or whether, a cancelled event is stored: this one
                # cannot safely follow it.
                pending.done.cancel()
                return
            failure = before.exception()
            if failure is not None:
                # The preceding event is not stored, so this one is not either: history must
                # never read it first.
                if not pending.done.done():
                    pending.done.set_exception(failure)
                return
        group = [pending]
        self._queue.append(group)
        self._groups[pending.done] = group
        self._queued += 1
        self._schedule()

    def _schedule(self, delay: float | None = None) -> None:
        """Have the queue go out in ``delay`` seconds (by default: now if batches are being
        stored or a batch is full, else after the linger), unless it already goes sooner."""
        if delay is None:
            busy = self._in_flight or self._queued >= self._max_batch
            delay = 0.0 if busy else self._linger
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        if self._wake is not None:
            if self._wake_at <= when:
                return
            self._wake.cancel()
        self._wake_at = when
        # Without a delay, every run ready in this turn of the loop queues its event first.
        self._wake = loop.call_soon(self._kick) if delay <= 0 else loop.call_at(when, self._kick)

    def _kick(self) -> None:
        if self._wake is not None:
            self._wake.cancel()
            self._wake = None
        while self._queue and self._in_flight < self._max_in_flight:
            batch = self._take()
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._flush(batch))
            self._tasks.add(task)
            task.add_done_callback(self._flushed)

    def _take(self) -> list[_Group]:
        """The next batch: whole groups, up to ``max_batch`` events (one group if larger)."""
        batch: list[_Group] = []
        size = 0
        while self._queue and (not batch or size + len(self._queue[0]) <= self._max_batch):
            group = self._queue.popleft()
            del self._groups[group[0].done]
            batch.append(group)
            size += len(group)
        self._queued -= size
        return batch

    def _flushed(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._in_flight -= 1
        if self._queue:
            self._kick()

    async def _flush(self, groups: list[_Group]) -> None:
        batch = [pending for group in groups for pending in group]
        if len(batch) >= ATOMIC_MIN_BATCH and self.atomic:
            try:
                last = await commit_atomic(
                    self._nc,
                    [(p.subject, p.body, p.headers) for p in batch],
                    ack_timeout=self._timeout,
                )
            except APIError as exc:
                if exc.err_code == ATOMIC_DISABLED:
                    log.warning("atomic batches are disabled on the runs stream; one by one")
                    self.atomic = False
                elif exc.err_code != BATCH_DUPLICATE_ID:
                    log.warning("atomic batch refused (%s); storing one by one", exc)
            except Exception as exc:  # a timeout or disconnect: each event is tried alone
                log.warning("atomic batch failed (%s); storing one by one", exc)
            else:
                first = last - len(batch) + 1
                for offset, pending in enumerate(batch):
                    if not pending.done.done():
                        pending.done.set_result(Stored(first + offset))
                return
        await asyncio.gather(*(self._one_by_one(group) for group in groups))

    async def _one_by_one(self, group: _Group) -> None:
        """Store a group's events in order, each once the one before is; stop at a failure."""
        failure: BaseException | None = None
        for pending in group:
            if failure is None:
                failure = await self._single(pending)
            if failure is not None and not pending.done.done():
                pending.done.set_exception(failure)

    async def _single(self, pending: _Pending) -> Exception | None:
        # Stored even when its future was cancelled (the run ended without waiting for it):
        # an atomic batch would have stored it too, and what follows it in a group needs it.
        try:
            ack = await self._js.publish(
                pending.subject, pending.body, headers=pending.headers, timeout=self._timeout
            )
        except Exception as exc:  # handed to the run, which is then redelivered
            return exc
        if not pending.done.done():
            pending.done.set_result(Stored(ack.seq, bool(ack.duplicate)))
        return None
