"""Everything the scheduler writes besides schedule messages: runs, skips, finishes, arms.

RunRequested is on the latency path, so concurrent ones are coalesced into JetStream atomic
batches: one disk sync per batch instead of one per message, which is what lets 10,000
occurrences due in the same second go out within it. A batch holding a duplicate message id
(a redelivery) is refused whole by the server; its messages are then written one by one, so
the duplicate alone is dropped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass, field

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.errors import APIError

from chronoflow_contracts import encode, names
from chronoflow_contracts.chrono import ChronoFinished
from chronoflow_contracts.runs import RunRequested, RunSkipped, ScheduleArmed
from chronoflow_platform.publishing import event_headers, publish_event
from chronoflow_scheduler.domain import armed_msg_id, finished_msg_id, skipped_msg_id, target_kind

log = logging.getLogger(__name__)

#: JetStream's error codes the scheduler acts on.
WRONG_LAST_SEQUENCE = 10071
ATOMIC_DISABLED = 10174
BATCH_DUPLICATE_ID = 10201

_BATCH_ID = "Nats-Batch-Id"
_BATCH_SEQUENCE = "Nats-Batch-Sequence"
_BATCH_COMMIT = "Nats-Batch-Commit"


@dataclass(frozen=True)
class PreparedWork:
    """A RunRequested encoded ahead of its due instant, ready to go out."""

    subject: str
    body: bytes
    headers: dict[str, str]


@dataclass
class _Pending:
    work: PreparedWork
    done: asyncio.Future[None] = field(repr=False)


class WorkBatcher:
    """Writes RunRequested messages, coalescing those queued at the same moment.

    Up to ``max_in_flight`` batches are being stored at once, so a burst is pipelined.
    """

    def __init__(
        self,
        nc: NatsClient,
        js: JetStreamContext,
        *,
        max_batch: int,
        max_in_flight: int = 4,
        timeout: float = 5.0,
    ) -> None:
        self._nc = nc
        self._js = js
        self._max_batch = max_batch
        self._timeout = timeout
        self._queue: list[_Pending] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._flushing: set[asyncio.Task[None]] = set()
        self._atomic = max_batch > 1

    def enqueue(self, work: PreparedWork) -> asyncio.Future[None]:
        """Queue one message; the future resolves once JetStream has stored it (or dropped it
        as a duplicate), or fails with the reason it could not be stored."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(work, done))
        self._idle.clear()
        self._wake.set()
        return done

    async def publish(self, work: PreparedWork) -> None:
        """Store one message; returns once JetStream has it (or drops it as a duplicate)."""
        await self.enqueue(work)

    async def quiet(self) -> None:
        """Wait until nothing is queued or being stored (lets a burst go out first)."""
        await self._idle.wait()

    async def run(self) -> None:
        """Flush queued messages until cancelled."""
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._queue:
                    await self._slots.acquire()
                    batch = self._queue[: self._max_batch]
                    del self._queue[: self._max_batch]
                    task = asyncio.create_task(self._flush(batch), name="work-batch")
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
        if not self._queue and not self._flushing:
            self._idle.set()

    async def _flush(self, batch: list[_Pending]) -> None:
        if len(batch) > 1 and self._atomic:
            try:
                await self._commit_atomic(batch)
            except APIError as exc:
                if exc.err_code == ATOMIC_DISABLED:
                    log.info("atomic batches disabled on %s; writing one by one", names.WORK_STREAM)
                    self._atomic = False
                elif exc.err_code != BATCH_DUPLICATE_ID:
                    log.warning("atomic batch refused (%s); writing one by one", exc)
            except Exception as exc:  # timeouts, disconnects: each message is retried alone
                log.warning("atomic batch failed (%s); writing one by one", exc)
            else:
                for p in batch:
                    if not p.done.done():
                        p.done.set_result(None)
                return
        await asyncio.gather(*(self._single(p) for p in batch))

    async def _commit_atomic(self, batch: list[_Pending]) -> None:
        batch_id = uuid.uuid4().hex
        last = len(batch)
        for i, p in enumerate(batch[:-1], start=1):
            headers = {**p.work.headers, _BATCH_ID: batch_id, _BATCH_SEQUENCE: str(i)}
            await self._nc.publish(p.work.subject, p.work.body, headers=headers)
        tail = batch[-1].work
        headers = {
            **tail.headers,
            _BATCH_ID: batch_id,
            _BATCH_SEQUENCE: str(last),
            _BATCH_COMMIT: "1",
        }
        reply = await self._nc.request(tail.subject, tail.body, headers=headers, timeout=10)
        answer = json.loads(reply.data)
        if "error" in answer:
            raise APIError.from_error(answer["error"])

    async def _single(self, p: _Pending) -> None:
        if p.done.done():
            return
        try:
            await self._js.publish(
                p.work.subject, p.work.body, headers=p.work.headers, timeout=self._timeout
            )
        except Exception as exc:  # handed to the waiting fire, which retries it
            if not p.done.done():
                p.done.set_exception(exc)
        else:
            if not p.done.done():
                p.done.set_result(None)


class Emitter:
    """The scheduler's writes to the work, runs and event streams."""

    def __init__(self, js: JetStreamContext, batcher: WorkBatcher) -> None:
        self._js = js
        self._batcher = batcher

    @staticmethod
    def prepare_run(event: RunRequested, *, msg_id: str) -> PreparedWork:
        """Encode work for the target type's executors, to send later."""
        return PreparedWork(
            subject=names.work_subject(target_kind(event.target_type)),
            body=encode(event),
            headers=event_headers(event, msg_id=msg_id),
        )

    def enqueue_run(self, work: PreparedWork) -> asyncio.Future[None]:
        """Queue prepared work now; the future says when it is stored."""
        return self._batcher.enqueue(work)

    async def send_run(self, work: PreparedWork) -> None:
        """Queue prepared work and wait until it is stored (a duplicate id is dropped)."""
        await self._batcher.publish(work)

    async def run_requested(self, event: RunRequested, *, msg_id: str) -> None:
        """Encode and queue work for the target type's executors."""
        await self.send_run(self.prepare_run(event, msg_id=msg_id))

    async def quiet(self) -> None:
        """Wait until no RunRequested is waiting to be stored."""
        await self._batcher.quiet()

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
        subject = names.aggregate_subject("chrono", event.chrono_id)
        try:
            await publish_event(
                self._js,
                subject,
                event,
                msg_id=finished_msg_id(event.chrono_id, expected_version),
                expected_last_subject_sequence=expected_version,
            )
        except APIError as exc:
            if exc.err_code == WRONG_LAST_SEQUENCE:
                return False  # a newer event decides the chrono's fate
            raise
        return True
