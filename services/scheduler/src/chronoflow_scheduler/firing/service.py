"""What happens when a chrono's schedule fires: check, prepare, hold, emit, continue.

A fired message arrives ``fire_lead_seconds`` early. While it waits, the scheduler checks the
schedule still holds, loads the chrono and encodes its RunRequested; ``release_ahead_seconds``
before the due instant the release gate hands the prepared run to the work batcher (executors
hold a run until its ``scheduledFor``), unless the chrono changed meanwhile, runs late or needs
the overlap check: those take the slow path (check again, decide, emit).
Then the next occurrence is armed or the one-shot finished. The message is acknowledged only
after all of that is stored, so a crash anywhere means redelivery; message ids make the
repeat harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from nats.aio.msg import Msg
from pydantic import ValidationError

from chronoflow_contracts import utc_now
from chronoflow_contracts.schedule import NormalizedSchedule
from chronoflow_platform.logs import chrono_id_var
from chronoflow_platform.telemetry import consumer_span
from chronoflow_scheduler.domain import (
    ON_TIME_SECONDS,
    FirePlan,
    RetryLaterError,
    ScheduleMessage,
    keepalive_interval,
    lateness_seconds,
    plan_fire,
)
from chronoflow_scheduler.emitter import Emitter, Prepared
from chronoflow_scheduler.eventlog import ChangeWatch, EventLog, Verdict, Watch
from chronoflow_scheduler.firing.intake import Intake, Ticket
from chronoflow_scheduler.firing.outcomes import Outcomes
from chronoflow_scheduler.holding import ReleaseGate
from chronoflow_scheduler.metrics import SchedulerMetrics
from chronoflow_scheduler.readmodel import ChronoRow, ReadModel
from chronoflow_scheduler.schedules import ScheduleStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FireTiming:
    """The knobs of fire processing."""

    ack_wait_seconds: float
    read_model_wait_seconds: float
    retry_delay_seconds: float
    running_stale_seconds: float
    #: How long before its instant an occurrence goes to the work queue (see docs/scheduler.md,
    #: "Release ahead"): a burst's runs are then stored, and its follow-ups written, while the
    #: executors wait for the instant instead of while they work.
    release_ahead_seconds: float = 0.0
    #: Fires prepared at once. Their rows load in one query and their runs are encoded in
    #: one turn of the event loop, which delays every release due meanwhile: a few dozen
    #: keep that turn to a few milliseconds and still prepare thousands a second.
    prepare_concurrency: int = 32


@dataclass(eq=False)
class _Held:
    """A fire waiting for its instant: only what the release and the follow-up need.

    The chrono's full definition is not kept (a burst holds thousands of these); the slow
    path reloads it.
    """

    fire: ScheduleMessage
    watch: Watch
    version: int
    schedule: NormalizedSchedule
    overlap_check: bool
    plan: FirePlan
    work: Prepared | None
    #: When the release gate lets it go: the instant, or ``release_ahead_seconds`` before it.
    release_at: datetime
    #: Resolves at the release with None (slow path), or once the prepared run is stored
    #: with the time it was stored (fast path).
    released: asyncio.Future[datetime | None] = field(repr=False)


class FireService:
    """Processes fired schedule messages; safe to run in any number of replicas."""

    def __init__(
        self,
        *,
        store: ScheduleStore,
        events: EventLog,
        watch: ChangeWatch,
        readmodel: ReadModel,
        emitter: Emitter,
        metrics: SchedulerMetrics,
        timing: FireTiming,
    ) -> None:
        self._events = events
        self._watch = watch
        self._readmodel = readmodel
        self._emitter = emitter
        self._metrics = metrics
        self._timing = timing
        self._keepalive = keepalive_interval(timing.ack_wait_seconds)
        self._gate = ReleaseGate()
        self._preparing = asyncio.Semaphore(timing.prepare_concurrency)
        self._intake = Intake(
            ack_wait_seconds=timing.ack_wait_seconds,
            retry_delay_seconds=timing.retry_delay_seconds,
        )
        self._outcomes = Outcomes(
            store=store,
            events=events,
            readmodel=readmodel,
            emitter=emitter,
            metrics=metrics,
            running_stale_seconds=timing.running_stale_seconds,
        )

    @property
    def gate(self) -> ReleaseGate:
        """Where held fires wait for their instant (the garbage collector avoids its times)."""
        return self._gate

    @property
    def intake(self) -> Intake:
        """The messages in hand (the consumer asks it for room; a loop keeps them alive)."""
        return self._intake

    async def handle(self, msg: Msg) -> None:
        """Process one fired message to its acknowledgement, or hand it back for later."""
        await self._intake.take(msg, self._handle)

    async def _handle(self, msg: Msg, ticket: Ticket) -> bool:
        """Process the message; True once acknowledged, False when handed back."""
        try:
            fire = ScheduleMessage.model_validate_json(msg.data)
        except ValidationError:
            log.warning("dropping unreadable fired message on %s", msg.subject)
            self._metrics.fires.labels("malformed").inc()
            await msg.ack()
            return True
        token = chrono_id_var.set(fire.chrono_id)
        try:
            # The RunRequested prepared in here carries this span's context to the executor.
            with consumer_span(
                "scheduler fire", msg.headers, {"chronoflow.chrono_id": fire.chrono_id}
            ):
                outcome = await self._process(msg, fire, ticket)
        except asyncio.CancelledError:
            # Shutting down: give it back now so another replica takes it without waiting.
            with contextlib.suppress(Exception):
                await asyncio.shield(msg.nak())
            raise
        except RetryLaterError as exc:
            log.info("fire of %s deferred: %s", fire.due_at.isoformat(), exc)
            await msg.nak(delay=self._timing.retry_delay_seconds)
            return False
        except Exception:
            log.exception("fire of %s failed; it will be redelivered", fire.due_at.isoformat())
            self._metrics.publish_errors.labels("fire").inc()
            with contextlib.suppress(Exception):
                await msg.nak(delay=self._timing.retry_delay_seconds)
            return False
        finally:
            chrono_id_var.reset(token)
        await msg.ack()
        self._metrics.fire_outcome(outcome).inc()
        return True

    async def _process(self, msg: Msg, fire: ScheduleMessage, ticket: Ticket) -> str:
        self._metrics.arrival_lead.observe((fire.due_at - utc_now()).total_seconds())
        watch = self._watch.watch(fire.chrono_id)
        try:
            # Preparing loads a whole chrono; a few dozen at a time keeps a burst's peak
            # memory down and the event loop responsive (the lead leaves seconds to spare).
            async with self._preparing:
                verdict = await self._events.verify(fire.chrono_id, fire.chrono_version)
                if not verdict.holds:
                    return self._stale(fire, verdict)
                row = await self._await_row(msg, fire)
                if not row.is_active:
                    return self._stale(fire, verdict)
                held = self._prepare(fire, watch, row)
                del row  # a burst holds thousands of fires: keep only what _Held needs
            ticket.done()
            stored_at = await self._hold(msg, held)
            if stored_at is not None:
                self._metrics.lateness.observe(lateness_seconds(fire.due_at, stored_at))
                outcome = "run"
                plan = held.plan
            else:
                outcome, plan, verdict = await self._slow_path(msg, held, verdict)
        finally:
            self._watch.release(watch)
        if outcome != "stale":
            # Let the runs queued now go out before the bookkeeping that follows them (only
            # those: waiting for the work queue to fall idle held follow-ups for seconds
            # while a burst's stragglers and slow-path runs kept arriving).
            await self._emitter.work_ahead()
            await self._outcomes.carry_on(fire.chrono_id, held.schedule, plan, verdict)
        return outcome

    def _prepare(self, fire: ScheduleMessage, watch: Watch, row: ChronoRow) -> _Held:
        """Decide as if on time and encode the run now, while there is time to spare."""
        plan = self._plan(row, fire, at=fire.due_at)
        overlap_check = row.definition.config.concurrency == 1
        # The overlap rule asks whether the previous run is still running at the instant, so
        # such a chrono is decided at the instant itself, never ahead.
        ahead = 0.0 if overlap_check else self._timing.release_ahead_seconds
        return _Held(
            fire=fire,
            watch=watch,
            version=row.version,
            schedule=row.definition.schedule,
            overlap_check=overlap_check,
            plan=plan,
            work=self._outcomes.encode(row, plan),
            release_at=fire.due_at - timedelta(seconds=ahead),
            released=asyncio.get_running_loop().create_future(),
        )

    async def _hold(self, msg: Msg, held: _Held) -> datetime | None:
        """Wait for the release (the keepalive loop tells JetStream the message is still in
        hand meanwhile)."""

        def release() -> None:
            self._release(held)

        self._gate.at(held.release_at, release)
        self._metrics.held.inc()
        try:
            return await held.released
        finally:
            self._metrics.held.dec()
            self._gate.discard(held.release_at, release)
            if not held.released.done():
                held.released.cancel()

    def _release(self, held: _Held) -> None:
        """At the release: hand the prepared run over, or wake the task for the slow path."""
        if held.released.done():
            return
        fast = (
            held.work is not None
            and held.plan.skipped is None
            and not held.overlap_check
            and not self._watch.changed(held.watch)
            and lateness_seconds(held.fire.due_at, utc_now()) <= ON_TIME_SECONDS
        )
        if not fast or held.work is None:
            held.released.set_result(None)
            return

        def stored(sent: asyncio.Future[None]) -> None:
            if held.released.done():
                return
            if sent.cancelled():
                held.released.cancel()
            elif (exc := sent.exception()) is not None:
                held.released.set_exception(exc)
            else:
                held.released.set_result(utc_now())

        self._emitter.enqueue_run(held.work).add_done_callback(stored)

    async def _slow_path(
        self, msg: Msg, held: _Held, verdict: Verdict
    ) -> tuple[str, FirePlan, Verdict]:
        """The chrono changed, the fire is late, or the overlap rule applies: decide afresh."""
        fire = held.fire
        if self._watch.changed(held.watch):
            verdict = await self._events.verify(fire.chrono_id, fire.chrono_version)
            if not verdict.holds:
                return self._stale(fire, verdict), held.plan, verdict
        row = await self._await_row(msg, fire)
        if not row.is_active:
            return self._stale(fire, verdict), held.plan, verdict
        plan = self._plan(row, fire, at=utc_now())
        outcome = await self._outcomes.emit(row, plan)
        return outcome, plan, verdict

    @staticmethod
    def _plan(row: ChronoRow, fire: ScheduleMessage, *, at: datetime) -> FirePlan:
        grace = row.definition.config.misfire_grace_seconds
        return plan_fire(row.definition.schedule, fire.due_at, at, grace)

    def _stale(self, fire: ScheduleMessage, verdict: Verdict) -> str:
        log.info(
            "stale fire of %s (armed at version %d, changed at %d by %s)",
            fire.due_at.isoformat(),
            fire.chrono_version,
            verdict.latest,
            verdict.changed_by,
        )
        self._metrics.stale.inc()
        return "stale"

    async def _await_row(self, msg: Msg, fire: ScheduleMessage) -> ChronoRow:
        """The chrono's row once the projector has applied the event that armed the schedule."""
        row = await self._readmodel.wait_for(
            fire.chrono_id,
            fire.chrono_version,
            within=self._timing.read_model_wait_seconds,
            heartbeat=msg.in_progress,
            heartbeat_every=self._keepalive,
        )
        if row is None:
            raise RetryLaterError(f"read model has not reached version {fire.chrono_version}")
        return row
