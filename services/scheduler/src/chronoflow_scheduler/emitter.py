"""Everything the scheduler writes besides schedule messages: runs, skips, finishes, arms.

RunRequested is on the latency path, so concurrent ones are coalesced into JetStream atomic
batches: one disk sync per batch instead of one per message, which is what lets 10,000
occurrences due in the same second go out within it. ChronoFinished, written after every
one-shot fires, is coalesced the same way on the event stream: an atomic batch accepts each
message's own ``Nats-Expected-Last-Subject-Sequence``, so every finish keeps its
compare-and-set. A batch the server refuses whole (a duplicate message id from a
redelivery, one chrono that changed meanwhile) is then written one message at a time, so
only the offending message is dropped or refused. Fewer than ``ATOMIC_MIN_BATCH`` messages
go out as concurrent plain publishes: nats-server stages each atomic batch on disk, which
costs it more than a few single writes.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections import deque
from dataclasses import dataclass, field

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.errors import APIError

from chronoflow_contracts import encode, names
from chronoflow_contracts.chrono import ChronoFinished
from chronoflow_contracts.runs import RunRequested, RunSkipped, ScheduleArmed
from chronoflow_platform.publishing import (
    ATOMIC_DISABLED,
    ATOMIC_MIN_BATCH,
    BATCH_DUPLICATE_ID,
    commit_atomic,
    event_headers,
    publish_event,
)
from chronoflow_scheduler.domain import armed_msg_id, finished_msg_id, skipped_msg_id, target_kind

log = logging.getLogger(__name__)

#: JetStream's error codes the scheduler acts on.
WRONG_LAST_SEQUENCE = 10071

#: Why the server may refuse a whole batch because of one message in it: expected, and
#: settled by writing the messages one by one.
_REFUSED_FOR_ONE = frozenset({WRONG_LAST_SEQUENCE, BATCH_DUPLICATE_ID})


@dataclass(frozen=True)
class Prepared:
    """A message encoded ahead of the moment it goes out."""

    subject: str
    body: bytes
    headers: dict[str, str]


@dataclass
class _Pending:
    message: Prepared
    done: asyncio.Future[None] = field(repr=False)


class AtomicBatcher:
    """Writes messages to one stream, coalescing those queued at the same moment.

    Up to ``max_in_flight`` batches are being stored at once, so a burst is pipelined, and
    what is queued while they are stored forms the next batch. ``linger`` (for writes no one
    waits on to be punctual) lets a batch gather for that long before it goes out, so a
    steady trickle is written a few dozen at a time rather than one disk sync each.
    """

    def __init__(
        self,
        nc: NatsClient,
        js: JetStreamContext,
        *,
        stream: str,
        max_batch: int,
        max_in_flight: int = 4,
        linger: float = 0.0,
        timeout: float = 5.0,
    ) -> None:
        self._nc = nc
        self._js = js
        self._stream = stream
        self._max_batch = max_batch
        self._linger = linger
        self._timeout = timeout
        self._queue: list[_Pending] = []
        # What :meth:`ahead` waits for, kept so that a burst of 10,000 waiters costs
        # O(log n) per message rather than a callback on every unsettled message per waiter:
        # messages are numbered as queued; the lowest number not yet settled is the floor.
        self._numbered = 0
        self._unsettled: list[int] = []  # a heap; settled numbers leave it lazily
        self._settled: set[int] = set()
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._flushing: set[asyncio.Task[None]] = set()
        self._atomic = max_batch > 1

    def enqueue(self, message: Prepared) -> asyncio.Future[None]:
        """Queue one message; the future resolves once JetStream has stored it (or dropped it
        as a duplicate), or fails with the reason it could not be stored."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(message, done))
        number = self._numbered
        self._numbered += 1
        heapq.heappush(self._unsettled, number)
        done.add_done_callback(lambda _: self._settle(number))
        self._wake.set()
        return done

    def _floor(self) -> int:
        """The lowest number not yet settled (the next number when all are)."""
        while self._unsettled and self._unsettled[0] in self._settled:
            self._settled.discard(heapq.heappop(self._unsettled))
        return self._unsettled[0] if self._unsettled else self._numbered

    def _settle(self, number: int) -> None:
        self._settled.add(number)
        floor = self._floor()
        while self._waiters and self._waiters[0][0] <= floor:
            _, waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    async def publish(self, message: Prepared) -> None:
        """Store one message; returns once JetStream has it (or drops it as a duplicate)."""
        await self.enqueue(message)

    async def ahead(self) -> None:
        """Wait until what is queued or being stored now has been settled.

        Only what is there at the call: messages queued later do not extend the wait, so
        under a steady flow it ends with the next batch instead of waiting for a quiet
        moment that may not come.
        """
        target = self._numbered
        if self._floor() >= target:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, waiter))  # targets only grow: the deque stays sorted
        await waiter

    async def run(self) -> None:
        """Flush queued messages until cancelled."""
        try:
            while True:
                await self._wake.wait()
                if self._linger and len(self._queue) < self._max_batch:
                    await asyncio.sleep(self._linger)
                self._wake.clear()
                while self._queue:
                    await self._slots.acquire()
                    batch = self._queue[: self._max_batch]
                    del self._queue[: self._max_batch]
                    task = asyncio.create_task(self._flush(batch), name="atomic-batch")
                    self._flushing.add(task)
                    task.add_done_callback(self._flushed)
        finally:
            for task in list(self._flushing):
                task.cancel()
            for p in self._queue:
                if not p.done.done():
                    p.done.cancel()

    def _flushed(self, task: asyncio.Task[None]) -> None:
        self._flushing.discard(task)
        self._slots.release()

    async def _flush(self, batch: list[_Pending]) -> None:
        if len(batch) >= ATOMIC_MIN_BATCH and self._atomic:
            try:
                await commit_atomic(
                    self._nc,
                    [(p.message.subject, p.message.body, p.message.headers) for p in batch],
                    ack_timeout=10,
                )
            except APIError as exc:
                if exc.err_code == ATOMIC_DISABLED:
                    log.info("atomic batches disabled on %s; writing one by one", self._stream)
                    self._atomic = False
                elif exc.err_code not in _REFUSED_FOR_ONE:
                    log.warning("atomic batch refused (%s); writing one by one", exc)
            except Exception as exc:  # timeouts, disconnects: each message is retried alone
                log.warning("atomic batch failed (%s); writing one by one", exc)
            else:
                for p in batch:
                    if not p.done.done():
                        p.done.set_result(None)
                return
        await asyncio.gather(*(self._single(p) for p in batch))

    async def _single(self, p: _Pending) -> None:
        if p.done.done():
            return
        try:
            await self._js.publish(
                p.message.subject, p.message.body, headers=p.message.headers, timeout=self._timeout
            )
        except Exception as exc:  # handed to the waiting caller, which decides
            if not p.done.done():
                p.done.set_exception(exc)
        else:
            if not p.done.done():
                p.done.set_result(None)


class Emitter:
    """The scheduler's writes to the work, runs and event streams."""

    def __init__(self, js: JetStreamContext, *, work: AtomicBatcher, events: AtomicBatcher) -> None:
        self._js = js
        self._work = work
        self._events = events

    @staticmethod
    def prepare_run(event: RunRequested, *, msg_id: str) -> Prepared:
        """Encode work for the target type's executors, to send later."""
        return Prepared(
            subject=names.work_subject(target_kind(event.target_type)),
            body=encode(event),
            headers=event_headers(event, msg_id=msg_id),
        )

    def enqueue_run(self, work: Prepared) -> asyncio.Future[None]:
        """Queue prepared work now; the future says when it is stored."""
        return self._work.enqueue(work)

    async def send_run(self, work: Prepared) -> None:
        """Queue prepared work and wait until it is stored (a duplicate id is dropped)."""
        await self._work.publish(work)

    async def run_requested(self, event: RunRequested, *, msg_id: str) -> None:
        """Encode and queue work for the target type's executors."""
        await self.send_run(self.prepare_run(event, msg_id=msg_id))

    async def work_ahead(self) -> None:
        """Wait until the RunRequesteds queued or being stored now have been stored."""
        await self._work.ahead()

    async def run_skipped(self, event: RunSkipped) -> None:
        """Record skipped occurrences in the chrono's run history."""
        msg_id = skipped_msg_id(event.chrono_id, event.scheduled_for)
        await publish_event(self._js, names.runs_subject(event.chrono_id), event, msg_id=msg_id)

    async def schedule_armed(self, event: ScheduleArmed) -> None:
        """Announce the chrono's pending occurrence (or that it has none)."""
        msg_id = armed_msg_id(event.chrono_id, event.chrono_version, event.next_run_at)
        await publish_event(self._js, names.runs_subject(event.chrono_id), event, msg_id=msg_id)

    async def chrono_finished(self, event: ChronoFinished, *, expected_version: int) -> bool:
        """Append ChronoFinished unless the chrono moved past ``expected_version`` meanwhile."""
        message = Prepared(
            subject=names.aggregate_subject("chrono", event.chrono_id),
            body=encode(event),
            headers=event_headers(
                event,
                msg_id=finished_msg_id(event.chrono_id, expected_version),
                expected_last_subject_sequence=expected_version,
            ),
        )
        try:
            await self._events.publish(message)
        except APIError as exc:
            if exc.err_code == WRONG_LAST_SEQUENCE:
                return False  # a newer event decides the chrono's fate
            raise
        return True
