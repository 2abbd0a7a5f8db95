"""The durable pull consumer on ``cf.work.<target>``: continuous pulls, bounded concurrency,
runs released ahead held until their instant, in-progress acks for long runs, and a clean
hand-back on shutdown.

nats-py's ``fetch`` waits, once a first message has come, until the whole batch is filled or
the request expires, so a trickle of due runs would wait there. This consumer keeps pull
requests open instead (as nats.go's ``Consume`` does) and hands each message to a handler the
moment it arrives: it asks for as many messages as it has free slots, and asks again as runs
finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from chronoflow_contracts import names
from chronoflow_contracts.names import TargetKind

log = logging.getLogger(__name__)


class Job(Protocol):
    """A message made ready on arrival: when it may start, and how to run it."""

    @property
    def due(self) -> float:
        """The epoch second it may start at (any earlier moment: it starts at once)."""

    @property
    def name(self) -> str:
        """What it is, for logs."""

    def run(self) -> Coroutine[Any, Any, None]:
        """Run it and settle its message (ack, NAK or term)."""


#: Makes an arriving message a job: the decoding happens here, as it arrives.
Handler = Callable[[Msg], Job]
#: Longest a message that arrives before it is due is held. The scheduler releases at most
#: 10 s ahead; a run further ahead means this host's clock disagrees with the scheduler's,
#: and holding it for ever would keep it from ever running, so it starts after this long.
MAX_EARLY_HOLD_S = 15.0
_STATUS = "Status"
_PENDING_MESSAGES = "Nats-Pending-Messages"
_HEARTBEAT = "100"


@dataclass(frozen=True, slots=True)
class ConsumerOptions:
    """How the consumer shares and paces its work."""

    concurrency: int
    batch: int
    ack_wait_s: float
    max_deliver: int
    max_ack_pending: int
    shutdown_grace_s: float
    #: Messages released ahead of their instant one replica holds beyond its slots.
    hold_ahead: int = 0
    #: How long one pull request stays open at the server.
    pull_expires_s: float = 30.0
    #: The server proves an open pull request is alive this often when no message flows.
    pull_heartbeat_s: float = 5.0


def consumer_config(target: TargetKind, options: ConsumerOptions) -> ConsumerConfig:
    """The durable every replica binds to (creating it again with this config is a no-op)."""
    return ConsumerConfig(
        durable_name=names.EXECUTOR_DURABLES[target],
        description=(
            f"executor-{target}: RunRequested for {target.upper()} chronos, shared by every replica"
        ),
        filter_subject=names.work_subject(target),
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=options.ack_wait_s,
        max_deliver=options.max_deliver,
        max_ack_pending=options.max_ack_pending,
        # Open pull requests of every replica at once.
        max_waiting=512,
    )


class _Held:
    """A message that arrived before it is due, with the timer that lets it in line."""

    __slots__ = ("job", "msg", "since", "start_at", "timer")

    def __init__(self, msg: Msg, job: Job, since: float, start_at: float) -> None:
        self.msg = msg
        self.job = job
        self.since = since
        #: The epoch second it may start at: its due instant, or the longest hold's end.
        self.start_at = start_at
        self.timer: asyncio.TimerHandle | None = None


class WorkConsumer:
    """Keeps pull requests open for as many messages as there are free slots.

    ``credit`` counts messages asked for and not yet received. A run finishing frees a slot;
    once a quarter of a batch is free (or nothing is asked for at all) the consumer asks for
    more. A pull request that expires reports how many of its messages never came, which are
    taken off the credit; if the server goes quiet beyond its heartbeats, the credit is
    forgotten and asked for again. Should more arrive than there are slots, the extra wait in
    line for one (and get in-progress acks meanwhile): concurrency never exceeds the limit.

    Each message is made a job (decoded) as it arrives. One that is not due yet (released
    ahead of its instant by the scheduler) is held, without a slot, until its instant, and up
    to ``hold_ahead`` of them do not count against the slots when asking for more: so a burst
    released ahead is pulled and decoded while the executor waits for the instant, and at
    the instant only the runs themselves are left. Held messages beyond ``hold_ahead`` count
    as slots taken, so the consumer never asks for more than ``concurrency + hold_ahead``.

    Slots are a plain count: a message that finds one free gets a task running its job, and a
    finishing task hands its slot to the next message in line. (A task per message waiting
    on a semaphore cost a coroutine frame and a semaphore round trip on every run, for the
    rare case of a message arriving with no slot free.)

    Messages held longer than a third of ``ack_wait`` (running, in line or not yet due) get
    an in-progress ack every third of ``ack_wait``, so a long request is not redelivered
    while it runs, while a crashed replica's messages come back after ``ack_wait``.
    """

    #: Bound by run(), before any message can arrive: the loop all of this consumer runs on.
    _loop: asyncio.AbstractEventLoop

    def __init__(
        self,
        nc: NatsClient,
        js: JetStreamContext,
        target: TargetKind,
        handler: Handler,
        options: ConsumerOptions,
    ) -> None:
        self._nc = nc
        self._js = js
        self._target = target
        self._durable = names.EXECUTOR_DURABLES[target]
        self._handler = handler
        self._options = options
        self._free = options.concurrency
        #: Running jobs, with their message and when it arrived.
        self._inflight: dict[asyncio.Task[None], tuple[Msg, float]] = {}
        #: Due messages that found no slot free, in the order they became due.
        self._waiting: deque[tuple[Msg, Job, float]] = deque()
        #: Messages not due yet.
        self._held: set[_Held] = set()
        self._credit = 0
        self._threshold = max(1, options.batch // 4)
        self._heard = 0.0
        self._inbox = ""
        self._pull_subject = f"$JS.API.CONSUMER.MSG.NEXT.{names.WORK_STREAM}.{self._durable}"
        self._sub: Subscription | None = None
        self._stopping = False
        self._background: set[asyncio.Task[None]] = set()

    @property
    def inflight(self) -> int:
        """Due messages held right now (running, or waiting for a slot)."""
        return len(self._inflight) + len(self._waiting)

    @property
    def held(self) -> int:
        """Messages held until they are due."""
        return len(self._held)

    async def ensure(self) -> None:
        """Create the durable consumer or bring its settings up to date (idempotent)."""
        await self._js.add_consumer(names.WORK_STREAM, consumer_config(self._target, self._options))

    async def run(self) -> None:
        """Consume until cancelled; then let runs in flight finish within the grace period."""
        loop = self._loop = asyncio.get_running_loop()
        self._inbox = self._nc.new_inbox()
        self._sub = await self._nc.subscribe(self._inbox, cb=self._on_message)
        self._heard = loop.time()
        keep_alive = loop.create_task(self._keep_alive(), name=f"executor-{self._target}-keepalive")
        try:
            while True:
                await self._top_up()
                await asyncio.sleep(self._options.pull_heartbeat_s)
                quiet = loop.time() - self._heard
                if self._credit and quiet > 3 * self._options.pull_heartbeat_s:
                    # Neither messages nor heartbeats: the requests are gone (a server
                    # restart, a reconnect). Forget them and ask again.
                    log.warning("pull requests went quiet; asking again")
                    self._credit = 0
        finally:
            self._stopping = True
            # Stop taking work first: a message handed back while this subscription still
            # listens would be delivered straight back to it and wait out ack_wait.
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            await self._finish_inflight()
            keep_alive.cancel()

    def _wanted(self) -> int:
        """How many more messages to ask for now (0: not worth a request yet)."""
        if self._stopping:
            return 0
        held = len(self._held)
        wanted = (
            self._options.concurrency
            + min(held, self._options.hold_ahead)
            - self.inflight
            - held
            - self._credit
        )
        if wanted >= self._threshold or (wanted > 0 and self._credit == 0):
            return wanted
        return 0

    async def _top_up(self) -> None:
        wanted = self._wanted()
        if not wanted or not self._nc.is_connected:
            return
        while wanted > 0:
            batch = min(wanted, self._options.batch)
            request = {
                "batch": batch,
                "expires": int(self._options.pull_expires_s * 1e9),
                "idle_heartbeat": int(self._options.pull_heartbeat_s * 1e9),
            }
            self._credit += batch
            wanted -= batch
            try:
                await self._nc.publish(
                    self._pull_subject, json.dumps(request).encode(), reply=self._inbox
                )
            except Exception as exc:  # disconnected: the watchdog asks again later
                log.warning("pull request failed: %s", exc)
                self._credit = 0
                return

    async def _on_message(self, msg: Msg) -> None:
        now = self._heard = self._loop.time()
        status = msg.headers.get(_STATUS) if msg.headers else None
        if status is None and msg.reply:
            self._credit = max(0, self._credit - 1)
            job = self._handler(msg)
            wall = time.time()
            if job.due > wall:
                self._hold(msg, job, now, wall)
                await self._top_up()
            else:
                self._admit(msg, job, now)
            return
        if status == _HEARTBEAT:
            return
        # A request ended (408 expired, 409 ...): what it still owed will not come.
        pending = msg.headers.get(_PENDING_MESSAGES) if msg.headers else None
        if pending is not None and pending.isdigit():
            self._credit = max(0, self._credit - int(pending))
            await self._top_up()
            return
        # Not knowing what is still owed, forget it all and ask again shortly: at once could
        # spin against a server that keeps refusing (a consumer being deleted or moved).
        log.info("pull request ended with status %s; asking again", status)
        self._credit = 0
        self._loop.call_later(0.5, self._spawn_top_up)

    def _hold(self, msg: Msg, job: Job, since: float, wall: float) -> None:
        start_at = job.due
        early = start_at - wall
        if early > MAX_EARLY_HOLD_S:
            log.warning(
                "%s arrived %.1f s before it is due; starting it in %.0f s (are the clocks of "
                "this host and the scheduler's in sync?)",
                job.name,
                early,
                MAX_EARLY_HOLD_S,
            )
            start_at = wall + MAX_EARLY_HOLD_S
        held = _Held(msg, job, since, start_at)
        self._held.add(held)
        self._due(held)

    def _due(self, held: _Held) -> None:
        """Let ``held`` in line if its time has come, else (again) set its timer."""
        early = held.start_at - time.time()
        if early > 0:
            # Checked again when the timer fires: the loop's timers keep milliseconds and the
            # loop's own cached clock, so one can fire a fraction of a millisecond early (or
            # the wall clock was stepped), and a run never starts before its instant.
            held.timer = self._loop.call_later(early, self._due, held)
            return
        self._held.discard(held)
        self._admit(held.msg, held.job, held.since)

    def _admit(self, msg: Msg, job: Job, since: float) -> None:
        """Start a due job in a free slot, or put it in line for one."""
        if self._free:
            self._free -= 1
            self._start(msg, job, since)
        else:
            self._waiting.append((msg, job, since))

    def _start(self, msg: Msg, job: Job, since: float) -> None:
        """Run ``job`` in a slot already taken for it."""
        task = self._loop.create_task(job.run())
        self._inflight[task] = (msg, since)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.pop(task, None)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("handler crashed", exc_info=exc)
        if self._waiting and not self._stopping:
            # The slot goes straight to the next message in line.
            self._start(*self._waiting.popleft())
        else:
            self._free += 1
        if self._wanted():
            self._spawn_top_up()

    def _spawn_top_up(self) -> None:
        task = self._loop.create_task(self._top_up())
        # Held until done: the event loop keeps only weak references to tasks.
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("asking for more work failed: %s", exc)

    async def _keep_alive(self) -> None:
        period = self._options.ack_wait_s / 3
        while True:
            await asyncio.sleep(period)
            now = self._loop.time()
            unsettled = [
                *self._inflight.values(),
                *((msg, since) for msg, _, since in self._waiting),
                *((entry.msg, entry.since) for entry in self._held),
            ]
            for msg, since in unsettled:
                if now - since >= period:
                    with contextlib.suppress(Exception):
                        await msg.in_progress()

    async def _finish_inflight(self) -> None:
        # Messages in line or not due yet never started: hand them straight back for another
        # replica (the timers first, so none is let in line meanwhile).
        for entry in self._held:
            if entry.timer is not None:
                entry.timer.cancel()
        unstarted = [msg for msg, _, _ in self._waiting] + [entry.msg for entry in self._held]
        self._waiting.clear()
        self._held.clear()
        for message in unstarted:
            with contextlib.suppress(Exception):
                await message.nak()
        tasks = list(self._inflight)
        if not tasks:
            return
        log.info(
            "waiting up to %ss for %d runs in flight", self._options.shutdown_grace_s, len(tasks)
        )
        _, late = await asyncio.wait(tasks, timeout=self._options.shutdown_grace_s)
        for task in late:
            msg, _ = self._inflight.get(task, (None, 0.0))
            task.cancel()
            if msg is not None:
                # Hand it straight back so another replica takes it now, not after ack_wait.
                with contextlib.suppress(Exception):
                    await msg.nak()
        if late:
            await asyncio.gather(*late, return_exceptions=True)
