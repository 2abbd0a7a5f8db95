"""Records run events in CF_RUNS, coalescing concurrent ones into JetStream atomic batches.

With ``sync_interval: always`` every stored message costs a disk sync, which caps one stream
at roughly 1,500 messages/s on a small machine; each run writes two (RunStarted and
RunCompleted). Events queued in the same turn of the event loop, or while earlier batches are
being stored, go out together: as one atomic batch (one sync for all of them) when there are
at least ``ATOMIC_MIN_BATCH``, else as concurrent plain publishes, which cost nats-server
less than a small atomic batch (see ``chronoflow_platform.publishing``). A batch holding a
duplicate message id (a redelivered run) is refused whole by the server; its events are then
stored one by one, so each learns whether it was a duplicate and where the original is.
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

from chronoflow_contracts import Event, encode
from chronoflow_platform.publishing import ATOMIC_MIN_BATCH, event_headers

log = logging.getLogger(__name__)

#: JetStream error codes of atomic batch publishing.
ATOMIC_DISABLED = 10174
BATCH_DUPLICATE_ID = 10201
_BATCH_ID = "Nats-Batch-Id"
_BATCH_SEQUENCE = "Nats-Batch-Sequence"
_BATCH_COMMIT = "Nats-Batch-Commit"


@dataclass(frozen=True, slots=True)
class Stored:
    """Where an event is: its stream sequence, or the original's when it was a duplicate."""

    seq: int
    duplicate: bool = False


@dataclass
class _Pending:
    subject: str
    body: bytes
    headers: dict[str, str]
    done: asyncio.Future[Stored] = field(repr=False)


class EventRecorder:
    """Stores events on one stream, batching those that wait at the same time.

    At most ``max_in_flight`` batches are being stored at once; under load the queue grows
    while they are, so batches grow with the load and the number of syncs does not.
    """

    def __init__(
        self,
        nc: NatsClient,
        js: JetStreamContext,
        *,
        max_batch: int = 200,
        max_in_flight: int = 4,
        timeout: float = 10.0,
    ) -> None:
        self._nc = nc
        self._js = js
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._timeout = timeout
        self._queue: list[_Pending] = []
        self._in_flight = 0
        self._kick_scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.atomic = max_batch > 1

    def record(self, subject: str, event: Event, *, msg_id: str) -> asyncio.Future[Stored]:
        """Queue ``event``; the future resolves once it is stored (or found a duplicate)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Stored] = loop.create_future()
        self._queue.append(
            _Pending(subject, encode(event), event_headers(event, msg_id=msg_id), done)
        )
        if not self._kick_scheduled:
            # Let every run that is ready in this turn of the loop queue its event first.
            self._kick_scheduled = True
            loop.call_soon(self._kick)
        return done

    async def close(self) -> None:
        """Wait for batches being stored; fail whatever is still queued."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for pending in self._queue:
            if not pending.done.done():
                pending.done.set_exception(ConnectionError("the recorder was closed"))
        self._queue.clear()

    def _kick(self) -> None:
        self._kick_scheduled = False
        while self._queue and self._in_flight < self._max_in_flight:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._flush(batch))
            self._tasks.add(task)
            task.add_done_callback(self._flushed)

    def _flushed(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._in_flight -= 1
        if self._queue:
            self._kick()

    async def _flush(self, batch: list[_Pending]) -> None:
        if len(batch) >= ATOMIC_MIN_BATCH and self.atomic:
            try:
                last = await self._commit_atomic(batch)
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
        await asyncio.gather(*(self._single(p) for p in batch))

    async def _commit_atomic(self, batch: list[_Pending]) -> int:
        batch_id = uuid.uuid4().hex
        for number, pending in enumerate(batch[:-1], start=1):
            headers = {**pending.headers, _BATCH_ID: batch_id, _BATCH_SEQUENCE: str(number)}
            await self._nc.publish(pending.subject, pending.body, headers=headers)
        tail = batch[-1]
        headers = {
            **tail.headers,
            _BATCH_ID: batch_id,
            _BATCH_SEQUENCE: str(len(batch)),
            _BATCH_COMMIT: "1",
        }
        reply = await self._nc.request(
            tail.subject, tail.body, headers=headers, timeout=self._timeout
        )
        answer = json.loads(reply.data)
        if "error" in answer:
            raise APIError.from_error(answer["error"])
        return int(answer["seq"])

    async def _single(self, pending: _Pending) -> None:
        if pending.done.done():
            return
        try:
            ack = await self._js.publish(
                pending.subject, pending.body, headers=pending.headers, timeout=self._timeout
            )
        except Exception as exc:  # handed to the run, which is then redelivered
            if not pending.done.done():
                pending.done.set_exception(exc)
        else:
            if not pending.done.done():
                pending.done.set_result(Stored(ack.seq, bool(ack.duplicate)))
