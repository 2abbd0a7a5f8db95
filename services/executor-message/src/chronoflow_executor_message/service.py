"""The use case: send one attempt of a MESSAGE chrono to whoever still needs the text, record it,
and line up the next attempt for those who did not get it."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypedDict

from nats.js import JetStreamContext

from chronoflow_contracts import decode, names, new_id, utc_now
from chronoflow_contracts.chrono import TargetType
from chronoflow_contracts.runs import (
    RunCompleted,
    RunRequested,
    RunStarted,
    RunStatus,
    Trigger,
    run_id,
    run_request_msg_id,
)
from chronoflow_contracts.waha import SendErrorCode, WahaSendReply, WahaSendRequest
from chronoflow_executor_message import domain
from chronoflow_executor_message.domain import Recipient
from chronoflow_executor_message.gateway import TextSender
from chronoflow_executor_message.metrics import ExecutorMetrics
from chronoflow_platform.publishing import publish_event

log = logging.getLogger(__name__)

#: The longest single pause when the gateway says the session's pacing is full; the question
#: is then asked again (progress is the gateway's to grant, this only bounds one sleep).
MAX_PACED_SLEEP_S = 30.0

Sleep = Callable[[float], Awaitable[None]]


class MessageExecutor:
    """Sends a RunRequested's text to its recipients and records RunStarted and RunCompleted.

    Idempotent per run: a redelivered request asks the gateway again for each recipient, and
    the gateway's record (keyed by occurrence and chat) answers without sending twice;
    JetStream drops the second RunStarted and RunCompleted, and the retry follows the outcome
    recorded first.
    """

    def __init__(
        self,
        *,
        js: JetStreamContext,
        gateway: TextSender,
        metrics: ExecutorMetrics,
        jitter: Callable[[], float] = random.random,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._js = js
        self._gateway = gateway
        self._metrics = metrics
        self._jitter = jitter
        self._sleep = sleep

    async def execute(self, request: RunRequested) -> RunCompleted:
        """Run the attempt and record it; returns the outcome history holds for this run."""
        subject = names.runs_subject(request.chrono_id)
        started_at = utc_now()
        started = RunStarted(
            **_identity(request), target_type=TargetType.MESSAGE, started_at=started_at
        )
        await publish_event(
            self._js, subject, started, msg_id=domain.started_msg_id(request.run_id)
        )
        clock = time.perf_counter()
        recipients, stop, session = await self._send_all(request)
        elapsed = time.perf_counter() - clock
        finished_at = utc_now()
        self._metrics.duration.labels(domain.TARGET).observe(elapsed)

        verdict = domain.judge(recipients, stop)
        policy = request.definition.config.retry
        due = domain.next_attempt(verdict, policy, request.attempt, finished_at, self._jitter())
        recorded = domain.finish(
            recipients,
            will_retry=due is not None,
            reason=verdict.error_message or "the run ended",
        )
        completed = RunCompleted(
            **_identity(request),
            target_type=TargetType.MESSAGE,
            status=verdict.status,
            started_at=started_at,
            finished_at=finished_at,
            duration_ms=domain.duration_ms(elapsed),
            http_status=verdict.http_status,
            error_message=verdict.error_message,
            result=domain.result(
                recorded,
                channel_id=request.definition.channel_id,
                session=session,
                next_attempt_at=due,
            ),
            will_retry=due is not None,
        )
        ack = await publish_event(
            self._js, subject, completed, msg_id=domain.completed_msg_id(request.run_id)
        )
        if ack.duplicate:
            # An earlier delivery recorded this attempt; its outcome is the one that counts.
            completed = await self._recorded(ack.seq) or completed
            due = _next_attempt_at(completed)
        else:
            self._metrics.runs.labels(domain.TARGET, completed.status.value).inc()
        if completed.will_retry and due is not None:
            await self._schedule_retry(request, completed, due)
        return completed

    async def give_up(self, request: RunRequested, reason: str) -> None:
        """Record a final failure for a request the executor could not process at all."""
        now = utc_now()
        completed = RunCompleted(
            **_identity(request),
            target_type=TargetType.MESSAGE,
            status=RunStatus.FAILED,
            started_at=now,
            finished_at=now,
            duration_ms=0,
            error_message=domain.clip(reason),
        )
        ack = await publish_event(
            self._js,
            names.runs_subject(request.chrono_id),
            completed,
            msg_id=domain.completed_msg_id(request.run_id),
        )
        if not ack.duplicate:
            self._metrics.runs.labels(domain.TARGET, completed.status.value).inc()

    async def _send_all(
        self, request: RunRequested
    ) -> tuple[list[Recipient], WahaSendReply | None, str | None]:
        """Each recipient still in need, one after the other; stops early when the session or
        WhatsApp says so. Returns the recipients, the answer that stopped it, the session."""
        definition = request.definition
        problem = domain.definition_problem(definition)
        if problem is not None:
            refusal = WahaSendReply(ok=False, code=SendErrorCode.INVALID_REQUEST, error=problem)
            return [], refusal, None
        assert definition.channel_id is not None
        assert definition.message_template is not None
        recipients = domain.plan(definition.recipients, request.carried_result)
        session: str | None = None
        for index, recipient in enumerate(recipients):
            if recipient.settled or recipient.chat_id is None:
                continue
            reply = await self._send_one(
                WahaSendRequest(
                    channel_id=definition.channel_id,
                    chat_id=recipient.chat_id,
                    text=definition.message_template,
                    idempotency_key=domain.idempotency_key(
                        request.occurrence_id, recipient.chat_id
                    ),
                )
            )
            session = reply.session or session
            recipients[index] = domain.after_reply(recipient, reply, request.attempt)
            if domain.stops_the_attempt(reply):
                log.info(
                    "run %s stops after %s: %s", request.run_id, recipient.chat_id, reply.error
                )
                return recipients, reply, session
        return recipients, None, session

    async def _send_one(self, send: WahaSendRequest) -> WahaSendReply:
        while True:
            reply = await self._gateway.send(send)
            if reply.ok or reply.code is not SendErrorCode.PACED:
                return reply
            # The session's pacing is full: the text waits its turn, not another attempt.
            await self._sleep(min(reply.retry_after or 1.0, MAX_PACED_SLEEP_S))

    async def _recorded(self, seq: int) -> RunCompleted | None:
        try:
            raw = await self._js.get_msg(names.RUNS_STREAM, seq, direct=True)
            headers = raw.headers or {}
            event = decode(
                headers.get(names.EVENT_TYPE, ""),
                int(headers.get(names.EVENT_VERSION, "1")),
                raw.data or b"",
            )
        except Exception:
            log.exception("cannot read the recorded outcome at %s:%d", names.RUNS_STREAM, seq)
            return None
        return event if isinstance(event, RunCompleted) else None

    async def _schedule_retry(
        self, request: RunRequested, completed: RunCompleted, due: datetime
    ) -> None:
        attempt = request.attempt + 1
        following = request.model_copy(
            update={
                "event_id": new_id(),
                "occurred_at": utc_now(),
                "causation_id": completed.event_id,
                "attempt": attempt,
                "run_id": run_id(request.occurrence_id, attempt),
                # Who already has the text: the next attempt sends only to the others.
                "carried_result": completed.result if isinstance(completed.result, dict) else None,
            }
        )
        msg_id = run_request_msg_id(request.chrono_id, request.scheduled_for, attempt)
        target = names.work_subject(domain.TARGET)
        if due <= utc_now():
            await publish_event(self._js, target, following, msg_id=msg_id)
        else:
            # A JetStream schedule in the work stream itself: nats-server moves it to the
            # queue when due, so the retry survives any restart of this process.
            await publish_event(
                self._js,
                names.work_retry_subject(domain.TARGET, following.run_id),
                following,
                msg_id=msg_id,
                extra_headers={
                    names.SCHEDULE: domain.schedule_header(due),
                    names.SCHEDULE_TARGET: target,
                    names.DUE_AT: due.isoformat(),
                },
            )
        self._metrics.retries.labels(domain.TARGET).inc()


class _Identity(TypedDict):
    chrono_id: str
    run_id: str
    occurrence_id: str
    scheduled_for: datetime
    trigger: Trigger
    attempt: int
    correlation_id: str | None
    causation_id: str | None


def _identity(request: RunRequested) -> _Identity:
    return {
        "chrono_id": request.chrono_id,
        "run_id": request.run_id,
        "occurrence_id": request.occurrence_id,
        "scheduled_for": request.scheduled_for,
        "trigger": request.trigger,
        "attempt": request.attempt,
        "correlation_id": request.correlation_id,
        "causation_id": request.event_id,
    }


def _next_attempt_at(completed: RunCompleted) -> datetime | None:
    if not completed.will_retry or not isinstance(completed.result, dict):
        return None
    text = completed.result.get("nextAttemptAt")
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
